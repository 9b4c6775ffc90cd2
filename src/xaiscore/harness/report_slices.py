"""Report examples of volumes: three orthogonal slices through each example's lesion centre, side by
side.

The report's example grid (:mod:`~xaiscore.harness.plots`) draws 2-D images. For a volume
``(C, D, H, W)`` the runner keeps, instead of the volume, one 2-D *strip* per example: the
axial slice (``z`` fixed, rows ``y``, columns ``x``), the coronal slice (``y`` fixed, rows
``z``, columns ``x``) and the sagittal slice (``x`` fixed, rows ``z``, columns ``y``) through
the centre of the example's first box (else of its mask, else of the volume), left to right
with a one-pixel gap. Each method's map is cut the same way, and every box that the slice
passes through is drawn in each panel, so the grid shows the image, the ground truth and
every method's map in three orthogonal views.

Example:
    >>> import torch
    >>> volume = torch.zeros(1, 4, 5, 6)  # (C, D, H, W)
    >>> strip, boxes = slice_strip(volume, torch.tensor([[1.0, 2.0, 1.0, 3.0, 4.0, 3.0]]))
    >>> strip.shape, boxes.tolist()  # width 6 + 1 + 6 + 1 + 5, height max(5, 4)
    (torch.Size([1, 5, 19]), [[1.0, 2.0, 3.0, 4.0], [8.0, 1.0, 10.0, 3.0], [16.0, 1.0, 18.0, 3.0]])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["slice_centre", "slice_strip", "volume_examples"]

#: The panels, left to right.
PANELS = ("axial", "coronal", "sagittal")


def slice_centre(shape: Sequence[int], boxes: Tensor,
                 mask: Tensor | None = None) -> tuple[int, int, int]:
    """Voxel indices ``(x, y, z)`` of the slices: the first box's centre, else the mask's centroid,
    else the middle."""
    depth, height, width = (int(s) for s in shape)
    if boxes.numel() and bool(torch.isfinite(boxes[0]).all()):
        x0, y0, z0, x1, y1, z1 = (float(v) for v in boxes[0])
        centre = ((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2)
    elif mask is not None and bool(mask.any()):
        z, y, x = mask.reshape(depth, height, width).nonzero().float().mean(dim=0).tolist()
        centre = (x + 0.5, y + 0.5, z + 0.5)
    else:
        centre = (width / 2, height / 2, depth / 2)
    return tuple(min(max(int(math.floor(c)), 0), n - 1)  # type: ignore[return-value]
                 for c, n in zip(centre, (width, height, depth)))


def _panels(volume: Tensor, centre: tuple[int, int, int]) -> list[Tensor]:
    x, y, z = centre
    return [volume[:, z], volume[:, :, y], volume[:, :, :, x]]  # (C, H, W), (C, D, W), (C, D, H)


def slice_strip(volume: Tensor, boxes: Tensor, *, centre: tuple[int, int, int] | None = None,
                fill: float | None = None) -> tuple[Tensor, Tensor]:
    """The axial, coronal and sagittal slices of ``volume`` side by side, and the boxes in the
    strip.

    Args:
        volume: ``(C, D, H, W)``.
        boxes: ``(N, 6)`` ``(x0, y0, z0, x1, y1, z1)`` (rows of NaN are ignored).
        centre: ``(x, y, z)`` voxel indices of the slices (default :func:`slice_centre`).
        fill: Value of the gap and padding (default: the volume's minimum).

    Returns:
        ``(strip (C, max(H, D), 2 W + H + 2), boxes (3 N, 4))``: each box of a panel whose
        slice passes through it as ``xyxy`` in the strip, NaN otherwise.
    """
    channels, depth, height, width = volume.shape
    if centre is None:
        centre = slice_centre((depth, height, width), boxes)
    panels = _panels(volume, centre)
    rows = max(height, depth)
    value = float(volume.min()) if fill is None else fill
    strip = torch.full((channels, rows, 2 * width + height + 2), value, dtype=volume.dtype)
    offsets = [0, width + 1, 2 * width + 2]
    for panel, offset in zip(panels, offsets):
        strip[:, : panel.shape[1], offset : offset + panel.shape[2]] = panel
    out = torch.full((3 * boxes.shape[0], 4), math.nan)
    x, y, z = centre
    for n, box in enumerate(boxes.to(torch.float32)):
        if not bool(torch.isfinite(box).all()):
            continue
        x0, y0, z0, x1, y1, z1 = (float(v) for v in box)
        views = [(z0 <= z + 0.5 < z1, (x0, y0, x1, y1)), (y0 <= y + 0.5 < y1, (x0, z0, x1, z1)),
                 (x0 <= x + 0.5 < x1, (y0, z0, y1, z1))]
        for k, ((hit, (a0, b0, a1, b1)), offset) in enumerate(zip(views, offsets)):
            if hit:
                out[3 * n + k] = torch.tensor([a0 + offset, b0, a1 + offset, b1])
    return strip, out


def volume_examples(x: Tensor, mask: Tensor, boxes: Sequence[Tensor], indices: Sequence[int],
                    maps: Mapping[str, Tensor], n_examples: int) -> dict[str, Any]:
    """The runner's report examples of a batch of volumes, as strips of three slices
    (see the module docs).

    Args:
        x: ``(B, C, D, H, W)``.
        mask: ``(B, 1, D, H, W)`` bool.
        boxes: ``B`` tensors ``(N_i, 6)``.
        indices: The dataset index of each sample.
        maps: Method name -> ``(B, D, H, W)`` maps (channels summed).
        n_examples: The most examples kept (positives first).

    Returns:
        The runner's example dict (``index``, ``positive``, ``image``, ``mask``, ``boxes``,
        ``attributions``) with 2-D strips.
    """
    has_mask = mask.flatten(1).any(dim=1).cpu()
    order = sorted(range(len(x)), key=lambda i: (not bool(has_mask[i]), i))[:n_examples]
    images, masks, strip_boxes, strips = [], [], [], {name: [] for name in maps}
    for i in order:
        volume = x[i].to("cpu", torch.float32)
        sample_boxes = boxes[i].to("cpu", torch.float32).reshape(-1, 6)
        centre = slice_centre(volume.shape[1:], sample_boxes, mask[i, 0].cpu())
        image, drawn = slice_strip(volume, sample_boxes, centre=centre)
        images.append(image)
        strip_boxes.append(drawn)
        masks.append(slice_strip(mask[i].cpu().float(), sample_boxes[:0], centre=centre,
                                 fill=0.0)[0][0] > 0.5)
        for name, m in maps.items():
            strips[name].append(slice_strip(m[i : i + 1].to("cpu", torch.float32), sample_boxes[:0],
                                            centre=centre,
                                            fill=0.0)[0][0])
    width = max([b.shape[0] for b in strip_boxes] + [1])
    padded = torch.full((len(order), width, 4), math.nan)
    for row, drawn in enumerate(strip_boxes):
        padded[row, : drawn.shape[0]] = drawn
    return {
        "index": [indices[i] for i in order],
        "positive": [bool(has_mask[i]) for i in order],
        "image": torch.stack(images) if images else torch.zeros(0),
        "mask": torch.stack(masks) if masks else torch.zeros(0),
        "boxes": padded,
        "attributions": {name: torch.stack(v) for name, v in strips.items() if v},
    }
