"""Reader for the RSNA Pneumonia Detection Challenge (2018) data.

Expected files under ``root``:

* ``stage_2_train_labels.csv`` with the columns ``patientId,x,y,width,height,Target``:
  one row per box (``x, y`` the top-left corner, ``width, height`` the size, in
  pixels of the 1024 x 1024 DICOM images) and ``Target = 1``; a negative image
  has one row with empty coordinates and ``Target = 0``;
* the DICOM images ``<patientId>.dcm`` in ``root/stage_2_train_images``,
  ``root`` or any sub-folder.

One sample per image; ``source_id`` is the ``patientId``. Positives have the
finding ``"Lung Opacity"``, negatives ``"No Finding"``. A patient whose rows
mix ``Target`` values, a ``Target = 1`` row without coordinates or a
``Target = 0`` row with coordinates is an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import NamedTuple

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
    load_dicom,
    parse_number,
    read_csv_rows,
)
from xaiscore.harness.data.errors import DatasetError, OnError, SkipLog
from xaiscore.harness.data.records import NEGATIVE_FINDING, SampleRecord

__all__ = ["RSNA_CLASSES", "read_rsna_pneumonia"]

#: Negative and positive class of the challenge.
RSNA_CLASSES: tuple[str, ...] = (NEGATIVE_FINDING, "Lung Opacity")

_COORDINATES = ("x", "y", "width", "height")


def read_rsna_pneumonia(
    root: str | os.PathLike[str],
    *,
    labels_csv: str | os.PathLike[str] = "stage_2_train_labels.csv",
    image_dir: str | os.PathLike[str] | None = None,
    class_names: Sequence[str] = RSNA_CLASSES,
    positive_finding: str = "Lung Opacity",
    negatives: bool = True,
    canvas_size: int | tuple[int, int] | None = 1024,
    channels: int | None = 1,
    clip_boxes: bool = False,
    transform: Callable[[SampleRecord], SampleRecord] | None = None,
    on_error: OnError = "raise",
) -> AnnotatedDataset:
    """Read the RSNA Pneumonia boxes and DICOM images (see the module docs).

    Args:
        root: The dataset folder.
        labels_csv: The label file, relative to ``root`` unless absolute.
        image_dir: Where the DICOMs are (default ``root/stage_2_train_images``,
            then ``root`` and every sub-folder).
        class_names: The model's classes; must hold ``positive_finding`` (and
            ``"No Finding"`` when ``negatives``).
        positive_finding: The finding name of ``Target = 1``.
        negatives: Also yield the ``Target = 0`` images.
        canvas_size: The pixel grid of the coordinates (1024); ``None``: the image's own size.
        channels: 1 (default), 3 or ``None``.
        clip_boxes: Clip boxes sticking out of the canvas instead of reporting them.
        transform: Applied to every record.
        on_error: ``"raise"`` or ``"skip"`` (see :class:`~xaiscore.harness.data.errors.SkipLog`).

    Returns:
        An :class:`~xaiscore.harness.data._base.AnnotatedDataset` whose images
        are DICOMs read by :func:`~xaiscore.harness.data._io.load_dicom`
        (rescaled, min-max normalised, ``MONOCHROME1`` inverted).

    Raises:
        DatasetError: bad rows, unknown ``Target``, missing images (``on_error="raise"``).
        OptionError: a bad option, or a class missing from ``class_names``.
    """
    root = Path(root)
    log = SkipLog(on_error)
    resolver = ClassResolver(class_names)
    canvas = canvas_of(canvas_size)
    channels = check_channels(channels)
    negative_label = resolver.require_negative() if negatives else None
    labels_path = resolve_path(labels_csv, root)
    file = str(labels_path)
    positive_name, positive_label = positive_finding, resolver.require(positive_finding,
                                                                       "positive_finding")
    folders = ([resolve_path(image_dir, root)] if image_dir is not None
               else [root / "stage_2_train_images", root])
    locator = ImageLocator(folders, (".dcm",))

    patients = group_rows(
        read_csv_rows(labels_path, required=("patientId", *_COORDINATES, "Target")),
        key=row_id("patientId", file=file),
        parse=partial(_label_row, canvas=canvas, clip_boxes=clip_boxes, file=file),
        log=log,
    )

    def build(patient: str, rows: list[_LabelRow], path: Path) -> list[Entry]:
        positive = rows[0].target == 1
        boxes = tuple(r.box for r in rows if r.box is not None)
        return [Entry(
            source_id=patient,
            image_path=path,
            finding=positive_name if positive else NEGATIVE_FINDING,
            label=positive_label if positive else negative_label,  # type: ignore[arg-type]
            boxes=boxes,
            box_labels=(positive_name,) * len(boxes),
            box_rows=tuple(r.row for r in rows) if positive else (),
            canvas=canvas,
            annotation_file=file,
            row=rows[0].row,
            meta={"patient_id": patient, "target": rows[0].target},
        )]

    entries = locate_entries(
        ((patient, rows) for patient, rows in patients.groups.items() if negatives
         or rows[0].target == 1),
        locate=lambda patient, rows: locate_image(locator, patient, file=file, row=rows[0].row),
        build=build, log=log)
    return AnnotatedDataset(
        entries, class_names=resolver.class_names, loader=partial(load_dicom, channels=channels),
        transform=transform, log=log, reader="rsna_pneumonia", clip_boxes=clip_boxes,
    )


class _LabelRow(NamedTuple):
    target: int
    box: Box | None  # None on a Target 0 row
    row: int


def _label_row(patient: str, item: CsvRow, earlier: list[_LabelRow], *,
               canvas: tuple[int, int] | None,
               clip_boxes: bool, file: str) -> _LabelRow:
    """One row: its ``Target`` (the same on every row of a patient) and its checked box
    (``Target = 1``)."""
    row, fields = item
    target = parse_number(fields["Target"], column="Target", file=file, row=row)
    if target not in (0.0, 1.0):
        raise DatasetError(f"expected Target 0 or 1, but got {fields['Target']!r}", file=file,
                           row=row)
    blank = [is_blank(fields[c]) for c in _COORDINATES]
    if earlier and earlier[0].target != int(target):
        raise DatasetError(
            f"patient {patient} has rows with Target {earlier[0].target} and {int(target)}",
            file=file, row=row,
        )
    if target == 0.0:
        if not all(blank):
            raise DatasetError("a Target 0 row must have empty coordinates", file=file, row=row)
        return _LabelRow(0, None, row)
    if any(blank):
        raise DatasetError("a Target 1 row needs x, y, width and height", file=file, row=row)
    x, y, w, h = (parse_number(fields[c], column=c, file=file, row=row) for c in _COORDINATES)
    box = check_box((x, y, x + w, y + h), canvas, clip=clip_boxes, file=file, row=row,
                    where=f"patient {patient}")
    return _LabelRow(1, box, row)
