"""Volume datasets from a config: ``resample`` / ``resample_spacing`` in ``[dataset]``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.harness.test_data_volumes import HEADER, write_nifti
from xaiscore import DTypeError, OptionError, ShapeError
from xaiscore.harness.config import load_config
from xaiscore.harness.data import collate, open_dataset
from xaiscore.harness.data.volume_io import world_box_to_voxels


def lesion_case(tmp_path, shape=(8, 6, 4), lo=(2, 2, 0), hi=(6, 4, 2), affine=None):
    """One NIfTI volume (file axes i, j, k) with a bright cuboid, its label map and its box."""
    data = np.zeros(shape, np.float32)
    data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = 1.0
    affine = np.eye(4) if affine is None else affine
    write_nifti(tmp_path / "img" / "c1.nii.gz", data * 100.0, affine)
    write_nifti(tmp_path / "lab" / "c1.nii.gz", data.astype(np.uint8), affine)
    (tmp_path / "b.csv").write_text(HEADER + "c1,Lesion," + ",".join(map(str, (*lo, *hi)))
                                    + "\n")
    return affine


def test_resample_to_a_shape_moves_boxes_and_label_map_masks(tmp_path):
    lesion_case(tmp_path)  # stored (D, H, W) = (4, 6, 8), box x 2..6, y 2..4, z 0..2
    boxes = open_dataset("nifti", images=str(tmp_path / "img"), boxes=str(tmp_path / "b.csv"),
                         canonical=False, resample=[8, 12, 16])
    record = boxes[0]
    assert record.image.shape == (1, 8, 12, 16)
    assert record.boxes.tolist() == [[4.0, 4.0, 0.0, 12.0, 8.0, 4.0]]  # every axis doubled
    assert record.meta["spacing"] == pytest.approx((0.5, 0.5, 0.5))
    assert record.meta["transforms"][-1] == "resample(4x6x8->8x12x16)"
    masks = open_dataset("nifti", images=str(tmp_path / "img"), masks=str(tmp_path / "lab"),
                         classes={1: "Lesion"}, canonical=False, resample=[8, 12, 16],
                         mask_rule="area")
    mask = collate([masks[0]]).mask[0, 0]
    expected = torch.zeros(8, 12, 16, dtype=torch.bool)
    expected[0:4, 4:8, 4:12] = True  # (z, y, x) doubled
    assert torch.equal(mask, expected)
    assert masks[0].boxes.tolist() == [[4.0, 4.0, 0.0, 12.0, 8.0, 4.0]]
    # the bright voxels (intensity scaled to [0, 1], trilinear) moved with the box
    bright = masks[0].image[0] > 0.5
    assert not (bright & ~expected).any() and bright.sum() > expected.sum() // 2


def test_resample_to_a_spacing_keeps_world_coordinates(tmp_path):
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = (-4.0, 1.0, 6.0)
    lesion_case(tmp_path, affine=affine)
    ds = open_dataset("nifti", images=str(tmp_path / "img"), boxes=str(tmp_path / "b.csv"),
                      resample_spacing=[1.5, 1.0, 1.0])
    record = ds[0]
    assert record.image.shape == (1, 8, 12, 16)  # 4 x 3 mm -> 1.5 mm, 6 x 2 mm -> 1 mm, ...
    assert record.meta["spacing"] == pytest.approx((1.5, 1.0, 1.0))
    world = (2 * 2 - 1 - 4.0, 2 * 2 - 1 + 1.0, 0 - 1.5 + 6.0,  # the file box's edges in mm
             2 * 6 - 1 - 4.0, 2 * 4 - 1 + 1.0, 3 * 2 - 1.5 + 6.0)
    assert world_box_to_voxels(world, np.asarray(record.meta["affine"])) == pytest.approx(
        tuple(record.boxes[0].tolist()))


def test_resample_from_a_config_file(tmp_path):
    lesion_case(tmp_path)
    (tmp_path / "run.toml").write_text(
        'out = "run"\n[dataset]\nkind = "nifti"\nimages = "img"\nboxes = "b.csv"\n'
        "canonical = false\nresample = [2, 3, 4]\nresample_mode = \"nearest\"\n")
    config = load_config(tmp_path / "run.toml")
    assert config.dataset.options["images"] == str(tmp_path / "img")  # relative to the config
    record = open_dataset(config.dataset.kind, **dict(config.dataset.options))[0]
    assert record.image.shape == (1, 2, 3, 4)
    assert record.boxes.tolist() == [[1.0, 1.0, 0.0, 3.0, 2.0, 1.0]]


def test_resample_on_the_synthetic_phantom():
    record = open_dataset("synthetic3d", n=2, size=[12, 12, 12], resample=6)[1]
    assert record.image.shape == (1, 6, 6, 6)
    full = open_dataset("synthetic3d", n=2, size=[12, 12, 12])[1]
    torch.testing.assert_close(record.boxes, full.boxes / 2)


@pytest.mark.parametrize("kind, options, error, match", [
    ("synthetic", {"resample": [8, 8, 8]}, OptionError, r"`resample` only for a volume"),
    ("synthetic", {"resample_spacing": 1.0}, OptionError, "`resample_spacing` only"),
    ("synthetic", {"resample_mode": "nearest"}, OptionError, "`resample_mode` only"),
    ("synthetic3d", {"resize": [8, 8]}, OptionError, r"got `resize` \(2-D only\)"),
    ("synthetic3d", {"letterbox": True}, OptionError, "got `letterbox`"),
    ("synthetic3d", {"resample": 8, "resample_spacing": 1.0}, OptionError, "at most one"),
    ("synthetic3d", {"resample": [8, 8]}, ShapeError, "`resample` with 3 entries"),
    ("synthetic3d", {"resample": "big"}, DTypeError, "`resample` as a tuple of ints"),
    ("synthetic3d", {"resample": [8, 0, 8]}, OptionError, "positive sides in `resample`"),
    ("synthetic3d", {"resample_spacing": [1, 0, 1]}, OptionError, "positive `resample_spacing`"),
    ("synthetic3d", {"resample_spacing": "fine"}, DTypeError, "`resample_spacing` as a number"),
    ("synthetic3d", {"resample": 8, "resample_mode": "cubic"}, OptionError, "resample_mode"),
])
def test_resample_config_errors(kind, options, error, match):
    with pytest.raises(error, match=match):
        open_dataset(kind, n=2, **options)
