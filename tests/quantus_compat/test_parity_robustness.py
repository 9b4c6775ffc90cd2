"""Parity with the installed Quantus (0.6.x) for the robustness metrics, and one test per Quantus
bug.

How the noisy metrics are compared soundly: Quantus draws its noise from the
global numpy RNG inside ``metric.perturb_func``, called once per perturbation
step for the whole batch. We replace that attribute with a function that adds
*our* noise (replayed from the seed with :class:`xaiscore._engine.noise.BlockNoise`:
item ``i * n + j`` is step ``j`` of sample ``i``) and counts the steps, and
we give both libraries the same deterministic numpy explainer (ours through
:func:`xaiscore.explainers.quantus_explainer`). Same perturbed inputs and the
same explanations in, so the same numbers must come out, wherever Quantus
follows the paper.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from tests.robustness_helpers import replay_noise
from xaiscore.explainers import quantus_explainer
from xaiscore.functional import robustness as rob

pytestmark = pytest.mark.quantus


def np_explain(model, inputs, targets, **kwargs):
    """A deterministic, non-linear numpy explainer (one channel per input channel)."""
    inputs = np.asarray(inputs, dtype=np.float64)
    scale = (np.asarray(targets).reshape((-1,) + (1,) * (inputs.ndim - 1)) + 1.0)
    return np.tanh(2.0 * inputs + np.roll(inputs, 1, axis=-1)) * scale


def make_model(n_features: int, n_classes: int = 3, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(n_features, 6), nn.Tanh(),
                          nn.Linear(6, n_classes))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return model.eval()


def setup(batch=4, shape=(2, 5, 5), seed=0):
    model = make_model(math.prod(shape), seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.random((batch,) + shape)
    with torch.no_grad():
        y = model(torch.from_numpy(x).float()).argmax(1).numpy()
    a = np_explain(model, x, y)
    return model, x, y, a


def feed_noise(metric, noise: np.ndarray) -> None:
    """Make ``metric.perturb_func`` add our noise: step ``j`` gets ``noise[:, j]`` for every sample.
    """
    state = {"step": 0}

    def perturb(arr, indices=None, **kwargs):
        step = state["step"]
        state["step"] += 1
        return arr + noise[:, step].reshape(arr.shape[0], -1)

    metric.perturb_func = perturb


def ours_inputs(model, x, y, a):
    return (lambda v: model(v.float()), torch.from_numpy(x), torch.from_numpy(a),
            torch.from_numpy(y),
            quantus_explainer(model, np_explain))


def quantus_call(metric, model, x, y, a, **kwargs):
    out = metric(model=model, x_batch=x, y_batch=y, a_batch=a, explain_func=np_explain,
                 device="cpu",
                 channel_first=True, **kwargs)
    return np.asarray(out, dtype=np.float64)


N = 6


@pytest.mark.parametrize("mode", ["keep", "nan"])
@pytest.mark.parametrize("name", ["MaxSensitivity", "AvgSensitivity"])
def test_sensitivity_parity(quantus_module, name, mode):
    model, x, y, a = setup()
    metric = getattr(quantus_module, name)(nr_samples=N, lower_bound=0.3, disable_warnings=True,
                                           return_nan_when_prediction_changes=mode == "nan")
    feed_noise(metric, replay_noise(torch.from_numpy(x), N, seed=3, low=-0.3, high=0.3))
    theirs = quantus_call(metric, model, x, y, a)
    forward_fn, xt, at, yt, explain = ours_inputs(model, x, y, a)
    kernel = rob.max_sensitivity if name == "MaxSensitivity" else rob.avg_sensitivity
    ours = kernel(xt, at, yt, explain_fn=explain, forward_fn=forward_fn, n_samples=N, radius=0.3,
                  seed=3,
                  on_prediction_change=mode, max_batch_size=5)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-9, equal_nan=True)
    if mode == "nan":
        assert np.isnan(theirs).any() and not np.isnan(
            theirs).all(), "the case should exercise the NaN rule"


@pytest.mark.parametrize("batch, normalise", [(3, False), (1, True)])
def test_local_lipschitz_parity(quantus_module, batch, normalise):
    """Quantus normalises by the batch maximum: equal to ours per sample for a batch of one."""
    model, x, y, a = setup(batch=batch)
    metric = quantus_module.LocalLipschitzEstimate(nr_samples=N, perturb_std=0.1,
                                                   normalise=normalise,
                                                   disable_warnings=True)
    feed_noise(metric, replay_noise(torch.from_numpy(x), N, seed=5, kind="gaussian", low=0.0,
                                    high=0.1))
    theirs = quantus_call(metric, model, x, y, a)
    forward_fn, xt, at, yt, explain = ours_inputs(model, x, y, a)
    ours = rob.local_lipschitz_estimate(xt, at, yt, explain_fn=explain, n_samples=N,
                                        noise="gaussian", radius=0.1,
                                        seed=5, normalise="sample" if normalise else None)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-8)


@pytest.mark.parametrize("name", ["RelativeInputStability", "RelativeOutputStability",
                                  "RelativeRepresentationStability"])
def test_relative_stability_parity(quantus_module, name):
    """Same noise (Quantus' interval [0.02, 0.2] replayed), Quantus' NaN-on-any-change rule."""
    model, x, y, a = setup(batch=5)
    kwargs = {"layer_names": ["2"]} if name == "RelativeRepresentationStability" else {}
    metric = getattr(quantus_module, name)(nr_samples=N, disable_warnings=True, **kwargs)
    noise = replay_noise(torch.from_numpy(x), N, seed=9, low=0.02, high=0.2)
    feed_noise(metric, noise)
    theirs = quantus_call(metric, model, x, y, a)
    forward_fn, xt, at, yt, explain = ours_inputs(model, x, y, a)
    options = dict(explain_fn=explain, n_samples=N, noise_bounds=(0.02, 0.2), seed=9,
                   on_prediction_change="nan")
    if name == "RelativeInputStability":
        ours = rob.relative_input_stability(forward_fn, xt, at, yt, **options)
    elif name == "RelativeOutputStability":
        ours = rob.relative_output_stability(forward_fn, xt, at, yt, **options)
    else:
        ours = rob.relative_representation_stability(FloatModel(model), xt, at, yt, layer="model.2",
                                                     **options)
    # Quantus computes logits and representations in float32.
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, equal_nan=True)


class FloatModel(nn.Module):
    """Runs a float32 model on float64 inputs, as Quantus' wrapper does."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.float())


@pytest.mark.parametrize("batch, normalise", [(3, False), (1, True)])
def test_continuity_parity(quantus_module, batch, normalise):
    model, x, y, a = setup(batch=batch, shape=(1, 16, 16))
    metric = quantus_module.Continuity(nr_steps=28, normalise=normalise, abs=True,
                                       disable_warnings=True)
    theirs = quantus_call(metric, model, x, y, None)
    forward_fn, xt, at, yt, explain = ours_inputs(model, x, y, a)
    ours = rob.continuity(xt, at, yt, explain_fn=explain, n_steps=28,
                          normalise="sample" if normalise else None)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-7)


