"""Multi-pass captum methods (IG, SmoothGrad/NoiseTunnel, GradientShap) run their passes under
max_batch_size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xaiscore.explainers import captum_explainer

captum = pytest.importorskip("captum")


def _model(seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(), nn.Flatten(),
                          nn.Linear(3 * 36, 4)).double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
                            * 0.5)
    return model.eval()


class _Counting(nn.Module):
    """Records the size of every model call."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        return self.inner(x)


CASES = [
    ("IntegratedGradients", {"n_steps": 8}, 8),
    ("IntegratedGradients", {"n_steps": 8, "method": "riemann_trapezoid"}, 8),
    ("SmoothGrad", {"nt_samples": 6}, 6),
    ("NoiseTunnel", {"base_method": "IntegratedGradients", "n_steps": 3, "nt_samples": 4}, 12),
    ("GradientShap", {"n_samples": 5}, 5),
]


@pytest.mark.parametrize("method, options, passes", CASES)
@pytest.mark.parametrize("max_batch_size", [1, 5, 16, 1000])
def test_passes_stay_under_max_batch_size_and_cover_every_input(method, options, passes,
                                                                max_batch_size):
    counting = _Counting(_model())
    x = torch.rand(7, 1, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3, 0, 1, 2])
    captum_explainer(counting, method, max_batch_size=max_batch_size, seed=3, **options)(x, target)
    # GradientShap cannot split one input's samples: its passes hold at least n_samples inputs.
    limit = max(max_batch_size, passes) if method == "GradientShap" else max_batch_size
    assert max(counting.sizes) <= limit
    assert sum(counting.sizes) == 7 * passes  # no pass is repeated or lost
    if max_batch_size >= 7 * passes:
        assert len(counting.sizes) == 1  # everything fits: one pass, as captum alone


@pytest.mark.parametrize("method, options", [(m, o) for m, o, _ in CASES
                                             if m == "IntegratedGradients"])
@pytest.mark.parametrize("max_batch_size", [1, 3, 16])
def test_integrated_gradients_do_not_depend_on_max_batch_size(method, options, max_batch_size):
    model = _model(2)
    x = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    target = torch.tensor([3, 1, 2, 0, 1])
    whole = captum_explainer(model, method, max_batch_size=10_000, **options)(x, target)
    batched = captum_explainer(model, method, max_batch_size=max_batch_size, **options)(x, target)
    torch.testing.assert_close(batched, whole, rtol=1e-12, atol=1e-14)


def test_integrated_gradients_with_per_row_baselines_are_sliced_with_their_rows():
    model = _model(5)
    generator = torch.Generator().manual_seed(6)
    x = torch.rand(4, 1, 6, 6, generator=generator, dtype=torch.float64)
    baselines = torch.rand(4, 1, 6, 6, generator=generator, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3])
    whole = captum_explainer(model, "IntegratedGradients", n_steps=6, baselines=baselines,
                             max_batch_size=10_000)(x, target)
    batched = captum_explainer(model, "IntegratedGradients", n_steps=6, baselines=baselines,
                               max_batch_size=2)(x, target)
    torch.testing.assert_close(batched, whole, rtol=1e-12, atol=1e-14)


def test_smoothgrad_noise_is_the_same_when_whole_rows_fit_a_pass():
    """Rows with all their samples in a pass draw the noise in the order of one big call."""
    model = _model(7)
    x = torch.rand(6, 1, 6, 6, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3, 0, 1])
    whole = captum_explainer(model, "SmoothGrad", nt_samples=4, seed=9,
                             max_batch_size=10_000)(x, target)
    by_rows = captum_explainer(model, "SmoothGrad", nt_samples=4, seed=9,
                               max_batch_size=8)(x, target)
    torch.testing.assert_close(by_rows, whole, rtol=1e-12, atol=1e-14)


def test_user_batching_options_win():
    counting = _Counting(_model())
    x = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    captum_explainer(counting, "IntegratedGradients", n_steps=6, internal_batch_size=12,
                     max_batch_size=2)(x, torch.tensor([0, 1, 2, 3]))
    assert max(counting.sizes) == 12  # captum's own option, as given


@pytest.mark.parametrize("method, options, passes", CASES)
def test_a_byte_budget_is_the_same_as_its_item_count(method, options, passes):
    # one 1 x 6 x 6 float64 input weighs 288 bytes: "2880B" holds 10 of them
    x = torch.rand(7, 1, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3, 0, 1, 2])
    by_count, by_bytes = _Counting(_model()), _Counting(_model())
    counted = captum_explainer(by_count, method, max_batch_size=10, seed=3, **options)(x, target)
    budgeted = captum_explainer(by_bytes, method, max_batch_size="2880B", seed=3, **options)(
        x, target)
    assert by_bytes.sizes == by_count.sizes
    torch.testing.assert_close(budgeted, counted, rtol=0, atol=0)


@pytest.mark.parametrize("value, error, match", [
    ("auto", ValueError, r"int or a byte budget .*must not depend on timing.*'auto'"),
    ("auto:1GB", ValueError, r"must not depend on timing"),
    ("lots", ValueError, r"'lots'"),
    (2.5, TypeError, r"positive int.*float"),
])
def test_explainers_refuse_auto_and_non_sizes(value, error, match):
    with pytest.raises(error, match=match):
        captum_explainer(_model(), "IntegratedGradients", max_batch_size=value)
