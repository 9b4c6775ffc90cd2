"""ROAD's 3-D imputation against a baseline version of the solver, paired, in one process.

Usage::

    git show <commit>:src/xaiscore/_engine/imputation.py > /tmp/imputation_before.py
    python benchmarks/bench_imputation_3d.py --baseline /tmp/imputation_before.py
    python benchmarks/bench_imputation_3d.py --baseline /tmp/imputation_before.py --wall --threads 2

The baseline module is loaded from its file under another name (it may import ``xaiscore`` modules
that still exist). Each round times the baseline and the current solver on the same inputs, in
alternating order; the table gives the median time of each and the median of the paired ratios
(robust to a CPU shared with other jobs). CPU time of the process by default (``--wall`` for wall
time): on a loaded machine wall time mostly measures waiting. Cases: 4 volumes of 64^3 with masks
ranked by a smooth attribution at 10, 50 and 90 % and a scattered mask at 50 %, and ``road`` on
16 volumes of 64^3 (10/50/90 %, ``max_batch_size=4``, the 3-D CNN of ``bench_volumes``) with
either solver.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import machine_line, print_table, torch_threads  # noqa: E402
from bench_volumes import cnn3d, make_inputs  # noqa: E402

import xaiscore._engine.imputation as current  # noqa: E402

road_module = importlib.import_module("xaiscore.functional.faithfulness.road")


def load_baseline(path: str):
    spec = importlib.util.spec_from_file_location("imputation_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ranked_masks(scores: torch.Tensor, percent: float) -> torch.Tensor:
    flat = scores.reshape(scores.shape[0], -1)
    rank = flat.argsort(dim=1, descending=True).argsort(dim=1).reshape(scores.shape)
    return rank < int(flat.shape[1] * percent / 100)


def cases(side: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    shape = (4, 1, side, side, side)
    x = torch.rand(shape, generator=generator)
    smooth = torch.nn.functional.avg_pool3d(torch.rand(shape, generator=generator), 5, 1, 2)
    scattered = torch.rand(shape, generator=generator)
    out = {f"4x{side}^3 smooth {p}%": (x, ranked_masks(smooth, p)) for p in (10, 50, 90)}
    out[f"4x{side}^3 scattered 50%"] = (x, ranked_masks(scattered, 50))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="a copy of an older imputation.py")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--wall", action="store_true", help="wall time instead of CPU time")
    parser.add_argument("--no-road", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a smoke run (16^3, one round)")
    args = parser.parse_args(argv)
    if args.quick:
        args.side, args.rounds = 16, 1
    with torch_threads(None):  # _run sets --threads; the caller's count comes back
        _run(args)
    return 0


def _run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.wall else time.process_time
    solvers = {"baseline": load_baseline(args.baseline), "current": current}
    work = {name: (lambda x=x, m=m: (lambda solver: solver.linear_imputation(x, m)))()
            for name, (x, m) in cases(args.side).items()}
    if not args.no_road:
        x, a, target = make_inputs(16, args.side)
        model = cnn3d()

        def road(solver):
            road_module.linear_imputation = solver.linear_imputation
            try:
                return road_module.road(model, x, a, target, max_batch_size=4,
                                        percentages=[10, 50, 90],
                                        generator=torch.Generator().manual_seed(0))
            finally:
                road_module.linear_imputation = current.linear_imputation
        work[f"road 16x{args.side}^3"] = road
    print(machine_line(), f"load average {os.getloadavg()[0]:.1f}",
          "wall" if args.wall else "CPU time", flush=True)
    rows = []
    for name, run in work.items():
        for solver in solvers.values():  # warm up
            run(solver)
        times = {key: [] for key in solvers}
        for round_ in range(args.rounds):
            order = list(solvers) if round_ % 2 == 0 else list(reversed(list(solvers)))
            for key in order:
                start = clock()
                run(solvers[key])
                times[key].append(clock() - start)
        ratios = [b / c for b, c in zip(times["baseline"], times["current"])]
        rows.append({"case": name, "baseline_s": statistics.median(times["baseline"]),
                     "current_s": statistics.median(times["current"]),
                     "paired speed-up": statistics.median(ratios)})
        print("  ...", rows[-1], flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print_table(rows, ["case", "baseline_s", "current_s", "paired speed-up"])


if __name__ == "__main__":
    sys.exit(main())
