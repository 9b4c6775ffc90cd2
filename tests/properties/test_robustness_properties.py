"""Properties of the robustness kernels: invariances the papers state, chunking, seeding, side
effects, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.robustness_helpers import EXPLAINERS, make_cnn, make_mlp, replay_noise
from xaiscore._engine.batching import ModelOutputError
from xaiscore._checks import DTypeError, NonFiniteError, OptionError, ShapeError
from xaiscore._engine.noise import NOISE_BLOCK_ITEMS, BlockNoise
from xaiscore.explainers import constant_explainer, random_explainer
from xaiscore.functional import robustness as rob

NOISE_METRICS = [
    "max_sensitivity",
    "avg_sensitivity",
    "local_lipschitz_estimate",
    "relative_input_stability",
    "relative_output_stability",
    "relative_representation_stability",
]
ALL_REEXPLAINING = NOISE_METRICS + ["continuity"]


def _setup(batch=3, shape=(1, 6, 6), seed=0):
    model = make_mlp(math.prod(shape), seed=seed)
    x = torch.rand((batch,) + shape, generator=torch.Generator().manual_seed(seed + 10),
                   dtype=torch.float64)
    with torch.no_grad():
        target = model(x).argmax(1)
    return model, x, target


def _call(name, model, x, a, target, explain_fn, **options):
    fn = getattr(rob, name)
    if name in ("relative_input_stability", "relative_output_stability"):
        return fn(model, x, a, target, explain_fn=explain_fn, **options)
    if name == "relative_representation_stability":
        return fn(model, x, a, target, explain_fn=explain_fn, layer=options.pop("layer", "2"),
                  **options)
    if name == "continuity":
        for key in ("seed", "generator", "n_samples", "radius", "noise"):
            options.pop(key, None)
        return fn(x, a, target, explain_fn=explain_fn, n_steps=options.pop("n_steps", 5), **options)
    return fn(x, a, target, explain_fn=explain_fn, **options)


# --- invariances -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["max_sensitivity", "avg_sensitivity", "relative_input_stability",
                                  "relative_output_stability", "relative_representation_stability"])
def test_zero_noise_gives_zero(name):
    model, x, target = _setup()
    explain = EXPLAINERS["mixing"]
    out = _call(name, model, x, explain(x, target), target, explain, n_samples=4, radius=0.0,
                seed=0)
    assert torch.equal(out, torch.zeros_like(out))


def test_zero_noise_leaves_the_lipschitz_quotient_undefined():
    model, x, target = _setup()
    explain = EXPLAINERS["mixing"]
    out = rob.local_lipschitz_estimate(x, explain(x, target), target, explain_fn=explain,
                                       n_samples=3, radius=0.0,
                                       seed=0)
    # x' = x is no distinct point; Quantus returns 0 through its 1e-10
    assert torch.isnan(out).all()


@pytest.mark.parametrize("name", ALL_REEXPLAINING)
def test_an_explainer_that_ignores_its_input_scores_zero(name):
    model, x, target = _setup()
    explain = constant_explainer(0.7)
    out = _call(name, model, x, explain(x, target), target, explain, n_samples=5, radius=0.3,
                seed=1,
                on_prediction_change="keep")
    assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("how", ["max_sensitivity", "avg_sensitivity"])
@settings(max_examples=15)
@given(scale=st.floats(0.01, 100.0), seed=st.integers(0, 100))
def test_relative_sensitivity_is_scale_invariant_and_absolute_scales_linearly(how, scale, seed):
    model, x, target = _setup(seed=seed % 4)
    base = EXPLAINERS["mixing"]
    scaled = lambda x, t: scale * base(x, t)  # noqa: E731
    kernel = getattr(rob, how)
    common = dict(n_samples=4, radius=0.2, seed=seed)
    rel = kernel(x, base(x, target), target, explain_fn=base, **common)
    rel_scaled = kernel(x, scaled(x, target), target, explain_fn=scaled, **common)
    np.testing.assert_allclose(rel_scaled.numpy(), rel.numpy(), rtol=1e-9)
    absolute = kernel(x, base(x, target), target, explain_fn=base, relative=False, **common)
    absolute_scaled = kernel(x, scaled(x, target), target, explain_fn=scaled, relative=False,
                             **common)
    np.testing.assert_allclose(absolute_scaled.numpy(), scale * absolute.numpy(), rtol=1e-9)


@settings(max_examples=15)
@given(slope=st.floats(-20.0, 20.0).filter(lambda v: abs(v) > 1e-3), radius=st.floats(0.01, 3.0),
       noise=st.sampled_from(["uniform", "gaussian"]), p=st.sampled_from([1.0, 2.0, math.inf]))
def test_lipschitz_estimate_of_a_linear_explainer_is_its_slope(slope, radius, noise, p):
    model, x, target = _setup()
    explain = lambda x, t: slope * x  # noqa: E731 - a |slope|-Lipschitz map in every norm
    out = rob.local_lipschitz_estimate(x, explain(x, target), target, explain_fn=explain,
                                       normalise=None,
                                       n_samples=3, noise=noise, radius=radius, p=p, seed=0)
    np.testing.assert_allclose(out.numpy(), abs(slope), rtol=1e-9)


def test_sensitivity_of_a_linear_explainer_under_constant_noise_is_closed_form():
    model, x, target = _setup()
    explain = lambda x, t: 3.0 * x  # noqa: E731
    out = rob.avg_sensitivity(x, explain(x, target), target, explain_fn=explain, relative=False,
                              noise_bounds=(0.25, 0.25), n_samples=2, seed=0)
    np.testing.assert_allclose(out.numpy(), 3.0 * 0.25 * math.sqrt(36), rtol=1e-12)


def test_max_is_at_least_the_mean():
    model, x, target = _setup()
    explain = EXPLAINERS["mixing"]
    common = dict(explain_fn=explain, n_samples=6, radius=0.3, seed=3)
    a = explain(x, target)
    assert (rob.max_sensitivity(x, a, target, **common)
            >= rob.avg_sensitivity(x, a, target, **common) - 1e-12).all()


def test_random_explainer_is_less_robust_than_a_real_method():
    model, x, target = _setup()
    from xaiscore.explainers import captum_explainer

    real = captum_explainer(model, "Saliency")
    noise_map = random_explainer(seed=0)
    common = dict(n_samples=4, radius=0.05, seed=0)
    real_score = rob.max_sensitivity(x, real(x, target), target, explain_fn=real, **common)
    random_score = rob.max_sensitivity(x, noise_map(x, target), target, explain_fn=noise_map,
                                       **common)
    assert (random_score > real_score).all()


# --- chunking, seeding, precision ---------------------------------------------------------


@pytest.mark.parametrize("name", ALL_REEXPLAINING)
def test_scores_do_not_depend_on_max_batch_size(name):
    model, x, target = _setup(batch=4)
    explain = EXPLAINERS["mixing"]
    a = explain(x, target)
    n = NOISE_BLOCK_ITEMS // 3 + 2  # items straddle the noise blocks
    outs = [_call(name, model, x, a, target, explain, n_samples=n, radius=0.2, seed=5,
                  max_batch_size=size,
                  on_prediction_change="exclude", forward_fn=model)
            if name in ("max_sensitivity", "continuity")
            else _call(name, model, x, a, target, explain, n_samples=n, radius=0.2, seed=5,
                       max_batch_size=size)
            for size in (1, 7, NOISE_BLOCK_ITEMS, 1000)]
    for other in outs[1:]:
        np.testing.assert_allclose(other.numpy(), outs[0].numpy(), rtol=1e-12, atol=0,
                                   equal_nan=True)


@pytest.mark.parametrize("name", NOISE_METRICS)
def test_seeded_determinism_and_generator_equals_seed(name):
    model, x, target = _setup()
    explain = EXPLAINERS["mixing"]
    a = explain(x, target)
    first = _call(name, model, x, a, target, explain, n_samples=3, seed=11)
    again = _call(name, model, x, a, target, explain, n_samples=3, seed=11)
    via_generator = _call(name, model, x, a, target, explain, n_samples=3,
                          generator=torch.Generator().manual_seed(11))
    other = _call(name, model, x, a, target, explain, n_samples=3, seed=12)
    assert torch.equal(first, again) and torch.equal(first, via_generator)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("name", ALL_REEXPLAINING)
def test_global_rng_and_model_are_untouched(name):
    model, x, target = _setup()
    explain = EXPLAINERS["mixing"]
    a = explain(x, target)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    model.train()  # whatever mode the user left it in stays
    _call(name, model, x, a, target, explain, n_samples=3, seed=0)
    assert torch.equal(torch_state, torch.random.get_rng_state())
    assert (numpy_state == np.random.get_state()[1]).all()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(m.training for m in model.modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("name", ALL_REEXPLAINING)
def test_float32_agrees_with_float64_and_output_follows_input(name):
    model, x, target = _setup()
    explain = EXPLAINERS["mixing"]
    out64 = _call(name, model, x, explain(x, target), target, explain, n_samples=3, seed=0)
    model32, x32 = model.float(), x.float()
    out32 = _call(name, model32, x32, explain(x32, target), target, explain, n_samples=3, seed=0)
    assert out32.dtype == torch.float32 and out64.dtype == torch.float64 and out32.shape == (3,)
    np.testing.assert_allclose(out32.numpy(), out64.numpy(), rtol=1e-4)


def test_batch_split_invariance_of_the_noise_metrics():
    """Scoring samples in two batches equals scoring them together when each keeps its noise
    (same items)."""
    model, x, target = _setup(batch=2)
    explain = EXPLAINERS["mixing"]
    a = explain(x, target)
    whole = rob.max_sensitivity(x, a, target, explain_fn=explain, n_samples=NOISE_BLOCK_ITEMS,
                                seed=3)
    # With n equal to the block size, sample i's noise is block i: a one-sample batch gets block 0
    # only.
    first = rob.max_sensitivity(x[:1], a[:1], target[:1], explain_fn=explain,
                                n_samples=NOISE_BLOCK_ITEMS, seed=3)
    assert torch.equal(first, whole[:1])


def test_block_noise_distributions():
    generator = torch.Generator().manual_seed(0)
    uniform = BlockNoise(100, (50,), kind="uniform", low=-0.5, high=0.25, generator=generator,
                         dtype=torch.float64)
    values = uniform(0, 100)
    assert values.min() >= -0.5 and values.max() < 0.25 and abs(values.mean() + 0.125) < 0.01
    gaussian = BlockNoise(100, (50,), kind="gaussian", low=0.0, high=2.0, generator=generator,
                          dtype=torch.float64)
    values = gaussian(0, 100)
    assert abs(values.mean()) < 0.1 and abs(values.std() - 2.0) < 0.1
    assert torch.equal(torch.cat([gaussian(0, 33), gaussian(33, 34), gaussian(34, 100)]), values)
    x = torch.rand(100, 50, generator=generator, dtype=torch.float64)
    cuts = [0, 1, NOISE_BLOCK_ITEMS, 2 * NOISE_BLOCK_ITEMS + 3, 99, 100]
    fused = torch.cat([gaussian.add_to(x[s:e], s, e) for s, e in zip(cuts[:-1], cuts[1:])])
    assert torch.equal(fused, x + values)


def test_rrs_default_layer_is_the_input_of_the_last_leaf():
    model, x, target = _setup()
    explain = EXPLAINERS["mixing"]
    a = explain(x, target)
    default = rob.relative_representation_stability(model, x, a, target, explain_fn=explain,
                                                    n_samples=3, seed=0)
    named = rob.relative_representation_stability(model, x, a, target, explain_fn=explain,
                                                  layer="2", n_samples=3,
                                                  seed=0)
    assert torch.equal(default, named)  # Tanh's output is the input of the last Linear


def test_rrs_concatenates_several_layers():
    model, x, target = _setup()
    explain = EXPLAINERS["mixing"]
    a = explain(x, target)
    out = rob.relative_representation_stability(model, x, a, target, explain_fn=explain,
                                                layer=["1", "2"],
                                                n_samples=3, seed=0)
    assert out.shape == (3,) and torch.isfinite(out).all()


def test_continuity_translates_along_the_chosen_axis_of_3d_inputs():
    x = torch.zeros(1, 1, 3, 4, 5, dtype=torch.float64)
    x[0, 0, 1, 2, 2] = 1.0
    identity = lambda x, t: x.clone()  # noqa: E731
    target = torch.zeros(1, dtype=torch.long)
    seen = []

    def recording(x, t):
        seen.append(x.clone())
        return identity(x, t)

    rob.continuity(x, identity(x, target), target, explain_fn=recording, shifts=[1], axis=3,
                   fill=0.0,
                   normalise=None, abs=False)
    moved = seen[0][0, 0]
    assert moved[1, 3, 2] == 1.0 and moved.sum() == 1.0


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_REEXPLAINING)
def test_wrong_explanation_shape_is_a_model_output_error(name):
    model, x, target = _setup()
    explain = EXPLAINERS["mixing"]
    with pytest.raises(ModelOutputError, match="explain_fn"):
        _call(name, model, x, explain(x, target), target, lambda x, t: explain(x, t)[:, :, :3],
              n_samples=2, seed=0)
    # one channel where `a` has C (here C = 1 -> 2)
    with pytest.raises(ModelOutputError, match="like `a`"):
        x2 = torch.cat([x, x], dim=1)
        m2 = make_mlp(72)
        _call(name, m2, x2, explain(x2, target), target, lambda x, t: explain(x, t)[:, :1],
              n_samples=2, seed=0)
    with pytest.raises(ModelOutputError, match="torch.Tensor"):
        _call(name, model, x, explain(x, target), target, lambda x, t: explain(x, t).numpy(),
              n_samples=2, seed=0)


@pytest.mark.parametrize("name", ALL_REEXPLAINING)
def test_nan_explanation_is_a_non_finite_error_unless_validate_is_off(name):
    model, x, target = _setup()
    explain = EXPLAINERS["mixing"]

    def broken(x, t):
        out = explain(x, t).clone()
        out[0, 0, 0, 0] = math.nan
        return out

    a = explain(x, target)
    with pytest.raises(NonFiniteError, match="explain_fn"):
        _call(name, model, x, a, target, broken, n_samples=2, seed=0)
    out = _call(name, model, x, a, target, broken, n_samples=2, seed=0, validate=False)
    assert out.shape == (3,)


def test_input_errors():
    model, x, target = _setup()
    explain = EXPLAINERS["mixing"]
    a = explain(x, target)
    with pytest.raises(DTypeError, match="explain_fn"):
        rob.max_sensitivity(x, a, target, explain_fn="Saliency")
    with pytest.raises(ShapeError, match="target"):
        rob.max_sensitivity(x, a, target[:2], explain_fn=explain)
    with pytest.raises(ShapeError):
        rob.max_sensitivity(x[:, :, :3], a, target, explain_fn=explain)
    with pytest.raises(OptionError, match="forward_fn"):
        rob.max_sensitivity(x, a, target, explain_fn=explain, on_prediction_change="exclude")
    with pytest.raises(OptionError, match="on_prediction_change"):
        rob.max_sensitivity(x, a, target, explain_fn=explain, on_prediction_change="drop")
    with pytest.raises(OptionError, match="noise"):
        rob.max_sensitivity(x, a, target, explain_fn=explain, noise="laplace")
    with pytest.raises(OptionError, match="radius"):
        rob.max_sensitivity(x, a, target, explain_fn=explain, radius=-1.0)
    with pytest.raises(OptionError, match="noise_bounds"):
        rob.max_sensitivity(x, a, target, explain_fn=explain, noise_bounds=(0.3, 0.1))
    with pytest.raises(OptionError, match="generator"):
        rob.max_sensitivity(x, a, target, explain_fn=explain, seed=1, generator=torch.Generator())
    with pytest.raises(OptionError, match="n_samples"):
        rob.max_sensitivity(x, a, target, explain_fn=explain, n_samples=0)
    with pytest.raises(OptionError, match="`p`"):
        rob.max_sensitivity(x, a, target, explain_fn=explain, p=0.5)
    with pytest.raises(OptionError, match="eps_min"):
        rob.relative_input_stability(model, x, a, target, explain_fn=explain, eps_min=0.0)
    with pytest.raises(OptionError, match="layer"):
        rob.relative_representation_stability(model, x, a, target, explain_fn=explain, layer="nope")
    with pytest.raises(DTypeError, match="nn.Module"):
        rob.relative_representation_stability(lambda v: model(v), x, a, target, explain_fn=explain)
    with pytest.raises(OptionError, match="n_steps"):
        rob.continuity(x, a, target, explain_fn=explain, n_steps=14)
    with pytest.raises(OptionError, match="axis"):
        rob.continuity(x, a, target, explain_fn=explain, axis=1, n_steps=5)
    with pytest.raises(OptionError, match="fill"):
        rob.continuity(x, a, target, explain_fn=explain, fill="grey", n_steps=5)
    with pytest.raises(DTypeError, match="shifts"):
        rob.continuity(x, a, target, explain_fn=explain, shifts=[1.5])
    with pytest.raises(OptionError, match="`k`"):
        rob.consistency(model, x, a, k=37)
    with pytest.raises(ModelOutputError, match="forward_fn"):
        rob.relative_output_stability(lambda v: v.sum(), x, a, target, explain_fn=explain)


def test_nan_in_a_is_rejected_at_the_boundary():
    model, x, target = _setup()
    explain = EXPLAINERS["mixing"]
    a = explain(x, target)
    a[0, 0, 0, 0] = math.nan
    with pytest.raises(NonFiniteError, match="`a`"):
        rob.max_sensitivity(x, a, target, explain_fn=explain)


def test_relative_sensitivity_of_an_all_zero_map_is_nan():
    model, x, target = _setup()
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    out = rob.max_sensitivity(x, zero(x, target), target, explain_fn=zero, n_samples=2, seed=0)
    assert torch.isnan(out).all()
    assert torch.equal(rob.max_sensitivity(x, zero(x, target), target, explain_fn=zero, n_samples=2,
                                           seed=0,
                                           relative=False), torch.zeros(3, dtype=x.dtype))


def test_works_on_a_cnn_with_captum_and_inside_inference_mode():
    pytest.importorskip("captum")
    from xaiscore.explainers import captum_explainer

    model = make_cnn(channels=1)
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.tensor([0, 1])
    explain = captum_explainer(model, "IntegratedGradients", n_steps=8)
    a = explain(x, target)
    outside = rob.max_sensitivity(x, a, target, explain_fn=explain, n_samples=3, seed=0)
    with torch.inference_mode():
        inside = rob.max_sensitivity(x, a, target, explain_fn=explain, n_samples=3, seed=0)
    np.testing.assert_allclose(inside.numpy(), outside.numpy(), rtol=1e-10)
    assert torch.isfinite(outside).all() and (outside > 0).all()
    np.testing.assert_allclose(replay_noise(x, 3, seed=0).std(), 0.2 / math.sqrt(3), rtol=0.1)


def test_gradient_explainers_work_under_no_grad_and_scores_carry_no_graph():
    model, x, target = _setup()

    def gradient(x, t):  # a hand-written gradient explainer that needs autograd
        inputs = x.detach().requires_grad_(True)
        model(inputs).gather(1, t[:, None]).sum().backward()
        return inputs.grad

    a = gradient(x, target)
    with torch.no_grad():
        inside = rob.max_sensitivity(x, a, target, explain_fn=gradient, n_samples=3, seed=0)
    outside = rob.max_sensitivity(x.requires_grad_(True), a, target, explain_fn=gradient,
                                  n_samples=3, seed=0)
    assert torch.equal(inside, outside) and not outside.requires_grad
