"""The component sweep's machinery: union-find over pixels in threshold order, on numpy or torch.

:func:`xaiscore._engine.components.component_sweep` is the entry point and documents the
algorithm. The loop here visits the levels from the highest down; each visit is a handful of
array operations over that level's pixels of every sample, written once against a small
numpy-style operations layer: :class:`NumpyOps` on CPU (one thread, about a microsecond per
call, no thread pool to wake for small steps) and :class:`TorchOps` on other devices. Both
layers run the same code and give identical results.

Pixels are numbered by visiting rank (level descending, then memory order), so the smallest
rank in a component is its peak; merging components keeps the root of the one visited first
(the elder rule), which keeps the union-find trees shallow.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["NumpyOps", "SweepArrays", "TorchOps", "pixel_rows", "run_sweep"]


class NumpyOps:
    """numpy-style array operations on CPU."""

    @staticmethod
    def asarray(values: Any) -> np.ndarray:
        return np.asarray(values, dtype=np.int64)

    @staticmethod
    def arange(start: int, stop: int) -> np.ndarray:
        return np.arange(start, stop, dtype=np.int64)

    @staticmethod
    def full(size: int, value: int) -> np.ndarray:
        return np.full(size, value, dtype=np.int64)

    @staticmethod
    def empty_rows(size: int, width: int) -> np.ndarray:
        return np.empty((size, width), dtype=np.int64)

    @staticmethod
    def take(array: np.ndarray, index: np.ndarray) -> np.ndarray:
        return np.take(array, index, mode="clip")  # indices are valid; "clip" skips the error check

    @staticmethod
    def take_rows(table: np.ndarray, index: np.ndarray) -> np.ndarray:
        return np.take(table, index, axis=0, mode="clip")

    @staticmethod
    def put(array: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
        array[index] = values

    @staticmethod
    def nonzero(mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(mask)

    @staticmethod
    def min_at(array: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
        np.minimum.at(array, index, values)

    @staticmethod
    def add_at(array: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
        np.add.at(array, index, values)

    @staticmethod
    def max_rows_at(table: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
        width = table.shape[1]  # one 1-D ufunc.at (its fast path) over the flat table
        flat_index = (index[:, None] * width + np.arange(width)).reshape(-1)
        np.maximum.at(table.reshape(-1), flat_index, values.reshape(-1))

    @staticmethod
    def equal(one: np.ndarray, two: np.ndarray) -> bool:
        return not (one != two).any()

    @staticmethod
    def concat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts)

    @staticmethod
    def repeat(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return np.repeat(values, counts)

    @staticmethod
    def stable_order(keys: np.ndarray) -> np.ndarray:
        """``argsort(keys, stable)`` for small non-negative ints (a radix sort below 65536)."""
        small = keys.size == 0 or keys.max() < np.iinfo(np.uint16).max
        return np.argsort(keys.astype(np.uint16) if small else keys, kind="stable").astype(np.int64)

    @staticmethod
    def running_max(values: np.ndarray) -> np.ndarray:
        return np.maximum.accumulate(values)

    @staticmethod
    def bincount(index: np.ndarray, size: int) -> np.ndarray:
        return np.bincount(index, minlength=size).astype(np.int64)

    @staticmethod
    def suffix_sums(matrix: np.ndarray) -> np.ndarray:
        return matrix[:, ::-1].cumsum(1)[:, ::-1]

    @staticmethod
    def stack_columns(columns: list[np.ndarray]) -> np.ndarray:
        return np.stack(columns, axis=1)

    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    where = staticmethod(np.where)
    cumsum = staticmethod(np.cumsum)


class TorchOps:
    """The same operations on torch tensors of one device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def asarray(self, values: Any) -> Tensor:
        return torch.as_tensor(values, dtype=torch.long, device=self.device)

    def arange(self, start: int, stop: int) -> Tensor:
        return torch.arange(start, stop, device=self.device)

    def full(self, size: int, value: int) -> Tensor:
        return torch.full((size,), value, dtype=torch.long, device=self.device)

    def empty_rows(self, size: int, width: int) -> Tensor:
        return torch.empty(size, width, dtype=torch.long, device=self.device)

    @staticmethod
    def take(array: Tensor, index: Tensor) -> Tensor:
        return array.index_select(0, index)

    @staticmethod
    def take_rows(table: Tensor, index: Tensor) -> Tensor:
        return table.index_select(0, index)

    @staticmethod
    def put(array: Tensor, index: Tensor, values: Tensor) -> None:
        array.scatter_(0, index, values)

    @staticmethod
    def nonzero(mask: Tensor) -> Tensor:
        return mask.reshape(-1).nonzero().squeeze(1)

    @staticmethod
    def min_at(array: Tensor, index: Tensor, values: Tensor) -> None:
        array.scatter_reduce_(0, index, values, reduce="amin")

    @staticmethod
    def add_at(array: Tensor, index: Tensor, values: Tensor) -> None:
        array.index_add_(0, index, values)

    @staticmethod
    def max_rows_at(table: Tensor, index: Tensor, values: Tensor) -> None:
        table.scatter_reduce_(0, index.unsqueeze(1).expand(-1, table.shape[1]), values,
                              reduce="amax")

    @staticmethod
    def equal(one: Tensor, two: Tensor) -> bool:
        return torch.equal(one, two)

    @staticmethod
    def concat(parts: list[Tensor]) -> Tensor:
        return torch.cat(parts)

    @staticmethod
    def repeat(values: Tensor, counts: Tensor) -> Tensor:
        return values.repeat_interleave(counts)

    @staticmethod
    def stable_order(keys: Tensor) -> Tensor:
        return torch.sort(keys, stable=True).indices

    @staticmethod
    def running_max(values: Tensor) -> Tensor:
        return torch.cummax(values, dim=0).values

    @staticmethod
    def bincount(index: Tensor, size: int) -> Tensor:
        return torch.bincount(index, minlength=size)

    @staticmethod
    def suffix_sums(matrix: Tensor) -> Tensor:
        return matrix.flip(1).cumsum(1).flip(1)

    @staticmethod
    def stack_columns(columns: list[Tensor]) -> Tensor:
        return torch.stack(columns, dim=1)

    maximum = staticmethod(torch.maximum)
    minimum = staticmethod(torch.minimum)
    where = staticmethod(torch.where)

    @staticmethod
    def cumsum(values: Tensor) -> Tensor:
        return values.cumsum(0)