def test_consistency_parity_with_full_sign_discretisation(quantus_module):
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 3, 3))
    base = rng.normal(size=(3, 1, 3, 3))
    # three sign patterns, each shared
    a = base[[0, 0, 1, 1, 1, 2, 2, 0]] * rng.random((8, 1, 1, 1))
    model = make_model(9, n_classes=2, seed=2)
    metric = quantus_module.Consistency(
        discretise_func=quantus_module.functions.discretise_func.sign,
        normalise=False, abs=False, disable_warnings=True)
    theirs = np.asarray(metric(model=model, x_batch=x.astype(np.float32),
                               y_batch=np.zeros(8, dtype=int),
                               a_batch=a, device="cpu", channel_first=True), dtype=np.float64)
    ours = rob.consistency(lambda v: model(v.float()), torch.from_numpy(x), torch.from_numpy(a),
                           discretisation="sign", reduce_channels=None)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-7)


# --- Quantus bugs: our documented behaviour instead ------------------------------------------


def test_bug_quantus_consistency_discretises_the_first_features_not_the_top_ones(quantus_module):
    """Quantus' top_n_sign takes the signs of the first five features in memory order."""
    a = np.zeros((2, 1, 1, 8))
    a[0, 0, 0, :5] = 1.0
    a[1, 0, 0, :5] = 1.0
    a[0, 0, 0, 7] = 9.0  # the largest feature differs between the two maps
    a[1, 0, 0, 6] = 9.0
    top_n_sign = quantus_module.functions.discretise_func.top_n_sign
    assert top_n_sign(a[0].ravel()) == top_n_sign(a[1].ravel())  # Quantus: the same explanation
    model = make_model(8, n_classes=2)
    x = torch.rand(2, 1, 1, 8, generator=torch.Generator().manual_seed(0))
    ours = rob.consistency(model, x, torch.from_numpy(a).float(), k=1)
    assert torch.isnan(ours).all()  # ours: different top features, so no explanation-mates


def test_bug_quantus_consistency_scores_a_unique_explanation_zero(quantus_module):
    model = make_model(4, n_classes=2)
    x = np.random.default_rng(0).random((3, 1, 2, 2)).astype(np.float32)
    a = (np.stack([np.full((1, 2, 2), v) for v in (1.0, -1.0, 1.0)])
         * np.array([1, 2, 3]).reshape(3, 1, 1, 1))
    metric = quantus_module.Consistency(
        discretise_func=quantus_module.functions.discretise_func.sign,
        normalise=False, abs=False, disable_warnings=True)
    theirs = metric(model=model, x_batch=x, y_batch=np.zeros(3, dtype=int), a_batch=a, device="cpu",
                    channel_first=True)
    assert theirs[1] == 0.0
    ours = rob.consistency(model, torch.from_numpy(x), torch.from_numpy(a).float(),
                           discretisation="sign")
    assert torch.isnan(ours[1]) and not torch.isnan(ours[[0, 2]]).any()
    # a probability of agreement: higher is better
    assert quantus_module.Consistency.score_direction.name == "LOWER"
    from xaiscore.specs import get_metric

    assert get_metric("consistency").higher_is_better is True


