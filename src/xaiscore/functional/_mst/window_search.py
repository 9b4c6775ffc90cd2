"""The window search: the remaining edges of the few points still open, found around each point."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from xaiscore.functional._mst import tuning
from xaiscore.functional._mst.forest import _Forest
from xaiscore.functional._mst.primitives import _flat_nonzero, _segments, _sorted


def _window_edges(kept: Tensor, points: Tensor, run_of_pixel: Tensor, forest: _Forest, k: int,
                  d_done: int) -> None:
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
    _, h, w = kept.shape
    index_dtype = torch.int32 if kept.numel() < 2**31 else torch.int64
    side = max(h, w)
    squares = _Squares(kept, points, index_dtype)
    hi, everyone, reach = _neighbour_squares(squares, points, k, side)
    # Band-major order of all points: (sample, band, column, row); with bands of one row it is the
    # row-major order of the pixels.
    t = max(1, min(16, round(float(reach.double().median()) / 4)))
    bands, position_of_open = _band_major_order(kept, points, t, index_dtype)
    packing = _Packing.for_image(h, w)
    # A lower bound of the candidates (the bands may hold more rows); the per-point lookups are
    # precomputed when the candidates outnumber the points, else done per candidate.
    candidates = squares.count(reach)
    precompute = int(candidates.sum()) > bands.pixel_at.numel()
    forest.compress()
    lookup = _PointLookup(bands.pixel_at, run_of_pixel, forest, packing, h, w, precompute)
    # Every neighbour of p lies within squared distance bound = 2 s^2 (all rows and columns when p
    # has at most k others); per band, the columns within the disc of that radius around p.
    bound = torch.where(everyone, torch.full_like(hi, 2 * side * side), 2 * hi * hi)
    band_first = torch.div((squares.y - reach).clamp(min=0), t, rounding_mode="floor")
    band_last = torch.div((squares.y + reach).clamp(max=h - 1), t, rounding_mode="floor")
    band_count = band_last - band_first + 1
    open_points = _OpenPoints(
        sample=squares.sample, y=squares.y, x=squares.x,
        packed=((squares.y << packing.shift) | squares.x).to(packing.dtype),
        position=position_of_open, everyone=everyone, bound=bound,
        band_first=band_first, band_count=band_count,
    )
    keys, max_points = _sort_keys(bound)
    cuts = _chunk_cuts(band_count, candidates, points.numel(), max_points)
    # d_k(p)^2 of every open point, by position.
    dk2_of = torch.full((bands.pixel_at.numel(),), -1, dtype=keys.dtype, device=kept.device)
    found = [
        _chunk_edges(open_points.rows(first, last), bands, lookup, packing, keys, w=w, k=k,
                     d_done=d_done, dk2_of=dk2_of)
        for first, last in zip([0, *cuts], [*cuts, points.numel()])
    ]
    _add_each_edge_once(found, dk2_of, lookup, forest)


class _Squares:
    """Counts of the points in squares around the open points, from a summed-area table."""

    def __init__(self, kept: Tensor, points: Tensor, index_dtype: torch.dtype) -> None:
        b, h, w = kept.shape
        hw = h * w
        table = torch.zeros(b, h + 1, w + 1, dtype=index_dtype, device=kept.device)
        # Summed-area table: along rows, then down the columns (a cumulative sum over the middle
        # axis adds whole contiguous rows, much faster than a transposed copy).
        sums = kept.view(torch.uint8).cumsum(2, dtype=index_dtype)
        torch.cumsum(sums, 1, out=sums)
        table[:, 1:, 1:] = sums
        self.table = table.reshape(-1)
        self.h, self.w = h, w
        #: Sample, row and column of each open point.
        self.sample = torch.div(points, hw, rounding_mode="floor")
        self.y = torch.div(points % hw, w, rounding_mode="floor")
        self.x = points % w
        self.corner = self.sample * ((h + 1) * (w + 1))

    def _at(self, rows: Tensor, cols: Tensor) -> Tensor:
        return self.table.index_select(0, self.corner + rows + cols)

    def count(self, half: Tensor) -> Tensor:
        """Points in the square of half-width ``half`` around each open point (within the image)."""
        h, w, y, x = self.h, self.w, self.y, self.x
        y0, y1 = (y - half).clamp(min=0) * (w + 1), (y + half + 1).clamp(max=h) * (w + 1)
        x0, x1 = (x - half).clamp(min=0), (x + half + 1).clamp(max=w)
        return self._at(y1, x1) - self._at(y0, x1) - self._at(y1, x0) + self._at(y0, x0)


def _neighbour_squares(squares: _Squares, points: Tensor, k: int,
                       side: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per open point: the smallest half-width ``s`` whose square holds ``k`` other points, whether
    the point has at most ``k`` others (all are neighbours), and the reach ``floor(sqrt(2) s)``
    (``side`` for those)."""
    # Smallest half-width whose square holds k other points (bisection with a fixed step count).
    lo = torch.zeros_like(points)
    hi = torch.full_like(points, side)
    for _ in range(math.ceil(math.log2(side + 1))):
        mid = torch.div(lo + hi, 2, rounding_mode="floor")
        enough = squares.count(mid) >= k + 1
        hi = torch.where(enough, mid, hi)
        lo = torch.where(enough, lo, mid + 1)
    # At most k others: all are neighbours.
    everyone = squares.count(torch.full_like(points, side)) < k + 1
    reach = torch.where(everyone, torch.full_like(hi, side),
                        torch.sqrt((2 * hi * hi).double()).floor().long())
    return hi, everyone, reach


