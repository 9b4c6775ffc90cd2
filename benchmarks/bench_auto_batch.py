"""``max_batch_size="auto"`` against every fixed batch size, for deletion and max-sensitivity on two
CNNs.

Usage::

    python benchmarks/bench_auto_batch.py              # B=32, 1x224x224, small CNN and ResNet-like CNN
    python benchmarks/bench_auto_batch.py --quick      # a smoke run in seconds
    python benchmarks/bench_auto_batch.py --models wide_cnn --threads 2

For each model and kernel, on the same inputs in the same process: the kernel with each fixed
``max_batch_size`` of ``--sizes`` and with ``"auto"``, in rounds (every size once per round, the
order rotated from round to round; ``--repeats`` rounds), medians per size. ``auto`` is timed
after one warm-up call, i.e. with its choice cached, as every call after a process's first; the
first call (probe included, on a fresh cache) is timed separately. The goal (issue 23): auto
within 10 % of the best fixed size.

Kernels: ``deletion`` (20 steps, zero substrate, the target probability) and ``max_sensitivity``
(10 noisy copies per sample, uniform noise 0.2, captum Saliency). Times are CPU time of the
process (``--clock cpu``, default) with ``--threads`` torch threads (default 1): this VM is shared
with other jobs.
"""  # noqa: E501

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _models import resnet_like, small_cnn, wide_cnn  # noqa: E402
from _timing import machine_line, print_table  # noqa: E402

from xaiscore._engine import auto_batch  # noqa: E402
from xaiscore.explainers import captum_explainer  # noqa: E402
from xaiscore.functional import deletion, max_sensitivity  # noqa: E402

MODELS = {"small_cnn": small_cnn, "resnet_like": resnet_like, "wide_cnn": wide_cnn}


def kernel_call(name: str, model: torch.nn.Module, x: torch.Tensor, a: torch.Tensor,
                y: torch.Tensor, steps: int,
                samples: int):
    if name == "deletion":
        per_step = max(1, x[0].numel() // steps)
        return lambda size: deletion(model, x, a, y, features_per_step=per_step, softmax=True,
                                     max_batch_size=size)
    explain = captum_explainer(model, "Saliency")
    return lambda size: max_sensitivity(x, a, y, explain_fn=explain, n_samples=samples, radius=0.2,
                                        seed=0,
                                        max_batch_size=size)


def chosen_size(name: str) -> str:
    """The sizes auto chose at the kernel's main call site (the one with the most items)."""
    sites = {"deletion": "perturbation.py", "max_sensitivity": "noise.py"}[name]
    sizes = {choice for key, choice in auto_batch.cached_choices().items()
             if sites in str(getattr(key[0], "co_filename", "")) and key[1].auto}
    return "/".join(str(s) for s in sorted(sizes, key=str)) or "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=20, help="deletion steps")
    parser.add_argument("--samples", type=int, default=10, help="max_sensitivity noisy copies")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256])
    parser.add_argument("--models", nargs="+", default=["small_cnn", "resnet_like"],
                        choices=list(MODELS))
    parser.add_argument("--kernels", nargs="+", default=["deletion", "max_sensitivity"],
                        choices=["deletion", "max_sensitivity"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.steps, args.samples, args.sizes, args.repeats = (4, 32, 4, 2,
                                                                                     [2, 8], 1)
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    warnings.filterwarnings("ignore")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Machine: {machine_line()}, load average {load:.1f}; {args.clock} clock")
    print(
        f"B={args.batch}, 1x{args.size}x{args.size}; deletion {args.steps} steps; max_sensitivity "
        f"{args.samples} copies (Saliency); medians of {args.repeats} rotated round(s)")
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 1, args.size, args.size, generator=generator)
    a = torch.rand(args.batch, 1, args.size, args.size, generator=generator)
    y = torch.arange(args.batch) % 10
    rows = []
    for model_name in args.models:
        model = MODELS[model_name]()
        for kernel in args.kernels:
            run = kernel_call(kernel, model, x, a, y, args.steps, args.samples)
            auto_batch.clear_cache()
            start = clock()
            run("auto")  # the first call: probe included
            first = clock() - start
            options: list[int | str] = list(args.sizes) + ["auto"]
            for size in options:  # warm-up of every size
                run(size)
            times: dict[object, list[float]] = {size: [] for size in options}
            for repeat in range(args.repeats):
                shift = repeat % len(options)
                for size in options[shift:] + options[:shift]:
                    start = clock()
                    run(size)
                    times[size].append(clock() - start)
            median = {size: statistics.median(t) for size, t in times.items()}
            fixed = {size: median[size] for size in args.sizes}
            best = min(fixed, key=fixed.get)
            row = {"model": model_name, "kernel": kernel, **{str(s): median[s] for s in args.sizes},
                   "auto": median["auto"], "auto chose": chosen_size(kernel), "best fixed": best,
                   "auto/best": median["auto"] / fixed[best], "auto/64": median["auto"] / fixed.get(64, float("nan")),  # noqa: E501
                   "first auto/best": first / fixed[best]}
            rows.append(row)
    columns = ["model", "kernel"] + [str(s) for s in args.sizes] + ["auto", "auto chose",
                                                                    "best fixed", "auto/best",
                                                                    "auto/64", "first auto/best"]
    print(
        "\nSeconds per call (median), auto against the best fixed size; 'first auto': a fresh "
        "process's first call")
    print_table(rows, columns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
