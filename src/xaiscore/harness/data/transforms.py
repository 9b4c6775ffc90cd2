"""Geometry transforms: boxes and masks follow every resize, crop and pad of the image.

Coordinates follow :func:`xaiscore.functional.boxes_to_mask`: pixel ``(i, j)``
covers ``[j, j + 1) x [i, i + 1)``, boxes are ``xyxy``, end-exclusive, in
absolute pixels of the current canvas. Then

* **resize** from ``(H, W)`` to ``(H', W')`` scales x by ``W'/W`` and y by
  ``H'/H`` (per axis: non-square images are not letterboxed unless asked);
* **crop** to ``top, left, height, width`` shifts boxes by ``(-left, -top)``,
  clips them to the crop and drops boxes left with no area (with their labels);
* **pad** by ``top, bottom, left, right`` shifts boxes by ``(left, top)``.

Masks (the record's ``mask`` and every ``extra_masks`` entry) are cropped and
padded exactly and resized by one of two rules (:func:`resize_mask`):

* ``"nearest"`` (default): output pixel ``k`` along an axis takes input pixel
  ``floor((k + 0.5) * n_in / n_out)``, the one under its centre. This is the
  pixel-centre rule of ``boxes_to_mask``. For a box on the pixel grid (integer
  coordinates) the resized mask *equals* the box rasterised after the resize,
  at any scale. For other boxes, when downsampling, both lie within one pixel
  of the scaled box's true edges, and so within one pixel of each other on
  each border (a box thinner than a pixel after the resize may rasterise to
  nothing while its resized mask keeps a row). When upsampling, add half an
  input pixel: the input mask had already lost that sub-pixel detail.
* ``"area"``: an output pixel is in the mask when at least ``threshold``
  (default 0.5) of its area is covered by input mask pixels (exact overlaps,
  any scale factor).

A record whose ``mask`` is ``None`` keeps it ``None``: its boxes are
rasterised only at the end, by :func:`~xaiscore.harness.data.records.collate`,
at the final resolution (no resampling error at all).

Every transform appends a short description to ``meta["transforms"]``.

Example:
    >>> import torch
    >>> from xaiscore.harness.data.records import SampleRecord
    >>> r = SampleRecord(torch.rand(1, 100, 200), 1, torch.tensor([[20.0, 10.0, 60.0, 50.0]]),
    ...                  ("Nodule",), None, "s", "Nodule")
    >>> out = Compose([Resize((50, 50)), Pad(0, 0, 5, 5)])(r)
    >>> out.image.shape, out.boxes.tolist(), out.meta["transforms"]
    (torch.Size([1, 50, 60]), [[10.0, 5.0, 20.0, 25.0]], ('resize(100x200->50x50)', 'pad(t0,b0,l5,r5)'))
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from xaiscore._checks import DTypeError, OptionError, ShapeError, check_fraction, check_option
from xaiscore.harness.data.mask_resize import MaskRule, resize_mask
from xaiscore.harness.data.mask_resize import check_size as _check_size
from xaiscore.harness.data.records import SampleRecord

__all__ = [
    "resize_mask",
    "resize_boxes",
    "crop_boxes",
    "pad_boxes",
    "Resize",
    "Crop",
    "CenterCrop",
    "Pad",
    "PadToSquare",
    "Letterbox",
    "Normalize",
    "ToChannels",
    "Compose",
]

def resize_boxes(boxes: Tensor, from_size: Sequence[int], to_size: Sequence[int]) -> Tensor:
    """Scale ``xyxy`` boxes from an ``(H, W)`` canvas to an ``(H', W')`` canvas (per axis).

    Shape:
        - boxes: ``(N, 4)``
        - output: ``(N, 4)``

    Example:
        >>> import torch
        >>> resize_boxes(torch.tensor([[10.0, 20.0, 30.0, 40.0]]), (100, 50), (50, 100)).tolist()
        [[20.0, 10.0, 60.0, 20.0]]
    """
    (h0, w0), (h1, w1) = _check_size(from_size, "from_size", 2), _check_size(to_size, "to_size", 2)
    # multiply, then divide: for integer coordinates the result is the correctly rounded
    # exact ratio, so pixel-centre tests after the resize have no rounding surprises
    new = torch.tensor([w1, h1, w1, h1], dtype=boxes.dtype, device=boxes.device)
    old = torch.tensor([w0, h0, w0, h0], dtype=boxes.dtype, device=boxes.device)
    return boxes * new / old


def crop_boxes(boxes: Tensor, top: float, left: float, height: float,
               width: float) -> tuple[Tensor, Tensor]:
    """Shift boxes into a crop, clip them to it and report which keep some area.

    Returns:
        ``(cropped, keep)``: the shifted and clipped boxes of positive area, and
        the ``(N,)`` bool tensor saying which input boxes they are.

    Example:
        >>> import torch
        >>> b, keep = crop_boxes(torch.tensor([[0.0, 0.0, 4.0, 4.0], [8.0, 8.0, 9.0, 9.0]]), 2, 1, 4, 4)
        >>> b.tolist(), keep.tolist()
        ([[0.0, 0.0, 3.0, 2.0]], [True, False])
    """  # noqa: E501
    shifted = boxes - torch.tensor([left, top, left, top], dtype=boxes.dtype, device=boxes.device)
    limit = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
    clipped = torch.minimum(shifted.clamp(min=0), limit)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped[keep], keep


def pad_boxes(boxes: Tensor, top: float, left: float) -> Tensor:
    """Shift boxes by the padding added above and to the left of the image.

    Example:
        >>> import torch
        >>> pad_boxes(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), top=10, left=1).tolist()
        [[2.0, 12.0, 4.0, 14.0]]
    """
    return boxes + torch.tensor([left, top, left, top], dtype=boxes.dtype, device=boxes.device)


def _check_2d(record: SampleRecord, transform: str) -> tuple[int, int]:
    if not isinstance(record, SampleRecord):
        raise DTypeError(
            f"Expected a SampleRecord for {transform}, but got {type(record).__name__}.")
    if record.image.ndim != 3:
        raise ShapeError(
            f"Expected a 2-D image (C, H, W) for {transform}, but record {record.source_id!r} has "
            f"shape {tuple(record.image.shape)}."
        )
    return int(record.image.shape[1]), int(record.image.shape[2])


def _log(record: SampleRecord, entry: str) -> dict[str, tuple[str, ...]]:
    return {"transforms": (*record.meta.get("transforms", ()), entry)}


def _map_masks(record: SampleRecord, fn: Callable[[Tensor], Tensor]) -> dict[str, object]:
    return {
        "mask": None if record.mask is None else fn(record.mask),
        "extra_masks": {name: fn(m) for name, m in record.extra_masks.items()},
    }


class Resize:
    """Resize the image to ``size = (H, W)``; boxes scale per axis, masks follow
    :func:`resize_mask`.

    Args:
        size: ``(H, W)`` or one int for a square.
        mode: Image interpolation, ``"bilinear"`` (default, antialiased when
            shrinking), ``"bicubic"``, ``"area"`` or ``"nearest"``.
        mask_rule: ``"nearest"`` (default) or ``"area"``.
        threshold: Covered fraction for ``mask_rule="area"``.

    Example:
        >>> import torch
        >>> from xaiscore.harness.data.records import SampleRecord
        >>> r = SampleRecord(torch.rand(1, 8, 8), 1, torch.tensor([[2.0, 2.0, 6.0, 4.0]]), ("N",), None, "s", "N")
        >>> Resize((4, 16))(r).boxes.tolist()
        [[4.0, 1.0, 12.0, 2.0]]
    """  # noqa: E501

    def __init__(self, size: int | Sequence[int], *, mode: str = "bilinear",
                 mask_rule: MaskRule = "nearest",
                 threshold: float = 0.5) -> None:
        self.size = _check_size(size, ndim=2)
        self.mode = check_option(mode, "mode", ("bilinear", "bicubic", "area", "nearest"))
        self.mask_rule = check_option(mask_rule, "mask_rule", ("nearest", "area"))
        self.threshold = check_fraction(threshold, "threshold", low_inclusive=False)

    def __call__(self, record: SampleRecord) -> SampleRecord:
        height, width = _check_2d(record, "Resize")
        if (height, width) == self.size:
            return record
        image = record.image.unsqueeze(0)
        if self.mode in ("bilinear", "bicubic"):
            image = F.interpolate(image, size=self.size, mode=self.mode, align_corners=False,
                                  antialias=True)
        elif self.mode == "nearest":
            image = F.interpolate(image, size=self.size, mode="nearest-exact")
        else:
            image = F.interpolate(image, size=self.size, mode="area")
        return record.with_updates(
            image=image[0].to(record.image.dtype),
            boxes=resize_boxes(record.boxes, (height, width), self.size),
            meta=_log(record, f"resize({height}x{width}->{self.size[0]}x{self.size[1]})"),
            **_map_masks(record, lambda m: resize_mask(m, self.size, rule=self.mask_rule,
                                                        threshold=self.threshold)),
        )


class Crop:
    """Crop the region ``top, left, height, width`` (it must lie inside the image).

    Boxes are shifted, clipped to the crop, and boxes left without area are
    dropped together with their labels (``meta["transforms"]`` says how many).
    """

    def __init__(self, top: int, left: int, height: int, width: int) -> None:
        for name, value in (("top", top), ("left", left), ("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise DTypeError(
                    f"Expected `{name}` to be an int, but got {type(value).__name__} {value!r}.")
        if top < 0 or left < 0 or height <= 0 or width <= 0:
            raise OptionError(
                "Expected top, left >= 0 and height, width > 0, but got "
                f"{(top, left, height, width)}."
            )
        self.top, self.left, self.height, self.width = top, left, height, width

    def __call__(self, record: SampleRecord) -> SampleRecord:
        height, width = _check_2d(record, "Crop")
        if self.top + self.height > height or self.left + self.width > width:
            raise ShapeError(
                f"Expected the crop (top={self.top}, left={self.left}, height={self.height}, "
                f"width={self.width}) inside the image of record {record.source_id!r} "
                f"({height}x{width})."
            )
        rows = slice(self.top, self.top + self.height)
        cols = slice(self.left, self.left + self.width)
        boxes, keep = crop_boxes(record.boxes, self.top, self.left, self.height, self.width)
        labels = tuple(label for label, kept in zip(record.box_labels, keep.tolist()) if kept)
        dropped = len(record.box_labels) - len(labels)
        entry = f"crop(t{self.top},l{self.left},{self.height}x{self.width}" + (
            f",dropped {dropped} box(es))" if dropped else ")")
        return record.with_updates(
            image=record.image[:, rows, cols].clone(),
            boxes=boxes,
            box_labels=labels,
            meta=_log(record, entry),
            **_map_masks(record, lambda m: m[..., rows, cols].clone()),
        )


class CenterCrop:
    """Crop the centre ``size = (H, W)`` of the image (offsets rounded down)."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _check_size(size, ndim=2)

    def __call__(self, record: SampleRecord) -> SampleRecord:
        height, width = _check_2d(record, "CenterCrop")
        top, left = (height - self.size[0]) // 2, (width - self.size[1]) // 2
        if top < 0 or left < 0:
            raise ShapeError(
                f"Expected the image of record {record.source_id!r} ({height}x{width}) to be at "
                f"least {self.size[0]}x{self.size[1]} for CenterCrop."
            )
        return Crop(top, left, *self.size)(record)


