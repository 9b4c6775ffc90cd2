"""MPRT, sMPRT, eMPRT and Random Logit against per-sample references, and their properties."""

from __future__ import annotations

import copy
import math
from functools import partial

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tests.reference import randomization as ref
from xaiscore import DTypeError, NonFiniteError, OptionError, ShapeError
from xaiscore._engine.batching import ModelOutputError
from xaiscore.explainers import captum_explainer, constant_explainer, random_explainer
from xaiscore.functional import randomization as rnd
from xaiscore.functional.randomization import _comparison as cmp
from xaiscore.functional.randomization import layerwise as lay
from xaiscore.functional._common import unit_rank_vectors
from xaiscore._engine.model_randomization import NoParameterisedLayersError

CLASSES = 3


def make_model(spatial_dims: int = 2, channels: int = 1, side: int = 6, seed: int = 0) -> nn.Module:
    """A tiny conv net for 1-D to 3-D inputs (built under a local seed, returned in eval mode)."""
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[spatial_dims - 1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(
            conv(channels, 2, 3, padding=1), nn.Softplus(),
            conv(2, 2, 3, padding=1), nn.Tanh(),
            nn.Flatten(), nn.Linear(2 * side**spatial_dims, CLASSES),
        )
    return model.double().eval()


def gradient(model: nn.Module):
    """Explainer factory: the signed input gradient of the target logit."""

    def explain(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = x.detach().clone().requires_grad_(True)
        model(x).gather(1, target[:, None]).sum().backward()
        return x.grad.detach()

    return explain


def gradient_x_input(model: nn.Module):
    grad = gradient(model)
    return lambda x, target: grad(x, target) * x


def ignores_model(model: nn.Module):
    return lambda x, target: (x - 0.3) ** 3 + 0.1 * target.to(x.dtype).reshape(-1, *(
        [1] * (x.ndim - 1)))


def inputs(batch: int = 3, spatial_dims: int = 2, channels: int = 1, side: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((batch, channels) + (side,) * spatial_dims, generator=g, dtype=torch.float64)
    target = torch.randint(0, CLASSES, (batch,), generator=g)
    return x, target


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)


def assert_close(ours: torch.Tensor, expected: np.ndarray, atol: float = 1e-6) -> None:
    np.testing.assert_allclose(ours.numpy(), expected, atol=atol, rtol=1e-6, equal_nan=True)


# --- against the references ----------------------------------------------------------------


@settings(max_examples=12)
@given(
    batch=st.integers(1, 3),
    order=st.sampled_from(["bottom_up", "top_down", "independent"]),
    similarity=st.sampled_from(["spearman", "pearson", "cosine", "mse", "ssim_flat"]),
    abs_=st.booleans(),
    normalise=st.sampled_from(["max", "second_moment", None]),
    summary=st.sampled_from(["mean", "last"]),
    seed=st.integers(0, 5),
    factory=st.sampled_from([gradient, gradient_x_input]),
)
def test_mprt_matches_reference(batch, order, similarity, abs_, normalise, summary, seed, factory):
    model = make_model()
    x, target = inputs(batch, seed=seed)
    result = rnd.mprt(model, x, target, explainer_factory=factory, order=order,
                      similarity=similarity, abs=abs_,
                      normalise=normalise, summary=summary, seed=seed, max_batch_size=2)
    scores, curves = ref.mprt(model, x, target, factory, order=order, seed=seed,
                              similarity=similarity, abs=abs_,
                              normalise=normalise, summary=summary)
    assert_close(result.curve, curves)
    assert_close(result.score, scores)
    assert result.layers == (("5", "2", "0") if order == "top_down" else ("0", "2", "5"))
    assert result.x.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("spatial_dims,channels,how", [(1, 1, None), (2, 2, "sum"),
                                                       (3, 1, "max_abs"), (3, 2, None)])
def test_mprt_on_one_to_three_spatial_dims(spatial_dims, channels, how):
    side = 4 if spatial_dims == 3 else 6
    model = make_model(spatial_dims, channels, side)
    x, target = inputs(2, spatial_dims, channels, side)
    result = rnd.mprt(model, x, target, explainer_factory=gradient, reduce_channels=how, seed=1)
    scores, curves = ref.mprt(model, x, target, gradient, seed=1, how=how)
    assert_close(result.curve, curves)
    assert_close(result.score, scores)


def test_mprt_with_windowed_ssim_matches_reference():
    model = make_model(side=8)
    x, target = inputs(2, side=8)
    result = rnd.mprt(model, x, target, explainer_factory=gradient, similarity="ssim",
                      similarity_kwargs={"window": "gaussian", "win_size": 7})
    # layers only
    _, curves = ref.mprt(model, x, target, lambda m: gradient(m), similarity="spearman")
    expected = np.zeros_like(curves)
    for i in range(2):
        original = ref.postprocess(ref.explain_one(gradient, model, x[i], int(target[i])))
        for step, which in enumerate(ref.randomized_sets(3, "bottom_up")):
            e = ref.postprocess(ref.explain_one(gradient, ref.randomize(model, which, 0), x[i],
                                                int(target[i])))
            expected[i, step] = ref.ssim(original, e, window="gaussian", win_size=7)
    assert_close(result.curve, expected)


def test_mprt_compares_given_attributions():
    model = make_model()
    x, target = inputs(3)
    a = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    result = rnd.mprt(model, x, target, explainer_factory=gradient, a=a, order="independent")
    for i in range(3):
        for step, which in enumerate(ref.randomized_sets(3, "independent")):
            e = ref.explain_one(gradient, ref.randomize(model, which, 0), x[i], int(target[i]))
            expected = ref.spearman(ref.postprocess(a[i].numpy()), ref.postprocess(e))
            assert result.curve[i, step].item() == pytest.approx(expected, abs=1e-9)


def recording(factory, log: list):
    """Wrap an explainer factory so that every input row it sees is logged
    (per model, in call order)."""

    def bind(model):
        inner = factory(model)
        rows: list = []
        log.append(rows)

        def explain(x, target):
            rows.extend(zip(x.detach().clone(), target.tolist()))
            return inner(x, target)

        return explain

    return bind


@settings(max_examples=6)
@given(batch=st.integers(1, 3), n_samples=st.integers(1, 4),
       order=st.sampled_from(["bottom_up", "top_down"]),
       max_batch_size=st.integers(1, 7), normalise=st.sampled_from(["second_moment", "max"]))
def test_smooth_mprt_matches_reference_on_the_noisy_copies_it_used(batch, n_samples, order,
                                                                   max_batch_size,
                                                                    normalise):
    model = make_model()
    x, target = inputs(batch)
    log: list = []
    result = rnd.smooth_mprt(model, x, target, explainer_factory=recording(gradient, log),
                             n_samples=n_samples,
                             noise_magnitude=0.2, order=order, normalise=normalise, seed=2,
                             max_batch_size=max_batch_size)
    assert len(log) == 4  # original + 3 layers, one factory call each
    first = log[0]
    assert len(first) == batch * n_samples
    for rows in log[1:]:  # the same noise for every model
        assert all(torch.equal(r[0], f[0]) and r[1] == f[1] for r, f in zip(rows, first))
    # Sample-major: copy j of sample i is row i * n + j; the last copy is the clean input.
    noisy = [[first[i * n_samples + j][0] for j in range(n_samples)] for i in range(batch)]
    for i in range(batch):
        assert torch.equal(noisy[i][-1], x[i])
        assert all(first[i * n_samples + j][1] == int(target[i]) for j in range(n_samples))
    scores, curves = ref.smooth_mprt(model, noisy, target, gradient, order=order, seed=2,
                                     normalise=normalise)
    assert_close(result.curve, curves)
    assert_close(result.score, scores)


def test_smooth_mprt_noise_has_the_documented_scale():
    model = make_model()
    x, target = inputs(2)
    x[1] *= 4.0  # a sample with four times the value range gets four times the noise
    log: list = []
    rnd.smooth_mprt(model, x, target, explainer_factory=recording(ignores_model, log),
                    n_samples=200, noise_magnitude=0.1,
                    random_baseline=False)
    rows = log[0]
    for i in range(2):
        noise = torch.stack([rows[i * 200 + j][0] - x[i] for j in range(199)])
        expected = 0.1 * (x[i].max() - x[i].min())
        assert noise.std().item() == pytest.approx(expected.item(), rel=0.03)
        assert noise.mean().abs().item() < 0.01 * expected.item() * 5


def test_smooth_mprt_with_one_sample_is_mprt():
    model = make_model()
    x, target = inputs(3)
    smooth = rnd.smooth_mprt(model, x, target, explainer_factory=gradient, n_samples=1,
                             normalise="max", seed=4)
    plain = rnd.mprt(model, x, target, explainer_factory=gradient, seed=4)
    torch.testing.assert_close(smooth.curve, plain.curve, rtol=0, atol=1e-12)


def test_smooth_mprt_with_given_original_explanations_skips_the_original_model():
    model = make_model()
    x, target = inputs(3)
    given = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(9), dtype=x.dtype)
    log: list = []
    smooth = rnd.smooth_mprt(model, x, target, explainer_factory=recording(gradient, log), a=given,
                             n_samples=1,
                             normalise="max", seed=4)
    plain = rnd.mprt(model, x, target, explainer_factory=gradient, a=given, seed=4)
    assert len(log) == 3  # the three randomized models only
    torch.testing.assert_close(smooth.curve, plain.curve, rtol=0, atol=1e-12)


@settings(max_examples=10)
@given(batch=st.integers(1, 3), n_bins=st.sampled_from(
    [100, 7, "freedman_diaconis", "scott", "sqrt", "sturges",
                                                         "rice"]),
       abs_=st.booleans(), order=st.sampled_from(["bottom_up", "top_down"]), seed=st.integers(0, 3))
def test_efficient_mprt_matches_reference(batch, n_bins, abs_, order, seed):
    model = make_model()
    x, target = inputs(batch, seed=seed)
    result = rnd.efficient_mprt(model, x, target, explainer_factory=gradient, n_bins=n_bins,
                                abs=abs_, order=order,
                                seed=seed)
    expected = ref.efficient_mprt(model, x, target, gradient, order=order, seed=seed, n_bins=n_bins,
                                  abs=abs_)
    assert_close(result.score, expected)
    assert result.layers == ("original", "0" if order == "top_down" else "5")
    assert result.x.tolist() == [0.0, 3.0]


@settings(max_examples=40)
@given(data=st.data(), n_bins=st.sampled_from([1, 3, 10, 100, "freedman_diaconis", "scott", "sqrt",
                                               "sturges",
                                               "rice"]))
def test_histogram_entropy_matches_numpy(data, n_bins):
    from xaiscore.testing import strategies as xst

    a = data.draw(xst.attributions(ties=st.booleans(), constant=st.booleans()))
    expected = [ref.histogram_entropy(a[i].numpy(), n_bins) for i in range(a.shape[0])]
    assert_close(rnd.histogram_entropy(a, n_bins=n_bins), np.array(expected), atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_histogram_entropy_of_half_precision_batches_counts_each_sample_in_its_own_bins(dtype):
    # 64 samples x 100 bins: flat bin ids up to 6,400, beyond the integers half precision holds
    # exactly.
    values = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)).to(dtype)
    batched = rnd.histogram_entropy(values, n_bins=100)
    one_by_one = torch.cat([rnd.histogram_entropy(values[i : i + 1], n_bins=100)
                            for i in range(64)])
    torch.testing.assert_close(batched, one_by_one, rtol=0, atol=0)
    assert batched.dtype == dtype and bool((batched > 0).all())


