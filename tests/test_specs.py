"""The metric registry: every spec resolves to a documented kernel; lookups fail helpfully."""

from __future__ import annotations

import inspect

import pytest

from xaiscore import specs
from xaiscore.specs import FAMILIES, MetricSpec, UnknownMetricError, get_metric, list_metrics


@pytest.mark.parametrize("spec", list_metrics(), ids=lambda s: s.name)
def test_every_spec_resolves_to_a_documented_kernel(spec):
    fn = spec.fn
    assert callable(fn) and fn.__name__ == spec.name
    doc = inspect.getdoc(fn) or ""
    assert "Shape:" in doc and ">>>" in doc, f"{spec.name} needs a Shape: block and a doctest"
    assert spec.family in FAMILIES and spec.citation
    for option in spec.defaults:
        assert option in inspect.signature(
            fn).parameters, f"default {option!r} is not a keyword of {spec.name}"


def test_needs_match_the_kernel_signature():
    for spec in list_metrics():
        parameters = set(inspect.signature(spec.fn).parameters)
        assert spec.needs <= parameters, (
            f"{spec.name}: {sorted(spec.needs - parameters)} not in its signature"
        )


def test_lookup_and_filters():
    assert get_metric("pointing_game").higher_is_better is True
    assert {s.family for s in list_metrics(family="localization")} == {"localization"}
    attribution_only = list_metrics(available={"a"})
    assert attribution_only and all(s.needs == frozenset({"a"}) for s in attribution_only)


def test_unknown_metric_suggests_close_names():
    with pytest.raises(UnknownMetricError, match="Did you mean 'pointing_game'") as info:
        get_metric("pointing_gme")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_bad_specs_and_duplicates_are_refused():
    with pytest.raises(ValueError, match="family"):
        MetricSpec("m", "a:b", "nope", True, frozenset({"a"}), False, "c")
    with pytest.raises(ValueError, match="needs"):
        MetricSpec("m", "a:b", "complexity", True, frozenset({"weights"}), False, "c")
    with pytest.raises(ValueError, match="already registered"):
        specs.register(get_metric("sparseness"))
    with pytest.raises(ValueError, match="family"):
        list_metrics(family="nope")
