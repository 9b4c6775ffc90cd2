"""Public functions of ``xaiscore.functional`` that are not registered metrics, fuzzed with their own
call generators (:data:`tests.fuzz.builders.EXTRA_FUNCTIONS`): the expected typed error for a bad
call, a well-formed result that does not depend on the batch for a good one."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given

import xaiscore.functional as functional
from xaiscore._checks import XaiscoreError
from tests.fuzz.builders import EXTRA_FUNCTIONS
from tests.fuzz.examples import fuzz_settings


def test_boxes_to_mask_calls():
    function = functional.boxes_to_mask

    @fuzz_settings(scale=10)
    @given(EXTRA_FUNCTIONS["boxes_to_mask"]())
    def check(case):
        (boxes, size), kwargs, error = case
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch's "casting complex values discards the imaginary part"
            if error is not None:
                with pytest.raises(error):
                    function(boxes, size, **kwargs)
                return
            try:
                mask = function(boxes, size, **kwargs)
            except XaiscoreError as unexpected:
                pytest.fail(f"boxes_to_mask refused a good call: {unexpected}")
        batch = len(boxes)
        assert mask.dtype == torch.bool and mask.shape == (batch, 1) + tuple(size)
        for i in range(batch):  # a sample's mask does not depend on the others
            alone = function(boxes[i: i + 1], size, **kwargs)
            assert torch.equal(alone, mask[i: i + 1])

    check()


def test_every_extra_function_has_a_test_here():
    tested = {name.removeprefix("test_").removesuffix("_calls") for name in globals() if name.startswith("test_")}
    assert set(EXTRA_FUNCTIONS) <= tested
