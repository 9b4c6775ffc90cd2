"""Boxes in 2-D and 3-D: checks, bounding boxes of mask components, and rasterisation.

The box layout follows :mod:`xaiscore.functional.box_localization`: a box is
``(x0, y0, x1, y1)`` on a 2-D image ``(C, H, W)`` and ``(x0, y0, z0, x1, y1, z1)``
on a volume ``(C, D, H, W)``, in voxels, end-exclusive, ``x`` along the last
tensor axis (``W``), ``y`` along ``H`` and ``z`` along ``D``. Voxel ``(k, i, j)``
(slice, row, column) covers ``[j, j + 1) x [i, i + 1) x [k, k + 1)``, so the box
``(0, 0, 0, W, H, D)`` is the whole volume.

:func:`rasterize_boxes` is the one place the harness turns boxes into masks
(through :func:`xaiscore.functional.boxes_to_mask`, in 2-D and 3-D, by the
pixel-centre ``"center"`` or overlap ``"cover"`` rule).

Example:
    >>> import torch
    >>> m = rasterize_boxes([torch.tensor([[1.0, 0.0, 2.0, 3.0, 1.0, 3.0]])], (4, 2, 3))
    >>> m.shape, m[0, 0].nonzero().tolist()
    (torch.Size([1, 1, 4, 2, 3]), [[2, 0, 1], [2, 0, 2]])
    >>> mask_boxes_3d(m[0])
    [(1.0, 0.0, 2.0, 3.0, 1.0, 3.0)]
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from xaiscore._checks import ShapeError, check_option
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
            f"Expected boxes on 2-D or 3-D images, but the image has {spatial_dims} spatial "
            "dimension(s)."
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
        return (
            f"box {_fmt(box)} lies outside the volume (expected inside 0..{width} x 0..{height} "
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
    """``box`` if usable in ``shape`` (clipped when ``clip`` and it sticks out), else
    :class:`DatasetError`.

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
        (float(x.start), float(y.start), float(z.start), float(x.stop), float(y.stop),
         float(z.stop))
        for z, y, x in ndimage.find_objects(labels) if z is not None
    ]


def rasterize_boxes(boxes: Sequence[Tensor], size: Sequence[int], *, rule: str = "center",
                    device: torch.device | str | None = None) -> Tensor:
    """Boxes to a boolean mask ``(B, 1, *size)`` by :func:`xaiscore.functional.boxes_to_mask`
    (2-D and 3-D).

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
    from xaiscore.functional.localization import boxes_to_mask

    check_option(rule, "rule", ("center", "cover"))
    if len(size) not in (2, 3):
        raise ShapeError(f"Expected `size` as (H, W) or (D, H, W), but got {tuple(size)}.")
    return boxes_to_mask(list(boxes), tuple(int(s) for s in size), rule=rule, device=device)  # type: ignore[arg-type]
