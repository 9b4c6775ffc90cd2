"""Peak memory of the model-based kernels against their budget: ROAD, deletion and max-sensitivity.

Usage::

    python benchmarks/bench_memory.py                       # 224 and 512, B=16, max_batch_size 64 and "256MB"
    python benchmarks/bench_memory.py --quick               # a smoke run in seconds
    python benchmarks/bench_memory.py --sizes 512 --budgets 64 32 "128MB" --kernels road

Every case runs in a fresh Python process (``python bench_memory.py --child ...``), so one case's
freed memory cannot hide the next one's growth: the child builds the model and inputs, reads its
resident set size (``VmRSS``), resets the kernel's high-water mark (``echo 5 >
/proc/self/clear_refs``), runs the kernel once and reads the peak (``VmHWM``). The growth is the
peak minus the resident size before the call.

The table gives the growth, the inputs' size (``x``), the budget's bytes (for an int
``max_batch_size``: that many items of ``x``'s per-sample size; a byte budget as given), the
documented per-kernel constant (:data:`CONSTANTS`: what the kernel keeps per image of the batch
besides the chunk: ranks, noise keys, attributions...) and the bound ``chunk * factor + constant *
B * item bytes + FIXED``, where ``chunk`` is the budget's bytes or the whole logical batch when
that is smaller, ``factor`` (:data:`FACTORS`) the chunk working set per byte of chunk input: the
model's activations (small CNN: 8 channels at half resolution, twice: conv and ReLU outputs,
about 4x the input; a model with larger activations needs a larger factor) plus the kernel's own
buffers, and :data:`FIXED` what a process's first large call adds whatever its size. Linux only
(``/proc``).
"""  # noqa: E501

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))

#: Chunk working set per byte of chunk input: the small CNN's activations (about 4x its input in
#: inference, twice that with the backward pass of an explanation) plus the kernel's chunk buffers.
FACTORS = {"road": 6.5, "deletion": 6.5, "max_sensitivity": 13.0}
#: What a kernel holds per sample of the batch besides the chunk, in units of one sample's input
#: size (ranks as int64, sort temporaries, attributions, the scores on x).
CONSTANTS = {"road": 4.0, "deletion": 8.0, "max_sensitivity": 4.0}
#: Model inputs per sample: ROAD's 9 percentages, deletion's 20 steps and the unperturbed input,
#: max-sensitivity's 10 copies (a budget above them all holds one chunk of everything).
ITEMS = {"road": 9, "deletion": 21, "max_sensitivity": 10}
#: Bytes a process's first large call adds whatever its size (allocator arenas, thread pools).
FIXED = 64e6


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(kernel: str, size: int, batch: int, budget: str, threads: int) -> dict:
    import torch

    from _models import small_cnn
    from xaiscore.explainers import captum_explainer
    from xaiscore.functional import deletion, max_sensitivity, road

    torch.set_num_threads(threads)
    model = small_cnn()
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, size, size, generator=generator)
    a = torch.rand(batch, 1, size, size, generator=generator)
    y = torch.arange(batch) % 10
    max_batch_size: int | str = int(budget) if budget.isdigit() else budget
    explain = captum_explainer(model, "Saliency")
    with torch.inference_mode():
        model(x[:1])  # load the kernels' code paths that every case shares
    calls = {
        "road": lambda: road(model, x, a, y, max_batch_size=max_batch_size, generator=generator),
        "deletion": lambda: deletion(model, x, a, y, features_per_step=size * size // 20,
                                     max_batch_size=max_batch_size),
        "max_sensitivity": lambda: max_sensitivity(x, a, y, explain_fn=explain, n_samples=10, seed=0,  # noqa: E501
                                                   max_batch_size=max_batch_size),
    }
    before = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    calls[kernel]()
    peak = _rss_kib("VmHWM")
    return {"growth": (peak - before) * 1024, "x": x.nbytes, "item": x[0].nbytes}


def budget_bytes(budget: str, item: int) -> int:
    from xaiscore._engine.auto_batch import parse_batch_policy

    if budget.isdigit():
        return int(budget) * item
    return parse_batch_policy(budget).budget() or 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=5,
                        metavar=("KERNEL", "SIZE", "BATCH", "BUDGET", "THREADS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 512])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--budgets", nargs="+", default=["64", "256MB"],
                        help="max_batch_size values: ints or byte budgets")
    parser.add_argument("--kernels", nargs="+", default=list(FACTORS), choices=list(FACTORS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.child:
        kernel, size, batch, budget, threads = args.child
        print(json.dumps(child(kernel, int(size), int(batch), budget, int(threads))))
        return 0
    if args.quick:
        args.sizes, args.batch, args.budgets = [32], 2, ["4", "1MB"]
    from _timing import machine_line, print_table

    print(
        f"Machine: {machine_line()}; every case in a fresh process; growth = peak RSS during the "
        f"call - RSS before it; B={args.batch}, small CNN, ROAD 9 percentages, deletion 20 steps, "
        "max_sensitivity 10 copies")
    rows = []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for kernel in args.kernels:
        for size in args.sizes:
            for budget in args.budgets:
                command = [sys.executable, os.path.abspath(__file__), "--child", kernel, str(size),
                           str(args.batch),
                           budget, str(args.threads)]
                out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                chunk = budget_bytes(budget, result["item"])
                chunk = min(chunk, result["item"] * args.batch * ITEMS[kernel])
                bound = FACTORS[kernel] * chunk + CONSTANTS[kernel] * result["x"] + FIXED
                rows.append({"kernel": kernel, "size": f"{size}x{size}", "max_batch_size": budget,
                             "growth MB": result["growth"] / 1e6, "x MB": result["x"] / 1e6,
                             "growth / x": result["growth"] / result["x"], "budget MB": chunk / 1e6,
                             "bound "
                             "MB": bound / 1e6, "within": "yes" if result["growth"] <= bound else "NO"})  # noqa: E501
    print_table(rows, ["kernel", "size", "max_batch_size", "growth MB", "x MB", "growth / x",
                       "budget MB",
                       "bound MB", "within"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
