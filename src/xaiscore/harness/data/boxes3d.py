"""Boxes in 2-D and 3-D: checks, bounding boxes of mask components, and rasterisation.

The box layout follows :mod:`xaiscore.functional.box_localization`: a box is
``(x0, y0, x1, y1)`` on a 2-D image ``(C, H, W)`` and ``(x0, y0, z0, x1, y1, z1)``
on a volume ``(C, D, H, W)``, in voxels, end-exclusive, ``x`` along the last
tensor axis (``W``), ``y`` along ``H`` and ``z`` along ``D``. Voxel ``(k, i, j)``
(slice, row, column) covers ``[j, j + 1) x [i, i + 1) x [k, k + 1)``, so the box
``(0, 0, 0, W, H, D)`` is the whole volume.

:func:`rasterize_boxes` is the one place the harness turns boxes into masks:
2-D boxes go to :func:`xaiscore.functional.boxes_to_mask`; 3-D boxes are
rasterised here by the same pixel-centre (``"center"``) and overlap
(``"cover"``) rules, extended by a third axis.

Example:
    >>> import torch
    >>> m = rasterize_boxes([torch.tensor([[1.0, 0.0, 2.0, 3.0, 1.0, 3.0]])], (4, 2, 3))
    >>> m.shape, m[0, 0].nonzero().tolist()
    (torch.Size([1, 1, 4, 2, 3]), [[2, 0, 1], [2, 0, 2]])
    >>> mask_boxes_3d(m[0])
    [(1.0, 0.0, 2.0, 3.0, 1.0, 3.0)]
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from xaiscore._checks import OptionError, ShapeError, check_option
from xaiscore.harness.data.errors import DatasetError

__all__ = [
    "Box3d",
    "box_width",
    "empty_boxes",
    "box3d_problem",
    "check_box3d",
    "mask_boxes_3d",
    "rasterize_boxes",
]

Box3d = tuple[float, float, float, float, float, float]

_EPS = 1e-6


def box_width(spatial_dims: int) -> int:
    """The number of coordinates of a box on ``spatial_dims`` axes: 4 in 2-D, 6 in 3-D."""
    if spatial_dims not in (2, 3):
        raise ShapeError(
            f"Expected boxes on 2-D or 3-D images, but the image has {spatial_dims} spatial dimension(s)."
        )
    return 2 * spatial_dims


def empty_boxes(spatial_dims: int) -> Tensor:
    """``(0, 4)`` or ``(0, 6)`` float32: no boxes."""
    return torch.zeros(0, box_width(spatial_dims))


def box3d_problem(box: Sequence[float], shape: tuple[int, int, int] | None) -> str | None:
    """Why ``box`` is unusable in a volume of ``shape = (D, H, W)`` (``None`` when it is fine).

    A box needs a positive extent along x, y and z and must lie inside
    ``[0, W] x [0, H] x [0, D]`` (a tolerance of 1e-6 voxels absorbs rounding).
    """
    x0, y0, z0, x1, y1, z1 = box
    if not (x1 > x0 and y1 > y0 and z1 > z0):
        return (f"box {_fmt(box)} has no volume (expected x1 > x0, y1 > y0 and z1 > z0)")
    if shape is None:
        return None
    depth, height, width = shape
    if min(x0, y0, z0) < -_EPS or x1 > width + _EPS or y1 > height + _EPS or z1 > depth + _EPS:
        return (f"box {_fmt(box)} lies outside the volume (expected inside 0..{width} x 0..{height} "
                f"x 0..{depth} voxels along x, y, z)")
    return None


def _clip(box: Sequence[float], shape: tuple[int, int, int]) -> Box3d | None:
    depth, height, width = shape
    low = [max(v, 0.0) for v in box[:3]]
    high = [min(box[3], float(width)), min(box[4], float(height)), min(box[5], float(depth))]
    if all(h > lo for lo, h in zip(low, high)):
        return (low[0], low[1], low[2], high[0], high[1], high[2])
    return None


def check_box3d(box: Sequence[float], shape: tuple[int, int, int] | None, *, clip: bool,
                file: str | os.PathLike[str], row: int | str | None, where: str) -> Box3d:
    """``box`` if usable in ``shape`` (clipped when ``clip`` and it sticks out), else :class:`DatasetError`.

    ``where`` names the volume in the message (e.g. ``"volume case_001"``).
    """
    problem = box3d_problem(box, shape)
    if problem is not None and clip and shape is not None and "outside" in problem:
        clipped = _clip(box, shape)
        if clipped is not None:
            return clipped
        problem = problem.replace("lies outside", "lies entirely outside")
    if problem is not None:
        raise DatasetError(f"{problem} of {where}", file=file, row=row)
    return tuple(float(v) for v in box)  # type: ignore[return-value]


def _fmt(box: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"


def mask_boxes_3d(mask: Tensor | np.ndarray) -> list[Box3d]:
    """The ``(x0, y0, z0, x1, y1, z1)`` bounding boxes of the 26-connected components of a mask.

    Args:
        mask: ``(1, D, H, W)`` or ``(D, H, W)`` bool.

    Returns:
        One box per component, in the order of ``scipy.ndimage.label`` (first voxel in
        C order), end-exclusive voxels.
    """
    from scipy import ndimage

    array = mask.cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    if array.ndim == 4:
        array = array[0]
    if array.ndim != 3:
        raise ShapeError(f"Expected a mask (1, D, H, W) or (D, H, W), but got shape {array.shape}.")
    labels, _ = ndimage.label(array, structure=np.ones((3, 3, 3), dtype=bool))
    return [
        (float(x.start), float(y.start), float(z.start), float(x.stop), float(y.stop), float(z.stop))
        for z, y, x in ndimage.find_objects(labels) if z is not None
    ]


def rasterize_boxes(boxes: Sequence[Tensor], size: Sequence[int], *, rule: str = "center",
                    device: torch.device | str | None = None) -> Tensor:
    """Boxes to a boolean mask ``(B, 1, *size)``: 2-D through ``boxes_to_mask``, 3-D here.

    Args:
        boxes: ``B`` tensors ``(N_i, 4)`` (2-D) or ``(N_i, 6)`` (3-D); ``N_i`` may be 0.
        size: ``(H, W)`` or ``(D, H, W)``.
        rule: ``"center"``: a voxel is in a box when its centre is (end-exclusive);
            ``"cover"``: when it overlaps the box with positive volume.
        device: Device of the result (default: that of the first box tensor).

    Raises:
        ShapeError: a size of other than 2 or 3 sides, or boxes of the wrong width.
        OptionError: an unknown rule, or a box with a negative extent.

    Shape:
        - boxes: ``B x (N_i, 2 * len(size))``
        - output: ``(B, 1, *size)`` bool
    """
    check_option(rule, "rule", ("center", "cover"))
    if len(size) == 2:
        from xaiscore.functional.localization import boxes_to_mask

        return boxes_to_mask(list(boxes), tuple(size), rule=rule, device=device)  # type: ignore[arg-type]
    if len(size) != 3:
        raise ShapeError(f"Expected `size` as (H, W) or (D, H, W), but got {tuple(size)}.")
    # TODO(merge): once xaiscore.functional.boxes_to_mask takes (D, H, W), call it here instead.
    return _boxes_to_mask_3d(boxes, tuple(int(s) for s in size), rule=rule, device=device)


def _stack_3d(boxes: Sequence[Tensor], device: torch.device | str | None) -> Tensor:
    """``(B, N, 6)`` float, rows of NaN where a sample has fewer boxes."""
    if len(boxes) == 0:
        raise ShapeError("Expected `boxes` for at least one sample, but got an empty sequence.")
    for i, item in enumerate(boxes):
        if item.ndim != 2 or item.shape[1] != 6:
            raise ShapeError(
                f"Expected `boxes[{i}]` of shape (N, 6) (x0, y0, z0, x1, y1, z1) for a volume, "
                f"but got {tuple(item.shape)}."
            )
    target = torch.device(device) if device is not None else boxes[0].device
    longest = max(1, max(item.shape[0] for item in boxes))
    out = torch.full((len(boxes), longest, 6), math.nan, dtype=torch.float64, device=target)
    for i, item in enumerate(boxes):
        out[i, : item.shape[0]] = item.to(device=target, dtype=torch.float64)
    return out


def _boxes_to_mask_3d(boxes: Sequence[Tensor], size: tuple[int, int, int], *, rule: str,
                      device: torch.device | str | None) -> Tensor:
    if any(s <= 0 for s in size):
        raise ShapeError(f"Expected `size` as (D, H, W) with positive sides, but got {size}.")
    padded = _stack_3d(boxes, device)
    valid = ~torch.isnan(padded).any(dim=2)  # (B, N)
    low, high = padded[..., :3], padded[..., 3:]  # x, y, z
    negative = valid & (high < low).any(dim=2)
    if bool(negative.any()):
        sample, row = (int(v) for v in negative.nonzero()[0])
        raise OptionError(
            f"Expected boxes with non-negative extents (x1 >= x0, y1 >= y0, z1 >= z0), but box {row} "
            f"of sample {sample} is {padded[sample, row].tolist()}."
        )
    per_axis = []
    for axis, n in enumerate((size[2], size[1], size[0])):  # x (W), y (H), z (D)
        cells = torch.arange(n, device=padded.device, dtype=padded.dtype)
        lo, hi = low[..., axis, None], high[..., axis, None]
        if rule == "center":
            inside = (cells + 0.5 >= lo) & (cells + 0.5 < hi)
        else:
            inside = (cells + 1 > lo) & (cells < hi) & (hi > lo)
        per_axis.append(inside & valid[..., None])  # (B, N, n)
    in_x, in_y, in_z = per_axis
    batch, count = valid.shape
    in_zy = (in_z[..., :, None] & in_y[..., None, :]).reshape(batch, count, size[0] * size[1])
    # union over boxes: (B, D H, N) @ (B, N, W) counts the boxes covering each voxel
    counts = torch.bmm(in_zy.transpose(1, 2).to(torch.float32), in_x.to(torch.float32))
    return (counts > 0.5).reshape(batch, 1, *size)
