"""Smoke test of benchmarks/bench_explainers.py in --quick mode (tiny sizes, seconds)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_explainers.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_explainers", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_the_floor_the_loop_and_captum(capsys):
    pytest.importorskip("captum")
    bench = load_bench()
    threads = torch.get_num_threads()
    clock = bench._timing.time
    try:
        assert bench.main(["--quick", "--threads", "1", "--models", "cnn", "--clock", "cpu"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert bench._timing.time is clock  # the CPU clock is put back
    out = capsys.readouterr().out
    assert "cpu clock" in out
    assert "small CNN: 80 model inputs" in out and len(re.findall(r"\nRISE +\d", out)) == 2
    assert "ours/floor" in out and "best floor at max_batch_size=" in out
    assert "plain loop over masks" in out and "captum FeatureAblation per sample" in out


def test_the_floor_makes_the_same_model_calls_as_rise():
    bench = load_bench()
    model = bench.small_cnn()
    sizes = []
    hook = model.register_forward_hook(lambda m, args, out: sizes.append(args[0].shape[0]))
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    explain = bench.rise_explainer(model, n_masks=10, seed=0, max_batch_size=8)
    run, calls = bench.floor_runner(model, explain, x, 8, pool_bytes=0)
    run()
    floor_sizes, sizes[:] = list(sizes), []
    explain(x, torch.zeros(3, dtype=torch.long))
    hook.remove()
    assert floor_sizes == sizes and calls == len(sizes) and sum(sizes) == 30
