"""Shared test configuration.

Hypothesis profiles: ``ci`` (default; bounded examples, no deadline because
the CI machine is shared) and ``thorough`` (``--hypothesis-profile thorough``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# One intra-op thread per test process: the suite runs under `-n 2` on a shared 2-core machine, and
# with two threads per process a busy machine makes every tiny op wait on a descheduled thread
# (measured: ~200 ms instead of ~0.5 ms per small backward pass at load 10).
torch.set_num_threads(1)


@pytest.fixture
def quantus_module(monkeypatch):
    """The installed quantus package, with ``np.trapz`` restored where numpy >= 2.4 removed it.

    Quantus 0.6.0 calls ``np.trapz`` for every AUC output; numpy 2.4 dropped it
    in favour of ``np.trapezoid`` (same maths).
    """
    quantus = pytest.importorskip("quantus")
    if not hasattr(np, "trapz"):
        monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)
    return quantus


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)
