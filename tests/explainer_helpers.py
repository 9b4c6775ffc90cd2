"""Synthetic lesion data and a deterministic trainer for the explainer tests (ViT, ProtoPNet)."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


def blob_data(
    n: int = 128, size: int = 16, *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor, Tensor]:
    """Images ``(n, 1, size, size)`` of faint noise; class 1 holds a bright square "lesion".

    Returns the images, the labels ``(n,)`` and the lesion boxes ``(n, 1, 4)`` (xyxy; NaN for
    class 0).
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=generator, dtype=torch.float64) * 0.3
    y = torch.arange(n) % 2
    side = size // 4
    corner = torch.randint(0, size - side + 1, (n, 2), generator=generator)
    boxes = torch.full((n, 1, 4), float("nan"), dtype=torch.float64)
    for i in range(n):  # test data only
        if y[i] == 1:
            r, c = int(corner[i, 0]), int(corner[i, 1])
            x[i, 0, r : r + side, c : c + side] += 0.7
            boxes[i, 0] = torch.tensor([c, r, c + side, r + side], dtype=torch.float64)
    return x.to(dtype), y, boxes


def train(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    steps: int = 150,
    lr: float = 3e-3,
    batch: int = 32,
    seed: int = 0,
) -> float:
    """Adam on minibatches from a seeded generator; returns the training accuracy (eval mode)."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        index = torch.randint(0, x.shape[0], (batch,), generator=generator)
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x[index]), y[index]).backward()
        optimiser.step()
    model.eval()
    for parameter in model.parameters():
        parameter.grad = None
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


_TRAINED: dict[str, object] = {}


def trained_vit(dtype: torch.dtype = torch.float64):
    """The tiny ViT (16 x 16 inputs, patches of 4, 2 blocks of 4 heads) trained on blob data."""
    from xaiscore.explainers.tiny_models import TinyViT

    if "vit" not in _TRAINED:
        x, y, _ = blob_data(128, 16)
        model = TinyViT(1, 2, image_size=16, patch_size=4, dim=32, depth=2, heads=4)
        _TRAINED["vit"] = (model, train(model, x, y, steps=60, lr=5e-3))
    model, accuracy = _TRAINED["vit"]
    return copy.deepcopy(model).to(dtype), accuracy


def trained_protopnet(dtype: torch.dtype = torch.float64):
    """The tiny ProtoPNet (3 prototypes per class) trained on :func:`blob_data` (cached)."""
    from xaiscore.explainers.tiny_models import TinyProtoPNet

    if "proto" not in _TRAINED:
        x, y, _ = blob_data(128, 16)
        model = TinyProtoPNet(1, 2, prototypes_per_class=3)
        _TRAINED["proto"] = (model, train(model, x, y, steps=100, lr=5e-3))
    model, accuracy = _TRAINED["proto"]
    return copy.deepcopy(model).to(dtype), accuracy
