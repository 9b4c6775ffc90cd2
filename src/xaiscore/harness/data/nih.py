"""Reader for NIH ChestX-ray14 (Wang et al., CVPR 2017) with its bounding boxes.

Expected files under ``root``:

* ``BBox_List_2017.csv`` with the header ``Image Index,Finding Label,Bbox [x,y,w,h],,,``,
  i.e. the columns ``Image Index``, ``Finding Label``, ``Bbox [x``, ``y``,
  ``w``, ``h]`` (plus trailing empty columns): one box per row, ``x, y`` the
  top-left corner and ``w, h`` the size, float pixels on the 1024 x 1024 canvas
  of the distributed PNGs;
* optionally ``Data_Entry_2017*.csv`` (``Image Index,Finding Labels,Follow-up #,
  Patient ID,...``) with ``|``-separated image labels: they go to
  ``meta["finding_labels"]``, and its ``No Finding`` images are the negatives;
* the PNG images, in ``root/images``, ``root`` or any sub-folder (as in the
  ``images_001/images`` layout of the download).

One sample per (image, finding): the boxes of that finding on that image, the
classification target its class index; ``source_id = "<image>:<finding>"``.
The box list spells ``Infiltrate`` where the labels say ``Infiltration``; the
alias maps the former to the latter.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple

from xaiscore._checks import OptionError
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
    load_image,
    parse_number,
    read_csv_rows,
)
from xaiscore.harness.data.errors import DatasetError, OnError, SkipLog
from xaiscore.harness.data.records import NEGATIVE_FINDING, SampleRecord

__all__ = ["NIH_CLASSES", "NIH_ALIASES", "read_nih_chestxray14"]

#: The 14 ChestX-ray14 findings (alphabetical) after ``No Finding``.
NIH_CLASSES: tuple[str, ...] = (
    NEGATIVE_FINDING, "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion",
    "Emphysema",
    "Fibrosis", "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",  # noqa: E501
)
#: Spellings of the box list mapped to class names.
NIH_ALIASES = {"Infiltrate": "Infiltration"}

_BOX_COLUMNS = ("Bbox [x", "y", "w", "h]")


def _count(negatives: object) -> int | None:
    """``negatives`` as a cap: ``None`` = all, 0 = none."""
    if negatives is True:
        return None
    if negatives is False:
        return 0
    if isinstance(negatives, int) and negatives >= 0:
        return negatives
    raise OptionError(
        f"Expected `negatives` as a bool or a non-negative int, but got {negatives!r}.")


def read_nih_chestxray14(
    root: str | os.PathLike[str],
    *,
    bbox_csv: str | os.PathLike[str] = "BBox_List_2017.csv",
    data_entry_csv: str | os.PathLike[str] | bool | None = None,
    image_dir: str | os.PathLike[str] | None = None,
    class_names: Sequence[str] = NIH_CLASSES,
    negatives: bool | int = False,
    canvas_size: int | tuple[int, int] | None = 1024,
    channels: int | None = 1,
    clip_boxes: bool = False,
    transform: Callable[[SampleRecord], SampleRecord] | None = None,
    on_error: OnError = "raise",
) -> AnnotatedDataset:
    """Read NIH ChestX-ray14 boxes (see the module docs for the files).

    Args:
        root: The dataset folder.
        bbox_csv: The box list, relative to ``root`` unless absolute.
        data_entry_csv: The label file; ``None`` finds ``Data_Entry_2017*.csv``
            in ``root`` if there is one, ``False`` reads none.
        image_dir: Where the PNGs are (default ``root/images``, then ``root``
            and every sub-folder).
        class_names: The model's classes; box findings must be among them.
        negatives: Also yield ``No Finding`` images of the label file:
            ``True`` for all, an int for the first that many (file order).
        canvas_size: ``(H, W)`` (or one int) of the pixel grid the box
            coordinates refer to (1024 for the distributed PNGs); boxes are
            scaled per axis to the image as loaded. ``None``: the image's own size.
        channels: 1 (default), 3, or ``None`` for the file's channels.
        clip_boxes: Clip boxes that stick out of the canvas instead of
            reporting them (a box entirely outside is always an error).
        transform: Applied to every record.
        on_error: ``"raise"`` a :class:`DatasetError` naming file and row, or
            ``"skip"`` the affected image and record it in ``skipped``.

    Returns:
        An :class:`~xaiscore.harness.data._base.AnnotatedDataset`.

    Raises:
        DatasetError: a missing file or column, an unknown finding, a bad
            number, a box outside the canvas, a missing image (``on_error="raise"``).
        OptionError: a bad option, or ``negatives`` without ``No Finding`` in
            ``class_names`` or without a label file.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (root / "BBox_List_2017.csv").write_text(
        ...     "Image Index,Finding Label,Bbox [x,y,w,h],,,\\n00000001_000.png,Nodule,256,512,128,64,,,\\n")
        >>> Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "00000001_000.png")
        >>> ds = read_nih_chestxray14(root)
        >>> ds[0].source_id, ds[0].boxes.tolist(), ds.class_names[ds[0].label]
        ('00000001_000.png:Nodule', [[8.0, 16.0, 12.0, 18.0]], 'Nodule')
    """  # noqa: E501
    root = Path(root)
    log = SkipLog(on_error)
    resolver = ClassResolver(class_names, NIH_ALIASES)
    canvas = canvas_of(canvas_size)
    channels = check_channels(channels)
    cap = _count(negatives)
    negative_label = resolver.require_negative() if cap != 0 else None
    bbox_path = resolve_path(bbox_csv, root)
    entry_path = _label_file(root, data_entry_csv)
    if cap != 0 and entry_path is None:
        raise OptionError(
            f"Expected a Data_Entry_2017*.csv label file in {root} (or `data_entry_csv=`) to find "
            "the negatives; none was found."
        )
    folders = [resolve_path(image_dir, root)] if image_dir is not None else [root / "images", root]
    locator = ImageLocator(folders, (".png",))
    file = str(bbox_path)

    boxes = group_rows(
        read_csv_rows(bbox_path, required=("Image Index", "Finding Label", *_BOX_COLUMNS)),
        key=row_id("Image Index", file=file),
        parse=partial(_box_row, resolver=resolver, canvas=canvas, clip_boxes=clip_boxes, file=file),
        log=log,
    )
    labels = _Labels() if entry_path is None else _read_labels(entry_path, resolver, log)

    def positives(name: str, rows: list[_BoxRow], path: Path) -> list[Entry]:
        meta = {"image_id": name, "finding_labels": labels.labels.get(name),
                **labels.extra.get(name, {})}
        return [
            Entry(source_id=f"{name}:{finding}", image_path=path, finding=finding,
                  label=resolver.class_names.index(finding), boxes=tuple(b for b, _ in pairs),
                  box_labels=(finding,) * len(pairs), box_rows=tuple(r for _, r in pairs),
                  canvas=canvas,
                  annotation_file=file, row=pairs[0][1], meta=dict(meta))
            for finding, pairs in _by_finding(rows).items()
        ]

    def negative(name: str, row: int, path: Path) -> list[Entry]:
        return [Entry(
            source_id=f"{name}:{NEGATIVE_FINDING}", image_path=path, finding=NEGATIVE_FINDING,
            label=negative_label, boxes=(), box_labels=(), box_rows=(), canvas=canvas,  # type: ignore[arg-type]
            annotation_file=str(entry_path), row=row,
            meta={"image_id": name, "finding_labels": labels.labels[name],
                  **labels.extra.get(name, {})},
        )]

    entries = locate_entries(
        boxes.groups.items(),
        locate=lambda name, rows: locate_image(locator, name, file=file, row=rows[0].row),
        build=positives, log=log)
    entries += locate_entries(
        [(name, row) for name, row in labels.negatives if not boxes.seen(name)],
        locate=lambda name, row: locate_image(locator, name, file=entry_path, row=row),  # type: ignore[arg-type]
        build=negative, log=log, limit=cap)
    return AnnotatedDataset(
        entries, class_names=resolver.class_names, loader=partial(load_image, channels=channels),
        transform=transform, log=log, reader="nih_chestxray14", clip_boxes=clip_boxes,
    )


def _label_file(root: Path, data_entry_csv: str | os.PathLike[str] | bool | None) -> Path | None:
    """The label file: found in ``root`` (``None``), none (``False``) or the given path."""
    if data_entry_csv is None:
        found = sorted(root.glob("Data_Entry_2017*.csv"))
        return found[0] if found else None
    if data_entry_csv is False:
        return None
    if data_entry_csv is True:
        raise OptionError(
            "Expected `data_entry_csv` as a path, None (find it) or False, but got True.")
    return resolve_path(data_entry_csv, root)


class _BoxRow(NamedTuple):
    finding: str
    box: Box
    row: int


def _box_row(name: str, item: CsvRow, earlier: list[_BoxRow], *, resolver: ClassResolver,
             canvas: tuple[int, int] | None, clip_boxes: bool, file: str) -> _BoxRow:
    """One row of the box list: its finding and its checked ``xyxy`` box."""
    row, fields = item
    finding, _ = resolver.resolve(fields["Finding Label"] or "", file=file, row=row)
    x, y, w, h = (parse_number(fields[c], column=c, file=file, row=row) for c in _BOX_COLUMNS)
    box = check_box((x, y, x + w, y + h), canvas, clip=clip_boxes, file=file, row=row,
                    where=f"image {name}")
    return _BoxRow(finding, box, row)


def _by_finding(rows: list[_BoxRow]) -> dict[str, list[tuple[Box, int]]]:
    """An image's ``(box, row)`` pairs per finding, findings in order of appearance."""
    findings: dict[str, list[tuple[Box, int]]] = {}
    for finding, box, row in rows:
        findings.setdefault(finding, []).append((box, row))
    return findings


