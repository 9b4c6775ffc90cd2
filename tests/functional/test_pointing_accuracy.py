"""Per-class pointing accuracy: the kernel against the per-row numpy reference, its summable
statistics, edge cases, and TorchRay's protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.reference.pointing_accuracy import pointing_accuracy as reference
from tests.reference.pointing_accuracy import row_hit
from xaiscore import OptionError
from xaiscore.functional import pointing_accuracy
from xaiscore.functional.pointing_accuracy import (
    POINTING_ACCURACY,
    pointing_accuracy_from_statistics,
    pointing_accuracy_statistics,
)
from xaiscore.testing import strategies as xst


@st.composite
def rows(draw, spatial=None):
    spatial = draw(st.sampled_from([(5,), (4, 5), (3, 3, 3)])) if spatial is None else spatial
    b = draw(st.integers(1, 6))
    channels = draw(st.sampled_from([1, 2]))
    a = draw(xst.attributions(shape=(b, channels) + spatial, ties=st.booleans()))
    mask = draw(
        xst.masks(
            shape=(b, 1) + spatial,
            allow_empty=True,
            kind=st.sampled_from(["random", "box", "empty"]),
        )
    )
    k = draw(st.integers(1, 4))
    target = torch.tensor(draw(st.lists(st.integers(0, k - 1), min_size=b, max_size=b)))
    return a, mask, target, k


@given(rows(), st.sampled_from(["fraction", "any", "first"]), st.sampled_from([0.0, 1.0, 1.5]))
def test_matches_the_reference(case, ties, tolerance):
    a, mask, target, k = case
    result = pointing_accuracy(a, mask, target, num_classes=k, ties=ties, tolerance=tolerance)
    accuracy, per_class = reference(
        a.numpy(), mask.numpy(), target.numpy(), k, tolerance=tolerance, ties=ties
    )
    if math.isnan(accuracy):
        assert torch.isnan(result.accuracy)
    else:
        assert result.accuracy.item() == pytest.approx(accuracy, abs=1e-12)
    np.testing.assert_allclose(result.class_accuracy.numpy(), per_class, atol=1e-12)
    hits = [
        row_hit(a[i].numpy(), mask[i].numpy(), tolerance=tolerance, ties=ties)
        for i in range(a.shape[0])
    ]
    np.testing.assert_allclose(result.score.numpy(), hits, atol=1e-12)
    assert result.accuracy.dtype == a.dtype and result.score.shape == (a.shape[0],)


@given(rows(spatial=(4, 4)), st.data())
def test_statistics_add_up_over_any_split(case, data):
    a, mask, target, k = case
    assume(a.shape[0] >= 2)  # an empty batch is refused
    whole = pointing_accuracy(a, mask, target, num_classes=k)
    cut = data.draw(st.integers(1, a.shape[0] - 1))
    parts = [
        pointing_accuracy_statistics(a[s], mask[s], target[s], num_classes=k)
        for s in (slice(0, cut), slice(cut, None))
    ]
    summed = {name: parts[0][name] + parts[1][name] for name in parts[0]}
    from_parts = pointing_accuracy_from_statistics(summed)
    assert torch.equal(from_parts.hits, whole.hits) and torch.equal(from_parts.trials, whole.trials)
    torch.testing.assert_close(
        from_parts.accuracy.to(whole.accuracy.dtype), whole.accuracy, equal_nan=True
    )


def test_mean_over_classes_is_not_the_mean_over_rows():
    a = torch.zeros(4, 1, 2, 2)
    a[:, 0, 0, 0] = 1.0
    mask = torch.zeros(4, 1, 2, 2, dtype=torch.bool)
    mask[:3, :, 0, 0] = True  # three hits of class 0
    mask[3, :, 1, 1] = True  # one miss of class 1
    result = pointing_accuracy(a, mask, torch.tensor([0, 0, 0, 1]))
    assert result.accuracy.item() == 0.5  # (1 + 0) / 2 classes, not 3 / 4 rows
    assert result.class_accuracy.tolist() == [1.0, 0.0]


def test_empty_masks_are_no_trials_and_classes_without_trials_are_left_out():
    a = torch.rand(3, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(3, 1, 3, 3, dtype=torch.bool)
    mask[0] = True
    result = pointing_accuracy(a, mask, torch.tensor([0, 1, 1]), num_classes=3)
    assert result.trials.tolist() == [1.0, 0.0, 0.0]
    assert result.accuracy.item() == 1.0 and math.isnan(result.class_accuracy[1].item())
    assert torch.isnan(result.score[1:]).all()
    nothing = pointing_accuracy(a, torch.zeros_like(mask), torch.tensor([0, 1, 1]))
    assert torch.isnan(nothing.accuracy)


def test_constant_maps_score_the_mask_fraction_under_fractional_ties():
    a = torch.ones(1, 1, 4, 4)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[..., :2, :] = True
    assert pointing_accuracy(a, mask, torch.tensor([0])).accuracy.item() == 0.5
    assert pointing_accuracy(a, mask, torch.tensor([0]), ties="first").accuracy.item() == 1.0


def test_torchray_tolerance_is_strict():
    """TorchRay counts a hit at distance < 15; ours is <= tolerance, so 15 strict is sqrt(224)."""
    a = torch.zeros(2, 1, 40, 40)
    a[0, 0, 0, 15] = 1.0  # exactly 15 px from the mask pixel at (0, 0): a miss in TorchRay
    a[1, 0, 9, 11] = 1.0  # squared distance 202 < 225: a hit in TorchRay
    mask = torch.zeros(2, 1, 40, 40, dtype=torch.bool)
    mask[:, :, 0, 0] = True
    torchray = pointing_accuracy(
        a, mask, torch.tensor([0, 1]), tolerance=math.sqrt(224), ties="first"
    )
    assert torchray.class_accuracy.tolist() == [0.0, 1.0]
    closed = pointing_accuracy(a, mask, torch.tensor([0, 1]), tolerance=15.0, ties="first")
    assert closed.class_accuracy.tolist() == [1.0, 1.0]


def test_bad_inputs_are_refused():
    a = torch.rand(2, 1, 3, 3)
    mask = torch.ones(2, 1, 3, 3, dtype=torch.bool)
    with pytest.raises(OptionError, match="target"):
        pointing_accuracy(a, mask, torch.tensor([0, 3]), num_classes=3)
    with pytest.raises(TypeError, match="integer"):
        pointing_accuracy(a, mask, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\(2,\)"):
        pointing_accuracy(a, mask, torch.tensor([0]))
    with pytest.raises(TypeError, match="num_classes"):
        pointing_accuracy_statistics(a, mask, torch.tensor([0, 1]), num_classes=2.0)
    with pytest.raises(ValueError, match="num_classes"):
        POINTING_ACCURACY.zeros(num_classes=0)


def test_set_statistics_declares_its_options():
    assert POINTING_ACCURACY.inputs == ("a", "mask", "target")
    assert {
        "num_classes",
        "tolerance",
        "ties",
        "reduce_channels",
        "validate",
    } <= POINTING_ACCURACY.option_names()
