"""Smoke test: the Quantus drop-in benchmark runs in --quick mode, so it never rots."""

from __future__ import annotations

import importlib.util
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "bench_quantus_compat.py")


@pytest.mark.quantus
def test_quick_benchmark_runs(capsys):
    pytest.importorskip("quantus")
    spec = importlib.util.spec_from_file_location("bench_quantus_compat", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    names = ["AUC", "PixelFlipping", "MaxSensitivity", "MPRT"]
    assert bench.main(["--quick", "--metrics", *names]) == 0
    out = capsys.readouterr().out
    assert "Against Quantus 0.6.0" in out and "speed-up" in out and "max |diff|" in out
    for name in names:
        assert out.count(name) == 1
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["AUC"], ["PixelFlipping"])]
    for row in rows:
        assert float(row[-1]) < 1e-4  # deterministic classes agree with Quantus in the same run