def test_efficient_mprt_layerwise_curve():
    model = make_model()
    x, target = inputs(2)
    result = rnd.efficient_mprt(model, x, target, explainer_factory=gradient, layerwise=True)
    assert result.curve.shape == (2, 4) and result.x.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert result.layers == ("original", "0", "2", "5")
    short = rnd.efficient_mprt(model, x, target, explainer_factory=gradient)
    torch.testing.assert_close(result.curve[:, [0, -1]], short.curve)
    torch.testing.assert_close(result.score, short.score)


@settings(max_examples=8)
@given(batch=st.integers(1, 3), seed=st.integers(0, 50),
       similarity=st.sampled_from(["ssim", "ssim_flat", "spearman"]),
       normalise=st.sampled_from(["max", None]))
def test_random_logit_matches_reference(batch, seed, similarity, normalise):
    model = make_model(side=8)
    x, target = inputs(batch, side=8, seed=seed)
    result = rnd.random_logit(model, x, target, explainer_factory=gradient, similarity=similarity,
                              normalise=normalise,
                              seed=seed, max_batch_size=2)
    assert ((result.off_target >= 0) & (result.off_target < CLASSES)
            & (result.off_target != target)).all()
    expected = ref.random_logit(model, x, target, result.off_target, gradient,
                                similarity=similarity,
                                normalise=normalise)
    assert_close(result.score, expected)


