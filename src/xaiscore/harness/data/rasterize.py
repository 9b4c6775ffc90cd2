"""Polygon rasterisation and COCO run-length decoding (no pycocotools).

Both produce boolean masks under the pixel-centre rule used throughout
xaiscore (:func:`xaiscore.functional.boxes_to_mask`): pixel ``(i, j)`` is
inside a polygon when its centre ``(j + 0.5, i + 0.5)`` is, by the even-odd
rule with half-open edges, so an axis-aligned rectangle polygon gives exactly
the mask of the same box. (pycocotools rasterises polygons with its own
scan-line rule; masks can differ from it on boundary pixels.)

COCO RLE: ``{"size": [h, w], "counts": ...}`` holds alternating run lengths of
0s and 1s (starting with 0s) over the mask in column-major order. ``counts`` is
a list of ints (uncompressed) or a string (compressed): each count is written
in 5-bit groups, least significant first, as characters ``chr(48 + group)``,
where bit ``0x20`` flags that another group follows and bit ``0x10`` of the last
group is the sign; from the fourth count on, the value stored is the
difference to the count two places earlier.

Example:
    >>> polygon_mask([[1, 0, 3, 0, 3, 2, 1, 2]], (3, 4)).int().tolist()
    [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    >>> decode_rle_counts("0X13RO")
    [0, 40, 3, 10]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from xaiscore._checks import DTypeError, ShapeError

__all__ = ["polygon_mask", "decode_rle_counts", "rle_mask"]


def polygon_mask(
    polygons: Sequence[Sequence[float]],
    size: Sequence[int],
    *,
    scale: tuple[float, float] = (1.0, 1.0),
) -> Tensor:
    """Rasterise polygons (united) into an ``(H, W)`` bool mask by the pixel-centre rule.

    Args:
        polygons: COCO-style flat vertex lists ``[x1, y1, x2, y2, ...]`` in
            pixels (at least three vertices each).
        size: ``(H, W)`` of the mask.
        scale: ``(sx, sy)`` multiplied into the coordinates first (to draw
            annotations of one canvas on an image of another size).

    Raises:
        ShapeError: a polygon with an odd number of coordinates or fewer than three vertices.

    Shape:
        - output: ``(H, W)`` bool

    Example:
        >>> triangle = [[0, 0, 4, 0, 0, 4]]
        >>> polygon_mask(triangle, (4, 4)).int().tolist()
        [[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    """
    height, width = int(size[0]), int(size[1])
    mask = torch.zeros(height, width, dtype=torch.bool)
    centres_y = torch.arange(height, dtype=torch.float64) + 0.5
    centres_x = torch.arange(width, dtype=torch.float64) + 0.5
    for k, polygon in enumerate(polygons):
        coordinates = torch.as_tensor(np.asarray(polygon, dtype=np.float64))
        if coordinates.ndim != 1 or coordinates.numel() % 2 or coordinates.numel() < 6:
            raise ShapeError(
                f"Expected polygon {k} as a flat list of at least three (x, y) pairs, "
                f"but got {coordinates.numel()} number(s)."
            )
        xs = coordinates[0::2] * scale[0]
        ys = coordinates[1::2] * scale[1]
        x_next, y_next = xs.roll(-1), ys.roll(-1)
        # an edge crosses the row through centre y when exactly one end lies above it (half-open)
        # (H, E)
        crosses = (ys[None, :] > centres_y[:, None]) != (y_next[None, :] > centres_y[:, None])
        dy = torch.where(crosses, y_next - ys, torch.ones_like(ys))
        t = (centres_y[:, None] - ys[None, :]) / dy
        x_cross = torch.where(crosses, xs + t * (x_next - xs), torch.full_like(t, -torch.inf))
        x_cross, _ = torch.sort(x_cross, dim=1)
        # crossings strictly right of each pixel centre; odd count = inside
        right = x_cross.shape[1] - torch.searchsorted(
            x_cross.contiguous(), centres_x.expand(height, width).contiguous(), right=True
        )
        mask |= (right % 2) == 1
    return mask


def decode_rle_counts(counts: str | bytes) -> list[int]:
    """Decode a compressed COCO RLE string into run lengths (see the module docs).

    Raises:
        ShapeError: the string ends inside a count.
    """
    text = counts.decode("ascii") if isinstance(counts, bytes) else counts
    values: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(text):
                raise ShapeError(
                    f"Expected a complete RLE string, but it ends inside a count: {text!r}.")
            group = ord(text[position]) - 48
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            position += 1
            shift += 5
            if not more and group & 0x10:
                value |= -1 << shift
        if len(values) > 2:
            value += values[-2]
        values.append(value)
    return values


def rle_mask(rle: Mapping[str, Any]) -> Tensor:
    """Decode a COCO RLE ``{"size": [h, w], "counts": list | str}`` into an ``(h, w)`` bool mask.

    Raises:
        DTypeError: ``rle`` is not a mapping with ``size`` and ``counts``.
        ShapeError: negative runs, or runs that do not add up to ``h * w``.

    Example:
        >>> rle_mask({"size": [2, 3], "counts": [1, 2, 3]}).int().tolist()
        [[0, 1, 0], [1, 0, 0]]
    """
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise DTypeError(
            f"Expected an RLE as a mapping with 'size' and 'counts', but got {rle!r:.80}.")
    height, width = (int(v) for v in rle["size"])
    raw = rle["counts"]
    counts = decode_rle_counts(raw) if isinstance(raw, (str, bytes)) else [int(c) for c in raw]
    runs = np.asarray(counts, dtype=np.int64)
    if (runs < 0).any() or int(runs.sum()) != height * width:
        raise ShapeError(
            f"Expected RLE runs that are non-negative and add up to h * w = {height * width}, "
            "but they add up to "
            f"{int(runs.sum())}{' with negative runs' if (runs < 0).any() else ''}."
        )
    flat = np.repeat(np.arange(len(runs)) % 2 == 1, runs)
    return torch.from_numpy(flat.reshape(width, height).T.copy())
