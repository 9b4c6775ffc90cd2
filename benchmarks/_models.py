"""Models shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import torch


def wide_cnn(classes: int = 10, seed: int = 0) -> torch.nn.Module:
    """A CNN with about 30x the small benchmark CNN's multiply-adds at 224 x 224
    (32 and 64 channels).

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


def small_cnn(classes: int = 10, seed: int = 0, channels: int = 1) -> torch.nn.Module:
    """The small benchmark CNN: two strided 5 x 5 convolutions (8 and 16 channels), pooled to 4 x 4.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # benchmark-only model initialisation, global state restored
        return torch.nn.Sequential(
            torch.nn.Conv2d(channels, 8, 5, stride=2, padding=2), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 5, stride=2, padding=2), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(256, classes),
        ).eval()


class BasicBlock(torch.nn.Module):
    """A ResNet basic block: two 3 x 3 convolutions with ReLUs and a (1 x 1, strided) shortcut."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1)
        self.relu1 = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(outputs, outputs, 3, padding=1)
        self.shortcut = torch.nn.Conv2d(inputs, outputs, 1, stride=stride)
        self.relu2 = torch.nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu2(self.conv2(self.relu1(self.conv1(x))) + self.shortcut(x))


class ResNetLike(torch.nn.Module):
    """A small ResNet-like CNN: a strided 5 x 5 stem (8 channels), two strided basic blocks (16, 32
    channels), global average pooling and a linear classifier; 8 parameterised layers.

    About 25 M multiply-adds per 1 x 224 x 224 image; ``layer2`` (32 x 28 x 28 at 224) is the
    Grad-CAM layer of the end-to-end benchmark.
    """

    def __init__(self, classes: int = 10, channels: int = 1) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(channels, 8, 5, stride=2, padding=2)
        self.relu = torch.nn.ReLU()
        self.layer1 = BasicBlock(8, 16, 2)
        self.layer2 = BasicBlock(16, 32, 2)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.flatten = torch.nn.Flatten()
        self.fc = torch.nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.layer2(self.layer1(self.relu(self.stem(x)))))))


def resnet_like(classes: int = 10, seed: int = 0, channels: int = 1) -> torch.nn.Module:
    """:class:`ResNetLike`, initialised from ``seed`` (global RNG state restored), in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ResNetLike(classes, channels).eval()
