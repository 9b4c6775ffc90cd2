"""Explanation continuity (Montavon et al. 2018) under translations of the input.

The common arguments (noise, prediction changes, post-processing) are described in
:mod:`xaiscore.functional.robustness`; see ``docs/robustness.md`` for the formulas, defaults
and differences from Quantus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor

from xaiscore._checks import DTypeError, OptionError, check_option, check_positive_int
from xaiscore._engine.explain_fn import ExplainFn
from xaiscore._engine.model_mode import models_in_eval_mode
from xaiscore._engine.noise import Chunk, perturbed_statistics
from xaiscore._engine.reduction import flatten_features
from xaiscore.functional.robustness._common import (
    PredictionChange,
    _aggregate,
    _check_common,
    _check_norm_order,
    _check_prediction_mode,
    _check_target_classes,
    _norm,
    _predict,
    _prepare,
    _safe_divide,
)

__all__ = ["continuity"]


# --- Montavon et al. 2018 ------------------------------------------------------------------


def _translation_shifts(width: int, n_steps: int) -> list[int]:
    """Quantus' schedule: ``n_steps`` shifts of ``(2W + 1) // n_steps`` pixels, starting at ``-W``.
    """
    step = (2 * width + 1) // n_steps
    if step == 0:
        raise OptionError(
            f"Expected `n_steps` <= 2 * {width} + 1 (one pixel per step at least along the "
            f"translated axis), but got {n_steps}."
        )
    return [-width + step * k for k in range(1, n_steps + 1)]


def _fill_values(x: Tensor, fill: str | float) -> Tensor:
    flat = flatten_features(x)
    if isinstance(fill, str):
        check_option(fill, "fill", ("black", "white", "mean"))
        value = {"black": flat.amin, "white": flat.amax, "mean": flat.mean}[fill](dim=1)
    elif isinstance(fill, bool) or not isinstance(fill, (int, float)):
        raise DTypeError(
            "Expected `fill` to be 'black', 'white', 'mean' or a number, but got "
            f"{type(fill).__name__}.")
    else:
        value = torch.full((x.shape[0],), float(fill), dtype=x.dtype, device=x.device)
    return value


def _translate(x: Tensor, shifts: Tensor, fill: Tensor, axis: int) -> Tensor:
    """Shift each row of ``x`` by ``shifts[i]`` pixels along ``axis``
    (positive: towards higher indices), filling with ``fill[i]``."""
    moved = x.movedim(axis, -1)
    width = moved.shape[-1]
    source = torch.arange(width, device=x.device).unsqueeze(0) - shifts.unsqueeze(1)  # (m, W)
    valid = (source >= 0) & (source < width)
    view = (x.shape[0],) + (1,) * (moved.ndim - 2) + (width,)
    index = source.clamp(0, width - 1).reshape(view).expand_as(moved)
    gathered = moved.gather(-1, index)
    filled = torch.where(valid.reshape(view), gathered, fill.reshape((-1,) + (1,) * (
        moved.ndim - 1)).to(x.dtype))
    return filled.movedim(-1, axis)


@models_in_eval_mode("explain_fn", "forward_fn")
def continuity(
    x: Tensor,
    a: Tensor,
    target: Tensor,
    *,
    explain_fn: ExplainFn,
    forward_fn: Callable[[Tensor], Tensor] | None = None,
    n_steps: int = 28,
    shifts: Sequence[int] | None = None,
    axis: int = -1,
    fill: str | float = "black",
    p_explanation: float = 1.0,
    p_input: float = 2.0,
    abs: bool = True,
    normalise: Literal["sample"] | None = "sample",
    on_prediction_change: PredictionChange = "keep",
    max_batch_size: int = 64,
    validate: bool = True,
) -> Tensor:
    r"""Explanation continuity (Montavon et al. 2018) under translations of the input.

    .. math:: \mathrm{Cont}(x) = \max_{t} \frac{\lVert R(x) - R(\tau_t x) \rVert_1}
              {\lVert x - \tau_t x \rVert_2}

    where :math:`\tau_t` shifts the input by ``t`` pixels along ``axis`` and
    fills the uncovered pixels with ``fill`` (``"black"``: the sample's
    minimum, as Quantus), and :math:`R` is the explanation. Montavon et al.
    define the strongest variation of the explanation over nearby inputs; as in
    Quantus' ``Continuity`` the nearby inputs are translated copies, with
    Quantus' shift schedule by default (``n_steps`` shifts of
    ``(2W + 1) // n_steps`` pixels from ``-W``). Translations that leave the
    input unchanged (shift 0) are left out: the quotient is 0/0 there (Quantus
    adds 1e-9 to the denominator, which turns any randomness in the explainer
    into a score near 1e9). Lower is better. Deterministic: no noise.

    Args:
        x, a, target, explain_fn: As in :func:`max_sensitivity`.
        forward_fn: Only for ``on_prediction_change`` (the reference is the
            prediction on ``x``; Quantus compares with ``target``).
        n_steps: The number of shifts of the default schedule.
        shifts: Explicit shifts in pixels (overrides ``n_steps``).
        axis: The spatial axis to translate along (an axis of ``x``; -1: the last).
        fill: ``"black"``, ``"white"``, ``"mean"`` (per sample) or a number.
        p_explanation, p_input: The norm orders (1 and 2 in the paper).
        abs, normalise: Applied to every explanation (Quantus: both on).

    Returns:
        ``(B,)`` scores >= 0; NaN where no shift changes the input (a constant input).

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> x = torch.zeros(1, 1, 6); x[0, 0, 2] = 1.0
        >>> identity = lambda x, t: x.clone()
        >>> target = torch.zeros(1, dtype=torch.long)
        >>> continuity(x, identity(x, target), target, explain_fn=identity, shifts=[1, -1]).tolist()
        [1.4142135381698608]
    """
    x, a, target = _check_common(x, a, target, explain_fn, validate)
    check_positive_int(n_steps, "n_steps")
    p_explanation = _check_norm_order(p_explanation, "p_explanation")
    p_input = _check_norm_order(p_input, "p_input")
    _check_prediction_mode(on_prediction_change, forward_fn)
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise DTypeError(f"Expected `axis` to be an int, but got {type(axis).__name__}.")
    if not -x.ndim <= axis < x.ndim or axis % x.ndim < 2:
        raise OptionError(
            f"Expected `axis` to be a spatial axis of `x` (2 to {x.ndim - 1}, or negative), but "
            f"got {axis}.")
    axis = axis % x.ndim
    if shifts is None:
        shift_list = _translation_shifts(x.shape[axis], n_steps)
    else:
        if isinstance(shifts, (str, bytes)) or not isinstance(shifts, Sequence) or len(shifts) == 0:
            raise OptionError(
                f"Expected `shifts` as a non-empty sequence of ints, but got {shifts!r}.")
        if any(isinstance(s, bool) or not isinstance(s, int) for s in shifts):
            raise DTypeError(f"Expected `shifts` to hold ints (pixels), but got {list(shifts)!r}.")
        shift_list = list(shifts)
    shift_tensor = torch.tensor(shift_list, dtype=torch.long, device=x.device)
    fill_values = _fill_values(x, fill)
    reference = _prepare(a, abs, normalise)
    track = on_prediction_change != "keep"
    reference_logits = _predict(forward_fn, x, max_batch_size, validate=validate) if track else None
    _check_target_classes(target, logits=reference_logits, forward_fn=forward_fn, x=x,
                          validate=validate)
    if track:
        reference_class = reference_logits.argmax(dim=1)

    def statistic(chunk: Chunk) -> Tensor:
        change = _norm(reference[chunk.rows] - _prepare(chunk.a_perturbed, abs, normalise),
                       p_explanation)
        value = _safe_divide(change, _norm(chunk.x - chunk.x_perturbed, p_input))
        if not track:
            return value.unsqueeze(1)
        changed = chunk.logits.argmax(dim=1) != reference_class.index_select(0, chunk.rows)
        return torch.stack([value, changed.to(value.dtype)], dim=1)

    stats = perturbed_statistics(
        explain_fn, x, target, n_perturbations=len(shift_list),
        perturb=lambda rows_x, start, stop, steps: _translate(
            rows_x, shift_tensor.index_select(0, steps),
            fill_values.index_select(0, torch.div(torch.arange(start, stop, device=x.device),
                                                  len(shift_list),
                                                  rounding_mode="floor")), axis),
        statistic=statistic, max_batch_size=max_batch_size,
        forward_fn=forward_fn if track else None,
        explanation_shape=a.shape[1:], validate=validate,
    )
    changed = stats[..., 1] > 0.5 if track else None
    return _aggregate(stats[..., 0], changed, "max", on_prediction_change)

