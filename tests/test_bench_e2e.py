"""Smoke tests: the end-to-end, auto-batch, memory and model-call benchmarks run at tiny sizes, so they never rot."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks")


def _load(name):
    sys.path.insert(0, os.path.abspath(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCHMARKS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.quantus
def test_quick_end_to_end_benchmark_runs(capsys, quantus_module):
    pytest.importorskip("captum")
    bench = _load("bench_e2e")
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "Whole job" in out and "quantus/kernels" in out and "kernels/floor" in out
    for name in bench.SUITE + bench.METHODS:
        assert name in out
    # every system runs the model on the definitions' inputs for the gradient-free faithfulness metrics
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    assert rows["RegionPerturbation"][-3:] == ["1.00x", "1.00x", "1.00x"]
    assert rows["ROAD"][-1] == "1.00x"  # the kernel runs no forward pass on the unperturbed inputs


def test_quick_auto_batch_benchmark_runs(capsys):
    pytest.importorskip("captum")
    assert _load("bench_auto_batch").main(["--quick", "--models", "small_cnn"]) == 0
    out = capsys.readouterr().out
    assert "auto/best" in out and out.count("small_cnn") == 2


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="reads /proc (Linux)")
def test_quick_memory_benchmark_runs(capsys):
    pytest.importorskip("captum")
    assert _load("bench_memory").main(["--quick", "--kernels", "road"]) == 0
    out = capsys.readouterr().out
    assert "growth MB" in out and out.count("road ") == 2


@pytest.mark.quantus
def test_model_call_audit_runs(capsys, quantus_module):
    assert _load("audit_model_calls").main(["--classes", "PixelFlipping", "SensitivityN", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "PixelFlipping" in out and "SensitivityN" in out
