"""Smoke test: the meta-evaluation benchmark runs end to end in --quick mode."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_meta.py"


def test_quick_benchmark_runs(capsys):
    pytest.importorskip("captum")
    spec = importlib.util.spec_from_file_location("bench_meta", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--no-metaquantus", "--estimators", "sparseness"]) == 0
    out = capsys.readouterr().out
    assert "ours_s" in out and "sparseness" in out and "K=2" in out
