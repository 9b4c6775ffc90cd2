"""The Quantus call protocol of the drop-in: layouts, devices, normalisation, aggregation,
explainers, ``quantus.evaluate``, errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from xaiscore import quantus_compat as qc
from xaiscore._checks import DTypeError, OptionError, ShapeError, XaiscoreError
from xaiscore.quantus_compat._base import _expand_like_quantus, infer_channel_first, resolve_device
from xaiscore.testing.strategies import tiny_mlp

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def case(batch=4, channels=1, side=8, seed=0, classes=3):
    generator = torch.Generator().manual_seed(seed)
    model = tiny_mlp((channels, side, side), classes, seed=seed + 1, dtype=torch.float32)
    x = torch.rand(batch, channels, side, side, generator=generator).numpy()
    a = torch.randn(batch, channels, side, side, generator=generator).numpy()
    s = np.zeros((batch, 1, side, side), dtype=np.float32)
    s[:, :, 1:4, 2:5] = 1
    return model, x, (np.arange(batch) % classes), a, s


def saliency(model, inputs, targets, **kwargs):
    """|gradient| of the target logit, numpy in and out, one channel per input channel."""
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32).requires_grad_(True)
    model(x).gather(1, torch.as_tensor(np.asarray(targets)).long()[:, None]).sum().backward()
    return x.grad.abs().numpy()


# --- layout ---------------------------------------------------------------------------------------


@pytest.mark.quantus
@pytest.mark.parametrize("shape", [(4, 10), (4, 3, 20), (4, 20, 3), (4, 3, 8, 8), (4, 8, 8, 3),
                                   (4, 1, 5, 7),
                                   (4, 5, 5), (4, 3, 3, 3), (2, 1, 2, 3, 4)])
def test_channel_order_is_inferred_as_quantus_does(quantus_module, shape):
    try:
        expected = quantus_module.helpers.utils.infer_channel_first(np.zeros(shape))
    except ValueError:
        with pytest.raises(ShapeError):
            infer_channel_first(shape)
    else:
        assert infer_channel_first(shape) == expected


@pytest.mark.quantus
@pytest.mark.parametrize("x_shape, a_shape", [((2, 3, 6, 6), (2, 6, 6)), ((2, 3, 6, 6),
                                                                          (2, 1, 6, 6)),
                                              ((2, 3, 6, 6), (2, 3, 6, 6)), ((2, 1, 7), (2, 7)),
                                              ((2, 9), (2, 9))])
def test_attribution_channels_are_added_as_quantus_does(quantus_module, x_shape, a_shape):
    a = np.arange(np.prod(a_shape), dtype=np.float64).reshape(a_shape)
    expected = quantus_module.helpers.utils.expand_attribution_channel(a, np.zeros(x_shape))
    np.testing.assert_array_equal(_expand_like_quantus(a, x_shape), expected)


def test_channel_last_inputs_give_the_channel_first_scores():
    model, x, y, a, s = case(channels=3)
    first = qc.RelevanceRankAccuracy(disable_warnings=True)(None, x, y, a, s)
    last = qc.RelevanceRankAccuracy(disable_warnings=True)(None, np.moveaxis(x, 1, -1), y,
                                                           np.moveaxis(a, 1, -1),
                                                          np.moveaxis(s, 1, -1))
    assert first == last
    flipping = qc.PixelFlipping(features_in_step=16, disable_warnings=True)
    np.testing.assert_allclose(flipping(model, np.moveaxis(x, 1, -1), y, np.moveaxis(a, 1, -1),
                                        channel_first=False),
                               flipping(model, x, y, a), atol=1e-6)


def test_tabular_inputs_reach_the_model_and_explainer_unchanged():
    seen = []
    model = nn.Sequential(nn.Linear(6, 3)).eval()

    def explain(model, inputs, targets, **kwargs):
        seen.append(np.shape(inputs))
        return np.asarray(inputs) * 2.0

    x = np.random.default_rng(0).random((5, 6)).astype(np.float32)
    scores = qc.FaithfulnessEstimate(disable_warnings=True)(model, x, np.zeros(5, int),
                                                            explain_func=explain,
                                                            batch_size=2)
    assert len(scores) == 5 and all(-1 <= v <= 1 for v in scores)
    assert set(seen) == {(2, 6), (1, 6)}
    sensitivity = qc.MaxSensitivity(nr_samples=3, seed=0, disable_warnings=True)(model, x,
                                                                                 np.zeros(5, int),
                                                                               explain_func=explain)
    assert len(sensitivity) == 5 and all(v >= 0 for v in sensitivity)


# --- devices --------------------------------------------------------------------------------------


def test_devices():
    assert resolve_device("gpu", None) == torch.device("cuda")
    assert resolve_device("gpu:1", None) == torch.device("cuda:1")
    assert resolve_device("cpu", None) == torch.device("cpu")
    assert resolve_device(None, nn.Linear(2, 2)) == torch.device("cpu")
    assert resolve_device(torch.device("cpu"), None) == torch.device("cpu")
    with pytest.raises(OptionError, match="device"):
        resolve_device("tpu-please", None)
    with pytest.raises(DTypeError, match="device"):
        resolve_device(3, None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_gives_the_cpu_scores():
    model, x, y, a, s = case()
    cpu = qc.PixelFlipping(features_in_step=8, disable_warnings=True)(model, x, y, a, device="cpu")
    gpu = qc.PixelFlipping(features_in_step=8, disable_warnings=True)(model.cuda(), x, y, a,
                                                                      device="cuda")
    np.testing.assert_allclose(gpu, cpu, atol=1e-5)
    mask_cpu = qc.AUC(disable_warnings=True)(None, x, y, a, s, device="cpu")
    mask_gpu = qc.AUC(disable_warnings=True)(None, x, y, a, s, device="gpu")
    np.testing.assert_allclose(mask_gpu, mask_cpu, atol=1e-6)


# --- normalisation and abs ------------------------------------------------------------------------


def test_normalisation_is_per_sample_unless_quantus_compatible():
    model, x, y, a, _ = case()
    loud = a.copy()
    loud[0] *= 1000.0
    metric = qc.MaxSensitivity(nr_samples=4, normalise=True, seed=1, disable_warnings=True)
    np.testing.assert_allclose(metric(model, x, y, loud, explain_func=saliency)[1:],
                               metric(model, x, y, a, explain_func=saliency)[1:], rtol=1e-6)
    a = loud
    quiet = qc.EffectiveComplexity(eps=0.01, quantus_bug_compatible=True, disable_warnings=True)
    assert (quiet(None, x, y, a)[1:]
            != qc.EffectiveComplexity(eps=0.01, disable_warnings=True)(None, x, y, a)[1:])


def test_quantus_mode_normalises_explanations_per_batch_of_batch_size():
    model, x, y, _, _ = case()
    metric = qc.EffectiveComplexity(eps=0.05, quantus_bug_compatible=True, disable_warnings=True)
    chunked = metric(model, x, y, explain_func=saliency, batch_size=2)
    halves = metric(model, x[:2], y[:2], explain_func=saliency) + metric(model, x[2:], y[2:],
                                                                         explain_func=saliency)
    assert chunked == halves


def test_a_user_normalise_func_runs_on_each_sample(quantus_module):
    _, x, y, a, _ = case()
    calls = []

    def halve(array, factor=2.0):
        calls.append(array.shape)
        return array / factor

    metric = qc.EffectiveComplexity(eps=0.4, abs=True, normalise_func=halve,
                                    normalise_func_kwargs={"factor": 4.0},
                                    disable_warnings=True)
    scores = metric(None, x, y, a)
    assert calls == [(1,) + a.shape[1:]] * 4
    assert scores == [float((np.abs(a[i]) / 4.0 > 0.4).sum()) for i in range(4)]
    # with options: Quantus' own function, per sample
    by_max = quantus_module.normalise_func.normalise_by_max
    options = {"normalise_func": by_max, "normalise_func_kwargs": {"normalise_axes": [1, 2, 3]},
               "eps": 0.3,
               "disable_warnings": True}
    native = qc.EffectiveComplexity(eps=0.3, disable_warnings=True)(None, x, y, a)
    assert qc.EffectiveComplexity(**options)(None, x, y, a) == native


def test_abs_is_applied_after_normalise():
    _, x, y, a, s = case()
    signed = qc.RelevanceRankAccuracy(abs=False, disable_warnings=True)(None, x, y, a, s)
    absolute = qc.RelevanceRankAccuracy(abs=True, disable_warnings=True)(None, x, y, a, s)
    assert absolute == qc.RelevanceRankAccuracy(disable_warnings=True)(None, x, y, np.abs(a), s)
    assert signed != absolute


# --- results --------------------------------------------------------------------------------------


def test_return_aggregate_and_history():
    _, x, y, a, s = case()
    metric = qc.AUC(disable_warnings=True)
    first = metric(None, x, y, a, s)
    assert isinstance(first, list) and all(type(v) is float for v in first)
    second = metric(None, x[:2], y[:2], a[:2], s[:2])
    assert metric.evaluation_scores == second and metric.all_evaluation_scores == first + second
    aggregated = qc.AUC(return_aggregate=True, disable_warnings=True)(None, x, y, a, s)
    assert aggregated == [pytest.approx(np.mean(first))]
    median = qc.AUC(return_aggregate=True, aggregate_func=np.median,
                    disable_warnings=True)(None, x, y, a, s)
    assert median == [pytest.approx(np.median(first))]
    assert metric.get_params["abs"] is False and "evaluation_scores" not in metric.get_params


def test_curves_and_auc_helpers():
    model, x, y, a, _ = case()
    flipping = qc.PixelFlipping(features_in_step=16, disable_warnings=True)
    curves = flipping(model, x, y, a)
    assert len(curves) == 4 and all(len(curve) == 4 for curve in curves)
    assert flipping.get_auc_score == pytest.approx(np.mean([np.trapezoid(c) for c in curves]))
    irof = qc.IROF(segmentation_method="grid", n_segments=16, return_aggregate=False,
                   disable_warnings=True)
    scores = irof(model, x, y, a)
    assert irof.get_aoc_score == pytest.approx(np.mean(scores))


def test_scores_do_not_depend_on_batch_size():
    model, x, y, a, _ = case()
    metric = qc.RegionPerturbation(patch_size=2, regions_evaluation=6, perturb_baseline="uniform",
                                   seed=3,
                                   disable_warnings=True)
    np.testing.assert_allclose(metric(model, x, y, a, batch_size=1),
                               metric(model, x, y, a, batch_size=64),
                               atol=1e-6)
    sensitivity = qc.AvgSensitivity(nr_samples=5, seed=2, disable_warnings=True)
    np.testing.assert_allclose(sensitivity(model, x, y, a, explain_func=saliency, batch_size=3),
                               sensitivity(model, x, y, a, explain_func=saliency, batch_size=64),
                               rtol=1e-6)


def test_seeds_make_stochastic_metrics_reproducible_and_leave_global_state_alone():
    model, x, y, a, _ = case()
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state()
    metric = qc.MonotonicityCorrelation(features_in_step=16, nr_samples=3, seed=5,
                                        disable_warnings=True)
    assert metric(model, x, y, a) == metric(model, x, y, a)
    assert np.array_equal(np.random.get_state()[1], state) and torch.equal(torch.get_rng_state(),
                                                                           torch_state)


def test_nan_scores_warn_unless_disabled():
    _, x, y, a, s = case()
    s[0] = 0
    with pytest.warns(UserWarning, match="NaN"):
        qc.AUC()(None, x, y, a, s)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(qc.AUC(disable_warnings=True)(None, x, y, a, s)[0])


def test_progress_bar(capsys):
    pytest.importorskip("tqdm")
    model, x, y, a, _ = case()
    qc.PixelFlipping(features_in_step=16, display_progressbar=True,
                     disable_warnings=True)(model, x, y, a)
    assert "PixelFlipping" in capsys.readouterr().err


# --- models and explainers ------------------------------------------------------------------------


def test_a_trailing_softmax_is_stripped_for_logits():
    model, x, y, a, _ = case()
    with_softmax = nn.Sequential(model, nn.Softmax(dim=-1)).eval()
    metric = qc.PixelFlipping(features_in_step=16, disable_warnings=True)
    for softmax in (True, False):
        np.testing.assert_allclose(metric(with_softmax, x, y, a, softmax=softmax),
                                   metric(model, x, y, a, softmax=softmax), atol=1e-6)
    assert isinstance(with_softmax[1], nn.Softmax)  # the user's model is untouched


def test_model_predict_kwargs_reach_the_model():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(16, 2)

        def forward(self, x, scale=1.0):
            return self.linear(x.flatten(1)) * scale

    model = Scaled().eval()
    _, x, y, a, _ = case(side=4, classes=2)
    metric = qc.PixelFlipping(features_in_step=4, disable_warnings=True)
    plain = np.asarray(metric(model, x, y, a, softmax=False))
    scaled = np.asarray(metric(model, x, y, a, softmax=False, model_predict_kwargs={"scale": 3.0}))
    np.testing.assert_allclose(scaled, 3.0 * plain, rtol=1e-5, atol=1e-6)


@pytest.mark.quantus
def test_quantus_explain_computes_missing_attributions(quantus_module):
    model, x, y, _, s = case()
    kwargs = {"method": "Saliency"}
    a = quantus_module.explain(model, x, y, **kwargs)
    given = qc.RelevanceRankAccuracy(disable_warnings=True)(None, x, y, a, s)
    computed = qc.RelevanceRankAccuracy(disable_warnings=True)(model, x, y, None, s,
                                                               explain_func=quantus_module.explain,
                                                             explain_func_kwargs=kwargs,
                                                               batch_size=3)
    np.testing.assert_allclose(computed, given, atol=1e-12)
    assert not model.training


@pytest.mark.quantus
def test_quantus_evaluate_runs_our_classes(quantus_module):
    model, x, y, a, s = case()
    metrics = {
        "AUC": qc.AUC(disable_warnings=True),
        "Sparseness": qc.Sparseness(disable_warnings=True),
        "PixelFlipping": qc.PixelFlipping(features_in_step=16, return_auc_per_sample=True, disable_warnings=True),  # noqa: E501
        "MaxSensitivity": qc.MaxSensitivity(nr_samples=3, seed=0, disable_warnings=True),
        "ROAD": qc.ROAD(percentages=[20, 80], noise=0.0, disable_warnings=True),
        "MPRT": qc.MPRT(return_average_correlation=True, disable_warnings=True),
    }
    results = quantus_module.evaluate(metrics=metrics, xai_methods={"Saliency": {}}, model=model,
                                      x_batch=x,
                                      y_batch=y, s_batch=s)
    assert set(results) == {"Saliency"} and set(results["Saliency"]) == set(metrics)
    for name in ("AUC", "Sparseness", "PixelFlipping", "MaxSensitivity", "MPRT"):
        assert len(results["Saliency"][name]) == 4 and np.isfinite(results["Saliency"][name]).all()
    assert set(results["Saliency"]["ROAD"]) == {20, 80}
    means = quantus_module.evaluate(metrics={"AUC": metrics["AUC"]}, xai_methods={"Saliency": {}},
                                    model=model,
                                    x_batch=x, y_batch=y, s_batch=s, agg_func=np.mean)
    assert means["Saliency"]["AUC"] == pytest.approx(np.mean(results["Saliency"]["AUC"]))
    by_layer = quantus_module.evaluate(metrics={"AUC": qc.AUC(disable_warnings=True)},
                                       xai_methods={"given": a},
                                       model=model, x_batch=x, y_batch=y, s_batch=s,
                                       call_kwargs={"small": {"batch_size": 2},
                                                    "large": {"batch_size": 64}})
    assert set(by_layer["given"]["AUC"]) == {"small", "large"}
    assert by_layer["given"]["AUC"]["small"] == by_layer["given"]["AUC"]["large"]


@pytest.mark.quantus
def test_module_forwards_quantus_names(quantus_module):
    assert qc.explain is quantus_module.explain
    assert qc.evaluate is quantus_module.evaluate
    with pytest.raises(AttributeError, match="no_such_thing"):
        qc.no_such_thing  # noqa: B018


# --- errors ---------------------------------------------------------------------------------------


def test_errors_are_clear_and_typed():
    model, x, y, a, s = case()
    with pytest.raises(OptionError, match="Unexpected keyword"):
        qc.AUC(not_a_keyword=1)
    with pytest.raises(OptionError, match="Unexpected keyword"):
        qc.AUC(disable_warnings=True)(None, x, y, a, s, not_a_keyword=1)
    with pytest.raises(OptionError, match="a_batch"):
        qc.AUC()(None, x, y, None, s)
    with pytest.raises(OptionError, match="s_batch"):
        qc.AUC()(None, x, y, a)
    with pytest.raises(OptionError, match="model"):
        qc.PixelFlipping()(None, x, y, a)
    with pytest.raises(OptionError, match="explain_func"):
        qc.MaxSensitivity()(model, x, y, a)
    with pytest.raises(DTypeError, match="torch.nn.Module"):
        qc.PixelFlipping()(lambda v: v, x, y, a)
    with pytest.raises(DTypeError, match="y_batch"):
        qc.PixelFlipping()(model, x, np.full(4, 0.5), a)
    with pytest.raises(ShapeError, match="attributions"):
        qc.PixelFlipping()(model, x, y, a[:, :, :4])
    with pytest.raises(OptionError, match="batch_size"):
        qc.AUC()(None, x, y, a, s, batch_size=0)
    with pytest.raises(DTypeError, match="abs"):
        qc.AUC(abs="yes")
    model.train()
    with pytest.raises(OptionError, match="eval"):
        qc.PixelFlipping()(model, x, y, a)
    with pytest.raises(NotImplementedError, match="perturb_func"):
        qc.PixelFlipping(perturb_func=lambda arr, **kwargs: arr)
    with pytest.raises(XaiscoreError):
        qc.PixelFlipping(perturb_baseline="neighbourhood_mean")
    with pytest.raises(OptionError):
        qc.MPRT(return_average_correlation=True, return_last_correlation=True)
    with pytest.raises(OptionError, match="aggregate"):
        qc.MPRT(return_aggregate=True, disable_warnings=True)(model.eval(), x, y,
                                                              explain_func=saliency)


def test_deprecated_alias_warns():
    with pytest.warns(DeprecationWarning, match="MPRT"):
        metric = qc.ModelParameterRandomisation(layer_order="bottom_up")
    assert isinstance(metric, qc.MPRT)


# --- class-specific paths -------------------------------------------------------------------------


def test_random_logit_windowed_ssim_fits_small_and_1d_inputs():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()

    # the target only scales the map: normalised away
    def explain(model, inputs, targets, **kwargs):
        targets = np.asarray(targets).reshape((-1,) + (1,) * (np.ndim(inputs) - 1))
        return np.asarray(inputs) ** 2 * (targets + 1.0)

    rng = np.random.default_rng(0)
    for shape in ((3, 1, 4, 4), (3, 1, 16), (3, 16), (3, 1, 2, 8)):
        x = rng.random(shape).astype(np.float32)
        scores = qc.RandomLogit(num_classes=3, seed=0, disable_warnings=True)(model, x,
                                                                              np.arange(3),
                                                                            explain_func=explain)
        np.testing.assert_allclose(scores, 1.0, atol=1e-6)


def test_smooth_mprt_with_noise():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Flatten(),
                          nn.Linear(2 * 6 * 6, 3)).eval()
    x = np.random.default_rng(1).random((3, 1, 6, 6)).astype(np.float32)
    metric = qc.SmoothMPRT(nr_samples=4, noise_magnitude=0.2, disable_warnings=True)
    scores = metric(model, x, np.arange(3), explain_func=saliency, batch_size=5)
    assert list(scores) == ["original", "0", "3"]
    assert all(0.5 < v <= 1.0 for v in scores["original"])  # two smoothings of the same model agree
    again = metric(model, x, np.arange(3), explain_func=saliency, batch_size=64)
    for key in scores:
        np.testing.assert_allclose(again[key], scores[key], atol=1e-6)


def test_robustness_with_a_user_normalise_func():
    model, x, y, a, _ = case()

    calls = []

    # the native normalisation, as a user function: applied to every map, one at a time
    def by_max(array):
        calls.append(array.shape[0])
        return array / np.abs(array).max()

    native = qc.MaxSensitivity(nr_samples=3, normalise=True, seed=0, disable_warnings=True)
    custom = qc.MaxSensitivity(nr_samples=3, normalise=True, normalise_func=by_max, seed=0,
                               disable_warnings=True)
    np.testing.assert_allclose(custom(model, x, y, a, explain_func=saliency),
                               native(model, x, y, a, explain_func=saliency), rtol=1e-5)
    assert set(calls) == {1} and len(calls) == 4 + 4 * 3  # a_batch, then every re-explanation


@pytest.mark.quantus
def test_representation_layers_are_selected_as_quantus_does():
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.Tanh(), nn.Linear(6, 3))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    model.eval()
    from xaiscore.quantus_compat.robustness_stability import _hidden_layers

    assert _hidden_layers(model, None, None) == ["0", "1", "2", "3"]
    # Quantus counts negatives over all modules
    assert _hidden_layers(model, None, [1, -2]) == ["1", "3"]
    assert _hidden_layers(model, ["2"], None) == ["2"]

