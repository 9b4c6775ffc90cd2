"""Models shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import torch


def wide_cnn(classes: int = 10, seed: int = 0) -> torch.nn.Module:
    """A CNN with about 30x the small benchmark CNN's multiply-adds at 224 x 224 (32 and 64 channels).

    With it an explanation costs ~25x more than with the small CNN, which shows how a metric's fixed
    per-map work (noise, norms, ranks, SSIM, histograms) shrinks against a costlier explainer.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # benchmark-only model initialisation, global state restored
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(64, 64, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(1024, classes),
        ).eval()
