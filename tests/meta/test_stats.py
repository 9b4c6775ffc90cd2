"""Batched rank statistics of the meta-evaluation against scipy, on drawn inputs and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst

from tests.reference import meta as ref
from xaiscore._checks import OptionError, ShapeError
from xaiscore.meta._stats import average_ranks_small, kendall_tau_b, wilcoxon_p_value

LEVELS = (-2.0, -1.0, 0.0, 0.5, 1.0, 3.0)


@st.composite
def paired_rows(draw, max_n: int = 60):
    rows = draw(st.integers(1, 4))
    n = draw(st.integers(0, max_n))
    if draw(st.booleans()):  # many ties and zero differences
        x = draw(npst.arrays(np.float64, (rows, n), elements=st.sampled_from(LEVELS)))
        y = draw(npst.arrays(np.float64, (rows, n), elements=st.sampled_from(LEVELS)))
    else:
        elements = st.floats(-100, 100, allow_nan=False, width=32)
        x = draw(npst.arrays(np.float64, (rows, n), elements=elements))
        y = draw(npst.arrays(np.float64, (rows, n), elements=elements))
    valid = draw(npst.arrays(np.bool_, (rows, n)))
    if draw(st.booleans()) and n:
        x[0, 0] = np.nan  # a non-finite pair is dropped
    return x, y, valid


@given(paired_rows(), st.sampled_from(["two-sided", "greater"]))
def test_wilcoxon_matches_scipy(case, alternative):
    x, y, valid = case
    ours = wilcoxon_p_value(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(valid),
                            alternative=alternative).numpy()
    expected = np.array([ref.wilcoxon_p(x[r][valid[r]], y[r][valid[r]], alternative)
                         for r in range(len(x))])
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("n", [1, 2, 7, 50, 51, 120])
def test_wilcoxon_exact_and_normal_regimes(n):
    generator = np.random.default_rng(n)
    x, y = generator.normal(size=n), generator.normal(size=n) + 0.3
    ours = wilcoxon_p_value(torch.from_numpy(x), torch.from_numpy(y)).item()
    method = "exact" if n <= 50 else "asymptotic"
    expected = (
        scipy.stats.wilcoxon(x, y, zero_method="zsplit", correction=False, method=method).pvalue)
    assert ours == pytest.approx(expected, rel=1e-10, abs=1e-14)


def test_wilcoxon_edge_cases():
    zeros = torch.zeros(2, 5)
    assert wilcoxon_p_value(zeros, zeros).tolist() == [1.0, 1.0]  # no shift at all
    empty = wilcoxon_p_value(torch.ones(3), torch.zeros(3), torch.zeros(3, dtype=torch.bool))
    assert math.isnan(empty.item())
    assert math.isnan(wilcoxon_p_value(torch.ones(0), torch.ones(0)).item())
    # a single shared pair broadcasts over leading axes
    p = wilcoxon_p_value(torch.arange(6.0), torch.zeros(3, 6))
    assert p.shape == (3,) and torch.all(p == p[0])
    with pytest.raises(OptionError, match="alternative"):
        wilcoxon_p_value(torch.ones(3), torch.zeros(3), alternative="less")
    with pytest.raises(ShapeError):
        wilcoxon_p_value(torch.tensor(1.0), torch.tensor(0.0))


def test_wilcoxon_float32_inputs_give_float64():
    x = torch.tensor([0.1, 0.7, 0.3, 0.9], dtype=torch.float32)
    assert wilcoxon_p_value(x, torch.zeros(4)).dtype == torch.float64


@given(st.integers(2, 7).flatmap(lambda n: st.tuples(
    npst.arrays(np.float64, (3, n), elements=st.sampled_from(LEVELS + (np.nan,))),
    npst.arrays(np.float64, (3, n), elements=st.floats(-5, 5, allow_nan=False, width=16)),
)))
def test_kendall_tau_matches_scipy(case):
    x, y = case
    ours = kendall_tau_b(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    expected = np.array([ref.kendall_tau(x[r], y[r]) for r in range(3)])
    np.testing.assert_allclose(ours, expected, atol=1e-12, equal_nan=True)


def test_kendall_tau_edge_cases():
    assert math.isnan(kendall_tau_b(torch.ones(4), torch.arange(4.0)).item())  # a constant ranking
    assert math.isnan(kendall_tau_b(torch.tensor([1.0]), torch.tensor([2.0])).item())
    assert kendall_tau_b(torch.arange(5.0), -torch.arange(5.0)).item() == -1.0


@settings(max_examples=20)
@given(npst.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 6)),
                   elements=st.sampled_from(LEVELS + (np.nan,))))
def test_average_ranks_match_rankdata(values):
    ours = average_ranks_small(torch.from_numpy(values)).numpy()
    for row, expected_row in zip(ours, values):
        finite = np.isfinite(expected_row)
        expected = np.full(expected_row.shape, np.nan)
        expected[finite] = scipy.stats.rankdata(expected_row[finite])
        np.testing.assert_array_equal(row, expected)
