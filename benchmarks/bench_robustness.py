"""Robustness kernels: time against the explain floor and against Quantus 0.6.0, in the same run.

Usage::

    python benchmarks/bench_robustness.py               # B=16, 1x224x224, Saliency, 50 noisy copies
    python benchmarks/bench_robustness.py --quick       # a smoke run in seconds
    python benchmarks/bench_robustness.py --samples 200 --metrics max_sensitivity --models linear --no-quantus

Two tables, measured on the same inputs in the same process (``--models wide_cnn`` adds a CNN whose
explanations cost ~25x more, to see the fixed per-item work shrink):

1. **Explain floor** (small CNN and a single linear layer): for each metric, our time divided by
   the time of explaining the same number of inputs (``B * n_samples``; ``B * n_steps`` for
   continuity) with the same explainer at its best batch size (the fastest of a few candidates,
   measured first; the metric then runs with ``max_batch_size`` set to it), on preallocated
   inputs, without the metric. Floor and metric runs alternate (``--repeats`` pairs after one
   warm-up of each); the ratio is the median of the per-pair ratios, so the machine's drift
   between two blocks of runs stays out of it. The goal is a ratio of at most 1.2.
2. **Quantus**: Quantus' class call (numpy in, ``quantus.explain`` with ``method="Saliency"``,
   as users call it) vs our kernel (tensors in, ``captum_explainer(model, "Saliency")``), at
   equal settings: the same number of noisy copies, the same noise law and size (uniform 0.2 for
   the sensitivities, Gaussian 0.1 for the Lipschitz estimate, Quantus' U(0.02, 0.2) and its
   NaN-on-changed-prediction rule for RIS/ROS/RRS), once with a small CNN and once with a
   near-free model (one linear layer) where the metric machinery is all that costs.

The CPU may be shared with other jobs: the load average is printed with the machine line.
"""  # noqa: E501

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _models import wide_cnn  # noqa: E402
from _timing import machine_line, median_time, paired_times, print_table  # noqa: E402

from xaiscore.explainers import captum_explainer  # noqa: E402
from xaiscore.functional import robustness as rob  # noqa: E402

METRICS = [
    "max_sensitivity",
    "avg_sensitivity",
    "local_lipschitz_estimate",
    "relative_input_stability",
    "relative_output_stability",
    "relative_representation_stability",
    "continuity",
]
QUANTUS_CLASS = {
    "max_sensitivity": "MaxSensitivity",
    "avg_sensitivity": "AvgSensitivity",
    "local_lipschitz_estimate": "LocalLipschitzEstimate",
    "relative_input_stability": "RelativeInputStability",
    "relative_output_stability": "RelativeOutputStability",
    "relative_representation_stability": "RelativeRepresentationStability",
    "continuity": "Continuity",
}
GOAL_QUANTUS = {"max_sensitivity", "avg_sensitivity", "local_lipschitz_estimate",
                "relative_input_stability",
                "relative_output_stability"}


def small_cnn(classes: int = 10, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)  # benchmark-only model initialisation
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 5, stride=2, padding=2), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 5, stride=2, padding=2), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(256, classes),
    ).eval()


def linear_model(size: int, classes: int = 10, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(size * size, classes)).eval()


def representation_layer(model: torch.nn.Module) -> str:
    return "4" if len(model) > 3 else "0"


