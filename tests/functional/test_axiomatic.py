"""Completeness and non-sensitivity against per-sample references, Quantus and its bugs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import road_subsets_axiomatic as ref
from xaiscore import OptionError
from xaiscore._engine.batching import ModelOutputError
from xaiscore._checks import NonFiniteError
from xaiscore.functional import axiomatic as ax
from xaiscore.testing import strategies as xst

SMALL = xst.shapes(batch_size=st.integers(1, 3), channels=st.integers(1, 2),
                   spatial_dims=st.integers(1, 3),
                   side=st.integers(1, 4))
BASELINES = st.sampled_from(["zeros", "min", "mean", 0.5])


def sparse_linear(shape, classes=3, seed=0, dtype=torch.float64, zero_fraction=0.5):
    """A linear model that ignores a random share of its inputs (their weights are 0 for every
    class)."""
    generator = torch.Generator().manual_seed(seed)
    features = int(np.prod(shape))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(features, classes)).to(dtype)
    with torch.no_grad():
        weight = torch.randn(classes, features, generator=generator, dtype=dtype)
        weight[:, torch.rand(features, generator=generator) < zero_fraction] = 0.0
        model[1].weight.copy_(weight)
        model[1].bias.copy_(torch.randn(classes, generator=generator, dtype=dtype))
    return model.eval()


# --- completeness ---------------------------------------------------------------------------------


@settings(max_examples=30)
@given(data=st.data())
def test_completeness_matches_reference(data):
    case = data.draw(xst.model_inputs(shape=SMALL), label="case")
    baseline = data.draw(BASELINES, label="baseline")
    rtol = data.draw(st.sampled_from([0.0, 0.05, 0.5]), label="rtol")
    atol = data.draw(st.sampled_from([0.0, 1e-6, 0.3]), label="atol")
    softmax = data.draw(st.booleans(), label="softmax")
    ours = ax.completeness(case.forward_fn, case.x, case.a, case.target, baseline=baseline,
                           rtol=rtol, atol=atol,
                           softmax=softmax)
    for i in range(len(case.x)):
        expected = ref.completeness(case.forward_fn, case.x[i].numpy(), case.a[i].numpy(),
                                    int(case.target[i]),
                                    baseline=baseline, rtol=rtol, atol=atol, softmax=softmax)
        assert ours[i].item() == expected


def test_completeness_of_exact_and_scaled_attributions():
    """IG of a linear model is exactly complete; 3 % off passes at rtol 0.05, 10 % off does not."""
    generator = torch.Generator().manual_seed(1)
    model = sparse_linear((2, 5, 5), zero_fraction=0.0)
    x = torch.rand(4, 2, 5, 5, generator=generator, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 0])
    for baseline, reference in (("zeros", torch.zeros_like(x)), ("min",
                                                                 x.amin((1, 2, 3), keepdim=True))):
        exact = model[1].weight.detach()[target].reshape(x.shape) * (x - reference)
        assert ax.completeness(model, x, exact, target, baseline=baseline).tolist() == [1.0] * 4
        assert (ax.completeness(model, x, 1.03 * exact, target, baseline=baseline).tolist() == [1.0]
                * 4)
        assert (ax.completeness(model, x, 1.10 * exact, target, baseline=baseline).tolist() == [0.0]
                * 4)
    # summed, not repeated
    one_channel = (model[1].weight.detach()[target].reshape(x.shape) * x).sum(1, keepdim=True)
    assert ax.completeness(model, x, one_channel, target).tolist() == [1.0] * 4


# --- non-sensitivity ------------------------------------------------------------------------------


def magnitude_scales(case, how, patch, normalise):
    members_values = [ref.attribution_magnitudes(case.x[i].numpy(), case.a[i].numpy(), how=how,
                                                 patch=patch)[1]
                      for i in range(len(case.x))]
    if normalise is None:
        return [1.0] * len(case.x)
    if normalise == "batch":
        peak = max(float(v.max()) for v in members_values)
        return [peak if peak > 0 else 1.0] * len(case.x)
    return [float(v.max()) if v.max() > 0 else 1.0 for v in members_values]


@settings(max_examples=25)
@given(data=st.data())
def test_non_sensitivity_matches_reference(data):
    shape = data.draw(SMALL, label="shape")
    model = sparse_linear(shape[1:], seed=data.draw(st.integers(0, 100), label="seed"))
    case = data.draw(xst.model_inputs(shape=shape, num_classes=3), label="case")
    # many zeros
    a = case.a * (torch.rand(case.a.shape, generator=torch.Generator().manual_seed(0)) < 0.5)
    how = data.draw(st.sampled_from(["sum", "max_abs", None]), label="reduce_channels")
    patch = data.draw(st.sampled_from([None, 2]), label="patch_size")
    normalise = data.draw(st.sampled_from(["sample", "batch", None]), label="normalise")
    baseline = data.draw(BASELINES, label="baseline")
    softmax = data.draw(st.booleans(), label="softmax")
    ours = ax.non_sensitivity(model, case.x, a, case.target, eps=1e-5, baseline=baseline,
                              reduce_channels=how,
                              patch_size=patch, normalise=normalise, softmax=softmax)
    scales = magnitude_scales(case._replace(a=a), how, patch, normalise)
    for i in range(len(case.x)):
        expected = ref.non_sensitivity(model, case.x[i].numpy(), a[i].numpy(), int(case.target[i]),
                                       eps=1e-5,
                                       baseline=baseline, how=how, patch=patch, scale=scales[i],
                                       softmax=softmax)
        assert ours[i].item() == expected


def test_non_sensitivity_is_zero_for_the_exact_attribution_of_a_sparse_linear_model():
    generator = torch.Generator().manual_seed(2)
    model = sparse_linear((1, 6, 6), seed=3)
    x = torch.rand(3, 1, 6, 6, generator=generator, dtype=torch.float64) + 0.5
    target = torch.tensor([0, 1, 2])
    exact = model[1].weight.detach()[target].reshape(x.shape) * x
    assert ax.non_sensitivity(model, x, exact, target, softmax=False).tolist() == [0.0] * 3
    everywhere = torch.ones_like(x)  # attributes the ignored pixels too
    ignored = (model[1].weight.detach()[target] == 0).sum(1).double()
    torch.testing.assert_close(ax.non_sensitivity(model, x, everywhere, target, softmax=False),
                               ignored)


def test_axiomatic_errors():
    model = xst.tiny_mlp((1, 4, 4), 3, seed=0, dtype=torch.float32)
    x, a = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    with pytest.raises(OptionError, match="rtol"):
        ax.completeness(model, x, a, rtol=-1.0)
    with pytest.raises(OptionError, match="eps"):
        ax.non_sensitivity(model, x, a, eps=-1.0)
    with pytest.raises(OptionError, match="normalise"):
        ax.non_sensitivity(model, x, a, normalise="global")
    for kernel in (ax.completeness, ax.non_sensitivity):
        with pytest.raises(OptionError, match="target"):
            kernel(model, x, a, torch.tensor([0, 3]))
        with pytest.raises(ModelOutputError):
            kernel(lambda batch: torch.zeros(len(batch)), x, a, torch.tensor([0, 0]))
        with pytest.raises(NonFiniteError):
            kernel(lambda batch: torch.full((len(batch), 3), math.nan), x, a, torch.tensor([0, 0]))


@pytest.mark.parametrize("max_batch_size", [1, 5])
def test_axiomatic_checks_do_not_depend_on_the_chunk_size(max_batch_size):
    generator = torch.Generator().manual_seed(4)
    model = sparse_linear((2, 4, 3), seed=5)
    x = torch.rand(3, 2, 4, 3, generator=generator, dtype=torch.float64)
    a = torch.randn(3, 2, 4, 3, generator=generator, dtype=torch.float64) * (torch.rand(3, 2, 4, 3)
                                                                             < 0.5)
    for kernel in (ax.completeness, ax.non_sensitivity):
        torch.testing.assert_close(kernel(model, x, a, None, max_batch_size=max_batch_size),
                                   kernel(model, x, a, None, max_batch_size=64))


# --- Quantus --------------------------------------------------------------------------------------


@pytest.mark.quantus
def test_quantus_completeness_bug_float_equality(quantus_module):
    """Quantus tests ``sum(a) == f(x) - f(x0)`` exactly: exact IG attributions of a linear model
    fail on rounding."""
    generator = torch.Generator().manual_seed(6)
    model = sparse_linear((1, 8, 8), dtype=torch.float32, zero_fraction=0.0)
    x = torch.rand(8, 1, 8, 8, generator=generator)
    target = torch.arange(8) % 3
    # complete w.r.t. the zero baseline
    exact = model[1].weight.detach()[target].reshape(x.shape) * x
    metric = quantus_module.Completeness(normalise=False, perturb_baseline=0.0,
                                         disable_warnings=True)
    theirs = np.array(metric(model=model, x_batch=x.numpy(), y_batch=target.numpy(),
                             a_batch=exact.numpy(),
                             device="cpu"))
    assert not theirs.all()  # rounding in the sums breaks the equality for some samples
    assert ax.completeness(model, x, exact, target).tolist() == [1.0] * 8
    # Quantus also normalises the attributions by default (divides by the batch maximum), which
    # breaks completeness even for exact attributions.
    default = quantus_module.Completeness(perturb_baseline=0.0, disable_warnings=True)
    assert not np.array(default(model=model, x_batch=x.numpy(), y_batch=target.numpy(),
                                a_batch=exact.numpy(),
                                device="cpu")).any()


@pytest.mark.quantus
def test_non_sensitivity_matches_quantus(quantus_module):
    """Quantus: single elements, the batch-wide normalisation of |a|, the "black" (minimum)
    baseline, softmax."""
    generator = torch.Generator().manual_seed(7)
    model = sparse_linear((2, 4, 4), dtype=torch.float32, seed=8)
    x = torch.rand(3, 2, 4, 4, generator=generator)
    a = torch.randn(3, 2, 4, 4, generator=generator) * (torch.rand(3, 2, 4, 4, generator=generator)
                                                        < 0.5)
    target = torch.tensor([0, 1, 2])
    metric = quantus_module.NonSensitivity(eps=1e-5, disable_warnings=True)
    theirs = np.array(metric(model=model, x_batch=x.numpy(), y_batch=target.numpy(),
                             a_batch=a.numpy(),
                             device="cpu"), dtype=np.float64)
    ours = ax.non_sensitivity(model, x, a, target, eps=1e-5, baseline="min", reduce_channels=None,
                              normalise="batch", softmax=True)
    np.testing.assert_array_equal(ours.numpy(), theirs)


@pytest.mark.quantus
def test_quantus_non_sensitivity_bug_features_in_step(quantus_module):
    """Quantus compares one prediction per step with one attribution per feature: any step > 1
    fails."""
    generator = torch.Generator().manual_seed(9)
    model = sparse_linear((1, 4, 4), dtype=torch.float32, seed=10)
    x, a = torch.rand(2, 1, 4, 4, generator=generator), torch.rand(2, 1, 4, 4, generator=generator)
    metric = quantus_module.NonSensitivity(features_in_step=4, disable_warnings=True)
    with pytest.raises(ValueError):
        metric(model=model, x_batch=x.numpy(), y_batch=np.array([0, 1]), a_batch=a.numpy(),
               device="cpu")
    # 2 x 2 patches: 4 features
    out = ax.non_sensitivity(model, x, a, torch.tensor([0, 1]), patch_size=2)
    assert ((out >= 0) & (out <= 4)).all()
