"""Readers for ground truth given as mask images (PNG/TIFF): a mask folder, and MVTec AD.

Masks are binarised (a pixel is in the mask when its value, scaled to
``[0, 1]`` by the bit depth, is ``>= mask_threshold``, default 0.5), must have
the image's size, and the record's boxes are the bounding boxes of the mask's
8-connected components.

* :func:`read_mask_folder`: images in ``image_dir``; the mask of ``<stem>.<ext>``
  is ``mask_dir/<stem><mask_suffix>.<png|tif|tiff|ext>``. An image **without**
  a mask file is a negative (``No Finding``) sample with an empty mask.
* :func:`read_mvtec`: the MVTec AD layout of one category,
  ``<root>/<split>/<defect>/<n>.png`` with masks
  ``<root>/ground_truth/<defect>/<n>_mask.png``; the ``good`` folder has no masks
  (empty ground truth, class ``good``), and a defect image without its mask is
  an error (it would otherwise silently count as defect-free).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from xaiscore._checks import OptionError, check_fraction, check_option
from xaiscore.harness.data._base import AnnotatedDataset, ClassResolver, Entry, check_channels
from xaiscore.harness.data._io import (DICOM_SUFFIXES, IMAGE_SUFFIXES, load_any_image,
                                       load_mask_image)
from xaiscore.harness.data.errors import DatasetError, OnError, SkipLog
from xaiscore.harness.data.records import NEGATIVE_FINDING, SampleRecord

__all__ = ["read_mask_folder", "read_mvtec", "MVTEC_GOOD"]

#: The MVTec AD name of defect-free samples (its negative class).
MVTEC_GOOD = "good"

_MASK_SUFFIXES = (".png", ".tif", ".tiff")


@dataclass(frozen=True)
class _MaskFile:
    """Loads a mask image and checks it against the image's size; picklable."""

    path: Path
    image_path: Path
    threshold: float

    def __call__(self, height: int, width: int) -> torch.Tensor:
        mask = load_mask_image(self.path, threshold=self.threshold)
        if tuple(mask.shape[1:]) != (height, width):
            raise DatasetError(
                f"expected the mask to have the size of image {self.image_path.name} "
                f"({height}x{width}), but got {mask.shape[1]}x{mask.shape[2]}",
                file=self.path,
            )
        return mask


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file()
                  and p.suffix.lower() in (*IMAGE_SUFFIXES, *DICOM_SUFFIXES))


def read_mask_folder(
    image_dir: str | os.PathLike[str],
    mask_dir: str | os.PathLike[str],
    *,
    mask_suffix: str = "_mask",
    finding: str = "Lesion",
    class_names: Sequence[str] | None = None,
    mask_threshold: float = 0.5,
    channels: int | None = None,
    transform: Callable[[SampleRecord], SampleRecord] | None = None,
    on_error: OnError = "raise",
) -> AnnotatedDataset:
    """Read images with binary mask images (see the module docs).

    Args:
        image_dir: The images (PNG, JPEG, TIFF, BMP or DICOM; not recursive, sorted by name).
        mask_dir: The masks (may be ``image_dir``).
        mask_suffix: Appended to the image's stem to name its mask.
        finding: The finding name of images with a mask.
        class_names: The model's classes (default ``("No Finding", finding)``).
        mask_threshold: Binarisation threshold on ``[0, 1]``-scaled values.
        channels: ``None`` (default), 1 or 3.
        transform: Applied to every record.
        on_error: ``"raise"`` or ``"skip"`` (unreadable masks and images, masks
            of the wrong size: found when a sample is loaded).

    Raises:
        DatasetError: a missing folder.
        OptionError: a bad option.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> Image.fromarray(np.zeros((6, 6), np.uint8)).save(root / "a.png")
        >>> Image.fromarray(np.zeros((6, 6), np.uint8)).save(root / "b.png")
        >>> m = np.zeros((6, 6), np.uint8); m[1:3, 2:5] = 255
        >>> Image.fromarray(m).save(root / "a_mask.png")
        >>> ds = read_mask_folder(root, root)
        >>> [(r.finding, r.boxes.tolist()) for r in (ds[0], ds[1])]
        [('Lesion', [[2.0, 1.0, 5.0, 3.0]]), ('No Finding', [])]
    """
    images_path, masks_path = Path(image_dir), Path(mask_dir)
    log = SkipLog(on_error)
    channels = check_channels(channels)
    threshold = check_fraction(mask_threshold, "mask_threshold", low_inclusive=False)
    for folder, what in ((images_path, "image"), (masks_path, "mask")):
        if not folder.is_dir():
            raise DatasetError(f"{what} folder not found", file=folder)
    resolver = ClassResolver(class_names if class_names is not None
                             else (NEGATIVE_FINDING, finding))
    label = resolver.require(finding, "finding")
    negative_label = resolver.require_negative()
    entries: list[Entry] = []
    for image_path in _images(images_path):
        if image_path.stem.endswith(mask_suffix) and masks_path == images_path:
            continue  # a mask stored next to the images
        candidates = [masks_path / f"{image_path.stem}{mask_suffix}{s}"
                      for s in (*_MASK_SUFFIXES, image_path.suffix)]
        mask_path = next((c for c in candidates if c.is_file()), None)
        positive = mask_path is not None
        entries.append(Entry(
            source_id=image_path.name, image_path=image_path,
            finding=finding if positive else NEGATIVE_FINDING,
            label=label if positive else negative_label,
            boxes=(), box_labels=(), box_rows=(), canvas=None,
            annotation_file=str(mask_path or masks_path),
            row=None, mask=_MaskFile(mask_path, image_path, threshold) if positive else None,
            boxes_from_mask=positive,
            meta={"mask_file": None if mask_path is None else str(mask_path)},
        ))
    return AnnotatedDataset(
        entries, class_names=resolver.class_names,
        loader=partial(load_any_image, channels=channels),
        transform=transform, log=log, reader="mask_folder",
    )


