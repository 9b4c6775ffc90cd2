"""Faithfulness kernels: time against the model-work floor and against Quantus 0.6.0, and peak
memory.

Usage::

    python benchmarks/bench_faithfulness.py              # B=64, 1x224x224, Quantus-docs step counts
    python benchmarks/bench_faithfulness.py --quick      # a smoke run in seconds
    python benchmarks/bench_faithfulness.py --no-quantus --metrics deletion pixel_flipping

Three tables, all measured in the same run on the same inputs:

1. **Floor** (small CNN): for each metric, our time (validation and the unperturbed pass
   included) divided by the *model-work floor*: the time of pushing the same number of images
   through the same model in batches of the same size, on a preallocated input, without the
   metric. The batch size is the model's best of a few candidates (measured first). Metric and
   floor runs alternate and the minimum of each is kept (robust to a shared CPU).
2. **Quantus** (small CNN, then a single linear layer where the metric machinery is all that
   costs): Quantus' class call on numpy inputs vs. our kernel on tensors, same settings
   (constant baselines; Quantus' ``"black"`` is our ``"min"``), and the ratio.
3. **Peak memory** of ``deletion`` as a function of ``max_batch_size``: ``ru_maxrss`` of a fresh
   subprocess per setting, minus its RSS right before the call.

The CPU may be shared: the load average is printed with the machine line.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import machine_line, median_time, print_table  # noqa: E402

from xaiscore.functional import faithfulness as fa  # noqa: E402


def small_cnn(channels: int = 1, classes: int = 10, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)  # benchmark-only model initialisation
    return torch.nn.Sequential(
        torch.nn.Conv2d(channels, 8, 5, stride=2, padding=2), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 5, stride=2, padding=2), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(256, classes),
    ).eval()


def linear_model(channels: int, size: int, classes: int = 10, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(),
                               torch.nn.Linear(channels * size * size, classes)).eval()


def make_inputs(batch: int, size: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, size, size, generator=generator)
    noise = torch.rand(batch, 1, max(1, size // 8), max(1, size // 8), generator=generator)
    a = torch.nn.functional.interpolate(noise, size=(size, size), mode="bilinear",
                                        align_corners=False)
    # no ties (Quantus' argsort is unstable)
    a = a + 1e-3 * torch.rand(a.shape, generator=generator)
    target = torch.randint(0, 10, (batch,), generator=generator)
    return x, a, target


def configs(size: int, quick: bool) -> dict[str, tuple]:
    """name -> (our kernel, our options, Quantus class name or None, Quantus options)."""
    row = size  # Quantus' docs flip one image row (224 px) per step at 224 x 224
    patch = max(2, size // 16)  # 14 at 224
    return {
        "deletion": (fa.deletion, {"features_per_step": row}, None, {}),
        "insertion": (fa.insertion, {"features_per_step": row}, None, {}),
        "pixel_flipping": (fa.pixel_flipping, {"features_per_step": row, "baseline": "min", "softmax": True},  # noqa: E501
                           "PixelFlipping", {"features_in_step": row, "perturb_baseline": "black"}),
        "region_perturbation": (fa.region_perturbation,
                                {"patch_size": patch, "steps": 10 if quick else 100,
                                 "baseline": "min",
                                 "softmax": True},
                                "RegionPerturbation", {"patch_size": patch, "regions_evaluation": 10 if quick else 100,  # noqa: E501
                                                       "perturb_baseline": "black"}),
        "selectivity": (fa.selectivity, {"patch_size": patch, "baseline": "min", "softmax": True},
                        "Selectivity", {"patch_size": patch, "perturb_baseline": "black"}),
        "faithfulness_estimate": (fa.faithfulness_estimate,
                                  {"features_per_step": row, "baseline": "min", "softmax": True},
                                  "FaithfulnessEstimate", {"features_in_step": row, "perturb_baseline": "black"}),  # noqa: E501
        "monotonicity": (fa.monotonicity, {"features_per_step": row, "baseline": "min"},
                         "Monotonicity", {"features_in_step": row, "perturb_baseline": "black"}),
        "monotonicity_correlation": (fa.monotonicity_correlation,
                                     {"features_per_step": size * size // 16, "n_samples": 10},
                                     "MonotonicityCorrelation",
                                     {"features_in_step": size * size // 16, "nr_samples": 10}),
        "irof": (fa.irof, {"baseline": "mean"}, "IROF", {"perturb_baseline": "mean", "return_aggregate": False}),  # noqa: E501
    }


class CountingModel(torch.nn.Module):
    """Counts the images pushed through ``model``."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += x.shape[0]
        return self.model(x)


def _push(model, inputs, n_images: int, batch_size: int) -> None:
    with torch.inference_mode():
        for start in range(0, n_images, batch_size):
            model(inputs[: min(batch_size, n_images - start)])


def floor_time(model, image_shape, n_images: int, batch_size: int, repeats: int) -> float:
    """Time of pushing ``n_images`` through ``model`` in batches of ``batch_size``
    (inputs preallocated)."""
    inputs = torch.rand((batch_size,) + tuple(image_shape),
                        generator=torch.Generator().manual_seed(1))
    return median_time(lambda: _push(model, inputs, n_images, batch_size), repeats=repeats)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_batch_size(model, image_shape, candidates, repeats: int) -> int:
    n = max(candidates) * 2
    times = {m: floor_time(model, image_shape, n, m, repeats) for m in candidates}
    return min(times, key=times.get)