class _Bands(NamedTuple):
    """All points in band-major order: (sample, band of ``t`` rows, column, row)."""

    t: int
    #: Bands per image.
    count: int
    #: ``(B * count * W + 1,)``: the points before each (sample, band, column) line.
    before: Tensor
    #: The global pixel index of the point at each position.
    pixel_at: Tensor


def _band_major_order(kept: Tensor, points: Tensor, t: int,
                      index_dtype: torch.dtype) -> tuple[_Bands, Tensor]:
    """The band-major order of all points (bands of ``t`` rows), and each open point's position."""
    b, h, w = kept.shape
    device = kept.device
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
        # Kept pixels above, in the same band and column.
        above = torch.cumsum(stacked, 2, dtype=index_dtype) - stacked
        position = (before[:-1].view(b, bands, 1, w) + above).view(b, bands * t, w)[:, :h]
        position = position.reshape(-1)
        pixel_at = torch.empty_like(pixel_at).scatter_(0, position.index_select(0, pixel_at),
                                                       pixel_at)
        position_of_open = position.index_select(0, points)
    return _Bands(t, bands, before, pixel_at), position_of_open


class _Packing(NamedTuple):
    """Coordinates packed as ``(row << shift) | column``, int32 where they (and distances) fit."""

    shift: int
    mask: int
    dtype: torch.dtype

    @classmethod
    def for_image(cls, h: int, w: int) -> _Packing:
        shift = max(1, (w - 1).bit_length())
        small = (h << shift) < 2**31 and (h - 1) ** 2 + (w - 1) ** 2 < 2**31
        return cls(shift, (1 << shift) - 1, torch.int32 if small else torch.int64)


