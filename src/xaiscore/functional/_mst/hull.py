"""Convex hull areas of each sample's points, exact, from the extreme pixel of each row."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["hull_areas"]


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
    # survivors first, in order
    order = torch.argsort((~candidate).to(torch.int8), dim=1, stable=True)[:, :m]
    valid = candidate.gather(1, order)
    y = order.double()
    value = g.gather(1, order).double()
    rise = y.unsqueeze(1) - y.unsqueeze(2)  # [a, i] = y_i - y_a
    pair = valid.unsqueeze(2) & valid.unsqueeze(1) & (rise > 0)
    slope = (value.unsqueeze(1) - value.unsqueeze(2)) / torch.where(rise > 0, rise,
                                                                    torch.ones_like(rise))
    from_before = torch.where(pair, slope, -math.inf).amax(1)  # max over earlier a, indexed by i
    to_after = torch.where(pair, slope, math.inf).amin(2)  # min over later i, indexed by a
    vertex = valid & (from_before <= to_after)
    return torch.zeros_like(candidate).scatter_(1, order, vertex)


def hull_areas(kept: Tensor) -> Tensor:
    """Area of the convex hull of each sample's kept pixels (row, column), ``(B, H, W) -> (B,)``
    float64.

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
