"""Bookkeeping for logical batches of ``B x R`` items (sample-major: item ``i`` belongs to sample ``i // R``)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["take_rows", "item_samples"]


def take_rows(t: Tensor, index: Tensor) -> Tensor:
    """``t[index]`` along dim 0 through a 2-D view (``index_select`` on >2-D CPU tensors is very slow).

    Example:
        >>> take_rows(torch.arange(6.0).reshape(3, 1, 2), torch.tensor([2, 0, 2])).tolist()
        [[[4.0, 5.0]], [[0.0, 1.0]], [[4.0, 5.0]]]
    """
    if t.shape[0] == 1 and t.ndim > 0:
        return t.expand((index.shape[0],) + tuple(t.shape[1:]))
    flat = t.reshape(t.shape[0], -1)
    return flat.index_select(0, index).reshape((index.shape[0],) + tuple(t.shape[1:]))


def item_samples(start: int, stop: int, per_sample: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(sample, repeat)`` of the items ``start .. stop - 1`` when every sample has ``per_sample`` items.

    Example:
        >>> [v.tolist() for v in item_samples(2, 7, 3, torch.device("cpu"))]
        [[0, 1, 1, 1, 2], [2, 0, 1, 2, 0]]
    """
    item = torch.arange(start, stop, device=device)
    sample = torch.div(item, per_sample, rounding_mode="floor")
    return sample, item - sample * per_sample
