"""Small models, explainers and noise replays shared by the robustness and explainer tests."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from xaiscore._engine.noise import BlockNoise


def make_mlp(n_features: int, n_classes: int = 3, *, hidden: int = 5, seed: int = 0,
             dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """Flatten -> Linear -> Tanh -> Linear, weights from a seeded generator (never the global RNG).
    """
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(n_features, hidden), nn.Tanh(),
                          nn.Linear(hidden, n_classes))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator)
                            / math.sqrt(parameter.shape[-1]))
    return model.to(dtype).eval()


def make_cnn(channels: int = 1, n_classes: int = 4, *, seed: int = 0,
             dtype: torch.dtype = torch.float64) -> nn.Module:
    """A tiny 2-D CNN (conv, ReLU, conv, ReLU, pool, linear) with seeded weights."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, n_classes),
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return model.to(dtype).eval()


def _per_sample_scale(t: Tensor, ndim: int) -> Tensor:
    return (t.to(torch.float64) + 1).reshape((-1,) + (1,) * (ndim - 1))


def mixing_explainer(x: Tensor, t: Tensor) -> Tensor:
    """Non-linear, mixes neighbouring features, depends on the target; C channels."""
    return torch.tanh(2 * x + torch.roll(x, 1, -1)) * _per_sample_scale(t, x.ndim).to(x.dtype)


def energy_explainer(x: Tensor, t: Tensor) -> Tensor:
    """Sum of squares over channels; one channel (zero where the input is zero)."""
    return (x**2).sum(dim=1, keepdim=True) * _per_sample_scale(t, x.ndim).to(x.dtype)


def stepped_explainer(x: Tensor, t: Tensor) -> Tensor:
    """Piecewise constant: ties and exact zeros are common."""
    return torch.round(2 * x) / 2


def constant_map(x: Tensor, t: Tensor) -> Tensor:
    return torch.ones_like(x[:, :1])


EXPLAINERS = {
    "mixing": mixing_explainer,
    "energy": energy_explainer,
    "stepped": stepped_explainer,
    "constant": constant_map,
}


def per_sample(explain_fn):
    """The numpy one-sample view ``explain(x_i, t_i)`` of a batched torch explainer
    (one call per input)."""

    def explain(x_i: np.ndarray, t_i: int) -> np.ndarray:
        return explain_fn(torch.from_numpy(np.ascontiguousarray(x_i))[None],
                          torch.tensor([t_i]))[0].detach().numpy()

    return explain


def predictor(model: nn.Module):
    def predict(x_i: np.ndarray) -> int:
        with torch.no_grad():
            return int(model(torch.from_numpy(np.ascontiguousarray(x_i))[None]).argmax())

    return predict


def logits_of(model: nn.Module):
    def logits(x_i: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(x_i))[None])[0].numpy()

    return logits


def replay_noise(x: Tensor, n: int, *, seed: int, kind: str = "uniform", low: float = -0.2,
                 high: float = 0.2) -> np.ndarray:
    """The ``(B, n, C, *S)`` noise a kernel draws with ``seed`` (item ``i * n + j``), as numpy."""
    source = BlockNoise(x.shape[0] * n, x.shape[1:], kind=kind, low=low, high=high,
                        generator=torch.Generator().manual_seed(seed), device=x.device,
                        dtype=x.dtype)
    return source(0, x.shape[0] * n).reshape((x.shape[0], n) + tuple(x.shape[1:])).numpy()
