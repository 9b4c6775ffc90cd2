"""RISE against its model-work floor, a plain per-mask loop and captum's per-sample FeatureAblation.

Usage::

    python benchmarks/bench_explainers.py          # B=4, 1x224x224, N=500 masks, CNN and linear
    python benchmarks/bench_explainers.py --quick    # a smoke run in seconds
    python benchmarks/bench_explainers.py --models cnn wide_cnn --masks 4000 --threads 1

Per model, on the same inputs in the same process:

1. **Model-work floor**: the same number of forward passes (``N * B`` masked inputs) in the same
   chunk sizes, on masked inputs built beforehand (a pool of real chunks of up to
   ``--pool-mb`` MB, cycled), under ``torch.inference_mode()``, nothing else: no mask generation,
   no masking, no softmax, no weighted sum. RISE and the floor alternate (``--repeats`` pairs
   after a warm-up of each), the ratio is the median of the per-pair ratios, at every candidate
   ``max_batch_size``; the goal is at most 1.2 at the best batch size (the fastest floor).
2. **Plain loop over masks**: what one writes without batching: masks precomputed, then for every
   mask one model call on the ``B`` masked inputs and an accumulation (same masks, same result).
3. **captum FeatureAblation, per sample**: captum's perturbation explainer as commonly used, one
   sample at a time with its default ``perturbations_per_eval=1``, over an 8 x 8 grid (65 model
   calls per sample). It computes something else, so compare time per model input.

On a near-free model (``linear``) the floor is almost nothing and the ratio measures RISE's own
work (mask generation, masking, the weighted sum) instead. The CPU may be shared with other jobs:
the load average is printed before each table; ``--threads 1 --clock cpu`` (the process's CPU
time instead of wall time) gives steadier numbers there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(__file__))
import _timing  # noqa: E402
from _models import wide_cnn  # noqa: E402
from _timing import machine_line, paired_times, print_table  # noqa: E402

from xaiscore.explainers import grid_feature_mask, rise_explainer  # noqa: E402

CLASSES = 10
MODELS = {"cnn": "small CNN", "wide_cnn": "wide CNN", "linear": "linear"}


def small_cnn(seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # benchmark-only model initialisation
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 5, stride=2, padding=2),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 5, stride=2, padding=2),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(4),
            torch.nn.Flatten(),
            torch.nn.Linear(256, CLASSES),
        ).eval()


def linear_model(size: int, seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(size * size, CLASSES)).eval()


def floor_runner(model, explain, x: torch.Tensor, batch_size: int, pool_bytes: int):
    """The model calls RISE makes at ``batch_size``, on prebuilt masked inputs (a pool, cycled)."""
    n, spatial = x.shape[0], tuple(x.shape[2:])
    n_masks = explain.n_masks
    masks_per_chunk = max(1, batch_size // n)
    chunk_sizes = [
        min(masks_per_chunk, n_masks - start) * n for start in range(0, n_masks, masks_per_chunk)
    ]
    per_chunk = masks_per_chunk * n * x[0].numel() * x.element_size()
    pool = []
    for index, start in enumerate(range(0, n_masks, masks_per_chunk)):
        if index * per_chunk > pool_bytes:
            break
        masks = explain.masks(spatial, start, min(start + masks_per_chunk, n_masks))
        pool.append((masks[:, None, None] * x[None]).reshape((-1,) + tuple(x.shape[1:])))

    def run() -> None:
        with torch.inference_mode():
            for index, size in enumerate(chunk_sizes):
                chunk = pool[index % len(pool)]
                model(chunk if chunk.shape[0] == size else chunk[:size])

    return run, len(chunk_sizes)


def plain_loop(model, explain, x: torch.Tensor, target: torch.Tensor):
    masks = explain.masks(tuple(x.shape[2:]))  # precomputed, as a user's loop would

    def run() -> torch.Tensor:
        saliency = torch.zeros((x.shape[0],) + tuple(x.shape[2:]))
        with torch.inference_mode():
            for mask in masks:
                p = torch.softmax(model(x * mask), 1).gather(1, target[:, None])
                saliency += p[:, :, None] * mask if x.ndim == 4 else p * mask
        return saliency / (explain.n_masks * explain.p)

    return run


def captum_feature_ablation(model, x: torch.Tensor, target: torch.Tensor):
    from captum.attr import FeatureAblation

    ablation = FeatureAblation(model)
    mask = grid_feature_mask(tuple(x.shape[2:]), 8)

    def run() -> None:
        for i in range(x.shape[0]):
            ablation.attribute(x[i : i + 1], target=target[i : i + 1], feature_mask=mask)

    return run


class _ProcessClock:
    """Stands in for ``time`` in ``_timing``: ``perf_counter`` reads the process's CPU time."""

    perf_counter = staticmethod(time.process_time)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--masks", type=int, default=500)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--pool-mb", type=int, default=256, help="memory for the floor's prebuilt inputs"
    )
    parser.add_argument("--models", nargs="+", default=["cnn", "linear"], choices=list(MODELS))
    parser.add_argument(
        "--no-baselines", action="store_true", help="skip the plain loop and captum"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: this process's CPU time (steadier on a shared machine, 1 thread)",
    )
    args = parser.parse_args(argv)
    original = _timing.time
    if args.clock == "cpu":  # paired_times reads the clock through _timing.time.perf_counter
        _timing.time = _ProcessClock()
    try:
        return _run(args)
    finally:
        _timing.time = original


