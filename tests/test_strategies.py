"""The public hypothesis strategies produce what they promise."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from xaiscore.testing import strategies as xst


@given(xst.shapes())
def test_shapes(shape):
    assert 3 <= len(shape) <= 5 and all(s >= 1 for s in shape)


@given(xst.attributions(shape=(2, 3, 4), dtype=torch.float32))
def test_attributions_fixed_shape_and_dtype(a):
    assert a.shape == (2, 3, 4) and a.dtype == torch.float32 and torch.isfinite(a).all()


@given(xst.attributions(constant=True))
def test_constant_maps(a):
    flat = a.reshape(a.shape[0], -1)
    assert (flat == flat[:, :1]).all()


@given(xst.attributions(ties=True, shape=(1, 1, 6, 6)))
def test_ties_use_few_levels(a):
    assert len(torch.unique(a)) <= len(xst.TIE_LEVELS)


@given(xst.attributions(nonnegative=True))
def test_nonnegative(a):
    assert (a >= 0).all()


@given(xst.masks(shape=st.just((3, 1, 5, 5)), kind=st.sampled_from(["random", "box"])))
def test_masks_are_non_empty_by_default(mask):
    assert mask.dtype == torch.bool and mask.reshape(3, -1).any(1).all()


@given(xst.masks(shape=(2, 1, 4, 4), kind="box"))
def test_box_masks_are_boxes(mask):
    for sample in mask[:, 0]:
        rows, cols = sample.any(1).nonzero(), sample.any(0).nonzero()
        assert sample[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()


@given(xst.boxes(size=(6, 9), integer=True))
def test_boxes_inside_the_image(boxes):
    for b in boxes:
        assert b.shape[1] == 4
        if len(b):
            assert (b[:, 0] <= b[:, 2]).all() and (b[:, 2] <= 9).all() and (b[:, 3] <= 6).all()
            assert torch.equal(b, b.round())


@given(xst.metric_inputs(mask_channels=-1))
def test_metric_inputs_match(inputs):
    a, mask = inputs
    assert mask.shape == a.shape and mask.dtype == torch.bool


@given(xst.metric_inputs(edge_cases=True))
def test_edge_cases_are_valid_inputs(inputs):
    a, mask = inputs
    assert mask.shape[0] == a.shape[0] and mask.shape[2:] == a.shape[2:]
