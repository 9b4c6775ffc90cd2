"""captum's FeatureAblation, KernelShap and Lime over superpixel grids and label maps."""

from __future__ import annotations

import importlib
import random

import numpy as np
import pytest
import torch
from torch import nn

from tests.reference import explainers as ref
from xaiscore._checks import DTypeError, OptionError, ShapeError
from xaiscore._engine.random import draw_seed, seeded_global_rngs
from xaiscore.explainers import captum_explainer, grid_feature_mask, make_explainer

captum = pytest.importorskip("captum")

GROUP_METHODS = ("FeatureAblation", "KernelShap", "Lime")


def _model(features: int, classes: int = 3, seed: int = 0, linear: bool = False) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    layers = (
        [nn.Flatten(), nn.Linear(features, classes)]
        if linear
        else [nn.Flatten(), nn.Linear(features, 8), nn.Tanh(), nn.Linear(8, classes)]
    )
    model = nn.Sequential(*layers).double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return model.eval()


def _score(model, target):
    def score(x_i):
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(x_i))[None])[0, target].item()

    return score


def _reference_grid(spatial, grid):
    ids = np.zeros(spatial, dtype=np.int64)
    for index in np.ndindex(*spatial):
        cell = 0
        for axis, (j, side, count) in enumerate(zip(index, spatial, grid)):
            cell = cell * count + (j * count) // side
        ids[index] = cell
    return ids


