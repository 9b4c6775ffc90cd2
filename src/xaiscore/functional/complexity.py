"""Complexity and compactness metrics: how concentrated is an attribution map?

Every kernel takes attributions ``a`` of shape ``(B, C, *S)`` and returns a
``(B,)`` float tensor on the input's device. By default every value of ``a``
(every channel of every pixel) is a feature, as in Quantus; pass
``reduce_channels`` to score pixels instead. A map that is zero everywhere has
no distribution to measure and scores NaN (Sparseness, Complexity).
``mst_compactness`` (MST-C) scores the spatial layout of the salient pixels of
2-D maps instead: spread (convex hull) and cohesion (k-NN spanning forest).

See ``docs/complexity.md`` for formulas, defaults and the differences from Quantus.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from xaiscore._checks import check_attributions, check_fraction, check_option, check_positive_int
from xaiscore._engine.reduction import (
    CHANNEL_REDUCTIONS,
    ChannelReduction,
    Normalisation,
    flatten_features,
    normalise_by_max,
)
from xaiscore._engine.sorting import sort_values
from xaiscore._engine.reduction import reduce_channels as _reduce_channels
from xaiscore.functional._common import nan_where
from xaiscore.functional._mst import hull_areas, salient_points, spanning_forest_lengths

__all__ = ["sparseness", "complexity", "effective_complexity", "mst_compactness"]


def _absolute_features(a: Tensor, reduce_channels: ChannelReduction | None,
                       validate: bool) -> Tensor:
    a = check_attributions(a, validate=validate)
    return flatten_features(_reduce_channels(a, reduce_channels)).abs()


def sparseness(
    a: Tensor,
    *,
    reduce_channels: ChannelReduction | None = None,
    validate: bool = True,
) -> Tensor:
    r"""Sparseness (Chalasani et al. 2020): the Gini index of ``|a|``.

    With the ``N`` absolute values sorted ascending, :math:`x_{(1)} \le \dots \le x_{(N)}`,

    .. math:: G = \frac{\sum_{i=1}^{N} (2i - N - 1)\, x_{(i)}}{N \sum_{i=1}^N x_{(i)}}

    0 for a uniform map, ``1 - 1/N`` for a map with a single non-zero value.
    Scale-invariant and invariant to permutations of the features. Sums are
    accumulated in float64. Quantus adds 1e-7 to every value (in place, on the
    caller's array); we do not, and an all-zero map scores NaN.

    Returns:
        ``(B,)`` in [0, 1); NaN for an all-zero map.

    Shape:
        - a: ``(B, C, *S)``; output: ``(B,)``

    Example:
        >>> sparseness(torch.tensor([[[0.0, 0.0, 0.0, 2.0]], [[1.0, -1.0, 1.0, 1.0]]])).tolist()
        [0.75, 0.0]
    """
    x = _absolute_features(a, reduce_channels, validate)
    n = x.shape[1]
    x_sorted = sort_values(x)
    weights = (2 * torch.arange(1, n + 1, device=x.device, dtype=torch.float64) - n - 1).to(x.dtype)
    numerator = (x_sorted * weights).sum(1, dtype=torch.float64)
    total = x_sorted.sum(1, dtype=torch.float64)
    gini = numerator / (n * torch.where(total > 0, total, torch.ones_like(total)))
    return nan_where(total == 0, gini.to(x.dtype))


def complexity(
    a: Tensor,
    *,
    reduce_channels: ChannelReduction | None = None,
    validate: bool = True,
) -> Tensor:
    r"""Complexity (Bhatt et al. 2020): the entropy of the fractional contributions.

    .. math:: P_i = \frac{|a_i|}{\sum_j |a_j|}, \qquad H = -\sum_i P_i \ln P_i

    with :math:`0 \ln 0 = 0` and the natural logarithm (as ``scipy.stats.entropy``).
    0 for a single non-zero value, ``ln N`` for a uniform map; lower is simpler.
    Quantus adds 1e-12 inside the logarithm; we use the exact convention.

    Returns:
        ``(B,)`` in [0, ln N]; NaN for an all-zero map.

    Shape:
        - a: ``(B, C, *S)``; output: ``(B,)``

    Example:
        >>> complexity(torch.tensor([[[0.0, 0.0, 0.0, 2.0]], [[1.0, -1.0, 1.0, 1.0]]])).tolist()
        [0.0, 1.3862943649291992]
    """
    x = _absolute_features(a, reduce_channels, validate)
    # H = -sum (x/S) ln(x/S) = ln S - (1/S) sum x ln x, with S = sum x; sums accumulated in float64.
    total = x.sum(1, dtype=torch.float64)
    x_log_x = torch.special.xlogy(x, x).sum(1, dtype=torch.float64)
    safe_total = torch.where(total > 0, total, torch.ones_like(total))
    # clamp: rounding below 0
    entropy = (torch.log(safe_total) - x_log_x / safe_total).clamp(min=0.0)
    return nan_where(total == 0, entropy.to(a.dtype))


def effective_complexity(
    a: Tensor,
    *,
    eps: float = 1e-5,
    normalise: Normalisation | None = "sample",
    reduce_channels: ChannelReduction | None = None,
    validate: bool = True,
) -> Tensor:
    r"""Effective complexity (Nguyen and Martinez 2020): the number of features with ``|a| > eps``.

    The threshold is absolute, so the score depends on the scale of ``a``; by
    default each sample is first divided by its own largest absolute value
    (``normalise="sample"``). ``normalise="batch"`` divides by the batch-wide
    maximum, as Quantus' default ``normalise_by_max`` does, which makes a
    sample's score depend on its batch-mates (use only for parity). ``None``
    uses the raw values.

    Returns:
        ``(B,)`` float counts in [0, N]; lower is simpler.

    Shape:
        - a: ``(B, C, *S)``; output: ``(B,)``

    Example:
        >>> a = torch.tensor([[[1e-7, 0.5, 1.0, 0.0]]])
        >>> effective_complexity(a).tolist()
        [2.0]
        >>> effective_complexity(a, eps=0.6).tolist()
        [1.0]
    """
    eps = check_fraction(eps, "eps", high=math.inf)
    a = check_attributions(a, validate=validate)
    reduced = _reduce_channels(a, reduce_channels)
    x = flatten_features(normalise_by_max(reduced, normalise)).abs()
    return (x > eps).sum(1).to(a.dtype)


def mst_compactness(
    a: Tensor,
    *,
    threshold: float = 80.0,
    k: int = 20,
    reduce_channels: ChannelReduction = "sum",
    validate: bool = True,
) -> Tensor:
    r"""Minimum Spanning Tree Compactness, MST-C (Mesgari et al. 2026, arXiv:2603.29491).

    The salient points ``P`` of a sample are the pixels whose value in the pixel map
    ``m = reduce_channels(|a|)`` is at or above the ``threshold``-th percentile of ``m`` and
    non-zero, taken at their (row, column) coordinates. With :math:`A` the area of their convex
    hull, :math:`L` the total length of the minimum spanning forest of their symmetric
    k-nearest-neighbour graph (Euclidean weights, ties at the k-th distance included) and
    :math:`d = \sqrt{H^2 + W^2}` the image diagonal,

    .. math::

        \text{spread} = \frac{1}{\sqrt{A}}, \qquad
        \text{cohesion} = \frac{|P|}{L}, \qquad
        \text{MST-C} = 100 \, d \cdot \text{spread} \cdot \text{cohesion},

    with :math:`\sqrt{A}` replaced by ``d`` when the hull is degenerate (fewer than three
    points, or all on a line). Higher is more compact: few salient points spread over a small
    area and joined by short edges. ``d * spread`` has no unit; ``cohesion`` is points per pixel
    of forest length (at most ``|P| / (|P| - 1)`` on a grid), so the score scales with the
    resolution. Points ``p`` and ``q`` are joined when ``|pq| <= max(d_k(p), d_k(q))``, with
    ``d_k(p)`` the distance from ``p`` to its k-th nearest other point (all other points when
    there are at most ``k``); the graph may be disconnected, and the forest then spans each
    component. ``docs/complexity.md`` lists every interpretation of the paper made here.

    Args:
        a: Attributions ``(B, C, H, W)`` (two spatial dimensions; any size, not only square).
        threshold: Percentile in [0, 100] (numpy's linear interpolation, evaluated exactly);
            pixels tied at the percentile are kept, zero pixels never are. Default 80.
        k: Neighbours per point in the k-NN graph. Default 20.
        reduce_channels: How ``|a|`` becomes one value per pixel: ``"sum"`` (default),
            ``"mean"`` (the same salient points as ``"sum"``) or ``"max_abs"``.
        validate: Check that ``a`` is finite (reads the data).

    Returns:
        ``(B,)`` scores, higher is more compact, in the dtype of ``a``; NaN when a sample has
        fewer than two salient points (e.g. an all-zero map), where the forest has no length.

    Shape:
        - a: ``(B, C, H, W)``; output: ``(B,)``

    Example:
        >>> a = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
        >>> a[0, 0, :2, :2] = 1.0  # a 2 x 2 block: hull area 1, forest length 3
        >>> a[1, 0, 0, :3] = -1.0  # three points on a line: degenerate hull, forest length 2
        >>> mst_compactness(a)  # 100 * sqrt(32) * 4 / 3 and 100 * 3 / 2
        tensor([754.2472, 150.0000], dtype=torch.float64)
    """
    a = check_attributions(a, min_spatial_dims=2, max_spatial_dims=2, validate=validate)
    threshold = check_fraction(threshold, "threshold", low=0.0, high=100.0)
    k = check_positive_int(k, "k")
    check_option(reduce_channels, "reduce_channels", CHANNEL_REDUCTIONS)
    magnitude = a.detach().abs().double()
    if a.shape[1] == 1:
        pixel_map = magnitude[:, 0]  # every reduction is the identity (the mean, the selection)
    elif reduce_channels == "max_abs":
        pixel_map = magnitude.amax(1)
    elif reduce_channels == "mean":
        pixel_map = magnitude.mean(1)
    else:
        pixel_map = magnitude.sum(1)
    height, width = a.shape[2:]
    kept = salient_points(pixel_map, threshold)
    area = hull_areas(kept)
    length, count = spanning_forest_lengths(kept, k)
    diagonal = math.hypot(height, width)
    spread = torch.where(area > 0, area.rsqrt(), torch.full_like(area, 1 / diagonal))
    cohesion = count.double() / torch.where(length > 0, length, torch.ones_like(length))
    return nan_where(count < 2, 100 * diagonal * spread * cohesion).to(a.dtype)
