"""The drop-in classes against Quantus 0.6.0 on the same inputs: equal where Quantus is right, and
one test per Quantus bug showing our documented behaviour instead.

Deterministic settings throughout: fixed baselines, no noise or the same noise
(Quantus' ``perturb_func`` replaced by one that adds the noise our kernels draw from the seed), the
same numpy explainer on both sides. Quantus feeds the model float32, so the models here are float32
and the tolerances about 1e-5.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from torch import nn

from tests.robustness_helpers import replay_noise
from xaiscore import quantus_compat as qc
from xaiscore._engine.random import random_keys
from xaiscore._engine.random_subsets import random_subsets
from xaiscore.functional.faithfulness.random_perturbations import default_subset_sizes
from xaiscore.testing.strategies import tiny_mlp

pytestmark = [pytest.mark.quantus, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def images(batch=4, channels=1, side=8, seed=0, classes=3):
    generator = torch.Generator().manual_seed(seed)
    model = tiny_mlp((channels, side, side), classes, seed=seed + 1, dtype=torch.float32)
    x = torch.rand(batch, channels, side, side, generator=generator)
    a = torch.randn(batch, channels, side, side, generator=generator)  # continuous: no ties
    y = torch.arange(batch) % classes
    return model, x.numpy(), y.numpy(), a.numpy()


def masks(batch=4, side=8, seed=0):
    rng = np.random.default_rng(seed)
    s = np.zeros((batch, 1, side, side), dtype=np.float32)
    for i in range(batch):
        r, c = rng.integers(0, side - 3, 2)
        s[i, 0, r : r + 3, c : c + rng.integers(2, 4)] = 1
    return s


def both(name, quantus_module, *, init=None, ours=None, **call):
    """Run Quantus' class and ours with the same keywords (``ours`` adds keywords on our side)."""
    init = dict(init or {}, disable_warnings=True)
    theirs = getattr(quantus_module, name)(**init)(device="cpu", **call)
    mine = getattr(qc, name)(**init, **(ours or {}))(device="cpu", **call)
    return theirs, mine


def close(theirs, mine, atol=1e-5):
    np.testing.assert_allclose(np.asarray(mine, dtype=np.float64),
                               np.asarray(theirs, dtype=np.float64),
                               atol=atol, rtol=1e-5, equal_nan=True)


# --- the class set and the constructor keywords ---------------------------------------------------


def test_every_quantus_metric_has_a_drop_in(quantus_module):
    theirs = {name for name in dir(quantus_module)
              if isinstance(getattr(quantus_module, name), type)
              and issubclass(getattr(quantus_module, name), quantus_module.Metric)
              and name != "Metric"}
    assert theirs <= set(qc.__all__)
    assert {name for name in qc.__all__ if name not in theirs} == {"Metric", "ScoreDirection",
                                                                  "QuantusCompatibilityError"}


#: Keyword defaults we change on purpose (documented in the classes and docs/quantus_compat.md).
CHANGED_DEFAULTS = {
    ("Completeness", "normalise"),  # Quantus' True breaks completeness for exact attributions
    ("RelativeInputStability", "return_nan_when_prediction_changes"),  # None: the paper's exclusion
    ("RelativeOutputStability", "return_nan_when_prediction_changes"),
    ("RelativeRepresentationStability", "return_nan_when_prediction_changes"),
}


@pytest.mark.parametrize("name", sorted(set(qc.__all__)
                                        - {"Metric", "ScoreDirection", "QuantusCompatibilityError",
                                           "InputInvariance", "ModelParameterRandomisation"}))
def test_constructor_keywords_and_defaults_are_quantus(quantus_module, name):
    theirs = inspect.signature(getattr(quantus_module, name).__init__).parameters
    mine = inspect.signature(getattr(qc, name).__init__).parameters
    for keyword, parameter in theirs.items():
        if keyword in ("self", "kwargs"):
            continue
        assert keyword in mine, f"{name} lacks Quantus' keyword {keyword!r}"
        if (name, keyword) in CHANGED_DEFAULTS or callable(parameter.default):
            continue
        assert mine[keyword].default == parameter.default, (name, keyword)
    call_theirs = list(inspect.signature(getattr(quantus_module, name).__call__).parameters)
    call_mine = list(inspect.signature(getattr(qc, name).__call__).parameters)
    assert [k for k in call_theirs if k != "kwargs"] == [k for k in call_mine if k in call_theirs
                                                         and k != "kwargs"]


