"""What was tried to make ROAD's 3-D imputation faster, reproducible: none of it closes the gap.

Usage::

    python benchmarks/bench_imputation_variants.py                  # all four, 4 volumes of 64^3
    python benchmarks/bench_imputation_variants.py --only compile   # needs a C++ compiler
    python benchmarks/bench_imputation_variants.py --quick          # a smoke run (16^3, no compile)

On 4 volumes with masks ranked by a smooth attribution (10, 50, 90 %) and a scattered 50 % mask
(the cases of ``bench_imputation_3d``), CPU time of the process on one torch thread:

1. ``compile``: the fine-level residual ``r - A u`` of the solver (a 27-point stencil masked to the
   removed voxels), eager against ``torch.compile`` of the same arithmetic, and the compile time.
2. ``additive``: the solver as shipped against a preconditioner whose finest level is additive
   (``z = D^-1 r + P V(P^T r)``: no fine-level residual inside the V-cycle), with the CG
   iterations (preconditioner calls) of each.
3. ``groups``: 16 volumes solved in groups of 1, 2, 4 (ROAD's ``_GROUP_BYTES`` at 64^3) and 16.
4. ``tolerance``: ``tol`` 1e-5 (the float32 default), 1e-4 and 1e-3, time and largest error
   against a float64 solve at ``tol=1e-10``.

The module monkeypatches ``xaiscore._engine.imputation._Multigrid`` for the additive variant
while it runs, and restores it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import machine_line, print_table, torch_threads  # noqa: E402
from bench_imputation_3d import cases, ranked_masks  # noqa: E402

import xaiscore._engine.imputation as imputation  # noqa: E402

VARIANTS = ("compile", "additive", "groups", "tolerance")


def _cpu_seconds(fn, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def _residual(r: torch.Tensor, u: torch.Tensor, sum_weight: torch.Tensor,
              self_weight: torch.Tensor) -> torch.Tensor:
    """``r - A u`` written as plain tensor arithmetic (what ``torch.compile`` gets to fuse)."""
    padded = torch.nn.functional.pad(u, (1, 1, 1, 1, 1, 1))
    total = padded[..., :-2] + 2 * padded[..., 1:-1] + padded[..., 2:]
    total = total[..., :-2, :] + 2 * total[..., 1:-1, :] + total[..., 2:, :]
    total = total[:, :, :-2] + 2 * total[:, :, 1:-1] + total[:, :, 2:]
    return r + sum_weight * total - self_weight * u


def run_compile(x: torch.Tensor, removed: torch.Tensor, calls: int) -> list[dict]:
    fine, b = imputation._fine_system(x, removed)
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) * fine.unknown
    out = torch.empty_like(x)
    start = time.perf_counter()
    compiled = torch.compile(_residual, dynamic=False)
    result = compiled(b, u, fine._sum_weight, fine._self_weight)
    compile_s = time.perf_counter() - start
    difference = float((result - fine.residual(b, u, out)).abs().max())
    eager = _cpu_seconds(lambda: [fine.residual(b, u, out) for _ in range(calls)], 2) / calls
    fused = _cpu_seconds(lambda: [compiled(b, u, fine._sum_weight, fine._self_weight)
                                  for _ in range(calls)], 2) / calls
    return [{"variant": "fine-level residual", "eager_ms": 1e3 * eager, "compiled_ms": 1e3 * fused,
             "compiled/eager": fused / eager, "compile_s": compile_s, "max_difference": difference}]


class _AdditiveFinest(imputation._Multigrid):
    """The shipped V-cycle below the finest level; on it ``z = D^-1 r + P V(P^T r)``."""

    def _cycle(self, depth: int, r: torch.Tensor) -> torch.Tensor:
        if depth > 0 or len(self.levels) == 1:
            return super()._cycle(depth, r)
        level, coarse = self.levels[0], self.levels[1]
        z = level.buffers.get("z", r.shape, r)
        torch.mul(level.inverse_diagonal, r, out=z)
        coarse_r = imputation._restrict(r, level, coarse.buffers.get(
            "r", r.shape[:2] + coarse.spatial, r))
        return imputation._add_prolongation(z, super()._cycle(1, coarse_r), level)

    def head(self, n: int) -> _AdditiveFinest:
        out = super().head(n)
        out.__class__ = _AdditiveFinest
        return out


def _count_calls(cls: type) -> tuple[type, list[int]]:
    calls = [0]

    class Counting(cls):  # type: ignore[misc, valid-type]
        def __call__(self, r: torch.Tensor) -> torch.Tensor:
            calls[0] += 1
            return super().__call__(r)

        def head(self, n: int):
            out = super().head(n)
            out.__class__ = Counting
            return out

    return Counting, calls


def run_additive(all_cases: dict) -> list[dict]:
    shipped = imputation._Multigrid
    rows = []
    try:
        for case, (x, removed) in all_cases.items():
            row = {"variant": case}
            for name, cls in (("shipped", shipped), ("additive", _AdditiveFinest)):
                counting, calls = _count_calls(cls)
                imputation._Multigrid = counting
                imputation.linear_imputation(x, removed)  # warm up
                calls[0] = 0
                row[f"{name}_s"] = _cpu_seconds(lambda: imputation.linear_imputation(x, removed))  # noqa: B023, E501
                row[f"{name}_iterations"] = calls[0]
            rows.append(row)
    finally:
        imputation._Multigrid = shipped
    return rows


def run_groups(side: int, sizes: tuple[int, ...]) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    shape = (16, 1, side, side, side)
    x = torch.rand(shape, generator=generator)
    smooth = torch.nn.functional.avg_pool3d(torch.rand(shape, generator=generator), 5, 1, 2)
    rows = []
    for percent in (10, 50, 90):
        removed = ranked_masks(smooth, percent)
        row = {"variant": f"16x{side}^3 smooth {percent}%"}
        for size in sizes:
            row[f"groups of {size}"] = _cpu_seconds(lambda: [  # noqa: B023
                imputation.linear_imputation(x[i:i + size], removed[i:i + size])  # noqa: B023
                for i in range(0, 16, size)])  # noqa: B023
        rows.append(row)
    return rows


def run_tolerance(all_cases: dict, tolerances: tuple[float, ...]) -> list[dict]:
    rows = []
    for case, (x, removed) in all_cases.items():
        reference = imputation.linear_imputation(x.double(), removed, tol=1e-10)
        for tol in tolerances:
            result = imputation.linear_imputation(x, removed, tol=tol)
            rows.append({"variant": case, "tol": tol,
                         "seconds": _cpu_seconds(lambda: imputation.linear_imputation(  # noqa: B023
                             x, removed, tol=tol)),  # noqa: B023
                         "max_error": float((result.double() - reference).abs().max())})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 16^3 volumes, no compile (it takes half a minute)")
    args = parser.parse_args(argv)
    if args.quick:
        args.side = 16
        args.only = [v for v in args.only if v != "compile"]
    with torch_threads(args.threads):
        _run(args)
    return 0


def _run(args: argparse.Namespace) -> None:
    print(machine_line(), f"load average {os.getloadavg()[0]:.1f}, CPU time", flush=True)
    all_cases = cases(args.side)
    if "compile" in args.only:
        x, removed = all_cases[f"4x{args.side}^3 smooth 50%"]
        print_table(run_compile(x, removed, calls=20),
                    ["variant", "eager_ms", "compiled_ms", "compiled/eager", "compile_s",
                     "max_difference"])
    if "additive" in args.only:
        print_table(run_additive(all_cases), ["variant", "shipped_s", "shipped_iterations",
                                              "additive_s", "additive_iterations"])
    if "groups" in args.only:
        sizes = (1, 2, 4, 16)
        print_table(run_groups(args.side, sizes),
                    ["variant"] + [f"groups of {size}" for size in sizes])
    if "tolerance" in args.only:
        print_table(run_tolerance(all_cases, (1e-5, 1e-4, 1e-3)),
                    ["variant", "tol", "seconds", "max_error"])


if __name__ == "__main__":
    raise SystemExit(main())
