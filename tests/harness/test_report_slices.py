"""Volume examples for the report: three orthogonal slices through the lesion centre, boxes in each
panel."""

from __future__ import annotations

import math

import torch

from xaiscore.harness.demo_volumes import volume_demo_raw_config
from xaiscore.harness.report_slices import slice_centre, slice_strip, volume_examples
from xaiscore.specs import get_metric


def test_strip_holds_the_three_slices_through_the_centre():
    volume = torch.arange(2 * 4 * 5 * 6, dtype=torch.float32).reshape(2, 4, 5, 6)
    strip, boxes = slice_strip(volume, torch.zeros(0, 6), centre=(3, 2, 1), fill=-1.0)
    assert strip.shape == (2, 5, 6 + 1 + 6 + 1 + 5)
    assert torch.equal(strip[:, :5, :6], volume[:, 1])  # axial: z = 1, rows y, columns x
    assert torch.equal(strip[:, :4, 7:13], volume[:, :, 2])  # coronal: y = 2, rows z, columns x
    # sagittal: x = 3, rows z, columns y
    assert torch.equal(strip[:, :4, 14:19], volume[:, :, :, 3])
    assert bool((strip[:, 4, 7:] == -1).all()) and bool((strip[:, :, 6] == -1).all())
    assert boxes.shape == (0, 4)


def test_boxes_appear_in_the_panels_whose_slice_cuts_them():
    box = torch.tensor([[1.0, 2.0, 0.0, 3.0, 4.0, 2.0], [5.0, 0.0, 3.0, 6.0, 1.0, 4.0]])
    centre = slice_centre((4, 5, 6), box)
    assert centre == (2, 3, 1)
    _, drawn = slice_strip(torch.zeros(1, 4, 5, 6), box, centre=centre)
    assert drawn[:3].tolist() == [[1.0, 2.0, 3.0, 4.0], [8.0, 0.0, 10.0, 2.0],
                                  [16.0, 0.0, 18.0, 2.0]]
    # the second box is off every slice
    assert all(math.isnan(v) for v in drawn[3:].flatten().tolist())


def test_slice_centre_falls_back_to_mask_and_middle():
    mask = torch.zeros(4, 6, 8, dtype=torch.bool)
    mask[3, 5, 7] = True
    assert slice_centre((4, 6, 8), torch.zeros(0, 6), mask) == (7, 5, 3)
    assert slice_centre((4, 6, 8), torch.zeros(0, 6)) == (4, 3, 2)


def test_volume_examples_keep_positives_first_with_maps_cut_alike():
    x = torch.rand(3, 1, 4, 5, 6, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(3, 1, 4, 5, 6, dtype=torch.bool)
    mask[2, 0, 1:3, 1:3, 2:4] = True
    boxes = [torch.zeros(0, 6), torch.zeros(0, 6), torch.tensor([[2.0, 1.0, 1.0, 4.0, 3.0, 3.0]])]
    maps = {"m": x[:, 0] * 2}
    out = volume_examples(x, mask, boxes, [10, 11, 12], maps, n_examples=2)
    assert out["index"] == [12, 10] and out["positive"] == [True, False]
    assert out["image"].shape == (2, 1, 5, 19) and out["mask"].shape == (2, 5, 19)
    # the maps are cut like the image (the gap is filled with 0 for maps, the minimum for images)
    for left, right, rows in ((0, 6, 5), (7, 13, 4), (14, 19, 4)):
        torch.testing.assert_close(out["attributions"]["m"][:, :rows, left:right],
                                   out["image"][:, 0, :rows, left:right] * 2)
    assert int(out["mask"][0].sum()) == 4 + 4 + 4  # the 2x2 lesion cut by each of the three slices
    assert out["boxes"].shape == (2, 3, 4) and not math.isnan(float(out["boxes"][0, 0, 0]))


def test_volume_demo_scores_every_metric_that_runs_on_volumes():
    raw = volume_demo_raw_config(n=4)
    assert raw["dataset"]["kind"] == "synthetic3d" and raw["model"]["train"]["width"] == 4
    for name in raw["metrics"]["include"]:
        assert get_metric(name).volumes is None
    assert ("mst_compactness" not in raw["metrics"]["include"]
            and "road" in raw["metrics"]["include"])