class _PointLookup:
    """The packed coordinates, run and component label of the point at a position (band-major):
    precomputed for all points when the candidates outnumber them, else looked up per candidate.
    The forest must be compressed and stay unchanged while the lookup is used."""

    def __init__(self, pixel_at: Tensor, run_of_pixel: Tensor, forest: _Forest, packing: _Packing,
                 h: int, w: int, precompute: bool) -> None:
        self.pixel_at, self.run_of_pixel, self.forest = pixel_at, run_of_pixel, forest
        self.packing, self.w, self.hw = packing, w, h * w
        self.packed_at = self._packed_of(pixel_at) if precompute else None
        self.label_at = None
        if precompute:
            self.label_at = self._label_of(torch.arange(pixel_at.numel(), device=pixel_at.device))

    def _packed_of(self, pixel: Tensor) -> Tensor:
        w, shift = self.w, self.packing.shift
        pixel = pixel % self.hw
        packed = (torch.div(pixel, w, rounding_mode="floor") << shift) | pixel % w
        return packed.to(self.packing.dtype)

    def run(self, position: Tensor) -> Tensor:
        return self.run_of_pixel.index_select(0, self.pixel_at.index_select(0, position))

    def _label_of(self, position: Tensor) -> Tensor:
        return self.forest.parent.index_select(0, self.run(position))

    def packed(self, candidate: Tensor) -> Tensor:
        if self.packed_at is not None:
            return self.packed_at.index_select(0, candidate)
        return self._packed_of(self.pixel_at.index_select(0, candidate))

    def label(self, position: Tensor) -> Tensor:
        if self.label_at is not None:
            return self.label_at.index_select(0, position)
        return self._label_of(position)


class _OpenPoints(NamedTuple):
    """Per open point: where it is, its packed coordinates and position, and its search window."""

    sample: Tensor
    y: Tensor
    x: Tensor
    packed: Tensor
    position: Tensor
    #: The point has at most ``k`` others: all are neighbours.
    everyone: Tensor
    #: Squared distance within which all its neighbours lie.
    bound: Tensor
    #: The bands its window covers: the first one and how many.
    band_first: Tensor
    band_count: Tensor

    def rows(self, first: int, last: int) -> _OpenPoints:
        return _OpenPoints(*(field[first:last] for field in self))


class _Keys(NamedTuple):
    """(point, squared distance) sort keys: the distance in the low ``bits`` bits, in ``dtype``."""

    bits: int
    dtype: torch.dtype


def _sort_keys(bound: Tensor) -> tuple[_Keys, int]:
    """The sort keys for squared distances up to ``bound``, int32 where they fit, and the most
    points a chunk may hold for them."""
    d2_bits = max(1, int(bound.max()).bit_length())
    key_dtype = torch.int32 if d2_bits <= 20 else torch.int64
    max_points = 1 << ((31 if key_dtype == torch.int32 else 63) - d2_bits)
    return _Keys(d2_bits, key_dtype), max_points


def _chunk_cuts(band_count: Tensor, candidates: Tensor, n_points: int,
                max_points: int) -> list[int]:
    """Chunks of points with a bounded number of ranges and candidates in all, and few enough points
    for (point, squared distance) sort keys in int32 where the distances allow it."""
    window = torch.cumsum(band_count + 2 * candidates, 0)
    total = int(window[-1])
    chunk = tuning.WINDOW_CHUNK
    marks = torch.arange(1, max(1, math.ceil(total / chunk)), device=window.device) * chunk
    cuts = set(torch.searchsorted(window, marks).tolist())
    cuts |= set(range(max_points, n_points, max_points))
    return sorted(cuts - {0, n_points})


