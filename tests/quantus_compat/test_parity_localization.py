"""Parity with the installed Quantus (0.6.x) for localization, where Quantus is right,
and one test per Quantus bug showing our documented behaviour instead."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xaiscore.functional import localization as loc

pytestmark = pytest.mark.quantus


def draw(seed: int, batch: int = 6, size: int = 12, signed: bool = False, ties: bool = False):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, 1, size, size)).astype(np.float32)
    y = np.zeros(batch, dtype=np.int64)
    if ties:
        a = rng.integers(0, 4, (batch, 1, size, size)).astype(np.float32)
    else:
        a = rng.random((batch, 1, size, size)).astype(np.float32)
        if signed:
            a = a - 0.4
    s = np.zeros((batch, 1, size, size), dtype=np.float32)
    for i in range(batch):
        r0, c0 = rng.integers(0, size - 3, 2)
        s[i, :, r0 : r0 + rng.integers(2, 4), c0 : c0 + rng.integers(2, 4)] = 1
    return x, y, a, s


def quantus_scores(metric, x, y, a, s) -> np.ndarray:
    out = metric(model=None, x_batch=x, y_batch=y, a_batch=a.copy(), s_batch=s.copy(), device="cpu")
    return np.asarray(out, dtype=np.float64)


def ours(kernel, a, s, **kwargs) -> np.ndarray:
    return kernel(torch.from_numpy(a).double(), torch.from_numpy(s), **kwargs).numpy()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("normalise", [True, False])
def test_pointing_game(quantus_module, seed, normalise):
    x, y, a, s = draw(seed)
    expected = quantus_scores(
        quantus_module.PointingGame(normalise=normalise, disable_warnings=True), x, y, a, s)
    np.testing.assert_array_equal(ours(loc.pointing_game, a, s), expected)
    np.testing.assert_array_equal(ours(loc.pointing_game, a, s, ties="any"), expected)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("signed", [True, False])
def test_relevance_mass_accuracy(quantus_module, seed, signed):
    x, y, a, s = draw(seed, signed=signed)
    expected = quantus_scores(quantus_module.RelevanceMassAccuracy(disable_warnings=True), x, y, a,
                              s)
    np.testing.assert_allclose(ours(loc.relevance_mass_accuracy, a, s, relevance="signed"),
                               expected, rtol=1e-5)
    if not signed:  # on non-negative maps every pooling agrees with Quantus
        np.testing.assert_allclose(ours(loc.relevance_mass_accuracy, a, s), expected, rtol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_relevance_rank_accuracy(quantus_module, seed):
    x, y, a, s = draw(seed, signed=True)
    expected = quantus_scores(quantus_module.RelevanceRankAccuracy(disable_warnings=True), x, y, a,
                              s)
    np.testing.assert_allclose(ours(loc.relevance_rank_accuracy, a, s), expected, rtol=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("k", "concept_influence"), [(1, False), (5, False), (20, True)])
def test_top_k_intersection(quantus_module, seed, k, concept_influence):
    x, y, a, s = draw(seed, signed=True)
    metric = quantus_module.TopKIntersection(k=k, concept_influence=concept_influence,
                                             disable_warnings=True)
    expected = quantus_scores(metric, x, y, a, s)
    got = ours(loc.top_k_intersection, a, s, k=k, concept_influence=concept_influence)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_attribution_localisation_unweighted(quantus_module, seed):
    x, y, a, s = draw(seed)
    expected = quantus_scores(quantus_module.AttributionLocalisation(disable_warnings=True), x, y,
                              a, s)
    # Quantus adds 1e-9 to the denominator.
    np.testing.assert_allclose(ours(loc.attribution_localisation, a, s), expected, rtol=1e-6)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [True, False])
def test_auc(quantus_module, seed, ties):
    x, y, a, s = draw(seed, signed=True, ties=ties)
    expected = quantus_scores(quantus_module.AUC(disable_warnings=True), x, y, a, s)
    np.testing.assert_allclose(ours(loc.localization_auc, a, s), expected, rtol=1e-12)


# --- Quantus bugs we do not copy ----------------------------------------------------------------


def test_bug_pointing_game_scores_an_empty_mask_as_a_hit(quantus_module):
    x, y, a, s = draw(0)
    s[2] = 0
    quantus_out = quantus_module.PointingGame(disable_warnings=True)(
        model=None, x_batch=x, y_batch=y, a_batch=a, s_batch=s, device="cpu")
    assert bool(quantus_out[2]) is True  # NaN written into a bool array reads as True: a "hit"
    assert np.isnan(ours(loc.pointing_game, a, s)[2])


def test_bug_pointing_game_weighted_crashes(quantus_module):
    x, y, a, s = draw(1)
    a[:, :, 0, 0] = 10.0  # make sure there is a hit
    s[:, :, 0, 0] = 1
    with pytest.raises((TypeError, ValueError)):  # boolean-index assignment of a 2-D array
        quantus_module.PointingGame(weighted=True, disable_warnings=True)(
            model=None, x_batch=x, y_batch=y, a_batch=a, s_batch=s, device="cpu")
    got = ours(loc.pointing_game, a, s, weighted=True)
    area = s.reshape(len(s), -1).mean(1)
    np.testing.assert_allclose(got, 1.0 - area)


def test_bug_attribution_localisation_weighting(quantus_module):
    """Quantus multiplies by |mask| / x_batch[2:].size (a batch slice); Kohlbrenner et al. divide
    by |mask| / N."""
    x, y, a, s = draw(2)
    quantus_weighted = quantus_scores(
        quantus_module.AttributionLocalisation(weighted=True, disable_warnings=True), x, y, a, s)
    unweighted = ours(loc.attribution_localisation, a, s)
    mask_area = s.reshape(len(s), -1).sum(1)
    np.testing.assert_allclose(quantus_weighted, unweighted * mask_area / x[2:].size, rtol=1e-6)
    np.testing.assert_allclose(
        ours(loc.attribution_localisation, a, s, weighted=True), unweighted * a[0].size / mask_area,
        rtol=1e-12)


def test_bug_rank_accuracy_ties_follow_memory_order(quantus_module):
    """With ties at the K-th value Quantus' argsort picks by memory order; we return the
    expectation."""
    x, y, a, s = draw(0, batch=1, size=4)
    a[:] = 1.0
    a[0, 0, 0, 0] = 2.0  # one clear maximum outside the mask, 15 tied features after it
    s[:] = 0
    s[0, 0, 3, 2:] = 1  # the last two of the tied features
    expected_by_quantus = quantus_scores(
        quantus_module.RelevanceRankAccuracy(disable_warnings=True), x, y, a, s)
    got = ours(loc.relevance_rank_accuracy, a, s)
    # K = 2: the maximum (a miss) plus one of 15 tied features, 2 of which are hits.
    assert got[0] == pytest.approx((2 / 15) / 2)
    assert expected_by_quantus[0] != pytest.approx(got[0])


def test_bug_multi_channel_attributions_crash(quantus_module):
    x, y, a, s = draw(3)
    a3 = np.repeat(a, 3, axis=1) * np.array([1.0, 0.5, 0.25], dtype=np.float32)[None, :, None, None]
    with pytest.raises(ValueError):
        quantus_module.RelevanceMassAccuracy(disable_warnings=True)(
            model=None, x_batch=np.repeat(x, 3, axis=1), y_batch=y, a_batch=a3, s_batch=s,
            device="cpu")
    # Ours reduces channels explicitly: the channel sum is 1.75 x the one-channel map.
    np.testing.assert_allclose(
        ours(loc.relevance_mass_accuracy, a3, s, relevance="signed"),
        ours(loc.relevance_mass_accuracy, a, s, relevance="signed"),
        rtol=1e-6,
    )
