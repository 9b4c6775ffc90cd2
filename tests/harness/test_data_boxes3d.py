"""3-D boxes: rasterisation against a per-voxel loop, component boxes, collation of volumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xaiscore import OptionError, ShapeError
from xaiscore.harness.data import SampleRecord, collate
from xaiscore.harness.data.boxes3d import check_box3d, mask_boxes_3d, rasterize_boxes
from xaiscore.harness.data.errors import DatasetError


def reference_mask(boxes, size, rule):
    """Voxel (k, i, j) is in a box by the centre or overlap rule, tested voxel by voxel."""
    depth, height, width = size
    out = np.zeros(size, dtype=bool)
    for x0, y0, z0, x1, y1, z1 in boxes:
        for k in range(depth):
            for i in range(height):
                for j in range(width):
                    if rule == "center":
                        inside = (x0 <= j + 0.5 < x1) and (y0 <= i + 0.5 < y1) and (z0 <= k + 0.5
                                                                                    < z1)
                    else:
                        overlap = [min(b, c + 1) - max(a, c) for a, b, c in ((x0, x1, j), (
                            y0, y1, i), (z0, z1, k))]
                        inside = all(v > 0 for v in overlap)
                    out[k, i, j] |= inside
    return out


box = st.tuples(*(st.floats(0, 6, allow_nan=False) for _ in range(3)),
                *(st.floats(0, 3, allow_nan=False) for _ in range(3))).map(
    lambda b: (b[0], b[1], b[2], b[0] + b[3], b[1] + b[4], b[2] + b[5]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(box, max_size=3), min_size=1, max_size=3),
       st.sampled_from(["center", "cover"]))
def test_rasterize_matches_voxel_loop(boxes, rule):
    size = (5, 6, 7)
    tensors = [torch.tensor(b, dtype=torch.float64).reshape(-1, 6) for b in boxes]
    got = rasterize_boxes(tensors, size, rule=rule)
    assert got.shape == (len(boxes), 1, *size)
    for i, b in enumerate(boxes):
        np.testing.assert_array_equal(got[i, 0].numpy(), reference_mask(b, size, rule))


def test_rasterize_2d_delegates_and_bad_sizes():
    got = rasterize_boxes([torch.tensor([[0.0, 0.0, 2.0, 1.0]])], (2, 3))
    assert got[0, 0].tolist() == [[True, True, False], [False, False, False]]
    with pytest.raises(ShapeError, match=r"\(D, H, W\)"):
        rasterize_boxes([torch.zeros(0, 6)], (2, 3, 4, 5))
    with pytest.raises(ShapeError, match=r"\(N, 6\)"):
        rasterize_boxes([torch.zeros(1, 4)], (2, 3, 4))
    with pytest.raises(OptionError, match="non-negative width, height and depth"):
        rasterize_boxes([torch.tensor([[2.0, 0, 0, 1, 1, 1]])], (2, 3, 4))


def test_empty_boxes_give_empty_mask():
    got = rasterize_boxes([torch.zeros(0, 6), torch.zeros(0, 6)], (2, 2, 2))
    assert got.shape == (2, 1, 2, 2, 2) and not got.any()


def test_mask_boxes_3d_uses_26_connectivity():
    mask = torch.zeros(1, 4, 4, 4, dtype=torch.bool)
    mask[0, 0, 0, 0] = mask[0, 1, 1, 1] = True  # corner neighbours: one component
    mask[0, 3, 3, 2:4] = True
    assert mask_boxes_3d(mask) == [(0.0, 0.0, 0.0, 2.0, 2.0, 2.0), (2.0, 3.0, 3.0, 4.0, 4.0, 4.0)]
    assert mask_boxes_3d(torch.zeros(3, 3, 3, dtype=torch.bool)) == []
    with pytest.raises(ShapeError):
        mask_boxes_3d(torch.zeros(3, 3, dtype=torch.bool))


def test_check_box3d_clips_or_raises():
    shape = (4, 5, 6)
    assert check_box3d((1, 1, 1, 2, 2, 2), shape, clip=False, file="f", row=2,
                       where="volume a") == (
        1.0, 1.0, 1.0, 2.0, 2.0, 2.0)
    assert check_box3d((-1, 0, 0, 7, 5, 4), shape, clip=True, file="f", row=2, where="v") == (
        0.0, 0.0, 0.0, 6.0, 5.0, 4.0)
    with pytest.raises(DatasetError, match="outside the volume"):
        check_box3d((-1, 0, 0, 7, 5, 4), shape, clip=False, file="f", row=2, where="v")
    with pytest.raises(DatasetError, match="no volume"):
        check_box3d((1, 1, 1, 1, 2, 2), shape, clip=True, file="f", row=2, where="v")


def test_collate_volumes_rasterises_boxes():
    r = SampleRecord(torch.zeros(1, 3, 4, 5), 1, torch.tensor([[1.0, 0.0, 2.0, 3.0, 2.0, 3.0]]),
                     ("Lesion",), None, "v", "Lesion")
    batch = collate([r, r])
    assert batch.mask.shape == (2, 1, 3, 4, 5)
    expected = torch.zeros(3, 4, 5, dtype=torch.bool)
    expected[2, 0:2, 1:3] = True
    assert torch.equal(batch.mask[1, 0], expected)
    bad = SampleRecord(torch.zeros(1, 3, 4, 5), 1, torch.zeros(1, 4), ("Lesion",), None, "b",
                       "Lesion")
    with pytest.raises(ShapeError, match=r"\(N, 6\)"):
        collate([bad])
