"""Slow, per-sample reference implementations of the complexity metrics (from the papers)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial import ConvexHull, QhullError
from scipy.stats import entropy
from sklearn.neighbors import KDTree

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


def _percentile_cutoff(values: np.ndarray, threshold: float) -> float:
    """numpy's default (linear) percentile, evaluated exactly as an order statistic.

    With ``t = threshold / 100 * (n - 1)`` the percentile lies between the sorted values
    ``s[floor(t)]`` and ``s[floor(t) + 1]``; ``v >= percentile`` holds exactly when
    ``v >= s[floor(t)]`` (``t`` whole) or ``v >= s[floor(t) + 1]`` (otherwise), since no value lies
    strictly between two consecutive sorted values. ``tests/functional/test_mst_compactness.py``
    checks this against
    ``np.percentile``.
    """
    s = np.sort(values.ravel())
    t = Fraction(threshold) * (len(s) - 1) / 100
    low = math.floor(t)
    return float(s[low] if t == low else s[low + 1])


def mst_points(a, *, threshold=80.0, how="sum"):
    """The salient points of one sample ``(C, H, W)``: (row, column) of the pixels of
    ``how``-reduced ``|a|`` at or above the ``threshold``-th percentile and non-zero, as a float
    array ``(P, 2)``."""
    magnitude = np.abs(np.asarray(a, dtype=np.float64))
    pixel_map = {"sum": magnitude.sum(0), "mean": magnitude.mean(0),
                 "max_abs": magnitude.max(0)}[how]
    keep = (pixel_map >= _percentile_cutoff(pixel_map, threshold)) & (pixel_map > 0)
    return np.argwhere(keep).astype(np.float64)


def knn_forest_length(points: np.ndarray, k: int) -> float:
    """Total length of the minimum spanning forest of the symmetric, tie-inclusive k-NN graph.

    ``q`` is a neighbour of ``p`` when ``|pq| <= d_k(p)``, the distance to ``p``'s k-th nearest
    other point (every point when there are at most ``k`` others); ``p`` and ``q`` are joined
    when either is a neighbour of the other. Grid distances are square roots of integers, which
    differ by far more than 1e-6, so the radius query with ``d_k + 1e-6`` includes exactly the ties.
    """
    n = len(points)
    tree = KDTree(points)
    if n - 1 <= k:
        radius = np.full(n, np.inf)
    else:
        distances, _ = tree.query(points, k=k + 1)  # the point itself comes first, at distance 0
        radius = distances[:, k] + 1e-6
    neighbours, distances = tree.query_radius(points, r=np.minimum(radius, 1e12),
                                              return_distance=True)
    rows = np.repeat(np.arange(n), [len(i) for i in neighbours])
    cols = np.concatenate(neighbours)
    lengths = np.concatenate(distances)
    other = rows != cols
    graph = coo_matrix((lengths[other], (rows[other], cols[other])), shape=(n, n)).tocsr()
    graph = graph.maximum(graph.T)  # symmetric: an edge if either end has the other as neighbour
    return float(minimum_spanning_tree(graph).sum())  # a forest when the graph is disconnected


def hull_area(points: np.ndarray) -> float:
    """Area of the convex hull (0 for fewer than three or collinear points)."""
    if len(points) < 3:
        return 0.0
    try:
        return float(ConvexHull(points).volume)  # "volume" is the area in 2-D
    except QhullError:  # flat: all points on a line
        return 0.0


def mst_compactness(a, *, threshold=80.0, k=20, how="sum"):
    """MST-C of one sample ``(C, H, W)``: ``100 * diagonal * spread * cohesion``
    (see docs/complexity.md)."""
    points = mst_points(a, threshold=threshold, how=how)
    if len(points) < 2:
        return math.nan
    height, width = np.shape(a)[1:]
    diagonal = math.hypot(height, width)
    area = hull_area(points)
    spread = 1 / math.sqrt(area) if area > 0 else 1 / diagonal
    cohesion = len(points) / knn_forest_length(points, k)
    return 100 * diagonal * spread * cohesion