def test_random_logit_draws_the_other_classes_uniformly():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 5)).double()
    x = torch.rand(3000, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    target = torch.full((3000,), 2)
    result = rnd.random_logit(model, x, target, explainer_factory=ignores_model,
                              similarity="spearman",
                              random_baseline=False, max_batch_size=3000)
    counts = torch.bincount(result.off_target, minlength=5).tolist()
    assert counts[2] == 0
    assert all(abs(c - 750) < 90 for i, c in enumerate(counts) if i != 2)


# --- properties ----------------------------------------------------------------------------


@pytest.mark.parametrize("similarity", ["spearman", "pearson", "cosine"])
@pytest.mark.parametrize("order", ["bottom_up", "top_down", "independent"])
def test_an_explainer_that_ignores_the_model_scores_similarity_one(similarity, order):
    model = make_model()
    x, target = inputs(3)
    result = rnd.mprt(model, x, target, explainer_factory=ignores_model, similarity=similarity,
                      order=order)
    torch.testing.assert_close(result.curve, torch.ones(3, 3, dtype=torch.float64))
    smooth = rnd.smooth_mprt(model, x, target, explainer_factory=ignores_model,
                             similarity=similarity, order=order,
                             n_samples=3)
    torch.testing.assert_close(smooth.score, torch.ones(3, dtype=torch.float64))


def test_an_explainer_that_ignores_the_model_scores_empty_zero():
    model = make_model()
    x, target = inputs(3)
    for n_bins in (100, "freedman_diaconis"):
        result = rnd.efficient_mprt(model, x, target, explainer_factory=ignores_model,
                                    n_bins=n_bins)
        torch.testing.assert_close(result.score, torch.zeros(3, dtype=torch.float64))


def test_mprt_never_averages_in_the_trivial_original_similarity():
    model = make_model()
    x, target = inputs(2)
    result = rnd.mprt(model, x, target, explainer_factory=gradient, summary="mean")
    assert result.curve.shape == (2, 3)  # three layers, no "original" column
    torch.testing.assert_close(result.score, result.curve.mean(dim=1))
    assert (result.score < 0.999).all()


CALLS = {
    "mprt": lambda model, x, t, **kw: rnd.mprt(model, x, t, explainer_factory=gradient, **kw),
    "smooth_mprt": lambda model, x, t, **kw: rnd.smooth_mprt(model, x, t, explainer_factory=gradient, n_samples=3, **kw),  # noqa: E501
    "efficient_mprt": lambda model, x, t, **kw: rnd.efficient_mprt(model, x, t, explainer_factory=gradient, **kw),  # noqa: E501
    "random_logit": lambda model, x, t, **kw: rnd.random_logit(model, x, t, explainer_factory=gradient,  # noqa: E501
                                                               similarity="spearman", **kw),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_the_users_model_is_bit_identical_afterwards(name):
    model = make_model()
    # in training mode: explaining updates its running statistics
    model.insert(1, nn.BatchNorm2d(2).double())
    model.train()
    before = snapshot(model)
    flags = [m.training for m in model.modules()]
    grads = [p.requires_grad for p in model.parameters()]
    x, target = inputs(2)
    CALLS[name](model, x, target)
    assert_unchanged(model, before)
    assert [m.training for m in model.modules()] == flags
    assert [p.requires_grad for p in model.parameters()] == grads
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", sorted(CALLS))
def test_global_random_state_is_untouched(name):
    model = make_model()
    x, target = inputs(2)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    CALLS[name](model, x, target)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_seeded_determinism(name):
    model = make_model()
    x, target = inputs(3)
    first = CALLS[name](model, x, target, seed=5)
    again = CALLS[name](model, x, target, seed=5)
    other = CALLS[name](model, x, target, seed=6)
    torch.testing.assert_close(first.score, again.score, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(first.baseline, again.baseline, rtol=0, atol=0)
    assert not torch.equal(first.baseline, other.baseline)
    if name != "random_logit":
        assert not torch.allclose(first.score, other.score)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_chunk_size_invariance(name):
    model = make_model()
    x, target = inputs(5)
    results = [CALLS[name](model, x, target, max_batch_size=size) for size in (1, 2, 3, 64)]
    for other in results[1:]:
        torch.testing.assert_close(other.score, results[0].score, rtol=1e-12, atol=1e-12,
                                   equal_nan=True)
        torch.testing.assert_close(other.baseline, results[0].baseline, rtol=1e-12, atol=1e-12)
        if hasattr(other, "curve"):
            torch.testing.assert_close(other.curve, results[0].curve, rtol=1e-12, atol=1e-12,
                                       equal_nan=True)


def test_smooth_mprt_is_chunk_size_invariant_in_float32_too():
    model = make_model().float()
    x, target = inputs(3)
    x = x.float()
    results = [rnd.smooth_mprt(model, x, target, explainer_factory=gradient, n_samples=5,
                               max_batch_size=size)
               for size in (1, 4, 7, 64)]
    for other in results[1:]:
        torch.testing.assert_close(other.curve, results[0].curve, rtol=1e-6, atol=1e-6)


def test_smooth_mprt_builds_the_same_noisy_inputs_with_and_without_keeping_them(monkeypatch):
    """Small inputs: all noisy copies are built once, up front (noise drawn on threads); large ones
    per chunk."""
    model = make_model().float()
    x, target = inputs(3)
    x = x.float()
    kept_log: list = []
    kept = rnd.smooth_mprt(model, x, target, explainer_factory=recording(gradient, kept_log),
                           n_samples=70,
                           max_batch_size=16, seed=1)
    monkeypatch.setattr(lay._SmoothExplainer, "CACHE_BYTES", 0)
    chunk_log: list = []
    per_chunk = rnd.smooth_mprt(model, x, target, explainer_factory=recording(gradient, chunk_log),
                                n_samples=70,
                                max_batch_size=16, seed=1)
    assert len(kept_log[0]) == len(chunk_log[0]) == 3 * 70
    for rows_kept, rows_chunk in zip(kept_log, chunk_log):
        assert all(torch.equal(a[0], b[0]) for a, b in zip(rows_kept, rows_chunk))
    torch.testing.assert_close(kept.curve, per_chunk.curve, rtol=0, atol=0)


def test_explain_calls_are_chunked_under_max_batch_size():
    model = make_model()
    x, target = inputs(5)
    sizes: list[int] = []

    def counting(m):
        inner = gradient(m)
        return lambda xx, tt: (sizes.append(xx.shape[0]), inner(xx, tt))[1]

    rnd.mprt(model, x, target, explainer_factory=counting, max_batch_size=2)
    assert sizes == [2, 2, 1] * 4  # original + 3 layers, all samples of a model in chunks
    sizes.clear()
    rnd.smooth_mprt(model, x, target, explainer_factory=counting, n_samples=4, max_batch_size=8)
    assert sizes == [8, 8, 4] * 4  # B * N = 20 noisy copies per model
    sizes.clear()
    rnd.efficient_mprt(model, x, target, explainer_factory=counting, max_batch_size=5)
    assert sizes == [5, 5]  # original and fully randomized only


def test_bottom_up_and_top_down_end_on_the_same_model():
    model = make_model()
    x, target = inputs(3)
    up = rnd.mprt(model, x, target, explainer_factory=gradient, order="bottom_up", seed=3)
    down = rnd.mprt(model, x, target, explainer_factory=gradient, order="top_down", seed=3)
    torch.testing.assert_close(up.curve[:, -1], down.curve[:, -1])


def test_float32_agrees_with_float64():
    model = make_model()
    x, target = inputs(3)
    result64 = rnd.mprt(model, x, target, explainer_factory=gradient, similarity="pearson")
    result32 = rnd.mprt(model.float(), x.float(), target, explainer_factory=gradient,
                        similarity="pearson")
    assert result32.score.dtype == torch.float32
    torch.testing.assert_close(result32.score.double(), result64.score, rtol=1e-4, atol=1e-4)


# --- the random baseline -------------------------------------------------------------------


def uniform_explainer(seed: int):
    """The documented baseline explainer: uniform maps from a generator seeded with the first draw
    of `seed`'s."""
    key = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(seed)))
    generator = torch.Generator().manual_seed(key)

    def explain(x, target):
        shape = (x.shape[0], 1) + tuple(x.shape[2:])
        levels = torch.randint(0, 2**16, shape, generator=generator, dtype=torch.int32)
        # uniform on the grid (k + 1/2) / 2**16
        return ((levels.double() + 0.5) / 2**16).to(x.dtype)

    return explain


def test_mprt_baseline_is_the_metric_of_a_random_explainer():
    model = make_model()
    x, target = inputs(4)
    result = rnd.mprt(model, x, target, explainer_factory=gradient, seed=3, max_batch_size=3)
    shared = uniform_explainer(3)
    random_run = rnd.mprt(model, x, target, explainer_factory=lambda m: shared, seed=3,
                          random_baseline=False)
    torch.testing.assert_close(result.baseline, random_run.score)
    assert result.baseline.abs().max() < 0.5


def test_mprt_baseline_ranked_by_counting_is_the_metric_of_a_random_explainer(monkeypatch):
    # 128 x 128 maps: the baseline's Spearman ranks come from counting the random levels, the
    # random explainer's from sorting its values; both must give the same scores.
    counted = []
    original = cmp.unit_rank_vectors_of_levels
    monkeypatch.setattr(cmp, "unit_rank_vectors_of_levels",
                        lambda *args: counted.append(1) or original(*args))
    model = make_model(side=128)
    x, target = inputs(2, side=128)
    result = rnd.mprt(model, x, target, explainer_factory=gradient, seed=4)
    assert len(counted) == 4  # the original's random map and one per layer (three layers)
    shared = uniform_explainer(4)
    random_run = rnd.mprt(model, x, target, explainer_factory=lambda m: shared, seed=4,
                          random_baseline=False)
    torch.testing.assert_close(result.baseline, random_run.score, rtol=0, atol=1e-12)
    logit = rnd.random_logit(model, x, target, explainer_factory=gradient, seed=4,
                             similarity="spearman")
    assert len(counted) == 6
    shared = uniform_explainer(4)
    logit_run = rnd.random_logit(model, x, target, explainer_factory=lambda m: shared,
                                 random_baseline=False,
                                 similarity="spearman")
    torch.testing.assert_close(logit.baseline, logit_run.score, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("channels", "reduce_channels"),
                         [(1, None), (3, None), (1, "sum"), (3, "sum"), (3, "mean"), (3, "max_abs"),
                          (1, "max_abs")])
@pytest.mark.parametrize(("normalise", "take_abs"), [("max", True), ("second_moment", False),
                                                     (None, False)])
def test_counted_ranks_of_random_maps_equal_the_ranks_of_their_values(dtype, channels,
                                                                      reduce_channels, normalise,
                                                                     take_abs, monkeypatch):
    counted = []
    original = cmp.unit_rank_vectors_of_levels
    monkeypatch.setattr(cmp, "unit_rank_vectors_of_levels",
                        lambda *args: counted.append(1) or original(*args))
    # the sum of 3 channels needs N >= range / 4
    like = torch.zeros(2, channels, 224, 224, dtype=dtype)
    post = cmp._PostProcess(take_abs, normalise, reduce_channels)
    spearman = cmp._Comparison("spearman", None)
    prepared = cmp._prepared_random_map(
        cmp._RandomMaps(torch.Generator().manual_seed(5), like.device), like,
        spearman, post)
    assert counted == [1]
    values = cmp._RandomMaps(torch.Generator().manual_seed(5), like.device)(like)
    by_sort = unit_rank_vectors(post(values).reshape(2, -1))
    torch.testing.assert_close(prepared, by_sort, rtol=0, atol=1e-12)


def test_random_maps_fall_back_to_sorting_where_counting_does_not_apply(monkeypatch):
    monkeypatch.setattr(cmp, "unit_rank_vectors_of_levels", lambda *args: pytest.fail("counted"))
    spearman = cmp._Comparison("spearman", None)
    post = cmp._PostProcess(True, "max", None)
    for like in (torch.zeros(2, 1, 224, 224, dtype=torch.float16),  # the grid is not exact in half
                 torch.zeros(2, 1, 8, 8)):  # 64 features: a sort is cheaper than a 2**16 table
        maps = cmp._RandomMaps(torch.Generator().manual_seed(1), like.device)
        prepared = cmp._prepared_random_map(maps, like, spearman, post)
        values = cmp._RandomMaps(torch.Generator().manual_seed(1), like.device)(like)
        torch.testing.assert_close(prepared, unit_rank_vectors(post(values).reshape(2, -1)))
    # Other similarities see the values themselves.
    pearson = cmp._Comparison("pearson", None)
    like = torch.zeros(2, 1, 224, 224)
    prepared = cmp._prepared_random_map(
        cmp._RandomMaps(torch.Generator().manual_seed(1), like.device), like,
        pearson, post)
    expected = post(cmp._RandomMaps(torch.Generator().manual_seed(1), like.device)(like))
    assert torch.equal(prepared, expected)


def test_random_maps_are_uniform_on_the_documented_grid():
    like = torch.zeros(4, 2, 64, 64, dtype=torch.float64)
    values = cmp._RandomMaps(torch.Generator().manual_seed(2), like.device)(like)
    assert values.shape == like.shape and values.dtype == torch.float64
    levels = values * 2**16 - 0.5
    assert torch.equal(levels, levels.round()) and levels.min() >= 0 and levels.max() <= 2**16 - 1
    assert abs(float(values.mean()) - 0.5) < 0.01 and abs(float(values.var()) - 1 / 12) < 0.005
    float32 = cmp._RandomMaps(torch.Generator().manual_seed(2), like.device)(like.float())
    assert torch.equal(float32.double(), values)  # the same maps whatever the dtype


def test_efficient_mprt_and_random_logit_baselines_are_their_metric_of_a_random_explainer():
    model = make_model(side=8)
    x, target = inputs(3, side=8)
    result = rnd.efficient_mprt(model, x, target, explainer_factory=gradient, seed=1)
    shared = uniform_explainer(1)
    random_run = rnd.efficient_mprt(model, x, target, explainer_factory=lambda m: shared,
                                    random_baseline=False)
    torch.testing.assert_close(result.baseline, random_run.score)
    logit = rnd.random_logit(model, x, target, explainer_factory=gradient, seed=1)
    shared = uniform_explainer(1)
    random_logit_run = rnd.random_logit(model, x, target, explainer_factory=lambda m: shared,
                                        random_baseline=False)
    torch.testing.assert_close(logit.baseline, random_logit_run.score)


def test_smooth_mprt_baseline_uses_single_random_maps():
    model = make_model()
    x, target = inputs(3)
    smooth = rnd.smooth_mprt(model, x, target, explainer_factory=gradient, n_samples=2, seed=2)
    assert smooth.baseline.shape == (3,) and smooth.baseline.abs().max() < 0.5


def test_baseline_can_be_switched_off():
    model = make_model()
    x, target = inputs(2)
    assert (rnd.mprt(model, x, target, explainer_factory=gradient, random_baseline=False).baseline
            is None)


def test_a_constant_explainer_gives_nan_not_a_number():
    model = make_model()
    x, target = inputs(2)
    result = rnd.mprt(model, x, target, explainer_factory=lambda m: constant_explainer(1.0))
    assert torch.isnan(result.score).all()
    assert torch.isnan(rnd.efficient_mprt(
        model, x, target, explainer_factory=lambda m: constant_explainer(1.0)).score).all()


def test_works_with_the_captum_adapter_as_a_factory():
    pytest.importorskip("captum")
    model = make_model()
    x, target = inputs(2)
    result = rnd.mprt(model, x, target, explainer_factory=lambda m: captum_explainer(m, "Saliency"))
    scores, _ = ref.mprt(model, x, target, lambda m: captum_explainer(m, "Saliency"))
    assert_close(result.score, scores)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CALLS))
