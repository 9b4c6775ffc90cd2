"""Geometry: boxes and masks follow resize, crop and pad; mask resizing rules against references."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.harness.data_fixtures import bounding_edges, box_mask
from xaiscore import DTypeError, OptionError, ShapeError
from xaiscore.functional import boxes_to_mask
from xaiscore.harness.data import SampleRecord, collate
from xaiscore.harness.data.transforms import (
    CenterCrop,
    Compose,
    Crop,
    Letterbox,
    Normalize,
    Pad,
    PadToSquare,
    Resize,
    ToChannels,
    crop_boxes,
    pad_boxes,
    resize_boxes,
    resize_mask,
)

sides = st.integers(1, 12)


def reference_nearest(mask: np.ndarray, size) -> np.ndarray:
    """Output pixel takes the input pixel under its centre, one pixel at a time."""
    out = np.zeros(size, dtype=bool)
    for index in np.ndindex(*size):
        source = tuple(
            min(n_in - 1, math.floor((k + 0.5) * n_in / n_out))
            for k, n_in, n_out in zip(index, mask.shape, size)
        )
        out[index] = mask[source]
    return out


def reference_area(mask: np.ndarray, size, threshold) -> np.ndarray:
    """Exact covered fraction of each output pixel with rational arithmetic."""
    out = np.zeros(size, dtype=bool)
    for index in np.ndindex(*size):
        lows = [Fraction(k * n_in, n_out) for k, n_in, n_out in zip(index, mask.shape, size)]
        highs = [Fraction((k + 1) * n_in, n_out) for k, n_in, n_out in zip(index, mask.shape, size)]
        covered = Fraction(0)
        for source in np.ndindex(*mask.shape):
            if not mask[source]:
                continue
            overlap = Fraction(1)
            for m, low, high in zip(source, lows, highs):
                overlap *= max(Fraction(0), min(high, Fraction(m + 1)) - max(low, Fraction(m)))
            covered += overlap
        cell = math.prod(high - low for low, high in zip(lows, highs))
        out[index] = covered / cell >= Fraction(threshold).limit_denominator(1000)
    return out


@st.composite
def masks_and_sizes(draw, ndim=None):
    ndim = draw(st.integers(1, 3)) if ndim is None else ndim
    shape = tuple(draw(st.integers(1, 9 if ndim < 3 else 5)) for _ in range(ndim))
    size = tuple(draw(st.integers(1, 9 if ndim < 3 else 5)) for _ in range(ndim))
    bits = draw(st.lists(st.booleans(), min_size=math.prod(shape), max_size=math.prod(shape)))
    return np.array(bits, dtype=bool).reshape(shape), size


@given(masks_and_sizes())
def test_resize_mask_nearest_matches_reference(case):
    mask, size = case
    out = resize_mask(torch.from_numpy(mask).unsqueeze(0), size)
    assert out.shape == (1, *size) and out.dtype == torch.bool
    np.testing.assert_array_equal(out[0].numpy(), reference_nearest(mask, size))


@settings(max_examples=25)
@given(masks_and_sizes(), st.sampled_from([0.25, 0.5, 0.75, 1.0]))
def test_resize_mask_area_matches_exact_reference(case, threshold):
    mask, size = case
    out = resize_mask(torch.from_numpy(mask), size, rule="area", threshold=threshold)
    np.testing.assert_array_equal(out.numpy(), reference_area(mask, size, threshold))


def test_resize_mask_area_on_a_large_mask_matches_dense_integer_overlaps():
    """Large enough for the 64-bit path; reference: integer overlap matrices, O_h @ M @ O_w^T."""

    # n_out * overlap length of output cell k and input pixel m (integers)
    def overlaps(n_in, n_out):
        k, m = np.arange(n_out)[:, None], np.arange(n_in)[None, :]
        low = np.maximum(k * n_in, m * n_out)
        high = np.minimum((k + 1) * n_in, (m + 1) * n_out)
        return np.clip(high - low, 0, None).astype(np.int64)

    rng = np.random.default_rng(0)
    mask = rng.random((2, 3000, 1100)) < rng.random((2, 1, 1))
    for threshold in (0.25, 0.5, 0.9):
        got = resize_mask(torch.from_numpy(mask), (3, 7), rule="area", threshold=threshold).numpy()
        numerators = overlaps(3000, 3) @ mask.astype(np.int64) @ overlaps(1100, 7).T
        np.testing.assert_array_equal(got, numerators / (3000 * 1100) >= threshold)


def test_resize_mask_identity_and_integer_factors():
    mask = torch.rand(2, 1, 6, 4, generator=torch.Generator().manual_seed(0)) > 0.5
    assert torch.equal(resize_mask(mask, (6, 4)), mask)
    assert torch.equal(resize_mask(mask, (6, 4), rule="area"), mask)
    up = resize_mask(mask, (12, 8))
    assert torch.equal(up, mask.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))
    assert torch.equal(resize_mask(up, (6, 4), rule="area", threshold=1.0), mask)


def test_resize_mask_rejects_bad_input():
    with pytest.raises(OptionError):
        resize_mask(torch.zeros(4, 4, dtype=torch.bool), (2, 2), rule="bilinear")
    with pytest.raises(OptionError):
        resize_mask(torch.zeros(4, 4, dtype=torch.bool), (2, 2), rule="area", threshold=0.0)
    with pytest.raises(ShapeError):
        resize_mask(torch.zeros(4, dtype=torch.bool), (2, 2))
    with pytest.raises(OptionError):
        resize_mask(torch.zeros(4, 4, dtype=torch.bool), (0, 2))
    with pytest.raises(DTypeError):
        resize_mask(np.zeros((4, 4)), (2, 2))


@st.composite
def box_resizes(draw, *, integer_boxes, shrink):
    height, width = draw(st.integers(2, 40)), draw(st.integers(2, 40))
    if shrink:
        new = (draw(st.integers(1, height)), draw(st.integers(1, width)))
    else:
        new = (draw(st.integers(1, 60)), draw(st.integers(1, 60)))
    if integer_boxes:
        x0, x1 = sorted(draw(st.lists(st.integers(0, width), min_size=2, max_size=2, unique=True)))
        y0, y1 = sorted(draw(st.lists(st.integers(0, height), min_size=2, max_size=2, unique=True)))
    else:
        fx = sorted(draw(st.lists(st.floats(0, width), min_size=2, max_size=2)))
        fy = sorted(draw(st.lists(st.floats(0, height), min_size=2, max_size=2)))
        x0, x1, y0, y1 = fx[0], fx[1], fy[0], fy[1]
    return (height, width), new, (float(x0), float(y0), float(x1), float(y1))


def _resized_both_ways(size, new, box):
    boxes = torch.tensor([box], dtype=torch.float64)
    before = boxes_to_mask([boxes], size)[0]  # (1, H, W)
    resized_mask = resize_mask(before, new)[0]
    rasterised_after = boxes_to_mask([resize_boxes(boxes, size, new)], new)[0, 0]
    return resized_mask, rasterised_after


@given(box_resizes(integer_boxes=False, shrink=True))
def test_box_rasterised_after_downsampling_matches_resized_mask_within_one_pixel(case):
    size, new, box = case
    resized_mask, rasterised_after = _resized_both_ways(size, new, box)
    a, b = bounding_edges(resized_mask), bounding_edges(rasterised_after)
    if a is not None and b is not None:
        assert all(abs(p - q) <= 1 for p, q in zip(a, b)), (a, b)
    # each non-empty rasterisation lies within one pixel of the scaled box's true edges
    scaled = resize_boxes(torch.tensor([box], dtype=torch.float64), size, new)[0].tolist()
    for edges in (a, b):
        if edges is not None:
            assert all(abs(p - q) <= 1 + 1e-9 for p, q in zip(edges, scaled)), (edges, scaled)


@given(box_resizes(integer_boxes=True, shrink=False))
def test_integer_box_rasterised_after_any_resize_equals_resized_mask(case):
    size, new, box = case
    resized_mask, rasterised_after = _resized_both_ways(size, new, box)
    assert torch.equal(resized_mask, rasterised_after)


def test_box_helpers():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    assert resize_boxes(boxes, (100, 50), (50, 100)).tolist() == [[20.0, 10.0, 60.0, 20.0]]
    assert pad_boxes(boxes, top=1, left=2).tolist() == [[12.0, 21.0, 32.0, 41.0]]
    cropped, keep = crop_boxes(torch.tensor([[5.0, 5.0, 15.0, 15.0], [0.0, 0.0, 2.0, 2.0]]), 4, 4,
                               6, 8)
    assert cropped.tolist() == [[1.0, 1.0, 8.0, 6.0]] and keep.tolist() == [True, False]


def make_record(size=(12, 16), boxes=((2.0, 3.0, 9.0, 7.0), (12.0, 0.0, 16.0, 2.0)),
                with_mask=False):
    g = torch.Generator().manual_seed(1)
    boxes_tensor = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    mask = boxes_to_mask([boxes_tensor], size)[0] if with_mask else None
    marker = torch.zeros(1, *size, dtype=torch.bool)
    marker[0, 0, 0] = True
    return SampleRecord(
        image=torch.rand(1, *size, generator=g), label=1, boxes=boxes_tensor,
        box_labels=tuple(f"f{i}" for i in range(len(boxes_tensor))), mask=mask, source_id="r",
        finding="Nodule", extra_masks={"shortcut": marker},
    )


def test_resize_scales_boxes_per_axis_and_keeps_mask_none():
    out = Resize((6, 32))(make_record())
    assert out.image.shape == (1, 6, 32)
    assert out.boxes.tolist() == [[4.0, 1.5, 18.0, 3.5], [24.0, 0.0, 32.0, 1.0]]
    assert out.mask is None and out.extra_masks["shortcut"].shape == (1, 6, 32)
    assert out.meta["transforms"] == ("resize(12x16->6x32)",)
    assert Resize((12, 16))(make_record()) is not None


@pytest.mark.parametrize("transform", [
    Crop(2, 3, 8, 10), CenterCrop((8, 8)), Pad(1, 2, 3, 4), PadToSquare(),
    Compose([Pad(2, 0, 0, 2), Crop(1, 1, 10, 14)]),
])
def test_crop_and_pad_move_boxes_and_masks_together(transform):
    """Rasterising the moved boxes gives exactly the moved mask (crop and pad are exact)."""
    with_mask = transform(make_record(with_mask=True))
    boxes_only = transform(make_record())
    height, width = with_mask.spatial_shape
    assert torch.equal(with_mask.mask[0], box_mask(height, width, boxes_only.boxes.tolist()))
    assert torch.equal(collate([boxes_only]).mask, collate([with_mask]).mask)
    assert with_mask.extra_masks["shortcut"].shape == (1, height, width)
    assert len(boxes_only.box_labels) == boxes_only.boxes.shape[0]


def test_crop_drops_boxes_outside_with_their_labels():
    out = Crop(4, 0, 8, 10)(make_record())
    assert out.boxes.tolist() == [[2.0, 0.0, 9.0, 3.0]] and out.box_labels == ("f0",)
    assert "dropped 1 box" in out.meta["transforms"][0]
    assert not out.extra_masks["shortcut"].any()


def test_pad_marks_new_pixels_outside_the_masks():
    out = Pad(2, 0, 1, 0, value=0.5)(make_record(with_mask=True))
    assert out.image[0, :2].eq(0.5).all() and not out.mask[0, :2].any()
    assert out.extra_masks["shortcut"][0, 2, 1]


@pytest.mark.parametrize("size", [(8, 8), (10, 6), (5, 20)])
def test_letterbox_keeps_aspect_and_fills_the_target(size):
    record = make_record(size=(12, 16))
    out = Letterbox(size)(record)
    assert out.image.shape == (1, *size)
    scale = min(size[0] / 12, size[1] / 16)
    (x0, y0, x1, y1), (a0, b0, a1, b1) = record.boxes[0].tolist(), out.boxes[0].tolist()
    assert (a1 - a0) == pytest.approx((x1 - x0) * round(16 * scale) / 16)
    assert (b1 - b0) == pytest.approx((y1 - y0) * round(12 * scale) / 12)


def test_resize_with_explicit_mask_stays_within_a_pixel_of_the_boxes():
    out_mask = Resize((5, 7), mask_rule="area")(make_record(with_mask=True))
    out_boxes = Resize((5, 7))(make_record())
    a = bounding_edges(out_mask.mask[0])
    b = bounding_edges(collate([out_boxes]).mask[0, 0])
    assert all(abs(p - q) <= 1 for p, q in zip(a, b))


def test_normalize_and_channels():
    record = make_record()
    out = Normalize([0.5], [0.5])(record)
    torch.testing.assert_close(out.image, (record.image - 0.5) / 0.5)
    rgb = ToChannels(3)(record)
    assert rgb.image.shape == (3, 12, 16) and torch.equal(rgb.image[2], record.image[0])
    torch.testing.assert_close(ToChannels(1)(rgb).image, record.image)
    with pytest.raises(ShapeError):
        Normalize([0.1, 0.2], [1.0, 1.0])(record)
    with pytest.raises(OptionError):
        Normalize(0.0, 0.0)
    with pytest.raises(ShapeError):
        ToChannels(2)(rgb)


def test_transform_errors():
    record = make_record()
    with pytest.raises(ShapeError, match="inside the image"):
        Crop(5, 5, 10, 10)(record)
    with pytest.raises(ShapeError):
        CenterCrop((20, 20))(record)
    with pytest.raises(OptionError):
        Pad(-1, 0, 0, 0)
    with pytest.raises(DTypeError):
        Pad(1.5, 0, 0, 0)
    with pytest.raises(OptionError):
        Resize((0, 4))
    with pytest.raises(OptionError):
        Resize((4, 4), mode="lanczos")
    with pytest.raises(DTypeError):
        Compose([1])
    volume = SampleRecord(torch.zeros(1, 2, 3, 4), 0, torch.zeros(0, 4), (), None, "v",
                          "No Finding")
    with pytest.raises(ShapeError, match="2-D"):
        Resize((2, 2))(volume)
