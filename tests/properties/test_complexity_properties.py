"""Properties of the complexity kernels: batch composition, equivariance, invariances, bounds,
dtypes."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from xaiscore.testing import strategies as xst

cx = importlib.import_module("xaiscore.functional.complexity")

KERNELS = {
    "sparseness": cx.sparseness,
    "complexity": cx.complexity,
    "effective_complexity": cx.effective_complexity,
}
REDUCTIONS = st.sampled_from(["sum", "mean", "max_abs", None])
DRAWN = xst.attributions(nonnegative=st.booleans(), ties=st.booleans(), constant=st.booleans())


def close(x: torch.Tensor, y: torch.Tensor, atol: float = 1e-9) -> None:
    np.testing.assert_allclose(x.numpy(), y.numpy(), atol=atol, rtol=1e-7, equal_nan=True)


@pytest.mark.parametrize("name", sorted(KERNELS))
@given(a=DRAWN, split=st.integers(0, 3), how=REDUCTIONS)
def test_batch_split_invariance(name, a, split, how):
    split = min(split, a.shape[0])
    kernel = KERNELS[name]
    whole = kernel(a, reduce_channels=how)
    parts = [kernel(a[:split], reduce_channels=how)] if split else []
    if split < a.shape[0]:
        parts.append(kernel(a[split:], reduce_channels=how))
    close(whole, torch.cat(parts))


@pytest.mark.parametrize("name", sorted(KERNELS))
@given(a=DRAWN, seed=st.integers(0, 2**16))
def test_permutation_equivariance_over_samples(name, a, seed):
    permutation = torch.randperm(a.shape[0], generator=torch.Generator().manual_seed(seed))
    kernel = KERNELS[name]
    close(kernel(a[permutation]), kernel(a)[permutation])


@pytest.mark.parametrize("name", sorted(KERNELS))
@given(a=DRAWN, seed=st.integers(0, 2**16))
def test_invariance_to_permuting_features_within_a_sample(name, a, seed):
    """All three scores see a sample as a multiset of values: the layout does not matter."""
    flat = a.reshape(a.shape[0], -1)
    permutation = torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(seed))
    shuffled = flat[:, permutation].reshape(a.shape)
    kernel = KERNELS[name]
    close(kernel(shuffled), kernel(a), atol=1e-12)


@pytest.mark.parametrize("name", sorted(KERNELS))
@given(a=DRAWN, seed=st.integers(0, 2**16), how=st.sampled_from(["sum", "mean", "max_abs"]))
def test_invariance_to_permuting_pixels_under_a_channel_reduction(name, a, seed, how):
    pixels = a.reshape(a.shape[0], a.shape[1], -1)
    permutation = torch.randperm(pixels.shape[2], generator=torch.Generator().manual_seed(seed))
    shuffled = pixels[:, :, permutation].reshape(a.shape)
    kernel = KERNELS[name]
    close(kernel(shuffled, reduce_channels=how), kernel(a, reduce_channels=how), atol=1e-12)


@pytest.mark.parametrize("name", sorted(KERNELS))
@given(a=DRAWN, scale=st.sampled_from([2.0**-10, 0.5, 4.0, 1024.0]),
       sign=st.sampled_from([1.0, -1.0]))
def test_scale_and_sign_invariance(name, a, scale, sign):
    """|a| is scored, and each sample is normalised (Gini, entropy) or divided by its own maximum.

    Powers of two scale exactly, so effective complexity's threshold sees the same values.
    """
    kernel = KERNELS[name]
    close(kernel(a * (sign * scale)), kernel(a), atol=1e-9)


@given(a=DRAWN, how=REDUCTIONS)
def test_bounds(a, how):
    n = a[0].numel() if how is None else a[0, 0].numel()
    gini = cx.sparseness(a, reduce_channels=how)
    entropy = cx.complexity(a, reduce_channels=how)
    count = cx.effective_complexity(a, reduce_channels=how)
    empty = a.reshape(a.shape[0], -1).abs().amax(1) == 0
    assert torch.equal(torch.isnan(gini), empty) and torch.equal(torch.isnan(entropy), empty)
    assert ((gini[~empty] >= 0) & (gini[~empty] <= 1 - 1 / n + 1e-12)).all()
    assert ((entropy[~empty] >= 0) & (entropy[~empty] <= math.log(n) + 1e-12)).all()
    assert ((count >= 0) & (count <= n) & (count == count.round())).all()


@pytest.mark.parametrize("name", sorted(KERNELS))
@given(a=xst.attributions(ties=st.booleans(), constant=st.booleans()), how=REDUCTIONS)
def test_float32_agrees_with_float64(name, a, how):
    a = torch.round(a * 8) / 8  # values exact in both dtypes
    kernel = KERNELS[name]
    out32, out64 = kernel(a.float(), reduce_channels=how), kernel(a.double(), reduce_channels=how)
    assert out32.dtype == torch.float32 and out64.dtype == torch.float64
    np.testing.assert_allclose(out32.double().numpy(), out64.numpy(), rtol=1e-5, atol=1e-5,
                               equal_nan=True)


@pytest.mark.parametrize("name", sorted(KERNELS))
@given(a=DRAWN, how=REDUCTIONS)
def test_inputs_are_not_mutated(name, a, how):
    copy = a.clone()
    KERNELS[name](a, reduce_channels=how)
    assert torch.equal(a, copy)


@given(a=DRAWN)
def test_effective_complexity_per_sample_ignores_batch_mates_but_batch_mode_does_not(a):
    """A sample's score never depends on its batch-mates by default; ``normalise="batch"`` (Quantus)
    does."""
    louder = torch.cat([a, 1000 * a[:1] + 1000])
    close(cx.effective_complexity(louder)[: a.shape[0]], cx.effective_complexity(a))
    batch = cx.effective_complexity(louder, normalise="batch")[: a.shape[0]]
    assert (batch <= cx.effective_complexity(a, normalise="batch")).all()
