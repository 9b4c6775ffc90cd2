"""Properties of the localization kernels: batch composition, equivariance, bounds, invariances,
dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from xaiscore.functional import localization as loc
from xaiscore.testing import strategies as xst

KERNELS = {
    "pointing_game": loc.pointing_game,
    "energy_pointing_game": loc.energy_pointing_game,
    "relevance_mass_accuracy": loc.relevance_mass_accuracy,
    "relevance_rank_accuracy": loc.relevance_rank_accuracy,
    "top_k_intersection": lambda a, m, **kw: loc.top_k_intersection(a, m, k=0.25, **kw),
    "attribution_localisation": loc.attribution_localisation,
    "localization_auc": loc.localization_auc,
    "localization_iou": loc.localization_iou,
}
# Scores that depend on the map only through the order of its values.
RANK_BASED = ["pointing_game", "relevance_rank_accuracy", "top_k_intersection", "localization_auc"]
# Scores invariant under multiplying the map by a positive constant.
SCALE_INVARIANT = [*RANK_BASED, "energy_pointing_game", "relevance_mass_accuracy",
                   "attribution_localisation", "localization_iou"]
BOUNDED = list(KERNELS)  # all in [0, 1] with default options


def close(x: torch.Tensor, y: torch.Tensor, atol: float = 1e-9) -> None:
    np.testing.assert_allclose(x.numpy(), y.numpy(), atol=atol, rtol=1e-7, equal_nan=True)


@pytest.mark.parametrize("name", sorted(KERNELS))
@given(inputs=xst.metric_inputs(edge_cases=True), split=st.integers(0, 3))
def test_batch_split_invariance(name, inputs, split):
    a, mask = inputs
    split = min(split, a.shape[0])
    kernel = KERNELS[name]
    whole = kernel(a, mask)
    parts = [kernel(a[:split], mask[:split])] if split else []
    if split < a.shape[0]:
        parts.append(kernel(a[split:], mask[split:]))
    close(whole, torch.cat(parts))


@pytest.mark.parametrize("name", sorted(KERNELS))
@given(inputs=xst.metric_inputs(edge_cases=True), seed=st.integers(0, 2**16))
def test_permutation_equivariance(name, inputs, seed):
    a, mask = inputs
    permutation = torch.randperm(a.shape[0], generator=torch.Generator().manual_seed(seed))
    kernel = KERNELS[name]
    close(kernel(a[permutation], mask[permutation]), kernel(a, mask)[permutation])


@pytest.mark.parametrize("name", BOUNDED)
@given(inputs=xst.metric_inputs(edge_cases=True))
def test_bounds(name, inputs):
    out = KERNELS[name](*inputs)
    finite = out[~torch.isnan(out)]
    assert ((finite >= -1e-12) & (finite <= 1 + 1e-12)).all()


@pytest.mark.parametrize("name", RANK_BASED)
@given(inputs=xst.metric_inputs(ties=st.booleans()), scale=st.floats(0.01, 100),
       shift=st.floats(-5, 5))
def test_rank_based_scores_ignore_increasing_transforms(name, inputs, scale, shift):
    a, mask = inputs
    kernel = KERNELS[name]
    # Reduce channels first: a monotone transform of the pixel map, not of each channel. Values on a
    # 1/8 grid keep distinct values distinct after the transform (floats near 0 would collapse).
    pixel_map = torch.round(a.sum(1, keepdim=True) * 8) / 8
    transformed = torch.exp(pixel_map / 10) * scale + shift
    close(kernel(transformed, mask), kernel(pixel_map, mask), atol=1e-7)


@pytest.mark.parametrize("name", SCALE_INVARIANT)
@given(inputs=xst.metric_inputs(ties=st.booleans()),
       scale=st.sampled_from([0.125, 0.5, 4.0, 1024.0]))
def test_positive_scaling_invariance(name, inputs, scale):
    a, mask = inputs
    kernel = KERNELS[name]
    close(kernel(a * scale, mask), kernel(a, mask), atol=1e-9)


@pytest.mark.parametrize("name", sorted(KERNELS))
@given(inputs=xst.metric_inputs(ties=st.booleans()))
def test_float32_agrees_with_float64(name, inputs):
    a, mask = inputs
    a = torch.round(a * 8) / 8  # values exact in both dtypes, so ties are the same
    kernel = KERNELS[name]
    out32, out64 = kernel(a.float(), mask), kernel(a.double(), mask)
    assert out32.dtype == torch.float32 and out64.dtype == torch.float64
    np.testing.assert_allclose(out32.double().numpy(), out64.numpy(), rtol=1e-5, atol=1e-5,
                               equal_nan=True)


@pytest.mark.parametrize("name", sorted(KERNELS))
@given(inputs=xst.metric_inputs())
def test_inputs_are_not_mutated(name, inputs):
    a, mask = inputs
    a_copy, mask_copy = a.clone(), mask.clone()
    KERNELS[name](a, mask)
    assert torch.equal(a, a_copy) and torch.equal(mask, mask_copy)


@given(inputs=xst.metric_inputs())
def test_perfect_map_scores_one(inputs):
    """A map equal to the mask is a perfect localization under every metric."""
    _, mask = inputs
    perfect = mask.double()
    if mask.reshape(mask.shape[0], -1).all(1).any():
        return  # AUC is undefined for a full mask
    for name in ["pointing_game", "energy_pointing_game", "relevance_mass_accuracy",
                 "relevance_rank_accuracy", "attribution_localisation", "localization_auc", "localization_iou"]:  # noqa: E501
        torch.testing.assert_close(KERNELS[name](perfect, mask),
                                   torch.ones(mask.shape[0], dtype=torch.float64))
