"""Valid edge inputs give a typed error or a well-formed value that agrees with split, permuted and
chunked runs.

For every registered metric, hypothesis draws problems with edge cases (constant, tied, all-zero,
one-hot, tiny or huge maps, half-precision attributions, empty and full masks, one sample,
1-D to 3-D inputs of side 1 upwards). The kernel must either raise an xaiscore error (a problem
it does not take, e.g. 1-D maps for a 2-D metric) or return ``(B,)`` floating scores without
infinities (NaN only where a score is undefined) that:

* per-sample deterministic metrics: equal the scores of each half of the batch scored alone,
  and follow a permutation of the samples;
* set-level metrics (a score depends on the batch by definition): follow a permutation;
* stochastic metrics (the noise is indexed by the position in the batch): are reproduced by the
  same seed;
* all: do not depend on ``max_batch_size``.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from xaiscore._checks import XaiscoreError
from xaiscore.specs import list_metrics
from tests.fuzz.builders import call, call_options, fuzzable, is_set_scope, problems, score_of
from tests.fuzz.examples import fuzz_settings

SPECS = [spec for spec in list_metrics() if fuzzable(spec)]


def _tolerances(problem, inputs) -> dict[str, float]:
    a = inputs.get("a")
    half = a is not None and a.dtype in (torch.float16, torch.bfloat16)
    if half:
        return {"rtol": 1e-2, "atol": 1e-3}
    if problem.x_dtype == torch.float32 or (a is not None and a.dtype == torch.float32):
        return {"rtol": 1e-4, "atol": 1e-5}
    return {"rtol": 1e-7, "atol": 1e-9}


def _score(spec, inputs, **options) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return score_of(call(spec, inputs, call_options(spec, **options)))


def _same(actual, expected, problem, inputs, what):
    torch.testing.assert_close(actual, expected, equal_nan=True, check_dtype=True,
                               msg=lambda m: f"{what}: {m}",
                               **_tolerances(problem, inputs))


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_edge_inputs_give_a_typed_error_or_a_consistent_score(spec):
    @fuzz_settings(scale=1)
    @given(problem=problems(edge=True), data=st.data())
    def check(problem, data):
        try:
            score = _score(spec, problem.inputs)
        except XaiscoreError as error:
            assert isinstance(error, (ValueError, TypeError))
            return
        batch = problem.batch
        assert isinstance(score,
                          torch.Tensor) and score.shape == (batch,), f"{spec.name}: {score!r}"
        assert score.is_floating_point() and score.device.type == "cpu"
        assert not torch.isinf(
            score).any(), f"{spec.name} gave an infinite score: {score} ({problem.labels})"
        chunked = _score(spec, problem.inputs, max_batch_size=1)
        _same(chunked, score, problem, problem.inputs, "max_batch_size=1")
        if spec.stochastic:
            _same(_score(spec, problem.inputs), score, problem, problem.inputs, "same seed")
            return
        permutation = torch.tensor(data.draw(st.permutations(range(batch)), label="permutation"))
        _same(_score(spec, problem.subset(permutation)), score[permutation], problem,
              problem.inputs, "permuted")
        if is_set_scope(spec) or batch == 1:
            return
        cut = data.draw(st.integers(1, batch - 1), label="cut")
        halves = [torch.arange(cut), torch.arange(cut, batch)]
        split = torch.cat([_score(spec, problem.subset(half)) for half in halves])
        _same(split, score, problem, problem.inputs, f"split at {cut}")

    check()
