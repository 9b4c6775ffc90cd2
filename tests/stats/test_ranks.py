"""Friedman, Nemenyi, Conover, CD groups: Demšar's worked example, scipy, loop references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings

from tests.reference import stats as ref
from tests.stats.helpers import DEMSAR_AUC, DEMSAR_METHODS, DEMSAR_RANKS, score_tables
from xaiscore._checks import DTypeError, OptionError, ShapeError
from xaiscore.stats import (
    NEMENYI_Q,
    average_ranks,
    conover_test,
    critical_difference,
    friedman_test,
    indistinguishable_groups,
    nemenyi_q,
    nemenyi_test,
)

# --- Demšar (2006), Section 3.2.4 and Table 6 -------------------------------------------------


def test_demsar_ranks_match_the_printed_ones():
    ranks = average_ranks(DEMSAR_AUC.T, higher_is_better=True)
    np.testing.assert_array_equal(ranks, DEMSAR_RANKS.T)


def test_demsar_friedman_worked_example():
    # "average ranks 3.143, 2.000, 2.893 and 1.964 ... chi2_F = 9.28 ... F_F = 3.69"; the
    # critical value of F(3, 39) at alpha = 0.05 is 2.85, so the null hypothesis is rejected.
    result = friedman_test(DEMSAR_AUC.T, higher_is_better=True, methods=DEMSAR_METHODS,
                           tie_correction=False)
    np.testing.assert_allclose(result.mean_ranks, [3.143, 2.000, 2.893, 1.964], atol=5e-4)
    assert round(result.statistic, 2) == 9.28
    assert round(result.iman_davenport, 2) == 3.69
    assert round(scipy.stats.f.ppf(0.95, 3, 39), 2) == 2.85
    assert result.iman_davenport_p_value < 0.05
    assert (result.k, result.n, result.n_dropped, result.excluded) == (4, 14, 0, ())
    mean, chi2, f = ref.friedman(DEMSAR_AUC)
    np.testing.assert_allclose([result.statistic, result.iman_davenport], [chi2, f], rtol=1e-12)
    np.testing.assert_allclose(result.mean_ranks, mean, rtol=1e-12)


def test_demsar_friedman_with_tie_correction_is_scipy():
    result = friedman_test(DEMSAR_AUC.T, higher_is_better=True)
    expected = scipy.stats.friedmanchisquare(*DEMSAR_AUC.T)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    assert result.statistic > 9.28  # ties in rows 6, 8, 10 and 11 shrink the denominator


def test_demsar_nemenyi_worked_example():
    # alpha = 0.05: CD = 2.569 sqrt(4 * 5 / (6 * 14)) = 1.25; even the best and the worst
    # (3.143 - 1.964 = 1.179) are closer than that: no pair differs, one group of four.
    at_05 = nemenyi_test(DEMSAR_AUC.T, higher_is_better=True, methods=DEMSAR_METHODS)
    assert round(at_05.critical_difference, 2) == 1.25
    assert not at_05.significant.any()
    assert at_05.groups == (("C4.5+m+cf", "C4.5+m", "C4.5+cf", "C4.5"),)
    # alpha = 0.10: CD = 2.291 sqrt(20 / 84) = 1.12: C4.5 is worse than C4.5+m and C4.5+m+cf;
    # "we cannot tell which group C4.5+cf belongs to": it is in both.
    at_10 = nemenyi_test(DEMSAR_AUC.T, higher_is_better=True, methods=DEMSAR_METHODS, alpha=0.10)
    assert round(at_10.critical_difference, 2) == 1.12
    pairs = {frozenset((DEMSAR_METHODS[i], DEMSAR_METHODS[j]))
             for i, j in zip(*np.nonzero(at_10.significant))}
    assert pairs == {frozenset(("C4.5", "C4.5+m")), frozenset(("C4.5", "C4.5+m+cf"))}
    assert at_10.groups == (("C4.5+m+cf", "C4.5+m", "C4.5+cf"), ("C4.5+cf", "C4.5"))
    # the single-step p-values agree with the CD rule for this example
    np.testing.assert_array_equal(at_10.p_values <= 0.10, at_10.significant)


# --- Friedman against scipy and the references ------------------------------------------------


@settings(max_examples=30)
@given(score_tables(min_methods=3, max_methods=6, min_samples=2, max_samples=25, nan=False))
def test_friedman_matches_scipy(table):
    result = friedman_test(table, higher_is_better=True)
    with np.errstate(all="ignore"):
        expected = scipy.stats.friedmanchisquare(*table)
    if np.isfinite(expected.statistic):
        assert result.statistic == pytest.approx(expected.statistic, rel=1e-10, abs=1e-12)
        assert result.p_value == pytest.approx(expected.pvalue, rel=1e-10, abs=1e-12)
    else:  # every block a complete tie: scipy divides 0 by 0
        assert (result.statistic, result.p_value) == (0.0, 1.0)
    np.testing.assert_allclose(result.mean_ranks, ref.friedman(table.T)[0], rtol=1e-12)


@settings(max_examples=30)
@given(score_tables(min_methods=2, max_methods=6, min_samples=2, max_samples=25, nan=False))
def test_iman_davenport_matches_reference(table):
    result = friedman_test(table, higher_is_better=False, tie_correction=False)
    _, chi2, f = ref.friedman(table.T, higher_is_better=False)
    assert result.statistic == pytest.approx(chi2, rel=1e-10, abs=1e-12)
    k, n = table.shape
    if n * (k - 1) - chi2 > 1e-9:
        assert result.iman_davenport == pytest.approx(f, rel=1e-9, abs=1e-12)
        assert result.iman_davenport_p_value == pytest.approx(
            scipy.stats.f.sf(f, k - 1, (k - 1) * (n - 1)), rel=1e-9, abs=1e-300)
    else:  # every block ranks the methods the same way
        assert result.iman_davenport == math.inf and result.iman_davenport_p_value == 0.0


def test_friedman_two_methods_is_the_sign_test_chi2():
    # k = 2: chi2_F = (W - L)^2 / (W + L) with the tie correction (W wins, L losses, ties out)
    first = np.array([3.0, 2.0, 5.0, 1.0, 4.0, 6.0, 2.0, 2.0, 9.0])
    second = np.array([1.0, 1.0, 4.0, 2.0, 4.0, 1.0, 2.0, 3.0, 0.0])
    wins, losses = np.sum(first > second), np.sum(first < second)
    result = friedman_test(np.stack([first, second]), higher_is_better=True)
    assert result.statistic == pytest.approx((wins - losses) ** 2 / (wins + losses))
    uncorrected = friedman_test(np.stack([first, second]), higher_is_better=True,
                                tie_correction=False)
    assert uncorrected.statistic == pytest.approx((wins - losses) ** 2 / first.size)


def test_friedman_per_block_directions():
    table = np.array([[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]])  # block 2 is lower-is-better
    ranks = average_ranks(table, higher_is_better=[True, False])
    np.testing.assert_array_equal(ranks, [[1, 1], [2, 2], [3, 3]])
    result = friedman_test(table, higher_is_better=[True, False])
    np.testing.assert_array_equal(result.mean_ranks, [1.0, 2.0, 3.0])
    with pytest.raises(ShapeError, match="one direction per block"):
        friedman_test(table, higher_is_better=[True])
    with pytest.raises(OptionError):
        friedman_test(table, higher_is_better=None)


def test_friedman_missing_values():
    nan = np.nan
    table = np.array([
        [1.0, 2.0, 3.0, 4.0, 5.0],
        [nan, nan, nan, nan, nan],  # no score at all: left out
        [2.0, 3.0, nan, 5.0, 6.0],  # one hole: that block is dropped
        [0.0, 1.0, 2.0, 3.0, 4.0],
    ])
    result = friedman_test(table, higher_is_better=True, methods=["a", "b", "c", "d"])
    assert result.methods == ("a", "c", "d") and result.excluded == ("b",)
    assert (result.k, result.n, result.n_dropped) == (3, 4, 1)
    np.testing.assert_array_equal(result.mean_ranks, [2.0, 1.0, 3.0])
    nemenyi = nemenyi_test(table, higher_is_better=True, methods=["a", "b", "c", "d"])
    assert nemenyi.methods == ("a", "c", "d") and nemenyi.p_values.shape == (3, 3)


def test_friedman_edge_cases():
    tied = friedman_test(np.ones((4, 6)), higher_is_better=True)  # ties everywhere
    assert (tied.statistic, tied.p_value, tied.iman_davenport, tied.iman_davenport_p_value) == \
        (0.0, 1.0, 0.0, 1.0)
    np.testing.assert_array_equal(tied.mean_ranks, [2.5] * 4)
    single = friedman_test(np.array([[3.0], [2.0], [1.0]]), higher_is_better=True)  # N = 1
    assert single.statistic == pytest.approx(2.0) and math.isnan(single.iman_davenport)
    one_method = friedman_test(np.array([[1.0, 2.0], [np.nan, np.nan]]), higher_is_better=True)
    assert one_method.k == 1 and math.isnan(one_method.statistic)
    nothing = friedman_test(np.full((3, 4), np.nan), higher_is_better=True)
    assert (nothing.k, nothing.n, nothing.n_dropped, nothing.excluded) == (0, 0, 4, ("0", "1", "2"))
    assert nemenyi_test(np.full((3, 4), np.nan), higher_is_better=True).groups == ()
    no_block = friedman_test(np.array([[1.0, np.nan], [np.nan, 2.0]]), higher_is_better=True)
    assert no_block.n == 0 and math.isnan(no_block.p_value)
    with pytest.raises(OptionError, match="tie_correction"):
        friedman_test(np.ones((3, 3)), higher_is_better=True, tie_correction="yes")
    with pytest.raises(DTypeError):
        friedman_test(np.array([[True, False], [False, True]]), higher_is_better=True)


def test_friedman_accepts_tensors():
    scores = torch.rand(4, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = friedman_test(scores, higher_is_better=True)
    expected = friedman_test(scores.numpy(), higher_is_better=True)
    assert ours.statistic == expected.statistic
    np.testing.assert_array_equal(ours.mean_ranks, expected.mean_ranks)


# --- Nemenyi ----------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.05, 0.10])
def test_nemenyi_table_is_the_studentized_range(alpha):
    for k in range(2, 11):
        exact = scipy.stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
        assert NEMENYI_Q[alpha][k - 2] == pytest.approx(exact, abs=1e-3)  # 3 decimals, +-1
        assert nemenyi_q(k, alpha) == NEMENYI_Q[alpha][k - 2]
    assert nemenyi_q(11, alpha) == pytest.approx(
        scipy.stats.studentized_range.ppf(1 - alpha, 11, np.inf) / math.sqrt(2), rel=1e-12)


def test_nemenyi_q_beyond_the_table_and_other_levels():
    assert nemenyi_q(2, 0.01) == pytest.approx(scipy.stats.norm.ppf(0.995), rel=1e-6)  # k = 2: z
    assert nemenyi_q(20) > nemenyi_q(10)
    assert critical_difference(4, 14) == pytest.approx(2.569 * math.sqrt(20 / 84))
    with pytest.raises(OptionError):
        nemenyi_q(1)
    with pytest.raises(OptionError, match="alpha"):
        nemenyi_q(4, 0.0)


@settings(max_examples=20)
@given(score_tables(min_methods=2, max_methods=7, min_samples=2, max_samples=30, nan=False))
def test_nemenyi_p_values_and_groups(table):
    result = nemenyi_test(table, higher_is_better=True)
    k, n = table.shape
    gap = np.abs(np.subtract.outer(result.mean_ranks, result.mean_ranks))
    np.testing.assert_array_equal(result.significant, (gap >= result.critical_difference)
                                  & ~np.eye(k, dtype=bool))
    off = ~np.eye(k, dtype=bool)
    expected_p = scipy.stats.studentized_range.sf(
        gap * math.sqrt(2) / math.sqrt(k * (k + 1) / (6 * n)), k, np.inf)
    np.testing.assert_allclose(result.p_values[off], expected_p[off], rtol=1e-9)
    for group in result.groups:  # every group: no pair differs, and it cannot grow
        index = [result.methods.index(m) for m in group]
        assert not result.significant[np.ix_(index, index)].any()
        assert len(group) >= 2


def test_nemenyi_ties_everywhere_and_two_methods():
    tied = nemenyi_test(np.ones((3, 5)), higher_is_better=True, methods=["a", "b", "c"])
    assert not tied.significant.any() and tied.groups == (("a", "b", "c"),)
    two = nemenyi_test(np.array([[1.0] * 10, [0.0] * 10]), higher_is_better=True)
    assert two.critical_difference == pytest.approx(1.960 * math.sqrt(6 / 60))
    assert two.significant[0, 1] and two.groups == ()


# --- Conover ----------------------------------------------------------------------------------


@settings(max_examples=25)
@given(score_tables(min_methods=2, max_methods=6, min_samples=2, max_samples=25, nan=False))
def test_conover_matches_reference(table):
    result = conover_test(table, higher_is_better=True)
    ranks = ref.friedman(table.T)[0]
    k = table.shape[0]
    np.testing.assert_allclose(result.mean_ranks, ranks, rtol=1e-12)
    all_tied = np.all(table == table[0:1])
    spread = [ref.block_ranks(column) for column in table.T]
    sums = np.sum(spread, axis=0)
    a1 = np.sum(np.square(spread))
    if table.shape[1] * a1 - np.sum(sums**2) <= 1e-9 or all_tied:
        return  # no residual variance: the reference divides by zero
    raw = ref.conover_p(table.T)
    upper = np.triu_indices(k, 1)
    np.testing.assert_allclose(result.p_values[upper], ref.holm(raw[upper]), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(result.p_values, result.p_values.T, equal_nan=True)


def test_conover_demsar_data_and_edge_cases():
    result = conover_test(DEMSAR_AUC.T, higher_is_better=True, methods=DEMSAR_METHODS)
    # more powerful than Nemenyi: C4.5 differs from C4.5+m and C4.5+m+cf at 0.05
    assert result.significant[0, 1] and result.significant[0, 3]
    assert not result.significant[1, 3]
    assert math.isnan(result.critical_difference)
    tied = conover_test(np.ones((3, 4)), higher_is_better=True)
    assert np.all(tied.p_values[~np.eye(3, dtype=bool)] == 1.0)
    single = conover_test(np.array([[1.0], [2.0], [3.0]]), higher_is_better=True)  # N = 1
    assert np.isnan(single.p_values).all() and not single.significant.any()


# --- groups -----------------------------------------------------------------------------------


def test_indistinguishable_groups_hand_examples():
    names = ["a", "b", "c", "d", "e"]
    ranks = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    gap = np.abs(np.subtract.outer(ranks, ranks))
    assert indistinguishable_groups(ranks, gap >= 10, names) == (tuple(names),)
    assert indistinguishable_groups(ranks, gap >= 1, names) == ()
    assert indistinguishable_groups(ranks, gap >= 2, names) == (
        ("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"))
    # input order does not matter; groups come in rank order
    shuffled = [4, 0, 3, 1, 2]
    assert indistinguishable_groups(ranks[shuffled], (gap >= 3)[np.ix_(shuffled, shuffled)],
                                    [names[i] for i in shuffled]) == (
        ("a", "b", "c"), ("b", "c", "d"), ("c", "d", "e"))
    with pytest.raises(ShapeError):
        indistinguishable_groups(ranks, np.zeros((2, 2), dtype=bool))