class Pad:
    """Pad the image by ``top, bottom, left, right`` pixels of ``value``; masks are padded with
    ``False``."""

    def __init__(self, top: int, bottom: int, left: int, right: int, *, value: float = 0.0) -> None:
        for name, amount in (("top", top), ("bottom", bottom), ("left", left), ("right", right)):
            if isinstance(amount, bool) or not isinstance(amount, int):
                raise DTypeError(
                    f"Expected `{name}` to be an int, but got {type(amount).__name__} {amount!r}.")
            if amount < 0:
                raise OptionError(f"Expected `{name}` >= 0, but got {amount}.")
        self.top, self.bottom, self.left, self.right = top, bottom, left, right
        self.value = float(value)

    def __call__(self, record: SampleRecord) -> SampleRecord:
        _check_2d(record, "Pad")
        widths = (self.left, self.right, self.top, self.bottom)
        return record.with_updates(
            image=F.pad(record.image, widths, value=self.value),
            boxes=pad_boxes(record.boxes, self.top, self.left),
            meta=_log(record, f"pad(t{self.top},b{self.bottom},l{self.left},r{self.right})"),
            **_map_masks(record, lambda m: F.pad(m, widths, value=False)),
        )


class PadToSquare:
    """Pad the shorter side to make the image square, centred (extra pixel at the bottom/right)."""

    def __init__(self, *, value: float = 0.0) -> None:
        self.value = float(value)

    def __call__(self, record: SampleRecord) -> SampleRecord:
        height, width = _check_2d(record, "PadToSquare")
        side = max(height, width)
        top, left = (side - height) // 2, (side - width) // 2
        return Pad(top, side - height - top, left, side - width - left, value=self.value)(record)


