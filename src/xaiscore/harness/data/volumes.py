"""Readers of volumes: NIfTI files and DICOM series, with label-map masks or a CSV of 3-D boxes.

Layouts (one case = one volume):

* :func:`read_nifti_volumes`: ``images/<case_id>.nii.gz`` (or ``.nii``);
* :func:`read_dicom_series`: ``series/<case_id>/<slices>`` (one folder of slices per case).

Annotations, either

* ``masks``: a folder of NIfTI label maps ``<case_id>.nii.gz`` in the volume's voxel grid
  (0 background, each other value a class named by ``classes``; several classes per
  case give one sample per class present). The boxes of a sample are the bounding boxes of
  the 26-connected components of its mask. Every label map is read once when the dataset
  is opened (to know which findings each case has); or
* ``boxes``: a CSV with the columns ``case_id, label, x0, y0, z0, x1, y1, z1``, one row per
  box, in voxel edge coordinates of the file as stored (``box_units="voxel"``) or in world
  millimetres RAS+ (``box_units="mm"``, converted through the volume's affine). The units
  are stated for the whole file. A case with rows of several labels gives one sample per
  label.

A case without any finding gives one negative sample (:data:`NEGATIVE_FINDING`, empty
mask). Orientation, spacing and what ``x, y, z`` mean: :mod:`~xaiscore.harness.data.volume_io`.
Each record's ``meta`` holds ``spacing`` (mm along ``D, H, W``), ``affine`` (voxel centre ->
world mm, as nested tuples) and the file.

Example:
    >>> import tempfile, pathlib, numpy as np, nibabel
    >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "img").mkdir()
    >>> nibabel.Nifti1Image(np.zeros((6, 5, 4), np.float32), np.eye(4)).to_filename(root / "img" / "c1.nii.gz")
    >>> _ = (root / "boxes.csv").write_text("case_id,label,x0,y0,z0,x1,y1,z1\\nc1,Lesion,1,1,1,3,2,2\\n")
    >>> ds = read_nifti_volumes(root / "img", boxes=root / "boxes.csv")
    >>> r = ds[0]; r.image.shape, r.boxes.tolist(), ds.class_names
    (torch.Size([1, 4, 5, 6]), [[1.0, 1.0, 1.0, 3.0, 2.0, 2.0]], ('No Finding', 'Lesion'))
"""  # noqa: E501

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from xaiscore._checks import OptionError, check_option
from xaiscore.harness.data._io import parse_number, read_csv_rows
from xaiscore.harness.data.boxes3d import check_box3d, empty_boxes, mask_boxes_3d
from xaiscore.harness.data.errors import DatasetError, OnError, SkipLog
from xaiscore.harness.data.records import NEGATIVE_FINDING, SampleRecord
from xaiscore.harness.data.volume_io import (
    NIFTI_SUFFIXES,
    Volume,
    case_id_of,
    load_dicom_series,
    load_label_map,
    load_nifti,
    map_voxel_box,
    scale_intensity,
    world_box_to_voxels,
)

__all__ = ["VolumeDataset", "read_nifti_volumes", "read_dicom_series"]

_BOX_COLUMNS = ("x0", "y0", "z0", "x1", "y1", "z1")


@dataclass(frozen=True)
class _VolumeEntry:
    case_id: str
    path: Path
    finding: str
    label: int
    boxes: tuple[tuple[tuple[float, ...], int], ...]  # (box as given, CSV row)
    label_value: int | None  # the label map value of the finding (masks mode)
    mask_path: Path | None
    annotation_file: str | None


