"""What the robustness kernels share: checks, norms, the noisy-copies driver and its aggregation.

Private to :mod:`xaiscore.functional.robustness`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from xaiscore._checks import (
    DTypeError,
    OptionError,
    check_attributions,
    check_finite,
    check_inputs_like,
    check_option,
    check_positive_int,
    check_target,
)
from xaiscore._engine.batching import (call_model, check_finite_output, check_max_batch_size,
                                       chunked_map)
from xaiscore._engine.explain_fn import ExplainFn
from xaiscore._engine.noise import BlockNoise, Chunk, check_noise_options, perturbed_statistics
from xaiscore._engine.random import resolve_generator
from xaiscore._engine.reduction import flatten_features, normalise_by_max
from xaiscore.functional._common import nan_where

Noise = Literal["uniform", "gaussian"]
PredictionChange = Literal["keep", "exclude", "nan"]
_PREDICTION_CHANGE = ("keep", "exclude", "nan")


# --- shared helpers ------------------------------------------------------------------------


def _check_common(x: Tensor, a: Tensor, target: Tensor, explain_fn: object,
                  validate: bool) -> tuple[Tensor, Tensor, Tensor]:
    a = check_attributions(a, validate=validate)
    x = check_inputs_like(x, a)
    if validate:
        check_finite(x, "x")
    target = check_target(target, x.shape[0], device=x.device, validate=validate)
    if not callable(explain_fn):
        raise DTypeError(
            "Expected `explain_fn` to be callable as explain_fn(x, target), but got "
            f"{type(explain_fn).__name__}.")
    return x.detach(), a.detach(), target


def _check_norm_order(p: float, name: str = "p") -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not (p >= 1):
        raise OptionError(
            f"Expected `{name}` to be a norm order >= 1 (math.inf allowed), but got {p!r}.")
    return float(p)


def _norm(values: Tensor, p: float) -> Tensor:
    """Per-row p-norm of ``(m, ...)`` values, ``(m,)``."""
    return torch.linalg.vector_norm(flatten_features(values), ord=p, dim=1)


def _prepare(a: Tensor, abs_: bool, normalise: str | None) -> Tensor:
    check_option(normalise, "normalise", ("sample", None))
    if normalise is not None:
        a = normalise_by_max(a, "sample")
    return a.abs() if abs_ else a


def _check_prediction_mode(mode: str, forward_fn: object) -> None:
    check_option(mode, "on_prediction_change", _PREDICTION_CHANGE)
    if mode != "keep" and forward_fn is None:
        raise OptionError(
            f"Expected a `forward_fn` with on_prediction_change={mode!r} (it decides whether the "
            "prediction changed), but got None. Pass the model or use on_prediction_change='keep'."
        )
    if forward_fn is not None and not callable(forward_fn):
        raise DTypeError(
            f"Expected `forward_fn` to be callable, but got {type(forward_fn).__name__}.")


def _predict(forward_fn: Callable[[Tensor], Tensor], x: Tensor, max_batch_size: int, *,
             validate: bool,
             name: str = "forward_fn") -> Tensor:
    """Logits of the unperturbed inputs, in chunks; with ``validate``, NaN logits raise
    :class:`NonFiniteError`."""
    logits = chunked_map(x.shape[0], lambda s, e: call_model(forward_fn, x[s:e], name=name),
                         max_batch_size=max_batch_size)
    if validate:
        check_finite_output(logits, name=name)
    return logits


def _check_target_classes(target: Tensor, *, logits: Tensor | None,
                          forward_fn: Callable[[Tensor], Tensor] | None,
                          x: Tensor, validate: bool, name: str = "forward_fn") -> None:
    """With ``validate``: ``target`` must be a class of the model, before any explanation is asked
    for.

    The class count comes from ``logits`` (the unperturbed inputs' logits, when the kernel
    computes them anyway) or else from one model call on ``x[:1]``; without a model nothing is
    known beyond ``target >= 0`` (checked by :func:`_check_common`).
    """
    if not validate or (logits is None and forward_fn is None):
        return
    if logits is None:
        logits = check_finite_output(call_model(forward_fn, x[:1], name=name), name=name)
    check_target(target, x.shape[0], num_classes=logits.shape[1], device=x.device, validate=True)


def _aggregate(values: Tensor, changed: Tensor | None, how: Literal["max", "mean"],
               mode: str) -> Tensor:
    """Reduce ``(B, n)`` per-perturbation values to ``(B,)``; NaN terms never count.

    ``changed`` ``(B, n)`` marks copies whose prediction changed: ``"exclude"``
    drops them, ``"nan"`` makes the whole sample NaN, ``"keep"`` ignores it.
    """
    nan = torch.full_like(values, math.nan)
    if changed is not None and mode == "exclude":
        values = torch.where(changed, nan, values)
    missing = torch.isnan(values)
    if how == "max":
        out = torch.where(missing, torch.full_like(values, -math.inf), values).amax(dim=1)
        out = nan_where(missing.all(dim=1), out)
    else:
        out = torch.nanmean(values, dim=1)
    if changed is not None and mode == "nan":
        out = nan_where(changed.any(dim=1), out)
    return out


def _safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` with NaN where the denominator is 0."""
    zero = denominator == 0
    return nan_where(zero, numerator / torch.where(zero, torch.ones_like(denominator), denominator))


