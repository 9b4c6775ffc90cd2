"""Slow, per-sample references of the box-level localization protocols.

Written from the papers (Wang et al. 2017; Choe et al. 2020) with numpy and scipy, one sample and
one threshold at a time, as the authors' protocols run: binarise, ``scipy.ndimage.label``,
``scipy.ndimage.find_objects``, boxes, overlaps. Nothing is shared with ``xaiscore``.

Box convention (as ``xaiscore.functional.boxes_to_mask``): end-exclusive pixel units, ``x`` the
last axis: a region over columns 3..5 and rows 1..2 has the box ``(3, 1, 6, 3)``; in 3-D
``(x0, y0, z0, x1, y1, z1)``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def normalise(m: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Min-max to [0, scale] in the map's own dtype; a constant map becomes zeros."""
    low, high = m.min(), m.max()
    if high == low:
        return np.zeros_like(m)
    out = (m - low) / (high - low)
    return out * m.dtype.type(scale) if scale != 1.0 else out


def structure(dims: int, full: bool | str) -> np.ndarray:
    """scipy's structuring element: ``full`` True / ``"full"`` (rank ``d``), False / ``"face"``
    (rank 1), ``"edge"`` (rank 2, at most ``d``)."""
    if isinstance(full, str):
        rank = {"full": dims, "face": 1, "edge": min(2, dims)}[full]
    else:
        rank = dims if full else 1
    return ndimage.generate_binary_structure(dims, rank)


def regions(binary: np.ndarray, full: bool | str = True) -> list[tuple[tuple[float, ...], int]]:
    """``(box, area)`` of each connected region, in ``scipy.ndimage.label`` order."""
    labels, _ = ndimage.label(binary, structure=structure(binary.ndim, full))
    out = []
    for index, slices in enumerate(ndimage.find_objects(labels)):
        low = [s.start for s in slices][::-1]
        high = [s.stop for s in slices][::-1]
        out.append((tuple(float(v) for v in low + high), int((labels == index + 1).sum())))
    return out


def volume(box: tuple[float, ...]) -> float:
    d = len(box) // 2
    return float(np.prod([max(box[d + i] - box[i], 0.0) for i in range(d)]))


def intersection(one: tuple[float, ...], two: tuple[float, ...]) -> float:
    d = len(one) // 2
    return float(np.prod([max(min(one[d + i], two[d + i]) - max(one[i], two[i]), 0.0)
                          for i in range(d)]))


def iou(det: tuple[float, ...], gt: tuple[float, ...]) -> float:
    inter = intersection(det, gt)
    return inter / (volume(det) + volume(gt) - inter)


def iobb(det: tuple[float, ...], gt: tuple[float, ...]) -> float:
    return intersection(det, gt) / volume(det)


def max_box_correct(m: np.ndarray, gt: list[tuple[float, ...]], thresholds: list[float],
                    deltas: list[float],
                    version: int, full: bool | str = True) -> np.ndarray:
    """Choe et al. 2020: ``(D, T)`` correctness of one map (``m`` of shape ``S``)."""
    s = normalise(m)
    out = np.zeros((len(deltas), len(thresholds)), dtype=bool)
    for t, tau in enumerate(thresholds):
        found = regions(s >= tau, full)
        if not found or not gt:
            continue
        if version == 1:
            # The largest region; ties go to the first one in label (raster) order.
            areas = [area for _, area in found]
            found = [found[int(np.argmax(areas))]]
        best = max(iou(box, g) for box, _ in found for g in gt)
        for d, delta in enumerate(deltas):
            out[d, t] = best >= delta
    return out


def box_accuracy(m: np.ndarray, gt: list[tuple[float, ...]], thresholds: list[float], overlap: str,
                 overlap_thresholds: list[float],
                 full: bool | str = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wang et al. 2017 on one map: ``hits (H, K)``, ``false positives (H, K)``,
    ``detections (H,)``.

    The map is scaled to [0, 255]; at each threshold every connected region of ``{s >= t}`` is a
    detection; a ground-truth box is hit when a detection's overlap with it exceeds ``T``; a
    detection hitting no ground-truth box is a false positive.
    """
    measure = iobb if overlap == "iobb" else iou
    s = normalise(m, 255.0)
    hits = np.zeros((len(thresholds), len(overlap_thresholds)), dtype=np.int64)
    false_positives = np.zeros_like(hits)
    detections = np.zeros(len(thresholds), dtype=np.int64)
    for h, t in enumerate(thresholds):
        found = [box for box, _ in regions(s >= t, full)]
        detections[h] = len(found)
        for k, limit in enumerate(overlap_thresholds):
            for g in gt:
                hits[h, k] += any(measure(box, g) > limit for box in found)
            for box in found:
                false_positives[h, k] += not any(measure(box, g) > limit for g in gt)
    return hits, false_positives, detections


def pxap(maps: list[np.ndarray], masks: list[np.ndarray], thresholds: list[float],
         ignores: list[np.ndarray] | None = None) -> float:
    """Choe et al. 2020: PxAP of all pixels of all maps pooled, by direct counting at each
    threshold.

    ``AP = sum_j P(t_j) (R(t_j) - R(t_{j+1}))`` over the thresholds in increasing order with
    ``R(t_T) = 0``, precision 0 where nothing is selected.
    """
    values, truth = [], []
    for i, (m, mask) in enumerate(zip(maps, masks)):
        keep = np.ones(mask.shape, bool) if ignores is None else ~ignores[i]
        values.append(normalise(m)[keep].astype(np.float64))
        truth.append(mask[keep])
    v = np.concatenate(values)
    g = np.concatenate(truth)
    positives = g.sum()
    if positives == 0:
        return float("nan")
    precision, recall = [], []
    for t in thresholds:
        selected = v >= t
        tp = np.sum(selected & g)
        count = np.sum(selected)
        precision.append(tp / count if count else 0.0)
        recall.append(tp / positives)
    recall.append(0.0)
    return float(sum(precision[j] * (recall[j] - recall[j + 1]) for j in range(len(thresholds))))


def wsol_pxap(maps: list[np.ndarray], masks: list[np.ndarray], step: float) -> float:
    """PxAP as wsolevaluation's MaskEvaluator computes it (histograms with edges
    ``[0, step, ..., 1, 2, 3]``).

    Transcribed from the published algorithm (``np.histogram`` per map, reversed cumulative
    sums, ``sum(precision[1:] * diff(recall))`` where something is selected), in [0, 1].
    """
    edges = np.append(np.arange(0, 1, step), [1.0, 2.0, 3.0])
    true_hist = np.zeros(len(edges) - 1)
    false_hist = np.zeros(len(edges) - 1)
    for m, mask in zip(maps, masks):
        s = normalise(m)
        true_hist += np.histogram(s[mask], bins=edges)[0]
        false_hist += np.histogram(s[~mask], bins=edges)[0]
    tp = true_hist[::-1].cumsum()
    fn = true_hist.sum() - tp
    fp = false_hist[::-1].cumsum()
    nonzero = (tp + fp) != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    return float((precision[1:] * np.diff(recall))[nonzero[1:]].sum())
