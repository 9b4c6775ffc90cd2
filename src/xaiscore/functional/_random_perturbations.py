"""Random draws for the stochastic faithfulness kernels (ROAD noise, infidelity, random subsets).

Every draw is a pure function of a per-item key (drawn up front from the
caller's ``torch.Generator`` by :func:`xaiscore._perturb.random_keys`) and of
the position within the item, built on the counter-based
:func:`xaiscore._perturb.counter_uniform`. A chunk of items therefore sees the
same numbers whatever ``max_batch_size`` is, and nothing of the size of the
whole logical batch is ever held in memory. Tests regenerate the exact draws
of a kernel by calling these functions with the same keys.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from xaiscore._perturb import counter_uniform

__all__ = ["counter_normal", "random_subsets", "random_patch_masks"]


def counter_normal(keys: Tensor, size: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal noise ``(n, size)`` as a pure function of ``keys`` ``(n,)`` (Box-Muller).

    Two independent uniform streams per key (columns ``[0, size)`` and
    ``[size, 2 size)`` of :func:`counter_uniform`) give
    ``sqrt(-2 log(1 - u1)) cos(2 pi u2)``, computed in float64.

    Example:
        >>> from xaiscore._perturb import random_keys
        >>> keys = random_keys(3, torch.Generator().manual_seed(0))
        >>> z = counter_normal(keys, 4)
        >>> z.shape, torch.equal(z[1:], counter_normal(keys[1:], 4))
        (torch.Size([3, 4]), True)
    """
    u1 = counter_uniform(keys, size, dtype=torch.float64)
    u2 = counter_uniform(keys, size, dtype=torch.float64, offset=size)
    radius = torch.sqrt(-2.0 * torch.log1p(-u1))
    return (radius * torch.cos((2.0 * math.pi) * u2)).to(dtype)


def random_subsets(keys: Tensor, n_features: int, subset_size: int | Tensor) -> Tensor:
    """A uniformly random subset of ``[0, n_features)`` per key: ``(n, n_features)`` bool.

    The subset of row ``i`` holds the ``subset_size`` (an int, or ``(n,)``
    sizes per row) features with the smallest :func:`counter_uniform` values of
    ``keys[i]`` (ties have probability ~0 and go to the lower index), i.e. a
    draw without replacement. For a fixed key, smaller subsets are nested in
    larger ones.

    Example:
        >>> from xaiscore._perturb import random_keys
        >>> chosen = random_subsets(random_keys(2, torch.Generator().manual_seed(0)), 10, torch.tensor([3, 5]))
        >>> chosen.shape, chosen.sum(1).tolist()
        (torch.Size([2, 10]), [3, 5])
    """
    values = counter_uniform(keys, n_features, dtype=torch.float64)
    order = torch.sort(values, dim=1, stable=True).indices
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(n_features, device=keys.device).expand_as(order))
    sizes = subset_size.reshape(-1, 1) if isinstance(subset_size, Tensor) else subset_size
    return ranks < sizes


def random_patch_masks(keys: Tensor, spatial: tuple[int, ...], patch_sizes: tuple[int, ...]) -> Tensor:
    """One random square (cube) patch per key, fully inside the grid: ``(n, 1, *spatial)`` bool.

    The side is drawn uniformly from ``patch_sizes`` (each at most the
    smallest spatial size), then the corner uniformly among the positions that
    keep the patch inside, independently per axis (column 0 of the key's
    uniform stream picks the side, column ``1 + axis`` the corner).

    Example:
        >>> from xaiscore._perturb import random_keys
        >>> masks = random_patch_masks(random_keys(4, torch.Generator().manual_seed(0)), (6, 6), (2, 3))
        >>> masks.shape, sorted(set(masks.sum((1, 2, 3)).tolist())) in ([4], [9], [4, 9])
        (torch.Size([4, 1, 6, 6]), True)
    """
    device = keys.device
    uniforms = counter_uniform(keys, 1 + len(spatial), dtype=torch.float64)
    sizes = torch.tensor(patch_sizes, dtype=torch.long, device=device)
    choice = (uniforms[:, 0] * len(patch_sizes)).long().clamp(max=len(patch_sizes) - 1)
    side = sizes.index_select(0, choice)  # (n,)
    mask = torch.ones((keys.shape[0],) + tuple(spatial), dtype=torch.bool, device=device)
    for axis, n in enumerate(spatial):
        positions = n - side + 1  # valid corners 0 .. n - side
        corner = (uniforms[:, 1 + axis] * positions.to(torch.float64)).long()
        corner = torch.minimum(corner, positions - 1)
        coordinate = torch.arange(n, device=device).unsqueeze(0)
        inside = (coordinate >= corner.unsqueeze(1)) & (coordinate < (corner + side).unsqueeze(1))  # (n_keys, n)
        view = [keys.shape[0]] + [1] * len(spatial)
        view[1 + axis] = n
        mask &= inside.reshape(view)
    return mask.unsqueeze(1)