class Letterbox:
    """Resize keeping the aspect ratio so the image fits ``size``, then pad to ``size`` (centred).

    The scale is ``min(H'/H, W'/W)``; the resized side is rounded to the
    nearest pixel, so boxes scale by the exact per-axis factors of that resize.
    """

    def __init__(self, size: int | Sequence[int], *, value: float = 0.0, mode: str = "bilinear",
                 mask_rule: MaskRule = "nearest", threshold: float = 0.5) -> None:
        self.size = _check_size(size, ndim=2)
        self.value = float(value)
        self.mode, self.mask_rule, self.threshold = mode, mask_rule, threshold
        Resize(self.size, mode=mode, mask_rule=mask_rule, threshold=threshold)  # check the options

    def __call__(self, record: SampleRecord) -> SampleRecord:
        height, width = _check_2d(record, "Letterbox")
        scale = min(self.size[0] / height, self.size[1] / width)
        inner = (max(1, min(self.size[0], round(height * scale))), max(
            1, min(self.size[1], round(width * scale))))
        record = Resize(inner, mode=self.mode, mask_rule=self.mask_rule,
                        threshold=self.threshold)(record)
        top, left = (self.size[0] - inner[0]) // 2, (self.size[1] - inner[1]) // 2
        return Pad(top, self.size[0] - inner[0] - top, left, self.size[1] - inner[1] - left,
                   value=self.value)(record)


