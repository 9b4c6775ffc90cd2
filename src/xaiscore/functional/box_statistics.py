"""The set-level box protocols as summable statistics: box accuracy, MaxBoxAcc, PxAP.

The three protocols of :mod:`xaiscore.functional.box_localization` are defined over a
dataset: Wang et al.'s accuracy pools the ground-truth boxes of all images, MaxBoxAcc picks
the map threshold that is best for the whole set, PxAP pools the pixels of all images. Each
needs only fixed-size counts per set, described here as a
:class:`~xaiscore.functional.set_statistics.SetStatistics`:

* :data:`BOX_ACCURACY`: per binarisation threshold and overlap threshold ``(H, K)``, hits and
  false positives, plus the numbers of ground-truth boxes and of images;
* :data:`MAX_BOX_ACCURACY`: per IoU threshold and map threshold ``(D, T)``, the number of
  correct samples, plus the number of samples with ground-truth boxes;
* :data:`PXAP`: per threshold bin ``(T + 1,)``, the numbers of mask and background pixels.

All counts are int64 and add up exactly over batches and processes; ``xaiscore.metrics``
(``BoxAccuracy``, ``MaxBoxAccuracy``, ``PxAP``) keeps them as its states. The ground truth is
given as a ``mask`` (positional) or as ``boxes`` (keyword: a ``(B, G, 2 d)`` NaN-padded tensor
or a list of ``(G_i, 2 d)`` tensors), as in the kernels; PxAP needs a mask and takes optional
``ignore`` regions.

Example:
    >>> import torch
    >>> a = torch.zeros(4, 1, 6, 6); a[:, 0, 1:4, 1:4] = 1.0; a[2:, 0, 5, 5] = 2.0
    >>> boxes = torch.tensor([[[1.0, 1.0, 4.0, 4.0]]]).expand(4, 1, 4)
    >>> first = MAX_BOX_ACCURACY.update(a[:3], boxes=boxes[:3], thresholds=4)
    >>> second = MAX_BOX_ACCURACY.update(a[3:], boxes=boxes[3:], thresholds=4)
    >>> summed = {key: first[key] + second[key] for key in first}
    >>> summed["correct"].tolist(), summed["valid"].item()
    ([[0, 4, 4, 2]], 4)
    >>> MAX_BOX_ACCURACY.compute(summed, thresholds=4).value.item()
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from xaiscore._checks import check_option
from xaiscore._engine.components import Connectivity
from xaiscore._engine.reduction import ChannelReduction
from xaiscore.functional._boxes import (
    Overlap,
    box_accuracy_figures,
    precision_recall,
    threshold_grid,
)
from xaiscore.functional.box_localization import (
    BoxThresholdMode,
    box_accuracy,
    max_box_accuracy_from_statistics,
    max_box_accuracy_statistics,
    pxap_from_counts,
    pxap_statistics,
)
from xaiscore.functional.set_statistics import SetStatistics

__all__ = [
    "BOX_ACCURACY",
    "MAX_BOX_ACCURACY",
    "PXAP",
    "BoxAccuracySetResult",
    "MaxBoxAccuracySetResult",
    "PxAPSetResult",
    "box_accuracy_zeros",
    "box_accuracy_counts",
    "box_accuracy_set_result",
    "max_box_accuracy_zeros",
    "max_box_accuracy_counts",
    "max_box_accuracy_set_result",
    "pxap_zeros",
    "pxap_counts",
    "pxap_set_result",
]

_CPU = torch.device("cpu")
_WANG_THRESHOLDS = (60.0, 180.0)
_WANG_OVERLAPS = (0.1, 0.25, 0.5, 0.75, 0.9)


# --- Wang et al. 2017: box accuracy and average false positives -----------------------------


class BoxAccuracySetResult(NamedTuple):
    """Box accuracy and average false positives over a set (Wang et al. 2017).

    Attributes:
        value: ``()`` float64, ``accuracy`` averaged over its ``(H, K)`` cells; NaN without
            ground-truth boxes.
        accuracy: ``(H, K)`` float64, ground-truth boxes hit / ground-truth boxes (pooled).
        average_false_positives: ``(H, K)`` float64, false positives per image.
        hits: ``(H, K)`` int64 ground-truth boxes hit.
        false_positives: ``(H, K)`` int64 detections that hit no ground-truth box.
        num_boxes: ``()`` int64 ground-truth boxes.
        num_images: ``()`` int64 images (rows), with or without boxes.
    """

    value: Tensor
    accuracy: Tensor
    average_false_positives: Tensor
    hits: Tensor
    false_positives: Tensor
    num_boxes: Tensor
    num_images: Tensor


def _box_cells(thresholds: float | Sequence[float], threshold_mode: str,
               overlap_thresholds: Sequence[float]) -> tuple[int, int]:
    if threshold_mode == "otsu":
        n_thr = 1
    else:
        values = [thresholds] if isinstance(thresholds, (int, float)) else thresholds
        n_thr = threshold_grid(values, include_end=False, device=_CPU).numel()
    n_overlap = threshold_grid(list(overlap_thresholds), include_end=False, device=_CPU,
                               name="overlap_thresholds").numel()
    return n_thr, n_overlap


def box_accuracy_zeros(*, thresholds: float | Sequence[float] = _WANG_THRESHOLDS,
                       threshold_mode: BoxThresholdMode = "min_max_255",
                       overlap_thresholds: Sequence[float] = _WANG_OVERLAPS) -> dict[str, Tensor]:
    """The empty set's statistics: ``hits``, ``false_positives`` ``(H, K)``, ``num_boxes``,
    ``num_images`` ``()``, all int64 zeros."""
    check_option(threshold_mode, "threshold_mode",
                 ("min_max_255", "absolute", "max_fraction", "quantile", "otsu"))
    cells = _box_cells(thresholds, threshold_mode, overlap_thresholds)
    return {
        "hits": torch.zeros(cells, dtype=torch.long),
        "false_positives": torch.zeros(cells, dtype=torch.long),
        "num_boxes": torch.zeros((), dtype=torch.long),
        "num_images": torch.zeros((), dtype=torch.long),
    }


def box_accuracy_counts(
    a: Tensor,
    mask: Tensor | None = None,
    *,
    boxes: Tensor | Sequence[Tensor] | None = None,
    thresholds: float | Sequence[float] = _WANG_THRESHOLDS,
    threshold_mode: BoxThresholdMode = "min_max_255",
    overlap: Overlap = "iobb",
    overlap_thresholds: Sequence[float] = _WANG_OVERLAPS,
    connectivity: Connectivity = "full",
    reduce_channels: ChannelReduction = "sum",
    validate: bool = True,
) -> dict[str, Tensor]:
    """One batch's counts (see :func:`~xaiscore.functional.box_accuracy` for the arguments).

    Example:
        >>> a = torch.zeros(1, 1, 8, 8); a[0, 0, 2:4, 2:4] = 1.0; a[0, 0, 6, 6] = 0.5
        >>> c = box_accuracy_counts(a, boxes=torch.tensor([[[1.0, 1.0, 5.0, 5.0]]]),
        ...                         thresholds=(60.0,), overlap_thresholds=(0.5,))
        >>> c["hits"].tolist(), c["false_positives"].tolist(), c["num_boxes"].item()
        ([[1]], [[1]], 1)
    """
    result = box_accuracy(a, mask, boxes=boxes, thresholds=thresholds,
                          threshold_mode=threshold_mode,
                          overlap=overlap, overlap_thresholds=overlap_thresholds,
                          connectivity=connectivity, reduce_channels=reduce_channels,
                          validate=validate)
    return {
        "hits": result.hits.sum(0),
        "false_positives": result.false_positives.sum(0),
        "num_boxes": result.num_boxes.sum(),
        "num_images": torch.tensor(result.num_boxes.shape[0], device=result.num_boxes.device),
    }


def box_accuracy_set_result(statistics: dict[str, Tensor]) -> BoxAccuracySetResult:
    """The set's figures from summed counts.

    Example:
        >>> r = box_accuracy_set_result({"hits": torch.tensor([[3]]),
        ...     "false_positives": torch.tensor([[2]]), "num_boxes": torch.tensor(4),
        ...     "num_images": torch.tensor(2)})
        >>> r.value.item(), r.average_false_positives.tolist()
        (0.75, [[1.0]])
    """
    hits, false_positives = statistics["hits"], statistics["false_positives"]
    num_boxes, num_images = statistics["num_boxes"], statistics["num_images"]
    value, accuracy, afp = box_accuracy_figures(hits, false_positives, num_boxes, num_images)
    return BoxAccuracySetResult(value, accuracy, afp, hits, false_positives, num_boxes, num_images)


#: Wang et al.'s box accuracy and AFP as summable counts (the states of ``BoxAccuracy``).
BOX_ACCURACY = SetStatistics(
    inputs=("a",),
    optional_inputs=("mask", "boxes"),
    zeros=box_accuracy_zeros,
    update=box_accuracy_counts,
    compute=box_accuracy_set_result,
)


# --- Choe et al. 2020: MaxBoxAcc ----------------------------------------------------------------


class MaxBoxAccuracySetResult(NamedTuple):
    """MaxBoxAcc over a set.

    Attributes:
        value: ``()`` float64, the mean over IoU thresholds of the best accuracy over map
            thresholds; NaN when no sample has a ground-truth box.
        accuracy: ``(D, T)`` float64, correct samples / samples with ground-truth boxes.
        best_threshold: ``(D,)`` float64, the map threshold of the best accuracy per IoU
            threshold (the lowest on ties).
        thresholds: ``(T,)`` float64 map thresholds.
        correct: ``(D, T)`` int64 correct samples.
        valid: ``()`` int64 samples with at least one ground-truth box.
    """

    value: Tensor
    accuracy: Tensor
    best_threshold: Tensor
    thresholds: Tensor
    correct: Tensor
    valid: Tensor


def _iou_count(version: int, iou_thresholds: Sequence[float] | None) -> int:
    check_option(version, "version", (1, 2))
    if iou_thresholds is None:
        return 1 if version == 1 else 3
    return threshold_grid(list(iou_thresholds), include_end=False, device=_CPU,
                          name="iou_thresholds").numel()


def max_box_accuracy_zeros(*, thresholds: int | Sequence[float] | Tensor = 1000,
                           version: Literal[1, 2] = 1,
                           iou_thresholds: Sequence[float] | None = None) -> dict[str, Tensor]:
    """The empty set's statistics: ``correct`` ``(D, T)`` and ``valid`` ``()``, int64 zeros."""
    n_thr = threshold_grid(thresholds, include_end=False, device=_CPU).numel()
    return {
        "correct": torch.zeros(_iou_count(version, iou_thresholds), n_thr, dtype=torch.long),
        "valid": torch.zeros((), dtype=torch.long),
    }


