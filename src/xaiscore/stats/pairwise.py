"""Every two of ``k`` methods on one metric: paired tests, Holm over the pairs, effect sizes.

Builds on :mod:`xaiscore.stats.paired` (the single-pair tests); see there for
the definitions.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from xaiscore._checks import OptionError, check_option, check_positive_int
from xaiscore.stats._input import as_scores, check_alpha, check_direction, method_names
from xaiscore.stats.paired import (
    ZERO_METHODS,
    ZeroMethod,
    holm,
    median_difference,
    permutation_test,
    probability_of_superiority,
    wilcoxon_test,
)

__all__ = ["PairwiseComparison", "PairwiseTests", "pairwise_tests"]


@dataclass(frozen=True)
class PairwiseComparison:
    """One pair of methods: test, Holm-adjusted p-value and effect sizes.

    ``median_difference``, ``ci_low`` and ``ci_high`` are ``first - second`` in
    the metric's units (raw, not oriented); ``superiority`` is the probability
    that ``first`` beats ``second`` on a sample in the metric's direction;
    ``better`` names the method the test favours when ``significant`` and the
    direction is known, else ``None``.
    """

    first: str
    second: str
    n: int
    n_dropped: int
    n_zero: int
    statistic: float
    p_value: float
    p_adjusted: float
    significant: bool
    better: str | None
    median_difference: float
    ci_low: float
    ci_high: float
    superiority: float


_ANTISYMMETRIC = ("median_difference", "ci_low", "ci_high")


@dataclass(frozen=True)
class PairwiseTests:
    """Every two of ``k`` methods compared on one metric (from :func:`pairwise_tests`)."""

    methods: tuple[str, ...]
    comparisons: tuple[PairwiseComparison, ...]
    higher_is_better: bool | None
    test: str
    zero_method: str
    alpha: float
    confidence: float

    def comparison(self, first: str, second: str) -> PairwiseComparison:
        """The comparison of two methods (in either order, as stored)."""
        for item in self.comparisons:
            if {item.first, item.second} == {first, second} and first != second:
                return item
        raise OptionError(f"Expected two different methods among {self.methods}, but got "
                          f"{first!r} and {second!r}.")

    def matrix(self, field: str) -> np.ndarray:
        """A ``(k, k)`` table of one field, row method against column method (NaN diagonal).

        P-values and counts are symmetric; ``superiority`` becomes ``1 - s``
        and the median difference and its bounds change sign (bounds swapped)
        below the diagonal.
        """
        names = [f.name for f in fields(PairwiseComparison)][2:]
        check_option(field, "field", [n for n in names if n != "better"])
        k = len(self.methods)
        index = {name: i for i, name in enumerate(self.methods)}
        out = np.full((k, k), np.nan)
        for item in self.comparisons:
            i, j = index[item.first], index[item.second]
            value = float(getattr(item, field))
            out[i, j] = value
            if field == "superiority":
                out[j, i] = 1.0 - value
            elif field in _ANTISYMMETRIC:
                mirror = {"median_difference": "median_difference", "ci_low": "ci_high",
                          "ci_high": "ci_low"}[field]
                out[j, i] = -float(getattr(item, mirror))
            else:
                out[j, i] = value
        return out

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per pair (e.g. for ``pandas.DataFrame(result.to_records())``)."""
        return [{f.name: getattr(item, f.name) for f in fields(PairwiseComparison)}
                for item in self.comparisons]


def pairwise_tests(scores: Any, *, higher_is_better: bool | None,
                   methods: Sequence[str] | None = None,
                   test: Literal["wilcoxon", "permutation"] = "wilcoxon",
                   zero_method: ZeroMethod = "pratt", alpha: float = 0.05,
                   confidence: float = 0.95, n_resamples: int = 1000, seed: Any = 0,
                   n_permutations: int = 9999) -> PairwiseTests:
    """Paired tests and effect sizes between every two methods on one metric, Holm-corrected.

    Args:
        scores: ``(k, N)`` per-sample scores of ``k`` methods on the same
            ``N`` samples (numpy or torch), NaN where undefined.
        higher_is_better: The metric's direction (``None``: unknown; tests
            and effect sizes are still computed, ``better`` stays ``None``,
            ``superiority`` then means "higher").
        methods: ``k`` names (default ``"0"``, ``"1"``, ...).
        test: ``"wilcoxon"`` (:func:`wilcoxon_test`) or ``"permutation"``
            (:func:`permutation_test`).
        zero_method: Zero-difference handling of the Wilcoxon test.
        alpha: Family-wise error rate for ``significant``.
        confidence: Coverage of the bootstrap interval of the median difference.
        n_resamples: Bootstrap resamples of the median difference.
        seed: Seed of the bootstrap and the permutations (one generator per pair,
            seeded from ``seed`` and the two names, so a pair's result does not depend
            on which other methods are compared).
        n_permutations: Permutation-test draws (``test="permutation"``).

    Shape:
        - scores: ``(k, N)``

    Example:
        >>> scores = [[0.9, 0.8, 0.85, 0.7, 0.95, 0.9, 0.8, 0.75],
        ...           [0.5, 0.4, 0.45, 0.5, 0.55, 0.6, 0.35, 0.4],
        ...           [0.5, 0.45, 0.4, 0.55, 0.5, 0.6, 0.4, 0.45]]
        >>> result = pairwise_tests(scores, higher_is_better=True, methods=["a", "b", "c"])
        >>> [(c.first, c.second, c.significant, c.better) for c in result.comparisons]
        [('a', 'b', True, 'a'), ('a', 'c', True, 'a'), ('b', 'c', False, None)]
    """
    values = as_scores(scores, min_methods=2)
    direction = check_direction(higher_is_better)
    names = method_names(methods, values.shape[0])
    check_option(test, "test", ("wilcoxon", "permutation"))
    check_option(zero_method, "zero_method", ZERO_METHODS)
    alpha = check_alpha(alpha)
    check_positive_int(n_permutations, "n_permutations")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise OptionError(f"Expected `seed` to be an int, but got {seed!r}.")
    k = values.shape[0]
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    rows = []
    for i, j in pairs:
        rng = np.random.default_rng([int(seed), zlib.crc32(names[i].encode()),
                                     zlib.crc32(names[j].encode())])
        if test == "wilcoxon":
            result = wilcoxon_test(values[i], values[j], zero_method=zero_method)
        else:
            result = permutation_test(values[i], values[j], n_resamples=n_permutations, seed=rng)
        effect = median_difference(values[i], values[j], confidence=confidence,
                                   n_resamples=n_resamples, seed=rng)
        superiority = probability_of_superiority(values[i], values[j], higher_is_better=direction)
        rows.append((i, j, result, effect, superiority))
    adjusted = holm([row[2].p_value for row in rows])
    comparisons = []
    for (i, j, result, effect, superiority), p_adjusted in zip(rows, adjusted):
        significant = bool(p_adjusted <= alpha)  # NaN compares False
        oriented = result.direction if direction is not False else -result.direction
        better = None
        if significant and direction is not None and oriented != 0:
            better = names[i] if oriented > 0 else names[j]
        comparisons.append(PairwiseComparison(
            first=names[i], second=names[j], n=result.n, n_dropped=result.n_dropped,
            n_zero=result.n_zero, statistic=result.statistic, p_value=result.p_value,
            p_adjusted=float(p_adjusted), significant=significant, better=better,
            median_difference=effect.estimate, ci_low=effect.low, ci_high=effect.high,
            superiority=superiority,
        ))
    return PairwiseTests(names, tuple(comparisons), direction, test, zero_method, alpha, confidence)
