"""Infidelity, faithfulness correlation and sensitivity-n vs. per-sample references, captum, Quantus
and its bugs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import road_subsets_axiomatic as ref
from xaiscore import DTypeError, OptionError
from xaiscore._engine.batching import ModelOutputError
from xaiscore._checks import NonFiniteError
from xaiscore._engine.random import random_keys
from xaiscore.functional.faithfulness import random_perturbations as fr
from xaiscore._engine.random import counter_normal
from xaiscore._engine.random_subsets import random_patch_masks, random_subsets
from xaiscore.testing import strategies as xst

SMALL = xst.shapes(batch_size=st.integers(1, 3), channels=st.integers(1, 2),
                   spatial_dims=st.integers(1, 3),
                   side=st.integers(2, 4))
BASELINES = st.sampled_from(["zeros", "min", "mean", 0.5])


def close(ours, expected, atol=1e-6):
    np.testing.assert_allclose(np.asarray(ours, dtype=np.float64),
                               np.asarray(expected, dtype=np.float64),
                               atol=atol, rtol=1e-6, equal_nan=True)


def baseline_images(x: torch.Tensor, baseline) -> np.ndarray:
    return np.stack([ref.baseline_image(x[i].numpy(), baseline) for i in range(len(x))])


def n_features(x: torch.Tensor, how) -> int:
    spatial = int(np.prod(x.shape[2:]))
    return spatial * x.shape[1] if how is None else spatial


# --- infidelity -----------------------------------------------------------------------------------


def infidelity_draws(case, seed, n, perturbation, sizes, baseline, noise_std):
    """The kernel's perturbed images: keys first, one per (sample, repeat), sample-major."""
    x = case.x
    keys = random_keys(len(x) * n, torch.Generator().manual_seed(seed))
    originals = x.repeat_interleave(n, 0)
    if perturbation == "square":
        masks = random_patch_masks(keys, tuple(x.shape[2:]), sizes)
        substrate = torch.from_numpy(baseline_images(x, baseline)).repeat_interleave(n, 0)
        images = torch.where(masks, substrate, originals)
    else:
        images = (originals - noise_std
                  * counter_normal(keys, x[0].numel(), dtype=x.dtype).reshape(originals.shape))
    return images.reshape((len(x), n) + tuple(x.shape[1:])).numpy()


@settings(max_examples=30)
@given(data=st.data())
def test_infidelity_matches_reference(data):
    case = data.draw(xst.model_inputs(shape=SMALL), label="case")
    perturbation = data.draw(st.sampled_from(["square", "noise"]), label="perturbation")
    smallest = min(case.x.shape[2:])
    sizes = tuple(data.draw(st.lists(st.integers(1, smallest), min_size=1, max_size=2),
                            label="patch_sizes"))
    baseline = data.draw(BASELINES, label="baseline")
    options = dict(
        n_perturbations=data.draw(st.integers(1, 5), label="n"),
        normalize=data.draw(st.booleans(), label="normalize"),
        multiply_by_inputs=data.draw(st.booleans(), label="multiply_by_inputs"),
        softmax=data.draw(st.booleans(), label="softmax"),
    )
    seed = data.draw(st.integers(0, 2**16), label="seed")
    ours = fr.infidelity(case.forward_fn, case.x, case.a, case.target, perturbation=perturbation,
                         patch_sizes=sizes,
                         baseline=baseline, noise_std=0.3,
                         generator=torch.Generator().manual_seed(seed), **options)
    images = infidelity_draws(case, seed, options["n_perturbations"], perturbation, sizes, baseline,
                              0.3)
    substrates = baseline_images(case.x, baseline if perturbation == "square" else baseline)
    for i in range(len(case.x)):
        expected = ref.infidelity(case.forward_fn, case.x[i].numpy(), case.a[i].numpy(),
                                  int(case.target[i]),
                                  perturbed_images=images[i], baseline_image_=substrates[i],
                                  normalize=options["normalize"],
                                  multiply_by_inputs=options["multiply_by_inputs"],
                                  softmax=options["softmax"])
        close(ours[i], expected, atol=1e-8)


def reference_box_sums(values: torch.Tensor, sample: torch.Tensor, side: torch.Tensor,
                       corner: torch.Tensor
                       ) -> torch.Tensor:
    """One slice and one sum per box: the obviously correct box sums."""
    sums = []
    for i in range(sample.shape[0]):
        box = values[int(sample[i])]
        for axis in range(corner.shape[1]):
            box = box.narrow(axis, int(corner[i, axis]), int(side[i]))
        sums.append(box.sum())
    return torch.stack(sums)


