"""Slow, per-sample reference implementations of the localization metrics.

Written from the papers with plain numpy loops, independent of the kernels:
no code is shared with ``xaiscore.functional``. Each function takes one
sample's map ``a`` (``(C, *S)`` numpy) and mask (``(1|C, *S)`` bool) and
returns a float (NaN where undefined).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from sklearn.metrics import roc_auc_score


def reduce_map(a: np.ndarray, how: str | None) -> np.ndarray:
    """Channel reduction of one sample ``(C, *S)`` -> ``(1, *S)`` (or unchanged)."""
    if how is None:
        return a
    if how == "sum":
        return a.sum(axis=0, keepdims=True)
    if how == "mean":
        return a.mean(axis=0, keepdims=True)
    if how == "max_abs":
        return np.abs(a).max(axis=0, keepdims=True)
    raise ValueError(how)


def prepare(a: np.ndarray, mask: np.ndarray, how: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Reduce, broadcast and flatten one sample; returns (values, in_mask) 1-D arrays."""
    r = reduce_map(a, how)
    m = mask.astype(bool)
    if how is None:
        m = np.broadcast_to(m, a.shape)
    else:
        m = m.any(axis=0, keepdims=True)
    return r.ravel().astype(np.float64), m.ravel()


def pointing_game(a, mask, *, tolerance=0.0, ties="fraction", weighted=False, how="sum"):
    r = reduce_map(a, how)
    m = mask.astype(bool)
    m = np.broadcast_to(m, a.shape) if how is None else m.any(axis=0, keepdims=True)
    if not m.any():
        return math.nan
    mask_points = np.argwhere(m)  # (P, 1 + d): channel index first
    peak = r.max()
    maxima = np.argwhere(r == peak)

    def is_hit(point):
        # Distance over spatial axes only, within the same channel.
        same_channel = mask_points[mask_points[:, 0] == point[0]][:, 1:]
        if len(same_channel) == 0:
            return False
        distances = np.sqrt(((same_channel - point[1:]) ** 2).sum(axis=1))
        return distances.min() <= tolerance + 1e-9

    if ties == "first":
        hits = [is_hit(maxima[0])]  # argwhere is row-major, so this is argmax's choice
    else:
        hits = [is_hit(p) for p in maxima]
    if ties == "any":
        score = float(any(hits))
    else:
        score = float(np.mean(hits))
    if weighted:
        score *= 1.0 - m.sum() / m.size
    return score


def _ratio(values, in_mask):
    if not in_mask.any():
        return math.nan
    total = sum(values)
    if total == 0:
        return math.nan
    inside = sum(v for v, inside in zip(values, in_mask) if inside)
    return inside / total


def energy_pointing_game(a, mask, *, how="sum"):
    values, in_mask = prepare(a, mask, how)
    return _ratio([max(v, 0.0) for v in values], in_mask)


def relevance_mass_accuracy(a, mask, *, relevance="positive", how="sum"):
    values, in_mask = prepare(a, mask, how)
    pooled = {
        "positive": [max(v, 0.0) for v in values],
        "absolute": [abs(v) for v in values],
        "signed": list(values),
    }[relevance]
    return _ratio(pooled, in_mask)


def expected_hits_in_top(values, in_mask, k):
    """Expected mask hits among the k largest values, ties broken uniformly at random.

    Walks the tie groups from the largest value down; the group that straddles
    position k contributes its mask share pro rata.
    """
    order = sorted(set(values.tolist()), reverse=True)
    taken = 0
    hits = 0.0
    for level in order:
        group = [inside for v, inside in zip(values, in_mask) if v == level]
        room = k - taken
        if room <= 0:
            break
        if len(group) <= room:
            hits += sum(group)
            taken += len(group)
        else:
            hits += room * sum(group) / len(group)
            taken += room
    return hits


def relevance_rank_accuracy(a, mask, *, how="sum"):
    values, in_mask = prepare(a, mask, how)
    k = int(in_mask.sum())
    if k == 0:
        return math.nan
    return expected_hits_in_top(values, in_mask, k) / k


def top_k_intersection(a, mask, *, k=1000, concept_influence=False, how="sum"):
    values, in_mask = prepare(a, mask, how)
    if not in_mask.any():
        return math.nan
    n = len(values)
    count = k if isinstance(k, int) else max(1, math.ceil(k * n - 1e-9))
    score = expected_hits_in_top(values, in_mask, count) / count
    if concept_influence:
        score *= n / in_mask.sum()
    return score


