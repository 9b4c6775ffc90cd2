"""ROAD and its batched linear imputation against slow references (scipy spsolve), Quantus and its
bugs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst

from tests.reference import road_subsets_axiomatic as ref
from xaiscore import OptionError, ShapeError
from xaiscore._engine.batching import ModelOutputError
from xaiscore._checks import DTypeError, NonFiniteError
from xaiscore._engine.imputation import linear_imputation
from xaiscore._engine.random import random_keys
from xaiscore._engine.random import counter_normal
from xaiscore.functional.faithfulness.road import QUANTUS_ROAD_PERCENTAGES, road
from xaiscore.testing import strategies as xst

SPATIAL = st.one_of(
    st.tuples(st.integers(1, 12)),
    st.tuples(st.integers(1, 9), st.integers(1, 9)),
)


@st.composite
def imputation_cases(draw, dtype=torch.float64):
    spatial = draw(SPATIAL)
    m = draw(st.integers(1, 3))
    c = draw(st.integers(1, 3))
    x = draw(npst.arrays(np.float64, (m, c) + spatial, elements=st.floats(-2, 2, width=32)))
    kind = draw(st.sampled_from(["random", "none", "all", "one_kept", "block"]))
    if kind == "random":
        removed = draw(npst.arrays(np.bool_, (m, 1) + spatial))
    elif kind == "none":
        removed = np.zeros((m, 1) + spatial, dtype=bool)
    elif kind == "all":
        removed = np.ones((m, 1) + spatial, dtype=bool)
    elif kind == "one_kept":
        removed = np.ones((m, 1) + spatial, dtype=bool)
        flat = removed.reshape(m, -1)
        flat[:, draw(st.integers(0, flat.shape[1] - 1))] = False
    else:
        removed = np.zeros((m, 1) + spatial, dtype=bool)
        index = (slice(None), slice(None)) + tuple(slice(draw(st.integers(0, n - 1)), None)
                                                   for n in spatial)
        removed[index] = True
    return torch.from_numpy(x).to(dtype), torch.from_numpy(removed)


def reference_imputation(x: torch.Tensor, removed: torch.Tensor) -> np.ndarray:
    return np.stack([ref.linear_imputation(x[i].double().numpy(), removed[i, 0].numpy())
                     for i in range(len(x))])


# --- the imputation solver ------------------------------------------------------------------------


@given(imputation_cases())
def test_imputation_matches_spsolve_in_float64(case):
    x, removed = case
    np.testing.assert_allclose(linear_imputation(x, removed).numpy(),
                               reference_imputation(x, removed), atol=1e-8)


@settings(max_examples=20)
@given(imputation_cases(dtype=torch.float32))
def test_imputation_matches_spsolve_to_1e4_in_float32(case):
    x, removed = case
    out = linear_imputation(x, removed)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.double().numpy(), reference_imputation(x, removed), atol=1e-4)


def test_imputation_on_larger_images_with_blob_and_scattered_masks():
    """32 x 48 images: smooth (blob) and random removal orders at 1 % to 99 %, float32 vs spsolve to
    1e-4."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 2, 32, 48, generator=generator)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 32, 48, generator=generator), 9, 1, 4)
    scattered = torch.rand(1, 1, 32, 48, generator=generator)
    masks = []
    for a in (smooth, scattered):
        rank = a.reshape(-1).argsort(descending=True).argsort().reshape(1, 1, 32, 48)
        masks += [rank < int(32 * 48 * p / 100) for p in (1, 30, 70, 99)]
    removed = torch.cat(masks)
    images = x.expand(len(removed), -1, -1, -1)
    out = linear_imputation(images, removed)
    np.testing.assert_allclose(out.double().numpy(), reference_imputation(images, removed),
                               atol=1e-4)


def test_imputation_reproduces_linear_ramps_and_keeps_kept_pixels():
    x = torch.arange(10.0, dtype=torch.float64).reshape(1, 1, 10) * 2 + 1
    removed = torch.zeros(1, 1, 10, dtype=torch.bool)
    removed[..., 2:8] = True
    out = linear_imputation(x + 5 * removed, removed)  # garbage at removed pixels is ignored
    np.testing.assert_allclose(out.numpy(), x.numpy(), atol=1e-12)


