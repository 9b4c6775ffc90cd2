"""ROAD, random-subset faithfulness, sufficiency and axiomatic kernels: floor and Quantus timings.

Covers road, infidelity, faithfulness_correlation, sensitivity_n, sufficiency, completeness and
non_sensitivity, timed against the model-work floor and against Quantus 0.6.0.

Usage::

    python benchmarks/bench_road_subsets_axiomatic.py              # B=64 small CNN, 1x224x224 (ROAD: B=2)
    python benchmarks/bench_road_subsets_axiomatic.py --quick      # a smoke run in seconds
    python benchmarks/bench_road_subsets_axiomatic.py --metrics road --road-batch 4

Tables, all measured in the same run on the same inputs:

1. **Floor** (small CNN): for each metric, our time (validation and the unperturbed pass
   included) divided by the *model-work floor*: the time of pushing the same number of images
   through the same model at its best batch size (of a few candidates), on a preallocated
   input, without the metric. For ROAD the floor leaves out the imputation, which is the
   metric's own work, so its ratio shows what the imputation costs on top of the model.
2. **Quantus** (small CNN, then a single linear layer where the metric machinery is all that
   costs): Quantus' class call on numpy inputs vs. our kernel on tensors at equal settings, and
   the speed-up. Where Quantus' algorithm differs from the paper (infidelity, sensitivity-n),
   the settings give both the same number of model evaluations per sample. ROAD runs on
   single-channel images (Quantus' ROAD fails on colour images) with Quantus' 50 percentages;
   its time is also reported per image.

The CPU may be shared with other jobs: the load average is printed with the machine line, and
torch runs with ``--threads`` threads (default 1: on a loaded two-core machine, two threads
waiting on each other make timings erratic).
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
from _timing import machine_line, median_time, print_table  # noqa: E402

from xaiscore.functional import axiomatic as ax  # noqa: E402
from xaiscore.functional.faithfulness import random_perturbations as fr  # noqa: E402
from xaiscore.functional.faithfulness.road import QUANTUS_ROAD_PERCENTAGES, road  # noqa: E402
from xaiscore.functional.faithfulness.sufficiency import sufficiency  # noqa: E402


def small_cnn(channels: int = 1, classes: int = 10, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)  # benchmark-only model initialisation
    return torch.nn.Sequential(
        torch.nn.Conv2d(channels, 8, 5, stride=2, padding=2), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 5, stride=2, padding=2), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(256, classes),
    ).eval()


def linear_model(size: int, classes: int = 10, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(size * size, classes)).eval()


def make_inputs(batch: int, size: int, seed: int = 0):
    """Images in [0, 1] and smooth attribution maps (upsampled noise, no ties: Quantus' sorts are
    unstable)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, size, size, generator=generator)
    coarse = torch.rand(batch, 1, max(1, size // 8), max(1, size // 8), generator=generator)
    a = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear",
                                        align_corners=False)
    a = a + 1e-3 * torch.rand(a.shape, generator=generator)
    target = torch.randint(0, 10, (batch,), generator=generator)
    return x, a, target


class Case:
    """One metric's settings: ours and Quantus', the input size and batch."""

    def __init__(self, kernel, options, quantus_name, quantus_options, *, size, batch,
                 softmax=False):
        self.kernel, self.options = kernel, options
        self.quantus_name, self.quantus_options = quantus_name, quantus_options
        self.size, self.batch, self.softmax = size, batch, softmax


def cases(args) -> dict[str, Case]:
    size, batch, quick = args.size, args.batch, args.quick
    # 56 at 224: 16 squares, so Quantus' cumulative raster removal stays affordable
    patch = max(2, size // 4)
    quantus_patches = (size // patch) ** 2
    repeats = 2 if quick else 10
    step = max(1, (size * size) // (8 if quick else 112))
    while (size * size) % step:
        step -= 1  # Quantus asserts that the step divides the number of pixels
    quantus_steps = size * size // step
    sizes = 4 if quick else 10
    subsets = max(2, round(quantus_steps / sizes))
    ns_size = args.ns_size
    return {
        # Quantus removes every square once per repeat (identical repeats): patches x repeats images
        # per sample.
        "infidelity": Case(fr.infidelity, {"patch_sizes": (patch,), "n_perturbations": quantus_patches * repeats,  # noqa: E501
                                           "baseline": "min", "normalize": False},
                           "Infidelity", {"perturb_patch_sizes": [patch], "n_perturb_samples": repeats,  # noqa: E501
                                          "perturb_baseline": "black"}, size=size, batch=batch),
        "faithfulness_correlation": Case(
            fr.faithfulness_correlation, {"subset_size": min(224, size * size // 2),
                                          "n_runs": 10 if quick else 100,
                                          "baseline": "min", "reduce_channels": None},
            "FaithfulnessCorrelation", {"subset_size": min(224, size * size // 2), "nr_runs": 10 if quick else 100,  # noqa: E501
                                        "perturb_baseline": "black", "return_aggregate": False},
            size=size, batch=batch),
        # Quantus' SensitivityN flips sorted features cumulatively (one image per step); ours draws
        # random subsets: equal images per sample.
        "sensitivity_n": Case(fr.sensitivity_n, {"n_subsets": subsets, "baseline": "min", "reduce_channels": None,  # noqa: E501
                                                 "softmax": True},
                              "SensitivityN", {"features_in_step": step, "n_max_percentage": 1.0,
                                               "perturb_baseline": "black", "return_aggregate": False},  # noqa: E501
                              size=size, batch=batch, softmax=True),
        "sufficiency": Case(sufficiency, {"normalise": "batch"}, "Sufficiency", {}, size=size, batch=batch,  # noqa: E501
                            softmax=True),
        "completeness": Case(ax.completeness, {"baseline": "min"}, "Completeness", {"perturb_baseline": "black"},  # noqa: E501
                             size=size, batch=batch),
        # One image per element: a small (MNIST-sized) input keeps Quantus' run affordable.
        "non_sensitivity": Case(ax.non_sensitivity, {"baseline": "min", "reduce_channels": None,
                                                     "normalise": "batch"},
                                "NonSensitivity", {"perturb_baseline": "black"}, size=ns_size, batch=batch,  # noqa: E501
                                softmax=True),
        "road": Case(road, {"percentages": QUANTUS_ROAD_PERCENTAGES[::10] if quick else QUANTUS_ROAD_PERCENTAGES},  # noqa: E501
                     "ROAD", {"percentages": list(QUANTUS_ROAD_PERCENTAGES[::10] if quick
                                                  else QUANTUS_ROAD_PERCENTAGES)},
                     size=size, batch=args.road_batch, softmax=True),
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


def call_ours(case: Case, model, x, a, target, max_batch_size):
    options = dict(case.options)
    if case.kernel is not sufficiency:
        options["generator"] = torch.Generator().manual_seed(0) if case.kernel in (
            fr.infidelity, fr.faithfulness_correlation, fr.sensitivity_n, road) else None
        if options["generator"] is None:
            del options["generator"]
        return case.kernel(model, x, a, target, max_batch_size=max_batch_size, **options)
    return case.kernel(model, x, a, max_batch_size=max_batch_size, **options)


def floor_time(model, image_shape, n_images: int, batch_size: int, repeats: int) -> float:
    inputs = torch.rand((batch_size,) + tuple(image_shape),
                        generator=torch.Generator().manual_seed(1))

    def push():
        with torch.inference_mode():
            for start in range(0, n_images, batch_size):
                model(inputs[: min(batch_size, n_images - start)])

    return median_time(push, repeats=repeats)


def best_batch_size(model, image_shape, candidates, repeats: int) -> int:
    times = {m: floor_time(model, image_shape, max(candidates) * 2, m, repeats) for m in candidates}
    return min(times, key=times.get)


def run_floor(args, names):
    model = small_cnn()
    rows = []
    best_by_size: dict[int, int] = {}
    for name in names:
        case = cases(args)[name]
        x, a, target = make_inputs(case.batch, case.size)
        if case.size not in best_by_size:
            candidates = [8] if args.quick else [16, 32, 64, 128]
            best_by_size[case.size] = best_batch_size(model, x.shape[1:], candidates, args.repeats)
        best = best_by_size[case.size]
        counter = CountingModel(model)
        call_ours(case, counter, x, a, target, best)
        images = counter.images
        ours = median_time(lambda: call_ours(case, model, x, a, target, best), repeats=args.repeats,
                           warmup=0)
        floor = floor_time(model, x.shape[1:], images, best, args.repeats)
        rows.append({"metric": name, "B": case.batch, "size": case.size, "images": images,
                     "batch": best,
                     "ours_s": ours, "floor_s": floor, "ours/floor": ours / floor})
    return rows


def run_quantus(args, names, model_kind):
    import quantus

    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # Quantus 0.6.0 on numpy >= 2.4
    rows = []
    for name in names:
        case = cases(args)[name]
        x, a, target = make_inputs(case.batch, case.size)
        model = small_cnn() if model_kind == "cnn" else linear_model(case.size)
        metric = getattr(quantus, case.quantus_name)(abs=False, normalise=False,
                                                     disable_warnings=True,
                                                     **case.quantus_options)
        # their paper/Quantus defaults: |a|, normalised
        if name in ("sufficiency", "non_sensitivity"):
            metric = getattr(quantus, case.quantus_name)(disable_warnings=True,
                                                         **case.quantus_options)
        x_np, a_np, y_np = x.numpy(), a.numpy(), target.numpy()

        def theirs():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return metric(model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np, device="cpu",
                              softmax=case.softmax, batch_size=case.batch)

        # minutes per call at full size: run once
        t_quantus = median_time(theirs, repeats=1, warmup=0)
        t_ours = median_time(lambda: call_ours(case, model, x, a, target, 64), repeats=args.repeats,
                             warmup=0 if args.quick else 1)
        row = {"metric": name, "model": model_kind, "B": case.batch, "size": case.size,
               "quantus_s": t_quantus,
               "ours_s": t_ours, "speed-up": t_quantus / t_ours}
        if name == "road":
            row["quantus_s/img"], row["ours_s/img"] = t_quantus / case.batch, t_ours / case.batch
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--road-batch", type=int, default=2,
                        help="images for ROAD (Quantus: ~20-40 s each)")
    parser.add_argument("--ns-size", type=int, default=28,
                        help="image side for non_sensitivity (1 image/pixel)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="B=2, 16x16, 1 repeat: a smoke run")
    parser.add_argument("--metrics", nargs="*", default=None)
    parser.add_argument("--no-quantus", action="store_true")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--no-linear", action="store_true",
                        help="skip the Quantus table with a linear model")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args) -> int:
    if args.quick:
        args.batch, args.size, args.road_batch, args.ns_size, args.repeats = 2, 16, 1, 8, 1
    names = args.metrics or list(cases(args))
    print(machine_line(), f"| load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"B={args.batch} (ROAD: {args.road_batch}), 1x{args.size}x{args.size} (non_sensitivity: "
          f"{args.ns_size}x{args.ns_size}), median of {args.repeats}\n")
    start = time.perf_counter()
    if not args.no_floor:
        print("Model-work floor (small CNN)")
        print_table(run_floor(args, names), ["metric", "B", "size", "images", "batch", "ours_s",
                                             "floor_s",
                                             "ours/floor"])
        print()
    if not args.no_quantus:
        kinds = ("cnn",) if args.no_linear else ("cnn", "linear")
        for kind in ("linear",) if args.quick else kinds:
            print(
                "Against Quantus 0.6.0 "
                f"({'small CNN' if kind == 'cnn' else 'single linear layer'})")
            print_table(run_quantus(args, names, kind),
                        ["metric", "model", "B", "size", "quantus_s", "ours_s",
                         "speed-up", "quantus_s/img", "ours_s/img"])
            print()
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
