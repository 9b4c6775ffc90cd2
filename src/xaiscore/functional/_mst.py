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
   lighter ones is in no minimum spanning forest). Edges of equal length need no order among
   themselves, so one connectivity pass per near length (hooking onto the smaller root, then
   pointer jumping) gives the near forest and its components.
4. *Far edges, ring by ring.* Squared distances ``D > D_a`` are visited in increasing order.
   Whether a pair at distance :math:`\\sqrt{D}` is an edge depends on how many points lie
   strictly closer (a count image updated ring by ring); only pairs between different current
   components matter. Each ring's edges (all of equal weight) are merged by a connectivity
   pass, so the forest grows exactly as in Kruskal's algorithm. Counts and component labels are
   uint8 images (labels split into byte planes): on CPU, comparisons of uint8 tensors are
   vectorised and those of wider integers are not. The scan stops for the batch once every
   sample is a single component or has no point whose k-th neighbour is still farther.
5. *Sparse leftovers.* When few points remain open, the ring scan over whole images is
   wasteful: each remaining point instead finds its neighbours in a window bounded by a
   summed-area table (the smallest square holding ``k`` other points bounds :math:`d_k`), gets
   its exact :math:`d_k` by sorting its candidates (those in the disc of that bound), and its
   remaining edges go through one last Borůvka pass (its lightest edges first: the heavy edges
   they already connect are dropped unseen). Sparse maps (few points per pixel) take this path for all their edges, near ones
   included (:math:`d_k \\ge \\sqrt{D_a}` always), and skip steps 3 and 4.