def max_box_accuracy_counts(
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
) -> dict[str, Tensor]:
    """One batch's counts: :func:`~xaiscore.functional.max_box_accuracy_statistics` summed over
    the samples (see it for the arguments).

    Example:
        >>> a = torch.zeros(1, 1, 6, 6); a[0, 0, 1:4, 1:4] = 1.0
        >>> c = max_box_accuracy_counts(a, boxes=torch.tensor([[[1.0, 1.0, 4.0, 4.0]]]), thresholds=4)
        >>> c["correct"].tolist(), c["valid"].item()
        ([[0, 1, 1, 1]], 1)
    """  # noqa: E501
    stats = max_box_accuracy_statistics(a, mask, boxes=boxes, thresholds=thresholds,
                                        version=version,
                                        iou_thresholds=iou_thresholds, connectivity=connectivity,
                                        reduce_channels=reduce_channels, validate=validate)
    return {"correct": stats.correct.sum(0, dtype=torch.long),
            "valid": stats.valid.sum(dtype=torch.long)}


def max_box_accuracy_set_result(statistics: dict[str, Tensor], *,
                                thresholds: int | Sequence[float] | Tensor = 1000
                                ) -> MaxBoxAccuracySetResult:
    """MaxBoxAcc from summed counts.

    Example:
        >>> r = max_box_accuracy_set_result({"correct": torch.tensor([[1, 3, 2]]),
        ...                                  "valid": torch.tensor(4)}, thresholds=3)
        >>> r.value.item(), r.best_threshold.tolist()
        (0.75, [0.3333333333333333])
    """
    correct, valid = statistics["correct"], statistics["valid"]
    value, accuracy, best = max_box_accuracy_from_statistics(correct, valid)
    grid = threshold_grid(thresholds, include_end=False, device=correct.device)
    return MaxBoxAccuracySetResult(value, accuracy, grid.index_select(0, best), grid, correct,
                                   valid)


