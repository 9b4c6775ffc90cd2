"""The networks the demo can train: a small CNN and a tiny vision transformer.

``[model] kind = "demo"`` trains one of :data:`DEMO_ARCHITECTURES` on synthetic data
(:func:`xaiscore.harness.models.build_model`); ``architecture`` picks it and ``kwargs`` passes
its constructor options:

* ``"cnn"`` (default): :class:`~xaiscore.harness.models.SmallCNN` (``width`` is a training
  option for backward compatibility; ``features.6`` is its Grad-CAM layer);
* ``"vit"``: :class:`~xaiscore.explainers.tiny_models.TinyViT` with a convolutional stem
  (``patch_size`` 8 where it divides the image, ``dim`` 48, ``depth`` 2, ``heads`` 4,
  ``stem_channels`` 16). Its attention modules ``blocks.<i>.attn.attn_drop`` are what
  ``AttentionRollout`` and ``CheferRelevance`` read by default.

The ViT trains with Adam at ``lr = 2e-3`` for up to 30 epochs (stopping at 97 % running
accuracy): on the 32 x 32 demo images it learns the lesion task in a few seconds on two cores.

Example:
    >>> net = demo_network("vit", in_channels=1, num_classes=2, spatial=(32, 32), kwargs={},
    ...                    width=8, mean=0.5, std=0.25, generator=torch.Generator().manual_seed(0))
    >>> type(net).__name__, net.patch_grid, net(torch.zeros(2, 1, 32, 32)).shape
    ('TinyViT', (4, 4), torch.Size([2, 2]))
    >>> train_defaults("vit")["lr"]
    0.002
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from xaiscore._checks import OptionError

from xaiscore.harness.config import DEMO_ARCHITECTURES

__all__ = ["DEMO_ARCHITECTURES", "demo_network", "train_defaults", "vit_kwargs"]

_TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "cnn": {"epochs": 8, "lr": 1e-2, "stop_at_accuracy": 0.98},
    "vit": {"epochs": 30, "lr": 2e-3, "stop_at_accuracy": 0.97},
}

_VIT_DEFAULTS: dict[str, Any] = {"dim": 48, "depth": 2, "heads": 4, "stem_channels": 16}
_VIT_KEYS = frozenset({"patch_size", "dim", "depth", "heads", "mlp_ratio", "stem_channels"})


def train_defaults(architecture: str) -> dict[str, Any]:
    """The training options of ``architecture`` that differ between the demo networks."""
    return dict(_TRAIN_DEFAULTS[architecture])


def _patch_size(spatial: Sequence[int]) -> int:
    """The largest of 8, 4, 2, 1 that divides every side."""
    return next(p for p in (8, 4, 2, 1) if all(side % p == 0 for side in spatial))


def vit_kwargs(spatial: Sequence[int], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The TinyViT options of the demo for images of side(s) ``spatial``, ``kwargs`` first.

    Raises:
        OptionError: a key TinyViT's demo does not take.
    """
    unknown = sorted(set(kwargs) - _VIT_KEYS)
    if unknown:
        raise OptionError(
            f"Expected `model.kwargs` of the demo ViT among {sorted(_VIT_KEYS)}, but got {unknown}."
        )
    return {**_VIT_DEFAULTS, "patch_size": _patch_size(spatial), **kwargs}


def demo_network(architecture: str, *, in_channels: int, num_classes: int, spatial: Sequence[int],
                 kwargs: Mapping[str, Any], width: int, mean: float, std: float,
                 generator: torch.Generator, cnn_class: type[nn.Module] | None = None) -> nn.Module:
    """A freshly initialised demo network (weights drawn from ``generator``).

    Args:
        architecture: One of :data:`DEMO_ARCHITECTURES`.
        in_channels: Input channels.
        num_classes: Output classes.
        spatial: The images' spatial shape.
        kwargs: Constructor options (the ViT's; the CNN takes none but ``width``).
        width: The CNN's first width.
        mean: Subtracted from the input.
        std: The input is divided by it.
        generator: Source of the initial weights.
        cnn_class: The CNN (:class:`~xaiscore.harness.models.SmallCNN`, which passes itself).

    Raises:
        OptionError: an unknown architecture or option.
    """
    if architecture == "cnn":
        if cnn_class is None:
            raise OptionError("Expected `cnn_class` (SmallCNN) for the demo CNN, but got None.")
        if kwargs:
            raise OptionError(f"Expected no `model.kwargs` for the demo CNN (its `width` is a "
                              f"`model.train` option), but got {sorted(kwargs)}.")
        return cnn_class(in_channels, num_classes, width=width, spatial_dims=len(spatial),
                         input_mean=mean, input_std=std, generator=generator)
    if architecture == "vit":
        from xaiscore.explainers.tiny_models import TinyViT

        return TinyViT(in_channels, num_classes, image_size=tuple(spatial),
                       spatial_dims=len(spatial), input_mean=mean, input_std=std,
                       generator=generator,
                       **vit_kwargs(spatial, kwargs))
    raise OptionError(f"Expected `architecture` to be one of {DEMO_ARCHITECTURES}, but got "
                      f"{architecture!r}.")
