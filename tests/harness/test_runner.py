"""The runner: parity with the kernels, chunk invariance, skips, errors, resume after a failure or a
kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from tests.harness.runner_fixtures import FAST_OPTIONS, tiny_dataset, tiny_model  # noqa: F401
from xaiscore import specs
from xaiscore.explainers import captum_explainer
from xaiscore.functional import pointing_game, relevance_mass_accuracy, sparseness
from xaiscore.functional.faithfulness import deletion
from xaiscore.harness.config import ConfigError
from xaiscore.harness.data import collate
from xaiscore.harness.runner import evaluate
from xaiscore.harness.results import load_dataset

ROOT = Path(__file__).resolve().parents[2]

CALLS: list[int] = []
FAIL_AT: dict[str, int | None] = {"call": None}


def counting_metric(a, *, validate=True):
    """A test metric: mean |a| per sample; counts its calls and fails on call ``FAIL_AT['call']``.
    """
    CALLS.append(a.shape[0])
    if FAIL_AT["call"] is not None and len(CALLS) == FAIL_AT["call"]:
        raise RuntimeError("injected failure")
    time.sleep(float(os.environ.get("XAISCORE_TEST_METRIC_SLEEP", "0")))
    return a.flatten(1).abs().mean(1)


def broken_metric(a, *, validate=True):
    raise ValueError("this metric always fails")


@pytest.fixture
def test_metrics(monkeypatch):
    """Register the test metrics for one test (the registry is restored afterwards)."""
    for name, function in (("counting_metric", "counting_metric"),
                           ("broken_metric", "broken_metric")):
        spec = specs.MetricSpec(name=name, function=f"tests.harness.test_runner:{function}",
                                family="complexity",
                                higher_is_better=True, needs=frozenset({"a"}), stochastic=False,
                                citation="test")
        monkeypatch.setitem(specs._REGISTRY, name, spec)
    CALLS.clear()
    FAIL_AT["call"] = None
    yield
    CALLS.clear()
    FAIL_AT["call"] = None


def test_scores_match_the_kernels_called_directly(tiny_dataset, tiny_model):
    ds = evaluate(tiny_dataset, tiny_model, methods=["Gradient", "random"],
                  metrics=["pointing_game", "relevance_mass_accuracy", "sparseness", "deletion"],
                  metric_options=FAST_OPTIONS, batch_size=16)
    batch = collate([tiny_dataset[i] for i in range(len(tiny_dataset))])
    a = captum_explainer(tiny_model, "Gradient")(batch.x, batch.labels)
    gradient = ds.sel(explainer="Gradient")
    np.testing.assert_allclose(gradient["pointing_game"], pointing_game(a, batch.mask).numpy(),
                               equal_nan=True)
    np.testing.assert_allclose(gradient["relevance_mass_accuracy"],
                               relevance_mass_accuracy(a, batch.mask).numpy(), rtol=1e-5,
                               equal_nan=True)
    np.testing.assert_allclose(gradient["sparseness"], sparseness(a).numpy(), rtol=1e-5)
    curve = deletion(tiny_model, batch.x, a, batch.labels, features_per_step=0.125)
    np.testing.assert_allclose(gradient["deletion"], curve.score.numpy(), rtol=1e-5)
    np.testing.assert_allclose(gradient["deletion_curve"], curve.curve.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ds["deletion_step"], curve.x.numpy())
    assert ds["source_id"].values.tolist() == batch.source_ids
    assert ds["label"].values.tolist() == batch.labels.tolist()
    assert ds["finding"].values.tolist() == batch.findings
    assert ds["prediction"].values.tolist() == tiny_model(batch.x).argmax(1).tolist()
    # the random baseline is something else
    assert not np.allclose(ds.sel(explainer="random")["sparseness"], gradient["sparseness"])
    # example images: positives first, with the maps of every method
    assert ds.sizes["example"] == 6 and ds["example_attribution"].dims == ("explainer", "example",
                                                                           "y", "x")
    positives = [i for i in range(len(tiny_dataset)) if tiny_dataset[i].boxes.shape[0] > 0]
    assert ds["example"].values.tolist() == positives[:6]


def test_results_do_not_depend_on_batching(tiny_dataset, tiny_model):
    metrics = ["pointing_game", "relevance_mass_accuracy", "sparseness", "deletion"]
    whole = evaluate(tiny_dataset, tiny_model, methods=["Gradient", "constant"], metrics=metrics,
                     metric_options=FAST_OPTIONS, batch_size=16, max_batch_size=64, n_examples=0)
    split = evaluate(tiny_dataset, tiny_model, methods=["Gradient", "constant"], metrics=metrics,
                     metric_options=FAST_OPTIONS, batch_size=5, max_batch_size=3, n_examples=0)
    xr.testing.assert_allclose(whole.drop_attrs(), split.drop_attrs())


def test_target_repeats_and_skips(tiny_dataset, tiny_model, tmp_path):
    maps = {tiny_dataset[i].source_id: torch.ones(1, 32, 32) for i in range(len(tiny_dataset))}
    torch.save(maps, tmp_path / "ones.pt")
    ds = evaluate(tiny_dataset, tiny_model,
                  methods=["Saliency", {"method": "precomputed", "name": "ones",
                                                                   "path": str(tmp_path / "ones.pt")}],  # noqa: E501
                  metrics=["sparseness", "max_sensitivity", "mst_compactness"],
                  metric_options=FAST_OPTIONS,
                  target="predicted", repeats=2, batch_size=8, n_examples=0)
    assert ds["target"].values.tolist() == ds["prediction"].values.tolist()
    assert ds["max_sensitivity"].dims == ("explainer", "sample", "run")
    saliency = ds["max_sensitivity"].sel(explainer="Saliency")
    assert not np.allclose(saliency.isel(run=0), saliency.isel(run=1))
    # deterministic metrics are not repeated
    assert ds["sparseness"].dims == ("explainer", "sample")
    assert (ds["sparseness"].sel(explainer="ones") == 0).all()
    reasons = json.loads(ds["max_sensitivity"].attrs["skipped"])
    assert list(reasons) == ["ones"] and "explain_fn" in reasons["ones"]
    assert ds["max_sensitivity"].sel(explainer="ones").isnull().all()


def test_metric_errors_are_raised_or_recorded(tiny_dataset, tiny_model, test_metrics):
    with pytest.raises(ValueError, match="always fails") as error:
        evaluate(tiny_dataset, tiny_model, methods=["random"], metrics=["broken_metric"],
                 batch_size=8)
    assert "broken_metric" in "".join(getattr(error.value, "__notes__", []))
    ds = evaluate(tiny_dataset, tiny_model, methods=["random"],
                  metrics=["broken_metric", "sparseness"],
                  batch_size=8, on_error="record")
    assert ds["broken_metric"].isnull().all()
    reason = json.loads(ds["broken_metric"].attrs["skipped"])["random"]
    assert ("failed on 2 of 2 batch(es)" in reason
            and "ValueError: this metric always fails" in reason)
    assert ds["sparseness"].notnull().all()


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*.pt")}


def test_resume_after_a_failure_recomputes_nothing_finished(tiny_dataset, tiny_model, test_metrics,
                                                            tmp_path):
    kwargs = dict(methods=["Gradient", "random"], metrics=["pointing_game", "counting_metric"],
                  batch_size=4)
    reference = evaluate(tiny_dataset, tiny_model, out=tmp_path / "reference", **kwargs)
    assert len(CALLS) == 8  # 4 batches x 2 methods
    CALLS.clear()
    FAIL_AT["call"] = 5  # batches 0 and 1 finish, batch 2 fails on its first method
    with pytest.raises(RuntimeError, match="injected failure"):
        evaluate(tiny_dataset, tiny_model, out=tmp_path / "run", **kwargs)
    assert not (tmp_path / "run" / "results.nc").exists()
    finished = mtimes(tmp_path / "run" / "shards")
    assert sum("counting_metric" in name for name in finished) == 4
    CALLS.clear()
    FAIL_AT["call"] = None
    resumed = evaluate(tiny_dataset, tiny_model, out=tmp_path / "run", **kwargs)
    assert len(CALLS) == 4  # only batches 2 and 3
    after = mtimes(tmp_path / "run" / "shards")
    assert all(after[name] == stamp for name, stamp in finished.items())
    xr.testing.assert_identical(resumed, reference)
    xr.testing.assert_identical(load_dataset(tmp_path / "run" / "results.nc"), reference)
    # a finished run loads everything
    CALLS.clear()
    again = evaluate(tiny_dataset, tiny_model, out=tmp_path / "run", **kwargs)
    assert CALLS == [] and again.equals(reference)
    # a run with other settings in the same folder is refused, or started over on request
    with pytest.raises(ConfigError, match="batch_size: 4 then, 8 now"):
        evaluate(tiny_dataset, tiny_model, out=tmp_path / "run", **{**kwargs, "batch_size": 8})
    fresh = evaluate(tiny_dataset, tiny_model, out=tmp_path / "run", resume=False,
                     **{**kwargs, "batch_size": 8})
    assert len(CALLS) == 4 and fresh.attrs["batch_size"] == 8
    deterministic = ["pointing_game", "counting_metric"]  # the random maps are seeded per batch
    xr.testing.assert_allclose(fresh[deterministic].sel(explainer="Gradient"),
                               reference[deterministic].sel(explainer="Gradient"))


KILL_SCRIPT = textwrap.dedent("""
    import sys
    from xaiscore import specs
    from xaiscore.harness.data import make_synthetic_dataset
    from xaiscore.harness.models import SmallCNN
    from xaiscore.harness.runner import evaluate
    specs.register(specs.MetricSpec(
        name="counting_metric", function="tests.harness.test_runner:counting_metric", family="complexity",
        higher_is_better=True, needs=frozenset({"a"}), stochastic=False, citation="test"))
    model = SmallCNN(1, 2, width=4).eval()
    evaluate(make_synthetic_dataset(16, size=(32, 32), seed=3), model, methods=["Gradient", "random"],
             metrics=["sparseness", "counting_metric"], batch_size=2, out=sys.argv[1])
