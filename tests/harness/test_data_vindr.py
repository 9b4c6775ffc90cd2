"""VinDr-CXR reader: reader fusion (union, majority, per reader), negatives, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.harness.data_fixtures import box_mask, gradient, write_dicom, write_png, write_text
from xaiscore.harness.data import DatasetError, collate, read_vindr_cxr
from xaiscore.harness.data.fusion import majority_region
from xaiscore.harness.data.vindr import VINDR_CLASSES

HEADER = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"


@pytest.fixture
def vindr_root(tmp_path):
    """img1: nodule by R1 and R2 (overlapping) plus an effusion by R3 only; img2: all 'No finding';
    img3: one reader's cardiomegaly, the others nothing."""
    write_text(tmp_path / "train.csv", HEADER + (
        "img1,Nodule/Mass,8,R1,4,4,20,12\n"
        "img1,Nodule/Mass,8,R2,10,6,24,16\n"
        "img1,Pleural effusion,10,R3,0,20,8,30\n"
        "img1,No finding,14,R3,,,,\n"
        "img2,No finding,14,R1,,,,\n"
        "img2,No finding,14,R2,,,,\n"
        "img2,No finding,14,R3,,,,\n"
        "img3,Cardiomegaly,3,R4,8,16,24,28\n"
        "img3,No finding,14,R5,,,,\n"
        "img3,No finding,14,R6,,,,\n"
    ))
    for name in ("img1", "img2", "img3"):
        write_dicom(tmp_path / "train" / f"{name}.dicom", gradient(32, 32, dtype=np.uint16))
    return tmp_path


def test_union_fusion(vindr_root):
    dataset = read_vindr_cxr(vindr_root)
    assert [r.source_id for r in dataset] == ["img1:Nodule/Mass", "img1:Pleural effusion",
                                              "img3:Cardiomegaly"]
    nodule = dataset[0]
    assert nodule.boxes.tolist() == [[4.0, 4.0, 20.0, 12.0], [10.0, 6.0, 24.0, 16.0]]
    assert nodule.label == VINDR_CLASSES.index("Nodule/Mass") == 8
    assert nodule.meta["readers"] == ("R1", "R2") and nodule.meta["n_readers"] == 3
    assert nodule.mask is None
    assert torch.equal(collate([nodule]).mask[0, 0], box_mask(32, 32, nodule.boxes.tolist()))


def test_majority_fusion_keeps_the_region_most_readers_marked(vindr_root):
    dataset = read_vindr_cxr(vindr_root, fusion="majority")
    assert [r.source_id for r in dataset] == ["img1:Nodule/Mass"]
    nodule = dataset[0]
    # 2 of 3 readers overlap on [10, 20) x [6, 12)
    assert nodule.boxes.tolist() == [[10.0, 6.0, 20.0, 12.0]]
    assert torch.equal(nodule.mask[0], box_mask(32, 32, [(10, 6, 20, 12)]))
    reasons = [s.reason for s in dataset.skipped]
    assert any("no majority for 'Pleural effusion' (1 of 3 readers" in r for r in reasons)
    assert any("img3: no majority for 'Cardiomegaly'" in r for r in reasons)


def test_per_reader_fusion_and_negatives(vindr_root):
    dataset = read_vindr_cxr(vindr_root, fusion="per_reader", negatives=True)
    ids = [r.source_id for r in dataset]
    assert ids == ["img1:Nodule/Mass:R1", "img1:Nodule/Mass:R2", "img1:Pleural effusion:R3",
                   "img2:No Finding", "img3:Cardiomegaly:R4"]
    assert dataset[1].boxes.tolist() == [[10.0, 6.0, 24.0, 16.0]]
    negative = dataset[3]
    assert (negative.finding == "No Finding" and negative.label == 14
            and negative.boxes.shape == (0, 4))


