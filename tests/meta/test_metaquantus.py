"""Parity with MetaQuantus 0.0.5's criteria where it is right, and its direction bug.

metaquantus is not a dependency (it declares torchvision, which xaiscore never
installs); these tests run where it was installed with ``pip install --no-deps
metaquantus``. Its meta-evaluation does not use torchvision: a stub module
stands in for it while metaquantus is imported.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xaiscore.meta import (inter_consistency_adversary, inter_consistency_resilience,
                           intra_consistency)


@pytest.fixture(scope="module")
def meta_evaluation():
    pytest.importorskip("quantus")
    stubbed = False
    try:
        import torchvision  # noqa: F401
    except ImportError:
        sys.modules["torchvision"] = types.ModuleType("torchvision")
        stubbed = True
    try:
        metaquantus = pytest.importorskip("metaquantus")
    finally:
        if stubbed:
            del sys.modules["torchvision"]
    return metaquantus.MetaEvaluation


def distinct_scores(seed: int, n_methods: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Continuous scores without ties (so that orderings and exact p-values are unambiguous)."""
    generator = np.random.default_rng(seed)
    return generator.normal(size=(n_methods, b)), generator.normal(size=(n_methods, b))


@settings(max_examples=15)
@given(st.integers(0, 2**16), st.integers(2, 40), st.booleans())
def test_intra_consistency_matches_metaquantus(meta_evaluation, seed, b, adversary):
    q, q_hat = distinct_scores(seed, 1, b)
    q_hat = q[0] + 0.3 * q_hat[0]
    indices = np.random.default_rng(seed + 1).random(b) < 0.8
    indices[:2] = True
    name = "Model Adversary Test" if adversary else "Model Resilience Test"
    theirs = meta_evaluation.compute_iac_score(q=q[0], q_hat=q_hat, indices=indices, test_name=name)
    ours = intra_consistency(torch.from_numpy(q), torch.from_numpy(q_hat).reshape(1, 1, b),
                             torch.from_numpy(indices).reshape(1, b), adversary=adversary)
    assert ours.item() == pytest.approx(theirs, rel=1e-9, abs=1e-12)


@settings(max_examples=15)
@given(st.integers(0, 2**16), st.integers(2, 5), st.integers(1, 20))
def test_inter_consistency_resilience_matches_metaquantus(meta_evaluation, seed, n_methods, b):
    q, q_hat = distinct_scores(seed, n_methods, b)
    indices = np.random.default_rng(seed + 1).random(b) < 0.7
    indices[0] = True
    theirs = meta_evaluation.compute_iec_resilience(Q_star=q, Q_hat=q_hat, indices=indices)
    ours = inter_consistency_resilience(torch.from_numpy(q), torch.from_numpy(q_hat).unsqueeze(0),
                                        torch.from_numpy(indices).unsqueeze(0))
    assert ours.item() == pytest.approx(theirs, abs=1e-12)


def test_inter_consistency_adversary_direction_bug(meta_evaluation):
    """MetaQuantus 0.0.5 takes score_direction as 'higher'/'lower' (both truthy): one rule for both
    directions.

    Its truthy branch counts increases, which is right for lower-is-better metrics only; we apply
    the metric's direction (MetricSpec.higher_is_better).
    """
    q, noise = distinct_scores(7, 4, 30)
    q_hat = q - 0.5 + 0.3 * noise  # mostly lower after the perturbation
    indices = np.ones(30, dtype=bool)
    higher = meta_evaluation.compute_iec_adversary(Q_star=q, Q_hat=q_hat, indices=indices,
                                                   score_direction="higher")
    lower = meta_evaluation.compute_iec_adversary(Q_star=q, Q_hat=q_hat, indices=indices,
                                                  score_direction="lower")
    assert higher == lower  # the bug: the direction is never applied
    kept = torch.ones(1, 30, dtype=torch.bool)
    ours_higher = inter_consistency_adversary(torch.from_numpy(q),
                                              torch.from_numpy(q_hat).unsqueeze(0), kept,
                                              higher_is_better=True).item()
    ours_lower = inter_consistency_adversary(torch.from_numpy(q),
                                             torch.from_numpy(q_hat).unsqueeze(0), kept,
                                             higher_is_better=False).item()
    assert ours_lower == pytest.approx(lower)  # where MetaQuantus is right, we agree
    # scores that dropped count for a higher-is-better metric
    assert ours_higher == pytest.approx(1.0 - lower)
    assert ours_higher > 0.8 > higher
