"""Helpers shared by the attribution-only kernels (localization, complexity).

Everything here is batch-first and free of host synchronisation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from xaiscore._checks import (
    DTypeError,
    OptionError,
    check_attributions,
    check_mask,
)
from xaiscore._engine.reduction import flatten_features, reduce_channels, reduce_mask_channels
from xaiscore._engine.sorting import PACKABLE_DTYPES, argsort, sort_values, sorted_packed_keys

__all__ = [
    "prepare_map_and_mask",
    "nan_where",
    "resolve_count",
    "expected_top_k_hits",
    "average_ranks",
    "unit_rank_vectors",
    "unit_rank_vectors_of_levels",
    "doubled_rank_sum",
    "sorted_quantile",
]


def prepare_map_and_mask(
    a: Tensor,
    mask: Tensor,
    *,
    channel_reduction: str | None,
    validate: bool,
) -> tuple[Tensor, Tensor]:
    """Validate ``a`` and ``mask`` and bring both to flat per-sample features.

    With a channel reduction, ``a`` becomes one value per pixel and a pixel is in
    the mask if any of its mask channels is. Without one (``None``), every
    channel of ``a`` is a feature and a one-channel mask applies to all channels.

    Returns:
        ``(a_flat, mask_flat)`` of shapes ``(B, N)`` (float) and ``(B, N)`` (bool).
    """
    a = check_attributions(a, validate=validate)
    mask = check_mask(mask, a, validate=validate)
    if channel_reduction is None:
        a_map = a
        mask_map = mask.expand_as(a)
    else:
        a_map = reduce_channels(a, channel_reduction)
        mask_map = reduce_mask_channels(mask)
    return flatten_features(a_map), flatten_features(mask_map)


def nan_where(condition: Tensor, values: Tensor) -> Tensor:
    """``values`` with NaN where ``condition`` holds (no host sync)."""
    return torch.where(condition, torch.full_like(values, math.nan), values)


def resolve_count(k: int | float, n_features: int, name: str = "k") -> int:
    """Turn ``k`` given as a count (int) or as a fraction of the features (float) into a count.

    A float ``k`` in (0, 1] means ``ceil(k * n_features)`` features (at least one).
    """
    if isinstance(k, bool) or not isinstance(k, (int, float)):
        raise DTypeError(
            f"Expected `{name}` to be an int count or a float fraction, but got "
            f"{type(k).__name__}.")
    if isinstance(k, int):
        if not 1 <= k <= n_features:
            raise OptionError(
                f"Expected `{name}` as a count in [1, {n_features}] (the number of features), but "
                f"got {k}."
            )
        return k
    if not 0.0 < k <= 1.0:
        raise OptionError(f"Expected `{name}` as a fraction in (0, 1], but got {k}.")
    return max(1, math.ceil(k * n_features - 1e-9))


def expected_top_k_hits(a_flat: Tensor, mask_flat: Tensor, k: Tensor) -> Tensor:
    """Expected number of mask features among the ``k`` highest-valued features.

    Ties at the k-th value are broken uniformly at random, and the expectation
    over that choice is returned, so the result does not depend on the order
    of features in memory::

        hits = #(a > t and in mask) + (k - #(a > t)) * #(a == t and in mask) / #(a == t)

    where ``t`` is the k-th largest value.

    Args:
        a_flat: ``(B, N)`` values.
        mask_flat: ``(B, N)`` bool.
        k: ``(B,)`` long, each in ``[1, N]`` (entries of 0 give 0).

    Returns:
        ``(B,)`` float tensor in the dtype of ``a_flat``.
    """
    values = sort_values(a_flat, descending=True)
    index = (k.clamp(min=1) - 1).unsqueeze(1)
    threshold = values.gather(1, index)  # (B, 1)
    above = a_flat > threshold
    tied = a_flat == threshold
    n_above = above.sum(1)
    hits_above = (above & mask_flat).sum(1)
    n_tied = tied.sum(1)
    hits_tied = (tied & mask_flat).sum(1)
    dtype = a_flat.dtype
    from_ties = (k - n_above).to(dtype) * hits_tied.to(dtype) / n_tied.clamp(min=1).to(dtype)
    return torch.where(k > 0, hits_above.to(dtype) + from_ties, torch.zeros_like(from_ties))


def _sparse_tie_ranks(values: Tensor, dtype: torch.dtype,
                      offset: int) -> tuple[Tensor, Tensor] | None:
    """The tied positions of rows sorted ascending and twice their average 1-based rank minus
    ``offset``.

    Returns ``(flat, value)``: ``flat`` the flat indices ``row * n + j`` (into the ``(B, n)``
    layout) of the positions ``j`` equal to position ``j + 1``, and ``value`` ``dtype`` the
    doubled average rank of their tie group, which positions ``j`` and ``j + 1`` both take; every
    untied position ``j`` has ``2 j + 2 - offset``. ``None`` where this sparse form does not pay:
    off the CPU (it reads a count) or when more than one neighbour pair in eight is tied.
    """
    if values.device.type != "cpu":
        return None
    n = values.shape[1]
    equal = values[:, 1:] == values[:, :-1]
    if int(torch.count_nonzero(equal)) * 8 > equal.numel():
        return None
    # (row, j): positions j and j + 1 of the row are equal. In row-major order, the pairs of one
    # tie group are consecutive with consecutive j (the flat index of the pair in the (B, n)
    # layout steps by one); a row change always breaks the step, since j stops at n - 2.
    pairs = equal.nonzero()
    flat = pairs[:, 0] * n + pairs[:, 1]
    if flat.shape[0] == 0:
        return flat, torch.empty(0, dtype=dtype)
    new_group = torch.ones(flat.shape, dtype=torch.bool)
    torch.ne(flat[1:], flat[:-1] + 1, out=new_group[1:])
    group = torch.cumsum(new_group, 0) - 1
    firsts = new_group.nonzero().squeeze(1)
    lasts = torch.cat([firsts[1:] - 1, firsts.new_tensor([flat.shape[0] - 1])])
    # Twice the average rank of positions first .. last + 1 (1-based): first + last + 3 (as flat
    # indices of the same row, minus twice the row offset).
    row_offset = pairs[:, 0] * n
    value = (flat.index_select(0, firsts).index_select(0, group)
             + flat.index_select(0, lasts).index_select(0, group) + (3 - offset) - 2
             * row_offset).to(dtype)
    return flat, value


def _untied_doubled_ranks(b: int, n: int, dtype: torch.dtype, offset: int,
                          device: torch.device) -> Tensor:
    """``2 j + 2 - offset`` for every position ``j`` of ``b`` rows: an expanded (not materialised)
    view."""
    return torch.arange(2 - offset, 2 * n + 2 - offset, 2, dtype=dtype, device=device).expand(b, n)


def _doubled_ranks_of_sorted(values: Tensor, dtype: torch.dtype = torch.int32,
                             offset: int = 0) -> Tensor:
    """For rows sorted ascending: twice the average 1-based rank of each position (ties averaged),
    minus ``offset``.

    Within a tie group of sorted positions ``start .. end`` every member has the average rank
    ``(start + end + 2) / 2``. Returns ``dtype`` (int32 by default: rows are shorter than 2**31,
    which halves the memory traffic of the scans; a float dtype holds the integers exactly up
    to 2**53).

    On CPU, where reading a count costs no synchronisation, and when at most one neighbour pair
    in eight is tied, only the tied positions are visited: every position gets
    ``2 * position + 2`` and the tie groups are then rewritten from the list of equal neighbours
    (:func:`_sparse_tie_ranks`). Otherwise (and always on other devices, without host reads)
    every row is scanned twice: a running maximum of the group starts, a reversed running
    minimum of the group ends.
    """
    b, n = values.shape
    ties = _sparse_tie_ranks(values, dtype, offset)
    if ties is not None:
        flat, value = ties
        doubled = _untied_doubled_ranks(b, n, dtype, offset, values.device).contiguous()
        flat_doubled = doubled.view(-1)
        flat_doubled.index_copy_(0, flat, value)
        flat_doubled.index_copy_(0, flat + 1, value)
        return doubled
    equal = values[:, 1:] == values[:, :-1]
    position = torch.arange(n, device=values.device, dtype=torch.int32).expand_as(values)
    differs = equal.logical_not_()
    first = torch.ones(values.shape, dtype=torch.bool, device=values.device)
    first[:, 1:] = differs
    last = torch.ones_like(first)
    last[:, :-1] = differs
    start = torch.cummax(position * first, dim=1).values
    end = torch.cummin(torch.where(last, position, n - 1).flip(1), dim=1).values.flip(1)
    return (start + end + (2 - offset)).to(dtype)


def doubled_rank_sum(a_flat: Tensor, mask_flat: Tensor) -> Tensor:
    """Twice the sum of the average ranks (1-based, ties averaged) of the mask features, exact
    int64.

    Sorts once per row: for float32/float16 values with the mask bit packed into one int64 key
    (so no index gather is needed), otherwise by an argsort.

    Example:
        >>> doubled_rank_sum(torch.tensor([[3.0, 1.0, 3.0, 2.0]]), torch.tensor([[True, False, False, True]]))
        tensor([11])
    """  # noqa: E501
    if a_flat.dtype in PACKABLE_DTYPES:
        # Sorted by value, then mask bit: within a tie group the outside features come first.
        # For a mask feature at position i, ``le`` (outside features at positions <= i) counts
        # those with a value <= its own, ``lt`` (outside features before its group) those below
        # it; the Mann-Whitney ``2 U = sum (lt + le)`` and ``2 R = 2 U + P (P + 1)``.
        # In-place steps: fresh 25 MB buffers cost more in page faults than the arithmetic on them.
        keys = sorted_packed_keys(a_flat, mask_flat, 1)
        outside = keys.to(torch.int32)  # the low word holds the mask bit
        outside &= 1
        in_mask = outside.bool()
        outside ^= 1
        keys >>= 1
        first = torch.ones(keys.shape, dtype=torch.bool, device=keys.device)
        torch.ne(keys[:, 1:], keys[:, :-1], out=first[:, 1:])
        del keys
        le = torch.cumsum(outside, 1, dtype=torch.int32)
        torch.sub(le, outside, out=outside)
        outside *= first
        le += torch.cummax(outside, dim=1).values
        le *= in_mask
        positives = torch.count_nonzero(in_mask, dim=1)
        # Row sums are at most 2 N^2: exact in float64 up to N ~ 6e7, and 3x faster than an int64
        # sum.
        exact_in_double = 2 * le.shape[1] ** 2 < 2**53
        total = (le.sum(1, dtype=torch.float64).to(torch.int64) if exact_in_double
                 else le.sum(1, dtype=torch.int64))
        return total + positives * (positives + 1)
    order = argsort(a_flat)
    in_mask = mask_flat.gather(1, order)
    return (_doubled_ranks_of_sorted(a_flat.gather(1, order)) * in_mask).sum(1, dtype=torch.int64)


def average_ranks(a_flat: Tensor, *, centered: bool = False,
                  dtype: torch.dtype = torch.int64) -> Tensor:
    """1-based ranks within each row, ties sharing their average rank, times two (exact integers).

    ``(B, N) -> (B, N)``; one sort per row (see :mod:`xaiscore._engine.sorting`). With ``centered``
    the row mean ``N + 1`` is subtracted (the doubled ranks of a row sum to ``N (N + 1)`` with or
    without ties). ``dtype``: int64 by default; float64 holds the values exactly for rows of up to
    2**52 features.

    Example:
        >>> average_ranks(torch.tensor([[3.0, 1.0, 3.0, 2.0]])).tolist()
        [[7, 2, 7, 4]]
        >>> average_ranks(torch.tensor([[3.0, 1.0, 3.0, 2.0]]), centered=True).tolist()
        [[2, -3, 2, -1]]
    """
    n = a_flat.shape[1]
    offset = n + 1 if centered else 0
    if a_flat.dtype in PACKABLE_DTYPES and n < 2**31:
        # One int64 sort of (value key, index) pairs: 1.4x faster than an argsort plus a gather on
        # CPU.
        keys = sorted_packed_keys(a_flat, torch.arange(n, device=a_flat.device), 32)
        order = keys & 0xFFFFFFFF
        keys >>= 32
        ties = _sparse_tie_ranks(keys, dtype, offset)
        if ties is not None:
            # Few ties (CPU): scatter the untied ranks from an expanded view, then rewrite the
            # tied features (found through the sort order) in place.
            b = a_flat.shape[0]
            untied = _untied_doubled_ranks(b, n, dtype, offset, order.device)
            out = torch.empty((b, n), dtype=dtype, device=order.device).scatter_(1, order, untied)
            flat, value = ties
            if flat.shape[0]:
                row_start = flat - flat % n
                flat_order, flat_out = order.view(-1), out.view(-1)
                flat_out.index_copy_(0, row_start + flat_order.index_select(0, flat), value)
                flat_out.index_copy_(0, row_start + flat_order.index_select(0, flat + 1), value)
            return out
        doubled = _doubled_ranks_of_sorted(keys, dtype, offset)
    else:
        order = argsort(a_flat)
        doubled = _doubled_ranks_of_sorted(a_flat.gather(1, order), dtype, offset)
    return torch.empty_like(doubled).scatter_(1, order, doubled)


def unit_rank_vectors(a_flat: Tensor) -> Tensor:
    """Centred average ranks of each row scaled to unit length, float64 ``(B, N)``: Spearman's
    correlation of two rows is the dot product of theirs.

    A row that is constant (no rank variance) or holds a NaN becomes all NaN, so its
    correlation with anything is NaN.

    Example:
        >>> u = unit_rank_vectors(torch.tensor([[1.0, 5.0, 2.0, 2.0], [3.0, 3.0, 3.0, 3.0]]))
        >>> round(float(torch.linalg.vecdot(u[0], unit_rank_vectors(torch.tensor([[1.0, 125.0, 8.0, 8.0]]))[0])), 12)
        1.0
        >>> bool(u[1].isnan().all())
        True
    """  # noqa: E501
    centered = average_ranks(a_flat, centered=True, dtype=torch.float64)
    norm = torch.linalg.vector_norm(centered, dim=1, keepdim=True)
    undefined = (norm == 0) | torch.isnan(a_flat).any(dim=1, keepdim=True)
    return centered.div_(torch.where(undefined, torch.full_like(norm, math.nan), norm))


def unit_rank_vectors_of_levels(levels: Tensor, n_levels: int) -> Tensor:
    """:func:`unit_rank_vectors` of integer rows with values in ``[0, n_levels)``, by counting.

    No sort: a histogram of each row's levels gives every level's average rank (twice the
    count below it, plus its own count, plus one, halved) in a ``(B, n_levels)`` table, read
    back at each feature: ``O(N + n_levels)`` per row. The ranks are exact and the result
    equals :func:`unit_rank_vectors`' (the same centring and norm). Constant rows are all NaN.

    Example:
        >>> levels = torch.tensor([[3, 0, 3, 1]])
        >>> torch.equal(unit_rank_vectors_of_levels(levels, 4), unit_rank_vectors(levels.float()))
        True
    """
    batch, n = levels.shape
    index = levels.to(torch.int64)  # scatter and gather take int64 indices
    # Centred doubled ranks are within [-n, n]: int32 tables (half the memory traffic) while they
    # fit.
    dtype = torch.int32 if 2 * n < 2**31 else torch.int64
    counts = torch.zeros((batch, n_levels), dtype=dtype, device=levels.device)
    counts.scatter_add_(1, index,
                        torch.ones((), dtype=dtype, device=levels.device).expand(batch, n))
    # Centred doubled average rank of a level: 2 * below + count + 1 - (n + 1), below = inclusive -
    # count.
    table = counts.cumsum(1, dtype=dtype)
    table.mul_(2).sub_(counts).sub_(n)
    centered = table.gather(1, index).to(torch.float64)
    norm = torch.linalg.vector_norm(centered, dim=1, keepdim=True)
    return centered.div_(torch.where(norm > 0, norm, torch.full_like(norm, math.nan)))


def sorted_quantile(a_flat: Tensor, q: float) -> Tensor:
    """Per-row ``q``-quantile with linear interpolation (numpy's default), ``(B, N) -> (B, 1)``.

    Works for any row length (``torch.quantile`` limits the input size).
    """
    values = sort_values(a_flat)
    position = q * (a_flat.shape[1] - 1)
    low = math.floor(position)
    high = min(low + 1, a_flat.shape[1] - 1)
    weight = position - low
    return values[:, low : low + 1] + weight * (values[:, high : high + 1]
                                                - values[:, low : low + 1])
