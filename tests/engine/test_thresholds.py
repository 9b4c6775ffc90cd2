"""Thresholds and binarisation against numpy/scikit-image, on drawn maps and edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst

from xaiscore._checks import OptionError, ShapeError
from xaiscore._engine.thresholds import (
    binarize,
    count_at_or_above,
    level_histogram,
    min_max_normalize,
    otsu_threshold,
    quantiles,
    threshold_levels,
    threshold_values,
)

skimage_filters = pytest.importorskip("skimage.filters")

FEW_VALUES = st.sampled_from([-1.0, 0.0, 0.25, 0.5, 2.0])
MAPS = st.one_of(
    npst.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 40)),
                elements=st.floats(-5, 5, allow_nan=False, width=32)),
    npst.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 40)), elements=FEW_VALUES),
)


def _variance(image: np.ndarray, threshold_index: int, bins: int = 256) -> float:
    """Otsu's between-class variance of splitting after bin ``threshold_index`` (float64)."""
    counts, edges = np.histogram(image, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    low, high = counts[: threshold_index + 1], counts[threshold_index + 1:]
    w0, w1 = low.sum(), high.sum()
    mu0 = (low * centres[: threshold_index + 1]).sum() / w0
    mu1 = (high * centres[threshold_index + 1:]).sum() / w1
    return float(w0 * w1 * (mu0 - mu1) ** 2)


@given(maps=MAPS, dtype=st.sampled_from([np.float32, np.float64]))
def test_otsu_matches_skimage(maps, dtype):
    maps = maps.astype(dtype)
    ours = otsu_threshold(torch.from_numpy(maps)).numpy()
    assert ours.dtype == dtype
    for row, value in zip(maps, ours):
        expected = skimage_filters.threshold_otsu(row)
        if value == expected:
            continue
        # Only a near tie of the between-class variance (float32 rounding in skimage) may differ.
        _, edges = np.histogram(row, bins=256)
        centres = ((edges[:-1] + edges[1:]) / 2).astype(dtype)
        ours_index = int(np.flatnonzero(centres == value)[0])
        theirs_index = int(np.flatnonzero(centres == expected)[0])
        one, two = _variance(row, ours_index), _variance(row, theirs_index)
        assert one >= two * (1 - 1e-6), (row, value, expected)


def test_otsu_of_two_values_and_constant_maps():
    image = np.array([[0.0, 0.0, 1.0, 1.0, 1.0]])
    assert (
        otsu_threshold(torch.from_numpy(image)).item() == skimage_filters.threshold_otsu(image[0]))
    constant = torch.full((2, 7), 3.5)
    assert otsu_threshold(constant).tolist() == [3.5, 3.5]


@given(maps=MAPS, q=st.lists(st.floats(0, 1), min_size=1, max_size=5))
def test_quantiles_match_numpy(maps, q):
    ours = quantiles(torch.from_numpy(maps), torch.tensor(q, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(ours, np.quantile(maps, q, axis=1).T, rtol=1e-12, atol=1e-12)


@given(maps=MAPS, thresholds=st.lists(st.sampled_from([-1.0, 0.0, 0.25, 0.5, 0.7, 2.0]), min_size=1,
                                      max_size=6),
       strict=st.booleans())
def test_levels_count_the_thresholds_reached(maps, thresholds, strict):
    t = np.sort(np.array(thresholds))
    levels = threshold_levels(torch.from_numpy(maps), torch.from_numpy(t), strict=strict).numpy()
    reached = (maps[..., None] > t) if strict else (maps[..., None] >= t)
    np.testing.assert_array_equal(levels, reached.sum(-1))
    # Selected at index k exactly when the level exceeds k.
    binary = binarize(torch.from_numpy(maps), torch.from_numpy(t), strict=strict).numpy()
    np.testing.assert_array_equal(binary, np.moveaxis(reached, -1, 1))
    np.testing.assert_array_equal(binary, levels[:, None, :] > np.arange(len(t))[None, :, None])


@given(maps=MAPS, thresholds=st.lists(st.sampled_from([-1.0, 0.0, 0.25, 0.5, 2.0]), min_size=1,
                                      max_size=5,
                                      unique=True))
def test_counts_at_every_threshold_at_once(maps, thresholds):
    t = np.sort(np.array(thresholds))
    per_sample = np.stack([np.quantile(row, [0.0, 0.5]) for row in maps])
    for given_thresholds in (t, per_sample):
        counts = (
            count_at_or_above(torch.from_numpy(maps), torch.from_numpy(given_thresholds)).numpy())
        expected = (maps[:, :, None] >= (given_thresholds if given_thresholds.ndim == 1
                                         else given_thresholds[:, None, :])).sum(1)
        np.testing.assert_array_equal(counts, expected)
    weights = maps > 0
    counts = count_at_or_above(torch.from_numpy(maps), torch.from_numpy(t),
                               weights=torch.from_numpy(weights))
    np.testing.assert_array_equal(counts.numpy(), ((maps[:, :, None] >= t)
                                                   & weights[:, :, None]).sum(1))


def test_level_histogram_counts_each_level():
    levels = torch.tensor([[0, 2, 2, 1], [3, 3, 3, 0]])
    assert level_histogram(levels, 3).tolist() == [[1, 1, 2, 0], [1, 0, 0, 3]]


def test_threshold_values_modes():
    maps = torch.tensor([[0.0, 1.0, 2.0, 4.0], [-3.0, -1.0, -2.0, -4.0]])
    t = torch.tensor([0.25, 0.5])
    assert threshold_values(maps, t, "absolute").tolist() == [[0.25, 0.5], [0.25, 0.5]]
    fraction = threshold_values(maps, t, "max_fraction")
    # no positive value
    assert fraction[0].tolist() == [1.0, 2.0] and torch.isinf(fraction[1]).all()
    np.testing.assert_allclose(threshold_values(maps, t, "quantile").numpy(),
                               np.quantile(maps.numpy(), [0.25, 0.5], axis=1).T)
    otsu = threshold_values(maps, None, "otsu")
    assert otsu.shape == (2, 1)
    with pytest.raises(OptionError, match="otsu"):
        threshold_values(maps, t, "otsu")
    with pytest.raises(ShapeError):
        threshold_values(maps, None, "absolute")
    with pytest.raises(OptionError, match="threshold_mode"):
        threshold_values(maps, t, "median")  # type: ignore[arg-type]


def test_min_max_normalize_per_sample_and_constant_maps():
    maps = torch.tensor([[2.0, 4.0, 3.0], [5.0, 5.0, 5.0]])
    assert min_max_normalize(maps).tolist() == [[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]]
    assert min_max_normalize(maps, scale=255.0)[0].tolist() == [0.0, 255.0, 127.5]


@given(n=st.sampled_from([32, 100, 1000]), start=st.sampled_from([0.0, -0.5, 3.0]),
       strict=st.booleans(),
       values=npst.arrays(np.float64, st.tuples(st.integers(1, 2), st.integers(1, 60)),
                          elements=st.floats(-2, 5, allow_nan=False)),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_levels_on_long_even_grids_are_exact(n, start, strict, values, dtype):
    grid = np.arange(n) * (1.0 / n) + start  # numpy.arange's values: start + i * step
    # Values exactly at, and one float step either side of, some thresholds.
    picks = grid[:: max(1, n // 7)]
    exact = np.concatenate([picks, np.nextafter(picks, -np.inf), np.nextafter(picks, np.inf)])
    values = np.concatenate([values.ravel(), exact]).astype(dtype).reshape(1, -1)
    levels = (
        threshold_levels(torch.from_numpy(values), torch.from_numpy(grid), strict=strict).numpy())
    expected = np.searchsorted(grid, values.astype(np.float64), side="left" if strict else "right")
    np.testing.assert_array_equal(levels, expected)
