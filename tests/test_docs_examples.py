"""The Python examples in README.md and the docs pages run as written."""

from __future__ import annotations

import pathlib
import re

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


def python_blocks(path: pathlib.Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def test_readme_examples_run(capsys):
    blocks = python_blocks(ROOT / "README.md")
    assert len(blocks) >= 2, "README.md lost its quick start examples"
    for block in blocks:
        if "quantus_compat as quantus" in block and block.count("\n") <= 2:
            pytest.importorskip("quantus")
        exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "tensor(" in printed


def test_testing_page_examples_hold():
    pytest.importorskip("hypothesis")
    from xaiscore.explainers import captum_explainer

    pytest.importorskip("captum")
    blocks = python_blocks(ROOT / "docs" / "testing.md")
    assert len(blocks) == 2
    namespace: dict = {}
    exec(compile(blocks[0], "docs/testing.md", "exec"), namespace)
    namespace["test_rank_accuracy_is_scale_invariant"]()

    def my_explainer(model, x, target):
        return captum_explainer(model, "Saliency")(x, target)

    namespace["my_explainer"] = my_explainer
    exec(compile(blocks[1], "docs/testing.md", "exec"), namespace)
    namespace["test_my_explainer_shapes"]()
    assert torch.is_tensor(my_explainer(torch.nn.Linear(4, 2), torch.rand(3, 4),
                                        torch.zeros(3, dtype=torch.long)))
