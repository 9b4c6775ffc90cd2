"""Reader for VinDr-CXR (Nguyen et al., Scientific Data 2022).

Expected files under ``root``:

* a label file (``train.csv`` as on Kaggle, or ``annotations/annotations_train.csv``
  as on PhysioNet) with the columns ``image_id,class_name,class_id,rad_id,
  x_min,y_min,x_max,y_max`` (``class_id`` and ``rad_id`` optional; ``width``,
  ``height`` optional): one row per box and reader, coordinates in pixels of
  the native DICOM resolution; ``No finding`` rows have empty coordinates;
* the images ``<image_id>.dicom`` / ``.dcm`` (or ``.png``) in ``root/train``,
  ``root`` or any sub-folder.

Each training image was read by three radiologists (``rad_id``); ``fusion``
combines them (see :mod:`xaiscore.harness.data.fusion`): ``"union"`` of all
boxes, pixel-wise ``"majority"`` (more than half of the image's readers), or
``"per_reader"`` samples. A file without ``rad_id`` (e.g. the consensus test
labels) has one reader per image.

One sample per (image, finding), ``source_id = "<image_id>:<finding>"`` (plus
``":<rad_id>"`` per reader). Negatives are images that every reader marked
``No finding`` (the class is named ``No Finding`` here, as in every reader).
Box coordinates are checked against the image when it is loaded, unless
``canvas_size`` or the ``width``/``height`` columns give the size up front
(these also let boxes drawn on the original DICOM be scaled onto smaller PNGs).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import NamedTuple

import torch

from xaiscore._checks import check_option
from xaiscore.harness.data._base import (
    AnnotatedDataset,
    Box,
    ClassResolver,
    CsvRow,
    Entry,
    canvas_of,
    check_box,
    check_channels,
    group_rows,
    locate_entries,
    locate_image,
    resolve_path,
    row_id,
)
from xaiscore.harness.data._io import (
    ImageLocator,
    is_blank,
    load_any_image,
    parse_number,
    read_csv_rows,
)
from xaiscore.harness.data.errors import DatasetError, OnError, SkipLog
from xaiscore.harness.data.fusion import FUSIONS, majority_region
from xaiscore.harness.data.records import NEGATIVE_FINDING, SampleRecord

__all__ = ["VINDR_CLASSES", "VINDR_ALIASES", "read_vindr_cxr"]

#: The VinDr-CXR local findings in ``class_id`` order 0-13, then the negative class (14).
VINDR_CLASSES: tuple[str, ...] = (
    "Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD",
    "Infiltration", "Lung Opacity", "Nodule/Mass", "Other lesion", "Pleural effusion", "Pleural thickening",  # noqa: E501
    "Pneumothorax", "Pulmonary fibrosis", NEGATIVE_FINDING,
)
#: The file's spelling of the negative class.
VINDR_ALIASES = {"No finding": NEGATIVE_FINDING}

_COORDINATES = ("x_min", "y_min", "x_max", "y_max")
_LABEL_FILES = ("train.csv", "annotations/annotations_train.csv")


@dataclass(frozen=True)
class _CellsMask:
    """Rasterises the majority cells (canvas coordinates) at the loaded image's size; picklable."""

    cells: tuple[tuple[float, float, float, float], ...]
    canvas: tuple[int, int] | None

    def __call__(self, height: int, width: int) -> torch.Tensor:
        from xaiscore.functional.localization import boxes_to_mask

        source = self.canvas or (height, width)
        image_side = torch.tensor([width, height] * 2, dtype=torch.float64)
        canvas_side = torch.tensor([source[1], source[0]] * 2, dtype=torch.float64)
        scaled = (torch.tensor(self.cells, dtype=torch.float64).reshape(-1, 4) * image_side
                  / canvas_side)
        return boxes_to_mask([scaled], (height, width))[0]


def _sample(template: Entry, source_id: str, finding: str, resolver: ClassResolver, pairs: list,
            **meta) -> Entry:
    """An entry of ``template``'s image for ``finding`` with the ``(box, row)`` pairs."""
    return replace(
        template, source_id=source_id, finding=finding, label=resolver.class_names.index(finding),
        boxes=tuple(b for b, _ in pairs), box_labels=(finding,) * len(pairs),
        box_rows=tuple(r for _, r in pairs),
        row=pairs[0][1], meta={**template.meta, **meta},
    )