Host synchronisation: graph sizes are data-dependent, so the functions read a handful of
counts per ring, per Borůvka or connectivity round and per pointer-jumping step (edge counts, whether the scan
is finished); there is no per-sample loop and no per-edge Python work. On CPU the two selection
steps (the percentile, the candidates' order) go through numpy on zero-copy views, which is
several times faster than ``torch.kthvalue``/``torch.sort`` there; other devices use torch.
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
from xaiscore._engine.reduction import CHANNEL_REDUCTIONS, ChannelReduction
from xaiscore.functional._common import nan_where

__all__ = ["mst_compactness", "salient_points", "hull_areas", "spanning_forest_lengths", "always_present_d2"]

# A dense ring scan costs about one pass over every pixel per lattice offset; the window search
# costs about this many pixel-pass equivalents per open point (measured on CPU).
_WINDOW_COST_PER_POINT = 3000
# Image-sized passes of the near phase and the first rings (the alternative to a window-only search).
_DENSE_PASSES = 100
# Candidate pairs handled at once by the window search (bounds its memory).
_WINDOW_CHUNK = 1 << 22
# The ring scan relabels its components once it has found more than one new edge per this many pixels.
_RELABEL_EDGES = 500
# Borůvka passes with more than this many edges per node first take the lightest ~_LIGHT_EDGES per node.
_FILTER_EDGES = 8
_LIGHT_EDGES = 3
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
    if a.shape[1] == 1:
        pixel_map = magnitude[:, 0]  # every reduction is the identity (the mean, the selection)
    elif reduce_channels == "max_abs":
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
    spread = torch.where(area > 0, area.rsqrt(), torch.full_like(area, 1 / diagonal))
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


@lru_cache(maxsize=None)
def _rings(max_d2: int) -> dict[int, tuple[tuple[int, int], ...]]:
    """The lattice offsets ``(dy, dx)`` with ``0 < dy^2 + dx^2 <= max_d2``, grouped by ``dy^2 + dx^2``."""
    rings: dict[int, list[tuple[int, int]]] = {}
    for d2, dy, dx in _offsets_up_to(max_d2):
        rings.setdefault(d2, []).append((dy, dx))
    return {d2: tuple(ring) for d2, ring in rings.items()}


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
    """The ``j``-th smallest value (0-based) of each row of non-negative values, ``(B, N) -> (B,)``.

    On CPU this partitions through numpy on a zero-copy view (several times faster than
    ``torch.kthvalue``; no device is involved, so nothing is synchronised).
    """
    if rows.device.type == "cpu":
        # Rows whose j-th smallest is 0 (mostly-zero maps, where selection is slow) need no selection.
        out = torch.zeros(rows.shape[0], dtype=rows.dtype)
        select = (_count(rows == 0, (1,)) <= j).nonzero().squeeze(1)
        if select.numel():
            chosen = (rows if select.numel() == rows.shape[0] else rows.index_select(0, select)).numpy()
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
    """``values`` (1-D) sorted ascending; through numpy on CPU (several times faster than ``torch.sort``)."""
    if values.device.type == "cpu":
        return torch.from_numpy(np.sort(values.numpy()))
    return torch.sort(values).values


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
    # values >= 0, so "at least the cutoff and non-zero" is "at least max(cutoff, smallest positive)".
    cutoff = cutoff.clamp(min=torch.finfo(values.dtype).tiny * torch.finfo(values.dtype).eps)
    return values >= cutoff.view(b, 1, 1)


def _neighbouring_candidates(candidate: Tensor) -> tuple[Tensor, Tensor]:
    """For each position of ``(B, H)`` bool rows: the previous and the next candidate position
    (``-1`` / ``H`` when there is none)."""
    b, h = candidate.shape
    index = torch.arange(h, device=candidate.device).expand(b, h)
    at_or_before = torch.cummax(torch.where(candidate, index, -1), 1).values
    at_or_after = torch.cummin(torch.where(candidate, index, h).flip(1), 1).values.flip(1)
    previous = torch.cat([torch.full((b, 1), -1, device=candidate.device), at_or_before[:, :-1]], 1)
    following = torch.cat([at_or_after[:, 1:], torch.full((b, 1), h, device=candidate.device)], 1)
    return previous, following


def _minorant_vertices(g: Tensor, candidate: Tensor, prune_rounds: int = 4) -> Tensor:
    """Vertices of the greatest convex minorant of ``g`` (int64 ``(B, H)``) over the candidate rows.

    A row on or above the chord of two other candidates is no vertex (not an extreme point), so
    rows are first pruned against their current neighbours (exact integer cross products, all
    rows at once; a few rounds). The survivors are then tested exactly: row ``i`` is a vertex
    when no slope from an earlier survivor exceeds the slopes to later ones (slopes of small
    integers compare exactly in float64).
    """
    b, h = g.shape
    device = g.device
    index = torch.arange(h, device=device).expand(b, h)
    for _ in range(prune_rounds):
        previous, following = _neighbouring_candidates(candidate)
        inner = candidate & (previous >= 0) & (following < h)
        g_prev = g.gather(1, previous.clamp(min=0))
        g_next = g.gather(1, following.clamp(max=h - 1))
        not_below = (g - g_prev) * (following - previous) >= (g_next - g_prev) * (index - previous)
        candidate = candidate & ~(inner & not_below)
    m = int(candidate.sum(1).max()) if b else 0
    if m <= 2:
        return candidate
    order = torch.argsort((~candidate).to(torch.int8), dim=1, stable=True)[:, :m]  # survivors first, in order
    valid = candidate.gather(1, order)
    y = order.double()
    value = g.gather(1, order).double()
    rise = y.unsqueeze(1) - y.unsqueeze(2)  # [a, i] = y_i - y_a
    pair = valid.unsqueeze(2) & valid.unsqueeze(1) & (rise > 0)
    slope = (value.unsqueeze(1) - value.unsqueeze(2)) / torch.where(rise > 0, rise, torch.ones_like(rise))
    from_before = torch.where(pair, slope, -math.inf).amax(1)  # max over earlier a, indexed by i
    to_after = torch.where(pair, slope, math.inf).amin(2)  # min over later i, indexed by a
    vertex = valid & (from_before <= to_after)
    return torch.zeros_like(candidate).scatter_(1, order, vertex)


def hull_areas(kept: Tensor) -> Tensor:
    """Area of the convex hull of each sample's kept pixels (row, column), ``(B, H, W) -> (B,)`` float64.

    Only the leftmost and rightmost point of each row can be hull vertices. The left boundary of
    the hull is the greatest convex minorant of ``x_min(y)`` over the occupied rows and the right
    boundary the least concave majorant of ``x_max(y)`` (see :func:`_minorant_vertices`); the
    area is the exact integer trapezoid sum between them, halved. Fewer than three points or
    collinear points give 0.
    """
    if kept.shape[1] > kept.shape[2]:
        kept = kept.transpose(1, 2)  # fewer rows: less work below
    b, h, w = kept.shape
    device = kept.device
    occupied = kept.view(torch.uint8).amax(2) > 0  # faster than any(2) on CPU
    small = torch.int16 if w < 2**15 - 1 else torch.int64
    columns = torch.arange(w, device=device, dtype=small)
    x_min = torch.where(kept, columns, w).amin(2).long()
    x_max = torch.where(kept, columns, -1).amax(2).long()
    index = torch.arange(h, device=device).expand(b, h)

    def twice_integral(x: Tensor, vertex: Tensor) -> Tensor:
        """Twice the area under the chain through the vertices, ``sum (y' - y) (x + x')``."""
        _, following = _neighbouring_candidates(vertex)
        has_next = vertex & (following < h)
        following = following.clamp(max=h - 1)
        twice = (following - index) * (x + x.gather(1, following))
        return torch.where(has_next, twice, torch.zeros_like(twice)).sum(1)

    left = twice_integral(x_min, _minorant_vertices(x_min, occupied))
    right = twice_integral(x_max, _minorant_vertices(-x_max, occupied))
    return (right - left).double() / 2


# --- Borůvka on a batch of disjoint graphs ------------------------------------------------------


def _jump_to_roots(parent: Tensor, hooked: Tensor) -> None:
    """Pointer jumping: make every ``hooked`` node point at its root (one host read per doubling)."""
    up = parent.index_select(0, hooked)
    while True:
        upper = parent.index_select(0, up)
        if torch.equal(up, upper):
            break
        parent.scatter_(0, hooked, upper)
        up = upper


class _Forest:
    """Union-find state over the nodes of all samples, grown by Borůvka passes.

    Node ids are global and ``node_sample`` gives each node's sample; ``parent`` maps every node
    to its component's root after each pass. ``length`` (float64) and ``merges`` (int64)
    accumulate per sample.
    """

    def __init__(self, node_sample: Tensor, n_samples: int) -> None:
        device = node_sample.device
        self.node_sample = node_sample
        # int32 node ids where they fit: gathers of half the width (scatters take int64 indices).
        dtype = torch.int32 if node_sample.numel() < 2**31 else torch.int64
        self.parent = torch.arange(node_sample.numel(), dtype=dtype, device=device)
        self.length = torch.zeros(n_samples, dtype=torch.float64, device=device)
        self.merges = torch.zeros(n_samples, dtype=torch.int64, device=device)
        self._best = torch.full((node_sample.numel(),), _INT64_MAX, dtype=torch.int64, device=device)

    def add_edges(self, u: Tensor, v: Tensor, d2: Tensor) -> None:
        """Merge along the minimum spanning forest of the given edges over the current components.

        ``u``, ``v``: node ids of the same sample; ``d2``: integer squared lengths (weights
        ``sqrt(d2)``). Ties are broken by the position of the edge in the input, so the order of
        the edges (squared length, position) is total and no cycle can form.
        """
        n_edges = u.numel()
        if n_edges == 0:
            return
        if n_edges > _FILTER_EDGES * self.parent.numel():
            # Many more edges than nodes (a k-NN graph): Kruskal's order split in two (filter
            # Kruskal). The light edges, about _LIGHT_EDGES per node, go first; a heavy edge whose
            # ends they connect is in no minimum spanning forest and is dropped unseen by Borůvka.
            sample = d2[:: max(1, n_edges // 65536)]
            cut = int(_kth_smallest(sample.unsqueeze(0), min(sample.numel() - 1, sample.numel() * _LIGHT_EDGES * self.parent.numel() // n_edges))[0])
            light = d2 <= cut
            heavy = (~light).nonzero().squeeze(1)
            if 0 < heavy.numel() < n_edges:
                light = light.nonzero().squeeze(1)
                self.add_edges(u.index_select(0, light), v.index_select(0, light), d2.index_select(0, light))
                u, v, d2 = self.find(u.index_select(0, heavy)), self.find(v.index_select(0, heavy)), d2.index_select(0, heavy)
                apart = (u != v).nonzero().squeeze(1)
                self.add_edges(u.index_select(0, apart), v.index_select(0, apart), d2.index_select(0, apart))
                return
        parent, best = self.parent, self._best
        key = d2 * n_edges + torch.arange(n_edges, device=u.device)
        u, v = self.find(u).long(), self.find(v).long()
        rounds = 0
        while True:
            alive = (u != v).nonzero().squeeze(1)
            if alive.numel() == 0:
                break
            if alive.numel() < u.numel():
                u, v, key = u.index_select(0, alive), v.index_select(0, alive), key.index_select(0, alive)
            best.scatter_reduce_(0, u, key, "amin")
            best.scatter_reduce_(0, v, key, "amin")
            pick_u = best.index_select(0, u) == key  # the lightest edge leaving u's component
            pick_v = best.index_select(0, v) == key
            chosen = (pick_u | pick_v).nonzero().squeeze(1)
            sample = self.node_sample.index_select(0, u.index_select(0, chosen))
            length = torch.div(key.index_select(0, chosen), n_edges, rounding_mode="floor").double().sqrt_()
            self.length.index_add_(0, sample, length)
            self.merges.index_add_(0, sample, torch.ones_like(sample))
            by_u, by_v = pick_u.nonzero().squeeze(1), pick_v.nonzero().squeeze(1)
            # Each component picks exactly one edge and hooks onto the component at its other end.
            hooked = torch.cat([u.index_select(0, by_u), v.index_select(0, by_v)])
            target = torch.cat([v.index_select(0, by_u), u.index_select(0, by_v)])
            parent.scatter_(0, hooked, target.to(parent.dtype))
            # Two components that picked the same edge point at each other: the smaller id is the root.
            mutual = (parent.index_select(0, target) == hooked) & (hooked < target)
            parent.scatter_(0, hooked, torch.where(mutual, hooked, target).to(parent.dtype))
            best.index_fill_(0, hooked, _INT64_MAX)
            # Pointer jumping until every hooked component points at its root.
            _jump_to_roots(parent, hooked)
            u = parent.index_select(0, u).long()
            v = parent.index_select(0, v).long()
            rounds += 1
        self.compress()

    def connect(self, u: Tensor, v: Tensor, d2: int) -> None:
        """Merge along edges that all have the same squared length ``d2``.

        Any spanning forest of equal-weight edges is a minimum one, so only connectivity matters:
        each round every component root at the larger end of a live edge hooks onto the smallest
        root across its edges (always a smaller id, so no cycle forms), then the hooked roots jump
        to their new roots. Each hooked root is one merge of weight ``sqrt(d2)``. Cheaper per round
        than :meth:`add_edges` (no edge keys, one scatter).
        """
        if u.numel() == 0:
            return
        parent, mark = self.parent, self._best
        merges_before = self.merges.clone()
        u, v = self.find(u), self.find(v)
        while True:
            alive = (u != v).nonzero().squeeze(1)
            if alive.numel() == 0:
                break
            if alive.numel() < u.numel():
                u, v = u.index_select(0, alive), v.index_select(0, alive)
            low, high = torch.minimum(u, v), torch.maximum(u, v)
            high = high.long()
            parent.scatter_reduce_(0, high, low, "amin")
            # The distinct hooked roots: one edge per high end wins the scatter below.
            position = torch.arange(high.numel(), device=high.device)
            mark.scatter_(0, high, position)
            hooked = high.index_select(0, (mark.index_select(0, high) == position).nonzero().squeeze(1))
            mark.index_fill_(0, hooked, _INT64_MAX)
            self.merges.index_add_(0, self.node_sample.index_select(0, hooked), torch.ones_like(hooked))
            # Pointer jumping until every hooked root points at its new root.
            _jump_to_roots(parent, hooked)
            u = parent.index_select(0, u)
            v = parent.index_select(0, v)
        # Nodes below a hooked root still point at it until the next compress().
        self.length += (self.merges - merges_before).double() * math.sqrt(d2)

    def find(self, nodes: Tensor) -> Tensor:
        """The roots of the given nodes (``parent`` need not be compressed)."""
        nodes = self.parent.index_select(0, nodes)
        while True:
            up = self.parent.index_select(0, nodes)
            if torch.equal(up, nodes):
                return nodes
            nodes = up

    def compress(self) -> None:
        """Point every node directly at its root."""
        while True:
            up = self.parent.index_select(0, self.parent)
            if torch.equal(up, self.parent):
                return
            self.parent.copy_(up)


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
    """The witnesses of a near offset, closest first."""
    ranked = sorted(_witnesses(dy, dx), key=lambda r: (r[0] ** 2 + r[1] ** 2, abs(r[0] - dy) + abs(r[1] - dx), r))
    return tuple(ranked)


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
    counts = _count(kept, (1, 2))

    # Runs: horizontal unit paths, each contracted to one node of the forest.
    left = torch.zeros_like(kept)
    left[:, :, 1:] = kept[:, :, :-1]
    run_start = (kept & ~left).reshape(-1)
    index_dtype = torch.int32 if run_start.numel() < 2**31 else torch.int64
    run_of_pixel = torch.cumsum(run_start, 0, dtype=index_dtype) - 1  # valid on kept pixels
    runs_per_sample = _count(run_start.view(b, hw), (1,))
    run_sample = torch.repeat_interleave(torch.arange(b, device=device), runs_per_sample)  # runs are in sample order
    n_runs = run_sample.numel()
    forest = _Forest(run_sample, b)
    forest.length += (counts - runs_per_sample).double()  # unit edges inside runs
    if n_runs == 0:
        return forest.length, counts

    # Sparse maps: the window search alone (all edges, near ones included, since d_k >= sqrt(D_a))
    # is cheaper than the image-sized passes of the near phase and the ring scan.
    if int(counts.sum()) * _WINDOW_COST_PER_POINT < kept.numel() * _DENSE_PASSES:
        _window_edges(kept, _flat_nonzero(kept), run_of_pixel, forest, k, 0)
        return forest.length, counts

    d_always = always_present_d2(k)
    near = _offsets_up_to(d_always)
    shifter = _Shifter(h, w, max(12, math.isqrt(d_always) + 1))
    kept_p = shifter.padded(kept)

    # Near edges between runs: the leftmost pixel pair of each pair of runs, minus pairs with a
    # witness (a kept pixel closer to both ends, i.e. a path of two strictly shorter near edges).
    forward = [(d2, dy, dx) for d2, dy, dx in near if _is_forward(dy, dx) and (dy, dx) != (0, 1)]
    if forward:
        pairs = torch.empty(len(forward), b, h, w, dtype=torch.bool, device=device)
        for pair, (_, dy, dx) in zip(pairs, forward):
            torch.logical_and(kept, shifter.view(kept_p, dy, dx), out=pair)
            if dy != 0:
                pair &= ~(shifter.view(kept_p, 0, -1) & shifter.view(kept_p, dy, dx - 1))
            for ry, rx in _near_witnesses(dy, dx):
                pair &= ~shifter.view(kept_p, ry, rx)
        found = _flat_nonzero(pairs)
        which, pixel = torch.div(found, b * hw, rounding_mode="floor"), found % (b * hw)
        step_of = torch.tensor([dy * w + dx for _, dy, dx in forward], device=device)
        u = run_of_pixel.index_select(0, pixel)
        v = run_of_pixel.index_select(0, pixel + step_of.index_select(0, which))
        # The pairs come offset by offset, the offsets by length: one connectivity pass per length.
        ends = torch.searchsorted(which, torch.arange(1, len(forward) + 1, device=device)).tolist()
        start = 0
        for i, (d2, _, _) in enumerate(forward):
            if i + 1 == len(forward) or forward[i + 1][0] != d2:
                forest.connect(u[start : ends[i]], v[start : ends[i]], d2)
                start = ends[i]

    # Points with fewer than k others within the near distance have far edges to look for:
    # count the others in the disc, a sum of horizontal box sums, one per row offset.
    radius = math.isqrt(d_always)
    # uint8 while the disc holds fewer than 256 pixels (int16 beyond): uint8 adds are twice as fast.
    count_dtype = torch.uint8 if (2 * radius + 1) ** 2 < 256 else torch.int16
    unit = kept_p.view(torch.uint8) if count_dtype == torch.uint8 else kept_p.to(count_dtype)
    boxes = {0: unit}
    for half in range(1, radius + 1):
        boxes[half] = boxes[half - 1].clone()
        boxes[half][:, :, half:] += unit[:, :, :-half]
        boxes[half][:, :, :-half] += unit[:, :, half:]
    count = shifter.view(boxes[radius], 0, 0).clone()
    for dy in range(-radius, radius + 1):
        if dy:
            count += shifter.view(boxes[math.isqrt(d_always - dy * dy)], dy, 0)
    count -= kept.view(torch.uint8)  # the point itself
    del boxes, unit
    scan = _RingScan(kept, kept_p, count, run_of_pixel, forest, runs_per_sample, k, shifter)
    d_done, open_points = scan.run(d_always)
    if open_points is not None and d_done < (h - 1) ** 2 + (w - 1) ** 2:
        _window_edges(kept, open_points, run_of_pixel, forest, k, d_done)
    return forest.length, counts


class _RingScan:
    """Kruskal over the far edges, one ring of equal squared distance ``D`` at a time, on whole images.

    State per (unfinished) sample: ``count`` = points within squared distance ``< D`` of each
    pixel, ``open`` = kept pixels with ``count < k`` (their k-th neighbour is at ``>= sqrt(D)``),
    ``label`` = component of each kept pixel (``-1`` elsewhere; relabelled when many merges make
    it worth it: a stale label only lets through pairs that the forest then drops). A pair at
    distance ``sqrt(D)`` is an edge when either end is open; only pairs across components are
    passed to the forest. Finished samples (one component, or no open point) are dropped.
    """

    def __init__(self, kept, kept_p, count, run_of_pixel, forest, runs_per_sample, k, shifter):
        b, h, w = kept.shape
        device = kept.device
        self.kept, self.kept_p, self.k, self.shifter = kept, kept_p, k, shifter
        # Comparisons of two uint8 tensors are vectorised on CPU, those of wider integers or with a
        # scalar are not (about 10x slower): counts are uint8 capped at k when a ring cannot
        # overflow them, labels are split into uint8 planes, and k is a row of uint8.
        ring_max = max(len(ring) for ring in _rings(shifter.pad**2).values())
        if k + ring_max < 256:
            self.count = torch.minimum(count, torch.tensor(k, dtype=count.dtype)).to(torch.uint8)
            self.unit_p = kept_p.view(torch.uint8)
        else:
            self.count = count.to(torch.int16)  # at most (2 pad + 1)^2
            self.unit_p = kept_p.to(torch.int16)
        self.k_row = torch.full((w,), k, dtype=self.count.dtype, device=device)
        self.run_of_pixel, self.forest, self.runs_per_sample = run_of_pixel, forest, runs_per_sample
        self.samples = torch.arange(b, device=device)  # global sample of each row
        self.first_run = torch.cumsum(runs_per_sample, 0) - runs_per_sample
        # The run of each pixel, padded; any run where no point is (labels only matter at points).
        self.run_p = shifter.padded(run_of_pixel.view(b, h, w).clamp(min=0))
        # Labels are component roots counted from the sample's first run, one uint8 plane per byte.
        self.open_p = shifter.padded(kept & (self.count < self.k_row))
        self.label_p = None  # (planes, B, H + 2 pad, W + 2 pad) uint8, built on the first ring scanned
        # Edges found since the labels were last rebuilt: stale labels only let through pairs
        # within merged components (the forest drops them), so relabelling waits for many merges.
        self.unlabelled_edges = 0

    def _interior(self, padded: Tensor) -> Tensor:
        return self.shifter.view(padded, 0, 0)

    def _labels(self) -> None:
        """(Re)build the padded label planes from the forest: a byte of each run's label, looked
        up for every pixel through its run (pixels that are no point get arbitrary labels)."""
        forest = self.forest
        forest.compress()
        # Labels are the ranks of the component roots within their sample: few bytes when the
        # near phase has left few components per sample (one plane fewer is two operations less
        # per offset).
        parent = forest.parent
        is_root = parent == torch.arange(parent.numel(), dtype=parent.dtype, device=parent.device)
        roots_before = torch.cumsum(is_root, 0, dtype=parent.dtype) - is_root.to(parent.dtype)
        first = self.first_run.clamp(max=parent.numel() - 1)  # a sample without points has no runs to label
        base = roots_before.index_select(0, first).index_select(0, forest.node_sample)
        roots = roots_before.index_select(0, parent) - base
        components = (self.runs_per_sample - forest.merges).index_select(0, self.samples)
        n_planes = max(1, ((int(components.max()) - 1).bit_length() + 7) // 8)
        if self.label_p is None or self.label_p.shape[0] != n_planes:
            self.label_p = torch.empty((n_planes,) + self.run_p.shape, dtype=torch.uint8, device=self.kept.device)
        runs = self.run_p.view(-1)
        for i, plane in enumerate(self.label_p):
            torch.index_select(((roots >> (8 * i)) & 255).to(torch.uint8), 0, runs, out=plane.view(-1))
        self.unlabelled_edges = 0

    def _keep_rows(self, rows: Tensor) -> None:
        self.samples = self.samples.index_select(0, rows)
        for name in ("kept", "kept_p", "count", "open_p", "run_p"):
            setattr(self, name, getattr(self, name).index_select(0, rows))
        self.unit_p = self.kept_p.view(torch.uint8) if self.count.dtype == torch.uint8 else self.kept_p.to(self.count.dtype)
        if self.label_p is not None:
            self.label_p = self.label_p.index_select(1, rows)

    def _open_pixels(self) -> Tensor:
        """Global pixel indices of the open points."""
        _, h, w = self.kept.shape
        local = _flat_nonzero(self._interior(self.open_p))
        row = torch.div(local, h * w, rounding_mode="floor")
        return self.samples.index_select(0, row) * (h * w) + local % (h * w)

    def run(self, d_done: int) -> tuple[int, Tensor | None]:
        """Scan rings beyond ``d_done``; returns the last ring done and the still-open points
        (global pixel indices) when the scan handed over to the window search, else ``None``."""
        _, h, w = self.kept.shape
        hw = h * w
        device = self.kept.device
        shifter = self.shifter
        rings = _rings(min((h - 1) ** 2 + (w - 1) ** 2, shifter.pad**2))
        for d2 in sorted(rings):
            if d2 <= d_done:
                continue
            open_ = self._interior(self.open_p)
            any_open = open_.view(torch.uint8).amax((1, 2)) > 0
            components = (self.runs_per_sample - self.forest.merges).index_select(0, self.samples)
            unfinished = (components > 1) & any_open
            n_unfinished = int(unfinished.sum())
            if n_unfinished == 0:
                return d_done, None
            if n_unfinished <= 0.75 * self.samples.numel():
                self._keep_rows(unfinished.nonzero().squeeze(1))
                open_ = self._interior(self.open_p)
            # Hand over to the window search when it is cheaper than the rings still to scan, estimated
            # from the open points on every fourth image row: their number and mean count (counts
            # grow like the disc area, i.e. like D).
            sampled = open_[:, ::4]
            n_sampled, counted = (
                int(v)
                for v in torch.stack([
                    sampled.view(torch.uint8).sum(dtype=torch.int32),
                    (sampled.view(torch.uint8) * self.count[:, ::4]).sum(dtype=torch.int32),
                ])
            )
            n_open = n_sampled * open_.shape[1] / sampled.shape[1]
            expected_d2 = d2 * self.k / (counted / max(n_sampled, 1) + 1)
            offsets_left = max(math.pi * (expected_d2 - d2), len(rings[d2]))
            if n_open * _WINDOW_COST_PER_POINT < self.kept.numel() * offsets_left:
                return d_done, self._open_pixels()
            if self.label_p is None or self.unlabelled_edges * _RELABEL_EDGES > self.kept.numel():
                self._labels()
            kept, kept_p, count = self.kept, self.kept_p, self.count
            forward = [(dy, dx) for dy, dx in rings[d2] if _is_forward(dy, dx)]
            pairs = torch.empty((len(forward),) + kept.shape, dtype=torch.bool, device=device)
            differ, scratch = torch.empty_like(kept), torch.empty_like(kept)
            for dy, dx in rings[d2]:
                count += shifter.view(self.unit_p, dy, dx)
            if count.dtype == torch.uint8:
                torch.minimum(count, self.k_row, out=count)
            # Early rings of dense maps: every point is still open, and the open test can go.
            all_open = bool(torch.equal(open_, kept))
            for pair, (dy, dx) in zip(pairs, forward):
                torch.logical_and(kept, shifter.view(kept_p, dy, dx), out=pair)
                if not all_open:
                    pair &= open_ | shifter.view(self.open_p, dy, dx)
                for i, plane in enumerate(self.label_p):
                    torch.ne(self._interior(plane), shifter.view(plane, dy, dx), out=differ if i == 0 else scratch)
                    if i:
                        differ |= scratch
                pair &= differ
            steps = [dy * w + dx for dy, dx in forward]
            found = _flat_nonzero(pairs)
            per_offset = kept.numel()
            which, local = torch.div(found, per_offset, rounding_mode="floor"), found % per_offset
            if local.numel():
                row = torch.div(local, hw, rounding_mode="floor")
                pixel = self.samples.index_select(0, row) * hw + local % hw
                self.forest.connect(
                    self.run_of_pixel.index_select(0, pixel),
                    self.run_of_pixel.index_select(0, pixel + torch.tensor(steps, device=device).index_select(0, which)),
                    d2,
                )
                self.unlabelled_edges += local.numel()
            torch.logical_and(kept, torch.lt(count, self.k_row), out=open_)
            d_done = d2
        return d_done, self._open_pixels()


def _segments(lengths: Tensor) -> tuple[Tensor, Tensor]:
    """For consecutive segments of the given lengths: the segment of each element and its position in it."""
    segment = torch.repeat_interleave(torch.arange(lengths.numel(), device=lengths.device), lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    return segment, torch.arange(segment.numel(), device=lengths.device) - starts.index_select(0, segment)


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
    marks = torch.arange(1, max(1, math.ceil(total / _WINDOW_CHUNK)), device=device) * _WINDOW_CHUNK
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