def pixel_rows(padded_shape: tuple[int, ...]) -> np.ndarray:
    """Per pixel of the padded grid: ``(-coordinates, coordinates + 1, -raster index)`` in the
    unpadded map."""
    spatial = tuple(s - 2 for s in padded_shape)
    grids = np.meshgrid(*[np.arange(s, dtype=np.int64) - 1 for s in padded_shape], indexing="ij")
    coordinates = np.stack([g.reshape(-1) for g in grids], axis=1)
    strides = np.array([math.prod(spatial[i + 1:]) for i in range(len(spatial))], dtype=np.int64)
    raster = coordinates @ strides
    return np.concatenate([-coordinates, coordinates + 1, -raster[:, None]], axis=1)


def _find_roots(ops, parent, nodes):  # type: ignore[no-untyped-def]
    """The roots of ``nodes`` (pointer chasing to a fixed point; one read per round)."""
    roots = ops.take(parent, nodes)
    while True:
        up = ops.take(parent, roots)
        if ops.equal(up, roots):
            return roots
        roots = up


def _join(ops, parent, left, right) -> None:  # type: ignore[no-untyped-def]
    """Join the trees of ``left[i]`` and ``right[i]``: each root hooks onto the smallest root next
    to it.

    Hooking larger roots onto smaller ones can make no cycle; rounds repeat on the edges whose
    ends still have different roots until there are none.
    """
    while len(left) > 0:
        root_left = _find_roots(ops, parent, left)
        root_right = _find_roots(ops, parent, right)
        differ = ops.nonzero(root_left != root_right)
        if len(differ) == 0:
            return
        root_left, root_right = ops.take(root_left, differ), ops.take(root_right, differ)
        left, right = ops.take(left, differ), ops.take(right, differ)
        ops.min_at(parent, ops.maximum(root_left, root_right), ops.minimum(root_left, root_right))


