"""Box-level localization: heatmaps turned into boxes and scored against ground-truth boxes.

The protocols that medical and weakly-supervised localization papers report, on 1-D to 3-D
maps, batched: Wang et al. 2017 (ChestX-ray8/14) box accuracy and average false positives,
and Choe et al. 2020 (wsolevaluation) MaxBoxAcc (v1, v2) and PxAP.

Every kernel takes attributions ``a`` ``(B, C, *S)`` (channels reduced with ``reduce_channels``,
``"sum"`` by default) and the ground truth either as ``boxes`` (a ``(B, G, 2 d)`` tensor whose
NaN rows are padding, or a list of ``(G_i, 2 d)`` tensors) or as a ``mask`` ``(B, 1|C, *S)``
whose connected components' bounding boxes are taken as the ground-truth boxes. Boxes are
end-exclusive in pixel units, ``x`` along the last axis: ``(x0, y0, x1, y1)`` in 2-D,
``(x0, y0, z0, x1, y1, z1)`` in 3-D (``z`` the first spatial axis), as ``boxes_to_mask`` reads
them.

All three protocols are set-level: each kernel computes the set score over the batch it is
given (and a per-sample score for tables); :mod:`xaiscore.functional.box_statistics` holds
their summable counts for datasets scored in batches. ``*_statistics`` return per-sample
sufficient statistics. See
``docs/box_localization.md`` for definitions, sources and the differences from the authors' code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from xaiscore._checks import OptionError, ShapeError, check_option
from xaiscore._engine.components import CONNECTIVITIES, Connectivity, alive_counts, component_sweep
from xaiscore._engine.thresholds import (
    level_histogram,
    min_max_normalize,
    threshold_levels,
    threshold_values,
)
from xaiscore._engine.reduction import ChannelReduction
from xaiscore.functional._boxes import (
    BoxAccuracyResult,
    MaxBoxAccuracyResult,
    MaxBoxAccuracyStatistics,
    Overlap,
    PxAPResult,
    PxAPStatistics,
    box_accuracy_figures,
    box_overlaps,
    ground_truth_boxes,
    precision_recall,
    mask_boxes,
    prepare_map,
    prepare_mask,
    threshold_grid,
)
from xaiscore.functional._common import nan_where

__all__ = [
    "BoxAccuracyResult",
    "MaxBoxAccuracyResult",
    "MaxBoxAccuracyStatistics",
    "PxAPResult",
    "PxAPStatistics",
    "box_accuracy",
    "mask_to_boxes",
    "max_box_accuracy",
    "max_box_accuracy_from_statistics",
    "max_box_accuracy_statistics",
    "pxap",
    "pxap_from_counts",
    "pxap_statistics",
]

BoxThresholdMode = Literal["min_max_255", "absolute", "max_fraction", "quantile", "otsu"]


def _truth(a_map: Tensor, a: Tensor, mask: Tensor | None, boxes: Tensor | Sequence[Tensor] | None,
           connectivity: str, validate: bool) -> tuple[Tensor, Tensor]:
    if (mask is None) == (boxes is None):
        raise OptionError("Expected exactly one of `mask` and `boxes` as the ground truth, but got "
                          + ("neither." if mask is None else "both."))
    if boxes is not None:
        return ground_truth_boxes(boxes, a_map)
    return mask_boxes(prepare_mask(mask, a, "mask", validate), connectivity)


def _version_chunks(count: int, width: int, budget: int = 1 << 22) -> list[slice]:
    """Slices of ``count`` versions such that ``slice length * width`` stays within ``budget``
    elements."""
    step = max(1, budget // max(1, width))
    return ([slice(start, min(start + step, count)) for start in range(0, count, step)]
            or [slice(0, 0)])


def mask_to_boxes(mask: Tensor, *, connectivity: Connectivity = "full") -> Tensor:
    """The bounding boxes of each sample's connected mask regions, NaN-padded: ``(B, G, 2 d)``.

    Args:
        mask: ``(B, 1|C, *S)`` bool or 0/1 (channels united), 1 to 3 spatial dims.
        connectivity: ``"full"`` (8 in 2-D, 26 in 3-D), ``"face"`` (4 / 6) or ``"edge"``
            (18 in 3-D).

    Returns:
        float64 boxes in raster order of each region's first pixel; ``G`` is the largest region
        count in the batch (read once from the device), at least 1.

    Shape:
        - mask: ``(B, 1|C, *S)``; output: ``(B, G, 2 d)``

    Example:
        >>> m = torch.zeros(1, 1, 4, 6, dtype=torch.bool); m[0, 0, 1:3, 2:5] = True; m[0, 0, 3, 0] = True
        >>> mask_to_boxes(m).tolist()
        [[[2.0, 1.0, 5.0, 3.0], [0.0, 3.0, 1.0, 4.0]]]
    """  # noqa: E501
    mask = torch.as_tensor(mask) if not isinstance(mask, Tensor) else mask
    if mask.ndim < 3 or mask.ndim > 5:
        raise ShapeError(f"Expected `mask` of shape (B, 1|C, *S) with 1 to 3 spatial dims, but got "
                         f"{tuple(mask.shape)}.")
    boxes, valid = mask_boxes(mask.bool().any(dim=1), connectivity)
    return torch.where(valid.unsqueeze(-1), boxes, torch.full_like(boxes, float("nan")))


# --- Wang et al. 2017: box accuracy and average false positives -----------------------------------


def box_accuracy(
    a: Tensor,
    mask: Tensor | None = None,
    *,
    boxes: Tensor | Sequence[Tensor] | None = None,
    thresholds: float | Sequence[float] = (60.0, 180.0),
    threshold_mode: BoxThresholdMode = "min_max_255",
    overlap: Overlap = "iobb",
    overlap_thresholds: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9),
    connectivity: Connectivity = "full",
    reduce_channels: ChannelReduction = "sum",
    validate: bool = True,
) -> BoxAccuracyResult:
    r"""Box accuracy and false positives of thresholded heatmaps (Wang et al. 2017, ChestX-ray8).

    Each map is scaled to [0, 255] per sample (min-max; a constant map becomes 0) and binarised
    at each threshold (``value >= t``; the paper uses 60 and 180); every connected region of a
    binary map gives one detected box. With ``overlap="iobb"`` (the paper's IoBB)

    .. math:: \mathrm{IoBB}(D, G) = \frac{|D \cap G|}{|D|}

    and a ground-truth box ``G`` is *hit* at ``T`` when some detection ``D`` of the same
    binary map has ``IoBB(D, G) > T`` (``overlap="iou"``: ``|D ∩ G| / |D ∪ G| > T``).
    Several ground-truth boxes and detections are matched many-to-many: every ground-truth box
    counts once as hit or missed, and a detection is a false positive when it hits no
    ground-truth box. No one-to-one assignment: under IoBB a lesion found as several fragments
    is found, not found once plus false positives; a box covering two lesions hits each one
    it overlaps enough. The statistics are reported per binarisation threshold.

    Args:
        a: Attributions ``(B, C, *S)``.
        mask: Ground truth as a mask ``(B, 1|C, *S)``; its connected regions' boxes are the
            ground-truth boxes. Give ``mask`` or ``boxes``.
        boxes: Ground-truth boxes ``(B, G, 2 d)`` (NaN rows are padding) or a list of
            ``(G_i, 2 d)`` tensors, end-exclusive pixel units.
        thresholds: Binarisation thresholds, increasing, in ``threshold_mode`` units.
        threshold_mode: ``"min_max_255"`` (the paper), or ``"absolute"``, ``"max_fraction"``
            (fraction of the sample's maximum), ``"quantile"`` (the sample's quantile) on the
            raw map, or ``"otsu"`` (Otsu's threshold per sample, ``value > t``; ``thresholds``
            is ignored).
        overlap: ``"iobb"`` or ``"iou"``.
        overlap_thresholds: The ``T`` values (the paper's table: 0.1, 0.25, 0.5, 0.75, 0.9).
        connectivity: ``"full"`` (8 / 26-connected regions), ``"face"`` (4 / 6) or ``"edge"``
            (18 in 3-D).
        reduce_channels: ``"sum"``, ``"mean"`` or ``"max_abs"``.
        validate: Check values (finite ``a``, binary ``mask``).

    Returns:
        :class:`BoxAccuracyResult`: per sample (``score``, ``accuracy``, counts) and, over the
        batch as the set, the paper's figures: ``set_accuracy`` (ground-truth boxes pooled),
        ``average_false_positives`` (per image) and ``value`` (``set_accuracy`` averaged over
        the ``(H, K)`` cells). **Set-level**: the pooled figures depend on the batch; to score a
        dataset in batches, sum :data:`~xaiscore.functional.box_statistics.BOX_ACCURACY`'s
        counts or use ``xaiscore.metrics.BoxAccuracy``. ``score`` is the sample's own.

    Shape:
        - a: ``(B, C, *S)``; mask: ``(B, 1|C, *S)``; boxes: ``(B, G, 2 d)``
        - score: ``(B,)``; accuracy, hits, false_positives: ``(B, H, K)``
        - value: ``()``; set_accuracy, average_false_positives: ``(H, K)``

    Example:
        >>> a = torch.zeros(1, 1, 8, 8); a[0, 0, 2:4, 2:4] = 1.0; a[0, 0, 6, 6] = 0.5
        >>> gt = torch.tensor([[[1.0, 1.0, 5.0, 5.0]]])
        >>> r = box_accuracy(a, boxes=gt, thresholds=(60.0,), overlap_thresholds=(0.5,))
        >>> r.hits.tolist(), r.false_positives.tolist(), r.detections.tolist()
        ([[[1]]], [[[1]]], [[2]])
    """
    check_option(threshold_mode, "threshold_mode",
                 ("min_max_255", "absolute", "max_fraction", "quantile", "otsu"))
    check_option(overlap, "overlap", ("iou", "iobb"))
    check_option(connectivity, "connectivity", CONNECTIVITIES)
    a_map = prepare_map(a, reduce_channels, validate)
    truth, valid = _truth(a_map, a, mask, boxes, connectivity, validate)
    batch = a_map.shape[0]
    flat = a_map.reshape(batch, -1)
    strict = threshold_mode == "otsu"
    if threshold_mode == "otsu":
        # reported as 0: per-sample values
        grid = torch.zeros(1, dtype=torch.float64, device=a_map.device)
        per_sample = threshold_values(flat, None, "otsu")
    else:
        values = [thresholds] if isinstance(thresholds, (int, float)) else thresholds
        grid = threshold_grid(values, include_end=False, device=a_map.device)
        if threshold_mode == "min_max_255":
            flat = min_max_normalize(flat, scale=255.0)
            per_sample = grid
        else:
            if threshold_mode == "quantile" and not bool(((grid >= 0) & (grid <= 1)).all()):
                raise OptionError(
                    f"Expected quantile thresholds in [0, 1], but got {grid.tolist()}.")
            per_sample = threshold_values(flat, grid, threshold_mode)  # type: ignore[arg-type]
    levels = threshold_levels(flat.reshape(a_map.shape), per_sample, strict=strict)
    n_thr = grid.numel()
    sweep = component_sweep(levels, n_thr, connectivity=connectivity)
    t_overlap = threshold_grid(list(overlap_thresholds), include_end=False, device=a_map.device,
                               name="overlap_thresholds")
    index = torch.arange(n_thr, device=a_map.device)
    alive = (sweep.stop.unsqueeze(1) < index) & (index <= sweep.start.unsqueeze(1))  # (V, H)
    n_gt, n_k = truth.shape[1], t_overlap.numel()
    hit_any = torch.zeros(batch, n_thr, n_gt, n_k, dtype=torch.long, device=a_map.device)
    false_pos = torch.zeros(batch, n_thr, n_k, dtype=torch.long, device=a_map.device)
    for part in _version_chunks(sweep.sample.numel(), n_gt * n_thr * n_k):  # bounded memory
        sample = sweep.sample[part]
        ratio = box_overlaps(sweep.boxes[part], sample, truth, valid, overlap)  # (V, G)
        matched = ratio.unsqueeze(-1) > t_overlap  # (V, G, K)
        hit_any.index_add_(0, sample, (alive[part, :, None, None] & matched.unsqueeze(1)).long())
        false_pos.index_add_(0, sample, (alive[part].unsqueeze(-1)
                                         & ~matched.any(1).unsqueeze(1)).long())
    hits = ((hit_any > 0) & valid[:, None, :, None]).sum(2)
    detections = torch.zeros(batch, n_thr, dtype=torch.long, device=a_map.device)
    detections.index_add_(0, sweep.sample, alive.long())
    num_boxes = valid.sum(1)
    dtype = a_map.dtype
    accuracy = hits.to(dtype) / num_boxes.clamp(min=1).to(dtype)[:, None, None]
    accuracy = nan_where((num_boxes == 0)[:, None, None].expand_as(accuracy), accuracy)
    score = accuracy.mean(dim=(1, 2))
    value, set_accuracy, afp = box_accuracy_figures(hits.sum(0), false_pos.sum(0), num_boxes.sum(),
                                                    torch.tensor(batch, device=a_map.device))
    return BoxAccuracyResult(score=score, accuracy=accuracy, hits=hits, false_positives=false_pos,
                             detections=detections, num_boxes=num_boxes, thresholds=grid.to(dtype),
                             overlap_thresholds=t_overlap.to(dtype), value=value.to(dtype),
                             set_accuracy=set_accuracy.to(dtype),
                             average_false_positives=afp.to(dtype))


# --- Choe et al. 2020: MaxBoxAcc (v1, v2) ---------------------------------------------------------


def _iou_thresholds(iou_thresholds: Sequence[float] | None, version: int,
                    device: torch.device) -> Tensor:
    if iou_thresholds is None:
        iou_thresholds = (0.5,) if version == 1 else (0.3, 0.5, 0.7)
    return threshold_grid(list(iou_thresholds), include_end=False, device=device,
                          name="iou_thresholds")


def max_box_accuracy_statistics(
    a: Tensor,
    mask: Tensor | None = None,
    *,
    boxes: Tensor | Sequence[Tensor] | None = None,
    thresholds: int | Sequence[float] | Tensor = 1000,
    version: Literal[1, 2] = 1,
    iou_thresholds: Sequence[float] | None = None,
    connectivity: Connectivity = "full",
    reduce_channels: ChannelReduction = "sum",
    validate: bool = True,
) -> MaxBoxAccuracyStatistics:
    r"""Box correctness of every sample at every map threshold (Choe et al. 2020), summable over
    batches.

    Each map is normalised to [0, 1] per sample (min-max; a constant map becomes 0). At each
    threshold ``tau``, the map selects ``{value >= tau}``; the box of its largest connected
    component (``version=1``; ties: the component that comes first in raster order) or the
    boxes of all its components (``version=2``) are compared with the ground-truth boxes, and
    the sample is correct at ``(delta, tau)`` when a box has ``IoU >= delta`` with some
    ground-truth box. No component, no box: incorrect.

    All ``T`` thresholds are answered by one sweep over the component tree of the map
    (:mod:`xaiscore._engine.components`), not ``T`` labellings.

    Args:
        a: Attributions ``(B, C, *S)``, 1 to 3 spatial dims.
        mask: Ground truth as a mask (its connected regions' boxes); or give ``boxes``.
        boxes: Ground-truth boxes ``(B, G, 2 d)`` (NaN rows are padding) or a list.
        thresholds: An int ``n`` for ``tau = i / n``, ``i = 0 .. n - 1`` (default 1000: 0, 0.001,
            ..., 0.999, as wsolevaluation), or increasing values.
        version: 1 (largest component, ``delta = 0.5``) or 2 (all components, ``delta`` in
            0.3, 0.5, 0.7).
        iou_thresholds: Override the ``delta`` values of the version.
        connectivity: ``"full"`` (8 / 26), ``"face"`` (4 / 6) or ``"edge"``
            (18 in 3-D, SE3D's code).
        reduce_channels: ``"sum"``, ``"mean"`` or ``"max_abs"``.
        validate: Check values (finite ``a``, binary ``mask``).

    Returns:
        :class:`MaxBoxAccuracyStatistics`.

    Shape:
        - a: ``(B, C, *S)``; boxes: ``(B, G, 2 d)``; correct: ``(B, D, T)``

    Example:
        >>> a = torch.zeros(1, 1, 6, 6); a[0, 0, 1:4, 1:4] = 1.0
        >>> stats = max_box_accuracy_statistics(a, boxes=torch.tensor([[[1.0, 1.0, 4.0, 4.0]]]),
        ...                                     thresholds=4)
        >>> stats.correct.tolist()  # tau = 0 selects the whole map; 0.25, 0.5, 0.75 the square
        [[[False, True, True, True]]]
    """
    check_option(version, "version", (1, 2))
    check_option(connectivity, "connectivity", CONNECTIVITIES)
    a_map = prepare_map(a, reduce_channels, validate)
    truth, valid = _truth(a_map, a, mask, boxes, connectivity, validate)
    device = a_map.device
    grid = threshold_grid(thresholds, include_end=False, device=device)
    deltas = _iou_thresholds(iou_thresholds, version, device)
    batch, n_thr = a_map.shape[0], grid.numel()
    levels = threshold_levels(min_max_normalize(a_map), grid)
    sweep = component_sweep(levels, n_thr, connectivity=connectivity)
    best_iou = torch.full((sweep.sample.numel(),), -1.0, dtype=torch.float64, device=device)
    if truth.shape[1] > 0:
        for part in _version_chunks(sweep.sample.numel(), truth.shape[1]):  # bounded memory
            # (V, G)
            ratio = box_overlaps(sweep.boxes[part], sweep.sample[part], truth, valid, "iou")
            best_iou[part] = ratio.amax(dim=1)
    flags = best_iou.unsqueeze(1) >= deltas  # (V, D)
    if version == 2:
        correct = alive_counts(sweep, flags, batch, n_thr) > 0
    else:
        largest = sweep.largest  # (B, T)
        picked = flags.index_select(0,
                                    largest.clamp(min=0).reshape(-1)) if flags.shape[0] > 0 else \
            torch.zeros(batch * n_thr, deltas.numel(), dtype=torch.bool, device=device)
        picked = picked.reshape(batch, n_thr, -1) & (largest >= 0).unsqueeze(-1)
        correct = picked.permute(0, 2, 1)
    correct = correct & valid.any(1)[:, None, None]
    return MaxBoxAccuracyStatistics(correct=correct.contiguous(), valid=valid.any(1),
                                    thresholds=grid.to(a_map.dtype),
                                    iou_thresholds=deltas.to(a_map.dtype))


def max_box_accuracy_from_statistics(correct: Tensor,
                                     valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The set score from per-sample (concatenated) or summed statistics.

    Args:
        correct: ``(B, D, T)`` per-sample bool or counts, or ``(D, T)`` counts already summed
            over the samples (with a 0-d ``valid``).
        valid: ``(B,)`` bool or counts, or the 0-d number of samples with ground-truth boxes.

    Returns:
        ``(value, accuracy, best)``: ``()`` mean over ``D`` of the maximum over ``T`` of
        ``accuracy``, ``(D, T)`` box accuracy ``sum correct / sum valid``, ``(D,)`` the index of
        the best map threshold (the first on ties). NaN when no sample is valid.
    """
    total = valid.sum().to(torch.float64)
    counts = correct if valid.ndim == 0 else correct.sum(0)
    accuracy = counts.to(torch.float64) / total.clamp(min=1)
    accuracy = nan_where(total == 0, accuracy)
    best_value, best = accuracy.max(dim=1)
    return best_value.mean(), accuracy, best


def max_box_accuracy(
    a: Tensor,
    mask: Tensor | None = None,
    *,
    boxes: Tensor | Sequence[Tensor] | None = None,
    thresholds: int | Sequence[float] | Tensor = 1000,
    version: Literal[1, 2] = 1,
    iou_thresholds: Sequence[float] | None = None,
    connectivity: Connectivity = "full",
    reduce_channels: ChannelReduction = "sum",
    validate: bool = True,
) -> MaxBoxAccuracyResult:
    r"""MaxBoxAcc (Choe et al. 2020, "Evaluating weakly supervised object localization methods
    right").

    .. math:: \mathrm{MaxBoxAcc} = \frac{1}{|\Delta|} \sum_{\delta \in \Delta} \max_\tau
              \frac{1}{N} \sum_n \mathbb{1}\big[\max_{b, g} \mathrm{IoU}(b(s_n, \tau), g) \ge \delta\big]

    over the samples of this batch, with ``b(s, tau)`` the box of the largest connected
    component of ``{s >= tau}`` (v1, ``Delta = {0.5}``) or every component's box (v2,
    ``Delta = {0.3, 0.5, 0.7}``); see :func:`max_box_accuracy_statistics` for the per-sample
    statistics and the arguments. The score is a *set* score: to score a dataset in batches,
    sum :data:`~xaiscore.functional.box_statistics.MAX_BOX_ACCURACY`'s counts or use
    ``xaiscore.metrics.MaxBoxAccuracy``.

    Returns:
        :class:`MaxBoxAccuracyResult` (``value``, per-sample ``score``, ``curve``, ...).

    Shape:
        - a: ``(B, C, *S)``; value: ``()``; score: ``(B,)``; curve: ``(B, T)``

    Example:
        >>> a = torch.zeros(2, 1, 6, 6); a[:, 0, 1:4, 1:4] = 1.0; a[1, 0, 5, 5] = 2.0
        >>> gt = torch.tensor([[[1.0, 1.0, 4.0, 4.0]], [[1.0, 1.0, 4.0, 4.0]]])
        >>> r = max_box_accuracy(a, boxes=gt, thresholds=4)
        >>> r.accuracy.tolist()  # at tau = 0.75 only the second map's peak pixel is left
        [[0.0, 1.0, 1.0, 0.5]]
        >>> r.value.item(), r.best_threshold.tolist(), r.score.tolist()
        (1.0, [0.25], [1.0, 1.0])
    """  # noqa: E501
    stats = max_box_accuracy_statistics(a, mask, boxes=boxes, thresholds=thresholds,
                                        version=version,
                                        iou_thresholds=iou_thresholds, connectivity=connectivity,
                                        reduce_channels=reduce_channels, validate=validate)
    value, accuracy, best = max_box_accuracy_from_statistics(stats.correct, stats.valid)
    dtype = stats.thresholds.dtype
    at_best = stats.correct.gather(2, best.view(1, -1, 1).expand(stats.correct.shape[0], -1,
                                                                 1)).squeeze(2)
    invalid = ~stats.valid
    score = nan_where(invalid, at_best.to(dtype).mean(1))
    curve = nan_where(invalid.unsqueeze(1).expand(-1, stats.correct.shape[2]),
                      stats.correct.to(dtype).mean(1))
    return MaxBoxAccuracyResult(value=value.to(dtype), score=score, curve=curve, x=stats.thresholds,
                                accuracy=accuracy.to(dtype),
                                best_threshold=stats.thresholds.index_select(0, best),
                                statistics=stats)


# --- Choe et al. 2020: PxAP -----------------------------------------------------------------------


def pxap_statistics(
    a: Tensor,
    mask: Tensor,
    *,
    ignore: Tensor | None = None,
    thresholds: int | Sequence[float] | Tensor = 1000,
    reduce_channels: ChannelReduction = "sum",
    validate: bool = True,
) -> PxAPStatistics:
    r"""Per-sample counts of mask and background pixels in each threshold bin (Choe et al. 2020).

    Each map is normalised to [0, 1] per sample (min-max; a constant map becomes 0); a pixel
    is selected at ``tau`` when ``value >= tau``. The binning is exact: a pixel is counted in
    the bin of the highest threshold it reaches (compared in float64), so the precision and
    recall at every threshold of the grid follow exactly from the counts.

    Args:
        a: Attributions ``(B, C, *S)``.
        mask: Ground truth ``(B, 1|C, *S)``.
        ignore: Pixels to leave out of both counts ``(B, 1|C, *S)`` (wsolevaluation's
            ignore regions), or ``None``.
        thresholds: An int ``n`` for ``tau = i / n``, ``i = 0 .. n`` (default 1000: 0, 0.001,
            ..., 1; the last point holds the pixels at the map's maximum, as in
            wsolevaluation's bins), or increasing values.
        reduce_channels: ``"sum"``, ``"mean"`` or ``"max_abs"``.
        validate: Check values.

    Returns:
        :class:`PxAPStatistics`.

    Shape:
        - a: ``(B, C, *S)``; mask, ignore: ``(B, 1|C, *S)``; positives, negatives: ``(B, T + 1)``

    Example:
        >>> a = torch.tensor([[[0.0, 0.2, 0.6, 1.0]]])
        >>> mask = torch.tensor([[[False, False, True, True]]])
        >>> s = pxap_statistics(a, mask, thresholds=2)  # tau = 0, 0.5, 1
        >>> s.positives.tolist(), s.negatives.tolist()
        ([[0, 0, 1, 1]], [[0, 2, 0, 0]])
    """
    a_map = prepare_map(a, reduce_channels, validate)
    truth = prepare_mask(mask, a, "mask", validate)
    keep = torch.ones_like(truth)
    if ignore is not None:
        keep = ~prepare_mask(ignore, a, "ignore", validate)
    grid = threshold_grid(thresholds, include_end=True, device=a_map.device)
    levels = threshold_levels(min_max_normalize(a_map), grid)
    n_thr = grid.numel()
    positives = level_histogram(levels, n_thr, truth & keep)
    negatives = level_histogram(levels, n_thr, ~truth & keep)
    return PxAPStatistics(positives=positives, negatives=negatives, thresholds=grid.to(a_map.dtype))


def pxap_from_counts(positives: Tensor, negatives: Tensor) -> Tensor:
    r"""PxAP from per-bin counts (:class:`PxAPStatistics`), over the last axis.

    .. math:: \mathrm{PxAP} = \sum_{j=0}^{T-1} P(\tau_j)\,\big(R(\tau_j) - R(\tau_{j+1})\big),
              \qquad R(\tau_T) = 0

    the step-wise area under the precision-recall curve walked from the highest threshold
    down (wsolevaluation's ``sum(precision[1:] * diff(recall))``, in [0, 1] rather than %),
    with precision 0 where nothing is selected.

    Args:
        positives: ``(..., T + 1)`` counts of ground-truth pixels per bin.
        negatives: ``(..., T + 1)`` counts of background pixels per bin.

    Returns:
        ``(...)`` float64; NaN where there is no ground-truth pixel.
    """
    precision, recall, total = precision_recall(positives, negatives)
    next_recall = torch.cat([recall[..., 1:], torch.zeros_like(recall[..., :1])], dim=-1)
    ap = (precision * (recall - next_recall)).sum(-1)
    return nan_where(total == 0, ap)


def pxap(
    a: Tensor,
    mask: Tensor,
    *,
    ignore: Tensor | None = None,
    thresholds: int | Sequence[float] | Tensor = 1000,
    reduce_channels: ChannelReduction = "sum",
    validate: bool = True,
) -> PxAPResult:
    r"""PxAP: area under the pixel precision-recall curve, pixels pooled over the batch
    (Choe et al. 2020).

    ``PxPrec(tau) = |{s >= tau} ∩ M| / |{s >= tau}|`` and ``PxRec(tau) = |{s >= tau} ∩ M| / |M|``
    over all pixels of all samples (maps min-max normalised per sample), integrated as in
    :func:`pxap_from_counts`. A set score: to score a dataset in batches, sum
    :data:`~xaiscore.functional.box_statistics.PXAP`'s counts or use ``xaiscore.metrics.PxAP``.
    ``score`` gives each sample's own PxAP for per-sample tables.

    Args:
        a, mask, ignore, thresholds, reduce_channels, validate: as :func:`pxap_statistics`.

    Returns:
        :class:`PxAPResult`.

    Shape:
        - a: ``(B, C, *S)``; mask: ``(B, 1|C, *S)``; value: ``()``; score: ``(B,)``

    Example:
        >>> a = torch.tensor([[[0.0, 0.2, 0.6, 1.0]]])
        >>> mask = torch.tensor([[[False, False, True, True]]])
        >>> pxap(a, mask, thresholds=2).value.item()  # the mask pixels rank first: AP = 1
        1.0
    """
    stats = pxap_statistics(a, mask, ignore=ignore, thresholds=thresholds,
                            reduce_channels=reduce_channels,
                            validate=validate)
    dtype = stats.thresholds.dtype
    pooled_pos, pooled_neg = stats.positives.sum(0), stats.negatives.sum(0)
    precision, recall, _ = precision_recall(pooled_pos, pooled_neg)
    value = pxap_from_counts(pooled_pos, pooled_neg)
    score = pxap_from_counts(stats.positives, stats.negatives)
    return PxAPResult(value=value.to(dtype), score=score.to(dtype), precision=precision.to(dtype),
                      recall=recall.to(dtype), thresholds=stats.thresholds, statistics=stats)
