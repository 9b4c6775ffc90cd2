"""Graph machinery of MST compactness (MST-C), batched over samples.

Everything here works on a batch of boolean *salient-point* images ``kept`` of shape
``(B, H, W)``: a point is a kept pixel at its integer (row, column) coordinates. Three
quantities are computed for all samples at once, without a loop over samples:

- :func:`salient_points`: the pixels at or above a percentile of the map (and non-zero).
- :func:`hull_areas`: the area of the convex hull of each sample's points.
- :func:`spanning_forest_lengths`: the total length of the minimum spanning forest of each
  sample's symmetric k-nearest-neighbour graph, with ties at the k-th distance included.

The k-NN graph (``k`` neighbours, Euclidean weights) is defined without arbitrary tie breaking:
with :math:`d_k(p)` the distance from ``p`` to its k-th nearest other point (infinite when the
sample has at most ``k`` other points), points ``p`` and ``q`` are joined when
:math:`|pq| \\le \\max(d_k(p), d_k(q))`, i.e. when ``q`` is among the (tie-inclusive) k nearest
of ``p`` or vice versa. On the integer grid, :math:`|pq| \\le d_k(p)` holds exactly when fewer
than ``k`` other points are strictly closer to ``p`` than ``q`` is.

How the forest is found without touching every edge:

1. *Always-present edges.* Fewer than ``k`` lattice offsets are strictly shorter than
   :math:`\\sqrt{D_a}` (``D_a = 5`` for ``k = 20``), so every pair at squared distance at most
   ``D_a`` is an edge, whatever the data. These *near* edges are lighter than every other edge,
   so Kruskal's algorithm takes a spanning forest of them first.
2. *Runs.* A horizontal run of kept pixels is a path of unit edges, the lightest possible, so it
   is in some minimum spanning forest: each run is contracted to one node (``length - 1``).
3. *Near edges between runs.* For each near offset only the leftmost pixel pair of each pair of
   runs is kept (the others are parallel edges of equal weight), and a pair is dropped when a
   kept pixel offers a path of two strictly shorter near edges (a heavier edge on a cycle of
   lighter ones is in no minimum spanning forest). A Borůvka pass over the few remaining edges
   gives the near forest and its components.
4. *Far edges, ring by ring.* Squared distances ``D > D_a`` are visited in increasing order.
   Whether a pair at distance :math:`\\sqrt{D}` is an edge depends on how many points lie
   strictly closer (a count image updated ring by ring); only pairs between different current
   components matter. Each ring's edges are merged by a Borůvka pass (all of equal weight), so
   the forest grows exactly as in Kruskal's algorithm. The scan stops for the batch once every
   sample is a single component or has no point whose k-th neighbour is still farther.
5. *Sparse leftovers.* When few points remain open (sparse maps), the ring scan over whole
   images is wasteful: each remaining point instead counts its neighbours inside a square
   window found from a summed-area table (the smallest square holding ``k`` other points
   bounds :math:`d_k`), its exact :math:`d_k` is found by bisection on candidate counts, and
   its remaining edges go through one last Borůvka pass.

Host synchronisation: graph sizes are data-dependent, so the functions read a handful of
counts per ring or pass (edge counts, whether the scan is finished); there is no per-sample
loop and no per-edge Python work.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from xaiscore._checks import check_attributions, check_fraction, check_option, check_positive_int
from xaiscore._reduce import CHANNEL_REDUCTIONS, ChannelReduction
from xaiscore.functional._common import nan_where

__all__ = ["mst_compactness", "salient_points", "hull_areas", "spanning_forest_lengths", "always_present_d2"]

# A dense ring scan costs about one pass over every pixel per lattice offset; the window search
# costs about this many pixel-pass equivalents per open point (measured on CPU).
_WINDOW_COST_PER_POINT = 1500
# Candidate pairs handled at once by the window search (bounds its memory).
_WINDOW_CHUNK = 1 << 22
_INT64_MAX = torch.iinfo(torch.int64).max


def mst_compactness(
    a: Tensor,
    *,
    threshold: float = 80.0,
    k: int = 20,
    reduce_channels: ChannelReduction = "sum",
    validate: bool = True,
) -> Tensor:
    r"""Minimum Spanning Tree Compactness, MST-C (Mesgari et al. 2026, arXiv:2603.29491).

    The salient points ``P`` of a sample are the pixels whose value in the pixel map
    ``m = reduce_channels(|a|)`` is at or above the ``threshold``-th percentile of ``m`` and
    non-zero, taken at their (row, column) coordinates. With :math:`A` the area of their convex
    hull, :math:`L` the total length of the minimum spanning forest of their symmetric
    k-nearest-neighbour graph (Euclidean weights, ties at the k-th distance included) and
    :math:`d = \sqrt{H^2 + W^2}` the image diagonal,

    .. math::

        \text{spread} = \frac{1}{\sqrt{A}}, \qquad
        \text{cohesion} = \frac{|P|}{L}, \qquad
        \text{MST-C} = 100 \, d \cdot \text{spread} \cdot \text{cohesion},

    with :math:`\sqrt{A}` replaced by ``d`` when the hull is degenerate (fewer than three
    points, or all on a line). Higher is more compact: few salient points spread over a small
    area and joined by short edges. ``d * spread`` has no unit; ``cohesion`` is points per pixel
    of forest length (at most ``|P| / (|P| - 1)`` on a grid), so the score scales with the
    resolution. Points ``p`` and ``q`` are joined when ``|pq| <= max(d_k(p), d_k(q))``, with
    ``d_k(p)`` the distance from ``p`` to its k-th nearest other point (all other points when
    there are at most ``k``); the graph may be disconnected, and the forest then spans each
    component. ``docs/complexity.md`` lists every interpretation of the paper made here.

    Args:
        a: Attributions ``(B, C, H, W)`` (two spatial dimensions; any size, not only square).
        threshold: Percentile in [0, 100] (numpy's linear interpolation, evaluated exactly);
            pixels tied at the percentile are kept, zero pixels never are. Default 80.
        k: Neighbours per point in the k-NN graph. Default 20.
        reduce_channels: How ``|a|`` becomes one value per pixel: ``"sum"`` (default),
            ``"mean"`` (the same salient points as ``"sum"``) or ``"max_abs"``.
        validate: Check that ``a`` is finite (reads the data).

    Returns:
        ``(B,)`` scores, higher is more compact, in the dtype of ``a``; NaN when a sample has
        fewer than two salient points (e.g. an all-zero map), where the forest has no length.

    Shape:
        - a: ``(B, C, H, W)``; output: ``(B,)``

    Example:
        >>> a = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
        >>> a[0, 0, :2, :2] = 1.0  # a 2 x 2 block: hull area 1, forest length 3
        >>> a[1, 0, 0, :3] = -1.0  # three points on a line: degenerate hull, forest length 2
        >>> mst_compactness(a)  # 100 * sqrt(32) * 4 / 3 and 100 * 3 / 2
        tensor([754.2472, 150.0000], dtype=torch.float64)
    """
    a = check_attributions(a, min_spatial_dims=2, max_spatial_dims=2, validate=validate)
    threshold = check_fraction(threshold, "threshold", low=0.0, high=100.0)
    k = check_positive_int(k, "k")
    check_option(reduce_channels, "reduce_channels", CHANNEL_REDUCTIONS)
    magnitude = a.detach().abs().double()
    if reduce_channels == "max_abs":
        pixel_map = magnitude.amax(1)
    elif reduce_channels == "mean":
        pixel_map = magnitude.mean(1)
    else:
        pixel_map = magnitude.sum(1)
    height, width = a.shape[2:]
    kept = salient_points(pixel_map, threshold)
    area = hull_areas(kept)
    length, count = spanning_forest_lengths(kept, k)
    diagonal = math.hypot(height, width)
    spread = torch.where(area > 0, area.clamp(min=1.0).rsqrt(), torch.full_like(area, 1 / diagonal))
    cohesion = count.double() / torch.where(length > 0, length, torch.ones_like(length))
    return nan_where(count < 2, 100 * diagonal * spread * cohesion).to(a.dtype)


# --- lattice geometry ----------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _offsets_up_to(max_d2: int) -> tuple[tuple[int, int, int], ...]:
    """Lattice offsets ``(d2, dy, dx)`` with ``0 < dy^2 + dx^2 <= max_d2``, sorted by ``d2``."""
    r = math.isqrt(max_d2)
    out = [
        (dy * dy + dx * dx, dy, dx)
        for dy in range(-r, r + 1)
        for dx in range(-r, r + 1)
        if 0 < dy * dy + dx * dx <= max_d2
    ]
    return tuple(sorted(out))


@lru_cache(maxsize=None)
def always_present_d2(k: int) -> int:
    """The largest squared lattice distance ``D`` at which fewer than ``k`` offsets are strictly closer.

    Every pair of points at squared distance ``<= D`` is then an edge of the k-NN graph,
    whatever the data: ``1`` for ``k <= 4``, ``5`` for ``13 <= k <= 20``.

    Example:
        >>> [always_present_d2(k) for k in (1, 4, 5, 12, 13, 20, 21)]
        [1, 1, 2, 4, 5, 5, 8]
    """
    best, radius = 1, 1
    while True:
        offsets = _offsets_up_to(radius * radius)
        values = sorted({d2 for d2, _, _ in offsets})
        for d2 in values:
            closer = sum(1 for other, _, _ in offsets if other < d2)
            if closer >= k:
                return best
            best = d2
        radius *= 2


def _is_forward(dy: int, dx: int) -> bool:
    """One of each pair of opposite offsets: later in row-major order."""
    return dy > 0 or (dy == 0 and dx > 0)


@lru_cache(maxsize=None)
def _witnesses(dy: int, dx: int) -> tuple[tuple[int, int], ...]:
    """Offsets ``r`` with ``|r|`` and ``|o - r|`` both strictly shorter than ``|o|``."""
    d2 = dy * dy + dx * dx
    r = math.isqrt(d2)
    return tuple(
        (ry, rx)
        for ry in range(-r, r + 1)
        for rx in range(-r, r + 1)
        if 0 < ry * ry + rx * rx < d2 and 0 < (dy - ry) ** 2 + (dx - rx) ** 2 < d2
    )


# --- salient points and hull ---------------------------------------------------------------------


def _kth_smallest(rows: Tensor, j: int) -> Tensor:
    """The ``j``-th smallest value (0-based) of each row, ``(B, N) -> (B,)``.

    On CPU this partitions through numpy on a zero-copy view (several times faster than
    ``torch.kthvalue``; no device is involved, so nothing is synchronised).
    """
    if rows.device.type == "cpu":
        return torch.from_numpy(np.partition(rows.numpy(), j, axis=1)[:, j].copy())
    return torch.kthvalue(rows, j + 1, dim=1).values


def salient_points(values: Tensor, threshold: float) -> Tensor:
    """Pixels at or above the ``threshold``-th percentile of their sample, and non-zero.

    The percentile is numpy's default (linear interpolation between order statistics),
    evaluated exactly: with the ``N`` values sorted, :math:`v_{(0)} \\le \\dots \\le v_{(N-1)}`,
    and ``t = threshold / 100 * (N - 1)``, a value is at or above the percentile exactly when it
    is at least :math:`v_{(\\lfloor t \\rfloor)}` (``t`` whole) or :math:`v_{(\\lfloor t \\rfloor + 1)}`
    (otherwise); no value lies strictly between two consecutive order statistics.

    Args:
        values: ``(B, H, W)`` non-negative maps.
        threshold: Percentile in ``[0, 100]``.

    Returns:
        ``(B, H, W)`` bool.
    """
    b = values.shape[0]
    flat = values.reshape(b, -1)
    n = flat.shape[1]
    position = Fraction(threshold) * (n - 1) / 100
    j = math.floor(position) + (0 if position.denominator == 1 else 1)
    cutoff = _kth_smallest(flat, j).to(values.device)
    return (values >= cutoff.view(b, 1, 1)) & (values > 0)


def hull_areas(kept: Tensor) -> Tensor:
    """Area of the convex hull of each sample's kept pixels (row, column), ``(B, H, W) -> (B,)`` float64.

    Only the leftmost and rightmost point of each row can be hull vertices. The left boundary of
    the hull is the greatest convex minorant of ``x_min(y)`` over the occupied rows: row ``i`` is
    a vertex when no slope from an earlier row exceeds the slopes to later rows. Slopes of small
    integers compare exactly in float64, and the area is the exact integer shoelace sum over the
    vertices, halved. Fewer than three points or collinear points give 0.
    """
    if kept.shape[1] > kept.shape[2]:
        kept = kept.transpose(1, 2)  # O(rows^2) below: let the shorter side index rows
    b, h, w = kept.shape
    device = kept.device
    occupied = kept.any(2)
    columns = torch.arange(w, device=device)
    x_min = torch.where(kept, columns, w).amin(2).double()
    x_max = torch.where(kept, columns, -1).amax(2).double()
    rows = torch.arange(h, device=device, dtype=torch.float64)
    dy = rows.view(1, h) - rows.view(h, 1)  # [a, i] = i - a
    later = (dy > 0).unsqueeze(0)
    pair = occupied.unsqueeze(2) & occupied.unsqueeze(1) & later
    safe_dy = torch.where(dy > 0, dy, torch.ones_like(dy))
    index = torch.arange(h, device=device).expand(b, h)

    def chain_integral(x: Tensor, sign: float) -> Tensor:
        slope = sign * (x.unsqueeze(1) - x.unsqueeze(2)) / safe_dy  # [a, i]: slope from row a to row i
        from_before = torch.where(pair, slope, -math.inf).amax(1)  # max over a < i, indexed by i
        to_after = torch.where(pair, slope, math.inf).amin(2)  # min over i > a, indexed by a
        vertex = occupied & (from_before <= to_after)
        candidate = torch.where(vertex, index, h)
        following = torch.cummin(candidate.flip(1), 1).values.flip(1)  # first vertex at or after i
        nxt = torch.cat([following[:, 1:], torch.full((b, 1), h, device=device)], 1)
        has_next = vertex & (nxt < h)
        nxt = nxt.clamp(max=h - 1)
        # Twice the trapezoid area under the chain segment from row i to the next vertex.
        twice = (nxt - index).double() * (x + x.gather(1, nxt))
        return torch.where(has_next, twice, torch.zeros_like(twice)).sum(1)

    return (chain_integral(x_max, -1.0) - chain_integral(x_min, 1.0)) / 2


# --- Borůvka on a batch of disjoint graphs ------------------------------------------------------


class _Forest:
    """Union-find state over nodes of all samples, grown by Borůvka passes.

    Node ids are global; ``parent`` maps each node to its component's root after every pass.
    ``length`` (float64) and ``merges`` (int64) accumulate per sample.
    """

    def __init__(self, n_nodes: int, n_samples: int, device: torch.device) -> None:
        self.parent = torch.arange(n_nodes, device=device)
        self.length = torch.zeros(n_samples, dtype=torch.float64, device=device)
        self.merges = torch.zeros(n_samples, dtype=torch.int64, device=device)
        self._best = torch.full((n_nodes,), _INT64_MAX, dtype=torch.int64, device=device)
        self._scratch = torch.empty_like(self.parent)

    def add_edges(self, u: Tensor, v: Tensor, d2: Tensor, sample: Tensor) -> None:
        """Merge along the minimum spanning forest of the given edges over the current components.

        ``u``, ``v``: node ids; ``d2``: integer squared lengths (weights ``sqrt(d2)``); ``sample``:
        the sample of each edge. Ties are broken by the position of the edge in the input, so the
        order of the edges (squared length, position) is total and no cycle can form.
        """
        parent, best = self.parent, self._best
        n_edges = u.numel()
        key = d2 * max(n_edges, 1) + torch.arange(n_edges, device=u.device)
        u = parent.index_select(0, u)
        v = parent.index_select(0, v)
        rounds = 0
        while True:
            alive = (u != v).nonzero().squeeze(1)
            if alive.numel() == 0:
                break
            if alive.numel() < u.numel():
                u, v, key, d2, sample = (t.index_select(0, alive) for t in (u, v, key, d2, sample))
            best.scatter_reduce_(0, u, key, "amin")
            best.scatter_reduce_(0, v, key, "amin")
            pick_u = best.index_select(0, u) == key  # the lightest edge leaving u's component
            pick_v = best.index_select(0, v) == key
            chosen = pick_u | pick_v
            self.length.index_add_(0, sample[chosen], d2[chosen].double().sqrt())
            self.merges.index_add_(0, sample[chosen], torch.ones_like(sample[chosen]))
            hooked = torch.cat([u[pick_u], v[pick_v]])  # each component picks exactly one edge
            parent[hooked] = torch.cat([v[pick_u], u[pick_v]])
            # Two components that picked the same edge point at each other: the smaller id is the root.
            target = parent.index_select(0, hooked)
            mutual = (parent.index_select(0, target) == hooked) & (hooked < target)
            parent[hooked[mutual]] = hooked[mutual]
            best[hooked] = _INT64_MAX
            # Pointer jumping: hooks form trees of depth < len(hooked).
            for _ in range(max(1, math.ceil(math.log2(hooked.numel() + 1)))):
                parent[hooked] = parent.index_select(0, parent.index_select(0, hooked))
            u = parent.index_select(0, u)
            v = parent.index_select(0, v)
            rounds += 1
        # A node hooked in round r points at its root of round r, which may have been hooked later:
        # depth <= rounds, so log2(rounds) + 1 jumps over all nodes leave every node at its root.
        for _ in range(math.ceil(math.log2(rounds + 1))):
            torch.index_select(parent, 0, parent, out=self._scratch)
            parent.copy_(self._scratch)


# --- the k-NN spanning forest --------------------------------------------------------------------


class _Shifter:
    """Shifted views ``t[:, y + dy, x + dx]`` of ``(B, H, W)`` images padded by ``pad`` pixels."""

    def __init__(self, h: int, w: int, pad: int) -> None:
        self.h, self.w, self.pad = h, w, pad

    def padded(self, t: Tensor, value: int = 0) -> Tensor:
        p = self.pad
        if t.dtype == torch.bool:
            return F.pad(t.view(torch.uint8), (p, p, p, p), value=value).view(torch.bool)
        return F.pad(t, (p, p, p, p), value=value)

    def view(self, padded: Tensor, dy: int, dx: int) -> Tensor:
        p = self.pad
        return padded[:, p + dy : p + dy + self.h, p + dx : p + dx + self.w]


def _near_witnesses(dy: int, dx: int) -> tuple[tuple[int, int], ...]:
    """At most two witnesses per near offset, the ones most likely to be kept (the closest)."""
    ranked = sorted(_witnesses(dy, dx), key=lambda r: (r[0] ** 2 + r[1] ** 2, abs(r[0] - dy) + abs(r[1] - dx), r))
    return tuple(ranked[:2])


def spanning_forest_lengths(kept: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Total length of each sample's minimum spanning forest of the tie-inclusive k-NN graph.

    Args:
        kept: ``(B, H, W)`` bool, the points.
        k: Neighbours per point (``>= 1``).

    Returns:
        ``(lengths, counts)``: ``(B,)`` float64 forest lengths and ``(B,)`` int64 point counts.
    """
    b, h, w = kept.shape
    device = kept.device
    hw = h * w
    counts = kept.reshape(b, -1).sum(1)

    # Runs: horizontal unit paths, each contracted to one node of the forest.
    left = torch.zeros_like(kept)
    left[:, :, 1:] = kept[:, :, :-1]
    run_start = (kept & ~left).reshape(-1)
    run_of_pixel = torch.cumsum(run_start, 0) - 1  # valid on kept pixels
    run_sample = torch.div(run_start.nonzero().squeeze(1), hw, rounding_mode="floor")
    n_runs = run_sample.numel()
    forest = _Forest(n_runs, b, device)
    runs_per_sample = torch.zeros(b, dtype=torch.int64, device=device).index_add_(
        0, run_sample, torch.ones_like(run_sample)
    )
    forest.length += (counts - runs_per_sample).double()  # unit edges inside runs
    if n_runs == 0:
        return forest.length, counts

    d_always = always_present_d2(k)
    near = _offsets_up_to(d_always)
    shifter = _Shifter(h, w, max(12, math.isqrt(d_always) + 1))
    kept_p = shifter.padded(kept)

    # Near edges between runs: the leftmost pixel pair of each pair of runs, minus pairs with a
    # witness (a kept pixel closer to both ends, i.e. a path of two strictly shorter near edges).
    pairs, steps, lengths = [], [], []
    for d2, dy, dx in near:
        if not _is_forward(dy, dx) or (dy, dx) == (0, 1):
            continue
        pair = kept & shifter.view(kept_p, dy, dx)
        if dy != 0:
            pair &= ~(shifter.view(kept_p, 0, -1) & shifter.view(kept_p, dy, dx - 1))
        for ry, rx in _near_witnesses(dy, dx):
            pair &= ~shifter.view(kept_p, ry, rx)
        pairs.append(pair.reshape(-1))
        steps.append(dy * w + dx)
        lengths.append(d2)
    if pairs:
        which, pixel = torch.stack(pairs).nonzero(as_tuple=True)
        forest.add_edges(
            run_of_pixel.index_select(0, pixel),
            run_of_pixel.index_select(0, pixel + torch.tensor(steps, device=device).index_select(0, which)),
            torch.tensor(lengths, device=device).index_select(0, which),
            torch.div(pixel, hw, rounding_mode="floor"),
        )

    # Points with fewer than k others within the near distance have far edges to look for.
    count = torch.zeros(b, h, w, dtype=torch.int32, device=device)
    for _, dy, dx in near:
        count += shifter.view(kept_p, dy, dx)
    scan = _RingScan(kept, kept_p, count, run_of_pixel, forest, runs_per_sample, k, shifter)
    d_done, open_points = scan.run(d_always)
    if open_points is not None and d_done < (h - 1) ** 2 + (w - 1) ** 2:
        _window_edges(kept, open_points, run_of_pixel, forest, k, d_done)
    return forest.length, counts


class _RingScan:
    """Kruskal over the far edges, one ring of equal squared distance ``D`` at a time, on whole images.

    State per (unfinished) sample: ``count`` = points within squared distance ``< D`` of each
    pixel, ``open`` = kept pixels with ``count < k`` (their k-th neighbour is at ``>= sqrt(D)``),
    ``label`` = component of each kept pixel (``-1`` elsewhere). A pair at distance ``sqrt(D)``
    is an edge when either end is open; only pairs across components are passed to the forest.
    Finished samples (one component, or no open point) are dropped from the images.
    """

    def __init__(self, kept, kept_p, count, run_of_pixel, forest, runs_per_sample, k, shifter):
        self.kept, self.kept_p, self.count = kept, kept_p, count
        self.run_of_pixel, self.forest, self.runs_per_sample = run_of_pixel, forest, runs_per_sample
        self.k, self.shifter = k, shifter
        self.samples = torch.arange(kept.shape[0], device=kept.device)  # global id of each row
        self.open = kept & (count < k)
        roots = forest.parent.index_select(0, run_of_pixel.clamp(min=0))
        dtype = torch.int32 if forest.parent.numel() < 2**31 else torch.int64
        self.label = torch.where(kept.reshape(-1), roots, -1).to(dtype).view(kept.shape)

    def _keep_rows(self, rows: Tensor) -> None:
        self.samples = self.samples.index_select(0, rows)
        for name in ("kept", "kept_p", "count", "open", "label"):
            setattr(self, name, getattr(self, name).index_select(0, rows))

    def _open_pixels(self) -> Tensor:
        """Global pixel indices of the open points."""
        _, h, w = self.kept.shape
        local = self.open.reshape(-1).nonzero().squeeze(1)
        row = torch.div(local, h * w, rounding_mode="floor")
        return self.samples.index_select(0, row) * (h * w) + local % (h * w)

    def run(self, d_done: int) -> tuple[int, Tensor | None]:
        """Scan rings beyond ``d_done``; returns the last ring done and the still-open points
        (global pixel indices) when the scan handed over to the window search, else ``None``."""
        _, h, w = self.kept.shape
        hw = h * w
        device = self.kept.device
        shifter = self.shifter
        rings: dict[int, list[tuple[int, int]]] = {}
        for d2, dy, dx in _offsets_up_to(min((h - 1) ** 2 + (w - 1) ** 2, shifter.pad**2)):
            if d2 > d_done:
                rings.setdefault(d2, []).append((dy, dx))
        for d2 in sorted(rings):
            open_per_row = self.open.reshape(self.open.shape[0], -1).sum(1)
            components = (self.runs_per_sample - self.forest.merges).index_select(0, self.samples)
            unfinished = (components > 1) & (open_per_row > 0)
            n_unfinished = int(unfinished.sum())
            if n_unfinished == 0:
                return d_done, None
            if n_unfinished <= 0.75 * self.samples.numel():
                self._keep_rows(unfinished.nonzero().squeeze(1))
                open_per_row = open_per_row[unfinished]
            # Hand over to the window search when it is cheaper than the rings still to scan, estimated
            # from the open points' mean count: counts grow like the disc area, i.e. like D.
            n_open, counted = (int(v) for v in torch.stack([open_per_row.sum(), (self.count * self.open).sum()]))
            expected_d2 = d2 * self.k / (counted / n_open + 1)
            offsets_left = max(math.pi * (expected_d2 - d2), len(rings[d2]))
            if n_open * _WINDOW_COST_PER_POINT < self.kept.numel() * offsets_left:
                return d_done, self._open_pixels()
            kept, kept_p, open_, label = self.kept, self.kept_p, self.open, self.label
            label_p = shifter.padded(label, -1)
            open_p = shifter.padded(open_)
            pairs, steps = [], []
            for dy, dx in rings[d2]:
                q = shifter.view(kept_p, dy, dx)
                self.count += q
                if _is_forward(dy, dx):
                    pair = kept & q & (open_ | shifter.view(open_p, dy, dx))
                    pair &= label != shifter.view(label_p, dy, dx)
                    pairs.append(pair.reshape(-1))
                    steps.append(dy * w + dx)
            which, local = torch.stack(pairs).nonzero(as_tuple=True)
            if local.numel():
                row = torch.div(local, hw, rounding_mode="floor")
                sample = self.samples.index_select(0, row)
                pixel = sample * hw + local % hw
                self.forest.add_edges(
                    self.run_of_pixel.index_select(0, pixel),
                    self.run_of_pixel.index_select(0, pixel + torch.tensor(steps, device=device).index_select(0, which)),
                    torch.full_like(pixel, d2),
                    sample,
                )
                flat = self.label.reshape(-1)
                roots = self.forest.parent.index_select(0, flat.clamp(min=0).long()).to(flat.dtype)
                self.label = torch.where(flat >= 0, roots, flat).view(self.label.shape)
            self.open = kept & (self.count < self.k)
            d_done = d2
        return d_done, self._open_pixels()


def _window_edges(kept: Tensor, points: Tensor, run_of_pixel: Tensor, forest: _Forest, k: int, d_done: int) -> None:
    """The remaining edges (squared length ``> d_done``) of the open points, by window search.

    For an open point ``p`` (global pixel index in ``points``) the smallest square of half-width
    ``s`` around ``p`` holding ``k`` other points bounds ``(s - 1)^2 < d_k(p)^2 <= 2 s^2``; every
    point within ``d_k(p)`` lies in the square of half-width ``floor(sqrt(2) s)``, whose points are
    enumerated row by row (a row of a square is a contiguous range of the row-major point list).
    A histogram of the candidates' squared distances gives ``d_k(p)^2`` exactly, and the
    candidates within it, in other components, are ``p``'s remaining edges.
    """
    if points.numel() == 0:
        return
    b, h, w = kept.shape
    hw = h * w
    device = kept.device
    flat_kept = kept.reshape(-1)
    before = torch.zeros(flat_kept.numel() + 1, dtype=torch.int64, device=device)
    torch.cumsum(flat_kept, 0, out=before[1:])  # kept pixels before each pixel, row-major
    pixel_of_point = flat_kept.nonzero().squeeze(1)
    column_of_point = pixel_of_point % w
    label_of_point = forest.parent.index_select(0, run_of_pixel.index_select(0, pixel_of_point))
    table = torch.zeros(b, h + 1, w + 1, dtype=torch.int64, device=device)
    table[:, 1:, 1:] = kept.to(torch.int64).cumsum(1).cumsum(2)
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
    d2_low = torch.where(everyone, torch.ones_like(hi), (hi - 1).clamp(min=0) ** 2 + 1)
    d2_high = torch.where(everyone, torch.ones_like(hi), 2 * hi * hi)
    row_first = (y - reach).clamp(min=0)
    row_count = (y + reach).clamp(max=h - 1) - row_first + 1
    col_first = (x - reach).clamp(min=0)
    col_last = (x + reach).clamp(max=w - 1)

    # Chunks of points holding a bounded number of window pixels.
    window = torch.cumsum(row_count * (col_last - col_first + 1), 0)
    total = int(window[-1])
    marks = torch.arange(1, max(1, math.ceil(total / _WINDOW_CHUNK)), device=device) * _WINDOW_CHUNK
    cuts = sorted(set(torch.searchsorted(window, marks).tolist()) - {0, points.numel()})
    edges: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
    for first, last in zip([0, *cuts], [*cuts, points.numel()]):
        n = last - first
        owner = torch.repeat_interleave(torch.arange(first, last, device=device), row_count[first:last])
        row_start = torch.cumsum(row_count[first:last], 0) - row_count[first:last]
        row = row_first.index_select(0, owner) + torch.arange(owner.numel(), device=device) - row_start.index_select(
            0, owner - first
        )
        line = sample.index_select(0, owner) * hw + row * w
        range_start = before.index_select(0, line + col_first.index_select(0, owner))
        range_size = before.index_select(0, line + col_last.index_select(0, owner) + 1) - range_start
        segment = torch.repeat_interleave(torch.arange(owner.numel(), device=device), range_size)
        offset = range_start - (torch.cumsum(range_size, 0) - range_size)
        candidate = torch.arange(segment.numel(), device=device) + offset.index_select(0, segment)
        dy2 = (row - y.index_select(0, owner)) ** 2
        who = owner.index_select(0, segment)  # the open point each candidate belongs to
        dx = column_of_point.index_select(0, candidate) - x.index_select(0, who)
        d2 = dy2.index_select(0, segment) + dx * dx
        # d_k(p)^2: candidates below d2_low are all within it; histogram the rest up to d2_high.
        local = who - first
        low = d2_low.index_select(0, who)
        below = torch.zeros(n, dtype=torch.int64, device=device).index_add_(
            0, local, ((d2 > 0) & (d2 < low)).to(torch.int64)
        )
        span = d2_high[first:last] - d2_low[first:last] + 1  # one bin per squared distance in range
        bin_start = torch.cumsum(span, 0) - span
        inside = (d2 >= low) & (d2 <= d2_high.index_select(0, who))
        histogram = torch.zeros(int(bin_start[-1] + span[-1]), dtype=torch.int64, device=device)
        histogram.index_add_(
            0, (bin_start.index_select(0, local) + d2 - low).masked_select(inside), inside.to(torch.int64).masked_select(inside)
        )
        bin_owner = torch.repeat_interleave(torch.arange(n, device=device), span)
        running = torch.cumsum(histogram, 0)
        before_bin = torch.cat([running.new_zeros(1), running])[bin_start]
        within = running - before_bin.index_select(0, bin_owner) + below.index_select(0, bin_owner)
        short = torch.zeros(n, dtype=torch.int64, device=device).index_add_(0, bin_owner, (within < k).to(torch.int64))
        dk2 = d2_low[first:last] + short
        dk2 = torch.where(everyone[first:last], torch.full_like(dk2, _INT64_MAX), dk2)
        q_point = candidate
        p_point = before.index_select(0, points.index_select(0, who))  # point index of the open point
        edge = (d2 > d_done) & (d2 <= dk2.index_select(0, local))
        edge &= label_of_point.index_select(0, p_point) != label_of_point.index_select(0, q_point)
        keep = edge.nonzero().squeeze(1)
        edges.append((
            run_of_pixel.index_select(0, points.index_select(0, who.index_select(0, keep))),
            run_of_pixel.index_select(0, pixel_of_point.index_select(0, q_point.index_select(0, keep))),
            d2.index_select(0, keep),
            sample.index_select(0, who.index_select(0, keep)),
        ))
    forest.add_edges(*(torch.cat(parts) for parts in zip(*edges)))
