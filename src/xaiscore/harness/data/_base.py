"""The dataset class every file reader returns, the row -> entry pipeline and the checks the readers
share.

A reader parses its annotation files into :class:`Entry` objects (one per
sample: image file, finding, boxes in the annotation's coordinate canvas, an
optional mask builder) and wraps them in an :class:`AnnotatedDataset`, which
loads the image on indexing, scales the boxes from the canvas to the image,
checks them against the image, builds the mask and applies the transform.

The annotation readers share one pipeline from rows to entries, with the same
error policy everywhere:

1. :func:`group_rows`: each annotation row is parsed and grouped by its image,
   in order of first appearance. A bad row drops its image whole (the error
   goes to the :class:`~xaiscore.harness.data.errors.SkipLog`; with
   ``on_error="raise"`` it is raised), a row without an image id only itself.
2. :func:`locate_entries`: each group's image file is looked up (a missing file
   is reported and drops the group) and the reader builds the group's entries.

Example:
    >>> from xaiscore.harness.data.errors import SkipLog
    >>> log = SkipLog("skip")
    >>> rows = [(2, {"id": "a", "v": "1"}), (3, {"id": "b", "v": "x"}), (4, {"id": "a", "v": "2"})]
    >>> def parse(image, item, earlier):
    ...     row, fields = item
    ...     if not fields["v"].isdigit():
    ...         raise DatasetError("not a number", file="f.csv", row=row)
    ...     return int(fields["v"])
    >>> grouped = group_rows(rows, key=row_id("id", file="f.csv"), parse=parse, log=log)
    >>> grouped.groups, grouped.bad, [s.row for s in log.skipped]
    ({'a': [1, 2]}, {'b'}, [3])
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from torch import Tensor

from xaiscore._checks import DTypeError, OptionError
from xaiscore.harness.data.errors import DatasetError, OnError, Skip, SkipLog
from xaiscore.harness.data.records import NEGATIVE_FINDING, SampleRecord

__all__ = [
    "Entry",
    "AnnotatedDataset",
    "ClassResolver",
    "box_problem",
    "check_box",
    "clip_box",
    "canvas_of",
    "check_channels",
    "mask_boxes",
    "locate_image",
    "resolve_path",
    "RowGroups",
    "row_id",
    "group_rows",
    "locate_entries",
]

Box = tuple[float, float, float, float]
MaskBuilder = Callable[[int, int], Tensor]


@dataclass(frozen=True)
class Entry:
    """One sample as parsed from the annotation files (nothing loaded yet).

    Attributes:
        source_id: Stable id of the sample.
        image_path: The image file.
        finding: The sample's finding class name.
        label: Index of ``finding`` in the dataset's class names.
        boxes: ``xyxy`` boxes in the annotation canvas (end-exclusive pixels).
        box_labels: One finding name per box.
        box_rows: The annotation row of each box (for error messages).
        canvas: ``(H, W)`` of the coordinate system the boxes are given in, or
            ``None`` for the image's own size (checked when it is loaded).
        annotation_file: The file the sample's annotations come from.
        row: The first annotation row of the sample.
        mask: Builds the ``(1, H, W)`` bool mask at the loaded image's size
            ``(H, W)``, or ``None`` (the mask is rasterised from the boxes later).
        meta: Reader-specific facts merged into the record's ``meta``.
        boxes_from_mask: Take the boxes from the built mask instead (the
            bounding boxes of its 8-connected components, labelled ``finding``).
    """

    source_id: str
    image_path: Path
    finding: str
    label: int
    boxes: tuple[Box, ...]
    box_labels: tuple[str, ...]
    box_rows: tuple[int | str | None, ...]
    canvas: tuple[int, int] | None
    annotation_file: str
    row: int | str | None
    mask: MaskBuilder | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    boxes_from_mask: bool = False


def mask_boxes(mask: Tensor) -> list[Box]:
    """The ``xyxy`` end-exclusive bounding boxes of the 8-connected components of a ``(1, H, W)``
    mask.

    Example:
        >>> m = torch.zeros(1, 4, 5, dtype=torch.bool); m[0, 0, 0] = m[0, 1, 1] = m[0, 3, 4] = True
        >>> mask_boxes(m)
        [(0.0, 0.0, 2.0, 2.0), (4.0, 3.0, 5.0, 4.0)]
    """
    from scipy import ndimage

    labels, _ = ndimage.label(mask[0].cpu().numpy(), structure=np.ones((3, 3), dtype=bool))
    return [(float(cols.start), float(rows.start), float(cols.stop), float(rows.stop))
            for rows, cols in ndimage.find_objects(labels) if rows is not None]


def canvas_of(value: object, name: str = "canvas_size") -> tuple[int, int] | None:
    """Normalise a canvas option: ``None``, an int (square) or ``(H, W)``."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise DTypeError(f"Expected `{name}` as None, an int or (H, W) ints, but got {value!r}.")
    if min(value) <= 0:
        raise OptionError(f"Expected positive sides in `{name}`, but got {tuple(value)}.")
    return int(value[0]), int(value[1])