def test_box_sums_of_zero_regions_are_exact_zeros():
    """A square over exact zeros sums to exactly 0 however large the rest of the map
    (integral images leave rounding there, and normalised infidelity is discontinuous at a zero
    projection)."""
    from xaiscore._engine.random_subsets import box_sum_tables, table_box_sums

    values = torch.zeros(2, 6, 7, dtype=torch.float64)
    values[:, 4:, 5:] = torch.tensor([[1e3, 1.0 / 3.0], [7.1, 1e-38]], dtype=torch.float64)
    sample = torch.tensor([0, 1, 0, 1])
    side = torch.tensor([3, 2, 1, 2])
    corner = torch.tensor([[0, 0], [1, 2], [5, 6], [4, 5]])
    sums = table_box_sums(box_sum_tables(values, (1, 2, 3)), sample, side, corner)
    assert sums[:2].tolist() == [0.0, 0.0]
    assert sums[2].item() == values[0, 5, 6].item()
    assert sums[3].item() == values[1, 4:6, 5:7].sum().item()


def test_infidelity_with_a_tiny_attribution_matches_reference():
    """n = 1 with normalisation scores exactly 0 whenever the projection is non-zero, even 1e-38
    (found by a thorough hypothesis run: the integral image rounded it to 0)."""
    model = xst.tiny_mlp((1, 2), 2, seed=0)
    x = torch.ones(1, 1, 2, dtype=torch.float64)
    a = torch.tensor([[[1.0, 1.1754943508222875e-38]]], dtype=torch.float64)
    for seed in range(8):
        ours = fr.infidelity(model, x, a, torch.tensor([0]), perturbation="square",
                             patch_sizes=(1,),
                             n_perturbations=1, normalize=True,
                             generator=torch.Generator().manual_seed(seed))
        assert ours.item() == 0.0


@pytest.mark.parametrize("perturbation", ["square", "noise"])
@pytest.mark.parametrize("multiply_by_inputs", [False, True])
def test_infidelity_matches_captum_with_the_same_perturbations(perturbation, multiply_by_inputs):
    from captum.metrics import infidelity as captum_infidelity

    generator = torch.Generator().manual_seed(1)
    model = xst.tiny_mlp((2, 6, 6), 3, seed=2)
    x = torch.rand(3, 2, 6, 6, generator=generator, dtype=torch.float64)
    a = torch.randn(3, 2, 6, 6, generator=generator, dtype=torch.float64)
    target = torch.tensor([0, 2, 1])
    n = 7
    ours = fr.infidelity(model, x, a, target, perturbation=perturbation, patch_sizes=(2, 3),
                         n_perturbations=n,
                         multiply_by_inputs=multiply_by_inputs,
                         generator=torch.Generator().manual_seed(3))
    keys = random_keys(3 * n, torch.Generator().manual_seed(3))
    originals = x.repeat_interleave(n, 0)
    if perturbation == "square":
        images = torch.where(random_patch_masks(keys, (6, 6), (2, 3)), torch.zeros(()), originals)
    else:
        images = (originals - 0.2
                  * counter_normal(keys, x[0].numel(), dtype=x.dtype).reshape(originals.shape))
    change = originals - images
    if multiply_by_inputs:  # captum's decorator divides by (input - baseline) with baseline 0
        change = change / torch.where(originals != 0, originals, torch.ones_like(originals))

    def perturb_func(inputs):
        assert inputs.shape == originals.shape  # all samples x repeats in one call, sample-major
        return change, images

    theirs = captum_infidelity(model, perturb_func, x, a, target=target, n_perturb_samples=n,
                               normalize=True)
    close(ours, theirs.numpy(), atol=1e-10)
    ours_raw = fr.infidelity(model, x, a, target, perturbation=perturbation, patch_sizes=(2, 3),
                             n_perturbations=n,
                             normalize=False, multiply_by_inputs=multiply_by_inputs,
                             generator=torch.Generator().manual_seed(3))
    theirs_raw = captum_infidelity(model, perturb_func, x, a, target=target, n_perturb_samples=n,
                                   normalize=False)
    close(ours_raw, theirs_raw.numpy(), atol=1e-10)


