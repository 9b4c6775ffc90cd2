"""The HTML report: files, tables and figures from a results Dataset alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.harness.runner_fixtures import FAST_OPTIONS, tiny_dataset, tiny_model  # noqa: F401
from xaiscore.harness.report import default_win_metric, write_report
from xaiscore.harness.runner import evaluate
from xaiscore.harness.results import build_dataset, load_dataset, save_dataset


@pytest.fixture(scope="module")
def results(tiny_dataset, tiny_model):  # noqa: F811
    return evaluate(tiny_dataset, tiny_model, methods=["Saliency", "random", "constant"],
                    metrics=["pointing_game", "relevance_mass_accuracy", "sparseness", "complexity", "deletion",
                             "effective_complexity"],
                    metric_options=FAST_OPTIONS, batch_size=8, n_examples=3)


def test_report_from_a_saved_results_file(results, tmp_path):
    save_dataset(results, tmp_path / "results.nc")
    path = write_report(load_dataset(tmp_path / "results.nc"), tmp_path / "report")
    page = path.read_text(encoding="utf-8")
    figures = {p.name for p in (tmp_path / "report" / "figures").iterdir()}
    assert figures == {"overview.png", "distributions.png", "curves.png", "rank_agreement.png"}
    for name in figures:
        assert f"figures/{name}" in page
        assert (tmp_path / "report" / "figures" / name).read_bytes()[:4] == b"\x89PNG"
    for text in ("Scoreboard", "bootstrap CI", "win rates on pointing_game", "Rank agreement",
                 "Perturbation curves", "Saliency", "random", "constant", "complexity ↓", "sparseness ↑",
                 "effective_complexity", "Nodule"):
        assert text in page, text
    summary = (tmp_path / "report" / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("metric,method,mean,ci_low,ci_high")
    assert len(summary) == 1 + 6 * 3


def test_report_lists_skipped_pairs_and_works_without_examples_or_directions(tmp_path):
    ds = build_dataset(
        methods=["a", "b"],
        samples={"source_id": ["0", "1"], "label": [1, 0], "target": [1, 0], "prediction": [1, 0],
                 "finding": ["x", ""]},
        scores={"count": {"a": np.array([3.0, 4.0])}},
        metric_info={"count": {"higher_is_better": None}},
        skipped={"count": {"b": "needs ['explain_fn'], which method 'b' (precomputed) cannot supply"},
                 "ghost": {"a": "kernel cannot be imported"}},
    )
    assert default_win_metric(ds) is None
    page = write_report(ds, tmp_path).read_text(encoding="utf-8")
    assert "Skipped" in page and "kernel cannot be imported" in page and "precomputed" in page
    assert "win rates" not in page


def test_summary_table_marks_the_best_method(results):
    from xaiscore.harness.report import _summary_html
    from xaiscore.harness.summary import summary_table

    page = _summary_html(results, summary_table(results, n_boot=50))
    means = results["sparseness"].mean("sample")
    best = str(means["explainer"].values[int(np.nanargmax(means.values))])
    row = next(line for line in page.split("<tr>") if line.startswith('<td class="name">sparseness'))
    cells = row.split("<td")[2:]
    methods = [str(m) for m in results["explainer"].values]
    assert "best" in cells[methods.index(best)]
    assert sum("best" in cell for cell in cells) == 1
    assert json.loads(results["pointing_game"].attrs["skipped"]) == {}


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
    assert "<td class=\"name\">hits" not in section.split("</table>")[0]  # Saliency wins hits: not listed
    # Without a stored config (or when no baseline wins) there is no such section.
    plain = build_dataset(methods=["a", "b"], samples={"source_id": ["0"], "label": [1], "target": [1],
                                                       "prediction": [1], "finding": [""]},
                          scores={"m": {"a": np.array([1.0]), "b": np.array([0.0])}},
                          metric_info={"m": {"higher_is_better": True}})
    assert baseline_methods(plain) == {}
    assert "Baselines that win" not in write_report(plain, tmp_path / "plain", n_boot=50).read_text(encoding="utf-8")
