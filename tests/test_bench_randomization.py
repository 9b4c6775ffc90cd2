"""Smoke test of benchmarks/bench_randomization.py in --quick mode (tiny sizes, seconds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_randomization.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_randomization", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_both_models_and_every_metric(capsys):
    pytest.importorskip("captum")
    bench = load_bench()
    assert bench.main(["--quick", "--no-quantus"]) == 0
    out = capsys.readouterr().out
    assert "small CNN (3 parameterised layers)" in out and "linear (1 parameterised layers)" in out
    for name in bench.METRICS:
        assert out.count(f"\n{name} ") == 2
    assert "ours/floor" in out and "quantus" not in out.split("\n", 2)[2]


@pytest.mark.quantus
def test_quick_run_against_quantus(capsys, quantus_module):
    pytest.importorskip("captum")
    bench = load_bench()
    assert bench.main(["--quick", "--metrics", "mprt", "efficient_mprt"]) == 0
    out = capsys.readouterr().out
    assert out.count("quantus/ours") == 2
    assert out.count("\nmprt ") == 2 and out.count("\nefficient_mprt ") == 2


def test_quick_run_of_the_wide_cnn_alone(capsys):
    pytest.importorskip("captum")
    bench = load_bench()
    assert bench.main(["--quick", "--no-quantus", "--models", "wide_cnn", "--metrics", "mprt"]) == 0
    out = capsys.readouterr().out
    assert "wide CNN (4 parameterised layers)" in out and "small CNN" not in out
    assert out.count("\nmprt ") == 1
