"""Summaries of a results Dataset: bootstrap means, per-finding means, win rates, rank agreement.

All functions take the Dataset written by the runner (:mod:`xaiscore.harness.results`)
and return :class:`pandas.DataFrame` tables (pandas comes with xarray). Scores
repeated over a ``run`` dim are averaged per sample first. NaN scores (undefined
cases, e.g. an empty mask) are left out of every statistic.

Example:
    >>> import numpy as np
    >>> from xaiscore.harness.results import build_dataset
    >>> ds = build_dataset(
    ...     methods=["a", "b"],
    ...     samples={"source_id": ["0", "1", "2"], "label": [1, 1, 0], "target": [1, 1, 0],
    ...              "prediction": [1, 0, 0], "finding": ["x", "x", ""]},
    ...     scores={"m": {"a": np.array([1.0, 0.0, 1.0]), "b": np.array([0.0, 0.0, 0.5])}},
    ...     metric_info={"m": {"higher_is_better": True}},
    ... )
    >>> win_rates(ds, "m").round(3).tolist()   # image 1 is a tie: half a win each
    [0.833, 0.167]
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from xaiscore._checks import OptionError, check_fraction, check_positive_int
from xaiscore.harness.results import higher_is_better, metric_variables

__all__ = [
    "per_sample_scores",
    "score_array",
    "summary_table",
    "finding_table",
    "win_rates",
    "rank_agreement",
]


def _score_variable(ds: xr.Dataset, metric: str) -> xr.Variable:
    variable = ds.data_vars.variables.get(metric)
    if variable is None or variable.dims[:2] != ("explainer", "sample") \
            or metric.endswith("_curve"):
        raise OptionError(f"Expected a metric among {metric_variables(ds)}, but got {metric!r}.")
    return variable


def per_sample_scores(ds: xr.Dataset, metric: str) -> xr.DataArray:
    """``(explainer, sample)`` scores of ``metric``, averaged over ``run`` when present.

    Raises:
        OptionError: ``metric`` is not a score variable of ``ds``.
    """
    _score_variable(ds, metric)
    values = ds[metric]
    if "run" in values.dims:
        with np.errstate(all="ignore"):
            values = values.mean("run", skipna=True)
    return values.transpose("explainer", "sample")


def score_array(ds: xr.Dataset, metric: str) -> np.ndarray:
    """:func:`per_sample_scores` as a plain ``(explainer, sample)`` array (fast: no coordinates).

    Raises:
        OptionError: ``metric`` is not a score variable of ``ds``.
    """
    variable = _score_variable(ds, metric)
    values = variable.transpose("explainer", "sample", ...).values
    if values.ndim == 3:  # (explainer, sample, run)
        finite = np.isfinite(values)
        total = np.where(finite, values, 0.0).sum(axis=2)
        count = finite.sum(axis=2)
        with np.errstate(all="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return np.asarray(values, dtype=np.float64)


def _seed_for(seed: int, *names: str) -> list[int]:
    return [seed] + [zlib.crc32(name.encode()) for name in names]


def _bootstrap_interval(values: np.ndarray, *, n_boot: int, confidence: float,
                        rng: np.random.Generator) -> tuple[float, float]:
    if values.size == 0:
        return float("nan"), float("nan")
    draws = rng.integers(0, values.size, size=(n_boot, values.size))
    means = values[draws].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def summary_table(ds: xr.Dataset, *, metrics: Sequence[str] | None = None, n_boot: int = 1000,
                  confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Mean score per metric and method with a percentile-bootstrap confidence interval.

    The interval resamples the finite per-sample scores with replacement
    ``n_boot`` times; the generator is seeded from ``seed`` and the
    (metric, method) names, so the table is reproducible and does not depend
    on which other metrics or methods are present.

    Args:
        ds: A results Dataset.
        metrics: The metrics to include (default: every score variable).
        n_boot: Bootstrap resamples.
        confidence: Coverage of the interval, in (0, 1).
        seed: Seed of the bootstrap.

    Returns:
        Rows ``(metric, method)``; columns ``mean``, ``ci_low``, ``ci_high``,
        ``std``, ``n`` (finite scores), ``n_nan``, ``family``, ``higher_is_better``.
    """
    check_positive_int(n_boot, "n_boot")
    check_fraction(confidence, "confidence", low_inclusive=False, high_inclusive=False)
    rows = []
    methods = [str(m) for m in ds["explainer"].values]
    for metric in metrics if metrics is not None else metric_variables(ds):
        scores = score_array(ds, metric)
        family = str(ds.variables[metric].attrs.get("family", ""))
        for method, values in zip(methods, scores):
            finite = values[np.isfinite(values)]
            rng = np.random.default_rng(_seed_for(seed, metric, str(method)))
            low, high = _bootstrap_interval(finite, n_boot=n_boot, confidence=confidence, rng=rng)
            rows.append({
                "metric": metric,
                "method": str(method),
                "mean": float(finite.mean()) if finite.size else float("nan"),
                "ci_low": low,
                "ci_high": high,
                "std": float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
                "n": int(finite.size),
                "n_nan": int(values.size - finite.size),
                "family": family,
                "higher_is_better": higher_is_better(ds, metric),
            })
    columns = ["metric", "method", "mean", "ci_low", "ci_high", "std", "n", "n_nan", "family",
               "higher_is_better"]
    return pd.DataFrame(rows, columns=columns).set_index(["metric", "method"])


