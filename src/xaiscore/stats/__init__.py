"""Statistics for comparing explanation methods: paired tests, Friedman/Nemenyi, verdicts, CD plots.

Usable on its own (numpy arrays or torch tensors in, small frozen result
objects out); the harness report builds on it. Conventions: per-metric scores
are ``(k, N)`` arrays, one row per method and one column per sample (or per
data set / metric for the rank tests), NaN where a score is undefined; every
function that needs to know what "better" means takes ``higher_is_better``.

* Paired tests of two methods on the same samples, Holm correction, effect
  sizes: :func:`wilcoxon_test`, :func:`permutation_test`, :func:`holm`,
  :func:`median_difference`, :func:`probability_of_superiority`, and all pairs
  at once with :func:`pairwise_tests`.
* Many methods over many blocks: :func:`average_ranks`, :func:`friedman_test`,
  :func:`nemenyi_test` (with :func:`critical_difference`, :func:`nemenyi_q`),
  :func:`conover_test`, :func:`indistinguishable_groups`, and the diagram
  :func:`plot_critical_difference`.
* What a scoreboard may claim: :func:`scoreboard_verdict` (a best method only
  when it is significantly better than the runner-up, else the tie group) and
  :func:`win_rates` (per-sample wins with bootstrap intervals, per group).
* :func:`kendall_tau_b`: batched Kendall's tau-b (torch; the library's only one).

Everything but :func:`kendall_tau_b` needs scipy (the ``stats`` extra); the
plot needs matplotlib. Submodules load on first use, so ``kendall_tau_b`` works
without scipy. Guide: ``docs/statistics.md``.

Example:
    >>> from xaiscore.stats import scoreboard_verdict
    >>> scores = [[0.61, 0.72, 0.55, 0.80, 0.67, 0.70, 0.59, 0.66],
    ...           [0.60, 0.70, 0.56, 0.79, 0.69, 0.71, 0.57, 0.66]]
    >>> verdict = scoreboard_verdict(scores, higher_is_better=True, methods=["mine", "gradcam"])
    >>> verdict.best, verdict.tie_group
    (None, ('mine', 'gradcam'))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ZERO_METHODS": "paired",
    "PairedTest": "paired",
    "Interval": "paired",
    "PairwiseComparison": "pairwise",
    "PairwiseTests": "pairwise",
    "holm": "paired",
    "wilcoxon_test": "paired",
    "permutation_test": "paired",
    "median_difference": "paired",
    "probability_of_superiority": "paired",
    "pairwise_tests": "pairwise",
    "NEMENYI_Q": "ranks",
    "FriedmanResult": "ranks",
    "PostHocResult": "ranks",
    "average_ranks": "ranks",
    "friedman_test": "ranks",
    "nemenyi_q": "ranks",
    "critical_difference": "ranks",
    "nemenyi_test": "ranks",
    "conover_test": "ranks",
    "indistinguishable_groups": "ranks",
    "Verdict": "verdict",
    "WinRates": "verdict",
    "scoreboard_verdict": "verdict",
    "win_rates": "verdict",
    "plot_critical_difference": "cd_diagram",
    "kendall_tau_b": "kendall",
}

__all__ = [
    "NEMENYI_Q",
    "ZERO_METHODS",
    "FriedmanResult",
    "Interval",
    "PairedTest",
    "PairwiseComparison",
    "PairwiseTests",
    "PostHocResult",
    "Verdict",
    "WinRates",
    "average_ranks",
    "conover_test",
    "critical_difference",
    "friedman_test",
    "holm",
    "indistinguishable_groups",
    "kendall_tau_b",
    "median_difference",
    "nemenyi_q",
    "nemenyi_test",
    "pairwise_tests",
    "permutation_test",
    "plot_critical_difference",
    "probability_of_superiority",
    "scoreboard_verdict",
    "wilcoxon_test",
    "win_rates",
]

if TYPE_CHECKING:  # pragma: no cover
    from xaiscore.stats.cd_diagram import plot_critical_difference
    from xaiscore.stats.kendall import kendall_tau_b
    from xaiscore.stats.paired import (
        ZERO_METHODS,
        Interval,
        PairedTest,
        holm,
        median_difference,
        permutation_test,
        probability_of_superiority,
        wilcoxon_test,
    )
    from xaiscore.stats.pairwise import PairwiseComparison, PairwiseTests, pairwise_tests
    from xaiscore.stats.ranks import (
        NEMENYI_Q,
        FriedmanResult,
        PostHocResult,
        average_ranks,
        conover_test,
        critical_difference,
        friedman_test,
        indistinguishable_groups,
        nemenyi_q,
        nemenyi_test,
    )
    from xaiscore.stats.verdict import Verdict, WinRates, scoreboard_verdict, win_rates


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'xaiscore.stats' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"xaiscore.stats.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
