"""Smoke tests: every benchmark runs end to end in --quick mode (tiny sizes, seconds), so none rots.

One parametrised test runs each benchmark's quick mode and checks what it prints; the checks
that need more than the printed text (a benchmark's own helpers) follow as separate tests.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_bench(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up (bench_e2e's Settings)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class QuickRun:
    """One quick run: the benchmark, its arguments, what it needs and what its output must hold."""

    bench: str
    args: tuple[str, ...]
    needs: str
    check: Callable[[str, object], None]
    marks: tuple = field(default=())


def _faithfulness(out: str, bench: object) -> None:
    assert "Model-work floor" in out and "ours/floor" in out
    assert "Against Quantus 0.6.0" in out and "pixel_flipping" in out


def _road_subsets_axiomatic(out: str, bench: object) -> None:
    assert "Model-work floor" in out and "ours/floor" in out
    assert "Against Quantus 0.6.0" in out and "speed-up" in out
    for name in ("road", "faithfulness_correlation", "completeness"):
        assert out.count(name) >= 2


def _meta(out: str, bench: object) -> None:
    assert "ours_s" in out and "sparseness" in out and "K=2" in out


def _quantus_compat(out: str, bench: object) -> None:
    names = ["AUC", "PixelFlipping", "MaxSensitivity", "MPRT"]
    assert "Against Quantus 0.6.0" in out and "speed-up" in out and "max |diff|" in out
    for name in names:
        assert out.count(name) == 1
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["AUC"],
                                                                              ["PixelFlipping"])]
    for row in rows:
        assert float(row[-1]) < 1e-4  # deterministic classes agree with Quantus in the same run


def _randomization(out: str, bench: object) -> None:
    assert "small CNN (3 parameterised layers)" in out and "linear (1 parameterised layers)" in out
    for name in bench.METRICS:
        assert out.count(f"\n{name} ") == 2
    assert "ours/floor" in out and "quantus" not in out.split("\n", 2)[2]


def _randomization_against_quantus(out: str, bench: object) -> None:
    assert out.count("quantus/ours") == 2
    assert out.count("\nmprt ") == 2 and out.count("\nefficient_mprt ") == 2


def _randomization_wide_cnn(out: str, bench: object) -> None:
    assert "wide CNN (4 parameterised layers)" in out and "small CNN" not in out
    assert out.count("\nmprt ") == 1


def _robustness(out: str, bench: object) -> None:
    assert "ours/floor" in out and "max_sensitivity" in out and "continuity" in out


def _robustness_wide_cnn(out: str, bench: object) -> None:
    assert "wide CNN: explainer's best batch size" in out and "small CNN" not in out
    assert out.count("\nrelative_representation_stability ") == 1


def _explainers(out: str, bench: object) -> None:
    assert "cpu clock" in out
    assert "small CNN: 80 model inputs" in out and len(re.findall(r"\nRISE +\d", out)) == 2
    assert "ours/floor" in out and "best floor at max_batch_size=" in out
    assert "plain loop over masks" in out and "captum FeatureAblation per sample" in out


def _box_localization(out: str, bench: object) -> None:
    # main() raises if the kernel and the per-threshold protocol loop disagree
    assert "speed-up" in out and "2-D B=4 32x32" in out and "3-D B=2 12^3" in out and "v2" in out


def _metrics(out: str, bench: object) -> None:
    assert "update/kernel" in out and "pointing_game" in out
    assert ("set-level, summed statistics: pointing_accuracy" in out
            and "sufficiency + consistency" in out)


def _end_to_end(out: str, bench: object) -> None:
    assert "Whole job" in out and "quantus/kernels" in out and "kernels/floor" in out
    for name in bench.SUITE + bench.METHODS:
        assert name in out
    # every system runs the model on the definitions' inputs for the gradient-free faithfulness
    # metrics
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    assert rows["RegionPerturbation"][-3:] == ["1.00x", "1.00x", "1.00x"]
    assert rows["ROAD"][-1] == "1.00x"  # the kernel runs no forward pass on the unperturbed inputs


def _auto_batch(out: str, bench: object) -> None:
    assert "auto/best" in out and out.count("small_cnn") == 2


def _memory(out: str, bench: object) -> None:
    assert "growth MB" in out and out.count("road ") == 2


def _model_calls(out: str, bench: object) -> None:
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    for name in ("PixelFlipping", "SensitivityN"):
        assert "yes" in rows[name]  # within 1.2x of Quantus' model inputs at its defaults


def _explainer_floor(out: str, bench: object) -> None:
    assert "ours/floor" in out and "one pass/floor" in out
    for name in ("Saliency", "IntegratedGradients", "SmoothGrad", "GradientShap"):
        assert out.count(f"\n{name} ") + out.count(f" {name} ") >= 1


def _imputation_3d(out: str, bench: object) -> None:
    assert "paired speed-up" in out and "smooth 50%" in out and "road 16x16^3" in out


def _mst(out: str, bench: object) -> None:
    assert "speed-up" in out
    for kind in ("noise", "blobs", "sparse"):
        assert f"\n{kind} " in out


def _localization_complexity(out: str, bench: object) -> None:
    assert "speedup" in out and "quantus_ms" in out


def _harness_data(out: str, bench: object) -> None:
    for case in ("synthetic n=", "collate ", "resize_mask ", "NIH reader: parse",
                 "NIH reader: load+resize+collate"):
        assert case in out


def _imputation_variants(out: str, bench: object) -> None:
    assert "shipped_iterations" in out and "groups of 4" in out and "max_error" in out
    assert "compiled_ms" not in out  # --quick leaves out the compile (half a minute)
    # the additive variant is restored after its run
    assert bench.imputation._Multigrid is not bench._AdditiveFinest
    assert bench.imputation._Multigrid.__name__ == "_Multigrid"


def _volumes(out: str, bench: object) -> None:
    assert "ours/floor" in out and "imputation_s" in out
    for name in ("deletion", "road"):
        assert f"\n{name} " in out


QUICK_RUNS = {
    "metrics": QuickRun("bench_metrics", ("--quick", "--attribution-metrics", "pointing_game", "sparseness"),  # noqa: E501
                        "torchmetrics", _metrics),
    "box_localization": QuickRun("bench_box_localization", ("--quick",), "scipy", _box_localization),  # noqa: E501
    # The memory table spawns a fresh interpreter per setting (slow to import torch on a busy
    # machine): its child is exercised in-process by test_faithfulness_memory_child instead.
    "faithfulness": QuickRun("bench_faithfulness", ("--quick", "--metrics", "pixel_flipping", "--no-memory"),  # noqa: E501
                             "quantus", _faithfulness),
    "road_subsets_axiomatic": QuickRun(
        "bench_road_subsets_axiomatic", ("--quick", "--metrics", "road", "faithfulness_correlation", "completeness"),  # noqa: E501
        "quantus", _road_subsets_axiomatic),
    "meta": QuickRun("bench_meta", ("--quick", "--no-metaquantus", "--estimators", "sparseness"), "captum", _meta),  # noqa: E501
    "quantus_compat": QuickRun(
        "bench_quantus_compat", ("--quick", "--metrics", "AUC", "PixelFlipping", "MaxSensitivity", "MPRT"),  # noqa: E501
        "quantus", _quantus_compat),
    "randomization": QuickRun("bench_randomization", ("--quick", "--no-quantus"), "captum", _randomization),  # noqa: E501
    "randomization_against_quantus": QuickRun(
        "bench_randomization", ("--quick", "--metrics", "mprt", "efficient_mprt"), "captum",
        _randomization_against_quantus, marks=(pytest.mark.quantus,)),
    "randomization_wide_cnn": QuickRun(
        "bench_randomization", ("--quick", "--no-quantus", "--models", "wide_cnn", "--metrics", "mprt"), "captum",  # noqa: E501
        _randomization_wide_cnn),
    "robustness": QuickRun(
        "bench_robustness", ("--quick", "--no-quantus", "--metrics", "max_sensitivity", "continuity"), "captum",  # noqa: E501
        _robustness),
    "robustness_wide_cnn": QuickRun(
        "bench_robustness",
        ("--quick", "--no-quantus", "--models", "wide_cnn", "--metrics",
         "relative_representation_stability"),
        "captum", _robustness_wide_cnn),
    "end_to_end": QuickRun("bench_e2e", ("--quick",), "captum", _end_to_end, marks=(pytest.mark.quantus,)),  # noqa: E501
    "auto_batch": QuickRun("bench_auto_batch", ("--quick", "--models", "small_cnn"), "captum", _auto_batch),  # noqa: E501
    "memory": QuickRun("bench_memory", ("--quick", "--kernels", "road"), "captum", _memory,
                       marks=(pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(),
                                                 reason="reads /proc (Linux)"),)),
    "imputation_3d": QuickRun(
        "bench_imputation_3d",
        ("--quick", "--baseline", str(BENCHMARKS.parent / "src/xaiscore/_engine/imputation.py")),
        "torch", _imputation_3d),
    "model_calls": QuickRun("audit_model_calls", ("--classes", "PixelFlipping", "SensitivityN", "--batch", "2"),  # noqa: E501
                            "quantus", _model_calls, marks=(pytest.mark.quantus,)),
    "explainer_floor": QuickRun("bench_explainer_floor", ("--quick", "--models", "small_cnn"), "captum",  # noqa: E501
                                _explainer_floor),
    "volumes": QuickRun("bench_volumes", ("--quick", "--no-memory"), "torch", _volumes),
    "imputation_variants": QuickRun("bench_imputation_variants", ("--quick",), "torch",
                                    _imputation_variants),
    "mst": QuickRun("bench_mst", ("--quick",), "sklearn", _mst),
    "harness_data": QuickRun("bench_harness_data", ("--quick",), "PIL", _harness_data),
    "localization_complexity": QuickRun("bench_localization_complexity", ("--quick",), "quantus",
                                        _localization_complexity, marks=(pytest.mark.quantus,)),
    "explainers": QuickRun(
        "bench_explainers", ("--quick", "--threads", "1", "--models", "cnn", "--clock", "cpu"), "captum",  # noqa: E501
        _explainers),
}


@pytest.mark.parametrize(
    "run", [pytest.param(run, id=name, marks=run.marks) for name, run in QUICK_RUNS.items()])
def test_quick_run(run: QuickRun, capsys, request):
    pytest.importorskip(run.needs)
    if any(mark.name == "quantus" for mark in run.marks):
        request.getfixturevalue("quantus_module")
    bench = load_bench(run.bench)
    threads = torch.get_num_threads()
    clock = getattr(getattr(bench, "_timing", None), "time", None)
    try:
        assert bench.main(list(run.args)) == 0
    finally:
        torch.set_num_threads(threads)
    if clock is not None:
        assert bench._timing.time is clock  # a benchmark that swaps in the CPU clock puts it back
    run.check(capsys.readouterr().out, bench)


def test_faithfulness_memory_child(capsys):
    pytest.importorskip("quantus")
    bench = load_bench("bench_faithfulness")
    bench.memory_child(2, 16, 2)
    before, after = (int(v) for v in capsys.readouterr().out.strip().splitlines()[-1].split())
    assert after >= before > 0


def test_the_rise_floor_makes_the_same_model_calls_as_rise():
    bench = load_bench("bench_explainers")
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


def test_paired_times_alternate_and_take_the_median_pair_ratio(monkeypatch):
    sys.path.insert(0, str(BENCHMARKS))
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


def test_every_benchmark_has_a_quick_run():
    # docs/performance.md promises that no benchmark rots: each runs here at its --quick size
    benches = {path.stem for path in BENCHMARKS.glob("*.py") if not path.stem.startswith("_")}
    assert benches - {run.bench for run in QUICK_RUNS.values()} == set()