class VolumeDataset:
    """The :class:`~xaiscore.harness.data.records.RecordDataset` of the volume readers.

    Loads a volume on indexing, scales its intensities, builds the mask (label maps) or
    converts and checks the boxes (CSV), then applies ``transform``.
    """

    def __init__(self, entries: Sequence[_VolumeEntry], class_names: tuple[str, ...], *,
                 loader: Callable[[Path], Volume], reader: str, box_units: str, canonical: bool,
                 intensity: str | Sequence[float], clip_boxes: bool,
                 transform: Callable[[SampleRecord], SampleRecord] | None, log: SkipLog) -> None:
        self.entries = list(entries)
        self.class_names = class_names
        self._loader, self.reader, self.box_units = loader, reader, box_units
        self.canonical, self.intensity, self.clip_boxes = canonical, intensity, clip_boxes
        self.transform = transform
        self.on_error: OnError = log.on_error
        self.skipped = log.skipped

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> SampleRecord:
        entry = self.entries[i]
        volume = self._loader(entry.path)
        shape = tuple(volume.image.shape[1:])
        if entry.mask_path is not None:
            labels = load_label_map(entry.mask_path, canonical=self.canonical, shape=shape)
            mask = (labels == entry.label_value).unsqueeze(0) if entry.label_value is not None \
                else torch.zeros((1, *shape), dtype=torch.bool)
            found = mask_boxes_3d(mask)
            boxes = torch.tensor(found, dtype=torch.float32).reshape(-1, 6)
        else:
            mask = None
            converted = [self._voxel_box(box, row, volume, entry, shape)
                         for box, row in entry.boxes]
            boxes = (torch.tensor(converted, dtype=torch.float32).reshape(-1, 6) if converted
                     else empty_boxes(3))
        record = SampleRecord(
            image=scale_intensity(volume.image, self.intensity).float(),
            label=entry.label,
            boxes=boxes,
            box_labels=(entry.finding,) * len(boxes) if entry.label else (),
            mask=mask,
            source_id=entry.case_id if self._single(entry) else f"{entry.case_id}/{entry.finding}",
            finding=entry.finding,
            meta={"reader": self.reader, "file": str(entry.path), "spacing": volume.spacing,
                  "affine": tuple(tuple(float(v) for v in row) for row in volume.affine),
                  "original_shape": shape},
        )
        return self.transform(record) if self.transform is not None else record

    def _single(self, entry: _VolumeEntry) -> bool:
        return sum(1 for e in self.entries if e.case_id == entry.case_id) == 1

    def _voxel_box(self, box: tuple[float, ...], row: int, volume: Volume, entry: _VolumeEntry,
                   shape: tuple[int, ...]) -> tuple[float, ...]:
        if self.box_units == "mm":
            box = world_box_to_voxels(box, volume.affine)
        elif not np.allclose(volume.original_affine, volume.affine):
            box = map_voxel_box(box, volume.original_affine, volume.affine)
        return check_box3d(box, shape, clip=self.clip_boxes,
                           file=entry.annotation_file or entry.path,
                           row=row, where=f"volume {entry.case_id}")  # type: ignore[arg-type]


def _nifti_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError("image folder not found", file=folder)
    files = sorted(p for p
                   in folder.iterdir() if p.is_file() and p.name.lower().endswith(NIFTI_SUFFIXES))
    return {case_id_of(p): p for p in files}


def _box_rows(path: Path, log: SkipLog) -> tuple[dict[str, dict[str, list[tuple[tuple[float, ...],
                                                                                int]]]], set[str]]:
    """case_id -> label -> [(box, row)] in order of appearance; a bad row drops its case."""
    cases: dict[str, dict[str, list[tuple[tuple[float, ...], int]]]] = {}
    bad: set[str] = set()
    for row, fields in read_csv_rows(path, required=("case_id", "label", *_BOX_COLUMNS)):
        case_id, label = (fields["case_id"] or "").strip(), (fields["label"] or "").strip()
        try:
            if not case_id or not label:
                raise DatasetError("expected a case_id and a label", file=path, row=row)
            box = tuple(parse_number(fields[c], column=c, file=path, row=row) for c in _BOX_COLUMNS)
            check_box3d(box, None, clip=False, file=path, row=row, where=f"case {case_id}")
        except DatasetError as error:
            log.report(error)
            if case_id:
                bad.add(case_id)
            continue
        cases.setdefault(case_id, {}).setdefault(label, []).append((box, row))
    return cases, bad


def _class_names(found: Sequence[str], class_names: Sequence[str] | None) -> tuple[str, ...]:
    if class_names is None:
        names = [NEGATIVE_FINDING] + [f for f in dict.fromkeys(found) if f != NEGATIVE_FINDING]
        return tuple(names)
    names = tuple(class_names)
    missing = sorted(set(found) - set(names))
    if missing:
        raise OptionError(
            f"Expected `class_names` to contain every finding, but {missing} are missing from "
            f"{names}.")
    if NEGATIVE_FINDING not in names:
        names = (NEGATIVE_FINDING, *names)
    return names