class SweepArrays(dict):
    """The sweep's results as arrays of its backend (keys as :class:`ComponentSweep`'s fields)."""


def run_sweep(ops, levels, num_thresholds: int, padded_shape: tuple[int, ...], batch: int,  # type: ignore[no-untyped-def]
              offsets: list[int], order, per_level: list[int]) -> SweepArrays:
    """Sweep padded, flattened ``levels`` (``batch`` samples of ``padded_shape``) in visiting
    ``order``."""
    per_sample = math.prod(padded_shape)
    n_active = len(order)
    rank_of = ops.full(len(levels), n_active)  # padded pixel -> visiting rank (n_active: never)
    ops.put(rank_of, order, ops.arange(0, n_active))
    offsets = ops.asarray(offsets)
    table = ops.asarray(pixel_rows(padded_shape))
    found = _loop(ops, order, rank_of, offsets, table, per_sample, per_level, n_active,
                  num_thresholds)
    return _assemble(ops, found, order, per_sample, batch, num_thresholds, len(padded_shape),
                     math.prod(s - 2 for s in padded_shape))


def _loop(ops, order, rank_of, offsets, table, per_sample: int, per_level: list[int],  # type: ignore[no-untyped-def]
          n_active: int, num_thresholds: int) -> dict[str, Any]:
    n_offsets = len(offsets)
    extent = ops.empty_rows(n_active, table.shape[1])  # a pixel's row is written when it is visited
    area = ops.full(n_active, 1)
    parent = ops.arange(0, n_active)
    current = ops.full(n_active, -1)  # root -> its version
    tag = ops.full(n_active, -1)
    roots_seen, areas_seen, extents_seen, ended_seen = [], [], [], []
    started, ended, visited = [], [], []
    next_id = 0
    position = 0
    for k in range(num_thresholds - 1, -1, -1):
        n_new = per_level[k + 1]
        if n_new == 0:
            continue
        end = position + n_new
        new_pixels = order[position:end]
        extent[position:end] = ops.take_rows(table, new_pixels % per_sample)
        neighbours = ops.take(rank_of, (new_pixels[:, None] + offsets[None, :]).reshape(-1))
        # Edges to neighbours visited earlier (at a higher level, or at this one before the pixel):
        # each edge between two new pixels once.
        edge = ops.nonzero(neighbours.reshape(n_new, n_offsets)
                           < ops.arange(position, end)[:, None])
        left = edge // n_offsets  # the new pixel, 0 .. n_new - 1
        right = ops.take(neighbours, edge)
        right_roots = _find_roots(ops, parent, right)
        # Each new pixel hooks onto the smallest root next to it (or stays a root); the edges to
        # other roots then join those roots.
        lowest = ops.arange(position, end)
        ops.min_at(lowest, left, right_roots)
        lowest_left = ops.take(lowest, left)
        parent[position:end] = lowest
        conflict = ops.nonzero(right_roots != lowest_left)
        # The roots touched at this level: the new pixels and the old roots next to them, once each:
        # each new pixel's lowest root, and the other roots of the conflicting edges.
        candidates = lowest
        if len(conflict) > 0:
            others = ops.take(right_roots, conflict)
            _join(ops, parent, ops.take(lowest_left, conflict), others)
            candidates = ops.concat([lowest, others])
        old_roots = candidates[candidates < position]
        slots = ops.arange(0, len(old_roots))
        ops.put(tag, old_roots, slots)
        old_roots = old_roots[ops.take(tag, old_roots) == slots]
        touched = ops.concat([old_roots, ops.arange(position, end)])
        final = _find_roots(ops, parent, touched)
        ops.put(parent, touched, final)  # path compression
        ops.put(parent, right, ops.take(final, left + len(old_roots)))
        merged = ops.nonzero(final != touched)
        into, source = ops.take(final, merged), ops.take(touched, merged)
        ops.add_at(area, into, ops.take(area, source))
        ops.max_rows_at(extent, into, ops.take_rows(extent, source))
        # Versions: every touched old root's version ends here; every surviving root starts one.
        ended_seen.append(ops.take(current, old_roots))
        roots = touched[final == touched]
        ops.put(current, roots, ops.arange(next_id, next_id + len(roots)))
        next_id += len(roots)
        roots_seen.append(roots)
        areas_seen.append(ops.take(area, roots))
        extents_seen.append(ops.take_rows(extent, roots))
        started.append(len(roots))
        ended.append(len(old_roots))
        visited.append(k)
        position = end
    empty = ops.full(0, 0)
    return {
        "roots": ops.concat(roots_seen) if roots_seen else empty,
        "areas": ops.concat(areas_seen) if areas_seen else empty,
        "extent": ops.concat(extents_seen) if extents_seen else ops.take_rows(table, empty),
        "ended_ids": ops.concat(ended_seen) if ended_seen else empty,
        "started": started, "ended": ended, "visited": visited, "count": next_id,
    }


