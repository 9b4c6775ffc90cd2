"""Small tensor helpers shared by the kernels: channel reduction, normalisation, flattening.

All functions are batch-first, keep the input's device and dtype, never loop
over samples and never synchronise with the host.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from xaiscore._checks import check_option

__all__ = [
    "ChannelReduction",
    "CHANNEL_REDUCTIONS",
    "Normalisation",
    "NORMALISATIONS",
    "reduce_channels",
    "reduce_mask_channels",
    "normalise_by_max",
    "flatten_features",
]

ChannelReduction = Literal["sum", "mean", "max_abs"]
CHANNEL_REDUCTIONS: tuple[str, ...] = ("sum", "mean", "max_abs")

Normalisation = Literal["sample", "batch"]
NORMALISATIONS: tuple[str | None, ...] = ("sample", "batch", None)


def reduce_channels(a: Tensor, how: ChannelReduction | None) -> Tensor:
    """Reduce the channel axis of ``a`` ``(B, C, *S)`` to one channel ``(B, 1, *S)``.

    Args:
        a: Attributions of shape ``(B, C, *S)``.
        how: ``"sum"`` (signed sum over channels, the usual choice for
            attributions whose channels add up, e.g. Integrated Gradients),
            ``"mean"`` (signed mean), ``"max_abs"`` (largest absolute value
            over channels; the result is non-negative), or ``None`` to keep
            every channel as its own feature (``a`` is returned unchanged).

    A single-channel ``a`` is returned unchanged for ``"sum"``/``"mean"``
    (``"max_abs"`` still takes the absolute value).

    Example:
        >>> a = torch.tensor([[[[1.0, -3.0]], [[2.0, 1.0]]]])  # (1, 2, 1, 2)
        >>> reduce_channels(a, "sum").tolist()
        [[[[3.0, -2.0]]]]
        >>> reduce_channels(a, "max_abs").tolist()
        [[[[2.0, 3.0]]]]
    """
    check_option(how, "reduce_channels", CHANNEL_REDUCTIONS + (None,))
    if how is None:
        return a
    if how == "max_abs":
        return a.abs().amax(dim=1, keepdim=True)
    if a.shape[1] == 1:
        return a
    if how == "sum":
        return a.sum(dim=1, keepdim=True)
    return a.mean(dim=1, keepdim=True)


def reduce_mask_channels(mask: Tensor) -> Tensor:
    """Reduce a bool mask ``(B, 1|C, *S)`` to ``(B, 1, *S)``: a pixel is in the mask if any channel
    is."""
    if mask.shape[1] == 1:
        return mask
    return mask.any(dim=1, keepdim=True)


def normalise_by_max(a: Tensor, mode: Normalisation | None = "sample") -> Tensor:
    """Divide attributions by their largest absolute value.

    Args:
        a: Attributions ``(B, ...)``.
        mode: ``"sample"`` (default) divides each sample by its own maximum,
            so a sample's result never depends on its batch-mates;
            ``"batch"`` divides by the maximum over the whole batch, as
            Quantus' ``normalise_by_max`` does (for parity only); ``None``
            returns ``a`` unchanged.

    All-zero samples (or an all-zero batch in ``"batch"`` mode) stay zero.

    Example:
        >>> a = torch.tensor([[2.0, -4.0], [1.0, 0.5]])
        >>> normalise_by_max(a).tolist()
        [[0.5, -1.0], [1.0, 0.5]]
        >>> normalise_by_max(a, "batch").tolist()
        [[0.5, -1.0], [0.25, 0.125]]
    """
    check_option(mode, "normalise", NORMALISATIONS)
    if mode is None:
        return a
    if mode == "sample":
        scale = flatten_features(a).abs().amax(dim=1)
        scale = scale.reshape((-1,) + (1,) * (a.ndim - 1))
    else:
        scale = a.abs().amax()
    return a / torch.where(scale > 0, scale, torch.ones_like(scale))


def flatten_features(a: Tensor) -> Tensor:
    """Flatten every axis but the batch axis: ``(B, ...) -> (B, N)``."""
    return a.reshape(a.shape[0], -1)
