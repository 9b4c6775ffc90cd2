"""Summaries: bootstrap means, per-finding means, win rates, rank agreement (hand-computed cases).
"""

from __future__ import annotations

import numpy as np
import pytest

from xaiscore._checks import OptionError
from xaiscore.harness.summary import (finding_table, per_sample_scores, rank_agreement,
                                      summary_table, win_rates)
from xaiscore.harness.results import build_dataset


def make(scores, directions, findings=None, methods=("a", "b", "c")):
    n = len(next(iter(next(iter(scores.values())).values())))
    findings = findings or ["x"] * n
    return build_dataset(
        methods=list(methods),
        samples={"source_id": [str(i) for i in range(n)], "label": [1] * n, "target": [1] * n,
                 "prediction": [1] * n, "finding": findings},
        scores={m: {k: np.asarray(v, dtype=float) for k, v in per.items()}
                for m, per in scores.items()},
        metric_info={m: {"higher_is_better": d} for m, d in directions.items()},
    )


def test_win_rates_split_ties_skip_nan_and_respect_direction():
    nan = np.nan
    values = {"a": [1.0, 0.2, nan, 0.0], "b": [0.5, 0.2, nan, 1.0], "c": [nan, 0.1, nan, 1.0]}
    higher = make({"m": values}, {"m": True})
    rates = win_rates(higher, "m")
    # image 0: a wins; image 1: a and b tie; image 2: nobody scored (left out); image 3: b and c tie
    np.testing.assert_allclose(rates.to_numpy(), [1.5 / 3, 1.0 / 3, 0.5 / 3])
    assert rates.attrs["n_images"] == 3
    assert rates.sum() == pytest.approx(1.0)
    lower = make({"m": {k: [-v for v in vs] for k, vs in values.items()}}, {"m": False})
    np.testing.assert_allclose(win_rates(lower, "m").to_numpy(), rates.to_numpy())
    with pytest.raises(OptionError, match="direction"):
        win_rates(make({"m": values}, {"m": None}), "m")


def test_rank_agreement_kendall_tau_with_orientation():
    ds = make(
        {
            "m1": {"a": [3.0], "b": [2.0], "c": [1.0]},
            "m2": {"a": [1.0], "b": [2.0], "c": [3.0]},  # lower is better: same ranking as m1
            "m3": {"a": [1.0], "b": [3.0], "c": [2.0]},
            "count": {"a": [1.0], "b": [2.0], "c": [3.0]},  # no direction: left out
        },
        {"m1": True, "m2": False, "m3": True, "count": None},
    )
    table = rank_agreement(ds)
    assert list(table.index) == ["m1", "m2", "m3"]
    assert table.loc["m1", "m2"] == pytest.approx(1.0)
    # pairs (a,b) and (a,c) discordant, (b,c) concordant: (1 - 2) / 3
    assert table.loc["m1", "m3"] == pytest.approx(-1.0 / 3.0)
    assert table.loc["m3", "m1"] == table.loc["m1", "m3"]
    assert np.allclose(np.diag(table.to_numpy()), 1.0)
    assert (table.attrs["n_methods"].to_numpy() == 3).all()


def test_rank_agreement_counts_the_methods_and_is_blank_where_undefined():
    nan = np.nan
    ds = make(
        {
            "m1": {"a": [3.0], "b": [2.0], "c": [1.0]},
            "m2": {"a": [1.0], "b": [nan], "c": [3.0]},  # b has no score: m2's taus use a and c
            "m3": {"a": [1.0], "b": [nan], "c": [nan]},  # one method: every tau with m3 undefined
            "flat": {"a": [1.0], "b": [1.0], "c": [1.0]},  # a constant ranking: undefined
        },
        {"m1": True, "m2": True, "m3": True, "flat": True},
    )
    table = rank_agreement(ds)
    counts = table.attrs["n_methods"]
    assert counts.loc["m1", "m2"] == 2 and counts.loc["m1", "m3"] == 1
    assert counts.loc["m1", "flat"] == 3
    assert table.loc["m1", "m2"] == pytest.approx(-1.0)
    assert np.isnan(table.loc["m1", "m3"]) and np.isnan(table.loc["m1", "flat"])
    assert np.isnan(table.loc["m3", "m3"])


def test_summary_table_mean_count_and_interval():
    rng = np.random.default_rng(1)
    values = rng.normal(2.0, 1.0, size=200)
    values[::10] = np.nan
    ds = make({"m": {"a": values, "b": np.full(200, 0.5), "c": np.full(200, np.nan)}}, {"m": True})
    table = summary_table(ds, n_boot=4000, seed=3)
    row = table.loc[("m", "a")]
    finite = values[np.isfinite(values)]
    assert row["mean"] == pytest.approx(finite.mean())
    assert (row["n"], row["n_nan"]) == (180, 20)
    assert row["ci_low"] < row["mean"] < row["ci_high"]
    # an independent percentile bootstrap agrees up to Monte-Carlo error
    reference_rng = np.random.default_rng(12345)
    means = reference_rng.choice(finite, size=(4000, finite.size)).mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    assert row["ci_low"] == pytest.approx(low, abs=0.02)
    assert row["ci_high"] == pytest.approx(high, abs=0.02)
    # and the normal approximation: half-width ~ 1.96 sd / sqrt(n)
    assert (row["ci_high"] - row["ci_low"]) / 2 == pytest.approx(1.96 * finite.std() / np.sqrt(180),
                                                                 rel=0.1)
    constant = table.loc[("m", "b")]
    assert constant["ci_low"] == constant["ci_high"] == constant["mean"] == 0.5
    assert np.isnan(table.loc[("m", "c")]["mean"]) and table.loc[("m", "c")]["n"] == 0


def test_summary_table_is_reproducible_and_independent_of_other_methods():
    rng = np.random.default_rng(2)
    both = make({"m": {"a": rng.random(30), "b": rng.random(30)}}, {"m": True}, methods=("a", "b"))
    only_a = both.sel(explainer=["a"])
    first = summary_table(both, seed=5)
    assert first.equals(summary_table(both, seed=5))
    assert first.loc[("m", "a")].equals(summary_table(only_a, seed=5).loc[("m", "a")])
    assert not first.equals(summary_table(both, seed=6))


def test_finding_table_and_run_average():
    ds = make({"m": {"a": [1.0, 0.0, 1.0], "b": [0.0, 0.0, np.nan], "c": [1.0, 1.0, 1.0]}},
              {"m": True},
              findings=["Nodule", "Nodule", ""])
    table = finding_table(ds)
    assert list(table.columns) == ["(none)", "Nodule"]
    assert table.loc[("m", "a"), "Nodule"] == 0.5 and table.loc[("m", "a"), "(none)"] == 1.0
    assert np.isnan(table.loc[("m", "b"), "(none)"])
    runs = build_dataset(
        methods=["a"], samples={"source_id": ["0"], "label": [0], "target": [0], "prediction": [0],
                                "finding": [""]},
        scores={"s": {"a": np.array([[1.0, 3.0, np.nan]])}},
    )
    assert per_sample_scores(runs, "s").values.tolist() == [[2.0]]
    with pytest.raises(OptionError, match="metric among"):
        per_sample_scores(runs, "nope")
