"""Slow references for ``xaiscore.stats``, written from the papers with loops; no shared code.

* Holm (1979): sort, multiply the i-th smallest by (m - i + 1), running maximum, cap at 1.
* Paired sign-flip permutation test: every sign pattern enumerated with itertools.
* Probability of superiority and per-sample win shares: one sample at a time.
* Friedman (1937) / Iman-Davenport (1980) as printed in Demšar (2006), Section 3.2.2,
  with the tie correction of Conover (1999) as an option.
* Conover (1999, p. 371): pairwise t statistics on the rank sums after a Friedman test.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import scipy.stats


def holm(p_values):
    p = [float(v) for v in p_values]
    finite = [i for i, v in enumerate(p) if not math.isnan(v)]
    order = sorted(finite, key=lambda i: p[i])
    m = len(order)
    out = [math.nan] * len(p)
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, (m - position) * p[index])
        out[index] = min(1.0, running)
    return out


def sign_flip_p(x, y, alternative="two-sided"):
    """Exact paired permutation p-value of the sum of differences over all sign patterns."""
    d = [a - b for a, b in zip(x, y) if math.isfinite(a) and math.isfinite(b)]
    if not d:
        return math.nan
    observed = sum(d)
    sums = []
    for signs in itertools.product((1.0, -1.0), repeat=len(d)):
        sums.append(sum(s * v for s, v in zip(signs, d)))
    tolerance = 1e-9 * max(1.0, abs(observed))
    greater = sum(1 for s in sums if s >= observed - tolerance) / len(sums)
    less = sum(1 for s in sums if s <= observed + tolerance) / len(sums)
    if alternative == "greater":
        return greater
    if alternative == "less":
        return less
    return min(1.0, 2.0 * min(greater, less))


def superiority(x, y, higher_is_better=True):
    total, count = 0.0, 0
    for a, b in zip(x, y):
        if not (math.isfinite(a) and math.isfinite(b)):
            continue
        count += 1
        if a == b:
            total += 0.5
        elif (a > b) == (higher_is_better is not False):
            total += 1.0
    return total / count if count else math.nan


def win_shares(scores, higher_is_better=True):
    """``(k, counted)`` win shares, one sample at a time; samples with no finite score skipped."""
    scores = np.asarray(scores, dtype=float)
    columns = []
    for j in range(scores.shape[1]):
        column = scores[:, j]
        finite = [i for i in range(len(column)) if math.isfinite(column[i])]
        if not finite:
            continue
        values = [column[i] for i in finite]
        best = max(values) if higher_is_better else min(values)
        winners = [i for i in finite if column[i] == best]
        share = [0.0] * len(column)
        for i in winners:
            share[i] = 1.0 / len(winners)
        columns.append(share)
    return np.array(columns, dtype=float).T.reshape(scores.shape[0], len(columns))


def block_ranks(block, higher_is_better=True):
    """Ranks of one block, 1 = best, ties averaged (by counting, not by sorting)."""
    ranks = []
    for value in block:
        better = sum(1 for other in block if (other > value if higher_is_better else other < value))
        tied = sum(1 for other in block if other == value)
        ranks.append(better + (tied + 1) / 2.0)
    return ranks


def friedman(table, higher_is_better=True, tie_correction=False):
    """``table`` is N blocks x k methods (Demšar's layout). Returns (mean ranks, chi2_F, F_F)."""
    table = [list(row) for row in table]
    n, k = len(table), len(table[0])
    ranks = [block_ranks(row, higher_is_better) for row in table]
    mean = [sum(r[j] for r in ranks) / n for j in range(k)]
    chi2 = 12.0 * n / (k * (k + 1)) * (sum(r * r for r in mean) - k * (k + 1) ** 2 / 4.0)
    if tie_correction:
        ties = 0.0
        for row in ranks:
            for value in set(row):
                t = row.count(value)
                ties += t**3 - t
        chi2 /= 1.0 - ties / (n * k * (k * k - 1))
    f = (n - 1) * chi2 / (n * (k - 1) - chi2)
    return mean, chi2, f


def conover_p(table, higher_is_better=True):
    """Unadjusted two-sided Conover p-values, ``(k, k)``; ``table`` is N blocks x k methods."""
    n, k = len(table), len(table[0])
    ranks = [block_ranks(row, higher_is_better) for row in table]
    sums = [sum(r[j] for r in ranks) for j in range(k)]
    a1 = sum(v * v for r in ranks for v in r)
    scale = math.sqrt(2.0 * (n * a1 - sum(s * s for s in sums)) / ((n - 1) * (k - 1)))
    p = np.full((k, k), np.nan)
    for i in range(k):
        for j in range(k):
            if i != j:
                t = abs(sums[i] - sums[j]) / scale
                p[i, j] = 2.0 * scipy.stats.t.sf(t, (n - 1) * (k - 1))
    return p


def signed_rank_permutation_p(d, zero_method="pratt", alternative="two-sided"):
    """Wilcoxon's R+ over every sign pattern of all ``n`` differences (zeros flip to zero)."""
    d = [float(v) for v in d]

    def r_plus(values):
        kept = [v for v in values if v != 0] if zero_method == "wilcox" else list(values)
        ranks = scipy.stats.rankdata([abs(v) for v in kept])
        total = sum(r for r, v in zip(ranks, kept) if v > 0)
        if zero_method == "zsplit":
            total += sum(r for r, v in zip(ranks, kept) if v == 0) / 2.0
        return total

    observed = r_plus(d)
    null = [r_plus([s * v for s, v in zip(signs, d)])
            for signs in itertools.product((1.0, -1.0), repeat=len(d))]
    greater = sum(1 for v in null if v >= observed - 1e-9) / len(null)
    less = sum(1 for v in null if v <= observed + 1e-9) / len(null)
    if alternative == "greater":
        return greater
    if alternative == "less":
        return less
    return min(1.0, 2.0 * min(greater, less))
