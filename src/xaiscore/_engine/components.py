"""Connected components of binary maps, and of every upper level set of a map at once.

Two entry points, both batched over samples with no Python loop over them:

* :func:`label_components` labels one binary map per sample, as ``scipy.ndimage.label`` does
  (labels ``1 .. n`` in raster order of each component's first pixel, 0 for background).
* :func:`component_sweep` finds the components of ``{level > k}`` for *every* threshold index
  ``k`` of a levelled map (:func:`xaiscore._engine.thresholds.threshold_levels`) in one sweep.

**Connectivity.** ``"full"`` joins pixels that touch by a face, an edge or a corner (8 in 2-D,
26 in 3-D, 2 in 1-D: ``scipy.ndimage.generate_binary_structure(d, d)``); ``"face"`` only by a
face (4 in 2-D, 6 in 3-D: ``generate_binary_structure(d, 1)``); ``"edge"`` by a face or an edge
(18 in 3-D: ``generate_binary_structure(3, 2)``, the regions of SE3D's code; as ``"full"`` in 1-D
and 2-D).

**Boxes.** A component's bounding box is end-exclusive in pixel units, as
``xaiscore.functional.boxes_to_mask`` reads boxes: ``(x0, x1)`` in 1-D, ``(x0, y0, x1, y1)``
in 2-D and ``(x0, y0, z0, x1, y1, z1)`` in 3-D, where ``x`` indexes the *last* spatial axis
(width), ``y`` the one before it (height) and ``z`` the first of three (depth): a component
covering columns 3..5 and rows 1..2 of an image has the box ``(3, 1, 6, 3)``.

**How the sweep works.** The components of the upper level sets are nested: as the threshold
falls, pixels join and components grow and merge, never split. The sweep is Kruskal's
union-find in threshold order (the construction of the max-tree, or component tree): pixels are
sorted by level once (a radix sort on CPU), then the levels are visited from the highest down;
each visit joins the pixels of that level to their already-present neighbours, for all samples
at once, with vectorised union-find (hooking each root onto the smallest neighbouring root,
path compression). Pixels are numbered in visiting order, so the smallest number in a component
is its first-visited (highest) pixel, every root is that peak, and a merged component keeps the
root of its oldest part ("elder rule"), which keeps the union-find trees shallow. The loop runs
over the *distinct levels present* (at most ``T``), each iteration vectorised over samples and
pixels; it is the sequential dimension of the component tree. Every component change creates a
*version* (sample, box, area, the threshold indices where it exists); any per-threshold question
about components (all boxes, the largest one) is then answered for all thresholds with
scatter/cumsum over versions. Work: one sort of the ``N`` pixels plus ``O(N * neighbours)``
for the sweep, instead of one labelling of ``N`` pixels per threshold.

Host synchronisation: the per-level pixel counts are read once, and each union-find step checks
its own convergence (one read per pointer-chasing round, typically 2-3 per level).
"""

from __future__ import annotations

import itertools
import math
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from xaiscore._checks import OptionError, ShapeError, check_option
from xaiscore._engine import component_tree

__all__ = [
    "CONNECTIVITIES",
    "ComponentSweep",
    "Connectivity",
    "alive_counts",
    "component_boxes",
    "component_sweep",
    "label_components",
    "largest_component",
    "neighbour_offsets",
]

Connectivity = Literal["full", "face", "edge"]
CONNECTIVITIES: tuple[str, ...] = ("full", "face", "edge")


def neighbour_offsets(spatial_dims: int,
                      connectivity: Connectivity = "full") -> list[tuple[int, ...]]:
    """The neighbour offsets of a pixel (without ``(0, ..., 0)``), in lexicographic order.

    ``"full"``: every offset in ``{-1, 0, 1}^d`` (8 in 2-D, 26 in 3-D); ``"face"``: those along
    one axis (4 / 6); ``"edge"``: those along at most two axes (18 in 3-D, as
    ``scipy.ndimage.generate_binary_structure(3, 2)``; the same as ``"full"`` in 1-D and 2-D).
    """
    check_option(connectivity, "connectivity", CONNECTIVITIES)
    if not 1 <= spatial_dims <= 3:
        raise ShapeError(f"Expected 1 to 3 spatial dimensions, but got {spatial_dims}.")
    reach = {"face": 1, "edge": 2, "full": spatial_dims}[connectivity]
    offsets = []
    for step in itertools.product((-1, 0, 1), repeat=spatial_dims):
        distance = sum(abs(s) for s in step)
        if distance == 0 or distance > reach:
            continue
        offsets.append(step)
    return offsets


