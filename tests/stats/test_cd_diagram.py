"""The critical-difference diagram draws what the post-hoc result says."""

from __future__ import annotations

import numpy as np
import pytest

from tests.stats.helpers import DEMSAR_AUC, DEMSAR_METHODS
from xaiscore._checks import OptionError, ShapeError
from xaiscore.stats import conover_test, nemenyi_test, plot_critical_difference

pytest.importorskip("matplotlib")


def _texts(figure):
    return [text.get_text() for ax in figure.axes for text in ax.texts]


def _thick_lines(figure):
    return [line for ax in figure.axes for line in ax.lines if line.get_linewidth() == 3.0]


def test_diagram_of_demsar_example(tmp_path):
    result = nemenyi_test(DEMSAR_AUC.T, higher_is_better=True, methods=DEMSAR_METHODS, alpha=0.10)
    figure = plot_critical_difference(result, title="C4.5 variants")
    texts = _texts(figure)
    for name, rank in zip(DEMSAR_METHODS, result.mean_ranks):
        assert f"{name} ({rank:.2f})" in texts
    assert "CD = 1.12 (Nemenyi, alpha = 0.1, N = 14)" in texts
    assert any("lower is better" in text for text in texts)
    assert [str(tick) for tick in range(1, 5)] == [t for t in texts if t.isdigit()]
    bars = _thick_lines(figure)
    assert len(bars) == len(result.groups) == 2
    spans = sorted((min(line.get_xdata()), max(line.get_xdata())) for line in bars)
    ranks = dict(zip(DEMSAR_METHODS, result.mean_ranks))
    expected = sorted((min(ranks[m] for m in g), max(ranks[m] for m in g)) for g in result.groups)
    np.testing.assert_allclose(spans, np.array(expected) + [-0.03, 0.03])
    assert figure.axes[0].get_title() == "C4.5 variants"
    path = tmp_path / "cd.png"
    figure.savefig(path)
    assert path.stat().st_size > 1000


def test_diagram_from_ranks_and_into_given_axes():
    from matplotlib.figure import Figure

    figure = Figure()
    ax = figure.add_subplot()
    returned = plot_critical_difference(mean_ranks=[1.2, 2.5, 2.3], methods=["a", "b", "c"],
                                        critical_difference=1.0, ax=ax)
    assert returned is figure
    assert len(_thick_lines(figure)) == 1  # b and c are closer than CD; a is not close to either
    assert "CD = 1.00" in _texts(figure)


def test_diagram_without_cd_and_bad_input():
    result = conover_test(DEMSAR_AUC.T, higher_is_better=True, methods=DEMSAR_METHODS)
    figure = plot_critical_difference(result)
    assert not any(text.startswith("CD =") for text in _texts(figure))
    assert len(_thick_lines(figure)) == len(result.groups)
    with pytest.raises(OptionError, match="either"):
        plot_critical_difference(result, mean_ranks=[1.0, 2.0])
    with pytest.raises(OptionError, match="neither"):
        plot_critical_difference()
    with pytest.raises(ShapeError):
        plot_critical_difference(mean_ranks=[[1.0, 2.0]])
    with pytest.raises(ShapeError):
        plot_critical_difference(mean_ranks=[1.0, 2.0], methods=["a"])
