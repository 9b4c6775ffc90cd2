"""COCO JSON reader: boxes, polygon and RLE segmentations, negatives, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.harness.data_fixtures import (box_mask, encode_rle, gradient, runs_of, write_png,
                                         write_text)
from xaiscore import OptionError
from xaiscore.harness.data import DatasetError, collate, read_coco


def coco_json(**overrides):
    rle_mask = np.zeros((8, 8), dtype=bool)
    rle_mask[1:3, 5:8] = True
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 8, "height": 8},
            {"id": 2, "file_name": "b.png", "width": 16, "height": 8},  # the PNG is 8 x 8: scaled
            {"id": 5, "file_name": "empty.png", "width": 8, "height": 8},
        ],
        "categories": [{"id": 7, "name": "Mass"}, {"id": 3, "name": "Nodule"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 3, "bbox": [1, 1, 3, 2],
             "segmentation": [[1, 1, 4, 1, 4, 3, 1, 3]], "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 3, "bbox": [5, 1, 3, 2],
             "segmentation": {"size": [8, 8], "counts": encode_rle(runs_of(rle_mask))}, "iscrowd": 1},  # noqa: E501
            {"id": 12, "image_id": 1, "category_id": 7, "bbox": [0, 4, 8, 4]},
            {"id": 13, "image_id": 2, "category_id": 7, "bbox": [4, 2, 8, 4],
             "segmentation": [[4, 2, 12, 2, 12, 6, 4, 6]]},
        ],
    }
    data.update(overrides)
    return data


@pytest.fixture
def coco_root(tmp_path):
    write_text(tmp_path / "annotations.json", json.dumps(coco_json()))
    for name in ("a", "b", "empty"):
        write_png(tmp_path / "images" / f"{name}.png", gradient(8, 8))
    return tmp_path


def test_samples_boxes_and_classes(coco_root):
    dataset = read_coco(coco_root / "annotations.json")
    assert dataset.class_names == ("Nodule", "Mass")  # category-id order: 3, 7
    assert [r.source_id for r in dataset] == ["a.png:Nodule", "a.png:Mass", "b.png:Mass"]
    nodule, mass, scaled = list(dataset)
    assert (nodule.boxes.tolist() == [[1.0, 1.0, 4.0, 3.0], [5.0, 1.0, 8.0, 3.0]]
            and nodule.label == 0)
    assert nodule.meta["iscrowd"] and nodule.meta["segmentation"]
    assert mass.label == 1 and mass.mask is None and not mass.meta["segmentation"]
    assert scaled.boxes.tolist() == [[2.0, 2.0, 6.0, 6.0]]  # x halved (16 -> 8), y kept
    assert nodule.image.shape == (1, 8, 8)


def test_segmentations_become_the_mask(coco_root):
    nodule, mass, scaled = list(read_coco(coco_root / "annotations.json"))
    expected = box_mask(8, 8, [(1, 1, 4, 3)])
    expected[1:3, 5:8] = True  # the RLE region
    assert torch.equal(nodule.mask[0], expected)
    assert torch.equal(scaled.mask[0], box_mask(8, 8, [(2, 2, 6, 6)]))
    boxes_only = read_coco(coco_root / "annotations.json", use_segmentation=False)[0]
    assert boxes_only.mask is None
    assert torch.equal(collate([boxes_only]).mask[0, 0], box_mask(8, 8, [(1, 1, 4, 3), (5, 1, 8,
                                                                                        3)]))


def test_negatives_and_class_names(coco_root):
    dataset = read_coco(coco_root / "annotations.json", negatives=True)
    assert dataset.class_names == ("No Finding", "Nodule", "Mass")
    assert dataset[3].source_id == "empty.png:No Finding" and dataset[3].label == 0
    with pytest.raises(OptionError, match="No Finding"):
        read_coco(coco_root / "annotations.json", negatives=True, class_names=("Nodule", "Mass"))
    own = read_coco(coco_root / "annotations.json", class_names=("Background", "Mass", "Nodule"))
    assert [r.label for r in own] == [2, 1, 1]


@pytest.mark.parametrize("change, reason, row", [
    ({"category_id": 99}, "unknown category_id 99", "annotations[0] (id 10)"),
    ({"image_id": 42}, "unknown image_id 42", "annotations[0] (id 10)"),
    ({"bbox": [1, 1, 3]}, "expected 'bbox'", "annotations[0] (id 10)"),
    ({"bbox": [6, 1, 3, 2]}, "outside the image", "annotations[0] (id 10)"),
    ({"segmentation": [[1, 1, 2, 2]]}, "polygon 0", "annotations[0] (id 10)"),
    ({"segmentation": {"size": [8], "counts": [64]}}, "RLE 'size'", "annotations[0] (id 10)"),
])
def test_bad_annotations(tmp_path, change, reason, row):
    data = coco_json()
    data["annotations"][0].update(change)
    write_text(tmp_path / "annotations.json", json.dumps(data))
    for name in ("a", "b", "empty"):
        write_png(tmp_path / "images" / f"{name}.png", gradient(8, 8))
    with pytest.raises(DatasetError, match=reason) as info:
        read_coco(tmp_path / "annotations.json")
    assert info.value.row == row and info.value.file.endswith("annotations.json")
    skipping = read_coco(tmp_path / "annotations.json", on_error="skip")
    assert [s.row for s in skipping.skipped] == [row]
    if "image_id" not in change:  # the whole image a.png is left out
        assert [r.source_id for r in skipping] == ["b.png:Mass"]


def test_rle_with_wrong_sum_fails_when_loaded(tmp_path):
    data = coco_json()
    data["annotations"][1]["segmentation"] = {"size": [8, 8], "counts": [10, 5]}
    write_text(tmp_path / "annotations.json", json.dumps(data))
    for name in ("a", "b", "empty"):
        write_png(tmp_path / "images" / f"{name}.png", gradient(8, 8))
    dataset = read_coco(tmp_path / "annotations.json")
    with pytest.raises(DatasetError, match="add up") as info:
        dataset[0]
    assert info.value.row == "annotations[1] (id 11)"


def test_unreadable_json_and_missing_images(tmp_path):
    write_text(tmp_path / "bad.json", "{not json")
    with pytest.raises(DatasetError, match="cannot parse JSON"):
        read_coco(tmp_path / "bad.json")
    write_text(tmp_path / "shape.json", json.dumps({"images": []}))
    with pytest.raises(DatasetError, match="'annotations'"):
        read_coco(tmp_path / "shape.json")
    write_text(tmp_path / "annotations.json", json.dumps(coco_json()))
    with pytest.raises(DatasetError, match="'a.png' not found") as info:
        read_coco(tmp_path / "annotations.json")
    assert info.value.row == "images[0]"
