r"""Paired comparisons of two methods over the same samples: tests, Holm correction, effect sizes.

Every function takes the scores of two methods on the same samples (``x[i]``
and ``y[i]`` belong to sample ``i``); a pair with a NaN (or infinite) score on
either side is dropped and counted in ``n_dropped``.

* :func:`wilcoxon_test`: the Wilcoxon signed-rank test of the paired
  differences ``d = x - y`` (``scipy.stats.wilcoxon``). **Zero differences**
  (samples where both methods score the same) are handled by ``zero_method``:
  ``"pratt"`` (default) ranks them with the others and then drops their ranks
  (Pratt 1959), ``"wilcox"`` drops them before ranking, ``"zsplit"`` splits
  their ranks between the positive and negative sums (Demšar 2006's
  recommendation; what :mod:`xaiscore.meta` uses). When *every* valid
  difference is zero the test is undefined in scipy (NaN); here it reports
  ``p = 1``: the data show no difference.
* :func:`permutation_test`: the paired sign-flip permutation test of the mean
  difference, exact over all ``2^m`` sign patterns of the ``m`` non-zero
  differences when ``2^m <= n_resamples``, Monte Carlo with ``n_resamples``
  draws from ``seed`` otherwise. Same definitions as
  ``scipy.stats.permutation_test(..., permutation_type="samples")``, computed
  here because scipy's generic loop took ~0.4 s a pair at ``N = 1000``
  (0.05 s here, 2-core VM).
* :func:`holm`: Holm's (1979) step-down adjustment of a family of p-values.
* :func:`median_difference`: the median of ``d`` with a percentile bootstrap
  interval (``scipy.stats.bootstrap``, seeded).
* :func:`probability_of_superiority`: :math:`P(X \succ Y) + \tfrac12 P(X = Y)`
  over the pairs, :math:`\succ` meaning "better" in the metric's direction:
  the share of samples on which the first method beats the second, ties
  counting one half (0.5 = no tendency; 1 = better on every sample).
All of these for every two of ``k`` methods at once, Holm-corrected:
:func:`xaiscore.stats.pairwise_tests` (:mod:`xaiscore.stats.pairwise`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
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
    as_float_array,
    check_direction,
    orient,
    rng_keyword,
    scipy_wilcoxon_method,
)

__all__ = [
    "PERMUTATION_MAX_N",
    "ZERO_METHODS",
    "Interval",
    "PairedTest",
    "holm",
    "median_difference",
    "permutation_test",
    "probability_of_superiority",
    "wilcoxon_test",
]

#: Ways of handling zero differences in the Wilcoxon test (``scipy.stats.wilcoxon``'s names).
ZERO_METHODS = ("pratt", "wilcox", "zsplit")

ZeroMethod = Literal["pratt", "wilcox", "zsplit"]
Alternative = Literal["two-sided", "greater", "less"]


@dataclass(frozen=True)
class PairedTest:
    """Result of a paired test.

    Attributes:
        statistic: Wilcoxon: scipy's statistic (the smaller rank sum for a
            two-sided test); permutation: the mean difference ``mean(x - y)``.
        p_value: The p-value; NaN when no pair is valid, 1 when every difference is zero.
        n: Valid pairs used.
        n_dropped: Pairs dropped for a non-finite score.
        n_zero: Valid pairs with a zero difference.
        direction: ``+1`` when ``x`` tends to exceed ``y`` (Wilcoxon: signed
            rank sum ``R+ - R-`` as ``zero_method`` ranks; permutation: sum of
            ``d``), ``-1`` for the reverse, ``0`` for neither.
    """

    statistic: float
    p_value: float
    n: int
    n_dropped: int
    n_zero: int
    direction: int


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval (NaN bounds where undefined)."""

    estimate: float
    low: float
    high: float
    n: int


def _pairs(x: Any, y: Any) -> tuple[np.ndarray, int]:
    """Finite paired differences ``x - y`` and the count of dropped pairs."""
    x, y = as_float_array(x, "x"), as_float_array(y, "y")
    if x.ndim != 1 or x.shape != y.shape:
        raise ShapeError(
            f"Expected `x` and `y` of the same shape (samples,), but got {x.shape} and {y.shape}."
        )
    keep = np.isfinite(x) & np.isfinite(y)
    return (x - y)[keep], int(x.size - keep.sum())


