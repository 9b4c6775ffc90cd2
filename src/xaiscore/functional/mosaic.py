"""Mosaic localization: grids of images whose ground truth is which tile holds the target class.

A *mosaic* is an ``n x n`` grid of images (tiles); the target class is shown in some tiles
and not in the others, so a faithful explanation of the target class should put its
positive relevance in the target tiles. Two protocols:

* the **grid pointing game** (Böhle et al. 2021; Rao, Böhle and Schiele, CVPR 2022,
  "Towards better understanding attribution methods"): every tile shows a different class,
  each classified confidently on its own; the score of a target tile is its share of the
  positive attribution, chance level ``1 / n^2``;
* **Focus** (Arias-Duart et al. 2022, "Focus! Rating XAI methods and finding biases"): 2 x 2
  mosaics with two tiles of the target class; the score is the share of the positive
  relevance in those two tiles (chance level 1/2), as Quantus' ``Focus``.

:func:`make_mosaics` builds mosaics from a dataset and a model; the kernels take the
attributions of the mosaics and ``tiles``, which tiles are targets: ``(B, n^2)`` flags in
raster order (top-left, top-right, ..., row by row; for 2 x 2 Quantus' ``(top_left,
top_right, bottom_left, bottom_right)``) or ``(B,)`` the index of the one target tile.

Tile geometry: on a map of height ``H``, tile row ``i`` covers rows
``floor(i H / n) .. floor((i + 1) H / n) - 1`` (columns alike), so tiles are equal when ``n``
divides the size (always for :func:`make_mosaics`), and for ``n = 2`` the split is at
``H // 2`` and ``W // 2`` as in Quantus' ``Focus``. See ``docs/box_localization.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from xaiscore._checks import (
    DTypeError,
    MaskError,
    OptionError,
    ShapeError,
    check_attributions,
    check_fraction,
    check_positive_int,
    check_same_device,
    check_tensor,
)
from xaiscore._engine.batching import call_model, check_max_batch_size, chunked_map
from xaiscore._engine.random import resolve_generator
from xaiscore._engine.reduction import ChannelReduction
from xaiscore.functional._common import nan_where, prepare_map_and_mask

__all__ = ["Mosaics", "make_mosaics", "grid_pointing_game", "focus", "tile_index"]


def tile_index(spatial: tuple[int, int], grid: int, *,
               device: torch.device | str | None = None) -> Tensor:
    """The tile of every pixel of an ``n x n`` grid over a ``(H, W)`` map, in raster order.

    Tile row ``i`` covers rows ``floor(i H / n) .. floor((i + 1) H / n) - 1``; columns alike.

    Raises:
        ShapeError: ``spatial`` not two positive ints.
        DTypeError: ``grid`` not an int.
        OptionError: ``grid`` below 2.

    Shape:
        - output: ``(H, W)`` long in ``[0, n^2)``

    Example:
        >>> tile_index((3, 4), 2).tolist()
        [[0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    """
    if (not isinstance(spatial, (tuple, list)) or len(spatial) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in spatial)):
        raise ShapeError(
            f"Expected `spatial` as (H, W) with two positive ints, but got {spatial!r}.")
    grid = check_positive_int(grid, "grid", minimum=2)
    height, width = spatial
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    row_bounds = torch.tensor([i * height // grid for i in range(1, grid)], device=device,
                              dtype=torch.long)
    col_bounds = torch.tensor([i * width // grid for i in range(1, grid)], device=device,
                              dtype=torch.long)
    row_tile = (rows[:, None] >= row_bounds[None, :]).sum(1)
    col_tile = (cols[:, None] >= col_bounds[None, :]).sum(1)
    return row_tile[:, None] * grid + col_tile[None, :]


def _grid_of(count: int) -> int:
    side = math.isqrt(count)
    if side < 2 or side * side != count:
        raise ShapeError(
            f"Expected `tiles` flags for n x n tiles (4, 9, 16, ... per row), but got {count}.")
    return side


def _tile_flags(tiles: Tensor, batch: int, grid: int | None, device: torch.device,
                validate: bool) -> tuple[Tensor, int]:
    """``tiles`` as ``(B, n^2)`` bool flags and the grid size ``n``."""
    tiles = check_tensor(tiles, "tiles")
    if tiles.is_floating_point() or tiles.is_complex():
        raise DTypeError(
            f"Expected `tiles` as bool flags or integer tile indices, but got dtype {tiles.dtype}.")
    check_same_device(tiles, torch.empty(0, device=device), reference_name="tiles", other_name="a")
    if tiles.ndim == 2 and tiles.shape[0] == batch:
        side = _grid_of(tiles.shape[1])
        if grid is not None and check_positive_int(grid, "grid", minimum=2) != side:
            raise ShapeError(
                f"Expected `tiles` with {grid * grid} flags per row for grid={grid}, but got "
                f"{tiles.shape[1]}.")
        if validate and tiles.dtype != torch.bool and bool(((tiles != 0) & (tiles != 1)).any()):
            raise MaskError(
                "Expected `tiles` flags of 0 or 1 (1: the tile shows the target class).")
        return tiles.bool(), side
    if tiles.ndim == 1 and tiles.shape[0] == batch and tiles.dtype != torch.bool:
        side = 2 if grid is None else check_positive_int(grid, "grid", minimum=2)
        if validate and batch and (int(tiles.min()) < 0 or int(tiles.max()) >= side * side):
            raise OptionError(
                f"Expected tile indices in [0, {side * side}) for a {side} x {side} grid, but got "
                f"values in [{int(tiles.min())}, {int(tiles.max())}].")
        return F.one_hot(tiles.long().clamp(0, side * side - 1), side * side).bool(), side
    raise ShapeError(
        f"Expected `tiles` as ({batch}, n^2) flags or ({batch},) tile indices, but got shape "
        f"{tuple(tiles.shape)}.")


def _positive_share(a: Tensor, tiles: Tensor, grid: int | None,
                    reduce_channels: ChannelReduction | None,
                    validate: bool) -> Tensor:
    a = check_attributions(a, min_spatial_dims=2, max_spatial_dims=2, validate=validate)
    flags, side = _tile_flags(tiles, a.shape[0], grid, a.device, validate)
    # (B, 1, H, W)
    mask = flags[:, tile_index(tuple(a.shape[2:]), side, device=a.device)].unsqueeze(1)
    a_flat, mask_flat = prepare_map_and_mask(a, mask, channel_reduction=reduce_channels,
                                             validate=False)
    positive = a_flat.clamp(min=0)
    inside = (positive * mask_flat).sum(1)
    total = positive.sum(1)
    share = inside / torch.where(total > 0, total, torch.ones_like(total))
    return nan_where((total <= 0) | ~flags.any(1), share)


def grid_pointing_game(
    a: Tensor,
    tiles: Tensor,
    *,
    grid: int | None = None,
    reduce_channels: ChannelReduction | None = "sum",
    validate: bool = True,
) -> Tensor:
    r"""Grid pointing game (Rao, Böhle and Schiele, CVPR 2022): the target tile's share of the
    positive attribution.

    .. math:: L = \frac{\sum_{p \in T} a_p^+}{\sum_p a_p^+}

    with ``T`` the pixels of the target tile(s) of the mosaic and ``a^+ = max(a, 0)`` (channels
    reduced first with ``reduce_channels``). An attribution spread uniformly scores the target
    tiles' share of the area, ``1 / n^2`` for one tile of an ``n x n`` grid (chance level).
    Rao et al. score 0 when the map has no positive attribution; here that is undefined (NaN).

    Args:
        a: Attributions of the mosaics ``(B, C, H, W)``.
        tiles: The target tiles: ``(B, n^2)`` bool (or 0/1) flags in raster order, or ``(B,)``
            integer index of the one target tile (with ``grid``, default 2).
        grid: The grid size ``n`` (inferred from flags; checked against them when given).
        reduce_channels: ``"sum"`` (default), ``"mean"``, ``"max_abs"`` or ``None`` (every
            channel value its own feature).
        validate: Check values (finite ``a``, 0/1 flags, indices in range).

    Returns:
        ``(B,)`` in [0, 1]; NaN without positive attribution or without a target tile.

    Shape:
        - a: ``(B, C, H, W)``; tiles: ``(B, n^2)`` or ``(B,)``; output: ``(B,)``

    Example:
        >>> a = torch.zeros(2, 1, 4, 4); a[0, 0, 0, 2] = 3.0; a[0, 0, 3, 3] = 1.0; a[1, 0] = 1.0
        >>> grid_pointing_game(a, torch.tensor([1, 1])).tolist()  # target: the top-right tile
        [0.75, 0.25]
    """
    return _positive_share(a, tiles, grid, reduce_channels, validate)


def focus(
    a: Tensor,
    tiles: Tensor,
    *,
    reduce_channels: ChannelReduction | None = None,
    validate: bool = True,
) -> Tensor:
    r"""Focus (Arias-Duart et al. 2022): the share of the positive relevance in the tiles of the
    target class of a 2 x 2 mosaic.

    .. math:: \mathrm{Focus} = \frac{\sum_{p \in T} a_p^+}{\sum_p a_p^+}

    with ``T`` the two tiles (of four) that show the target class: chance level 1/2. As
    Quantus' ``Focus``, every channel value counts as a feature by default
    (``reduce_channels=None``), and the mosaic is split at ``H // 2`` and ``W // 2``.
    Quantus divides by ``total + 1e-9`` (0 without positive relevance); here that is NaN.

    Args:
        a: Attributions of the mosaics ``(B, C, H, W)``.
        tiles: ``(B, 4)`` bool (or 0/1) flags (top-left, top-right, bottom-left,
            bottom-right), Quantus' ``custom_batch``/``p_batch``; or ``(B,)`` one tile index.
        reduce_channels: ``None`` (default, Quantus), ``"sum"``, ``"mean"`` or ``"max_abs"``.
        validate: Check values.

    Returns:
        ``(B,)`` in [0, 1]; NaN without positive relevance or without a target tile.

    Shape:
        - a: ``(B, C, H, W)``; tiles: ``(B, 4)`` or ``(B,)``; output: ``(B,)``

    Example:
        >>> a = torch.zeros(1, 1, 4, 4); a[0, 0, :2, :2] = 1.0; a[0, 0, 2:, 2:] = 3.0
        >>> focus(a, torch.tensor([[True, False, False, True]])).tolist()
        [1.0]
    """
    return _positive_share(a, tiles, 2, reduce_channels, validate)


# --- building mosaics -----------------------------------------------------------------------------


class Mosaics(NamedTuple):
    """Mosaics built by :func:`make_mosaics`.

    Attributes:
        x: ``(M, C, n H, n W)`` the mosaic images, in the images' dtype and device.
        target: ``(M,)`` long, the target class of each mosaic.
        tiles: ``(M, n^2)`` bool, the tiles that show the target class (raster order).
        target_tile: ``(M,)`` long, the first target tile.
        mask: ``(M, 1, n H, n W)`` bool, the pixels of the target tiles.
        tile_masks: ``(n^2, n H, n W)`` bool, the pixels of each tile (the same for all mosaics).
        tile_classes: ``(M, n^2)`` long, the class shown in each tile.
        tile_indices: ``(M, n^2)`` long, the index in ``images`` of each tile.
    """

    x: Tensor
    target: Tensor
    tiles: Tensor
    target_tile: Tensor
    mask: Tensor
    tile_masks: Tensor
    tile_classes: Tensor
    tile_indices: Tensor


def _confident(forward_fn: Callable[[Tensor], Tensor], images: Tensor, labels: Tensor | None,
               min_confidence: float, max_batch_size: int) -> tuple[Tensor, Tensor, int]:
    """Each image's class, whether it is classified confidently, and the number of classes."""
    probs = chunked_map(images.shape[0],
                        lambda s, e: call_model(forward_fn, images[s:e]).softmax(dim=1),
                        max_batch_size=max_batch_size)
    predicted = probs.argmax(dim=1)
    if labels is None:
        classes = predicted
        ok = torch.ones_like(predicted, dtype=torch.bool)
    else:
        labels = check_tensor(labels, "labels")
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise DTypeError(
                f"Expected `labels` to hold integer class indices, but got dtype {labels.dtype}.")
        if labels.shape != (images.shape[0],):
            raise ShapeError(
                f"Expected `labels` of shape ({images.shape[0]},), but got {tuple(labels.shape)}.")
        classes = labels.to(probs.device).long()
        if bool(((classes < 0) | (classes >= probs.shape[1])).any()):
            raise OptionError(f"Expected `labels` in [0, {probs.shape[1]}) (the model's classes).")
        ok = predicted == classes
    confidence = probs.gather(1, classes[:, None]).squeeze(1)
    return classes, ok & (confidence >= min_confidence), probs.shape[1]


def _draw_distinct(uniform: Tensor, counts: Tensor) -> Tensor:
    """``(M, t)`` distinct ranks in ``[0, counts)`` from ``(M, t)`` uniforms (``counts >= t``)."""
    taken: list[Tensor] = []
    for j in range(uniform.shape[1]):  # t <= n^2 draws: a handful
        rank = (uniform[:, j] * (counts - j)).long().clamp(max=counts - j - 1)
        for previous in _sorted_columns(taken):  # skip the ranks already taken, in increasing order
            rank = rank + (rank >= previous).long()
        taken.append(rank)
    return torch.stack(taken, dim=1)


def _sorted_columns(columns: list[Tensor]) -> list[Tensor]:
    """The columns sorted row by row (``columns[k][m]`` is the ``k``-th smallest of row ``m``)."""
    if not columns:
        return []
    return list(torch.stack(columns, dim=1).sort(dim=1).values.unbind(dim=1))


def _layout(classes: Tensor, usable: Tensor, num_classes: int, num_mosaics: int, cells: int,
            target_tiles: int, generator: torch.Generator,
            allowed: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(M,)`` target classes and ``(M, n^2)`` image indices per tile (target tiles first)."""
    counts = torch.bincount(classes[usable], minlength=num_classes).cpu()
    others_needed = cells - target_tiles
    nonempty = counts > 0
    eligible = (counts >= target_tiles) & (int(nonempty.sum()) - 1 >= others_needed)
    if allowed is not None:
        eligible &= allowed
    if not bool(eligible.any()):
        among = "" if allowed is None else (
            f" (targets among classes {allowed.nonzero().squeeze(1).tolist()})")
        raise OptionError(
            f"Expected confidently classified images of at least {others_needed + 1} classes (one "
            f"with {target_tiles} images){among} for {cells}-tile mosaics, but got images per "
            f"class {counts.tolist()}."
        )
    gen = {"generator": generator, "device": generator.device}
    candidates = eligible.nonzero().squeeze(1)
    pick = torch.randint(candidates.numel(), (num_mosaics,), **gen).cpu()
    target = candidates[pick]
    keys = torch.rand(num_mosaics, num_classes, dtype=torch.float64, **gen).cpu()
    keys = keys.masked_fill(~nonempty[None, :], math.inf)
    keys[torch.arange(num_mosaics), target] = math.inf
    others = keys.argsort(dim=1, stable=True)[:, :others_needed]
    slot_class = torch.cat([target[:, None].expand(-1, target_tiles), others], dim=1)  # (M, n^2)
    uniform = torch.rand(num_mosaics, cells, dtype=torch.float64, **gen).cpu()
    ranks = torch.cat([_draw_distinct(uniform[:, :target_tiles], counts[target]),
                       (uniform[:, target_tiles:] * counts[others]).long().clamp(max=counts[others]
                                                                                 - 1)], dim=1)
    pool = usable.nonzero().squeeze(1).cpu()
    # usable images grouped by class
    order = pool[torch.sort(classes.cpu()[pool], stable=True).indices]
    starts = torch.cumsum(counts, 0) - counts
    return target, order[starts[slot_class] + ranks]


def make_mosaics(
    forward_fn: Callable[[Tensor], Tensor],
    images: Tensor,
    labels: Tensor | None = None,
    *,
    num_mosaics: int,
    grid: int = 2,
    target_tiles: int = 1,
    min_confidence: float = 0.99,
    target_classes: Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    max_batch_size: int = 64,
) -> Mosaics:
    """Build ``n x n`` mosaics from a dataset and a model's confident predictions.

    As Rao, Böhle and Schiele (CVPR 2022) build their grid pointing game: only images that the
    model classifies **confidently on their own** are used (softmax probability of the class
    ``>= min_confidence`` and that class the prediction; with ``labels``, the label must be
    the prediction), and the tiles of a mosaic show **different classes**. Each mosaic has
    ``target_tiles`` tiles of its target class (distinct images) and ``n^2 - target_tiles``
    tiles of other classes, all different; the tiles are placed in a random order. With
    ``grid=2, target_tiles=2`` these are the mosaics of Focus (Arias-Duart et al. 2022).

    The images are tiled as they are (no resizing): the mosaics are ``n`` times larger along
    each axis, as a fully convolutional model sees them. Images may appear in several mosaics,
    never twice in one. Deterministic for a given ``generator``/``seed`` (and model outputs).

    Args:
        forward_fn: The model, ``(N, C, H, W) -> (N, K)`` logits.
        images: ``(N, C, H, W)`` the dataset's images.
        labels: ``(N,)`` integer labels, or ``None`` to use the model's predictions.
        num_mosaics: ``M``, the number of mosaics.
        grid: ``n`` (default 2: 2 x 2 mosaics).
        target_tiles: Tiles of the target class per mosaic (1 for the grid pointing game, 2 for
            Focus), at most ``n^2 - 1``.
        min_confidence: The smallest softmax probability of a usable image's class, in [0, 1].
        target_classes: The classes a mosaic's target is drawn from (default: every class); the
            other tiles may show any class. E.g. leave out a "no finding" class, whose evidence
            is the absence of a lesion and has no place.
        generator: Random draws (target class, other classes, images, tile order).
        seed: Seeds a fresh generator when ``generator`` is ``None`` (default: 0).
        max_batch_size: The most images per model call.

    Returns:
        :class:`Mosaics`.

    Raises:
        OptionError: too few classes with confidently classified images for the layout; a
            target class out of range.

    Shape:
        - images: ``(N, C, H, W)``; labels: ``(N,)``
        - x: ``(M, C, n H, n W)``; tiles: ``(M, n^2)``; mask: ``(M, 1, n H, n W)``

    Example:
        >>> model = lambda x: 10.0 * x.mean(dim=(2, 3))  # class c: channel c is bright
        >>> images = torch.eye(4).repeat_interleave(2, 0)[:, :, None, None].expand(8, 4, 3, 3)
        >>> m = make_mosaics(model, images, num_mosaics=3, min_confidence=0.9, seed=1)
        >>> m.x.shape, m.tile_classes.unique(dim=1).shape[1] == 4  # four different classes
        (torch.Size([3, 4, 6, 6]), True)
        >>> bool((m.tile_classes.gather(1, m.target_tile[:, None]).squeeze(1) == m.target).all())
        True
    """
    images = check_attributions(images, name="images", min_spatial_dims=2, max_spatial_dims=2)
    side = check_positive_int(grid, "grid", minimum=2)
    cells = side * side
    target_tiles = check_positive_int(target_tiles, "target_tiles")
    if target_tiles >= cells:
        raise OptionError(
            f"Expected `target_tiles` below the {cells} tiles of a {side} x {side} grid, but got "
            f"{target_tiles}.")
    num_mosaics = check_positive_int(num_mosaics, "num_mosaics")
    min_confidence = check_fraction(min_confidence, "min_confidence")
    max_batch_size = check_max_batch_size(max_batch_size)
    generator = resolve_generator(generator, seed, default_seed=0)
    classes, usable, num_classes = _confident(forward_fn, images, labels, min_confidence,
                                              max_batch_size)
    allowed = None
    if target_classes is not None:
        chosen = [int(c) for c in target_classes]
        if not chosen or any(not 0 <= c < num_classes for c in chosen):
            raise OptionError(
                f"Expected `target_classes` to be class indices in [0, {num_classes}) (the "
                f"model's classes), but got {list(target_classes)!r}.")
        allowed = torch.zeros(num_classes, dtype=torch.bool)
        allowed[chosen] = True
    target, indices = _layout(classes, usable, num_classes, num_mosaics, cells, target_tiles,
                              generator, allowed)
    position = torch.rand(num_mosaics, cells, generator=generator,
                          device=generator.device).cpu().argsort(dim=1)
    tile_indices = torch.empty_like(indices).scatter_(1, position, indices)
    tile_classes = classes.cpu()[tile_indices]
    device = images.device
    height, width = images.shape[2:]
    x = images[tile_indices.reshape(-1).to(device)].reshape(num_mosaics, side, side, -1, height,
                                                            width)
    x = x.permute(0, 3, 1, 4, 2, 5).reshape(num_mosaics, -1, side * height, side * width)
    flags = (tile_classes == target[:, None]).to(device)
    tile_map = tile_index((side * height, side * width), side, device=device)
    return Mosaics(
        x=x, target=target.to(device), tiles=flags, target_tile=flags.long().argmax(dim=1),
        mask=flags[:, tile_map].unsqueeze(1),
        tile_masks=tile_map[None] == torch.arange(cells, device=device)[:, None, None],
        tile_classes=tile_classes.to(device), tile_indices=tile_indices.to(device),
    )