def test_wrong_explanation_shape_is_a_clear_error(name):
    model = make_model()
    x, target = inputs(2)
    call = {
        "mprt": rnd.mprt,
        "smooth_mprt": partial(rnd.smooth_mprt, n_samples=2),
        "efficient_mprt": rnd.efficient_mprt,
        "random_logit": rnd.random_logit,
    }[name]
    with pytest.raises(
        ModelOutputError,
        match=r"Expected `explainer_factory\(model\)\(x, target\)` to return attributions of shape",
    ):
        call(model, x, target, explainer_factory=lambda m: (lambda xx, tt: xx[:, 0]))
    with pytest.raises(ModelOutputError, match="explain function"):
        call(model, x, target, explainer_factory=lambda m: 3)


@pytest.mark.parametrize("name", ["mprt", "smooth_mprt", "efficient_mprt", "random_logit"])
def test_nan_explanations_are_a_clear_error_unless_validation_is_off(name):
    model = make_model()
    x, target = inputs(2)
    calls = 0

    def nan_after_first(m):
        def explain(xx, tt):
            nonlocal calls
            calls += 1
            out = xx.clone()
            if calls > 1:
                out[0, 0, 0, 0] = math.nan
            elif xx.shape[0] == 2 * x.shape[0]:
                # random_logit explains the target and the other classes in one batch: the other
                # class of sample 0 (row B) gets the NaN.
                out[x.shape[0], 0, 0, 0] = math.nan
            return out

        return explain

    call = {"mprt": rnd.mprt, "smooth_mprt": partial(rnd.smooth_mprt, n_samples=1),
            "efficient_mprt": rnd.efficient_mprt, "random_logit": partial(rnd.random_logit, similarity="pearson")}[name]  # noqa: E501
    with pytest.raises(
        NonFiniteError,
        match="Expected the explain functions of `explainer_factory` to return finite attributions",
    ):
        call(model, x, target, explainer_factory=nan_after_first)
    calls = 0
    out = call(model, x, target, explainer_factory=nan_after_first, validate=False)
    assert torch.isnan(out.score[0])


