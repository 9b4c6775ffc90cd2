"""Small timing helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import contextlib
import platform
import statistics
import time
from collections.abc import Callable, Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads (``None``: as is), then restore the previous count."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def median_time(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_times(first: Callable[[], object], second: Callable[[], object], *, repeats: int = 3,
                 warmup: int = 1) -> tuple[float, float, float]:
    """Run ``first()`` and ``second()`` alternately ``repeats`` times
    (after ``warmup`` runs of each).

    Returns the median time of each and the median of the per-pair ratios ``first / second``.
    Alternating keeps a shared machine's slow drift (this VM's timings move 10-30 % within
    minutes) out of the ratio, which two blocks timed one after the other would carry.
    """
    for _ in range(warmup):
        first()
        second()
    first_times, second_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        first()
        first_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        second()
        second_times.append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(first_times, second_times)]
    return (statistics.median(first_times), statistics.median(second_times),
            statistics.median(ratios))


def machine_line() -> str:
    """One line describing where the numbers come from."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{device}, torch {torch.__version__}, python {platform.python_version()}"
    )


def print_table(rows: list[dict[str, object]], columns: list[str]) -> None:
    """Print rows as a fixed-width text table."""
    widths = {c: max(len(c), *(len(_fmt(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for r in rows:
        print("  ".join(_fmt(r.get(c, "")).ljust(widths[c]) for c in columns))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