def _assemble(ops, found: dict[str, Any], order, per_sample: int, batch: int,  # type: ignore[no-untyped-def]
              num_thresholds: int, dims: int, n_pixels: int) -> SweepArrays:
    visited = ops.asarray(found["visited"])
    start = ops.repeat(visited, ops.asarray(found["started"]))
    stop = ops.full(found["count"], -1)
    ops.put(stop, found["ended_ids"], ops.repeat(visited, ops.asarray(found["ended"])))
    extent = found["extent"]
    low = [-extent[:, axis] for axis in reversed(range(dims))]  # x (the last axis) first
    high = [extent[:, dims + axis] for axis in reversed(range(dims))]
    first = -extent[:, 2 * dims]
    sample = ops.take(order, found["roots"]) // per_sample
    largest = _largest(ops, sample, start, found["areas"], first, batch, num_thresholds, n_pixels)
    return SweepArrays(boxes=ops.stack_columns(low + high), areas=found["areas"], sample=sample,
                       first=first,
                       start=start, stop=stop, largest=largest.reshape(batch, num_thresholds))


def _largest(ops, sample, start, areas, first, batch: int, num_thresholds: int,  # type: ignore[no-untyped-def]
             n_pixels: int):
    """The version of the largest component at each threshold index, ``(B * T,)`` (-1: none).

    Rank components by ``key = area, then the earlier first pixel``. Every version that started
    at an index ``>= k`` lies inside a component that exists at ``k`` with a larger key (its
    area grew) or is that component, so the largest component at ``k`` is the version of
    largest key among those that started at ``>= k``: a running maximum over the versions in
    sweep order, per sample.
    """
    count = len(sample)
    span = (n_pixels + 1) ** 2
    key = areas * (n_pixels + 1) + (n_pixels - first)  # in [1, span), unique within a sample
    by_sample = ops.stable_order(sample)  # keeps the sweep order within each sample
    # later samples rank above
    ranked = ops.take(key, by_sample) + ops.take(sample, by_sample) * span
    best = ops.running_max(ranked)
    # The position where the running maximum was set: the latest new maximum so far.
    positions = ops.arange(0, count)
    latest = (ops.running_max(ops.where(ranked == best, positions, ops.full(count, 0))) if count
              else positions)
    best_version = ops.take(by_sample, latest) if count else positions
    # Versions of sample b that started at index >= k: the first count_ge[b, k] of its run.
    starts = ops.bincount(sample * (num_thresholds + 1) + start, batch * (num_thresholds + 1))
    count_ge = ops.suffix_sums(starts.reshape(batch, num_thresholds + 1))[:, :num_thresholds]
    totals = count_ge[:, 0]
    run_start = ops.cumsum(totals) - totals
    position = (run_start[:, None] + count_ge - 1).reshape(-1)
    found = ops.take(best_version,
                     ops.maximum(position, ops.full(len(position), 0))) if count else \
        ops.full(len(position), -1)
    return ops.where(count_ge.reshape(-1) > 0, found, ops.full(len(position), -1))
