"""Smoke test: the faithfulness part 2 benchmark runs in --quick mode, so it never rots."""

from __future__ import annotations

import importlib.util
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "bench_faithfulness_part2.py")


@pytest.mark.quantus
def test_quick_benchmark_runs_every_section(capsys):
    pytest.importorskip("quantus")
    spec = importlib.util.spec_from_file_location("bench_faithfulness_part2", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick", "--metrics", "road", "faithfulness_correlation", "completeness"]) == 0
    out = capsys.readouterr().out
    assert "Model-work floor" in out and "ours/floor" in out
    assert "Against Quantus 0.6.0" in out and "speed-up" in out
    for name in ("road", "faithfulness_correlation", "completeness"):
        assert out.count(name) >= 2
