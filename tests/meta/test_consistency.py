"""IAC, IEC, MC and the agreement statistics against the per-sample references, on drawn score
arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst

from tests.reference import meta as ref
from xaiscore._checks import OptionError, ShapeError
from xaiscore.meta import (
    consistency,
    inter_consistency_adversary,
    inter_consistency_resilience,
    intra_consistency,
    meta_consistency,
    metric_agreement,
    random_baseline_separation,
    random_mc_level,
    split_half_reliability,
)

LEVELS = (0.0, 0.25, 0.5, 1.0)


@st.composite
def score_arrays(draw):
    """q (L, B), q_hat (K, L, B), kept (K, B): continuous or tied scores, some NaN, some empty
    perturbations."""
    n_methods, b, k = draw(st.integers(1, 4)), draw(st.integers(1, 12)), draw(st.integers(1, 3))
    if draw(st.booleans()):
        elements = st.sampled_from(LEVELS)
    else:
        elements = st.floats(-10, 10, allow_nan=False, width=32)
    q = draw(npst.arrays(np.float64, (n_methods, b), elements=elements))
    q_hat = draw(npst.arrays(np.float64, (k, n_methods, b), elements=elements))
    if draw(st.booleans()):
        q_hat[0] = q  # an unmoved perturbation: zero differences
    if draw(st.booleans()):
        q[0, 0] = np.nan
    kept = draw(npst.arrays(np.bool_, (k, b)))
    return q, q_hat, kept


def tensors(*arrays):
    return [torch.from_numpy(a) for a in arrays]


@given(score_arrays(), st.booleans())
def test_intra_consistency_matches_reference(case, adversary):
    q, q_hat, kept = case
    ours = intra_consistency(*tensors(q, q_hat, kept), adversary=adversary).numpy()
    np.testing.assert_allclose(ours, ref.iac_values(q, q_hat, kept, adversary), rtol=1e-9,
                               atol=1e-12,
                               equal_nan=True)


@given(score_arrays())
def test_inter_consistency_resilience_matches_reference(case):
    q, q_hat, kept = case
    per_k = inter_consistency_resilience(*tensors(q, q_hat, kept)).numpy()
    iac, iec, _ = consistency(*tensors(q, q_hat, kept), adversary=False, higher_is_better=True)
    assert per_k.shape == (q_hat.shape[0],)
    np.testing.assert_allclose(iec.item(), ref.iec_resilience(q, q_hat, kept), atol=1e-12,
                               equal_nan=True)
    np.testing.assert_allclose(iac.item(), ref.iac(q, q_hat, kept, False), atol=1e-12,
                               equal_nan=True)


@given(score_arrays(), st.sampled_from([True, False, None]))
def test_inter_consistency_adversary_matches_reference(case, direction):
    q, q_hat, kept = case
    iac, iec, _ = consistency(*tensors(q, q_hat, kept), adversary=True, higher_is_better=direction)
    np.testing.assert_allclose(iec.item(), ref.iec_adversary(q, q_hat, kept, direction), atol=1e-12,
                               equal_nan=True)
    np.testing.assert_allclose(iac.item(), ref.iac(q, q_hat, kept, True), atol=1e-12,
                               equal_nan=True)


def test_leading_axes_are_batched():
    generator = torch.Generator().manual_seed(0)
    q = torch.rand(3, 4, 10, generator=generator, dtype=torch.float64)  # 3 iterations
    q_hat = torch.rand(3, 2, 4, 10, generator=generator, dtype=torch.float64)
    kept = torch.rand(3, 2, 10, generator=generator) > 0.3
    iac, iec, per_method = consistency(q, q_hat, kept, adversary=True, higher_is_better=False)
    assert iac.shape == iec.shape == (3,) and per_method.shape == (3, 4)
    for i in range(3):
        one = consistency(q[i], q_hat[i], kept[i], adversary=True, higher_is_better=False)
        assert torch.allclose(iac[i], one[0]) and torch.allclose(iec[i], one[1])


def test_a_constant_estimator_is_perfectly_resilient_and_never_reactive():
    q = torch.full((4, 16), 0.7, dtype=torch.float64)
    q_hat = q.expand(5, 4, 16)
    kept = torch.ones(5, 16, dtype=torch.bool)
    iac_nr, iec_nr, _ = consistency(q, q_hat, kept, adversary=False, higher_is_better=True)
    iac_ar, iec_ar, _ = consistency(q, q_hat, kept, adversary=True, higher_is_better=True)
    assert (iac_nr.item(), iec_nr.item(), iac_ar.item(), iec_ar.item()) == (1.0, 1.0, 0.0, 0.0)
    assert meta_consistency(iac_nr, iac_ar, iec_nr, iec_ar).item() == 0.5


def test_a_noise_estimator_scores_near_the_random_level():
    generator = torch.Generator().manual_seed(3)
    n_methods, b, k, iterations = 4, 64, 5, 20
    q = torch.rand(iterations, n_methods, b, generator=generator, dtype=torch.float64)
    kept = torch.ones(iterations, k, b, dtype=torch.bool)
    parts = []
    for adversary in (False, True):
        q_hat = torch.rand(iterations, k, n_methods, b, generator=generator, dtype=torch.float64)
        parts.extend(consistency(q, q_hat, kept, adversary=adversary, higher_is_better=True)[:2])
    iac_nr, iec_nr, iac_ar, iec_ar = (p.mean().item() for p in parts)
    assert iac_nr == pytest.approx(0.5, abs=0.06) and iac_ar == pytest.approx(0.5, abs=0.06)
    assert iec_nr == pytest.approx(1 / n_methods, abs=0.03) and iec_ar == pytest.approx(0.5,
                                                                                        abs=0.03)
    mc = (iac_nr + iac_ar + iec_nr + iec_ar) / 4
    assert mc == pytest.approx(random_mc_level(n_methods), abs=0.03)


def test_adversary_direction_is_applied():
    """Regression (MetaQuantus 0.0.5 passes the direction as a truthy string): worse means
    lower *or* higher."""
    q = torch.tensor([[0.9, 0.8, 0.7]], dtype=torch.float64)
    kept = torch.ones(1, 3, dtype=torch.bool)
    dropped, rose = (q - 0.5).unsqueeze(0), (q + 0.5).unsqueeze(0)
    assert inter_consistency_adversary(q, dropped, kept, higher_is_better=True).item() == 1.0
    assert inter_consistency_adversary(q, rose, kept, higher_is_better=True).item() == 0.0
    assert inter_consistency_adversary(q, rose, kept, higher_is_better=False).item() == 1.0
    assert inter_consistency_adversary(q, dropped, kept, higher_is_better=False).item() == 0.0
    with pytest.raises(OptionError, match="truthy"):
        inter_consistency_adversary(q, dropped, kept, higher_is_better="lower")


def test_empty_kept_sets_are_nan_not_perfect():
    """MetaQuantus scores a Wilcoxon test on no samples as p = 0 (a perfect IAC_AR); we give NaN."""
    q = torch.rand(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    kept = torch.zeros(3, 5, dtype=torch.bool)
    iac, iec, per_method = consistency(q, q.expand(3, 2, 5), kept, adversary=True,
                                       higher_is_better=True)
    assert math.isnan(iac.item()) and math.isnan(iec.item()) and torch.isnan(per_method).all()
    kept[1, :2] = True  # one perturbation with samples: the others are left out of the mean
    iac, _, _ = consistency(q, q.expand(3, 2, 5), kept, adversary=True, higher_is_better=True)
    assert iac.item() == 0.0


def test_shape_errors():
    q, q_hat, kept = torch.zeros(2, 3), torch.zeros(4, 2, 3), torch.ones(4, 3, dtype=torch.bool)
    with pytest.raises(ShapeError, match="share"):
        intra_consistency(q, torch.zeros(4, 3, 3), kept, adversary=False)
    with pytest.raises(ShapeError, match="kept"):
        intra_consistency(q, q_hat, torch.ones(5, 3, dtype=torch.bool), adversary=False)
    with pytest.raises(ShapeError, match="bool"):
        intra_consistency(q, q_hat, kept.float(), adversary=False)
    with pytest.raises(ShapeError):
        intra_consistency(torch.zeros(3), q_hat, kept, adversary=False)
    with pytest.raises(OptionError):
        random_mc_level(0)


# --- beyond MetaQuantus ------------------------------------------------------------------------


@st.composite
def metric_scores(draw):
    m, n_methods, b = draw(st.integers(1, 3)), draw(st.integers(2, 4)), draw(st.integers(1, 8))
    elements = st.sampled_from(LEVELS) if draw(st.booleans()) else st.floats(-5, 5, allow_nan=False,
                                                                             width=32)
    q = draw(npst.arrays(np.float64, (m, n_methods, b), elements=elements))
    if draw(st.booleans()):
        q[0, 0, 0] = np.nan
    directions = draw(st.lists(st.sampled_from([True, False, None]), min_size=m, max_size=m))
    baseline = draw(npst.arrays(np.float64, (m, b), elements=elements))
    return q, directions, baseline


@given(metric_scores())
def test_metric_agreement_matches_reference(case):
    q, directions, _ = case
    overall, per_sample = metric_agreement(torch.from_numpy(q), directions)
    expected_overall, expected_per_sample = ref.agreement(q, directions)
    np.testing.assert_allclose(overall.numpy(), expected_overall, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(per_sample.numpy(), expected_per_sample, atol=1e-12, equal_nan=True)


@given(metric_scores(), st.integers(0, 2**16))
def test_split_half_matches_reference(case, seed):
    q, _, _ = case
    ours = split_half_reliability(torch.from_numpy(q), n_splits=4,
                                  generator=torch.Generator().manual_seed(seed))
    order = torch.rand(4, q.shape[-1],
                       generator=torch.Generator().manual_seed(seed)).argsort(dim=1).numpy()
    expected = ref.split_half(q, order) if q.shape[-1] >= 2 else np.full((q.shape[0], 4), np.nan)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-12, equal_nan=True)


@given(metric_scores())
def test_random_separation_matches_reference(case):
    q, directions, baseline = case
    win, p = random_baseline_separation(torch.from_numpy(q), torch.from_numpy(baseline), directions)
    expected_win, expected_p = ref.random_separation(q, baseline, directions)
    np.testing.assert_allclose(win.numpy(), expected_win, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(p.numpy(), expected_p, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_agreement_errors():
    with pytest.raises(ShapeError):
        metric_agreement(torch.zeros(2, 3), [True, True])
    with pytest.raises(ShapeError, match="direction"):
        metric_agreement(torch.zeros(2, 3, 4), [True])
    with pytest.raises(ShapeError, match="baseline"):
        random_baseline_separation(torch.zeros(2, 3, 4), torch.zeros(2, 5), [True, False])
