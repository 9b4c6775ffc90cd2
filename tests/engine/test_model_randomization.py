"""The model randomizer: layer definition, orders, seeds, re-initialisation rules, no side effects.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from xaiscore import DTypeError, OptionError
from xaiscore._engine.model_randomization import (
    NoParameterisedLayersError,
    layer_seeds,
    parameterised_layers,
    randomized_models,
    reinitialise_layer,
)


def small_net() -> nn.Module:
    # only to build a fixed test model; the code under test never touches the global RNG
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
        nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.ReLU()),
        nn.Flatten(), nn.Linear(2 * 4 * 4, 3),
    )


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed_layers(model: nn.Module, reference: dict[str, torch.Tensor]) -> list[str]:
    names = []
    for name, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if own and any(not torch.equal(p, reference[f"{name}.{k}" if name else k])
                       for k, p in own.items()):
            names.append(name)
    return names


def test_layers_are_modules_owning_parameters_in_registration_order():
    model = small_net()
    assert [name for name, _ in parameterised_layers(model)] == ["0", "1", "3.0", "5"]


def test_shared_modules_count_once_and_root_parameters_count():
    shared = nn.Linear(3, 3)

    class WithRootParameter(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))
            self.first, self.second = shared, shared

        def forward(self, x):
            return self.second(self.first(x)) * self.scale

    assert [name for name, _ in parameterised_layers(WithRootParameter())] == ["", "first"]


def test_no_parameterised_layers_is_a_clear_error():
    with pytest.raises(NoParameterisedLayersError, match="at least one layer with parameters"):
        parameterised_layers(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3, affine=False)))
    with pytest.raises(DTypeError, match="nn.Module"):
        parameterised_layers(lambda x: x)


@pytest.mark.parametrize("order", ["bottom_up", "top_down", "independent"])
def test_each_step_randomizes_the_documented_set_of_layers(order):
    model = small_net()
    original = snapshot(model)
    names = ["0", "3.0", "5"]  # BatchNorm's reset_parameters restores its (already default) values
    seen = []
    for name, randomized in randomized_models(model, order=order, seed=3):
        seen.append(name)
        changed = changed_layers(randomized, original)
        position = [n for n, _ in parameterised_layers(model)].index(name)
        all_names = [n for n, _ in parameterised_layers(model)]
        if order == "bottom_up":
            expected = all_names[: position + 1]
        elif order == "top_down":
            expected = all_names[position:]
        else:
            expected = [name]
        assert changed == [n for n in expected if n in names]
    assert seen == (["5", "3.0", "1", "0"] if order == "top_down" else ["0", "1", "3.0", "5"])
    assert all(torch.equal(v, original[k]) for k, v in model.state_dict().items())


def test_fully_randomized_model_is_the_same_for_both_cascading_orders():
    model = small_net()
    *_, (_, bottom_up) = randomized_models(model, order="bottom_up", seed=5)
    bottom = snapshot(bottom_up)
    *_, (_, top_down) = randomized_models(model, order="top_down", seed=5)
    assert all(torch.equal(bottom[k], v) for k, v in top_down.state_dict().items())


def test_deterministic_under_a_seed_and_different_across_seeds():
    model = small_net()
    first = [snapshot(m) for _, m in randomized_models(model, seed=1)]
    again = [snapshot(m) for _, m in randomized_models(model, seed=1)]
    other = [snapshot(m) for _, m in randomized_models(model, seed=2)]
    assert all(torch.equal(a[k], b[k]) for a, b in zip(first, again) for k in a)
    assert not torch.equal(first[-1]["5.weight"], other[-1]["5.weight"])


def test_layers_of_the_same_shape_get_different_weights():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    *_, (_, randomized) = randomized_models(model, seed=0)
    assert not torch.equal(randomized[0].weight, randomized[1].weight)


def test_global_random_state_is_untouched():
    model, layer = small_net(), nn.Linear(2, 2)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    for _ in randomized_models(model, seed=7):
        pass
    reinitialise_layer(layer, 3, "normal")
    reinitialise_layer(layer, 3)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])


def test_reset_parameters_matches_pytorch_default_initialisation_under_the_layer_seed():
    layer = nn.Linear(5, 3)
    reinitialise_layer(layer, 11)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(11)
        expected = nn.Linear(5, 3, dtype=torch.float64).float()  # __init__ calls reset_parameters
    assert torch.equal(layer.weight, expected.weight) and torch.equal(layer.bias, expected.bias)
    double = nn.Linear(5, 3).double()
    reinitialise_layer(double, 11)
    assert torch.equal(double.weight.float(), layer.weight)  # the same draws whatever the dtype


def test_batchnorm_running_statistics_are_reset_on_the_copy_only():
    model = small_net()
    model.train()
    model(torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(0)))
    stats = model[1].running_mean.clone()
    assert stats.abs().sum() > 0
    for name, randomized in randomized_models(model, seed=0):
        if name == "1":
            assert torch.equal(randomized[1].running_mean, torch.zeros(2))
    assert torch.equal(model[1].running_mean, stats)


def test_normal_rule_and_fallback_for_layers_without_reset_parameters():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.full((2000,), 3.0))
            self.zero = nn.Parameter(torch.zeros(4))

        def forward(self, x):
            return x * self.weight[: x.shape[-1]]

    module = Scale()
    reinitialise_layer(module, 4)  # no reset_parameters: falls back to "normal"
    assert module.weight.std().item() == pytest.approx(3.0, rel=0.1)
    assert module.weight.mean().abs().item() < 0.3
    assert torch.equal(module.zero, torch.zeros(4))  # no scale to match: stays zero
    linear = nn.Linear(30, 30)
    rms = linear.weight.pow(2).mean().sqrt().item()
    reinitialise_layer(linear, 4, "normal")
    assert linear.weight.pow(2).mean().sqrt().item() == pytest.approx(rms, rel=0.15)


def test_callable_rule_gets_the_module_and_a_seeded_cpu_generator():
    calls = []

    def fill(module, generator):
        calls.append((type(module).__name__, generator.device.type))
        for p in module.parameters(recurse=False):
            p.copy_(torch.rand(p.shape, generator=generator))

    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    steps = [snapshot(m) for _, m in randomized_models(model, seed=9, reinit=fill)]
    again = [snapshot(m) for _, m in randomized_models(model, seed=9, reinit=fill)]
    assert calls == [("Linear", "cpu")] * 4
    assert torch.equal(steps[-1]["1.weight"], again[-1]["1.weight"])
    assert (steps[-1]["0.weight"] >= 0).all()


def test_include_original_yields_an_unmodified_copy_first():
    model = small_net()
    name, first = next(randomized_models(model, include_original=True))
    assert name is None and first is not model
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in first.state_dict().items())


def test_option_errors():
    with pytest.raises(OptionError, match="order"):
        next(randomized_models(small_net(), order="sideways"))
    with pytest.raises(OptionError, match="reinit"):
        next(randomized_models(small_net(), reinit="xavier"))
    with pytest.raises(DTypeError, match="seed"):
        layer_seeds(1.5, 3)
