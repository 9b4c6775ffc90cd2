"""Polygon rasterisation and COCO RLE decoding against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.harness.data_fixtures import box_mask, encode_rle, runs_of
from xaiscore import DTypeError, ShapeError
from xaiscore.harness.data.rasterize import decode_rle_counts, polygon_mask, rle_mask


def reference_polygon(polygon, height, width):
    """Even-odd ray casting to the right of each pixel centre, one pixel at a time."""
    points = list(zip(polygon[0::2], polygon[1::2]))
    mask = np.zeros((height, width), dtype=bool)
    for i in range(height):
        for j in range(width):
            px, py = j + 0.5, i + 0.5
            inside = False
            for (xa, ya), (xb, yb) in zip(points, points[1:] + points[:1]):
                if (ya > py) != (yb > py):
                    x_cross = xa + (py - ya) * (xb - xa) / (yb - ya)
                    if x_cross > px:
                        inside = not inside
            mask[i, j] = inside
    return mask


@st.composite
def star_polygons(draw):
    """Star-shaped polygons with generic (off-grid) vertices."""
    n = draw(st.integers(3, 9))
    cx, cy = draw(st.floats(2, 10)), draw(st.floats(2, 8))
    angles = sorted(draw(st.lists(st.floats(0, 2 * math.pi), min_size=n, max_size=n, unique=True)))
    radii = draw(st.lists(st.floats(0.3, 6), min_size=n, max_size=n))
    flat = []
    for angle, radius in zip(angles, radii):
        flat += [cx + radius * math.cos(angle) + 1e-7, cy + radius * math.sin(angle) + 1e-7]
    return flat


@given(star_polygons())
def test_polygon_mask_matches_ray_casting_reference(polygon):
    got = polygon_mask([polygon], (10, 13)).numpy()
    np.testing.assert_array_equal(got, reference_polygon(polygon, 10, 13))


@given(star_polygons())
def test_polygon_mask_agrees_with_matplotlib_on_generic_polygons(polygon):
    from matplotlib.path import Path

    centres = np.stack(np.meshgrid(np.arange(13) + 0.5, np.arange(10) + 0.5),
                       axis=-1).reshape(-1, 2)
    expected = Path(np.array(polygon).reshape(-1, 2)).contains_points(centres).reshape(10, 13)
    got = polygon_mask([polygon], (10, 13)).numpy()
    # generic vertices: a centre on the boundary is (almost surely) impossible; allow none
    np.testing.assert_array_equal(got, expected)


@given(st.floats(0, 9), st.floats(0, 9), st.floats(0.01, 5), st.floats(0.01, 5))
def test_rectangle_polygon_equals_box_mask(x0, y0, w, h):
    x1, y1 = x0 + w, y0 + h
    got = polygon_mask([[x0, y0, x1, y0, x1, y1, x0, y1]], (10, 12))
    assert torch.equal(got, box_mask(10, 12, [(x0, y0, x1, y1)]))


def test_polygons_unite_and_scale():
    square = [0, 0, 2, 0, 2, 2, 0, 2]
    other = [4, 4, 6, 4, 6, 6, 4, 6]
    assert polygon_mask([square, other], (6, 6)).sum() == 8
    assert torch.equal(polygon_mask([square], (4, 4), scale=(2.0, 2.0)), box_mask(4, 4,
                                                                                  [(0, 0, 4, 4)]))
    with pytest.raises(ShapeError):
        polygon_mask([[0, 0, 1, 1]], (3, 3))
    with pytest.raises(ShapeError):
        polygon_mask([[0, 0, 1, 1, 2]], (3, 3))


def test_compressed_rle_hand_worked_example():
    # counts [0, 40, 3, 10]: '0'; 40 = 8 + 1 * 32 -> chr(48 + 8 + 32) 'X', chr(48 + 1) '1'; '3';
    # 10 - 40 = -30 -> groups 2 (more: 'R'), 31 (sign bit set, last: 'O')
    assert decode_rle_counts("0X13RO") == [0, 40, 3, 10]
    assert decode_rle_counts(b"126") == [1, 2, 6]
    with pytest.raises(ShapeError):
        decode_rle_counts("X")  # a continuation flag with nothing after it


@given(st.integers(1, 7), st.integers(1, 7), st.data())
def test_rle_round_trips_through_both_encodings(height, width, data):
    bits = data.draw(st.lists(st.booleans(), min_size=height * width, max_size=height * width))
    mask = np.array(bits, dtype=bool).reshape(height, width)
    runs = runs_of(mask)
    assert decode_rle_counts(encode_rle(runs)) == runs
    np.testing.assert_array_equal(rle_mask({"size": [height, width], "counts": runs}).numpy(), mask)
    np.testing.assert_array_equal(rle_mask({"size": [height, width],
                                            "counts": encode_rle(runs)}).numpy(), mask)


def test_rle_is_column_major_and_checked():
    assert rle_mask({"size": [2, 3], "counts": [1, 2, 3]}).int().tolist() == [[0, 1, 0], [1, 0, 0]]
    with pytest.raises(ShapeError, match="add up"):
        rle_mask({"size": [2, 2], "counts": [1, 2]})
    with pytest.raises(ShapeError, match="negative"):
        rle_mask({"size": [2, 2], "counts": [5, -1]})
    with pytest.raises(DTypeError):
        rle_mask({"counts": [4]})
