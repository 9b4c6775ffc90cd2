"""ROAD: RemOve And Debias (Rong et al. 2022), with the noisy linear imputation solved on the
device.

See ``docs/faithfulness.md`` for the formula, defaults and the differences from Quantus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor

from xaiscore._engine.batching import ChunkBuffers, call_model, chunked_map, class_scores
from xaiscore._checks import DTypeError, ShapeError, check_fraction, check_option, check_target
from xaiscore._engine.imputation import linear_imputation
from xaiscore._engine.model_mode import models_in_eval_mode
from xaiscore._engine.perturbation import (
    element_ranks,
    feature_attributions,
    partition,
    rank_features,
)
from xaiscore._engine.random import random_keys
from xaiscore._engine.reduction import CHANNEL_REDUCTIONS, ChannelReduction
from xaiscore.functional.faithfulness._common import finish_scores, prepare_model_inputs
from xaiscore._engine.random import counter_normal
from xaiscore.functional._results import CurveResult
from xaiscore.functional._sample_items import item_samples, take_rows

__all__ = ["road", "ROAD_PERCENTAGES", "QUANTUS_ROAD_PERCENTAGES"]

#: The paper's grid: 10 %, 20 %, ..., 90 % of the pixels removed.
ROAD_PERCENTAGES: tuple[int, ...] = tuple(range(10, 100, 10))
#: Quantus' default grid (``range(1, 100, 2)``): 50 steps.
QUANTUS_ROAD_PERCENTAGES: tuple[int, ...] = tuple(range(1, 100, 2))

Measure = Literal["accuracy", "probability", "logit"]

#: Most bytes of images imputed at once (see ``max_batch_size`` in :func:`road`).
_GROUP_BYTES = 4 * 2**20


def _removal_counts(percentages: Sequence[float], n_pixels: int) -> list[int]:
    if (isinstance(percentages, (str, bytes)) or not isinstance(percentages, Sequence)
        or len(percentages) == 0):
        raise DTypeError(
            "Expected `percentages` as a non-empty sequence of numbers in [0, 100], but got "
            f"{percentages!r}."
        )
    counts = []
    for p in percentages:
        check_fraction(p, "percentages", low=0.0, high=100.0)
        counts.append(int(n_pixels * p / 100))  # floor, as Quantus and the authors' code
    return counts


@models_in_eval_mode("forward_fn")
def road(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None = None,
    *,
    percentages: Sequence[float] = ROAD_PERCENTAGES,
    order: Literal["morf", "lerf", "random"] = "morf",
    noise: float = 0.01,
    measure: Measure = "accuracy",
    reduce_channels: ChannelReduction = "sum",
    max_batch_size: int = 64,
    generator: torch.Generator | None = None,
    tol: float | None = None,
    validate: bool = True,
) -> CurveResult:
    r"""ROAD (Rong et al. 2022): remove pixels in attribution order, impute them without leaking the
    mask.

    Pixels (all channels of a position together) are ranked by the attribution
    reduced over channels. For each percentage :math:`p_t`, the
    :math:`k_t = \lfloor N p_t / 100 \rfloor` most relevant (MoRF) or least
    relevant (LeRF) of the ``N`` pixels are removed and replaced by the
    *noisy linear imputation*: every removed pixel equals the weighted mean of
    its in-image neighbours (weight 1/6 for the four direct, 1/12 for the four
    diagonal neighbours; on volumes the 26-neighbourhood with 1/14, 1/28 and
    1/56 for face, edge and corner neighbours; removed neighbours are unknowns too), solved as one
    sparse linear system per image and percentage, plus Gaussian noise of
    standard deviation ``noise`` on the removed pixels (see
    :mod:`xaiscore._engine.imputation`). The curve tracks the model on the imputed
    images,

    .. math:: c_t = m\big(f(\tilde x^{(t)}), y\big), \qquad
              \mathrm{ROAD} = \frac{1}{T} \sum_{t=1}^{T} c_t,

    where ``m`` is correctness :math:`[\arg\max f = y]` (``"accuracy"``, the
    paper's measure; averaging over samples gives its accuracy curve), the
    target probability or the target logit. With MoRF a faithful attribution
    makes the curve drop fast (lower is better); with LeRF it stays high
    (higher is better). All ``B * T`` imputations are solved in batches on the
    input's device (multigrid-preconditioned conjugate gradients), chunk by
    chunk with the model calls.

    Args:
        forward_fn: Model returning logits ``(n, K)``.
        x: Inputs ``(B, C, *S)`` with 1 (signals), 2 (images) or 3 (volumes) spatial axes.
        a: Attributions ``(B, 1|C, *S)``.
        target: ``(B,)`` classes (the paper: the true labels); ``None`` tracks
            the model's prediction on ``x``.
        percentages: Percentages of pixels removed, each in [0, 100]. Default
            the paper's 10, 20, ..., 90; Quantus uses
            :data:`QUANTUS_ROAD_PERCENTAGES` (1, 3, ..., 99).
        order: ``"morf"`` (most relevant first), ``"lerf"`` (least relevant
            first; the removed pixels are the *least* relevant ``k_t``) or
            ``"random"`` (a reference ordering drawn from ``generator``).
        noise: Standard deviation of the noise added to imputed values (the
            paper and Quantus: 0.01); 0 for a deterministic imputation.
        measure: ``"accuracy"`` (the paper), ``"probability"`` or ``"logit"``.
        reduce_channels: How ``a``'s channels combine per pixel (ROAD removes
            whole pixels, so a reduction is required).
        max_batch_size: Most images passed through the model at once (an int, ``"auto"``
            or a byte budget). The images of a chunk are imputed in groups of at most
            4 MiB; the solver holds about 25 image-sized buffers per image of a group
            (about 100 MB), so the working set is the chunk's images, the model's
            activations and that much.
        generator: Randomness of the noise (and of ``order="random"``).
        tol: Relative residual tolerance of the imputation solver
            (default 1e-5 in float32, 1e-10 in float64).
        validate: Check values (finite ``x``/``a``, target range, NaN outputs).

    Returns:
        ``CurveResult(score (B,), curve (B, T), x (T,))`` with ``x`` the
        fraction of pixels removed (``percentages / 100``) and ``score`` the
        curve's mean.

    Raises:
        ShapeError: inputs with more than 3 spatial axes (the imputation is defined on
            1-D, 2-D and 3-D grids).

    Shape:
        - x: ``(B, C, *S)`` with ``S`` of 1, 2 or 3 axes; a: ``(B, 1|C, *S)``; target: ``(B,)``
        - output: ``score (B,)``, ``curve (B, T)``, ``x (T,)``

    Example:
        >>> class Total(torch.nn.Module):  # logits (sum of x, 0)
        ...     def forward(self, x):
        ...         return torch.stack([x.sum((1, 2)), torch.zeros(len(x))], dim=1)
        >>> x = torch.arange(8.0).reshape(1, 1, 8)  # a ramp; the attribution ranks the right end first
        >>> result = road(Total(), x, x, torch.tensor([0]), percentages=[25, 50], noise=0.0, measure="logit")
        >>> [round(v, 4) for v in result.curve[0].tolist()], result.x.tolist()  # removed tails flatten out
        ([25.0, 18.0], [0.25, 0.5])
    """  # noqa: E501
    check_option(order, "order", ("morf", "lerf", "random"))
    check_option(measure, "measure", ("accuracy", "probability", "logit"))
    check_option(reduce_channels, "reduce_channels", CHANNEL_REDUCTIONS)
    noise = check_fraction(noise, "noise", high=float("inf"), high_inclusive=False)
    if tol is not None:
        tol = check_fraction(tol, "tol", high=float("inf"), low_inclusive=False,
                             high_inclusive=False)
    # ROAD needs no score on the unperturbed x: with a given target the model runs only on imputed
    # images.
    inputs = prepare_model_inputs(forward_fn, x, a, target, softmax=measure == "probability",
                                  max_batch_size=max_batch_size, validate=validate,
                                  unperturbed_scores=False)
    x, target = inputs.x, inputs.target
    if x.ndim not in (3, 4, 5):
        raise ShapeError(
            "Expected `x` with 1, 2 or 3 spatial axes for ROAD's imputation, but got shape "
            f"{tuple(x.shape)}."
        )
    b, c = x.shape[:2]
    part = partition(x.shape, reduce_channels=reduce_channels, device=x.device)
    scores = feature_attributions(inputs.a, part, reduce_channels=reduce_channels)
    # (B, 1, *S)
    rank = element_ranks(rank_features(scores, order=order, generator=generator), part)
    counts_list = _removal_counts(percentages, part.n_features)
    n_steps = len(counts_list)
    counts = torch.tensor(counts_list, dtype=rank.dtype, device=x.device)
    keys = random_keys(b * n_steps, generator).to(x.device) if noise > 0 else None
    view = (-1,) + (1,) * (x.ndim - 1)

    # Imputed in groups of at most _GROUP_BYTES of images: the solver holds about 25 image-sized
    # buffers per image, so the working set stays near 25 x _GROUP_BYTES whatever max_batch_size is
    # (the model still sees whole chunks). Each image's system is solved on its own: the groups
    # change nothing.
    group = max(1, _GROUP_BYTES // max(1, x[0].nbytes))
    buffers = ChunkBuffers()
    checked: list[bool] = []

    def compute(start: int, stop: int) -> Tensor:
        sample, step = item_samples(start, stop, n_steps, x.device)
        images = buffers.get("images", (stop - start,) + tuple(x.shape[1:]), x.dtype, x.device)
        for first in range(0, stop - start, group):
            last = min(first + group, stop - start)
            rows, steps = sample[first:last], step[first:last]
            removed = take_rows(rank, rows) < counts.index_select(0, steps).reshape(view)
            part = images[first:last]
            part.copy_(linear_imputation(take_rows(x, rows), removed, tol=tol))
            if keys is not None:
                draws = counter_normal(keys[start + first:start + last], c * part[0, 0].numel(),
                                       dtype=part.dtype)
                part.addcmul_(draws.reshape(part.shape), removed, value=noise)
        logits = call_model(forward_fn, images)
        # the target range, once, against the model's number of classes
        if validate and not checked:
            check_target(target, b, num_classes=logits.shape[1], device=x.device, validate=True)
            checked.append(True)
        labels = target.index_select(0, sample)
        if measure == "accuracy":
            value = (logits.argmax(dim=1) == labels).to(x.dtype)
            # Keep NaN visible to the finiteness check: a NaN logit makes the item NaN.
            return torch.where(torch.isnan(logits).any(dim=1), torch.full_like(value, float("nan")),
                               value)
        return class_scores(logits, labels, softmax=measure == "probability")

    curve = chunked_map(b * n_steps, compute, max_batch_size=max_batch_size).reshape(b, n_steps)
    curve = finish_scores(curve, x, validate=validate)
    positions = torch.tensor([float(p) / 100.0 for p in percentages], dtype=x.dtype,
                             device=x.device)
    return CurveResult(curve.mean(dim=1), curve, positions)
