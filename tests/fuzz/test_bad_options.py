"""A bad keyword option gives a typed error or a well-formed score: never a torch or Python
exception.

For every registered metric, each keyword option of its kernel (read from the signature) is
replaced in turn by values of the wrong type or outside any sensible range, chosen by the type of
its default (:func:`tests.fuzz.builders.option_cases`): NaN and infinite numbers, negative and
zero counts, strings, ``None``, empty tuples. Some of these are valid for some options (``abs=1``
is true); then the result must still be ``(B,)`` floating scores.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from xaiscore._checks import XaiscoreError
from xaiscore.specs import list_metrics
from tests.fuzz.builders import call, call_options, fuzzable, option_cases, problems, score_of
from tests.fuzz.examples import fuzz_settings

CASES = [(spec, name, values) for spec in list_metrics() if fuzzable(spec)
         for name, values in option_cases(spec).items()]


@pytest.mark.parametrize(("spec", "option", "values"), CASES,
                         ids=[f"{spec.name}-{name}" for spec, name, _ in CASES])
def test_a_bad_option_gives_a_typed_error_or_a_score(spec, option, values):
    @fuzz_settings(scale=0.5)
    @given(problem=problems(edge=False), value=st.sampled_from(values))
    def check(problem, value):
        options = call_options(spec)
        if option == "seed":
            options.pop("generator", None)
        options[option] = value
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = call(spec, problem.inputs, options)
            except XaiscoreError as error:
                assert isinstance(error, (ValueError, TypeError))
                return
        score = score_of(result)
        assert isinstance(score, torch.Tensor) and score.shape == (problem.batch,)
        assert score.is_floating_point()

    check()
