"""Public functions of ``xaiscore.functional`` that are not registered metrics, fuzzed with their
own call generators (:data:`tests.fuzz.builders.EXTRA_FUNCTIONS`): the expected typed error for a
bad call, a well-formed result that does not depend on the batch for a good one."""

from __future__ import annotations

import math
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
            # torch's "casting complex values discards the imaginary part"
            warnings.simplefilter("error")
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


def test_tile_index_calls():
    function = functional.tile_index

    @fuzz_settings(scale=5)
    @given(EXTRA_FUNCTIONS["tile_index"]())
    def check(case):
        (spatial, grid), kwargs, error = case
        if error is not None:
            with pytest.raises(error):
                function(spatial, grid, **kwargs)
            return
        tiles = function(spatial, grid, **kwargs)
        assert tiles.dtype == torch.long and tiles.shape == tuple(spatial)
        assert int(tiles.min()) >= 0 and int(tiles.max()) < grid * grid
        # raster order: tiles never decrease along a row or down a column
        assert (tiles.diff(dim=1) >= 0).all() and (tiles.diff(dim=0) >= 0).all()

    check()


def test_tune_threshold_calls():
    function = functional.tune_threshold

    @fuzz_settings(scale=5)
    @given(EXTRA_FUNCTIONS["tune_threshold"]())
    def check(case):
        (a, mask), kwargs, error = case
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if error is not None:
                with pytest.raises(error):
                    function(a, mask, **kwargs)
                return
            try:
                tuned = function(a, mask, **kwargs)
            # a problem the kernel does not take (e.g. a 4-D map)
            except XaiscoreError as unexpected:
                assert isinstance(unexpected, (ValueError, TypeError))
                return
            batch, candidates = a.shape[0], len(kwargs["thresholds"])
            assert tuned.iou.shape == (batch, candidates) and tuned.mean_iou.shape == (candidates,)
            assert not torch.isinf(tuned.iou).any() and not torch.isinf(tuned.hit_rate)
            assert isinstance(tuned.threshold, float)
            assert math.isnan(tuned.threshold) or tuned.threshold in kwargs["thresholds"]
            for i in range(batch):  # a sample's IoU does not depend on the others
                alone = function(a[i: i + 1], mask[i: i + 1], **kwargs).iou
                torch.testing.assert_close(alone, tuned.iou[i: i + 1], equal_nan=True)

    check()


def test_every_extra_function_has_a_test_here():
    tested = {name.removeprefix("test_").removesuffix("_calls")
              for name in globals() if name.startswith("test_")}
    assert set(EXTRA_FUNCTIONS) <= tested