def _strides(shape: tuple[int, ...]) -> list[int]:
    return [math.prod(shape[i + 1:]) for i in range(len(shape))]


def _flat_offsets(shape: tuple[int, ...], connectivity: Connectivity,
                  device: torch.device) -> Tensor:
    strides = _strides(shape)
    offsets = neighbour_offsets(len(shape), connectivity)
    flat = [sum(o * s for o, s in zip(offset, strides)) for offset in offsets]
    return torch.tensor(flat, dtype=torch.long, device=device)


def _check_binary(mask: Tensor) -> tuple[int, tuple[int, ...]]:
    if mask.ndim < 2 or mask.ndim > 4:
        raise ShapeError(
            "Expected a mask of shape (B, *S) with 1 to 3 spatial dims, but got "
            f"{tuple(mask.shape)}.")
    return mask.shape[0], tuple(mask.shape[1:])


def _root_labels(mask: Tensor, connectivity: Connectivity) -> tuple[Tensor, tuple[int, ...]]:
    """Union-find roots of every pixel in padded layout: ``(B * Np,)``, -1 for background."""
    _, spatial = _check_binary(mask)
    padded = F.pad(mask.to(torch.uint8), (1, 1) * len(spatial)).bool()
    padded_shape = tuple(padded.shape[1:])
    flat = padded.reshape(-1)
    offsets = _flat_offsets(padded_shape, connectivity, mask.device)
    forward = offsets[offsets > 0]  # each undirected edge once
    pixels = flat.nonzero().squeeze(1)
    parent = torch.arange(flat.numel(), device=mask.device)
    neighbours = pixels.unsqueeze(1) + forward.unsqueeze(0)  # in range: the border is background
    joined = flat.index_select(0, neighbours.reshape(-1)).reshape(neighbours.shape)
    edge = joined.reshape(-1).nonzero().squeeze(1)
    left = pixels.index_select(0, edge // forward.numel())
    right = neighbours.reshape(-1).index_select(0, edge)
    # Shorten every tree fully between rounds (cheap on the whole array), then hook.
    while True:
        while True:
            up = parent.index_select(0, parent)
            if torch.equal(up, parent):
                break
            parent = up
        root_left = parent.index_select(0, left)
        root_right = parent.index_select(0, right)
        differ = (root_left != root_right).nonzero().squeeze(1)
        if differ.numel() == 0:
            break
        left = left.index_select(0, differ)
        right = right.index_select(0, differ)
        root_left = root_left.index_select(0, differ)
        root_right = root_right.index_select(0, differ)
        parent.scatter_reduce_(0, torch.maximum(root_left, root_right),
                               torch.minimum(root_left, root_right),
                               reduce="amin")
    roots = torch.where(flat, parent, torch.full_like(parent, -1))
    return roots, padded_shape


def _unpad(flat: Tensor, batch: int, padded_shape: tuple[int, ...]) -> Tensor:
    grid = flat.reshape((batch,) + padded_shape)
    return grid[(slice(None),) + (slice(1, -1),) * len(padded_shape)]


def label_components(mask: Tensor, *, connectivity: Connectivity = "full") -> tuple[Tensor, Tensor]:
    """Label the connected components of each sample's binary map.

    Labels run ``1 .. n`` per sample in raster order of each component's first pixel, 0 on the
    background: the numbering of ``scipy.ndimage.label``.

    Args:
        mask: ``(B, *S)`` bool, 1 to 3 spatial dims.
        connectivity: ``"full"`` (8 / 26) or ``"face"`` (4 / 6).

    Returns:
        ``(labels, counts)``: ``(B, *S)`` int64 and ``(B,)`` int64 component counts.
    """
    batch = mask.shape[0]
    roots, padded_shape = _root_labels(mask.bool(), connectivity)
    total = roots.numel()
    per_sample = total // batch
    is_root = roots == torch.arange(total, device=roots.device)
    # root -> 1-based rank in its sample
    rank = is_root.reshape(batch, per_sample).cumsum(1).reshape(-1)
    labels = torch.where(roots >= 0, rank.index_select(0, roots.clamp(min=0)),
                         torch.zeros_like(roots))
    counts = is_root.reshape(batch, per_sample).sum(1)
    return _unpad(labels, batch, padded_shape), counts


def component_boxes(labels: Tensor, num_components: int) -> tuple[Tensor, Tensor]:
    """Bounding boxes and areas of labelled components, padded to ``num_components`` per sample.

    Args:
        labels: ``(B, *S)`` int64 from :func:`label_components`.
        num_components: Components per sample to report (at least the largest count; rows of
            missing components hold NaN boxes and area 0).

    Returns:
        ``(boxes, areas)``: ``(B, K, 2 d)`` float64 end-exclusive boxes (module docstring for the
        axis order) and ``(B, K)`` int64 pixel counts.
    """
    batch = labels.shape[0]
    spatial = tuple(labels.shape[1:])
    dims = len(spatial)
    slots = max(int(num_components), 0)
    device = labels.device
    flat = labels.reshape(batch, -1)
    coordinates = _coordinates(spatial, device)  # (N, d)
    index = (torch.arange(batch, device=device).unsqueeze(1) * (slots + 1) + flat).reshape(-1)
    size = batch * (slots + 1)
    counts = torch.bincount(index, minlength=size).reshape(batch, slots + 1)[:, 1:]
    low = torch.full((size, dims), torch.iinfo(torch.long).max, dtype=torch.long, device=device)
    high = torch.full((size, dims), -1, dtype=torch.long, device=device)
    coords = coordinates.repeat(batch, 1)
    expanded = index.unsqueeze(1).expand(-1, dims)
    low.scatter_reduce_(0, expanded, coords, reduce="amin")
    high.scatter_reduce_(0, expanded, coords + 1, reduce="amax")
    low = low.reshape(batch, slots + 1, dims)[:, 1:]
    high = high.reshape(batch, slots + 1, dims)[:, 1:]
    boxes = torch.cat([low.flip(-1), high.flip(-1)], dim=-1).to(torch.float64)
    boxes = torch.where((counts > 0).unsqueeze(-1), boxes, torch.full_like(boxes, math.nan))
    return boxes, counts


def largest_component(mask: Tensor, *, connectivity: Connectivity = "full") -> Tensor:
    """The largest connected component of each sample's binary map, ``(B, *S)`` bool.

    Ties in size go to the component whose first pixel comes first in raster order (the
    smaller ``scipy.ndimage.label`` label). An empty map gives an empty mask.
    """
    labels, _ = label_components(mask, connectivity=connectivity)
    batch = labels.shape[0]
    flat = labels.reshape(batch, -1)
    sizes = torch.zeros(batch, flat.shape[1] + 1, dtype=torch.long, device=labels.device)
    sizes.scatter_add_(1, flat, torch.ones_like(flat))
    sizes[:, 0] = 0
    best = sizes.argmax(dim=1, keepdim=True)  # first maximum: the smallest label
    keep = (flat == best) & (flat > 0)
    return keep.reshape(labels.shape)


def _coordinates(spatial: tuple[int, ...], device: torch.device) -> Tensor:
    grids = torch.meshgrid(*[torch.arange(s, device=device) for s in spatial], indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=1)


class ComponentSweep(NamedTuple):
    """The components of every upper level set of a batch of levelled maps, as versions.

    A *version* is one component between two changes: it exists at threshold indices ``k``
    with ``stop < k <= start`` (the sweep runs from the highest index down; ``stop = -1`` when
    it lasts to index 0). At each threshold index, the versions that exist are exactly the
    connected components of ``{level > k}`` of their sample.

    Attributes:
        boxes: ``(V, 2 d)`` int64 end-exclusive boxes (``x0, [y0, [z0,]] x1, [y1, [z1]]``).
        areas: ``(V,)`` int64 pixel counts.
        sample: ``(V,)`` int64 sample index.
        first: ``(V,)`` int64 raster index (in the unpadded map) of the component's first pixel.
        start: ``(V,)`` int64 highest threshold index at which the version exists.
        stop: ``(V,)`` int64 highest threshold index below ``start`` at which it no longer exists.
        largest: ``(B, T)`` int64 the version of the largest component at each threshold index
            (ties: the first in raster order), -1 where nothing is selected.
    """

    boxes: Tensor
    areas: Tensor
    sample: Tensor
    first: Tensor
    start: Tensor
    stop: Tensor
    largest: Tensor


def _visiting_order(levels: Tensor, num_thresholds: int) -> Tensor:
    """Pixel indices sorted by level, highest first, ties in index order (stable)."""
    return torch.sort(levels, descending=True, stable=True).indices


def _visiting_order_numpy(levels: np.ndarray, num_thresholds: int) -> np.ndarray:
    """As :func:`_visiting_order` on CPU: a radix sort of 16-bit keys (numpy's stable sort)."""
    key = num_thresholds - levels
    if num_thresholds < np.iinfo(np.uint16).max:
        key = key.astype(np.uint16)
    return np.argsort(key, kind="stable").astype(np.int64, copy=False)


def component_sweep(levels: Tensor, num_thresholds: int, *,
                    connectivity: Connectivity = "full") -> ComponentSweep:
    """Components of ``{level > k}`` for every ``k = 0 .. T - 1``, per sample
    (see :class:`ComponentSweep`).

    On CPU the sweep runs on numpy arrays (one thread, about a microsecond per call, where
    torch's per-call overhead and its thread pool would dominate such small steps); on other
    devices on torch tensors. Both run the same code (:mod:`xaiscore._engine.component_tree`)
    and give identical results.

    Args:
        levels: ``(B, *S)`` integer levels in ``[0, T]`` (1 to 3 spatial dims), e.g. from
            :func:`xaiscore._engine.thresholds.threshold_levels`.
        num_thresholds: ``T``.
        connectivity: ``"full"`` or ``"face"``.
    """
    return _component_sweep(levels, num_thresholds, connectivity, backend=None)


def _component_sweep(levels: Tensor, num_thresholds: int, connectivity: Connectivity,
                     backend: str | None) -> ComponentSweep:
    check_option(connectivity, "connectivity", CONNECTIVITIES)
    batch = levels.shape[0]
    spatial = tuple(levels.shape[1:])
    dims = len(spatial)
    if not 1 <= dims <= 3:
        raise ShapeError(
            "Expected levels of shape (B, *S) with 1 to 3 spatial dims, but got "
            f"{tuple(levels.shape)}.")
    if num_thresholds < 1:
        raise OptionError(f"Expected at least one threshold, but got {num_thresholds}.")
    device = levels.device
    use_numpy = (device.type == "cpu") if backend is None else backend == "numpy"
    padded_shape = tuple(s + 2 for s in spatial)
    offsets = _flat_offset_list(padded_shape, connectivity)
    if use_numpy:
        flat = np.pad(levels.detach().cpu().numpy().astype(np.int64, copy=False),
                      [(0, 0)] + [(1, 1)] * dims).reshape(-1)  # a border of level 0: never selected
        per_level = np.bincount(flat, minlength=num_thresholds + 1).tolist()
        order = _visiting_order_numpy(flat, num_thresholds)[: flat.size - per_level[0]]
        arrays = component_tree.run_sweep(component_tree.NumpyOps(), flat, num_thresholds,
                                          padded_shape, batch,
                                          offsets, order, per_level)
        result = {name: torch.from_numpy(np.ascontiguousarray(value)).to(device)
                  for name, value in arrays.items()}
    else:
        flat = F.pad(levels.long(), (1, 1) * dims).reshape(-1)
        # the one read of sizes
        per_level = torch.bincount(flat, minlength=num_thresholds + 1).tolist()
        order = _visiting_order(flat, num_thresholds)[: flat.numel() - per_level[0]]
        result = component_tree.run_sweep(component_tree.TorchOps(device), flat, num_thresholds,
                                          padded_shape,
                                          batch, offsets, order, per_level)
    return ComponentSweep(**result)


def _flat_offset_list(shape: tuple[int, ...], connectivity: Connectivity) -> list[int]:
    strides = _strides(shape)
    return [sum(o * s for o, s in zip(offset, strides))
            for offset in neighbour_offsets(len(shape), connectivity)]


def alive_counts(sweep: ComponentSweep, flags: Tensor, batch: int, num_thresholds: int) -> Tensor:
    """For each sample, flag column and threshold index: how many existing versions carry the flag.

    Args:
        sweep: From :func:`component_sweep`.
        flags: ``(V, D)`` bool (or 0/1) per version.

    Returns:
        ``(B, D, T)`` int64.
    """
    n_flags = flags.shape[1]
    device = flags.device
    weights = flags.long()
    diff = torch.zeros(batch, n_flags, num_thresholds + 1, dtype=torch.long, device=device)
    # +1 at `start`, -1 at `stop` (column T + ... shifted by one so that stop = -1 lands in column
    # 0).
    base = (sweep.sample * n_flags).unsqueeze(1) + torch.arange(n_flags, device=device).unsqueeze(0)
    flat = diff.view(-1)
    flat.index_add_(0, (base * (num_thresholds + 1) + (sweep.start + 1).unsqueeze(1)).reshape(-1),
                    weights.reshape(-1))
    flat.index_add_(0, (base * (num_thresholds + 1) + (sweep.stop + 1).unsqueeze(1)).reshape(-1),
                    -weights.reshape(-1))
    # count at k = sum over columns j >= k + 1 of diff (start >= k and stop < k).
    alive = diff.flip(-1).cumsum(-1).flip(-1)
    return alive[..., 1:]