def test_infidelity_is_zero_for_the_exact_gradient_of_a_linear_model():
    generator = torch.Generator().manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 25, 3)).double()
    x = torch.rand(2, 2, 5, 5, generator=generator, dtype=torch.float64)
    target = torch.tensor([1, 2])
    gradient = model[1].weight.detach()[target].reshape(2, 2, 5, 5)
    for perturbation in ("square", "noise"):
        out = fr.infidelity(model, x, gradient, target, perturbation=perturbation, patch_sizes=(2,),
                            normalize=False,
                            generator=torch.Generator().manual_seed(0))
        assert float(out.abs().max()) < 1e-20
    times_input = gradient * x  # a global attribution: the indicator of a removed square weighs it
    out = fr.infidelity(model, x, times_input, target, patch_sizes=(2,), multiply_by_inputs=True,
                        normalize=False,
                        generator=torch.Generator().manual_seed(0))
    assert float(out.abs().max()) < 1e-20


def test_infidelity_normalization_is_invariant_to_the_attribution_scale():
    generator = torch.Generator().manual_seed(5)
    model = xst.tiny_mlp((1, 6, 6), 3, seed=6)
    x = torch.rand(2, 1, 6, 6, generator=generator, dtype=torch.float64)
    a = torch.randn(2, 1, 6, 6, generator=generator, dtype=torch.float64)
    run = lambda scale: fr.infidelity(model, x, a * scale, None, generator=torch.Generator().manual_seed(0))  # noqa
    close(run(1.0), run(37.0).numpy(), atol=1e-12)


@pytest.mark.parametrize("max_batch_size", [1, 4, 9])
def test_random_metrics_do_not_depend_on_the_chunk_size(max_batch_size):
    generator = torch.Generator().manual_seed(7)
    model = xst.tiny_mlp((2, 5, 4), 3, seed=8)
    x = torch.rand(3, 2, 5, 4, generator=generator, dtype=torch.float64)
    a = torch.randn(3, 1, 5, 4, generator=generator, dtype=torch.float64)
    for name, options in [("infidelity", {"patch_sizes": (2, 3)}), ("infidelity",
                                                                    {"perturbation": "noise"}),
                          ("faithfulness_correlation", {"subset_size": 5, "n_runs": 10}),
                          ("sensitivity_n", {"n_subsets": 6})]:
        kernel = getattr(fr, name)
        whole = kernel(model, x, a, None, generator=torch.Generator().manual_seed(1), **options)
        chunked = kernel(model, x, a, None, generator=torch.Generator().manual_seed(1),
                         max_batch_size=max_batch_size, **options)
        whole = whole.curve if name == "sensitivity_n" else whole
        chunked = chunked.curve if name == "sensitivity_n" else chunked
        torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-12, equal_nan=True)


def test_random_metrics_are_seeded():
    model = xst.tiny_mlp((1, 6, 6), 3, seed=9)
    generator = torch.Generator().manual_seed(8)
    x = torch.rand(2, 1, 6, 6, generator=generator, dtype=torch.float64)
    a = torch.randn(2, 1, 6, 6, generator=generator, dtype=torch.float64)
    for name in ("infidelity", "faithfulness_correlation", "sensitivity_n"):
        kernel = getattr(fr, name)
        options = {"subset_size": 6} if name == "faithfulness_correlation" else {}
        run = lambda seed: kernel(model, x, a, None, generator=torch.Generator().manual_seed(seed), **options)  # noqa
        first, again, other = run(0), run(0), run(1)
        if name == "sensitivity_n":
            first, again, other = first.curve, again.curve, other.curve
        torch.testing.assert_close(first, again, rtol=0, atol=0, equal_nan=True)
        assert not torch.allclose(first, other, equal_nan=True)


# --- faithfulness correlation ---------------------------------------------------------------------


def subsets_of(keys, n, sizes):
    """The kernels' subsets: item ``i`` draws ``sizes[i]`` (or ``sizes``) features from ``keys[i]``.
    """
    sizes = [sizes] * len(keys) if isinstance(sizes, int) else [int(s) for s in sizes]
    return [np.flatnonzero(random_subsets(keys[i : i + 1], n, sizes[i])[0].numpy()).tolist()
            for i in range(len(keys))]