def run_floor(batch, size, names, repeats, quick):
    x, a, target = make_inputs(batch, size)
    model = small_cnn()
    candidates = [8] if quick else [16, 32, 64, 128, 256]
    best = best_batch_size(model, x.shape[1:], candidates, repeats)
    rows = []
    inputs = torch.rand((best,) + tuple(x.shape[1:]), generator=torch.Generator().manual_seed(1))
    for name in names:
        kernel, options, _, _ = configs(size, quick)[name]
        counter = CountingModel(model)
        call = lambda: kernel(counter, x, a, target, max_batch_size=best,  # noqa: E731
                              generator=torch.Generator().manual_seed(0), **options)
        call()  # warm-up, and count the images the metric pushes through the model
        images = counter.images
        _push(model, inputs, images, best)
        # Interleaved runs, minimum of each: on a shared CPU the minimum is the least disturbed run.
        ours, floor = math.inf, math.inf
        for _ in range(repeats):
            ours = min(ours, _seconds(call))
            floor = min(floor, _seconds(lambda: _push(model, inputs, images, best)))  # noqa: B023
        rows.append({"metric": name, "images": images, "batch": best, "ours_s": ours,
                     "floor_s": floor,
                     "ours/floor": ours / floor})
        print("  ...", rows[-1], flush=True)
    return rows


def run_quantus(batch, size, names, repeats, quick, model_kind):
    import quantus

    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # Quantus 0.6.0 on numpy >= 2.4
    x, a, target = make_inputs(batch, size)
    model = small_cnn() if model_kind == "cnn" else linear_model(1, size)
    x_np, a_np, y_np = x.numpy(), a.numpy(), target.numpy()
    rows = []
    for name in names:
        kernel, options, quantus_name, quantus_options = configs(size, quick)[name]
        if quantus_name is None:
            continue
        metric = getattr(quantus, quantus_name)(abs=False, normalise=False, disable_warnings=True,
                                                 **quantus_options)
        softmax = options.get("softmax",
                              name in ("monotonicity", "monotonicity_correlation", "irof"))

        def theirs():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return metric(model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np, device="cpu",
                              softmax=softmax, batch_size=batch)

        def ours():
            return kernel(model, x, a, target, max_batch_size=batch,
                          generator=torch.Generator().manual_seed(0),
                          **options)

        # Quantus runs once, without warm-up (minutes per call in the full run).
        try:
            t_quantus = median_time(theirs, repeats=1, warmup=0)
        except Exception as error:  # noqa: BLE001 - report Quantus' own failures in the table
            t_quantus = math.nan
            print(
                f"  ... Quantus {quantus_name} failed: {type(error).__name__}: "
                f"{str(error)[:120]}", flush=True)
        t_ours = median_time(ours, repeats=repeats, warmup=0 if quick else 1)
        rows.append({"metric": name, "model": model_kind, "quantus_s": t_quantus, "ours_s": t_ours,
                     "speed-up": t_quantus / t_ours})
        print("  ...", rows[-1], flush=True)
    return rows


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def memory_child(batch: int, size: int, max_batch_size: int) -> None:
    x, a, target = make_inputs(batch, size)
    model = small_cnn()
    with torch.inference_mode():
        model(x[:1])  # load kernels before measuring
    # The peak RSS survives fork + exec on Linux (a child starts at its parent's peak): reset it to
    # the current RSS where the kernel allows (/proc/self/clear_refs "5"), else fall back to
    # ru_maxrss.
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        before, peak = _status_kib("VmRSS"), "VmHWM"
    except OSError:
        before, peak = None, None
    if before is None or peak is None:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fa.deletion(model, x, a, target, features_per_step=size, max_batch_size=max_batch_size)
    after = _status_kib(peak) if peak else None
    if after is None:
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{before} {after}")


def run_memory(batch, size, sizes):
    rows = []
    for m in sizes:
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(m), "--batch",
                              str(batch),
                              "--size", str(size)], capture_output=True, text=True, check=True)
        before, after = (int(v) for v in out.stdout.split())
        rows.append({"max_batch_size": m, "rss_before_MiB": before / 1024, "peak_MiB": after / 1024,
                     "growth_MiB": (after - before) / 1024})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="B=2, 16x16, 1 repeat: a smoke run")
    parser.add_argument("--metrics", nargs="*", default=None)
    parser.add_argument("--no-quantus", action="store_true")
    parser.add_argument("--models", nargs="*", default=["cnn", "linear"], choices=["cnn", "linear"],
                        help="models for the Quantus comparison (quick: linear only)")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (on a busy shared CPU, 1 avoids waiting at parallel-region barriers)",
    )
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        memory_child(args.batch, args.size, args.memory_child)
        return 0
    if args.quick:
        args.batch, args.size, args.repeats = 2, 16, 1
    names = args.metrics or list(configs(args.size, args.quick))
    print(machine_line(), f"| load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"B={args.batch}, 1x{args.size}x{args.size}, median of {args.repeats}\n")
    start = time.perf_counter()
    if not args.no_floor:
        print(f"Model-work floor (small CNN; interleaved, minimum of {args.repeats})")
        print_table(run_floor(args.batch, args.size, names, args.repeats, args.quick),
                    ["metric", "images", "batch", "ours_s", "floor_s", "ours/floor"])
        print()
    if not args.no_quantus:
        for kind in ("linear",) if args.quick else args.models:
            print(
                "Against Quantus 0.6.0 "
                f"({'small CNN' if kind == 'cnn' else 'single linear layer'})")
            print_table(run_quantus(args.batch, args.size, names, args.repeats, args.quick, kind),
                        ["metric", "model", "quantus_s", "ours_s", "speed-up"])
            print()
    if not args.no_memory:
        print("Peak memory of deletion vs. max_batch_size (fresh process per setting)")
        sizes = [2] if args.quick else [8, 32, 128, 512]
        print_table(run_memory(args.batch, args.size, sizes),
                    ["max_batch_size", "rss_before_MiB", "peak_MiB", "growth_MiB"])
    print(f"\ntotal {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