def _run(args: argparse.Namespace) -> int:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.batch, args.size, args.masks, args.repeats, args.batch_sizes = 2, 32, 40, 1, [8, 16]
    warnings.filterwarnings("ignore")
    print(f"machine: {machine_line()}; load average {os.getloadavg()[0]:.2f} (CPU may be shared)")
    print(
        f"B={args.batch}, 1x{args.size}x{args.size}, RISE N={args.masks} masks, s=7, p=0.5, "
        f"{args.clock} clock"
    )
    x = torch.rand(args.batch, 1, args.size, args.size, generator=torch.Generator().manual_seed(0))
    builders = {"cnn": small_cnn, "wide_cnn": wide_cnn, "linear": lambda: linear_model(args.size)}
    for key in args.models:
        model = builders[key]()
        with torch.no_grad():
            target = model(x).argmax(1)
        inputs = args.masks * args.batch
        print(
            f"\n{MODELS[key]}: {inputs} model inputs per explanation; "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        rows, best = [], None
        for batch_size in args.batch_sizes:
            explain = rise_explainer(model, n_masks=args.masks, seed=0, max_batch_size=batch_size)
            floor, calls = floor_runner(model, explain, x, batch_size, args.pool_mb * 2**20)
            ours, base, ratio = paired_times(
                lambda: explain(x, target), floor, repeats=args.repeats
            )
            rows.append(
                {
                    "method": "RISE",
                    "max_batch_size": batch_size,
                    "model calls": calls,
                    "time s": ours,
                    "floor s": base,
                    "us/input": 1e6 * ours / inputs,
                    "ours/floor": ratio,
                }
            )
            if best is None or base < best[1]:
                best = (batch_size, base, ours, ratio)
        print_table(
            rows,
            [
                "method",
                "max_batch_size",
                "model calls",
                "time s",
                "floor s",
                "us/input",
                "ours/floor",
            ],
        )
        fastest = min(rows, key=lambda r: r["time s"])
        print(
            f"best floor at max_batch_size={best[0]}: RISE/floor = {best[3]:.3f} (paired); "
            f"fastest RISE {fastest['time s']:.3g} s at {fastest['max_batch_size']} = "
            f"{fastest['time s'] / best[1]:.3f} x the best floor"
        )
        if args.no_baselines:
            continue
        explain = rise_explainer(model, n_masks=args.masks, seed=0, max_batch_size=best[0])
        loop = plain_loop(model, explain, x, target)
        reference = loop()
        ours = explain(x, target)[:, 0]
        assert torch.allclose(ours, reference, rtol=1e-3, atol=1e-5), "the plain loop disagrees"
        fast, slow, ratio = paired_times(lambda: explain(x, target), loop, repeats=args.repeats)
        others = [
            {
                "method": f"RISE (max_batch_size={best[0]})",
                "model inputs": inputs,
                "time s": fast,
                "us/input": 1e6 * fast / inputs,
                "other/RISE": 1.0,
            },
            {
                "method": "plain loop over masks",
                "model inputs": inputs,
                "time s": slow,
                "us/input": 1e6 * slow / inputs,
                "other/RISE": ratio and 1 / ratio,
            },
        ]
        try:
            ablation = captum_feature_ablation(model, x, target)
        except ImportError:
            print("captum not installed: skipping FeatureAblation")
        else:
            clock = time.process_time if args.clock == "cpu" else time.perf_counter
            start = clock()
            ablation()
            elapsed = clock() - start
            per_input = elapsed / (args.batch * 65)
            others.append(
                {
                    "method": "captum FeatureAblation per sample (8x8 grid)",
                    "model inputs": args.batch * 65,
                    "time s": elapsed,
                    "us/input": 1e6 * per_input,
                    "other/RISE": per_input / (fast / inputs),
                }
            )
        print_table(others, ["method", "model inputs", "time s", "us/input", "other/RISE"])
        print(
            "(other/RISE: the plain loop's time over RISE's, paired; captum's time per model "
            "input over RISE's)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
