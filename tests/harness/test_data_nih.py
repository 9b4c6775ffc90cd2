"""NIH ChestX-ray14 reader on fixture files with the real field names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.harness.data_fixtures import box_mask, gradient, write_png, write_text
from xaiscore import OptionError
from xaiscore.harness.data import DatasetError, Skip, collate, iterate_batches, read_nih_chestxray14
from xaiscore.harness.data.nih import NIH_CLASSES

HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
ENTRY_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n")


@pytest.fixture
def nih_root(tmp_path):
    """Three boxed images (one with two findings), two negatives, 32 x 32 PNGs in images_001/images.
    """
    write_text(tmp_path / "BBox_List_2017.csv", HEADER + (
        "00000001_000.png,Nodule,256,512,128,64,,,\n"
        "00000002_000.png,Infiltrate,0,0,1024,512,,,\n"
        "00000001_000.png,Atelectasis,96.5,64.25,300.0,200.0,,,\n"
        "00000001_000.png,Nodule,800,800,64,96,,,\n"
        "00000003_001.png,Effusion,10,20,30,40,,,\n"
    ))
    write_text(tmp_path / "Data_Entry_2017_v2020.csv", ENTRY_HEADER + (
        "00000001_000.png,Atelectasis|Nodule,0,1,58,M,PA,2682,2749,0.143,0.143,\n"
        "00000002_000.png,Infiltration,0,2,81,M,PA,2500,2048,0.168,0.168,\n"
        "00000003_001.png,Effusion,1,3,81,F,AP,2500,2048,0.168,0.168,\n"
        "00000004_000.png,No Finding,0,4,30,F,PA,2048,2500,0.168,0.168,\n"
        "00000005_000.png,No Finding,0,5,41,M,PA,2048,2500,0.168,0.168,\n"
    ))
    for name in ("00000001_000", "00000002_000", "00000003_001", "00000004_000", "00000005_000"):
        write_png(tmp_path / "images_001" / "images" / f"{name}.png", gradient(32, 32))
    return tmp_path


def test_samples_per_image_and_finding_with_scaled_boxes(nih_root):
    dataset = read_nih_chestxray14(nih_root)
    assert [r.source_id for r in dataset] == [
        "00000001_000.png:Nodule", "00000001_000.png:Atelectasis", "00000002_000.png:Infiltration",
        "00000003_001.png:Effusion",
    ]
    nodule = dataset[0]
    # coordinates on the 1024 canvas, scaled by 32 / 1024 = 1 / 32 per axis
    assert nodule.boxes.tolist() == [[8.0, 16.0, 12.0, 18.0], [25.0, 25.0, 27.0, 28.0]]
    assert nodule.box_labels == ("Nodule", "Nodule")
    assert nodule.label == NIH_CLASSES.index("Nodule") and nodule.finding == "Nodule"
    atelectasis = dataset[1]
    torch.testing.assert_close(atelectasis.boxes, torch.tensor([[96.5, 64.25, 396.5, 264.25]]) / 32)
    infiltration = dataset[2]
    assert (infiltration.finding == "Infiltration"
            and infiltration.boxes.tolist() == [[0.0, 0.0, 32.0, 16.0]])
    assert nodule.image.shape == (1, 32, 32)
    torch.testing.assert_close(nodule.image[0], torch.from_numpy(gradient(32, 32)).float() / 255)
    assert nodule.meta["finding_labels"] == ("Atelectasis", "Nodule")
    assert nodule.meta["patient_id"] == "1" and nodule.meta["view_position"] == "PA"
    assert nodule.meta["canvas_size"] == (1024, 1024) and nodule.meta["original_size"] == (32, 32)
    assert nodule.meta["row"] == 2 and nodule.meta["box_rows"] == (2, 5)
    batch = collate(list(dataset))
    assert torch.equal(batch.mask[0, 0], box_mask(32, 32, nodule.boxes.tolist()))


def test_negatives_come_from_the_label_file(nih_root):
    everything = read_nih_chestxray14(nih_root, negatives=True)
    negatives = [r for r in everything if r.finding == "No Finding"]
    assert [r.source_id for r in negatives] == ["00000004_000.png:No Finding",
                                                "00000005_000.png:No Finding"]
    assert all(r.label == 0 and r.boxes.shape == (0, 4) for r in negatives)
    assert not collate(negatives).mask.any()
    assert len(read_nih_chestxray14(nih_root, negatives=1)) == 5
    with pytest.raises(OptionError, match="No Finding"):
        read_nih_chestxray14(nih_root, negatives=True, class_names=("Nodule", "Atelectasis"))
    with pytest.raises(OptionError, match="Data_Entry"):
        read_nih_chestxray14(nih_root, negatives=True, data_entry_csv=False)


def test_canvas_option_and_image_dir(nih_root, tmp_path_factory):
    small = tmp_path_factory.mktemp("small")
    write_text(small / "boxes.csv", HEADER + "a.png,Mass,4,8,10,6,,,\n")
    write_png(small / "pngs" / "a.png", gradient(16, 24))
    dataset = read_nih_chestxray14(small, bbox_csv="boxes.csv", image_dir=small / "pngs",
                                   canvas_size=(16, 24),
                                   data_entry_csv=False)
    assert dataset[0].boxes.tolist() == [[4.0, 8.0, 14.0, 14.0]]
    native = read_nih_chestxray14(small, bbox_csv="boxes.csv", canvas_size=None,
                                  data_entry_csv=False)
    assert (native[0].boxes.tolist() == [[4.0, 8.0, 14.0, 14.0]]
            and native[0].meta["canvas_size"] == (16, 24))


def test_rgba_images_become_grey_or_rgb(tmp_path):
    write_text(tmp_path / "BBox_List_2017.csv", HEADER + "a.png,Mass,0,0,512,512,,,\n")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 255
    write_png(tmp_path / "a.png", rgba)
    grey = read_nih_chestxray14(tmp_path)[0].image
    torch.testing.assert_close(grey, torch.full((1, 8, 8), 0.299))
    rgb = read_nih_chestxray14(tmp_path, channels=3)[0].image
    assert rgb.shape == (3, 8, 8) and rgb[0].eq(1).all() and rgb[1:].eq(0).all()


def _located(error_info, file_name, row):
    error = error_info.value
    assert error.file.endswith(file_name) and error.row == row
    assert file_name in str(error) and f"row {row}" in str(error)


@pytest.mark.parametrize("line, row_text, reason", [
    ("00000009_000.png,Nodule,1,1,10,10,,,", 3, "not found"),
    ("00000001_000.png,Tumour,1,1,10,10,,,", 3, "unknown finding 'Tumour'"),
    ("00000001_000.png,Nodule,1000,1,100,10,,,", 3, "outside the image"),
    ("00000001_000.png,Nodule,-5,1,10,10,,,", 3, "outside the image"),
    ("00000001_000.png,Nodule,1,1,0,10,,,", 3, "no area"),
    ("00000001_000.png,Nodule,abc,1,10,10,,,", 3, "expected a number in column 'Bbox \\[x'"),
    ("00000001_000.png,Nodule,1,1,10,,,,", 3, "expected a number in column 'h\\]'"),
])
def test_bad_rows_raise_naming_file_and_row(tmp_path, line, row_text, reason):
    write_text(tmp_path / "BBox_List_2017.csv",
               HEADER + "00000001_000.png,Mass,0,0,64,64,,,\n" + line + "\n")
    write_png(tmp_path / "00000001_000.png", gradient(32, 32))
    with pytest.raises(DatasetError, match=reason) as info:
        read_nih_chestxray14(tmp_path)
    _located(info, "BBox_List_2017.csv", row_text)


def test_skip_mode_drops_the_whole_image_and_reports_it(tmp_path):
    write_text(tmp_path / "BBox_List_2017.csv", HEADER + (
        "a.png,Mass,0,0,64,64,,,\n"
        "a.png,Nodule,2000,0,64,64,,,\n"   # outside: image a is left out entirely
        "b.png,Tumour,0,0,64,64,,,\n"      # unknown
        "c.png,Mass,0,0,64,64,,,\n"        # missing file
        "d.png,Mass,0,0,64,64,,,\n"
    ))
    for name in ("a", "b", "d"):
        write_png(tmp_path / f"{name}.png", gradient(8, 8))
    dataset = read_nih_chestxray14(tmp_path, on_error="skip")
    assert [r.source_id for r in dataset] == ["d.png:Mass"]
    assert [(s.row, s.reason.split(" ")[0]) for s in dataset.skipped] == [
        (3, "box"), (4, "unknown"), (5, "image")]
    assert all(isinstance(s, Skip) and s.source.endswith("BBox_List_2017.csv")
               for s in dataset.skipped)


def test_clip_boxes_keeps_boxes_that_stick_out(tmp_path):
    write_text(tmp_path / "BBox_List_2017.csv",
               HEADER + "a.png,Mass,1000,-24,100,100,,,\na.png,Mass,1100,0,10,10,,,\n")
    write_png(tmp_path / "a.png", gradient(32, 32))
    with pytest.raises(DatasetError, match="entirely outside"):
        read_nih_chestxray14(tmp_path, clip_boxes=True)
    write_text(tmp_path / "BBox_List_2017.csv", HEADER + "a.png,Mass,1000,-24,100,100,,,\n")
    assert read_nih_chestxray14(tmp_path, clip_boxes=True)[0].boxes.tolist() == [[31.25, 0.0, 32.0,
                                                                                  2.375]]


def test_corrupt_png_is_reported_when_loaded(tmp_path):
    write_text(tmp_path / "BBox_List_2017.csv",
               HEADER + "a.png,Mass,0,0,64,64,,,\nb.png,Mass,0,0,64,64,,,\n")
    write_png(tmp_path / "a.png", gradient(8, 8))
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    dataset = read_nih_chestxray14(tmp_path)
    with pytest.raises(DatasetError, match="cannot read image") as info:
        dataset[1]
    assert info.value.file.endswith("b.png")
    skipping = read_nih_chestxray14(tmp_path, on_error="skip")
    assert [b.source_ids for b in iterate_batches(skipping, 4)] == [["a.png:Mass"]]
    assert len(skipping.skipped) == 1 and skipping.skipped[0].source.endswith("b.png")
    verified = read_nih_chestxray14(tmp_path, on_error="skip").verify()
    assert len(verified) == 1 and len(verified.skipped) == 1


def test_missing_files_and_columns(tmp_path):
    with pytest.raises(DatasetError, match="annotation file not found"):
        read_nih_chestxray14(tmp_path)
    write_text(tmp_path / "BBox_List_2017.csv", "Image Index,Finding Label,x,y,w,h\n")
    with pytest.raises(DatasetError, match=r"expected columns \['Bbox \[x', 'h\]'\]") as info:
        read_nih_chestxray14(tmp_path)
    assert info.value.row == 1
