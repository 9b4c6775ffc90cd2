"""Ranking-based faithfulness kernels against their per-sample references, on drawn inputs and edge
cases."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import faithfulness as ref
from xaiscore.functional import faithfulness as fa
from xaiscore.testing import strategies as xst

SMALL = xst.shapes(batch_size=st.integers(1, 3), channels=st.integers(1, 3),
                   spatial_dims=st.integers(1, 3),
                   side=st.integers(1, 4))
REDUCTIONS = st.sampled_from(["sum", "mean", "max_abs", None])


def numpy_of(case):
    return case.x.numpy(), case.a.numpy(), case.target.tolist()


def n_features(case, how) -> int:
    spatial = int(np.prod(case.x.shape[2:]))
    return spatial * case.x.shape[1] if how is None else spatial


def close(ours, expected, atol=1e-6):
    np.testing.assert_allclose(np.asarray(ours, dtype=np.float64),
                               np.asarray(expected, dtype=np.float64),
                               atol=atol, rtol=1e-6, equal_nan=True)


# --- deletion / insertion / pixel flipping ----------------------------------------------------


@given(data=st.data())
@settings(max_examples=25)
def test_deletion_matches_reference(data):
    case = data.draw(xst.model_inputs(shape=SMALL, ties=st.booleans()), label="case")
    how = data.draw(REDUCTIONS, label="reduce_channels")
    per_step = data.draw(st.integers(1, n_features(case, how)), label="features_per_step")
    softmax = data.draw(st.booleans(), label="softmax")
    baseline = data.draw(st.sampled_from(["zeros", "min", "mean", 0.5]), label="baseline")
    result = fa.deletion(case.forward_fn, case.x, case.a, case.target, features_per_step=per_step,
                         reduce_channels=how, softmax=softmax, baseline=baseline)
    x, a, target = numpy_of(case)
    for i in range(len(target)):
        score, curve, positions = ref.deletion(case.forward_fn, x[i], a[i], target[i],
                                               per_step=per_step,
                                               baseline=baseline, softmax=softmax, how=how)
        close(result.curve[i], curve)
        close(result.x, positions)
        close(result.score[i], score)


@given(data=st.data())
@settings(max_examples=20)
def test_insertion_matches_reference_with_rise_blur(data):
    case = data.draw(xst.model_inputs(shape=SMALL), label="case")
    how = data.draw(st.sampled_from(["sum", None]), label="reduce_channels")
    per_step = data.draw(st.integers(1, n_features(case, how)), label="features_per_step")
    result = fa.insertion(case.forward_fn, case.x, case.a, case.target, features_per_step=per_step,
                          reduce_channels=how)
    x, a, target = numpy_of(case)
    for i in range(len(target)):
        score, curve, _ = ref.insertion(case.forward_fn, x[i], a[i], target[i], per_step=per_step,
                                        how=how)
        close(result.curve[i], curve)
        close(result.score[i], score)


@given(data=st.data())
@settings(max_examples=25)
def test_pixel_flipping_matches_reference(data):
    case = data.draw(xst.model_inputs(shape=SMALL, ties=st.booleans()), label="case")
    how = data.draw(REDUCTIONS, label="reduce_channels")
    per_step = data.draw(st.integers(1, n_features(case, how)), label="features_per_step")
    order = data.draw(st.sampled_from(["morf", "lerf"]), label="order")
    result = fa.pixel_flipping(case.forward_fn, case.x, case.a, case.target,
                               features_per_step=per_step,
                               reduce_channels=how, order=order)
    x, a, target = numpy_of(case)
    for i in range(len(target)):
        score, curve, _ = ref.deletion(case.forward_fn, x[i], a[i], target[i], per_step=per_step,
                                       softmax=False, how=how, order=order)
        close(result.curve[i], curve)
        close(result.score[i], score)


def test_random_order_and_uniform_noise_follow_the_documented_draws():
    case = xst.tiny_mlp((2, 3, 4), 3, seed=5), torch.rand(2, 2, 3, 4, dtype=torch.float64,
                                                             generator=torch.Generator().manual_seed(
                                                                 1))
    model, x = case
    a = torch.randn(2, 1, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 2])
    result = fa.pixel_flipping(model, x, a, target, order="random", baseline="uniform",
                               features_per_step=5,
                               generator=torch.Generator().manual_seed(7))
    # Documented draws: the order first (float64 keys per feature), then the noise image.
    generator = torch.Generator().manual_seed(7)
    permutation = torch.rand(2, 12, generator=generator, dtype=torch.float64).argsort(1)
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype)
    for i in range(2):
        score, curve, _ = ref.deletion(model, x[i].numpy(), a[i].numpy(), int(target[i]),
                                       per_step=5,
                                       baseline="uniform", softmax=False, order="random",
                                       permutation=permutation[i].tolist(), noise=noise[i].numpy())
        close(result.curve[i], curve)
        close(result.score[i], score)


# --- patch metrics -----------------------------------------------------------------------------


PATCH_SHAPES = xst.shapes(batch_size=st.integers(1, 3), channels=st.integers(1, 2),
                          spatial_dims=st.integers(1, 3),
                          side=st.integers(1, 6))


@given(data=st.data())
@settings(max_examples=25)
def test_region_perturbation_matches_reference(data):
    case = data.draw(xst.model_inputs(shape=PATCH_SHAPES, ties=st.booleans()), label="case")
    patch = data.draw(st.integers(1, 4), label="patch_size")
    steps = data.draw(st.integers(1, 30), label="steps")
    order = data.draw(st.sampled_from(["morf", "lerf"]), label="order")
    how = data.draw(st.sampled_from(["sum", "mean", "max_abs"]), label="reduce_channels")
    softmax = data.draw(st.booleans(), label="softmax")
    result = fa.region_perturbation(case.forward_fn, case.x, case.a, case.target, patch_size=patch,
                                    steps=steps,
                                    order=order, baseline="min", reduce_channels=how,
                                    softmax=softmax)
    x, a, target = numpy_of(case)
    for i in range(len(target)):
        score, curve = ref.region_perturbation(case.forward_fn, x[i], a[i], target[i], patch=patch,
                                               steps=steps,
                                               order=order, baseline="min", softmax=softmax,
                                               how=how)
        close(result.curve[i], curve)
        close(result.score[i], score)
    assert result.x.tolist() == list(range(result.curve.shape[1]))


@given(data=st.data())
@settings(max_examples=25)
def test_selectivity_matches_reference(data):
    case = data.draw(xst.model_inputs(shape=PATCH_SHAPES, ties=st.booleans()), label="case")
    patch = data.draw(st.integers(1, 4), label="patch_size")
    baseline = data.draw(st.sampled_from(["zeros", "mean", "blur"]), label="baseline")
    result = fa.selectivity(case.forward_fn, case.x, case.a, case.target, patch_size=patch,
                            baseline=baseline)
    x, a, target = numpy_of(case)
    for i in range(len(target)):
        score, curve = ref.selectivity(case.forward_fn, x[i], a[i], target[i], patch=patch,
                                       baseline=baseline)
        close(result.curve[i], curve)
        close(result.score[i], score)


@given(data=st.data())
@settings(max_examples=25)
def test_irof_matches_reference_with_user_segments(data):
    case = data.draw(xst.model_inputs(shape=PATCH_SHAPES), label="case")
    b, spatial = case.x.shape[0], tuple(case.x.shape[2:])
    labels = data.draw(st.lists(st.integers(-3, 40), min_size=b * int(np.prod(spatial)),
                                max_size=b * int(np.prod(spatial))), label="labels")
    segments = torch.tensor(labels).reshape((b,) + spatial)
    softmax = data.draw(st.booleans(), label="softmax")
    result = fa.irof(case.forward_fn, case.x, case.a, case.target, segments=segments,
                     softmax=softmax)
    x, a, target = numpy_of(case)
    counts = [len(np.unique(segments[i].numpy())) for i in range(b)]
    assert result.curve.shape == (b, max(counts) + 1)
    for i in range(b):
        score, curve = ref.irof(case.forward_fn, x[i], a[i], target[i], labels=segments[i].numpy(),
                                softmax=softmax)
        close(result.score[i], score)
        if curve is not None:
            close(result.curve[i, : counts[i] + 1], curve)
        assert torch.isnan(result.curve[i, counts[i] + 1:]).all()


@pytest.mark.parametrize("spatial", [(7,), (10, 9), (4, 5, 3)])
def test_irof_default_grid_segmentation(spatial):
    model = xst.tiny_mlp((2,) + spatial, 3, seed=3)
    generator = torch.Generator().manual_seed(4)
    x = torch.rand((2, 2) + spatial, generator=generator, dtype=torch.float64)
    a = torch.randn((2, 1) + spatial, generator=generator, dtype=torch.float64)
    target = torch.tensor([1, 2])
    result = fa.irof(model, x, a, target, n_segments=9)
    side = math.ceil((np.prod(spatial) / 9) ** (1 / len(spatial)) - 1e-9)
    labels = ref.grid_labels(spatial, side)
    for i in range(2):
        score, curve = ref.irof(model, x[i].numpy(), a[i].numpy(), int(target[i]), labels=labels)
        close(result.score[i], score)
        close(result.curve[i], curve)


# --- faithfulness estimate, monotonicity, monotonicity correlation -------------------------------


@given(data=st.data())
@settings(max_examples=25)
def test_faithfulness_estimate_matches_reference(data):
    case = data.draw(xst.model_inputs(shape=SMALL, ties=st.booleans(), constant=st.booleans()),
                     label="case")
    how = data.draw(REDUCTIONS, label="reduce_channels")
    per_step = data.draw(st.integers(1, n_features(case, how)), label="features_per_step")
    softmax = data.draw(st.booleans(), label="softmax")
    ours = fa.faithfulness_estimate(case.forward_fn, case.x, case.a, case.target,
                                    features_per_step=per_step,
                                    reduce_channels=how, softmax=softmax)
    x, a, target = numpy_of(case)
    expected = [ref.faithfulness_estimate(case.forward_fn, x[i], a[i], target[i], per_step=per_step,
                                          softmax=softmax, how=how) for i in range(len(target))]
    close(ours, expected)


@given(data=st.data())
@settings(max_examples=25)
def test_monotonicity_matches_reference(data):
    case = data.draw(xst.model_inputs(shape=SMALL, ties=st.booleans()), label="case")
    how = data.draw(REDUCTIONS, label="reduce_channels")
    per_step = data.draw(st.integers(1, n_features(case, how)), label="features_per_step")
    baseline = data.draw(st.sampled_from(["zeros", "mean", -1.0]), label="baseline")
    ours = fa.monotonicity(case.forward_fn, case.x, case.a, case.target, features_per_step=per_step,
                           reduce_channels=how, baseline=baseline)
    x, a, target = numpy_of(case)
    expected = [ref.monotonicity(case.forward_fn, x[i], a[i], target[i], per_step=per_step,
                                 baseline=baseline,
                                 how=how) for i in range(len(target))]
    close(ours, expected, atol=0)


@given(data=st.data())
@settings(max_examples=20)
def test_monotonicity_correlation_matches_reference_deterministic_baseline(data):
    case = data.draw(xst.model_inputs(shape=SMALL, ties=st.booleans()), label="case")
    how = data.draw(REDUCTIONS, label="reduce_channels")
    per_step = data.draw(st.integers(1, n_features(case, how)), label="features_per_step")
    absolute = data.draw(st.booleans(), label="absolute")
    ours = fa.monotonicity_correlation(case.forward_fn, case.x, case.a, case.target,
                                       features_per_step=per_step,
                                       n_samples=2, baseline="zeros", absolute=absolute,
                                       reduce_channels=how)
    x, a, target = numpy_of(case)
    expected = [ref.monotonicity_correlation(case.forward_fn, x[i], a[i], target[i],
                                             per_step=per_step,
                                             n_samples=2, baseline="zeros", absolute=absolute,
                                             how=how)
                for i in range(len(target))]
    close(ours, expected)


def _counter_noise_reference(model, x, a, target, *, seed, per_step, n_samples, **options):
    """The per-sample reference fed the kernel's documented uniform noise: draw ``r`` of sample
    ``i`` is ``counter_uniform`` of key ``(i, r)`` from ``random_keys((B, n_samples), seed)``."""
    from xaiscore._engine.random import counter_uniform, random_keys

    keys = random_keys((x.shape[0], n_samples), torch.Generator().manual_seed(seed))
    size = x[0].numel()
    expected = []
    for i in range(x.shape[0]):
        def noise(r, i=i):
            return counter_uniform(keys[i, r:r + 1], size,
                                   dtype=torch.float64).reshape(x.shape[1:]).numpy()

        expected.append(ref.monotonicity_correlation(model, x[i].numpy(), a[i].numpy(),
                                                     int(target[i]),
                                                     per_step=per_step, n_samples=n_samples,
                                                     noise=noise, **options))
    return expected


def test_monotonicity_correlation_uniform_noise_is_the_documented_counter_noise():
    model = xst.tiny_mlp((2, 3, 3), 3, seed=8)
    generator = torch.Generator().manual_seed(9)
    x = torch.rand(2, 2, 3, 3, generator=generator, dtype=torch.float64)
    a = torch.randn(2, 1, 3, 3, generator=generator, dtype=torch.float64)
    target = torch.tensor([0, 1])
    ours = fa.monotonicity_correlation(model, x, a, target, n_samples=4, features_per_step=2,
                                       generator=torch.Generator().manual_seed(11))
    close(ours, _counter_noise_reference(model, x, a, target, seed=11, per_step=2, n_samples=4))


@pytest.mark.parametrize("max_batch_size", [1, 5, 64])
def test_monotonicity_correlation_uniform_noise_per_element_features(max_batch_size):
    """``reduce_channels=None``: every (channel, position) element is a feature; 18 features in
    groups of 4 (the last group short); any chunking gives the reference."""
    model = xst.tiny_mlp((2, 3, 3), 3, seed=3)
    generator = torch.Generator().manual_seed(4)
    x = torch.rand(2, 2, 3, 3, generator=generator, dtype=torch.float64)
    a = torch.randn(2, 2, 3, 3, generator=generator, dtype=torch.float64)
    target = torch.tensor([2, 0])
    ours = fa.monotonicity_correlation(model, x, a, target, n_samples=3, features_per_step=4,
                                       reduce_channels=None,
                                       generator=torch.Generator().manual_seed(5),
                                       max_batch_size=max_batch_size)
    close(ours, _counter_noise_reference(model, x, a, target, seed=5, per_step=4, n_samples=3,
                                         how=None))


# --- edge cases ----------------------------------------------------------------------------------


def test_constant_map_ranks_by_feature_index_and_scores_nan_where_undefined():
    model = xst.tiny_mlp((1, 2, 3), 2, seed=0)
    x = torch.rand(1, 1, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    a = torch.ones(1, 1, 2, 3, dtype=torch.float64)
    target = torch.tensor([1])
    # Ties go to the lower index: deletion removes pixels in memory order.
    curve = fa.pixel_flipping(model, x, a, target).curve[0]
    expected = [ref.model_score(model, np.where(np.arange(6).reshape(1, 2, 3) < k, 0.0,
                                                x[0].numpy()), 1, False)
                for k in range(7)]
    close(curve, expected)
    # A constant map has constant group sums: no correlation is defined.
    assert torch.isnan(fa.faithfulness_estimate(model, x, a, target)).all()
    assert torch.isnan(fa.monotonicity_correlation(model, x, a, target, n_samples=2,
                                                   generator=torch.Generator().manual_seed(
                                                       0))).all()


def test_single_group_gives_nan_correlation_and_trivial_monotonicity():
    model = xst.tiny_mlp((1, 4), 2, seed=1)
    x = torch.rand(2, 1, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = torch.randn(2, 1, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 1])
    assert torch.isnan(fa.faithfulness_estimate(model, x, a, target, features_per_step=4)).all()
    assert fa.monotonicity(model, x, a, target, features_per_step=4).tolist() == [1.0, 1.0]


def test_ragged_last_step_has_exact_positions():
    model = xst.tiny_mlp((1, 7), 2, seed=2)
    x = torch.rand(1, 1, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    a = torch.randn(1, 1, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    result = fa.deletion(model, x, a, torch.tensor([0]), features_per_step=3)
    close(result.x, [0, 3 / 7, 6 / 7, 1.0])
    assert result.curve.shape == (1, 4)


def test_default_deletion_step_is_rise_224_steps():
    model = xst.tiny_mlp((1, 224), 2, seed=2)
    x = torch.rand(1, 1, 224, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    a = torch.randn(1, 1, 224, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    assert fa.deletion(model, x, a).curve.shape == (1, 225)


def test_target_none_tracks_the_prediction():
    model = xst.tiny_mlp((1, 3, 3), 4, seed=4)
    x = torch.rand(3, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = torch.randn(3, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    predicted = model(x).argmax(1)
    ours = fa.deletion(model, x, a, features_per_step=2)
    expected = fa.deletion(model, x, a, predicted, features_per_step=2)
    torch.testing.assert_close(ours.curve, expected.curve)
    close(ours.curve[:, 0], torch.softmax(model(x), 1).max(1).values.detach())


def test_region_perturbation_steps_are_capped_by_the_number_of_patches():
    model = xst.tiny_mlp((1, 4, 4), 2, seed=4)
    x = torch.rand(1, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = torch.randn(1, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    result = fa.region_perturbation(model, x, a, torch.tensor([0]), patch_size=2, steps=100,
                                    baseline="zeros")
    assert result.curve.shape == (1, 5) and result.curve[0, 0] == 0


def test_irof_zero_original_score_gives_nan():
    linear = torch.nn.Linear(4, 2, bias=False).double()
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))
    model = torch.nn.Sequential(torch.nn.Flatten(), linear)
    x = torch.tensor([[[1.0, -1.0, 2.0, -2.0]], [[1.0, 1.0, 1.0, 1.0]]], dtype=torch.float64)
    a = torch.randn(2, 1, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    result = fa.irof(model, x, a, torch.tensor([0, 0]), softmax=False, baseline="zeros",
                     n_segments=4)
    assert math.isnan(result.score[0]) and torch.isnan(result.curve[0]).all()
    close(result.score[1], 1 - 0.25 * (1 + 0.75 * 2 + 0.5 * 2 + 0.25 * 2 + 0) / 2)


def test_float32_inputs_keep_their_dtype_and_agree_with_float64():
    model64 = xst.tiny_mlp((2, 4, 4), 3, seed=6)
    model32 = copy.deepcopy(model64).float()
    x = torch.rand(2, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 2])
    for metric in (fa.deletion, fa.pixel_flipping, fa.selectivity):
        r64 = metric(model64, x, a, target)
        r32 = metric(model32, x.float(), a.float(), target)
        assert r32.score.dtype == torch.float32 and r32.curve.dtype == torch.float32
        close(r32.curve, r64.curve, atol=1e-5)
    e64 = fa.faithfulness_estimate(model64, x, a, target)
    e32 = fa.faithfulness_estimate(model32, x.float(), a.float(), target)
    assert e32.dtype == torch.float32
    close(e32, e64, atol=1e-4)


# --- a tiny CNN on 2-D inputs ------------------------------------------------------------------


def _tiny_cnn(channels: int, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(channels, 4, 3, padding=1), torch.nn.Tanh(),
        torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(16, 3),
    ).double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
                            * 0.5)
    return model.eval()


CNN_CASES = {
    "deletion": (lambda m, x, a, t: fa.deletion(m, x, a, t, features_per_step=7).curve,
                 lambda m, x, a, t: ref.deletion(m, x, a, t, per_step=7)[1]),
    "insertion": (lambda m, x, a, t: fa.insertion(m, x, a, t, features_per_step=7).curve,
                  lambda m, x, a, t: ref.insertion(m, x, a, t, per_step=7)[1]),
    "pixel_flipping": (lambda m, x, a, t: fa.pixel_flipping(m, x, a, t, features_per_step=5).curve,
                       lambda m, x, a, t: ref.deletion(m, x, a, t, per_step=5, softmax=False)[1]),
    "region_perturbation": (
        lambda m, x, a, t: fa.region_perturbation(m, x, a, t, patch_size=3, steps=6,
                                                  baseline="mean").curve,
        lambda m, x, a, t: ref.region_perturbation(m, x, a, t, patch=3, steps=6,
                                                   baseline="mean")[1]),
    "selectivity": (lambda m, x, a, t: fa.selectivity(m, x, a, t, patch_size=3).curve,
                    lambda m, x, a, t: ref.selectivity(m, x, a, t, patch=3)[1]),
    "irof": (lambda m, x, a, t: fa.irof(m, x, a, t, n_segments=12).curve,
             lambda m, x, a, t: ref.irof(m, x, a, t, labels=ref.grid_labels((7, 8), 3))[1]),
    "faithfulness_estimate": (lambda m, x, a, t: fa.faithfulness_estimate(m, x, a, t, features_per_step=4),  # noqa: E501
                              lambda m, x, a, t: ref.faithfulness_estimate(m, x, a, t, per_step=4)),
    "monotonicity": (lambda m, x, a, t: fa.monotonicity(m, x, a, t, features_per_step=4),
                     lambda m, x, a, t: ref.monotonicity(m, x, a, t, per_step=4)),
    "monotonicity_correlation": (
        lambda m, x, a, t: fa.monotonicity_correlation(m, x, a, t, features_per_step=4, n_samples=2,
                                                       baseline="zeros"),
        lambda m, x, a, t: ref.monotonicity_correlation(m, x, a, t, per_step=4, n_samples=2,
                                                        baseline="zeros")),
}


@pytest.mark.parametrize("name", sorted(CNN_CASES))
def test_tiny_cnn_matches_reference(name):
    ours_fn, reference = CNN_CASES[name]
    generator = torch.Generator().manual_seed(12)
    model = _tiny_cnn(3, seed=13)
    x = torch.rand(3, 3, 7, 8, generator=generator, dtype=torch.float64)
    a = torch.randn(3, 1, 7, 8, generator=generator, dtype=torch.float64)
    target = torch.tensor([0, 1, 2])
    ours = ours_fn(model, x, a, target)
    for i in range(3):
        close(ours[i], reference(model, x[i].numpy(), a[i].numpy(), int(target[i])))
