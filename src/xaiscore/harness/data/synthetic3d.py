"""The embedded 3-D default: a deterministic CT-like phantom with lesions whose masks and boxes are
exact.

Nothing is downloaded: :func:`make_synthetic_volumes` draws every volume in torch from
``(seed, index)``. A volume ``(1, D, H, W)`` in ``[0, 1]`` shows air around an elliptic
body (soft tissue), two dark lungs, a bright liver-like organ below the right lung, a bright
spine cylinder behind them, smooth low-frequency texture and voxel noise. Positive
samples carry one lesion inside a lung:

* the lesion mask is the set of voxels whose centre lies inside the lesion ellipsoid,
  and the lesion's intensity (a dome that falls to zero at the rim; dense, like a
  calcified nodule, brighter than the spine) is added on exactly
  those voxels, so every voxel the lesion changed is in the mask and no other;
* the box ``(x0, y0, z0, x1, y1, z1)`` is the tight end-exclusive bounding box of that
  mask (``x`` along ``W``, ``y`` along ``H``, ``z`` along ``D``), so rasterising the box
  contains the mask.

An optional *shortcut marker* (a bright cube in the air near the first corner) is stamped
on positives with probability ``shortcut`` (on negatives with ``shortcut_negative``); its
mask is ``extra_masks["shortcut"]`` and its box ``meta["shortcut_box"]``. The lungs are
``extra_masks["lungs"]``. ``meta["lesion_center"]`` is the lesion's centre ``(x, y, z)``
in voxel edge coordinates (the report's slices go through it); for negatives it is the
centre of the volume. ``meta["spacing"]`` is ``(1, 1, 1)`` mm.

Determinism: sample ``i`` depends only on ``(seed, i)`` and the options, never on ``n``.
Labels are balanced: samples ``2k`` and ``2k + 1`` hold one negative and one positive, in
an order drawn from ``(seed, k)``.

Example:
    >>> ds = make_synthetic_volumes(4, size=(16, 20, 24), seed=0, shortcut=1.0)
    >>> r = next(ds[i] for i in range(4) if ds[i].label == 1)
    >>> r.image.shape, ds.class_names, r.boxes.shape
    (torch.Size([1, 16, 20, 24]), ('No Finding', 'Lesion'), torch.Size([1, 6]))
    >>> from xaiscore.harness.data.boxes3d import rasterize_boxes
    >>> bool((rasterize_boxes([r.boxes], (16, 20, 24))[0] >= r.mask).all()), bool(r.extra_masks["shortcut"].any())
    (True, True)
"""  # noqa: E501

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor

from xaiscore._checks import DTypeError, OptionError, check_fraction, check_positive_int
from xaiscore._engine.random import derive_seed
from xaiscore.harness.data.errors import Skip
from xaiscore.harness.data.records import NEGATIVE_FINDING, SampleRecord

__all__ = ["SyntheticVolumes", "make_synthetic_volumes"]


def _generator(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*parts) % 2**63)


