"""Reader for COCO-style JSON detection/segmentation annotations.

Expected: one JSON file with

* ``images``: ``{"id", "file_name", "width", "height"}`` (``width``/``height``
  are the coordinate canvas; an image file of another size gets the
  annotations scaled per axis);
* ``annotations``: ``{"id", "image_id", "category_id", "bbox": [x, y, w, h],
  "segmentation": polygons | RLE, "iscrowd"}`` with ``bbox`` top-left corner
  and size in pixels; ``segmentation`` a list of flat polygons
  ``[[x1, y1, x2, y2, ...], ...]`` or an RLE ``{"size": [h, w], "counts": list | str}``
  (decoded by :mod:`xaiscore.harness.data.rasterize`, no pycocotools);
* ``categories``: ``{"id", "name"}``;

and the image files in ``image_dir``. One sample per (image, category),
``source_id = "<file_name>:<category>"``; its mask is the union of the
annotations' segmentations (when every annotation of the sample has one and
``use_segmentation``), else the boxes are rasterised. Crowd annotations
(``iscrowd = 1``) count like any other. Error rows read
``annotations[<index>] (id <id>)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import torch

from xaiscore._checks import ShapeError
from xaiscore.harness.data._base import (
    AnnotatedDataset,
    Box,
    ClassResolver,
    Entry,
    check_box,
    check_channels,
    group_rows,
    locate_entries,
    locate_image,
)
from xaiscore.harness.data._io import IMAGE_SUFFIXES, ImageLocator, load_any_image
from xaiscore.harness.data.errors import DatasetError, OnError, SkipLog
from xaiscore.harness.data.records import NEGATIVE_FINDING, SampleRecord

__all__ = ["read_coco"]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _check_segmentation(segmentation: Any, *, file: str, row: str) -> Any:
    """The segmentation if well-formed, ``None`` if absent, else :class:`DatasetError`."""
    if segmentation is None or segmentation == []:
        return None
    if isinstance(segmentation, Mapping):
        size, counts = segmentation.get("size"), segmentation.get("counts")
        if not (isinstance(size, Sequence) and len(size) == 2 and all(_number(v) and v > 0
                                                                      for v in size)):
            raise DatasetError(f"expected an RLE 'size' [h, w], but got {size!r}", file=file,
                               row=row)
        if not isinstance(counts, (str, list)):
            raise DatasetError("expected RLE 'counts' as a list or a string", file=file, row=row)
        return segmentation
    if isinstance(segmentation, list) and all(isinstance(p, list) for p in segmentation):
        for k, polygon in enumerate(segmentation):
            if len(polygon) < 6 or len(polygon) % 2 or not all(_number(v) for v in polygon):
                raise DatasetError(
                    f"expected polygon {k} as at least three (x, y) number pairs, but got "
                    f"{len(polygon)} value(s)",
                    file=file, row=row,
                )
        return segmentation
    raise DatasetError("expected 'segmentation' as a list of polygons or an RLE mapping", file=file,
                       row=row)


@dataclass(frozen=True)
class _SegmentationMask:
    """Unites the polygon and RLE segmentations of one sample at the loaded image's size; picklable.
    """

    segmentations: tuple[tuple[Any, str], ...]
    canvas: tuple[int, int] | None
    file: str

    def __call__(self, height: int, width: int) -> torch.Tensor:
        from xaiscore.harness.data.rasterize import polygon_mask, rle_mask
        from xaiscore.harness.data.transforms import resize_mask

        source = self.canvas or (height, width)
        scale = (width / source[1], height / source[0])
        mask = torch.zeros(height, width, dtype=torch.bool)
        for segmentation, row in self.segmentations:
            try:
                if isinstance(segmentation, Mapping):
                    decoded = rle_mask(segmentation)
                    if tuple(decoded.shape) != (height, width):
                        decoded = resize_mask(decoded, (height, width))
                    mask |= decoded
                else:
                    mask |= polygon_mask(segmentation, (height, width), scale=scale)
            except ShapeError as error:
                raise DatasetError(f"bad segmentation: {error}", file=self.file, row=row) from error
        return mask.unsqueeze(0)


def read_coco(
    annotation_json: str | os.PathLike[str],
    image_dir: str | os.PathLike[str] | None = None,
    *,
    class_names: Sequence[str] | None = None,
    negatives: bool = False,
    use_segmentation: bool = True,
    channels: int | None = None,
    clip_boxes: bool = False,
    transform: Callable[[SampleRecord], SampleRecord] | None = None,
    on_error: OnError = "raise",
) -> AnnotatedDataset:
    """Read COCO JSON boxes and segmentations (see the module docs).

    Args:
        annotation_json: The JSON file.
        image_dir: Where the images are (default: ``images/`` next to the JSON,
            then the JSON's folder and its sub-folders).
        class_names: The model's classes (default: the category names in
            category-id order, with ``"No Finding"`` first when ``negatives``).
        negatives: Also yield images without annotations, as ``"No Finding"``.
        use_segmentation: Use segmentations as masks where present (else boxes only).
        channels: ``None`` (the file's channels, default), 1 or 3.
        clip_boxes: Clip boxes sticking out of the image instead of reporting them.
        transform: Applied to every record.
        on_error: ``"raise"`` or ``"skip"``.

    Raises:
        DatasetError: unreadable JSON, unknown image or category ids, bad boxes
            or segmentations, missing images (``on_error="raise"``).
        OptionError: a bad option.

    Example:
        >>> import json, tempfile, pathlib, numpy as np
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "a.png")
        >>> _ = (root / "ann.json").write_text(json.dumps({
        ...     "images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
        ...     "categories": [{"id": 3, "name": "Nodule"}],
        ...     "annotations": [{"id": 9, "image_id": 1, "category_id": 3, "bbox": [2, 2, 4, 2],
        ...                      "segmentation": [[2, 2, 6, 2, 6, 4, 2, 4]]}]}))
        >>> r = read_coco(root / "ann.json")[0]
        >>> r.source_id, r.boxes.tolist(), int(r.mask.sum())
        ('a.png:Nodule', [[2.0, 2.0, 6.0, 4.0]], 8)
    """
    path = Path(annotation_json)
    file = str(path)
    log = SkipLog(on_error)
    channels = check_channels(channels)
    data = _load_json(path)
    categories = _categories(data["categories"], file=path)
    if class_names is None:
        ordered = [categories[k] for k in sorted(categories, key=lambda v: (str(type(v)), v))]
        class_names = (([NEGATIVE_FINDING] if negatives and NEGATIVE_FINDING not in ordered else [])
                       + ordered)
    resolver = ClassResolver(class_names)
    negative_label = resolver.require_negative() if negatives else None
    images = _images(data["images"], file=file, log=log)
    annotations = group_rows(
        enumerate(data["annotations"]),
        key=partial(_image_of, images=images, file=file),
        parse=partial(_annotation, images=images, categories=categories, resolver=resolver,
                      clip_boxes=clip_boxes, file=file),
        log=log,
    )

    def build(image_id: Any, image: _Image, image_path: Path) -> list[Entry]:
        groups = _by_finding(annotations.groups.get(image_id, []))
        if not groups:
            return [Entry(
                source_id=f"{image.file_name}:{NEGATIVE_FINDING}", image_path=image_path,
                finding=NEGATIVE_FINDING,
                label=negative_label, boxes=(), box_labels=(), box_rows=(), canvas=image.canvas,  # type: ignore[arg-type]
                annotation_file=file, row=image.row, meta={"image_id": image_id},
            )]
        return [_entry(image_id, image, image_path, finding, group, resolver=resolver,
                       use_segmentation=use_segmentation, file=file)
                for finding, group in groups.items()]

    folders = [Path(image_dir)] if image_dir is not None else [path.parent / "images", path.parent]
    locator = ImageLocator(folders, IMAGE_SUFFIXES)
    entries = locate_entries(
        ((image_id, image) for image_id, image in images.items()
         if image_id not in annotations.bad and (negatives or image_id in annotations.groups)),
        locate=lambda image_id, image: locate_image(locator, image.file_name, file=file,
                                                    row=image.row),
        build=build, log=log)
    return AnnotatedDataset(
        entries, class_names=resolver.class_names,
        loader=partial(load_any_image, channels=channels),
        transform=transform, log=log, reader="coco", clip_boxes=clip_boxes,
    )


def _load_json(path: Path) -> Mapping[str, Any]:
    """The annotation file's object, with lists ``images``, ``annotations`` and ``categories``."""
    if not path.is_file():
        raise DatasetError("annotation file not found", file=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"cannot parse JSON ({error})", file=path) from error
    if not isinstance(data, Mapping) or not all(isinstance(data.get(k), list)
                                                for k in ("images", "annotations",
                                                                                          "categories")):
        raise DatasetError(
            "expected a JSON object with lists 'images', 'annotations' and 'categories'", file=path)
    return data


