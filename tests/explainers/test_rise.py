"""RISE against its per-sample reference (Petsiuk et al. 2018); masks, chunking, seeding, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tests.reference import explainers as ref
from xaiscore._checks import DTypeError, OptionError, ShapeError
from xaiscore._engine.batching import ModelOutputError
from xaiscore.explainers import RiseExplainer, check_explanation, make_explainer, rise_explainer
from xaiscore.testing.strategies import model_inputs, shapes


def _probability(model):
    def probability(x_i: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(x_i)[None]), 1)[0].numpy()

    return probability


def _reference(
    explain: RiseExplainer, model, x: torch.Tensor, target: torch.Tensor, *, softmax: bool = True
):
    spatial = tuple(x.shape[2:])
    params = explain.mask_parameters(spatial)
    masks = ref.rise_masks(params.grids.numpy(), params.shifts.numpy(), spatial)
    if softmax:
        score = _probability(model)
    else:

        def score(x_i):
            with torch.no_grad():
                return model(torch.from_numpy(x_i)[None])[0].numpy()

    return np.stack(
        [
            ref.rise_saliency(
                score, x[i].numpy(), int(target[i]), masks, explain.p, explain.baseline
            )[None]
            for i in range(x.shape[0])
        ]
    )


@pytest.mark.parametrize(
    "spatial, grid",
    [((9,), 3), ((10, 13), (3, 5)), ((7, 7), 7), ((5, 6, 7), 2), ((16, 16), 4), ((3, 4), 5)],
)
def test_masks_match_the_papers_upsample_and_crop(spatial, grid):
    explain = rise_explainer(lambda x: x.flatten(1), n_masks=30, grid_size=grid, seed=4)
    params = explain.mask_parameters(spatial)
    expected = ref.rise_masks(params.grids.numpy(), params.shifts.numpy(), spatial)
    masks = explain.masks(spatial, dtype=torch.float64)
    np.testing.assert_allclose(masks.numpy(), expected, rtol=0, atol=1e-12)
    assert set(np.unique(params.grids.numpy())) <= {0.0, 1.0}
    cells = [-(-side // s) for side, s in zip(spatial, params.grid_size)]
    assert params.cell_size == tuple(cells)
    assert all(
        ((params.shifts[:, k] >= 0) & (params.shifts[:, k] < cells[k])).all()
        for k in range(len(spatial))
    )
    if len(spatial) == 2:  # and torch's own bilinear upsampling, cropped
        for i in range(5):
            up = F.interpolate(
                params.grids[i][None, None],
                size=tuple((s + 1) * c for s, c in zip(params.grid_size, cells)),
                mode="bilinear",
                align_corners=False,
            )[0, 0]
            o = params.shifts[i]
            np.testing.assert_allclose(
                masks[i].numpy(),
                up[o[0] : o[0] + spatial[0], o[1] : o[1] + spatial[1]].numpy(),
                atol=1e-12,
            )


def test_mask_statistics_follow_p():
    explain = rise_explainer(lambda x: x.flatten(1), n_masks=2000, grid_size=5, p=0.3, seed=0)
    params = explain.mask_parameters((20, 20))
    assert abs(params.grids.mean().item() - 0.3) < 0.01
    assert abs(explain.masks((20, 20)).mean().item() - 0.3) < 0.02


def _conv_model(channels: int, spatial_dims: int, classes: int = 3, seed: int = 0) -> nn.Module:
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[spatial_dims]
    pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[spatial_dims]
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(
        conv(channels, 4, 3, padding=1),
        nn.Tanh(),
        pool(2),
        nn.Flatten(),
        nn.Linear(4 * 2**spatial_dims, classes),
    ).double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return model.eval()


@pytest.mark.parametrize(
    "shape, grid, options",
    [
        ((3, 1, 12, 10), 3, {}),
        ((2, 3, 8, 8), (2, 4), {"baseline": 0.5}),
        ((2, 2, 9), 4, {"softmax": False}),
        ((2, 1, 5, 6, 4), 2, {"p": 0.25}),
        ((1, 1, 7, 7), 7, {}),
    ],
)
def test_rise_matches_the_per_sample_reference(shape, grid, options):
    model = _conv_model(shape[1], len(shape) - 2)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    target = torch.arange(shape[0]) % 3
    explain = rise_explainer(
        model, n_masks=40, grid_size=grid, seed=1, max_batch_size=16, **options
    )
    a = explain(x, target)
    assert (
        a.shape == (shape[0], 1) + shape[2:] and a.dtype == torch.float64 and not a.is_inference()
    )
    check_explanation(a, x)
    expected = _reference(explain, model, x, target, softmax=options.get("softmax", True))
    np.testing.assert_allclose(a.numpy(), expected, rtol=1e-10, atol=1e-12)


@given(
    case=model_inputs(
        shape=shapes(
            batch_size=st.integers(1, 3), spatial_dims=st.integers(1, 2), side=st.integers(2, 6)
        )
    ),
    n_masks=st.integers(1, 12),
    grid=st.integers(1, 4),
    chunk=st.integers(1, 9),
)
@settings(max_examples=20)
def test_rise_reference_and_chunk_invariance_on_random_inputs(case, n_masks, grid, chunk):
    explain = rise_explainer(
        case.forward_fn, n_masks=n_masks, grid_size=grid, seed=3, max_batch_size=chunk
    )
    whole = rise_explainer(
        case.forward_fn, n_masks=n_masks, grid_size=grid, seed=3, max_batch_size=10_000
    )
    a = explain(case.x, case.target)
    np.testing.assert_allclose(
        a.numpy(), whole(case.x, case.target).numpy(), rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(
        a.numpy(), _reference(explain, case.forward_fn, case.x, case.target), rtol=1e-9, atol=1e-12
    )


def test_masks_depend_only_on_the_seed_and_samples_not_on_their_batch_mates():
    model = _conv_model(1, 2)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 0])
    explain = rise_explainer(model, n_masks=25, grid_size=3, seed=7, max_batch_size=6)
    a = explain(x, target)
    assert torch.equal(a, explain(x, target))  # every call sees the same masks
    alone = torch.cat([explain(x[i : i + 1], target[i : i + 1]) for i in range(4)])
    np.testing.assert_allclose(alone.numpy(), a.numpy(), rtol=1e-12, atol=1e-14)
    same = rise_explainer(
        model, n_masks=25, grid_size=3, generator=torch.Generator().manual_seed(7)
    )
    other = rise_explainer(model, n_masks=25, grid_size=3, seed=8)
    assert torch.equal(
        same.masks((8, 8)),
        rise_explainer(
            model, n_masks=25, grid_size=3, generator=torch.Generator().manual_seed(7)
        ).masks((8, 8)),
    )
    assert not torch.equal(explain.masks((8, 8)), other.masks((8, 8)))
    state = torch.random.get_rng_state()
    rise_explainer(model, n_masks=5, seed=1)(x, target)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("n, max_batch_size", [(3, 10), (3, 2), (5, 5), (1, 1)])
def test_model_calls_stay_under_max_batch_size_and_cover_every_masked_copy(n, max_batch_size):
    base = _conv_model(1, 2)
    sizes = []

    def counting(inputs):
        sizes.append(inputs.shape[0])
        return base(inputs)

    x = torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rise_explainer(counting, n_masks=7, grid_size=2, seed=0, max_batch_size=max_batch_size)(
        x, torch.zeros(n, dtype=torch.long)
    )
    assert max(sizes) <= max_batch_size and sum(sizes) == 7 * n


def test_float32_inputs_and_inference_mode():
    model = _conv_model(1, 2).float()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    explain = rise_explainer(model, n_masks=30, grid_size=3, seed=0)
    a = explain(x, torch.tensor([0, 1]))
    with torch.inference_mode():
        inside = explain(x.clone(), torch.tensor([0, 1]))
    assert a.dtype == torch.float32 and torch.equal(a, inside) and not a.is_inference()
    b = rise_explainer(model.double(), n_masks=30, grid_size=3, seed=0)(
        x.double(), torch.tensor([0, 1])
    )
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)


def test_rise_finds_the_pixel_a_model_looks_at():
    """A model whose class-1 logit is the value of one pixel: RISE puts its peak there."""

    def model(x):
        score = 8.0 * x[:, 0, 5, 2]
        return torch.stack([torch.zeros_like(score), score], 1)

    x = torch.ones(1, 1, 8, 8, dtype=torch.float64)
    a = rise_explainer(model, n_masks=500, grid_size=4, seed=0)(x, torch.tensor([1]))
    peak = int(a.flatten().argmax())
    assert abs(peak // 8 - 5) <= 1 and abs(peak % 8 - 2) <= 1


def test_rise_errors_and_registry():
    model = _conv_model(1, 2)
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    target = torch.tensor([0, 1])
    with pytest.raises(DTypeError, match="callable"):
        rise_explainer("model")
    with pytest.raises(OptionError, match="`p`"):
        rise_explainer(model, p=0.0)
    with pytest.raises(OptionError, match="n_masks"):
        rise_explainer(model, n_masks=0)
    with pytest.raises(OptionError, match="baseline"):
        rise_explainer(model, baseline=float("nan"))
    with pytest.raises(ShapeError, match="grid_size"):
        rise_explainer(model, grid_size=(2, 2, 2), n_masks=2)(x, target)
    with pytest.raises(DTypeError, match="floating-point"):
        rise_explainer(model, n_masks=2)(x.long(), target)
    with pytest.raises(ShapeError, match="target"):
        rise_explainer(model, n_masks=2)(x, target[:1])
    with pytest.raises(ShapeError, match="spatial"):
        rise_explainer(model, n_masks=2)(x.flatten(1), target)
    with pytest.raises(ModelOutputError, match="logits"):
        rise_explainer(lambda t: t.sum((1, 2, 3)), n_masks=2)(x, target)
    with pytest.raises(OptionError, match="at most one"):
        rise_explainer(model, seed=0, generator=torch.Generator())
    built = make_explainer("RISE", model, n_masks=10, grid_size=2, seed=0)
    assert isinstance(built, RiseExplainer) and "n_masks=10" in repr(built)
    assert torch.equal(
        built(x, target), rise_explainer(model, n_masks=10, grid_size=2, seed=0)(x, target)
    )


def test_the_mask_cache_gives_the_same_maps_and_is_reused(monkeypatch):
    import xaiscore.explainers.rise as rise_module

    model = _conv_model(1, 2)
    x = torch.rand(3, 1, 9, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.tensor([0, 1, 2])
    built = []
    original = rise_module._upsample_and_crop
    monkeypatch.setattr(rise_module, "_upsample_and_crop",
                        lambda *args: built.append(args[0].shape[0]) or original(*args))
    cached = rise_explainer(model, n_masks=20, grid_size=3, seed=2, max_batch_size=7)
    first, second = cached(x, target), cached(x, target)
    assert built == [20] and torch.equal(first, second)  # built once, whole, then reused
    cached(x[..., :8, :8], target)  # another shape: rebuilt
    assert built == [20, 20]
    monkeypatch.setattr(rise_module, "MASK_CACHE_BYTES", 0)
    built.clear()
    uncached = rise_explainer(model, n_masks=20, grid_size=3, seed=2, max_batch_size=7)(x, target)
    assert built == [2] * 10  # chunk by chunk (7 // 3 = 2 masks per chunk)
    np.testing.assert_allclose(uncached.numpy(), first.numpy(), rtol=1e-12, atol=1e-14)


def test_a_byte_budget_is_the_same_as_its_item_count_and_auto_is_refused():
    base = _conv_model(1, 2)
    calls: dict[str, list[int]] = {"count": [], "bytes": []}

    def counting(key):
        def forward(inputs):
            calls[key].append(inputs.shape[0])
            return base(inputs)
        return forward

    x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.zeros(3, dtype=torch.long)
    # a 1 x 6 x 6 float64 input weighs 288 bytes: "1440B" holds 5
    by_count = rise_explainer(counting("count"), n_masks=7, grid_size=2, seed=0, max_batch_size=5)
    by_bytes = rise_explainer(counting("bytes"), n_masks=7, grid_size=2, seed=0,
                              max_batch_size="1440B")
    torch.testing.assert_close(by_bytes(x, target), by_count(x, target), rtol=0, atol=0)
    assert calls["bytes"] == calls["count"] and max(calls["bytes"]) <= 5
    with pytest.raises(ValueError, match="must not depend on timing"):
        rise_explainer(base, n_masks=7, max_batch_size="auto")
