"""The Quantus drop-in against Quantus 0.6.0: each class at Quantus' defaults, same inputs, same run.

Usage::

    python benchmarks/bench_quantus_compat.py                      # B=32, 1x28x28, small CNN, every class
    python benchmarks/bench_quantus_compat.py --batch 64 --size 224 --metrics PixelFlipping MaxSensitivity
    python benchmarks/bench_quantus_compat.py --quick              # a smoke run in seconds

For every class the table gives Quantus' time (``quantus.<Class>(**settings)(...)``) and the
drop-in's (``xaiscore.quantus_compat.<Class>(**settings)(...)``) on the same numpy inputs and model,
the speed-up, and the largest absolute difference of the per-sample results where both are
deterministic and agree by design ("-" where the classes differ on purpose, e.g. Quantus bugs, or
draw their own noise). Settings are Quantus' defaults except where the "settings" column says
otherwise: where Quantus' default would take minutes on a CPU (200 noisy copies, a step per pixel),
both get the same smaller value. Explanations come from ``quantus.explain(method="Saliency")`` on
both sides, so re-explaining metrics time the same explainer.

The CPU may be shared: the load average is printed with the machine line, and torch runs with
``--threads`` threads (default 1).
"""  # noqa: E501

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import machine_line, median_time, print_table  # noqa: E402

from xaiscore import quantus_compat as qc  # noqa: E402


def small_cnn(channels: int = 1, classes: int = 10, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)  # benchmark-only model initialisation
    return torch.nn.Sequential(
        torch.nn.Conv2d(channels, 8, 5, stride=2, padding=2), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 5, stride=2, padding=2), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(256, classes),
    ).eval()