_Plan = list[tuple[str, Path, str, Any, "Path | None", tuple]]


def _plan_boxes(cases: Mapping[str, Path], boxes: Path, log: SkipLog) -> _Plan:
    """One planned sample per (case, label) of the CSV; a case without rows is negative."""
    rows, bad = _box_rows(boxes, log)
    for case_id in sorted(set(rows) - set(cases) - bad):
        first_row = next(iter(rows[case_id].values()))[0][1]
        log.report(DatasetError(f"no volume for case {case_id!r}", file=boxes, row=first_row))
    plan: _Plan = []
    for case_id, path in cases.items():
        if case_id in bad:
            continue
        for finding, items in rows.get(case_id, {NEGATIVE_FINDING: []}).items():
            plan.append((case_id, path, finding, None, None, tuple(items)))
    return plan


def _case_labels(mask_path: Path, classes: Mapping[int, str], canonical: bool) -> list[int]:
    """The label values of ``classes`` present in a label map (``DatasetError`` for unknown values).
    """
    values = torch.unique(load_label_map(mask_path, canonical=canonical)).tolist()
    unknown = sorted(set(values) - set(classes) - {0})
    if unknown:
        raise DatasetError(f"label values {unknown} are not in `classes` {dict(classes)}",
                           file=mask_path)
    return [v for v in sorted(classes) if v in values]


def _plan_masks(cases: Mapping[str, Path], masks: Path, classes: Mapping[int, str], canonical: bool,
                log: SkipLog) -> _Plan:
    """One planned sample per class present in each case's label map; none present: negative."""
    plan: _Plan = []
    for case_id, path in cases.items():
        mask_path = next((masks / (case_id + s) for s in NIFTI_SUFFIXES
                          if (masks / (case_id + s)).is_file()), None)
        if mask_path is None:
            log.report(DatasetError(f"no label map for case {case_id!r} in {masks}", file=path))
            continue
        try:
            present = _case_labels(mask_path, classes, canonical)
        except DatasetError as error:
            log.report(error)
            continue
        for value in present or [None]:
            finding = classes[value] if value is not None else NEGATIVE_FINDING
            plan.append((case_id, path, finding, value, mask_path, ()))
    return plan


def _entries(cases: Mapping[str, Path], *, masks: Path | None, boxes: Path | None,
             classes: Mapping[int, str], class_names: Sequence[str] | None, canonical: bool,
             log: SkipLog) -> tuple[list[_VolumeEntry], tuple[str, ...]]:
    if (masks is None) == (boxes is None):
        raise OptionError(
            "Expected exactly one of `masks` (a folder of label maps) and `boxes` (a CSV file).")
    if boxes is not None:
        plan, found = _plan_boxes(cases, boxes, log), []
    else:
        plan, found = _plan_masks(cases, masks, classes, canonical, log), list(classes.values())  # type: ignore[arg-type]
    names = _class_names([p[2] for p in plan] + found, class_names)
    entries = [
        _VolumeEntry(case_id, path, finding, names.index(finding), items, value, mask_path,
                     None if boxes is None else str(boxes))
        for case_id, path, finding, value, mask_path, items in plan
    ]
    return entries, names


def _check_classes(classes: Mapping[int, str] | None) -> dict[int, str]:
    if classes is None:
        return {1: "Lesion"}
    if not isinstance(classes, Mapping) or not classes or not all(
            isinstance(k, int) and not isinstance(k, bool) and k > 0 and isinstance(v, str)
            for k, v in classes.items()):
        raise OptionError(
            "Expected `classes` as a mapping of positive label values to names, but got "
            f"{classes!r}.")
    return dict(classes)


def _open(reader: str, cases: Mapping[str, Path], loader: Callable[[Path], Volume], *, masks, boxes,
          box_units,
          classes, class_names, canonical, intensity, clip_boxes, transform,
          on_error) -> VolumeDataset:
    check_option(box_units, "box_units", ("voxel", "mm"))
    scale_intensity(torch.zeros(1), intensity)  # checks the option
    log = SkipLog(on_error)
    entries, names = _entries(
        cases, masks=None if masks is None else Path(masks),
        boxes=None if boxes is None else Path(boxes),
        classes=_check_classes(classes), class_names=class_names, canonical=canonical, log=log)
    return VolumeDataset(entries, names, loader=loader, reader=reader, box_units=box_units,
                         canonical=canonical,
                         intensity=intensity, clip_boxes=clip_boxes, transform=transform, log=log)


