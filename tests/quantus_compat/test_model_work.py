"""The drop-in does no more model work than Quantus 0.6.0 at Quantus' defaults (issue 23).

Quantus' counts are written from its source, not measured from ours: SensitivityN runs the
model on ``x`` and on ``ceil(N / features_in_step)`` cumulative deletions per sample (``N``
values); SmoothMPRT explains ``nr_samples`` copies of every sample once for the unchanged model
and once per randomized layer. (benchmarks/audit_model_calls.py measures both sides for every
class; its smoke run is in tests/benchmarks.)
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from xaiscore import quantus_compat as qc
from xaiscore.testing.strategies import tiny_mlp


class Counting(nn.Module):
    """Counts the inputs that reach ``inner``."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.inputs = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs += x.shape[0]
        return self.inner(x)


def _batch(batch: int, side: int):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, side, side, generator=generator).numpy()
    a = torch.rand(batch, 1, side, side, generator=generator).numpy()
    return x, a, (torch.arange(batch) % 3).numpy()


@pytest.mark.parametrize(("side", "features_in_step"), [(8, 1), (8, 4), (16, 1), (3, 1), (2, 1),
                                                        (4, 16)])
def test_sensitivity_n_spends_at_most_quantus_model_budget(side, features_in_step):
    model = Counting(tiny_mlp((1, side, side), 3, seed=0, dtype=torch.float32)).eval()
    x, a, y = _batch(3, side)
    metric = qc.SensitivityN(features_in_step=features_in_step, seed=0, disable_warnings=True)
    scores = metric(model, x, y, a)
    quantus = 3 * (math.ceil(side * side / features_in_step) + 1)
    assert model.inputs <= max(quantus, 3 * 3)  # at least 2 subsets of one size (a correlation) + x
    # the full default sizes fit: within 20 % of Quantus' budget
    if side * side / features_in_step >= 20:
        assert model.inputs >= 0.8 * quantus
    assert len(scores) == 1


def test_sensitivity_n_uses_an_explicit_subset_count_as_given():
    model = Counting(tiny_mlp((1, 8, 8), 3, seed=0, dtype=torch.float32)).eval()
    x, a, y = _batch(2, 8)
    qc.SensitivityN(n_subsets=5, subset_sizes=[1, 4, 16], seed=0, disable_warnings=True)(model, x,
                                                                                         y, a)
    assert model.inputs == 2 * (3 * 5 + 1)


def test_smooth_mprt_explains_the_unchanged_model_once():
    model = tiny_mlp((1, 4, 4), 3, seed=0, dtype=torch.float32)
    x, a, y = _batch(2, 4)
    calls = []

    def explain(model: nn.Module, inputs, targets, **kwargs):
        calls.append(len(inputs))
        return torch.rand(len(inputs), 1, 4, 4,
                          generator=torch.Generator().manual_seed(len(calls))).numpy()

    layers = sum(1 for m in model.modules() if isinstance(m, nn.Linear))
    metric = qc.SmoothMPRT(nr_samples=3, disable_warnings=True)
    scores = metric(model, x, y, a, explain_func=explain)
    assert sum(calls) == 2 * 3 * (layers + 1)  # Quantus: the unchanged model + every layer
    assert "original" in scores and len(scores) == layers + 1
