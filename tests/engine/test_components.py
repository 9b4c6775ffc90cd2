"""Connected components and the component sweep against scipy.ndimage, on drawn maps and edge cases.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst
from scipy import ndimage

from tests.reference.box_localization import regions, structure
from xaiscore._checks import OptionError, ShapeError
from xaiscore._engine.components import (
    _component_sweep,
    alive_counts,
    component_boxes,
    component_sweep,
    label_components,
    largest_component,
    neighbour_offsets,
)

CONNECTIVITY = st.sampled_from(["full", "face", "edge"])


@st.composite
def binary_batches(draw, max_side: int = 7):
    dims = draw(st.integers(1, 3))
    side = max_side if dims < 3 else 5
    shape = (draw(st.integers(1, 3)),) + tuple(draw(st.integers(1, side)) for _ in range(dims))
    return draw(npst.arrays(np.bool_, shape))


@st.composite
def level_batches(draw):
    dims = draw(st.integers(1, 3))
    side = 7 if dims < 3 else 4
    shape = (draw(st.integers(1, 3)),) + tuple(draw(st.integers(1, side)) for _ in range(dims))
    top = draw(st.integers(1, 5))
    return draw(npst.arrays(np.int64, shape, elements=st.integers(0, top))), top


def assert_labels_match_scipy(binary: np.ndarray, connectivity: str) -> None:
    labels, counts = label_components(torch.from_numpy(binary), connectivity=connectivity)
    for b in range(binary.shape[0]):
        expected, n = ndimage.label(binary[b], structure=structure(binary.ndim - 1, connectivity))
        np.testing.assert_array_equal(labels[b].numpy(), expected)
        assert counts[b].item() == n


@given(binary=binary_batches(), connectivity=CONNECTIVITY)
def test_labels_match_scipy(binary, connectivity):
    assert_labels_match_scipy(binary, connectivity)


@pytest.mark.parametrize("connectivity", ["full", "face"])
def test_label_edge_cases(connectivity):
    cases = [
        np.zeros((1, 5, 6), bool),  # empty
        np.ones((2, 5, 6), bool),  # full, touching every border
        np.eye(6, dtype=bool)[None],  # diagonal touches: one region (full) or six (face)
        np.eye(6, dtype=bool)[::-1][None].copy(),  # the anti-diagonal
        np.pad(np.ones((1, 1), bool), ((4, 0), (0, 5)))[None],  # a single pixel in a corner
        np.ones((1, 1, 1), bool),  # a 1 x 1 image
        np.array([[[1, 0, 1, 0, 1]]], bool),  # 2-D, one row
        np.array([[1, 1, 0, 1]], bool),  # 1-D
    ]
    spiral = np.zeros((15, 15), bool)  # one long path: many union-find rounds
    top, left, bottom, right = 0, 0, 14, 14
    while top <= bottom and left <= right:
        spiral[top, left:right + 1] = True
        spiral[top:bottom + 1, right] = True
        spiral[bottom, left:right + 1] = True
        spiral[top + 2:bottom + 1, left] = True
        top, left, bottom, right = top + 2, left + 2, bottom - 2, right - 2
    cases.append(spiral[None])
    volume = np.zeros((1, 4, 4, 4), bool)
    volume[0, 0, 0, 0] = volume[0, 1, 1, 1] = volume[0, 3, 3, 3] = True  # corner touches in 3-D
    cases.append(volume)
    for binary in cases:
        assert_labels_match_scipy(binary, connectivity)
    _, counts = label_components(torch.from_numpy(np.eye(6, dtype=bool)[None]),
                                 connectivity=connectivity)
    assert counts.item() == (1 if connectivity == "full" else 6)


@given(binary=binary_batches(), connectivity=CONNECTIVITY)
def test_boxes_and_largest_component_match_scipy(binary, connectivity):
    labels, counts = label_components(torch.from_numpy(binary), connectivity=connectivity)
    slots = int(counts.max()) + 1
    boxes, areas = component_boxes(labels, slots)
    largest = largest_component(torch.from_numpy(binary), connectivity=connectivity).numpy()
    for b in range(binary.shape[0]):
        expected = regions(binary[b], connectivity)
        n = len(expected)
        assert [tuple(row) for row in boxes[b, :n].tolist()] == [box for box, _ in expected]
        assert areas[b, :n].tolist() == [area for _, area in expected]
        assert torch.isnan(boxes[b, n:]).all() and (areas[b, n:] == 0).all()
        lab, _ = ndimage.label(binary[b], structure=structure(binary.ndim - 1, connectivity))
        if n == 0:
            assert not largest[b].any()
        else:
            sizes = [area for _, area in expected]
            np.testing.assert_array_equal(largest[b], lab == int(np.argmax(sizes)) + 1)


def sweep_matches_every_threshold(levels: np.ndarray, top: int, connectivity: str) -> None:
    sweep = component_sweep(torch.from_numpy(levels), top, connectivity=connectivity)
    # The CPU default runs the loop on numpy; the torch code path (other devices) gives the same.
    on_torch = _component_sweep(torch.from_numpy(levels), top, connectivity, backend="torch")
    for mine, theirs in zip(sweep, on_torch):
        assert torch.equal(mine, theirs)
    assert sweep.largest.shape == (levels.shape[0], top)
    for b in range(levels.shape[0]):
        for k in range(top):
            expected = regions(levels[b] > k, connectivity)
            alive = ((sweep.sample == b) & (sweep.stop < k) & (k <= sweep.start)).nonzero().squeeze(
                1)
            found = sorted((tuple(float(v) for v in sweep.boxes[v].tolist()), int(sweep.areas[v]))
                           for v in alive)
            assert found == sorted(expected), (b, k)
            best = int(sweep.largest[b, k])
            if not expected:
                assert best == -1
                continue
            areas = [area for _, area in expected]
            box, area = expected[int(np.argmax(areas))]  # ties: the first in raster order
            assert (tuple(float(v) for v in sweep.boxes[best].tolist()),
                    int(sweep.areas[best])) == (box, area)


@given(data=level_batches(), connectivity=CONNECTIVITY)
def test_sweep_gives_the_components_of_every_upper_level_set(data, connectivity):
    levels, top = data
    sweep_matches_every_threshold(levels, top, connectivity)


@pytest.mark.parametrize("connectivity", ["full", "face"])
def test_sweep_edge_cases(connectivity):
    rng = np.random.default_rng(0)
    # nothing ever selected
    sweep_matches_every_threshold(np.zeros((2, 4, 5), np.int64), 3, connectivity)
    # everything at every level
    sweep_matches_every_threshold(np.full((1, 4, 5), 3), 3, connectivity)
    sweep_matches_every_threshold(np.eye(5, dtype=np.int64)[None] * 2, 2, connectivity)  # diagonal
    sweep_matches_every_threshold(rng.integers(0, 9, (2, 12, 13)), 8, connectivity)
    sweep_matches_every_threshold(rng.integers(0, 4, (1, 5, 6, 7)), 3, connectivity)
    two = np.zeros((1, 3, 7), np.int64)
    two[0, 1, 1:3] = 1
    two[0, 1, 4:6] = 1  # two regions of the same size: the first in raster order is the largest
    sweep_matches_every_threshold(two, 1, connectivity)


@given(data=level_batches(), flag_seed=st.integers(0, 2**16))
def test_alive_counts_count_the_versions_that_exist(data, flag_seed):
    levels, top = data
    sweep = component_sweep(torch.from_numpy(levels), top)
    flags = torch.from_numpy(np.random.default_rng(flag_seed).random((sweep.areas.numel(), 2))
                             < 0.5)
    counts = alive_counts(sweep, flags, levels.shape[0], top)
    index = torch.arange(top)
    alive = (sweep.stop[:, None] < index) & (index <= sweep.start[:, None])  # (V, T)
    for b in range(levels.shape[0]):
        mine = (sweep.sample == b)[:, None, None] & alive[:, None, :] & flags[:, :, None]
        assert torch.equal(counts[b], mine.sum(0))


def test_offsets_and_errors():
    assert len(neighbour_offsets(2, "full")) == 8 and len(neighbour_offsets(2, "face")) == 4
    assert len(neighbour_offsets(3, "full")) == 26 and len(neighbour_offsets(3, "face")) == 6
    assert len(neighbour_offsets(1, "full")) == 2
    assert len(neighbour_offsets(3, "edge")) == 18 and len(neighbour_offsets(2, "edge")) == 8
    assert len(neighbour_offsets(1, "edge")) == 2
    with pytest.raises(OptionError, match="connectivity"):
        neighbour_offsets(2, "diagonal")  # type: ignore[arg-type]
    with pytest.raises(ShapeError):
        component_sweep(torch.zeros(2, 2, 2, 2, 2, dtype=torch.long), 2)
    with pytest.raises(OptionError):
        component_sweep(torch.zeros(2, 3, dtype=torch.long), 0)


def test_edge_connectivity_joins_edges_but_not_corners_in_3d():
    corner = np.zeros((1, 2, 2, 2), bool)
    corner[0, 0, 0, 0] = corner[0, 1, 1, 1] = True  # touch at a corner only
    edge = np.zeros((1, 2, 2, 2), bool)
    edge[0, 0, 0, 0] = edge[0, 1, 1, 0] = True  # touch along an edge
    counts = {c: (label_components(torch.from_numpy(corner), connectivity=c)[1].item(),
                  label_components(torch.from_numpy(edge), connectivity=c)[1].item())
              for c in ("full", "edge", "face")}
    assert counts == {"full": (1, 1), "edge": (2, 1), "face": (2, 2)}
    for binary in (corner, edge):
        assert_labels_match_scipy(binary, "edge")
