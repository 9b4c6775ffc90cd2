"""The minimum spanning forest of each sample's tie-inclusive k-NN graph: near, then far edges."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from xaiscore.functional._mst import tuning
from xaiscore.functional._mst.forest import _Forest
from xaiscore.functional._mst.lattice import (
    _is_forward,
    _near_witnesses,
    _offsets_up_to,
    always_present_d2,
)
from xaiscore.functional._mst.primitives import _count, _flat_nonzero
from xaiscore.functional._mst.ring_scan import _RingScan
from xaiscore.functional._mst.window_search import _window_edges

__all__ = ["spanning_forest_lengths"]


class _Shifter:
    """Shifted views ``t[:, y + dy, x + dx]`` of ``(B, H, W)`` images padded by ``pad`` pixels."""

    def __init__(self, h: int, w: int, pad: int) -> None:
        self.h, self.w, self.pad = h, w, pad

    def padded(self, t: Tensor, value: int = 0) -> Tensor:
        p = self.pad
        if t.dtype == torch.bool:
            return F.pad(t.view(torch.uint8), (p, p, p, p), value=value).view(torch.bool)
        return F.pad(t, (p, p, p, p), value=value)

    def view(self, padded: Tensor, dy: int, dx: int) -> Tensor:
        p = self.pad
        return padded[:, p + dy : p + dy + self.h, p + dx : p + dx + self.w]


def spanning_forest_lengths(kept: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Total length of each sample's minimum spanning forest of the tie-inclusive k-NN graph.

    Args:
        kept: ``(B, H, W)`` bool, the points.
        k: Neighbours per point (``>= 1``).

    Returns:
        ``(lengths, counts)``: ``(B,)`` float64 forest lengths and ``(B,)`` int64 point counts.
    """
    b, h, w = kept.shape
    device = kept.device
    hw = h * w
    counts = _count(kept, (1, 2))

    # Runs: horizontal unit paths, each contracted to one node of the forest.
    left = torch.zeros_like(kept)
    left[:, :, 1:] = kept[:, :, :-1]
    run_start = (kept & ~left).reshape(-1)
    index_dtype = torch.int32 if run_start.numel() < 2**31 else torch.int64
    run_of_pixel = torch.cumsum(run_start, 0, dtype=index_dtype) - 1  # valid on kept pixels
    runs_per_sample = _count(run_start.view(b, hw), (1,))
    # runs are in sample order
    run_sample = torch.repeat_interleave(torch.arange(b, device=device), runs_per_sample)
    n_runs = run_sample.numel()
    forest = _Forest(run_sample, b)
    forest.length += (counts - runs_per_sample).double()  # unit edges inside runs
    if n_runs == 0:
        return forest.length, counts

    # Sparse maps: the window search alone (all edges, near ones included, since d_k >= sqrt(D_a))
    # is cheaper than the image-sized passes of the near phase and the ring scan.
    if int(counts.sum()) * tuning.WINDOW_COST_PER_POINT < kept.numel() * tuning.DENSE_PASSES:
        _window_edges(kept, _flat_nonzero(kept), run_of_pixel, forest, k, 0)
        return forest.length, counts

    d_always = always_present_d2(k)
    near = _offsets_up_to(d_always)
    shifter = _Shifter(h, w, max(12, math.isqrt(d_always) + 1))
    kept_p = shifter.padded(kept)

    # Near edges between runs: the leftmost pixel pair of each pair of runs, minus pairs with a
    # witness (a kept pixel closer to both ends, i.e. a path of two strictly shorter near edges).
    forward = [(d2, dy, dx) for d2, dy, dx in near if _is_forward(dy, dx) and (dy, dx) != (0, 1)]
    if forward:
        pairs = torch.empty(len(forward), b, h, w, dtype=torch.bool, device=device)
        for pair, (_, dy, dx) in zip(pairs, forward):
            torch.logical_and(kept, shifter.view(kept_p, dy, dx), out=pair)
            if dy != 0:
                pair &= ~(shifter.view(kept_p, 0, -1) & shifter.view(kept_p, dy, dx - 1))
            for ry, rx in _near_witnesses(dy, dx):
                pair &= ~shifter.view(kept_p, ry, rx)
        found = _flat_nonzero(pairs)
        which, pixel = torch.div(found, b * hw, rounding_mode="floor"), found % (b * hw)
        step_of = torch.tensor([dy * w + dx for _, dy, dx in forward], device=device)
        u = run_of_pixel.index_select(0, pixel)
        v = run_of_pixel.index_select(0, pixel + step_of.index_select(0, which))
        # The pairs come offset by offset, the offsets by length: one connectivity pass per length.
        ends = torch.searchsorted(which, torch.arange(1, len(forward) + 1, device=device)).tolist()
        start = 0
        for i, (d2, _, _) in enumerate(forward):
            if i + 1 == len(forward) or forward[i + 1][0] != d2:
                forest.connect(u[start : ends[i]], v[start : ends[i]], d2)
                start = ends[i]

    # Points with fewer than k others within the near distance have far edges to look for:
    # count the others in the disc, a sum of horizontal box sums, one per row offset.
    radius = math.isqrt(d_always)
    # uint8 while the disc holds fewer than 256 pixels (int16 beyond): uint8 adds are twice as fast.
    count_dtype = torch.uint8 if (2 * radius + 1) ** 2 < 256 else torch.int16
    unit = kept_p.view(torch.uint8) if count_dtype == torch.uint8 else kept_p.to(count_dtype)
    boxes = {0: unit}
    for half in range(1, radius + 1):
        boxes[half] = boxes[half - 1].clone()
        boxes[half][:, :, half:] += unit[:, :, :-half]
        boxes[half][:, :, :-half] += unit[:, :, half:]
    count = shifter.view(boxes[radius], 0, 0).clone()
    for dy in range(-radius, radius + 1):
        if dy:
            count += shifter.view(boxes[math.isqrt(d_always - dy * dy)], dy, 0)
    count -= kept.view(torch.uint8)  # the point itself
    del boxes, unit
    scan = _RingScan(kept, kept_p, count, run_of_pixel, forest, runs_per_sample, k, shifter)
    d_done, open_points = scan.run(d_always)
    if open_points is not None and d_done < (h - 1) ** 2 + (w - 1) ** 2:
        _window_edges(kept, open_points, run_of_pixel, forest, k, d_done)
    return forest.length, counts