def check_channels(channels: object) -> int | None:
    """``None`` (keep the file's channels), 1 or 3."""
    if channels not in (None, 1, 3) or isinstance(channels, bool):
        raise OptionError(f"Expected `channels` to be one of None, 1, 3, but got {channels!r}.")
    return channels  # type: ignore[return-value]


def box_problem(box: Box, canvas: tuple[int, int] | None) -> str | None:
    """Why ``box`` is unusable on ``canvas`` (``None`` when it is fine).

    A box must have positive width and height and lie inside ``[0, W] x [0, H]``
    (a tolerance of 1e-6 pixels absorbs rounding in the files).
    """
    x0, y0, x1, y1 = box
    if not (x1 > x0 and y1 > y0):
        return f"box {_fmt(box)} has no area (expected x_max > x_min and y_max > y_min)"
    if canvas is None:
        return None
    height, width = canvas
    eps = 1e-6
    if x0 < -eps or y0 < -eps or x1 > width + eps or y1 > height + eps:
        return (
            f"box {_fmt(box)} lies outside the image (expected inside 0..{width} x 0..{height} "
            "pixels)"
        )
    return None


def clip_box(box: Box, canvas: tuple[int, int]) -> Box | None:
    """``box`` clipped to the canvas, or ``None`` when nothing is left."""
    height, width = canvas
    x0, y0, x1, y1 = (max(box[0], 0.0), max(box[1], 0.0), min(box[2], float(width)),
                      min(box[3], float(height)))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def check_box(box: Box, canvas: tuple[int, int] | None, *, clip: bool, file: str | os.PathLike[str],
              row: int | str | None, where: str) -> Box:
    """``box`` if usable on ``canvas`` (clipped when ``clip`` and it sticks out), else
    :class:`DatasetError`.

    ``where`` names the image in the message (e.g. ``"image 0001.png"``).
    """
    problem = box_problem(box, canvas)
    if problem is not None and clip and canvas is not None and "outside" in problem:
        clipped = clip_box(box, canvas)
        if clipped is not None:
            return clipped
        problem = problem.replace("lies outside", "lies entirely outside")
    if problem is not None:
        raise DatasetError(f"{problem} of {where}", file=file, row=row)
    return box


def _fmt(box: Box) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"


