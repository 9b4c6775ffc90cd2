"""What a scoreboard may claim about one metric: a best method, or a group that cannot be split.

* :func:`scoreboard_verdict`: orders the methods by their mean score (or mean
  per-sample rank), tests every two with :func:`~xaiscore.stats.paired_tests`
  (Holm over all ``k (k - 1) / 2`` pairs: the leader is picked from the same
  data, so only a family covering every pair keeps the error rate), and names
  the leader *best* only when it is significantly better than every other
  method, the runner-up included. Otherwise it returns the *tie group*: the
  leader and every method not significantly worse than it.
* :func:`win_rates`: the share of samples on which each method is the best
  (ties split evenly between the tied methods), with percentile bootstrap
  intervals over the samples, overall and per group label (e.g. per finding).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.stats

from xaiscore._checks import (
    OptionError,
    ShapeError,
    check_fraction,
    check_option,
    check_positive_int,
)
from xaiscore.stats._input import (
    as_scores,
    check_alpha,
    check_direction,
    method_names,
    orient,
    rng_keyword,
)
from xaiscore.stats.paired import ZERO_METHODS
from xaiscore.stats.pairwise import PairwiseTests, pairwise_tests

__all__ = ["Verdict", "WinRates", "scoreboard_verdict", "win_rates"]


@dataclass(frozen=True)
class Verdict:
    """The verdict on one metric.

    Attributes:
        best: The leader when it is significantly better than every other
            method with scores, else ``None``.
        tie_group: The leader and the methods not significantly worse than
            it, in ranking order (``(best,)`` when there is a best; empty when
            no method has a score).
        ranking: The methods with scores, best first by ``order_by``.
        excluded: Methods without a single finite score (never in a verdict).
        reason: One sentence that says why, for the report.
        tests: The pairwise tests behind it (``None`` with fewer than two methods).
    """

    best: str | None
    tie_group: tuple[str, ...]
    ranking: tuple[str, ...]
    excluded: tuple[str, ...]
    reason: str
    tests: PairwiseTests | None = field(default=None, repr=False)


def _order(values: np.ndarray, order_by: str) -> np.ndarray:
    """Per-method location (higher is better) of oriented scores ``(k, N)``."""
    finite = np.isfinite(values)
    if order_by == "mean":
        total = np.where(finite, values, 0.0).sum(axis=1)
        return total / np.maximum(finite.sum(axis=1), 1)
    ranks = scipy.stats.rankdata(-values, axis=0, nan_policy="omit")  # 1 = best per sample
    ranks = np.where(finite, ranks, 0.0)
    return -ranks.sum(axis=1) / np.maximum(finite.sum(axis=1), 1)


def scoreboard_verdict(scores: Any, *, higher_is_better: bool, methods: Sequence[str] | None = None,
                       alpha: float = 0.05, order_by: Literal["mean", "mean_rank"] = "mean",
                       test: Literal["wilcoxon", "permutation"] = "wilcoxon",
                       zero_method: str = "pratt", seed: int = 0,
                       n_resamples: int = 1000) -> Verdict:
    """Name the best method on one metric only when the data support it.

    Args:
        scores: ``(k, N)`` per-sample scores (numpy or torch), NaN where undefined.
        higher_is_better: The metric's direction (a metric without one has no best).
        methods: ``k`` names.
        alpha: Family-wise error rate.
        order_by: ``"mean"`` (the mean finite score, as a scoreboard shows it)
            or ``"mean_rank"`` (the mean of the per-sample ranks among the
            methods scored on that sample) to pick the leader; ties keep the
            input order.
        test, zero_method, seed, n_resamples: Passed to :func:`~xaiscore.stats.pairwise_tests`.

    A pair whose p-value is NaN (no sample scored by both) cannot separate the
    two: the other method stays in the tie group.

    Shape:
        - scores: ``(k, N)``

    Example:
        >>> scores = [[0.9, 0.8, 0.85, 0.7, 0.95, 0.9, 0.8, 0.75, 0.9, 0.85],
        ...           [0.5, 0.4, 0.45, 0.5, 0.55, 0.6, 0.35, 0.4, 0.5, 0.45],
        ...           [0.52, 0.41, 0.4, 0.55, 0.5, 0.6, 0.4, 0.45, 0.49, 0.5]]
        >>> scoreboard_verdict(scores, higher_is_better=True, methods=["a", "b", "c"]).best
        'a'
        >>> verdict = scoreboard_verdict(scores[1:], higher_is_better=True, methods=["b", "c"])
        >>> verdict.best, verdict.tie_group
        (None, ('c', 'b'))
    """
    values = as_scores(scores)
    direction = check_direction(higher_is_better, allow_none=False)
    names = method_names(methods, values.shape[0])
    check_option(order_by, "order_by", ("mean", "mean_rank"))
    check_option(test, "test", ("wilcoxon", "permutation"))
    check_option(zero_method, "zero_method", ZERO_METHODS)
    alpha = check_alpha(alpha)
    scored = np.isfinite(values).any(axis=1)
    excluded = tuple(n for n, s in zip(names, scored) if not s)
    kept = tuple(n for n, s in zip(names, scored) if s)
    if not kept:
        return Verdict(None, (), (), excluded, "No method has a finite score.")
    oriented = orient(values[scored], direction)
    location = _order(oriented, order_by)
    order = np.argsort(-location, kind="stable")
    ranking = tuple(kept[i] for i in order)
    leader = ranking[0]
    if len(kept) == 1:
        return Verdict(leader, (leader,), ranking, excluded,
                       f"{leader} is the only method with scores; nothing to compare it with.")
    tests = pairwise_tests(values[scored], higher_is_better=direction, methods=kept, alpha=alpha,
                           test=test, zero_method=zero_method, seed=seed, n_resamples=n_resamples)
    group = [leader]
    for name in ranking[1:]:
        comparison = tests.comparison(leader, name)
        if comparison.better != leader:
            group.append(name)
    runner_up = tests.comparison(leader, ranking[1])
    if len(group) == 1:
        largest = max(tests.comparison(leader, name).p_adjusted for name in ranking[1:])
        reason = (f"{leader} is significantly better than every other method (Holm-adjusted "
                  f"p <= {largest:.3g}, alpha = {alpha:g}; runner-up {ranking[1]}).")
        return Verdict(leader, (leader,), ranking, excluded, reason, tests)
    if runner_up.better == ranking[1]:
        reason = (f"The ordering by {order_by} and the paired test disagree: {ranking[1]} is "
                  f"significantly better than {leader} on the paired samples.")
    else:
        reason = (f"{leader} is not significantly better than {ranking[1]} (Holm-adjusted "
                  f"p = {runner_up.p_adjusted:.3g}, alpha = {alpha:g}); {len(group)} methods tie.")
    return Verdict(None, tuple(group), ranking, excluded, reason, tests)


@dataclass(frozen=True, eq=False)
class WinRates:
    """Per-sample win rates of ``k`` methods with bootstrap intervals.

    ``rates`` sum to 1 over the methods when ``n > 0``; ``n`` counts the
    samples on which at least one method has a finite score; ``by_group``
    holds the same for every group label (empty without labels).
    """

    methods: tuple[str, ...]
    rates: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n: int
    confidence: float
    by_group: Mapping[str, WinRates] = field(default_factory=dict)


def _win_shares(oriented: np.ndarray) -> np.ndarray:
    """``(k, n)`` share of a win per method and counted sample (ties split)."""
    finite = np.isfinite(oriented)
    filled = np.where(finite, oriented, -np.inf)
    winners = (filled == filled.max(axis=0, keepdims=True)) & finite
    return winners / winners.sum(axis=0, keepdims=True)


def _rates(shares: np.ndarray, names: tuple[str, ...], *, confidence: float, n_resamples: int,
           rng_seed: list[int]) -> WinRates:
    k, n = shares.shape
    if n == 0:
        nan = np.full(k, np.nan)
        return WinRates(names, nan, nan.copy(), nan.copy(), 0, confidence)
    rates = shares.mean(axis=1)
    low, high = np.full(k, np.nan), np.full(k, np.nan)
    if n >= 2:
        for m in range(k):  # the same seed per method: every method sees the same resamples
            result = scipy.stats.bootstrap(
                (shares[m],), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                method="percentile", vectorized=True, batch=500,
                **{rng_keyword(scipy.stats.bootstrap): np.random.default_rng(rng_seed)},
            )
            low[m], high[m] = result.confidence_interval.low, result.confidence_interval.high
    return WinRates(names, rates, low, high, n, confidence)


def win_rates(scores: Any, *, higher_is_better: bool, methods: Sequence[str] | None = None,
              groups: Sequence[Any] | None = None, confidence: float = 0.95,
              n_resamples: int = 1000, seed: int = 0) -> WinRates:
    """Share of samples each method wins, with bootstrap intervals, overall and per group.

    On each sample the methods with a finite score compete; the best score
    wins and ``t`` methods tied for best get ``1/t`` of a win each. Samples
    with no finite score are not counted. The interval resamples the counted
    samples with replacement (``scipy.stats.bootstrap``, percentile method,
    generator seeded from ``seed`` and the group label); NaN for fewer than
    two samples.

    Args:
        scores: ``(k, N)`` per-sample scores (numpy or torch).
        higher_is_better: The metric's direction.
        methods: ``k`` names.
        groups: ``N`` labels (e.g. the finding of each sample): adds ``by_group``.
        confidence: Coverage of the intervals.
        n_resamples: Bootstrap resamples.
        seed: Seed of the bootstrap.

    Shape:
        - scores: ``(k, N)``; groups: ``(N,)``

    Example:
        >>> rates = win_rates([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 0.2]], higher_is_better=True,
        ...                   methods=["a", "b"], groups=["x", "x", "y", "y"])
        >>> rates.rates.tolist(), rates.by_group["x"].rates.tolist()   # sample 2 is a tie
        ([0.875, 0.125], [0.75, 0.25])
    """
    values = as_scores(scores)
    direction = check_direction(higher_is_better, allow_none=False)
    names = method_names(methods, values.shape[0])
    check_fraction(confidence, "confidence", low_inclusive=False, high_inclusive=False)
    check_positive_int(n_resamples, "n_resamples")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise OptionError(f"Expected `seed` to be an int, but got {seed!r}.")
    oriented = orient(values, direction)
    counted = np.isfinite(values).any(axis=0)
    shares = np.zeros(values.shape)
    shares[:, counted] = _win_shares(oriented[:, counted])
    overall = _rates(shares[:, counted], names, confidence=confidence, n_resamples=n_resamples,
                     rng_seed=[int(seed)])
    if groups is None:
        return overall
    labels = np.asarray([str(g) for g in groups], dtype=object)
    if labels.shape != (values.shape[1],):
        raise ShapeError(f"Expected one group label per sample ({values.shape[1]}), but got "
                         f"{labels.shape[0]}.")
    by_group = {}
    for label in sorted(set(labels.tolist())):
        members = (labels == label) & counted
        by_group[label] = _rates(shares[:, members], names, confidence=confidence,
                                 n_resamples=n_resamples,
                                 rng_seed=[int(seed), zlib.crc32(label.encode())])
    return WinRates(names, overall.rates, overall.ci_low, overall.ci_high, overall.n, confidence,
                    by_group)