def _categories(items: list[Any], *, file: Path) -> dict[Any, str]:
    """category id -> name."""
    categories: dict[Any, str] = {}
    for k, category in enumerate(items):
        if not isinstance(category, Mapping) or "id" not in category or not isinstance(
                category.get("name"), str):
            raise DatasetError("expected a category with 'id' and 'name'", file=file,
                               row=f"categories[{k}]")
        categories[category["id"]] = category["name"].strip()
    return categories


class _Image(NamedTuple):
    file_name: str
    canvas: tuple[int, int] | None
    row: str


def _images(items: list[Any], *, file: str, log: SkipLog) -> dict[Any, _Image]:
    """image id -> file name, canvas (from ``width``/``height`` when valid) and row; bad images
    reported."""
    images: dict[Any, _Image] = {}
    for k, image in enumerate(items):
        row = f"images[{k}]"
        if not isinstance(image, Mapping) or "id" not in image or not isinstance(
                image.get("file_name"), str):
            log.report(DatasetError("expected an image with 'id' and 'file_name'", file=file,
                                    row=row))
            continue
        width, height = image.get("width"), image.get("height")
        valid = _number(width) and _number(height) and width > 0 and height > 0
        images[image["id"]] = _Image(image["file_name"], (int(height), int(width)) if valid
                                     else None, row)
    return images