def read_nifti_volumes(
    images: str | os.PathLike[str],
    *,
    masks: str | os.PathLike[str] | None = None,
    boxes: str | os.PathLike[str] | None = None,
    box_units: Literal["voxel", "mm"] = "voxel",
    classes: Mapping[int, str] | None = None,
    class_names: Sequence[str] | None = None,
    canonical: bool = True,
    intensity: str | Sequence[float] = "minmax",
    clip_boxes: bool = False,
    transform: Callable[[SampleRecord], SampleRecord] | None = None,
    on_error: OnError = "raise",
) -> VolumeDataset:
    """NIfTI volumes ``images/<case_id>.nii[.gz]`` with label maps or a CSV of 3-D boxes.

    Args:
        images: Folder of the volumes.
        masks: Folder of NIfTI label maps ``<case_id>.nii[.gz]`` (exclusive with ``boxes``).
        boxes: CSV ``case_id, label, x0, y0, z0, x1, y1, z1`` (exclusive with ``masks``).
        box_units: ``"voxel"`` (edges in the file's voxel grid as stored) or ``"mm"``
            (world RAS+ millimetres).
        classes: Label value -> finding name for label maps (default ``{1: "Lesion"}``).
        class_names: All class names in index order (default: :data:`NEGATIVE_FINDING`, then
            the findings in order of appearance).
        canonical: Reorient every volume (and label map, and voxel box) to the closest RAS+
            voxel order.
        intensity: ``"minmax"``, ``"raw"`` or a window ``(low, high)``
            (:func:`~xaiscore.harness.data.volume_io.scale_intensity`).
        clip_boxes: Clip boxes that stick out of the volume instead of rejecting the case.
        transform: Applied to each record (e.g.
            :class:`~xaiscore.harness.data.volume_transforms.Resample`).
        on_error: ``"raise"`` or ``"skip"`` (bad rows and cases go to ``dataset.skipped``).

    Raises:
        DatasetError: missing folders or files, unreadable volumes, bad rows (``on_error="raise"``).
        OptionError: both or neither of ``masks`` and ``boxes``; bad options.
    """
    return _open("nifti", _nifti_files(Path(images)),
                 lambda path: load_nifti(path, canonical=canonical),
                 masks=masks, boxes=boxes, box_units=box_units, classes=classes,
                 class_names=class_names,
                 canonical=canonical, intensity=intensity, clip_boxes=clip_boxes,
                 transform=transform,
                 on_error=on_error)


def read_dicom_series(
    series: str | os.PathLike[str],
    *,
    masks: str | os.PathLike[str] | None = None,
    boxes: str | os.PathLike[str] | None = None,
    box_units: Literal["voxel", "mm"] = "voxel",
    classes: Mapping[int, str] | None = None,
    class_names: Sequence[str] | None = None,
    intensity: str | Sequence[float] = "minmax",
    clip_boxes: bool = False,
    transform: Callable[[SampleRecord], SampleRecord] | None = None,
    on_error: OnError = "raise",
) -> VolumeDataset:
    """DICOM series ``series/<case_id>/<slice files>`` with label maps or a CSV of 3-D boxes.

    Slices are sorted by position along the slice normal; voxel ``x`` is the column, ``y``
    the row and ``z`` the sorted slice index (no reorientation); label maps (NIfTI, named
    by case) must be stored in that grid (``data[x, y, z]``). World millimetres are RAS+
    (DICOM's LPS with x and y negated). Arguments as :func:`read_nifti_volumes`.
    """
    root = Path(series)
    if not root.is_dir():
        raise DatasetError("series folder not found", file=root)
    cases = {p.name: p for p in sorted(root.iterdir()) if p.is_dir()}
    return _open("dicom", cases, load_dicom_series, masks=masks, boxes=boxes, box_units=box_units,
                 classes=classes, class_names=class_names, canonical=False, intensity=intensity,
                 clip_boxes=clip_boxes, transform=transform, on_error=on_error)
