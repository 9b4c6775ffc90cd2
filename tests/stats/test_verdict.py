"""Scoreboard verdicts and per-sample win rates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import stats as ref
from tests.stats.helpers import score_tables
from xaiscore._checks import OptionError, ShapeError
from xaiscore.stats import scoreboard_verdict, wilcoxon_test, win_rates

NAMES = ["a", "b", "c"]


def _shifted(shifts, n=30, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=n)
    return np.stack([base + s + 0.05 * rng.normal(size=n) for s in shifts])


# --- verdict ----------------------------------------------------------------------------------


def test_clear_winner_is_named():
    verdict = scoreboard_verdict(_shifted([1.0, 0.0, 0.1]), higher_is_better=True, methods=NAMES)
    assert verdict.best == "a" and verdict.tie_group == ("a",)
    assert verdict.ranking == ("a", "c", "b") and verdict.excluded == ()
    assert "significantly better than every other method" in verdict.reason
    assert verdict.tests.comparison("a", "c").better == "a"


def test_direction_lower_is_better():
    verdict = scoreboard_verdict(_shifted([1.0, 0.0, 0.5]), higher_is_better=False, methods=NAMES)
    assert verdict.best == "b" and verdict.ranking == ("b", "c", "a")


def test_runner_up_not_significant_gives_a_tie_group():
    scores = _shifted([1.0, 1.0, 0.0])  # a and b differ by noise only
    verdict = scoreboard_verdict(scores, higher_is_better=True, methods=NAMES)
    assert verdict.best is None
    assert set(verdict.tie_group) == {"a", "b"} and "c" not in verdict.tie_group
    assert verdict.tie_group[0] == verdict.ranking[0]
    assert "not significantly better" in verdict.reason


def test_holm_over_all_pairs_can_withhold_a_winner():
    # a beats b on 6 of 6 samples: raw exact p = 2 / 64 = 0.031 < 0.05; c loses every sample
    # to both, with the same p-value. Holm over the 3 pairs: 3 x 0.031 = 0.094 > 0.05.
    a = np.array([1.6, 1.5, 1.4, 1.3, 1.2, 1.1])
    b = a - np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    c = a - 5.0
    raw = wilcoxon_test(a, b).p_value
    assert raw == pytest.approx(2 / 64) and raw < 0.05
    verdict = scoreboard_verdict(np.stack([a, b, c]), higher_is_better=True, methods=NAMES)
    holm = ref.holm([raw, wilcoxon_test(a, c).p_value, wilcoxon_test(b, c).p_value])
    assert verdict.tests.comparison("a", "b").p_adjusted == pytest.approx(holm[0])
    assert holm[0] > 0.05 and verdict.best is None
    assert verdict.tie_group == ("a", "b", "c")  # every adjusted p is 0.094: nothing separates


def test_order_by_mean_rank():
    # a wins most samples narrowly but loses one by a lot: the mean favours b, the ranks a
    a = np.array([1.0] * 9 + [-20.0])
    b = np.array([0.9] * 9 + [1.0])
    by_mean = scoreboard_verdict(np.stack([a, b]), higher_is_better=True, methods=["a", "b"])
    by_rank = scoreboard_verdict(np.stack([a, b]), higher_is_better=True, methods=["a", "b"],
                                 order_by="mean_rank")
    assert by_mean.ranking == ("b", "a") and by_rank.ranking == ("a", "b")
    # the paired test separates neither (R+ = 45 of 55, exact p = 2 x 47 / 1024 = 0.092)
    assert by_mean.tests.comparison("a", "b").p_value == pytest.approx(2 * 47 / 1024)
    assert by_mean.best is None and by_mean.tie_group == ("b", "a")
    assert by_rank.best is None and by_rank.tie_group == ("a", "b")


def test_order_and_test_disagree():
    # a leads by the mean through one outlier; the paired test finds b better on the samples
    a = np.array([100.0] + [0.9] * 19)
    b = np.ones(20)
    verdict = scoreboard_verdict(np.stack([a, b]), higher_is_better=True, methods=["a", "b"])
    assert verdict.ranking == ("a", "b") and verdict.best is None
    assert verdict.tie_group == ("a", "b") and "disagree" in verdict.reason


def test_verdict_edge_cases():
    nan = np.nan
    scores = _shifted([1.0, 0.0, 0.0])
    scores[1] = nan  # b has no score at all
    verdict = scoreboard_verdict(scores, higher_is_better=True, methods=NAMES)
    assert verdict.excluded == ("b",) and "b" not in verdict.ranking and verdict.best == "a"
    only = scoreboard_verdict(np.array([[1.0, 2.0], [nan, nan]]), higher_is_better=True)
    assert only.best == "0" and only.tests is None and "only method" in only.reason
    none = scoreboard_verdict(np.full((2, 3), nan), higher_is_better=True)
    assert none.best is None and none.tie_group == () and none.excluded == ("0", "1")
    tied = scoreboard_verdict(np.ones((3, 8)), higher_is_better=True, methods=NAMES)
    assert tied.best is None and tied.tie_group == ("a", "b", "c")  # ties everywhere
    single_sample = scoreboard_verdict(np.array([[2.0], [1.0]]), higher_is_better=True)
    assert single_sample.best is None and single_sample.tie_group == ("0", "1")  # n = 1
    disjoint = scoreboard_verdict(np.array([[1.0, nan], [nan, 0.0]]), higher_is_better=True)
    assert disjoint.best is None and disjoint.tie_group == ("0", "1")  # no shared sample: NaN p
    with pytest.raises(OptionError, match="higher_is_better"):
        scoreboard_verdict(scores, higher_is_better=None)
    with pytest.raises(OptionError, match="order_by"):
        scoreboard_verdict(scores, higher_is_better=True, order_by="median")


def test_verdict_accepts_tensors_and_permutation_test():
    scores = torch.tensor(_shifted([1.0, 0.0]))
    assert scoreboard_verdict(scores, higher_is_better=True).best == "0"
    assert scoreboard_verdict(scores, higher_is_better=True, test="permutation").best == "0"


@settings(max_examples=15)
@given(score_tables(min_methods=2, max_methods=4, max_samples=20), st.booleans())
def test_verdict_invariants(table, higher_is_better):
    verdict = scoreboard_verdict(table, higher_is_better=higher_is_better, n_resamples=50)
    scored = {str(i) for i in range(table.shape[0]) if np.isfinite(table[i]).any()}
    assert set(verdict.ranking) == scored and set(verdict.excluded).isdisjoint(scored)
    if not scored:
        return
    assert verdict.tie_group[0] == verdict.ranking[0] and set(verdict.tie_group) <= scored
    if verdict.best is not None:
        assert verdict.tie_group == (verdict.best,)
        if len(scored) > 1:
            for other in scored - {verdict.best}:
                comparison = verdict.tests.comparison(verdict.best, other)
                assert comparison.significant and comparison.better == verdict.best


# --- win rates --------------------------------------------------------------------------------


@given(score_tables(min_methods=1, max_methods=5, max_samples=25), st.booleans())
def test_win_rates_match_reference(table, higher_is_better):
    result = win_rates(table, higher_is_better=higher_is_better, n_resamples=50)
    shares = ref.win_shares(table, higher_is_better)
    assert result.n == shares.shape[1]
    if result.n:
        np.testing.assert_allclose(result.rates, shares.mean(axis=1), rtol=1e-12)
        assert result.rates.sum() == pytest.approx(1.0)
    else:
        assert np.isnan(result.rates).all()
    if result.n >= 2:
        assert np.all(result.ci_low <= result.rates + 1e-12)
        assert np.all(result.rates <= result.ci_high + 1e-12)
    else:
        assert np.isnan(result.ci_low).all()


def test_win_rates_intervals_are_scipy_bootstrap():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(3, 40))
    result = win_rates(scores, higher_is_better=False, n_resamples=500, confidence=0.9, seed=4)
    shares = ref.win_shares(scores, higher_is_better=False)
    for m in range(3):
        expected = scipy.stats.bootstrap((shares[m],), np.mean, n_resamples=500,
                                         confidence_level=0.9, method="percentile",
                                         rng=np.random.default_rng([4]))
        assert result.ci_low[m] == pytest.approx(expected.confidence_interval.low)
        assert result.ci_high[m] == pytest.approx(expected.confidence_interval.high)


def test_win_rates_by_group():
    nan = np.nan
    scores = np.array([[1.0, 0.0, 1.0, 1.0, nan, 0.2],
                       [0.0, 0.0, 0.5, 0.2, nan, 0.3]])
    groups = ["x", "x", "y", "y", "y", 3]
    result = win_rates(scores, higher_is_better=True, methods=["a", "b"], groups=groups)
    assert set(result.by_group) == {"x", "y", "3"}
    np.testing.assert_allclose(result.by_group["x"].rates, [0.75, 0.25])
    np.testing.assert_allclose(result.by_group["y"].rates, [1.0, 0.0])
    assert result.by_group["y"].n == 2  # the all-NaN sample is not counted
    assert result.by_group["3"].n == 1 and np.isnan(result.by_group["3"].ci_low).all()
    assert result.n == 5
    for label, part in result.by_group.items():
        members = [i for i, g in enumerate(groups) if str(g) == label]
        alone = win_rates(scores[:, members], higher_is_better=True, methods=["a", "b"])
        np.testing.assert_allclose(part.rates, alone.rates)
    with pytest.raises(ShapeError, match="one group label per sample"):
        win_rates(scores, higher_is_better=True, groups=["x"])


def test_win_rates_edge_cases():
    nan = np.nan
    tied = win_rates(np.ones((4, 6)), higher_is_better=True)  # ties everywhere
    np.testing.assert_allclose(tied.rates, 0.25)
    np.testing.assert_allclose(tied.ci_low, 0.25)
    np.testing.assert_allclose(tied.ci_high, 0.25)
    empty_method = win_rates(np.array([[nan, nan], [1.0, 2.0]]), higher_is_better=True)
    np.testing.assert_allclose(empty_method.rates, [0.0, 1.0])
    nothing = win_rates(np.full((2, 3), nan), higher_is_better=True)
    assert nothing.n == 0 and np.isnan(nothing.rates).all()
    one = win_rates(np.array([[1.0], [0.0]]), higher_is_better=True)
    assert one.n == 1 and one.rates.tolist() == [1.0, 0.0] and math.isnan(one.ci_low[0])
    tensor = win_rates(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), higher_is_better=True)
    np.testing.assert_allclose(tensor.rates, [0.5, 0.5])
    with pytest.raises(OptionError):
        win_rates(np.ones((2, 2)), higher_is_better=None)


def test_win_rates_agree_with_the_harness_summary():
    pytest.importorskip("xarray")
    from xaiscore.harness.summary import win_rates as summary_win_rates
    from xaiscore.results import build_dataset

    nan = np.nan
    a, b = np.array([1.0, 0.0, 1.0, nan, 0.3]), np.array([0.0, 0.0, 0.5, nan, 0.7])
    ds = build_dataset(
        methods=["a", "b"],
        samples={"source_id": [str(i) for i in range(5)], "label": [1] * 5, "target": [1] * 5,
                 "prediction": [1] * 5, "finding": ["x"] * 5},
        scores={"m": {"a": a, "b": b}},
        metric_info={"m": {"higher_is_better": False}},
    )
    expected = summary_win_rates(ds, "m")
    ours = win_rates(np.stack([a, b]), higher_is_better=False)
    np.testing.assert_allclose(ours.rates, expected.values)
    assert ours.n == expected.attrs["n_images"]
