"""MST-C: the batched kernel against the per-sample scipy/scikit-learn reference, same inputs, same run.

Usage::

    python benchmarks/bench_mst.py               # B=64, 1x224x224, median of 3 repeats
    python benchmarks/bench_mst.py --quick       # B=8, 1x64x64, a smoke run in seconds
    python benchmarks/bench_mst.py --threads 2   # torch intra-op threads (default 1, like the reference)

Maps (``|a|`` is scored, 80th percentile, k = 20):

- ``noise``:  uniform noise; ~20% of the pixels are salient and scattered (the hardest case:
  near the percolation threshold of the k-NN graph, every point needs its k-th neighbour).
- ``blobs``:  Gaussian-blurred noise (sigma 8 pixels): a few smooth blobs per map, like a saliency
  map.
- ``sparse``: 2% of the pixels non-zero at random: every non-zero pixel is salient and isolated.

The reference (``tests/reference/complexity.py``) runs sample by sample: ``KDTree`` k-NN and
radius queries, ``scipy.sparse.csgraph.minimum_spanning_tree``, ``scipy.spatial.ConvexHull``.
The table shows the median wall time of each, their ratio, and the largest relative difference
between the scores. Other processes share the machine: the load average is printed before and
after, and only ratios from the same run should be compared.
"""  # noqa: E501

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tests.reference.complexity import mst_compactness as reference  # noqa: E402
from xaiscore.functional import mst_compactness  # noqa: E402


def make_maps(kind: str, batch: int, size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if kind == "noise":
        return torch.rand(batch, 1, size, size, generator=generator, dtype=torch.float64)
    if kind == "blobs":
        x = torch.randn(batch, 1, size, size, generator=generator, dtype=torch.float64)
        sigma = 8.0 * size / 224
        radius = int(3 * sigma)
        t = torch.arange(-radius, radius + 1, dtype=torch.float64)
        kernel = torch.exp(-(t**2) / (2 * sigma**2))
        kernel = kernel / kernel.sum()
        x = torch.nn.functional.conv2d(x, kernel.view(1, 1, 1, -1), padding=(0, radius))
        return torch.nn.functional.conv2d(x, kernel.view(1, 1, -1, 1), padding=(radius, 0))
    if kind == "sparse":
        values = torch.rand(batch, 1, size, size, generator=generator, dtype=torch.float64)
        return values * (torch.rand(batch, 1, size, size, generator=generator) < 0.02)
    raise ValueError(kind)


def median_seconds(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}; {os.cpu_count()} logical CPUs; torch {torch.__version__} with "
            f"{torch.get_num_threads()} thread(s); numpy {np.__version__}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kinds", default="noise,blobs,sparse")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.repeats = 8, 64, 1
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        _run(args)
    finally:
        torch.set_num_threads(threads)
    return 0


def _run(args: argparse.Namespace) -> None:
    print(machine_line())
    print(f"load average before: {os.getloadavg()}")
    print(
        f"B={args.batch}, 1x{args.size}x{args.size}, threshold 80, k 20, median of "
        f"{args.repeats}\n")
    header = (
        f"{'maps':<8} {'points/map':>10} {'reference':>11} {'kernel':>9} {'speed-up':>9} "
        f"{'max rel diff':>13}")
    print(header)
    print("-" * len(header))
    for kind in args.kinds.split(","):
        a = make_maps(kind, args.batch, args.size)
        mst_compactness(a[:2])  # warm-up
        kernel_s, ours = median_seconds(lambda: mst_compactness(a), args.repeats)
        arrays = a.numpy()
        reference_s, expected = median_seconds(lambda: np.array([reference(x) for x in arrays]),
                                               args.repeats)
        points = int((a.abs() > 0).sum() / args.batch) if kind == "sparse" else int(0.2 * args.size
                                                                                    **2)
        difference = float(np.nanmax(np.abs(ours.numpy() - expected) / np.abs(expected)))
        print(
            f"{kind:<8} {points:>10} {reference_s:>10.3f}s {kernel_s:>8.3f}s "
            f"{reference_s / kernel_s:>8.1f}x {difference:>13.1e}", flush=True)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    raise SystemExit(main())