def best_batch_size(explain, x: torch.Tensor, target: torch.Tensor, candidates: list[int]) -> int:
    """The explainer's fastest batch size per input among ``candidates`` (inputs tiled from ``x``).
    """
    timings = {}
    for size in candidates:
        reps = -(-size // x.shape[0])
        xs, ts = x.repeat(reps, 1, 1, 1)[:size], target.repeat(reps)[:size]
        timings[size] = median_time(lambda: explain(xs, ts), repeats=2, warmup=1) / size
    return min(timings, key=timings.get)


def explain_floor(explain, x: torch.Tensor, target: torch.Tensor, n_items: int, batch: int):
    """A run explaining ``n_items`` preallocated inputs in batches of ``batch`` (to time)."""
    reps = -(-batch // x.shape[0])
    xs, ts = x.repeat(reps, 1, 1, 1)[:batch], target.repeat(reps)[:batch]
    full, rest = divmod(n_items, batch)

    def run():
        for _ in range(full):
            explain(xs, ts)
        if rest:
            explain(xs[:rest], ts[:rest])

    return run


def ours(name: str, model, x, a, target, explain, n: int, n_steps: int, batch: int):
    common = dict(explain_fn=explain, max_batch_size=batch)
    noisy = dict(common, n_samples=n, seed=0)
    if name in ("max_sensitivity", "avg_sensitivity"):
        return lambda: getattr(rob, name)(x, a, target, radius=0.2, **noisy)
    if name == "local_lipschitz_estimate":
        return lambda: rob.local_lipschitz_estimate(x, a, target, noise="gaussian", radius=0.1,
                                                    **noisy)
    stability = dict(noisy, noise_bounds=(0.02, 0.2), on_prediction_change="nan")
    if name == "relative_input_stability":
        return lambda: rob.relative_input_stability(model, x, a, target, **stability)
    if name == "relative_output_stability":
        return lambda: rob.relative_output_stability(model, x, a, target, **stability)
    if name == "relative_representation_stability":
        layer = representation_layer(model)
        return lambda: rob.relative_representation_stability(model, x, a, target, layer=layer,
                                                             **stability)
    return lambda: rob.continuity(x, a, target, n_steps=n_steps, **common)


def quantus_call(quantus, name: str, model, x, a, y, n: int, n_steps: int):
    cls = getattr(quantus, QUANTUS_CLASS[name])
    if name in ("max_sensitivity", "avg_sensitivity"):
        metric = cls(nr_samples=n, lower_bound=0.2, disable_warnings=True)
    elif name == "local_lipschitz_estimate":
        metric = cls(nr_samples=n, perturb_std=0.1, disable_warnings=True)
    elif name == "relative_representation_stability":
        metric = cls(nr_samples=n, layer_names=[representation_layer(model)], disable_warnings=True)
    elif name == "continuity":
        metric = cls(nr_steps=n_steps, disable_warnings=True)
    else:
        metric = cls(nr_samples=n, disable_warnings=True)
    kwargs = dict(model=model, x_batch=x, y_batch=y, a_batch=a, explain_func=quantus.explain,
                  explain_func_kwargs={"method": "Saliency"}, device="cpu", channel_first=True,
                  batch_size=x.shape[0])
    return lambda: metric(**kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--samples", type=int, default=50, help="noisy copies per sample")
    parser.add_argument("--steps", type=int, default=28, help="continuity translations")
    parser.add_argument("--metrics", nargs="+", default=METRICS, choices=METRICS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--models",
        nargs="+",
        default=["cnn", "linear"],
        choices=["cnn", "linear", "wide_cnn"],
        help="cnn: the small CNN; linear: one linear layer (near-free); wide_cnn: 32/64 channels",
    )
    parser.add_argument("--no-quantus", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.samples, args.steps, args.repeats = 4, 32, 4, 4, 1
    warnings.filterwarnings("ignore")
    print(f"machine: {machine_line()}; load average {os.getloadavg()[0]:.2f} (CPU may be shared)")
    print(f"B={args.batch}, 1x{args.size}x{args.size}, Saliency, n_samples={args.samples}, "
          f"continuity n_steps={args.steps}")
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 1, args.size, args.size, generator=generator)
    candidates = [8, 16, 32, 64] if args.quick else [16, 32, 64, 128, 256]
    quantus = None
    if not args.no_quantus:
        try:
            import quantus  # noqa: F401
        except ImportError:
            print("quantus not installed: skipping the comparison")
        else:
            if not hasattr(np, "trapz"):
                np.trapz = np.trapezoid  # Quantus 0.6.0 on numpy >= 2.4
    models = {"cnn": ("small CNN", small_cnn),
              "linear": ("linear", lambda: linear_model(args.size)),
              "wide_cnn": ("wide CNN", wide_cnn)}
    for model_name, build in (models[m] for m in args.models):
        model = build()
        with torch.no_grad():
            target = model(x).argmax(1)
        explain = captum_explainer(model, "Saliency")
        a = explain(x, target)
        batch = best_batch_size(explain, x, target, candidates)
        rows = []
        for name in args.metrics:
            n_items = args.batch * (args.steps if name == "continuity" else args.samples)
            ours_time, floor, ratio = paired_times(
                ours(name, model, x, a, target, explain, args.samples, args.steps, batch),
                explain_floor(explain, x, target, n_items, batch), repeats=args.repeats,
                warmup=0 if args.quick else 1)
            row = {"metric": name, "ours_s": ours_time, "floor_s": floor, "ours/floor": ratio}
            if quantus is not None:
                start = time.perf_counter()
                quantus_call(quantus, name, model, x.numpy(), a.numpy(), target.numpy(),
                             args.samples,
                             args.steps)()
                row["quantus_s"] = time.perf_counter() - start
                row["quantus/ours"] = row["quantus_s"] / ours_time
                row["goal"] = ">=10x" if name in GOAL_QUANTUS else "-"
            rows.append(row)
        print(f"\n{model_name}: explainer's best batch size {batch} (of {candidates}); "
              f"load average now {os.getloadavg()[0]:.2f}")
        columns = ["metric", "ours_s", "floor_s", "ours/floor"]
        if quantus is not None:
            columns += ["quantus_s", "quantus/ours", "goal"]
        print_table(rows, columns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
