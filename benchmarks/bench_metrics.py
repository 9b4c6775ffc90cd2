"""Metric classes (xaiscore.metrics): per-batch overhead of ``update`` and streaming memory.

Usage::

    python benchmarks/bench_metrics.py                 # B=64, 1x224x224; 10,000 streamed images
    python benchmarks/bench_metrics.py --quick         # a smoke run in seconds
    python benchmarks/bench_metrics.py --skip-stream   # the overhead table only

Two tables:

1. **Overhead**: the time of ``metric.update(a, mask)`` (and of ``metric(a, mask)``, which also
   computes the batch's value as Lightning's logging does) against calling the kernel on the
   same batch, alternating the two (``--repeats`` pairs of ``--calls`` calls each, after a
   warm-up); the ratio is the median of the per-pair ratios, so a shared machine's drift stays
   out of it. Goal: ``update`` within 5 % of the kernel for a localization metric at B=64,
   224 x 224.
2. **Streaming memory**: each group of metrics runs in a fresh process that generates the
   images batch by batch (nothing is kept but the metrics' states) and prints its resident
   memory after a quarter, half, three quarters and all of the batches, and its peak. Groups:
   every attribution-only per-sample metric (but ``mst_compactness``, seconds per batch; add it
   with ``--attribution-metrics``) together with a model-based one (deletion, on a linear
   model); per-class pointing accuracy (summed statistics); and the stored set-level metrics
   (sufficiency, consistency; ``--set-images`` images, since they keep every explanation).

The CPU may be shared with other jobs: the load average is printed with the machine line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import machine_line, paired_times, print_table  # noqa: E402

OVERHEAD_METRICS = [
    "pointing_game",
    "energy_pointing_game",
    "relevance_rank_accuracy",
    "sparseness",
]
SLOW = {"mst_compactness"}


def batch(
    b: int, size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Synthetic attribution maps, box masks and targets."""
    a = torch.rand(b, 1, size, size, generator=generator)
    corners = torch.randint(0, size // 2, (b, 2), generator=generator)
    rows = torch.arange(size)
    inside_r = (rows >= corners[:, :1]) & (rows < corners[:, :1] + size // 2)
    inside_c = (rows >= corners[:, 1:]) & (rows < corners[:, 1:] + size // 2)
    mask = (inside_r[:, :, None] & inside_c[:, None, :]).unsqueeze(1)
    return a, mask, torch.randint(0, 10, (b,), generator=generator)


def cpu_times(first, second, *, repeats: int) -> tuple[float, float]:
    """Median CPU time of this process for ``first()`` and ``second()``, alternated: steadier
    than wall time for small work on a machine that other jobs share."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((first, times[0]), (second, times[1])):
            start = time.process_time()
            fn()
            out.append(time.process_time() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def _timers(name: str, inputs: tuple[torch.Tensor, ...], calls: int):
    """Loops of ``calls`` kernel calls, ``update`` calls and ``forward`` calls on ``inputs``."""
    from xaiscore import metrics
    from xaiscore.specs import get_metric

    fn = get_metric(name).fn
    metric, caller = metrics.metric_class(name)(), metrics.metric_class(name)()

    def kernel() -> None:
        for _ in range(calls):
            fn(*inputs)

    def update() -> None:
        for _ in range(calls):
            metric.update(*inputs)

    def forward() -> None:
        for _ in range(calls):
            caller(*inputs)

    return kernel, update, forward


def overhead(args: argparse.Namespace) -> None:
    """Three views of the same cost: the wall-time ratio at full size (noisy on a shared
    machine: the class's own work is far below the kernel's run-to-run spread), the same ratio
    in this process's CPU time (steadier under other jobs' load), and the class's fixed CPU cost
    per ``update``, measured where the kernel is nearly free (8 x 8 maps, same B), over the
    full-size kernel's CPU time."""
    from xaiscore.specs import get_metric

    a, mask, _ = batch(args.batch, args.size, torch.Generator().manual_seed(0))
    small_a, small_mask, _ = batch(args.batch, 8, torch.Generator().manual_seed(0))
    rows = []
    for name in OVERHEAD_METRICS:
        attribution_only = get_metric(name).needs == {"a"}
        inputs = (a,) if attribution_only else (a, mask)
        kernel, update, forward = _timers(name, inputs, args.calls)
        u, k1, update_ratio = paired_times(update, kernel, repeats=args.repeats)
        _, _, forward_ratio = paired_times(forward, kernel, repeats=args.repeats)
        cpu_update, cpu_kernel = cpu_times(update, kernel, repeats=args.repeats)
        small = (small_a,) if attribution_only else (small_a, small_mask)
        small_kernel, small_update, _ = _timers(name, small, args.calls * 20)
        su, sk = cpu_times(small_update, small_kernel, repeats=args.repeats)
        fixed_ms = (su - sk) * 1e3 / (args.calls * 20)
        per_call = 1e3 / args.calls
        rows.append(
            {
                "metric": name,
                "kernel ms": k1 * per_call,
                "update ms": u * per_call,
                "update/kernel": update_ratio,
                "forward/kernel": forward_ratio,
                "update/kernel CPU": cpu_update / cpu_kernel,
                "kernel CPU ms": cpu_kernel * per_call,
                "fixed CPU ms (8x8)": fixed_ms,
                "fixed / kernel CPU": fixed_ms / (cpu_kernel * per_call),
            }
        )
    print(
        f"\nOverhead of the class per batch (B={args.batch}, 1x{args.size}x{args.size}; medians of "
        f"{args.repeats} alternating pairs of {args.calls} calls; fixed cost: update - kernel in "
        f"CPU time on {args.batch}x1x8x8 maps, {args.calls * 20} calls per timing):"
    )
    print_table(rows, list(rows[0]))


def peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``; ``ru_maxrss`` can carry a parent's peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def stream_child(group: str, images: int, b: int, size: int, names: list[str]) -> dict:
    """Stream ``images`` images through a group of metrics; resident memory at checkpoints."""
    from xaiscore import metrics

    generator = torch.Generator().manual_seed(1)
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(size * size, 10)).eval()
    built = {}
    for name in names:
        cls = metrics.metric_class(name)
        if name == "deletion":
            built[name] = cls(linear, features_per_step=0.1)
        elif name == "pointing_accuracy":
            built[name] = cls(num_classes=10)
        elif name in ("sufficiency", "consistency"):
            built[name] = cls(linear)
        else:
            built[name] = cls()
    n_batches = -(-images // b)
    checkpoints = {
        max(1, round(n_batches * q)): f"{round(q * 100)}%" for q in (0.25, 0.5, 0.75, 1.0)
    }
    seen, memory, start = 0, {}, time.perf_counter()
    for index in range(1, n_batches + 1):
        count = min(b, images - seen)
        a, mask, target = batch(count, size, generator)
        x = torch.rand(count, 1, size, size, generator=generator)
        available = {"a": a, "mask": mask, "target": target, "x": x}
        for metric in built.values():
            names_in = [n for n in metric.update_signature.parameters if n != "sample_index"]
            metric.update(**{n: available[n] for n in names_in if n in available})
        seen += count
        if index in checkpoints:
            memory[checkpoints[index]] = rss_mb()
    values = {name: float(metric.compute()) for name, metric in built.items()}
    return {
        "group": group,
        "images": images,
        "batches": n_batches,
        "rss_mb": memory,
        "values": values,
        "peak_mb": peak_rss_mb(),
        "seconds": time.perf_counter() - start,
    }


def streaming(args: argparse.Namespace) -> None:
    from xaiscore.specs import list_metrics

    attribution = args.attribution_metrics or [
        s.name for s in list_metrics(available={"a", "mask"}, scope="sample") if s.name not in SLOW
    ]
    groups = [
        ("per-sample: attribution-only + deletion", args.images, attribution + ["deletion"]),
        ("set-level, summed statistics: pointing_accuracy", args.images, ["pointing_accuracy"]),
        (
            "set-level, stored: sufficiency + consistency",
            args.set_images,
            ["sufficiency", "consistency"],
        ),
    ]
    rows = []
    for label, images, names in groups:
        if args.in_process:  # a smoke run: no fresh process (the peak is then this process's)
            report = stream_child(label, images, args.batch, args.size, names)
        else:
            command = [
                sys.executable,
                __file__,
                "--stream-child",
                json.dumps([label, images, args.batch, args.size, names]),
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            report = json.loads(done.stdout.strip().splitlines()[-1])
        marks = list(report["rss_mb"].values())  # after 25 / 50 / 75 / 100 % of the batches
        rows.append(
            {
                "group": label,
                "metrics": len(names),
                "images": images,
                "RSS at 25/50/75/100 % (MB)": " / ".join(f"{v:.1f}" for v in marks),
                "growth 25->100 % MB": marks[-1] - marks[0],
                "peak MB": report["peak_mb"],
                "s": report["seconds"],
            }
        )
    where = "this process" if args.in_process else "a fresh process per group"
    print(f"\nStreaming memory (B={args.batch}, 1x{args.size}x{args.size}; {where}):")
    print_table(rows, list(rows[0]))
    d = args.size * args.size
    print(
        "Expected state growth: per-sample metrics 4 bytes (+8 with sample_index) per sample each; "
        f"stored set-level metrics {4 * d + 8} bytes per sample each (the map and the prediction)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--set-images", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--attribution-metrics", nargs="*", default=None)
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, streaming in this process: a smoke run"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="stream in this process (no fresh processes)"
    )
    parser.add_argument("--stream-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stream_child:
        label, images, b, size, names = json.loads(args.stream_child)
        print(json.dumps(stream_child(label, images, b, size, names)))
        return 0
    if args.quick:
        args.batch, args.size, args.images, args.set_images, args.repeats, args.calls = (
            8,
            32,
            48,
            24,
            3,
            1,
        )
        args.in_process = True
    print(machine_line() + f", load average {os.getloadavg()[0]:.1f}")
    overhead(args)
    if not args.skip_stream:
        streaming(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
