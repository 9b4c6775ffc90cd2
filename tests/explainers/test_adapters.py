"""Explain-function adapters and baselines: shapes, devices, batching, seeding, errors."""

from __future__ import annotations

import importlib
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from tests.robustness_helpers import make_cnn
from xaiscore._engine.batching import ModelOutputError
from xaiscore._checks import DTypeError, NonFiniteError, OptionError
from xaiscore.explainers import (
    CAPTUM_METHODS,
    captum_explainer,
    constant_explainer,
    list_explainers,
    make_explainer,
    quantus_explainer,
    random_explainer,
)
from xaiscore._engine.explain_fn import ExplainFn, check_explanation
from xaiscore.explainers.tiny_models import TinyProtoPNet, TinyViT

captum = pytest.importorskip("captum")

DETERMINISTIC = [m for m, spec in CAPTUM_METHODS.items() if not spec.stochastic and m != "LRP"]
STOCHASTIC = [m for m, spec in CAPTUM_METHODS.items() if spec.stochastic]


class LrpNet(nn.Module):
    """Only layers captum's LRP has rules for (flattening happens in forward)."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.relu = nn.ReLU()
        self.linear = nn.Linear(3 * 6 * 6, 4)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)

    def forward(self, x):
        return self.linear(self.relu(self.conv(x)).flatten(1))


def _inputs(batch=3, channels=1, side=6, dtype=torch.float64):
    x = torch.rand(batch, channels, side, side, generator=torch.Generator().manual_seed(1),
                   dtype=dtype)
    return x, torch.arange(batch) % 4


def _kwargs(method):
    return {"layer": "2"} if method == "LayerGradCam" else {}


@pytest.mark.parametrize("method", DETERMINISTIC)
def test_deterministic_captum_methods_shape_dtype_and_batched_equals_per_sample(method):
    model = make_cnn(channels=2)
    x, target = _inputs(channels=2)
    explain = captum_explainer(model, method, **_kwargs(method))
    a = explain(x, target)
    channels = 1 if method == "LayerGradCam" else 2
    assert a.shape == (3, channels, 6, 6) and a.dtype == x.dtype and a.device == x.device
    assert not a.requires_grad and torch.isfinite(a).all()
    one_by_one = torch.cat([explain(x[i : i + 1], target[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(a.numpy(), one_by_one.numpy(), rtol=1e-9, atol=1e-12)
    assert isinstance(explain, ExplainFn)


def test_saliency_is_the_absolute_gradient_and_gradient_the_signed_one():
    model = make_cnn()
    x, target = _inputs()
    inputs = x.clone().requires_grad_(True)
    model(inputs).gather(1, target[:, None]).sum().backward()
    np.testing.assert_allclose(captum_explainer(model, "Gradient")(x, target).numpy(),
                               inputs.grad.numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(captum_explainer(model, "Saliency")(x, target).numpy(),
                               inputs.grad.abs().numpy(),
                               rtol=1e-12)


def test_integrated_gradients_is_complete():
    model = make_cnn()
    x, target = _inputs()
    a = captum_explainer(model, "IntegratedGradients", n_steps=200)(x, target)
    with torch.no_grad():
        gain = (model(x) - model(torch.zeros_like(x))).gather(1, target[:, None]).squeeze(1)
    np.testing.assert_allclose(a.sum(dim=(1, 2, 3)).numpy(), gain.numpy(), rtol=1e-2, atol=1e-6)


def test_grad_cam_is_upsampled_to_the_input_and_non_negative():
    model = make_cnn()
    x, target = _inputs(side=10)
    a = captum_explainer(model, "LayerGradCam", layer=model[2])(x, target)
    assert a.shape == (3, 1, 10, 10) and (a >= 0).all()
    raw = captum_explainer(model, "LayerGradCam", layer="2", relu_attributions=False)(x, target)
    assert (raw < 0).any() or torch.equal(raw, a)


def test_occlusion_default_window_and_override():
    model = make_cnn()
    x, target = _inputs(side=8)
    a = captum_explainer(model, "Occlusion")(x, target)
    b = captum_explainer(model, "Occlusion", sliding_window_shapes=(1, 2, 2),
                         strides=(1, 2, 2))(x, target)
    assert a.shape == b.shape == x.shape and not torch.equal(a, b)


def test_lrp_on_a_supported_network_and_the_model_is_restored():
    model = LrpNet().double().eval()
    x, target = _inputs()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    a = captum_explainer(model, "LRP")(x, target)
    assert a.shape == x.shape and torch.isfinite(a).all()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_one_and_three_dimensional_inputs():
    model_1d = nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(3 * 7, 2)).double()
    x = torch.rand(2, 2, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.tensor([0, 1])
    assert captum_explainer(model_1d, "InputXGradient")(x, target).shape == (2, 2, 7)
    assert captum_explainer(model_1d, "LayerGradCam", layer="0")(x, target).shape == (2, 1, 7)
    model_3d = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(2 * 27, 2)).double()
    volume = torch.rand(2, 1, 3, 3, 3, generator=torch.Generator().manual_seed(0),
                        dtype=torch.float64)
    assert captum_explainer(model_3d, "Saliency")(volume, target).shape == (2, 1, 3, 3, 3)
    assert (captum_explainer(model_3d, "LayerGradCam", layer="0")(volume, target).shape
            == (2, 1, 3, 3, 3))


def test_reduce_channels_option():
    model = make_cnn(channels=3)
    x, target = _inputs(channels=3)
    full = captum_explainer(model, "Gradient")(x, target)
    summed = captum_explainer(model, "Gradient", reduce_channels="sum")(x, target)
    np.testing.assert_allclose(summed.numpy(), full.sum(1, keepdim=True).numpy(), rtol=1e-12)


@pytest.mark.parametrize("method", STOCHASTIC)
def test_stochastic_methods_are_seeded_and_leave_global_rngs_alone(method):
    model = make_cnn()
    x, target = _inputs()
    torch_state, numpy_state, python_state = (torch.random.get_rng_state(), np.random.get_state(),
                                              random.getstate())
    first = captum_explainer(model, method, seed=3)
    second = captum_explainer(model, method, generator=torch.Generator().manual_seed(3))
    a1, a2 = first(x, target), first(x, target)
    b1, b2 = second(x, target), second(x, target)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)  # same seed, same sequence of calls
    assert not torch.equal(a1, a2)  # each call draws fresh randomness
    assert not torch.equal(captum_explainer(model, method, seed=4)(x, target), a1)
    assert torch.equal(torch_state, torch.random.get_rng_state())
    assert (numpy_state[1] == np.random.get_state()[1]).all() and python_state == random.getstate()


def test_adapters_work_inside_inference_mode_and_never_touch_parameters():
    model = make_cnn()
    x, target = _inputs()
    outside = captum_explainer(model, "Saliency")(x, target)
    with torch.inference_mode():
        x_inference = x.clone()
        inside = captum_explainer(model, "Saliency")(x_inference, target)
    assert torch.equal(inside, outside)
    assert all(p.grad is None for p in model.parameters())
    assert not x.requires_grad


def test_captum_errors():
    model = make_cnn()
    with pytest.raises(OptionError, match="method"):
        captum_explainer(model, "GradCam")
    with pytest.raises(OptionError, match="layer"):
        captum_explainer(model, "LayerGradCam")
    with pytest.raises(OptionError, match="submodule"):
        captum_explainer(model, "LayerGradCam", layer="features.9")
    with pytest.raises(DTypeError, match="nn.Module"):
        captum_explainer(lambda x: x, "Saliency")
    with pytest.raises(OptionError, match="reduce_channels"):
        captum_explainer(model, "Saliency", reduce_channels="median")


def test_missing_captum_names_the_extra(monkeypatch):
    real_import = importlib.import_module

    def fake_import(name, *args, **kwargs):
        if name.startswith("captum"):
            raise ImportError("No module named 'captum'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(ImportError, match=r"xaiscore\[captum\]"):
        captum_explainer(make_cnn(), "Saliency")


# --- check_explanation ---------------------------------------------------------------------


def test_check_explanation_accepts_one_or_all_channels_and_rejects_the_rest():
    x = torch.zeros(2, 3, 4, 5)
    assert check_explanation(torch.ones(2, 3, 4, 5), x).shape == (2, 3, 4, 5)
    assert check_explanation(torch.ones(2, 1, 4, 5), x).shape == (2, 1, 4, 5)
    for bad in (torch.ones(2, 2, 4, 5), torch.ones(3, 1, 4, 5), torch.ones(2, 1, 5, 4),
                torch.ones(2, 4, 5)):
        with pytest.raises(ModelOutputError, match=r"\(2, 3, 4, 5\) or \(2, 1, 4, 5\)"):
            check_explanation(bad, x)
    with pytest.raises(ModelOutputError, match="torch.Tensor"):
        check_explanation(np.ones((2, 1, 4, 5)), x)
    with pytest.raises(ModelOutputError, match="floating-point"):
        check_explanation(torch.ones(2, 1, 4, 5, dtype=torch.long), x)
    nan = torch.ones(2, 1, 4, 5)
    nan[1, 0, 0, 0] = math.nan
    with pytest.raises(NonFiniteError, match="1 NaN"):
        check_explanation(nan, x)
    assert check_explanation(nan, x, validate=False) is nan


# --- Quantus-style adapter -----------------------------------------------------------------


def test_quantus_explainer_with_a_numpy_function():
    calls = []

    def explain_func(model, inputs, targets, **kwargs):
        calls.append((type(inputs), type(targets), kwargs))
        return inputs[:, 0] * (targets[:, None, None] + 1)

    explain = quantus_explainer("model", explain_func, scale=2)
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    a = explain(x, torch.tensor([0, 2]))
    assert a.shape == (2, 1, 4, 4) and a.dtype == torch.float64
    np.testing.assert_allclose(a[1, 0].numpy(), 3 * x[1, 0].numpy())
    assert calls[0] == (np.ndarray, np.ndarray, {"scale": 2})
    with pytest.raises(ModelOutputError, match="explain_func"):
        quantus_explainer(None, lambda model, inputs, targets: inputs[:, :, :2])(
            x, torch.tensor([0, 1]))


def test_quantus_explain_matches_captum_saliency_and_restores_the_training_flag(quantus_module):
    model = make_cnn(channels=3, dtype=torch.float32)
    model.train()
    x, target = _inputs(channels=3, dtype=torch.float32)
    ours = captum_explainer(model, "Saliency", reduce_channels="sum")(x, target)
    model.eval()
    theirs_eval = quantus_explainer(model, method="Saliency")(x, target)
    model.train()
    theirs = quantus_explainer(model, method="Saliency")(x, target)
    # quantus.explain called model.eval(); we undid it
    assert all(m.training for m in model.modules())
    np.testing.assert_allclose(theirs_eval.numpy(), ours.numpy(), rtol=1e-5, atol=1e-7)
    assert theirs.shape == (3, 1, 6, 6)


# --- baselines -----------------------------------------------------------------------------


def test_random_explainer_shapes_values_and_chunk_invariance():
    x = torch.zeros(5, 3, 4, 6, dtype=torch.float64)
    target = torch.zeros(5, dtype=torch.long)
    explain = random_explainer(seed=1)
    whole = explain(x, target)
    assert whole.shape == (5, 1, 4, 6) and whole.dtype == torch.float64
    assert (whole > 0).all() and (whole < 1).all() and len(whole.unique()) == whole.numel()
    explain.reset()
    parts = torch.cat([explain(x[:2], target[:2]), explain(x[2:3], target[2:3]),
                       explain(x[3:], target[3:])])
    assert torch.equal(parts, whole)
    assert not torch.equal(explain(x, target), whole)  # the next rows are new maps
    # ignores inputs and targets
    assert torch.equal(random_explainer(seed=1)(x + 5.0, target + 1), whole)
    assert not torch.equal(random_explainer(seed=2)(x, target), whole)
    assert random_explainer(channels="input", seed=0)(x, target).shape == x.shape


def test_random_explainer_distributions_and_global_rng():
    state = torch.random.get_rng_state()
    x = torch.zeros(50, 1, 20, 20)
    uniform = random_explainer(generator=torch.Generator().manual_seed(0))(
        x, torch.zeros(50, dtype=torch.long))
    normal = random_explainer(distribution="normal", seed=0)(x, torch.zeros(50, dtype=torch.long))
    assert abs(uniform.mean() - 0.5) < 0.01 and abs(uniform.std() - math.sqrt(1 / 12)) < 0.01
    assert abs(normal.mean()) < 0.02 and abs(normal.std() - 1.0) < 0.02
    assert abs(float(((normal - normal.mean()) ** 3).mean())) < 0.05  # symmetric
    assert uniform.dtype == torch.float32 and torch.equal(state, torch.random.get_rng_state())


def test_constant_explainer():
    x = torch.zeros(2, 3, 4)
    assert torch.equal(constant_explainer(2.5)(x, torch.zeros(2, dtype=torch.long)),
                       torch.full((2, 1, 4), 2.5))
    assert (constant_explainer(channels="input")(x, torch.zeros(2, dtype=torch.long)).shape
            == (2, 3, 4))
    with pytest.raises(OptionError, match="finite"):
        constant_explainer(math.nan)
    with pytest.raises(OptionError, match="channels"):
        constant_explainer(1.0, channels="all")


# --- registry ------------------------------------------------------------------------------


def test_make_explainer_builds_every_listed_method(quantus_module):
    model = make_cnn()
    x, target = _inputs()
    for name in list_explainers():
        kwargs = {"layer": "2"} if name == "LayerGradCam" else {}
        if name == "quantus":  # quantus.explain computes in float32
            explain = make_explainer(name, make_cnn(dtype=torch.float32), quantus_method="Saliency")
            check_explanation(explain(x.float(), target), x.float())
            continue
        if name == "LRP":
            explain = make_explainer(name, LrpNet().double().eval())
        elif name in ("AttentionRollout", "CheferRelevance"):
            explain = make_explainer(name,
                                     TinyViT(1, 4, image_size=6, patch_size=3).double().eval())
        elif name == "Prototype":
            explain = make_explainer(name,
                                     TinyProtoPNet(1, 4, prototypes_per_class=2).double().eval())
        elif name == "RISE":
            explain = make_explainer(name, model, n_masks=20, grid_size=2, seed=0)
        else:
            explain = make_explainer(name, None if name in ("random", "constant") else model,
                                     **kwargs)
        a = explain(x, target)
        check_explanation(a, x)
    with pytest.raises(OptionError, match="model"):
        make_explainer("Saliency")
    with pytest.raises(OptionError, match="method"):
        make_explainer("saliency", model)


def test_library_never_prints(capsys):
    model = make_cnn()
    x, target = _inputs()
    for name in ("Saliency", "SmoothGrad"):
        captum_explainer(model, name, seed=0)(x, target)
    assert capsys.readouterr().out == ""


def test_captum_keyword_named_method_reaches_captum():
    """IntegratedGradients' own `method` keyword must not clash with the adapter's method name."""
    pytest.importorskip("captum")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 2])
    trapezoid = captum_explainer(model, "IntegratedGradients", method="riemann_trapezoid",
                                 n_steps=4)(x, target)
    built = make_explainer("IntegratedGradients", model, method="riemann_trapezoid",
                           n_steps=4)(x, target)
    from captum.attr import IntegratedGradients

    expected = IntegratedGradients(model).attribute(x, target=target, method="riemann_trapezoid",
                                                    n_steps=4)
    default_rule = IntegratedGradients(model).attribute(x, target=target, n_steps=4)
    torch.testing.assert_close(trapezoid, expected.detach())
    torch.testing.assert_close(built, trapezoid)
    assert not torch.allclose(trapezoid, default_rule)  # the keyword changed the rule


@pytest.mark.parametrize("method", DETERMINISTIC)
def test_explain_with_output_hands_out_the_forward_pass_of_single_pass_methods(method):
    model = make_cnn(channels=2)
    x, target = _inputs(channels=2)
    explain = captum_explainer(model, method, **_kwargs(method))
    a, output = explain.explain_with_output(x, target)
    torch.testing.assert_close(a, explain(x, target), rtol=0, atol=0)
    if explain.shares_forward:
        assert method in ("Saliency", "Gradient", "InputXGradient", "GuidedBackprop",
                          "LayerGradCam")
        with torch.no_grad():
            expected = model(x)
        assert not output.requires_grad
        torch.testing.assert_close(output, expected, rtol=0, atol=0)
    # several forward passes (IntegratedGradients, DeepLift's baselines, Occlusion, LRP): none
    # handed out
    else:
        assert output is None


def test_explain_with_output_gives_none_when_the_single_pass_was_not_on_x():
    model = make_cnn(channels=1)
    x, target = _inputs()
    explain = captum_explainer(model, "Saliency")
    calls = []
    handle = model.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        model(x)  # a call outside the explanation is not recorded
        _, output = explain.explain_with_output(x, target)
    finally:
        handle.remove()
    assert len(calls) == 2 and output is not None and output.shape == (3, 4)
    assert not model._forward_hooks  # the recording hook is removed
    smooth = captum_explainer(model, "SmoothGrad", seed=0)
    assert not smooth.shares_forward and smooth.explain_with_output(x, target)[1] is None
