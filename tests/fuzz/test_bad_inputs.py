"""Every invalid input of every registered metric raises the typed error that names it.

For each metric (from the registry) and each input it ``needs``, hypothesis draws a problem and
replaces that input by a bad value of :data:`tests.fuzz.builders.BAD_INPUTS`: the kernel must
raise the variant's xaiscore error (a subclass of ``ValueError``/``TypeError``), never return a
number and never let a torch or Python exception through.
"""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given

from xaiscore._checks import XaiscoreError
from xaiscore.specs import list_metrics
from tests.fuzz.builders import (BAD_INPUTS, FuzzNet, bad_input_cases, call, call_options, fuzzable,
                                 problems)
from tests.fuzz.examples import fuzz_settings

CASES = [(spec, need, variant) for spec in list_metrics() if fuzzable(spec)
         for need, variant in bad_input_cases(spec)]


@pytest.mark.parametrize(("spec", "need", "variant"), CASES,
                         ids=[f"{spec.name}-{need}-{variant}" for spec, need, variant in CASES])
def test_a_bad_input_raises_its_typed_error(spec, need, variant):
    bad = BAD_INPUTS[need][variant]

    @fuzz_settings(scale=0.25)
    @given(problem=problems(edge=False))
    def check(problem):
        inputs = dict(problem.inputs, **{need: bad.build(problem)})
        FuzzNet.calls.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = call(spec, inputs, call_options(spec))
            except XaiscoreError as error:
                assert isinstance(error, (ValueError, TypeError))
                if not isinstance(error, bad.error):
                    # Another typed error is right only where the problem itself does not suit the
                    # kernel (e.g. 1-D maps for a 2-D metric): the good inputs raise it too.
                    with pytest.raises(type(error)):
                        call(spec, problem.inputs, call_options(spec))
                return
        pytest.fail(f"{spec.name} with {need} {variant!r} returned {result!r} instead of raising "
                    f"{bad.error.__name__}.")

    check()
