"""Localization kernels against their per-sample references, on drawn inputs and edge cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import xaiscore
from tests.reference import localization as ref
from xaiscore.functional import localization as loc
from xaiscore.testing import strategies as xst

REDUCTIONS = st.sampled_from(["sum", "mean", "max_abs", None])


def per_sample(reference, a: torch.Tensor, mask: torch.Tensor, **kwargs) -> np.ndarray:
    return np.array([reference(a[i].numpy(), mask[i].numpy(), **kwargs) for i in range(a.shape[0])])


def assert_matches(ours: torch.Tensor, expected: np.ndarray, atol: float = 1e-6) -> None:
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours.numpy(), expected, atol=atol, rtol=1e-6, equal_nan=True)


# Each case: kernel, reference, a strategy of keyword options (kernel name -> reference name).
CASES = {
    "pointing_game": (
        loc.pointing_game,
        ref.pointing_game,
        st.fixed_dictionaries({
            "tolerance": st.sampled_from([0.0, 1.0, 1.5, 2.3]),
            "ties": st.sampled_from(["fraction", "any", "first"]),
            "weighted": st.booleans(),
        }),
    ),
    "energy_pointing_game": (loc.energy_pointing_game, ref.energy_pointing_game, st.just({})),
    "relevance_mass_accuracy": (
        loc.relevance_mass_accuracy,
        ref.relevance_mass_accuracy,
        st.fixed_dictionaries({"relevance": st.sampled_from(["positive", "absolute", "signed"])}),
    ),
    "relevance_rank_accuracy": (loc.relevance_rank_accuracy, ref.relevance_rank_accuracy, st.just({})),  # noqa: E501
    "top_k_intersection": (
        loc.top_k_intersection,
        ref.top_k_intersection,
        st.fixed_dictionaries({
            "k": st.sampled_from([1, 2, 0.1, 0.5, 1.0]),
            "concept_influence": st.booleans(),
        }),
    ),
    "attribution_localisation": (
        loc.attribution_localisation,
        ref.attribution_localisation,
        st.fixed_dictionaries({"weighted": st.booleans()}),
    ),
    "localization_auc": (loc.localization_auc, ref.localization_auc, st.just({})),
    "localization_iou": (
        loc.localization_iou,
        ref.localization_iou,
        st.one_of(
            st.fixed_dictionaries({"threshold_mode": st.just("max_fraction"),
                                   "threshold": st.sampled_from([0.2, 0.5, 1.0])}),
            st.fixed_dictionaries({"threshold_mode": st.just("quantile"),
                                   "threshold": st.sampled_from([0.0, 0.5, 0.9, 1.0])}),
            st.fixed_dictionaries({"threshold_mode": st.just("min_max"),
                                   "threshold": st.sampled_from([0.0, 0.2, 0.5, 1.0]),
                                   "empty_prediction": st.sampled_from(["zero", "nan"])}),
            st.fixed_dictionaries({"threshold_mode": st.just("otsu"),
                                   "empty_prediction": st.sampled_from(["zero", "nan"])}),
        ),
    ),
}


def _run(name, inputs, options, how):
    kernel, reference, _ = CASES[name]
    a, mask = inputs
    if name == "top_k_intersection" and isinstance(options["k"], int):
        features = a[0].numel() if how is None else a[0, 0].numel()
        options = {**options, "k": min(options["k"], features)}
    ours = kernel(a, mask, reduce_channels=how, **options)
    expected = per_sample(reference, a, mask, how=how, **options)
    assert_matches(ours, expected)
    return ours


@pytest.mark.parametrize("name", sorted(CASES))
@given(data=st.data())
def test_matches_reference_on_drawn_inputs(name, data):
    inputs = data.draw(xst.metric_inputs(mask_channels=st.sampled_from([1, -1])), label="inputs")
    options = data.draw(CASES[name][2], label="options")
    _run(name, inputs, options, data.draw(REDUCTIONS, label="reduce_channels"))


@pytest.mark.parametrize("name", sorted(CASES))
@given(data=st.data())
def test_matches_reference_on_edge_cases(name, data):
    """Ties, constant maps, empty and full masks, negative values, B=1 and 1-D to 3-D inputs."""
    inputs = data.draw(xst.metric_inputs(edge_cases=True), label="inputs")
    options = data.draw(CASES[name][2], label="options")
    _run(name, inputs, options, data.draw(REDUCTIONS, label="reduce_channels"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_empty_mask_gives_nan_and_leaves_other_samples_alone(name):
    a = torch.rand(3, 1, 5, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mask = torch.zeros(3, 1, 5, 6, dtype=torch.bool)
    mask[0, :, 1:3, 2:4] = True
    mask[2, :, 0, 0] = True
    options = {"k": 3} if name == "top_k_intersection" else {}
    out = CASES[name][0](a, mask, **options)
    assert math.isnan(out[1])
    assert not torch.isnan(out[[0, 2]]).any()
    assert out.dtype == a.dtype


@pytest.mark.parametrize("shape", [(1, 1, 7), (2, 3, 4, 5), (1, 2, 3, 4, 2)])
@pytest.mark.parametrize("name", sorted(CASES))
def test_one_to_three_spatial_dims_and_batch_of_one(name, shape):
    generator = torch.Generator().manual_seed(2)
    a = torch.randn(shape, generator=generator, dtype=torch.float64)
    mask = torch.rand((shape[0], 1) + shape[2:], generator=generator) > 0.5
    mask.reshape(shape[0], -1)[:, 0] = True
    options = {"k": 2} if name == "top_k_intersection" else {}
    _run(name, (a, mask), options, "sum")


def test_pointing_game_ties_rules():
    a = torch.zeros(1, 1, 2, 2)  # constant map: all four pixels tie
    mask = torch.tensor([[[[True, False], [False, False]]]])
    assert loc.pointing_game(a, mask, ties="fraction").item() == 0.25  # chance level
    assert loc.pointing_game(a, mask, ties="any").item() == 1.0
    assert loc.pointing_game(a, mask, ties="first").item() == 1.0
    assert loc.pointing_game(a, ~mask, ties="first").item() == 0.0


def test_pointing_game_tolerance_is_euclidean_in_pixels():
    a = torch.zeros(1, 1, 9, 9)
    a[0, 0, 4, 4] = 1.0
    mask = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    mask[0, 0, 7, 7] = True  # distance sqrt(18) = 4.24 from the peak
    assert loc.pointing_game(a, mask, tolerance=4.2).item() == 0.0
    assert loc.pointing_game(a, mask, tolerance=4.25).item() == 1.0


def test_rank_accuracy_breaks_ties_by_expectation_not_memory_order():
    a = torch.tensor([[[1.0, 1.0, 1.0, 1.0]]])
    mask = torch.tensor([[[False, False, True, True]]])
    # Quantus (argsort) would take the first two features and score 0; the expected score is 0.5.
    assert loc.relevance_rank_accuracy(a, mask).item() == 0.5
    assert loc.top_k_intersection(a, mask, k=1).item() == 0.5


def test_auc_equals_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    generator = torch.Generator().manual_seed(3)
    a = torch.randint(0, 4, (4, 1, 16, 16), generator=generator).double()  # heavy ties
    mask = torch.rand(4, 1, 16, 16, generator=generator) > 0.7
    ours = loc.localization_auc(a, mask)
    expected = [roc_auc_score(mask[i].ravel().numpy(), a[i].ravel().numpy()) for i in range(4)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)


def test_auc_is_exact_on_large_images():
    """Integer rank sums keep float32 inputs exact at 224 x 224."""
    from sklearn.metrics import roc_auc_score

    generator = torch.Generator().manual_seed(4)
    a = torch.rand(2, 1, 224, 224, generator=generator)
    mask = torch.zeros(2, 1, 224, 224, dtype=torch.bool)
    mask[:, :, 50:120, 30:200] = True
    ours = loc.localization_auc(a, mask)
    expected = [roc_auc_score(mask[i].ravel().numpy(), a[i].ravel().numpy()) for i in range(2)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-6)


def test_attribution_localisation_weighted_uniform_map_scores_one():
    a = torch.ones(2, 1, 6, 6)
    mask = torch.zeros(2, 1, 6, 6, dtype=torch.bool)
    mask[0, :, :2, :3] = True
    mask[1, :, :, :5] = True
    torch.testing.assert_close(loc.attribution_localisation(a, mask, weighted=True), torch.ones(2))


def test_iou_quantile_keeps_the_top_share():
    a = torch.arange(10.0).reshape(1, 1, 10)
    mask = torch.zeros(1, 1, 10, dtype=torch.bool)
    mask[..., 8:] = True
    # The 0.8-quantile is 7.2, so features 8 and 9 are kept: IoU 1.
    assert loc.localization_iou(a, mask, threshold=0.8, threshold_mode="quantile").item() == 1.0


def test_mask_with_channels_is_united_under_a_reduction():
    a = torch.tensor([[[[0.0, 1.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2)
    mask = torch.tensor([[[[False, False]], [[False, True]]]])
    assert loc.energy_pointing_game(a, mask).item() == 1.0
    assert loc.energy_pointing_game(a, mask, reduce_channels=None).item() == 0.5


# --- boxes_to_mask -------------------------------------------------------------------------------


@given(
    data=st.data(),
    size=st.tuples(st.integers(1, 7), st.integers(1, 9)),
    box_format=st.sampled_from(["xyxy", "xywh"]),
    rule=st.sampled_from(["center", "cover"]),
    inside=st.booleans(),
)
def test_boxes_to_mask_matches_pixel_loop(data, size, box_format, rule, inside):
    boxes = data.draw(xst.boxes(size=size, box_format=box_format, inside=inside))
    ours = loc.boxes_to_mask(boxes, size, box_format=box_format, rule=rule)
    assert ours.shape == (len(boxes), 1) + size and ours.dtype == torch.bool
    for i, sample in enumerate(boxes):
        expected = ref.boxes_to_mask(sample.numpy(), size, box_format=box_format, rule=rule)
        np.testing.assert_array_equal(ours[i, 0].numpy(), expected)


@pytest.mark.parametrize("rule", ["center", "cover"])
@pytest.mark.parametrize("box", [[0.0, 0.25, 0.25, 0.25], [1.5, 0.0, 1.5, 2.0],
                                 [1.0, 1.0, 1.0, 1.0]])
def test_boxes_to_mask_zero_area_box_covers_nothing(rule, box):
    """A box of zero width or height has no area: no pixel under either rule (a thorough hypothesis
    run found the cover rule marking one)."""
    assert not loc.boxes_to_mask([torch.tensor([box])], (3, 3), rule=rule).any()


def test_boxes_to_mask_integer_boxes_are_end_exclusive():
    mask = loc.boxes_to_mask(torch.tensor([[[2, 1, 5, 3]]]), (4, 7))[0, 0]
    assert mask.sum() == (5 - 2) * (3 - 1)
    assert mask[1:3, 2:5].all()
    assert not mask[3].any() and not mask[:, 5].any()


def test_boxes_to_mask_non_square_and_xywh_agree():
    xyxy = torch.tensor([[[10.0, 2.0, 30.0, 6.0], [0.0, 0.0, 1.0, 1.0]]])
    xywh = torch.tensor([[[10.0, 2.0, 20.0, 4.0], [0.0, 0.0, 1.0, 1.0]]])
    a = loc.boxes_to_mask(xyxy, (8, 40))
    b = loc.boxes_to_mask(xywh, (8, 40), box_format="xywh")
    assert a.shape == (1, 1, 8, 40)
    assert torch.equal(a, b)
    assert a.sum() == 20 * 4 + 1


def test_boxes_to_mask_padding_rows_and_empty_samples():
    boxes = [torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.zeros(0, 4)]
    out = loc.boxes_to_mask(boxes, (3, 3))
    assert out[0].sum() == 4 and out[1].sum() == 0
    padded = torch.tensor([[[0.0, 0.0, 2.0, 2.0]], [[math.nan] * 4]])
    assert torch.equal(loc.boxes_to_mask(padded, (3, 3)), out)


def test_boxes_to_mask_clips_boxes_outside_the_image():
    out = loc.boxes_to_mask(torch.tensor([[[-5.0, -5.0, 2.0, 100.0], [50.0, 50.0, 60.0, 60.0]]]),
                            (4, 4))
    assert out[0, 0, :, :2].all() and out.sum() == 8


@pytest.mark.parametrize(
    ("boxes", "size", "message"),
    [
        (torch.zeros(2, 4), (4, 4), "shape \\(B, N, 4\\)"),
        ([torch.zeros(2, 3)], (4, 4), "boxes\\[0\\]"),
        (torch.tensor([[[3.0, 0.0, 1.0, 2.0]]]), (4, 4), "non-negative width"),
        (torch.zeros(1, 1, 4), (4,), "size"),
        (torch.zeros(1, 1, 4), (0, 4), "size"),
        ("boxes", (4, 4), "tensor"),
    ],
)
def test_boxes_to_mask_errors(boxes, size, message):
    with pytest.raises(ValueError if not isinstance(boxes, str) else TypeError, match=message):
        loc.boxes_to_mask(boxes, size)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.bool])
@pytest.mark.parametrize("as_list", [False, True])
def test_boxes_to_mask_refuses_complex_and_bool_boxes(dtype, as_list):
    boxes = torch.tensor([[[0.0, 0.0, 2.0, 2.0]]]).to(dtype)
    with warnings.catch_warnings():
        # no "casting complex values discards the imaginary part" first
        warnings.simplefilter("error")
        with pytest.raises(xaiscore.DTypeError, match="real coordinates"):
            loc.boxes_to_mask([boxes[0]] if as_list else boxes, (4, 4))


@pytest.mark.parametrize("spatial", [(5,), (4, 6), (2, 3, 4)])
def test_pointing_game_tolerance_beyond_the_diagonal_is_the_whole_map(spatial):
    # No pixel is farther than the diagonal from a mask pixel: an infinite tolerance is a hit
    # wherever the mask is not empty (NaN for an empty mask), with a kernel no larger than the map.
    generator = torch.Generator().manual_seed(0)
    a = torch.rand((3, 1) + spatial, generator=generator)
    mask = torch.zeros((3, 1) + spatial, dtype=torch.bool)
    mask.view(3, -1)[0, 0] = True
    mask.view(3, -1)[1, -1] = True
    diagonal = math.sqrt(sum((side - 1) ** 2 for side in spatial))
    for tolerance in (diagonal, diagonal + 1e6, math.inf):
        score = loc.pointing_game(a, mask, tolerance=tolerance)
        assert score[:2].tolist() == [1.0, 1.0] and math.isnan(score[2])
