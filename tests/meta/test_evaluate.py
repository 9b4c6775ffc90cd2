"""meta_evaluate end to end: against the slow reference on a tiny model, properties, determinism,
side effects, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from tests.reference import complexity as ref_complexity
from tests.reference import meta as ref
from xaiscore._checks import DTypeError, OptionError, ShapeError
from xaiscore.meta import (ModelPerturber, meta_evaluate, perturb_inputs, random_mc_level,
                           resolve_tests)
from xaiscore.meta._scoring import plan_metrics
from xaiscore.specs import MetricSpec, UnknownMetricError, list_metrics
from xaiscore.testing import strategies as xst
from xaiscore.testing.strategies import tiny_mlp

xr = pytest.importorskip("xarray")


# --- explainers and metrics used here ------------------------------------------------------------


class GradientExplainer:
    """Gradient of the target logit (times the input, optionally), batched; rows are independent."""

    def __init__(self, model: torch.nn.Module, times_input: bool = False) -> None:
        self.model, self.times_input = model, times_input

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        with torch.inference_mode(False), torch.enable_grad():
            inputs = x.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.model(inputs).gather(1, target[:, None]).sum(),
                                          inputs)
        return grad * x if self.times_input else grad


FACTORIES = {
    "gradient": lambda m: GradientExplainer(m),
    "input_x_gradient": lambda m: GradientExplainer(m, times_input=True),
}


def masked_logit(forward_fn, x: Tensor, a: Tensor, target: Tensor) -> Tensor:
    """Target logit of the input weighted by |a| / max |a| (a deterministic model-based test
    metric)."""
    weight = a.abs() / a.abs().flatten(1).amax(1).clamp(min=1e-12).reshape((-1,) + (1,)
                                                                           * (a.ndim - 1))
    with torch.inference_mode():
        return forward_fn(x * weight).gather(1, target[:, None]).squeeze(1)


def explanation_shift(x: Tensor, a: Tensor, target: Tensor, *, explain_fn) -> Tensor:
    """L2 change of the explanation when 0.05 is added to the input (a deterministic re-explaining
    metric)."""
    return (explain_fn(x + 0.05, target) - a).flatten(1).norm(dim=1)


def constant_score(a: Tensor) -> Tensor:
    return torch.full((a.shape[0],), 0.5, dtype=torch.float64)


def noise_score(a: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    return torch.rand(a.shape[0], generator=generator, dtype=torch.float64)


def _spec(name: str, needs, higher_is_better=True, family="faithfulness") -> MetricSpec:
    return MetricSpec(name=name, function=f"tests.meta.test_evaluate:{name}", family=family,
                      higher_is_better=higher_is_better, needs=frozenset(needs), stochastic=False,
                      citation="test")


MASKED_LOGIT = _spec("masked_logit", {"forward_fn", "x", "a", "target"})
EXPLANATION_SHIFT = _spec("explanation_shift", {"x", "a", "target", "explain_fn"}, False,
                          "robustness")
CONSTANT = _spec("constant_score", {"a"}, True, "complexity")
NOISE = _spec("noise_score", {"a"}, True, "complexity")


def reference_scorers():
    def sparseness(model, x_row, a_row, target_row, factory):
        return ref_complexity.sparseness(a_row[0].numpy())

    def logit(model, x_row, a_row, target_row, factory):
        weight = np.abs(a_row.numpy()) / max(np.abs(a_row.numpy()).max(), 1e-12)
        with torch.no_grad():
            return float(model(x_row * torch.from_numpy(weight))[0, int(target_row[0])])

    def shift(model, x_row, a_row, target_row, factory):
        moved = factory(model)(x_row + 0.05, target_row).detach()
        return float(np.linalg.norm((moved - a_row).numpy().ravel()))

    return {"sparseness": (sparseness, True), "masked_logit": (logit, True),
            "explanation_shift": (shift, False)}


def problem(b: int = 8, shape=(1, 4, 4), classes: int = 3, seed: int = 0):
    model = tiny_mlp(shape, classes, seed=seed)
    x = torch.rand((b,) + shape, generator=torch.Generator().manual_seed(seed),
                   dtype=torch.float64) * 2 - 1
    return model, x


# --- against the reference ------------------------------------------------------------------------


def test_matches_the_slow_reference():
    model, x = problem()
    ds = meta_evaluate(model, x, FACTORIES, ["sparseness", MASKED_LOGIT, EXPLANATION_SHIFT],
                       iterations=2,
                       perturbations=2, seed=5, n_splits=3, max_batch_size=7)
    expected = ref.reference_meta_evaluation(model, x, FACTORIES, reference_scorers(), iterations=2,
                                             perturbations=2, seed=5)
    for test in ("model_adversary", "input_adversary"):  # the adversary filters must keep something
        assert expected["kept"][list(ref.TESTS).index(test)].any()
    assert (ds["test"].values.tolist() == list(ref.TESTS)
            and ds["space"].values.tolist() == expected["spaces"])
    np.testing.assert_array_equal(ds["kept"].values, expected["kept"].astype(np.int8))
    for name in ("score", "score_perturbed", "iac", "iec", "mc"):
        np.testing.assert_allclose(ds[name].values, expected[name], rtol=1e-6, atol=1e-9,
                                   equal_nan=True,
                                   err_msg=name)
    mean_mc = np.nanmean(expected["mc"], axis=-1)
    np.testing.assert_allclose(ds["mc_mean"].values, mean_mc, atol=1e-9)
    np.testing.assert_allclose(ds["mc_std"].values, np.nanstd(expected["mc"], axis=-1), atol=1e-9)
    directions = [True, True, False]
    overall, per_sample = ref.agreement(expected["score"], directions)
    np.testing.assert_allclose(ds["agreement"].values, overall, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(ds["agreement_per_sample"].values, per_sample, atol=1e-9,
                               equal_nan=True)
    assert ds["higher_is_better"].values.tolist() == [1, 1, 0]


@settings(max_examples=8, deadline=None)
@given(xst.model_inputs(shape=xst.shapes(batch_size=st.integers(1, 4), channels=st.integers(1, 2),
                                         side=st.integers(1, 3))), st.integers(0, 2**16))
def test_matches_the_reference_on_drawn_problems(case, seed):
    """Any spatial rank, a batch of one, and a method whose maps are all zero (sparseness NaN).

    Samples are made distinct: ties and zero differences are detected exactly (as scipy does), so
    duplicated samples could tie in the per-sample reference and differ by one rounding step in the
    batched computation.
    """
    offset = 0.37 * torch.arange(case.x.shape[0], dtype=case.x.dtype).reshape((-1,) + (1,)
                                                                              * (case.x.ndim - 1))
    x = case.x + offset
    factories = {"gradient": FACTORIES["gradient"],
                 "zeros": lambda m: (lambda xx, t: torch.zeros_like(xx))}
    ds = meta_evaluate(case.forward_fn, x, factories, ["sparseness", MASKED_LOGIT], iterations=1,
                       perturbations=2, seed=seed, n_splits=2, max_batch_size=3)
    scorers = {k: v for k, v in reference_scorers().items() if k != "explanation_shift"}
    expected = ref.reference_meta_evaluation(case.forward_fn, x, factories, scorers, iterations=1,
                                             perturbations=2, seed=seed)
    np.testing.assert_array_equal(ds["kept"].values, expected["kept"].astype(np.int8))
    for name in ("score", "score_perturbed", "iac", "iec", "mc"):
        np.testing.assert_allclose(ds[name].values, expected[name], rtol=1e-6, atol=1e-9,
                                   equal_nan=True,
                                   err_msg=name)
    assert np.isnan(ds["score"].sel(metric="sparseness", explainer="zeros").values).all()


def test_random_baseline_columns_match_the_reference():
    model, x = problem(b=10, seed=1)
    ds = meta_evaluate(model, x, FACTORIES, ["sparseness", MASKED_LOGIT], iterations=1,
                       perturbations=1, seed=2,
                       n_splits=2)
    win, p = ref.random_separation(ds["score"].values, ds["baseline_score"].values, [True, True])
    np.testing.assert_allclose(ds["win_rate_vs_random"].values, win, atol=1e-12)
    np.testing.assert_allclose(ds["p_vs_random"].values, p, rtol=1e-9)
    beats = (win > 0.5) & (p < 0.05)
    np.testing.assert_array_equal(ds["beats_random"].values, beats.astype(np.int8))
    np.testing.assert_array_equal(ds["separates_random"].values, beats.all(-1).astype(np.int8))
    # the baseline maps are random: their sparseness is that of uniform noise (Gini about 1/3)
    assert np.all(np.abs(ds["baseline_score"].sel(metric="sparseness").values - 1 / 3) < 0.2)


# --- properties -----------------------------------------------------------------------------------


def test_a_constant_estimator_gets_perfect_resilience():
    model, x = problem(b=12, seed=2)
    ds = meta_evaluate(model, x, FACTORIES, [CONSTANT], iterations=2, perturbations=3, seed=0,
                       n_splits=2)
    for test in ("model_resilience", "input_resilience"):
        assert np.all(ds["iac"].sel(test=test).values == 1.0) and np.all(
            ds["iec"].sel(test=test).values == 1.0)
    for test in ("model_adversary", "input_adversary"):
        values = np.concatenate([ds["iac"].sel(test=test).values.ravel(),
                                 ds["iec"].sel(test=test).values.ravel()])
        assert np.all(values[np.isfinite(values)] == 0.0) and np.isfinite(values).any()
    mc = ds["mc"].values
    assert np.all(mc[np.isfinite(mc)] == 0.5)


def test_a_noise_estimator_scores_near_the_random_level():
    model, x = problem(b=32, seed=3)
    factories = {**FACTORIES,
                 "negative_gradient": lambda m: (lambda xx, t: -GradientExplainer(m)(xx, t)),
                 "input": lambda m: (lambda xx, t: xx.clone())}
    ds = meta_evaluate(model, x, factories, [NOISE], iterations=3, perturbations=5, seed=1,
                       n_splits=2)
    assert ds.attrs["random_level_mc"] == random_mc_level(4) == 0.4375
    for space in ("input", "model"):
        assert (float(ds["mc_mean"].sel(metric="noise_score", space=space))
                == pytest.approx(0.4375, abs=0.08))


def test_explanations_of_perturbed_inputs_are_recomputed():
    """MetaQuantus 0.0.5 explains the *unperturbed* input in its input tests; we explain the
    perturbed one."""
    model, x = problem(seed=4)
    ds = meta_evaluate(model, x, FACTORIES, ["sparseness"], tests=["input_adversary"], iterations=1,
                       perturbations=2, seed=0, n_splits=2)
    moved = (ds["score_perturbed"].sel(test="input_adversary").values
             - ds["score"].values[:, None, None])
    assert np.all(np.abs(moved).max(axis=(1, 2)) > 1e-3)
    assert ds["space"].size == 0 and np.all(np.isnan(ds["mc_overall"].values))


def test_seeded_determinism_and_generator():
    model, x = problem(seed=5)
    kwargs = dict(iterations=1, perturbations=2, n_splits=3)
    first = meta_evaluate(model, x, FACTORIES, ["sparseness", NOISE], seed=3, **kwargs)
    again = meta_evaluate(model, x, FACTORIES, ["sparseness", NOISE], seed=3, **kwargs)
    xr.testing.assert_identical(first, again)
    other = meta_evaluate(model, x, FACTORIES, ["sparseness", NOISE], seed=4, **kwargs)
    assert not np.allclose(first["score_perturbed"].values, other["score_perturbed"].values)
    from_generator = meta_evaluate(model, x, FACTORIES, ["sparseness", NOISE],
                                   generator=torch.Generator().manual_seed(3), **kwargs)
    xr.testing.assert_allclose(first.drop_attrs(), from_generator.drop_attrs())
    assert from_generator.attrs["seed"] == -1 and first.attrs["seed"] == 3


def test_results_do_not_depend_on_max_batch_size():
    model, x = problem(seed=6)
    metrics = ["sparseness", MASKED_LOGIT, EXPLANATION_SHIFT, NOISE]
    small = meta_evaluate(model, x, FACTORIES, metrics, iterations=1, perturbations=3, seed=0,
                          n_splits=2,
                          max_batch_size=3)
    large = meta_evaluate(model, x, FACTORIES, metrics, iterations=1, perturbations=3, seed=0,
                          n_splits=2,
                          max_batch_size=500)
    xr.testing.assert_allclose(small, large, rtol=1e-10, atol=1e-12)


def test_the_users_model_is_untouched():
    model, x = problem(seed=7)
    model.train(False)
    model[1].train(True)  # an odd mix of flags that must survive
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    grads = [p.requires_grad for p in model.parameters()]
    meta_evaluate(model, x, FACTORIES, ["sparseness", MASKED_LOGIT, EXPLANATION_SHIFT],
                  iterations=1,
                  perturbations=2, seed=0, n_splits=2)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert [m.training for m in model.modules()] == flags
    assert [p.requires_grad for p in model.parameters()] == grads
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())


def test_float32_and_other_spatial_ranks():
    for shape in ((2, 6), (1, 3, 3, 2)):
        model = tiny_mlp(shape, 3, seed=1, dtype=torch.float32)
        x = torch.rand((6,) + shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
        ds = meta_evaluate(model, x, FACTORIES, ["sparseness", MASKED_LOGIT], iterations=1,
                           perturbations=2,
                           seed=0, n_splits=2)
        assert ds["score"].dtype == np.float64 and ds["score"].shape == (2, 2, 6)
        assert np.isfinite(ds["score_perturbed"].values).all()


def test_netcdf_round_trip(tmp_path):
    pytest.importorskip("netCDF4")
    model, x = problem(seed=8)
    ds = meta_evaluate(model, x, FACTORIES, ["sparseness", "pointing_game", MASKED_LOGIT],
                       iterations=1,
                       perturbations=2, seed=0, n_splits=2)  # pointing_game is skipped: no mask
    path = tmp_path / "meta.nc"
    ds.to_netcdf(path)
    loaded = xr.load_dataset(path)
    xr.testing.assert_identical(ds, loaded)
    assert "pointing_game" in json.loads(loaded.attrs["skipped"])
    assert json.loads(loaded.attrs["tests"]) == {"model_resilience": 0.001, "model_adversary": 2.0,
                                                 "input_resilience": 0.001, "input_adversary": 5.0}


def test_every_registered_metric_can_be_planned():
    everything = frozenset({"a", "x", "target", "forward_fn", "model", "explain_fn",
                            "explainer_factory", "mask",
                            "segments", "tiles"})
    planned, skipped = plan_metrics(list(list_metrics()), None, available=everything)
    assert skipped == {} and [p.name for p in planned] == [s.name for s in list_metrics()]
    _, skipped = plan_metrics(list(list_metrics()), None,
                              available=everything - {"mask", "segments"})
    assert set(skipped) == {s.name for s in list_metrics() if s.needs & {"mask", "segments"}}


def test_one_metric_of_each_family_runs():
    pytest.importorskip("captum")
    model, x = problem(b=4, seed=9)
    mask = torch.zeros(4, 1, 4, 4, dtype=torch.bool)
    mask[:, :, :2, :2] = True
    metrics = ["pointing_game", "sparseness", "deletion", "max_sensitivity", "random_logit"]
    options = {"max_sensitivity": {"n_samples": 2}, "deletion": {"features_per_step": 0.25},
               "random_logit": {"random_baseline": False, "num_classes": 3, "similarity_kwargs": {"win_size": 3}}}  # noqa: E501
    ds = meta_evaluate(model, x, FACTORIES, metrics, mask=mask, metric_options=options,
                       iterations=1,
                       perturbations=1, seed=0, n_splits=2)
    assert ds["metric"].values.tolist() == metrics
    assert ds["score_perturbed"].shape == (5, 4, 1, 1, 2, 4)
    assert np.isfinite(ds["score"].values).all()
    assert ds["family"].values.tolist() == ["localization", "complexity", "faithfulness",
                                            "robustness",
                                            "randomization"]


# --- perturbations --------------------------------------------------------------------------------


def test_input_noise_is_uniform_and_clipped():
    x = torch.linspace(-1, 1, 200, dtype=torch.float64).reshape(2, 1, 100)
    noisy = perturb_inputs(x, magnitude=0.3, seed=1, low=x.min(), high=x.max())
    # MetaQuantus clips the top at the *perturbed* maximum
    assert noisy.min() >= -1 and noisy.max() <= 1
    free = perturb_inputs(x, magnitude=0.3, seed=1)
    assert (free - x).abs().max() <= 0.3 and (free - x).abs().max() > 0.25
    assert torch.equal(noisy, free.clamp(-1, 1))
    # same draws
    assert torch.allclose(perturb_inputs(x.float(), magnitude=0.3, seed=1), free.float())


def test_model_noise_is_multiplicative_gaussian():
    model = torch.nn.Linear(200, 100, dtype=torch.float64)
    with torch.no_grad():
        model.weight[:10] = 0.0
    perturber = ModelPerturber(model)
    noisy = perturber.perturb(std=0.5, seed=3)
    ratio = (noisy.weight[10:] / model.weight[10:]).flatten()
    # multiplicative
    assert torch.equal(noisy.weight[:10], torch.zeros(10, 200, dtype=torch.float64))
    assert (ratio.mean().item() == pytest.approx(1.0, abs=0.01)
            and ratio.std().item() == pytest.approx(0.5, abs=0.01))
    again = perturber.perturb(std=0.5, seed=3)  # from the originals: perturbations do not compound
    assert torch.equal(again.weight, noisy.weight)
    assert torch.equal(perturber.restore().weight, model.weight)


def test_model_noise_law_matches_quantus_sample(quantus_module):
    """MetaQuantus perturbs models with Quantus' ModelInterface.sample: every parameter times
    N(mean, std)."""
    model = torch.nn.Sequential(torch.nn.Linear(300, 200), torch.nn.Tanh(),
                                torch.nn.Linear(200, 100))
    wrapped = quantus_module.helpers.model.pytorch_model.PyTorchModel(model, channel_first=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # Quantus draws from the global generator
        theirs = wrapped.sample(mean=1.0, std=0.5, noise_type="multiplicative")
    ours = ModelPerturber(model).perturb(std=0.5, seed=0)
    for name, original in model.named_parameters():
        ratio_theirs = (dict(theirs.named_parameters())[name] / original).detach().flatten()
        ratio_ours = (dict(ours.named_parameters())[name] / original).detach().flatten()
        for ratio in (ratio_theirs, ratio_ours):  # weights and biases alike
            assert ratio.mean().item() == pytest.approx(1.0, abs=0.1)
            assert ratio.std().item() == pytest.approx(0.5, abs=0.1)


def test_resolve_tests():
    assert ([t.magnitude for t in resolve_tests(["input_adversary"], {"input_adversary": 2.5})]
            == [2.5])
    with pytest.raises(OptionError, match="input_noise"):
        resolve_tests(["input_noise"])
    with pytest.raises(OptionError, match="at most once"):
        resolve_tests(["model_adversary", "model_adversary"])
    with pytest.raises(OptionError, match="magnitudes"):
        resolve_tests(None, {"input": 1.0})
    with pytest.raises(OptionError):
        resolve_tests(None, {"input_adversary": -1.0})
    with pytest.raises(DTypeError):
        resolve_tests("input_adversary")
    with pytest.raises(OptionError):
        resolve_tests([])


# --- errors ---------------------------------------------------------------------------------------


def test_errors():
    model, x = problem()
    with pytest.raises(DTypeError, match="mapping"):
        meta_evaluate(model, x, [FACTORIES["gradient"]], ["sparseness"])
    with pytest.raises(OptionError, match="at least 2"):
        meta_evaluate(model, x, {"gradient": FACTORIES["gradient"]}, ["sparseness"])
    from xaiscore.explainers import random_explainer

    with pytest.raises(DTypeError, match="factory"):
        meta_evaluate(model, x, {"a": random_explainer(seed=0), "b": FACTORIES["gradient"]},
                      ["sparseness"])
    with pytest.raises(UnknownMetricError):
        meta_evaluate(model, x, FACTORIES, ["sparsenes"])
    with pytest.raises(OptionError, match="among"):
        meta_evaluate(model, x, FACTORIES, ["sparseness"],
                      metric_options={"sparseness": {"bins": 3}})
    with pytest.raises(OptionError, match="selected"):
        meta_evaluate(model, x, FACTORIES, ["sparseness"], metric_options={"complexity": {}})
    with pytest.raises(OptionError, match="skipped"):
        meta_evaluate(model, x, FACTORIES, ["pointing_game"])
    with pytest.raises(DTypeError):
        meta_evaluate(model, x.long(), FACTORIES, ["sparseness"])
    with pytest.raises(ShapeError):
        meta_evaluate(model, x, FACTORIES, ["sparseness"], target=torch.zeros(3, dtype=torch.long))
    with pytest.raises(OptionError):
        meta_evaluate(model, x, FACTORIES, ["sparseness"], iterations=0)
    with pytest.raises(DTypeError):
        meta_evaluate(model, x, FACTORIES, ["sparseness"], perturbations=2.0)
    with pytest.raises(OptionError):
        meta_evaluate(model, x, FACTORIES, ["sparseness"], alpha=1.5)
    with pytest.raises(DTypeError):
        meta_evaluate(lambda t: t, x, FACTORIES, ["sparseness"])
    with pytest.raises(DTypeError):
        meta_evaluate(model, x, FACTORIES, "sparseness")
    with pytest.raises(OptionError, match="at most once"):
        meta_evaluate(model, x, FACTORIES, ["sparseness", "sparseness"])
    with pytest.raises(ShapeError):
        meta_evaluate(model, x, FACTORIES, ["sparseness"],
                      mask=torch.ones(8, 1, 3, 3, dtype=torch.bool))
    assert not math.isnan(random_mc_level(2))
