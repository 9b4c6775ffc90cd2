"""Bookkeeping for logical batches of ``B x R`` items (sample-major: item ``i`` belongs to sample
``i // R``)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["take_rows", "item_samples", "sample_pieces", "where_items"]


def take_rows(t: Tensor, index: Tensor) -> Tensor:
    """``t[index]`` along dim 0 through a 2-D view (``index_select`` on >2-D CPU tensors is very
    slow).

    Example:
        >>> take_rows(torch.arange(6.0).reshape(3, 1, 2), torch.tensor([2, 0, 2])).tolist()
        [[[4.0, 5.0]], [[0.0, 1.0]], [[4.0, 5.0]]]
    """
    if t.shape[0] == 1 and t.ndim > 0:
        return t.expand((index.shape[0],) + tuple(t.shape[1:]))
    flat = t.reshape(t.shape[0], -1)
    return flat.index_select(0, index).reshape((index.shape[0],) + tuple(t.shape[1:]))


def item_samples(start: int, stop: int, per_sample: int,
                 device: torch.device) -> tuple[Tensor, Tensor]:
    """``(sample, repeat)`` of the items ``start .. stop - 1`` when every sample has ``per_sample``
    items.

    Example:
        >>> [v.tolist() for v in item_samples(2, 7, 3, torch.device("cpu"))]
        [[0, 1, 1, 1, 2], [2, 0, 1, 2, 0]]
    """
    item = torch.arange(start, stop, device=device)
    sample = torch.div(item, per_sample, rounding_mode="floor")
    return sample, item - sample * per_sample


def sample_pieces(start: int, stop: int, per_sample: int) -> list[tuple[int, int, int, int]]:
    """Split items ``start .. stop - 1`` into at most three pieces
    ``(item_lo, item_hi, sample_lo, sample_hi)``.

    Within a piece every sample has the same number of items: a partial first
    sample, a block of whole samples, a partial last sample.

    Example:
        >>> sample_pieces(2, 13, 4)
        [(2, 4, 0, 1), (4, 12, 1, 3), (12, 13, 3, 4)]
    """
    pieces = []
    item = start
    while item < stop:
        sample, offset = divmod(item, per_sample)
        if offset or stop - item < per_sample:  # a partial sample
            end = min(stop, (sample + 1) * per_sample)
            pieces.append((item, end, sample, sample + 1))
        else:  # whole samples
            whole = (stop - item) // per_sample
            end = item + whole * per_sample
            pieces.append((item, end, sample, sample + whole))
        item = end
    return pieces


def where_items(mask: Tensor, fill: Tensor, x: Tensor, start: int, stop: int, per_sample: int, *,
                out: Tensor | None = None) -> Tensor:
    """``where(mask[i], fill[sample(i)], x[sample(i)])`` for the items ``start .. stop - 1``,
    without gathering ``x``.

    Args:
        mask: ``(n, 1|C, *S)`` bool, or 0/1 weights of ``x``'s dtype, for the ``n = stop - start``
            items.
        fill: broadcastable to ``x`` with a batch axis of 1 or ``B``.
        x: ``(B, C, *S)``; item ``i`` belongs to sample ``i // per_sample``.
        out: Optional contiguous ``(n, C, *S)`` tensor to write into (returned).

    Each of the (at most three) pieces of :func:`sample_pieces` is one broadcast
    ``torch.lerp(x, fill, mask)`` into the output (equal to the ``where`` for
    values whose difference ``x - fill`` is finite).

    Example:
        >>> x = torch.arange(4.0).reshape(2, 1, 2)
        >>> mask = torch.tensor([[[True, False]], [[False, True]], [[True, True]]])
        >>> where_items(mask, torch.zeros(1, 1, 1), x, 1, 4, 2).tolist()
        [[[0.0, 1.0]], [[2.0, 0.0]], [[0.0, 0.0]]]
    """
    if out is None:
        out = x.new_empty((stop - start,) + tuple(x.shape[1:]))
    for item_lo, item_hi, sample_lo, sample_hi in sample_pieces(start, stop, per_sample):
        k = sample_hi - sample_lo
        reps = (item_hi - item_lo) // k
        piece = slice(item_lo - start, item_hi - start)
        view = out[piece].view((k, reps) + tuple(x.shape[1:]))
        m = mask[piece].view((k, reps) + tuple(mask.shape[1:]))
        f = fill[sample_lo:sample_hi].unsqueeze(1) if fill.shape[0] > 1 else fill.unsqueeze(1)
        # lerp(x, fill, mask) is exact at weights 0 and 1 (x, resp. fill, bit for bit, while x -
        # fill is finite) and 3-4x faster on CPU than torch.where with a broadcast bool condition.
        torch.lerp(x[sample_lo:sample_hi].unsqueeze(1), f, m.to(x.dtype), out=view)
    return out
