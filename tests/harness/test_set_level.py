"""Set-level metrics in the harness: over the whole dataset, independent of batch_size, resumable.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.harness.runner_fixtures import tiny_dataset, tiny_model  # noqa: F401
from xaiscore.harness.runner import evaluate
from xaiscore.harness.set_results import set_metric_variables, set_summary_table

SET_METRICS = ["pointing_accuracy", "box_accuracy", "max_box_accuracy", "pxap", "sufficiency",
               "consistency"]
OPTIONS = {"max_box_accuracy": {"thresholds": 50}, "pxap": {"thresholds": 50},
           "sufficiency": {"threshold": 1.0}}
#: Deterministic methods: their maps do not depend on the batch (the `random` method's do).
METHODS = ["Saliency", "constant"]


@pytest.fixture(scope="module")
def two_batchings(tiny_dataset, tiny_model):  # noqa: F811
    runs = {}
    for batch_size in (3, 16):
        runs[batch_size] = evaluate(tiny_dataset, tiny_model, methods=METHODS,
                                    metrics=["pointing_game", *SET_METRICS], metric_options=OPTIONS,
                                    batch_size=batch_size, n_examples=0)
    return runs


def test_set_level_metrics_have_one_value_per_method_and_the_reference_set_size(two_batchings):
    ds = two_batchings[3]
    assert set_metric_variables(ds) == SET_METRICS
    for metric in SET_METRICS:
        assert ds[metric].dims == ("explainer",)
        assert ds[metric].attrs["scope"] == "set"
        assert ds[f"{metric}_n_samples"].values.tolist() == [16, 16]
    assert ds["pointing_game"].dims == ("explainer", "sample")  # per-sample metrics unchanged
    assert ds["max_box_accuracy_by_threshold"].dims == ("explainer", "max_box_accuracy_threshold")
    assert ds["box_accuracy_accuracy"].dims == ("explainer", "box_accuracy_binarisation",
                                                "box_accuracy_overlap")
    assert ds["box_accuracy_overlap"].values.tolist() == [0.1, 0.25, 0.5, 0.75, 0.9]
    assert np.isfinite(ds["box_accuracy"].values).all()


def test_set_level_results_do_not_depend_on_batch_size(two_batchings):
    small, whole = two_batchings[3], two_batchings[16]
    for metric in SET_METRICS:
        for suffix in ("", "_n_samples", "_by_finding", "_by_threshold", "_accuracy", "_afp",
                       "_finding_accuracy"):
            name = metric + suffix
            if name in whole:
                np.testing.assert_array_equal(small[name].values, whole[name].values, err_msg=name)


def test_set_level_values_equal_the_kernels_on_the_whole_set(two_batchings, tiny_dataset, tiny_model):  # noqa: E501, F811
    from xaiscore import functional as F
    from xaiscore.explainers import make_explainer
    from xaiscore.harness.data.records import collate

    ds = two_batchings[3]
    batch = collate([tiny_dataset[i] for i in range(len(tiny_dataset))])
    a = make_explainer("Saliency", tiny_model)(batch.x, batch.labels)
    row = ds.sel(explainer="Saliency")
    expected_pxap = F.pxap(a, batch.mask, thresholds=50).value
    assert float(row["pxap"]) == pytest.approx(float(expected_pxap), rel=1e-6, abs=1e-9)
    expected_box = F.box_accuracy(a, batch.mask).value
    assert float(row["box_accuracy"]) == pytest.approx(float(expected_box), rel=1e-6, abs=1e-9)
    expected_max = F.max_box_accuracy(a, batch.mask, thresholds=50).value
    assert float(row["max_box_accuracy"]) == pytest.approx(float(expected_max), rel=1e-6, abs=1e-9)
    scores = F.sufficiency(tiny_model, batch.x, a, threshold=1.0)
    expected = float(torch.nanmean(scores)) if bool((~scores.isnan()).any()) else math.nan
    assert float(row["sufficiency"]) == pytest.approx(expected, rel=1e-6, abs=1e-9, nan_ok=True)
    consistency = F.consistency(tiny_model, batch.x, a)
    assert float(row["consistency"]) == pytest.approx(float(torch.nanmean(consistency)), rel=1e-6,
                                                      abs=1e-9,
                                                      nan_ok=True)


def test_set_level_equals_the_metric_class(two_batchings, tiny_dataset, tiny_model):  # noqa: F811
    pytest.importorskip("torchmetrics")
    from xaiscore.explainers import make_explainer
    from xaiscore.harness.data.records import collate
    from xaiscore.metrics import PointingAccuracy

    batch = collate([tiny_dataset[i] for i in range(len(tiny_dataset))])
    a = make_explainer("Saliency", tiny_model)(batch.x, batch.labels)
    metric = PointingAccuracy(num_classes=2)
    for start in range(0, 16, 5):
        rows = slice(start, start + 5)
        metric.update(a[rows], batch.mask[rows], batch.labels[rows])
    harness = float(two_batchings[3]["pointing_accuracy"].sel(explainer="Saliency"))
    assert harness == pytest.approx(float(metric.compute()), rel=1e-6, abs=1e-9, nan_ok=True)


def test_resume_recomputes_no_set_level_batch(tiny_dataset, tiny_model, tmp_path):  # noqa: F811
    kwargs = dict(methods=["Saliency"], metrics=["pxap", "sufficiency"], metric_options=OPTIONS,
                  batch_size=5, n_examples=0, out=tmp_path / "run")
    first_timing: dict = {}
    first = evaluate(tiny_dataset, tiny_model, timing=first_timing, **kwargs)
    assert first_timing["results_computed"] == 8  # 4 batches x 2 metrics
    timing: dict = {}
    again = evaluate(tiny_dataset, tiny_model, timing=timing, **kwargs)
    assert timing["results_computed"] == 0 and timing["results_loaded"] == 8
    np.testing.assert_array_equal(first["pxap"].values, again["pxap"].values)
    np.testing.assert_array_equal(first["sufficiency"].values, again["sufficiency"].values)


def test_a_failed_batch_makes_the_set_value_nan_with_the_reason(tiny_dataset, tiny_model,  # noqa: F811
                                                                 monkeypatch):
    import xaiscore.harness.runner as runner

    original, calls = runner.batch_state, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("out of memory")
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "batch_state", flaky)
    ds = evaluate(tiny_dataset, tiny_model, methods=["Saliency"], metrics=["pxap"], batch_size=8,
                  n_examples=0, on_error="record", metric_options=OPTIONS)
    assert math.isnan(float(ds["pxap"].sel(explainer="Saliency")))
    assert "set-level metric needs every batch" in ds["pxap"].attrs["skipped"]
    assert "RuntimeError: out of memory" in ds["pxap"].attrs["skipped"]


def test_set_summary_table_marks_the_best_in_the_metric_direction(two_batchings):
    table = set_summary_table(two_batchings[3])
    assert set(table["metric"]) == set(SET_METRICS)
    assert (table["n_samples"] == 16).all()
    for metric, rows in table.groupby("metric"):
        finite = rows["value"].dropna()
        if len(finite):
            assert rows.loc[rows["best"], "value"].iloc[0] == finite.max()
