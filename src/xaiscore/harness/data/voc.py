"""Reader for Pascal VOC XML annotations.

Expected: a folder of ``*.xml`` files (``Annotations/``), one per image::

    <annotation>
      <filename>0001.png</filename>
      <size><width>64</width><height>48</height><depth>1</depth></size>
      <object><name>Nodule</name><difficult>0</difficult>
        <bndbox><xmin>10</xmin><ymin>5</ymin><xmax>20</xmax><ymax>15</ymax></bndbox>
      </object>
    </annotation>

and the images in ``image_dir`` (default ``JPEGImages/`` next to the
annotation folder). VOC coordinates are **1-based pixel indices, both ends
inclusive**: ``xmin = 1`` is the first column and ``xmax = W`` the last, so
the box covers columns ``xmin .. xmax``. In xaiscore's end-exclusive pixel
edges that is ``x0 = xmin - 1``, ``x1 = xmax`` (and likewise for y); a box must
satisfy ``1 <= xmin <= xmax <= W``. One sample per (image, object name),
``source_id = "<filename>:<name>"``; error rows read ``object[<k>] (<name>)``.
``difficult`` objects count like the others (their flag is in ``meta``).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from xaiscore.harness.data._base import (
    AnnotatedDataset,
    ClassResolver,
    Entry,
    check_box,
    check_channels,
    locate_image,
)
from xaiscore.harness.data._io import IMAGE_SUFFIXES, ImageLocator, load_any_image, parse_number
from xaiscore.harness.data.errors import DatasetError, OnError, SkipLog
from xaiscore.harness.data.records import NEGATIVE_FINDING, SampleRecord

__all__ = ["read_voc", "voc_to_xyxy"]


def voc_to_xyxy(xmin: float, ymin: float, xmax: float,
                ymax: float) -> tuple[float, float, float, float]:
    """Convert 1-based inclusive VOC pixel indices into end-exclusive ``xyxy`` edges.

    Example:
        >>> voc_to_xyxy(1, 1, 4, 2)  # columns 1..4, rows 1..2 (1-based) = pixels [0, 4) x [0, 2)
        (0.0, 0.0, 4.0, 2.0)
    """
    return float(xmin) - 1.0, float(ymin) - 1.0, float(xmax), float(ymax)


def _text(element: ElementTree.Element | None, tag: str) -> str | None:
    found = None if element is None else element.find(tag)
    return None if found is None or found.text is None else found.text.strip()


def _parse(path: Path) -> dict:
    file = str(path)
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise DatasetError(f"cannot parse XML ({error})", file=path) from error
    width, height = _text(root.find("size"), "width"), _text(root.find("size"), "height")
    canvas = None
    if width and height:
        w = parse_number(width, column="size/width", file=file, row="size")
        h = parse_number(height, column="size/height", file=file, row="size")
        canvas = (int(h), int(w)) if w > 0 and h > 0 else None
    objects = []
    for k, element in enumerate(root.findall("object")):
        name = _text(element, "name") or ""
        row = f"object[{k}] ({name})"
        if not name:
            raise DatasetError("an object without <name>", file=file, row=row)
        bndbox = element.find("bndbox")
        if bndbox is None:
            raise DatasetError("an object without <bndbox>", file=file, row=row)
        corners = [parse_number(_text(bndbox, t), column=f"bndbox/{t}", file=file, row=row)
                   for t in ("xmin", "ymin", "xmax", "ymax")]
        objects.append({"name": name, "row": row, "box": voc_to_xyxy(*corners),
                        "difficult": _text(element, "difficult") == "1"})
    return {"filename": _text(root, "filename"), "canvas": canvas, "objects": objects}


def _group_objects(annotation: dict, resolver: ClassResolver, *, clip_boxes: bool, file: str,
                   name: str) -> dict[str, dict[str, list]]:
    """finding -> the boxes, rows and difficult flags of an annotation's objects
    (names resolved, boxes checked)."""
    groups: dict[str, dict[str, list]] = {}
    for obj in annotation["objects"]:
        finding, _ = resolver.resolve(obj["name"], file=file, row=obj["row"])
        box = check_box(
            obj["box"],
            annotation["canvas"],
            clip=clip_boxes,
            file=file,
            row=obj["row"],
            where=f"image {name} (VOC coordinates are 1-based: xmin >= 1, xmax <= width)",
        )
        group = groups.setdefault(finding, {"boxes": [], "rows": [], "difficult": []})
        group["boxes"].append(box)
        group["rows"].append(obj["row"])
        group["difficult"].append(obj["difficult"])
    return groups


def read_voc(
    annotation_dir: str | os.PathLike[str],
    image_dir: str | os.PathLike[str] | None = None,
    *,
    class_names: Sequence[str] | None = None,
    negatives: bool = False,
    channels: int | None = None,
    clip_boxes: bool = False,
    transform: Callable[[SampleRecord], SampleRecord] | None = None,
    on_error: OnError = "raise",
) -> AnnotatedDataset:
    """Read Pascal VOC XML boxes (see the module docs for the 1-based conversion).

    Args:
        annotation_dir: The folder of XML files (read in sorted order).
        image_dir: Where the images are (default: ``JPEGImages/`` next to
            ``annotation_dir``, then ``annotation_dir`` itself).
        class_names: The model's classes (default: the sorted object names,
            with ``"No Finding"`` first when ``negatives``).
        negatives: Also yield images without objects, as ``"No Finding"``.
        channels: ``None`` (default), 1 or 3.
        clip_boxes: Clip boxes sticking out of the image instead of reporting them.
        transform: Applied to every record.
        on_error: ``"raise"`` or ``"skip"``.

    Raises:
        DatasetError: unparsable XML, missing tags, bad or out-of-image boxes,
            unknown names, missing images (``on_error="raise"``).
        OptionError: a bad option.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "Annotations").mkdir()
        >>> Image.fromarray(np.zeros((4, 6), np.uint8)).save(root / "a.png")
        >>> _ = (root / "Annotations" / "a.xml").write_text(
        ...     "<annotation><filename>a.png</filename><size><width>6</width><height>4</height></size>"
        ...     "<object><name>Mass</name><bndbox><xmin>2</xmin><ymin>1</ymin><xmax>3</xmax><ymax>4</ymax>"
        ...     "</bndbox></object></annotation>")
        >>> read_voc(root / "Annotations", root)[0].boxes.tolist()  # columns 2..3, rows 1..4 (1-based)
        [[1.0, 0.0, 3.0, 4.0]]
    """  # noqa: E501
    folder = Path(annotation_dir)
    log = SkipLog(on_error)
    channels = check_channels(channels)
    if not folder.is_dir():
        raise DatasetError("annotation folder not found", file=folder)
    parsed: list[tuple[Path, dict]] = []
    for xml_path in sorted(folder.glob("*.xml")):
        try:
            parsed.append((xml_path, _parse(xml_path)))
        except DatasetError as error:
            log.report(error)
    if class_names is None:
        names = sorted({o["name"] for _, p in parsed for o in p["objects"]})
        class_names = (([NEGATIVE_FINDING] if negatives and NEGATIVE_FINDING not in names else [])
                       + names)
    resolver = ClassResolver(class_names)
    negative_label = resolver.require_negative() if negatives else None
    folders = [Path(image_dir)] if image_dir is not None else [folder.parent / "JPEGImages", folder]
    locator = ImageLocator(folders, IMAGE_SUFFIXES)

    entries: list[Entry] = []
    for xml_path, annotation in parsed:
        file = str(xml_path)
        name = annotation["filename"] or xml_path.stem
        try:
            groups = _group_objects(annotation, resolver, clip_boxes=clip_boxes, file=file,
                                    name=name)
            if not groups and not negatives:
                continue
            image_path = locate_image(locator, name, file=file, row=None)
        except DatasetError as error:
            log.report(error)
            continue
        if not groups:
            entries.append(Entry(
                source_id=f"{name}:{NEGATIVE_FINDING}", image_path=image_path,
                finding=NEGATIVE_FINDING,
                label=negative_label, boxes=(), box_labels=(), box_rows=(), canvas=annotation["canvas"],  # type: ignore[arg-type]  # noqa: E501
                annotation_file=file, row=None,
            ))
        for finding, group in groups.items():
            entries.append(Entry(
                source_id=f"{name}:{finding}", image_path=image_path, finding=finding,
                label=resolver.class_names.index(finding), boxes=tuple(group["boxes"]),
                box_labels=(finding,) * len(group["boxes"]), box_rows=tuple(group["rows"]),
                canvas=annotation["canvas"], annotation_file=file, row=group["rows"][0],
                meta={"difficult": tuple(group["difficult"])},
            ))
    return AnnotatedDataset(
        entries, class_names=resolver.class_names,
        loader=partial(load_any_image, channels=channels),
        transform=transform, log=log, reader="voc", clip_boxes=clip_boxes,
    )
