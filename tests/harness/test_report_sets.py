"""The report's set-level parts, and the box protocols on the synthetic shortcut marker."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xaiscore.harness.data import make_synthetic_dataset
from xaiscore.harness.models import SmallCNN
from xaiscore.harness.report_sets import predicted_boxes, set_level_lines
from xaiscore.harness.runner import evaluate

BOX_METRICS = ["box_accuracy", "max_box_accuracy", "pxap"]
N = 16


@pytest.fixture(scope="module")
def marker_run():
    """An oracle method (the lesion mask) and a method that points at the shortcut marker."""
    data = make_synthetic_dataset(N, size=(32, 32), seed=5, shortcut=1.0)
    lesions = torch.stack([data[i].mask for i in range(N)]).float()
    markers = torch.stack([data[i].extra_masks["shortcut"] for i in range(N)]).float()

    def by_position(maps):
        def explain(x, target):  # one batch of all N samples, in order
            assert x.shape[0] == N
            return maps.clone()
        return explain

    model = SmallCNN(1, 2, width=4, generator=torch.Generator().manual_seed(0)).eval()
    ds = evaluate(data, model, methods=[("lesion", by_position(lesions)), ("marker",
                                                                           by_position(markers))],
                  metrics=BOX_METRICS, metric_options={"max_box_accuracy": {"thresholds": 100}},
                  batch_size=N, n_examples=4)
    return ds, data, markers


def test_the_shortcut_marker_method_fails_every_box_protocol(marker_run):
    ds, _, _ = marker_run
    lesion, marker = ds.sel(explainer="lesion"), ds.sel(explainer="marker")
    assert float(lesion["max_box_accuracy"]) == 1.0 and float(marker["max_box_accuracy"]) == 0.0
    assert float(lesion["pxap"]) == pytest.approx(1.0) and float(marker["pxap"]) < 0.2
    assert float(lesion["box_accuracy"]) > 0.9 and float(marker["box_accuracy"]) == 0.0
    positives = [str(f) for f in ds["finding_class"].values if f != "No Finding"]
    table = marker["box_accuracy_finding_accuracy"].sel(finding_class=positives).values
    assert (table == 0.0).all()  # at every binarisation threshold and T(IoBB)
    assert (marker["box_accuracy_finding_afp"].sel(finding_class=positives).values >= 1.0).all()


def test_the_example_grid_draws_each_methods_predicted_boxes(marker_run):
    ds, data, _ = marker_run
    boxes = predicted_boxes(ds)  # (M, E, K, 4)
    assert boxes.shape[:2] == (2, ds.sizes["example"])
    for row, sample in enumerate(ds["example"].values.tolist()):
        record = data[sample]
        marker_box = record.meta["shortcut_box"]
        found = boxes[1, row][np.isfinite(boxes[1, row, :, 0])]
        assert found.tolist() == [list(marker_box)]
        if record.boxes.shape[0]:
            lesion = boxes[0, row][np.isfinite(boxes[0, row, :, 0])]
            assert lesion.tolist() == record.boxes.tolist()


def test_the_report_shows_the_set_level_and_box_tables(marker_run, tmp_path):
    from xaiscore.harness.report import write_report

    ds, _, _ = marker_run
    html = write_report(ds, tmp_path, n_boot=50).read_text()
    assert "<h2>Set-level metrics</h2>" in html and "set-level, no paired test" in html
    assert "Box accuracy per finding" in html and "T(IoBB) = 0.75" in html
    assert "amber outline" in html and "Set-level metrics per finding class" in html
    csv = (tmp_path / "summary.csv").read_text().splitlines()
    assert any(line.startswith("pxap,marker,") and ",set" in line for line in csv)
    assert set_level_lines(ds)[0].startswith("Set-level metrics")
    assert "best lesion" in set_level_lines(ds)[0]


def test_the_volume_report_shows_the_3d_box_protocols_per_finding(tmp_path):
    """An oracle (the lesion masks) on phantom volumes: the 3-D table and the volume wording."""
    from xaiscore.harness.data.synthetic3d import make_synthetic_volumes
    from xaiscore.harness.report import write_report

    n = 6
    data = make_synthetic_volumes(n, size=(12, 12, 12), seed=1)
    lesions = torch.stack([data[i].mask for i in range(n)]).float()

    def oracle(x, target):
        assert x.shape[0] == n
        return lesions.clone()

    model = SmallCNN(1, 2, width=2, spatial_dims=3,
                     generator=torch.Generator().manual_seed(0)).eval()
    ds = evaluate(data, model, methods=[("lesion", oracle)], metrics=BOX_METRICS,
                  metric_options={"max_box_accuracy": {"thresholds": 20},
                                  "pxap": {"thresholds": 20}},
                  batch_size=n, n_examples=2)
    assert all(int(ds[m].attrs["spatial_dims"]) == 3 for m in BOX_METRICS)
    lesion = ds.sel(explainer="lesion", finding_class="Lesion")
    assert float(lesion["max_box_accuracy_by_finding"]) == 1.0
    assert float(lesion["pxap_by_finding"]) == pytest.approx(1.0)
    html = write_report(ds, tmp_path, n_boot=20).read_text()
    assert "<h2>3-D box protocols per finding</h2>" in html
    table = html[html.index("3-D box protocols per finding"):html.index("Box accuracy per finding")]
    assert "<th>MaxBoxAcc</th><th>PxAP</th>" in table and "<td>Lesion</td>" in table
    assert "No Finding" not in table  # no ground-truth box there
    assert "Wang et al. 2017, 3-D" in html and "average false positives per volume" in html


def test_the_image_report_has_no_3d_box_table(marker_run, tmp_path):
    from xaiscore.harness.report import write_report

    ds, _, _ = marker_run
    assert all(int(ds[m].attrs["spatial_dims"]) == 2 for m in BOX_METRICS)
    html = write_report(ds, tmp_path, n_boot=20).read_text()
    assert "3-D box protocols" not in html and "false positives per image" in html