@pytest.mark.parametrize(
    "spatial, grid",
    [
        ((4, 6), (2, 3)),
        ((7,), (3,)),
        ((5, 5), (5, 5)),
        ((3, 4, 5), (1, 2, 3)),
        ((10, 9), (8, 8)),
        ((6, 6), (1, 1)),
    ],
)
def test_grid_feature_mask_matches_the_floor_rule(spatial, grid):
    mask = grid_feature_mask(spatial, grid)
    assert mask.shape == (1, 1) + spatial and mask.dtype == torch.long
    np.testing.assert_array_equal(mask[0, 0].numpy(), _reference_grid(spatial, grid))
    sizes = torch.bincount(mask.flatten())
    assert len(sizes) == int(np.prod(grid)) and int(sizes.max() - sizes.min()) <= int(
        np.prod([-(-s // g) for s, g in zip(spatial, grid)])
        - np.prod([s // g for s, g in zip(spatial, grid)])
    )


@pytest.mark.parametrize("source", ["grid", "label_map", "callable"])
def test_feature_ablation_matches_the_reference(source):
    x = torch.rand(3, 2, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    target = torch.tensor([0, 2, 1])
    model = _model(72)
    labels = torch.tensor(
        [[5, 5, 9, 9, 9, 2]] * 3 + [[7, 7, 7, 2, 2, 2]] * 3
    )  # ids need not be contiguous
    if source == "grid":
        explain, masks = (
            captum_explainer(model, "FeatureAblation", grid=(3, 2), max_batch_size=4),
            [_reference_grid((6, 6), (3, 2))[None]] * 3,
        )
    elif source == "label_map":
        explain, masks = (
            captum_explainer(model, "FeatureAblation", feature_mask=labels, baselines=0.25),
            [labels.numpy()[None]] * 3,
        )
    else:
        per_input = [labels, labels.t(), (labels > 5).long()]
        explain = captum_explainer(
            model, "FeatureAblation", feature_mask=lambda inputs: torch.stack(per_input)[:, None]
        )
        masks = [m.numpy()[None] for m in per_input]
    a = explain(x, target)
    assert a.shape == x.shape and a.dtype == x.dtype
    baseline = 0.25 if source == "label_map" else 0.0
    for i in range(3):
        expected = ref.feature_ablation(
            _score(model, int(target[i])), x[i].numpy(), masks[i], baseline
        )
        np.testing.assert_allclose(a[i].numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.filterwarnings("ignore:You are providing multiple inputs")
def test_kernel_shap_is_captums_and_close_to_exact_shapley_values():
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.tensor([0, 2])
    mask = _reference_grid((4, 4), (2, 2))[None]
    nonlinear = _model(16)
    a = captum_explainer(nonlinear, "KernelShap", grid=2, seed=0, n_samples=1000)(x, target)
    with seeded_global_rngs(draw_seed(torch.Generator().manual_seed(0))):
        expected = captum.attr.KernelShap(nonlinear).attribute(
            x.clone(),
            target=target,
            n_samples=1000,
            feature_mask=grid_feature_mask((4, 4), 2),
            perturbations_per_eval=64,
        )
    np.testing.assert_allclose(a.numpy(), expected.double().numpy(), rtol=1e-6, atol=1e-8)
    for i in range(2):  # a sampled regression without the efficiency constraint: close, not exact
        exact = ref.shapley_values(_score(nonlinear, int(target[i])), x[i].numpy(), mask)
        np.testing.assert_allclose(a[i].numpy(), exact, atol=0.1 * np.abs(exact).max())
    linear = _model(
        16, linear=True
    )  # additive: Shapley values are the ablation effects, for any sample
    a = captum_explainer(linear, "KernelShap", grid=2, seed=1, n_samples=60)(x, target)
    for i in range(2):
        exact = ref.shapley_values(_score(linear, int(target[i])), x[i].numpy(), mask)
        np.testing.assert_allclose(
            exact,
            ref.feature_ablation(_score(linear, int(target[i])), x[i].numpy(), mask),
            rtol=1e-10,
            atol=1e-12,
        )
        np.testing.assert_allclose(a[i].numpy(), exact, rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore:You are providing multiple inputs")
def test_lime_is_captum_lime_under_the_adapters_seed():
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.tensor([1, 0])
    model = _model(36)
    a = captum_explainer(model, "Lime", grid=3, seed=5, n_samples=80, max_batch_size=16)(x, target)
    seed = draw_seed(torch.Generator().manual_seed(5))
    with seeded_global_rngs(seed):
        expected = captum.attr.Lime(model).attribute(
            x.clone().requires_grad_(True),
            target=target,
            feature_mask=grid_feature_mask((6, 6), 3),
            n_samples=80,
            perturbations_per_eval=16,
        )
    np.testing.assert_allclose(a.numpy(), expected.detach().double().numpy(), rtol=1e-6, atol=1e-8)
    linear = _model(36, linear=True)
    lime = captum_explainer(linear, "Lime", grid=(1, 2), seed=0, n_samples=200)(x[:1], target[:1])
    ablation = captum_explainer(linear, "FeatureAblation", grid=(1, 2))(x[:1], target[:1])
    # Two features: LIME's surrogate ranks them as their ablation effects do.
    assert torch.sign(lime[0, 0, 0, 0] - lime[0, 0, 0, 5]) == torch.sign(
        ablation[0, 0, 0, 0] - ablation[0, 0, 0, 5]
    )


@pytest.mark.parametrize("method", GROUP_METHODS)
def test_feature_group_methods_batch_under_max_batch_size_and_are_seeded(method):
    base = _model(36)
    sizes = []

    class Counting(nn.Module):
        def forward(self, inputs):
            sizes.append(inputs.shape[0])
            return base(inputs)

    x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.tensor([0, 1, 2])
    options = {} if method == "FeatureAblation" else {"n_samples": 30}
    state = (torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    a = captum_explainer(Counting(), method, grid=3, seed=2, max_batch_size=7, **options)(x, target)
    assert max(sizes) <= 7 and max(sizes) > 1  # several perturbations per model call
    b = captum_explainer(base, method, grid=3, seed=2, max_batch_size=100, **options)(x, target)
    np.testing.assert_allclose(
        a.numpy(), b.numpy(), rtol=1e-6, atol=1e-8
    )  # batching does not change the maps
    assert (
        torch.equal(state[0], torch.random.get_rng_state())
        and (state[1] == np.random.get_state()[1]).all()
    )
    assert state[2] == random.getstate()


def test_lime_batch_warning_is_silenced_and_other_defaults(recwarn):
    model = _model(36)
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    captum_explainer(model, "Lime", seed=0, n_samples=20)(x, torch.tensor([0, 1]))
    assert not [w for w in recwarn if "multiple inputs" in str(w.message)]
    explain = make_explainer("KernelShap", model, grid=2, seed=0)
    assert explain.attribute_kwargs["n_samples"] == 200 and explain.stochastic
    default = captum_explainer(model, "FeatureAblation")(
        torch.rand(1, 1, 16, 16, dtype=torch.float64).flatten(2)[..., :36].reshape(1, 1, 6, 6),
        torch.tensor([0]),
    )
    assert len(torch.unique(default)) <= 36  # default grid: 8 cells per axis capped at the 6 pixels


def test_feature_mask_errors():
    model = _model(36)
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    target = torch.tensor([0, 1])
    with pytest.raises(OptionError, match="feature-group methods"):
        captum_explainer(model, "Saliency", grid=2)
    with pytest.raises(OptionError, match="at most one"):
        captum_explainer(
            model, "FeatureAblation", grid=2, feature_mask=torch.zeros(6, 6, dtype=torch.long)
        )
    with pytest.raises(OptionError, match="grid"):
        captum_explainer(model, "FeatureAblation", grid=0)
    with pytest.raises(OptionError, match="grid"):
        captum_explainer(model, "FeatureAblation", grid=(2.5, 2))
    with pytest.raises(OptionError, match="at most as many cells"):
        captum_explainer(model, "FeatureAblation", grid=7)(x, target)
    with pytest.raises(OptionError, match="one positive int per spatial dim"):
        captum_explainer(model, "FeatureAblation", grid=(2, 2, 2))(x, target)
    with pytest.raises(ShapeError, match="feature_mask"):
        captum_explainer(
            model, "FeatureAblation", feature_mask=torch.zeros(5, 6, dtype=torch.long)
        )(x, target)
    with pytest.raises(DTypeError, match="integer feature ids"):
        captum_explainer(model, "FeatureAblation", feature_mask=torch.zeros(6, 6))(x, target)
    with pytest.raises(OptionError, match="non-negative"):
        captum_explainer(
            model, "FeatureAblation", feature_mask=-torch.ones(6, 6, dtype=torch.long)
        )(x, target)
    with pytest.raises(ShapeError, match=r"feature_mask\(x\)"):
        captum_explainer(
            model, "Lime", feature_mask=lambda t: torch.zeros(3, 1, 6, 6, dtype=torch.long)
        )(x, target)
    assert (
        importlib.import_module("xaiscore.explainers.captum").CAPTUM_METHODS["Lime"].feature_groups
    )
