"""Verdicts of a run: a best method only when significant, ranking across metrics, CLI lines."""

from __future__ import annotations

import numpy as np
import pytest

from xaiscore.harness.console import summary_lines
from xaiscore.harness.results import build_dataset
from xaiscore.harness.verdicts import (
    best_counts,
    metric_means,
    metric_ranking,
    metric_verdicts,
    win_rate_table,
)
from xaiscore.stats import friedman_test, scoreboard_verdict


def make(scores, directions, n=40, labels=None, attrs=None):
    labels = labels if labels is not None else [0, 1] * (n // 2)
    return build_dataset(
        methods=list(next(iter(scores.values()))),
        samples={
            "source_id": [str(i) for i in range(n)],
            "label": labels,
            "target": labels,
            "prediction": labels,
            "finding": ["No Finding" if v == 0 else "Nodule" for v in labels],
        },
        scores={
            m: {k: np.asarray(v, dtype=float) for k, v in per.items()} for m, per in scores.items()
        },
        metric_info={m: {"higher_is_better": d} for m, d in directions.items()},
        attrs={"class_names": ["No Finding", "Nodule"], **(attrs or {})},
    )


@pytest.fixture(scope="module")
def ds():
    rng = np.random.default_rng(0)
    base = rng.random(40)
    return make(
        {
            "clear": {"a": base + 0.5, "b": base, "c": base - 0.2},  # a is better on every sample
            "close": {"a": base + 0.001 * rng.standard_normal(40), "b": base, "c": base - 0.5},
            "lower": {"a": base, "b": base + 1.0, "c": base + 2.0},  # lower is better: a
            "count": {"a": base, "b": base, "c": base},  # no direction
        },
        {"clear": True, "close": True, "lower": False, "count": None},
    )


def test_a_best_method_only_when_significantly_better_than_the_runner_up(ds):
    verdicts = metric_verdicts(ds)
    assert set(verdicts) == {"clear", "close", "lower"}  # no direction: no verdict
    assert verdicts["clear"].best == "a" and verdicts["lower"].best == "a"
    assert verdicts["close"].best is None and set(verdicts["close"].tie_group) == {"a", "b"}
    assert best_counts(verdicts) == {"a": 2}
    direct = scoreboard_verdict(ds["close"].values, higher_is_better=True, methods=["a", "b", "c"])
    assert (
        verdicts["close"].tie_group == direct.tie_group
        and verdicts["close"].reason == direct.reason
    )
    assert metric_verdicts(ds) == verdicts  # cached by content


def test_ranking_across_metrics_is_friedman_on_the_mean_scores(ds):
    table, names, directions = metric_means(ds)
    assert names == ["clear", "close", "lower"] and directions == [True, True, False]
    np.testing.assert_allclose(table[:, 0], ds["clear"].mean("sample").values)
    ranking = metric_ranking(ds)
    expected = friedman_test(table, higher_is_better=directions, methods=["a", "b", "c"])
    assert ranking.n == 3 and ranking.friedman.statistic == pytest.approx(expected.statistic)
    np.testing.assert_allclose(ranking.mean_ranks, expected.mean_ranks)


def test_win_rates_per_finding(ds):
    rates = win_rate_table(ds, "clear", n_resamples=200)
    assert rates.rates.tolist() == [1.0, 0.0, 0.0]
    assert set(rates.by_group) == {"No Finding", "Nodule"} and rates.by_group["Nodule"].n == 20


def test_summary_lines_count_only_significant_wins(ds):
    out, warnings = summary_lines(ds)
    text = "\n".join(out)
    assert "Significantly best on 2 of 3 metrics" in text and "a (2)" in text
    assert "No significant best on 1 metrics" in text
    assert warnings == []
    assert "won" not in text


def test_summary_lines_without_any_significant_best():
    rng = np.random.default_rng(1)
    base = rng.random(40)
    ds = make(
        {"m": {"a": base + 0.01 * rng.standard_normal(40), "b": base}},
        {"m": True},
    )
    timing = {"seconds": 3.2, "results_computed": 0, "results_loaded": 8}
    out, _ = summary_lines(ds, timing=timing)
    assert out[0] == (
        "Scored 2 methods x 1 metrics on 40 samples: nothing left to do, all 8 results loaded "
        "from the run folder (3 s)."
    )
    assert out[-1].startswith("No method is significantly best on any of the 1 metrics")


def test_verdicts_round_trip_through_the_cache_folder(ds, tmp_path):
    from xaiscore.harness import verdicts as module

    fresh = metric_verdicts(ds, cache_dir=tmp_path, seed=3)
    files = list(tmp_path.glob("verdicts-*.json"))
    assert len(files) == 1
    module._CACHE.clear()
    loaded = metric_verdicts(ds, cache_dir=tmp_path, seed=3)
    assert loaded == fresh  # frozen dataclasses: every field equal (NaN-free here)
    assert loaded["close"].tests.comparison("a", "b") == fresh["close"].tests.comparison("a", "b")
    files[0].write_text("{not json")
    module._CACHE.clear()
    assert metric_verdicts(ds, cache_dir=tmp_path, seed=3) == fresh  # unreadable: recomputed