def settings(size: int, quick: bool) -> dict[str, tuple[dict[str, Any], str]]:
    """Per class: (keyword arguments for both constructors, what differs from Quantus' defaults)."""
    step = size if not quick else max(1, size // 2)
    few = 4 if quick else 20
    return {
        "PointingGame": ({}, ""),
        "AttributionLocalisation": ({}, ""),
        "TopKIntersection": ({"k": min(1000, size * size // 4)}, "k=N/4"),
        "RelevanceMassAccuracy": ({}, ""),
        "RelevanceRankAccuracy": ({}, ""),
        "AUC": ({}, ""),
        "Focus": ({}, ""),
        "Sparseness": ({}, ""),
        "Complexity": ({}, ""),
        "EffectiveComplexity": ({}, ""),
        "PixelFlipping": ({"features_in_step": step}, f"features_in_step={step}"),
        "RegionPerturbation": ({"patch_size": max(2, size // 7)}, f"patch_size={max(2, size // 7)}"),  # noqa: E501
        "Selectivity": ({"patch_size": max(2, size // 7)}, f"patch_size={max(2, size // 7)}"),
        "FaithfulnessEstimate": ({"features_in_step": step}, f"features_in_step={step}"),
        "Monotonicity": ({"features_in_step": step}, f"features_in_step={step}"),
        "MonotonicityCorrelation": ({"features_in_step": step, "nr_samples": few},
                                    f"features_in_step={step}, nr_samples={few}"),
        "IROF": ({}, "SLIC on both sides"),
        "ROAD": ({"percentages": list(range(1, 100, 10 if quick else 2))}, "" if not quick else "10 percentages"),  # noqa: E501
        "FaithfulnessCorrelation": ({"nr_runs": few, "subset_size": min(224, size * size // 4)},
                                    f"nr_runs={few}"),
        "Infidelity": ({"n_perturb_samples": 2 if quick else 10}, ""),
        "SensitivityN": ({"features_in_step": step}, f"features_in_step={step}"),
        "Sufficiency": ({}, ""),
        "Completeness": ({}, ""),
        "NonSensitivity": ({}, ""),
        "MaxSensitivity": ({"nr_samples": few}, f"nr_samples={few}"),
        "AvgSensitivity": ({"nr_samples": few}, f"nr_samples={few}"),
        "LocalLipschitzEstimate": ({"nr_samples": few}, f"nr_samples={few}"),
        "Continuity": ({"nr_steps": 7 if quick else 28}, ""),
        "Consistency": ({}, ""),
        "RelativeInputStability": ({"nr_samples": few}, f"nr_samples={few}"),
        "RelativeOutputStability": ({"nr_samples": few}, f"nr_samples={few}"),
        "RelativeRepresentationStability": ({"nr_samples": few}, f"nr_samples={few}"),
        "MPRT": ({"return_average_correlation": True}, "average"),
        "SmoothMPRT": ({"nr_samples": 2 if quick else 10, "return_average_correlation": True},
                       f"nr_samples={2 if quick else 10}, average"),
        "EfficientMPRT": ({}, ""),
        "RandomLogit": ({"num_classes": 10}, "num_classes=10"),
    }


#: Only our side: keywords Quantus does not have (seeds). SensitivityN's default ``n_subsets=None``
#: spends Quantus' model budget (``ceil(N / features_in_step)`` inputs per sample).
OURS_ONLY = {"SensitivityN": {"seed": 0}}
#: Classes whose per-sample results agree with Quantus at these settings
#: (deterministic, no Quantus bug hit).
COMPARABLE = {
    "PointingGame", "AttributionLocalisation", "TopKIntersection", "RelevanceRankAccuracy", "AUC", "Focus",  # noqa: E501
    "Sparseness", "Complexity", "PixelFlipping", "RegionPerturbation", "Selectivity", "FaithfulnessEstimate",  # noqa: E501
}


def inputs(batch: int, size: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    model = small_cnn()
    x = rng.random((batch, 1, size, size)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy()
    import quantus

    a = quantus.explain(model, x, y, method="Saliency")
    s = np.zeros((batch, 1, size, size), dtype=np.float32)
    s[:, :, size // 4 : size // 2, size // 4 : 3 * size // 4] = 1
    positions = [tuple(rng.permutation([1, 1, 0, 0])) for _ in range(batch)]
    return {"model": model, "x": x, "y": y, "a": a, "s": s, "positions": positions}


def call(metric: Any, name: str, data: dict[str, Any]) -> Any:
    import quantus

    common = dict(model=data["model"], x_batch=data["x"], y_batch=data["y"], device="cpu",
                  batch_size=64,
                  explain_func=quantus.explain, explain_func_kwargs={"method": "Saliency"})
    if name in ("RelativeInputStability", "RelativeOutputStability",
                "RelativeRepresentationStability"):
        return metric(a_batch=data["a"], **common)
    if name == "Focus":
        return metric(a_batch=data["a"], custom_batch=data["positions"], **common)
    a = None if name in ("Continuity", "MPRT", "SmoothMPRT", "EfficientMPRT") else data["a"]
    return metric(a_batch=a, s_batch=data["s"], **common)


def max_difference(theirs: Any, ours: Any) -> float | str:
    try:
        left = np.asarray(theirs, dtype=np.float64)
        right = np.asarray(ours, dtype=np.float64)
    except (TypeError, ValueError):
        return "-"
    if left.shape != right.shape:
        return "-"
    finite = np.isfinite(left) & np.isfinite(right)
    return float(np.abs(left[finite] - right[finite]).max()) if finite.any() else "-"


def run(names: list[str], batch: int, size: int, quick: bool,
        repeats: int) -> list[dict[str, object]]:
    import quantus

    data = inputs(batch, size)
    table = settings(size, quick)
    rows = []
    for name in names:
        init, note = table[name]
        init = dict(init, disable_warnings=True)
        theirs_metric = getattr(quantus, name)(**init)
        ours_metric = getattr(qc, name)(**init, **OURS_ONLY.get(name, {}))
        results: dict[str, Any] = {}

        def timed(metric: Any, key: str) -> Callable[[], None]:
            def go() -> None:
                results[key] = call(metric, name, data)
            return go

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantus_time = median_time(timed(theirs_metric, "quantus"), repeats=repeats, warmup=0)
            ours_time = median_time(timed(ours_metric, "ours"), repeats=repeats, warmup=1)
        difference = (max_difference(results["quantus"], results["ours"]) if name in COMPARABLE
                      else "-")
        rows.append({"class": name, "settings": note or "defaults", "quantus s": quantus_time,
                     "ours s": ours_time,
                     "speed-up": quantus_time / ours_time, "max |diff|": difference})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--metrics", nargs="*", default=None, help="class names (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="B=4, 12x12, fewer samples: a smoke run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not hasattr(np, "trapz"):  # Quantus 0.6.0 calls np.trapz, gone in numpy 2.4
        np.trapz = np.trapezoid
    batch, size = (4, 12) if args.quick else (args.batch, args.size)
    names = args.metrics or list(settings(size, args.quick))
    unknown = set(names) - set(settings(size, args.quick))
    if unknown:
        parser.error(f"unknown classes {sorted(unknown)}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Machine: {machine_line()}, load average {load:.1f}")
    print(
        f"Against Quantus 0.6.0: B={batch}, 1x{size}x{size}, small CNN, quantus.explain Saliency, "
        f"median of {args.repeats} run(s)")
    rows = run(names, batch, size, args.quick, args.repeats)
    print_table(rows, ["class", "settings", "quantus s", "ours s", "speed-up", "max |diff|"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
