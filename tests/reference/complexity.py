"""Slow, per-sample reference implementations of the complexity metrics (from the papers)."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import entropy

from tests.reference.localization import reduce_map


def _features(a: np.ndarray, how: str | None) -> np.ndarray:
    return np.abs(reduce_map(a, how)).ravel().astype(np.float64)


def sparseness(a, *, how=None):
    """Gini index via the mean absolute difference: sum_ij |x_i - x_j| / (2 n^2 mean(x))."""
    x = _features(a, how)
    if x.sum() == 0:
        return math.nan
    n = len(x)
    pairwise = np.abs(x[:, None] - x[None, :]).sum()
    return float(pairwise / (2 * n * n * x.mean()))


def complexity(a, *, how=None):
    x = _features(a, how)
    if x.sum() == 0:
        return math.nan
    return float(entropy(x))  # scipy normalises x to a distribution, natural log


def effective_complexity(a, *, eps=1e-5, scale=None, how=None):
    """Count of |a| > eps after dividing by ``scale`` (the normaliser), if given."""
    x = reduce_map(a, how).astype(np.float64)
    if scale is not None and scale > 0:
        x = x / scale
    return float((np.abs(x).ravel() > eps).sum())
