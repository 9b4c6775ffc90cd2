"""Paired tests, Holm, effect sizes: against scipy, hand-worked examples and loop references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import stats as ref
from tests.stats.helpers import DEMSAR_AUC, score_tables
from xaiscore._checks import DTypeError, OptionError, ShapeError
from xaiscore.stats import (
    holm,
    median_difference,
    pairwise_tests,
    permutation_test,
    probability_of_superiority,
    wilcoxon_test,
)

# --- Holm -------------------------------------------------------------------------------------


def test_holm_hand_worked_example():
    # m = 4; sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04;
    # running maximum 0.02, 0.03, 0.06, 0.06; back in input order:
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # capped at 1: 2 x 0.5 = 1.0, max(1.0, 0.6) = 1.0
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    # NaN is not a hypothesis: m = 2 here
    np.testing.assert_allclose(holm([0.01, np.nan, 0.04]), [0.02, np.nan, 0.04])
    # ties keep equal adjusted values; any shape
    np.testing.assert_allclose(holm([[0.02, 0.02], [0.5, 0.001]]), [[0.06, 0.06], [0.5, 0.004]])
    assert holm([]).shape == (0,)


@given(st.lists(st.one_of(st.floats(0, 1), st.just(math.nan)), max_size=25))
def test_holm_matches_reference(p_values):
    np.testing.assert_allclose(holm(p_values), ref.holm(p_values), rtol=1e-12, equal_nan=True)


def test_holm_matches_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(0).uniform(0, 0.2, size=30)
    expected = multitest.multipletests(p, method="holm")[1]
    np.testing.assert_allclose(holm(p), expected, rtol=1e-12)


def test_holm_rejects_values_outside_unit_interval():
    with pytest.raises(OptionError, match=r"p-values in \[0, 1\]"):
        holm([0.1, 1.5])
    with pytest.raises(DTypeError):
        holm(["0.1"])


# --- Wilcoxon ---------------------------------------------------------------------------------


@given(score_tables(min_methods=2, max_methods=2, max_samples=40),
       st.sampled_from(["pratt", "wilcox", "zsplit"]),
       st.sampled_from(["two-sided", "greater", "less"]))
def test_wilcoxon_matches_scipy_on_valid_pairs(table, zero_method, alternative):
    x, y = table
    result = wilcoxon_test(x, y, zero_method=zero_method, alternative=alternative)
    keep = np.isfinite(x) & np.isfinite(y)
    d = (x - y)[keep]
    assert result.n == keep.sum() and result.n_dropped == x.size - keep.sum()
    assert result.n_zero == np.sum(d == 0)
    kept = d[d != 0] if zero_method == "wilcox" else d
    ties_or_zeros = np.unique(np.abs(kept)).size < kept.size or np.any(d == 0)
    if d.size == 0:
        assert math.isnan(result.p_value)
    elif np.all(d == 0):
        assert result.p_value == 1.0  # scipy gives NaN here; documented choice
    elif ties_or_zeros and d.size <= 13:
        # scipy >= 1.13 enumerates sign patterns here, at about a second a call: the loop
        # reference stands in (test_wilcoxon_fast_permutation_path_matches_scipy checks scipy)
        expected = ref.signed_rank_permutation_p(d, zero_method, alternative)
        assert result.p_value == pytest.approx(expected, rel=1e-12)
    else:
        expected = scipy.stats.wilcoxon(d, zero_method=zero_method, alternative=alternative)
        assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-300)
        assert result.statistic == pytest.approx(expected.statistic)


@pytest.mark.parametrize("zero_method", ["pratt", "wilcox", "zsplit"])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_wilcoxon_fast_permutation_path_matches_scipy(zero_method, alternative):
    # zeros and ties, n = 8 <= 13: scipy's method="auto" runs an exhaustive permutation test
    d = np.array([0.0, 1.0, -1.0, 2.0, 2.0, 0.0, 3.0, 0.5])
    ours = wilcoxon_test(d, np.zeros(8), zero_method=zero_method, alternative=alternative)
    expected = scipy.stats.wilcoxon(d, zero_method=zero_method, alternative=alternative,
                                    method=scipy.stats.PermutationMethod())
    assert ours.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    assert ours.statistic == pytest.approx(expected.statistic)


def test_wilcoxon_direction_follows_the_signed_rank_sum():
    x = np.array([3.0, 2.0, 5.0, 1.0, 4.0])
    assert wilcoxon_test(x, x - 1.0).direction == 1
    assert wilcoxon_test(x - 1.0, x).direction == -1
    # |d| = 0.1, 0.2, 0.3, 0.4, 10 with only the largest negative: R+ = 1+2+3+4 = 10 > R- = 5,
    # although the mean difference is negative
    d = np.array([0.1, 0.2, 0.3, 0.4, -10.0])
    assert wilcoxon_test(d, np.zeros(5)).direction == 1
    assert permutation_test(d, np.zeros(5)).direction == -1


def test_wilcoxon_demsar_worked_example():
    # Demšar (2006), Table 2 / Section 3.1.3: C4.5+m against C4.5 on 14 data sets, two zero
    # differences split evenly: R+ = 93, R- = 12, T = min = 12 < 21 (critical value, N = 14,
    # alpha = 0.05): significant.
    c45, tuned = DEMSAR_AUC[:, 0], DEMSAR_AUC[:, 1]
    result = wilcoxon_test(tuned, c45, zero_method="zsplit")
    assert result.statistic == pytest.approx(12.0)
    assert result.n == 14 and result.n_zero == 2 and result.direction == 1
    assert result.p_value < 0.05


def test_wilcoxon_edge_cases():
    nan = np.nan
    assert math.isnan(wilcoxon_test([nan, 1.0], [1.0, nan]).p_value)  # no valid pair
    everywhere_tied = wilcoxon_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert everywhere_tied.p_value == 1.0 and everywhere_tied.direction == 0
    one = wilcoxon_test([2.0], [1.0])  # n = 1: the exact two-sided p-value is 1
    assert one.n == 1 and one.p_value == 1.0
    with pytest.raises(ShapeError):
        wilcoxon_test([1.0, 2.0], [1.0])
    with pytest.raises(OptionError, match="zero_method"):
        wilcoxon_test([1.0], [0.0], zero_method="drop")


def test_wilcoxon_accepts_tensors():
    x = torch.tensor([0.9, 0.8, 0.7, 0.95, float("nan")])
    y = torch.tensor([0.5, 0.55, 0.6, 0.4, 0.3], dtype=torch.float64)
    expected = wilcoxon_test(x.numpy().astype(np.float64), y.numpy())
    assert wilcoxon_test(x, y) == expected


# --- permutation test -------------------------------------------------------------------------


@settings(max_examples=25)
@given(score_tables(min_methods=2, max_methods=2, max_samples=10),
       st.sampled_from(["two-sided", "greater", "less"]))
def test_permutation_exact_matches_enumeration(table, alternative):
    x, y = table
    result = permutation_test(x, y, alternative=alternative)  # 2^10 <= 9999: exact
    d = (x - y)[np.isfinite(x - y)]
    if d.size and np.all(d == 0):
        assert result.p_value == 1.0
    else:
        expected = ref.sign_flip_p(x, y, alternative)
        np.testing.assert_allclose(result.p_value, expected, rtol=1e-9, equal_nan=True)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_permutation_matches_scipy_permutation_test(alternative):
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=11) + 0.3, rng.normal(size=11)
    expected = scipy.stats.permutation_test(
        (x - y,), lambda d, axis: np.mean(d, axis=axis), permutation_type="samples",
        vectorized=True, alternative=alternative)  # 2^11 <= 9999: exact in both
    assert permutation_test(x, y, alternative=alternative).p_value == pytest.approx(expected.pvalue)


def test_permutation_monte_carlo_is_seeded_and_close_to_exact():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=16) + 0.4, rng.normal(size=16)
    exact = ref.sign_flip_p(x, y)  # 65,536 patterns
    first = permutation_test(x, y, n_resamples=4000, seed=1)
    again = permutation_test(x, y, n_resamples=4000, seed=np.random.default_rng(1))
    other = permutation_test(x, y, n_resamples=4000, seed=2)
    assert first.p_value == again.p_value
    assert first.p_value != other.p_value
    assert abs(first.p_value - exact) < 0.02
    assert first.statistic == pytest.approx(np.mean(x - y))


@pytest.mark.parametrize("m", [1, 7, 8, 9, 30])
def test_packed_sign_flips_sum_every_pattern_correctly(m):
    from xaiscore.stats.paired import _packed_sign_flip_sums

    rng = np.random.default_rng(m)
    values = rng.normal(size=m)
    packed = rng.integers(0, 256, size=(40, (m + 7) // 8), dtype=np.uint8)
    bits = np.unpackbits(packed, axis=1, count=m)
    expected = [sum(v if bit else -v for v, bit in zip(values, row)) for row in bits]
    np.testing.assert_allclose(_packed_sign_flip_sums(values, packed), expected, atol=1e-12)


def test_permutation_edge_cases():
    assert permutation_test([1.0, 1.0], [1.0, 1.0]).p_value == 1.0
    assert math.isnan(permutation_test([np.nan], [1.0]).p_value)
    assert permutation_test([2.0], [1.0]).p_value == 1.0  # n = 1: both signs as extreme
    with pytest.raises(OptionError, match="seed"):
        permutation_test([1.0], [0.0], seed=None)


# --- effect sizes -----------------------------------------------------------------------------


def test_median_difference_matches_scipy_bootstrap():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=40), rng.normal(size=40)
    x[3] = np.nan
    effect = median_difference(x, y, confidence=0.9, n_resamples=1000, seed=7)
    d = (x - y)[np.isfinite(x)]
    expected = scipy.stats.bootstrap((d,), np.median, n_resamples=1000, confidence_level=0.9,
                                     method="percentile", rng=np.random.default_rng(7))
    assert effect.estimate == np.median(d) and effect.n == 39
    assert effect.low == pytest.approx(expected.confidence_interval.low)
    assert effect.high == pytest.approx(expected.confidence_interval.high)


def test_median_difference_interval_covers_the_shift():
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(60):
        d = rng.normal(size=40) + 0.5
        effect = median_difference(d, np.zeros(40), n_resamples=400, seed=rng)
        covered += effect.low <= 0.5 <= effect.high
    assert covered >= 50  # nominal 95 %: 57 of 60 expected


def test_median_difference_edge_cases():
    single = median_difference([3.0], [1.0])
    assert single.estimate == 2.0 and math.isnan(single.low) and math.isnan(single.high)
    empty = median_difference([np.nan], [1.0])
    assert math.isnan(empty.estimate) and empty.n == 0
    tied = median_difference([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (tied.estimate, tied.low, tied.high) == (0.0, 0.0, 0.0)


@given(score_tables(min_methods=2, max_methods=2), st.sampled_from([True, False, None]))
def test_superiority_matches_reference(table, higher_is_better):
    x, y = table
    ours = probability_of_superiority(x, y, higher_is_better=higher_is_better)
    np.testing.assert_allclose(ours, ref.superiority(x, y, higher_is_better), equal_nan=True)
    if np.isfinite(ours):  # complementary when the roles swap
        swapped = probability_of_superiority(y, x, higher_is_better=higher_is_better)
        assert ours + swapped == pytest.approx(1.0)


# --- all pairs --------------------------------------------------------------------------------


@settings(max_examples=15)
@given(score_tables(min_methods=2, max_methods=4, min_samples=2, max_samples=20))
def test_pairwise_tests_assemble_single_tests_and_holm(table):
    result = pairwise_tests(table, higher_is_better=True, n_resamples=50)
    k = table.shape[0]
    assert [(c.first, c.second) for c in result.comparisons] == [
        (str(i), str(j)) for i in range(k) for j in range(i + 1, k)]
    raw = [wilcoxon_test(table[int(c.first)], table[int(c.second)]).p_value
           for c in result.comparisons]
    np.testing.assert_allclose([c.p_value for c in result.comparisons], raw, equal_nan=True)
    np.testing.assert_allclose([c.p_adjusted for c in result.comparisons], ref.holm(raw),
                               equal_nan=True)
    for c in result.comparisons:
        assert c.significant == (c.p_adjusted <= 0.05)
        assert (c.better is None) or c.significant


def test_pairwise_tests_direction_and_matrices():
    rng = np.random.default_rng(3)
    base = rng.normal(size=30)
    scores = np.stack([base, base + 1.0 + 0.1 * rng.normal(size=30),
                       base + 0.01 * rng.normal(size=30)])
    higher = pairwise_tests(scores, higher_is_better=True, methods=["a", "b", "c"])
    lower = pairwise_tests(scores, higher_is_better=False, methods=["a", "b", "c"])
    assert higher.comparison("b", "a").better == "b" and lower.comparison("a", "b").better == "a"
    unknown = pairwise_tests(scores, higher_is_better=None, methods=["a", "b", "c"])
    assert all(c.better is None for c in unknown.comparisons)
    assert unknown.comparison("a", "b").significant
    superiority = higher.matrix("superiority")
    assert superiority[1, 0] == pytest.approx(1.0) and superiority[0, 1] == pytest.approx(0.0)
    difference = higher.matrix("median_difference")
    np.testing.assert_allclose(difference, -difference.T, equal_nan=True)
    low, high = higher.matrix("ci_low"), higher.matrix("ci_high")
    np.testing.assert_allclose(low[1, 0], -high[0, 1])
    p = higher.matrix("p_adjusted")
    np.testing.assert_allclose(p, p.T, equal_nan=True)
    assert np.isnan(np.diag(p)).all()
    records = higher.to_records()
    assert len(records) == 3 and set(records[0]) >= {"first", "second", "p_adjusted", "better"}


def test_pairwise_permutation_option_and_seed():
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(3, 40)) + np.array([[0.0], [0.5], [0.0]])
    first = pairwise_tests(scores, higher_is_better=True, test="permutation", n_permutations=500)
    again = pairwise_tests(scores, higher_is_better=True, test="permutation", n_permutations=500)
    assert first == again
    assert first.comparison("0", "1").better == "1"
    assert first.test == "permutation"


def test_pairwise_pair_results_do_not_depend_on_other_methods():
    rng = np.random.default_rng(9)
    scores = rng.normal(size=(3, 25))
    three = pairwise_tests(scores, higher_is_better=True, methods=["a", "b", "c"],
                           test="permutation", n_permutations=300)
    two = pairwise_tests(scores[1:], higher_is_better=True, methods=["b", "c"], test="permutation",
                         n_permutations=300)
    first, second = three.comparison("b", "c"), two.comparison("b", "c")
    assert (first.p_value, first.ci_low, first.ci_high) == (second.p_value, second.ci_low,
                                                            second.ci_high)


def test_pairwise_edge_cases():
    nan = np.nan
    scores = np.array([[nan, nan, nan, nan], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    result = pairwise_tests(scores, higher_is_better=True)
    empty = result.comparison("0", "1")
    assert empty.n == 0 and empty.n_dropped == 4 and math.isnan(empty.p_value)
    assert not empty.significant and empty.better is None and math.isnan(empty.superiority)
    tied = result.comparison("1", "2")
    assert tied.p_value == 1.0 and tied.p_adjusted == 1.0 and tied.superiority == 0.5
    two = pairwise_tests(np.array([[1.0], [2.0]]), higher_is_better=True)  # n = 1, k = 2
    assert two.comparisons[0].p_value == 1.0 and not two.comparisons[0].significant
    with pytest.raises(ShapeError, match="at least 2 method"):
        pairwise_tests(np.ones((1, 3)), higher_is_better=True)
    with pytest.raises(ShapeError, match="methods, samples"):
        pairwise_tests(np.ones(3), higher_is_better=True)
    with pytest.raises(ShapeError, match="names"):
        pairwise_tests(np.ones((2, 3)), higher_is_better=True, methods=["a"])
    with pytest.raises(OptionError, match="higher_is_better"):
        pairwise_tests(np.ones((2, 3)), higher_is_better="yes")
    with pytest.raises(OptionError, match="alpha"):
        pairwise_tests(np.ones((2, 3)), higher_is_better=True, alpha=1.5)
    with pytest.raises(DTypeError):
        pairwise_tests(np.array([["a", "b"], ["c", "d"]]), higher_is_better=True)
    with pytest.raises(OptionError, match="test"):
        pairwise_tests(np.ones((2, 3)), higher_is_better=True, test="t-test")


def test_pairwise_accepts_tensors():
    scores = torch.rand(3, 12, generator=torch.Generator().manual_seed(0))
    assert pairwise_tests(scores, higher_is_better=True) == pairwise_tests(
        scores.double().numpy(), higher_is_better=True)
    half = scores.to(torch.bfloat16).requires_grad_(True)
    assert pairwise_tests(half, higher_is_better=True) == pairwise_tests(
        half.detach().double().numpy(), higher_is_better=True)
    with pytest.raises(DTypeError, match="real numbers"):
        pairwise_tests(scores > 0.5, higher_is_better=True)
