"""The salient points of MST-C: pixels at or above a percentile of their map."""

from __future__ import annotations

import math
from fractions import Fraction

import torch
from torch import Tensor

from xaiscore.functional._mst.primitives import _kth_smallest

__all__ = ["salient_points"]


def salient_points(values: Tensor, threshold: float) -> Tensor:
    """Pixels at or above the ``threshold``-th percentile of their sample, and non-zero.

    The percentile is numpy's default (linear interpolation between order statistics),
    evaluated exactly: with the ``N`` values sorted, :math:`v_{(0)} \\le \\dots \\le v_{(N-1)}`,
    and ``t = threshold / 100 * (N - 1)``, a value is at or above the percentile exactly when it
    is at least :math:`v_{(\\lfloor t \\rfloor)}` (``t`` whole) or :math:`v_{(\\lfloor t \\rfloor +
    1)}` (otherwise); no value lies strictly between two consecutive order statistics.

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
    # values >= 0, so "at least the cutoff and non-zero" is "at least
    # max(cutoff, smallest positive)".
    cutoff = cutoff.clamp(min=torch.finfo(values.dtype).tiny * torch.finfo(values.dtype).eps)
    return values >= cutoff.view(b, 1, 1)
