"""MST compactness (MST-C) against its per-sample scipy/scikit-learn reference, on drawn maps
(ties, sparse maps with isolated points, collinear points, tiny and non-square images),
real-looking maps (smooth blobs, noise), both internal search paths, and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import xaiscore
from tests.reference import complexity as ref
from xaiscore.functional import _mst, mst_compactness
from xaiscore.functional._mst import tuning
from xaiscore.testing import strategies as xst

REDUCTIONS = st.sampled_from(["sum", "mean", "max_abs"])
KS = st.sampled_from([1, 2, 4, 5, 8, 13, 20, 21, 30])
THRESHOLDS = st.sampled_from([0.0, 37.5, 50.0, 80.0, 90.0, 99.0, 100.0])


def reference(a: torch.Tensor, **kwargs) -> np.ndarray:
    return np.array([ref.mst_compactness(a[i].numpy(), **kwargs) for i in range(a.shape[0])])


def assert_matches(a: torch.Tensor, threshold=80.0, k=20, how="sum") -> torch.Tensor:
    ours = mst_compactness(a, threshold=threshold, k=k, reduce_channels=how)
    expected = reference(a, threshold=threshold, k=k, how=how)
    assert ours.shape == expected.shape and ours.dtype == a.dtype
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-9, atol=1e-6, equal_nan=True)
    return ours


def image_shapes(side=st.integers(1, 12)):
    return xst.shapes(spatial_dims=2, side=side, channels=st.integers(1, 3))


@st.composite
def point_maps(draw, max_side: int = 24) -> torch.Tensor:
    """Mostly-zero maps: a few points, scattered, on a line, or in small clumps, so that the
    80th percentile is zero and every non-zero pixel is salient (isolated points, several
    components of the k-NN graph, collinear hulls)."""
    b = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    out = np.zeros((b, 1, h, w))
    for i in range(b):
        layout = draw(st.sampled_from(["scatter", "row", "column", "diagonal", "clumps"]))
        n = draw(st.integers(0, 12))
        if layout == "scatter":
            cells = [(draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))) for _ in range(n)]
        elif layout == "row":
            r = draw(st.integers(0, h - 1))
            cells = [(r, draw(st.integers(0, w - 1))) for _ in range(n)]
        elif layout == "column":
            c = draw(st.integers(0, w - 1))
            cells = [(draw(st.integers(0, h - 1)), c) for _ in range(n)]
        elif layout == "diagonal":
            cells = [(t, t) for t in sorted(draw(st.sets(st.integers(0, min(h, w) - 1),
                                                         max_size=n)))]
        else:
            cells = []
            for _ in range(draw(st.integers(1, 3))):
                r0, c0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
                size = draw(st.integers(1, 4))
                cells += [(r, c) for r in range(r0, min(h, r0 + size)) for c
                          in range(c0, min(w, c0 + size))]
        for r, c in cells:
            out[i, 0, r, c] = draw(st.sampled_from([0.5, 1.0, -2.0, 3.0]))
    return torch.from_numpy(out)


def smooth_blobs(b: int, h: int, w: int, seed: int, sigma: float = 2.5) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 1, h, w, generator=generator, dtype=torch.float64)
    radius = int(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    x = torch.nn.functional.conv2d(x, kernel.view(1, 1, 1, -1), padding=(0, radius))
    return torch.nn.functional.conv2d(x, kernel.view(1, 1, -1, 1), padding=(radius, 0))


# --- against the reference -----------------------------------------------------------------------


@given(
    a=xst.attributions(shape=image_shapes(), ties=st.booleans(), nonnegative=st.booleans(),
                       constant=st.booleans()),
    k=KS, threshold=THRESHOLDS, how=REDUCTIONS,
)
def test_matches_reference_on_drawn_maps(a, k, threshold, how):
    assert_matches(a, threshold=threshold, k=k, how=how)


@given(a=point_maps(), k=KS)
def test_matches_reference_on_sparse_and_collinear_points(a, k):
    assert_matches(a, k=k)


@settings(max_examples=15)
@given(
    a=xst.attributions(shape=xst.shapes(batch_size=st.integers(1, 2), channels=1, spatial_dims=2,
                                        side=st.integers(10, 28)), ties=st.booleans()),
    k=KS, threshold=st.sampled_from([50.0, 80.0, 95.0]),
)
def test_matches_reference_on_larger_maps(a, k, threshold):
    assert_matches(a, threshold=threshold, k=k)


@pytest.mark.parametrize(("h", "w"), [(40, 40), (23, 57), (64, 9)])
@pytest.mark.parametrize("kind", ["blobs", "noise", "sparse noise"])
def test_matches_reference_on_real_looking_maps(kind, h, w):
    generator = torch.Generator().manual_seed(h * w)
    if kind == "blobs":
        a = smooth_blobs(3, h, w, seed=h + w)
    elif kind == "noise":
        a = torch.rand(3, 1, h, w, generator=generator, dtype=torch.float64)
    else:
        a = torch.rand(3, 1, h, w, generator=generator, dtype=torch.float64)
        a = a * (torch.rand(3, 1, h, w, generator=generator) < 0.04)
    assert_matches(a)
    assert_matches(a, k=5, threshold=90.0)


@pytest.mark.parametrize("window_cost", [0, 1500, 10**12])
@pytest.mark.parametrize("chunk", [7, 1 << 22])
def test_both_search_paths_and_any_chunking_give_the_reference(monkeypatch, window_cost, chunk):
    """The dense ring scan and the window search (forced by the cost switch), in any chunking."""
    monkeypatch.setattr(tuning, "WINDOW_COST_PER_POINT", window_cost)
    monkeypatch.setattr(tuning, "WINDOW_CHUNK", chunk)
    generator = torch.Generator().manual_seed(7)
    blobs = smooth_blobs(2, 30, 34, seed=3)
    sparse = torch.rand(2, 1, 30, 34, generator=generator, dtype=torch.float64)
    sparse = sparse * (torch.rand(2, 1, 30, 34, generator=generator) < 0.05)
    for a in (blobs, sparse, torch.cat([blobs, sparse])):
        for k in (3, 20):
            assert_matches(a, k=k)


# --- edge cases with known values ----------------------------------------------------------------


def test_undefined_with_fewer_than_two_points():
    a = torch.zeros(3, 2, 5, 6, dtype=torch.float64)
    a[1, 1, 2, 3] = -4.0  # one salient point: no forest length
    a[2, :, :2, :2] = 1.0
    out = mst_compactness(a)
    assert math.isnan(out[0]) and math.isnan(out[1]) and not math.isnan(out[2])


@pytest.mark.parametrize(("h", "w"), [(1, 1), (1, 7), (6, 1), (5, 5), (4, 9)])
def test_constant_map_is_the_full_grid(h, w):
    """Every pixel is salient: unit spanning tree of length HW - 1; hull area (H - 1)(W - 1)."""
    a = torch.full((2, 3, h, w), 0.5, dtype=torch.float64)
    out = mst_compactness(a)
    if h * w == 1:
        assert torch.isnan(out).all()
        return
    diagonal = math.hypot(h, w)
    area = (h - 1) * (w - 1)
    spread = 1 / math.sqrt(area) if area else 1 / diagonal
    expected = 100 * diagonal * spread * h * w / (h * w - 1)
    torch.testing.assert_close(out, torch.full((2,), expected, dtype=torch.float64), rtol=1e-12,
                               atol=0)


@pytest.mark.parametrize(("p", "q"), [((0, 0), (0, 1)), ((0, 0), (3, 4)), ((5, 1), (0, 9))])
def test_two_points(p, q):
    """Two points: degenerate hull, one edge: 100 * d * (1 / d) * 2 / |pq| = 200 / |pq|."""
    a = torch.zeros(1, 1, 6, 10, dtype=torch.float64)
    a[0, 0, p[0], p[1]] = 1.0
    a[0, 0, q[0], q[1]] = 2.0
    assert mst_compactness(a).item() == pytest.approx(200 / math.dist(p, q), rel=1e-12)


@pytest.mark.parametrize("k", [1, 2, 20])
def test_smallest_lattice_triangle_has_area_one_half(k):
    """Three pixels in an L: hull area 1/2 (Pick), forest length 2. The spread is 1/sqrt(1/2);
    an early version clamped the area to at least 1 (a hypothesis run in CI found it)."""
    a = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    a[0, 0, 0, 0] = a[0, 0, 0, 1] = a[0, 0, 1, 1] = 0.5
    expected = 100 * math.hypot(2, 2) / math.sqrt(0.5) * 3 / 2
    assert mst_compactness(a, k=k).item() == pytest.approx(expected, rel=1e-12)
    assert_matches(a, k=k)


def test_far_apart_clusters_form_a_forest():
    """Two 5 x 5 blocks far apart: each point's 20 nearest are in its own block, so the k-NN
    graph has two components and the forest is two unit grids (2 * 24 edges of length 1)."""
    a = torch.zeros(1, 1, 20, 40, dtype=torch.float64)
    a[0, 0, 2:7, 3:8] = 1.0
    a[0, 0, 12:17, 30:35] = 1.0
    points = 50
    hull = ref.hull_area(ref.mst_points(a[0].numpy(), threshold=0.0))
    expected = 100 * math.hypot(20, 40) / math.sqrt(hull) * points / 48
    assert mst_compactness(a).item() == pytest.approx(expected, rel=1e-12)
    # With k = 25 the corner points reach the other block: one tree, longer than 48.
    assert mst_compactness(a, k=25).item() < expected


def test_a_compact_block_beats_the_same_pixels_scattered():
    a = torch.zeros(2, 1, 16, 16, dtype=torch.float64)
    a[0, 0, 5:9, 5:9] = 1.0
    a[1, 0, ::4, ::4] = 1.0  # 16 points on a coarse lattice
    block, scattered = mst_compactness(a, threshold=0.0).tolist()
    assert block > 2 * scattered


def test_percentile_keeps_ties_and_never_zero():
    a = torch.zeros(1, 1, 10, 10, dtype=torch.float64)
    a[0, 0, 0, :5] = 1.0  # 95% zeros: the 80th percentile is 0, only the five non-zero are kept
    kept = _mst.salient_points(a[:, 0].abs(), 80.0)
    assert kept.sum() == 5
    a[0, 0, 1:, :] = 1.0  # 10% zeros, 90% tied at the percentile: all tied pixels are kept
    assert _mst.salient_points(a[:, 0].abs(), 80.0).sum() == 95


@given(values=xst.attributions(shape=(1, 1, 5, 7), nonnegative=True, ties=st.booleans()),
       threshold=st.integers(0, 800).map(lambda t: t / 8))
def test_reference_cutoff_is_numpys_percentile(values, threshold):
    """The exact order-statistic cutoff selects the same pixels as ``v >= np.percentile(v, t)``."""
    # coarse values: interpolation never hits a neighbour
    v = np.round(values.numpy().ravel() * 8) / 8
    expected = v >= np.percentile(v, threshold)
    np.testing.assert_array_equal(v >= ref._percentile_cutoff(v, threshold), expected)
    kept = _mst.salient_points(torch.from_numpy(v.reshape(1, 5, 7)), threshold).numpy().ravel()
    np.testing.assert_array_equal(kept, expected & (v > 0))


def test_always_present_distance():
    """Fewer than k lattice offsets are strictly closer than sqrt(D_a); k or more are closer than
    the next."""
    assert [_mst.always_present_d2(k) for k in (1, 4, 5, 8, 9, 12, 13, 20, 21, 24, 25)] == [
        1, 1, 2, 2, 4, 4, 5, 5, 8, 8, 9
    ]


# --- errors --------------------------------------------------------------------------------------


def test_errors():
    a = torch.rand(2, 1, 4, 4)
    with pytest.raises(xaiscore.ShapeError, match="2 spatial dimension"):
        mst_compactness(torch.rand(2, 1, 4))
    with pytest.raises(xaiscore.ShapeError, match="2 spatial dimension"):
        mst_compactness(torch.rand(2, 1, 4, 4, 4))
    with pytest.raises(xaiscore.DTypeError, match="floating-point"):
        mst_compactness(torch.ones(2, 1, 4, 4, dtype=torch.int32))
    with pytest.raises(xaiscore.OptionError, match="threshold"):
        mst_compactness(a, threshold=101)
    with pytest.raises(xaiscore.OptionError, match="k"):
        mst_compactness(a, k=0)
    with pytest.raises(xaiscore.DTypeError, match="k"):
        mst_compactness(a, k=2.5)
    with pytest.raises(xaiscore.OptionError, match="reduce_channels"):
        mst_compactness(a, reduce_channels=None)
    bad = a.clone()
    bad[0, 0, 1, 1] = math.inf
    with pytest.raises(xaiscore.NonFiniteError):
        mst_compactness(bad)
