"""Helpers shared by the model-based faithfulness kernels.

:func:`prepare_model_inputs` is the public-boundary step every kernel runs
first: it validates ``x``, ``a`` and the options, calls the model once on the
unperturbed inputs (in chunks), resolves ``target`` (``None`` means the model's
prediction) and returns the unperturbed target scores. The correlation helpers
work row-wise on ``(B, T)`` tensors without host synchronisation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from xaiscore._engine.batching import (
    call_model,
    check_finite_output,
    check_max_batch_size,
    chunked_map,
    class_scores,
)
from xaiscore._checks import (
    DTypeError,
    NonFiniteError,
    OptionError,
    check_attributions,
    check_inputs_like,
    check_positive_int,
    check_target,
)
from xaiscore.functional._common import average_ranks, nan_where

__all__ = [
    "PreparedInputs",
    "prepare_model_inputs",
    "finish_scores",
    "step_edges",
    "resolve_step",
    "pearson_rows",
    "spearman_rows",
]


class PreparedInputs(NamedTuple):
    """Validated inputs of a model-based kernel.

    Attributes:
        x: ``(B, C, *S)`` inputs.
        a: ``(B, 1|C, *S)`` attributions.
        target: ``(B,)`` long classes (the prediction where ``target`` was ``None``).
        score: ``(B,)`` the target score on the unperturbed ``x`` (probability or logit).
    """

    x: Tensor
    a: Tensor
    target: Tensor
    score: Tensor


def prepare_model_inputs(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None,
    *,
    softmax: bool,
    max_batch_size: int,
    validate: bool,
    unperturbed_scores: bool = True,
) -> PreparedInputs:
    """Validate, run the model on ``x`` and resolve ``target``.

    With ``unperturbed_scores=False`` and a given ``target``, the model is not run (the kernel
    needs no score on ``x``): ``score`` is empty and the kernel checks the target range
    against its first model output itself.

    Raises:
        DTypeError: ``forward_fn`` not callable, bad tensor types or ``softmax`` not a bool.
        ShapeError: ``x`` and ``a`` do not match; ``target`` not ``(B,)``.
        NonFiniteError: NaN/inf in ``a`` or ``x``, or NaN scores (only when ``validate``).
        OptionError: ``target`` outside the model's classes (only when ``validate``).
        ModelOutputError: ``forward_fn`` does not return ``(n, K)`` logits.
    """
    if not callable(forward_fn):
        raise DTypeError(
            "Expected `forward_fn` to be callable (e.g. an nn.Module), but got "
            f"{type(forward_fn).__name__}."
        )
    if not isinstance(softmax, bool):
        raise DTypeError(f"Expected `softmax` to be a bool, but got {type(softmax).__name__}.")
    # Scores are never differentiated (the model runs under inference mode): inputs that require
    # grad, e.g. those an explainer was just run on, are used as plain values.
    a = check_attributions(a, validate=validate).detach()
    x = check_inputs_like(x, a).detach()
    check_max_batch_size(max_batch_size)
    if validate and not bool(torch.isfinite(x).all()):
        raise NonFiniteError(
            f"Expected `x` to be finite, but got {int((~torch.isfinite(x)).sum())} NaN or infinite "
            "value(s)."
        )
    if target is not None and not unperturbed_scores:
        target = check_target(target, x.shape[0], device=x.device, validate=validate)
        return PreparedInputs(x, a, target, x.new_empty((0,)))
    logits = chunked_map(x.shape[0], lambda s, e: call_model(forward_fn, x[s:e]),
                         max_batch_size=max_batch_size)
    if target is None:
        target = logits.argmax(dim=1)
    else:
        target = check_target(target, x.shape[0], num_classes=logits.shape[1], device=x.device,
                              validate=validate)
    score = class_scores(logits, target, softmax=softmax)
    if validate:
        check_finite_output(score)
    return PreparedInputs(x, a, target, score.to(x.dtype))


def finish_scores(values: Tensor, like: Tensor, *, validate: bool) -> Tensor:
    """Cast model scores to the dtype of ``like`` and, if ``validate``, reject NaN."""
    if validate:
        check_finite_output(values)
    return values.to(like.dtype)


def resolve_step(value: int | float, n_features: int, name: str = "features_per_step") -> int:
    """A per-step feature count: an int in ``[1, n_features]``, or a float fraction in (0, 1] of the
    features.

    A fraction ``q`` means ``ceil(q * n_features)`` features per step (at least one).

    Example:
        >>> resolve_step(3, 10), resolve_step(0.25, 10)
        (3, 3)
    """
    if isinstance(value, float):
        if not 0.0 < value <= 1.0:
            raise OptionError(
                f"Expected `{name}` as a fraction in (0, 1] of the features, but got {value}.")
        return max(1, math.ceil(value * n_features - 1e-9))
    if isinstance(value, bool) or not isinstance(value, int):
        raise DTypeError(
            f"Expected `{name}` to be an int count or a float fraction, but got "
            f"{type(value).__name__} {value!r}."
        )
    check_positive_int(value, name)
    if value > n_features:
        raise OptionError(
            f"Expected `{name}` at most the number of features ({n_features}), but got {value}."
        )
    return value


def step_edges(n_features: int, per_step: int, device: torch.device) -> Tensor:
    """``[0, s, 2s, ..., N]``: ``ceil(N / s) + 1`` cumulative counts (the last step may be smaller).

    Example:
        >>> step_edges(7, 3, torch.device("cpu")).tolist()
        [0, 3, 6, 7]
    """
    n_steps = math.ceil(n_features / per_step)
    return (torch.arange(n_steps + 1, device=device) * per_step).clamp(max=n_features)


def pearson_rows(u: Tensor, v: Tensor) -> Tensor:
    """Pearson correlation of each row pair of ``u`` and ``v`` ``(B, T)``, accumulated in float64.

    NaN where a row has fewer than two entries or is constant (exactly; no
    rounding-level variance is mistaken for a signal).

    Example:
        >>> pearson_rows(torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]), torch.tensor([[2.0, 4.0, 7.0], [1.0, 2.0, 3.0]]))
        tensor([0.9934,    nan])
    """  # noqa: E501
    dtype = torch.promote_types(u.dtype, v.dtype)
    u64, v64 = u.double(), v.double()
    du = u64 - u64.mean(1, keepdim=True)
    dv = v64 - v64.mean(1, keepdim=True)
    suu, svv = (du * du).sum(1), (dv * dv).sum(1)
    denominator = torch.sqrt(suu * svv)
    r = (du * dv).sum(1) / torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    constant = (u.amax(1) == u.amin(1)) | (v.amax(1) == v.amin(1))
    undefined = constant | (denominator == 0) | ~torch.isfinite(denominator)
    return nan_where(undefined, r.clamp(-1.0, 1.0)).to(dtype)


def spearman_rows(u: Tensor, v: Tensor) -> Tensor:
    """Spearman rank correlation per row: Pearson of average ranks (ties share their mean rank).

    Example:
        >>> spearman_rows(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0, 4.0, 9.0]]))
        tensor([1.])
    """
    dtype = torch.promote_types(u.dtype, v.dtype)
    return pearson_rows(average_ranks(u).double(), average_ranks(v).double()).to(dtype)
