"""Helpers of the box-level localization kernels: inputs, threshold grids, box overlaps.

Boxes are end-exclusive and in pixel units, ``(x0, [y0, [z0,]] x1, [y1, [z1]])`` with ``x``
the last spatial axis (see :mod:`xaiscore._engine.components`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from xaiscore._checks import (
    DeviceError,
    DTypeError,
    OptionError,
    ShapeError,
    check_attributions,
    check_mask,
    check_option,
    check_tensor,
)
from xaiscore._engine.components import CONNECTIVITIES, component_boxes, label_components
from xaiscore._engine.reduction import CHANNEL_REDUCTIONS, reduce_channels, reduce_mask_channels

__all__ = [
    "BoxAccuracyResult",
    "MaxBoxAccuracyResult",
    "MaxBoxAccuracyStatistics",
    "Overlap",
    "PxAPResult",
    "PxAPStatistics",
    "box_accuracy_figures",
    "box_overlaps",
    "ground_truth_boxes",
    "mask_boxes",
    "precision_recall",
    "prepare_map",
    "prepare_mask",
    "threshold_grid",
]

Overlap = Literal["iou", "iobb"]


def prepare_map(a: Tensor, reduce: str, validate: bool) -> Tensor:
    """Validate ``a`` ``(B, C, *S)`` and reduce it to one map per sample ``(B, *S)``
    (float32 or wider)."""
    a = check_attributions(a, validate=validate)
    check_option(reduce, "reduce_channels", CHANNEL_REDUCTIONS)
    reduced = reduce_channels(a, reduce).squeeze(1)
    if reduced.dtype in (torch.float16, torch.bfloat16):
        reduced = reduced.float()
    return reduced


def prepare_mask(mask: Tensor, a: Tensor, name: str, validate: bool) -> Tensor:
    """Validate a mask against ``a`` and unite its channels: ``(B, *S)`` bool."""
    mask = check_mask(mask, a, name=name, validate=validate)
    return reduce_mask_channels(mask).squeeze(1)


def threshold_grid(thresholds: int | Sequence[float] | Tensor, *, include_end: bool,
                   device: torch.device,
                   name: str = "thresholds") -> Tensor:
    """Thresholds as a strictly increasing float64 ``(T,)`` tensor.

    An int ``n`` gives ``i * (1 / n)`` for ``i = 0 .. n - 1`` (``numpy.arange(0, 1, 1 / n)``,
    the grid of wsolevaluation), and also ``i = n`` (the value 1) with ``include_end``.
    """
    if isinstance(thresholds, bool):
        raise DTypeError(f"Expected `{name}` as an int or a sequence of numbers, but got a bool.")
    if isinstance(thresholds, int):
        if thresholds < 1:
            raise OptionError(
                f"Expected `{name}` as a positive number of steps, but got {thresholds}.")
        count = thresholds + 1 if include_end else thresholds
        grid = torch.arange(count, dtype=torch.float64) * (1.0 / thresholds)
        return grid.to(device)
    if isinstance(thresholds, Tensor):
        grid = thresholds.detach().to(device=device, dtype=torch.float64).reshape(-1)
    elif isinstance(thresholds, Sequence) and not isinstance(thresholds, (str, bytes)):
        try:
            grid = torch.tensor([float(t) for t in thresholds], dtype=torch.float64, device=device)
        except (TypeError, ValueError):
            raise DTypeError(
                f"Expected `{name}` to hold numbers, but got {thresholds!r}.") from None
    elif isinstance(thresholds, float):
        grid = torch.tensor([thresholds], dtype=torch.float64, device=device)
    else:
        raise DTypeError(
            f"Expected `{name}` as an int or a sequence of numbers, but got "
            f"{type(thresholds).__name__}.")
    if grid.numel() == 0:
        raise OptionError(f"Expected at least one value in `{name}`, but got none.")
    if not bool(torch.isfinite(grid).all()) or (grid.numel() > 1
                                                and not bool((grid[1:] > grid[:-1]).all())):
        raise OptionError(
            f"Expected `{name}` finite and strictly increasing, but got {grid.tolist()}.")
    return grid


def _pad_box_list(boxes: Sequence[Tensor], width: int) -> Tensor:
    items = []
    for i, item in enumerate(boxes):
        item = check_tensor(item, f"boxes[{i}]")
        if item.ndim == 1 and item.shape[0] == width:
            item = item.unsqueeze(0)
        if item.ndim != 2 or item.shape[1] != width:
            raise ShapeError(
                f"Expected `boxes[{i}]` of shape (N, {width}), but got {tuple(item.shape)}.")
        items.append(item)
    device = items[0].device
    longest = max(1, max(item.shape[0] for item in items))
    out = torch.full((len(items), longest, width), math.nan, dtype=torch.float64, device=device)
    for i, item in enumerate(items):
        if item.device != device:
            raise DeviceError(
                f"Expected every `boxes[i]` on {device}, but `boxes[{i}]` is on {item.device}.")
        out[i, : item.shape[0]] = item.to(torch.float64)
    return out


def ground_truth_boxes(boxes: Tensor | Sequence[Tensor], a_map: Tensor) -> tuple[Tensor, Tensor]:
    """Ground-truth boxes ``(B, G, 2 d)`` float64 and their validity ``(B, G)``
    (NaN rows are padding).

    Raises:
        DTypeError / ShapeError / DeviceError: boxes of the wrong type, shape or device.
        OptionError: a box with a negative extent.
    """
    batch, dims = a_map.shape[0], a_map.ndim - 1
    width = 2 * dims
    if isinstance(boxes, Tensor):
        if boxes.ndim != 3 or boxes.shape[2] != width or boxes.shape[0] != batch:
            raise ShapeError(
                f"Expected `boxes` of shape ({batch}, N, {width}) for {dims}-D maps (or a list of "
                f"{batch} (N_i, {width}) tensors), but got a tensor of shape {tuple(boxes.shape)}."
            )
        padded = boxes.to(torch.float64)
    elif isinstance(boxes, Sequence) and not isinstance(boxes, (str, bytes)):
        if len(boxes) != batch:
            raise ShapeError(f"Expected `boxes` for {batch} samples, but got {len(boxes)}.")
        padded = _pad_box_list(boxes, width)
    else:
        raise DTypeError(
            f"Expected `boxes` as a tensor (B, N, {width}) or a sequence of (N_i, {width}) "
            f"tensors, but got {type(boxes).__name__}."
        )
    if padded.device != a_map.device:
        raise DeviceError(
            f"Expected `boxes` on the device of `a` ({a_map.device}), but got {padded.device}.")
    valid = ~torch.isnan(padded).any(dim=2)
    negative = valid & (padded[..., dims:] < padded[..., :dims]).any(dim=2)
    if bool(negative.any()):
        sample, row = (int(v) for v in negative.nonzero()[0])
        raise OptionError(
            f"Expected boxes with non-negative extents (x0 <= x1, ...), but box {row} of sample "
            f"{sample} is {padded[sample, row].tolist()}."
        )
    return torch.where(valid.unsqueeze(-1), padded, torch.zeros_like(padded)), valid


def mask_boxes(mask: Tensor, connectivity: str) -> tuple[Tensor, Tensor]:
    """The bounding boxes of the connected components of ``mask`` ``(B, *S)``: ``(B, G, 2 d)``,
    ``(B, G)``.

    Reads the largest component count (one host synchronisation) to size the padding.
    """
    check_option(connectivity, "connectivity", CONNECTIVITIES)
    labels, counts = label_components(mask, connectivity=connectivity)  # type: ignore[arg-type]
    slots = max(1, int(counts.max()))
    boxes, areas = component_boxes(labels, slots)
    valid = areas > 0
    return torch.where(valid.unsqueeze(-1), boxes, torch.zeros_like(boxes)), valid


def box_overlaps(detections: Tensor, sample: Tensor, truth: Tensor, valid: Tensor,
                 overlap: Overlap) -> Tensor:
    """Overlap of every detection with every ground-truth box of its sample: ``(V, G)`` float64.

    ``iou = |D ∩ G| / |D ∪ G|``, ``iobb = |D ∩ G| / |D|`` (the detection's own area), volumes in
    pixel units; -1 for padding boxes, so that no threshold in [0, 1] is reached.
    """
    dims = detections.shape[1] // 2
    det = detections.to(torch.float64).unsqueeze(1)  # (V, 1, 2d)
    gt = truth.index_select(0, sample)  # (V, G, 2d)
    low = torch.maximum(det[..., :dims], gt[..., :dims])
    high = torch.minimum(det[..., dims:], gt[..., dims:])
    intersection = (high - low).clamp(min=0).prod(dim=-1)
    det_volume = (det[..., dims:] - det[..., :dims]).prod(dim=-1)
    if overlap == "iobb":
        ratio = intersection / det_volume
    else:
        gt_volume = (gt[..., dims:] - gt[..., :dims]).prod(dim=-1)
        ratio = intersection / (det_volume + gt_volume - intersection)
    return torch.where(valid.index_select(0, sample), ratio, torch.full_like(ratio, -1.0))


def precision_recall(positives: Tensor, negatives: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Precision and recall at each threshold from per-bin counts ``(..., T + 1)``, and the
    number of ground-truth pixels: ``(..., T)``, ``(..., T)``, ``(...)`` float64 (precision 0
    where nothing is selected)."""
    tp = positives.flip(-1).cumsum(-1).flip(-1)[..., 1:].to(torch.float64)  # selected at each tau
    fp = negatives.flip(-1).cumsum(-1).flip(-1)[..., 1:].to(torch.float64)
    total = positives.sum(-1, keepdim=True).to(torch.float64)
    selected = tp + fp
    precision = torch.where(selected > 0, tp / selected.clamp(min=1), torch.zeros_like(tp))
    recall = tp / total.clamp(min=1)
    return precision, recall, total.squeeze(-1)


# --- result types (re-exported by xaiscore.functional.box_localization) ---------------------------


class BoxAccuracyResult(NamedTuple):
    """Per-sample statistics of :func:`box_accuracy`.

    Attributes:
        score: ``(B,)`` the sample's accuracy averaged over binarisation thresholds and overlap
            thresholds; NaN for a sample without ground-truth boxes.
        accuracy: ``(B, H, K)`` share of the sample's ground-truth boxes that are hit, per
            binarisation threshold ``H`` and overlap threshold ``K``; NaN without boxes.
        hits: ``(B, H, K)`` int64 ground-truth boxes hit.
        false_positives: ``(B, H, K)`` int64 detections that hit no ground-truth box.
        detections: ``(B, H)`` int64 detected boxes.
        num_boxes: ``(B,)`` int64 ground-truth boxes.
        thresholds: ``(H,)`` the binarisation thresholds (in ``threshold_mode`` units).
        overlap_thresholds: ``(K,)``.
        value: ``()`` the set score of the batch: ``set_accuracy`` averaged over ``(H, K)``;
            NaN when no sample has a ground-truth box.
        set_accuracy: ``(H, K)`` the paper's accuracy over the batch,
            ``hits.sum(0) / num_boxes.sum()`` (ground-truth boxes pooled); NaN without boxes.
        average_false_positives: ``(H, K)`` the paper's AFP, false positives per image
            (``false_positives.mean(0)``, every sample counted).
    """

    score: Tensor
    accuracy: Tensor
    hits: Tensor
    false_positives: Tensor
    detections: Tensor
    num_boxes: Tensor
    thresholds: Tensor
    overlap_thresholds: Tensor
    value: Tensor
    set_accuracy: Tensor
    average_false_positives: Tensor


def box_accuracy_figures(hits: Tensor, false_positives: Tensor, num_boxes: Tensor,
                         num_images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(value, accuracy, average_false_positives)`` from summed counts, float64.

    ``hits``, ``false_positives``: ``(H, K)`` sums; ``num_boxes``, ``num_images``: 0-d sums.
    ``accuracy = hits / num_boxes`` (NaN without boxes), ``value`` its mean,
    ``average_false_positives = false_positives / num_images`` (NaN without images).
    """
    boxes = num_boxes.to(torch.float64)
    images = num_images.to(torch.float64)
    accuracy = hits.to(torch.float64) / boxes.clamp(min=1)
    accuracy = torch.where(boxes > 0, accuracy, torch.full_like(accuracy, math.nan))
    afp = false_positives.to(torch.float64) / images.clamp(min=1)
    afp = torch.where(images > 0, afp, torch.full_like(afp, math.nan))
    return accuracy.mean(), accuracy, afp


class MaxBoxAccuracyStatistics(NamedTuple):
    """Per-sample sufficient statistics of MaxBoxAcc: they add up over batches and processes.

    Attributes:
        correct: ``(B, D, T)`` bool: the sample's box is correct at IoU threshold ``D`` and map
            threshold ``T``.
        valid: ``(B,)`` bool: the sample has at least one ground-truth box (others are not
            counted).
        thresholds: ``(T,)`` map thresholds.
        iou_thresholds: ``(D,)``.
    """

    correct: Tensor
    valid: Tensor
    thresholds: Tensor
    iou_thresholds: Tensor


class MaxBoxAccuracyResult(NamedTuple):
    """:func:`max_box_accuracy` over one batch.

    Attributes:
        value: ``()`` the set score: mean over IoU thresholds of the best box accuracy over
            map thresholds.
        score: ``(B,)`` each sample's correctness (mean over IoU thresholds) at the set's best
            map threshold per IoU threshold, so that ``score.nanmean() == value``; NaN for a
            sample without ground-truth boxes. It depends on the other samples of the batch.
        curve: ``(B, T)`` the sample's correctness at each map threshold (mean over IoU
            thresholds); NaN without ground-truth boxes.
        x: ``(T,)`` the map thresholds.
        accuracy: ``(D, T)`` the set's box accuracy per IoU threshold and map threshold.
        best_threshold: ``(D,)`` the map threshold of the best accuracy per IoU threshold
            (the lowest on ties).
        statistics: the :class:`MaxBoxAccuracyStatistics` behind it.
    """

    value: Tensor
    score: Tensor
    curve: Tensor
    x: Tensor
    accuracy: Tensor
    best_threshold: Tensor
    statistics: MaxBoxAccuracyStatistics


class PxAPStatistics(NamedTuple):
    """Per-sample pixel counts per threshold bin: the sufficient statistics of PxAP.

    Column 0 counts the pixels below the lowest threshold (never selected); column ``j + 1``
    those with ``tau_j <= value < tau_{j+1}`` (the last column: ``value >= tau_{T-1}``).
    Ignored pixels are in neither. Sum over samples (and batches, processes) and call
    :func:`pxap_from_counts`.

    Attributes:
        positives: ``(B, T + 1)`` int64 counts of ground-truth pixels.
        negatives: ``(B, T + 1)`` int64 counts of background pixels.
        thresholds: ``(T,)``.
    """

    positives: Tensor
    negatives: Tensor
    thresholds: Tensor


class PxAPResult(NamedTuple):
    """:func:`pxap` over one batch.

    Attributes:
        value: ``()`` PxAP of the pixels of the whole batch pooled (the set score).
        score: ``(B,)`` each sample's own PxAP (its pixels alone); NaN for an empty mask.
        precision: ``(T,)`` pooled pixel precision at each threshold (0 where nothing is selected).
        recall: ``(T,)`` pooled pixel recall at each threshold.
        thresholds: ``(T,)``.
        statistics: the :class:`PxAPStatistics` behind it.
    """

    value: Tensor
    score: Tensor
    precision: Tensor
    recall: Tensor
    thresholds: Tensor
    statistics: PxAPStatistics
