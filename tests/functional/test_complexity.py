"""Complexity kernels against their per-sample references, on drawn inputs and edge cases."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import xaiscore
from tests.reference import complexity as ref
from xaiscore.testing import strategies as xst

# The module, not the function of the same name that `xaiscore.functional` exports.
cx = importlib.import_module("xaiscore.functional.complexity")

REDUCTIONS = st.sampled_from(["sum", "mean", "max_abs", None])
KERNELS = {
    "sparseness": (cx.sparseness, ref.sparseness),
    "complexity": (cx.complexity, ref.complexity),
}


def per_sample(reference, a: torch.Tensor, **kwargs) -> np.ndarray:
    return np.array([reference(a[i].numpy(), **kwargs) for i in range(a.shape[0])])


def assert_matches(ours: torch.Tensor, expected: np.ndarray, atol: float = 1e-6) -> None:
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours.numpy(), expected, atol=atol, rtol=1e-6, equal_nan=True)


def attributions(**kwargs):
    return xst.attributions(
        nonnegative=st.booleans(), ties=st.booleans(), constant=st.booleans(), **kwargs
    )


# --- sparseness and complexity -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KERNELS))
@given(a=attributions(), how=REDUCTIONS)
def test_matches_reference_on_drawn_inputs(name, a, how):
    kernel, reference = KERNELS[name]
    assert_matches(kernel(a, reduce_channels=how), per_sample(reference, a, how=how))


@pytest.mark.parametrize("name", sorted(KERNELS))
@given(a=attributions(shape=xst.shapes(batch_size=1, side=st.integers(1, 12))), how=REDUCTIONS)
def test_matches_reference_on_a_batch_of_one(name, a, how):
    kernel, reference = KERNELS[name]
    assert_matches(kernel(a, reduce_channels=how), per_sample(reference, a, how=how))


@pytest.mark.parametrize("shape", [(1, 1, 7), (2, 3, 4, 5), (1, 2, 3, 4, 2), (3, 1, 16, 16)])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_one_to_three_spatial_dims(name, shape):
    kernel, reference = KERNELS[name]
    a = torch.randn(shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for how in ["sum", "mean", "max_abs", None]:
        assert_matches(kernel(a, reduce_channels=how), per_sample(reference, a, how=how))


def test_all_zero_map_is_nan_and_leaves_other_samples_alone():
    a = torch.rand(3, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a[1] = 0.0
    for kernel in (cx.sparseness, cx.complexity):
        out = kernel(a)
        assert math.isnan(out[1]) and not torch.isnan(out[[0, 2]]).any()


@pytest.mark.parametrize("n", [1, 2, 5, 64])
def test_constant_map(n):
    a = torch.full((2, 1, n), -3.5, dtype=torch.float64)
    torch.testing.assert_close(cx.sparseness(a), torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(cx.complexity(a), torch.full((2,), math.log(n), dtype=torch.float64))
    torch.testing.assert_close(cx.effective_complexity(a),
                               torch.full((2,), float(n), dtype=torch.float64))


@pytest.mark.parametrize("n", [1, 2, 9, 100])
def test_single_non_zero_value(n):
    a = torch.zeros(1, 1, n, dtype=torch.float64)
    a[0, 0, n // 2] = -2.0
    assert cx.sparseness(a).item() == pytest.approx((n - 1) / n, abs=1e-12)
    assert cx.complexity(a).item() == 0.0
    assert cx.effective_complexity(a).item() == 1.0


def test_known_values():
    a = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]], dtype=torch.float64)
    # Gini of (1, 2, 3, 4): sum_ij |xi - xj| / (2 n^2 mean) = 20 / (2 * 16 * 2.5) = 0.25.
    assert cx.sparseness(a).item() == pytest.approx(0.25, abs=1e-15)
    p = np.array([1, 2, 3, 4]) / 10
    assert cx.complexity(a).item() == pytest.approx(float(-(p * np.log(p)).sum()), abs=1e-15)


def test_channels_are_features_by_default():
    a = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]], dtype=torch.float64)  # (1, 2, 1, 2)
    assert cx.complexity(a).item() == pytest.approx(math.log(2))  # two non-zero of four values
    assert cx.sparseness(a).item() == pytest.approx(0.5)
    assert cx.complexity(a, reduce_channels="sum").item() == pytest.approx(math.log(2))
    # a uniform pixel map
    assert cx.sparseness(a, reduce_channels="sum").item() == pytest.approx(0.0)


def test_signed_channels_cancel_under_sum_but_not_under_max_abs():
    a = torch.tensor([[[[1.0, 2.0]], [[-1.0, 0.0]]]], dtype=torch.float64)
    assert cx.complexity(a, reduce_channels="sum").item() == 0.0  # pixel map (0, 2)
    assert cx.complexity(a, reduce_channels="max_abs").item() == pytest.approx(
        float(-(np.array([1, 2]) / 3 * np.log(np.array([1, 2]) / 3)).sum())
    )


# --- effective complexity ------------------------------------------------------------------------


def effective_reference(a: torch.Tensor, *, eps: float, normalise, how) -> np.ndarray:
    reduced = [ref.reduce_map(a[i].numpy(), how) for i in range(a.shape[0])]
    if normalise == "batch":
        scales = [max(np.abs(r).max() for r in reduced)] * len(reduced)
    elif normalise == "sample":
        scales = [np.abs(r).max() for r in reduced]
    else:
        scales = [None] * len(reduced)
    return np.array([
        ref.effective_complexity(a[i].numpy(), eps=eps, scale=scales[i], how=how)
        for i in range(a.shape[0])
    ])


@given(
    a=attributions(),
    how=REDUCTIONS,
    eps=st.sampled_from([0.0, 1e-5, 0.1, 0.5, 0.99, 1.0, 3.0]),
    normalise=st.sampled_from(["sample", "batch", None]),
)
def test_effective_complexity_matches_reference(a, how, eps, normalise):
    ours = cx.effective_complexity(a, eps=eps, normalise=normalise, reduce_channels=how)
    assert ours.dtype == a.dtype
    np.testing.assert_array_equal(ours.numpy(),
                                  effective_reference(a, eps=eps, normalise=normalise, how=how))


def test_effective_complexity_counts_strictly_above_eps():
    a = torch.tensor([[[0.5, 1.0, 0.25, 0.0]]], dtype=torch.float64)
    assert cx.effective_complexity(a, eps=0.5).item() == 1.0
    assert cx.effective_complexity(a, eps=0.0).item() == 3.0
    # all-zero map: no feature counts
    assert cx.effective_complexity(torch.zeros(1, 1, 4)).item() == 0.0


def test_effective_complexity_normalisation_modes():
    a = torch.tensor([[[1.0, 0.5]], [[100.0, 0.1]]], dtype=torch.float64)
    # per sample: (1, .5), (1, .001)
    assert cx.effective_complexity(a, eps=0.2).tolist() == [2.0, 1.0]
    assert cx.effective_complexity(a, eps=0.2, normalise="batch").tolist() == [0.0, 1.0]  # / 100
    assert cx.effective_complexity(a, eps=0.2, normalise=None).tolist() == [2.0, 1.0]


# --- errors --------------------------------------------------------------------------------------

ALL = [cx.sparseness, cx.complexity, cx.effective_complexity]


@pytest.mark.parametrize("kernel", ALL)
def test_errors(kernel):
    with pytest.raises(xaiscore.DTypeError, match="floating-point"):
        kernel(torch.ones(2, 1, 3, dtype=torch.int64))
    with pytest.raises(xaiscore.DTypeError, match="torch.Tensor"):
        kernel(np.ones((2, 1, 3)))
    with pytest.raises(xaiscore.ShapeError, match="spatial dimension"):
        kernel(torch.ones(2, 3))
    with pytest.raises(xaiscore.ShapeError, match="empty batch"):
        kernel(torch.ones(0, 1, 3))
    nan = torch.ones(2, 1, 3)
    nan[1, 0, 1] = math.nan
    with pytest.raises(xaiscore.NonFiniteError, match="finite"):
        kernel(nan)
    kernel(nan, validate=False)  # the data check is skipped; no error
    with pytest.raises(xaiscore.OptionError, match="reduce_channels"):
        kernel(torch.ones(2, 1, 3), reduce_channels="median")


def test_effective_complexity_option_errors():
    a = torch.ones(2, 1, 3)
    with pytest.raises(xaiscore.OptionError, match="eps"):
        cx.effective_complexity(a, eps=-1e-3)
    with pytest.raises(xaiscore.DTypeError, match="eps"):
        cx.effective_complexity(a, eps="small")
    with pytest.raises(xaiscore.OptionError, match="normalise"):
        cx.effective_complexity(a, normalise="global")
