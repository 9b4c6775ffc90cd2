r"""Comparing ``k`` methods over ``N`` blocks (data sets, metrics, samples): Friedman, post-hoc.

The scores come as ``(k, N)``: one row per method, one column per block.
Within each block the methods are ranked, **rank 1 being the best** (the
highest score for a higher-is-better metric), ties sharing their average rank
(Demšar 2006, JMLR 7, "Statistical comparisons of classifiers over multiple
data sets").

* :func:`friedman_test`: are the mean ranks :math:`R_j` further apart than
  chance allows? :math:`\chi^2_F = \frac{12N}{k(k+1)} \big[\sum_j R_j^2 - \frac{k(k+1)^2}{4}\big]`
  with ``k - 1`` degrees of freedom (``scipy.stats.friedmanchisquare``, which
  divides by the tie correction :math:`1 - \sum (t^3 - t) / (N k (k^2 - 1))`
  over the tie groups of every block; ``tie_correction=False`` gives Demšar's
  formula as printed), and Iman and Davenport's less conservative
  :math:`F_F = \frac{(N-1)\chi^2_F}{N(k-1) - \chi^2_F}` with ``(k - 1, (k - 1)(N - 1))``
  degrees of freedom, which Demšar recommends.
* :func:`nemenyi_test`: two methods differ when their mean ranks differ by at
  least the critical difference :math:`CD = q_\alpha \sqrt{k(k+1)/(6N)}`,
  :math:`q_\alpha` being the studentized range quantile over :math:`\sqrt 2`
  (:func:`nemenyi_q`: Demšar's Table 5 for ``alpha`` 0.05 and 0.10 and ``k <= 10``).
* :func:`conover_test`: Conover's (1999) pairwise t-test on the rank sums
  after a Friedman test, more powerful than Nemenyi's, Holm-corrected over the pairs.
* :func:`indistinguishable_groups`: the groups of methods joined by a bar in a
  critical-difference diagram.

Missing values: a method with no finite score at all is left out (listed in
``excluded``); then every block with a NaN among the remaining methods is
dropped (``n_dropped``), since the Friedman test needs complete blocks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.stats

from xaiscore._checks import OptionError, ShapeError, check_positive_int
from xaiscore.stats._input import as_scores, check_alpha, check_direction, method_names
from xaiscore.stats.paired import holm

__all__ = [
    "NEMENYI_Q",
    "FriedmanResult",
    "PostHocResult",
    "average_ranks",
    "conover_test",
    "critical_difference",
    "friedman_test",
    "indistinguishable_groups",
    "nemenyi_q",
    "nemenyi_test",
]

#: Demšar (2006) Table 5(a): two-tailed Nemenyi critical values q_alpha for k = 2 .. 10.
NEMENYI_Q = {
    0.05: (1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164),
    0.10: (1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920),
}


def _directions(higher_is_better: Any, blocks: int) -> np.ndarray:
    """``(N,)`` signs: +1 where higher is better, -1 where lower is."""
    if isinstance(higher_is_better, (bool, np.bool_)) or higher_is_better is None:
        direction = check_direction(higher_is_better, allow_none=False)
        return np.full(blocks, 1.0 if direction else -1.0)
    if isinstance(higher_is_better, str) or not isinstance(higher_is_better, Sequence):
        raise OptionError(
            f"Expected `higher_is_better` to be True, False or one bool per block, but got "
            f"{higher_is_better!r}."
        )
    if len(higher_is_better) != blocks:
        raise ShapeError(
            f"Expected one direction per block ({blocks}), but got {len(higher_is_better)}."
        )
    return np.array([1.0 if check_direction(h, allow_none=False) else -1.0
                     for h in higher_is_better])


def average_ranks(scores: Any, *, higher_is_better: bool | Sequence[bool]) -> np.ndarray:
    """Rank of every method within each block: 1 = best, ties averaged, NaN for NaN scores.

    Args:
        scores: ``(k, N)``.
        higher_is_better: The direction, or one per block (e.g. blocks that are metrics).

    Shape:
        - scores: ``(k, N)``; output: ``(k, N)`` float64

    Example:
        >>> scores = [[0.9, 1.0], [0.5, 1.0], [0.7, float("nan")]]
        >>> average_ranks(scores, higher_is_better=True).tolist()
        [[1.0, 1.5], [3.0, 1.5], [2.0, nan]]
    """
    values = as_scores(scores)
    signs = _directions(higher_is_better, values.shape[1])
    return scipy.stats.rankdata(-values * signs, axis=0, nan_policy="omit")


@dataclass(frozen=True, eq=False)
class FriedmanResult:
    """Friedman test over ``n`` complete blocks of the ``k`` methods in ``methods``.

    ``mean_ranks`` follows ``methods``; ``statistic`` is :math:`\\chi^2_F` and
    ``iman_davenport`` :math:`F_F`, each with its p-value; NaN where undefined
    (fewer than two methods or no complete block; ``F_F`` needs ``n >= 2``).
    When every block is one big tie the statistic is 0 and ``p = 1``.
    """

    methods: tuple[str, ...]
    mean_ranks: np.ndarray
    statistic: float
    p_value: float
    iman_davenport: float
    iman_davenport_p_value: float
    k: int
    n: int
    n_dropped: int
    excluded: tuple[str, ...]
    tie_correction: bool
    ranks: np.ndarray = field(repr=False)


def _complete(values: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, tuple, tuple, int]:
    has_any = np.isfinite(values).any(axis=1)
    kept = values[has_any]
    complete = np.isfinite(kept).all(axis=0) & bool(kept.shape[0])  # no method: no block
    return (kept[:, complete], tuple(n for n, h in zip(names, has_any) if h),
            tuple(n for n, h in zip(names, has_any) if not h), int((~complete).sum()))


def friedman_test(scores: Any, *, higher_is_better: bool | Sequence[bool],
                  methods: Sequence[str] | None = None,
                  tie_correction: bool = True) -> FriedmanResult:
    """Friedman's test (and the Iman-Davenport F) on the within-block ranks of ``k`` methods.

    Args:
        scores: ``(k, N)`` scores, NaN allowed (see the module docstring).
        higher_is_better: The direction, or one per block.
        methods: ``k`` names.
        tie_correction: Divide by the tie correction (as scipy does); ``False``
            gives the formula printed in Demšar (2006).

    Shape:
        - scores: ``(k, N)``

    Example:
        >>> scores = [[1, 2, 3, 1], [2, 3, 4, 3], [3, 4, 5, 2]]
        >>> result = friedman_test(scores, higher_is_better=True)
        >>> result.mean_ranks.tolist(), round(result.statistic, 2), round(result.p_value, 3)
        ([3.0, 1.75, 1.25], 6.5, 0.039)
    """
    values = as_scores(scores)
    signs = _directions(higher_is_better, values.shape[1])
    if not isinstance(tie_correction, bool):
        raise OptionError(
            f"Expected `tie_correction` to be True or False, but got {tie_correction!r}."
        )
    names = method_names(methods, values.shape[0])
    complete, kept, excluded, dropped = _complete(values * signs, names)
    k, n = complete.shape
    ranks = scipy.stats.rankdata(-complete, axis=0)
    mean_ranks = ranks.mean(axis=1) if n else np.full(k, np.nan)
    nan = math.nan
    if k < 2 or n < 1:
        return FriedmanResult(kept, mean_ranks, nan, nan, nan, nan, k, n, dropped, excluded,
                              tie_correction, ranks)
    chi2 = 12.0 * n / (k * (k + 1)) * (np.sum(mean_ranks**2) - k * (k + 1) ** 2 / 4.0)
    if tie_correction:
        ties = sum(float(np.sum(counts**3 - counts))
                   for counts in (np.unique(column, return_counts=True)[1] for column in ranks.T))
        correction = 1.0 - ties / (n * k * (k * k - 1))
        if correction <= 0:  # every block a complete tie
            chi2 = 0.0
        elif k >= 3:
            chi2 = float(scipy.stats.friedmanchisquare(*complete).statistic)
        else:
            chi2 = chi2 / correction
    chi2 = max(float(chi2), 0.0)
    p = float(scipy.stats.chi2.sf(chi2, k - 1))
    f_stat, f_p = nan, nan
    if n >= 2:
        denominator = n * (k - 1) - chi2
        if denominator > 1e-12 * n * k:
            f_stat = (n - 1) * chi2 / denominator
            f_p = float(scipy.stats.f.sf(f_stat, k - 1, (k - 1) * (n - 1)))
        else:  # complete agreement of every block: the F statistic is infinite
            f_stat, f_p = math.inf, 0.0
    return FriedmanResult(kept, mean_ranks, chi2, p, float(f_stat), f_p, k, n, dropped, excluded,
                          tie_correction, ranks)


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Critical value ``q_alpha`` of the Nemenyi test for ``k`` methods.

    Demšar's Table 5 for ``alpha`` in {0.05, 0.10} and ``2 <= k <= 10``;
    otherwise the ``1 - alpha`` quantile of the studentized range with ``k``
    groups and infinite degrees of freedom over :math:`\\sqrt 2`
    (``scipy.stats.studentized_range``); the table agrees with it to within 0.001
    (e.g. 2.343 for ``k = 3`` where the quantile is 2.3437), so Demšar's CDs are reproduced.

    Example:
        >>> nemenyi_q(4), nemenyi_q(4, 0.10), round(nemenyi_q(12), 3)
        (2.569, 2.291, 3.268)
    """
    check_positive_int(k, "k", minimum=2)
    alpha = check_alpha(alpha)
    if alpha in NEMENYI_Q and k <= 10:
        return NEMENYI_Q[alpha][k - 2]
    return float(scipy.stats.studentized_range.ppf(1.0 - alpha, k, np.inf) / math.sqrt(2.0))


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    r"""Nemenyi's critical difference :math:`q_\alpha \sqrt{k(k+1)/(6N)}` of mean ranks.

    Example:
        >>> round(critical_difference(4, 14), 2)  # Demšar (2006), Section 3.2.4
        1.25
    """
    check_positive_int(n, "n")
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n))