def test_score_directions_match_quantus_except_two(quantus_module):
    """Consistency is a probability of agreement and RegionPerturbation's drops (AOPC) grow with a
    faithful map under MoRF: both higher-is-better, which Quantus marks the other way."""
    for name in qc.__all__:
        ours = getattr(qc, name)
        if name in ("Metric", "ScoreDirection", "QuantusCompatibilityError"):
            continue
        theirs = getattr(quantus_module, name).score_direction.name
        expected = "HIGHER" if name in ("Consistency", "RegionPerturbation") else theirs
        assert ours.score_direction.name == expected, name


# --- localisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name, init", [
    ("PointingGame", {}), ("RelevanceRankAccuracy", {}), ("TopKIntersection", {"k": 5}),
    ("TopKIntersection", {"k": 20, "concept_influence": True}), ("AUC", {}),
    ("AttributionLocalisation", {}),
    ("RelevanceMassAccuracy", {"abs": True}),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_localisation_matches_quantus(quantus_module, name, init, seed):
    _, x, y, a = images(seed=seed)
    s = masks(seed=seed)
    theirs, mine = both(name, quantus_module, init=init, model=None, x_batch=x, y_batch=y,
                        a_batch=a.copy(),
                        s_batch=s)
    close(theirs, mine)


def test_relevance_mass_accuracy_uses_positive_relevance_and_quantus_mode_signed(quantus_module):
    _, x, y, a = images()
    s = masks()
    theirs, mine = both("RelevanceMassAccuracy", quantus_module, model=None, x_batch=x, y_batch=y,
                        a_batch=a,
                        s_batch=s)
    positive = np.clip(a, 0, None).reshape(4, -1)
    expected = (positive * s.reshape(4, -1)).sum(1) / positive.sum(1)
    close(expected, mine, atol=1e-6)
    assert not np.allclose(theirs, mine)  # Quantus: signed sums (its abs=False default)
    compatible = qc.RelevanceMassAccuracy(quantus_bug_compatible=True, disable_warnings=True)(
        None, x, y, a, s)
    close(theirs, compatible)


def test_pointing_game_empty_mask_is_nan_and_weighted_works(quantus_module):
    _, x, y, a = images()
    s = masks()
    s[1] = 0
    theirs = quantus_module.PointingGame(disable_warnings=True)(None, x, y, a, s)
    assert bool(theirs[1]) is True  # Quantus: NaN in a bool array, a "hit"
    mine = qc.PointingGame(disable_warnings=True)(None, x, y, a, s)
    assert math.isnan(mine[1])
    with pytest.raises((TypeError, ValueError)):
        quantus_module.PointingGame(weighted=True, disable_warnings=True)(None, x, y, a, s)
    weighted = qc.PointingGame(weighted=True, disable_warnings=True)(None, x, y, a, s)
    area = s.reshape(4, -1).mean(1)
    for i in (0, 2, 3):
        assert weighted[i] == pytest.approx(mine[i] * (1 - area[i]))


def test_pointing_game_ties(quantus_module):
    """A constant map: Quantus scores a hit (any tied maximum counts), we the chance level."""
    _, x, y, _ = images(batch=2)
    a = np.ones((2, 1, 8, 8))
    a[:, :, 0, 0] = 1.0
    s = masks(batch=2)
    ours = qc.PointingGame(normalise=False, disable_warnings=True)(None, x, y, a, s)
    np.testing.assert_allclose(ours, s.reshape(2, -1).mean(1))
    compatible = qc.PointingGame(normalise=False, quantus_bug_compatible=True,
                                 disable_warnings=True)(None, x, y, a, s)
    assert compatible == [1.0, 1.0]


