"""The one Kendall tau-b: numpy and torch inputs against scipy, and meta's name for it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst

from xaiscore.stats import kendall_tau_b

LEVELS = (-1.0, 0.0, 0.5, 2.0, np.nan)


def _scipy_tau(x, y):
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return math.nan
    return scipy.stats.kendalltau(x[keep], y[keep]).statistic


@given(st.integers(2, 8).flatmap(lambda n: st.tuples(
    npst.arrays(np.float64, (3, n), elements=st.sampled_from(LEVELS)),
    npst.arrays(np.float64, (3, n), elements=st.floats(-5, 5, allow_nan=False, width=16)))))
def test_numpy_input_matches_scipy(case):
    x, y = case
    ours = kendall_tau_b(x, y)
    assert isinstance(ours, np.ndarray) and ours.shape == (3,)
    expected = [_scipy_tau(x[r], y[r]) for r in range(3)]
    np.testing.assert_allclose(ours, expected, atol=1e-12, equal_nan=True)
    tensor = kendall_tau_b(torch.from_numpy(x), torch.from_numpy(y))
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float64
    np.testing.assert_allclose(tensor.numpy(), ours, equal_nan=True)


def test_valid_mask_and_mixed_inputs():
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, -9.0])
    masked = kendall_tau_b(x, y, valid=np.array([True, True, True, False]))
    assert float(masked) == pytest.approx(scipy.stats.kendalltau(x[:3], y[:3]).statistic)
    mixed = kendall_tau_b(torch.tensor(x), y)  # one tensor: a tensor comes back
    assert isinstance(mixed, torch.Tensor)


def test_meta_uses_the_same_function():
    from xaiscore.meta import kendall_tau_b as meta_public
    from xaiscore.meta._stats import kendall_tau_b as meta_private

    assert meta_public is kendall_tau_b and meta_private is kendall_tau_b


def test_kendall_needs_no_scipy():
    import subprocess
    import sys

    code = ("import sys; sys.modules['scipy'] = None\n"
            "from xaiscore.stats import kendall_tau_b\n"
            "import xaiscore.meta\n"
            "print(float(kendall_tau_b([1, 2, 3], [1, 3, 2])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(1 / 3)