_OPTIONAL = ("Patient ID", "Follow-up #", "View Position", "Patient Age", "Patient Gender")


@dataclass
class _Labels:
    """What the label file says: labels and extra columns per image, the ``No Finding`` rows in
    order."""

    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    extra: dict[str, dict[str, object]] = field(default_factory=dict)
    negatives: list[tuple[str, int]] = field(default_factory=list)


def _read_labels(path: Path, resolver: ClassResolver, log: SkipLog) -> _Labels:
    labels = _Labels()
    for row, fields in read_csv_rows(path, required=("Image Index", "Finding Labels"),
                                     optional=_OPTIONAL):
        name = (fields["Image Index"] or "").strip()
        if is_blank(fields["Finding Labels"]):
            log.report(DatasetError("empty 'Finding Labels'", file=path, row=row))
            continue
        parts = (fields["Finding Labels"] or "").split("|")
        found_labels = tuple(resolver.canonical(v) for v in parts if v.strip())
        labels.labels[name] = found_labels
        labels.extra[name] = {k.lower().replace(" ", "_").replace(
            "#", "number").replace("-", "_"): v.strip()
                              for k, v in fields.items() if k in _OPTIONAL and v is not None}
        if found_labels == (NEGATIVE_FINDING,):
            labels.negatives.append((name, row))
    return labels
