"""Similarity functions against scipy / scikit-image per sample, on drawn inputs and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import randomization as ref
from xaiscore import DTypeError, NonFiniteError, OptionError, ShapeError
from xaiscore.functional import similarity as sim
from xaiscore.testing import strategies as xst

FLAT = {
    "spearman": (sim.spearman_correlation, ref.spearman),
    "pearson": (sim.pearson_correlation, ref.pearson),
    "cosine": (sim.cosine_similarity, ref.cosine),
    "mse": (sim.mean_squared_error, ref.mse),
}


def per_sample(reference, a: torch.Tensor, b: torch.Tensor, **kwargs) -> np.ndarray:
    return np.array([reference(a[i].numpy(), b[i].numpy(), **kwargs) for i in range(a.shape[0])])


def assert_matches(ours: torch.Tensor, expected: np.ndarray,
                   atol: float | np.ndarray = 1e-6) -> None:
    assert ours.shape == expected.shape
    close = np.isclose(ours.numpy(), expected, atol=atol, rtol=1e-6, equal_nan=True)
    assert close.all(), f"ours {ours.numpy()[~close]} != expected {expected[~close]} (atol {atol})"


@st.composite
def pairs(draw, shape=None, edge_cases: bool = False):
    """Two maps of one shape; ``b`` independent, equal to ``a``, a monotone transform of it, or a
    tied/constant map."""
    dims = tuple(draw(xst.shapes())) if shape is None else tuple(draw(shape))
    kwargs = dict(ties=st.booleans(), constant=st.booleans()) if edge_cases else {}
    a = draw(xst.attributions(shape=dims, **kwargs))
    relation = draw(st.sampled_from(["independent", "same", "monotone", "negated", "noisy"]))
    if relation == "independent":
        b = draw(xst.attributions(shape=dims, **kwargs))
    elif relation == "same":
        b = a.clone()
    elif relation == "monotone":
        b = torch.exp(a / 4)
    elif relation == "negated":
        b = -2 * a + 1
    else:
        b = a + draw(xst.attributions(shape=dims, min_value=-1, max_value=1))
    return a, b


@pytest.mark.parametrize("name", sorted(FLAT))
@given(data=st.data())
def test_flat_similarities_match_scipy(name, data):
    a, b = data.draw(pairs(), label="pair")
    kernel, reference = FLAT[name]
    assert_matches(kernel(a, b), per_sample(reference, a, b))


@pytest.mark.parametrize("name", sorted(FLAT))
@given(data=st.data())
def test_flat_similarities_on_ties_and_constants(name, data):
    a, b = data.draw(pairs(edge_cases=True), label="pair")
    kernel, reference = FLAT[name]
    assert_matches(kernel(a, b), per_sample(reference, a, b))


def test_spearman_uses_average_ranks_for_ties():
    a = torch.tensor([[1.0, 2.0, 2.0, 3.0, 3.0, 3.0]], dtype=torch.float64)
    b = torch.tensor([[6.0, 5.0, 4.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    from scipy.stats import spearmanr

    expected = spearmanr(a[0].numpy(), b[0].numpy())[0]
    assert sim.spearman_correlation(a, b).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", ["spearman", "pearson", "cosine"])
def test_undefined_correlations_are_nan_per_sample(name):
    kernel = FLAT[name][0]
    a = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [2.0, 2.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([[3.0, 1.0, 2.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], dtype=torch.float64)
    out = kernel(a, b)
    assert not math.isnan(out[0])
    assert math.isnan(out[1])  # all zero: constant and zero norm
    assert math.isnan(out[2]) == (name != "cosine")  # constant but non-zero: cosine is defined


@settings(max_examples=25)
@given(
    data=st.data(),
    window=st.sampled_from(["uniform", "gaussian"]),
    win_size=st.sampled_from([None, 3, 5, 7]),
    use_sample_covariance=st.booleans(),
)
def test_windowed_ssim_matches_skimage(data, window, win_size, use_sample_covariance):
    spatial_dims = data.draw(st.integers(1, 3), label="spatial_dims")
    smallest = {None: 7 if window == "uniform" else 11}.get(win_size, win_size)
    high = max(smallest, 13 if spatial_dims == 1 else 9 if spatial_dims == 2 else smallest)
    shape = xst.shapes(spatial_dims=spatial_dims, side=st.integers(smallest, high),
                       batch_size=st.integers(1, 2),
                       channels=st.integers(1, 2))
    a, b = data.draw(pairs(shape=shape, edge_cases=data.draw(st.booleans())), label="pair")
    options = dict(window=window, win_size=win_size, use_sample_covariance=use_sample_covariance)
    assert_matches(sim.ssim(a, b, **options), per_sample(ref.ssim, a, b, **options))


@settings(max_examples=25)
@given(data=st.data(), win_size=st.sampled_from([None, 3, 5]),
       data_range=st.sampled_from([None, 1.0, 4.0]))
def test_flattened_ssim_matches_skimage(data, win_size, data_range):
    shape = xst.shapes(side=st.integers(2, 5)).filter(lambda s: math.prod(s[1:]) >= 7)
    a, b = data.draw(pairs(shape=shape, edge_cases=data.draw(st.booleans())), label="pair")
    out = sim.ssim(a, b, flatten=True, win_size=win_size, data_range=data_range)
    expected = per_sample(ref.ssim, a, b, flatten=True, win_size=win_size, data_range=data_range)
    assert_matches(out, expected, atol=ssim_cancellation_tolerance(a, b, data_range))


def ssim_cancellation_tolerance(a: torch.Tensor, b: torch.Tensor,
                                data_range: float | None) -> np.ndarray:
    """Absolute tolerance per sample for comparing with scikit-image's SSIM.

    scikit-image forms variances as E[x^2] - E[x]^2, which loses about log10(m^2 / (v + C2))
    digits on near-constant maps (m the mean, v the variance, C2 = (0.03 L)^2); the kernel
    centres the maps first. The tolerance grows with that condition number.
    """
    flat_a, flat_b = a.flatten(1).double(), b.flatten(1).double()
    if data_range is None:
        both = torch.cat([flat_a, flat_b], dim=1)
        data_range_t = both.amax(dim=1) - both.amin(dim=1)
    else:
        data_range_t = torch.full((a.shape[0],), float(data_range), dtype=torch.float64)
    scale = flat_a.square().mean(dim=1) + flat_b.square().mean(dim=1)
    spread = (0.03 * data_range_t).square() + flat_a.var(dim=1) + flat_b.var(dim=1)
    condition = (scale / spread).nan_to_num(nan=0.0, posinf=0.0)
    return (1e-6 + 1e-14 * condition).numpy()


def test_ssim_of_equal_constants_is_nan_and_of_equal_maps_is_one():
    a = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a[1] = 3.0
    out = sim.ssim(a, a.clone())
    assert out[0].item() == pytest.approx(1.0) and math.isnan(out[1])
    assert sim.ssim(a, a.clone(), data_range=1.0).tolist() == pytest.approx([1.0, 1.0])


def test_ssim_accepts_a_per_sample_data_range():
    g = torch.Generator().manual_seed(1)
    a, b = (torch.rand(2, 1, 8, 8, generator=g, dtype=torch.float64),
            torch.rand(2, 1, 8, 8, generator=g, dtype=torch.float64))
    together = sim.ssim(a, b, data_range=torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert together[0] == sim.ssim(a[:1], b[:1], data_range=1.0)[0]
    assert together[1] == sim.ssim(a[1:], b[1:], data_range=2.0)[0]


@pytest.mark.parametrize("name", sorted(FLAT) + ["ssim", "ssim_flat"])
def test_float32_agrees_with_float64_and_batch_split(name):
    g = torch.Generator().manual_seed(3)
    a = torch.rand(3, 2, 8, 8, generator=g, dtype=torch.float64)
    b = a + 0.5 * torch.rand(3, 2, 8, 8, generator=g, dtype=torch.float64)
    fn = sim.SIMILARITIES[name]
    full = fn(a, b)
    assert full.dtype == torch.float64
    single = fn(a.float(), b.float())
    assert single.dtype == torch.float32
    np.testing.assert_allclose(single.double().numpy(), full.numpy(), rtol=1e-4, atol=1e-5)
    split = torch.cat([fn(a[:1], b[:1]), fn(a[1:], b[1:])])
    np.testing.assert_allclose(split.numpy(), full.numpy(), rtol=1e-12, atol=1e-12)


def test_resolve_similarity_by_name_and_callable():
    assert sim.resolve_similarity("pearson") is sim.pearson_correlation
    custom = lambda a, b: (a - b).abs().flatten(1).amax(1)  # noqa: E731
    assert sim.resolve_similarity(custom) is custom
    with pytest.raises(OptionError, match="similarity"):
        sim.resolve_similarity("kendall")


@pytest.mark.parametrize("name", sorted(FLAT))
def test_input_errors(name):
    kernel = FLAT[name][0]
    a = torch.zeros(2, 1, 4)
    with pytest.raises(ShapeError, match="shape of `a`"):
        kernel(a, torch.zeros(2, 1, 5))
    with pytest.raises(DTypeError, match="floating-point"):
        kernel(a, torch.zeros(2, 1, 4, dtype=torch.long))
    with pytest.raises(DTypeError, match="torch.Tensor"):
        kernel(a, np.zeros((2, 1, 4)))
    with pytest.raises(ShapeError, match="at least one feature axis"):
        kernel(torch.zeros(3), torch.zeros(3))
    bad = torch.zeros(2, 1, 4)
    bad[1, 0, 2] = math.nan
    with pytest.raises(NonFiniteError):
        kernel(a, bad)
    assert kernel(a, bad, validate=False).shape == (2,)


def test_ssim_errors():
    a = torch.zeros(1, 1, 6, 6)
    with pytest.raises(OptionError, match="at least `win_size` = 7"):
        sim.ssim(a, a)
    with pytest.raises(OptionError, match="odd"):
        sim.ssim(a, a, win_size=4)
    with pytest.raises(OptionError, match="window"):
        sim.ssim(a, a, window="box", win_size=3)
    with pytest.raises(OptionError, match="data_range"):
        sim.ssim(a, a, win_size=3, data_range=-1.0)
    with pytest.raises(OptionError, match="win_size"):
        sim.ssim(a, a, win_size=1)
    with pytest.raises(ShapeError):
        sim.ssim(torch.zeros(1, 36), torch.zeros(1, 36), win_size=3)  # no channel and spatial axes