@settings(max_examples=25)
@given(data=st.data())
def test_faithfulness_correlation_matches_reference(data):
    case = data.draw(xst.model_inputs(shape=SMALL, ties=st.booleans()), label="case")
    how = data.draw(st.sampled_from(["sum", "mean", "max_abs", None]), label="reduce_channels")
    n = n_features(case.x, how)
    size = data.draw(st.integers(1, n), label="subset_size")
    runs = data.draw(st.integers(2, 8), label="n_runs")
    baseline = data.draw(BASELINES, label="baseline")
    softmax = data.draw(st.booleans(), label="softmax")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    ours = fr.faithfulness_correlation(case.forward_fn, case.x, case.a, case.target,
                                       subset_size=size, n_runs=runs,
                                       baseline=baseline, reduce_channels=how, softmax=softmax,
                                       generator=torch.Generator().manual_seed(seed))
    subsets = subsets_of(random_keys(len(case.x) * runs, torch.Generator().manual_seed(seed)), n,
                         size)
    for i in range(len(case.x)):
        expected = ref.faithfulness_correlation(case.forward_fn, case.x[i].numpy(),
                                                case.a[i].numpy(),
                                                int(case.target[i]),
                                                subsets=subsets[i * runs : (i + 1) * runs],
                                                baseline=baseline, how=how, softmax=softmax)
        close(ours[i], expected)


def test_faithfulness_correlation_is_one_for_a_linear_model_and_nan_when_undefined():
    generator = torch.Generator().manual_seed(10)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).double()
    x = torch.rand(3, 1, 4, 4, generator=generator, dtype=torch.float64)
    target = torch.tensor([0, 1, 0])
    # = f(x) - f(x with S zeroed), summed over S
    exact = model[1].weight.detach()[target].reshape(3, 1, 4, 4) * x
    close(fr.faithfulness_correlation(model, x, exact, target, subset_size=4, n_runs=30),
          np.ones(3))
    constant = torch.ones_like(x)  # every subset has the same attribution sum
    assert torch.isnan(fr.faithfulness_correlation(model, x, constant, target, subset_size=4,
                                                   n_runs=30)).all()
    # one possible subset
    every = fr.faithfulness_correlation(model, x, exact, target, subset_size=16, n_runs=5)
    assert torch.isnan(every).all()


# --- sensitivity-n --------------------------------------------------------------------------------


@settings(max_examples=20)
@given(data=st.data())
def test_sensitivity_n_matches_reference(data):
    case = data.draw(xst.model_inputs(shape=SMALL), label="case")
    how = data.draw(st.sampled_from(["sum", None]), label="reduce_channels")
    n = n_features(case.x, how)
    sizes = data.draw(st.lists(st.integers(1, n), min_size=1, max_size=3), label="subset_sizes")
    per_size = data.draw(st.integers(2, 6), label="n_subsets")
    baseline = data.draw(BASELINES, label="baseline")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    result = fr.sensitivity_n(case.forward_fn, case.x, case.a, case.target, subset_sizes=sizes,
                              n_subsets=per_size,
                              baseline=baseline, reduce_channels=how,
                              generator=torch.Generator().manual_seed(seed))
    per_sample = len(sizes) * per_size
    keys = random_keys(len(case.x) * per_sample, torch.Generator().manual_seed(seed))
    item_sizes = torch.tensor(sizes).repeat_interleave(per_size).repeat(len(case.x))
    subsets = subsets_of(keys, n, item_sizes)
    for i in range(len(case.x)):
        mine = subsets[i * per_sample : (i + 1) * per_sample]
        grouped = [mine[t * per_size : (t + 1) * per_size] for t in range(len(sizes))]
        score, curve = ref.sensitivity_n(case.forward_fn, case.x[i].numpy(), case.a[i].numpy(),
                                         int(case.target[i]),
                                         subsets_per_size=grouped, baseline=baseline, how=how,
                                         softmax=False)
        close(result.curve[i], curve)
        close(result.score[i], score)
    close(result.x, np.array(sizes) / n)


def test_sensitivity_n_default_sizes_and_linear_model():
    generator = torch.Generator().manual_seed(11)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2)).double()
    x = torch.rand(2, 1, 8, 8, generator=generator, dtype=torch.float64)
    target = torch.tensor([1, 0])
    exact = model[1].weight.detach()[target].reshape(2, 1, 8, 8) * x
    result = fr.sensitivity_n(model, x, exact, target, n_subsets=10)
    assert result.x.tolist() == [s / 64 for s in fr.default_subset_sizes(64)]
    close(result.curve, np.ones(result.curve.shape))
    close(result.score, np.ones(2))


