"""The embedded default dataset: synthetic chest-radiograph-like images.

Nothing is downloaded: :func:`make_synthetic_dataset` draws every image in
torch from a seed. Each image shows a torso, two dark lungs, curved ribs, a
bright mediastinum, smooth and pixel noise; positive samples carry one lesion
inside a lung whose ground truth is exact:

* the lesion mask is the set of pixels whose centre lies inside the lesion
  ellipse, and the lesion's intensity is added on exactly those pixels
  (a dome profile that falls to zero at the rim), so every pixel the lesion
  changed is in the mask and no other;
* the box is the tight ``xyxy`` end-exclusive bounding box of that mask, so
  ``boxes_to_mask(box)`` contains the mask.

An optional *shortcut marker* (a small bright square in a corner, like a
laterality tag) is stamped on positives with probability ``shortcut`` (and on
negatives with probability ``shortcut_negative``), so that a classifier can
learn it and an explanation method that points at it is caught by the
localization metrics. Its box is ``meta["shortcut_box"]`` and its mask is
``extra_masks["shortcut"]`` (all ``False`` without a marker); the lungs are
``extra_masks["lungs"]``.

Determinism: sample ``i`` depends only on ``(seed, i)`` and the options, never
on ``n``: samples are drawn in blocks of ``32 * K`` (``K`` classes) from a
generator seeded by ``(seed, block)``, so a dataset of 100 samples is the
first 100 of a dataset of 1000. Labels are balanced: each group of ``K``
consecutive samples holds every class once, in random order.

Example:
    >>> ds = make_synthetic_dataset(4, size=(32, 32), seed=0, shortcut=1.0)
    >>> record = ds[0]
    >>> record.image.shape, ds.class_names
    (torch.Size([1, 32, 32]), ('No Finding', 'Nodule'))
    >>> sorted(ds[i].label for i in range(4))
    [0, 0, 1, 1]
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from xaiscore._checks import (DTypeError, OptionError, check_fraction, check_option,
                              check_positive_int)
from xaiscore.harness.data.errors import Skip
from xaiscore.harness.data.records import NEGATIVE_FINDING, SampleRecord

__all__ = ["LESION_KINDS", "LesionKind", "SyntheticDataset", "make_synthetic_dataset"]


@dataclass(frozen=True)
class LesionKind:
    """How one lesion class looks; sizes are fractions of ``min(H, W)``.

    Attributes:
        radius: ``(low, high)`` range of the lesion's mean radius.
        aspect: ``(low, high)`` range of the ratio of the two semi-axes.
        amplitude: ``(low, high)`` range of the added peak intensity.
    """

    radius: tuple[float, float]
    aspect: tuple[float, float]
    amplitude: tuple[float, float]


#: The lesion classes the synthetic dataset can draw, by finding name.
LESION_KINDS: Mapping[str, LesionKind] = MappingProxyType({
    "Nodule": LesionKind(radius=(0.04, 0.08), aspect=(0.85, 1.15), amplitude=(0.35, 0.5)),
    "Mass": LesionKind(radius=(0.09, 0.14), aspect=(0.75, 1.3), amplitude=(0.3, 0.45)),
    "Opacity": LesionKind(radius=(0.07, 0.12), aspect=(1.6, 2.4), amplitude=(0.18, 0.28)),
})

_GROUPS_PER_BLOCK = 32
_CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")


def _block_generator(seed: int, block: int) -> torch.Generator:
    # a fixed mixing of (seed, block) into one 63-bit seed
    mixed = (seed * 0x9E3779B97F4A7C15 + block * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) % (
        2**63 - 1)
    return torch.Generator().manual_seed(mixed)


def _uniform(generator: torch.Generator, n: int, low: float | Tensor,
             high: float | Tensor) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _draw_block(
    seed: int,
    block: int,
    *,
    size: tuple[int, int],
    kinds: Sequence[LesionKind],
    noise: float,
    shortcut: float,
    shortcut_negative: float,
    corner: str,
) -> dict[str, Tensor]:
    """Draw one block of ``32 * K`` samples; every random draw has a fixed size."""
    g = _block_generator(seed, block)
    n_classes = len(kinds) + 1
    n = _GROUPS_PER_BLOCK * n_classes
    height, width = size
    # labels: every group of K consecutive samples holds each class once
    labels = torch.argsort(torch.rand(_GROUPS_PER_BLOCK, n_classes, generator=g), dim=1).reshape(n)
    # pixel-centre coordinates in [0, 1]
    v = ((torch.arange(height, dtype=torch.float32) + 0.5) / height).view(1, height, 1)
    u = ((torch.arange(width, dtype=torch.float32) + 0.5) / width).view(1, 1, width)

    def ellipse(cu: Tensor, cv: Tensor, ru: Tensor, rv: Tensor) -> Tensor:
        return ((u - cu.view(-1, 1, 1)) / ru.view(-1, 1, 1)) ** 2 + ((v - cv.view(-1, 1, 1))
                                                                     / rv.view(-1, 1, 1)) ** 2

    # anatomy
    torso = ellipse(_uniform(g, n, 0.48, 0.52), _uniform(g, n, 0.53, 0.57),
                    _uniform(g, n, 0.38, 0.42), _uniform(g, n, 0.44, 0.48))
    in_torso = torch.sigmoid((1.0 - torso) * 12.0)
    lung_cu = torch.stack([_uniform(g, n, 0.29, 0.33), _uniform(g, n, 0.67, 0.71)], dim=1)  # (n, 2)
    lung_cv = _uniform(g, n, 0.48, 0.54).unsqueeze(1).expand(n, 2)
    lung_ru = _uniform(g, 2 * n, 0.11, 0.14).view(n, 2)
    lung_rv = _uniform(g, 2 * n, 0.24, 0.29).view(n, 2)
    lung_distance = torch.stack(
        [ellipse(lung_cu[:, k], lung_cv[:, k], lung_ru[:, k], lung_rv[:, k]) for k in range(2)],
        dim=1
    )  # (n, 2, H, W)
    lungs_soft = torch.sigmoid((1.0 - lung_distance) * 10.0).amax(dim=1)
    lungs = (lung_distance < 1.0).any(dim=1)
    rib_frequency = _uniform(g, n, 8.0, 10.0).view(-1, 1, 1)
    rib_phase = _uniform(g, n, 0.0, 2 * math.pi).view(-1, 1, 1)
    rib_coordinate = v + 0.6 * (u - 0.5) ** 2
    ribs = torch.relu(torch.cos(2 * math.pi * rib_frequency * rib_coordinate + rib_phase)) ** 3
    spine = torch.exp(-(((u - 0.5) / 0.05) ** 2))
    image = (0.05 + 0.05 * v + 0.32 * in_torso - 0.2 * lungs_soft + 0.07 * ribs * in_torso + 0.15
             * spine * in_torso)
    texture = torch.randn(n, 1, 6, 6, generator=g, dtype=torch.float32)
    texture = F.interpolate(texture, size=(height, width), mode="bilinear",
                            align_corners=False)[:, 0]
    image = image + 0.03 * texture * in_torso + noise * torch.randn(n, height, width, generator=g,
                                                                    dtype=torch.float32)

    # lesions: one per positive sample, inside a lung
    side = (torch.rand(n, generator=g) < 0.5).long()  # 0: image-left lung, 1: image-right lung
    rows = torch.arange(n)
    angle = _uniform(g, n, 0.0, 2 * math.pi)
    spread = 0.55 * torch.sqrt(torch.rand(n, generator=g, dtype=torch.float32))
    centre_u = lung_cu[rows, side] + spread * torch.cos(angle) * lung_ru[rows, side]
    centre_v = lung_cv[rows, side] + spread * torch.sin(angle) * lung_rv[rows, side]
    # radius, aspect, amplitude, rotation
    draws = torch.rand(n, 4, generator=g, dtype=torch.float32)
    kind_index = (labels - 1).clamp(min=0)
    table = torch.tensor([[*k.radius, *k.aspect, *k.amplitude] for k in kinds], dtype=torch.float32)
    params = table[kind_index]  # (n, 6)
    radius_px = (params[:, 0] + (params[:, 1] - params[:, 0]) * draws[:, 0]) * min(height, width)
    aspect = params[:, 2] + (params[:, 3] - params[:, 2]) * draws[:, 1]
    amplitude = params[:, 4] + (params[:, 5] - params[:, 4]) * draws[:, 2]
    rotation = math.pi * draws[:, 3]
    semi_a = (radius_px * aspect.sqrt()).clamp(min=1.0)
    semi_b = (radius_px / aspect.sqrt()).clamp(min=1.0)
    # distances in pixels from the lesion centre to every pixel centre
    dx = (u * width - (centre_u * width).view(-1, 1, 1))
    dy = (v * height - (centre_v * height).view(-1, 1, 1))
    cos, sin = torch.cos(rotation).view(-1, 1, 1), torch.sin(rotation).view(-1, 1, 1)
    along, across = dx * cos + dy * sin, -dx * sin + dy * cos
    rho = (along / semi_a.view(-1, 1, 1)) ** 2 + (across / semi_b.view(-1, 1, 1)) ** 2
    positive = labels > 0
    lesion = (rho < 1.0) & positive.view(-1, 1, 1)
    profile = torch.sqrt((1.0 - rho).clamp(min=0.0)) * amplitude.view(-1, 1, 1)
    image = image + torch.where(lesion, profile, torch.zeros_like(profile))

    # the shortcut marker
    side_px = max(2, round(min(height, width) / 12))
    margin = max(1, round(min(height, width) / 32))
    top = margin if corner.startswith("top") else height - margin - side_px
    left = margin if corner.endswith("left") else width - margin - side_px
    chance = torch.rand(n, generator=g, dtype=torch.float32)
    marked = torch.where(positive, chance < shortcut, chance < shortcut_negative)
    marker = torch.zeros(n, height, width, dtype=torch.bool)
    marker[:, top:top + side_px, left:left + side_px] = True
    marker &= marked.view(-1, 1, 1)
    image = torch.where(marker, torch.ones_like(image), image).clamp(0.0, 1.0)

    # tight end-exclusive boxes of the lesion masks (empty masks give no box)
    cols, rows_any = lesion.any(dim=1), lesion.any(dim=2)  # (n, W), (n, H)
    col_index = torch.arange(width)
    row_index = torch.arange(height)
    x0 = torch.where(cols, col_index, width).amin(dim=1)
    x1 = torch.where(cols, col_index + 1, 0).amax(dim=1)
    y0 = torch.where(rows_any, row_index, height).amin(dim=1)
    y1 = torch.where(rows_any, row_index + 1, 0).amax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).to(torch.float32)
    return {
        "image": image,
        "label": labels,
        "lesion": lesion,
        "box": boxes,
        "has_box": lesion.flatten(1).any(dim=1),
        "marker": marker,
        "marked": marked,
        "lungs": lungs,
        "side": side,
        "centre": torch.stack([centre_u * width, centre_v * height], dim=1).to(torch.float32),
        "marker_box": torch.tensor([left, top, left + side_px, top + side_px], dtype=torch.float32),
    }


class SyntheticDataset:
    """A deterministic synthetic chest-radiograph dataset (see the module docs).

    Build it with :func:`make_synthetic_dataset`. Blocks are drawn on demand
    and cached (all of them when the dataset is small).

    Attributes:
        class_names: ``("No Finding", *lesion classes)``.
        skipped: Always empty (nothing can fail); present for the protocol.
        on_error: ``"raise"``.
    """

    def __init__(
        self,
        n: int,
        *,
        size: tuple[int, int],
        seed: int,
        shortcut: float,
        shortcut_negative: float,
        classes: tuple[str, ...],
        noise: float,
        channels: int,
        marker_corner: str,
        transform: Callable[[SampleRecord], SampleRecord] | None,
    ) -> None:
        self.n = n
        self.size = size
        self.seed = seed
        self.shortcut = shortcut
        self.shortcut_negative = shortcut_negative
        self.class_names: tuple[str, ...] = classes
        self.noise = noise
        self.channels = channels
        self.marker_corner = marker_corner
        self.transform = transform
        self.skipped: list[Skip] = []
        self.on_error = "raise"
        self._kinds = tuple(LESION_KINDS[name] for name in classes[1:])
        self._block_size = _GROUPS_PER_BLOCK * len(classes)
        n_blocks = -(-n // self._block_size)
        pixels_per_block = self._block_size * size[0] * size[1]
        # cache every block of a small dataset (<= 64 MiB of images), else the last few
        self._cache_limit = n_blocks if n_blocks * pixels_per_block <= 2**24 else 4
        self._cache: OrderedDict[int, dict[str, Tensor]] = OrderedDict()

    def __len__(self) -> int:
        return self.n

    def _block(self, block: int) -> dict[str, Tensor]:
        if block in self._cache:
            self._cache.move_to_end(block)
            return self._cache[block]
        drawn = _draw_block(
            self.seed, block, size=self.size, kinds=self._kinds, noise=self.noise,
            shortcut=self.shortcut,
            shortcut_negative=self.shortcut_negative, corner=self.marker_corner,
        )
        self._cache[block] = drawn
        while len(self._cache) > self._cache_limit:
            self._cache.popitem(last=False)
        return drawn

    def __getitem__(self, i: int) -> SampleRecord:
        if isinstance(i, bool) or not isinstance(i, int):
            raise DTypeError(f"Expected an int index, but got {type(i).__name__} {i!r}.")
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(f"Expected an index in [0, {self.n}), but got {i}.")
        block, offset = divmod(i, self._block_size)
        drawn = self._block(block)
        label = int(drawn["label"][offset])
        finding = self.class_names[label]
        has_box = bool(drawn["has_box"][offset])
        marked = bool(drawn["marked"][offset])
        image = drawn["image"][offset].unsqueeze(0)
        if self.channels != 1:
            image = image.expand(self.channels, -1, -1)
        image = image.clone()
        boxes = drawn["box"][offset : offset + 1].clone() if has_box else torch.zeros(0, 4)
        meta = {
            "reader": "synthetic",
            "index": i,
            "seed": self.seed,
            "size": self.size,
            "shortcut": marked,
            "shortcut_box": tuple(drawn["marker_box"].tolist()) if marked else None,
            "lesion_center": tuple(drawn["centre"][offset].tolist()) if label > 0 else None,
            "lesion_side": ("left", "right")[int(drawn["side"][offset])] if label > 0 else None,
        }
        record = SampleRecord(
            image=image,
            label=label,
            boxes=boxes,
            box_labels=(finding,) if has_box else (),
            mask=drawn["lesion"][offset].unsqueeze(0).clone(),
            source_id=f"synthetic-{self.seed}-{i:06d}",
            finding=finding,
            meta=MappingProxyType(meta),
            extra_masks=MappingProxyType({
                "shortcut": drawn["marker"][offset].unsqueeze(0).clone(),
                "lungs": drawn["lungs"][offset].unsqueeze(0).clone(),
            }),
        )
        return record if self.transform is None else self.transform(record)


def make_synthetic_dataset(
    n: int = 256,
    *,
    size: tuple[int, int] | Sequence[int] = (64, 64),
    seed: int = 0,
    shortcut: float = 0.0,
    shortcut_negative: float = 0.0,
    classes: Sequence[str] = (NEGATIVE_FINDING, "Nodule"),
    noise: float = 0.02,
    channels: int = 1,
    marker_corner: Literal["top_left", "top_right", "bottom_left", "bottom_right"] = "top_left",
    transform: Callable[[SampleRecord], SampleRecord] | None = None,
) -> SyntheticDataset:
    """Build the deterministic synthetic chest-radiograph dataset.

    Args:
        n: Number of samples.
        size: ``(H, W)`` of the images, each at least 8 (need not be square).
        seed: Seed of every random draw (sample ``i`` depends on ``seed`` and ``i`` only).
        shortcut: Probability that a positive sample carries the shortcut marker.
        shortcut_negative: Probability that a negative sample carries it (default 0).
        classes: ``("No Finding", *lesions)`` with lesion names from
            :data:`LESION_KINDS` (``"Nodule"``, ``"Mass"``, ``"Opacity"``);
            the first class is the negative one.
        noise: Standard deviation of the pixel noise.
        channels: 1 (default), or 3 to repeat the grey image for RGB models.
        marker_corner: Where the shortcut marker goes.
        transform: Applied to every record (see :mod:`xaiscore.harness.data.transforms`).

    Returns:
        A :class:`SyntheticDataset` of ``n`` records with images ``(channels, H, W)``
        in ``[0, 1]``, exact lesion masks and boxes.

    Raises:
        OptionError: an option outside its range, or an unknown lesion class.
        DTypeError: an option of the wrong type.

    Shape:
        - ``record.image``: ``(channels, H, W)`` float32
        - ``record.mask``: ``(1, H, W)`` bool; ``record.boxes``: ``(1, 4)`` (positives) or
          ``(0, 4)``

    Example:
        >>> ds = make_synthetic_dataset(6, size=(24, 32), classes=("No Finding", "Nodule", "Mass"))
        >>> [ds[i].finding for i in range(3)].count("No Finding")
        1
        >>> r = next(ds[i] for i in range(6) if ds[i].label > 0)
        >>> from xaiscore.functional import boxes_to_mask
        >>> bool((boxes_to_mask([r.boxes], (24, 32))[0] >= r.mask).all())
        True
    """
    n = check_positive_int(n, "n")
    if (
        not isinstance(size, Sequence)
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)
    ):
        raise DTypeError(f"Expected `size` as (H, W) with two ints, but got {size!r}.")
    if min(size) < 8:
        raise OptionError(f"Expected both sides of `size` to be at least 8, but got {tuple(size)}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DTypeError(f"Expected `seed` to be an int, but got {type(seed).__name__} {seed!r}.")
    shortcut = check_fraction(shortcut, "shortcut")
    shortcut_negative = check_fraction(shortcut_negative, "shortcut_negative")
    noise = check_fraction(noise, "noise", high=1.0)
    channels = check_option(channels, "channels", (1, 3))
    marker_corner = check_option(marker_corner, "marker_corner", _CORNERS)
    classes = tuple(classes)
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise OptionError(
            "Expected `classes` as a negative class followed by distinct lesion classes, but got "
            f"{classes!r}."
        )
    unknown = [c for c in classes[1:] if c not in LESION_KINDS]
    if unknown:
        raise OptionError(
            f"Expected lesion classes among {sorted(LESION_KINDS)}, but got {unknown}. "
            "The first class is the negative one."
        )
    return SyntheticDataset(
        n, size=(int(size[0]), int(size[1])), seed=seed, shortcut=shortcut,
        shortcut_negative=shortcut_negative, classes=classes, noise=noise, channels=channels,
        marker_corner=marker_corner, transform=transform,
    )