@dataclass(frozen=True, eq=False)
class PostHocResult:
    """A post-hoc comparison of every two methods after a Friedman test.

    Attributes:
        test: ``"nemenyi"`` or ``"conover"``.
        methods: The methods compared (those not in ``friedman.excluded``).
        mean_ranks: ``(k,)``, 1 = best.
        critical_difference: Nemenyi's CD (NaN for Conover).
        p_values: ``(k, k)``: Nemenyi's single-step p-values, or Conover's
            Holm-adjusted ones (NaN diagonal).
        significant: ``(k, k)`` bool: Nemenyi: the mean ranks differ by at
            least CD; Conover: adjusted ``p <= alpha``.
        groups: Groups of methods not significantly different (maximal, two or
            more, in rank order), the bars of a CD diagram.
        friedman: The omnibus test. Demšar: read the post-hoc test only when
            it rejects.
    """

    test: str
    methods: tuple[str, ...]
    mean_ranks: np.ndarray
    n: int
    alpha: float
    critical_difference: float
    p_values: np.ndarray
    significant: np.ndarray
    groups: tuple[tuple[str, ...], ...]
    friedman: FriedmanResult


def indistinguishable_groups(mean_ranks: Any, significant: Any,
                             methods: Sequence[str] | None = None) -> tuple[tuple[str, ...], ...]:
    """Maximal runs of methods, in mean-rank order, no two of which differ significantly.

    These are the bars of a critical-difference diagram; runs of one method
    are left out.

    Example:
        >>> ranks = [1.0, 1.5, 2.9, 3.6]
        >>> significant = np.abs(np.subtract.outer(ranks, ranks)) >= 2.0  # a-d, b-d differ
        >>> indistinguishable_groups(ranks, significant, ["a", "b", "c", "d"])
        (('a', 'b', 'c'), ('c', 'd'))
    """
    ranks = np.asarray(mean_ranks, dtype=np.float64)
    matrix = np.asarray(significant, dtype=bool)
    if ranks.ndim != 1 or matrix.shape != (ranks.size, ranks.size):
        raise ShapeError(f"Expected `significant` of shape {(ranks.size, ranks.size)}, but got "
                         f"{matrix.shape}.")
    names = method_names(methods, ranks.size)
    order = np.argsort(ranks, kind="stable")
    runs: list[tuple[int, int]] = []
    for start in range(order.size):
        end = start
        while end + 1 < order.size:
            members = order[start:end + 2]
            if matrix[np.ix_(members, members)].any():
                break
            end += 1
        if end > start and not (runs and runs[-1][1] >= end):
            runs.append((start, end))
    return tuple(tuple(names[order[i]] for i in range(a, b + 1)) for a, b in runs)


