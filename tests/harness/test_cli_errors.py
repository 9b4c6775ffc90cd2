"""Every user error of the command line ends in one line on stderr and exit status 2."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest
import torch

from tests.harness.runner_fixtures import tiny_dataset, tiny_model  # noqa: F401
from tests.harness.test_cli import write_config
from xaiscore.harness.cli import main
from xaiscore.harness.results import load_dataset


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"xaiscore {command}: error: ")
    return err


@pytest.fixture(scope="module")
def results_file(tmp_path_factory, tiny_dataset, tiny_model):  # noqa: F811
    from xaiscore.harness.runner import evaluate

    out = tmp_path_factory.mktemp("results")
    evaluate(
        tiny_dataset,
        tiny_model,
        methods=["random", "constant"],
        metrics=["sparseness", "pointing_game"],
        out=out,
        n_examples=0,
    )
    return out / "results.nc"


def test_an_unknown_win_metric(results_file, tmp_path, capsys):
    assert (
        main(["report", str(results_file), "--out", str(tmp_path), "--win-metric", "pointing_gam"])
        == 2
    )
    err = one_line_error(capsys, "report")
    assert "'pointing_gam'" in err and "Did you mean 'pointing_game'" in err
    assert not (tmp_path / "report.html").exists()
    assert (
        main(["report", str(results_file), "--out", str(tmp_path), "--win-metric", "pointing_game"])
        == 0
    )


def test_a_results_file_that_is_not_netcdf(tmp_path, capsys):
    garbage = tmp_path / "results.nc"
    garbage.write_text("not a netCDF file")
    assert main(["report", str(garbage)]) == 2
    assert "cannot be read" in one_line_error(capsys, "report")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_cuda_device_without_cuda(tmp_path, capsys, device):
    config = write_config(tmp_path, '["sparseness"]')
    assert main(["run", str(config), "--device", device, "--no-progress"]) == 2
    err = one_line_error(capsys, "run")
    assert "Use --device cpu" in err
    assert not (tmp_path / "run").exists()  # refused before any work


def test_a_device_name_torch_does_not_know(tmp_path, capsys):
    config = write_config(tmp_path, '["sparseness"]')
    assert main(["run", str(config), "--device", "gpu0", "--no-progress"]) == 2
    assert "Expected a device such as 'cpu'" in one_line_error(capsys, "run")


FACTORY_CONFIG = """
out: run
batch_size: 4
methods: [random]
dataset: {{kind: synthetic, n: 4, size: [16, 16]}}
model: {{kind: factory, factory: "{factory}"}}
metrics: [sparseness]
report: false
"""


def test_a_factory_module_next_to_the_config_is_found(tmp_path, capsys):
    name = f"factory_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent("""
        import torch

        def build():
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 2))
    """)
    )
    config = tmp_path / "config.yaml"
    config.write_text(FACTORY_CONFIG.format(factory=f"{name}:build"))
    assert main(["run", str(config), "--no-progress"]) == 0
    assert (tmp_path / "run" / "results.nc").is_file()


def test_a_factory_module_that_cannot_be_found_says_where_modules_are_looked_up(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(FACTORY_CONFIG.format(factory="no_such_module_anywhere:build"))
    assert main(["run", str(config), "--no-progress"]) == 2
    err = one_line_error(capsys, "run")
    assert "Python's import path" in err and f"the config's folder '{tmp_path}'" in err


def test_a_missing_attributions_file_is_found_before_any_work(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent("""
        out: run
        dataset: {kind: synthetic, n: 4, size: [16, 16]}
        model: {kind: demo, train: {n: 512, epochs: 50}}
        methods: [{method: precomputed, name: mine, path: maps/missing.pt}]
        metrics: [sparseness]
    """)
    )
    assert main(["run", str(config), "--no-progress"]) == 2
    err = one_line_error(capsys, "run")
    assert "methods[0].path" in err and f"{tmp_path / 'maps' / 'missing.pt'}' does not exist" in err
    assert not (tmp_path / "run").exists()  # the demo model was not trained first


def test_the_summary_counts_skipped_rows(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        Image.fromarray((np.random.default_rng(i).random((16, 16)) * 255).astype(np.uint8)).save(
            images / f"{i}.png"
        )
    (images / "3.png").write_bytes(b"corrupt")
    (tmp_path / "Data_Entry_2017.csv").write_text(
        "Image Index,Finding Labels\n0.png,No Finding\n1.png,Nodule\n2.png,Unknown Finding\n"
        "3.png,Nodule\n"
        "4.png,Nodule\n"
    )
    (tmp_path / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n1.png,Nodule,2,2,4,4\n2.png,Foo,2,2,4,4\n"
        "3.png,Nodule,2,2,4,4\n5.png,Nodule,2,2,4,4\n"
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent("""
        out: run
        batch_size: 2
        methods: [random]
        dataset: {kind: nih, root: ., class_names: ["No Finding", "Nodule"], on_error: skip,
                  negatives: true}
        model: {kind: factory, factory: "tests.harness.test_models:build_tiny"}
        metrics: [sparseness]
        report: false
    """)
    )
    code = main(["run", str(config), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    skipped = json.loads(load_dataset(tmp_path / "run" / "results.nc").attrs["skipped_samples"])
    assert [(Path(s["file"]).name, s["row"], s["reason"].split(" ")[0]) for s in skipped] == [
        ("BBox_List_2017.csv", 3, "unknown"),
        ("BBox_List_2017.csv", 5, "image"),
        ("3.png", None, "cannot"),
    ]
    assert skipped[2]["index"] is not None
    assert "3 dataset row(s) or sample(s) skipped" in captured.err
