"""Every registered metric and every public kernel is fuzzed, or listed with the reason it is not.
"""

from __future__ import annotations

import inspect

import xaiscore.functional as functional
from xaiscore.specs import list_metrics
from tests.fuzz.builders import (
    BAD_INPUTS,
    EXTRA_FUNCTIONS,
    NEED_BUILDERS,
    NOT_YET_FUZZED,
    fuzzable,
    option_cases,
)


def test_every_registered_metric_is_fuzzed_or_listed():
    unfuzzed = [
        f"{spec.name} (needs {sorted(spec.needs - set(NEED_BUILDERS))} without a builder)"
        for spec in list_metrics()
        if not fuzzable(spec) and spec.name not in NOT_YET_FUZZED
    ]
    assert not unfuzzed, (
        "Metrics neither fuzzed nor listed in tests/fuzz/builders.py NOT_YET_FUZZED: "
        f"{unfuzzed}. Add a builder to NEED_BUILDERS and bad values to BAD_INPUTS, or list the "
        "metric."
    )


def test_every_public_kernel_is_fuzzed_or_listed():
    registered = {spec.fn for spec in list_metrics() if fuzzable(spec)}
    missing = [
        name for name in functional.__all__
        if getattr(functional, name) not in registered and name not in EXTRA_FUNCTIONS
        and name not in NOT_YET_FUZZED
    ]
    assert not missing, (
        f"Public functions of xaiscore.functional that the fuzz suite does not reach: {missing}. "
        "Register a spec, add the function to EXTRA_FUNCTIONS, or list it in NOT_YET_FUZZED with "
        "the reason."
    )


def test_every_need_with_a_builder_has_bad_values():
    assert set(BAD_INPUTS) == set(NEED_BUILDERS)
    assert all(BAD_INPUTS[name] for name in BAD_INPUTS)


def test_every_fuzzed_metric_has_bad_options_to_try():
    # A kernel without keyword options would escape the option fuzz: every kernel has some today.
    assert all(option_cases(spec) for spec in list_metrics() if fuzzable(spec))


def test_extra_functions_are_public():
    assert set(EXTRA_FUNCTIONS) <= set(functional.__all__)
    assert all(inspect.isfunction(inspect.unwrap(getattr(functional, name)))
               for name in EXTRA_FUNCTIONS)