# --- the draws ------------------------------------------------------------------------------------


def test_draws_have_the_documented_distributions():
    keys = random_keys(4000, torch.Generator().manual_seed(12))
    normal = counter_normal(keys, 50, dtype=torch.float64)
    assert abs(float(normal.mean())) < 0.01 and abs(float(normal.std()) - 1) < 0.01
    # both samplers, and complements
    for n, k in ((10, 3), (10, 8), (600, 5), (600, 597), (600, 200)):
        chosen = random_subsets(keys, n, k)
        assert torch.equal(chosen.sum(1), torch.full((4000,), k))
        frequency = chosen.double().mean(0)
        assert (float((frequency - k / n).abs().max()) < 4.5 * math.sqrt(k / n * (1 - k / n) / 4000)
                + 1e-9)
    # pairs: no pair preferred (uniform over 2-subsets)
    pairs = random_subsets(keys, 600, 2).double()
    together = (pairs[:, :300].sum(1) == 2).double().mean()
    expected = (300 * 299 / 2) / (600 * 599 / 2)
    assert abs(float(together) - expected) < 4.5 * math.sqrt(expected * (1 - expected) / 4000)
    masks = random_patch_masks(keys, (5, 7), (2, 3))
    areas = masks.sum((1, 2, 3))
    assert set(areas.tolist()) == {4, 9}
    coverage = masks.double().mean(0)[0]
    assert float(coverage[0, 0]) > 0 and float(coverage[-1, -1]) > 0  # corners reachable
    assert float(coverage[2, 3]) > float(coverage[0, 0])  # the centre is covered more often


def test_counter_normal_pairs_cosines_and_sines_of_one_hash():
    """Column j and column h + j (h = ceil(size / 2)) come from the same hash: radius r, angles
    cos/sin."""
    keys = random_keys(3000, torch.Generator().manual_seed(5))
    for size in (1, 2, 7, 40):
        z = counter_normal(keys, size, dtype=torch.float64)
        assert z.shape == (3000, size) and bool(torch.isfinite(z).all())
        half = (size + 1) // 2
        rest = size - half
        if rest:
            radius_sq = z[:, :rest] ** 2 + z[:, half:] ** 2  # r^2 = -2 log u1 ~ Exp(1/2), mean 2
            assert abs(float(radius_sq.mean()) - 2.0) < 0.1
            assert abs(float(torch.corrcoef(torch.stack([z[:, 0], z[:, half]]))[0, 1])) < 0.06
    # Drawn in float32 and cast: float32 and float64 runs see the same noise; a key's row never
    # depends on the other keys.
    assert torch.equal(counter_normal(keys[:5], 9, dtype=torch.float64),
                       counter_normal(keys[:5], 9).double())
    assert torch.equal(counter_normal(keys[2:4], 9), counter_normal(keys, 9)[2:4])
    tail = counter_normal(random_keys(20000, torch.Generator().manual_seed(6)), 100).abs()
    # 2 * (1 - Phi(3))
    assert float(tail.max()) < 7.0 and 0.002 < float((tail > 3).double().mean()) < 0.0034


# --- errors ---------------------------------------------------------------------------------------


def test_random_metric_errors():
    model = xst.tiny_mlp((1, 4, 4), 3, seed=0, dtype=torch.float32)
    x, a = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    with pytest.raises(OptionError, match="patch_sizes"):
        fr.infidelity(model, x, a, patch_sizes=(5,))
    with pytest.raises(DTypeError, match="patch_sizes"):
        fr.infidelity(model, x, a, patch_sizes=())
    with pytest.raises(OptionError, match="perturbation"):
        fr.infidelity(model, x, a, perturbation="blur")
    with pytest.raises(OptionError, match="n_perturbations"):
        fr.infidelity(model, x, a, n_perturbations=0)
    with pytest.raises(DTypeError, match="normalize"):
        fr.infidelity(model, x, a, normalize="yes")
    with pytest.raises(OptionError, match="subset_size"):
        fr.faithfulness_correlation(model, x, a, subset_size=17)
    with pytest.raises(OptionError, match="subset_size"):
        fr.faithfulness_correlation(model, x, a, subset_size=1.5)
    with pytest.raises(OptionError, match="subset_sizes"):
        fr.sensitivity_n(model, x, a, subset_sizes=[0, 3])
    with pytest.raises(DTypeError, match="subset_sizes"):
        fr.sensitivity_n(model, x, a, subset_sizes=[])
    for kernel in (fr.infidelity, fr.faithfulness_correlation, fr.sensitivity_n):
        options = {"subset_size": 4} if kernel is fr.faithfulness_correlation else {}
        with pytest.raises(OptionError, match="target"):
            kernel(model, x, a, torch.tensor([0, 5]), **options)
        with pytest.raises(ModelOutputError):
            kernel(lambda batch: batch.reshape(len(batch), -1)[:, :1].squeeze(1), x, a,
                   torch.tensor([0, 0]),
                   **options)
        with pytest.raises(NonFiniteError):
            kernel(lambda batch: torch.full((len(batch), 3), math.nan), x, a, torch.tensor([0, 0]),
                   **options)


