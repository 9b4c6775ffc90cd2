"""Attention rollout and Chefer et al.'s relevance on a trained tiny ViT against a numpy ViT."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from tests.explainer_helpers import blob_data, trained_vit
from tests.reference import explainers as ref
from xaiscore._checks import DTypeError, OptionError
from xaiscore._engine.batching import ModelOutputError
from xaiscore._engine.model_randomization import parameterised_layers
from xaiscore.explainers import (
    AttentionRolloutExplainer,
    CheferRelevanceExplainer,
    ModelStructureError,
    attention_rollout_explainer,
    check_explanation,
    chefer_relevance_explainer,
    make_explainer,
)
from xaiscore.explainers.tiny_models import TinyViT

GRID, SIZE = (4, 4), (16, 16)


@pytest.fixture(scope="module")
def vit():
    model, accuracy = trained_vit()
    assert accuracy > 0.9
    return model


@pytest.fixture(scope="module")
def data():
    x, y, boxes = blob_data(6, 16, seed=5, dtype=torch.float64)
    return x, y, boxes


def _numpy_vit(model):
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    kwargs = dict(
        patch=4, heads=4, depth=2, mean=float(model.input_mean), std=float(model.input_std)
    )

    def forward(x_i, override=None):
        return ref.vit_forward(weights, x_i, override=override, **kwargs)

    return forward


def test_the_numpy_vit_is_the_model(vit, data):
    x, _, _ = data
    forward = _numpy_vit(vit)
    with torch.no_grad():
        logits = vit(x)
    for i in range(x.shape[0]):
        np.testing.assert_allclose(
            forward(x[i].numpy())[0], logits[i].numpy(), rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize(
    "fusion, discard", [("mean", 0.0), ("max", 0.0), ("min", 0.0), ("mean", 0.3), ("max", 0.9)]
)
def test_rollout_matches_the_reference(vit, data, fusion, discard):
    x, y, _ = data
    a = attention_rollout_explainer(vit, head_fusion=fusion, discard_ratio=discard)(x, y)
    assert a.shape == (6, 1) + SIZE and a.dtype == torch.float64
    check_explanation(a, x)
    forward = _numpy_vit(vit)
    for i in range(x.shape[0]):
        _, attentions = forward(x[i].numpy())
        expected = ref.patch_map(
            ref.rollout(attentions, fusion=fusion, discard_ratio=discard)[0], GRID, SIZE
        )
        np.testing.assert_allclose(a[i, 0].numpy(), expected, rtol=1e-9, atol=1e-12)


def test_chefer_relevance_matches_the_reference_with_numerical_attention_gradients(vit, data):
    x, y, _ = data
    x, y = x[1:2], torch.tensor([1])  # (each sample takes 4,600 numpy forward passes)
    a = chefer_relevance_explainer(vit)(x, y)
    assert a.shape == (1, 1) + SIZE and (a >= 0).all()
    assert all(p.grad is None for p in vit.parameters())
    forward = _numpy_vit(vit)
    for i in range(1):
        _, attentions = forward(x[i].numpy())
        gradients = ref.attention_gradients(
            lambda override: forward(x[i].numpy(), override)[0], attentions, int(y[i])
        )
        expected = ref.patch_map(ref.chefer(attentions, gradients)[0], GRID, SIZE)
        np.testing.assert_allclose(a[i, 0].numpy(), expected, rtol=1e-6, atol=1e-9)


def test_chefer_relevance_reference_on_a_small_untrained_vit_every_class():
    model = TinyViT(
        1,
        3,
        image_size=8,
        patch_size=4,
        dim=8,
        depth=2,
        heads=2,
        generator=torch.Generator().manual_seed(3),
    )
    model = model.double().eval()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    a = chefer_relevance_explainer(model)(x, y)
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    for i in range(3):

        def forward(override=None, i=i):
            return ref.vit_forward(
                weights,
                x[i].numpy(),
                patch=4,
                heads=2,
                depth=2,
                mean=0.5,
                std=0.25,
                override=override,
            )

        _, attentions = forward()
        gradients = ref.attention_gradients(
            lambda override: forward(override)[0], attentions, int(y[i])
        )
        expected = ref.patch_map(ref.chefer(attentions, gradients)[0], (2, 2), (8, 8))
        np.testing.assert_allclose(a[i, 0].numpy(), expected, rtol=1e-6, atol=1e-9)


def test_maps_on_the_trained_vit_find_the_lesion(vit):
    x, y, boxes = blob_data(16, 16, seed=9, dtype=torch.float64)
    positive = y == 1
    for explain in (attention_rollout_explainer(vit), chefer_relevance_explainer(vit)):
        a = explain(x[positive], y[positive])[:, 0]
        inside = []
        for i, box in enumerate(boxes[positive, 0]):
            x0, y0, x1, y1 = (int(v) for v in box)
            region = torch.zeros(SIZE, dtype=torch.bool)
            region[y0:y1, x0:x1] = True
            inside.append(bool(a[i][region].mean() > a[i][~region].mean()))
        assert np.mean(inside) >= 0.75


def test_batched_equals_per_sample_float32_and_inference_mode(vit, data):
    x, y, _ = data
    for explain in (
        attention_rollout_explainer(vit, discard_ratio=0.2),
        chefer_relevance_explainer(vit),
    ):
        a = explain(x, y)
        alone = torch.cat([explain(x[i : i + 1], y[i : i + 1]) for i in range(x.shape[0])])
        np.testing.assert_allclose(alone.numpy(), a.numpy(), rtol=1e-9, atol=1e-12)
        with torch.inference_mode():
            inside = explain(x.clone(), y.clone())
        np.testing.assert_allclose(inside.numpy(), a.numpy(), rtol=1e-12, atol=1e-14)
        assert not a.is_inference()
    vit32 = copy.deepcopy(vit).float()
    for build in (attention_rollout_explainer, chefer_relevance_explainer):
        a32 = build(vit32)(x.float(), y)
        assert a32.dtype == torch.float32
        np.testing.assert_allclose(a32.numpy(), build(vit)(x, y).numpy(), rtol=1e-3, atol=1e-4)


def test_attention_fn_gives_the_same_maps_as_the_hooks(vit, data):
    x, y, _ = data

    def attention_fn(model, inputs):
        maps = []
        handles = [
            block.attn.attn_drop.register_forward_hook(lambda m, a, out: maps.append(out))
            for block in model.blocks
        ]
        logits = model(inputs)
        for handle in handles:
            handle.remove()
        return logits, maps

    for build in (attention_rollout_explainer, chefer_relevance_explainer):
        np.testing.assert_allclose(
            build(vit, attention_fn=attention_fn)(x, y).numpy(),
            build(vit)(x, y).numpy(),
            rtol=1e-12,
            atol=1e-14,
        )
    only_maps = attention_rollout_explainer(vit, attention_fn=lambda m, t: attention_fn(m, t)[1])
    np.testing.assert_allclose(
        only_maps(x, y).numpy(), attention_rollout_explainer(vit)(x, y).numpy(), rtol=1e-12
    )
    named = attention_rollout_explainer(
        vit, attention_modules=["blocks.0.attn.attn_drop", "blocks.1.attn.attn_drop"]
    )
    np.testing.assert_allclose(
        named(x, y).numpy(), attention_rollout_explainer(vit)(x, y).numpy(), rtol=1e-12
    )
    first_layer = attention_rollout_explainer(vit, attention_modules="blocks.0.*attn_drop")(x, y)
    forward = _numpy_vit(vit)
    expected = ref.patch_map(ref.rollout(forward(x[0].numpy())[1][:1])[0], GRID, SIZE)
    np.testing.assert_allclose(first_layer[0, 0].numpy(), expected, rtol=1e-9)
    with pytest.raises(ModelOutputError, match="logits"):
        chefer_relevance_explainer(vit, attention_fn=lambda m, t: attention_fn(m, t)[1])(x, y)
    with pytest.raises(ModelOutputError, match="list of attention"):
        attention_rollout_explainer(vit, attention_fn=lambda m, t: "no")(x, y)
    with pytest.raises(ModelOutputError, match="heads, T, T"):
        attention_rollout_explainer(vit, attention_fn=lambda m, t: [torch.ones(2, 3, 3)])(x, y)


class _MhaViT(nn.Module):
    """A transformer built on nn.MultiheadAttention (as torchvision's ViT)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Conv2d(1, 8, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.layers = nn.ModuleList(
            [nn.MultiheadAttention(8, 2, batch_first=True) for _ in range(2)]
        )
        self.head = nn.Linear(8, 2)

    def forward(self, x, return_attention=False):
        t = torch.cat(
            [self.cls.expand(len(x), -1, -1), self.embed(x).flatten(2).transpose(1, 2)], 1
        )
        maps = []
        for layer in self.layers:
            out, weights = layer(t, t, t, need_weights=return_attention, average_attn_weights=False)
            maps.append(weights)
            t = t + out
        return (self.head(t[:, 0]), maps) if return_attention else self.head(t[:, 0])


