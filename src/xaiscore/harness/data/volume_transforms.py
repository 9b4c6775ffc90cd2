"""Geometry of volumes: resampling to a shape or a spacing moves boxes and masks with the volume.

The rules are those of the 2-D transforms (:mod:`~xaiscore.harness.data.transforms`), with a
third axis: resampling ``(D, H, W)`` to ``(D', H', W')`` scales the box coordinates ``x`` by
``W'/W``, ``y`` by ``H'/H`` and ``z`` by ``D'/D`` (edges stay edges: the box ``(0, 0, 0, W,
H, D)`` stays the whole volume); masks follow
:func:`~xaiscore.harness.data.mask_resize.resize_mask` (``"nearest"``: the input voxel under
each output voxel's centre, which equals rasterising a grid-aligned box after the resize;
``"area"``: covered share of the output voxel). ``meta["spacing"]`` (mm along ``D, H, W``) and
``meta["affine"]`` (voxel centre -> world mm) are updated so world coordinates stay put.

Example:
    >>> import torch
    >>> from xaiscore.harness.data.records import SampleRecord
    >>> r = SampleRecord(torch.rand(1, 10, 8, 8), 1, torch.tensor([[2.0, 2.0, 0.0, 6.0, 4.0, 5.0]]),
    ...                  ("Lesion",), None, "v", "Lesion", meta={"spacing": (3.0, 1.0, 1.0)})
    >>> out = Resample(spacing=(1.5, 2.0, 2.0))(r)
    >>> out.image.shape, out.boxes.tolist(), out.meta["spacing"]
    (torch.Size([1, 20, 4, 4]), [[1.0, 1.0, 0.0, 3.0, 2.0, 10.0]], (1.5, 2.0, 2.0))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from xaiscore._checks import DTypeError, OptionError, ShapeError, check_fraction, check_option
from xaiscore.harness.data.mask_resize import MaskRule, resize_mask
from xaiscore.harness.data.mask_resize import check_size as _check_size
from xaiscore.harness.data.records import SampleRecord

__all__ = ["resize_boxes_3d", "Resample"]


def resize_boxes_3d(boxes: Tensor, from_size: Sequence[int], to_size: Sequence[int]) -> Tensor:
    """Scale ``(x0, y0, z0, x1, y1, z1)`` boxes from a ``(D, H, W)`` grid to a ``(D', H', W')``
    grid.

    Shape:
        - boxes: ``(N, 6)``
        - output: ``(N, 6)``

    Example:
        >>> resize_boxes_3d(torch.tensor([[1.0, 2.0, 3.0, 4.0, 6.0, 8.0]]), (8, 8, 8), (4, 16, 8)).tolist()
        [[1.0, 4.0, 1.5, 4.0, 12.0, 4.0]]
    """  # noqa: E501
    (d0, h0, w0) = _check_size(from_size, "from_size", 3)
    (d1, h1, w1) = _check_size(to_size, "to_size", 3)
    new = torch.tensor([w1, h1, d1, w1, h1, d1], dtype=boxes.dtype, device=boxes.device)
    old = torch.tensor([w0, h0, d0, w0, h0, d0], dtype=boxes.dtype, device=boxes.device)
    return boxes * new / old


def _positive_triple(value: object, name: str) -> tuple[float, float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value,) * 3
    if not isinstance(value, Sequence) or len(value) != 3 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise DTypeError(
            f"Expected `{name}` as a number or three numbers (D, H, W), but got {value!r}.")
    if min(value) <= 0:
        raise OptionError(f"Expected positive `{name}`, but got {tuple(value)}.")
    return tuple(float(v) for v in value)  # type: ignore[return-value]


class Resample:
    """Resample a volume ``(C, D, H, W)`` to ``shape`` or to ``spacing`` (mm along ``D, H, W``).

    Args:
        shape: The output ``(D, H, W)`` (or one int for a cube).
        spacing: The output spacing; the shape is ``round(n * old / new)`` per axis (at least
            1) and the spacing actually reached is stored (``old * n / n'``). Needs
            ``meta["spacing"]`` (the volume readers set it).
        mode: Image interpolation, ``"trilinear"`` (default) or ``"nearest"``.
        mask_rule: ``"nearest"`` (default) or ``"area"``; ``threshold`` for ``"area"``.

    Raises:
        OptionError: both or neither of ``shape`` and ``spacing``; ``spacing`` without
            ``meta["spacing"]``.
        ShapeError: a record that is not a volume.
    """

    def __init__(self, shape: int | Sequence[int] | None = None, *,
                 spacing: float | Sequence[float] | None = None,
                 mode: str = "trilinear", mask_rule: MaskRule = "nearest",
                 threshold: float = 0.5) -> None:
        if (shape is None) == (spacing is None):
            raise OptionError("Expected exactly one of `shape` and `spacing` for Resample.")
        self.shape = None if shape is None else _check_size(shape, "shape", 3)
        self.spacing = None if spacing is None else _positive_triple(spacing, "spacing")
        self.mode = check_option(mode, "mode", ("trilinear", "nearest"))
        self.mask_rule = check_option(mask_rule, "mask_rule", ("nearest", "area"))
        self.threshold = check_fraction(threshold, "threshold", low_inclusive=False)

    def _target(self, record: SampleRecord, size: tuple[int, int, int]) -> tuple[int, ...]:
        if self.shape is not None:
            return self.shape
        old = record.meta.get("spacing")
        if old is None:
            raise OptionError(
                f"Expected meta['spacing'] on record {record.source_id!r} to resample to a "
                "spacing, but it has none."
            )
        return tuple(max(1, round(n * float(o) / s)) for n, o, s in zip(size, old, self.spacing))

    def __call__(self, record: SampleRecord) -> SampleRecord:
        if record.image.ndim != 4:
            raise ShapeError(
                f"Expected a volume (C, D, H, W) for Resample, but record {record.source_id!r} has "
                f"shape {tuple(record.image.shape)}."
            )
        size = tuple(int(n) for n in record.image.shape[1:])
        target = self._target(record, size)  # type: ignore[arg-type]
        meta = dict(_geometry(record, size, target))
        meta["transforms"] = (*record.meta.get("transforms", ()),
                              f"resample({'x'.join(map(str, size))}->{'x'.join(map(str, target))})")
        if target == size:
            return record.with_updates(meta=meta)
        image = record.image.unsqueeze(0).float()
        if self.mode == "trilinear":
            image = F.interpolate(image, size=target, mode="trilinear", align_corners=False)
        else:
            image = F.interpolate(image, size=target, mode="nearest-exact")

        def resize(m: Tensor) -> Tensor:
            return resize_mask(m, target, rule=self.mask_rule, threshold=self.threshold)

        return record.with_updates(
            image=image[0].to(record.image.dtype),
            boxes=resize_boxes_3d(record.boxes, size, target),
            mask=None if record.mask is None else resize(record.mask),
            extra_masks={name: resize(m) for name, m in record.extra_masks.items()},
            meta=meta,
        )


def _geometry(record: SampleRecord, size: Sequence[int],
              target: Sequence[int]) -> dict[str, object]:
    """New ``spacing`` and ``affine`` after resampling ``size`` -> ``target``
    (when the record has them)."""
    factors = [n / m for n, m in zip(size, target)]  # old voxels per new voxel along D, H, W
    out: dict[str, object] = {}
    if "spacing" in record.meta:
        out["spacing"] = tuple(float(s) * f for s, f in zip(record.meta["spacing"], factors))
    if "affine" in record.meta:
        # new centre index c' <-> old index (c' + 1/2) f - 1/2, per voxel axis x, y, z
        scale = np.eye(4)
        for axis, f in enumerate(reversed(factors)):
            scale[axis, axis], scale[axis, 3] = f, (f - 1.0) / 2.0
        affine = np.asarray(record.meta["affine"], dtype=np.float64) @ scale
        out["affine"] = tuple(tuple(float(v) for v in row) for row in affine)
    return out
