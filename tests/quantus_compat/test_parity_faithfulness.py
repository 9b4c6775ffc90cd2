"""Parity with Quantus 0.6.0's faithfulness metrics where it is deterministic and right; its bugs,
documented.

Quantus feeds the model float32 (``torch.Tensor(x)``), so these tests use float32
models and compare at 1e-5. Quantus flattens the attribution broadcast to the
input's channels (every channel value is a feature): our ``reduce_channels=None``.
Its ``np.argsort`` is not stable, so attributions here have no ties. Its
normalisation divides by a positive scale, which changes no ranking and no
correlation, so it is left on in some cases to show that.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xaiscore.functional import faithfulness as fa
from xaiscore.testing.strategies import tiny_mlp

pytestmark = [pytest.mark.quantus, pytest.mark.filterwarnings("ignore::UserWarning")]


def _case(channels=3, attribution_channels=3, spatial=(8, 8), batch=4, seed=0, classes=4):
    generator = torch.Generator().manual_seed(seed)
    model = tiny_mlp((channels,) + spatial, classes, seed=seed + 1, dtype=torch.float32)
    x = torch.rand((batch, channels) + spatial, generator=generator)
    a = torch.randn((batch, attribution_channels) + spatial, generator=generator)
    target = torch.arange(batch) % classes
    return model, x, a, target


def _call(metric, model, x, a, target, **kwargs):
    return np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=target.numpy(),
                             a_batch=a.numpy(),
                             device="cpu", **kwargs), dtype=np.float64)


@pytest.mark.parametrize(("channels", "attribution_channels"), [(3, 3), (1, 1)])
@pytest.mark.parametrize("softmax", [False, True])
@pytest.mark.parametrize(("quantus_baseline", "ours"), [(0.0, "zeros"), ("black", "min")])
def test_pixel_flipping(quantus_module, channels, attribution_channels, softmax, quantus_baseline,
                        ours):
    model, x, a, target = _case(channels, attribution_channels)
    metric = quantus_module.PixelFlipping(features_in_step=4, abs=False, normalise=True,
                                          perturb_baseline=quantus_baseline, disable_warnings=True)
    theirs = _call(metric, model, x, a, target, softmax=softmax)
    result = fa.pixel_flipping(model, x, a, target, features_per_step=4, reduce_channels=None,
                               baseline=ours,
                               softmax=softmax)
    # Quantus' curve starts after the first step; ours starts at the intact input.
    np.testing.assert_allclose(result.curve[:, 1:].numpy(), theirs, atol=1e-5)


def test_pixel_flipping_auc_relation(quantus_module):
    """Quantus' AUC is np.trapz with unit spacing over the curve without its start; ours is on
    [0, 1]."""
    model, x, a, target = _case()
    metric = quantus_module.PixelFlipping(features_in_step=16, abs=False, normalise=False,
                                          perturb_baseline=0.0,
                                          return_auc_per_sample=True, disable_warnings=True)
    theirs = _call(metric, model, x, a, target, softmax=True)
    result = fa.pixel_flipping(model, x, a, target, features_per_step=16, reduce_channels=None,
                               softmax=True)
    steps = result.curve.shape[1] - 1
    curve = result.curve.double()
    ours_unit = result.score.double() * steps - 0.5 * (curve[:, 0] + curve[:, 1])
    np.testing.assert_allclose(ours_unit.numpy(), theirs, atol=1e-4)


@pytest.mark.parametrize("order", ["morf", "lerf"])
@pytest.mark.parametrize(("spatial", "patch_size", "regions"), [((8, 8), 4, 100), ((9, 7), 2, 5),
                                                                ((10,), 3, 3)])
def test_region_perturbation(quantus_module, order, spatial, patch_size, regions):
    model, x, a, target = _case(spatial=spatial, attribution_channels=1, seed=3)
    metric = quantus_module.RegionPerturbation(patch_size=patch_size, order=order,
                                               regions_evaluation=regions,
                                               abs=False, normalise=True, perturb_baseline="black",
                                               disable_warnings=True)
    theirs = _call(metric, model, x, a, target, softmax=True)
    result = fa.region_perturbation(model, x, a, target, patch_size=patch_size, steps=regions,
                                    order=order,
                                    baseline="min", softmax=True)
    np.testing.assert_allclose(result.curve[:, 1:].numpy(), theirs, atol=1e-5)
    # AOPC averages the L + 1 points including the zero at the start.
    np.testing.assert_allclose(result.score.numpy(), theirs.sum(1) / (theirs.shape[1] + 1),
                               atol=1e-5)


@pytest.mark.parametrize(("spatial", "patch_size"), [((8, 8), 4), ((9, 6), 4)])
def test_selectivity(quantus_module, spatial, patch_size):
    model, x, a, target = _case(spatial=spatial, seed=5)
    metric = quantus_module.Selectivity(patch_size=patch_size, abs=False, normalise=False,
                                        perturb_baseline=0.0,
                                        disable_warnings=True)
    theirs = _call(metric, model, x, a, target, softmax=False)
    result = fa.selectivity(model, x, a, target, patch_size=patch_size, baseline="zeros",
                            softmax=False)
    np.testing.assert_allclose(result.curve[:, 1:].numpy(), theirs, atol=1e-5)


@pytest.mark.parametrize("features_in_step", [1, 8])
def test_faithfulness_estimate(quantus_module, features_in_step):
    model, x, a, target = _case(channels=1, attribution_channels=1, seed=7)
    metric = quantus_module.FaithfulnessEstimate(features_in_step=features_in_step, abs=False,
                                                 normalise=True,
                                                 perturb_baseline="black", disable_warnings=True)
    theirs = _call(metric, model, x, a, target, softmax=False)
    ours = fa.faithfulness_estimate(model, x, a, target, features_per_step=features_in_step,
                                    baseline="min")
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-4)


def test_monotonicity_correlation_with_a_constant_baseline(quantus_module):
    model, x, a, target = _case(channels=1, attribution_channels=1, seed=9, spatial=(4, 4))
    metric = quantus_module.MonotonicityCorrelation(features_in_step=2, nr_samples=2,
                                                    perturb_baseline=0.0,
                                                    disable_warnings=True)
    theirs = _call(metric, model, x, a, target, softmax=True)
    ours = fa.monotonicity_correlation(model, x, a, target, features_per_step=2, n_samples=2,
                                       baseline="zeros")
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-5)


def _irof_labels(uneven: bool) -> torch.Tensor:
    labels = torch.zeros(4, 8, 8, dtype=torch.long)
    labels[:, :4, 4:] = 1
    labels[:, 4:, :] = 2
    labels[:, 4:, 5:] = 3
    labels[3, :2, :2] = 3
    labels[2, 1:3, 1:7] = 1
    if uneven:
        labels[0][labels[0] == 3] = 2  # sample 0 now has three segments, its batch-mates four
    return labels


def _quantus_irof(quantus_module, monkeypatch, model, x, a, target, labels):
    calls = iter(labels.numpy())
    monkeypatch.setattr(quantus_module.helpers.utils, "get_superpixel_segments",
                        lambda img, **_: next(calls))
    metric = quantus_module.IROF(abs=False, normalise=False, perturb_baseline=0.0,
                                 return_aggregate=False,
                                 disable_warnings=True)
    return _call(metric, model, x, a, target, softmax=True)


def _as_quantus(result, counts):
    """Quantus: L - trapz(q_1..q_L, dx=1); ours: 1 - trapezoid(q_0..q_L) on [0, 1] with q_0 = 1."""
    return counts * result.score.double() + 0.5 * (1.0 + result.curve[:, 1].double())


def test_irof_with_given_segments_and_a_constant_baseline(quantus_module, monkeypatch):
    model, x, a, target = _case(channels=1, attribution_channels=1, seed=11)
    labels = _irof_labels(uneven=False)
    theirs = _quantus_irof(quantus_module, monkeypatch, model, x, a, target, labels)
    result = fa.irof(model, x, a, target, segments=labels, baseline="zeros", softmax=True)
    np.testing.assert_allclose(_as_quantus(result, 4.0).numpy(), theirs, atol=1e-4)


def test_quantus_irof_pads_short_samples_with_a_zero_step(quantus_module, monkeypatch):
    """With fewer segments than a batch-mate, Quantus appends a q = 0 point, lowering that sample's
    AOC area by an extra q_L / 2: its score depends on its batch-mates. Ours does not."""
    model, x, a, target = _case(channels=1, attribution_channels=1, seed=11)
    labels = _irof_labels(uneven=True)
    theirs = _quantus_irof(quantus_module, monkeypatch, model, x, a, target, labels)
    result = fa.irof(model, x, a, target, segments=labels, baseline="zeros", softmax=True)
    counts = torch.tensor([3.0, 4.0, 4.0, 4.0], dtype=torch.float64)
    expected = _as_quantus(result, counts)
    expected[0] -= 0.5 * float(result.curve[0, 3])  # the spurious extra trapezoid down to 0
    np.testing.assert_allclose(expected.numpy(), theirs, atol=1e-4)
    alone = fa.irof(model, x[:1], a[:1], target[:1], segments=labels[:1], baseline="zeros")
    torch.testing.assert_close(alone.score[0], result.score[0])
    assert torch.isnan(result.curve[0, 4])


def test_quantus_monotonicity_never_inserts_and_accepts_any_attribution(quantus_module):
    """Quantus 0.6.0 Monotonicity replaces baseline values by the baseline: always True. We insert.
    """
    linear = torch.nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, -2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
    model = torch.nn.Sequential(torch.nn.Flatten(), linear).eval()
    x = torch.ones(2, 1, 4)
    # w * x: inserting in increasing order only raises the score
    good = torch.tensor([[[1.0, -2.0, 3.0, 4.0]]])
    # inserts the negative feature second: the score drops
    bad = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    a = torch.cat([good, bad])
    target = torch.tensor([0, 0])
    metric = quantus_module.Monotonicity(features_in_step=1, abs=False, normalise=False,
                                         perturb_baseline=0.0,
                                         disable_warnings=True)
    theirs = _call(metric, model, x, a, target, softmax=True)
    assert theirs.tolist() == [1.0, 1.0]  # the bug: both "pass"
    assert fa.monotonicity(model, x, a, target).tolist() == [1.0, 0.0]


def test_quantus_irof_mean_baseline_depends_on_batch_mates(quantus_module, monkeypatch):
    """Quantus' IROF "mean" fills with the mean of the whole (partly perturbed) batch; ours is per
    sample."""
    model, x, a, target = _case(channels=1, attribution_channels=1, seed=13, spatial=(4, 4),
                                batch=2)
    labels = np.repeat(np.arange(4), 4).reshape(4, 4)
    monkeypatch.setattr(quantus_module.helpers.utils, "get_superpixel_segments",
                        lambda img, **_: labels)
    metric = quantus_module.IROF(abs=False, normalise=False, return_aggregate=False,
                                 disable_warnings=True)
    alone = _call(metric, model, x[:1], a[:1], target[:1], softmax=True)[0]
    x_shifted = x.clone()
    x_shifted[1] += 5.0  # only the batch-mate changes
    together = _call(metric, model, x_shifted, a, target, softmax=True)[0]
    assert abs(alone - together) > 1e-3
    segments = torch.from_numpy(labels).expand(2, 4, 4)
    ours_alone = fa.irof(model, x[:1], a[:1], target[:1], segments=segments[:1]).score
    ours_together = fa.irof(model, x_shifted, a, target, segments=segments).score
    torch.testing.assert_close(ours_alone[0], ours_together[0])


def test_quantus_irof_fails_on_multichannel_inputs(quantus_module, monkeypatch):
    """Quantus 0.6.0 IROF builds a (B, 1, H, W) mask for (B, C, H, W) inputs and trips its own shape
    assert."""
    model, x, a, target = _case(channels=3, attribution_channels=1, seed=11)
    labels = np.repeat(np.arange(4), 16).reshape(8, 8)
    monkeypatch.setattr(quantus_module.helpers.utils, "get_superpixel_segments",
                        lambda img, **_: labels)
    metric = quantus_module.IROF(abs=False, normalise=False, perturb_baseline=0.0,
                                 return_aggregate=False,
                                 disable_warnings=True)
    with pytest.raises(AssertionError, match="shape of arr must be the same as the mask"):
        _call(metric, model, x, a, target, softmax=True)
    segments = torch.from_numpy(labels).expand(4, 8, 8)
    result = fa.irof(model, x, a, target, segments=segments, baseline="zeros")
    assert torch.isfinite(result.score).all() and result.curve.shape == (4, 5)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_quantus_monotonicity_correlation_crashes_when_a_score_is_below_eps(quantus_module):
    """Quantus 0.6.0 assigns all B values of 1/|f(x)| into the entries where |f(x)| >= eps: a sample
    with a score below eps (here a logit of exactly 0) raises. We need no such scaling."""
    _, x, a, target = _case(channels=1, attribution_channels=1, seed=9, spatial=(4, 4))
    linear = torch.nn.Linear(16, 4, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(4, 16, generator=torch.Generator().manual_seed(2)))
    model = torch.nn.Sequential(torch.nn.Flatten(), linear).eval()
    x[0] = 0.0  # every logit of sample 0 is 0
    metric = quantus_module.MonotonicityCorrelation(features_in_step=2, nr_samples=2,
                                                    perturb_baseline=0.0,
                                                    disable_warnings=True)
    with pytest.raises(ValueError, match="boolean array indexing assignment"):
        _call(metric, model, x, a, target, softmax=False)
    ours = fa.monotonicity_correlation(model, x, a, target, features_per_step=2, n_samples=2,
                                       baseline="zeros",
                                       softmax=False)
    # sample 0: every perturbation leaves the score at 0, no correlation
    assert torch.isnan(ours[0])
    assert torch.isfinite(ours[1:]).all()