def test_multihead_attention_modules_are_read_for_rollout_only():
    model = _MhaViT().double().eval()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.tensor([0, 1, 0])
    rollout = attention_rollout_explainer(model)
    assert [name for name, _ in rollout._reader.modules] == ["layers.0", "layers.1"]
    a = rollout(x, y)
    with torch.no_grad():
        _, maps = model(x, return_attention=True)
    for i in range(3):
        expected = ref.patch_map(ref.rollout([m[i].numpy() for m in maps])[0], (2, 2), (8, 8))
        np.testing.assert_allclose(a[i, 0].numpy(), expected, rtol=1e-9)
    with pytest.raises(ModelStructureError, match="MultiheadAttention"):
        chefer_relevance_explainer(model)
    with pytest.raises(
        ModelStructureError, match="autograd path"
    ):  # its weights are a copy, off the path
        chefer_relevance_explainer(model, attention_fn=lambda m, t: m(t, return_attention=True))(
            x, y
        )


@pytest.mark.parametrize(
    "spatial_dims, image, patch, grid", [(1, 12, 3, (4,)), (3, (4, 8, 8), 4, (1, 2, 2))]
)
def test_one_and_three_dimensional_transformers(spatial_dims, image, patch, grid):
    model = (
        TinyViT(
            2,
            3,
            image_size=image,
            patch_size=patch,
            dim=16,
            depth=2,
            heads=2,
            spatial_dims=spatial_dims,
        )
        .double()
        .eval()
    )
    size = (image,) if isinstance(image, int) else image
    x = torch.rand((2, 2) + size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.tensor([0, 2])
    for build in (attention_rollout_explainer, chefer_relevance_explainer):
        a = build(model)(x, y)
        assert a.shape == (2, 1) + size and torch.isfinite(a).all()
    maps = []
    handles = [
        b.attn.attn_drop.register_forward_hook(lambda m, i, out: maps.append(out))
        for b in model.blocks
    ]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    a = attention_rollout_explainer(model)(x, y)
    for i in range(2):
        expected = ref.patch_map(ref.rollout([m[i].numpy() for m in maps])[0], grid, size)
        np.testing.assert_allclose(a[i, 0].numpy(), expected, rtol=1e-9)


def test_prefix_tokens_class_token_patch_grid_and_upsampling(vit, data):
    x, y, _ = data
    nearest = attention_rollout_explainer(vit, upsample="nearest")(x, y)
    assert torch.equal(
        nearest[:, :, ::4, ::4].repeat_interleave(4, 2).repeat_interleave(4, 3), nearest
    )
    np.testing.assert_allclose(
        attention_rollout_explainer(vit, patch_grid=(4, 4))(x, y).numpy(),
        attention_rollout_explainer(vit)(x, y).numpy(),
    )
    with pytest.raises(ModelStructureError, match="patch_grid"):
        attention_rollout_explainer(vit, patch_grid=(2, 4))(x, y)
    with pytest.raises(ModelStructureError, match="tile the input"):
        attention_rollout_explainer(vit, prefix_tokens=2, class_token=1)(x, y)  # 15 patches

    def resized(model, inputs):  # a 10 x 10 input explained through the 16 x 16 model: 16 patches
        maps = []
        handles = [
            b.attn.attn_drop.register_forward_hook(lambda m, a, out: maps.append(out))
            for b in model.blocks
        ]
        model(torch.nn.functional.interpolate(inputs, size=SIZE))
        for handle in handles:
            handle.remove()
        return maps

    with pytest.raises(ModelStructureError, match="tile the input"):
        attention_rollout_explainer(vit, attention_fn=resized)(x[..., :10, :10], y)
    assert attention_rollout_explainer(vit, attention_fn=resized, patch_grid=(4, 4))(
        x[..., :10, :10], y
    ).shape == (6, 1, 10, 10)


def test_errors_name_what_the_model_lacks(vit, data):
    x, y, _ = data
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 14 * 14, 2))
    with pytest.raises(
        ModelStructureError, match=r"attn_drop.*nn.MultiheadAttention.*attention_fn"
    ):
        attention_rollout_explainer(cnn)
    with pytest.raises(ModelStructureError, match="'nothing'"):
        attention_rollout_explainer(vit, attention_modules="nothing")
    with pytest.raises(OptionError, match="at most one"):
        attention_rollout_explainer(
            vit, attention_modules="*attn_drop", attention_fn=lambda m, t: []
        )
    with pytest.raises(DTypeError, match="callable"):
        attention_rollout_explainer(vit, attention_fn=3)
    with pytest.raises(DTypeError, match="nn.Module"):
        attention_rollout_explainer(lambda t: t)
    with pytest.raises(OptionError, match="head_fusion"):
        attention_rollout_explainer(vit, head_fusion="median")
    with pytest.raises(OptionError, match="discard_ratio"):
        attention_rollout_explainer(vit, discard_ratio=1.0)
    with pytest.raises(OptionError, match="prefix_tokens"):
        attention_rollout_explainer(vit, prefix_tokens=0)
    with pytest.raises(OptionError, match="class_token"):
        chefer_relevance_explainer(vit, class_token=1)
    with pytest.raises(OptionError, match="upsample"):
        chefer_relevance_explainer(vit, upsample="area")

    class Fused(nn.Module):  # timm with its fused kernel: the attn_drop module is never called
        def __init__(self):
            super().__init__()
            self.attn_drop = nn.Dropout(0.0)
            self.head = nn.Linear(256, 2)

        def forward(self, t):
            return self.head(t.flatten(1))

    with pytest.raises(ModelStructureError, match="fused_attn"):
        attention_rollout_explainer(Fused())(x.float(), y)

    class OffPath(nn.Module):  # a hooked module whose output the model throws away
        def __init__(self):
            super().__init__()
            self.inner = TinyViT(1, 2, image_size=16, patch_size=4, depth=1)
            self.probe = nn.Identity()

        def forward(self, t):
            self.probe(torch.ones(t.shape[0], 1, 17, 17, requires_grad=True))
            return self.inner(t)

    with pytest.raises(ModelStructureError, match="autograd path"):
        chefer_relevance_explainer(
            OffPath(), attention_modules=["probe", "inner.blocks.0.attn.attn_drop"]
        )(x.float(), y)


