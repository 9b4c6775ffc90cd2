"""Fixtures of the harness tests: a tiny synthetic dataset and a briefly trained model."""

from __future__ import annotations

import pytest
import torch

#: Cheaper options for the slower metrics the harness tests score.
FAST_OPTIONS = {"deletion": {"features_per_step": 0.125}, "max_sensitivity": {"n_samples": 2}}


@pytest.fixture(scope="session")
def tiny_dataset():
    from xaiscore.harness.data import make_synthetic_dataset

    return make_synthetic_dataset(16, size=(32, 32), seed=3)


@pytest.fixture(scope="session")
def tiny_model():
    from xaiscore.harness.data import make_synthetic_dataset
    from xaiscore.harness.models import SmallCNN, train_model

    model = SmallCNN(1, 2, width=4, generator=torch.Generator().manual_seed(0))
    train_model(model, make_synthetic_dataset(32, size=(32, 32), seed=11), epochs=1, batch_size=16,
                seed=0)
    return model.eval()