def _chunk_edges(chunk: _OpenPoints, bands: _Bands, lookup: _PointLookup, packing: _Packing,
                 keys: _Keys, *, w: int, k: int, d_done: int,
                 dk2_of: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The remaining edges of a chunk of open points: (p position, q position, squared length), and
    each point's ``d_k(p)^2`` written to ``dk2_of`` at its position."""
    candidate, who = _candidates(chunk, bands, w)
    q = lookup.packed(candidate)
    p = chunk.packed.index_select(0, who)
    dy = (q >> packing.shift) - (p >> packing.shift)
    dx = (q & packing.mask) - (p & packing.mask)
    d2 = (dy * dy + dx * dx).to(keys.dtype)
    dk2 = _kth_squared_distances(who, d2, chunk, k, keys)
    dk2_of.scatter_(0, chunk.position, dk2)
    within = ((d2 > d_done) & (d2 <= dk2.index_select(0, who))).nonzero().squeeze(1)
    p_at = chunk.position.index_select(0, who.index_select(0, within))
    q_at = candidate.index_select(0, within)
    other = (lookup.label(p_at) != lookup.label(q_at)).nonzero().squeeze(1)
    return (p_at.index_select(0, other), q_at.index_select(0, other),
            d2.index_select(0, within).index_select(0, other))


def _candidates(chunk: _OpenPoints, bands: _Bands, w: int) -> tuple[Tensor, Tensor]:
    """The candidates of a chunk of open points: their positions, and the chunk-local point each
    belongs to. Per band, the columns within the disc of radius ``sqrt(bound)`` around the point
    are one contiguous range of positions."""
    device = chunk.y.device
    t = bands.t
    owner, nth_band = _segments(chunk.band_count)  # owner: chunk-local point of each range
    band = chunk.band_first.index_select(0, owner) + nth_band
    row_of, column_of = chunk.y.index_select(0, owner), chunk.x.index_select(0, owner)
    # The columns of the band within the disc: through its row nearest to p.
    nearest = torch.minimum(torch.maximum(row_of, band * t), band * t + (t - 1)) - row_of
    room = chunk.bound.index_select(0, owner) - nearest * nearest
    half = room.double().sqrt().long()
    # The exact integer square root.
    half = half - (half * half > room).long() + ((half + 1) * (half + 1) <= room).long()
    line = (chunk.sample.index_select(0, owner) * bands.count + band) * w
    range_start = bands.before.index_select(0, line + (column_of - half).clamp(min=0))
    range_end = bands.before.index_select(0, line + (column_of + half).clamp(max=w - 1) + 1)
    range_size = range_end - range_start
    segment = torch.repeat_interleave(torch.arange(owner.numel(), device=device), range_size)
    # candidate = index + skip[range]
    skip = range_start - (torch.cumsum(range_size, 0) - range_size)
    candidate = torch.arange(segment.numel(), device=device) + skip.index_select(0, segment)
    who = owner.index_select(0, segment)  # the chunk-local open point each candidate belongs to
    return candidate, who


def _kth_squared_distances(who: Tensor, d2: Tensor, chunk: _OpenPoints, k: int,
                           keys: _Keys) -> Tensor:
    """``d_k(p)^2`` of each point of the chunk (the key dtype's maximum where it has at most ``k``
    others).

    ``d_k(p)^2`` is the (k+1)-th smallest squared distance among p's candidates (p itself, at 0,
    is the first): sort (point, d2) keys once; each point's candidates stay contiguous.
    """
    per_point = torch.zeros(chunk.y.numel(), dtype=torch.int64, device=who.device).index_add_(
        0, who, torch.ones_like(who))
    ordered = _sorted((who.to(keys.dtype) << keys.bits) | d2)
    kth = (torch.cumsum(per_point, 0) - per_point + k).clamp(max=max(ordered.numel() - 1, 0))
    dk2 = ordered.index_select(0, kth) & ((1 << keys.bits) - 1)
    return torch.where(chunk.everyone, torch.full_like(dk2, torch.iinfo(keys.dtype).max), dk2)


def _add_each_edge_once(found: list[tuple[Tensor, Tensor, Tensor]], dk2_of: Tensor,
                        lookup: _PointLookup, forest: _Forest) -> None:
    """Merge the edges found by all chunks into the forest, each edge once."""
    p_position, q_position, d2 = (torch.cat(parts) for parts in zip(*found))
    # Each edge once: q also lists it when q is open with d2 <= d_k(q)^2; then only the smaller
    # position keeps it.
    listed_by_q = d2 <= dk2_of.index_select(0, q_position)
    once = ((p_position < q_position) | ~listed_by_q).nonzero().squeeze(1)
    forest.add_edges(lookup.run(p_position.index_select(0, once)),
                     lookup.run(q_position.index_select(0, once)), d2.index_select(0, once).long())
