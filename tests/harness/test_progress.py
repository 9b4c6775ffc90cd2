"""Progress bars count what they say; scoring time; the training bar says when it stopped early."""

from __future__ import annotations

import pytest
import tqdm.auto

from tests.harness.runner_fixtures import tiny_dataset, tiny_model  # noqa: F401
from xaiscore.harness.runner import evaluate


class FakeBar:
    """Records what a tqdm bar is told."""

    bars: list[FakeBar] = []

    def __init__(self, iterable=None, total=None, desc=None, unit=None, **_):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.postfixes, self.closed = 0, [], False
        FakeBar.bars.append(self)

    def __iter__(self):
        for item in self.iterable:
            self.n += 1
            yield item

    def update(self, k=1):
        self.n += k

    def set_postfix_str(self, text, refresh=True):
        self.postfixes.append(text)

    def set_description_str(self, text, refresh=True):
        self.desc = text

    def close(self):
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    FakeBar.bars = []
    monkeypatch.setattr(tqdm.auto, "tqdm", FakeBar)
    return FakeBar.bars


def test_the_bar_counts_method_metric_results_and_resume_loads_them(
    tiny_dataset,
    tiny_model,
    tmp_path,  # noqa: F811
    bars,
):
    options = dict(
        methods=["Saliency", "random"],
        metrics=["pointing_game", "sparseness", "complexity"],
        batch_size=8,
        n_examples=0,
        out=tmp_path,
        progress=True,
    )
    timing = {}
    evaluate(tiny_dataset, tiny_model, timing=timing, **options)
    (bar,) = bars
    assert bar.unit == "result" and bar.total == 2 * 2 * 3 and bar.n == bar.total and bar.closed
    assert "random / complexity" in bar.postfixes
    assert timing["results_computed"] == 12 and timing["results_loaded"] == 0
    assert timing["seconds"] > 0
    bars.clear()
    evaluate(tiny_dataset, tiny_model, timing=timing, **options)
    (bar,) = bars
    assert bar.n == bar.total == 12 and set(bar.postfixes) == {"loaded"}
    assert timing["results_computed"] == 0 and timing["results_loaded"] == 12


def test_the_training_bar_says_when_training_stopped_early(tmp_path, bars):
    from xaiscore.harness.config import parse_config
    from xaiscore.harness.data.registry import open_dataset
    from xaiscore.harness.distributed import DistributedContext
    from xaiscore.harness.models import build_model

    config = parse_config(
        {
            "out": str(tmp_path),
            "dataset": {"kind": "synthetic", "n": 8, "size": [16, 16]},
            "model": {
                "kind": "demo",
                "train": {"n": 64, "epochs": 6, "width": 4, "stop_at_accuracy": 0.0},
            },
        }
    )
    context = DistributedContext.from_environment(device="cpu")
    try:
        build_model(
            config,
            open_dataset("synthetic", n=8, size=[16, 16]),
            store=None,
            context=context,
            progress=True,
        )
    finally:
        context.close()
    (bar,) = bars
    assert bar.n == 1 and bar.closed
    assert bar.desc.startswith("training stopped early after epoch 1 of 6: running accuracy")


def test_meta_evaluate_counts_test_iterations_when_asked(bars):
    import torch

    from xaiscore.explainers import captum_explainer
    from xaiscore.meta import meta_evaluate

    pytest.importorskip("captum")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    methods = {
        "gradient": lambda m: captum_explainer(m, "Gradient"),
        "input_x_gradient": lambda m: captum_explainer(m, "InputXGradient"),
    }
    quiet = meta_evaluate(
        model, x, methods, ["sparseness"], iterations=2, perturbations=2, n_splits=5
    )
    assert bars == []  # off by default: library code does not print
    shown = meta_evaluate(
        model, x, methods, ["sparseness"], iterations=2, perturbations=2, n_splits=5, progress=True
    )
    (bar,) = bars
    assert bar.total == 4 * 2 and bar.n == bar.total and bar.closed and bar.unit == "test iteration"
    assert shown["score"].equals(quiet["score"])
