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
from functools import partial
from pathlib import Path

from xaiscore._checks import OptionError
from xaiscore.harness.data._base import (
    AnnotatedDataset,
    ClassResolver,
    Entry,
    canvas_of,
    check_box,
    check_channels,
    locate_image,
    resolve_path,
)
from xaiscore.harness.data._io import ImageLocator, is_blank, load_image, parse_number, read_csv_rows
from xaiscore.harness.data.errors import DatasetError, OnError, SkipLog
from xaiscore.harness.data.records import NEGATIVE_FINDING, SampleRecord

__all__ = ["NIH_CLASSES", "NIH_ALIASES", "read_nih_chestxray14"]

#: The 14 ChestX-ray14 findings (alphabetical) after ``No Finding``.
NIH_CLASSES: tuple[str, ...] = (
    NEGATIVE_FINDING, "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema",
    "Fibrosis", "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
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
    raise OptionError(f"Expected `negatives` as a bool or a non-negative int, but got {negatives!r}.")


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
    """
    root = Path(root)
    log = SkipLog(on_error)
    resolver = ClassResolver(class_names, NIH_ALIASES)
    canvas = canvas_of(canvas_size)
    channels = check_channels(channels)
    cap = _count(negatives)
    negative_label = resolver.require_negative() if cap != 0 else None
    bbox_path = resolve_path(bbox_csv, root)
    if data_entry_csv is None:
        found = sorted(root.glob("Data_Entry_2017*.csv"))
        entry_path = found[0] if found else None
    elif data_entry_csv is False:
        entry_path = None
    elif data_entry_csv is True:
        raise OptionError("Expected `data_entry_csv` as a path, None (find it) or False, but got True.")
    else:
        entry_path = resolve_path(data_entry_csv, root)
    if cap != 0 and entry_path is None:
        raise OptionError(
            f"Expected a Data_Entry_2017*.csv label file in {root} (or `data_entry_csv=`) to find the "
            "negatives; none was found."
        )
    folders = [resolve_path(image_dir, root)] if image_dir is not None else [root / "images", root]
    locator = ImageLocator(folders, (".png",))
    file = str(bbox_path)

    # per image, in order of appearance: finding -> [(box, row)]
    images: dict[str, dict[str, list[tuple[tuple[float, float, float, float], int]]]] = {}
    first_row: dict[str, int] = {}
    bad: set[str] = set()
    for row, fields in read_csv_rows(bbox_path, required=("Image Index", "Finding Label", *_BOX_COLUMNS)):
        name = (fields["Image Index"] or "").strip()
        try:
            if not name:
                raise DatasetError("empty 'Image Index'", file=file, row=row)
            first_row.setdefault(name, row)
            if name in bad:
                continue
            finding, _ = resolver.resolve(fields["Finding Label"] or "", file=file, row=row)
            x, y, w, h = (parse_number(fields[c], column=c, file=file, row=row) for c in _BOX_COLUMNS)
            box = (x, y, x + w, y + h)
            box = check_box(box, canvas, clip=clip_boxes, file=file, row=row, where=f"image {name}")
        except DatasetError as error:
            log.report(error)
            if name:
                bad.add(name)
                images.pop(name, None)
            continue
        images.setdefault(name, {}).setdefault(finding, []).append((box, row))

    labels: dict[str, tuple[str, ...]] = {}
    extra: dict[str, dict[str, object]] = {}
    negative_rows: list[tuple[str, int]] = []
    if entry_path is not None:
        optional = ("Patient ID", "Follow-up #", "View Position", "Patient Age", "Patient Gender")
        for row, fields in read_csv_rows(entry_path, required=("Image Index", "Finding Labels"), optional=optional):
            name = (fields["Image Index"] or "").strip()
            if is_blank(fields["Finding Labels"]):
                log.report(DatasetError("empty 'Finding Labels'", file=entry_path, row=row))
                continue
            parts = (fields["Finding Labels"] or "").split("|")
            found_labels = tuple(resolver.canonical(v) for v in parts if v.strip())
            labels[name] = found_labels
            extra[name] = {k.lower().replace(" ", "_").replace("#", "number").replace("-", "_"): v.strip()
                           for k, v in fields.items() if k in optional and v is not None}
            if found_labels == (NEGATIVE_FINDING,) and name not in first_row:
                negative_rows.append((name, row))

    entries: list[Entry] = []
    for name, findings in images.items():
        try:
            path = locate_image(locator, name, file=file, row=first_row[name])
        except DatasetError as error:
            log.report(error)
            continue
        for finding, boxes in findings.items():
            entries.append(Entry(
                source_id=f"{name}:{finding}",
                image_path=path,
                finding=finding,
                label=resolver.class_names.index(finding),
                boxes=tuple(b for b, _ in boxes),
                box_labels=(finding,) * len(boxes),
                box_rows=tuple(r for _, r in boxes),
                canvas=canvas,
                annotation_file=file,
                row=boxes[0][1],
                meta={"image_id": name, "finding_labels": labels.get(name), **extra.get(name, {})},
            ))
    taken = 0
    for name, row in negative_rows:
        if cap is not None and taken >= cap:
            break
        try:
            path = locate_image(locator, name, file=entry_path, row=row)
        except DatasetError as error:
            log.report(error)
            continue
        taken += 1
        entries.append(Entry(
            source_id=f"{name}:{NEGATIVE_FINDING}", image_path=path, finding=NEGATIVE_FINDING,
            label=negative_label, boxes=(), box_labels=(), box_rows=(), canvas=canvas,  # type: ignore[arg-type]
            annotation_file=str(entry_path), row=row,
            meta={"image_id": name, "finding_labels": labels[name], **extra.get(name, {})},
        ))
    return AnnotatedDataset(
        entries, class_names=resolver.class_names, loader=partial(load_image, channels=channels),
        transform=transform, log=log, reader="nih_chestxray14", clip_boxes=clip_boxes,
    )