def test_model_without_parameterised_layers_is_a_clear_error():
    model = nn.Sequential(nn.Flatten(), nn.Softmax(dim=1))
    x, target = inputs(2, side=2)
    for metric in (rnd.mprt, rnd.smooth_mprt, rnd.efficient_mprt):
        with pytest.raises(NoParameterisedLayersError, match="at least one layer with parameters"):
            metric(model, x, target, explainer_factory=ignores_model)


def test_a_bound_explainer_is_rejected_with_a_hint():
    model = make_model()
    x, target = inputs(2)
    with pytest.raises(DTypeError, match="factory"):
        rnd.mprt(model, x, target, explainer_factory=random_explainer(seed=0))


def test_input_and_option_errors():
    model = make_model()
    x, target = inputs(2)
    with pytest.raises(DTypeError, match="nn.Module"):
        rnd.mprt(lambda v: v, x, target, explainer_factory=gradient)
    with pytest.raises(ShapeError):
        rnd.mprt(model, x, target[:1], explainer_factory=gradient)
    with pytest.raises(OptionError, match="order"):
        rnd.mprt(model, x, target, explainer_factory=gradient, order="sideways")
    with pytest.raises(OptionError, match="similarity"):
        rnd.mprt(model, x, target, explainer_factory=gradient, similarity="kendall")
    with pytest.raises(OptionError, match="order"):
        rnd.efficient_mprt(model, x, target, explainer_factory=gradient, order="independent")
    with pytest.raises(OptionError, match="n_bins"):
        rnd.efficient_mprt(model, x, target, explainer_factory=gradient, n_bins="doane")
    with pytest.raises(OptionError, match="n_samples"):
        rnd.smooth_mprt(model, x, target, explainer_factory=gradient, n_samples=0)
    with pytest.raises(OptionError, match="target"):
        rnd.random_logit(model, x, torch.tensor([0, 7]), explainer_factory=gradient)
    with pytest.raises(OptionError, match="at least 2 classes"):
        rnd.random_logit(nn.Sequential(nn.Flatten(), nn.Linear(36, 1)).double(), x,
                         torch.tensor([0, 0]),
                         explainer_factory=gradient)
    with pytest.raises(ShapeError):
        rnd.mprt(model, x, target, explainer_factory=gradient,
                 a=torch.zeros(2, 1, 5, 5, dtype=torch.float64))
    two_channels = make_model(channels=2)
    x2, _ = inputs(2, channels=2)
    # `a` has one channel, the explainer two
    with pytest.raises(ModelOutputError, match="shape of `a`"):
        rnd.mprt(two_channels, x2, target, explainer_factory=gradient,
                 a=torch.rand(2, 1, 6, 6, dtype=torch.float64))


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_training_mode_batch_norm_model_is_scored_as_in_evaluation_mode(name):
    # random_logit's one-sample probe failed inside torch ("Expected more than 1 value per channel
    # when training") with batch norm over features; every kernel now runs the model in evaluation
    # mode.
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 6), nn.BatchNorm1d(6), nn.Tanh(),
                          nn.Linear(6, CLASSES)).double()
    with torch.no_grad():
        model[2].running_mean.uniform_(-1.0, 1.0, generator=torch.Generator().manual_seed(0))
    x, target = inputs(3)
    evaluated = CALLS[name](copy.deepcopy(model).eval(), x, target)
    trained = CALLS[name](model.train(), x, target)
    assert all(m.training for m in model.modules())
    torch.testing.assert_close(trained.score, evaluated.score, equal_nan=True, rtol=0, atol=0)