def finding_table(ds: xr.Dataset, *, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean score per metric, method and finding class (the ``finding`` coordinate).

    Returns:
        Rows ``(metric, method)``, one column per finding class (negatives
        with an empty finding appear as ``"(none)"``); cells are the mean of
        the finite scores, NaN where a class has none.
    """
    findings = [str(f) if str(f) else "(none)" for f in ds["finding"].values]
    frames = []
    for metric in metrics if metrics is not None else metric_variables(ds):
        methods = [str(m) for m in ds["explainer"].values]
        table = pd.DataFrame(score_array(ds, metric).T, columns=methods)
        table["finding"] = findings
        means = table.groupby("finding", sort=True).mean().T
        means.index = pd.MultiIndex.from_product([[metric], means.index],
                                                 names=["metric", "method"])
        frames.append(means)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames)


def win_rates(ds: xr.Dataset, metric: str) -> pd.Series:
    """Per-image win rate of every method on ``metric``.

    On each image the methods with a finite score compete; the best score
    (highest or lowest as the metric's ``higher_is_better`` says) wins, and
    ``k`` methods tied for best get ``1/k`` of a win each. A method with a NaN
    score on an image cannot win it; images where no method has a finite score
    are left out. The rates over methods sum to 1 (when any image counts).

    Returns:
        Win rate per method (index ``method``), named ``metric``; the number
        of images counted is in ``.attrs["n_images"]``.

    Raises:
        OptionError: ``metric`` has no better direction.
    """
    direction = higher_is_better(ds, metric)
    if direction is None:
        raise OptionError(f"Expected a metric with a better direction, but {metric!r} has none.")
    scores = score_array(ds, metric)  # (M, N)
    oriented = np.where(np.isfinite(scores), scores if direction else -scores, -np.inf)
    counted = np.isfinite(scores).any(axis=0)
    best = oriented.max(axis=0, keepdims=True)
    winners = (oriented == best) & np.isfinite(scores) & counted
    share = winners / np.maximum(winners.sum(axis=0, keepdims=True), 1)
    n_images = int(counted.sum())
    rates = share.sum(axis=1) / n_images if n_images else np.full(scores.shape[0], np.nan)
    methods = [str(m) for m in ds["explainer"].values]
    series = pd.Series(rates, index=pd.Index(methods, name="method"),
                       name=metric)
    series.attrs["n_images"] = n_images
    return series


def rank_agreement(ds: xr.Dataset, *, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Kendall's tau-b between the method rankings that pairs of metrics imply.

    Each metric ranks the methods by their mean finite score, oriented so
    that better is higher (metrics without a direction are left out). The tau
    of two metrics uses the methods that have a mean on both; it is NaN when
    fewer than two do or either ranking of them is constant
    (:func:`xaiscore.stats.kendall_tau_b`, the library's one Kendall tau).

    Returns:
        A symmetric metrics x metrics table of tau; ``.attrs["n_methods"]``
        holds the table of how many methods each tau rests on.
    """
    from xaiscore.stats import kendall_tau_b

    names = [m for m in (metrics if metrics is not None else metric_variables(ds))
             if higher_is_better(ds, m) is not None]
    rows = []
    for metric in names:
        values = score_array(ds, metric)
        finite = np.isfinite(values)
        means = np.where(finite, values, 0.0).sum(axis=1) / np.maximum(finite.sum(axis=1), 1)
        means = np.where(finite.any(axis=1), means, np.nan)
        rows.append(means if higher_is_better(ds, metric) else -means)
    oriented = np.stack(rows) if rows else np.zeros((0, ds.sizes.get("explainer", 0)))
    tau = kendall_tau_b(oriented[:, None, :], oriented[None, :, :])
    finite = np.isfinite(oriented)
    counts = (finite[:, None, :] & finite[None, :, :]).sum(axis=-1)
    index = pd.Index(names, name="metric")
    table = pd.DataFrame(np.asarray(tau, dtype=np.float64).reshape(len(names), len(names)),
                         index=index, columns=names)
    table.attrs["n_methods"] = pd.DataFrame(counts.reshape(len(names), len(names)), index=index,
                                            columns=names)
    return table
