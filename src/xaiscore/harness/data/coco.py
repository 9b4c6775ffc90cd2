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
from typing import Any

import torch

from xaiscore._checks import ShapeError
from xaiscore.harness.data._base import (
    AnnotatedDataset,
    ClassResolver,
    Entry,
    check_box,
    check_channels,
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
        if not (isinstance(size, Sequence) and len(size) == 2 and all(_number(v) and v > 0 for v in size)):
            raise DatasetError(f"expected an RLE 'size' [h, w], but got {size!r}", file=file, row=row)
        if not isinstance(counts, (str, list)):
            raise DatasetError("expected RLE 'counts' as a list or a string", file=file, row=row)
        return segmentation
    if isinstance(segmentation, list) and all(isinstance(p, list) for p in segmentation):
        for k, polygon in enumerate(segmentation):
            if len(polygon) < 6 or len(polygon) % 2 or not all(_number(v) for v in polygon):
                raise DatasetError(
                    f"expected polygon {k} as at least three (x, y) number pairs, but got {len(polygon)} value(s)",
                    file=file, row=row,
                )
        return segmentation
    raise DatasetError("expected 'segmentation' as a list of polygons or an RLE mapping", file=file, row=row)


@dataclass(frozen=True)
class _SegmentationMask:
    """Unites the polygon and RLE segmentations of one sample at the loaded image's size; picklable."""

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
    if not path.is_file():
        raise DatasetError("annotation file not found", file=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"cannot parse JSON ({error})", file=path) from error
    if not isinstance(data, Mapping) or not all(isinstance(data.get(k), list) for k in ("images", "annotations",
                                                                                          "categories")):
        raise DatasetError("expected a JSON object with lists 'images', 'annotations' and 'categories'", file=path)
    categories: dict[Any, str] = {}
    for k, category in enumerate(data["categories"]):
        if not isinstance(category, Mapping) or "id" not in category or not isinstance(category.get("name"), str):
            raise DatasetError("expected a category with 'id' and 'name'", file=path, row=f"categories[{k}]")
        categories[category["id"]] = category["name"].strip()
    if class_names is None:
        ordered = [categories[k] for k in sorted(categories, key=lambda v: (str(type(v)), v))]
        class_names = ([NEGATIVE_FINDING] if negatives and NEGATIVE_FINDING not in ordered else []) + ordered
    resolver = ClassResolver(class_names)
    negative_label = resolver.require_negative() if negatives else None

    images: dict[Any, dict[str, Any]] = {}
    for k, image in enumerate(data["images"]):
        row = f"images[{k}]"
        try:
            if not isinstance(image, Mapping) or "id" not in image or not isinstance(image.get("file_name"), str):
                raise DatasetError("expected an image with 'id' and 'file_name'", file=file, row=row)
            width, height = image.get("width"), image.get("height")
            canvas = (int(height), int(width)) if _number(width) and _number(height) and width > 0 and height > 0 \
                else None
        except DatasetError as error:
            log.report(error)
            continue
        images[image["id"]] = {"file_name": image["file_name"], "canvas": canvas, "row": row, "groups": {}}

    bad: set[Any] = set()
    for k, annotation in enumerate(data["annotations"]):
        row = f"annotations[{k}]" + (f" (id {annotation.get('id')})" if isinstance(annotation, Mapping) else "")
        image_id = annotation.get("image_id") if isinstance(annotation, Mapping) else None
        try:
            if not isinstance(annotation, Mapping):
                raise DatasetError("expected an annotation object", file=file, row=row)
            if image_id not in images:
                raise DatasetError(f"unknown image_id {image_id!r}", file=file, row=row)
            if image_id in bad:
                continue
            category = annotation.get("category_id")
            if category not in categories:
                raise DatasetError(
                    f"unknown category_id {category!r}: expected one of {sorted(categories, key=str)}",
                    file=file, row=row,
                )
            finding, _ = resolver.resolve(categories[category], file=file, row=row)
            bbox = annotation.get("bbox")
            if not (isinstance(bbox, Sequence) and len(bbox) == 4 and all(_number(v) for v in bbox)):
                raise DatasetError(f"expected 'bbox' as [x, y, width, height], but got {bbox!r}", file=file, row=row)
            x, y, w, h = (float(v) for v in bbox)
            state = images[image_id]
            box = check_box((x, y, x + w, y + h), state["canvas"], clip=clip_boxes, file=file, row=row,
                            where=f"image {state['file_name']}")
            segmentation = _check_segmentation(annotation.get("segmentation"), file=file, row=row)
        except DatasetError as error:
            log.report(error)
            if image_id in images:
                bad.add(image_id)
            continue
        group = state["groups"].setdefault(finding, {"boxes": [], "rows": [], "segmentations": [], "crowd": False})
        group["boxes"].append(box)
        group["rows"].append(row)
        group["segmentations"].append((segmentation, row))
        group["crowd"] |= bool(annotation.get("iscrowd", 0))

    folders = [Path(image_dir)] if image_dir is not None else [path.parent / "images", path.parent]
    locator = ImageLocator(folders, IMAGE_SUFFIXES)
    entries: list[Entry] = []
    for image_id, state in images.items():
        if image_id in bad or (not state["groups"] and not negatives):
            continue
        try:
            image_path = locate_image(locator, state["file_name"], file=file, row=state["row"])
        except DatasetError as error:
            log.report(error)
            continue
        name = state["file_name"]
        if not state["groups"]:
            entries.append(Entry(
                source_id=f"{name}:{NEGATIVE_FINDING}", image_path=image_path, finding=NEGATIVE_FINDING,
                label=negative_label, boxes=(), box_labels=(), box_rows=(), canvas=state["canvas"],  # type: ignore[arg-type]
                annotation_file=file, row=state["row"], meta={"image_id": image_id},
            ))
            continue
        for finding, group in state["groups"].items():
            segmented = use_segmentation and all(s is not None for s, _ in group["segmentations"])
            entries.append(Entry(
                source_id=f"{name}:{finding}", image_path=image_path, finding=finding,
                label=resolver.class_names.index(finding), boxes=tuple(group["boxes"]),
                box_labels=(finding,) * len(group["boxes"]), box_rows=tuple(group["rows"]),
                canvas=state["canvas"], annotation_file=file, row=group["rows"][0],
                mask=_SegmentationMask(tuple(group["segmentations"]), state["canvas"], file) if segmented else None,
                meta={"image_id": image_id, "iscrowd": group["crowd"], "segmentation": segmented},
            ))
    return AnnotatedDataset(
        entries, class_names=resolver.class_names, loader=partial(load_any_image, channels=channels),
        transform=transform, log=log, reader="coco", clip_boxes=clip_boxes,
    )
