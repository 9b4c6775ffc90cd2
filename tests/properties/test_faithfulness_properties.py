"""Properties of the faithfulness kernels: chunk-size invariance, seeded determinism, batch
independence, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xaiscore import DTypeError, NonFiniteError, OptionError, ShapeError
from xaiscore._engine.batching import ModelOutputError
from xaiscore.functional import faithfulness as fa
from xaiscore.testing import strategies as xst

SHAPES = xst.shapes(batch_size=st.integers(1, 3), channels=st.integers(1, 2),
                    spatial_dims=st.integers(1, 3),
                    side=st.integers(3, 4))

# name -> (kernel, options that keep it small, whether it is stochastic)
METRICS = {
    "deletion": (fa.deletion, {"features_per_step": 2}),
    "insertion": (fa.insertion, {"features_per_step": 2}),
    "pixel_flipping": (fa.pixel_flipping, {"features_per_step": 3, "order": "random", "baseline": "uniform"}),  # noqa: E501
    "region_perturbation": (fa.region_perturbation, {"patch_size": 2, "steps": 5}),
    "selectivity": (fa.selectivity, {"patch_size": 2}),
    "irof": (fa.irof, {"n_segments": 6}),
    "faithfulness_estimate": (fa.faithfulness_estimate, {"features_per_step": 2}),
    "monotonicity": (fa.monotonicity, {"features_per_step": 2}),
    "monotonicity_correlation": (fa.monotonicity_correlation, {"features_per_step": 3, "n_samples": 3}),  # noqa: E501
}


def _scores(out):
    return out if isinstance(out, torch.Tensor) else out.curve


def _run(name, case, **extra):
    kernel, options = METRICS[name]
    return kernel(case.forward_fn, case.x, case.a, case.target,
                  generator=torch.Generator().manual_seed(3),
                  **{**options, **extra})


@pytest.mark.parametrize("name", sorted(METRICS))
@given(data=st.data())
@settings(max_examples=10)
def test_result_does_not_depend_on_max_batch_size(name, data):
    case = data.draw(xst.model_inputs(shape=SHAPES), label="case")
    size = data.draw(st.integers(1, 9), label="max_batch_size")
    whole = _run(name, case, max_batch_size=10_000)
    chunked = _run(name, case, max_batch_size=size)
    torch.testing.assert_close(_scores(chunked), _scores(whole), rtol=1e-12, atol=1e-12,
                               equal_nan=True)
    if not isinstance(whole, torch.Tensor):
        torch.testing.assert_close(chunked.score, whole.score, rtol=1e-12, atol=1e-12,
                                   equal_nan=True)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_a_sample_does_not_depend_on_its_batch_mates(name):
    """Deterministic options: a sample scores the same alone and in a batch."""
    model = xst.tiny_mlp((2, 4, 4), 3, seed=2)
    generator = torch.Generator().manual_seed(4)
    x = torch.rand(3, 2, 4, 4, generator=generator, dtype=torch.float64)
    a = torch.randn(3, 1, 4, 4, generator=generator, dtype=torch.float64)
    target = torch.tensor([0, 1, 2])
    kernel, options = METRICS[name]
    options = {**options, "baseline": "mean"}
    if "order" in options:
        options["order"] = "lerf"
    together = _scores(kernel(model, x, a, target, **options))
    alone = _scores(kernel(model, x[1:2], a[1:2], target[1:2], **options))
    torch.testing.assert_close(together[1:2], alone, rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("name",
                         ["pixel_flipping", "region_perturbation", "monotonicity_correlation"])
def test_seeded_randomness_is_reproducible_and_seed_dependent(name):
    model = xst.tiny_mlp((1, 6, 6), 3, seed=5)
    generator = torch.Generator().manual_seed(6)
    x = torch.rand(2, 1, 6, 6, generator=generator, dtype=torch.float64)
    a = torch.randn(2, 1, 6, 6, generator=generator, dtype=torch.float64)
    target = torch.tensor([0, 1])
    kernel, options = METRICS[name]
    options = {**options, "baseline": "uniform"}

    def run(seed):
        return _scores(kernel(model, x, a, target, generator=torch.Generator().manual_seed(seed),
                              **options))

    torch.testing.assert_close(run(1), run(1), rtol=0, atol=0)
    assert not torch.allclose(run(1), run(2))


def test_random_order_is_a_permutation_whose_full_deletion_is_the_baseline():
    model = xst.tiny_mlp((1, 3, 3), 2, seed=7)
    x = torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a = torch.randn(2, 1, 3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    target = torch.tensor([0, 1])
    result = fa.pixel_flipping(model, x, a, target, order="random",
                               generator=torch.Generator().manual_seed(0))
    at_zero = model(torch.zeros_like(x)).gather(1, target.unsqueeze(1)).squeeze(1).detach()
    torch.testing.assert_close(result.curve[:, -1], at_zero)
    torch.testing.assert_close(result.curve[:, 0],
                               model(x).gather(1, target.unsqueeze(1)).squeeze(1).detach())


def test_deletion_of_a_perfect_linear_explanation_beats_its_reverse():
    """A linear model with w * x attributions: MoRF deletion falls fastest, so it scores below LeRF.
    """
    generator = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(16, 2, bias=False).double()
    with torch.no_grad():
        linear.weight.copy_(torch.randn(2, 16, generator=generator, dtype=torch.float64))
    model = torch.nn.Sequential(torch.nn.Flatten(), linear)
    x = torch.rand(4, 1, 16, generator=generator, dtype=torch.float64)
    target = torch.zeros(4, dtype=torch.long)
    a = (linear.weight[0] - linear.weight[1]).detach() * x
    morf = fa.pixel_flipping(model, x, a, target, softmax=True)
    lerf = fa.pixel_flipping(model, x, a, target, softmax=True, order="lerf")
    assert (morf.score < lerf.score).all()
    # On logits, removing feature i drops the class-0 logit by exactly w_0i x_i: correlation 1.
    exact = linear.weight[0].detach() * x
    torch.testing.assert_close(fa.faithfulness_estimate(model, x, exact, target),
                               torch.ones(4, dtype=x.dtype))


# --- errors ----------------------------------------------------------------------------------


def _inputs():
    model = xst.tiny_mlp((1, 4, 4), 3, seed=1)
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return model, x, a, torch.tensor([0, 2])


@pytest.mark.parametrize("name", sorted(METRICS))
def test_bad_forward_fn_outputs_raise(name):
    model, x, a, target = _inputs()
    kernel, options = METRICS[name]
    with pytest.raises(ModelOutputError, match="logits of shape"):
        kernel(lambda images: model(images)[:, 0], x, a, target, **options)
    with pytest.raises(ModelOutputError, match="logits of shape"):
        kernel(lambda images: model(images)[:1], x, a, target, **options)
    with pytest.raises(ModelOutputError, match="torch.Tensor"):
        kernel(lambda images: model(images).tolist(), x, a, target, **options)
    with pytest.raises(DTypeError, match="callable"):
        kernel("model", x, a, target, **options)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_target_errors(name):
    model, x, a, _ = _inputs()
    kernel, options = METRICS[name]
    with pytest.raises(OptionError, match=r"\[0, 3\)"):
        kernel(model, x, a, torch.tensor([0, 3]), **options)
    with pytest.raises(ShapeError, match=r"\(2,\)"):
        kernel(model, x, a, torch.tensor([0]), **options)
    with pytest.raises(DTypeError, match="integer"):
        kernel(model, x, a, torch.tensor([0.0, 1.0]), **options)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_nan_logits_raise_unless_validation_is_off(name):
    model, x, a, target = _inputs()
    kernel, options = METRICS[name]

    def nan_on_perturbed(images):
        logits = model(images)
        return torch.where(images.sum(dim=(1, 2, 3), keepdim=True).squeeze(-1).squeeze(-1)
                           != x[0].sum(),
                           torch.full_like(logits, math.nan), logits)

    with pytest.raises(NonFiniteError, match="NaN"):
        kernel(lambda images: torch.full_like(model(images), math.nan), x, a, target, **options)
    with pytest.raises(NonFiniteError, match="NaN"):
        kernel(nan_on_perturbed, x[:1], a[:1], target[:1], **options)
    out = kernel(nan_on_perturbed, x[:1], a[:1], target[:1], validate=False, **options)
    assert out.shape == (1,) if isinstance(out, torch.Tensor) else out.score.shape == (1,)


@pytest.mark.parametrize("name",
                         ["deletion", "pixel_flipping", "faithfulness_estimate", "monotonicity",
                          "monotonicity_correlation"])
def test_features_per_step_errors(name):
    model, x, a, target = _inputs()
    kernel, options = METRICS[name]
    with pytest.raises(OptionError, match="at most the number of features \\(16\\)"):
        kernel(model, x, a, target, **{**options, "features_per_step": 17})
    with pytest.raises(OptionError, match="at least 1"):
        kernel(model, x, a, target, **{**options, "features_per_step": 0})
    with pytest.raises(OptionError, match="fraction"):
        kernel(model, x, a, target, **{**options, "features_per_step": 2.0})
    with pytest.raises(DTypeError, match="int count or a float fraction"):
        kernel(model, x, a, target, **{**options, "features_per_step": "2"})


def test_option_errors():
    model, x, a, target = _inputs()
    with pytest.raises(OptionError, match="baseline"):
        fa.deletion(model, x, a, target, baseline="black")
    with pytest.raises(OptionError, match="order"):
        fa.pixel_flipping(model, x, a, target, order="best")
    with pytest.raises(OptionError, match="reduce_channels"):
        fa.selectivity(model, x, a, target, reduce_channels=None)
    with pytest.raises(OptionError, match="patch_size"):
        fa.region_perturbation(model, x, a, target, patch_size=0)
    with pytest.raises(OptionError, match="odd"):
        fa.insertion(model, x, a, target, blur_kernel_size=4)
    with pytest.raises(DTypeError, match="softmax"):
        fa.deletion(model, x, a, target, softmax=1)
    with pytest.raises(ShapeError, match="baseline"):
        fa.deletion(model, x, a, target, baseline=lambda images: images[:, :, :2])
    with pytest.raises(ShapeError, match="segments"):
        fa.irof(model, x, a, target, segments=torch.zeros(2, 4, 5, dtype=torch.long))
    with pytest.raises(DTypeError, match="segments"):
        fa.irof(model, x, a, target, segments=torch.zeros(2, 4, 4))
    with pytest.raises(ShapeError, match="matching"):
        fa.deletion(model, x[:, :, :3], a, target)
    with pytest.raises(NonFiniteError, match="x"):
        fa.deletion(model, torch.full_like(x, math.nan), a, target)
    with pytest.raises(NonFiniteError, match="a"):
        fa.deletion(model, x, torch.full_like(a, math.inf), target)