#: MaxBoxAcc (v1, v2) as summable counts (the states of ``MaxBoxAccuracy``).
MAX_BOX_ACCURACY = SetStatistics(
    inputs=("a",),
    optional_inputs=("mask", "boxes"),
    zeros=max_box_accuracy_zeros,
    update=max_box_accuracy_counts,
    compute=max_box_accuracy_set_result,
)


# --- Choe et al. 2020: PxAP ---------------------------------------------------------------------


class PxAPSetResult(NamedTuple):
    """PxAP over a set, pixels of all samples pooled.

    Attributes:
        value: ``()`` float64 PxAP; NaN without ground-truth pixels.
        precision: ``(T,)`` float64 pixel precision at each threshold (0 where nothing is
            selected).
        recall: ``(T,)`` float64 pixel recall at each threshold.
        thresholds: ``(T,)`` float64.
        positives: ``(T + 1,)`` int64 ground-truth pixels per bin.
        negatives: ``(T + 1,)`` int64 background pixels per bin.
    """

    value: Tensor
    precision: Tensor
    recall: Tensor
    thresholds: Tensor
    positives: Tensor
    negatives: Tensor


def pxap_zeros(*, thresholds: int | Sequence[float] | Tensor = 1000) -> dict[str, Tensor]:
    """The empty set's statistics: ``positives``, ``negatives`` ``(T + 1,)`` int64 zeros."""
    n_thr = threshold_grid(thresholds, include_end=True, device=_CPU).numel()
    return {"positives": torch.zeros(n_thr + 1, dtype=torch.long),
            "negatives": torch.zeros(n_thr + 1, dtype=torch.long)}