def _row(k: int, annotation: Any) -> str:
    return f"annotations[{k}]" + (f" (id {annotation.get('id')})" if isinstance(annotation, Mapping)
                                  else "")


def _image_of(item: tuple[int, Any], *, images: Mapping[Any, _Image], file: str) -> Any:
    """The id of the (known) image an annotation belongs to."""
    k, annotation = item
    if not isinstance(annotation, Mapping):
        raise DatasetError("expected an annotation object", file=file, row=_row(k, annotation))
    image_id = annotation.get("image_id")
    if image_id not in images:
        raise DatasetError(f"unknown image_id {image_id!r}", file=file, row=_row(k, annotation))
    return image_id


class _Annotation(NamedTuple):
    finding: str
    box: Box
    row: str
    segmentation: Any
    crowd: bool


def _annotation(image_id: Any, item: tuple[int, Any], earlier: list[_Annotation], *,
                images: Mapping[Any, _Image], categories: Mapping[Any, str],
                resolver: ClassResolver,
                clip_boxes: bool, file: str) -> _Annotation:
    """One annotation: its finding, checked box and segmentation."""
    k, annotation = item
    row = _row(k, annotation)
    category = annotation.get("category_id")
    if category not in categories:
        raise DatasetError(
            f"unknown category_id {category!r}: expected one of {sorted(categories, key=str)}",
            file=file, row=row,
        )
    finding, _ = resolver.resolve(categories[category], file=file, row=row)
    bbox = annotation.get("bbox")
    if not (isinstance(bbox, Sequence) and len(bbox) == 4 and all(_number(v) for v in bbox)):
        raise DatasetError(f"expected 'bbox' as [x, y, width, height], but got {bbox!r}", file=file,
                           row=row)
    x, y, w, h = (float(v) for v in bbox)
    image = images[image_id]
    box = check_box((x, y, x + w, y + h), image.canvas, clip=clip_boxes, file=file, row=row,
                    where=f"image {image.file_name}")
    segmentation = _check_segmentation(annotation.get("segmentation"), file=file, row=row)
    return _Annotation(finding, box, row, segmentation, bool(annotation.get("iscrowd", 0)))


def _by_finding(annotations: list[_Annotation]) -> dict[str, list[_Annotation]]:
    """An image's annotations per finding, findings in order of appearance."""
    groups: dict[str, list[_Annotation]] = {}
    for annotation in annotations:
        groups.setdefault(annotation.finding, []).append(annotation)
    return groups


def _entry(image_id: Any, image: _Image, image_path: Path, finding: str, group: list[_Annotation],
           *,
           resolver: ClassResolver, use_segmentation: bool, file: str) -> Entry:
    """The sample of one (image, category): its boxes, and its segmentations as the mask where all
    have one."""
    segmentations = tuple((a.segmentation, a.row) for a in group)
    segmented = use_segmentation and all(s is not None for s, _ in segmentations)
    boxes = tuple(a.box for a in group)
    return Entry(
        source_id=f"{image.file_name}:{finding}", image_path=image_path, finding=finding,
        label=resolver.class_names.index(finding), boxes=boxes, box_labels=(finding,) * len(boxes),
        box_rows=tuple(a.row for a in group), canvas=image.canvas, annotation_file=file,
        row=group[0].row,
        mask=_SegmentationMask(segmentations, image.canvas, file) if segmented else None,
        meta={"image_id": image_id, "iscrowd": any(a.crowd for a in group),
              "segmentation": segmented},
    )