def attribution_localisation(a, mask, *, weighted=False, how="sum"):
    values, in_mask = prepare(a, mask, how)
    ratio = _ratio([max(v, 0.0) for v in values], in_mask)
    if weighted and not math.isnan(ratio):
        ratio *= len(values) / in_mask.sum()
    return ratio


def localization_auc(a, mask, *, how="sum"):
    values, in_mask = prepare(a, mask, how)
    if in_mask.all() or not in_mask.any():
        return math.nan
    return float(roc_auc_score(in_mask.astype(int), values))


def _binarise(values, threshold, threshold_mode):
    """CAM's fraction of the maximum, numpy's quantile, CheXlocalize's ``normalised > t``, or Otsu.
    """
    if threshold_mode == "max_fraction":
        peak = values.max()
        return (values >= threshold * peak) & (peak > 0)
    if threshold_mode == "quantile":
        return values >= np.quantile(values, threshold)
    if threshold_mode == "min_max":
        low, high = values.min(), values.max()
        if high == low:
            return np.zeros(values.shape, bool)
        return (values - low) / (high - low) > threshold
    if values.min() == values.max():  # skimage returns the value itself: nothing lies above it
        return np.zeros(values.shape, bool)
    from skimage.filters import threshold_otsu

    return values > threshold_otsu(values, nbins=256)


def localization_iou(a, mask, *, threshold=0.5, threshold_mode="max_fraction",
                     empty_prediction="zero",
                     how="sum"):
    values, in_mask = prepare(a, mask, how)
    if not in_mask.any():
        return math.nan
    selected = _binarise(values, threshold, threshold_mode)
    if empty_prediction == "nan" and not selected.any():
        return math.nan
    union = np.logical_or(selected, in_mask).sum()
    return float(np.logical_and(selected, in_mask).sum() / union)


def tune_threshold(maps, masks, thresholds, threshold_mode="min_max", empty_prediction="nan",
                   how="sum"):
    """CheXlocalize's tuning, one threshold at a time: the mean IoU (NaN-aware) over the samples at
    each threshold, and the first threshold with the largest mean. ``maps``, ``masks``: lists of
    samples."""
    means = []
    for t in thresholds:
        ious = [localization_iou(a, m, threshold=t, threshold_mode=threshold_mode,
                                 empty_prediction=empty_prediction, how=how)
                for a, m in zip(maps, masks)]
        defined = [v for v in ious if not math.isnan(v)]
        means.append(sum(defined) / len(defined) if defined else math.nan)
    finite = [m for m in means if not math.isnan(m)]
    best = thresholds[means.index(max(finite))] if finite else math.nan
    return best, means


def hit_rate(maps, masks, how="sum"):
    """CheXlocalize's hit rate: the first maximum (``numpy.argmax``) in the mask; empty masks left
    out."""
    hits = []
    for a, m in zip(maps, masks):
        values, in_mask = prepare(a, m, how)
        if in_mask.any():
            hits.append(float(in_mask[int(np.argmax(values))]))
    return sum(hits) / len(hits) if hits else math.nan


def boxes_to_mask(boxes, size, *, box_format="xyxy", rule="center"):
    """One sample: boxes ``(N, 2 d)`` -> bool mask ``size``, pixel by pixel, 1-D to 3-D.

    ``size`` is ``(W,)``, ``(H, W)`` or ``(D, H, W)``; box coordinate ``c`` (x, y, z) runs along
    spatial axis ``d - 1 - c``: ``(x0, y0, z0, x1, y1, z1)`` on ``(D, H, W)``."""
    dims = len(size)
    out = np.zeros(size, dtype=bool)
    for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 2 * dims):
        if np.isnan(box).any():
            continue
        low = box[:dims]
        high = low + box[dims:] if box_format == "xywh" else box[dims:]
        for pixel in itertools.product(*(range(side) for side in size)):
            inside = True
            for c in range(dims):
                p = pixel[dims - 1 - c]  # x is the last axis
                if rule == "center":
                    inside &= bool(low[c] <= p + 0.5 < high[c])
                else:  # the pixel's unit cell overlaps the box with positive volume
                    inside &= bool(min(p + 1, high[c]) - max(p, low[c]) > 0)
            out[pixel] |= inside
    return out
