"""The command line: metrics, run, report, demo, and one-line errors for bad input."""

from __future__ import annotations

import json

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from xaiscore.harness.cli import main
from xaiscore.harness.results import load_dataset
from xaiscore.specs import list_metrics

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
out = "run"
batch_size = 8
n_examples = 2
methods = ["Saliency", "random"]

[dataset]
kind = "synthetic"
n = 12
size = [24, 24]

[model]
kind = "demo"
train = {{ n = 32, epochs = 1, width = 4 }}

[metrics]
include = {metrics}
options = {{ deletion = {{ features_per_step = 0.25 }} }}
"""


def write_config(folder: Path, metrics: str = '["pointing_game", "sparseness", "deletion"]',
                 **extra: str) -> Path:
    text = CONFIG.format(metrics=metrics)
    for key, value in extra.items():
        text = f"{key} = {value}\n" + text
    path = folder / "config.toml"
    path.write_text(text)
    return path


def test_metrics_lists_the_registry(capsys):
    assert main(["metrics"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["name", "family", "better"]
    assert [line.split()[0] for line in lines[1:]] == [s.name for s in list_metrics()]
    assert main(["metrics", "--family", "robustnes"]) == 2
    assert "family" in capsys.readouterr().err


def test_run_then_report(tmp_path, capsys):
    config = write_config(tmp_path)
    out_dir = tmp_path / "elsewhere"  # --out overrides `out = "run"` of the config
    assert main(["run", str(config), "--no-progress", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert f"Report:  {out_dir / 'report.html'}" in out
    assert "Scored 2 methods x 3 metrics on 12 samples" in out
    assert not (tmp_path / "run").exists()
    ds = load_dataset(out_dir / "results.nc")
    assert sorted(ds["explainer"].values.tolist()) == ["Saliency", "random"]
    assert main(["report", str(out_dir), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "report.html").is_file()


@pytest.mark.parametrize(
    ("metrics", "extra", "message"),
    [
        ('["pointing_gme"]', {}, "Did you mean 'pointing_game'"),
        ('["pointing_game"]', {"batch_sise": "2"}, "unknown key 'batch_sise'"),
    ],
)
def test_bad_configs_end_with_one_line(tmp_path, capsys, metrics, extra, message):
    config = write_config(tmp_path, metrics, **extra)
    assert main(["run", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xaiscore run: error: {config}") and message in err
    assert len(err.strip().splitlines()) == 1


def test_missing_files_are_named(tmp_path, capsys):
    config = tmp_path / "factory.yaml"
    config.write_text(textwrap.dedent("""
        out: run
        model: {kind: factory, factory: "tests.harness.test_models:build_tiny", state_dict: weights/missing.pt}
        metrics: [sparseness]
    """))  # noqa: E501
    assert main(["run", str(config)]) == 2
    assert f"{tmp_path / 'weights' / 'missing.pt'}' does not exist" in capsys.readouterr().err
    maps = tmp_path / "maps.yaml"
    maps.write_text(textwrap.dedent("""
        out: run
        model: {kind: factory, factory: "tests.harness.test_models:build_tiny"}
        dataset: {kind: synthetic, n: 4, size: [16, 16]}
        methods: [{method: precomputed, name: mine, path: nowhere.pt}]
        metrics: [sparseness]
    """))
    assert main(["run", str(maps)]) == 2
    assert "nowhere.pt' does not exist" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "no-run")]) == 2
    assert "no-run' does not exist" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "absent.toml")]) == 2


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "xaiscore", "--version"], cwd=ROOT,
                          capture_output=True, text=True,
                          check=True)
    assert done.stdout.startswith("xaiscore ")


def test_demo_prints_its_config_and_runs_small(tmp_path, capsys):
    import yaml

    from xaiscore.harness.config import parse_config

    assert main(["demo", "--print-config", "--out", str(tmp_path / "demo")]) == 0
    raw = yaml.safe_load(capsys.readouterr().out)
    config = parse_config(raw)
    assert {"Saliency", "random", "constant", "GradCAM"} <= {m.name for m in config.methods}
    assert config.metrics.include == "all"
    assert main(["demo", "--out", str(tmp_path / "demo"), "--samples", "8", "--size", "24",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"Report:  {tmp_path / 'demo' / 'report.html'}" in out
    ds = load_dataset(tmp_path / "demo" / "results.nc")
    from xaiscore.harness.results import metric_variables
    from xaiscore.harness.set_results import set_metric_variables

    from xaiscore.harness.mosaic_data import mosaic_metric_variables

    # per-sample, set-level and mosaic metrics: every registered metric, none skipped
    mosaic = {s.name for s in list_metrics() if "tiles" in s.needs}
    assert set(mosaic_metric_variables(ds)) == mosaic == {"grid_pointing_game", "focus"}
    scored = set(metric_variables(ds)) | set(set_metric_variables(ds)) | mosaic
    assert scored == {s.name for s in list_metrics()}
    assert json.loads(ds.attrs["skipped"]) == {}
    # the mosaic metrics on the CNN's 2 x 2 mosaics (chance 1/4 and 1/2); the ViT's position
    # embeddings fix its input size, so its methods are skipped with the reason
    for metric, chance in (("grid_pointing_game", 0.25), ("focus", 0.5)):
        assert ds[metric].attrs["chance_level"] == chance
        assert ds.sizes[f"{metric}_mosaic"] == 8
        for explainer in ("cnn/Saliency", "cnn/GradCAM", "cnn/random"):
            assert np.isfinite(ds[metric].sel(explainer=explainer).values).all(), explainer
        reasons = json.loads(ds[metric].attrs["skipped"])
        assert "cannot take" in reasons["vit/rollout"] and "cnn/GradCAM" not in reasons
    assert set(set_metric_variables(ds)) == {s.name for s in list_metrics(scope="set")}
    # the demo model learned the task
    assert float((ds["prediction"] == ds["label"]).mean()) >= 0.75
    # the ViT beside the CNN, scored through the re-explaining metrics too (issue 22)
    explainers = set(ds["explainer"].values.tolist())
    assert {"cnn/GradCAM", "vit/rollout", "vit/chefer", "vit/RISE", "vit/random"} <= explainers
    for metric in ("max_sensitivity", "relative_input_stability", "mprt", "smooth_mprt",
                   "efficient_mprt", "random_logit"):
        for explainer in ("vit/rollout", "vit/chefer", "vit/RISE"):
            values = ds[metric].sel(explainer=explainer).values
            assert np.isfinite(values).any(), (metric, explainer)
