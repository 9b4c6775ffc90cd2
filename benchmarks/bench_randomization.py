"""Randomization metrics: time against the explain floor and against Quantus 0.6.0, in the same run.

Usage::

    python benchmarks/bench_randomization.py               # B=16, 1x224x224, Saliency, sMPRT with 50 copies
    python benchmarks/bench_randomization.py --quick       # a smoke run in seconds
    python benchmarks/bench_randomization.py --metrics mprt efficient_mprt --no-quantus

Two tables per model (a small CNN, and a near-free model: one linear layer; ``--models`` adds a
wider CNN, ``wide_cnn``, whose explanations cost ~25x more), measured on the same inputs in the
same process:

1. **Explain floor**: our time divided by the time of the same number of explain calls with
   the same explainer (captum Saliency) at its best batch size (the fastest of a few
   candidates, measured first; the metric then runs with ``max_batch_size`` set to it), on
   preallocated inputs, on the original model, without the metric: ``(L + 1) * B`` inputs for
   MPRT (``L`` parameterised layers), ``(L + 1) * B * n`` for sMPRT, ``2 * B`` for eMPRT and
   Random Logit. Floor and metric runs alternate (``--repeats`` pairs after one warm-up of
   each) and the ratio is the median of the per-pair ratios. Goal: at most 1.2.
2. **Quantus**: Quantus' class call (numpy in, ``quantus.explain`` with ``method="Saliency"``,
   as users call it) vs our kernel (tensors in, ``captum_explainer`` factory), at equal
   settings: bottom-up cascading randomization, Spearman (MPRT, sMPRT), 100 bins (eMPRT), the
   flattened SSIM (Random Logit, as Quantus), the same number of noisy copies. Quantus also
   explains the original model once more than we do (it computes ``a_batch`` and then the
   "original" explanations again); that is part of its cost as users call it. Goal: >= 10x for
   the MPRT family.

Our runs include the random-attribution baseline (on by default; ``--no-baseline`` times them
without it). The CPU may be shared with other jobs: the load average is printed with the
machine line and before each table; ``--threads 1`` gives steadier numbers there.
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
from xaiscore.functional import randomization as rnd  # noqa: E402
from xaiscore._engine.model_randomization import parameterised_layers  # noqa: E402

METRICS = ["mprt", "smooth_mprt", "efficient_mprt", "random_logit"]
QUANTUS_CLASS = {"mprt": "MPRT", "smooth_mprt": "SmoothMPRT", "efficient_mprt": "EfficientMPRT",
                 "random_logit": "RandomLogit"}
CLASSES = 10
MODELS = {"cnn": "small CNN", "linear": "linear", "wide_cnn": "wide CNN"}


def small_cnn(seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # benchmark-only model initialisation
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 5, stride=2, padding=2), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 5, stride=2, padding=2), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(256, CLASSES),
        ).eval()


def linear_model(size: int, seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(size * size, CLASSES)).eval()


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
    """A run explaining ``n_items`` preallocated inputs in batches of ``batch``, no metric around it
    (to time)."""
    reps = -(-batch // x.shape[0])
    xs, ts = x.repeat(reps, 1, 1, 1)[:batch], target.repeat(reps)[:batch]
    full, rest = divmod(n_items, batch)

    def run():
        for _ in range(full):
            explain(xs, ts)
        if rest:
            explain(xs[:rest], ts[:rest])

    return run


def explained_items(name: str, batch: int, n_layers: int, n_samples: int) -> int:
    if name == "mprt":
        return (n_layers + 1) * batch
    if name == "smooth_mprt":
        return (n_layers + 1) * batch * n_samples
    return 2 * batch


def ours(name: str, model, x, target, factory, n_samples: int, batch: int, baseline: bool = True):
    common = dict(explainer_factory=factory, max_batch_size=batch, seed=0, random_baseline=baseline)
    if name == "mprt":
        return lambda: rnd.mprt(model, x, target, **common)
    if name == "smooth_mprt":
        return lambda: rnd.smooth_mprt(model, x, target, n_samples=n_samples, **common)
    if name == "efficient_mprt":
        return lambda: rnd.efficient_mprt(model, x, target, **common)
    return lambda: rnd.random_logit(model, x, target, similarity="ssim_flat", num_classes=CLASSES,
                                    **common)


def quantus_call(quantus, name: str, model, x: np.ndarray, y: np.ndarray, n_samples: int):
    cls = getattr(quantus, QUANTUS_CLASS[name])
    if name == "mprt":
        metric = cls(layer_order="bottom_up", disable_warnings=True)
    elif name == "smooth_mprt":
        metric = cls(layer_order="bottom_up", nr_samples=n_samples, disable_warnings=True)
    elif name == "efficient_mprt":
        metric = cls(layer_order="bottom_up", disable_warnings=True)
    else:
        metric = cls(num_classes=CLASSES, disable_warnings=True)
    kwargs = dict(model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=quantus.explain,
                  explain_func_kwargs={"method": "Saliency"}, device="cpu", channel_first=True,
                  batch_size=x.shape[0])
    return lambda: metric(**kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--samples", type=int, default=50, help="sMPRT noisy copies per sample")
    parser.add_argument("--metrics", nargs="+", default=METRICS, choices=METRICS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-quantus", action="store_true")
    parser.add_argument("--no-baseline", action="store_true",
                        help="time our metrics without the random baseline")
    parser.add_argument(
        "--models",
        nargs="+",
        default=["cnn", "linear"],
        choices=list(MODELS),
        help="cnn: the small CNN; linear: one linear layer (near-free); wide_cnn: 32/64 channels",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's); 1 is steadier on a shared machine",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.batch, args.size, args.samples, args.repeats = 4, 32, 4, 1
    warnings.filterwarnings("ignore")
    print(f"machine: {machine_line()}; load average {os.getloadavg()[0]:.2f} (CPU may be shared)")
    print(
        f"B={args.batch}, 1x{args.size}x{args.size}, Saliency, bottom-up, sMPRT "
        f"n_samples={args.samples}, random baseline {'off' if args.no_baseline else 'on'}")
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 1, args.size, args.size, generator=generator)
    candidates = [8, 16] if args.quick else [16, 32, 64, 128, 256]
    quantus = None
    if not args.no_quantus:
        try:
            import quantus
        except ImportError:
            print("quantus not installed: skipping the comparison")
        else:
            if not hasattr(np, "trapz"):
                np.trapz = np.trapezoid  # Quantus 0.6.0 on numpy >= 2.4
    factory = lambda m: captum_explainer(m, "Saliency")  # noqa: E731
    builders = {"cnn": small_cnn, "wide_cnn": wide_cnn, "linear": lambda: linear_model(args.size)}
    for key in args.models:
        model_name, model = MODELS[key], builders[key]()
        with torch.no_grad():
            target = model(x).argmax(1)
        explain = factory(model)
        n_layers = len(parameterised_layers(model))
        batch = best_batch_size(explain, x, target, candidates)
        rows = []
        for name in args.metrics:
            n_items = explained_items(name, args.batch, n_layers, args.samples)
            ours_time, floor, ratio = paired_times(
                ours(name, model, x, target, factory, args.samples, batch, not args.no_baseline),
                explain_floor(explain, x, target, n_items, batch), repeats=args.repeats,
                warmup=0 if args.quick else 1)
            row = {"metric": name, "explained": n_items, "ours_s": ours_time, "floor_s": floor,
                   "ours/floor": ratio}
            if quantus is not None:
                call = quantus_call(quantus, name, model, x.numpy(), target.numpy(), args.samples)
                start = time.perf_counter()
                call()
                row["quantus_s"] = time.perf_counter() - start
                row["quantus/ours"] = row["quantus_s"] / ours_time
            rows.append(row)
        print(
            f"\n{model_name} ({n_layers} parameterised layers): explainer's best batch size "
            f"{batch} (of {candidates}); load average now {os.getloadavg()[0]:.2f}")
        columns = ["metric", "explained", "ours_s", "floor_s", "ours/floor"]
        if quantus is not None:
            columns += ["quantus_s", "quantus/ours"]
        print_table(rows, columns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