# --- Quantus --------------------------------------------------------------------------------------


def _quantus_case(batch=4, channels=1, side=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    model = xst.tiny_mlp((channels, side, side), 3, seed=seed + 1, dtype=torch.float32)
    x = torch.rand(batch, channels, side, side, generator=generator)
    a = torch.randn(batch, channels, side, side, generator=generator)
    target = torch.arange(batch) % 3
    return model, x, a, target


@pytest.mark.quantus
def test_faithfulness_correlation_matches_quantus_on_the_same_subsets(quantus_module, monkeypatch):
    """Quantus draws each subset with ``np.random.choice``; fed our subsets it gives our
    correlations."""
    model, x, a, target = _quantus_case(channels=2)
    runs, size = 12, 7
    ours = fr.faithfulness_correlation(model, x, a, target, subset_size=size, n_runs=runs,
                                       baseline="min",
                                       reduce_channels=None,
                                       generator=torch.Generator().manual_seed(4))
    subsets = subsets_of(random_keys(len(x) * runs, torch.Generator().manual_seed(4)), a[0].numel(),
                         size)
    calls = iter([subsets[sample * runs + run] for run in range(runs) for sample in range(len(x))])
    monkeypatch.setattr(np.random, "choice", lambda n, k, replace=False: np.array(next(calls)))
    metric = quantus_module.FaithfulnessCorrelation(nr_runs=runs, subset_size=size,
                                                    perturb_baseline="black",
                                                    return_aggregate=False, disable_warnings=True)
    theirs = metric(model=model, x_batch=x.numpy(), y_batch=target.numpy(), a_batch=a.numpy(),
                    device="cpu")
    close(ours, np.array(theirs), atol=1e-5)


@pytest.mark.quantus
def test_quantus_infidelity_bug_repeats_are_identical(quantus_module):
    """Quantus' repeats remove the same squares in the same raster order: more repeats change
    nothing."""
    model, x, a, target = _quantus_case(side=8)

    def quantus_infidelity(n):
        metric = quantus_module.Infidelity(perturb_patch_sizes=[4], n_perturb_samples=n,
                                           disable_warnings=True)
        return np.array(metric(model=model, x_batch=x.numpy(), y_batch=target.numpy(),
                               a_batch=a.numpy(),
                               device="cpu"))

    assert np.array_equal(quantus_infidelity(1), quantus_infidelity(4))
    one = fr.infidelity(model, x, a, target, n_perturbations=1,
                        generator=torch.Generator().manual_seed(0))
    four = fr.infidelity(model, x, a, target, n_perturbations=4,
                         generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(one, four)  # ours draws a fresh square per repeat


@pytest.mark.quantus
def test_quantus_sensitivity_n_bug_keeps_only_the_first_batch(quantus_module):
    """Quantus' ``custom_postprocess`` reads ``evaluation_scores[0]``: later batches never enter the
    result."""
    model, x, a, target = _quantus_case(batch=4, side=4)

    def quantus_sensitivity_n(xs, a_s, ts):
        metric = quantus_module.SensitivityN(disable_warnings=True, return_aggregate=False)
        return np.array(metric(model=model, x_batch=xs.numpy(), y_batch=ts.numpy(),
                               a_batch=a_s.numpy(),
                               device="cpu", batch_size=2), dtype=np.float64)

    everything = quantus_sensitivity_n(x, a, target)
    first_batch = quantus_sensitivity_n(x[:2], a[:2], target[:2])
    close(everything, first_batch)
    # the last samples' maps flipped
    changed = quantus_sensitivity_n(x, torch.cat([a[:2], -a[2:]]), target)
    close(changed, first_batch)
    ours = fr.sensitivity_n(model, x, a, target, n_subsets=8,
                            generator=torch.Generator().manual_seed(0))
    flipped = fr.sensitivity_n(model, x, torch.cat([a[:2], -a[2:]]), target, n_subsets=8,
                               generator=torch.Generator().manual_seed(0))
    close(flipped.curve[:2], ours.curve[:2].numpy())  # a sample's score depends on its own map only
    close(flipped.curve[2:], -ours.curve[2:].numpy())


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("n_subsets", [2, 3])
def test_sensitivity_n_subsets_changing_the_same_pixels_share_one_score(seed, n_subsets):
    """Only one pixel differs from the "min" baseline, so every subset of 7 of the 9 pixels either
    removes it (all such inputs are equal) or changes nothing. Equal inputs must get equal scores
    (the model's rounding can differ between rows of a batch), as in the per-sample reference
    (a thorough hypothesis run found this)."""
    model = xst.tiny_mlp((1, 3, 3), 2, seed=0)
    x = -torch.ones(1, 1, 3, 3, dtype=torch.float64)
    x[0, 0, 0, 0] = 0.0
    a = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    a[0, 0, 0, 2] = 0.0
    target = torch.tensor([0])
    result = fr.sensitivity_n(model, x, a, target, subset_sizes=[7], n_subsets=n_subsets,
                              baseline="min",
                              generator=torch.Generator().manual_seed(seed))
    keys = random_keys(n_subsets, torch.Generator().manual_seed(seed))
    subsets = subsets_of(keys, 9, torch.full((n_subsets,), 7))
    score, curve = ref.sensitivity_n(model, x[0].numpy(), a[0].numpy(), 0,
                                     subsets_per_size=[subsets],
                                     baseline="min", how="sum", softmax=False)
    close(result.curve[0], curve)
    close(result.score[0], score)


# --- perturbations that change nothing ------------------------------------------------------------


@pytest.mark.parametrize("max_batch_size", [1, 3, 64])
def test_no_op_perturbations_keep_the_exact_score_so_correlations_are_undefined(max_batch_size):
    """x equal to its own minimum everywhere and the "min" baseline: every perturbation is a no-op,
    so every score change is exactly 0 and every correlation NaN (the reference's answer). Without
    the no-op rule, model rounding that differs between batch sizes made correlations of +-1 out of
    1e-16 noise (found by a thorough hypothesis run)."""
    from xaiscore.functional import faithfulness as fa

    model = xst.tiny_mlp((1, 3, 3), 2, seed=0)
    x = torch.ones(5, 1, 3, 3, dtype=torch.float64)
    a = torch.rand(5, 1, 3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    target = torch.zeros(5, dtype=torch.long)
    options = dict(baseline="min", max_batch_size=max_batch_size,
                   generator=torch.Generator().manual_seed(2))
    curve = fr.sensitivity_n(model, x, a, target, subset_sizes=[1, 2], n_subsets=4, **options).curve
    assert torch.isnan(curve).all()
    assert torch.isnan(fr.faithfulness_correlation(model, x, a, target, subset_size=2, n_runs=5,
                                                   **options)).all()
    assert torch.isnan(fa.faithfulness_estimate(model, x, a, target, features_per_step=2,
                                                **options)).all()
    assert torch.isnan(fa.monotonicity_correlation(model, x, a, target, features_per_step=2,
                                                   n_samples=2,
                                                   **options)).all()


# --- small subsets of many features: the index path -----------------------------------------------


@settings(max_examples=15)
@given(data=st.data())
def test_small_subsets_of_many_features_match_the_reference(data):
    """At >= 512 features, subsets of at most 1/8 of them are scattered by index
    (a copy of x and a write of the substrate per item) instead of blended through dense masks;
    scores, sums and the equal-input rule stay those of the reference. `few` makes most pixels equal
    the "min" baseline, so subsets are hashed."""
    b = data.draw(st.integers(1, 3), label="batch")
    channels = data.draw(st.sampled_from([1, 3]), label="channels")
    how = data.draw(st.sampled_from(["sum", None]), label="reduce_channels")
    baseline = data.draw(BASELINES, label="baseline")
    few = data.draw(st.booleans(), label="few")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(b, channels, 24, 24, generator=generator, dtype=torch.float64)
    if few:
        keep = torch.rand(b, 1, 24, 24, generator=generator) < 0.02
        x = torch.where(keep, x, x.amin(dim=(1, 2, 3), keepdim=True))
    a = torch.randn(b, channels, 24, 24, generator=generator, dtype=torch.float64)
    model = xst.tiny_mlp((channels, 24, 24), 3, seed=seed % 7)
    target = torch.randint(0, 3, (b,), generator=generator)
    n = n_features(x, how)
    runs = data.draw(st.integers(2, 5), label="n_runs")
    size = data.draw(st.integers(1, n // 8), label="subset_size")
    ours = fr.faithfulness_correlation(model, x, a, target, subset_size=size, n_runs=runs,
                                       baseline=baseline,
                                       reduce_channels=how,
                                       generator=torch.Generator().manual_seed(seed),
                                       max_batch_size=data.draw(st.integers(1, 7),
                                                                label="max_batch_size"))
    subsets = subsets_of(random_keys(b * runs, torch.Generator().manual_seed(seed)), n, size)
    for i in range(b):
        expected = ref.faithfulness_correlation(model, x[i].numpy(), a[i].numpy(), int(target[i]),
                                                subsets=subsets[i * runs : (i + 1) * runs],
                                                baseline=baseline,
                                                how=how, softmax=False)
        close(ours[i], expected)
    # sensitivity-n mixes index-path sizes and dense sizes in one chunk
    sizes = [1, max(1, n // 16), n // 2]
    result = fr.sensitivity_n(model, x, a, target, subset_sizes=sizes, n_subsets=3,
                              baseline=baseline,
                              reduce_channels=how, generator=torch.Generator().manual_seed(seed),
                              max_batch_size=4)
    keys = random_keys(b * 9, torch.Generator().manual_seed(seed))
    subsets = subsets_of(keys, n, torch.tensor(sizes).repeat_interleave(3).repeat(b))
    for i in range(b):
        mine = subsets[i * 9 : (i + 1) * 9]
        score, curve = ref.sensitivity_n(model, x[i].numpy(), a[i].numpy(), int(target[i]),
                                         subsets_per_size=[mine[t * 3 : (t + 1) * 3]
                                                           for t in range(3)],
                                         baseline=baseline, how=how, softmax=False)
        close(result.curve[i], curve)
        close(result.score[i], score)


def test_small_subsets_of_many_features_take_the_index_path(monkeypatch):
    calls = []
    original = fr.random_subset_indices
    monkeypatch.setattr(fr, "random_subset_indices",
                        lambda *args: calls.append(args[2]) or original(*args))
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 16, 32, generator=generator)
    a = torch.rand(2, 1, 16, 32, generator=generator)
    model = xst.tiny_mlp((3, 16, 32), 2, dtype=torch.float32)
    first = fr.faithfulness_correlation(model, x, a, torch.tensor([0, 1]), subset_size=20, n_runs=6,
                                        generator=torch.Generator().manual_seed(0),
                                        max_batch_size=5)
    assert calls and set(calls) == {20}
    again = fr.faithfulness_correlation(model, x, a, torch.tensor([0, 1]), subset_size=20, n_runs=6,
                                        generator=torch.Generator().manual_seed(0),
                                        max_batch_size=12)
    torch.testing.assert_close(first, again, rtol=0, atol=0)


@settings(max_examples=30)
@given(data=st.data())
def test_box_sum_tables_equal_the_sliced_box_sums(data):
    """The sliding-window tables give every box's sum (1-D to 3-D, several sides), exact zeros
    included."""
    from xaiscore._engine.random_subsets import box_sum_tables, table_box_sums

    d = data.draw(st.integers(1, 3), label="dims")
    spatial = tuple(data.draw(st.lists(st.integers(3, 7), min_size=d, max_size=d), label="spatial"))
    sides = data.draw(st.lists(st.integers(1, min(spatial)), min_size=1, max_size=3), label="sides")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn((2,) + spatial, generator=generator, dtype=torch.float64)
    values[values < 0] = 0.0  # zero regions
    n = 20
    sample = torch.randint(0, 2, (n,), generator=generator)
    side = torch.tensor(sides)[torch.randint(0, len(sides), (n,), generator=generator)]
    corner = torch.stack([(torch.rand(n, generator=generator, dtype=torch.float64)
                           * (size - side + 1)).long()
                          for size in spatial], dim=1)
    ours = table_box_sums(box_sum_tables(values, sides), sample, side, corner)
    expected = reference_box_sums(values, sample, side, corner)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(ours == 0, expected == 0)  # a box of exact zeros sums to exactly 0 in both