def pxap_counts(
    a: Tensor,
    mask: Tensor,
    *,
    ignore: Tensor | None = None,
    thresholds: int | Sequence[float] | Tensor = 1000,
    reduce_channels: ChannelReduction = "sum",
    validate: bool = True,
) -> dict[str, Tensor]:
    """One batch's pooled counts: :func:`~xaiscore.functional.pxap_statistics` summed over the
    samples (see it for the arguments).

    Example:
        >>> c = pxap_counts(torch.tensor([[[0.0, 0.2, 0.6, 1.0]]]),
        ...                 torch.tensor([[[False, False, True, True]]]), thresholds=2)
        >>> c["positives"].tolist(), c["negatives"].tolist()
        ([0, 0, 1, 1], [0, 2, 0, 0])
    """
    stats = pxap_statistics(a, mask, ignore=ignore, thresholds=thresholds,
                            reduce_channels=reduce_channels, validate=validate)
    return {"positives": stats.positives.sum(0), "negatives": stats.negatives.sum(0)}


def pxap_set_result(statistics: dict[str, Tensor], *,
                    thresholds: int | Sequence[float] | Tensor = 1000) -> PxAPSetResult:
    """PxAP from summed counts.

    Example:
        >>> r = pxap_set_result({"positives": torch.tensor([0, 0, 1, 1]),
        ...                      "negatives": torch.tensor([0, 2, 0, 0])}, thresholds=2)
        >>> r.value.item(), r.precision.tolist(), r.recall.tolist()
        (1.0, [0.5, 1.0, 1.0], [1.0, 1.0, 0.5])
    """
    positives, negatives = statistics["positives"], statistics["negatives"]
    precision, recall, _ = precision_recall(positives, negatives)
    grid = threshold_grid(thresholds, include_end=True, device=positives.device)
    return PxAPSetResult(pxap_from_counts(positives, negatives), precision, recall, grid,
                         positives, negatives)


#: PxAP as summable per-bin pixel counts (the states of ``PxAP``).
PXAP = SetStatistics(
    inputs=("a", "mask"),
    optional_inputs=("ignore",),
    zeros=pxap_zeros,
    update=pxap_counts,
    compute=pxap_set_result,
)
