"""boxes_to_mask in 1-D and 3-D (the 2-D cases are in test_localization.py): the pixel-loop
reference, the stated conventions (axis order, end-exclusive corners, clipping), round trips with
mask_to_boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from tests.reference import localization as ref
from xaiscore._checks import OptionError, ShapeError
from xaiscore.functional import boxes_to_mask, mask_to_boxes
from xaiscore.functional import localization

COORDINATE = st.one_of(st.integers(-2, 8).map(float),
                       st.floats(-2.0, 8.0, allow_nan=False, width=32))


@st.composite
def boxes_and_size(draw):
    dims = draw(st.sampled_from([1, 3, 3]))
    size = tuple(draw(st.integers(1, 5)) for _ in range(dims))
    box_format = draw(st.sampled_from(["xyxy", "xywh"]))
    batch = draw(st.integers(1, 3))
    rows = []
    for _ in range(batch):
        sample = []
        for _ in range(draw(st.integers(0, 3))):
            low = [draw(COORDINATE) for _ in range(dims)]
            other = [draw(COORDINATE) for _ in range(dims)]
            if box_format == "xyxy":
                low, other = [min(p, q) for p, q in zip(low, other)], [max(p, q)
                                                                       for p, q in zip(low, other)]
            else:
                other = [abs(q) for q in other]
            sample.append(low + other)
        rows.append(torch.tensor(sample, dtype=torch.float64).reshape(len(sample), 2 * dims))
    return rows, size, box_format


@given(case=boxes_and_size(), rule=st.sampled_from(["center", "cover"]), as_tensor=st.booleans())
def test_boxes_to_mask_in_1d_and_3d_matches_the_pixel_loop(case, rule, as_tensor):
    rows, size, box_format = case
    if as_tensor:  # padded with NaN rows
        longest = max(1, max(r.shape[0] for r in rows))
        boxes = torch.full((len(rows), longest, 2 * len(size)), math.nan, dtype=torch.float64)
        for i, r in enumerate(rows):
            boxes[i, : r.shape[0]] = r
    else:
        boxes = rows
    ours = boxes_to_mask(boxes, size, box_format=box_format, rule=rule)
    assert ours.shape == (len(rows), 1) + size and ours.dtype == torch.bool
    for i, r in enumerate(rows):
        expected = ref.boxes_to_mask(r.numpy(), size, box_format=box_format, rule=rule)
        np.testing.assert_array_equal(ours[i, 0].numpy(), expected)


def test_3d_boxes_are_x_y_z_along_the_last_middle_first_axes_end_exclusive():
    # x in [1, 3), y in [0, 2), z in [2, 3) on a (D, H, W) = (4, 3, 5) volume
    mask = boxes_to_mask(torch.tensor([[[1.0, 0.0, 2.0, 3.0, 2.0, 3.0]]]), (4, 3, 5))[0, 0]
    expected = torch.zeros(4, 3, 5, dtype=torch.bool)
    expected[2:3, 0:2, 1:3] = True
    assert torch.equal(mask, expected)
    assert mask.sum() == (3 - 1) * (2 - 0) * (3 - 2)  # the box's volume in voxels
    xywh = boxes_to_mask(torch.tensor([[[1.0, 0.0, 2.0, 2.0, 2.0, 1.0]]]), (4, 3, 5),
                         box_format="xywh")[0, 0]
    assert torch.equal(xywh, expected)


def test_3d_boxes_are_clipped_to_the_volume_and_zero_extent_covers_nothing():
    boxes = torch.tensor([[[-3.0, -1.0, 2.0, 2.0, 9.0, 50.0], [7.0, 0.0, 0.0, 9.0, 1.0, 1.0],
                           [1.0, 1.0, 1.0, 1.0, 2.0, 2.0]]])
    for rule in ("center", "cover"):
        mask = boxes_to_mask(boxes, (4, 3, 5), rule=rule)[0, 0]
        expected = torch.zeros(4, 3, 5, dtype=torch.bool)
        # the first box clipped; the second outside; the third has no width
        expected[2:, :, :2] = True
        assert torch.equal(mask, expected), rule


def test_cover_rule_in_3d_takes_every_voxel_the_box_overlaps():
    mask = boxes_to_mask([torch.tensor([[0.5, 1.2, 0.9, 1.5, 1.4, 1.1]])], (3, 3, 3),
                         rule="cover")[0, 0]
    expected = torch.zeros(3, 3, 3, dtype=torch.bool)
    # z in [0.9, 1.1): slices 0, 1; y in [1.2, 1.4): row 1; x in [0.5, 1.5)
    expected[0:2, 1:2, 0:2] = True
    assert torch.equal(mask, expected)
    assert not boxes_to_mask([torch.tensor([[0.5, 1.2, 0.9, 1.5, 1.4, 1.1]])],
                             (3, 3, 3))[0, 0].any()


@pytest.mark.parametrize("full", [True, False])
def test_mask_to_boxes_and_back_cover_each_region_of_a_volume(full):
    """The boxes of the 26- (or 6-) connected regions, rasterised, are the regions' bounding boxes
    as scipy.ndimage finds them."""
    rng = np.random.default_rng(3)
    volume = rng.random((2, 1, 5, 6, 4)) < 0.15
    boxes = mask_to_boxes(torch.from_numpy(volume), connectivity="full" if full else "face")
    structure = ndimage.generate_binary_structure(3, 3 if full else 1)
    for b in range(2):
        labels, count = ndimage.label(volume[b, 0], structure=structure)
        expected = np.zeros(volume.shape[2:], dtype=bool)
        for slices in ndimage.find_objects(labels):
            expected[slices] = True
        rows = boxes[b][~torch.isnan(boxes[b]).any(1)]
        assert rows.shape == (count, 6)
        assert np.array_equal(boxes_to_mask([rows], volume.shape[2:])[0, 0].numpy(), expected)


def test_1d_boxes():
    # pixel 4's centre 4.5 < 4.6
    mask = boxes_to_mask(torch.tensor([[[1.0, 3.0], [4.6, 9.0]]]), (6,))
    assert mask[0, 0].tolist() == [False, True, True, False, False, True]
    assert boxes_to_mask(torch.tensor([[[4.6, 9.0]]]), (6,),
                         rule="cover")[0, 0, 4:].tolist() == [True, True]


@pytest.mark.parametrize(
    ("boxes", "size", "error", "message"),
    [
        (torch.zeros(1, 1, 4), (2, 3, 4), ShapeError, r"\(B, N, 6\)"),
        (torch.zeros(1, 1, 6), (3, 4), ShapeError, r"\(B, N, 4\)"),
        ([torch.zeros(1, 4)], (2, 3, 4), ShapeError, r"boxes\[0\]"),
        (torch.zeros(1, 1, 8), (2, 2, 2, 2), ShapeError, "size"),
        (torch.zeros(1, 1, 6), (2, 0, 2), ShapeError, "size"),
        (torch.tensor([[[0.0, 0.0, 3.0, 1.0, 1.0, 2.0]]]), (4, 4, 4), OptionError, "depth"),
    ],
)
def test_3d_errors(boxes, size, error, message):
    with pytest.raises(error, match=message):
        boxes_to_mask(boxes, size)


def test_former_import_paths_give_the_same_functions():
    from xaiscore.functional import box_masks, segmentation

    assert localization.boxes_to_mask is box_masks.boxes_to_mask is boxes_to_mask
    assert localization.localization_iou is segmentation.localization_iou
    assert "boxes_to_mask" in localization.__all__ and "localization_iou" in localization.__all__
