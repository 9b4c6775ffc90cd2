"""Lattice geometry of the k-NN graph on the pixel grid: offsets, rings, witnesses."""

from __future__ import annotations

import math
from functools import lru_cache

__all__ = ["always_present_d2"]


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
    """The largest squared lattice distance ``D`` at which fewer than ``k`` offsets are strictly
    closer.

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
    """The lattice offsets ``(dy, dx)`` with ``0 < dy^2 + dx^2 <= max_d2``, grouped by
    ``dy^2 + dx^2``."""
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


def _near_witnesses(dy: int, dx: int) -> tuple[tuple[int, int], ...]:
    """The witnesses of a near offset, closest first."""
    ranked = sorted(_witnesses(dy, dx), key=lambda r: (r[0] ** 2 + r[1] ** 2,
                                                       abs(r[0] - dy) + abs(r[1] - dx), r))
    return tuple(ranked)
