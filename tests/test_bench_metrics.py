"""Smoke test: the metric-class benchmark runs end to end in --quick mode."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_metrics.py"


def test_quick_benchmark_runs(capsys):
    pytest.importorskip("torchmetrics")
    spec = importlib.util.spec_from_file_location("bench_metrics", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--attribution-metrics", "pointing_game", "sparseness"]) == 0
    out = capsys.readouterr().out
    assert "update/kernel" in out and "pointing_game" in out
    assert (
        "set-level, summed statistics: pointing_accuracy" in out
        and "sufficiency + consistency" in out
    )
