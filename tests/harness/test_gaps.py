"""Every NaN of the results has a reason: causes when scoring, the kernel's rule, the gap table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.harness.runner_fixtures import tiny_dataset, tiny_model  # noqa: F401
from xaiscore.harness.gaps import (
    describe_undefined,
    gap_table,
    nan_causes,
    nan_rule,
    unexplained_gaps,
)
from xaiscore.harness.results import build_dataset, metric_variables
from xaiscore.harness.runner import evaluate
from xaiscore.specs import get_metric, list_metrics


def test_nan_causes_first_match_wins():
    a = torch.rand(4, 1, 3, 3)
    a[1] = 0.0  # constant map
    a[2] = 0.5  # constant map, and an empty mask: the mask wins
    mask = torch.ones(4, 1, 3, 3, dtype=torch.bool)
    mask[2] = False
    score = torch.tensor([[float("nan")], [float("nan")], [float("nan")], [0.5]])
    spec = get_metric("relevance_mass_accuracy")  # NaN for an empty mask or a zero total relevance
    causes = nan_causes(spec, {"a": a, "mask": mask}, score, None, None)
    assert causes == {"rule": 1, "empty_mask": 1, "constant_map": 1}
    assert nan_causes(spec, {"a": a, "mask": mask}, torch.ones(4, 1), None, None) == {}
    # the rule of pointing_game speaks of masks only: a constant map is not named as a cause
    causes = nan_causes(get_metric("pointing_game"), {"a": a, "mask": mask}, score, None, None)
    assert causes == {"rule": 2, "empty_mask": 1}


def test_nan_causes_of_a_curve_name_its_x_positions():
    score = torch.tensor([[float("nan")], [1.0]])
    curve = torch.tensor([[[0.5, float("nan"), 0.2]], [[0.1, 0.2, 0.3]]])
    causes = nan_causes(
        get_metric("mprt"), {"a": None}, score, curve, torch.tensor([1.0, 2.0, 3.0])
    )
    assert causes == {"curve": 1, "curve_x": [2.0]}
    text = describe_undefined(causes, "layers randomized")
    assert "undefined at layers randomized = 2" in text and text.endswith(": 1")


def test_every_registered_metric_that_documents_nan_has_a_rule():
    assert nan_rule(get_metric("pointing_game")) == "NaN for an empty mask."
    assert "similarity is undefined" in nan_rule(get_metric("mprt"))
    assert nan_rule(get_metric("smooth_mprt")) == nan_rule(get_metric("mprt"))
    assert "no other sample shares" in nan_rule(get_metric("consistency"))
    for spec in list_metrics():
        rule = nan_rule(spec)
        assert "``" not in rule and ":func:" not in rule, (spec.name, rule)
        assert rule == "" or rule.startswith("NaN"), (spec.name, rule)


def test_gap_table_orders_skipped_errors_and_unexplained():
    nan = np.nan
    ds = build_dataset(
        methods=["a", "b", "c"],
        samples={
            "source_id": ["0", "1", "2", "3"],
            "label": [1, 1, 0, 0],
            "target": [1, 1, 0, 0],
            "prediction": [1, 1, 0, 0],
            "finding": ["x", "x", "", ""],
        },
        scores={"m": {"a": np.array([1.0, 0.5, nan, nan]), "b": np.array([nan, nan, 0.5, nan])}},
        metric_info={"m": {"higher_is_better": True, "nan_rule": "NaN for an empty mask."}},
        skipped={
            "m": {
                "c": "needs ['mask'], which method 'c' cannot supply",
                "b": "failed on 1 of 2 batch(es), first on batch 0: RuntimeError: boom",
            }
        },
        undefined={"m": {"a": {"empty_mask": 2}, "b": {"rule": 1}}},
    )
    table = gap_table(ds).set_index(["method", "kind"])
    assert table.loc[("a", "undefined"), "n_nan"] == 2
    assert "no ground-truth region" in table.loc[("a", "undefined"), "reason"]
    assert "Rule: NaN for an empty mask." in table.loc[("a", "undefined"), "reason"]
    assert table.loc[("b", "error"), "n_nan"] == 2 and table.loc[("b", "undefined"), "n_nan"] == 1
    assert table.loc[("c", "skipped"), "n_nan"] == 4
    assert unexplained_gaps(ds) == []
    ds["m"].attrs["undefined"] = json.dumps({"a": {"empty_mask": 1}, "b": {"rule": 1}})
    assert unexplained_gaps(ds) == [("m", "a")]
    ds["m"].attrs["undefined"] = "null"  # results without reasons (an older version)
    assert ("m", "a") in unexplained_gaps(ds)
    assert (
        "no reason stored"
        in gap_table(ds).set_index(["method", "kind"]).loc[("a", "unexplained"), "reason"]
    )


@pytest.fixture(scope="module")
def run_with_gaps(tiny_dataset, tiny_model):  # noqa: F811
    methods = [
        "Saliency",
        "constant",
        {"method": "LayerGradCam", "layer": "features.6", "name": "GradCAM"},
    ]
    return evaluate(
        tiny_dataset,
        tiny_model,
        methods=methods,
        metrics=["pointing_game", "faithfulness_estimate", "consistency", "mprt"],
        metric_options={
            "faithfulness_estimate": {"features_per_step": 0.25},
            "mprt": {"random_baseline": False},
        },
        batch_size=8,
        n_examples=0,
    )


def test_every_nan_of_a_run_has_a_stored_reason(run_with_gaps):
    ds = run_with_gaps
    assert unexplained_gaps(ds) == []
    table = gap_table(ds)
    for metric in metric_variables(ds):
        missing = ds[metric].isnull().sum("sample").to_series()
        for method, count in missing.items():
            rows = table[(table["metric"] == metric) & (table["method"] == method)]
            assert int(rows["n_nan"].sum()) == int(count), (metric, method)
    negatives = int((ds["finding"] == "No Finding").sum())
    pointing = table[(table["metric"] == "pointing_game")]
    assert set(pointing["n_nan"]) == {negatives} and set(pointing["kind"]) == {"undefined"}
    assert pointing["reason"].str.contains("empty mask").all()
    constant = table[(table["metric"] == "faithfulness_estimate") & (table["method"] == "constant")]
    assert "constant" in constant["reason"].iloc[0]
    consistency = table[table["metric"] == "consistency"]
    assert consistency["reason"].str.contains("no other sample shares").all()
    assert json.loads(ds["pointing_game"].attrs["undefined"])["Saliency"] == {
        "empty_mask": negatives
    }
