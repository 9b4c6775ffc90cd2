"""Per-class pointing-game accuracy, written from Zhang et al. 2018 and TorchRay's benchmark.

Plain numpy loops over rows and pixels; shares no code with ``xaiscore.functional``. A row
is one (image, class) trial: a hit when the maximum of the channel-summed map lies within
``tolerance`` (Euclidean, over the spatial axes) of a mask pixel; an empty mask is no
trial. Per class, accuracy = hits / trials; the result is the mean over classes with trials.
"""

from __future__ import annotations

import math

import numpy as np


def row_hit(
    a: np.ndarray, mask: np.ndarray, *, tolerance: float = 0.0, ties: str = "fraction"
) -> float:
    """One row: ``a`` ``(C, *S)``, ``mask`` ``(1|C, *S)``; NaN for an empty mask."""
    summed = a.sum(axis=0)
    region = mask.astype(bool).any(axis=0)
    mask_points = np.argwhere(region)
    if len(mask_points) == 0:
        return math.nan
    peak = summed.max()
    maxima = [tuple(p) for p in np.argwhere(summed == peak)]  # row-major order

    def hit(point: tuple[int, ...]) -> bool:
        for q in mask_points:
            if (
                math.sqrt(sum((int(pi) - int(qi)) ** 2 for pi, qi in zip(point, q)))
                <= tolerance + 1e-9
            ):
                return True
        return False

    hits = [hit(p) for p in maxima]
    if ties == "first":
        return float(hits[0])
    if ties == "any":
        return float(any(hits))
    return sum(hits) / len(hits)


def pointing_accuracy(
    a: np.ndarray,
    mask: np.ndarray,
    target: np.ndarray,
    num_classes: int,
    *,
    tolerance: float = 0.0,
    ties: str = "fraction",
) -> tuple[float, list[float]]:
    """``(accuracy, per-class accuracies)`` over rows ``a`` ``(B, C, *S)``, ``mask``, ``target``."""
    hits = [0.0] * num_classes
    trials = [0] * num_classes
    for i in range(a.shape[0]):
        h = row_hit(a[i], mask[i], tolerance=tolerance, ties=ties)
        if math.isnan(h):
            continue
        hits[int(target[i])] += h
        trials[int(target[i])] += 1
    per_class = [hits[c] / trials[c] if trials[c] else math.nan for c in range(num_classes)]
    defined = [v for v in per_class if not math.isnan(v)]
    return (sum(defined) / len(defined) if defined else math.nan), per_class
