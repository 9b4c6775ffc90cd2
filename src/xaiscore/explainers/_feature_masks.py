"""Feature masks for captum's feature-group methods (FeatureAblation, KernelShap, Lime).

A feature mask gives every input element the id of the feature (superpixel) it belongs to;
captum perturbs a feature's elements together. Two sources:

* a regular **grid** of ``g_1 x ... x g_d`` cells (:func:`grid_feature_mask`): cell ``k`` along an
  axis of ``side`` pixels holds pixels ``j`` with ``floor(j * g / side) = k``, so cells differ in
  size by at most one pixel; all channels of a pixel share its cell;
* a **user label map**: a long tensor of shape ``S``, ``(1|n, 1|C, *S)``, or a callable
  ``feature_mask(x) -> (1|n, 1|C, *S)`` for per-input superpixels (e.g. SLIC). Ids need not be
  contiguous: they are renumbered to ``0 .. F - 1`` in increasing order (captum counts
  ``max + 1`` features).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from xaiscore._checks import DTypeError, OptionError, ShapeError
from xaiscore._engine.explain_fn import format_shape

__all__ = [
    "grid_feature_mask",
    "check_grid",
    "check_feature_mask",
    "resolve_feature_mask",
    "FeatureMaskSource",
]

FeatureMaskSource = Tensor | Callable[[Tensor], Tensor]


def check_grid(grid: object) -> int | tuple[int, ...]:
    """Raise :class:`OptionError` unless ``grid`` is a positive int or ints per axis."""
    counts = [grid] if isinstance(grid, int) else list(grid) if isinstance(grid, Sequence) else None
    if not counts or any(isinstance(g, bool) or not isinstance(g, int) or g < 1 for g in counts):
        raise OptionError(
            f"Expected `grid` to be a positive int or a sequence of them (cells per axis), "
            f"but got {grid!r}."
        )
    return grid if isinstance(grid, int) else tuple(counts)


def _grid_counts(grid: int | Sequence[int], spatial: tuple[int, ...]) -> tuple[int, ...]:
    counts = (grid,) * len(spatial) if isinstance(grid, int) else tuple(grid)
    if len(counts) != len(spatial) or any(
        isinstance(g, bool) or not isinstance(g, int) or g < 1 for g in counts
    ):
        raise OptionError(
            f"Expected `grid` to be a positive int or one positive int per spatial dim "
            f"{format_shape(spatial)}, but got {grid!r}."
        )
    if any(g > side for g, side in zip(counts, spatial)):
        raise OptionError(
            f"Expected `grid` to have at most as many cells as pixels per axis "
            f"{format_shape(spatial)}, but got {counts!r}."
        )
    return counts


def grid_feature_mask(
    spatial_shape: Sequence[int],
    grid: int | Sequence[int],
    device: torch.device | str | None = None,
) -> Tensor:
    """Feature ids ``(1, 1, *S)`` of a grid of ``grid`` cells per axis (row-major cell numbering).

    Raises:
        OptionError: a cell count below 1, above the side, or of the wrong length.

    Example:
        >>> grid_feature_mask((4, 6), (2, 3))[0, 0].tolist()
        [[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5], [3, 3, 4, 4, 5, 5]]
    """
    spatial = tuple(int(s) for s in spatial_shape)
    counts = _grid_counts(grid, spatial)
    ids = torch.zeros((), dtype=torch.long, device=device)
    for side, count in zip(spatial, counts):
        cell = torch.arange(side, device=device) * count // side
        ids = ids.unsqueeze(-1) * count + cell
    return ids.reshape((1, 1) + spatial)


def _renumber(mask: Tensor) -> Tensor:
    values, inverse = torch.unique(mask, sorted=True, return_inverse=True)
    return inverse.reshape(mask.shape)


def check_feature_mask(mask: object, x: Tensor, *, name: str = "feature_mask") -> Tensor:
    """Check a label map against ``x``; return it as ``(1|n, 1|C, *S)`` long ids ``0 .. F - 1``."""
    if not isinstance(mask, Tensor):
        raise DTypeError(
            f"Expected `{name}` to be a tensor of feature ids or a callable, but got "
            f"{type(mask).__name__}."
        )
    if mask.is_floating_point() or mask.is_complex() or mask.dtype == torch.bool:
        raise DTypeError(
            f"Expected `{name}` to hold integer feature ids, but got dtype {mask.dtype}."
        )
    spatial = tuple(x.shape[2:])
    if tuple(mask.shape) == spatial:
        mask = mask.reshape((1, 1) + spatial)
    if (
        mask.ndim != x.ndim
        or tuple(mask.shape[2:]) != spatial
        or mask.shape[0] not in (1, x.shape[0])
        or mask.shape[1] not in (1, x.shape[1])
    ):
        raise ShapeError(
            f"Expected `{name}` of shape {format_shape(spatial)} or (1|n, 1|C, *S) = "
            f"({x.shape[0]} or 1, {x.shape[1]} or 1, {', '.join(map(str, spatial))}) for inputs "
            f"{format_shape(x.shape)}, but got {format_shape(mask.shape)}."
        )
    if mask.numel() and int(mask.min()) < 0:
        raise OptionError(
            f"Expected `{name}` to hold non-negative feature ids, but got {int(mask.min())}."
        )
    return _renumber(mask.to(device=x.device, dtype=torch.long))


def resolve_feature_mask(
    source: FeatureMaskSource | None, grid: int | Sequence[int] | None, x: Tensor
) -> Tensor:
    """The captum ``feature_mask`` for ``x``: the user's map or callable, else ``grid``'s cells."""
    spatial = tuple(x.shape[2:])
    if source is None:
        return grid_feature_mask(
            spatial,
            grid if grid is not None else tuple(min(8, s) for s in spatial),
            device=x.device,
        )
    if callable(source) and not isinstance(source, Tensor):
        return check_feature_mask(source(x), x, name="feature_mask(x)")
    return check_feature_mask(source, x)
