"""The whole job: four explanation methods x eleven metrics through Quantus 0.6.0, the drop-in and
the kernels.

Usage::

    python benchmarks/bench_e2e.py                 # 64 images 1x224x224, small ResNet-like CNN, one rotation
    python benchmarks/bench_e2e.py --repeats 3     # medians of 3 rotated runs
    python benchmarks/bench_e2e.py --quick         # a smoke run in seconds
    python benchmarks/bench_e2e.py --systems kernels dropin --max-batch-size auto

The job (issue 23): explain 64 images with Saliency, Integrated Gradients (16 steps), Grad-CAM at
``layer2`` (its absolute value: Quantus rejects batches of all-zero or all-negative maps, which
Grad-CAM gives for some classes of randomized models) and a random map, then score every method with
PointingGame, RelevanceMassAccuracy, AUC, Sparseness, Complexity, RegionPerturbation,
FaithfulnessCorrelation, ROAD, MaxSensitivity, MPRT and RandomLogit at equal settings
(:func:`settings`) in three systems, in the same process, their order rotated from one run to the
next:

* ``quantus``:
  ``quantus.<Class>(**settings)(model=..., x_batch=..., a_batch=..., explain_func=...)`` on numpy
  arrays, as users call it;
* ``dropin``: the same calls with ``xaiscore.quantus_compat`` (one changed import);
* ``kernels``: the tensors straight into ``xaiscore.functional`` with ``xaiscore.explainers``.

All three explain with the same explainers (:mod:`xaiscore.explainers`' captum adapters and a random
map; Quantus and the drop-in through a numpy ``explain_func`` around them), so a difference is the
metric machinery, not the explainer. Every timed span includes computing ``a_batch``.

The **floor** is what the metric definitions need, at the fastest batch size (of a few candidates,
measured in this run): per method, the forward passes (region perturbation ``B (L + 1)``,
faithfulness correlation ``B (runs + 1)``, ROAD ``B T``) times the model's time per input, plus
the explanations (``a_batch`` ``B``, max-sensitivity ``B n``, MPRT ``B L``, random logit ``B``)
times the explainer's time per input. Metric arithmetic (ROAD's imputation, sorting, similarities)
is not part of it. A forward hook counts the inputs each system sends through the model; the table
gives them against the definitions' count (explanations counted by their passes: 16 for IG).

Times are the process's CPU time (``--clock cpu``, default, with ``--threads`` torch threads,
default 1): this VM's two cores are shared with other jobs and wall time moves 10-30 % within
minutes there. ``--clock wall`` measures wall time.
"""  # noqa: E501

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import time
import warnings
import weakref
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _models import ResNetLike, resnet_like  # noqa: E402
from _timing import machine_line, print_table  # noqa: E402

from xaiscore.explainers import captum_explainer, random_explainer  # noqa: E402

METHODS = ("Saliency", "IntegratedGradients", "LayerGradCam", "Random")
SUITE = ("PointingGame", "RelevanceMassAccuracy", "AUC", "Sparseness", "Complexity",
         "RegionPerturbation",
         "FaithfulnessCorrelation", "ROAD", "MaxSensitivity", "MPRT", "RandomLogit")
SYSTEMS = ("quantus", "dropin", "kernels")
EXPLAIN = "explain a_batch"
CLASSES = 10
GRADCAM_LAYER = "layer2"


@dataclass(frozen=True)
class Settings:
    """The suite's sizes (equal on every system)."""

    batch: int = 64
    size: int = 224
    ig_steps: int = 16
    patch_size: int = 8
    regions: int = 100
    runs: int = 100
    subset_size: int = 224
    road_percentages: tuple[int, ...] = (10, 30, 50)
    sensitivity_samples: int = 10
    candidates: tuple[int, ...] = (16, 32, 64, 128)
    floor_inputs: int = 128

    @staticmethod
    def quick() -> Settings:
        return Settings(batch=4, size=32, ig_steps=4, patch_size=4, regions=8, runs=8,
                        subset_size=16,
                        road_percentages=(10, 50), sensitivity_samples=2, candidates=(2, 4),
                        floor_inputs=8)


