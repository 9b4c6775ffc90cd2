"""Randomness of the metric classes: which seeding is exact, and what each mode guarantees.

* ``"stream"``: one generator carried from batch to batch. Exact (equal to one kernel call on the
  concatenated batches, for any split) where the kernel draws sample after sample in batch
  order: the deterministic metrics' optional draws and :data:`xaiscore.metrics.STREAM_EXACT`.
* ``"per_sample"``: a generator per sample seeded ``derive_seed(seed, key)``: invariant to the
  split, and with ``sample_index`` as the key to the order and the sharding as well.
"""

from __future__ import annotations

import pytest
import torch

from tests.metrics import cases
from xaiscore._engine.random import derive_seed
from xaiscore.metrics import STREAM_EXACT, default_seeding, metric_class
from xaiscore.specs import get_metric, list_metrics

STOCHASTIC = [s for s in list_metrics() if s.stochastic]


def test_default_seeding_is_stream_exactly_where_the_kernel_draws_in_sample_order():
    for spec in list_metrics():
        expected = "per_sample" if spec.stochastic and spec.name not in STREAM_EXACT else "stream"
        assert default_seeding(spec, {}) == expected, spec.name
    assert STREAM_EXACT <= {s.name for s in STOCHASTIC}


@pytest.mark.parametrize("name", ["irof", "faithfulness_correlation", "sensitivity_n"])
def test_options_that_draw_out_of_order_switch_to_per_sample_and_stay_split_invariant(name):
    spec = get_metric(name)
    tools, data = cases.callables(), cases.dataset()
    metric = cases.construct(metric_class(spec), spec, tools, baseline="uniform")
    assert metric.seeding == "per_sample"
    cases.feed(metric, data, [(0, 3), (3, cases.N)])
    expected_parts = []
    for i in range(cases.N):
        generator = torch.Generator().manual_seed(derive_seed(0, i))
        one = cases.kernel_call(
            spec, tools, data, slice(i, i + 1), generator=generator, baseline="uniform"
        )
        expected_parts.append(cases.scores_of(one)[0])
    cases.nan_equal(metric.result().scores, torch.cat(expected_parts))


@pytest.mark.parametrize(
    "name",
    [
        "deletion",
        "insertion",
        "pixel_flipping",
        "selectivity",
        "faithfulness_estimate",
        "monotonicity",
        "monotonicity_correlation",
    ],
)
def test_uniform_baselines_of_stream_metrics_are_exact_for_any_split(name):
    spec = get_metric(name)
    tools, data = cases.callables(), cases.dataset()
    expected = cases.scores_of(
        cases.kernel_call(
            spec,
            tools,
            data,
            slice(None),
            baseline="uniform",
            generator=torch.Generator().manual_seed(7),
        )
    )[0]
    metric = cases.construct(metric_class(spec), spec, tools, baseline="uniform", seed=7)
    assert metric.seeding == "stream"
    cases.feed(metric, data, [(0, 1), (1, 5), (5, cases.N)])
    cases.nan_equal(metric.result().scores, expected)


@pytest.mark.parametrize(
    "spec", [s for s in STOCHASTIC if s.name not in STREAM_EXACT], ids=lambda s: s.name
)
def test_per_sample_seeds_follow_sample_index_whatever_the_order_and_split(spec):
    tools, data = cases.callables(), cases.dataset()
    keys = [10, 3, 7, 0, 21, 5, 8]
    expected, _ = cases.reference(spec, tools, data, "per_sample", seed=3, keys=keys)
    order = torch.tensor([4, 0, 6, 2, 1, 5, 3])  # the samples arrive shuffled
    shuffled = {k: v[order] for k, v in data.items()}
    metric = cases.construct(metric_class(spec), spec, tools, seed=3)
    cases.feed(metric, shuffled, [(0, 2), (2, 3), (3, cases.N)], index=torch.tensor(keys)[order])
    result = metric.result()
    by_key = torch.argsort(torch.tensor(keys))
    # results come sorted by sample_index
    assert torch.equal(result.index, torch.tensor(keys)[by_key])
    cases.nan_equal(result.scores, expected[by_key])


