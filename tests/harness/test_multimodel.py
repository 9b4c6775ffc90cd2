"""Runs that compare several models: the [models] table, one results file, the report grouped by
model; single-model results files stay as they were."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xaiscore._checks import OptionError
from xaiscore.harness.config import ConfigError, parse_config
from xaiscore.harness.multimodel import combine_model_results, sub_config
from xaiscore.harness.report_models import model_groups
from xaiscore.harness.results import build_dataset, load_dataset, metric_variables, save_dataset

SAMPLES = {"source_id": ["a", "b", "c"], "label": [1, 0, 1], "finding": ["x", "", "x"]}


def _part(methods, prediction, *, scores=None, skipped=None, curve_steps=2, probability=0.75,
          samples=SAMPLES):
    n = len(samples["label"])
    scores = scores or {"m": {k: np.arange(n, dtype=float) + i for i, k in enumerate(methods)}}
    return build_dataset(
        methods=methods,
        samples={**samples, "target": samples["label"], "prediction": prediction},
        scores=scores,
        curves={"m": {k: np.ones((n, curve_steps)) for k in methods}},
        curve_x={"m": np.arange(1, curve_steps + 1, dtype=float)},
        metric_info={"m": {"higher_is_better": True, "family": "localization"}},
        skipped=skipped,
        probabilities=np.tile([1 - probability, probability], (n, 1)),
        attrs={"methods": {k: {"method": k} for k in methods}},
    )


def test_two_models_share_the_explainer_dimension_with_model_coordinates(tmp_path):
    cnn = _part(["gradcam", "random"], [1, 0, 1], curve_steps=2)
    vit = _part(["rollout", "random"], [1, 1, 1], curve_steps=3, probability=0.6,
                scores={"m": {"rollout": np.ones(3), "random": np.zeros(3)},
                        "only_vit": {"rollout": np.ones(3)}},
                skipped={"only_vit": {"random": "needs the model"},
                         "never": {"rollout": "no way"}})
    ds = combine_model_results({"cnn": cnn, "vit": vit})
    assert ds["explainer"].values.tolist() == ["cnn/gradcam", "cnn/random", "vit/rollout",
                                               "vit/random"]
    assert ds["model"].values.tolist() == ["cnn", "cnn", "vit", "vit"]
    assert ds["method_name"].values.tolist() == ["gradcam", "random", "rollout", "random"]
    assert model_groups(ds) == [("cnn", ["cnn/gradcam", "cnn/random"]),
                                ("vit", ["vit/rollout", "vit/random"])]
    # scores kept per model; a metric one model lacks is NaN for the other's methods
    np.testing.assert_array_equal(ds["m"].sel(explainer="cnn/random").values, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(ds["m"].sel(explainer="vit/rollout").values, np.ones(3))
    assert np.isnan(ds["only_vit"].sel(explainer="cnn/gradcam").values).all()
    assert json.loads(ds["only_vit"].attrs["skipped"]) == {"vit/random": "needs the model"}
    assert json.loads(ds.attrs["skipped"]) == {"never": {"vit/rollout": "no way"}}
    # a curve with model-dependent steps (MPRT: one per layer): the union, NaN past the CNN's
    assert ds["m_step"].values.tolist() == [1.0, 2.0, 3.0]
    curve = ds["m_curve"].sel(explainer="cnn/gradcam").values
    assert np.isfinite(curve[:, :2]).all() and np.isnan(curve[:, 2]).all()
    # per-model sample coordinates; the plain ones are the first model's
    assert ds["model_prediction"].sel(models="vit").values.tolist() == [1, 1, 1]
    assert ds["prediction"].values.tolist() == [1, 0, 1]
    np.testing.assert_allclose(ds["model_probabilities"].sel(models="vit").values[:, 1], 0.6)
    assert json.loads(ds.attrs["methods"])["vit/rollout"] == {"method": "rollout"}
    assert metric_variables(ds) == ["m", "only_vit"]
    loaded = load_dataset(save_dataset(ds, tmp_path / "results.nc"))
    assert loaded["model"].values.tolist() == ds["model"].values.tolist()
    assert model_groups(loaded) == model_groups(ds)
    np.testing.assert_array_equal(loaded["model_prediction"].values, ds["model_prediction"].values)


def test_results_of_different_samples_are_refused():
    cnn = _part(["a"], [1, 0, 1])
    other = cnn.assign_coords(source_id=("sample", np.array(["a", "b", "z"], dtype=object)))
    with pytest.raises(OptionError, match="same samples"):
        combine_model_results({"cnn": cnn, "vit": other})
    with pytest.raises(OptionError, match="at least one model"):
        combine_model_results({})


def test_the_report_groups_the_methods_by_model_and_checks_each_model(tmp_path):
    from xaiscore.harness.report import write_report

    labels = [1, 0] * 10
    samples = {"source_id": [str(i) for i in range(20)], "label": labels, "finding": ["x"] * 20}
    cnn = _part(["gradcam", "random"], labels, samples=samples)
    # always predicts class 0: at chance
    vit = _part(["rollout"], [0] * 20, probability=0.2, samples=samples)
    ds = combine_model_results({"cnn": cnn, "vit": vit})
    page = write_report(ds, tmp_path, n_boot=20).read_text()
    assert page.count('<tr class="models">') == 1  # the scoreboard (no example images here)
    assert 'colspan="2">model cnn</th>' in page and 'colspan="1">model vit</th>' in page
    assert "<h3>Model cnn</h3>" in page and "<h3>Model vit</h3>" in page
    cnn_part, vit_part = page.split("<h3>Model vit</h3>")[0].split("<h3>Model cnn</h3>")[1], \
        page.split("<h3>Model vit</h3>")[1].split("<h2>")[0]
    assert 'role="alert"' in vit_part and 'role="alert"' not in cnn_part
    assert "no winner: model at chance" in page  # one model at chance: no method is named best
    assert ">rollout</th>" in page
    # a single-model results file: the report as before
    single = write_report(_part(["gradcam", "random"], [1, 0, 1]), tmp_path / "one", n_boot=20)
    text = single.read_text()
    assert 'class="models"' not in text and "<h3>Model" not in text


@pytest.mark.parametrize(("raw", "message"), [
    ({"model": {}, "models": {"a": {}}}, "either `model`"),
    ({"models": {}}, "at least one model"),
    ({"models": {"a/b": {}}}, "without '/'"),
    ({"models": {"a": {"kind": "factory", "factory": "m:f", "architecture": "vit"}}},
     r"`models.a.architecture` picks a demo network"),
    ({"models": {"a": {"architecture": "resnet"}}}, r"`models.a.architecture` to be one of"),
    ({"models": {"a": {"kwargs": 3}}}, r"`models.a.kwargs` to be a table"),
    ({"models": {"a": {}}, "methods": [{"method": "random", "models": ["b"]}]},
     r"unknown model\(s\) \['b'\] in `methods\[0\].models`"),
    ({"models": {"a": {}, "b": {}}, "methods": [{"method": "random", "models": ["a"]}]},
     "no method explains model 'b'"),
    ({"methods": [{"method": "random", "models": ["a"]}]}, "has a single `model`"),
])
def test_bad_model_tables_are_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_each_model_runs_its_own_methods_in_its_own_folder():
    config = parse_config({
        "out": "runs/two",
        "models": {"cnn": {"train": {"epochs": 1}},
                   "vit": {"architecture": "vit", "kwargs": {"dim": 16},
                           "explainer_options": {"attention_modules": "*attn_drop"}}},
        "methods": [{"method": "AttentionRollout", "name": "rollout", "models": ["vit"]},
                    {"method": "LayerGradCam", "layer": "features.6", "models": ["cnn"]},
                    "random"],
    })
    cnn, vit = sub_config(config, "cnn"), sub_config(config, "vit")
    assert [m.name for m in cnn.methods] == ["LayerGradCam", "random"]
    assert [m.name for m in vit.methods] == ["rollout", "random"]
    assert vit.methods[0].options["attention_modules"] == "*attn_drop"
    assert vit.out.endswith("runs/two/models/vit") and not vit.models and not vit.report
    assert vit.model.architecture == "vit" and dict(vit.model.kwargs) == {"dim": 16}


def test_a_two_model_run_end_to_end_and_resumed(tmp_path):
    from xaiscore.harness.runner import run_config

    raw = {
        "out": str(tmp_path / "run"), "batch_size": 4, "n_examples": 2, "on_error": "raise",
        "dataset": {"kind": "synthetic", "n": 4, "size": [16, 16]},
        "models": {"cnn": {"train": {"n": 32, "epochs": 1, "width": 2}},
                   "vit": {"architecture": "vit", "kwargs": {"dim": 8, "depth": 1, "heads": 2,
                                                             "stem_channels": 2},
                           "train": {"n": 32, "epochs": 1}}},
        "methods": [{"method": "AttentionRollout", "name": "rollout", "models": ["vit"]},
                    {"method": "Saliency", "models": ["cnn"]}, "random"],
        "metrics": {"include": ["pointing_game", "max_sensitivity", "mprt"],
                    "options": {"max_sensitivity": {"n_samples": 2},
                                "mprt": {"random_baseline": False}}},
    }
    timing: dict = {}
    ds = run_config(parse_config(raw), timing=timing)
    assert ds["explainer"].values.tolist() == ["cnn/Saliency", "cnn/random", "vit/rollout",
                                               "vit/random"]
    assert np.isfinite(ds["mprt"].values).all() and np.isfinite(ds["max_sensitivity"].values).all()
    # the CNN has fewer layers than the ViT: its MPRT curve stops earlier
    assert ds.sizes["mprt_step"] > 4
    assert ds["example_attribution"].sizes["explainer"] == 4
    assert (tmp_path / "run" / "models" / "vit" / "model.pt").is_file()
    saved = load_dataset(tmp_path / "run" / "results.nc")
    assert saved["model"].values.tolist() == ["cnn", "cnn", "vit", "vit"]
    config_attr = json.loads(saved.attrs["config"])
    assert [m["name"] for m in config_attr["methods"]] == saved["explainer"].values.tolist()
    page = (tmp_path / "run" / "report.html").read_text()
    assert page.count('<tr class="models">') == 2  # scoreboard and example grid
    assert timing["results_computed"] == 12
    again: dict = {}
    resumed = run_config(parse_config(raw), timing=again)
    assert again["results_computed"] == 0 and again["results_loaded"] == 12
    np.testing.assert_array_equal(resumed["mprt"].values, ds["mprt"].values)