""")  # noqa: E501


def test_resume_after_a_kill_equals_an_uninterrupted_run(test_metrics, tmp_path):
    from xaiscore.harness.data import make_synthetic_dataset
    from xaiscore.harness.models import SmallCNN

    out = tmp_path / "killed"
    env = {**os.environ, "XAISCORE_TEST_METRIC_SLEEP": "0.3", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(out)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while len(list(out.glob("shards/*/*/counting_metric.pt"))) < 3:
            if process.poll() is not None:
                pytest.fail(
                    f"the run ended before it was killed: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the run wrote no shards in time")
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert not (out / "results.nc").exists()
    finished = mtimes(out / "shards")
    done = sum("counting_metric" in name for name in finished)
    assert 3 <= done < 16
    kwargs = dict(methods=["Gradient", "random"], metrics=["sparseness", "counting_metric"],
                  batch_size=2)
    data = make_synthetic_dataset(16, size=(32, 32), seed=3)
    model = SmallCNN(1, 2, width=4).eval()
    resumed = evaluate(data, model, out=out, **kwargs)
    assert len(CALLS) == 16 - done
    after = mtimes(out / "shards")
    assert all(after[name] == stamp for name, stamp in finished.items())
    CALLS.clear()
    uninterrupted = evaluate(data, model, out=tmp_path / "uninterrupted", **kwargs)
    assert len(CALLS) == 16
    xr.testing.assert_identical(resumed, uninterrupted)


def test_records_that_fail_to_load_are_skipped_and_listed(tiny_dataset, tiny_model,  # noqa: F811
                                                           tmp_path):
    from xaiscore.harness.data import DatasetError, Skip

    class Flaky:
        class_names = tiny_dataset.class_names
        on_error = "skip"
        skipped = [Skip("labels.csv", 7, "unknown finding 'Foo'")]  # left out by the reader

        def __len__(self):
            return 6

        def __getitem__(self, i):
            if i in (0, 3):  # record 0 too: run.json is written without loading it
                raise DatasetError("corrupt PNG", file=f"img{i}.png")
            return tiny_dataset[i]

    ds = evaluate(Flaky(), tiny_model, methods=["random"], metrics=["sparseness"], batch_size=4,
                  n_examples=0, out=tmp_path / "run")
    assert ds["sample"].values.tolist() == [1, 2, 4, 5]
    expected = [{"file": "labels.csv", "row": 7, "reason": "unknown finding 'Foo'", "index": None},
                {"file": "img0.png", "row": None, "reason": "corrupt PNG", "index": 0},
                {"file": "img3.png", "row": None, "reason": "corrupt PNG", "index": 3}]
    assert json.loads(ds.attrs["skipped_samples"]) == expected
    stored = load_dataset(tmp_path / "run" / "results.nc")
    assert json.loads(stored.attrs["skipped_samples"]) == expected
    Flaky.on_error = "raise"
    with pytest.raises(DatasetError, match="img0.png"):
        evaluate(Flaky(), tiny_model, methods=["random"], metrics=["sparseness"], batch_size=4,
                 n_examples=0)