def test_attribution_localisation_weighting_follows_the_paper(quantus_module):
    _, x, y, a = images()
    s = masks()
    theirs = quantus_module.AttributionLocalisation(weighted=True,
                                                    disable_warnings=True)(None, x, y, a, s)
    unweighted = qc.AttributionLocalisation(disable_warnings=True)(None, x, y, a, s)
    mine = qc.AttributionLocalisation(weighted=True, disable_warnings=True)(None, x, y, a, s)
    area = s.reshape(4, -1).sum(1)
    # Quantus: times |M| over a batch slice's size
    close(np.asarray(unweighted) * area / x[2:].size, theirs)
    close(np.asarray(unweighted) * 64 / area, mine)  # Kohlbrenner et al.: over the area fraction


def test_localisation_on_multichannel_attributions(quantus_module):
    _, x, y, a = images(channels=3)
    s = masks()
    with pytest.raises((ValueError, IndexError)):  # Quantus flattens a and s to different lengths
        quantus_module.RelevanceRankAccuracy(disable_warnings=True)(None, x, y, a, s)
    mine = qc.RelevanceRankAccuracy(disable_warnings=True)(None, x, y, a, s)
    summed = qc.RelevanceRankAccuracy(disable_warnings=True)(None, x, y, a.sum(1, keepdims=True), s)
    close(summed, mine, atol=1e-12)


def test_focus_matches_quantus(quantus_module):
    model, x, y, a = images(side=8)
    rng = np.random.default_rng(3)
    positions = np.array([rng.permutation([1, 1, 0, 0]) for _ in range(4)])
    theirs, mine = both("Focus", quantus_module, model=model, x_batch=x, y_batch=y, a_batch=a,
                        custom_batch=list(map(tuple, positions)))
    close(theirs, mine, atol=1e-7)


# --- complexity -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Sparseness", "Complexity", "EffectiveComplexity"])
@pytest.mark.parametrize("channels", [1, 3])
def test_complexity_matches_quantus(quantus_module, name, channels):
    # a batch of one: batch-wide normalisation is per sample
    _, x, y, a = images(channels=channels, batch=1)
    theirs, mine = both(name, quantus_module, model=None, x_batch=x, y_batch=y, a_batch=a.copy())
    close(theirs, mine, atol=1e-6)


def test_effective_complexity_per_sample_and_quantus_mode(quantus_module):
    _, x, y, a = images()
    a[3] *= 1e4  # a loud batch-mate
    init = {"eps": 1e-3, "disable_warnings": True}
    theirs = quantus_module.EffectiveComplexity(**init)(None, x, y, a.copy())
    mine = qc.EffectiveComplexity(**init)(None, x, y, a.copy())
    alone = [qc.EffectiveComplexity(**init)(None, x[i : i + 1], y[i : i + 1], a[i : i + 1])[0]
             for i in range(4)]
    assert mine == alone
    assert theirs[0] < mine[0]  # Quantus: the loud sample's maximum hides the others' values
    close(theirs, qc.EffectiveComplexity(quantus_bug_compatible=True, **init)(None, x, y, a.copy()))


def test_complexity_does_not_write_into_the_callers_array(quantus_module):
    _, x, y, a = images(batch=2)
    a = np.abs(a)
    before = a.copy()
    quantus_module.Sparseness(abs=False, normalise=False, disable_warnings=True)(None, x, y, a)
    assert not np.array_equal(a, before)  # Quantus adds 1e-7 in place
    a = before.copy()
    qc.Sparseness(abs=False, normalise=False, disable_warnings=True)(None, x, y, a)
    np.testing.assert_array_equal(a, before)


# --- faithfulness ---------------------------------------------------------------------------------


@pytest.mark.parametrize("baseline", ["black", 0.0, "white"])
@pytest.mark.parametrize("softmax", [True, False])
def test_pixel_flipping_matches_quantus(quantus_module, baseline, softmax):
    model, x, y, a = images(channels=2)
    init = {"features_in_step": 8, "perturb_baseline": baseline}
    theirs, mine = both("PixelFlipping", quantus_module, init=init, model=model, x_batch=x,
                        y_batch=y, a_batch=a,
                        softmax=softmax)
    close(theirs, mine)
    theirs, mine = both("PixelFlipping", quantus_module,
                        init=dict(init, return_auc_per_sample=True), model=model,
                        x_batch=x, y_batch=y, a_batch=a, softmax=softmax)
    close(theirs, mine, atol=1e-4)


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_region_perturbation_and_selectivity_match_quantus(quantus_module, order):
    model, x, y, a = images(side=9)
    init = {"patch_size": 3, "order": order, "regions_evaluation": 5}
    theirs, mine = both("RegionPerturbation", quantus_module, init=init, model=model, x_batch=x,
                        y_batch=y,
                        a_batch=a)
    assert all(isinstance(curve, np.ndarray) for curve in mine)
    close(theirs, mine)
    theirs, mine = both("Selectivity", quantus_module, init={"patch_size": 4}, model=model,
                        x_batch=x, y_batch=y,
                        a_batch=a)
    close(theirs, mine)


