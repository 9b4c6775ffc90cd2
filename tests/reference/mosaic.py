"""Slow references of the mosaic protocols, one mosaic and one tile at a time (numpy).

Rao, Böhle and Schiele 2022 (grid pointing game): the positive attribution inside the target
tile over all positive attribution. Arias-Duart et al. 2022 (Focus): the same over the tiles of
the target class of a 2 x 2 mosaic, every channel value a feature (as Quantus). Tile row ``i`` of
``n`` covers rows ``floor(i H / n)`` up to ``floor((i + 1) H / n)`` (exclusive). Nothing is shared
with ``xaiscore``.
"""

from __future__ import annotations

import math

import numpy as np


def tile_slices(height: int, width: int, n: int) -> list[tuple[slice, slice]]:
    """The ``(rows, cols)`` slices of the ``n * n`` tiles in raster order."""
    out = []
    for i in range(n):
        for j in range(n):
            rows = slice(i * height // n, (i + 1) * height // n)
            cols = slice(j * width // n, (j + 1) * width // n)
            out.append((rows, cols))
    return out


def positive_share(a: np.ndarray, flags: list[bool], n: int, reduce: str | None) -> float:
    """One mosaic's share of the positive attribution in its flagged tiles; ``a`` is ``(C, H, W)``.
    """
    if reduce == "sum":
        a = a.sum(axis=0, keepdims=True)
    positive = np.clip(a, 0, None)
    total = float(positive.sum())
    if total <= 0 or not any(flags):
        return math.nan
    inside = 0.0
    for flag, (rows, cols) in zip(flags, tile_slices(a.shape[1], a.shape[2], n)):
        if flag:
            inside += float(positive[:, rows, cols].sum())
    return inside / total
