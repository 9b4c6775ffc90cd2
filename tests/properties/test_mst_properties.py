"""Properties of MST compactness: batch composition, equivariance, the symmetries of the grid,
translation and scale invariance, dtypes, and no side effects."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xaiscore.functional import _mst, mst_compactness
from xaiscore.testing import strategies as xst

MAPS = xst.attributions(
    shape=xst.shapes(spatial_dims=2, side=st.integers(1, 14), channels=st.integers(1, 3)),
    ties=st.booleans(),
    nonnegative=st.booleans(),
)
KS = st.sampled_from([1, 4, 5, 13, 20])


def close(x: torch.Tensor, y: torch.Tensor, rtol: float = 1e-12) -> None:
    np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=rtol, atol=0, equal_nan=True)


@given(a=MAPS, split=st.integers(0, 3), k=KS)
def test_batch_split_invariance(a, split, k):
    split = min(split, a.shape[0])
    whole = mst_compactness(a, k=k)
    parts = [mst_compactness(a[:split], k=k)] if split else []
    if split < a.shape[0]:
        parts.append(mst_compactness(a[split:], k=k))
    close(whole, torch.cat(parts))


@given(a=MAPS, seed=st.integers(0, 2**16))
def test_permutation_equivariance_over_samples(a, seed):
    permutation = torch.randperm(a.shape[0], generator=torch.Generator().manual_seed(seed))
    close(mst_compactness(a[permutation]), mst_compactness(a)[permutation])


@given(a=MAPS, k=KS, symmetry=st.sampled_from(["flip rows", "flip columns", "transpose", "rotate"]))
def test_invariance_under_the_symmetries_of_the_grid(a, k, symmetry):
    """Distances, the hull area, the tie-inclusive k-NN graph and the diagonal are all unchanged."""
    moved = {
        "flip rows": lambda t: t.flip(2),
        "flip columns": lambda t: t.flip(3),
        "transpose": lambda t: t.transpose(2, 3),
        "rotate": lambda t: torch.rot90(t, 1, (2, 3)),
    }[symmetry](a)
    close(mst_compactness(moved, k=k), mst_compactness(a, k=k), rtol=1e-9)


@given(a=MAPS, dy=st.integers(0, 5), dx=st.integers(0, 5))
def test_translation_invariance_on_a_fixed_canvas(a, dy, dx):
    """The same map at two places on the same zero canvas: same values, same distances, same score.
    """
    b, c, h, w = a.shape
    here = torch.zeros(b, c, h + 5, w + 5, dtype=a.dtype)
    there = torch.zeros_like(here)
    here[:, :, :h, :w] = a
    there[:, :, dy : dy + h, dx : dx + w] = a
    close(mst_compactness(there), mst_compactness(here), rtol=1e-9)


@given(a=MAPS, scale=st.sampled_from([2.0**-20, 0.25, 8.0, 2.0**30]),
       sign=st.sampled_from([1.0, -1.0]))
def test_scale_and_sign_invariance(a, scale, sign):
    """Only the order of |a| matters (powers of two scale exactly)."""
    close(mst_compactness(a * (sign * scale)), mst_compactness(a))


@given(a=MAPS)
def test_mean_and_sum_reductions_select_the_same_points(a):
    close(mst_compactness(a, reduce_channels="mean"), mst_compactness(a, reduce_channels="sum"),
          rtol=1e-9)


@given(a=MAPS, k=KS, threshold=st.sampled_from([0.0, 50.0, 80.0, 100.0]))
def test_positive_where_defined_and_nan_exactly_below_two_points(a, k, threshold):
    out = mst_compactness(a, k=k, threshold=threshold)
    points = _mst.salient_points(a.abs().sum(1).double(), threshold).reshape(a.shape[0], -1).sum(1)
    assert torch.equal(torch.isnan(out), points < 2)
    assert (out[points >= 2] > 0).all()


@given(a=xst.attributions(shape=xst.shapes(spatial_dims=2, side=st.integers(1, 12)),
                          ties=st.booleans()))
def test_float32_agrees_with_float64(a):
    a = torch.round(a * 8) / 8  # values exact in both dtypes: the same salient points
    out32, out64 = mst_compactness(a.float()), mst_compactness(a.double())
    assert out32.dtype == torch.float32 and out64.dtype == torch.float64
    np.testing.assert_allclose(out32.double().numpy(), out64.numpy(), rtol=1e-6, equal_nan=True)


@settings(max_examples=20)
@given(a=MAPS)
def test_inputs_are_not_mutated(a):
    copy = a.clone()
    mst_compactness(a)
    assert torch.equal(a, copy)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_works_on_tensors_that_require_grad(requires_grad):
    a = torch.rand(2, 1, 6, 7, dtype=torch.float64, requires_grad=requires_grad)
    out = mst_compactness(a)
    assert not out.requires_grad and torch.isfinite(out).all()