def test_faithfulness_estimate_and_monotonicity_correlation_match_quantus(quantus_module):
    model, x, y, a = images(side=6)
    theirs, mine = both("FaithfulnessEstimate", quantus_module, init={"features_in_step": 4},
                        model=model,
                        x_batch=x, y_batch=y, a_batch=a)
    close(theirs, mine, atol=1e-4)
    init = {"features_in_step": 4, "nr_samples": 2, "perturb_baseline": 0.0}
    theirs, mine = both("MonotonicityCorrelation", quantus_module, init=init, model=model,
                        x_batch=x, y_batch=y,
                        a_batch=a)
    close(theirs, mine)


def test_monotonicity_inserts_features(quantus_module):
    """Quantus' Monotonicity never inserts ``x`` and passes any map; the paper's test tells them
    apart."""
    linear = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, -2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
    model = nn.Sequential(nn.Flatten(), linear).eval()
    x = np.ones((2, 1, 4), np.float32)
    a = np.array([[[1.0, -2.0, 3.0, 4.0]], [[1.0, 2.0, 3.0, 4.0]]])
    init = {"abs": False, "normalise": False, "perturb_baseline": 0.0}
    theirs, mine = both("Monotonicity", quantus_module, init=init, model=model, x_batch=x,
                        y_batch=np.zeros(2, int),
                        a_batch=a)
    assert list(theirs) == [True, True]
    assert mine == [1.0, 0.0]


def _segments():
    labels = np.zeros((4, 8, 8), dtype=np.int64)
    labels[:, :4, 4:] = 1
    labels[:, 4:, :] = 2
    labels[:, 4:, 5:] = 3
    labels[2, 1:3, 1:7] = 1
    return labels


def test_irof_quantus_mode_matches_quantus_and_default_is_normalised(quantus_module, monkeypatch):
    model, x, y, a = images()
    labels = _segments()
    calls = iter(list(labels) * 2)
    monkeypatch.setattr(quantus_module.helpers.utils, "get_superpixel_segments",
                        lambda img, **_: next(calls))
    import skimage.segmentation

    ours_calls = iter(list(labels) * 2)
    monkeypatch.setattr(skimage.segmentation, "slic", lambda img, **_: next(ours_calls))
    init = {"perturb_baseline": 0.0, "return_aggregate": False}
    theirs = quantus_module.IROF(disable_warnings=True, **init)(model, x, y, a, device="cpu")
    compatible = qc.IROF(disable_warnings=True, quantus_bug_compatible=True, **init)(model, x, y, a)
    close(theirs, compatible, atol=1e-4)
    mine = qc.IROF(disable_warnings=True, **init)(model, x, y, a)
    # Quantus' L - trapz(q_1..q_L) and ours 1 - trapezoid(q_0..q_L on [0, 1]) with q_0 = 1 and L = 4
    # segments.
    assert all(0.0 <= (4 - t) / 4 + 1e-6 for t in theirs)
    assert not np.allclose(mine, theirs)


def test_road_matches_quantus_and_keeps_every_batch(quantus_module):
    model, x, y, a = images(batch=6, side=10)
    init = {"percentages": [10, 50, 90], "noise": 0.0}
    theirs, mine = both("ROAD", quantus_module, init=init, model=model, x_batch=x, y_batch=y,
                        a_batch=a, batch_size=6)
    assert list(mine) == [10, 50, 90]
    close([theirs[p] for p in (10, 50, 90)], [mine[p] for p in (10, 50, 90)], atol=1e-6)
    first_batch, mine = both("ROAD", quantus_module, init=init, model=model, x_batch=x,
                             y_batch=(y + 1) % 3,
                             a_batch=a, batch_size=2)
    alone = qc.ROAD(disable_warnings=True, **init)(model, x[:2], (y[:2] + 1) % 3, a[:2])
    close([first_batch[p] for p in (10, 50, 90)], [alone[p] for p in (10, 50, 90)], atol=1e-6)


