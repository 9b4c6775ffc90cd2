"""Batched rank statistics for the meta-evaluation: Wilcoxon signed-rank p-values, Kendall's tau-b,
ranks.

Kendall's tau-b is :func:`xaiscore.stats.kendall_tau_b`, re-exported here (one
implementation for the whole library).

Every function works on the last axis of its inputs, for any number of leading
(batch) axes, with an optional ``valid`` mask that drops entries (pairs) from
the statistic, all in float64 on the input's device, without host
synchronisation and without a Python loop over rows.

Wilcoxon signed-rank test (Wilcoxon 1945), as ``scipy.stats.wilcoxon`` with
``zero_method="zsplit"`` (the choice of MetaQuantus) and no continuity
correction (scipy's default): for the paired differences ``d = x - y`` of the
valid pairs, rank ``|d|`` (ties get their average rank, zero differences
included), ``R+ = sum of the ranks of d > 0 + half the ranks of d == 0``, and

* **exact** null distribution of ``R+`` (all ``2^n`` sign patterns equally
  likely) when ``n <= 50`` and there are no zero differences and no tied
  ``|d|``: two-sided ``p = min(1, 2 min(P(R+ <= r), P(R+ >= r)))``;
* otherwise the **normal approximation**
  ``z = (R+ - n(n+1)/4) / sqrt((n(n+1)(2n+1) - sum_g (t_g^3 - t_g) / 2) / 24)``
  with ``t_g`` the sizes of the tie groups, two-sided ``p = erfc(|z| / sqrt 2)``.

This is scipy's ``method="auto"`` rule except where scipy (1.13 and later)
runs a permutation test (ties or zeros and ``n <= 13``); there we keep the
normal approximation, so the p-value does not depend on the scipy version.
``n = 0`` valid pairs gives NaN.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
from torch import Tensor

from xaiscore._checks import OptionError, ShapeError, check_option
from xaiscore.stats.kendall import kendall_tau_b

__all__ = ["EXACT_MAX_N", "wilcoxon_p_value", "kendall_tau_b", "average_ranks_small"]

#: Largest number of pairs for which the exact null distribution is used (scipy's threshold).
EXACT_MAX_N = 50

Alternative = Literal["two-sided", "greater"]


@functools.lru_cache(maxsize=None)
def _exact_tables(device: torch.device) -> tuple[Tensor, Tensor]:
    """``(cdf, sf)`` of the signed-rank statistic, float64 ``(EXACT_MAX_N + 1, K)``.

    ``cdf[n, k] = P(R+ <= k)`` and ``sf[n, k] = P(R+ >= k)`` under the null for
    ``n`` pairs, ``k = 0 .. n(n+1)/2`` (entries beyond hold 1 and 0).
    Counts come from the generating function ``prod_{j=1..n} (1 + z^j)``, exact
    in float64 (they stay below 2^50).
    """
    top = EXACT_MAX_N * (EXACT_MAX_N + 1) // 2
    counts = torch.zeros(EXACT_MAX_N + 1, top + 1, dtype=torch.float64)
    row = torch.zeros(top + 1, dtype=torch.float64)
    row[0] = 1.0
    counts[0] = row
    for n in range(1, EXACT_MAX_N + 1):
        shifted = torch.zeros_like(row)
        shifted[n:] = row[:-n]
        row = row + shifted
        counts[n] = row
    total = 2.0 ** torch.arange(EXACT_MAX_N + 1, dtype=torch.float64).unsqueeze(1)
    pmf = counts / total
    cdf = pmf.cumsum(1)
    sf = pmf.flip(1).cumsum(1).flip(1)
    return cdf.to(device), sf.to(device)


def _sorted_groups(values: Tensor) -> tuple[Tensor, Tensor]:
    """For rows sorted ascending: ``(first, last)`` position of each entry's tie group."""
    n = values.shape[-1]
    position = torch.arange(n, device=values.device).expand_as(values)
    differs = values[..., 1:] != values[..., :-1]
    first = torch.ones(values.shape, dtype=torch.bool, device=values.device)
    first[..., 1:] = differs
    last = torch.ones_like(first)
    last[..., :-1] = differs
    start = torch.cummax(torch.where(first, position, 0), dim=-1).values
    end = torch.cummin(torch.where(last, position, n - 1).flip(-1), dim=-1).values.flip(-1)
    return start, end


