"""Multi-pass explainers against their model floor: IG, SmoothGrad, GradientShap
(and Saliency for scale).

Usage::

    python benchmarks/bench_explainer_floor.py             # B=32, 1x224x224, small CNN and ResNet-like CNN
    python benchmarks/bench_explainer_floor.py --quick     # a smoke run in seconds

For each model and method, on the same inputs in the same process:

* **floor**: the pure model work of the explanation: forward and backward passes (autograd of the
  target logits with respect to the inputs) of ``B x passes`` inputs (IG: ``n_steps``, SmoothGrad:
  ``nt_samples``, GradientShap: ``n_samples``, Saliency: 1), preallocated, in chunks of the best
  batch size (the fastest of ``--sizes``, measured first), nothing else;
* **ours**: ``captum_explainer(model, method, max_batch_size=best)(x, target)``: the passes of all
  ``B`` inputs grouped into passes of at most ``best`` inputs;
* **one pass**: the same explainer with everything in one pass (``max_batch_size`` above ``B x
  passes``), which is what captum does by default and what the adapter did before issue 23.

Floor and explainer runs alternate (``--repeats`` pairs after a warm-up of each); the ratios are
medians of per-pair ratios. Times are the process's CPU time (``--clock cpu``, default) with
``--threads`` torch threads (default 1): the VM is shared with other jobs.
"""  # noqa: E501

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(__file__))
import _timing  # noqa: E402
from _models import resnet_like, small_cnn  # noqa: E402
from _timing import machine_line, median_time, paired_times, print_table  # noqa: E402

from xaiscore.explainers import captum_explainer  # noqa: E402

MODELS = {"small_cnn": small_cnn, "resnet_like": resnet_like}


def methods(quick: bool) -> dict[str, tuple[dict, int]]:
    steps, samples = (4, 3) if quick else (16, 10)
    return {
        "Saliency": ({}, 1),
        "IntegratedGradients": ({"n_steps": steps}, steps),
        "SmoothGrad": ({"nt_samples": samples}, samples),
        "GradientShap": ({"n_samples": 5}, 5),
    }


def floor_run(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, n_inputs: int,
              size: int):
    """Forward + backward of ``n_inputs`` inputs in chunks of ``size`` (inputs tiled from ``x``)."""
    reps = -(-size // x.shape[0])
    xs, ts = x.repeat(reps, 1, 1, 1)[:size], target.repeat(reps)[:size]
    full, rest = divmod(n_inputs, size)

    def one(inputs: torch.Tensor, targets: torch.Tensor) -> None:
        inputs = inputs.detach().requires_grad_(True)
        out = model(inputs)
        torch.autograd.grad(out.gather(1, targets[:, None]).sum(), inputs)

    def run() -> None:
        for _ in range(full):
            one(xs, ts)
        if rest:
            one(xs[:rest], ts[:rest])

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.sizes, args.repeats = 4, 32, [4, 8], 1
    torch.set_num_threads(args.threads)
    clock = _timing.time
    # paired_times and median_time read the clock through _timing.time.perf_counter
    if args.clock == "cpu":
        class _CpuClock:
            perf_counter = staticmethod(time.process_time)

        _timing.time = _CpuClock
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run(args)
    finally:
        _timing.time = clock
    return 0


def run(args: argparse.Namespace) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Machine: {machine_line()}, load average {load:.1f}; {args.clock} clock")
    print(
        f"B={args.batch}, 1x{args.size}x{args.size}; medians of {args.repeats} alternating pair(s)")
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 1, args.size, args.size, generator=generator)
    target = torch.arange(args.batch) % 10
    rows = []
    for model_name in args.models:
        model = MODELS[model_name]()
        per_input = {size: median_time(floor_run(model, x, target, 2 * max(args.sizes), size),
                                       repeats=2)
                     for size in args.sizes}
        best = min(per_input, key=per_input.get)
        for method, (options, passes) in methods(args.quick).items():
            n_inputs = args.batch * passes
            ours = captum_explainer(model, method, max_batch_size=best, seed=0, **options)
            one_pass = captum_explainer(model, method, max_batch_size=max(n_inputs, 1), seed=0,
                                        **options)
            floor = floor_run(model, x, target, n_inputs, best)
            ours_time, floor_time, ratio = paired_times(lambda: ours(x, target), floor,
                                                        repeats=args.repeats)
            one_time, _, one_ratio = paired_times(lambda: one_pass(x, target), floor,
                                                  repeats=args.repeats)
            rows.append({"model": model_name, "method": method, "model inputs": n_inputs,
                         "best batch": best,
                         "floor "
                         "s": floor_time, "ours s": ours_time, "ours/floor": ratio, "one pass s": one_time,  # noqa: E501
                         "one pass/floor": one_ratio})
    print_table(rows, ["model", "method", "model inputs", "best batch", "floor s", "ours s",
                       "ours/floor",
                       "one pass s", "one pass/floor"])


if __name__ == "__main__":
    raise SystemExit(main())