class Normalize:
    """Intensity normalisation ``(image - mean) / std`` per channel (no geometry change).

    Example:
        >>> import torch
        >>> from xaiscore.harness.data.records import SampleRecord
        >>> r = SampleRecord(torch.ones(1, 2, 2), 0, torch.zeros(0, 4), (), None, "s", "No Finding")
        >>> Normalize(0.5, 0.25)(r).image.unique().tolist()
        [2.0]
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if bool((self.std <= 0).any()):
            raise OptionError(f"Expected `std` > 0, but got {self.std.tolist()}.")

    def __call__(self, record: SampleRecord) -> SampleRecord:
        channels = record.image.shape[0]
        if self.mean.numel() not in (1, channels) or self.std.numel() not in (1, channels):
            raise ShapeError(
                f"Expected `mean` and `std` with 1 or {channels} value(s) for record "
                f"{record.source_id!r}, but got {self.mean.numel()} and {self.std.numel()}."
            )
        view = (-1,) + (1,) * (record.image.ndim - 1)
        image = (record.image
                 - self.mean.to(record.image).view(view)) / self.std.to(record.image).view(view)
        return record.with_updates(image=image, meta=_log(record, "normalize"))


class ToChannels:
    """Make the image have ``channels`` channels: repeat a grey image, or average colour channels to
    grey."""

    def __init__(self, channels: int) -> None:
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise OptionError(f"Expected `channels` to be a positive int, but got {channels!r}.")
        self.channels = channels

    def __call__(self, record: SampleRecord) -> SampleRecord:
        have = record.image.shape[0]
        if have == self.channels:
            return record
        if have == 1:
            image = record.image.expand(self.channels, *record.image.shape[1:]).clone()
        elif self.channels == 1:
            image = record.image.mean(dim=0, keepdim=True)
        else:
            raise ShapeError(
                f"Expected an image with 1 or {self.channels} channel(s) (or a target of 1 "
                f"channel), but record {record.source_id!r} has {have}."
            )
        return record.with_updates(image=image,
                                   meta=_log(record, f"channels({have}->{self.channels})"))


class Compose:
    """Apply transforms in order.

    Example:
        >>> Compose([]).transforms
        ()
    """

    def __init__(self, transforms: Sequence[Callable[[SampleRecord], SampleRecord]]) -> None:
        self.transforms = tuple(transforms)
        for t in self.transforms:
            if not callable(t):
                raise DTypeError(f"Expected callable transforms, but got {type(t).__name__}.")

    def __call__(self, record: SampleRecord) -> SampleRecord:
        for transform in self.transforms:
            record = transform(record)
        return record