def wilcoxon_p_value(
    x: Tensor,
    y: Tensor,
    valid: Tensor | None = None,
    *,
    alternative: Alternative = "two-sided",
) -> Tensor:
    r"""Wilcoxon signed-rank p-values for paired samples along the last axis
    (see the module docstring).

    Args:
        x, y: Paired samples, broadcastable to a common shape ``(..., N)``.
        valid: Bool, broadcastable to the same shape: the pairs to use. Pairs
            with a non-finite difference are always dropped.
        alternative: ``"two-sided"`` (default), or ``"greater"`` (``x`` tends
            to exceed ``y``; ``p`` is small when it does).

    Returns:
        ``(...)`` float64 p-values; NaN where no pair is valid.

    Shape:
        - x, y, valid: ``(..., N)`` (broadcastable)
        - output: ``(...)``

    Example:
        >>> x = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
        >>> y = torch.zeros(2, 6)
        >>> [round(p, 4) for p in wilcoxon_p_value(x, y).tolist()]  # exact; normal approximation (ties)
        [0.0312, 0.0143]
        >>> wilcoxon_p_value(x, x).tolist()  # all differences zero: no evidence of a shift
        [1.0, 1.0]
    """  # noqa: E501
    check_option(alternative, "alternative", ("two-sided", "greater"))
    x, y = torch.broadcast_tensors(x.to(torch.float64), y.to(torch.float64))
    d = x - y
    if d.ndim == 0:
        raise ShapeError("Expected `x` and `y` with a sample axis (the last), but got scalars.")
    keep = torch.isfinite(d)
    if valid is not None:
        keep = keep & torch.broadcast_to(valid, d.shape)
    magnitude = torch.where(keep, d.abs(), torch.full_like(d, math.inf))
    order = torch.argsort(magnitude, dim=-1, stable=True)
    sorted_magnitude = magnitude.gather(-1, order)
    sorted_d = d.gather(-1, order)
    sorted_keep = keep.gather(-1, order)
    start, end = _sorted_groups(sorted_magnitude)
    # 1-based average ranks; invalid entries sort last
    rank = (start + end + 2).to(torch.float64) / 2.0
    positive = sorted_keep & (sorted_d > 0)
    zero = sorted_keep & (sorted_d == 0)
    r_plus = (rank * positive).sum(-1) + (rank * zero).sum(-1) / 2.0
    n = sorted_keep.sum(-1)
    group = (end - start + 1).to(torch.float64)
    tie_term = ((group * group - 1.0) * sorted_keep).sum(-1)  # = sum over groups of t^3 - t
    n_float = n.to(torch.float64)
    has_zero = zero.any(-1)
    has_ties = (tie_term > 0)
    exact = (n <= EXACT_MAX_N) & ~has_zero & ~has_ties & (n > 0)

    mean = n_float * (n_float + 1.0) / 4.0
    variance = (n_float * (n_float + 1.0) * (2.0 * n_float + 1.0) - tie_term / 2.0) / 24.0
    se = variance.clamp(min=0.0).sqrt()
    z = (r_plus - mean) / torch.where(se > 0, se, torch.ones_like(se))
    if alternative == "two-sided":
        p_normal = torch.special.erfc(z.abs() / math.sqrt(2.0))
    else:
        p_normal = 0.5 * torch.special.erfc(z / math.sqrt(2.0))
    p_normal = torch.where(se > 0, p_normal, torch.ones_like(p_normal))

    cdf, sf = _exact_tables(d.device)
    n_index = n.clamp(max=EXACT_MAX_N)
    k = r_plus.round().to(torch.int64).clamp(0, cdf.shape[1] - 1)
    flat_index = n_index * cdf.shape[1] + k
    lower = cdf.reshape(-1)[flat_index.reshape(-1)].reshape(k.shape)
    upper = sf.reshape(-1)[flat_index.reshape(-1)].reshape(k.shape)
    if alternative == "two-sided":
        p_exact = (2.0 * torch.minimum(lower, upper)).clamp(max=1.0)
    else:
        p_exact = upper
    p = torch.where(exact, p_exact, p_normal)
    return torch.where(n > 0, p, torch.full_like(p, math.nan))


def average_ranks_small(values: Tensor, dim: int = -1) -> Tensor:
    """1-based ranks along ``dim`` with ties sharing their average rank (pairwise; for short axes).

    NaN entries get NaN ranks and do not count for the others.

    Example:
        >>> average_ranks_small(torch.tensor([3.0, 1.0, 3.0, 2.0])).tolist()
        [3.5, 1.0, 3.5, 2.0]
    """
    if values.ndim == 0:
        raise OptionError(
            "Expected a tensor with at least one axis to rank along, but got a scalar.")
    v = values.to(torch.float64).movedim(dim, -1)
    finite = torch.isfinite(v)
    below = ((v.unsqueeze(-2) < v.unsqueeze(-1)) & finite.unsqueeze(-2)).sum(-1)
    tied = ((v.unsqueeze(-2) == v.unsqueeze(-1)) & finite.unsqueeze(-2)).sum(-1)
    ranks = below.to(torch.float64) + (tied.to(torch.float64) + 1.0) / 2.0
    ranks = torch.where(finite, ranks, torch.full_like(ranks, math.nan))
    return ranks.movedim(-1, dim)
