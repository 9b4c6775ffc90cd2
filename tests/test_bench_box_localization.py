"""Smoke test: the box-localization benchmark runs end to end in --quick mode (and its loop agrees)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_box_localization.py"


def test_quick_benchmark_runs(capsys):
    pytest.importorskip("scipy")
    spec = importlib.util.spec_from_file_location("bench_box_localization", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick"]) == 0  # raises if the kernel and the protocol loop disagree
    out = capsys.readouterr().out
    assert "speed-up" in out and "2-D B=4 32x32" in out and "3-D B=2 12^3" in out and "v2" in out