def test_consensus_files_without_rad_id_and_size_columns(tmp_path):
    write_text(tmp_path / "annotations" / "annotations_test.csv", (
        "image_id,class_name,x_min,y_min,x_max,y_max,width,height\n"
        "a,Aortic enlargement,100,200,300,400,1000,800\n"
    ))
    write_png(tmp_path / "pngs" / "a.png", gradient(40, 50))
    dataset = read_vindr_cxr(tmp_path, labels_csv="annotations/annotations_test.csv",
                             image_dir=tmp_path / "pngs",
                             fusion="majority")
    record = dataset[0]
    assert record.meta["readers"] == ("consensus",) and record.meta["n_readers"] == 1
    # drawn on the 800 x 1000 original, scaled per axis onto the 40 x 50 PNG
    assert record.boxes.tolist() == [[5.0, 10.0, 15.0, 20.0]]
    assert torch.equal(record.mask[0], box_mask(40, 50, [(5, 10, 15, 20)]))


def test_boxes_are_checked_against_the_native_image_when_loaded(vindr_root):
    path = vindr_root / "train.csv"
    path.write_text(path.read_text() + "img2,Nodule/Mass,8,R1,20,20,40,30\n")
    dataset = read_vindr_cxr(vindr_root)
    record = next(i for i, r in enumerate(dataset.entries) if r.source_id == "img2:Nodule/Mass")
    with pytest.raises(DatasetError, match="outside the image") as info:
        dataset[record]
    assert info.value.row == 12 and info.value.file.endswith("train.csv")


@pytest.mark.parametrize("line, reason", [
    ("img9,No finding,14,R1,1,1,5,5", "'No finding' row must have empty coordinates"),
    ("img9,Nodule/Mass,8,R1,,,,", "needs x_min, y_min, x_max and y_max"),
    ("img9,Lung cancer,20,R1,1,1,5,5", "unknown finding 'Lung cancer'"),
    ("img9,Nodule/Mass,8,R1,5,1,5,5", "no area"),
])
def test_bad_rows(vindr_root, line, reason):
    path = vindr_root / "train.csv"
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(DatasetError, match=reason) as info:
        read_vindr_cxr(vindr_root)
    assert info.value.row == 12
    assert [s.row for s in read_vindr_cxr(vindr_root, on_error="skip").skipped] == [12]


def test_missing_label_file_and_images(tmp_path):
    with pytest.raises(DatasetError, match="no label file"):
        read_vindr_cxr(tmp_path)
    write_text(tmp_path / "train.csv", HEADER + "ghost,Nodule/Mass,8,R1,1,1,5,5\n")
    with pytest.raises(DatasetError, match="'ghost' not found") as info:
        read_vindr_cxr(tmp_path)
    assert info.value.row == 2


# --- the majority region against a brute-force pixel vote ------------------------------------

@st.composite
def reader_boxes(draw):
    n_readers = draw(st.integers(1, 4))
    readers = {}
    for r in range(n_readers):
        boxes = []
        for _ in range(draw(st.integers(0, 3))):
            x0, x1 = sorted(draw(st.lists(st.floats(0, 16), min_size=2, max_size=2, unique=True)))
            y0, y1 = sorted(draw(st.lists(st.floats(0, 12), min_size=2, max_size=2, unique=True)))
            boxes.append((x0, y0, x1, y1))
        readers[f"R{r}"] = boxes
    extra = draw(st.integers(0, 2))  # readers who found nothing
    return readers, n_readers + extra


@settings(max_examples=30)
@given(reader_boxes())
def test_majority_mask_equals_a_pixel_wise_vote(case):
    readers, n_readers = case
    region = majority_region(readers, n_readers=n_readers)
    votes = torch.zeros(12, 16, dtype=torch.int64)
    for boxes in readers.values():
        votes += box_mask(12, 16, boxes).long()
    expected = 2 * votes > n_readers
    from xaiscore.functional import boxes_to_mask

    got = boxes_to_mask([torch.tensor(region.cells, dtype=torch.float64).reshape(-1, 4)],
                        (12, 16))[0, 0]
    assert torch.equal(got, expected)
    # every component box holds its cells, and the boxes cover the region
    covered = box_mask(12, 16, region.boxes)
    assert not (expected & ~covered).any()
