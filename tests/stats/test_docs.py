"""docs/statistics.md: its example runs as written and says what the page claims."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "statistics.md"


def test_statistics_page_example_runs(capsys):
    pytest.importorskip("matplotlib")
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.DOTALL)
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(blocks[0], str(PAGE), "exec"), namespace)  # noqa: S102 (our own docs)
    verdict = namespace["verdict"]
    assert verdict.best is None and verdict.tie_group == ("gradcam", "ig")
    assert namespace["posthoc"].friedman.p_value < 0.05
    assert namespace["figure"].axes
    assert "not significantly better" in capsys.readouterr().out


def test_statistics_page_numbers_hold():
    import numpy as np

    from xaiscore.stats import wilcoxon_test

    text = PAGE.read_text()
    better = np.r_[np.arange(1, 11) / 10, np.zeros(90)]  # better on 10 of 100 images, ties on 90
    for zero_method, printed in (("pratt", "0.0016"), ("wilcox", "0.0051"), ("zsplit", "0.070")):
        p = wilcoxon_test(better, np.zeros(100), zero_method=zero_method).p_value
        assert f"{p:.2g}" == f"{float(printed):.2g}" and printed in text
    for image in re.findall(r"\]\((figures/[^)]+)\)", text):
        assert (ROOT / "docs" / image).is_file()
