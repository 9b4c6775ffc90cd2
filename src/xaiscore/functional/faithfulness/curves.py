"""Ranking-curve faithfulness metrics: remove (or insert) features in attribution order, track the
model.

Deletion and insertion (Petsiuk et al. 2018), pixel flipping (Bach et al. 2015),
region perturbation (Samek et al. 2017), selectivity (Montavon et al. 2018) and
IROF (Rieger and Hansen 2020). Each returns a
:class:`~xaiscore.functional._results.CurveResult`: the ``(B,)`` summary, the
``(B, T)`` curve (its first column is the unperturbed input) and the ``(T,)``
curve positions. All perturbed inputs of all samples form one logical batch that
goes through ``forward_fn`` in chunks of at most ``max_batch_size`` images, so
the result does not depend on ``max_batch_size``.

See ``docs/faithfulness.md`` for formulas, defaults and the differences from Quantus.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from xaiscore._checks import (check_fraction, check_option, check_positive_int, check_same_device,
                              check_tensor)
from xaiscore._engine.model_mode import models_in_eval_mode
from xaiscore._engine.perturbation import (
    constant_or_baseline,
    Order,
    Partition,
    element_ranks,
    feature_attributions,
    partition,
    perturbed_scores,
    rank_features,
    trapezoid,
)
from xaiscore._engine.reduction import CHANNEL_REDUCTIONS, ChannelReduction
from xaiscore.functional._common import nan_where
from xaiscore.functional.faithfulness._common import (
    finish_scores,
    prepare_model_inputs,
    resolve_step,
    step_edges,
)
from xaiscore.functional._results import CurveResult

__all__ = [
    "deletion",
    "insertion",
    "pixel_flipping",
    "region_perturbation",
    "selectivity",
    "irof",
]

Baseline = str | float | Callable[[Tensor], Tensor]

#: RISE perturbs 224 pixels per step on 224 x 224 images: 224 steps. The default keeps 224 steps.
RISE_STEPS = 224


def _ranked_elements(
    x: Tensor,
    a: Tensor,
    *,
    reduce_channels: ChannelReduction | None,
    order: Order,
    generator: torch.Generator | None,
    patch_size: int | None = None,
    segments: Tensor | None = None,
    aggregate: str = "sum",
) -> tuple[Partition, Tensor]:
    part = partition(x.shape, reduce_channels=reduce_channels, patch_size=patch_size,
                     segments=segments,
                     device=x.device)
    scores = feature_attributions(a, part, reduce_channels=reduce_channels, aggregate=aggregate)
    ranks = rank_features(scores, order=order, counts=part.counts if segments is not None else None,
                          generator=generator)
    return part, element_ranks(ranks, part)


def _deletion_curve(forward_fn, inputs, rank, edges, substrate, *, softmax, max_batch_size,
                    validate) -> Tensor:
    """``(B, T + 1)``: the unperturbed score, then the score with ranks ``[0, edges[t])`` replaced.
    """
    hi = edges[1:]
    scores = perturbed_scores(forward_fn, inputs.x, rank, inputs.target, None, hi,
                              substrate=substrate, softmax=softmax, max_batch_size=max_batch_size)
    scores = finish_scores(scores, inputs.x, validate=validate)
    return torch.cat([inputs.score.unsqueeze(1), scores], dim=1)


def _check_patch_reduction(reduce_channels: ChannelReduction | None) -> None:
    check_option(reduce_channels, "reduce_channels", CHANNEL_REDUCTIONS)


@models_in_eval_mode("forward_fn")
def deletion(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None = None,
    *,
    features_per_step: int | float | None = None,
    baseline: Baseline = "zeros",
    softmax: bool = True,
    reduce_channels: ChannelReduction | None = "sum",
    max_batch_size: int = 64,
    generator: torch.Generator | None = None,
    validate: bool = True,
) -> CurveResult:
    r"""Deletion (Petsiuk et al. 2018, RISE): delete pixels most-relevant first; area under the
    score curve.

    Pixels (all channels of a position together) are ranked by the attribution
    summed over channels. With ``N`` pixels and ``s`` pixels per step, step
    ``t = 0 .. T`` (``T = ceil(N / s)``) replaces the first ``k_t = min(t s, N)``
    pixels by the substrate (zeros), and the curve is the target-class
    probability :math:`p_t = \mathrm{softmax}(f(x^{(t)}))_c`. With positions
    :math:`u_t = k_t / N`,

    .. math:: \mathrm{Deletion} = \sum_{t=1}^{T} (u_t - u_{t-1}) \frac{p_{t-1} + p_t}{2}

    (trapezoid rule on [0, 1]; lower is better). When ``s`` does not divide
    ``N`` the last step is smaller and its position is exact (RISE spaces all
    steps evenly, which is the same whenever ``s`` divides ``N``).

    Args:
        forward_fn: Model returning logits ``(n, K)``.
        x: Inputs ``(B, C, *S)``.
        a: Attributions ``(B, 1|C, *S)``.
        target: ``(B,)`` classes; ``None`` (RISE) tracks the model's prediction on ``x``.
        features_per_step: Pixels per step (an int), or a fraction of the pixels
            (a float in (0, 1]); ``None`` means ``ceil(N / 224)``
            (RISE: 224 pixels per step on 224 x 224 images, i.e. 224 steps).
        baseline: Substrate (see :func:`xaiscore._engine.perturbation.make_baseline`); RISE:
            ``"zeros"``.
        softmax: Track probabilities (RISE) or logits.
        reduce_channels: How ``a``'s channels combine per pixel (``None``:
            every channel value is its own feature).
        max_batch_size: Most images per model call.
        generator: Randomness of a ``"uniform"`` baseline.
        validate: Check values (finite ``x``/``a``, target range, NaN outputs).

    Returns:
        ``CurveResult(score (B,), curve (B, T + 1), x (T + 1,))`` with ``x`` the
        fraction of pixels deleted.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``
        - output: ``score (B,)``, ``curve (B, T + 1)``, ``x (T + 1,)``

    Example:
        >>> linear = torch.nn.Linear(4, 2, bias=False)
        >>> _ = linear.weight.data.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), linear)
        >>> x, a = torch.ones(1, 1, 4), torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
        >>> result = deletion(model, x, a, torch.tensor([0]), features_per_step=1, softmax=False)
        >>> result.curve.tolist(), result.x.tolist(), result.score.tolist()
        ([[10.0, 6.0, 3.0, 1.0, 0.0]], [0.0, 0.25, 0.5, 0.75, 1.0], [3.75])
    """
    inputs = prepare_model_inputs(forward_fn, x, a, target, softmax=softmax,
                                  max_batch_size=max_batch_size,
                                  validate=validate)
    part, rank = _ranked_elements(inputs.x, inputs.a, reduce_channels=reduce_channels, order="morf",
                                  generator=generator)
    n = part.n_features
    step = (math.ceil(n / RISE_STEPS) if features_per_step is None
            else resolve_step(features_per_step, n))
    edges = step_edges(n, step, x.device)
    substrate = constant_or_baseline(inputs.x, baseline, generator=generator)
    curve = _deletion_curve(forward_fn, inputs, rank, edges, substrate, softmax=softmax,
                            max_batch_size=max_batch_size, validate=validate)
    positions = edges.to(inputs.x.dtype) / n
    return CurveResult(trapezoid(curve, positions), curve, positions)


@models_in_eval_mode("forward_fn")
def insertion(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None = None,
    *,
    features_per_step: int | float | None = None,
    baseline: Baseline = "blur",
    blur_kernel_size: int = 11,
    blur_sigma: float = 5.0,
    softmax: bool = True,
    reduce_channels: ChannelReduction | None = "sum",
    max_batch_size: int = 64,
    generator: torch.Generator | None = None,
    validate: bool = True,
) -> CurveResult:
    r"""Insertion (Petsiuk et al. 2018, RISE): insert pixels most-relevant first into a blurred
    copy.

    Step ``t = 0 .. T`` shows the original values of the first ``k_t`` ranked
    pixels on the substrate (by default RISE's Gaussian blur of ``x``, kernel
    11, sigma 5, zero-padded; see :func:`xaiscore._engine.perturbation.gaussian_blur`);
    step ``T`` is ``x`` itself. The score is the trapezoid area under the
    target probability over the inserted fraction ``k_t / N`` (higher is
    better). Ranking, steps and defaults as in :func:`deletion`.

    Args:
        baseline: Substrate; RISE: ``"blur"``.
        blur_kernel_size, blur_sigma: The blur of ``"blur"``.
        Others: as in :func:`deletion`.

    Returns:
        ``CurveResult(score (B,), curve (B, T + 1), x (T + 1,))`` with ``x`` the
        fraction of pixels inserted.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; output: ``score (B,)``, ``curve (B, T + 1)``

    Example:
        >>> linear = torch.nn.Linear(4, 2, bias=False)
        >>> _ = linear.weight.data.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), linear)
        >>> x, a = torch.ones(1, 1, 4), torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
        >>> insertion(model, x, a, torch.tensor([0]), features_per_step=1, softmax=False,
        ...           baseline="zeros").curve.tolist()
        [[0.0, 4.0, 7.0, 9.0, 10.0]]
    """
    check_positive_int(blur_kernel_size, "blur_kernel_size")
    check_fraction(blur_sigma, "blur_sigma", high=math.inf, low_inclusive=False,
                   high_inclusive=False)
    inputs = prepare_model_inputs(forward_fn, x, a, target, softmax=softmax,
                                  max_batch_size=max_batch_size,
                                  validate=validate)
    part, rank = _ranked_elements(inputs.x, inputs.a, reduce_channels=reduce_channels, order="morf",
                                  generator=generator)
    n = part.n_features
    step = (math.ceil(n / RISE_STEPS) if features_per_step is None
            else resolve_step(features_per_step, n))
    edges = step_edges(n, step, x.device)
    substrate = constant_or_baseline(inputs.x, baseline, generator=generator,
                                     blur_kernel_size=blur_kernel_size,
                                     blur_sigma=blur_sigma)
    lo = edges[:-1]  # the last step (everything inserted) is x itself: its score is known
    scores = perturbed_scores(forward_fn, inputs.x, rank, inputs.target, lo, None,
                              substrate=substrate, softmax=softmax, max_batch_size=max_batch_size)
    scores = finish_scores(scores, inputs.x, validate=validate)
    curve = torch.cat([scores, inputs.score.unsqueeze(1)], dim=1)
    positions = edges.to(inputs.x.dtype) / n
    return CurveResult(trapezoid(curve, positions), curve, positions)


@models_in_eval_mode("forward_fn")
def pixel_flipping(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None = None,
    *,
    features_per_step: int | float = 1,
    order: Order = "morf",
    baseline: Baseline = "zeros",
    softmax: bool = False,
    reduce_channels: ChannelReduction | None = "sum",
    max_batch_size: int = 64,
    generator: torch.Generator | None = None,
    validate: bool = True,
) -> CurveResult:
    r"""Pixel flipping (Bach et al. 2015): flip features in attribution order and track the class
    score.

    Features (pixels with all their channels; every channel value with
    ``reduce_channels=None``, as Quantus does) are ranked once (``order``:
    MoRF by default); step ``t = 0 .. T`` replaces the first
    ``k_t = min(t s, N)`` of them by the baseline and records the target score
    :math:`f_c(x^{(t)})` (logit by default: Bach et al. track the classifier
    output that LRP decomposes). The summary is the trapezoid area under the
    curve over the flipped fraction :math:`k_t / N` in [0, 1]; for MoRF a
    faithful map makes the score fall fast, so lower is better.

    Quantus' ``PixelFlipping`` returns the curve without the unperturbed start
    (our ``curve[:, 1:]``) and, on request, ``np.trapz`` with unit spacing over
    it; it requires ``s`` to divide the number of positions, we allow a
    smaller last step.

    Args:
        features_per_step: Features flipped per step (Quantus ``features_in_step``),
            or a float fraction of the features.
        order: ``"morf"``, ``"lerf"`` or ``"random"`` (then ``generator`` is used).
        baseline: Replacement values (see :func:`xaiscore._engine.perturbation.make_baseline`);
            Quantus' default ``"black"`` is our ``"min"``.
        softmax: Track probabilities instead of logits.
        Others: as in :func:`deletion`.

    Returns:
        ``CurveResult(score (B,), curve (B, T + 1), x (T + 1,))``, ``x`` the flipped fraction.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; output: ``score (B,)``, ``curve (B, T + 1)``

    Example:
        >>> linear = torch.nn.Linear(4, 2, bias=False)
        >>> _ = linear.weight.data.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), linear)
        >>> x, a = torch.ones(1, 1, 4), torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
        >>> pixel_flipping(model, x, a, torch.tensor([0]), features_per_step=2).curve.tolist()
        [[10.0, 3.0, 0.0]]
    """
    inputs = prepare_model_inputs(forward_fn, x, a, target, softmax=softmax,
                                  max_batch_size=max_batch_size,
                                  validate=validate)
    part, rank = _ranked_elements(inputs.x, inputs.a, reduce_channels=reduce_channels, order=order,
                                  generator=generator)
    n = part.n_features
    edges = step_edges(n, resolve_step(features_per_step, n), x.device)
    substrate = constant_or_baseline(inputs.x, baseline, generator=generator)
    curve = _deletion_curve(forward_fn, inputs, rank, edges, substrate, softmax=softmax,
                            max_batch_size=max_batch_size, validate=validate)
    positions = edges.to(inputs.x.dtype) / n
    return CurveResult(trapezoid(curve, positions), curve, positions)


@models_in_eval_mode("forward_fn")
def region_perturbation(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None = None,
    *,
    patch_size: int = 8,
    steps: int = 100,
    order: Order = "morf",
    baseline: Baseline = "uniform",
    softmax: bool = False,
    reduce_channels: ChannelReduction = "sum",
    max_batch_size: int = 64,
    generator: torch.Generator | None = None,
    validate: bool = True,
) -> CurveResult:
    r"""Region perturbation (Samek et al. 2017): perturb patches in attribution order; AOPC.

    The input is tiled into non-overlapping ``patch_size``-sided patches (all
    channels; the grid is centred by padding as in Quantus, so border patches
    may be smaller). Patches are ranked by their summed attribution
    (``order``: MoRF by default) and the first ``L = min(steps, #patches)`` are
    perturbed cumulatively. The curve is the drop of the target score,
    :math:`d_t = f_c(x) - f_c(x^{(t)})` for ``t = 0 .. L`` (``d_0 = 0``), and
    the summary is the area over the perturbation curve

    .. math:: \mathrm{AOPC} = \frac{1}{L + 1} \sum_{t=0}^{L} \bigl(f_c(x) - f_c(x^{(t)})\bigr)

    (for MoRF higher is better). Samek et al. replace each region by uniform
    noise (our default ``"uniform"``: i.i.d. on ``[min x, max x]`` of the sample,
    drawn once from ``generator``) and track the classifier score (logits by
    default). Their regions are 9 x 9 windows around the most relevant
    locations; like Quantus we use a fixed grid of patches.

    Quantus' ``RegionPerturbation`` returns ``d_1 .. d_L`` (our ``curve[:, 1:]``)
    and its default baseline ``"black"`` is our ``"min"``.

    Args:
        patch_size: Side of the patches.
        steps: Most patches perturbed (Quantus ``regions_evaluation``).
        order: ``"morf"``, ``"lerf"`` or ``"random"``.
        reduce_channels: How ``a``'s channels combine before summing over a patch.
        Others: as in :func:`pixel_flipping`.

    Returns:
        ``CurveResult(score (B,), curve (B, L + 1), x (L + 1,))``, ``x`` the number of patches
        perturbed.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; output: ``score (B,)``, ``curve (B, L + 1)``

    Example:
        >>> linear = torch.nn.Linear(4, 2, bias=False)
        >>> _ = linear.weight.data.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), linear)
        >>> x, a = torch.ones(1, 1, 4), torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
        >>> result = region_perturbation(model, x, a, torch.tensor([0]), patch_size=2, baseline="zeros")
        >>> result.curve.tolist(), result.score.tolist()
        ([[0.0, 7.0, 10.0]], [5.666666507720947])
    """  # noqa: E501
    _check_patch_reduction(reduce_channels)
    check_positive_int(steps, "steps")
    inputs = prepare_model_inputs(forward_fn, x, a, target, softmax=softmax,
                                  max_batch_size=max_batch_size,
                                  validate=validate)
    part, rank = _ranked_elements(inputs.x, inputs.a, reduce_channels=reduce_channels, order=order,
                                  generator=generator, patch_size=patch_size)
    n_regions = min(steps, part.n_features)
    edges = torch.arange(n_regions + 1, device=x.device)
    substrate = constant_or_baseline(inputs.x, baseline, generator=generator)
    scores = _deletion_curve(forward_fn, inputs, rank, edges, substrate, softmax=softmax,
                             max_batch_size=max_batch_size, validate=validate)
    curve = inputs.score.unsqueeze(1) - scores
    return CurveResult(curve.mean(dim=1), curve, edges.to(inputs.x.dtype))


@models_in_eval_mode("forward_fn")
def selectivity(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None = None,
    *,
    patch_size: int = 8,
    baseline: Baseline = "zeros",
    softmax: bool = False,
    reduce_channels: ChannelReduction = "sum",
    max_batch_size: int = 64,
    generator: torch.Generator | None = None,
    validate: bool = True,
) -> CurveResult:
    r"""Selectivity (Montavon et al. 2018): remove patches most-relevant first; area under the score
    curve.

    Patches as in :func:`region_perturbation`, all ``P`` of them removed one
    by one (MoRF); the curve is the target score :math:`f_c(x^{(t)})`,
    ``t = 0 .. P`` (logits by default: Montavon et al. track the function value
    ``f(x)``), and the summary is its trapezoid area over the removed fraction
    ``t / P`` in [0, 1]. A selective map makes the score drop fast: lower is better.

    Quantus' ``Selectivity`` returns ``curve[:, 1:]`` (AUC with unit spacing
    on request) and its default baseline ``"black"`` is our ``"min"``.

    Returns:
        ``CurveResult(score (B,), curve (B, P + 1), x (P + 1,))``, ``x`` the removed fraction of
        patches.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; output: ``score (B,)``, ``curve (B, P + 1)``

    Example:
        >>> linear = torch.nn.Linear(4, 2, bias=False)
        >>> _ = linear.weight.data.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), linear)
        >>> x, a = torch.ones(1, 1, 4), torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
        >>> result = selectivity(model, x, a, torch.tensor([0]), patch_size=2)
        >>> result.curve.tolist(), result.score.tolist()
        ([[10.0, 3.0, 0.0]], [4.0])
    """
    _check_patch_reduction(reduce_channels)
    inputs = prepare_model_inputs(forward_fn, x, a, target, softmax=softmax,
                                  max_batch_size=max_batch_size,
                                  validate=validate)
    part, rank = _ranked_elements(inputs.x, inputs.a, reduce_channels=reduce_channels, order="morf",
                                  generator=generator, patch_size=patch_size)
    edges = torch.arange(part.n_features + 1, device=x.device)
    substrate = constant_or_baseline(inputs.x, baseline, generator=generator)
    curve = _deletion_curve(forward_fn, inputs, rank, edges, substrate, softmax=softmax,
                            max_batch_size=max_batch_size, validate=validate)
    positions = edges.to(inputs.x.dtype) / part.n_features
    return CurveResult(trapezoid(curve, positions), curve, positions)


def _grid_patch_size(spatial: tuple[int, ...], n_segments: int) -> int:
    return max(1, math.ceil((math.prod(spatial) / n_segments) ** (1.0 / len(spatial)) - 1e-9))


@models_in_eval_mode("forward_fn")
def irof(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None = None,
    *,
    segments: Tensor | None = None,
    n_segments: int = 100,
    baseline: Baseline = "mean",
    softmax: bool = True,
    reduce_channels: ChannelReduction = "sum",
    max_batch_size: int = 64,
    generator: torch.Generator | None = None,
    validate: bool = True,
) -> CurveResult:
    r"""Iterative removal of features, IROF (Rieger and Hansen 2020): area over the segment-removal
    curve.

    The input is split into segments (superpixels); segments are ranked by their
    mean attribution (over all their pixels and, after ``reduce_channels``,
    channels) and removed most relevant first, cumulatively, by the baseline
    (default ``"mean"``: the sample's mean value per channel). With ``L_b``
    segments in sample ``b``, the curve is the target score relative to the
    unperturbed one, :math:`q_t = f_c(x^{(t)}) / f_c(x)` for ``t = 0 .. L_b``
    (``q_0 = 1``), and

    .. math:: \mathrm{IROF} = 1 - \sum_{t=1}^{L_b} \frac{1}{L_b} \frac{q_{t-1} + q_t}{2}

    the area over the curve on [0, 1] (higher is better).

    Segments: pass a label map ``segments`` ``(B, *S)`` (any integers, e.g. from
    SLIC), or leave it ``None`` for the built-in segmentation: a regular grid
    of about ``n_segments`` square cells (side ``ceil((prod(S) / n_segments)^(1/d))``,
    centred as in :func:`region_perturbation`). Quantus segments with
    ``skimage`` SLIC; a grid is cheaper, deterministic and content-agnostic.

    Quantus' ``IROF`` returns ``L_b - np.trapz(q_1..q_L)`` (unit spacing,
    without the start point), and its ``"mean"`` baseline is the mean of the
    whole, partly perturbed batch, so a sample's score depends on its
    batch-mates; ours is per sample and fixed.

    Returns:
        ``CurveResult(score (B,), curve (B, T), x (T,))`` with ``T = max L_b + 1``,
        ``x`` the number of segments removed; a sample with fewer segments has NaN
        after its last step. NaN score and curve where ``f_c(x) = 0``.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; segments: ``(B, *S)``; output: ``score (B,)``

    Example:
        >>> linear = torch.nn.Linear(4, 2, bias=False)
        >>> _ = linear.weight.data.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), linear)
        >>> x, a = torch.ones(1, 1, 4), torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
        >>> segments = torch.tensor([[0, 0, 1, 1]])
        >>> result = irof(model, x, a, torch.tensor([0]), segments=segments, baseline="zeros", softmax=False)
        >>> result.curve.tolist(), result.score.tolist()
        ([[1.0, 0.30000001192092896, 0.0]], [0.6000000238418579])
    """  # noqa: E501
    _check_patch_reduction(reduce_channels)
    check_positive_int(n_segments, "n_segments")
    inputs = prepare_model_inputs(forward_fn, x, a, target, softmax=softmax,
                                  max_batch_size=max_batch_size,
                                  validate=validate)
    if segments is not None:
        segments = check_tensor(segments, "segments")
        check_same_device(inputs.x, segments, reference_name="x", other_name="segments")
    patch = None if segments is not None else _grid_patch_size(tuple(x.shape[2:]), n_segments)
    part, rank = _ranked_elements(inputs.x, inputs.a, reduce_channels=reduce_channels, order="morf",
                                  generator=generator, patch_size=patch, segments=segments,
                                  aggregate="mean")
    edges = torch.arange(part.n_features + 1, device=x.device)
    substrate = constant_or_baseline(inputs.x, baseline, generator=generator)
    raw = _deletion_curve(forward_fn, inputs, rank, edges, substrate, softmax=softmax,
                          max_batch_size=max_batch_size, validate=validate)
    start = inputs.score.unsqueeze(1)
    undefined = start == 0
    relative = raw / torch.where(undefined, torch.ones_like(start), start)
    counts = part.counts.to(x.device).expand(x.shape[0]).unsqueeze(1)  # (B, 1)
    steps = edges.unsqueeze(0)
    curve = nan_where(undefined | (steps > counts), relative)
    within = steps[:, 1:] <= counts
    pieces = 0.5 * (relative[:, 1:] + relative[:, :-1]) / counts.to(relative.dtype)
    area = torch.where(within, pieces, torch.zeros_like(pieces)).sum(dim=1)
    score = nan_where(undefined.squeeze(1), 1.0 - area)
    return CurveResult(score, curve, edges.to(inputs.x.dtype))