def test_rollout_ignores_the_output_and_the_relevance_needs_logits(vit, data):
    x, y, _ = data

    class DictOutput(nn.Module):  # e.g. Hugging Face models return output objects
        def __init__(self):
            super().__init__()
            self.inner = vit

        def forward(self, t):
            return {"logits": self.inner(t)}

    np.testing.assert_allclose(
        attention_rollout_explainer(DictOutput())(x, y).numpy(),
        attention_rollout_explainer(vit)(x, y).numpy(),
        rtol=1e-12,
    )
    with pytest.raises(ModelOutputError, match="torch.Tensor of logits"):
        chefer_relevance_explainer(DictOutput())(x, y)


def test_registry_builds_both(vit, data):
    x, y, _ = data
    rollout = make_explainer("AttentionRollout", vit, head_fusion="max", seed=3)  # seed ignored
    relevance = make_explainer("CheferRelevance", vit)
    assert isinstance(rollout, AttentionRolloutExplainer) and isinstance(
        relevance, CheferRelevanceExplainer
    )
    assert "head_fusion='max'" in repr(rollout) and "TinyViT" in repr(relevance)
    assert torch.equal(rollout(x, y), attention_rollout_explainer(vit, head_fusion="max")(x, y))


def test_the_hybrid_vit_with_a_convolutional_stem():
    model = TinyViT(1, 2, image_size=16, patch_size=8, dim=16, depth=2, heads=2, stem_channels=4)
    model = model.double().eval()
    assert {"embedding.stem.0", "embedding.stem.2", "embedding.projection"} <= {
        name for name, _ in parameterised_layers(model)
    }
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    maps = []
    handles = [
        b.attn.attn_drop.register_forward_hook(lambda m, i, out: maps.append(out))
        for b in model.blocks
    ]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    a = attention_rollout_explainer(model)(x, torch.tensor([0, 1]))
    for i in range(2):
        expected = ref.patch_map(ref.rollout([m[i].numpy() for m in maps])[0], (2, 2), (16, 16))
        np.testing.assert_allclose(a[i, 0].numpy(), expected, rtol=1e-9)
    assert chefer_relevance_explainer(model)(x, torch.tensor([0, 1])).shape == (2, 1, 16, 16)
