"""Parity with the installed Quantus (0.6.x) for the similarity functions and the randomization
metrics on deterministic configurations, and one test per Quantus bug showing our documented
behaviour instead.

To compare whole MPRT runs, our randomizer is given a ``reinit`` that re-initialises a layer the way
Quantus does (``torch.manual_seed(seed + 1)`` then ``reset_parameters()``), so both sides explain
the same random models; everything else (layer order, explanation, similarity, summary) is our own
code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from xaiscore.explainers import quantus_explainer
from xaiscore.functional import randomization as rnd
from xaiscore.functional import similarity as sim

pytestmark = pytest.mark.quantus

QUANTUS_SEED = 42


def quantus_reinit(module: nn.Module, generator: torch.Generator) -> None:
    """Quantus' rule, for parity only: the same global seed (seed + 1) before every layer's reset.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(QUANTUS_SEED + 1)
        module.reset_parameters()


def make_model(classes: int = 3) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(1, 2, 3, padding=1), nn.Softplus(), nn.Conv2d(2, 2, 3, padding=1), nn.Tanh(),
            nn.Flatten(), nn.Linear(2 * 8 * 8, classes),
        ).eval()


def data(batch: int = 4, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, classes, batch)
    return x, y


def gradient(model: nn.Module):
    def explain(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = x.detach().clone().requires_grad_(True)
        model(x).gather(1, target[:, None]).sum().backward()
        return x.grad.detach()

    return explain


def quantus_gradient(model, inputs, targets, **kwargs) -> np.ndarray:
    """The same explainer in Quantus' numpy protocol."""
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
    return gradient(model)(x, torch.as_tensor(np.asarray(targets)).long()).numpy()


def ignores_model(model):
    return lambda x, target: (x - 0.3) ** 3


def quantus_ignores_model(model, inputs, targets, **kwargs) -> np.ndarray:
    return (np.asarray(inputs) - 0.3) ** 3


# --- similarities ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_similarity_functions_match_quantus(quantus_module, seed):
    rng = np.random.default_rng(seed)
    a = rng.random((5, 64))
    b = a + rng.normal(0, 0.5, (5, 64))
    b[1] = rng.integers(0, 3, 64)  # ties
    qs = quantus_module.functions.similarity_func
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    np.testing.assert_allclose(sim.spearman_correlation(ta, tb).numpy(),
                               qs.correlation_spearman(a, b, batched=True),
                               atol=1e-12)
    np.testing.assert_allclose(sim.pearson_correlation(ta, tb).numpy(),
                               qs.correlation_pearson(a, b, batched=True),
                               atol=1e-12)
    np.testing.assert_allclose(sim.ssim(ta, tb, flatten=True).numpy(), qs.ssim(a, b, batched=True),
                               atol=1e-12)
    # Quantus' `cosine` is the cosine *distance* and `squared_difference` the *sum*.
    for i in range(5):
        assert sim.cosine_similarity(ta, tb)[i].item() == pytest.approx(1 - qs.cosine(a[i], b[i]),
                                                                        abs=1e-12)
        assert sim.mean_squared_error(ta, tb)[i].item() * 64 == pytest.approx(
            qs.squared_difference(a[i], b[i]))


# --- MPRT ------------------------------------------------------------------------------------


def quantus_mprt(quantus, model, x, y, explain_func, **kwargs):
    metric = quantus.MPRT(seed=QUANTUS_SEED, disable_warnings=True, **kwargs)
    return metric(model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=explain_func,
                  device="cpu",
                  batch_size=len(x))


@pytest.mark.parametrize("order", ["bottom_up", "top_down", "independent"])
def test_mprt_layer_similarities_match_quantus(quantus_module, order):
    model = make_model()
    x, y = data()
    expected = quantus_mprt(quantus_module, model, x, y, quantus_gradient, layer_order=order)
    ours = rnd.mprt(model, torch.from_numpy(x), torch.from_numpy(y), explainer_factory=gradient,
                    order=order,
                    reinit=quantus_reinit)
    assert list(expected)[1:] == list(ours.layers)
    for step, layer in enumerate(ours.layers):
        np.testing.assert_allclose(ours.curve[:, step].numpy(), expected[layer], atol=1e-5)


def test_quantus_mprt_averages_in_the_trivial_original_similarity(quantus_module):
    """Quantus skips the key "orig" but stores "original": its average includes a similarity of 1.
    """
    model = make_model()
    x, y = data()
    average = np.asarray(quantus_mprt(quantus_module, model, x, y, quantus_gradient,
                                      layer_order="bottom_up",
                                      return_average_correlation=True))
    ours = rnd.mprt(model, torch.from_numpy(x), torch.from_numpy(y), explainer_factory=gradient,
                    reinit=quantus_reinit)
    n_layers = ours.curve.shape[1]
    np.testing.assert_allclose(average, (1.0 + ours.curve.sum(dim=1).numpy()) / (n_layers + 1),
                               atol=1e-5)
    np.testing.assert_allclose(ours.score.numpy(), ours.curve.mean(dim=1).numpy())
    assert (ours.score.numpy() < average - 1e-3).all()


def test_quantus_reseeds_the_global_torch_generator_and_we_do_not(quantus_module):
    model = make_model()
    x, y = data()
    torch.manual_seed(123)
    quantus_mprt(quantus_module, model, x, y, quantus_gradient, layer_order="bottom_up")
    assert torch.initial_seed() == QUANTUS_SEED + 1  # Quantus left the global generator reseeded
    torch.manual_seed(123)
    state = torch.get_rng_state()
    rnd.mprt(model, torch.from_numpy(x), torch.from_numpy(y), explainer_factory=gradient)
    assert torch.initial_seed() == 123 and torch.equal(torch.get_rng_state(), state)


def test_quantus_gives_layers_of_the_same_shape_the_same_random_weights(quantus_module):
    from quantus.helpers.model.pytorch_model import PyTorchModel

    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    wrapped = PyTorchModel(model, channel_first=True)
    *_, (_, quantus_random) = wrapped.get_random_layer_generator(order="bottom_up",
                                                                 seed=QUANTUS_SEED)
    # the same seed for every layer
    assert torch.equal(quantus_random[0].weight, quantus_random[1].weight)
    from xaiscore._engine.model_randomization import randomized_models

    *_, (_, ours) = randomized_models(model, seed=QUANTUS_SEED)
    assert not torch.equal(ours[0].weight, ours[1].weight)


# --- sMPRT -----------------------------------------------------------------------------------


def test_smooth_mprt_without_noise_matches_quantus(quantus_module):
    """Quantus draws sMPRT noise from numpy's global generator; without noise both are
    deterministic."""
    model = make_model()
    x, y = data()
    metric = quantus_module.SmoothMPRT(seed=QUANTUS_SEED, nr_samples=3, noise_magnitude=0.0,
                                       layer_order="bottom_up",
                                       disable_warnings=True)
    expected = metric(model=model, x_batch=x, y_batch=y, a_batch=None,
                      explain_func=quantus_module.explain,
                      explain_func_kwargs={"method": "Saliency"}, device="cpu", batch_size=len(x))
    ours = rnd.smooth_mprt(model, torch.from_numpy(x), torch.from_numpy(y), n_samples=3,
                           noise_magnitude=0.0,
                           explainer_factory=lambda m: quantus_explainer(m, method="Saliency"),
                           reinit=quantus_reinit)
    for step, layer in enumerate(ours.layers):
        np.testing.assert_allclose(ours.curve[:, step].numpy(), expected[layer], atol=1e-5)


def test_quantus_smooth_mprt_ignores_a_custom_explain_func(quantus_module):
    """Quantus' sMPRT calls quantus.explain, not the explain_func it is given; we call the explainer
    given."""
    model = make_model()
    x, y = data()
    metric = quantus_module.SmoothMPRT(seed=QUANTUS_SEED, nr_samples=2, noise_magnitude=0.0,
                                       layer_order="bottom_up",
                                       disable_warnings=True, return_average_correlation=True)
    expected = metric(model=model, x_batch=x, y_batch=y, a_batch=None,
                      explain_func=quantus_ignores_model,
                      explain_func_kwargs={"method": "Saliency"}, device="cpu", batch_size=len(x))
    # a model-independent explainer would give exactly 1
    assert (np.asarray(expected) < 0.999).all()
    ours = rnd.smooth_mprt(model, torch.from_numpy(x), torch.from_numpy(y), n_samples=2,
                           noise_magnitude=0.0,
                           explainer_factory=ignores_model)
    np.testing.assert_allclose(ours.score.numpy(), 1.0, atol=1e-6)


# --- eMPRT -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(2))
def test_efficient_mprt_matches_quantus(quantus_module, seed):
    model = make_model()
    x, y = data(seed=seed)
    metric = quantus_module.EfficientMPRT(seed=QUANTUS_SEED, layer_order="bottom_up",
                                          disable_warnings=True)
    expected = metric(model=model, x_batch=x, y_batch=y, a_batch=None,
                      explain_func=quantus_gradient, device="cpu",
                      batch_size=len(x))
    ours = rnd.efficient_mprt(model, torch.from_numpy(x), torch.from_numpy(y),
                              explainer_factory=gradient,
                              reinit=quantus_reinit)
    np.testing.assert_allclose(ours.score.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_quantus_bin_rules_count_dimensions_not_values(quantus_module):
    """Quantus' rules use ``a_batch[0].ndim`` (3 for one C x H x W map) as the number of values."""
    rules = quantus_module.functions.n_bins_func
    small = np.random.default_rng(0).random((2, 1, 8, 8))
    large = np.random.default_rng(0).random((2, 1, 32, 32))
    assert rules.rice_rule(small) == rules.rice_rule(large) == int(2 * 3 ** (1 / 3))
    assert rules.sturges_formula(small) == rules.sturges_formula(large) == int(np.log2(3) + 1)
    # Ours count the values of each sample: ceil(2 N^(1/3)) and ceil(log2 N) + 1, clamped to
    # [10, 200].
    entropy = rnd.histogram_entropy
    n_large = 1024
    rice_large = max(10, int(np.ceil(2 * n_large ** (1 / 3))))
    counts, _ = np.histogram(large[0].ravel(), bins=rice_large)
    from scipy.stats import entropy as scipy_entropy

    assert entropy(torch.from_numpy(large),
                   n_bins="rice")[0].item() == pytest.approx(scipy_entropy(counts))
    assert rice_large == 21


# --- Random Logit ----------------------------------------------------------------------------


def test_random_logit_with_two_classes_matches_quantus(quantus_module):
    """With two classes the other class is forced, so both sides are deterministic."""
    model = make_model(classes=2)
    x, y = data(classes=2)
    metric = quantus_module.RandomLogit(num_classes=2, seed=QUANTUS_SEED, normalise=False,
                                        abs=False,
                                        disable_warnings=True)
    expected = metric(model=model, x_batch=x, y_batch=y, a_batch=None,
                      explain_func=quantus_gradient, device="cpu",
                      batch_size=len(x))
    ours = rnd.random_logit(model, torch.from_numpy(x), torch.from_numpy(y),
                            explainer_factory=gradient,
                            similarity="ssim_flat", normalise=None, abs=False)
    assert (ours.off_target.numpy() == 1 - y).all()
    np.testing.assert_allclose(ours.score.numpy(), expected, atol=1e-5)


def test_quantus_random_logit_reseeds_numpy_and_we_do_not(quantus_module):
    model = make_model(classes=4)
    x, y = data(classes=4)
    np.random.seed(7)
    state = np.random.get_state()[1].copy()
    quantus_module.RandomLogit(num_classes=4, seed=QUANTUS_SEED, disable_warnings=True)(
        model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=quantus_gradient,
        device="cpu")
    assert not np.array_equal(np.random.get_state()[1], state)
    np.random.seed(7)
    rnd.random_logit(model, torch.from_numpy(x), torch.from_numpy(y), explainer_factory=gradient)
    assert np.array_equal(np.random.get_state()[1], state)