def test_forward_and_update_draw_the_same_stream():
    spec = get_metric("road")
    tools, data = cases.callables(), cases.dataset()
    by_update = cases.construct(metric_class(spec), spec, tools)
    by_forward = cases.construct(metric_class(spec), spec, tools)
    cases.feed(by_update, data, [(0, 3), (3, cases.N)])
    for start, stop in [(0, 3), (3, cases.N)]:
        batch_value = by_forward(
            x=data["x"][start:stop], a=data["a"][start:stop], target=data["target"][start:stop]
        )
        assert batch_value.ndim == 0
    cases.nan_equal(by_forward.result().scores, by_update.result().scores, exact=True)


def test_reset_restarts_the_random_streams():
    for name in ("road", "max_sensitivity"):  # one stream, one per-sample metric
        spec = get_metric(name)
        tools, data = cases.callables(), cases.dataset()
        metric = cases.construct(metric_class(spec), spec, tools)
        cases.feed(metric, data, [(0, 4), (4, cases.N)])
        first = metric.result().scores
        metric.reset()
        assert metric.result().scores is None
        cases.feed(metric, data, [(0, 2), (2, cases.N)])
        cases.nan_equal(metric.result().scores, first, exact=True)


@pytest.mark.parametrize("name", ["road", "max_sensitivity"])
def test_state_dict_resumes_the_random_streams(name):
    spec = get_metric(name)
    tools, data = cases.callables(), cases.dataset()
    uninterrupted = cases.construct(metric_class(spec), spec, tools)
    cases.feed(uninterrupted, data, [(0, 3), (3, cases.N)])
    first = cases.construct(metric_class(spec), spec, tools)
    cases.feed(first, data, [(0, 3)])
    saved = first.state_dict()
    resumed = cases.construct(metric_class(spec), spec, tools)
    resumed.load_state_dict(saved)
    cases.feed(resumed, data, [(3, cases.N)])
    cases.nan_equal(resumed.result().scores, uninterrupted.result().scores, exact=True)


def test_stream_seeding_of_a_non_exact_metric_is_reproducible_for_the_same_batches():
    """The weaker property of ``seeding="stream"`` where the kernel draws out of sample order: the
    same batches give the same values (but another split may give others)."""
    spec = get_metric("max_sensitivity")
    tools, data = cases.callables(), cases.dataset()
    runs = []
    for _ in range(2):
        metric = cases.construct(metric_class(spec), spec, tools, seeding="stream", seed=1)
        cases.feed(metric, data, [(0, 3), (3, cases.N)])
        runs.append(metric.result().scores)
    cases.nan_equal(runs[0], runs[1], exact=True)
    whole = cases.scores_of(
        cases.kernel_call(
            spec, tools, data, slice(0, 3), generator=torch.Generator().manual_seed(1)
        )
    )[0]
    # the first batch is the kernel with a generator seeded 1
    cases.nan_equal(runs[0][:3], whole, exact=True)


def test_different_seeds_give_different_draws():
    spec = get_metric("max_sensitivity")
    tools, data = cases.callables(), cases.dataset()
    values = []
    for seed in (0, 1):
        metric = cases.construct(metric_class(spec), spec, tools, seed=seed)
        cases.feed(metric, data, [(0, cases.N)])
        values.append(metric.result().scores)
    assert not torch.equal(values[0], values[1])


def test_bad_seeding_arguments_are_refused():
    spec = get_metric("road")
    tools = cases.callables()
    with pytest.raises(ValueError, match="seeding"):
        cases.construct(metric_class(spec), spec, tools, seeding="batch")
    with pytest.raises(TypeError, match="seed"):
        cases.construct(metric_class(spec), spec, tools, seed=1.5)
