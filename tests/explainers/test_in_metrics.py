"""The ViT and prototype explainers through every re-explaining metric; the randomizer on them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import xaiscore.functional.randomization as rnd
import xaiscore.functional.robustness as rob
from tests.explainer_helpers import blob_data, trained_protopnet, trained_vit
from xaiscore._engine.model_randomization import (
    parameterised_layers,
    randomized_models,
    reinitialise_layer,
)
from xaiscore.explainers import make_explainer

ROBUSTNESS = [
    "max_sensitivity",
    "avg_sensitivity",
    "local_lipschitz_estimate",
    "relative_input_stability",
    "relative_output_stability",
    "relative_representation_stability",
    "continuity",
]
RANDOMIZATION = ["mprt", "smooth_mprt", "efficient_mprt", "random_logit"]
CASES = [
    ("vit", "AttentionRollout", {}),
    ("vit", "CheferRelevance", {}),
    ("vit", "RISE", {"n_masks": 24, "grid_size": 4, "seed": 0, "max_batch_size": 48}),
    ("proto", "Prototype", {"top_k": 2}),
]
LAYER = {"vit": "norm", "proto": "add_on"}


@pytest.fixture(scope="module")
def models():
    return {"vit": trained_vit()[0], "proto": trained_protopnet()[0]}


@pytest.fixture(scope="module")
def data():
    x, y, _ = blob_data(4, 16, seed=6, dtype=torch.float64)
    return x, y


@pytest.mark.parametrize("kind, method, options", CASES)
@pytest.mark.parametrize("metric", ROBUSTNESS)
def test_robustness_metrics_run_on_the_new_explainers(models, data, kind, method, options, metric):
    model = models[kind]
    x, y = data
    explain = make_explainer(method, model, **options)
    a = explain(x, y)
    fn = getattr(rob, metric)
    common = dict(explain_fn=explain, max_batch_size=6)
    if metric == "continuity":
        out = fn(x, a, y, n_steps=3, **common)
    elif metric in ("relative_input_stability", "relative_output_stability"):
        out = fn(model, x, a, y, n_samples=3, seed=0, **common)
    elif metric == "relative_representation_stability":
        out = fn(model, x, a, y, layer=LAYER[kind], n_samples=3, seed=0, **common)
    else:
        out = fn(x, a, y, n_samples=3, radius=0.05, seed=0, **common)
    assert out.shape == (4,) and torch.isfinite(out).all() and (out >= 0).all()


@pytest.mark.parametrize("kind, method, options", CASES)
@pytest.mark.parametrize("metric", RANDOMIZATION)
def test_randomization_metrics_run_on_the_new_explainers(
    models, data, kind, method, options, metric
):
    model = models[kind]
    x, y = data
    factory = lambda m: make_explainer(method, m, **options)  # noqa: E731
    fn = getattr(rnd, metric)
    extra = {"n_samples": 2, "noise_magnitude": 0.05} if metric == "smooth_mprt" else {}
    result = fn(model, x, y, explainer_factory=factory, max_batch_size=8, **extra)
    score = result.score
    assert score.shape == (4,) and torch.isfinite(score).all()
    if metric in ("mprt", "smooth_mprt"):
        assert result.curve.shape == (4, len(parameterised_layers(model)))


def _changed(model: nn.Module, randomized: nn.Module) -> list[str]:
    before = dict(model.named_modules())
    names = []
    for name, module in randomized.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if own and any(
            not torch.equal(p, dict(before[name].named_parameters(recurse=False))[k])
            for k, p in own.items()
        ):
            names.append(name)
    return names


@pytest.mark.parametrize("kind", ["vit", "proto"])
def test_the_randomizer_reinitialises_every_attention_and_prototype_layer(models, kind):
    model = models[kind]
    layers = [name for name, _ in parameterised_layers(model)]
    if kind == "vit":
        assert {
            "embedding",
            "embedding.projection",
            "blocks.0.attn.qkv",
            "blocks.0.attn.proj",
            "blocks.1.norm1",
            "head",
        } <= set(layers)
    else:
        assert layers == [
            "backbone.0",
            "backbone.3",
            "add_on.0",
            "add_on.2",
            "prototype_layer",
            "last_layer",
        ]
    steps = [
        (name, _changed(model, randomized)) for name, randomized in randomized_models(model, seed=3)
    ]
    for position, (name, changed) in enumerate(
        steps
    ):  # bottom-up cascade: layers 1..k changed at step k
        assert changed == layers[: position + 1], name
    if kind == "proto":  # ProtoPNet's prototype initialisation: uniform on [0, 1)
        layer = dict(model.named_modules())["prototype_layer"]
        copy = type(layer)(*layer.prototypes.shape).double()
        reinitialise_layer(copy, 5)
        assert (
            (copy.prototypes >= 0) & (copy.prototypes < 1)
        ).all() and copy.prototypes.std() > 0.1
    else:  # class token and positions ~ N(0, 0.02^2); LayerNorm back to ones and zeros
        randomized = list(randomized_models(model, seed=3))[-1][1]
        assert 0.005 < randomized.embedding.position.std() < 0.05
        assert torch.equal(randomized.blocks[0].norm1.weight, torch.ones(32, dtype=torch.float64))


def test_multihead_attention_is_reset_with_its_own_xavier_initialisation():
    attention = nn.MultiheadAttention(8, 2).double()
    with torch.no_grad():
        attention.in_proj_weight.fill_(3.0)
        attention.in_proj_bias.fill_(1.0)
    reinitialise_layer(attention, seed=7)
    bound = math.sqrt(6 / (8 + 24))  # xavier-uniform of the (24, 8) input projection
    weight = attention.in_proj_weight.detach()
    assert weight.abs().max() <= bound and weight.std() > bound / 3
    assert torch.equal(attention.in_proj_bias, torch.zeros(24, dtype=torch.float64))
    again = nn.MultiheadAttention(8, 2).double()
    reinitialise_layer(again, seed=7)
    assert torch.equal(again.in_proj_weight, weight)  # the layer's seed alone decides
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        expected = torch.empty(24, 8, dtype=torch.float64)
        nn.init.xavier_uniform_(expected)
    np.testing.assert_array_equal(weight.numpy(), expected.numpy())