def read_vindr_cxr(
    root: str | os.PathLike[str],
    *,
    labels_csv: str | os.PathLike[str] | None = None,
    image_dir: str | os.PathLike[str] | None = None,
    class_names: Sequence[str] = VINDR_CLASSES,
    fusion: str = "union",
    negatives: bool = False,
    canvas_size: int | tuple[int, int] | None = None,
    channels: int | None = 1,
    clip_boxes: bool = False,
    transform: Callable[[SampleRecord], SampleRecord] | None = None,
    on_error: OnError = "raise",
) -> AnnotatedDataset:
    """Read VinDr-CXR boxes with reader fusion (see the module docs).

    Args:
        root: The dataset folder.
        labels_csv: The label file (default: ``train.csv``, else
            ``annotations/annotations_train.csv``), relative to ``root`` unless absolute.
        image_dir: Where the images are (default ``root/train``, then ``root``
            and every sub-folder).
        class_names: The model's classes (default: :data:`VINDR_CLASSES`).
        fusion: ``"union"`` (default), ``"majority"`` or ``"per_reader"``.
            Under ``"majority"`` a finding without a majority region on an image
            yields no sample; each such case is listed in ``skipped``.
        negatives: Also yield images every reader marked ``No finding``.
        canvas_size: The pixel grid of the coordinates when it is not the image's
            own size (overridden per image by ``width``/``height`` columns).
        channels: 1 (default), 3 or ``None``.
        clip_boxes: Clip boxes sticking out of the image instead of reporting them.
        transform: Applied to every record.
        on_error: ``"raise"`` or ``"skip"``.

    Returns:
        An :class:`~xaiscore.harness.data._base.AnnotatedDataset`; under
        ``"majority"`` records carry the exact majority ``mask`` and the boxes of
        its connected components.

    Raises:
        DatasetError: bad rows (a box on a ``No finding`` row, a finding row
            without a box, unknown findings, bad numbers), missing images.
        OptionError: a bad option.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "train").mkdir()
        >>> Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "train" / "x.png")
        >>> _ = (root / "train.csv").write_text(
        ...     "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\\n"
        ...     "x,Nodule/Mass,8,R1,0,0,4,4\\nx,Nodule/Mass,8,R2,2,2,6,6\\nx,No finding,14,R3,,,,\\n")
        >>> read_vindr_cxr(root)[0].boxes.tolist()
        [[0.0, 0.0, 4.0, 4.0], [2.0, 2.0, 6.0, 6.0]]
        >>> read_vindr_cxr(root, fusion="majority")[0].boxes.tolist()  # 2 of 3 readers agree here
        [[2.0, 2.0, 4.0, 4.0]]
    """  # noqa: E501
    root = Path(root)
    log = SkipLog(on_error)
    fusion = check_option(fusion, "fusion", FUSIONS)
    resolver = ClassResolver(class_names, VINDR_ALIASES)
    canvas = canvas_of(canvas_size)
    channels = check_channels(channels)
    if negatives:
        resolver.require_negative()
    labels_path = _label_file(root, labels_csv)
    file = str(labels_path)
    folders = [resolve_path(image_dir, root)] if image_dir is not None else [root / "train", root]
    locator = ImageLocator(folders, (".dicom", ".dcm", ".png"))

    images = group_rows(
        read_csv_rows(labels_path, required=("image_id", "class_name", *_COORDINATES),
                      optional=("class_id", "rad_id", "width", "height")),
        key=row_id("image_id", file=file),
        parse=partial(_label_row, resolver=resolver, canvas=canvas, clip_boxes=clip_boxes,
                      file=file),
        log=log,
    )

    def build(image: str, rows: list[_LabelRow], path: Path) -> list[Entry]:
        n_readers = len({r.reader for r in rows})
        template = Entry(
            source_id=f"{image}:{NEGATIVE_FINDING}", image_path=path, finding=NEGATIVE_FINDING,
            label=resolver.class_names.index(NEGATIVE_FINDING) if negatives else -1, boxes=(),
            box_labels=(),
            box_rows=(), canvas=rows[0].canvas, annotation_file=file, row=rows[0].row,
            meta={"image_id": image, "n_readers": n_readers},
        )
        findings = _findings(rows)
        if not findings:
            return [template]
        return [entry for finding, by_reader in findings.items()
                for entry in _fused(template, image, finding, by_reader, fusion=fusion,
                                    resolver=resolver,
                                    n_readers=n_readers, log=log)]

    entries = locate_entries(
        ((image, rows) for image, rows in images.groups.items() if negatives or _findings(rows)),
        locate=lambda image, rows: locate_image(locator, image, file=file, row=rows[0].row),
        build=build, log=log)
    return AnnotatedDataset(
        entries, class_names=resolver.class_names,
        loader=partial(load_any_image, channels=channels),
        transform=transform, log=log, reader="vindr_cxr", clip_boxes=clip_boxes,
    )