def holm(p_values: Any) -> np.ndarray:
    r"""Holm's step-down adjusted p-values (Holm 1979), for a family of hypotheses of any shape.

    With the ``m`` finite p-values sorted, :math:`p_{(1)} \le \dots \le p_{(m)}`,
    :math:`\tilde p_{(i)} = \min(1, \max_{j \le i} (m - j + 1) p_{(j)})`;
    rejecting where :math:`\tilde p \le \alpha` controls the family-wise error
    rate at :math:`\alpha`. NaN entries are not hypotheses: they stay NaN and do
    not count in ``m``.

    Shape:
        - p_values: any; output: the same, float64.

    Example:
        >>> holm([0.01, 0.04, 0.03, 0.005]).tolist()
        [0.03, 0.06, 0.06, 0.02]
    """
    p = as_float_array(p_values, "p_values")
    flat = p.ravel()
    finite = np.isfinite(flat)
    if np.any((flat[finite] < 0) | (flat[finite] > 1)):
        raise OptionError(f"Expected p-values in [0, 1], but got values from {flat[finite].min()} "
                          f"to {flat[finite].max()}.")
    values = flat[finite]
    order = np.argsort(values, kind="stable")
    m = values.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * values[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    out = np.full(flat.shape, np.nan)
    out[finite] = adjusted
    return out.reshape(p.shape)


#: Largest number of pairs for which ``method="auto"`` enumerates every sign pattern when there
#: are zeros or ties (scipy's threshold since 1.13).
PERMUTATION_MAX_N = 13


def _signed_ranks(d: np.ndarray, zero_method: str) -> tuple[np.ndarray, float, bool]:
    """Ranks of ``|d|`` for the non-zero differences, the zeros' share of ``R+``, and ties."""
    kept = d[d != 0] if zero_method == "wilcox" else d
    ranks = scipy.stats.rankdata(np.abs(kept))
    ties = np.unique(np.abs(kept)).size < kept.size
    zero_share = float(np.sum(ranks[kept == 0])) / 2.0 if zero_method == "zsplit" else 0.0
    return ranks[kept != 0], zero_share, ties


def _permutation_signed_rank_p(d: np.ndarray, zero_method: str, alternative: str) -> float:
    """Exact p-value of ``R+`` over all sign patterns of the non-zero differences (fast path).

    The same null distribution as scipy's ``PermutationMethod`` (which flips
    the signs of all ``n`` differences), built from ``2^m`` patterns instead of
    re-ranking ``2^n`` samples.
    """
    ranks, zero_share, _ = _signed_ranks(d, zero_method)
    signs = d[d != 0] > 0
    observed = zero_share + float(np.sum(ranks[signs]))
    m = ranks.size
    patterns = (np.arange(2**m)[:, None] >> np.arange(m)) & 1
    null = zero_share + patterns @ ranks
    tolerance = 1e-9 * max(abs(observed), 1.0)
    greater = float(np.mean(null >= observed - tolerance))
    less = float(np.mean(null <= observed + tolerance))
    if alternative == "greater":
        return greater
    if alternative == "less":
        return less
    return min(1.0, 2.0 * min(greater, less))


def wilcoxon_test(x: Any, y: Any, *, zero_method: ZeroMethod = "pratt",
                  alternative: Alternative = "two-sided",
                  method: Literal["auto", "exact", "asymptotic"] = "auto") -> PairedTest:
    """Wilcoxon signed-rank test of ``x - y`` over the valid pairs (``scipy.stats.wilcoxon``).

    Args:
        x, y: Paired scores ``(N,)``; NaN pairs are dropped.
        zero_method: ``"pratt"``, ``"wilcox"`` or ``"zsplit"`` (module docstring).
        alternative: ``"two-sided"``, ``"greater"`` (``x`` tends to exceed ``y``) or ``"less"``.
        method: ``"auto"`` (scipy's rule since 1.13, whatever the installed
            version: the exact null distribution for ``n <= 50`` without zeros
            or ties; with them every sign pattern enumerated for ``n <= 13``,
            computed here in milliseconds where scipy's permutation test takes
            about a second; the normal approximation otherwise), or scipy's
            ``"exact"`` or ``"asymptotic"``. No continuity correction.

    Returns:
        :class:`PairedTest`; ``p = NaN`` with no valid pair, ``p = 1`` when
        every valid difference is zero.

    Shape:
        - x, y: ``(N,)``

    Example:
        >>> nan = float("nan")
        >>> test = wilcoxon_test([0.9, 0.8, 0.7, 0.95, 0.85, 0.75], [0.5, 0.5, 0.5, 0.5, 0.5, nan])
        >>> round(test.p_value, 4), test.n, test.n_dropped, test.direction
        (0.0625, 5, 1, 1)
    """
    check_option(zero_method, "zero_method", ZERO_METHODS)
    check_option(alternative, "alternative", ("two-sided", "greater", "less"))
    check_option(method, "method", ("auto", "exact", "asymptotic"))
    d, dropped = _pairs(x, y)
    n_zero = int(np.sum(d == 0))
    if d.size == 0 or n_zero == d.size:
        p = math.nan if d.size == 0 else 1.0
        return PairedTest(math.nan, p, int(d.size), dropped, n_zero, 0)
    ranks, zero_share, ties = _signed_ranks(d, zero_method)
    r_plus = zero_share + float(np.sum(ranks[d[d != 0] > 0]))
    r_minus = zero_share + float(np.sum(ranks[d[d != 0] < 0]))
    direction = int(np.sign(r_plus - r_minus))
    if method == "auto" and (ties or n_zero) and d.size <= PERMUTATION_MAX_N:
        statistic = min(r_plus, r_minus) if alternative == "two-sided" else r_plus
        p = _permutation_signed_rank_p(d, zero_method, alternative)
        return PairedTest(statistic, p, int(d.size), dropped, n_zero, direction)
    if method == "auto":
        method = "exact" if not (ties or n_zero) and d.size <= 50 else "asymptotic"
    with warnings.catch_warnings():
        # older scipy warns that "exact" with zeros/ties is not exact; that is the caller's choice
        warnings.simplefilter("ignore", UserWarning)
        result = scipy.stats.wilcoxon(d, zero_method=zero_method, alternative=alternative,
                                      method=scipy_wilcoxon_method(method))
    return PairedTest(float(result.statistic), float(result.pvalue), int(d.size), dropped, n_zero,
                      direction)


def _resolve_rng(seed: Any) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.default_rng(int(seed))
    raise OptionError(f"Expected `seed` to be an int or a numpy Generator, but got {seed!r}.")


def _sign_flip_sums(values: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """``sum_i s_i values_i`` for 0/1 rows of ``patterns`` (1 keeps the sign, 0 flips it)."""
    return 2.0 * (patterns.astype(np.float64) @ values) - np.sum(values)


def _packed_sign_flip_sums(values: np.ndarray, packed: np.ndarray) -> np.ndarray:
    """As :func:`_sign_flip_sums` for bit patterns packed eight to a byte (``np.packbits`` order).

    One lookup table per byte position holds the sum of the values whose bits are set, so a
    pattern costs ``m / 8`` lookups instead of ``m`` multiply-adds.
    """
    positions = packed.shape[1]
    padded = np.zeros(positions * 8)
    padded[: values.size] = values
    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float64)
    table = bits @ padded.reshape(positions, 8).T  # (256, positions)
    kept = table[packed, np.arange(positions)].sum(axis=1)
    return 2.0 * kept - np.sum(values)


def permutation_test(x: Any, y: Any, *, n_resamples: int = 9999, seed: Any = 0,
                     alternative: Alternative = "two-sided") -> PairedTest:
    """Paired sign-flip permutation test of the mean difference ``mean(x - y)``.

    Under the null hypothesis each difference is as likely to have either
    sign. Zero differences contribute nothing under any flip and are left
    out; with ``m`` non-zero differences the null distribution of the sum
    ``S`` is exact (all ``2^m`` sign patterns) when ``2^m <= n_resamples``, and
    drawn ``n_resamples`` times from ``seed`` otherwise, the p-value then
    counting the observed pattern once (``(b + 1) / (n_resamples + 1)``, as
    ``scipy.stats.permutation_test`` does). Two-sided:
    ``min(1, 2 min(P(S >= s), P(S <= s)))``. Sums are compared with a relative
    tolerance of ``1e-9`` so that rounding cannot split equal sums.

    Args:
        x, y: Paired scores ``(N,)``; NaN pairs are dropped.
        n_resamples: Monte Carlo draws (and the exact-enumeration budget).
        seed: An ``int`` or a ``numpy.random.Generator``.
        alternative: ``"two-sided"``, ``"greater"`` or ``"less"``.

    Shape:
        - x, y: ``(N,)``

    Example:
        >>> test = permutation_test([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0])
        >>> test.p_value  # exact: 2 of the 16 sign patterns are as extreme
        0.125
    """
    check_positive_int(n_resamples, "n_resamples")
    check_option(alternative, "alternative", ("two-sided", "greater", "less"))
    rng = _resolve_rng(seed)
    d, dropped = _pairs(x, y)
    nonzero = d[d != 0]
    n_zero = int(d.size - nonzero.size)
    if d.size == 0 or nonzero.size == 0:
        p = math.nan if d.size == 0 else 1.0
        return PairedTest(math.nan if d.size == 0 else 0.0, p, int(d.size), dropped, n_zero, 0)
    m = nonzero.size
    observed = float(np.sum(nonzero))
    tolerance = 1e-9 * max(float(np.sum(np.abs(nonzero))), 1e-300)
    greater = less = 0
    if m < 63 and 2**m <= n_resamples:
        patterns = (np.arange(2**m)[:, None] >> np.arange(m)) & 1
        null = _sign_flip_sums(nonzero, patterns)
        greater, less, total, extra = (np.sum(null >= observed - tolerance),
                                       np.sum(null <= observed + tolerance), null.size, 0)
    else:
        for start in range(0, n_resamples, 1000):  # blocks bound the memory
            packed = rng.integers(0, 256, size=(min(1000, n_resamples - start), (m + 7) // 8),
                                  dtype=np.uint8)  # eight fair coin flips per byte
            null = _packed_sign_flip_sums(nonzero, packed)
            greater += np.sum(null >= observed - tolerance)
            less += np.sum(null <= observed + tolerance)
        total, extra = n_resamples, 1
    p_greater = (greater + extra) / (total + extra)
    p_less = (less + extra) / (total + extra)
    p = {"greater": p_greater, "less": p_less,
         "two-sided": min(1.0, 2.0 * min(p_greater, p_less))}[alternative]
    return PairedTest(observed / d.size, float(p), int(d.size), dropped, n_zero,
                      int(np.sign(observed)))


def median_difference(x: Any, y: Any, *, confidence: float = 0.95, n_resamples: int = 1000,
                      seed: Any = 0) -> Interval:
    """Median of the paired differences ``x - y`` with a percentile bootstrap interval.

    The interval resamples the valid pairs with replacement (``scipy.stats.bootstrap``,
    ``method="percentile"``, generator from ``seed``). NaN bounds for fewer than
    two valid pairs; NaN estimate for none.

    Shape:
        - x, y: ``(N,)``

    Example:
        >>> effect = median_difference([3.0, 5.0, 4.0, 6.0, 2.0], [1.0, 1.0, 1.0, 1.0, 1.0])
        >>> effect.estimate, effect.low <= 3.0 <= effect.high
        (3.0, True)
    """
    check_fraction(confidence, "confidence", low_inclusive=False, high_inclusive=False)
    check_positive_int(n_resamples, "n_resamples")
    rng = _resolve_rng(seed)
    d, _ = _pairs(x, y)
    if d.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    estimate = float(np.median(d))
    if d.size < 2:
        return Interval(estimate, math.nan, math.nan, int(d.size))
    result = scipy.stats.bootstrap(
        (d,), np.median, n_resamples=n_resamples, confidence_level=confidence, method="percentile",
        vectorized=True, batch=500, **{rng_keyword(scipy.stats.bootstrap): rng},
    )
    interval = result.confidence_interval
    return Interval(estimate, float(interval.low), float(interval.high), int(d.size))


def probability_of_superiority(x: Any, y: Any, *, higher_is_better: bool | None = True) -> float:
    r"""Share of valid pairs on which ``x`` is better than ``y``, ties counting one half.

    :math:`\hat P = \frac{1}{n}\sum_i (\mathbb 1[x_i \succ y_i] + \tfrac12 \mathbb 1[x_i = y_i])`,
    :math:`\succ` being ``>`` when higher is better (and for ``None``) and ``<``
    when lower is better. NaN with no valid pair.

    Example:
        >>> x, y = [0.9, 0.5, 0.2, 0.4], [0.1, 0.5, 0.3, 0.3]
        >>> probability_of_superiority(x, y)
        0.625
        >>> probability_of_superiority(x, y, higher_is_better=False)
        0.375
    """
    direction = check_direction(higher_is_better)
    d, _ = _pairs(x, y)
    if d.size == 0:
        return math.nan
    d = orient(d, direction)
    return float(np.mean((d > 0) + 0.5 * (d == 0)))
