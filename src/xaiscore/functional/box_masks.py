"""Boxes to masks: rasterize bounding boxes on the pixel (or voxel) grid, in 1-D to 3-D.

The box convention of the whole library (the box-level kernels of
:mod:`xaiscore.functional.box_localization` and :func:`~xaiscore.functional.mask_to_boxes`
read and write the same): corners in pixel units, end-exclusive, ``x`` along the **last**
spatial axis (width), ``y`` the one before it (height), ``z`` the first of three (depth):

* 1-D: ``(x0, x1)`` on maps of size ``(W,)``;
* 2-D: ``(x0, y0, x1, y1)`` on ``(H, W)``;
* 3-D: ``(x0, y0, z0, x1, y1, z1)`` on ``(D, H, W)``.

Pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)`` (voxel ``(k, i, j)`` also
``[k, k + 1)`` along ``z``). See ``docs/box_localization.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from xaiscore._checks import (
    DeviceError,
    DTypeError,
    OptionError,
    ShapeError,
    check_option,
    check_tensor,
)

__all__ = ["boxes_to_mask"]

_EXTENTS = ("width", "width and height", "width, height and depth")


def _check_size(size: object) -> tuple[int, ...]:
    if (
        isinstance(size, (str, bytes))
        or not isinstance(size, Sequence)
        or not 1 <= len(size) <= 3
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        raise ShapeError(
            f"Expected `size` as (W,), (H, W) or (D, H, W) with positive ints, but got {size!r}."
        )
    return tuple(int(s) for s in size)


def boxes_to_mask(
    boxes: Tensor | Sequence[Tensor],
    size: tuple[int, ...] | Sequence[int],
    *,
    box_format: Literal["xyxy", "xywh"] = "xyxy",
    rule: Literal["center", "cover"] = "center",
    device: torch.device | str | None = None,
) -> Tensor:
    r"""Rasterize bounding boxes into a boolean mask ``(B, 1, *size)``: images or volumes.

    Coordinates are in pixels with the origin at the top-left (front) corner;
    pixel ``(i, j)`` (row ``i``, column ``j``) covers the square
    ``[j, j + 1) x [i, i + 1)``, voxel ``(k, i, j)`` the cube that adds
    ``[k, k + 1)`` along ``z``. ``x`` is the **last** axis: a 2-D box is
    ``(x0, y0, x1, y1)`` on an ``(H, W)`` image, a 3-D box
    ``(x0, y0, z0, x1, y1, z1)`` on a ``(D, H, W)`` volume, a 1-D box
    ``(x0, x1)``. Boxes are end-exclusive:

    * ``rule="center"`` (default): a pixel is in a box when its centre
      (``j + 0.5`` along ``x``, ...) lies in ``[x0, x1)`` along every axis.
      For integer coordinates this is exactly columns ``x0 .. x1 - 1``, rows
      ``y0 .. y1 - 1`` (slices ``z0 .. z1 - 1``); a box thinner than a pixel may
      cover none.
    * ``rule="cover"``: a pixel is in a box when it overlaps the box with
      positive volume (columns ``floor(x0) .. ceil(x1) - 1``), so every box
      with positive volume covers at least one pixel.

    Several boxes per sample are united. Boxes are clipped to the image
    (anything outside ``[0, W) x [0, H) (x [0, D))`` is dropped).

    Args:
        boxes: A tensor ``(B, N, 2 d)`` or a sequence of ``B`` tensors ``(N_i, 2 d)``
            (``N_i`` may be 0), ``d = len(size)``. Rows holding NaN are padding and ignored.
        size: ``(H, W)``, ``(D, H, W)`` or ``(W,)``; sides need not be equal.
        box_format: ``"xyxy"``: the two corners, ``(x0, y0, x1, y1)`` (3-D:
            ``(x0, y0, z0, x1, y1, z1)``); ``"xywh"``: the first corner and the
            extents, ``(x0, y0, width, height)`` (3-D: ``(x0, y0, z0, width, height,
            depth)``).
        rule: ``"center"`` or ``"cover"`` (see above).
        device: Device of the result (default: that of ``boxes``).

    Raises:
        DTypeError: ``boxes`` not tensors, or complex or bool.
        ShapeError: boxes not of shape ``(N, 2 d)`` per sample, or a bad ``size``.
        OptionError: a box with a negative extent.

    Shape:
        - boxes: ``(B, N, 2 d)`` or ``B x (N_i, 2 d)``
        - output: ``(B, 1, *size)`` bool

    Example:
        >>> m = boxes_to_mask(torch.tensor([[[1.0, 0.0, 3.0, 2.0]]]), (3, 4))
        >>> m[0, 0].int().tolist()
        [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
        >>> thin = [torch.tensor([[1.2, 0.0, 1.4, 1.0]])]
        >>> boxes_to_mask(thin, (1, 3), rule="cover")[0, 0, 0].tolist()
        [False, True, False]
        >>> box = torch.tensor([[[1.0, 0.0, 2.0, 3.0, 1.0, 3.0]]])  # x0, y0, z0, x1, y1, z1
        >>> v = boxes_to_mask(box, (3, 2, 4))  # (D, H, W)
        >>> v[0, 0].nonzero().tolist()  # slice 2, row 0, columns 1 and 2
        [[2, 0, 1], [2, 0, 2]]
    """
    check_option(box_format, "box_format", ("xyxy", "xywh"))
    check_option(rule, "rule", ("center", "cover"))
    size = _check_size(size)
    dims = len(size)
    padded = _pad_boxes(boxes, size)
    if device is not None:
        padded = padded.to(device)
    if not padded.is_floating_point():
        padded = padded.to(torch.float32)
    valid = ~torch.isnan(padded).any(dim=2)  # (B, N)
    start, third = padded[..., :dims], padded[..., dims:]
    extent, end = (third, start + third) if box_format == "xywh" else (third - start, third)
    negative = valid & (extent < 0).any(dim=2)
    if bool(negative.any()):
        sample, row = (int(v) for v in negative.nonzero()[0])
        raise OptionError(
            f"Expected boxes with non-negative {_EXTENTS[dims - 1]} in format {box_format!r}, "
            f"but box {row} of sample {sample} is {padded[sample, row].tolist()}."
        )
    inside = []  # per spatial axis, first to last: (B, N, side)
    for axis, side in enumerate(size):
        coordinate = dims - 1 - axis  # x (0) is the last axis
        low, high = start[..., coordinate, None], end[..., coordinate, None]
        cells = torch.arange(side, device=padded.device, dtype=padded.dtype)
        if rule == "center":
            member = (cells + 0.5 >= low) & (cells + 0.5 < high)
        else:  # overlap with positive volume: a box of zero extent covers nothing
            member = (cells + 1 > low) & (cells < high) & (high > low)
        inside.append((member & valid[..., None]).to(torch.float32))
    # union over boxes: the number of boxes covering each pixel, a sum over N of outer products
    letters = "pqr"[:dims]  # the spatial axes, first to last
    counts = torch.einsum(",".join(f"bn{letter}" for letter in letters) + f"->b{letters}", *inside)
    return (counts > 0.5).unsqueeze(1)


def _check_box_dtype(boxes: Tensor, name: str) -> Tensor:
    boxes = check_tensor(boxes, name)
    if boxes.is_complex() or boxes.dtype == torch.bool:
        raise DTypeError(
            f"Expected `{name}` to hold real coordinates, but got dtype {boxes.dtype}."
        )
    return boxes


def _pad_boxes(boxes: Tensor | Sequence[Tensor], size: tuple[int, ...]) -> Tensor:
    width = 2 * len(size)
    layout = f"(N, {width}) for `size` {size}"
    if isinstance(boxes, Tensor):
        _check_box_dtype(boxes, "boxes")
        if boxes.ndim != 3 or boxes.shape[2] != width:
            raise ShapeError(
                f"Expected `boxes` of shape (B, N, {width}), or a list of {layout} tensors, "
                f"but got a tensor of shape {tuple(boxes.shape)}."
            )
        return boxes
    if isinstance(boxes, (str, bytes)) or not isinstance(boxes, Sequence):
        raise DTypeError(
            f"Expected `boxes` as a tensor (B, N, {width}) or a sequence of {layout} tensors, "
            f"but got {type(boxes).__name__}."
        )
    if len(boxes) == 0:
        raise ShapeError("Expected `boxes` for at least one sample, but got an empty sequence.")
    items = []
    for i, item in enumerate(boxes):
        item = _check_box_dtype(item, f"boxes[{i}]")
        if item.ndim == 1 and item.shape[0] == width:
            item = item.unsqueeze(0)
        if item.ndim != 2 or item.shape[1] != width:
            raise ShapeError(
                f"Expected `boxes[{i}]` of shape {layout}, but got {tuple(item.shape)}."
            )
        items.append(item)
    longest = max(1, max(item.shape[0] for item in items))
    dtype = (
        torch.promote_types(items[0].dtype, torch.float32)
        if items[0].is_floating_point()
        else torch.float32
    )
    out = torch.full((len(items), longest, width), math.nan, dtype=dtype, device=items[0].device)
    for i, item in enumerate(items):
        if item.device != out.device:
            raise DeviceError(
                f"Expected every `boxes[i]` on {out.device}, but `boxes[{i}]` is on {item.device}."
            )
        out[i, : item.shape[0]] = item.to(dtype)
    return out