def test_bug_quantus_relative_stability_noise_is_one_sided(quantus_module):
    """Quantus' RIS/ROS/RRS pass upper_bound=0.2, which turns the noise into U(0.02, 0.2): never
    negative."""
    metric = quantus_module.RelativeInputStability(nr_samples=1, disable_warnings=True)
    arr = np.zeros((4, 100))
    np.random.seed(0)
    noise = metric.perturb_func(arr=arr, indices=np.tile(np.arange(100), (4, 1)))
    assert noise.min() >= 0.02 and noise.max() <= 0.2
    seen = []
    explain = lambda v, t: seen.append(v.clone()) or v.clone()  # noqa: E731
    x = torch.zeros(1, 1, 100, dtype=torch.float64)
    model = make_model(100).double()
    rob.relative_input_stability(model, x, x + 1, torch.zeros(1, dtype=torch.long),
                                 explain_fn=explain, n_samples=1,
                                 seed=0, on_prediction_change="keep")
    # ours: symmetric, radius 0.2
    assert seen[0].min() < 0 < seen[0].max() and seen[0].abs().max() <= 0.2


def test_bug_quantus_relative_stability_voids_a_sample_on_one_changed_prediction(quantus_module):
    """Agarwal et al. maximise over the copies that keep the prediction; Quantus returns NaN
    instead."""
    model, x, y, a = setup(batch=5)
    noise = replay_noise(torch.from_numpy(x), N, seed=9, low=-1.0, high=1.0)
    metric = quantus_module.RelativeInputStability(nr_samples=N, disable_warnings=True)
    feed_noise(metric, noise)
    theirs = quantus_call(metric, model, x, y, a)
    forward_fn, xt, at, yt, explain = ours_inputs(model, x, y, a)
    ours = rob.relative_input_stability(forward_fn, xt, at, yt, explain_fn=explain, n_samples=N,
                                        radius=1.0, seed=9)
    assert np.isnan(theirs).any()
    assert not torch.isnan(ours[torch.from_numpy(np.isnan(theirs))]).all()


def test_bug_quantus_continuity_blows_up_at_shift_zero_for_a_stochastic_explainer(quantus_module):
    """Quantus adds 1e-9 to ||x - x'|| at the zero shift; ours leaves the 0/0 shift out."""
    model, x, y, _ = setup(batch=1, shape=(1, 14, 14))
    rng = np.random.default_rng(0)

    def jittery(model, inputs, targets, **kwargs):
        return np_explain(model, inputs, targets) + 1e-3 * rng.random(np.shape(inputs))

    metric = quantus_module.Continuity(nr_steps=28, normalise=False, abs=False,
                                       disable_warnings=True)
    theirs = metric(model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=jittery,
                    device="cpu",
                    channel_first=True)
    assert theirs[0] > 1e4
    explain = quantus_explainer(model, jittery)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    ours = rob.continuity(xt, explain(xt, yt), yt, explain_fn=explain, n_steps=28, normalise=None,
                          abs=False)
    assert 0 < ours[0] < 100


def _numpy_state():
    state = np.random.get_state()
    return state[1].copy(), state[2]


def test_bug_quantus_sensitivity_reads_and_advances_the_global_numpy_rng(quantus_module):
    model, x, y, a = setup(batch=2)
    np.random.seed(123)
    before = _numpy_state()
    metric = quantus_module.MaxSensitivity(nr_samples=2, disable_warnings=True)
    quantus_call(metric, model, x, y, a)
    after = _numpy_state()
    assert after[1] != before[1] or not (after[0] == before[0]).all()
    np.random.seed(123)
    torch_state = torch.random.get_rng_state()
    forward_fn, xt, at, yt, explain = ours_inputs(model, x, y, a)
    rob.max_sensitivity(xt, at, yt, explain_fn=explain, n_samples=2, seed=0)
    unchanged = _numpy_state()
    assert unchanged[1] == before[1] and (unchanged[0] == before[0]).all()
    assert torch.equal(torch_state, torch.random.get_rng_state())


def test_bug_quantus_refuses_an_all_zero_map(quantus_module):
    """Quantus asserts on an all-zero a_batch; ours defines its relative sensitivity as NaN."""
    model, x, y, _ = setup(batch=2)
    zero = np.zeros_like(x)
    metric = quantus_module.MaxSensitivity(nr_samples=2, disable_warnings=True)
    with pytest.raises(AssertionError, match="equal to zero"):
        metric(model=model, x_batch=x, y_batch=y, a_batch=zero.copy(), device="cpu",
               channel_first=True,
               explain_func=lambda model, inputs, targets, **k: np.zeros_like(inputs))
    ours = rob.max_sensitivity(torch.from_numpy(x), torch.from_numpy(zero), torch.from_numpy(y),
                               explain_fn=lambda v, t: torch.zeros_like(v), n_samples=2, seed=0)
    assert torch.isnan(ours).all()
