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


def test_paired_times_alternate_and_take_the_median_pair_ratio(monkeypatch):
    import sys

    sys.path.insert(0, str(BENCH.parent))
    import _timing

    calls = []
    clock = iter(range(1000))  # every perf_counter() reads one tick later
    monkeypatch.setattr(_timing.time, "perf_counter", lambda: float(next(clock)))

    def first():
        calls.append("ours")
        next(clock)  # one extra tick: first runs take 2 ticks, second runs 1

    def second():
        calls.append("floor")

    ours, floor, ratio = _timing.paired_times(first, second, repeats=3, warmup=1)
    assert calls == ["ours", "floor"] * 4
    assert (ours, floor, ratio) == (2.0, 1.0, 2.0)
