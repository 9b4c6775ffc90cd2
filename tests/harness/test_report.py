"""The HTML report: files, tables and figures from a results Dataset alone."""

from __future__ import annotations

import base64
import json
import os
import re
import stat

import numpy as np
import pytest

from tests.harness.runner_fixtures import FAST_OPTIONS, tiny_dataset, tiny_model  # noqa: F401
from xaiscore.harness.report import default_win_metric, write_report
from xaiscore.harness.runner import evaluate
from xaiscore.harness.results import build_dataset, load_dataset, save_dataset


@pytest.fixture(scope="module")
def results(tiny_dataset, tiny_model):  # noqa: F811
    return evaluate(tiny_dataset, tiny_model, methods=["Saliency", "random", "constant"],
                    metrics=["pointing_game", "relevance_mass_accuracy", "sparseness", "complexity",
                             "deletion",
                             "effective_complexity"],
                    metric_options=FAST_OPTIONS, batch_size=8, n_examples=3)


def test_report_from_a_saved_results_file(results, tmp_path):
    save_dataset(results, tmp_path / "results.nc")
    path = write_report(load_dataset(tmp_path / "results.nc"), tmp_path / "report")
    page = path.read_text(encoding="utf-8")
    # self-contained: every image is a data URI, every chart inline SVG, no figures folder
    assert not (tmp_path / "report" / "figures").exists()
    sources = re.findall(r'<img[^>]* src="([^"]*)"', page)
    assert len(sources) == 3 * 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    for source in sources:
        assert base64.b64decode(source.split(",", 1)[1])[:4] == b"\x89PNG"
    assert 'href="data:text/csv;base64,' in page and "<svg" in page
    for text in ("At a glance", "The model on the scored samples", "Scoreboard",
                 "bootstrap interval", "critical-difference", "win rates on pointing_game",
                 "Rank agreement", "Perturbation curves", "fraction of features removed",
                 "probability", "Saliency", "random", "constant", "complexity ↓", "sparseness ↑",
                 "effective_complexity", "Nodule", "Skipped and undefined",
                 "no ground-truth region (empty mask)", "Pairwise tests", "Score distributions"):
        assert text in page, text
    summary = (tmp_path / "report" / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("metric,method,mean,ci_low,ci_high")
    assert summary[0].endswith("significant_best,tie_group")
    assert len(summary) == 1 + 6 * 3
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("report.html", "summary.csv"):
        assert stat.S_IMODE((tmp_path / "report" / name).stat().st_mode) == 0o666 & ~umask, name


def test_report_lists_skipped_pairs_and_works_without_examples_or_directions(tmp_path):
    ds = build_dataset(
        methods=["a", "b"],
        samples={"source_id": ["0", "1"], "label": [1, 0], "target": [1, 0], "prediction": [1, 0],
                 "finding": ["x", ""]},
        scores={"count": {"a": np.array([3.0, 4.0])}},
        metric_info={"count": {"higher_is_better": None}},
        skipped={
            "count": {"b": "needs ['explain_fn'], which method 'b' (precomputed) cannot supply"},
            "ghost": {"a": "kernel cannot be imported"}},
    )
    assert default_win_metric(ds) is None
    page = write_report(ds, tmp_path).read_text(encoding="utf-8")
    assert "Skipped and undefined" in page and "kernel cannot be imported" in page
    assert "precomputed" in page
    assert "win rates" not in page and "no direction" in page


def significance_dataset():
    rng = np.random.default_rng(0)
    base = rng.random(30)
    labels = [0, 1] * 15
    return build_dataset(
        methods=["a", "b", "c"],
        samples={"source_id": [str(i) for i in range(30)], "label": labels, "target": labels,
                 "prediction": labels,
                 "finding": ["No Finding" if v == 0 else "Nodule" for v in labels]},
        scores={"clear": {"a": base + 0.5, "b": base, "c": base - 0.5},
                "close": {"a": base + 0.002 * rng.standard_normal(30), "b": base, "c": base - 0.5}},
        metric_info={"clear": {"higher_is_better": True}, "close": {"higher_is_better": True}},
        attrs={"class_names": ["No Finding", "Nodule"]})


def test_the_scoreboard_names_a_best_method_only_when_significant():
    from xaiscore.harness.report_html import scoreboard_html
    from xaiscore.harness.summary import summary_table
    from xaiscore.harness.verdicts import metric_verdicts

    ds = significance_dataset()
    page = scoreboard_html(ds, summary_table(ds, n_boot=50), metric_verdicts(ds), at_chance=False,
                           gap_reasons={})
    rows = {row.split("</th>")[0].split(">")[-1].split(" ")[0]: row
            for row in page.split("<tr>")[1:]}
    clear, close = rows["clear"], rows["close"]
    assert clear.count('<td class="best">') == 1 and "★ a" in clear and "tie" not in clear
    assert '<td class="best">' not in close and close.count('<td class="tie">') == 2
    assert "tie: " in close and "not significantly better" in close  # the reason, as a tooltip
    at_chance = scoreboard_html(ds, summary_table(ds, n_boot=50), metric_verdicts(ds),
                                at_chance=True, gap_reasons={})
    assert '<td class="best">' not in at_chance and "no winner: model at chance" in at_chance


def test_report_flags_metrics_that_an_uninformative_baseline_wins(tmp_path):
    from xaiscore.harness.report import baseline_methods

    config = {"methods": [{"name": "saliency", "method": "Saliency", "options": {}},
                          {"name": "flat", "method": "constant", "options": {}},
                          {"name": "noise", "method": "random", "options": {}}]}
    ds = build_dataset(
        methods=["saliency", "flat", "noise"],
        samples={"source_id": ["0", "1"], "label": [1, 0], "target": [1, 0], "prediction": [1, 0],
                 "finding": ["x", ""]},
        scores={"stability": {"saliency": np.array([2.0, 3.0]), "flat": np.array([0.0, 0.0]),
                              "noise": np.array([5.0, 6.0])},
                "hits": {"saliency": np.array([1.0, 1.0]), "flat": np.array([0.0, 1.0]),
                         "noise": np.array([0.0, 0.0])}},
        metric_info={"stability": {"higher_is_better": False}, "hits": {"higher_is_better": True}},
        attrs={"config": json.dumps(config)},
    )
    assert baseline_methods(ds) == {"flat": "constant", "noise": "random"}
    page = write_report(ds, tmp_path, n_boot=50).read_text(encoding="utf-8")
    assert "Baselines that win" in page
    section = page.split("Baselines that win")[1]
    assert "stability" in section and "flat" in section and "constant" in section
    assert ">hits<" not in section.split("</table>")[0]  # Saliency leads hits: not listed
    # Without a stored config (or when no baseline wins) there is no such section.
    plain = build_dataset(methods=["a", "b"], samples={"source_id": ["0"], "label": [1],
                                                       "target": [1],
                                                       "prediction": [1], "finding": [""]},
                          scores={"m": {"a": np.array([1.0]), "b": np.array([0.0])}},
                          metric_info={"m": {"higher_is_better": True}})
    assert baseline_methods(plain) == {}
    assert ("Baselines that win"
            not in write_report(plain, tmp_path / "plain", n_boot=50).read_text(encoding="utf-8"))
