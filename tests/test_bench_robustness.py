"""Smoke test: the robustness benchmark runs end to end in --quick mode."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_robustness.py"


def test_quick_benchmark_runs(capsys):
    pytest.importorskip("captum")
    spec = importlib.util.spec_from_file_location("bench_robustness", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--no-quantus", "--metrics", "max_sensitivity", "continuity"]) == 0
    out = capsys.readouterr().out
    assert "ours/floor" in out and "max_sensitivity" in out and "continuity" in out


def test_quick_benchmark_of_the_wide_cnn(capsys):
    pytest.importorskip("captum")
    spec = importlib.util.spec_from_file_location("bench_robustness", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--no-quantus", "--models", "wide_cnn", "--metrics",
                        "relative_representation_stability"]) == 0
    out = capsys.readouterr().out
    assert "wide CNN: explainer's best batch size" in out and "small CNN" not in out
    assert out.count("\nrelative_representation_stability ") == 1