def read_mvtec(
    root: str | os.PathLike[str],
    *,
    split: str = "test",
    labels: str = "binary",
    mask_threshold: float = 0.5,
    channels: int | None = None,
    transform: Callable[[SampleRecord], SampleRecord] | None = None,
    on_error: OnError = "raise",
) -> AnnotatedDataset:
    """Read one MVTec AD category (see the module docs).

    Args:
        root: The category folder (holding ``train/``, ``test/``, ``ground_truth/``).
        split: ``"test"`` (default) or ``"train"`` (only ``good`` images).
        labels: ``"binary"``: classes ``("good", "defect")`` with the defect type
            in ``meta["defect"]``; ``"defect"``: ``("good", *defect types)`` sorted.
        mask_threshold: Binarisation threshold on ``[0, 1]``-scaled values.
        channels: ``None`` (default), 1 or 3.
        transform: Applied to every record.
        on_error: ``"raise"`` or ``"skip"`` (a defect image without a mask).

    Returns:
        An :class:`~xaiscore.harness.data._base.AnnotatedDataset` with
        ``negative_finding = "good"``; ``source_id = "<defect>/<file>"``.

    Raises:
        DatasetError: a missing split folder, or a defect image without a mask.
        OptionError: a bad option.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for folder in ("test/good", "test/crack", "ground_truth/crack"):
        ...     (root / folder).mkdir(parents=True)
        >>> Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "test/good/000.png")
        >>> Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "test/crack/000.png")
        >>> Image.fromarray(np.eye(4, dtype=np.uint8) * 255).save(root / "ground_truth/crack/000_mask.png")
        >>> ds = read_mvtec(root)
        >>> [(r.source_id, r.finding, r.boxes.tolist()) for r in (ds[0], ds[1])]
        [('crack/000.png', 'defect', [[0.0, 0.0, 4.0, 4.0]]), ('good/000.png', 'good', [])]
    """  # noqa: E501
    root = Path(root)
    log = SkipLog(on_error)
    split = check_option(split, "split", ("test", "train"))
    labels = check_option(labels, "labels", ("binary", "defect"))
    channels = check_channels(channels)
    threshold = check_fraction(mask_threshold, "mask_threshold", low_inclusive=False)
    split_path = root / split
    if not split_path.is_dir():
        raise DatasetError(f"expected the MVTec split folder {split!r}, but it does not exist",
                           file=split_path)
    defects = sorted(p.name for p in split_path.iterdir() if p.is_dir())
    kinds = [d for d in defects if d != MVTEC_GOOD]
    class_names = (MVTEC_GOOD, "defect") if labels == "binary" else (MVTEC_GOOD, *kinds)
    if len(set(class_names)) != len(class_names):
        raise OptionError(
            f"Expected defect folders other than 'defect' with labels='binary', got {defects}.")
    entries: list[Entry] = []
    for defect in defects:
        good = defect == MVTEC_GOOD
        finding = MVTEC_GOOD if good else ("defect" if labels == "binary" else defect)
        for image_path in _images(split_path / defect):
            mask_path = root / "ground_truth" / defect / f"{image_path.stem}_mask.png"
            if not good and not mask_path.is_file():
                log.report(DatasetError(f"missing mask for defect image {defect}/{image_path.name}",
                                        file=mask_path))
                continue
            entries.append(Entry(
                source_id=f"{defect}/{image_path.name}", image_path=image_path, finding=finding,
                label=class_names.index(finding), boxes=(), box_labels=(), box_rows=(), canvas=None,
                annotation_file=str(mask_path if not good else image_path), row=None,
                mask=None if good else _MaskFile(mask_path, image_path, threshold),
                boxes_from_mask=not good, meta={"defect": defect},
            ))
    return AnnotatedDataset(
        entries, class_names=class_names, loader=partial(load_any_image, channels=channels),
        transform=transform, log=log, reader="mvtec", negative_finding=MVTEC_GOOD,
    )
