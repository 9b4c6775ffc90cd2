"""The meta-evaluation report helpers: table contents, figures, HTML section."""

from __future__ import annotations

import numpy as np
import pytest

from tests.meta.test_evaluate import FACTORIES, MASKED_LOGIT, problem
from xaiscore.meta import meta_evaluate
from xaiscore.meta.report import (
    mc_table,
    meta_report_html,
    plot_criteria,
    plot_meta_consistency,
    plot_metric_agreement,
    write_meta_report,
)

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def dataset():
    model, x = problem(b=8, seed=11)
    return meta_evaluate(model, x, FACTORIES,
                         ["sparseness", "complexity", MASKED_LOGIT, "pointing_game"],
                         iterations=2, perturbations=2, seed=0, n_splits=3)


def test_mc_table_reads_the_dataset(dataset):
    table = mc_table(dataset)
    assert list(table.index) == ["sparseness", "complexity", "masked_logit"]
    np.testing.assert_allclose(table["MC model"].to_numpy(),
                               dataset["mc_mean"].sel(space="model").values)
    np.testing.assert_allclose(table["input IEC_AR"].to_numpy(),
                               dataset["iec_mean"].sel(test="input_adversary").values)
    np.testing.assert_allclose(table["split-half"].to_numpy(), dataset["split_half_mean"].values,
                               equal_nan=True)
    expected = [f"{int(row.sum())}/2" for row in dataset["beats_random"].values]
    assert table["beats random"].tolist() == expected


def test_figures_show_every_metric(dataset):
    import matplotlib.pyplot as plt

    fig = plot_meta_consistency(dataset)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["sparseness", "complexity", "masked_logit"]
    assert len(fig.axes[0].patches) == 3 * 2  # one bar per metric and space
    plt.close(fig)
    fig = plot_criteria(dataset)
    assert len(fig.axes[0].get_xticklabels()) == 8  # 4 criteria x 2 spaces
    plt.close(fig)
    fig = plot_metric_agreement(dataset, per_sample=True)
    assert fig.axes[0].images[0].get_array().shape == (3, 3)
    plt.close(fig)


def test_html_section_and_page(dataset, tmp_path):
    section = meta_report_html(dataset, tmp_path / "figs", figures_url="figs")
    assert "Meta-evaluation" in section and "figs/meta_consistency.png" in section
    assert "pointing_game" in section  # skipped metrics are listed
    for name in ("meta_consistency.png", "meta_criteria.png", "meta_agreement.png"):
        assert (tmp_path / "figs" / name).stat().st_size > 1000
    page = write_meta_report(dataset, tmp_path / "out")
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "masked_logit" in text
    assert (tmp_path / "out" / "figures" / "meta_consistency.png").exists()
