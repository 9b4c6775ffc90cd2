"""Thresholds and binarisation of maps, for many thresholds at once.

Maps are ``(B, N)`` (flattened spatial axes, one channel) or ``(B, *S)``; thresholds are a
``(T,)`` grid shared by all samples or ``(B, T)`` per sample. A pixel is *selected* at a
threshold ``t`` when its value is ``>= t`` (``> t`` with ``strict=True``, the convention of
Otsu's method). Everything is batched on the input's device, with no loop over samples or
thresholds and no host synchronisation.

The workhorse for many thresholds is :func:`threshold_levels`: the number of thresholds at or
below each value, so that a pixel is selected at threshold index ``k`` exactly when its level
exceeds ``k``. Counts of selected pixels at every threshold then come from one histogram of
levels (:func:`count_at_or_above`), not from ``T`` comparisons of the whole map.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from xaiscore._checks import OptionError, ShapeError, check_option

__all__ = [
    "THRESHOLD_MODES",
    "ThresholdMode",
    "binarize",
    "count_at_or_above",
    "level_histogram",
    "min_max_normalize",
    "otsu_threshold",
    "quantiles",
    "threshold_levels",
    "threshold_values",
]

ThresholdMode = Literal["absolute", "max_fraction", "quantile", "otsu"]
THRESHOLD_MODES: tuple[str, ...] = ("absolute", "max_fraction", "quantile", "otsu")


def min_max_normalize(maps: Tensor, *, scale: float = 1.0) -> Tensor:
    """Per-sample ``scale * (m - min) / (max - min)`` over all but the first axis.

    A constant map becomes all zeros (as ``wsolevaluation``'s ``normalize_scoremap`` does),
    so that no threshold above 0 selects any of it.

    Shape:
        - maps: ``(B, *)``; output: same shape and dtype.
    """
    flat = maps.reshape(maps.shape[0], -1)
    low = flat.amin(dim=1, keepdim=True)
    span = flat.amax(dim=1, keepdim=True) - low
    constant = span == 0
    scaled = (flat - low) / torch.where(constant, torch.ones_like(span), span)
    if scale != 1.0:
        scaled = scaled * scale
    return torch.where(constant, torch.zeros_like(scaled), scaled).reshape(maps.shape)


def quantiles(maps: Tensor, q: Tensor) -> Tensor:
    """Per-sample quantiles with linear interpolation (``numpy.quantile``'s default).

    All ``T`` quantiles come from one sort of each sample's values.

    Args:
        maps: ``(B, N)`` values.
        q: ``(T,)`` fractions in [0, 1].

    Returns:
        ``(B, T)`` in the dtype of ``maps``.
    """
    values = maps.sort(dim=1).values
    n = values.shape[1]
    position = q.to(torch.float64) * (n - 1)
    below = position.floor().long().clamp(0, n - 1)
    above = (below + 1).clamp(max=n - 1)
    weight = (position - below.to(torch.float64)).to(values.dtype)
    low = values.index_select(1, below.to(values.device))
    high = values.index_select(1, above.to(values.device))
    return low + (high - low) * weight.to(values.device)


def otsu_threshold(maps: Tensor, *, bins: int = 256) -> Tensor:
    """Otsu's threshold per sample, as ``skimage.filters.threshold_otsu(m, nbins=bins)`` computes
    it.

    The values of each sample are binned into ``bins`` equal bins over ``[min, max]`` (edges as
    ``numpy.linspace`` in the map's dtype; a value belongs to the bin whose left edge is the last
    edge ``<=`` it, the last bin is closed); the threshold is the centre of the bin that
    maximises the between-class variance ``w0 w1 (mu0 - mu1)^2`` of splitting after it (first
    maximum on ties), computed in float64. A constant sample returns its value. Pixels
    *strictly above* the threshold are the foreground.

    Args:
        maps: ``(B, N)`` floating-point values.
        bins: Number of histogram bins.

    Returns:
        ``(B,)`` thresholds in the dtype of ``maps``.
    """
    batch = maps.shape[0]
    low = maps.amin(dim=1)
    high = maps.amax(dim=1)
    constant = low == high
    # numpy.histogram's edges: numpy.linspace(low, high, bins + 1) evaluated in the map's dtype
    # (i * step + low, the last edge exactly `high`); a constant sample spans [v - 0.5, v + 0.5].
    low_edge = torch.where(constant, low - 0.5, low)
    high_edge = torch.where(constant, high + 0.5, high)
    step = (high_edge - low_edge) / bins
    steps = torch.arange(bins + 1, dtype=maps.dtype, device=maps.device)
    edges = steps[None, :] * step[:, None] + low_edge[:, None]
    edges[:, -1] = high_edge
    index = torch.searchsorted(edges, maps.contiguous(), right=True) - 1
    index = index.clamp(0, bins - 1)
    counts = torch.zeros(batch, bins, dtype=torch.float64, device=maps.device)
    counts.scatter_add_(1, index, torch.ones_like(index, dtype=torch.float64))
    centres = ((edges[:, :-1] + edges[:, 1:]) / 2).to(torch.float64)
    weight_low = counts.cumsum(1)
    weight_high = counts.flip(1).cumsum(1).flip(1)
    mass = counts * centres
    mean_low = mass.cumsum(1) / weight_low.clamp(min=1)
    mean_high = mass.flip(1).cumsum(1).flip(1) / weight_high.clamp(min=1)
    between = weight_low[:, :-1] * weight_high[:, 1:] * (mean_low[:, :-1] - mean_high[:, 1:]) ** 2
    best = between.argmax(dim=1, keepdim=True)  # first maximum, as numpy.argmax
    threshold = centres.gather(1, best).squeeze(1).to(maps.dtype)
    return torch.where(constant, low, threshold)


def threshold_values(maps: Tensor, thresholds: Tensor | None, mode: ThresholdMode) -> Tensor:
    """Per-sample absolute thresholds ``(B, T)`` from thresholds given in ``mode``.

    * ``"absolute"``: the values themselves.
    * ``"max_fraction"``: ``t * max(map)``; a sample whose maximum is not positive gets
      ``+inf`` (nothing selected), as the CAM rule of ``localization_iou``.
    * ``"quantile"``: the sample's ``t``-quantile (linear interpolation), ``t`` in [0, 1].
    * ``"otsu"``: Otsu's threshold (``thresholds`` must be ``None``; ``T = 1``). Select with
      ``strict=True`` for Otsu's foreground ``map > t``.

    Args:
        maps: ``(B, N)``.
        thresholds: ``(T,)`` or ``None`` for ``"otsu"``.
        mode: One of :data:`THRESHOLD_MODES`.
    """
    check_option(mode, "threshold_mode", THRESHOLD_MODES)
    if mode == "otsu":
        if thresholds is not None:
            raise OptionError(
                "Expected no `thresholds` with threshold_mode='otsu' (it picks its own).")
        return otsu_threshold(maps).unsqueeze(1)
    if thresholds is None or thresholds.ndim != 1:
        raise ShapeError(f"Expected `thresholds` of shape (T,) for mode {mode!r}.")
    t = thresholds.to(device=maps.device)
    if mode == "absolute":
        return t.to(maps.dtype).unsqueeze(0).expand(maps.shape[0], -1)
    if mode == "quantile":
        return quantiles(maps, t)
    peak = maps.amax(dim=1, keepdim=True)
    scaled = t.to(maps.dtype).unsqueeze(0) * peak
    return torch.where(peak > 0, scaled, torch.full_like(scaled, float("inf")))


def threshold_levels(maps: Tensor, thresholds: Tensor, *, strict: bool = False) -> Tensor:
    """The level of every value: how many thresholds it reaches.

    With thresholds ``t_0 <= t_1 <= ... <= t_{T-1}`` (shared ``(T,)`` or per sample
    ``(B, T)``, sorted ascending), ``level = #{k : t_k <= value}`` (``#{k : t_k < value}``
    with ``strict``), so the value is selected at threshold index ``k`` exactly when
    ``level > k``. Comparisons are exact: values and thresholds are compared in the wider of
    their dtypes.

    Shape:
        - maps: ``(B, *S)``; thresholds: ``(T,)`` or ``(B, T)``; output: ``(B, *S)`` int64 in
          [0, T].
    """
    batch = maps.shape[0]
    flat = maps.reshape(batch, -1)
    dtype = torch.promote_types(flat.dtype, thresholds.dtype)
    flat = flat.to(dtype).contiguous()
    sequence = thresholds.to(device=maps.device, dtype=dtype).contiguous()
    levels = _uniform_grid_levels(flat, sequence, strict) if sequence.ndim == 1 else None
    if levels is None:
        levels = torch.searchsorted(sequence, flat, right=not strict)
    return levels.reshape(maps.shape)


def _uniform_grid_levels(flat: Tensor, grid: Tensor, strict: bool) -> Tensor | None:
    """Levels on an evenly spaced grid ``t_i = t_0 + i * step`` by arithmetic, or ``None`` for other
    grids.

    ``searchsorted`` costs ``log T`` dependent reads per value on CPU; here a guess from
    ``(value - t_0) / step`` is corrected against the grid itself until every level is exact.
    Only on CPU (elsewhere ``searchsorted`` is fast) and for grids of at least 32 thresholds.
    """
    count = grid.numel()
    if flat.device.type != "cpu" or count < 32:
        return None
    start, step = grid[0].item(), (grid[1] - grid[0]).item()
    if not step > 0 or not torch.equal(grid, torch.arange(count, dtype=grid.dtype) * step + start):
        return None
    values = flat.detach().numpy()  # numpy: one thread, no pool to wake for these few passes
    levels = np.floor((values - start) / step).clip(-1, count - 1).astype(np.int64) + 1
    padded = np.concatenate([[-np.inf], grid.numpy(), [np.inf]])
    while True:  # the guess is off by at most one step; correct until exact
        below = padded[levels]  # t_{level - 1}: must be reached
        above = padded[levels + 1]  # t_level: must not be reached
        too_high = (below >= values) if strict else (below > values)
        too_low = (above < values) if strict else (above <= values)
        if not too_high.any() and not too_low.any():
            return torch.from_numpy(levels)
        levels = levels - too_high + too_low


def level_histogram(levels: Tensor, num_thresholds: int, weights: Tensor | None = None) -> Tensor:
    """Per-sample counts of each level ``0 .. T``: ``(B, T + 1)`` int64.

    ``weights`` (``(B, *S)`` bool or 0/1) restricts the count to the selected pixels.
    """
    batch = levels.shape[0]
    flat = levels.reshape(batch, -1)
    offsets = torch.arange(batch, device=levels.device).unsqueeze(1) * (num_thresholds + 1)
    index = (flat + offsets).reshape(-1)
    if weights is not None:
        index = index[weights.reshape(-1).bool()]
    counts = torch.bincount(index, minlength=batch * (num_thresholds + 1))
    return counts.reshape(batch, num_thresholds + 1)


def count_at_or_above(maps: Tensor, thresholds: Tensor, *, weights: Tensor | None = None) -> Tensor:
    """How many values of each sample reach each threshold: ``(B, T)`` int64.

    One histogram of levels and a reversed cumulative sum, instead of ``T`` comparisons.
    """
    levels = threshold_levels(maps, thresholds)
    num = thresholds.shape[-1]
    counts = level_histogram(levels, num, weights)
    at_least = counts.flip(1).cumsum(1).flip(1)  # at_least[:, j] = #{level >= j}
    return at_least[:, 1:]


def binarize(maps: Tensor, thresholds: Tensor, *, strict: bool = False) -> Tensor:
    """``maps >= t`` (``> t`` with ``strict``) for every threshold: ``(B, T, *S)`` bool.

    Shape:
        - maps: ``(B, *S)``; thresholds: ``(T,)`` or ``(B, T)``; output: ``(B, T, *S)``.
    """
    batch = maps.shape[0]
    spatial = maps.shape[1:]
    t = thresholds if thresholds.ndim == 2 else thresholds.unsqueeze(0).expand(batch, -1)
    t = t.to(device=maps.device).reshape((batch, -1) + (1,) * len(spatial))
    dtype = torch.promote_types(maps.dtype, t.dtype)
    values = maps.unsqueeze(1).to(dtype)
    return values > t.to(dtype) if strict else values >= t.to(dtype)
