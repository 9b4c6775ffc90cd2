"""The window search: the remaining edges of the few points still open, found around each point."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from xaiscore.functional._mst import tuning
from xaiscore.functional._mst.forest import _Forest
from xaiscore.functional._mst.primitives import _flat_nonzero, _segments, _sorted


def _window_edges(kept: Tensor, points: Tensor, run_of_pixel: Tensor, forest: _Forest, k: int, d_done: int) -> None:
    """The remaining edges (squared length ``> d_done``) of the open points, by window search.

    For an open point ``p`` (global pixel index in ``points``) the smallest square of half-width
    ``s`` around ``p`` holding ``k`` other points (bisection on a summed-area table) bounds
    ``(s - 1)^2 < d_k(p)^2 <= 2 s^2``, so every point within ``d_k(p)`` lies in the square of
    half-width ``r = floor(sqrt(2) s)``. The points are ordered band by band (bands of ``t``
    rows), then by column, then by row, so that the points of a band within a column range are
    one contiguous range: ``p``'s candidates are a few such ranges. Sorting the candidates by
    (point, squared distance) gives ``d_k(p)^2`` exactly; the candidates within it, in other
    components, are ``p``'s remaining edges, each kept once.
    """
    if points.numel() == 0:
        return
    b, h, w = kept.shape
    hw = h * w
    device = kept.device
    index_dtype = torch.int32 if kept.numel() < 2**31 else torch.int64
    table = torch.zeros(b, h + 1, w + 1, dtype=index_dtype, device=device)
    # Summed-area table: along rows, then down the columns (a cumulative sum over the middle axis
    # adds whole contiguous rows, much faster than a transposed copy).
    sums = kept.view(torch.uint8).cumsum(2, dtype=index_dtype)
    torch.cumsum(sums, 1, out=sums)
    table[:, 1:, 1:] = sums
    table = table.reshape(-1)
    sample = torch.div(points, hw, rounding_mode="floor")
    y = torch.div(points % hw, w, rounding_mode="floor")
    x = points % w
    side = max(h, w)
    corner = sample * ((h + 1) * (w + 1))

    def square_count(half: Tensor) -> Tensor:
        y0, y1 = (y - half).clamp(min=0) * (w + 1), (y + half + 1).clamp(max=h) * (w + 1)
        x0, x1 = (x - half).clamp(min=0), (x + half + 1).clamp(max=w)
        at = lambda rows, cols: table.index_select(0, corner + rows + cols)  # noqa: E731
        return at(y1, x1) - at(y0, x1) - at(y1, x0) + at(y0, x0)

    # Smallest half-width whose square holds k other points (bisection with a fixed step count).
    lo = torch.zeros_like(points)
    hi = torch.full_like(points, side)
    for _ in range(math.ceil(math.log2(side + 1))):
        mid = torch.div(lo + hi, 2, rounding_mode="floor")
        enough = square_count(mid) >= k + 1
        hi = torch.where(enough, mid, hi)
        lo = torch.where(enough, lo, mid + 1)
    everyone = square_count(torch.full_like(points, side)) < k + 1  # at most k others: all are neighbours
    reach = torch.where(everyone, torch.full_like(hi, side), torch.sqrt((2 * hi * hi).double()).floor().long())

    # Band-major order of all points: (sample, band, column, row); with bands of one row it is the
    # row-major order of the pixels.
    t = max(1, min(16, round(float(reach.double().median()) / 4)))
    bands = -(-h // t)
    flat_kept = kept.reshape(-1)
    pixel_at = _flat_nonzero(flat_kept)  # row-major for now
    if t == 1:
        before = torch.zeros(flat_kept.numel() + 1, dtype=torch.int64, device=device)
        torch.cumsum(flat_kept, 0, out=before[1:])
        position_of_open = before.index_select(0, points)
    else:
        stacked = F.pad(kept.view(torch.uint8), (0, 0, 0, bands * t - h)).view(b, bands, t, w)
        column_counts = stacked.sum(2, dtype=torch.int64)  # (B, bands, W)
        before = torch.zeros(column_counts.numel() + 1, dtype=torch.int64, device=device)
        torch.cumsum(column_counts.reshape(-1), 0, out=before[1:])
        above = torch.cumsum(stacked, 2, dtype=index_dtype) - stacked  # kept above, same band and column
        position = (before[:-1].view(b, bands, 1, w) + above).view(b, bands * t, w)[:, :h].reshape(-1)
        pixel_at = torch.empty_like(pixel_at).scatter_(0, position.index_select(0, pixel_at), pixel_at)
        position_of_open = position.index_select(0, points)
    # Coordinates packed as (row << shift) | column, and squared distances, in int32 where they fit.
    shift = max(1, (w - 1).bit_length())
    small = (h << shift) < 2**31 and (h - 1) ** 2 + (w - 1) ** 2 < 2**31
    coord_dtype = torch.int32 if small else torch.int64
    mask = (1 << shift) - 1
    # Per-point lookups: precomputed when the candidates outnumber the points, else per candidate.
    candidates = square_count(reach)  # a lower bound of the candidates (the bands may hold more rows)
    precompute = int(candidates.sum()) > pixel_at.numel()

    def packed_of(pixel: Tensor) -> Tensor:
        pixel = pixel % hw
        return ((torch.div(pixel, w, rounding_mode="floor") << shift) | pixel % w).to(coord_dtype)

    forest.compress()

    def label_of(position: Tensor) -> Tensor:
        return forest.parent.index_select(0, run_of_pixel.index_select(0, pixel_at.index_select(0, position)))

    packed_at = packed_of(pixel_at) if precompute else None
    label_at = label_of(torch.arange(pixel_at.numel(), device=device)) if precompute else None

    def packed(candidate: Tensor) -> Tensor:
        return packed_at.index_select(0, candidate) if packed_at is not None else packed_of(pixel_at.index_select(0, candidate))

    def label(position: Tensor) -> Tensor:
        return label_at.index_select(0, position) if label_at is not None else label_of(position)

    # Every neighbour of p lies within squared distance bound = 2 s^2 (all rows and columns when p
    # has at most k others); per band, the columns within the disc of that radius around p.
    bound = torch.where(everyone, torch.full_like(hi, 2 * side * side), 2 * hi * hi)
    band_first = torch.div((y - reach).clamp(min=0), t, rounding_mode="floor")
    band_count = torch.div((y + reach).clamp(max=h - 1), t, rounding_mode="floor") - band_first + 1

    # Chunks of points with a bounded number of ranges and candidates in all, and few enough points
    # for (point, squared distance) sort keys in int32 where the distances allow it.
    d2_bits = max(1, int(bound.max()).bit_length())
    key_dtype = torch.int32 if d2_bits <= 20 else torch.int64
    max_points = 1 << ((31 if key_dtype == torch.int32 else 63) - d2_bits)
    window = torch.cumsum(band_count + 2 * candidates, 0)
    total = int(window[-1])
    marks = torch.arange(1, max(1, math.ceil(total / tuning.WINDOW_CHUNK)), device=device) * tuning.WINDOW_CHUNK
    cuts = set(torch.searchsorted(window, marks).tolist()) | set(range(max_points, points.numel(), max_points))
    cuts = sorted(cuts - {0, points.numel()})
    dk2_of = torch.full((pixel_at.numel(),), -1, dtype=key_dtype, device=device)  # by position
    found: list[tuple[Tensor, Tensor, Tensor]] = []
    packed_open = ((y << shift) | x).to(coord_dtype)  # (row, column) in one integer: one gather per candidate
    for first, last in zip([0, *cuts], [*cuts, points.numel()]):
        n = last - first
        owner, nth_band = _segments(band_count[first:last])  # owner: chunk-local point of each range
        band = band_first[first:last].index_select(0, owner) + nth_band
        row_of, column_of = y[first:last].index_select(0, owner), x[first:last].index_select(0, owner)
        # The columns of the band within the disc: through its row nearest to p.
        nearest = torch.minimum(torch.maximum(row_of, band * t), band * t + (t - 1)) - row_of
        room = bound[first:last].index_select(0, owner) - nearest * nearest
        half = room.double().sqrt().long()
        half = half - (half * half > room).long() + ((half + 1) * (half + 1) <= room).long()  # exact isqrt
        line = (sample[first:last].index_select(0, owner) * bands + band) * w
        range_start = before.index_select(0, line + (column_of - half).clamp(min=0))
        range_size = before.index_select(0, line + (column_of + half).clamp(max=w - 1) + 1) - range_start
        segment = torch.repeat_interleave(torch.arange(owner.numel(), device=device), range_size)
        skip = range_start - (torch.cumsum(range_size, 0) - range_size)  # candidate = index + skip[range]
        candidate = torch.arange(segment.numel(), device=device) + skip.index_select(0, segment)
        who = owner.index_select(0, segment)  # the chunk-local open point each candidate belongs to
        q = packed(candidate)
        p = packed_open[first:last].index_select(0, who)
        dy = (q >> shift) - (p >> shift)
        dx = (q & mask) - (p & mask)
        d2 = (dy * dy + dx * dx).to(key_dtype)
        # d_k(p)^2 is the (k+1)-th smallest squared distance among p's candidates (p itself, at 0,
        # is the first): sort (point, d2) keys once; each point's candidates stay contiguous.
        per_point = torch.zeros(n, dtype=torch.int64, device=device).index_add_(0, who, torch.ones_like(who))
        ordered = _sorted((who.to(key_dtype) << d2_bits) | d2)
        kth = (torch.cumsum(per_point, 0) - per_point + k).clamp(max=max(ordered.numel() - 1, 0))
        dk2 = ordered.index_select(0, kth) & ((1 << d2_bits) - 1)
        dk2 = torch.where(everyone[first:last], torch.full_like(dk2, torch.iinfo(key_dtype).max), dk2)
        p_position = position_of_open[first:last]
        dk2_of.scatter_(0, p_position, dk2)
        within = ((d2 > d_done) & (d2 <= dk2.index_select(0, who))).nonzero().squeeze(1)
        p_at = p_position.index_select(0, who.index_select(0, within))
        q_at = candidate.index_select(0, within)
        other = (label(p_at) != label(q_at)).nonzero().squeeze(1)
        found.append((p_at.index_select(0, other), q_at.index_select(0, other),
                      d2.index_select(0, within).index_select(0, other)))
    p_position, q_position, d2 = (torch.cat(parts) for parts in zip(*found))
    # Each edge once: q also lists it when q is open with d2 <= d_k(q)^2; then only the smaller keeps it.
    listed_by_q = d2 <= dk2_of.index_select(0, q_position)
    once = ((p_position < q_position) | ~listed_by_q).nonzero().squeeze(1)
    run_at = lambda position: run_of_pixel.index_select(0, pixel_at.index_select(0, position))  # noqa: E731
    forest.add_edges(run_at(p_position.index_select(0, once)), run_at(q_position.index_select(0, once)),
                     d2.index_select(0, once).long())