def test_imputation_of_everything_is_zero_and_of_nothing_is_identity():
    x = torch.rand(2, 3, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    removed = torch.zeros(2, 1, 5, 4, dtype=torch.bool)
    removed[1] = True
    out = linear_imputation(x, removed)
    assert torch.equal(out[0], x[0])
    assert torch.equal(out[1], torch.zeros_like(x[1]))


def test_imputation_of_a_system_does_not_depend_on_its_batch_mates():
    generator = torch.Generator().manual_seed(4)
    x = torch.rand(6, 2, 16, 16, generator=generator)
    removed = (torch.rand(6, 1, 16, 16, generator=generator)
               < torch.linspace(0.05, 0.95, 6).reshape(6, 1, 1, 1))
    together = linear_imputation(x, removed)
    alone = torch.cat([linear_imputation(x[i : i + 1], removed[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)


def test_imputation_rejects_four_spatial_axes_and_mismatched_masks():
    with pytest.raises(ShapeError, match="1, 2 or 3 spatial"):
        linear_imputation(torch.zeros(1, 1, 2, 2, 2, 2), torch.zeros(1, 1, 2, 2, 2, 2,
                                                                     dtype=torch.bool))
    with pytest.raises(ShapeError, match="removed"):
        linear_imputation(torch.zeros(2, 1, 4, 4), torch.zeros(2, 2, 4, 4, dtype=torch.bool))
    with pytest.raises(OptionError, match="tol"):
        linear_imputation(torch.zeros(1, 1, 4), torch.zeros(1, 1, 4, dtype=torch.bool), tol=0.0)


# --- ROAD against the reference -------------------------------------------------------------------

ROAD_SHAPES = xst.shapes(batch_size=st.integers(1, 3), channels=st.integers(1, 2),
                         spatial_dims=st.integers(1, 2),
                         side=st.integers(1, 6))


def road_noise(seed: int, batch: int, percentages, x: torch.Tensor) -> np.ndarray:
    """The kernel's draws: one counter-based key per (sample, percentage), drawn after the
    (MoRF/LeRF) ranking."""
    keys = random_keys(batch * len(percentages), torch.Generator().manual_seed(seed))
    draws = counter_normal(keys, x[0].numel(), dtype=x.dtype)
    return draws.reshape((batch, len(percentages)) + tuple(x.shape[1:])).double().numpy()


@settings(max_examples=25)
@given(data=st.data())
def test_road_matches_reference(data):
    case = data.draw(xst.model_inputs(shape=ROAD_SHAPES, ties=st.booleans()), label="case")
    percentages = data.draw(st.lists(st.sampled_from([0, 5, 10, 25, 50, 75, 90, 100]), min_size=1,
                                     max_size=4),
                            label="percentages")
    order = data.draw(st.sampled_from(["morf", "lerf"]), label="order")
    measure = data.draw(st.sampled_from(["accuracy", "probability", "logit"]), label="measure")
    noise = data.draw(st.sampled_from([0.0, 0.05]), label="noise")
    how = data.draw(st.sampled_from(["sum", "mean", "max_abs"]), label="reduce_channels")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    result = road(case.forward_fn, case.x, case.a, case.target, percentages=percentages,
                  order=order, noise=noise,
                  measure=measure, reduce_channels=how,
                  generator=torch.Generator().manual_seed(seed))
    draws = road_noise(seed, len(case.x), percentages, case.x)
    for i in range(len(case.x)):
        score, curve = ref.road(case.forward_fn, case.x[i].numpy(), case.a[i].numpy(),
                                int(case.target[i]),
                                percentages=percentages, order=order, noise_draws=draws[i],
                                noise=noise,
                                measure=measure, how=how)
        np.testing.assert_allclose(result.curve[i].numpy(), curve, atol=1e-6)
        np.testing.assert_allclose(result.score[i].item(), score, atol=1e-6)
    np.testing.assert_allclose(result.x.numpy(), np.array(percentages) / 100)


@pytest.mark.parametrize("max_batch_size", [1, 3, 7])
def test_road_does_not_depend_on_the_chunk_size(max_batch_size):
    generator = torch.Generator().manual_seed(5)
    model = xst.tiny_mlp((2, 6, 5), 3, seed=2)
    x = torch.rand(3, 2, 6, 5, generator=generator, dtype=torch.float64)
    a = torch.randn(3, 1, 6, 5, generator=generator, dtype=torch.float64)
    options = {"percentages": [10, 40, 70, 95], "measure": "logit", "noise": 0.1}
    whole = road(model, x, a, None, max_batch_size=64, generator=torch.Generator().manual_seed(1),
                 **options)
    chunked = road(model, x, a, None, max_batch_size=max_batch_size,
                   generator=torch.Generator().manual_seed(1),
                   **options)
    torch.testing.assert_close(chunked.curve, whole.curve, rtol=0, atol=1e-9)


def test_road_is_seeded_and_the_noise_matters():
    model = xst.tiny_mlp((1, 8, 8), 3, seed=3)
    generator = torch.Generator().manual_seed(6)
    x = torch.rand(2, 1, 8, 8, generator=generator, dtype=torch.float64)
    a = torch.rand(2, 1, 8, 8, generator=generator, dtype=torch.float64)
    run = lambda seed: road(model, x, a, None, measure="logit", noise=0.5,  # noqa: E731
                            generator=torch.Generator().manual_seed(seed)).curve
    assert torch.equal(run(0), run(0))
    assert not torch.allclose(run(0), run(1))


def test_road_morf_drops_faster_than_lerf_for_a_faithful_attribution():
    """A linear model explained by weight x input: removing the top pixels destroys the logit first.
    """
    generator = torch.Generator().manual_seed(7)
    weight = torch.randn(2, 64, generator=generator, dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2, bias=False)).double()
    model[1].weight.data.copy_(weight)
    x = torch.rand(4, 1, 8, 8, generator=generator, dtype=torch.float64)
    a = (weight[0].reshape(1, 1, 8, 8) * x)
    target = torch.zeros(4, dtype=torch.long)
    morf = road(model, x, a, target, measure="logit", noise=0.0)
    lerf = road(model, x, a, target, order="lerf", measure="logit", noise=0.0)
    assert (morf.score < lerf.score).all()


def test_road_keeps_the_input_at_zero_percent_and_imputes_zeros_at_hundred():
    model = xst.tiny_mlp((2, 4, 4), 3, seed=4)
    x = torch.rand(2, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    a = torch.rand(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    target = torch.tensor([0, 2])
    result = road(model, x, a, target, percentages=[0, 100], measure="logit", noise=0.0)
    with torch.no_grad():
        intact = model(x)[torch.arange(2), target]
        blank = model(torch.zeros_like(x))[torch.arange(2), target]
    torch.testing.assert_close(result.curve[:, 0], intact)
    torch.testing.assert_close(result.curve[:, 1], blank)


def test_road_accuracy_is_correctness_of_the_prediction():
    model = xst.tiny_mlp((1, 5, 5), 3, seed=5)
    x = torch.rand(3, 1, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    a = torch.rand(3, 1, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    prediction = model(x).argmax(1)
    wrong = (prediction + 1) % 3
    assert torch.equal(road(model, x, a, prediction, percentages=[0]).curve[:, 0],
                       torch.ones(3, dtype=x.dtype))
    assert torch.equal(road(model, x, a, wrong, percentages=[0]).curve[:, 0],
                       torch.zeros(3, dtype=x.dtype))


def test_road_output_follows_input_dtype_and_device():
    model = xst.tiny_mlp((1, 6, 6), 2, seed=6, dtype=torch.float32)
    x, a = torch.rand(2, 1, 6, 6), torch.rand(2, 1, 6, 6)
    result = road(model, x, a, None, generator=torch.Generator().manual_seed(0))
    assert result.score.dtype == result.curve.dtype == result.x.dtype == torch.float32
    assert result.curve.shape == (2, 9) and result.score.shape == (2,)


# --- errors ---------------------------------------------------------------------------------------


def test_road_errors():
    model = xst.tiny_mlp((1, 4, 4), 3, seed=0, dtype=torch.float32)
    x, a = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    with pytest.raises(ShapeError, match="spatial"):
        road(xst.tiny_mlp((1, 2, 2, 2, 2), 2), torch.rand(1, 1, 2, 2, 2, 2, dtype=torch.float64),
             torch.rand(1, 1, 2, 2, 2, 2, dtype=torch.float64))
    with pytest.raises(OptionError, match="percentages"):
        road(model, x, a, percentages=[10, 120])
    with pytest.raises(DTypeError, match="percentages"):
        road(model, x, a, percentages=[])
    with pytest.raises(OptionError, match="order"):
        road(model, x, a, order="random_first")
    with pytest.raises(OptionError, match="measure"):
        road(model, x, a, measure="auc")
    with pytest.raises(OptionError, match="reduce_channels"):
        road(model, x, a, reduce_channels=None)
    with pytest.raises(OptionError, match="noise"):
        road(model, x, a, noise=-0.1)
    with pytest.raises(OptionError, match="target"):
        road(model, x, a, torch.tensor([0, 3]))
    with pytest.raises(ModelOutputError, match="logits"):
        road(lambda batch: batch.sum(dim=(1, 2, 3)), x, a, torch.tensor([0, 1]))
    nan_model = lambda batch: torch.full((len(batch), 3), math.nan)  # noqa: E731
    with pytest.raises(NonFiniteError):
        road(nan_model, x, a, torch.tensor([0, 1]))


# --- Quantus --------------------------------------------------------------------------------------


def _quantus_case(batch=4, seed=0, side=10):
    generator = torch.Generator().manual_seed(seed)
    model = xst.tiny_mlp((1, side, side), 3, seed=seed + 1, dtype=torch.float32)
    x = torch.rand(batch, 1, side, side, generator=generator)
    # continuous: no ties (Quantus' sort is unstable)
    a = torch.randn(batch, 1, side, side, generator=generator)
    with torch.no_grad():
        target = model(x).argmax(1)
    return model, x, a, target


def _quantus_road(quantus_module, model, x, a, target, percentages, batch_size):
    metric = quantus_module.ROAD(percentages=list(percentages), noise=0.0, disable_warnings=True)
    out = metric(model=model, x_batch=x.numpy(), y_batch=target.numpy(), a_batch=a.numpy(),
                 device="cpu",
                 batch_size=batch_size)
    return np.array([out[p] for p in percentages])


@pytest.mark.quantus
def test_road_matches_quantus_without_noise(quantus_module):
    """Quantus returns the accuracy per percentage averaged over the batch: the mean of our curves.
    """
    model, x, a, target = _quantus_case()
    percentages = QUANTUS_ROAD_PERCENTAGES[::7]
    theirs = _quantus_road(quantus_module, model, x, a, target, percentages, batch_size=len(x))
    ours = road(model, x, a, target, percentages=percentages, noise=0.0)
    np.testing.assert_allclose(ours.curve.mean(0).numpy(), theirs, atol=1e-6)


@pytest.mark.quantus
def test_quantus_road_bug_keeps_only_the_first_batch(quantus_module):
    """Quantus' ``custom_postprocess`` reads ``evaluation_scores[0]``: samples beyond its first
    batch are dropped."""
    model, x, a, target = _quantus_case(batch=6, seed=2)
    percentages = (50, 80, 95)
    # later samples: wrong labels
    target = torch.where(torch.arange(6) < 2, target, (target + 1) % 3)
    ours = road(model, x, a, target, percentages=percentages, noise=0.0)
    theirs = _quantus_road(quantus_module, model, x, a, target, percentages, batch_size=2)
    # the first batch only
    np.testing.assert_allclose(theirs, ours.curve[:2].mean(0).numpy(), atol=1e-6)
    assert not np.allclose(theirs, ours.curve.mean(0).numpy())  # ours scores every sample


@pytest.mark.quantus
def test_quantus_road_bug_fails_on_colour_images(quantus_module):
    """Quantus indexes its single-channel imputation mask with indices into C x H x W: IndexError
    for C > 1."""
    generator = torch.Generator().manual_seed(3)
    model = xst.tiny_mlp((3, 8, 8), 3, seed=4, dtype=torch.float32)
    x, a = torch.rand(2, 3, 8, 8, generator=generator), torch.rand(2, 1, 8, 8, generator=generator)
    target = torch.tensor([0, 1])
    with pytest.raises(IndexError):
        _quantus_road(quantus_module, model, x, a, target, (50, 90), batch_size=2)
    result = road(model, x, a, target, percentages=(50, 90), noise=0.0)
    assert result.curve.shape == (2, 2)