def test_faithfulness_correlation_matches_quantus_on_the_same_subsets(quantus_module, monkeypatch):
    model, x, y, a = images(channels=2, side=6)
    runs, size = 6, 7
    chosen = random_subsets(random_keys(4 * runs, torch.Generator().manual_seed(4)), a[0].size,
                            size).numpy()
    subsets = [np.flatnonzero(row) for row in chosen]
    calls = iter([subsets[sample * runs + run] for run in range(runs) for sample in range(4)])
    monkeypatch.setattr(np.random, "choice", lambda n, k, replace=False: np.array(next(calls)))
    init = {"nr_runs": runs, "subset_size": size, "return_aggregate": False}
    theirs, mine = both("FaithfulnessCorrelation", quantus_module, init=init, ours={"seed": 4},
                        model=model,
                        x_batch=x, y_batch=y, a_batch=a)
    close(theirs, mine)


def test_infidelity_draws_random_squares(quantus_module):
    """Quantus' repeats are identical deletions; ours differ per repeat and per seed."""
    model, x, y, a = images()
    quantus_one = quantus_module.Infidelity(n_perturb_samples=1, disable_warnings=True)(
        model, x, y, a, device="cpu")
    quantus_three = quantus_module.Infidelity(n_perturb_samples=3,
                                              disable_warnings=True)(model, x, y, a,
                                                                                           device="cpu")
    close(quantus_one, quantus_three, atol=1e-9)
    first = qc.Infidelity(seed=0, disable_warnings=True)(model, x, y, a)
    again = qc.Infidelity(seed=0, disable_warnings=True)(model, x, y, a)
    other = qc.Infidelity(seed=1, disable_warnings=True)(model, x, y, a)
    assert first == again and first != other
    assert all(value >= 0 for value in first)


def test_sensitivity_n_returns_one_number_per_size(quantus_module):
    model, x, y, a = images()
    theirs = quantus_module.SensitivityN(return_aggregate=False, disable_warnings=True)(
        model, x, y, a, device="cpu")
    mine = qc.SensitivityN(return_aggregate=False, n_subsets=8, seed=0,
                           disable_warnings=True)(model, x, y, a)
    assert isinstance(theirs, (list, np.ndarray)) and isinstance(mine, list)
    assert len(mine) == len(default_subset_sizes(64))  # log-spaced sizes 1 .. 0.8 * 64
    assert all(-1.0 <= value <= 1.0 for value in mine)
    aggregated = qc.SensitivityN(n_subsets=8, seed=0, disable_warnings=True)(model, x, y, a)
    assert aggregated == [pytest.approx(np.mean(mine))]


def test_sufficiency_matches_quantus_on_samples_with_neighbours(quantus_module):
    generator = torch.Generator().manual_seed(2)
    model = tiny_mlp((1, 4, 4), 3, seed=3, dtype=torch.float32)
    x = torch.rand(12, 1, 4, 4, generator=generator).numpy()
    a = torch.rand(12, 1, 4, 4, generator=generator).numpy()
    a[:6] = a[0] + 0.05 * a[:6]
    y = np.zeros(12, int)
    theirs = quantus_module.Sufficiency(disable_warnings=True)(model, x, y, a, device="cpu",
                                                               batch_size=12)
    mine = qc.Sufficiency(quantus_bug_compatible=True, disable_warnings=True)(model, x, y, a,
                                                                              batch_size=5)
    mine = np.asarray(mine)
    # no neighbours: NaN, Quantus 0
    assert np.isnan(mine[6:]).all() and (np.asarray(theirs)[6:] == 0).all()
    close(np.asarray(theirs)[:6], mine[:6], atol=1e-6)


