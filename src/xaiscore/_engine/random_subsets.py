"""Random draws for the stochastic faithfulness kernels (ROAD noise, infidelity, random subsets).

Every draw is a pure function of a per-item key (drawn up front from the
caller's ``torch.Generator`` by :func:`xaiscore._engine.random.random_keys`) and of
the position within the item, built on the counter-based
:func:`xaiscore._engine.random.counter_uniform`. A chunk of items therefore sees the
same numbers whatever ``max_batch_size`` is, and nothing of the size of the
whole logical batch is ever held in memory. Tests regenerate the exact draws
of a kernel by calling these functions with the same keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from xaiscore._engine.random import counter_bits, counter_uniform
from xaiscore._engine.sorting import sort_values_

__all__ = [
    "random_subsets",
    "random_subset_indices",
    "drawn_as_indices",
    "random_patches",
    "patch_masks",
    "random_patch_masks",
    "patch_weights",
    "BoxSumTables",
    "box_sum_tables",
    "table_box_sums",
]


#: Below this many features, or above this share of them, subsets come from one uniform per feature.
_CANDIDATE_MIN_FEATURES = 512
_CANDIDATE_MAX_SHARE = 8
#: Rows hashed at once on the one-uniform-per-feature path.
_ROWS_PER_BLOCK = 8


def random_subsets(keys: Tensor, n_features: int, subset_size: int) -> Tensor:
    """A uniformly random ``subset_size``-subset of ``[0, n_features)`` per key: ``(n, n_features)``
    bool.

    Two exact samplers, picked by size (a draw without replacement either way):

    * Small subsets (at most 1/8 of at least 512 features, or the complement
      of one): ``2 k + 64`` uniform indices are drawn with replacement from the
      key's stream and the first ``k`` distinct ones in draw order are kept
      (sequential rejection of repeats, which is uniform over ``k``-subsets).
      Fewer than ``k`` distinct indices among the candidates would leave the
      subset short; at these sizes that has probability below ``1e-20``.
    * Otherwise one uniform 32-bit value per feature (two per hash of
      :func:`xaiscore._engine.random.counter_bits`), and the ``k`` smallest
      (``topk``; equal values, probability about ``n_features^2 / 2^33`` per
      draw, go to an arbitrary one of them).

    Subsets larger than half the features are drawn as complements.

    Example:
        >>> from xaiscore._engine.random import random_keys
        >>> keys = random_keys(2, torch.Generator().manual_seed(0))
        >>> [random_subsets(keys, n, k).sum(1).tolist() for n, k in ((10, 3), (1000, 20), (1000, 990))]
        [[3, 3], [20, 20], [990, 990]]
    """  # noqa: E501
    n = keys.shape[0]
    device = keys.device
    if subset_size <= 0 or subset_size >= n_features:
        return torch.full((n, n_features), subset_size >= n_features, dtype=torch.bool,
                          device=device)
    complement = subset_size > n_features - subset_size
    k = n_features - subset_size if complement else subset_size
    if drawn_as_indices(n_features, k):
        index = random_subset_indices(keys, n_features, k)
        chosen = torch.zeros((n, n_features + 1), dtype=torch.bool, device=device)
        chosen.scatter_(1, index, True)  # padding (index n_features) goes to a spare column
        chosen = chosen[:, :n_features]
    else:
        chosen = torch.zeros((n, n_features), dtype=torch.bool, device=device)
        half = torch.arange((n_features + 1) // 2, device=device).unsqueeze(0)
        # blocks of rows keep the hash temporaries in cache
        for start in range(0, n, _ROWS_PER_BLOCK):
            bits = counter_bits(keys[start : start + _ROWS_PER_BLOCK], half)
            values = torch.stack([bits & 0xFFFFFFFF, (bits >> 32) & 0xFFFFFFFF], dim=2).flatten(1)
            smallest = _smallest(values[:, :n_features], k)
            chosen[start : start + _ROWS_PER_BLOCK].scatter_(1, smallest, True)
    return ~chosen if complement else chosen


def drawn_as_indices(n_features: int, subset_size: int) -> bool:
    """Whether :func:`random_subsets` draws ``subset_size``-subsets by
    :func:`random_subset_indices`."""
    return (n_features >= _CANDIDATE_MIN_FEATURES and 0 < subset_size
            and subset_size * _CANDIDATE_MAX_SHARE <= n_features)


def random_subset_indices(keys: Tensor, n_features: int, subset_size: int) -> Tensor:
    """The small subsets of :func:`random_subsets` as feature indices ``(n, 2 k + 64)`` long.

    Only where :func:`drawn_as_indices` holds (``k = subset_size``). Row ``i`` holds the ``k``
    features of key ``i``'s subset (distinct, in no particular order); every other entry is
    ``n_features`` (padding, so that the columns never run short).

    Example:
        >>> from xaiscore._engine.random import random_keys
        >>> keys = random_keys(2, torch.Generator().manual_seed(0))
        >>> index = random_subset_indices(keys, 1000, 20)
        >>> torch.equal(random_subsets(keys, 1000, 20),
        ...             torch.zeros(2, 1001, dtype=torch.bool).scatter_(1, index, True)[:, :1000])
        True
    """
    device = keys.device
    draws = counter_uniform(keys, 2 * subset_size + 64, dtype=torch.float64)
    index = (draws * n_features).long().clamp_(max=n_features - 1)
    # A stable sort of the indices as one sort of unique (index, draw position) keys.
    packed = sort_values_((index << 32) | torch.arange(index.shape[1], device=device))
    ordered, order = packed >> 32, packed & 0xFFFFFFFF
    first = torch.ones_like(ordered, dtype=torch.bool)
    # the earliest draw of each index (stable sort)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    new = torch.empty_like(first).scatter_(1, order, first)  # back in draw order
    take = new & (torch.cumsum(new, dim=1) <= subset_size)
    return torch.where(take, index, torch.full_like(index, n_features))


def _smallest(values: Tensor, k: int) -> Tensor:
    """Column indices of the ``k`` smallest values of each row (in no particular order), int64.

    numpy's introselect on CPU (1.3-1.7x faster than ``torch.topk`` there), ``torch.topk``
    elsewhere; among equal values at the boundary either may pick any.
    """
    if values.device.type == "cpu":
        return torch.from_numpy(np.ascontiguousarray(
            np.argpartition(values.numpy(), k - 1, axis=1)[:, :k]))
    return torch.topk(values, k, dim=1, largest=False, sorted=False).indices


def random_patches(keys: Tensor, spatial: tuple[int, ...],
                   patch_sizes: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """One random square (cube) patch per key, fully inside the grid:
    ``(side (n,), corner (n, d))``.

    The side is drawn uniformly from ``patch_sizes`` (each at most the
    smallest spatial size), then the corner uniformly among the positions that
    keep the patch inside, independently per axis (column 0 of the key's
    uniform stream picks the side, column ``1 + axis`` the corner).

    Example:
        >>> from xaiscore._engine.random import random_keys
        >>> side, corner = random_patches(random_keys(3, torch.Generator().manual_seed(0)), (6, 6), (2, 3))
        >>> side.shape, corner.shape, bool(((corner >= 0) & (corner + side.unsqueeze(1) <= 6)).all())
        (torch.Size([3]), torch.Size([3, 2]), True)
    """  # noqa: E501
    device = keys.device
    uniforms = counter_uniform(keys, 1 + len(spatial), dtype=torch.float64)
    sizes = torch.tensor(patch_sizes, dtype=torch.long, device=device)
    choice = (uniforms[:, 0] * len(patch_sizes)).long().clamp(max=len(patch_sizes) - 1)
    side = sizes.index_select(0, choice)  # (n,)
    corners = []
    for axis, n in enumerate(spatial):
        positions = n - side + 1  # valid corners 0 .. n - side
        corner = (uniforms[:, 1 + axis] * positions.to(torch.float64)).long()
        corners.append(torch.minimum(corner, positions - 1))
    return side, torch.stack(corners, dim=1)


def patch_masks(side: Tensor, corner: Tensor, spatial: tuple[int, ...]) -> Tensor:
    """The patches of :func:`random_patches` as masks ``(n, 1, *spatial)`` bool."""
    n = side.shape[0]
    mask = torch.ones((n,) + tuple(spatial), dtype=torch.bool, device=side.device)
    for axis, size in enumerate(spatial):
        coordinate = torch.arange(size, device=side.device).unsqueeze(0)
        start = corner[:, axis].unsqueeze(1)
        inside = (coordinate >= start) & (coordinate < start + side.unsqueeze(1))  # (n, size)
        view = [n] + [1] * len(spatial)
        view[1 + axis] = size
        mask &= inside.reshape(view)
    return mask.unsqueeze(1)


def patch_weights(side: Tensor, corner: Tensor, spatial: tuple[int, ...], dtype: torch.dtype, *,
                  out: Tensor | None = None) -> Tensor:
    """The patches of :func:`random_patches` as 0/1 weights ``(n, 1, *spatial)`` of ``dtype``.

    The product of one indicator per axis: a single broadcast pass for 2-D inputs (no bool mask to
    convert), ready for ``torch.lerp``.

    Example:
        >>> patch_weights(torch.tensor([2]), torch.tensor([[1, 0]]), (3, 3), torch.float32)[0, 0].tolist()
        [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]
    """  # noqa: E501
    n = side.shape[0]
    factors = []
    for axis, size in enumerate(spatial):
        coordinate = torch.arange(size, device=side.device).unsqueeze(0)
        start = corner[:, axis].unsqueeze(1)
        # (n, size)
        inside = ((coordinate >= start) & (coordinate < start + side.unsqueeze(1))).to(dtype)
        view = [n] + [1] * len(spatial)
        view[1 + axis] = size
        factors.append(inside.reshape(view))
    if out is None:
        out = torch.empty((n, 1) + tuple(spatial), dtype=dtype, device=side.device)
    weights = out.view((n,) + tuple(spatial))
    if len(factors) == 1:
        weights.copy_(factors[0])
    else:
        leading = factors[0]
        # the product over all but the last axis is smaller than the output
        for factor in factors[1:-1]:
            leading = leading * factor
        torch.mul(leading, factors[-1], out=weights)
    return out


class BoxSumTables(NamedTuple):
    """Every box sum of :func:`box_sum_tables`, one table per side, flattened into one tensor."""

    flat: Tensor
    sides: Tensor  # (k,) ascending
    offsets: Tensor  # (k,) where each side's table starts in ``flat``
    strides: Tensor  # (k, 1 + d) strides of (sample, corner...) in each table


def box_sum_tables(values: Tensor, sides: Sequence[int]) -> BoxSumTables:
    """Sums of ``values`` ``(B, *S)`` over every box of every side in ``sides``, for
    :func:`table_box_sums`.

    Each table is a separable sliding-window sum (windows along one axis, then the next), so every
    entry adds exactly the elements of its box: a box of exact zeros sums to exactly 0 and no entry
    carries the rounding of the rest of the map (integral images do: their differences cancel
    catastrophically), at the cost of one pass per side and axis.
    """
    spatial = tuple(values.shape[1:])
    unique = sorted(set(int(side) for side in sides))
    tables, offsets, strides = [], [], []
    offset = 0
    for side in unique:
        table = values
        for axis in range(1, values.ndim):
            table = table.unfold(axis, side, 1).sum(-1)
        grid = [values.shape[0]] + [n - side + 1 for n in spatial]
        stride, row = 1, []
        for n in reversed(grid):
            row.append(stride)
            stride *= n
        tables.append(table.reshape(-1))
        offsets.append(offset)
        strides.append(list(reversed(row)))
        offset += table.numel()
    device = values.device
    return BoxSumTables(torch.cat(tables) if len(tables) > 1 else tables[0],
                        torch.tensor(unique, device=device), torch.tensor(offsets, device=device),
                        torch.tensor(strides, device=device))


def table_box_sums(tables: BoxSumTables, sample: Tensor, side: Tensor, corner: Tensor) -> Tensor:
    """The sums over boxes ``[corner, corner + side)`` of the maps ``sample`` ``(n,)``, from the
    tables.

    Example:
        >>> values = torch.arange(12.0).reshape(1, 3, 4)
        >>> tables = box_sum_tables(values, (2, 3))
        >>> table_box_sums(tables, torch.tensor([0, 0]), torch.tensor([2, 3]), torch.tensor([[1, 1], [0, 0]])).tolist()
        [30.0, 45.0]
    """  # noqa: E501
    which = torch.searchsorted(tables.sides, side)
    strides = tables.strides.index_select(0, which)  # (n, 1 + d)
    index = (tables.offsets.index_select(0, which) + sample * strides[:, 0]
             + (corner * strides[:, 1:]).sum(1))
    return tables.flat.take(index)


def random_patch_masks(keys: Tensor, spatial: tuple[int, ...],
                       patch_sizes: tuple[int, ...]) -> Tensor:
    """The masks ``(n, 1, *spatial)`` of :func:`random_patches`.

    Example:
        >>> from xaiscore._engine.random import random_keys
        >>> masks = random_patch_masks(random_keys(4, torch.Generator().manual_seed(0)), (6, 6), (2, 3))
        >>> masks.shape, sorted(set(masks.sum((1, 2, 3)).tolist())) in ([4], [9], [4, 9])
        (torch.Size([4, 1, 6, 6]), True)
    """  # noqa: E501
    return patch_masks(*random_patches(keys, spatial, patch_sizes), spatial)
