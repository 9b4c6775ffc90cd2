"""Threshold-tuned IoU (the CheXlocalize protocol): tune_threshold against the
one-threshold-at-a-time reference, agreement with localization_iou at every candidate, the protocol
end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.reference import localization as ref
from xaiscore._checks import OptionError
from xaiscore.functional import localization_iou, pointing_game, tune_threshold
from xaiscore.functional.segmentation import CHEXLOCALIZE_THRESHOLDS
from xaiscore.testing import strategies as xst

MODES = st.sampled_from([
    ("min_max", CHEXLOCALIZE_THRESHOLDS),
    ("min_max", (0.0, 0.25, 0.5, 0.75, 1.0)),
    ("max_fraction", (0.2, 0.5, 1.0)),
    ("quantile", (0.0, 0.3, 0.9, 1.0)),
])


@pytest.mark.parametrize("edge_cases", [False, True])
@given(data=st.data(), mode=MODES, empty=st.sampled_from(["nan", "zero"]),
       how=st.sampled_from(["sum", None]))
def test_tune_threshold_matches_the_reference_and_localization_iou(edge_cases, data, mode, empty,
                                                                   how):
    a, mask = data.draw(xst.metric_inputs(edge_cases=edge_cases), label="inputs")
    threshold_mode, candidates = mode
    tuned = tune_threshold(a, mask, thresholds=candidates, threshold_mode=threshold_mode,
                           empty_prediction=empty, reduce_channels=how)
    maps, masks = list(a.numpy()), list(mask.numpy())
    best, means = ref.tune_threshold(maps, masks, list(candidates), threshold_mode, empty, how)
    np.testing.assert_allclose(tuned.mean_iou.numpy(), means, rtol=1e-12, atol=1e-12,
                               equal_nan=True)
    assert (math.isnan(best) and math.isnan(tuned.threshold)) or tuned.threshold == pytest.approx(
        best)
    for k, t in enumerate(candidates):  # the tuned curve is localization_iou at each candidate
        column = (
            localization_iou(
                a,
                mask,
                threshold=t,
                threshold_mode=threshold_mode,
                empty_prediction=empty,
                reduce_channels=how,
            )
            if t > 0 or threshold_mode != "max_fraction"
            else None
        )
        if column is not None:
            assert torch.equal(tuned.iou[:, k].nan_to_num(-1.0), column.nan_to_num(-1.0)), (k, t)
    expected_hits = ref.hit_rate(maps, masks, how)
    assert (math.isnan(expected_hits) and torch.isnan(tuned.hit_rate)) or \
        tuned.hit_rate.item() == pytest.approx(expected_hits)


def test_hit_rate_is_the_pointing_game_with_the_first_maximum():
    g = torch.Generator().manual_seed(5)
    a = torch.rand(8, 1, 6, 6, generator=g, dtype=torch.float64)
    a[0] = 0.5  # a constant map: the first pixel is the maximum
    mask = torch.rand(8, 1, 6, 6, generator=g) > 0.6
    mask[1] = False
    expected = pointing_game(a, mask, ties="first").nanmean()
    assert tune_threshold(a, mask).hit_rate.item() == pytest.approx(expected.item())


def test_the_protocol_tunes_on_validation_and_applies_on_test():
    """Maps that overshoot the lesion by a margin: the best threshold cuts the margin off."""
    g = torch.Generator().manual_seed(0)

    def split(n):
        mask = torch.zeros(n, 1, 20, 20, dtype=torch.bool)
        mask[:, :, 5:12, 6:14] = True
        a = 0.1 * torch.rand(n, 1, 20, 20, generator=g, dtype=torch.float64)
        a[:, :, 4:13, 5:15] += 0.45  # the margin
        a[mask] += 0.5
        return a, mask

    a_val, mask_val = split(12)
    a_test, mask_test = split(9)
    tuned = tune_threshold(a_val, mask_val)
    # 0.6, 0.7 and 0.8 all cut the margin off (IoU 1): the first best candidate
    assert (tuned.threshold == 0.6 and tuned.mean_iou[4:].eq(1.0).all()
            and (tuned.mean_iou[:4] < 1).all())
    test_iou = localization_iou(a_test, mask_test, threshold=tuned.threshold,
                                threshold_mode="min_max",
                                empty_prediction="nan")
    assert torch.equal(test_iou, torch.ones(9, dtype=torch.float64))
    otsu = localization_iou(a_test, mask_test, threshold_mode="otsu")  # the untuned default
    assert (otsu < 1).all() and (otsu > 0.5).all()


def test_properties_map_equal_to_the_mask_scores_one_outside_zero():
    g = torch.Generator().manual_seed(2)
    mask = torch.rand(5, 1, 7, 7, generator=g) > 0.5
    mask[:, :, 0, 0] = True
    mask[:, :, 0, 1] = False
    exact = mask.double()
    # (a quantile keeps a share)
    for mode, t in [("min_max", 0.5), ("max_fraction", 0.5), ("otsu", 0.5)]:
        iou = localization_iou(exact, mask, threshold=t, threshold_mode=mode)
        assert torch.equal(iou, torch.ones(5, dtype=torch.float64)), mode
        assert torch.equal(localization_iou(1.0 - exact, mask, threshold=t, threshold_mode=mode),
                           torch.zeros(5, dtype=torch.float64)), mode
    assert tune_threshold(exact, mask).mean_iou.eq(1.0).all()


def test_empty_selection_and_constant_maps():
    a = torch.full((2, 1, 4, 4), 0.3)
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[:, :, 1:3, 1:3] = True
    assert localization_iou(a, mask, threshold=0.2, threshold_mode="min_max").tolist() == [0.0, 0.0]
    assert torch.isnan(localization_iou(a, mask, threshold=0.2, threshold_mode="min_max",
                                        empty_prediction="nan")).all()
    tuned = tune_threshold(a, mask)  # no candidate selects anything: no defined IoU
    assert math.isnan(tuned.threshold) and torch.isnan(tuned.mean_iou).all()
    assert tune_threshold(a, mask, empty_prediction="zero").threshold == 0.2  # all 0: the first
    mask[1] = False
    assert math.isnan(localization_iou(a, mask)[1].item())


def test_concatenated_batches_give_the_same_tuning():
    g = torch.Generator().manual_seed(9)
    a = torch.rand(10, 1, 8, 8, generator=g, dtype=torch.float64)
    mask = torch.rand(10, 1, 8, 8, generator=g) > 0.7
    whole = tune_threshold(a, mask)
    parts = torch.cat([tune_threshold(a[i:i + 3], mask[i:i + 3]).iou for i in range(0, 10, 3)])
    assert torch.equal(parts.nan_to_num(-1.0), whole.iou.nan_to_num(-1.0))
    torch.testing.assert_close(torch.nanmean(parts, 0), whole.mean_iou, equal_nan=True)


def test_bad_options():
    a, mask = torch.rand(2, 1, 4, 4), torch.ones(2, 1, 4, 4, dtype=torch.bool)
    with pytest.raises(OptionError, match="threshold_mode"):
        tune_threshold(a, mask, threshold_mode="otsu")
    with pytest.raises(OptionError, match=r"\[0, 1\]"):
        tune_threshold(a, mask, thresholds=(0.5, 1.5))
    with pytest.raises(OptionError, match=r"\(0, 1\]"):
        tune_threshold(a, mask, thresholds=(0.0, 0.5), threshold_mode="max_fraction")
    with pytest.raises(OptionError, match="increasing"):
        tune_threshold(a, mask, thresholds=(0.5, 0.2))
    with pytest.raises(OptionError, match="empty_prediction"):
        localization_iou(a, mask, empty_prediction="one")
    with pytest.raises(OptionError, match="threshold"):
        localization_iou(a, mask, threshold=1.5, threshold_mode="min_max")


def test_default_candidates_are_chexlocalizes():
    # tune_heatmap_threshold.py: thresholds = np.arange(0.2, .8, .1), seven values by float rounding
    assert CHEXLOCALIZE_THRESHOLDS == tuple(round(float(t), 1) for t in np.arange(0.2, .8, .1))
    assert len(CHEXLOCALIZE_THRESHOLDS) == 7
