"""docs/metrics.md: its Python examples run and its class table lists every class."""

from __future__ import annotations

import pathlib
import re

import torch

from xaiscore import metrics
from xaiscore.specs import list_metrics

PAGE = pathlib.Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def test_examples_run(capsys):
    runnable = [
        b for b in blocks() if "metric.update(x, a, target)" not in b
    ]  # the API sketch has no data
    assert len(runnable) == 2
    for block in runnable:
        namespace: dict = {}
        exec(compile(block, str(PAGE), "exec"), namespace)
    out = capsys.readouterr().out
    assert "'accuracy'" in out and "torch.Size([20," in out
    module = namespace["module"]
    assert len(module.logged["pointing_step"]) == 3 and len(module.logged["deletion"]) == 1


def test_loop_example_values_equal_the_kernels():
    namespace: dict = {}
    exec(compile(blocks()[1], str(PAGE), "exec"), namespace)
    from xaiscore import functional as F

    x, a, mask, target, model = (namespace[k] for k in ("x", "a", "mask", "target", "model"))
    values = namespace["values"]
    assert values["pointing"].item() == F.pointing_game(a, mask).nanmean().item()
    expected = F.pointing_accuracy(a, mask, target, num_classes=3).accuracy
    torch.testing.assert_close(values["accuracy"], expected)
    torch.testing.assert_close(
        values["sufficiency"], F.sufficiency(model, x, a).nanmean(), equal_nan=True
    )


def test_class_table_lists_every_class_with_its_default_seeding():
    text = PAGE.read_text()
    for spec in list_metrics():
        cls = metrics.metric_class(spec)
        row = re.search(
            rf"^\| `{cls.__name__}` \| `{spec.name}` \| ([^|]+) \| ([^|]+) \|$", text, re.M
        )
        assert row, f"{cls.__name__} is missing from docs/metrics.md"
        seeding = metrics.default_seeding(spec, {}) if cls.uses_randomness else "-"
        assert row.group(2).strip().split()[0] == seeding, cls.__name__
