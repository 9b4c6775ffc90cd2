"""Smoke test: the faithfulness benchmark runs in --quick mode, so it never rots."""

from __future__ import annotations

import importlib.util
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "bench_faithfulness.py")


@pytest.mark.quantus
def test_quick_benchmark_runs_every_section(capsys):
    pytest.importorskip("quantus")
    spec = importlib.util.spec_from_file_location("bench_faithfulness", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # The memory table spawns a fresh interpreter per setting (slow to import torch on a busy machine):
    # its child is exercised in-process instead.
    assert bench.main(["--quick", "--metrics", "pixel_flipping", "--no-memory"]) == 0
    bench.memory_child(2, 16, 2)
    out = capsys.readouterr().out
    assert "Model-work floor" in out and "ours/floor" in out
    assert "Against Quantus 0.6.0" in out and "pixel_flipping" in out
    before, after = (int(v) for v in out.strip().splitlines()[-1].split())
    assert after >= before > 0