def test_completeness_uses_a_tolerance(quantus_module):
    generator = torch.Generator().manual_seed(6)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    x = torch.rand(8, 1, 8, 8, generator=generator)
    y = torch.arange(8) % 3
    # complete w.r.t. the zero baseline
    exact = (model[1].weight.detach()[y].reshape(x.shape) * x).numpy()
    theirs = quantus_module.Completeness(perturb_baseline=0.0, disable_warnings=True)(
        model, x.numpy(), y.numpy(),
                                                                                       exact,
        device="cpu")
    assert not any(theirs)  # Quantus' default normalise=True breaks it
    mine = qc.Completeness(perturb_baseline=0.0, disable_warnings=True)(model, x.numpy(), y.numpy(),
                                                                        exact)
    assert mine == [1.0] * 8
    assert qc.Completeness(perturb_baseline=0.0, disable_warnings=True)(model, x.numpy(), y.numpy(),
                                                                       2 * exact) == [0.0] * 8


def test_non_sensitivity_matches_quantus_in_quantus_mode(quantus_module):
    generator = torch.Generator().manual_seed(7)
    model = nn.Sequential(nn.Flatten(), nn.Linear(32, 3)).eval()
    with torch.no_grad():
        model[1].weight[:, ::3] = 0.0  # features the model ignores
    x = torch.rand(3, 2, 4, 4, generator=generator).numpy()
    a = (torch.randn(3, 2, 4, 4, generator=generator) * (torch.rand(3, 2, 4, 4, generator=generator)
                                                         < 0.5)).numpy()
    theirs, mine = both("NonSensitivity", quantus_module, ours={"quantus_bug_compatible": True},
                        model=model,
                        x_batch=x, y_batch=np.array([0, 1, 2]), a_batch=a)
    close(theirs, mine, atol=0)
    with pytest.raises(qc.QuantusCompatibilityError, match="features_in_step"):
        qc.NonSensitivity(features_in_step=4)


def test_input_invariance_is_not_supported():
    with pytest.raises(NotImplementedError, match="quantus.InputInvariance"):
        qc.InputInvariance()


# --- robustness -----------------------------------------------------------------------------------


def np_explain(model, inputs, targets, **kwargs):
    """A deterministic, non-linear numpy explainer (one channel per input channel)."""
    inputs = np.asarray(inputs, dtype=np.float64)
    scale = np.asarray(targets).reshape((-1,) + (1,) * (inputs.ndim - 1)) + 1.0
    return np.tanh(2.0 * inputs + np.roll(inputs, 1, axis=-1)) * scale


def robust_case(batch=4, shape=(2, 5, 5), seed=0):
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), 6), nn.Tanh(), nn.Linear(6, 3))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    x = np.random.default_rng(seed).random((batch,) + shape).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy()
    return model.eval(), x, y, np_explain(model, x, y).astype(np.float32)


def feed_noise(metric, noise):
    """Replace Quantus' ``perturb_func`` by one that adds ``noise[:, step]`` at step ``step``."""
    state = {"step": 0}

    def perturb(arr, indices=None, **kwargs):
        step = state["step"]
        state["step"] += 1
        return arr + noise[:, step].reshape(arr.shape[0], -1)

    metric.perturb_func = perturb


N = 5


@pytest.mark.parametrize("name", ["MaxSensitivity", "AvgSensitivity"])
@pytest.mark.parametrize("nan", [False, True])
def test_sensitivity_matches_quantus_on_the_same_noise(quantus_module, name, nan):
    model, x, y, a = robust_case()
    init = {"nr_samples": N, "lower_bound": 0.3, "return_nan_when_prediction_changes": nan,
            "disable_warnings": True}
    metric = getattr(quantus_module, name)(**init)
    feed_noise(metric, replay_noise(torch.from_numpy(x), N, seed=3, low=-0.3, high=0.3))
    theirs = metric(model, x, y, a, explain_func=np_explain, device="cpu")
    mine = getattr(qc, name)(seed=3, **init)(model, x, y, a, explain_func=np_explain, batch_size=3)
    close(theirs, mine, atol=1e-6)


