"""Every registered metric's class, fed a dataset in random batch splits, equals its kernel on the
whole dataset: per-sample scores for per-sample metrics, the whole-set value for set-level ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.metrics import cases
from tests.reference.pointing_accuracy import pointing_accuracy as reference_pointing_accuracy
from xaiscore import metrics
from xaiscore.metrics import MetricResult, class_name, metric_class
from xaiscore.specs import list_metrics

SPECS = list_metrics()


def test_every_registered_metric_has_a_named_class():
    for spec in SPECS:
        cls = getattr(metrics, class_name(spec.name))
        assert cls is metric_class(spec.name) and cls.spec is spec
        assert cls.__name__ in metrics.__all__ and cls.__module__ == "xaiscore.metrics"
        assert spec.description in cls.__doc__ and f"xaiscore.functional.{spec.name}" in cls.__doc__
        assert cls.higher_is_better is spec.higher_is_better


@pytest.mark.parametrize("spec", [s for s in SPECS if s.scope == "sample"], ids=lambda s: s.name)
def test_per_sample_scores_do_not_depend_on_the_batch_split(spec):
    tools, data = cases.callables(), cases.dataset()
    cls = metric_class(spec)
    seeding = cls(
        **{k: v for k, v in _callable_kwargs(cls, tools).items()}, **cases.SMALL.get(spec.name, {})
    ).seeding
    expected, expected_curves = cases.reference(spec, tools, data, seeding)
    rng = np.random.default_rng(len(spec.name))
    for bounds in (cases.random_bounds(cases.N, rng), [(i, i + 1) for i in range(cases.N)]):
        metric = cases.construct(cls, spec, tools)
        cases.feed(metric, data, bounds)
        result = metric.result()
        assert isinstance(result, MetricResult)
        cases.nan_equal(result.scores, expected)
        if expected_curves is not None:
            cases.nan_equal(result.curves, expected_curves)
            assert result.x is not None and result.x.shape == (expected_curves.shape[1],)
        value = metric.compute()
        assert value.ndim == 0 and value.dtype == expected.dtype
        assert value.item() == pytest.approx(cases.nan_mean(expected), nan_ok=True, rel=1e-12)
        assert int(result.n_samples) == cases.N and int(result.n_defined) == int(
            (~torch.isnan(expected)).sum()
        )


@pytest.mark.parametrize("name", ["sufficiency", "consistency"])
def test_prediction_set_metrics_equal_the_kernel_on_the_whole_set(name):
    spec = next(s for s in SPECS if s.name == name)
    tools, data = cases.callables(), cases.dataset()
    expected, _ = cases.reference(spec, tools, data, None)
    assert (~torch.isnan(expected)).sum() >= 3, "the dataset should give explanation-mates"
    rng = np.random.default_rng(3)
    halves = [(0, 4), (4, cases.N)]
    for bounds in (cases.random_bounds(cases.N, rng), [(i, i + 1) for i in range(cases.N)], halves):
        metric = cases.construct(metric_class(spec), spec, tools)
        cases.feed(metric, data, bounds)
        cases.nan_equal(metric.result().scores, expected, exact=True)
        assert metric.compute().item() == pytest.approx(cases.nan_mean(expected), nan_ok=True)
    # the bug this fixes: the kernel on each half alone gives other values
    per_half = torch.cat(
        [cases.scores_of(cases.kernel_call(spec, tools, data, slice(s, e)))[0] for s, e in halves]
    )
    assert not torch.equal(per_half.nan_to_num(-1), expected.nan_to_num(-1))


def test_pointing_accuracy_class_equals_the_kernel_and_the_reference_on_the_whole_set():
    spec = next(s for s in SPECS if s.name == "pointing_accuracy")
    data = cases.dataset()
    data["a"][0, 0] = 0.0  # a constant map: ties among all pixels
    kernel = spec.fn(data["a"], data["mask"], data["target"], num_classes=cases.CLASSES)
    expected, per_class = reference_pointing_accuracy(
        data["a"].numpy(), data["mask"].numpy(), data["target"].numpy(), cases.CLASSES
    )
    assert kernel.accuracy.item() == pytest.approx(expected)
    np.testing.assert_allclose(kernel.class_accuracy.numpy(), per_class)
    rng = np.random.default_rng(5)
    for bounds in (cases.random_bounds(cases.N, rng), [(i, i + 1) for i in range(cases.N)]):
        metric = metrics.PointingAccuracy(num_classes=cases.CLASSES)
        cases.feed(metric, data, bounds)
        result = metric.result()
        assert metric.compute().item() == pytest.approx(expected, rel=1e-12)
        assert torch.equal(result.details.hits, kernel.hits) and torch.equal(
            result.details.trials, kernel.trials
        )
        assert int(result.n_samples) == cases.N and result.scores is None


def _callable_kwargs(cls, tools):
    import inspect

    parameters = inspect.signature(cls).parameters
    return {
        n: tools[n]
        for n in cases.CALLABLES
        if n in parameters and parameters[n].default is inspect.Parameter.empty
    }
