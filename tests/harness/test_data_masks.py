"""Mask-image readers: a mask folder and the MVTec AD layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.harness.data_fixtures import gradient, write_png
from xaiscore import OptionError
from xaiscore.harness.data import DatasetError, iterate_batches, read_mask_folder, read_mvtec
from xaiscore.harness.data._io import load_mask_image


def blob_mask(height=16, width=16):
    mask = np.zeros((height, width), np.uint8)
    mask[2:5, 3:7] = 255       # one component
    mask[10:14, 12] = 255      # a second
    mask[9, 11] = 255          # touches the second diagonally: same component (8-connectivity)
    return mask


def test_mask_folder_positives_negatives_and_component_boxes(tmp_path):
    write_png(tmp_path / "img" / "a.png", gradient(16, 16))
    write_png(tmp_path / "img" / "b.png", gradient(16, 16))
    write_png(tmp_path / "masks" / "a_mask.png", blob_mask())
    dataset = read_mask_folder(tmp_path / "img", tmp_path / "masks", finding="Tumour")
    positive, negative = list(dataset)
    assert positive.finding == "Tumour" and positive.label == 1
    assert torch.equal(positive.mask[0], torch.from_numpy(blob_mask() > 0))
    assert positive.boxes.tolist() == [[3.0, 2.0, 7.0, 5.0], [11.0, 9.0, 13.0, 14.0]]
    assert positive.box_labels == ("Tumour", "Tumour")
    assert (negative.finding == "No Finding" and negative.mask is None
            and negative.boxes.shape == (0, 4))
    batch = next(iterate_batches(dataset, 2))
    assert torch.equal(batch.mask[0, 0], positive.mask[0]) and not batch.mask[1].any()


def test_masks_next_to_images_tiff_and_threshold(tmp_path):
    from PIL import Image

    write_png(tmp_path / "a.png", gradient(8, 8))
    soft = np.zeros((8, 8), np.float32)
    soft[0, 0], soft[1, 1] = 0.9, 0.4
    Image.fromarray(soft, mode="F").save(tmp_path / "a_mask.tif")
    dataset = read_mask_folder(tmp_path, tmp_path)
    assert len(dataset) == 1  # the mask file is not taken for an image
    assert dataset[0].mask.sum() == 1
    assert read_mask_folder(tmp_path, tmp_path, mask_threshold=0.3)[0].mask.sum() == 2


def test_load_mask_image_modes(tmp_path):
    from PIL import Image

    bits = np.zeros((4, 4), bool)
    bits[1, 2] = True
    Image.fromarray(bits).save(tmp_path / "bits.png")
    assert torch.equal(load_mask_image(tmp_path / "bits.png")[0], torch.from_numpy(bits))
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[0, 0, 1] = 200
    write_png(tmp_path / "colour.png", colour)
    assert load_mask_image(tmp_path / "colour.png").sum() == 1
    sixteen = np.zeros((4, 4), np.uint16)
    sixteen[3, 3] = 40000
    write_png(tmp_path / "sixteen.png", sixteen)
    assert load_mask_image(tmp_path / "sixteen.png")[0, 3, 3]


def test_mask_of_the_wrong_size_and_corrupt_mask(tmp_path):
    write_png(tmp_path / "img" / "a.png", gradient(8, 8))
    write_png(tmp_path / "masks" / "a_mask.png", np.zeros((4, 4), np.uint8))
    dataset = read_mask_folder(tmp_path / "img", tmp_path / "masks")
    with pytest.raises(DatasetError, match="size of image a.png") as info:
        dataset[0]
    assert info.value.file.endswith("a_mask.png")
    (tmp_path / "masks" / "a_mask.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="cannot read mask"):
        dataset[0]
    with pytest.raises(OptionError):
        read_mask_folder(tmp_path / "img", tmp_path / "masks", class_names=("No Finding", "Other"))
    with pytest.raises(DatasetError, match="folder not found"):
        read_mask_folder(tmp_path / "nothing", tmp_path / "masks")


@pytest.fixture
def mvtec_root(tmp_path):
    root = tmp_path / "bottle"
    write_png(root / "train" / "good" / "000.png", gradient(16, 16))
    write_png(root / "test" / "good" / "000.png", gradient(16, 16))
    write_png(root / "test" / "broken_large" / "000.png", gradient(16, 16))
    write_png(root / "test" / "contamination" / "000.png", gradient(16, 16))
    write_png(root / "test" / "contamination" / "001.png", gradient(16, 16))
    write_png(root / "ground_truth" / "broken_large" / "000_mask.png", blob_mask())
    write_png(root / "ground_truth" / "contamination" / "000_mask.png", blob_mask())
    write_png(root / "ground_truth" / "contamination" / "001_mask.png", blob_mask())
    return root


def test_mvtec_binary_and_defect_labels(mvtec_root):
    binary = read_mvtec(mvtec_root)
    assert binary.class_names == ("good", "defect") and binary.negative_finding == "good"
    assert [r.source_id for r in binary] == ["broken_large/000.png", "contamination/000.png",
                                              "contamination/001.png", "good/000.png"]
    assert [r.label for r in binary] == [1, 1, 1, 0]
    assert binary[0].meta["defect"] == "broken_large" and binary[0].finding == "defect"
    assert binary[3].mask is None and binary[3].meta["negative"]
    assert torch.equal(binary[1].mask[0], torch.from_numpy(blob_mask() > 0))
    typed = read_mvtec(mvtec_root, labels="defect")
    assert typed.class_names == ("good", "broken_large", "contamination")
    assert [r.finding for r in typed][:2] == ["broken_large", "contamination"]
    train = read_mvtec(mvtec_root, split="train")
    assert [r.source_id for r in train] == ["good/000.png"]


def test_mvtec_defect_image_without_mask(mvtec_root):
    (mvtec_root / "ground_truth" / "contamination" / "001_mask.png").unlink()
    with pytest.raises(DatasetError,
                       match="missing mask for defect image contamination/001.png") as info:
        read_mvtec(mvtec_root)
    assert info.value.file.endswith("001_mask.png")
    skipping = read_mvtec(mvtec_root, on_error="skip")
    assert len(skipping) == 3 and len(skipping.skipped) == 1
    with pytest.raises(DatasetError, match="split folder"):
        read_mvtec(mvtec_root.parent / "cable")
    with pytest.raises(OptionError):
        read_mvtec(mvtec_root, split="validation")
