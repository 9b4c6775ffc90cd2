"""``python -m xaiscore``: score the attributions of a tiny model on random images (a smoke run).

Replaced by the full ``xaiscore`` command-line interface once the harness lands.
"""

from __future__ import annotations

import sys

import torch

from xaiscore.functional import (
    boxes_to_mask,
    complexity,
    localization_auc,
    pointing_game,
    relevance_mass_accuracy,
    sparseness,
)


def main() -> int:
    generator = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 32 * 32, 2)
    )
    x = torch.rand(8, 1, 32, 32, generator=generator).requires_grad_(True)
    logits = model(x)
    target = logits.argmax(1)
    (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), x)
    saliency = grad.abs()
    boxes = [torch.tensor([[8.0, 8.0, 24.0, 24.0]])] * 8
    mask = boxes_to_mask(boxes, (32, 32))
    scores = {
        "pointing_game": pointing_game(saliency, mask),
        "relevance_mass_accuracy": relevance_mass_accuracy(saliency, mask),
        "localization_auc": localization_auc(saliency, mask),
        "sparseness": sparseness(saliency),
        "complexity": complexity(saliency),
    }
    print("Saliency of a tiny random CNN on 8 random 32x32 images, box [8, 8, 24, 24]:")
    for name, value in scores.items():
        print(f"  {name:<26} mean {value.nanmean().item():.4f}  per sample {[round(v, 3) for v in value.tolist()]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
