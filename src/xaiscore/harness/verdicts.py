"""What a run may claim: per-metric verdicts, win rates and the ranking across metrics.

Built on :mod:`xaiscore.stats` for a results Dataset:

* :func:`metric_verdicts`: per metric with a direction,
  :func:`~xaiscore.stats.scoreboard_verdict` on the per-sample scores (runs
  averaged): Wilcoxon signed-rank tests (Pratt's zero handling) of every two
  methods on the samples both scored, Holm-adjusted over the pairs; a best
  method only when it is significantly better than every other, else the tie
  group. Computed once per content: a small in-memory cache keyed by a digest
  of the scores (the report and the command-line summary share the work), and
  with ``cache_dir`` a JSON file there (the report keeps one in
  ``<run>/.cache/``, so ``xaiscore report`` and a resumed run with nothing
  left to do do not redo the tests of unchanged scores).
* :func:`win_rate_table`: per-sample win rates with bootstrap intervals,
  overall and per finding (:func:`~xaiscore.stats.win_rates`).
* :func:`metric_ranking`: the Friedman test and the Nemenyi post-hoc test of
  the methods over the *metrics* (blocks: the methods' mean scores per metric,
  ranked within each metric by its direction), the critical-difference
  diagram's input. Metrics are not independent data sets (metrics of one
  family move together), so its p-value is descriptive: "the metrics rank the
  methods more consistently than chance", not a confirmed effect. Metrics on
  which some method has no score are left out (counted in ``n_dropped``).
* :func:`best_counts`: how many metrics each method is *significantly* best on.

Example:
    >>> import numpy as np
    >>> from xaiscore.harness.results import build_dataset
    >>> rng = np.random.default_rng(0)
    >>> ds = build_dataset(
    ...     methods=["good", "bad"],
    ...     samples={"source_id": [str(i) for i in range(30)], "label": [1] * 30,
    ...              "target": [1] * 30,
    ...              "prediction": [1] * 30, "finding": ["x"] * 30},
    ...     scores={"m": {"good": rng.random(30) + 1.0, "bad": rng.random(30)}},
    ...     metric_info={"m": {"higher_is_better": True}})
    >>> metric_verdicts(ds)["m"].best
    'good'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xaiscore.harness.results import higher_is_better, metric_variables
from xaiscore.harness.summary import score_array

__all__ = ["metric_verdicts", "best_counts", "win_rate_table", "metric_ranking", "method_names"]

_CACHE: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
_CACHE_SIZE = 4


def method_names(ds: Any) -> list[str]:
    """The explainer names of a results Dataset, in order."""
    return [str(m) for m in ds["explainer"].values]


def _digest(ds: Any, metrics: Sequence[str]) -> str:
    hasher = hashlib.sha1()
    hasher.update("\0".join(method_names(ds)).encode())
    for metric in metrics:
        hasher.update(metric.encode())
        hasher.update(str(higher_is_better(ds, metric)).encode())
        hasher.update(
            np.ascontiguousarray(score_array(ds, metric), dtype=np.float64).tobytes()
        )
    return hasher.hexdigest()


def metric_verdicts(
    ds: Any,
    *,
    alpha: float = 0.05,
    metrics: Sequence[str] | None = None,
    seed: int = 0,
    n_resamples: int = 1000,
    cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """metric -> :class:`~xaiscore.stats.Verdict` for every metric with a direction.

    Args:
        ds: A results Dataset.
        alpha: Family-wise error rate of each metric's pairwise tests.
        metrics: The metrics (default: all with a direction, in Dataset order).
        seed, n_resamples: Of the bootstrap intervals of the effect sizes.
        cache_dir: A folder to keep the verdicts of the latest scores in (a JSON
            file named by the digest of the scores, the options and the library
            versions; an unreadable file is recomputed and replaced).
    """
    import scipy

    from xaiscore._version import __version__
    from xaiscore.stats import scoreboard_verdict

    names = [
        m
        for m in (metrics if metrics is not None else metric_variables(ds))
        if higher_is_better(ds, m) is not None
    ]
    key = (_digest(ds, names), alpha, seed, n_resamples, __version__, scipy.__version__)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return dict(_CACHE[key])
    path = None
    if cache_dir is not None:
        path = (
            Path(cache_dir) / f"verdicts-{hashlib.sha1(repr(key).encode()).hexdigest()[:20]}.json"
        )
    verdicts = _read_cache(path, names)
    if verdicts is None:
        methods = method_names(ds)
        verdicts = {}
        for metric in names:
            verdicts[metric] = scoreboard_verdict(
                score_array(ds, metric),
                higher_is_better=bool(higher_is_better(ds, metric)),
                methods=methods,
                alpha=alpha,
                seed=seed,
                n_resamples=n_resamples,
            )
        if path is not None:
            _write_cache(path, verdicts)
    _CACHE[key] = verdicts
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return dict(verdicts)


def _read_cache(path: Path | None, names: Sequence[str]) -> dict[str, Any] | None:
    """The verdicts stored at ``path`` (``None`` when absent, unreadable or for other metrics)."""
    from xaiscore.stats import PairwiseComparison, PairwiseTests, Verdict

    if path is None or not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        verdicts = {}
        for metric, item in stored.items():
            tests = item.pop("tests")
            if tests is not None:
                comparisons = tuple(PairwiseComparison(**c) for c in tests.pop("comparisons"))
                tests = PairwiseTests(
                    **{k: tuple(v) if k == "methods" else v for k, v in tests.items()},
                    comparisons=comparisons,
                )
            verdicts[metric] = Verdict(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in item.items()}, tests=tests
            )
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return verdicts if list(verdicts) == list(names) else None


def _write_cache(path: Path, verdicts: Mapping[str, Any]) -> None:
    """Store ``verdicts`` at ``path`` (atomically) and remove older verdict files beside it."""
    from xaiscore.harness.store import atomic_write_bytes

    content = {metric: dataclasses.asdict(v) for metric, v in verdicts.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob("verdicts-*.json"):
        if old != path:
            old.unlink(missing_ok=True)
    atomic_write_bytes(path, json.dumps(content).encode())


def best_counts(verdicts: Mapping[str, Any]) -> dict[str, int]:
    """method -> number of metrics on which it is significantly best, most first."""
    counts: dict[str, int] = {}
    for verdict in verdicts.values():
        if verdict.best is not None:
            counts[verdict.best] = counts.get(verdict.best, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def win_rate_table(ds: Any, metric: str, *, seed: int = 0, n_resamples: int = 1000) -> Any:
    """Per-sample win rates on ``metric`` with 95 % bootstrap intervals, overall and per finding.

    Returns:
        A :class:`~xaiscore.stats.WinRates` (``by_group`` keyed by finding;
        an empty finding is ``"(none)"``).
    """
    from xaiscore.stats import win_rates

    direction = higher_is_better(ds, metric)
    groups = [str(f) or "(none)" for f in ds["finding"].values]
    return win_rates(
        score_array(ds, metric),
        higher_is_better=bool(direction),
        methods=method_names(ds),
        groups=groups,
        seed=seed,
        n_resamples=n_resamples,
    )


def metric_means(
    ds: Any, metrics: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str], list[bool]]:
    """``(k methods, M metrics)`` mean finite scores, the metric names and their directions."""
    names = [
        m
        for m in (metrics if metrics is not None else metric_variables(ds))
        if higher_is_better(ds, m) is not None
    ]
    columns = []
    for metric in names:
        values = score_array(ds, metric)
        finite = np.isfinite(values)
        total = np.where(finite, values, 0.0).sum(axis=1)
        count = finite.sum(axis=1)
        columns.append(np.where(count > 0, total / np.maximum(count, 1), np.nan))
    table = np.stack(columns, axis=1) if columns else np.zeros((len(method_names(ds)), 0))
    return table, names, [bool(higher_is_better(ds, m)) for m in names]


def metric_ranking(ds: Any, *, alpha: float = 0.05, metrics: Sequence[str] | None = None) -> Any:
    """Friedman + Nemenyi over the metrics (see the module docstring); ``None`` when fewer than
    two methods or two complete metrics remain.

    Returns:
        A :class:`~xaiscore.stats.PostHocResult` (``.friedman`` holds the Friedman test).
    """
    from xaiscore.stats import nemenyi_test

    table, names, directions = metric_means(ds, metrics)
    complete = np.isfinite(table).all(axis=0)
    if table.shape[0] < 2 or complete.sum() < 2:
        return None
    return nemenyi_test(table, higher_is_better=directions, methods=method_names(ds), alpha=alpha)