def test_local_lipschitz_matches_quantus_for_a_batch_of_one(quantus_module):
    model, x, y, a = robust_case(batch=1)
    metric = quantus_module.LocalLipschitzEstimate(nr_samples=N, disable_warnings=True)
    feed_noise(metric, replay_noise(torch.from_numpy(x), N, seed=5, kind="gaussian", low=0.0,
                                    high=0.1))
    theirs = metric(model, x, y, a, explain_func=np_explain, device="cpu")
    mine = qc.LocalLipschitzEstimate(nr_samples=N, seed=5, disable_warnings=True)(model, x, y, a,
                                                                                  explain_func=np_explain)
    close(theirs, mine, atol=1e-6)


@pytest.mark.parametrize("name, layers", [
    ("RelativeInputStability", {}), ("RelativeOutputStability", {}),
    ("RelativeRepresentationStability", {}),
    ("RelativeRepresentationStability", {"layer_indices": [1, -2]}),
    ("RelativeRepresentationStability", {"layer_names": ["2"]}),
])
def test_relative_stability_matches_quantus_in_quantus_mode(quantus_module, name, layers):
    model, x, y, a = robust_case(batch=5)
    metric = getattr(quantus_module, name)(nr_samples=N, disable_warnings=True, **layers)
    feed_noise(metric, replay_noise(torch.from_numpy(x), N, seed=9, low=0.02, high=0.2))
    theirs = metric(model, x, y, a_batch=a, explain_func=np_explain, device="cpu")
    mine = getattr(qc, name)(nr_samples=N, seed=9, quantus_bug_compatible=True,
                             disable_warnings=True, **layers)(
        model, x, y, a_batch=a, explain_func=np_explain)
    np.testing.assert_allclose(mine, theirs, rtol=2e-5, equal_nan=True)


def test_relative_stability_defaults_follow_the_paper():
    """Symmetric noise and exclusion of copies that change the prediction (not Quantus' NaN)."""
    model, x, y, a = robust_case(batch=5)
    options = {"nr_samples": 8, "seed": 0, "disable_warnings": True}
    mine = qc.RelativeInputStability(perturb_func_kwargs={"lower_bound": 1.0}, **options)(
        model, x, y, a_batch=a, explain_func=np_explain)
    voided = qc.RelativeInputStability(perturb_func_kwargs={"lower_bound": 1.0},
                                       return_nan_when_prediction_changes=True, **options)(
        model, x, y, a_batch=a, explain_func=np_explain)
    assert np.isnan(voided).any()
    assert not np.isnan(np.asarray(mine)[np.isnan(voided)]).all()


def test_continuity_matches_quantus_for_a_batch_of_one(quantus_module):
    model, x, y, _ = robust_case(batch=1, shape=(1, 16, 16))
    theirs, mine = both("Continuity", quantus_module, model=model, x_batch=x, y_batch=y,
                        a_batch=None,
                        explain_func=np_explain)
    close(theirs, mine, atol=1e-4)


def test_consistency_matches_quantus_with_sign_discretisation(quantus_module):
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 3, 3)).astype(np.float32)
    a = rng.normal(size=(3, 1, 3, 3))[[0, 0, 1, 1, 1, 2, 2, 0]] * rng.random((8, 1, 1, 1))
    model, *_ = robust_case(shape=(1, 3, 3), seed=2)
    init = {"discretise_func": quantus_module.functions.discretise_func.sign, "normalise": False,
            "abs": False}
    theirs, mine = both("Consistency", quantus_module, init=init, model=model, x_batch=x,
                        y_batch=np.zeros(8, int),
                        a_batch=a)
    close(theirs, mine, atol=1e-7)


# --- randomisation --------------------------------------------------------------------------------


def conv_model(classes=3):
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Softplus(),
                          nn.Conv2d(2, 2, 3, padding=1), nn.Tanh(),
                          nn.Flatten(), nn.Linear(2 * 8 * 8, classes))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


def gradient_explain(model, inputs, targets, **kwargs):
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32).requires_grad_(True)
    model(x).gather(1, torch.as_tensor(np.asarray(targets)).long()[:, None]).sum().backward()
    return x.grad.numpy()