def nemenyi_test(scores: Any, *, higher_is_better: bool | Sequence[bool],
                 methods: Sequence[str] | None = None, alpha: float = 0.05,
                 tie_correction: bool = True) -> PostHocResult:
    r"""Friedman test followed by the Nemenyi test of every two methods (Demšar 2006).

    Two methods differ significantly when their mean ranks differ by at least
    :func:`critical_difference`; the p-value of a pair is
    :math:`P(Q_{k,\infty} \ge |R_i - R_j| \sqrt 2 / \sqrt{k(k+1)/(6N)})`.

    Shape:
        - scores: ``(k, N)``

    Example:
        >>> scores = [[0.9, 0.8, 0.95, 0.85, 0.9, 0.8], [0.7, 0.6, 0.75, 0.65, 0.7, 0.6],
        ...           [0.5, 0.4, 0.55, 0.45, 0.5, 0.4]]
        >>> result = nemenyi_test(scores, higher_is_better=True, methods=["a", "b", "c"])
        >>> result.mean_ranks.tolist(), round(result.critical_difference, 3), result.groups
        ([1.0, 2.0, 3.0], 1.353, (('a', 'b'), ('b', 'c')))
    """
    alpha = check_alpha(alpha)
    friedman = friedman_test(scores, higher_is_better=higher_is_better, methods=methods,
                             tie_correction=tie_correction)
    k, n, ranks = friedman.k, friedman.n, friedman.mean_ranks
    if k < 2 or n < 1:
        cd = math.nan
        p = np.full((k, k), np.nan)
        significant = np.zeros((k, k), dtype=bool)
    else:
        cd = critical_difference(k, n, alpha)
        gap = np.abs(np.subtract.outer(ranks, ranks))
        se = math.sqrt(k * (k + 1) / (6.0 * n))
        p = scipy.stats.studentized_range.sf(gap * math.sqrt(2.0) / se, k, np.inf)
        significant = gap >= cd
    np.fill_diagonal(p, np.nan)
    np.fill_diagonal(significant, False)
    groups = indistinguishable_groups(ranks, significant, friedman.methods) if k else ()
    return PostHocResult("nemenyi", friedman.methods, ranks, n, alpha, cd, p, significant, groups,
                         friedman)


