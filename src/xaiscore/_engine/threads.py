"""Running a few independent torch calls at once on CPU threads.

Some CPU kernels torch runs on one thread only (``uniform_``/``normal_`` with an explicit
generator among them). Where the work splits into independent pieces (noise blocks with their
own generators), :func:`run_concurrently` runs the pieces on up to ``torch.get_num_threads()``
threads of one process-wide pool; torch releases the GIL inside its kernels. Each piece does
the same work wherever it runs, so results do not depend on the number of threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["run_concurrently"]

_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool)


def _thread_pool() -> ThreadPoolExecutor:
    """The process's thread pool (made again in a forked child, whose copy has no threads).

    A pool starts a thread only when a task finds none idle, so its bound (the CPU count) is
    never reached: at most ``workers - 1`` threads run the calls of :func:`run_concurrently`.
    """
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(max_workers=max(os.cpu_count() or 1, 2),
                                                     thread_name_prefix="xaiscore"))
        return _pool[1]


def run_concurrently(calls: Sequence[Callable[[], None]], *, workers: int | None = None) -> None:
    """Run every call of ``calls`` (independent, each writing its own output) and wait for all.

    With ``workers`` (default ``torch.get_num_threads()``) above 1 and more than one call, the
    calls after the first go to a thread pool while the calling thread runs the first ones; the
    first exception raised by any call is re-raised here, after all have finished.

    Example:
        >>> out = torch.empty(2, 3)
        >>> run_concurrently([lambda: out[0].fill_(1.0), lambda: out[1].fill_(2.0)])
        >>> out.tolist()
        [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]
    """
    workers = torch.get_num_threads() if workers is None else workers
    workers = min(workers, len(calls))
    if workers < 2:
        for call in calls:
            call()
        return
    # Calls are dealt round-robin: the calling thread takes every `workers`-th one from the first.
    groups = [calls[start::workers] for start in range(workers)]

    def run_group(group: Sequence[Callable[[], None]]) -> None:
        for call in group:
            call()

    futures = [_thread_pool().submit(run_group, group) for group in groups[1:]]
    error: BaseException | None = None
    try:
        run_group(groups[0])
    except BaseException as caught:  # noqa: BLE001 - re-raised below, once the workers are done
        error = caught
    for future in futures:
        try:
            future.result()
        except BaseException as caught:  # noqa: BLE001
            error = error or caught
    if error is not None:
        raise error
