r"""Kendall's tau-b, batched: the one implementation in xaiscore (the meta-evaluation uses it too).

Needs torch only (no scipy), so :mod:`xaiscore.meta` can use it without the
``stats`` extra; matches ``scipy.stats.kendalltau`` (tau-b) on every row.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from xaiscore._checks import DTypeError, ShapeError

__all__ = ["kendall_tau_b"]


def _as_tensor(value: Any, name: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DTypeError(f"Expected `{name}` to be a tensor or an array of numbers, but got "
                         f"{type(value).__name__}.") from None
    return torch.from_numpy(array)


def kendall_tau_b(x: Any, y: Any, valid: Any = None) -> Any:
    r"""Kendall's tau-b between ``x`` and ``y`` along the last axis (as ``scipy.stats.kendalltau``).

    .. math:: \tau_b = \frac{\sum_{i<j} s^x_{ij} s^y_{ij}}{\sqrt{\sum_{i<j} (s^x_{ij})^2
              \sum_{i<j} (s^y_{ij})^2}}, \quad s^x_{ij} = \operatorname{sign}(x_i - x_j)

    over the entries that are valid and finite in both. Builds the pairwise
    sign matrices, so it is meant for short axes (methods, not pixels); any
    number of leading (batch) axes, no Python loop, no host synchronisation.

    Args:
        x, y: Tensors (computed on their device) or numpy arrays / sequences,
            broadcastable to ``(..., L)``.
        valid: Bool, broadcastable to the same shape: the entries to use.

    Returns:
        ``(...)`` float64: a tensor when ``x`` or ``y`` is a tensor, else a
        numpy array (a 0-d array for 1-D inputs); NaN where either side is
        constant over the valid entries or fewer than two entries are valid.

    Shape:
        - x, y, valid: ``(..., L)`` (broadcastable)
        - output: ``(...)``

    Example:
        >>> x, y = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 3.0, 2.0, 4.0])
        >>> kendall_tau_b(x, y).item()
        0.6666666666666666
        >>> float(kendall_tau_b([1, 2, 3], [3, 2, 1]))
        -1.0
    """
    as_numpy = not isinstance(x, Tensor) and not isinstance(y, Tensor)
    x, y = _as_tensor(x, "x"), _as_tensor(y, "y")
    x, y = torch.broadcast_tensors(x.to(torch.float64), y.to(torch.float64))
    if x.ndim == 0:
        raise ShapeError(
            "Expected `x` and `y` with an axis to rank along (the last), but got scalars."
        )
    keep = torch.isfinite(x) & torch.isfinite(y)
    if valid is not None:
        mask = _as_tensor(valid, "valid").to(device=x.device, dtype=torch.bool)
        keep = keep & torch.broadcast_to(mask, x.shape)
    pair = keep.unsqueeze(-1) & keep.unsqueeze(-2)
    sx = torch.sign(x.unsqueeze(-1) - x.unsqueeze(-2)).nan_to_num(0.0) * pair
    sy = torch.sign(y.unsqueeze(-1) - y.unsqueeze(-2)).nan_to_num(0.0) * pair
    numerator = (sx * sy).sum((-2, -1))
    denominator = torch.sqrt((sx * sx).sum((-2, -1)) * (sy * sy).sum((-2, -1)))
    tau = numerator / torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    tau = torch.where(denominator > 0, tau, torch.full_like(tau, math.nan))
    return tau.numpy() if as_numpy else tau