def conover_test(scores: Any, *, higher_is_better: bool | Sequence[bool],
                 methods: Sequence[str] | None = None, alpha: float = 0.05,
                 tie_correction: bool = True) -> PostHocResult:
    r"""Friedman test followed by Conover's pairwise comparisons, Holm-adjusted.

    Conover (1999, *Practical Nonparametric Statistics*, 3rd ed., p. 371): with
    :math:`r_{ij}` the within-block ranks, :math:`S_j = \sum_i r_{ij}` the rank
    sums and :math:`A = \sum_{ij} r_{ij}^2`, methods ``a`` and ``b`` differ when
    :math:`t = |S_a - S_b| / \sqrt{2 (N A - \sum_j S_j^2) / ((N - 1)(k - 1))}`
    is large for Student's t with ``(N - 1)(k - 1)`` degrees of freedom
    (two-sided). The p-values are Holm-adjusted over the ``k (k - 1) / 2`` pairs.
    NaN with fewer than two blocks; 1 for equal rank sums when every block is a tie.

    Example:
        >>> scores = [[0.9, 0.8, 0.95, 0.85, 0.9, 0.8], [0.7, 0.6, 0.75, 0.65, 0.7, 0.6],
        ...           [0.5, 0.4, 0.55, 0.45, 0.5, 0.4]]
        >>> conover_test(scores, higher_is_better=True, methods=["a", "b", "c"]).groups
        ()
    """
    alpha = check_alpha(alpha)
    friedman = friedman_test(scores, higher_is_better=higher_is_better, methods=methods,
                             tie_correction=tie_correction)
    k, n, ranks = friedman.k, friedman.n, friedman.ranks
    raw = np.full((k, k), np.nan)
    if k >= 2 and n >= 2:
        sums = ranks.sum(axis=1)
        spread = 2.0 * (n * np.sum(ranks**2) - np.sum(sums**2)) / ((n - 1) * (k - 1))
        gap = np.abs(np.subtract.outer(sums, sums))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = gap / math.sqrt(spread) if spread > 0 else np.where(gap > 0, np.inf, 0.0)
        raw = 2.0 * scipy.stats.t.sf(t, (n - 1) * (k - 1))
    upper = np.triu_indices(k, 1)
    p = np.full((k, k), np.nan)
    p[upper] = holm(raw[upper])
    p.T[upper] = p[upper]
    significant = p <= alpha
    groups = indistinguishable_groups(friedman.mean_ranks, significant, friedman.methods)
    return PostHocResult("conover", friedman.methods, friedman.mean_ranks, n, alpha, math.nan, p,
                         significant, groups, friedman)
