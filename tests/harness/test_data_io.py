"""File helpers of the data layer, the reader registry and an end-to-end pass into a metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.harness.data_fixtures import gradient, write_png, write_text
from xaiscore import OptionError
from xaiscore.functional import pointing_game, relevance_mass_accuracy
from xaiscore.harness.data import (
    READERS,
    DatasetError,
    RecordDataset,
    get_reader,
    iterate_batches,
    open_dataset,
)
from xaiscore.harness.data._io import ImageLocator, load_image, parse_number, read_csv_rows


def test_load_image_scales_by_bit_depth(tmp_path):
    eight = np.array([[0, 51], [204, 255]], np.uint8)
    torch.testing.assert_close(load_image(write_png(tmp_path / "a.png", eight))[0],
                               torch.tensor([[0.0, 0.2], [0.8, 1.0]]))
    sixteen = np.array([[0, 65535]], np.uint16)
    torch.testing.assert_close(load_image(write_png(tmp_path / "b.png", sixteen))[0],
                               torch.tensor([[0.0, 1.0]]))
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 2] = 255
    assert load_image(write_png(tmp_path / "c.png", rgb)).shape == (3, 2, 2)
    torch.testing.assert_close(load_image(tmp_path / "c.png", channels=1),
                               torch.full((1, 2, 2), 0.114))
    with pytest.raises(DatasetError, match="image file not found"):
        load_image(tmp_path / "nope.png")


def test_read_csv_rows_handles_bom_blank_lines_and_short_rows(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("\ufeff a , b \n1,2\n\n3\n", encoding="utf-8")
    assert list(read_csv_rows(path, required=("a", "b"))) == [(2, {"a": "1", "b": "2"}),
                                                              (4, {"a": "3", "b": None})]
    with pytest.raises(DatasetError, match="header") as info:
        list(read_csv_rows(write_text(tmp_path / "empty.csv", ""), required=("a",)))
    assert info.value.row == 1


def test_parse_number():
    assert parse_number(" 2.5 ", column="x", file="f", row=3) == 2.5
    for bad in ("", "inf", "nan", None, "1,5"):
        with pytest.raises(DatasetError, match="column 'x'") as info:
            parse_number(bad, column="x", file="f", row=3)
        assert (info.value.file, info.value.row) == ("f", 3)


def test_image_locator_searches_sub_folders_once(tmp_path):
    write_png(tmp_path / "images_002" / "images" / "x.png", gradient(2, 2))
    locator = ImageLocator([tmp_path / "images", tmp_path], (".png",))
    assert locator.find("x.png") == tmp_path / "images_002" / "images" / "x.png"
    assert locator.find("x") == tmp_path / "images_002" / "images" / "x.png"
    assert locator.find("y.png") is None


def test_registry_lists_every_reader_and_checks_options(tmp_path):
    assert set(READERS) == {"synthetic", "nih", "rsna", "vindr", "coco", "voc", "mask_folder",
                            "mvtec",
                            "synthetic3d", "nifti", "dicom_series"}
    assert all(callable(get_reader(kind)) for kind in READERS)
    with pytest.raises(OptionError, match="Did you mean 'vindr'"):
        get_reader("vinder")
    with pytest.raises(OptionError, match=r"Unknown option\(s\) \['sizes'\]"):
        open_dataset("synthetic", n=2, sizes=(8, 8))
    with pytest.raises(OptionError, match="nothing to verify"):
        open_dataset("synthetic", n=2, verify=True)


def test_open_dataset_with_geometry_options(tmp_path):
    write_text(tmp_path / "BBox_List_2017.csv", "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
                                                 "a.png,Mass,0,0,512,256,,,\nb.png,Mass,0,0,512,256,,,\n")
    write_png(tmp_path / "a.png", gradient(32, 64))
    (tmp_path / "b.png").write_bytes(b"broken")
    dataset = open_dataset("nih", root=str(tmp_path), resize=[16, 16], letterbox=True,
                           on_error="skip", verify=True)
    assert isinstance(dataset, RecordDataset) and len(dataset) == 1 and len(dataset.skipped) == 1
    record = dataset[0]
    # 32 x 64 image letterboxed into 16 x 16: scaled by 1/4 and padded 4 rows above
    assert record.image.shape == (1, 16, 16)
    assert record.boxes.tolist() == [[0.0, 4.0, 8.0, 6.0]]
    normalised = open_dataset("synthetic", n=2, size=[16, 16], normalize=(0.5, 0.25))
    assert normalised[0].image.min() < 0


def test_end_to_end_synthetic_batches_feed_the_metrics():
    dataset = open_dataset("synthetic", n=8, size=[32, 32], seed=0)
    for batch in iterate_batches(dataset, 4):
        # an attribution that points at the ground truth
        oracle = batch.mask.float() + 1e-3 * batch.x
        score = pointing_game(oracle, batch.mask)
        positive = batch.labels > 0
        assert score[positive].eq(1).all() and score[~positive].isnan().all()
        mass = relevance_mass_accuracy(oracle.abs(), batch.mask)
        assert (mass[positive] > 0.9).all()


def test_file_datasets_pickle_for_dataloader_workers(tmp_path):
    """Loaders and mask builders are picklable (DataLoader workers under spawn, distributed ranks).
    """
    import json
    import pickle

    from xaiscore.harness.data import read_coco, read_mask_folder, read_vindr_cxr

    write_png(tmp_path / "a.png", gradient(8, 8))
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:6] = 255
    write_png(tmp_path / "masks" / "a_mask.png", mask)
    write_text(tmp_path / "train.csv", "image_id,class_name,rad_id,x_min,y_min,x_max,y_max\n"
                                       "a,Nodule/Mass,R1,0,0,4,4\na,Nodule/Mass,R2,2,2,6,6\n")
    write_text(tmp_path / "coco.json", json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
        "categories": [{"id": 1, "name": "Nodule"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2],
                         "segmentation": [[1, 1, 3, 1, 3, 3, 1, 3]]}]}))
    datasets = [
        read_vindr_cxr(tmp_path, image_dir=tmp_path, fusion="majority"),
        read_coco(tmp_path / "coco.json", tmp_path),
        read_mask_folder(tmp_path, tmp_path / "masks"),
    ]
    for dataset in datasets:
        copy = pickle.loads(pickle.dumps(dataset))
        original, restored = dataset[0], copy[0]
        assert torch.equal(original.image, restored.image) and torch.equal(original.mask,
                                                                           restored.mask)
        assert torch.equal(original.boxes, restored.boxes) and original.mask.any()