def rand_data(classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((4, 1, 8, 8)).astype(np.float32), rng.integers(0, classes, 4)


@pytest.mark.parametrize("order", ["top_down", "bottom_up"])
def test_mprt_matches_quantus_in_quantus_mode(quantus_module, order):
    model = conv_model()
    x, y = rand_data()
    call = dict(model=model, x_batch=x, y_batch=y, explain_func=gradient_explain, batch_size=3)
    theirs, mine = both("MPRT", quantus_module, init={"layer_order": order},
                        ours={"quantus_bug_compatible": True}, **call)
    assert list(mine) == list(theirs) == ["original"] + (["0", "2", "5"] if order == "bottom_up"
                                                         else ["5", "2", "0"])
    for layer in theirs:
        close(theirs[layer], mine[layer])
    theirs, mine = both("MPRT", quantus_module,
                        init={"layer_order": order, "return_average_correlation": True},
                        ours={"quantus_bug_compatible": True}, **call)
    close(theirs, mine)


def test_mprt_average_leaves_out_the_original(quantus_module):
    model = conv_model()
    x, y = rand_data()
    layers = qc.MPRT(disable_warnings=True)(model, x, y, explain_func=gradient_explain)
    average = qc.MPRT(return_average_correlation=True, disable_warnings=True)(model, x, y,
                                                                            explain_func=gradient_explain)
    expected = np.mean([layers[name] for name in list(layers)[1:]], axis=0)
    close(expected, average, atol=1e-12)
    assert qc.MPRT(return_last_correlation=True, disable_warnings=True)(
        model, x, y, explain_func=gradient_explain) == layers[list(layers)[-1]]
    skipped = qc.MPRT(skip_layers=True, disable_warnings=True)(model, x, y,
                                                               explain_func=gradient_explain)
    assert list(skipped) == ["original", list(layers)[-1]]


def test_smooth_mprt_without_noise_matches_quantus(quantus_module):
    model = conv_model()
    x, y = rand_data()
    init = {"nr_samples": 2, "noise_magnitude": 0.0}
    theirs, mine = both("SmoothMPRT", quantus_module, init=init,
                        ours={"quantus_bug_compatible": True},
                        model=model, x_batch=x, y_batch=y, explain_func=quantus_module.explain,
                        explain_func_kwargs={"method": "Saliency"}, batch_size=4)
    assert list(mine) == list(theirs)
    for layer in theirs:
        close(theirs[layer], mine[layer])


def test_efficient_mprt_matches_quantus_in_quantus_mode(quantus_module):
    model = conv_model()
    x, y = rand_data(seed=1)
    theirs, mine = both("EfficientMPRT", quantus_module, ours={"quantus_bug_compatible": True},
                        model=model,
                        x_batch=x, y_batch=y, explain_func=gradient_explain)
    close(theirs, mine, atol=1e-6)
    with pytest.raises(NotImplementedError):
        qc.EfficientMPRT(compute_extra_scores=True)


def test_random_logit_two_classes(quantus_module):
    model = conv_model(classes=2)
    x, y = rand_data(classes=2)
    call = dict(model=model, x_batch=x, y_batch=y, explain_func=gradient_explain)
    theirs, mine = both("RandomLogit", quantus_module, init={"num_classes": 2},
                        ours={"quantus_bug_compatible": True}, **call)
    close(theirs, mine)
    # Sixt et al.: image SSIM
    windowed = qc.RandomLogit(num_classes=2, disable_warnings=True)(**call)
    assert not np.allclose(windowed, theirs)
    explicit = qc.RandomLogit(num_classes=2,
                              similarity_func=quantus_module.functions.similarity_func.ssim,
                              normalise=False, disable_warnings=True)(**call)
    reference = quantus_module.RandomLogit(num_classes=2, normalise=False,
                                           disable_warnings=True)(device="cpu", **call)
    close(reference, explicit)


def test_randomisation_leaves_global_rng_alone():
    model = conv_model()
    x, y = rand_data()
    torch.manual_seed(123)
    np.random.seed(7)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    qc.MPRT(quantus_bug_compatible=True, disable_warnings=True)(model, x, y,
                                                                explain_func=gradient_explain)
    qc.RandomLogit(num_classes=3, disable_warnings=True)(model, x, y, explain_func=gradient_explain)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
