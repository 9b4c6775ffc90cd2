"""Parity with the installed Quantus (0.6.x) for the complexity metrics, where Quantus is right,
and one test per Quantus bug showing our documented behaviour instead.

Quantus' defaults are ``abs=True, normalise=True``: it divides the whole batch by its largest
absolute value (``normalise_by_max``), takes ``|a|`` and flattens every channel of every pixel
into the feature vector, which is our ``reduce_channels=None`` default.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.quantus

cx = importlib.import_module("xaiscore.functional.complexity")


def draw(seed: int, batch: int = 5, channels: int = 1, size: int = 10, signed: bool = True):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, channels, size, size)).astype(np.float32)
    y = np.zeros(batch, dtype=np.int64)
    a = rng.random((batch, channels, size, size))
    if signed:
        a = a - 0.3
    return x, y, a


def quantus_scores(metric, x, y, a) -> np.ndarray:
    out = metric(model=None, x_batch=x, y_batch=y, a_batch=a.copy(), device="cpu")
    return np.asarray(out, dtype=np.float64)


def ours(kernel, a, **kwargs) -> np.ndarray:
    return kernel(torch.from_numpy(a), **kwargs).numpy()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("channels", [1, 3])
def test_sparseness(quantus_module, seed, channels):
    x, y, a = draw(seed, channels=channels)
    expected = quantus_scores(quantus_module.Sparseness(disable_warnings=True), x, y, a)
    # Quantus adds 1e-7 to every normalised value (in [0, 1]); the Gini index moves by ~1e-7.
    np.testing.assert_allclose(ours(cx.sparseness, a), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("channels", [1, 3])
def test_complexity(quantus_module, seed, channels):
    x, y, a = draw(seed, channels=channels)
    expected = quantus_scores(quantus_module.Complexity(disable_warnings=True), x, y, a)
    # Quantus takes log(p + 1e-12): p log(p + 1e-12) - p log p <= 1e-12 for each of the N terms.
    np.testing.assert_allclose(ours(cx.complexity, a), expected, rtol=0, atol=2 * a[0].size * 1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("eps", [1e-5, 0.1, 0.5])
def test_effective_complexity_batch_mode(quantus_module, seed, eps):
    x, y, a = draw(seed)
    a[:, :, :3] = 0.0  # some features at zero, below any threshold
    expected = quantus_scores(quantus_module.EffectiveComplexity(eps=eps, disable_warnings=True), x,
                              y, a)
    np.testing.assert_array_equal(ours(cx.effective_complexity, a, eps=eps, normalise="batch"),
                                  expected)


@pytest.mark.parametrize("eps", [1e-5, 0.3])
def test_effective_complexity_agrees_per_sample_on_a_batch_of_one(quantus_module, eps):
    x, y, a = draw(7, batch=1)
    expected = quantus_scores(quantus_module.EffectiveComplexity(eps=eps, disable_warnings=True), x,
                              y, a)
    np.testing.assert_array_equal(ours(cx.effective_complexity, a, eps=eps), expected)


@pytest.mark.parametrize("metric", ["Sparseness", "Complexity"])
def test_quantus_bug_writes_into_the_callers_attributions(quantus_module, metric):
    """Without abs and normalise Quantus runs ``a_batch += 1e-7`` / ``a_batch /= ...`` on the
    caller's array; our kernels never modify their input."""
    x, y, a = draw(1, signed=False)
    theirs = a.copy()
    getattr(quantus_module, metric)(abs=False, normalise=False, disable_warnings=True)(
        model=None, x_batch=x, y_batch=y, a_batch=theirs, device="cpu"
    )
    assert not np.array_equal(theirs, a)  # Quantus changed the caller's array

    mine = torch.from_numpy(a.copy())
    before = mine.clone()
    getattr(cx, metric.lower())(mine)
    assert torch.equal(mine, before)


def test_quantus_bug_effective_complexity_depends_on_batch_mates(quantus_module):
    """Quantus divides by the batch-wide maximum, so one loud batch-mate changes every other score.
    Ours normalises each sample by its own maximum; ``normalise="batch"`` reproduces Quantus."""
    x, y, a = draw(2, batch=3, signed=False)
    louder = a.copy()
    louder[2] *= 1e4
    metric = quantus_module.EffectiveComplexity(eps=1e-3, disable_warnings=True)
    quiet_scores = quantus_scores(metric, x, y, a)
    loud_scores = quantus_scores(metric, x, y, louder)
    assert (loud_scores[:2] < quiet_scores[:2]).all()  # samples 0 and 1 lost features in Quantus

    np.testing.assert_array_equal(ours(cx.effective_complexity, louder, eps=1e-3)[:2],
                                  ours(cx.effective_complexity, a, eps=1e-3)[:2])
    np.testing.assert_array_equal(ours(cx.effective_complexity, louder, eps=1e-3,
                                       normalise="batch"),
                                  loud_scores)


def test_all_zero_map_is_undefined_not_uniform(quantus_module):
    """Quantus' +1e-7 turns an all-zero map into a uniform one (Gini 0); there is no distribution to
    measure, so we return NaN."""
    x, y, a = draw(3, batch=2)
    a[1] = 0.0
    expected = quantus_scores(quantus_module.Sparseness(normalise=False, disable_warnings=True), x,
                              y, a)
    assert expected[1] == pytest.approx(0.0, abs=1e-9)
    got = ours(cx.sparseness, a)
    assert np.isnan(got[1]) and got[0] == pytest.approx(expected[0], rel=1e-5)