class ClassResolver:
    """Maps finding names in the files to class indices, with aliases.

    Args:
        class_names: The model's class names, in index order.
        aliases: File spelling -> class name (e.g. NIH ``"Infiltrate"`` ->
            ``"Infiltration"``); applied before the lookup.
    """

    def __init__(self, class_names: Sequence[str],
                 aliases: Mapping[str, str] | None = None) -> None:
        names = tuple(class_names)
        if isinstance(class_names, str) or not all(isinstance(n, str) for n in names) \
                or len(set(names)) != len(names):
            raise OptionError(f"Expected `class_names` as distinct strings, but got {names!r}.")
        self.class_names = names
        self.aliases = dict(aliases or {})
        self._index = {n: i for i, n in enumerate(names)}

    def canonical(self, finding: str) -> str:
        """The class name a file's finding stands for (aliases applied, whitespace stripped)."""
        finding = finding.strip()
        return self.aliases.get(finding, finding)

    def resolve(self, finding: str, *, file: str | os.PathLike[str],
                row: int | str | None) -> tuple[str, int]:
        """``(class name, index)``, or :class:`DatasetError` for an unknown finding."""
        name = self.canonical(finding)
        if name not in self._index:
            close = difflib.get_close_matches(name, self.class_names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DatasetError(
                f"unknown finding {finding!r}: expected one of {list(self.class_names)}{hint} "
                "(pass `class_names` to match your model)",
                file=file, row=row,
            )
        return name, self._index[name]

    def require(self, name: str, option: str) -> int:
        """The index of class ``name`` that option ``option`` needs, or :class:`OptionError`."""
        if name not in self._index:
            raise OptionError(
                f"Expected {name!r} (from `{option}`) among `class_names` {list(self.class_names)}."
            )
        return self._index[name]

    def require_negative(self, negative: str = NEGATIVE_FINDING) -> int:
        """The index of the negative class, or :class:`OptionError` when it is not a class."""
        if negative not in self._index:
            raise OptionError(
                f"Expected {negative!r} among `class_names` {list(self.class_names)} to include "
                "negative samples; add it or set negatives=False."
            )
        return self._index[negative]


def resolve_path(path: str | os.PathLike[str], root: Path | None = None) -> Path:
    """``path`` relative to ``root`` unless it is absolute (or ``root`` is ``None``)."""
    path = Path(path)
    return path if root is None or path.is_absolute() else root / path


def locate_image(locator: Any, name: str, *, file: str | os.PathLike[str],
                 row: int | str | None) -> Path:
    """The image file ``name``, or :class:`DatasetError` naming the annotation file and row."""
    path = locator.find(name)
    if path is None:
        raise DatasetError(f"image file {name!r} not found (looked in {locator.describe()})",
                           file=file, row=row)
    return path


# --- rows -> entries ------------------------------------------------------------------------------

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
G = TypeVar("G")
R = TypeVar("R")

#: A CSV row as :func:`~xaiscore.harness.data._io.read_csv_rows` yields it:
#: ``(line, {column: value})``.
CsvRow = tuple[int, Mapping[str, "str | None"]]

_NO_KEY: Any = object()


@dataclass
class RowGroups(Generic[K, V]):
    """Parsed annotation rows grouped by image, in order of first appearance.

    Attributes:
        groups: image key -> the parsed values of its rows, for images whose rows all parsed.
        bad: The images left out because one of their rows was bad.
    """

    groups: dict[K, list[V]] = field(default_factory=dict)
    bad: set[K] = field(default_factory=set)

    def seen(self, key: Any) -> bool:
        """Whether any row named image ``key`` (good or bad)."""
        return key in self.groups or key in self.bad


def row_id(column: str, *, file: str | os.PathLike[str]) -> Callable[[CsvRow], str]:
    """A :func:`group_rows` key: the stripped value of ``column``, an error when it is empty."""

    def key(item: CsvRow) -> str:
        row, fields = item
        value = (fields[column] or "").strip()
        if not value:
            raise DatasetError(f"empty {column!r}", file=file, row=row)
        return value

    return key


def group_rows(rows: Iterable[R], *, key: Callable[[R], K], parse: Callable[[K, R, list[V]], V],
               log: SkipLog) -> RowGroups[K, V]:
    """Stage 1 of a reader: annotation rows -> parsed values grouped by image.

    Args:
        rows: The annotation rows, in file order.
        key: The image a row belongs to. A :class:`DatasetError` here (e.g. an
            empty id) is reported and drops the row only.
        parse: ``parse(image, row, earlier)`` -> the row's value, given the values
            of the image's earlier rows. A :class:`DatasetError` is reported and
            drops the image: its earlier values are discarded, its later rows ignored.
        log: Where errors go (raised with ``on_error="raise"``).
    """
    result: RowGroups[K, V] = RowGroups()
    for item in rows:
        image = _NO_KEY
        try:
            image = key(item)
            if image in result.bad:
                continue
            value = parse(image, item, result.groups.get(image, []))
        except DatasetError as error:
            log.report(error)
            if image is not _NO_KEY:
                result.bad.add(image)
                result.groups.pop(image, None)
            continue
        result.groups.setdefault(image, []).append(value)
    return result


def locate_entries(items: Iterable[tuple[K, G]], *, locate: Callable[[K, G], Path],
                   build: Callable[[K, G, Path], Iterable[Entry]], log: SkipLog,
                   limit: int | None = None) -> list[Entry]:
    """Stage 2 of a reader: ``(image, group)`` -> the group's entries, with the image file looked
    up.

    Args:
        items: The groups, in order.
        locate: The image file of a group (:func:`locate_image`); a
            :class:`DatasetError` is reported and drops the group.
        build: The entries of a group whose image file was found.
        log: Where errors go (raised with ``on_error="raise"``).
        limit: Stop after this many groups with an image file (``None``: all).
    """
    entries: list[Entry] = []
    located = 0
    for image, group in items:
        if limit is not None and located >= limit:
            break
        try:
            path = locate(image, group)
        except DatasetError as error:
            log.report(error)
            continue
        located += 1
        entries.extend(build(image, group, path))
    return entries


def _image_size(image: Tensor) -> tuple[int, int]:
    return int(image.shape[-2]), int(image.shape[-1])


class AnnotatedDataset:
    """A :class:`~xaiscore.harness.data.records.RecordDataset` over parsed entries.

    Attributes:
        class_names: The class names labels index into.
        entries: The parsed samples, in order.
        skipped: Samples and rows left out, with the reason (``on_error="skip"``
            and by-design exclusions such as no reader majority).
        on_error: The policy, also used by
            :func:`~xaiscore.harness.data.records.iterate_batches` for errors
            found while loading (corrupt images, boxes outside the image).
        negative_finding: The finding name of negative samples.
        reader: The reader's name.
    """

    def __init__(
        self,
        entries: Sequence[Entry],
        *,
        class_names: Sequence[str],
        loader: Callable[[Path], Tensor],
        transform: Callable[[SampleRecord], SampleRecord] | None,
        log: SkipLog,
        reader: str,
        clip_boxes: bool = False,
        negative_finding: str = NEGATIVE_FINDING,
    ) -> None:
        if transform is not None and not callable(transform):
            raise DTypeError(
                f"Expected `transform` to be callable, but got {type(transform).__name__}.")
        self.entries: tuple[Entry, ...] = tuple(entries)
        self.class_names: tuple[str, ...] = tuple(class_names)
        self.loader = loader
        self.transform = transform
        self.skipped: list[Skip] = log.skipped
        self.on_error: OnError = log.on_error
        self.reader = reader
        self.clip_boxes = clip_boxes
        self.negative_finding = negative_finding

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reader={self.reader!r}, n={len(self)}, "
            f"classes={len(self.class_names)}, skipped={len(self.skipped)})")

    def load(self, entry: Entry) -> SampleRecord:
        """Load one entry into a :class:`SampleRecord` (see the class docs)."""
        image = self.loader(entry.image_path)
        size = _image_size(image)
        canvas = entry.canvas or size
        mask = entry.mask(*size) if entry.mask is not None else None
        box_labels, box_rows, raw_boxes = entry.box_labels, entry.box_rows, entry.boxes
        if entry.boxes_from_mask and mask is not None:
            canvas = size
            raw_boxes = tuple(mask_boxes(mask))
            box_labels, box_rows = (entry.finding,) * len(raw_boxes), (entry.row,) * len(raw_boxes)
        boxes = [
            check_box(box, canvas, clip=self.clip_boxes, file=entry.annotation_file, row=row,
                      where=f"image {entry.image_path.name}")
            for box, row in zip(raw_boxes, box_rows)
        ]
        tensor = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4)
        image_side = torch.tensor([size[1], size[0]] * 2, dtype=torch.float64)
        canvas_side = torch.tensor([canvas[1], canvas[0]] * 2, dtype=torch.float64)
        record = SampleRecord(
            image=image,
            label=entry.label,
            boxes=(tensor * image_side / canvas_side).to(torch.float32),
            box_labels=box_labels,
            mask=mask,
            source_id=entry.source_id,
            finding=entry.finding,
            meta=MappingProxyType({
                "reader": self.reader,
                "file": str(entry.image_path),
                "annotation_file": entry.annotation_file,
                "row": entry.row,
                "box_rows": box_rows,
                "original_size": size,
                "canvas_size": canvas,
                "negative": entry.finding == self.negative_finding,
                **entry.meta,
            }),
        )
        return record if self.transform is None else self.transform(record)

    def __getitem__(self, i: int) -> SampleRecord:
        if isinstance(i, bool) or not isinstance(i, int):
            raise DTypeError(f"Expected an int index, but got {type(i).__name__} {i!r}.")
        return self.load(self.entries[i])

    def verify(self) -> AnnotatedDataset:
        """Load every sample once; apply ``on_error`` to the failures; keep the rest.

        After ``verify()`` the dataset's length counts only loadable samples
        (costs one pass over the images). Returns ``self``.
        """
        log = SkipLog(self.on_error)
        log.skipped = self.skipped
        kept = []
        for entry in self.entries:
            try:
                self.load(entry)
            except DatasetError as error:
                log.report(error)
                continue
            kept.append(entry)
        self.entries = tuple(kept)
        return self
