"""Tensor primitives of the MST machinery, faster on CPU than their plain torch forms."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _kth_smallest(rows: Tensor, j: int) -> Tensor:
    """The ``j``-th smallest value (0-based) of each row of non-negative values, ``(B, N) -> (B,)``.

    On CPU this partitions through numpy on a zero-copy view (several times faster than
    ``torch.kthvalue``; no device is involved, so nothing is synchronised).
    """
    if rows.device.type == "cpu":
        # Rows whose j-th smallest is 0 (mostly-zero maps, where selection is slow) need no
        # selection.
        out = torch.zeros(rows.shape[0], dtype=rows.dtype)
        select = (_count(rows == 0, (1,)) <= j).nonzero().squeeze(1)
        if select.numel():
            chosen = (rows if select.numel() == rows.shape[0]
                      else rows.index_select(0, select)).numpy()
            out[select] = torch.from_numpy(np.partition(chosen, j, axis=1)[:, j].copy())
        return out
    return torch.kthvalue(rows, j + 1, dim=1).values


def _count(mask: Tensor, dims: tuple[int, ...]) -> Tensor:
    """``mask.sum(dims)`` for a bool tensor (also a strided view) without casting it to int64 first
    (a sum of the bytes, several times faster than ``torch.count_nonzero`` over some dimensions)."""
    return mask.view(torch.uint8).sum(dims, dtype=torch.int64)


def _flat_nonzero(mask: Tensor) -> Tensor:
    """Flat (row-major) indices of the true elements of a bool tensor, as ``int64``.

    On CPU, ``torch.nonzero`` reads one byte at a time; these masks are mostly false, so the words
    of eight bytes that hold any true element are found first and only those are expanded (about 3x
    faster at a few per cent density, the same result; dense masks take the plain path).
    """
    flat = mask.reshape(-1).contiguous()  # reshape may give a strided view (a sliced mask)
    n = flat.numel()
    whole = n - n % 8
    if flat.device.type != "cpu" or whole == 0 or flat.storage_offset() % 8 != 0:
        return flat.nonzero().squeeze(1)
    bytes_ = flat[:whole].view(-1, 8)
    words = bytes_.view(torch.int64).squeeze(1).nonzero().squeeze(1)
    if words.numel() * 4 > bytes_.shape[0]:  # dense: expanding most words costs more than it saves
        return flat.nonzero().squeeze(1)
    row, column = bytes_.index_select(0, words).nonzero(as_tuple=True)
    index = words.index_select(0, row) * 8 + column
    if whole < n:
        index = torch.cat([index, flat[whole:].nonzero().squeeze(1) + whole])
    return index


def _sorted(values: Tensor) -> Tensor:
    """``values`` (1-D) sorted ascending; through numpy on CPU (several times faster than
    ``torch.sort``)."""
    if values.device.type == "cpu":
        return torch.from_numpy(np.sort(values.numpy()))
    return torch.sort(values).values


def _segments(lengths: Tensor) -> tuple[Tensor, Tensor]:
    """For consecutive segments of the given lengths: the segment of each element and its position
    in it."""
    segment = torch.repeat_interleave(torch.arange(lengths.numel(), device=lengths.device), lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    return (segment,
            torch.arange(segment.numel(), device=lengths.device) - starts.index_select(0, segment))