def describe(s: Settings) -> str:
    return (
        f"RegionPerturbation patch_size={s.patch_size} regions_evaluation={s.regions}; "
        f"FaithfulnessCorrelation nr_runs={s.runs} subset_size={s.subset_size}; ROAD "
        f"percentages={list(s.road_percentages)}; MaxSensitivity "
        f"nr_samples={s.sensitivity_samples} lower_bound=0.2; MPRT bottom_up, Spearman; "
        f"RandomLogit num_classes={CLASSES}, flat SSIM; others at Quantus' defaults")


# --- explainers -----------------------------------------------------------------------------------


def make_explainer(model: torch.nn.Module, method: str, s: Settings,
                   max_batch_size: Any = 64) -> Callable:
    if method == "Random":
        return random_explainer(seed=0)
    if method == "IntegratedGradients":
        return captum_explainer(model, method, n_steps=s.ig_steps, max_batch_size=max_batch_size)
    if method == "LayerGradCam":
        gradcam = captum_explainer(model, method, layer=GRADCAM_LAYER, relu_attributions=False,
                                   max_batch_size=max_batch_size)
        return lambda x, target: gradcam(x, target).abs_()
    return captum_explainer(model, method, max_batch_size=max_batch_size)


class NumpyExplain:
    """A Quantus-style ``explain_func(model, inputs, targets, method=...)`` around the same
    explainers."""

    def __init__(self, s: Settings) -> None:
        self.settings = s
        self.cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.rng = np.random.default_rng(0)

    def __call__(self, model: torch.nn.Module, inputs: np.ndarray, targets: np.ndarray,
                 method: str = "Saliency",
                 **kwargs: Any) -> np.ndarray:
        if method == "Random":
            return self.rng.random((inputs.shape[0], 1) + tuple(inputs.shape[2:]), dtype=np.float32)
        per_model = self.cache.setdefault(model, {})
        if method not in per_model:
            per_model[method] = make_explainer(model, method, self.settings)
        x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
        return per_model[method](x, torch.as_tensor(np.asarray(targets)).long()).numpy()


# --- the three systems ----------------------------------------------------------------------------


@dataclass
class Data:
    model: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor
    s: torch.Tensor
    settings: Settings
    max_batch_size: Any = 64
    n_layers: int = 0


