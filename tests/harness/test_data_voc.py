"""Pascal VOC XML reader: 1-based inclusive coordinates, classes, errors."""

from __future__ import annotations

import pytest
import torch

from tests.harness.data_fixtures import box_mask, gradient, write_png, write_text
from xaiscore.harness.data import DatasetError, collate, read_voc


def voc_xml(filename, objects, width=16, height=12):
    parts = [f"<annotation><folder>x</folder><filename>{filename}</filename>",
             f"<size><width>{width}</width><height>{height}</height><depth>1</depth></size>"]
    for name, (xmin, ymin, xmax, ymax), difficult in objects:
        parts.append(f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
                     f"<difficult>{difficult}</difficult><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
                     f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"


@pytest.fixture
def voc_root(tmp_path):
    write_text(tmp_path / "Annotations" / "0001.xml",
               voc_xml("0001.png", [("Nodule", (1, 1, 16, 12), 0), ("Mass", (3, 2, 5, 4), 1),
                                     ("Nodule", (10, 10, 10, 10), 0)]))
    write_text(tmp_path / "Annotations" / "0002.xml", voc_xml("0002.png", []))
    write_png(tmp_path / "JPEGImages" / "0001.png", gradient(12, 16))
    write_png(tmp_path / "JPEGImages" / "0002.png", gradient(12, 16))
    return tmp_path


def test_one_based_inclusive_coordinates_become_end_exclusive_edges(voc_root):
    dataset = read_voc(voc_root / "Annotations")
    assert dataset.class_names == ("Mass", "Nodule")
    assert [r.source_id for r in dataset] == ["0001.png:Nodule", "0001.png:Mass"]
    nodule, mass = list(dataset)
    # (1, 1, 16, 12) spans the whole 16 x 12 image; (10, 10, 10, 10) is exactly pixel (row 9, col 9)
    assert nodule.boxes.tolist() == [[0.0, 0.0, 16.0, 12.0], [9.0, 9.0, 10.0, 10.0]]
    assert mass.boxes.tolist() == [[2.0, 1.0, 5.0, 4.0]] and mass.meta["difficult"] == (True,)
    mask = collate([mass]).mask[0, 0]
    assert torch.equal(mask, box_mask(12, 16, [(2, 1, 5, 4)]))
    assert mask.sum() == 3 * 3  # columns 3..5 and rows 2..4, 1-based
    assert nodule.label == 1 and mass.label == 0


def test_negatives_and_given_class_names(voc_root):
    dataset = read_voc(voc_root / "Annotations", negatives=True)
    assert dataset.class_names == ("No Finding", "Mass", "Nodule")
    assert dataset[2].source_id == "0002.png:No Finding" and dataset[2].label == 0
    with pytest.raises(DatasetError, match="unknown finding 'Mass'") as info:
        read_voc(voc_root / "Annotations", class_names=("Nodule",))
    assert info.value.row == "object[1] (Mass)" and info.value.file.endswith("0001.xml")


@pytest.mark.parametrize("box, reason", [
    ((0, 1, 4, 4), "outside the image"),   # xmin = 0 is not a 1-based index
    ((1, 1, 17, 4), "outside the image"),  # xmax beyond the width
    ((5, 1, 4, 4), "no area"),
    (("a", 1, 4, 4), "expected a number in column 'bndbox/xmin'"),
])
def test_bad_boxes(tmp_path, box, reason):
    write_text(tmp_path / "ann" / "x.xml", voc_xml("x.png", [("Nodule", box, 0)]))
    write_png(tmp_path / "ann" / "x.png", gradient(12, 16))
    with pytest.raises(DatasetError, match=reason) as info:
        read_voc(tmp_path / "ann")
    assert info.value.file.endswith("x.xml") and info.value.row == "object[0] (Nodule)"
    assert len(read_voc(tmp_path / "ann", on_error="skip").skipped) == 1


def test_clip_and_broken_files(tmp_path):
    write_text(tmp_path / "ann" / "x.xml", voc_xml("x.png", [("Nodule", (0, 1, 20, 4), 0)]))
    write_png(tmp_path / "ann" / "x.png", gradient(12, 16))
    assert read_voc(tmp_path / "ann", clip_boxes=True)[0].boxes.tolist() == [[0.0, 0.0, 16.0, 4.0]]
    write_text(tmp_path / "ann" / "y.xml", "<annotation><filename>y.png</filename")
    with pytest.raises(DatasetError, match="cannot parse XML") as info:
        read_voc(tmp_path / "ann", clip_boxes=True)
    assert info.value.file.endswith("y.xml")
    write_text(tmp_path / "ann" / "y.xml", voc_xml("missing.png", [("Nodule", (1, 1, 2, 2), 0)]))
    with pytest.raises(DatasetError, match="'missing.png' not found"):
        read_voc(tmp_path / "ann", clip_boxes=True)
    write_text(tmp_path / "ann" / "y.xml",
               "<annotation><object><name>Nodule</name></object></annotation>")
    with pytest.raises(DatasetError, match="without <bndbox>"):
        read_voc(tmp_path / "ann", clip_boxes=True)
    with pytest.raises(DatasetError, match="folder not found"):
        read_voc(tmp_path / "nowhere")