def _u(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


def _draw(seed: int, index: int, size: tuple[int, int, int], label: int, noise: float,
          marked: bool) -> dict:
    """One volume and its ground truth; every random draw comes from ``(seed, index)``."""
    g = _generator(seed, "phantom", index)
    depth, height, width = size
    # voxel-centre coordinates in [-1, 1] along z (D), y (H), x (W)
    z = ((torch.arange(depth) + 0.5) / depth * 2 - 1).view(-1, 1, 1)
    y = ((torch.arange(height) + 0.5) / height * 2 - 1).view(1, -1, 1)
    x = ((torch.arange(width) + 0.5) / width * 2 - 1).view(1, 1, -1)

    def ellipsoid(cx: float, cy: float, cz: float, rx: float, ry: float, rz: float) -> Tensor:
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2

    body = ellipsoid(0.0, _u(g, -0.05, 0.05), 0.0, _u(g, 0.78, 0.86), _u(g, 0.62, 0.7), 1.3) <= 1.0
    lungs_centre = [(-0.4, -0.08), (0.4, -0.08)]
    lung_radii = [(_u(g, 0.28, 0.32), _u(g, 0.32, 0.38), _u(g, 0.62, 0.72)) for _ in range(2)]
    lungs = [ellipsoid(cx, cy, 0.15, *r) <= 1.0 for (cx, cy), r in zip(lungs_centre, lung_radii)]
    liver = ellipsoid(-0.3, 0.05, -0.65, 0.42, 0.42, 0.3) <= 1.0
    spine = ((x / 0.12) ** 2 + ((y - 0.48) / 0.12) ** 2 <= 1.0).expand(depth, height, width)
    image = torch.zeros(size)
    image[body] = 0.42
    image[liver & body] = 0.58
    for lung in lungs:
        image[lung] = 0.12
    image[spine & body] = 0.72
    texture = F.interpolate(torch.rand(1, 1, 4, 4, 4, generator=g), size=size, mode="trilinear",
                            align_corners=False)[0, 0]
    image += 0.06 * (texture - 0.5) * body
    lesion = torch.zeros(size, dtype=torch.bool)
    centre_voxels = (width / 2, height / 2, depth / 2)
    if label == 1:
        side = int(torch.randint(2, (), generator=g))
        (lx, ly), (rx, ry, rz) = lungs_centre[side], lung_radii[side]
        radius = _u(g, 0.16, 0.22)  # fraction of the half-extent
        cx, cy, cz = (lx + _u(g, -0.4, 0.4) * (rx - radius), ly + _u(g, -0.4, 0.4) * (ry - radius),
                      0.15 + _u(g, -0.4, 0.4) * (rz - radius))
        radii = (radius * _u(g, 0.85, 1.15), radius * _u(g, 0.85, 1.15), radius * _u(g, 0.85, 1.15))
        r2 = ellipsoid(cx, cy, cz, *radii)
        lesion = r2 < 1.0
        image += torch.where(lesion, _u(g, 0.75, 0.85) * (1.0 - r2).sqrt(), torch.zeros(()))
        centre_voxels = ((cx + 1) / 2 * width, (cy + 1) / 2 * height, (cz + 1) / 2 * depth)
    image += noise * torch.randn(size, generator=g)
    marker = torch.zeros(size, dtype=torch.bool)
    side = max(2, round(min(size) / 10))
    corner = max(1, round(min(size) / 16))
    marker_box = (corner, corner, corner, corner + side, corner + side, corner + side)
    if marked:
        marker[corner:corner + side, corner:corner + side, corner:corner + side] = True
        image[marker] = 1.0
    return {"image": image.clamp_(0.0, 1.0), "lesion": lesion, "marker": marker,
            "marker_box": marker_box,
            "lungs": lungs[0] | lungs[1], "centre": centre_voxels}


def _box_of(mask: Tensor) -> list[float]:
    """The tight end-exclusive ``(x0, y0, z0, x1, y1, z1)`` box of a non-empty ``(D, H, W)`` mask.
    """
    spans = []
    for keep in ((0, 1), (0, 2), (1, 2)):  # any over (D, H) -> x, (D, W) -> y, (H, W) -> z
        where = mask.any(dim=keep).nonzero()[:, 0]
        spans.append((float(where.min()), float(where.max()) + 1.0))
    return [spans[0][0], spans[1][0], spans[2][0], spans[0][1], spans[1][1], spans[2][1]]


class SyntheticVolumes:
    """The deterministic 3-D phantom dataset (see the module docs); build it with
    :func:`make_synthetic_volumes`.

    Attributes:
        class_names: ``("No Finding", "Lesion")``.
        skipped: Always empty; present for the protocol.
        on_error: ``"raise"``.
    """

    def __init__(self, n: int, *, size: tuple[int, int, int], seed: int, shortcut: float,
                 shortcut_negative: float, noise: float,
                 transform: Callable[[SampleRecord], SampleRecord] | None) -> None:
        self.n, self.size, self.seed = n, size, seed
        self.shortcut, self.shortcut_negative, self.noise = shortcut, shortcut_negative, noise
        self.transform = transform
        self.class_names: tuple[str, ...] = (NEGATIVE_FINDING, "Lesion")
        self.skipped: list[Skip] = []
        self.on_error = "raise"

    def __len__(self) -> int:
        return self.n

    def _label(self, i: int) -> tuple[int, bool]:
        g = _generator(self.seed, "pair", i // 2)
        first = int(torch.randint(2, (), generator=g))
        label = first if i % 2 == 0 else 1 - first
        chance = self.shortcut if label == 1 else self.shortcut_negative
        marked = float(torch.rand((), generator=_generator(self.seed, "marker", i))) < chance
        return label, marked

    def __getitem__(self, i: int) -> SampleRecord:
        if isinstance(i, bool) or not isinstance(i, int):
            raise DTypeError(f"Expected an int index, but got {type(i).__name__} {i!r}.")
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(f"Expected an index in [0, {self.n}), but got {i}.")
        label, marked = self._label(i)
        drawn = _draw(self.seed, i, self.size, label, self.noise, marked)
        finding = self.class_names[label]
        has_box = bool(drawn["lesion"].any())
        boxes = torch.tensor([_box_of(drawn["lesion"])]) if has_box else torch.zeros(0, 6)
        meta = {
            "reader": "synthetic3d", "index": i, "seed": self.seed, "size": self.size, "shortcut": marked,  # noqa: E501
            "shortcut_box": tuple(float(v) for v in drawn["marker_box"]) if marked else None,
            "lesion_center": tuple(float(v) for v in drawn["centre"]), "spacing": (1.0, 1.0, 1.0),
        }
        record = SampleRecord(
            image=drawn["image"].unsqueeze(0), label=label, boxes=boxes,
            box_labels=(finding,) if has_box else (), mask=drawn["lesion"].unsqueeze(0),
            source_id=f"synthetic3d-{self.seed}-{i:06d}", finding=finding,
            meta=MappingProxyType(meta),
            extra_masks=MappingProxyType({"shortcut": drawn["marker"].unsqueeze(0),
                                          "lungs": drawn["lungs"].unsqueeze(0)}),
        )
        return record if self.transform is None else self.transform(record)


def make_synthetic_volumes(
    n: int = 64,
    *,
    size: int | Sequence[int] = (32, 32, 32),
    seed: int = 0,
    shortcut: float = 0.0,
    shortcut_negative: float = 0.0,
    noise: float = 0.02,
    transform: Callable[[SampleRecord], SampleRecord] | None = None,
) -> SyntheticVolumes:
    """Build the deterministic 3-D phantom dataset.

    Args:
        n: Number of samples.
        size: ``(D, H, W)`` (or one int for a cube), each side at least 12.
        seed: Seed of every draw (sample ``i`` depends on ``seed`` and ``i`` only).
        shortcut: Probability that a positive sample carries the shortcut marker.
        shortcut_negative: Probability that a negative sample carries it.
        noise: Standard deviation of the voxel noise.
        transform: Applied to every record.

    Returns:
        A :class:`SyntheticVolumes` of ``n`` records with volumes ``(1, D, H, W)`` in
        ``[0, 1]``, exact lesion masks and boxes.

    Raises:
        OptionError: an option outside its range.
        DTypeError: an option of the wrong type.

    Shape:
        - ``record.image``: ``(1, D, H, W)`` float32
        - ``record.mask``: ``(1, D, H, W)`` bool; ``record.boxes``: ``(1, 6)`` (positives) or
          ``(0, 6)``

    Example:
        >>> ds = make_synthetic_volumes(2, size=16)
        >>> sorted(ds[i].label for i in range(2)), ds[0].image.shape
        ([0, 1], torch.Size([1, 16, 16, 16]))
    """
    n = check_positive_int(n, "n")
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size, size)
    if (not isinstance(size, Sequence) or len(size) != 3
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)):
        raise DTypeError(f"Expected `size` as an int or (D, H, W) ints, but got {size!r}.")
    if min(size) < 12:
        raise OptionError(
            f"Expected every side of `size` to be at least 12, but got {tuple(size)}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DTypeError(f"Expected `seed` as an int, but got {seed!r}.")
    shortcut = check_fraction(shortcut, "shortcut")
    shortcut_negative = check_fraction(shortcut_negative, "shortcut_negative")
    noise = check_fraction(noise, "noise", high=math.inf)
    return SyntheticVolumes(n, size=tuple(size), seed=seed, shortcut=shortcut,  # type: ignore[arg-type]
                            shortcut_negative=shortcut_negative, noise=noise, transform=transform)