def make_data(s: Settings) -> Data:
    model = resnet_like(CLASSES)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(s.batch, 1, s.size, s.size, generator=generator)
    # Labels spread over the classes (random inputs make the model predict one class): Quantus
    # rejects a batch whose maps are all negative, which Grad-CAM gives for one class of a
    # randomized model.
    y = torch.arange(s.batch) % CLASSES
    masks = torch.zeros(s.batch, 1, s.size, s.size)
    side = s.size // 4
    corners = torch.randint(0, s.size - side, (s.batch, 2), generator=generator)
    for i, (top, left) in enumerate(corners.tolist()):  # benchmark setup, not timed
        masks[i, :, top : top + side, left : left + side] = 1
    n_layers = sum(1 for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    return Data(model, x, y, masks, s, n_layers=n_layers)


def quantus_metrics(module: Any, s: Settings, ours: bool) -> dict[str, Any]:
    """``name -> metric object`` for Quantus or the drop-in (``ours`` adds seeds)."""
    import quantus

    seed = {"seed": 0} if ours else {}
    common = {"disable_warnings": True}
    flat_ssim = quantus.functions.similarity_func.ssim
    return {
        "PointingGame": module.PointingGame(**common),
        "RelevanceMassAccuracy": module.RelevanceMassAccuracy(**common),
        "AUC": module.AUC(**common),
        "Sparseness": module.Sparseness(**common),
        "Complexity": module.Complexity(**common),
        "RegionPerturbation": module.RegionPerturbation(patch_size=s.patch_size, regions_evaluation=s.regions,  # noqa: E501
                                                        **common, **seed),
        "FaithfulnessCorrelation": module.FaithfulnessCorrelation(nr_runs=s.runs, subset_size=s.subset_size,  # noqa: E501
                                                                  **common, **seed),
        "ROAD": module.ROAD(percentages=list(s.road_percentages), **common, **seed),
        "MaxSensitivity": module.MaxSensitivity(nr_samples=s.sensitivity_samples, **common, **seed),
        "MPRT": module.MPRT(layer_order="bottom_up", return_average_correlation=True, **common),
        "RandomLogit": module.RandomLogit(num_classes=CLASSES, similarity_func=flat_ssim, **common),
    }


def run_quantus_like(system: str, data: Data, clock: Callable[[], float]) -> dict[tuple[str, str],
                                                                                  float]:
    import quantus

    from xaiscore import quantus_compat

    s = data.settings
    explain = NumpyExplain(s)
    metrics = quantus_metrics(quantus_compat if system == "dropin" else quantus, s,
                              ours=system == "dropin")
    x, y, masks = data.x.numpy(), data.y.numpy(), data.s.numpy()
    # the drop-in keeps Quantus' `batch_size` (an int): a policy such as "auto" is for the kernels
    mbs = data.max_batch_size
    batch_size = mbs if system == "dropin" and isinstance(mbs, int) else 64
    times = {}
    for method in METHODS:
        kwargs = {"method": method}
        start = clock()
        a = explain(data.model, x, y, **kwargs)
        times[(method, EXPLAIN)] = clock() - start
        for name, metric in metrics.items():
            start = clock()
            metric(model=data.model, x_batch=x, y_batch=y, a_batch=a.copy(), s_batch=masks,
                   explain_func=explain,
                   explain_func_kwargs=kwargs, device="cpu", batch_size=batch_size)
            times[(method, name)] = clock() - start
    del quantus
    return times


def run_kernels(data: Data, clock: Callable[[], float]) -> dict[tuple[str, str], float]:
    from xaiscore import functional as F

    s, model, x, y, masks = data.settings, data.model, data.x, data.y, data.s.bool()
    mbs = data.max_batch_size
    passes_mbs = mbs if isinstance(mbs, int) else 64  # the captum adapter's passes take an int
    times = {}
    for method in METHODS:
        start = clock()
        explainer = make_explainer(model, method, s, passes_mbs)
        a = torch.cat([explainer(x[i : i + 64], y[i : i + 64]) for i in range(0, len(x), 64)])
        times[(method, EXPLAIN)] = clock() - start

        def factory(m: torch.nn.Module, method: str = method) -> Callable:
            return make_explainer(m, method, s, passes_mbs)

        calls: dict[str, Callable[[], Any]] = {
            "PointingGame": lambda: F.pointing_game(a, masks),
            "RelevanceMassAccuracy": lambda: F.relevance_mass_accuracy(a, masks),
            "AUC": lambda: F.localization_auc(a, masks),
            "Sparseness": lambda: F.sparseness(a),
            "Complexity": lambda: F.complexity(a),
            "RegionPerturbation": lambda: F.region_perturbation(
                model, x, a, y, patch_size=s.patch_size, steps=s.regions, baseline="min",
                softmax=True,
                max_batch_size=mbs, generator=torch.Generator().manual_seed(0)),
            "FaithfulnessCorrelation": lambda: F.faithfulness_correlation(
                model, x, a, y, subset_size=s.subset_size, n_runs=s.runs, baseline="min",
                reduce_channels=None,
                max_batch_size=mbs, generator=torch.Generator().manual_seed(0)),
            "ROAD": lambda: F.road(model, x, a, y, percentages=s.road_percentages, max_batch_size=mbs,  # noqa: E501
                                   generator=torch.Generator().manual_seed(0)),
            "MaxSensitivity": lambda: F.max_sensitivity(
                x, a, y, explain_fn=factory(model), n_samples=s.sensitivity_samples, radius=0.2,
                seed=0,
                max_batch_size=mbs),
            "MPRT": lambda: F.mprt(model, x, y, explainer_factory=factory, a=a, order="bottom_up",
                                   random_baseline=False, seed=42, max_batch_size=mbs),
            "RandomLogit": lambda: F.random_logit(model, x, y, explainer_factory=factory, a=a, num_classes=CLASSES,  # noqa: E501
                                                  similarity="ssim_flat", random_baseline=False,
                                                  seed=42,
                                                  max_batch_size=mbs),
        }
        for name in SUITE:
            start = clock()
            calls[name]()
            times[(method, name)] = clock() - start
    return times


# --- the floor ------------------------------------------------------------------------------------


def passes(method: str, s: Settings) -> int:
    """Model passes per explained input."""
    return (
        {"Saliency": 1, "IntegratedGradients": s.ig_steps, "LayerGradCam": 1, "Random": 0}[method])


def needs(metric: str, data: Data) -> tuple[int, int]:
    """(forward inputs, explained inputs) that the metric's definition needs for one method."""
    s, b = data.settings, data.settings.batch
    return {
        EXPLAIN: (0, b),
        "RegionPerturbation": (b * (s.regions + 1), 0),
        "FaithfulnessCorrelation": (b * (s.runs + 1), 0),
        "ROAD": (b * len(s.road_percentages), 0),
        "MaxSensitivity": (0, b * s.sensitivity_samples),
        "MPRT": (0, b * data.n_layers),
        "RandomLogit": (0, b),
    }.get(metric, (0, 0))


def per_input_time(call: Callable[[torch.Tensor, torch.Tensor], Any], data: Data,
                   clock: Callable[[], float],
                   ) -> tuple[float, int]:
    """The least time per input over the candidate batch sizes, and that batch size."""
    s = data.settings
    best = (math.inf, 0)
    for size in s.candidates:
        reps = -(-size // s.batch)
        xs, ts = data.x.repeat(reps, 1, 1, 1)[:size], data.y.repeat(reps)[:size]
        calls = max(1, s.floor_inputs // size)
        call(xs, ts)  # warm-up at this size
        samples = []
        for _ in range(2):
            start = clock()
            for _ in range(calls):
                call(xs, ts)
            samples.append((clock() - start) / (calls * size))
        best = min(best, (min(samples), size))
    return best


def measure_floor(data: Data, clock: Callable[[], float]) -> dict[str, tuple[float, int]]:
    def forward(xs: torch.Tensor, ts: torch.Tensor) -> None:
        with torch.inference_mode():
            data.model(xs)

    out = {"forward": per_input_time(forward, data, clock)}
    for method in METHODS:
        explainer = make_explainer(data.model, method, data.settings, max(data.settings.candidates))
        out[method] = per_input_time(explainer, data, clock)
    return out


# --- counting and running -------------------------------------------------------------------------


class Counter:
    """Counts the inputs that reach the model (a forward pre-hook)."""

    def __init__(self) -> None:
        self.inputs = 0

    def hook(self, module: torch.nn.Module, args: tuple) -> None:
        if isinstance(module, ResNetLike):  # the model and its randomized copies
            self.inputs += args[0].shape[0]


def run_system(system: str, data: Data, clock: Callable[[], float]) -> tuple[dict, dict]:
    counter = Counter()
    handle = torch.nn.modules.module.register_module_forward_pre_hook(counter.hook)
    counts: dict[tuple[str, str], int] = {}
    spans: list[int] = []

    def read() -> float:
        spans.append(counter.inputs)
        return clock()

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            times = run_kernels(data, read) if system == "kernels" else run_quantus_like(system,
                                                                                         data, read)
    finally:
        handle.remove()
    # Readings come in (start, stop) pairs in the order of ``times``.
    for index, key in enumerate(times):
        counts[key] = spans[2 * index + 1] - spans[2 * index]
    return times, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="B=4, 1x32x32, tiny settings: a smoke run")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rotated runs (medians are reported)")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument(
        "--max-batch-size",
        default="64",
        help="the kernels' max_batch_size (an int, 'auto' or a byte budget) and the drop-in's "
             "batch_size (an int; 64 when a policy is given)",
    )
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--batch", type=int, default=None,
                        help="images (default 64; 4 with --quick)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not hasattr(np, "trapz"):  # Quantus 0.6.0 calls np.trapz, gone in numpy 2.4
        np.trapz = np.trapezoid
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    s = Settings.quick() if args.quick else Settings()
    if args.batch is not None:
        s = dataclasses.replace(s, batch=args.batch)
    data = make_data(s)
    mbs = args.max_batch_size
    data.max_batch_size = int(mbs) if mbs.isdigit() else mbs
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Machine: {machine_line()}, load average {load:.1f}; {args.clock} clock")
    print(
        f"Job: B={s.batch}, 1x{s.size}x{s.size}, ResNet-like CNN ({data.n_layers} parameterised "
        f"layers), methods {', '.join(METHODS)} (IG {s.ig_steps} steps, |Grad-CAM| at "
        f"{GRADCAM_LAYER}); {describe(s)}; max_batch_size={data.max_batch_size}; {args.repeats} "
        "rotated run(s)")
    if not args.quick:  # warm every code path once on tiny inputs
        tiny = make_data(Settings.quick())
        for system in args.systems:
            run_system(system, tiny, clock)
    results: dict[str, list[dict]] = defaultdict(list)
    counts: dict[str, dict] = {}
    for repeat in range(args.repeats):
        order = (args.systems[repeat % len(args.systems):]
                 + args.systems[: repeat % len(args.systems)])
        for system in order:
            times, counted = run_system(system, data, clock)
            results[system].append(times)
            counts[system] = counted
    median = {system: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
              for system, runs in results.items()}
    floor = None if args.no_floor else measure_floor(data, clock)
    report(median, counts, floor, data, args.systems)
    return 0


def report(median: dict, counts: dict, floor: dict | None, data: Data, systems: list[str]) -> None:
    s = data.settings
    spans = (EXPLAIN,) + SUITE

    def floor_of(method: str, metric: str) -> float:
        forward, explained = needs(metric, data)
        return forward * floor["forward"][0] + explained * floor[method][0]

    def model_inputs(method: str, metric: str) -> int:
        forward, explained = needs(metric, data)
        return forward + explained * passes(method, s)

    print_floor(floor, systems)
    total = {system: sum(median[system].values()) for system in systems}
    rows = [{"": "whole job", **{f"{sy} s": total[sy] for sy in systems}}]
    floor_total = sum(floor_of(m, k) for m in METHODS for k in spans) if floor else None
    if floor_total:
        rows[0]["floor s"] = floor_total
    columns = [""] + [f"{sy} s" for sy in systems] + (["floor s"] if floor else [])
    columns += ratio_columns(rows, systems, floor is not None)
    print("\nWhole job")
    print_table(rows, columns)
    rows = []
    for method in METHODS:
        row = {"method": method, **{f"{sy} s": sum(median[sy][(method, k)] for k in spans)
                                    for sy in systems}}
        if floor:
            row["floor s"] = sum(floor_of(method, k) for k in spans)
        rows.append(row)
    columns = ["method"] + [f"{sy} s" for sy in systems] + (["floor s"] if floor else [])
    columns += ratio_columns(rows, systems, floor is not None)
    print("\nPer method (all metrics and the a_batch explanation)")
    print_table(rows, columns)
    rows = []
    for metric in spans:
        row = {"metric": metric, **{f"{sy} s": sum(median[sy][(m, metric)] for m in METHODS)
                                    for sy in systems}}
        if floor:
            row["floor s"] = sum(floor_of(m, metric) for m in METHODS)
        needed = sum(model_inputs(m, metric) for m in METHODS)
        row["model inputs"] = needed
        for sy in systems:
            done = sum(counts[sy][(m, metric)] for m in METHODS)
            row[f"{sy} inputs"] = f"{done / needed:.2f}x" if needed else str(done)
        rows.append(row)
    columns = ["metric"] + [f"{sy} s" for sy in systems] + (["floor s"] if floor else [])
    columns += ratio_columns(rows, systems, floor is not None)
    columns += ["model inputs"] + [f"{sy} inputs" for sy in systems]
    print(
        "\nPer metric (summed over methods); model inputs: the definitions' count, and each "
        "system's count relative to it")
    print_table(rows, columns)


def print_floor(floor: dict | None, systems: list[str]) -> None:
    if floor is None:
        return
    print("\nFloor (time per input at the best batch size): "
          + ", ".join(f"{k} {v[0] * 1e3:.3g} ms (batch {v[1]})" for k, v in floor.items()))
    if "quantus" in systems:
        print("quantus/floor: the ratio against Quantus of a system that ran at the floor, "
              "the most any speed-up of the metric machinery can reach")


def add_ratios(row: dict, systems: list[str], with_floor: bool) -> None:
    ours = [sy for sy in ("dropin", "kernels") if sy in systems]
    if "quantus" in systems:
        for sy in ours:
            if row[f"{sy} s"] > 0:
                row[f"quantus/{sy}"] = row["quantus s"] / row[f"{sy} s"]
    if with_floor and row.get("floor s"):
        if "quantus" in systems:  # the ratio a system at the floor would reach
            row["quantus/floor"] = row["quantus s"] / row["floor s"]
        for sy in ours:
            row[f"{sy}/floor"] = row[f"{sy} s"] / row["floor s"]


def ratio_columns(rows: list[dict], systems: list[str], with_floor: bool) -> list[str]:
    """Add the ratios to ``rows`` and return their column names."""
    columns = []
    for row in rows:
        add_ratios(row, systems, with_floor)
    for name in ("quantus/dropin", "quantus/kernels", "quantus/floor", "dropin/floor",
                 "kernels/floor"):
        if any(name in row for row in rows):
            columns.append(name)
    return columns


if __name__ == "__main__":
    raise SystemExit(main())