def _label_file(root: Path, labels_csv: str | os.PathLike[str] | None) -> Path:
    """The given label file, else the first of :data:`_LABEL_FILES` in ``root``."""
    if labels_csv is not None:
        return resolve_path(labels_csv, root)
    candidates = [root / name for name in _LABEL_FILES]
    labels_path = next((c for c in candidates if c.is_file()), None)
    if labels_path is None:
        raise DatasetError(
            f"no label file: expected one of {list(_LABEL_FILES)} (or pass `labels_csv`)",
            file=root)
    return labels_path


class _LabelRow(NamedTuple):
    reader: str
    finding: str
    box: Box | None  # None on a "No finding" row
    row: int
    # the canvas the row gives (an image's first row gives the image's)
    canvas: tuple[int, int] | None


def _row_canvas(fields: Mapping[str, str | None], canvas: tuple[int, int] | None, *, file: str,
                row: int) -> tuple[int, int] | None:
    """``(height, width)`` from the row's ``width``/``height`` columns, else ``canvas``."""
    if is_blank(fields.get("width")) or is_blank(fields.get("height")):
        return canvas
    w = parse_number(fields["width"], column="width", file=file, row=row)
    h = parse_number(fields["height"], column="height", file=file, row=row)
    return int(h), int(w)


def _label_row(image: str, item: CsvRow, earlier: list[_LabelRow], *, resolver: ClassResolver,
               canvas: tuple[int, int] | None, clip_boxes: bool, file: str) -> _LabelRow:
    """One reader's finding on an image: a checked box, or none on a ``No finding`` row."""
    row, fields = item
    reader = "consensus" if is_blank(fields.get("rad_id")) else (fields["rad_id"] or "").strip()
    finding, _ = resolver.resolve(fields["class_name"] or "", file=file, row=row)
    size = _row_canvas(fields, canvas, file=file, row=row)
    blank = [is_blank(fields[c]) for c in _COORDINATES]
    if finding == NEGATIVE_FINDING:
        if not all(blank):
            raise DatasetError("a 'No finding' row must have empty coordinates", file=file, row=row)
        return _LabelRow(reader, finding, None, row, size)
    if any(blank):
        raise DatasetError(f"a {finding!r} row needs x_min, y_min, x_max and y_max", file=file,
                           row=row)
    box = tuple(parse_number(fields[c], column=c, file=file, row=row) for c in _COORDINATES)
    box = check_box(box, size, clip=clip_boxes, file=file, row=row, where=f"image {image}")  # type: ignore[arg-type]
    return _LabelRow(reader, finding, box, row, size)


def _findings(rows: list[_LabelRow]) -> dict[str, dict[str, list[tuple[Box, int]]]]:
    """finding -> reader -> ``(box, row)`` pairs, findings in order of appearance."""
    findings: dict[str, dict[str, list[tuple[Box, int]]]] = {}
    for r in rows:
        if r.box is not None:
            findings.setdefault(r.finding, {}).setdefault(r.reader, []).append((r.box, r.row))
    return findings


def _fused(template: Entry, image: str, finding: str, by_reader: dict[str, list[tuple[Box, int]]],
           *,
           fusion: str, resolver: ClassResolver, n_readers: int, log: SkipLog) -> list[Entry]:
    """The entries of one finding on one image under ``fusion`` (none without a majority region)."""
    readers = sorted(by_reader)
    if fusion == "per_reader":
        return [_sample(template, f"{image}:{finding}:{reader}", finding, resolver,
                        by_reader[reader],
                        readers=(reader,), fusion=fusion)
                for reader in readers]
    pairs = [p for reader in readers for p in by_reader[reader]]
    if fusion == "union":
        return [_sample(template, f"{image}:{finding}", finding, resolver, pairs,
                        readers=tuple(readers),
                        fusion=fusion)]
    rows = [r for _, r in pairs]
    region = majority_region({k: [b for b, _ in v] for k, v in by_reader.items()},
                             n_readers=n_readers)
    if region.empty:
        log.note(template.annotation_file, rows[0], f"image {image}: no majority for {finding!r} "
                                                    f"({len(readers)} of {n_readers} readers "
                                                    "marked it; fusion='majority')")
        return []
    built = _sample(template, f"{image}:{finding}", finding, resolver,
                    [(box, rows[0]) for box in region.boxes], readers=tuple(readers), fusion=fusion)
    return [replace(built, mask=_CellsMask(tuple(region.cells), template.canvas))]