def _noisy_metric(
    x: Tensor,
    a: Tensor,
    target: Tensor,
    *,
    explain_fn: ExplainFn,
    forward_fn: Callable[[Tensor], Tensor] | None,
    n_samples: int,
    noise: str,
    radius: float,
    noise_bounds: tuple[float, float] | None,
    item_value: Callable[[Chunk], Tensor],
    needs_logits: bool,
    on_prediction_change: str,
    how: Literal["max", "mean"],
    generator: torch.Generator | None,
    seed: int | None,
    max_batch_size: int,
    validate: bool,
    reference_logits: Tensor | None = None,
    model_name: str = "forward_fn",
) -> Tensor:
    """Shared driver: draw noise, explain the noisy copies, reduce per item, then per sample.

    ``reference_logits``: the model's logits on ``x`` where the caller computed them (already
    checked for NaN). With ``validate``, ``target`` is checked against the model's classes and
    NaN logits on the perturbed copies raise :class:`NonFiniteError` (at the end).
    """
    n_samples = check_positive_int(n_samples, "n_samples")
    low, high = check_noise_options(noise, radius, noise_bounds)
    _check_prediction_mode(on_prediction_change, forward_fn)
    check_max_batch_size(max_batch_size)
    source = BlockNoise(x.shape[0] * n_samples, x.shape[1:], kind=noise, low=low, high=high,
                        generator=resolve_generator(generator, seed), device=x.device,
                        dtype=x.dtype)
    track = on_prediction_change != "keep"
    run_model = track or needs_logits
    if track and reference_logits is None:
        reference_logits = _predict(forward_fn, x, max_batch_size, validate=validate,
                                    name=model_name)
    _check_target_classes(target, logits=reference_logits, forward_fn=forward_fn, x=x,
                          validate=validate,
                          name=model_name)
    if track:
        reference_class = reference_logits.argmax(dim=1)

    def statistic(chunk: Chunk) -> Tensor:
        value = item_value(chunk)
        if not track:
            return value.unsqueeze(1)
        changed = chunk.logits.argmax(dim=1) != reference_class.index_select(0, chunk.rows)
        return torch.stack([value, changed.to(value.dtype)], dim=1)

    stats = perturbed_statistics(
        explain_fn, x, target, n_perturbations=n_samples,
        perturb=lambda rows_x, start, stop, steps: source.add_to(rows_x, start, stop),
        statistic=statistic, max_batch_size=max_batch_size,
        forward_fn=forward_fn if run_model else None,
        explanation_shape=a.shape[1:], validate=validate, model_name=model_name,
    )
    changed = stats[..., 1] > 0.5 if track else None
    return _aggregate(stats[..., 0], changed, how, on_prediction_change)

