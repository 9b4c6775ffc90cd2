"""Metrics a user registers get classes too: a per-sample kernel that takes a seed only, and a
set-level metric declared through SetStatistics (the path MaxBoxAcc and PxAP will take)."""

from __future__ import annotations

import pickle
from typing import NamedTuple

import pytest
import torch

from xaiscore import metrics, specs
from xaiscore._engine.random import derive_seed
from xaiscore.functional.set_statistics import SetStatistics
from xaiscore.specs import MetricSpec


def noisy_mean(a: torch.Tensor, *, scale: float = 1.0, seed: int | None = None) -> torch.Tensor:
    """Each map's mean plus ``scale`` times uniform noise drawn from ``seed`` (a test kernel)."""
    generator = torch.Generator().manual_seed(0 if seed is None else seed)
    noise = torch.rand(a.shape[0], generator=generator, dtype=a.dtype)
    return a.flatten(1).mean(1) + scale * noise


class PooledResult(NamedTuple):
    value: torch.Tensor
    total: torch.Tensor
    count: torch.Tensor


def pooled_zeros(*, bins: int) -> dict[str, torch.Tensor]:
    return {
        "total": torch.zeros(bins, dtype=torch.float64),
        "count": torch.zeros(bins, dtype=torch.float64),
    }


def pooled_update(a: torch.Tensor, *, bins: int) -> dict[str, torch.Tensor]:
    values = a.flatten().double().clamp(0, 1)
    which = (values * bins).long().clamp(max=bins - 1)
    total = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, values)
    return {"total": total, "count": torch.bincount(which, minlength=bins).double()}


def pooled_compute(statistics: dict[str, torch.Tensor]) -> PooledResult:
    total, count = statistics["total"], statistics["count"]
    return PooledResult(total.sum() / count.sum(), total, count)


POOLED = SetStatistics(
    inputs=("a",), zeros=pooled_zeros, update=pooled_update, compute=pooled_compute
)


def pooled_mean(a: torch.Tensor, *, bins: int = 4) -> PooledResult:
    """The mean of every value of the set, pooled over samples (a set-level test kernel)."""
    return pooled_compute(pooled_update(a, bins=bins))


@pytest.fixture
def registered():
    added = [
        MetricSpec(
            "noisy_mean",
            f"{__name__}:noisy_mean",
            "complexity",
            None,
            frozenset({"a"}),
            stochastic=True,
            citation="test",
        ),
        MetricSpec(
            "pooled_mean",
            f"{__name__}:pooled_mean",
            "complexity",
            None,
            frozenset({"a"}),
            stochastic=False,
            citation="test",
            scope="set",
            statistics=f"{__name__}:POOLED",
        ),
    ]
    for spec in added:
        specs.register(spec)
    try:
        yield
    finally:
        for spec in added:
            specs._REGISTRY.pop(spec.name)


def test_a_seed_only_kernel_is_seeded_per_sample(registered):
    cls = metrics.NoisyMean  # reachable by its class name, as pickling needs
    assert cls is metrics.metric_class("noisy_mean")
    a = torch.rand(5, 1, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    metric = cls(scale=0.5, seed=4)
    assert metric.seeding == "per_sample"
    metric.update(a[:2])
    metric.update(a[2:])
    expected = torch.cat(
        [noisy_mean(a[i : i + 1], scale=0.5, seed=derive_seed(4, i)) for i in range(5)]
    )
    assert torch.equal(metric.result().scores, expected)
    clone = pickle.loads(pickle.dumps(metric))
    assert torch.equal(clone.result().scores, expected)
    with pytest.raises(ValueError, match="no `generator`"):
        cls(seeding="stream")


def test_a_set_statistics_metric_sums_its_statistics(registered):
    cls = metrics.metric_class("pooled_mean")
    assert issubclass(cls, metrics.StatisticsSetMetric)
    a = torch.rand(7, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    metric = cls(bins=3)
    for start, stop in [(0, 1), (1, 5), (5, 7)]:
        metric.update(a[start:stop])
    whole = pooled_mean(a, bins=3)
    result = metric.result()
    assert torch.allclose(result.value.double(), whole.value)
    assert torch.equal(result.details.count, whole.count)
    assert sorted(metric.state_dict()) == [
        "_extra_state",
        "n_samples",
        "statistic_count",
        "statistic_total",
    ]
    with pytest.raises(TypeError):
        cls()  # bins sizes the states: required, although the kernel has a default


def test_a_set_level_metric_no_wrapper_can_hold_is_refused():
    spec = MetricSpec(
        "odd_set",
        f"{__name__}:noisy_mean",
        "complexity",
        None,
        frozenset({"a"}),
        stochastic=False,
        citation="test",
        scope="set",
    )
    with pytest.raises(ValueError, match="statistics"):
        metrics.metric_class(spec)
