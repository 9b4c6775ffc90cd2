"""RSNA Pneumonia reader on fixture DICOMs written with pydicom."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.harness.data_fixtures import gradient, write_dicom, write_text
from xaiscore import OptionError
from xaiscore.harness.data import DatasetError, collate, read_rsna_pneumonia
from xaiscore.harness.data._io import load_dicom

HEADER = "patientId,x,y,width,height,Target\n"


@pytest.fixture
def rsna_root(tmp_path):
    write_text(tmp_path / "stage_2_train_labels.csv", HEADER + (
        "p-positive,264.0,152.0,213.0,379.0,1\n"
        "p-negative,,,,,0\n"
        "p-positive,562.0,152.0,256.0,453.0,1\n"
        "p-single,0,0,512,1024,1\n"
    ))
    images = tmp_path / "stage_2_train_images"
    write_dicom(images / "p-positive.dcm", gradient(32, 32, dtype=np.uint16))
    write_dicom(images / "p-negative.dcm", gradient(32, 32, dtype=np.uint16))
    write_dicom(images / "p-single.dcm", gradient(32, 32, dtype=np.uint16))
    return tmp_path


def test_one_sample_per_patient_with_all_its_boxes(rsna_root):
    dataset = read_rsna_pneumonia(rsna_root)
    assert [r.source_id for r in dataset] == ["p-positive", "p-negative", "p-single"]
    positive, negative, single = list(dataset)
    scale = 32 / 1024
    expected = torch.tensor([[264.0, 152.0, 477.0, 531.0], [562.0, 152.0, 818.0, 605.0]]) * scale
    torch.testing.assert_close(positive.boxes, expected)
    assert (positive.finding == "Lung Opacity" and positive.label == 1
            and positive.meta["box_rows"] == (2, 4))
    assert (negative.finding == "No Finding" and negative.label == 0
            and negative.boxes.shape == (0, 4))
    assert single.boxes.tolist() == [[0.0, 0.0, 16.0, 32.0]]
    batch = collate(list(dataset))
    assert batch.mask[2, 0, :, :16].all() and not batch.mask[2, 0, :, 16:].any()
    assert len(read_rsna_pneumonia(rsna_root, negatives=False)) == 2


def test_dicom_pixels_are_rescaled_min_max_and_monochrome1_inverted(tmp_path):
    array = np.array([[0, 100], [300, 1100]], dtype=np.uint16)
    expected = torch.tensor([[0.0, 0.1], [0.3, 1.1]]) / 1.1
    plain = load_dicom(write_dicom(tmp_path / "a.dcm", array))
    torch.testing.assert_close(plain[0], expected)
    inverted = load_dicom(write_dicom(tmp_path / "b.dcm", array, photometric="MONOCHROME1"))
    torch.testing.assert_close(inverted[0], 1 - expected)
    flipped = load_dicom(write_dicom(tmp_path / "c.dcm", array, slope=-2.0, intercept=5.0))
    torch.testing.assert_close(flipped[0], 1 - expected)
    constant = load_dicom(write_dicom(tmp_path / "d.dcm", np.full((2, 2), 7, np.uint16)),
                          channels=3)
    assert constant.shape == (3, 2, 2) and constant.eq(0).all()


@pytest.mark.parametrize("line, reason", [
    ("p-new,,,,,1", "needs x, y, width and height"),
    ("p-new,1,1,10,10,0", "must have empty coordinates"),
    ("p-positive,,,,,0", "rows with Target 1 and 0"),
    ("p-new,1,1,10,10,2", "expected Target 0 or 1"),
    ("p-new,1000,1,100,10,1", "outside the image"),
    ("p-missing,1,1,10,10,1", "image file 'p-missing' not found"),
])
def test_bad_rows_raise_naming_file_and_row(rsna_root, line, reason):
    path = rsna_root / "stage_2_train_labels.csv"
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(DatasetError, match=reason) as info:
        read_rsna_pneumonia(rsna_root)
    assert info.value.file.endswith("stage_2_train_labels.csv") and info.value.row == 6
    skipping = read_rsna_pneumonia(rsna_root, on_error="skip")
    assert [s.row for s in skipping.skipped] == [6]
    survivors = {r.source_id for r in skipping}
    assert survivors == ({"p-negative", "p-single"} if line.startswith("p-positive") else
                         {"p-positive", "p-negative", "p-single"})


def test_corrupt_and_pixel_less_dicoms(rsna_root):
    images = rsna_root / "stage_2_train_images"
    (images / "p-single.dcm").write_bytes(b"not a dicom at all" * 10)
    dataset = read_rsna_pneumonia(rsna_root)
    with pytest.raises(DatasetError, match="cannot read DICOM") as info:
        dataset[2]
    assert info.value.file.endswith("p-single.dcm")
    import pydicom

    ds = pydicom.dcmread(images / "p-negative.dcm")
    del ds.PixelData
    ds.save_as(images / "p-negative.dcm")
    with pytest.raises(DatasetError, match="p-negative.dcm"):
        dataset[1]


def test_class_names_must_hold_the_findings(rsna_root):
    with pytest.raises(OptionError, match="Lung Opacity"):
        read_rsna_pneumonia(rsna_root, class_names=("No Finding", "Pneumonia"))
    renamed = read_rsna_pneumonia(rsna_root, class_names=("Normal", "Pneumonia", "No Finding"),
                                  positive_finding="Pneumonia")
    assert [r.label for r in renamed] == [1, 2, 1]
