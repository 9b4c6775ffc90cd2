"""Where Quantus 0.6.0's own metric tests (tests/metrics/*.py of its repository) and the drop-in
disagree: matched to Quantus, or a documented difference (docs/quantus_compat.md, section
"Quantus' own tests")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from xaiscore import quantus_compat as qc
from xaiscore._checks import DTypeError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def conv1d(channels: int = 3, classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(channels, 4, 5, padding=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(8),
        nn.Flatten(),
        nn.Linear(32, classes),
    ).eval()


def saliency(model, inputs, targets, **kwargs):
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32).requires_grad_(True)
    model(x).gather(1, torch.as_tensor(np.asarray(targets)).long()[:, None]).sum().backward()
    return x.grad.abs().numpy()


def test_focus_without_x_batch_is_a_value_error():
    """Quantus' test_focus: ``x_batch=None`` raises ``ValueError`` (the drop-in raised
    ``TypeError``)."""
    with pytest.raises(ValueError, match="x_batch"):
        qc.Focus(disable_warnings=True)(
            model=conv1d(),
            x_batch=None,
            y_batch=None,
            a_batch=None,
            custom_batch=None,
            explain_func=saliency,
        )


@pytest.mark.quantus
def test_focus_without_x_batch_is_a_value_error_in_quantus_too(quantus_module):
    with pytest.raises(ValueError):
        quantus_module.Focus(disable_warnings=True)(
            model=conv1d(),
            x_batch=None,
            y_batch=None,
            a_batch=None,
            custom_batch=None,
            explain_func=quantus_module.explain,
        )


def test_a_non_callable_aggregate_func_fails_only_when_it_is_used():
    """Quantus' test_efficient_model_parameter_randomisation builds
    ``EfficientMPRT(aggregate_func=True)``
    and never aggregates: Quantus accepts any value at construction, and so does the drop-in now."""
    model = conv1d()
    generator = np.random.default_rng(0)
    x = generator.normal(size=(4, 3, 20)).astype(np.float32)
    y = generator.integers(0, 10, size=4)
    metric = qc.EfficientMPRT(aggregate_func=True, disable_warnings=True)
    scores = metric(model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=saliency)
    assert len(scores) == 4 and all(math.isfinite(s) for s in scores)
    with pytest.raises(DTypeError, match="aggregate_func"):
        qc.Sparseness(return_aggregate=True, aggregate_func=True, disable_warnings=True)(
            model=None, x_batch=x, y_batch=y, a_batch=np.abs(x)
        )


def test_continuity_scores_series_where_quantus_raises():
    """Documented difference: Quantus' translation perturbation requires images (``ValueError`` for
    1-D inputs); the drop-in shifts a series along its axis and scores it."""
    model = conv1d()
    generator = np.random.default_rng(1)
    x = generator.normal(size=(5, 3, 40)).astype(np.float32)
    y = model(torch.as_tensor(x)).argmax(1).numpy()
    scores = qc.Continuity(nr_steps=4, disable_warnings=True)(
        model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=saliency
    )
    assert len(scores) == 5 and all(isinstance(s, float) and math.isfinite(s) for s in scores)


@pytest.mark.quantus
def test_continuity_on_series_raises_in_quantus(quantus_module):
    model = conv1d()
    x = np.random.default_rng(1).normal(size=(5, 3, 40)).astype(np.float32)
    with pytest.raises(ValueError):
        quantus_module.Continuity(nr_steps=4, disable_warnings=True)(
            model=model,
            x_batch=x,
            y_batch=np.zeros(5, int),
            a_batch=None,
            explain_func=quantus_module.explain,
            explain_func_kwargs={"method": "Saliency"},
        )


def test_auc_scores_are_numpy_float64_as_quantus_returns():
    """Quantus' test_selectivity checks ``type(metric.get_auc_score) == np.float64`` (the drop-in
    gave
    a Python float)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    generator = np.random.default_rng(2)
    x = generator.random((3, 1, 4, 4)).astype(np.float32)
    a = generator.random((3, 1, 4, 4)).astype(np.float32)
    y = np.array([0, 1, 2])
    for metric in (
        qc.Selectivity(patch_size=2, disable_warnings=True),
        qc.PixelFlipping(features_in_step=4, disable_warnings=True),
        qc.RegionPerturbation(patch_size=2, regions_evaluation=3, disable_warnings=True),
    ):
        metric(model=model, x_batch=x, y_batch=y, a_batch=a)
        assert type(metric.get_auc_score) is np.float64, type(metric).__name__


def test_auc_is_exact_where_sklearn_rounds():
    """Documented difference: Quantus' test_auc expects sklearn's 0.33333333333333337 with ``==``
    where the exact value is 1/3; the drop-in computes the rank statistic exactly (1 ulp from
    sklearn's)."""
    from sklearn.metrics import roc_auc_score

    s = np.zeros((2, 1, 16, 16))
    a = np.zeros((2, 1, 16, 16))
    s[:, :, :8, :8] = 1.0  # ground truth: the top-left quarter
    a[:, :, 8:, 8:] = 1.0  # attribution: the bottom-right quarter
    scores = qc.AUC(disable_warnings=True)(
        model=None, x_batch=np.zeros((2, 3, 16, 16)), y_batch=np.zeros(2, int), a_batch=a, s_batch=s
    )
    assert scores == [1 / 3, 1 / 3]
    reference = roc_auc_score(s[0].ravel(), a[0].ravel())
    assert reference == 0.33333333333333337 and abs(scores[0] - reference) <= np.spacing(reference)
