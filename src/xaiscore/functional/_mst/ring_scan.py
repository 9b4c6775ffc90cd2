"""The ring scan: Kruskal over the far edges, one ring of equal squared distance at a time."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from xaiscore.functional._mst import tuning
from xaiscore.functional._mst.lattice import _is_forward, _rings
from xaiscore.functional._mst.primitives import _flat_nonzero

# The ring scan relabels its components once it has found more than one new edge per this many
# pixels.
_RELABEL_EDGES = 500


class _RingScan:
    """Kruskal over the far edges, one ring of equal squared distance ``D`` at a time, on whole
    images.

    State per (unfinished) sample: ``count`` = points within squared distance ``< D`` of each
    pixel, ``open`` = kept pixels with ``count < k`` (their k-th neighbour is at ``>= sqrt(D)``),
    ``label`` = component of each kept pixel (``-1`` elsewhere; relabelled when many merges make
    it worth it: a stale label only lets through pairs that the forest then drops). A pair at
    distance ``sqrt(D)`` is an edge when either end is open; only pairs across components are
    passed to the forest. Finished samples (one component, or no open point) are dropped.
    """

    def __init__(self, kept, kept_p, count, run_of_pixel, forest, runs_per_sample, k, shifter):
        b, h, w = kept.shape
        device = kept.device
        self.kept, self.kept_p, self.k, self.shifter = kept, kept_p, k, shifter
        # Comparisons of two uint8 tensors are vectorised on CPU, those of wider integers or with a
        # scalar are not (about 10x slower): counts are uint8 capped at k when a ring cannot
        # overflow them, labels are split into uint8 planes, and k is a row of uint8.
        ring_max = max(len(ring) for ring in _rings(shifter.pad**2).values())
        if k + ring_max < 256:
            self.count = torch.minimum(count, torch.tensor(k, dtype=count.dtype)).to(torch.uint8)
            self.unit_p = kept_p.view(torch.uint8)
        else:
            self.count = count.to(torch.int16)  # at most (2 pad + 1)^2
            self.unit_p = kept_p.to(torch.int16)
        self.k_row = torch.full((w,), k, dtype=self.count.dtype, device=device)
        self.run_of_pixel, self.forest, self.runs_per_sample = run_of_pixel, forest, runs_per_sample
        self.samples = torch.arange(b, device=device)  # global sample of each row
        self.first_run = torch.cumsum(runs_per_sample, 0) - runs_per_sample
        # The run of each pixel, padded; any run where no point is (labels only matter at points).
        self.run_p = shifter.padded(run_of_pixel.view(b, h, w).clamp(min=0))
        # Labels are component roots counted from the sample's first run, one uint8 plane per byte.
        self.open_p = shifter.padded(kept & (self.count < self.k_row))
        # (planes, B, H + 2 pad, W + 2 pad) uint8, built on the first ring scanned
        self.label_p = None
        # Edges found since the labels were last rebuilt: stale labels only let through pairs
        # within merged components (the forest drops them), so relabelling waits for many merges.
        self.unlabelled_edges = 0

    def _interior(self, padded: Tensor) -> Tensor:
        return self.shifter.view(padded, 0, 0)

    def _labels(self) -> None:
        """(Re)build the padded label planes from the forest: a byte of each run's label, looked
        up for every pixel through its run (pixels that are no point get arbitrary labels)."""
        forest = self.forest
        forest.compress()
        # Labels are the ranks of the component roots within their sample: few bytes when the
        # near phase has left few components per sample (one plane fewer is two operations less
        # per offset).
        parent = forest.parent
        is_root = parent == torch.arange(parent.numel(), dtype=parent.dtype, device=parent.device)
        roots_before = torch.cumsum(is_root, 0, dtype=parent.dtype) - is_root.to(parent.dtype)
        # a sample without points has no runs to label
        first = self.first_run.clamp(max=parent.numel() - 1)
        base = roots_before.index_select(0, first).index_select(0, forest.node_sample)
        roots = roots_before.index_select(0, parent) - base
        components = (self.runs_per_sample - forest.merges).index_select(0, self.samples)
        n_planes = max(1, ((int(components.max()) - 1).bit_length() + 7) // 8)
        if self.label_p is None or self.label_p.shape[0] != n_planes:
            self.label_p = torch.empty((n_planes,) + self.run_p.shape, dtype=torch.uint8,
                                       device=self.kept.device)
        runs = self.run_p.view(-1)
        for i, plane in enumerate(self.label_p):
            torch.index_select(((roots >> (8 * i)) & 255).to(torch.uint8), 0, runs,
                               out=plane.view(-1))
        self.unlabelled_edges = 0

    def _keep_rows(self, rows: Tensor) -> None:
        self.samples = self.samples.index_select(0, rows)
        for name in ("kept", "kept_p", "count", "open_p", "run_p"):
            setattr(self, name, getattr(self, name).index_select(0, rows))
        self.unit_p = (self.kept_p.view(torch.uint8) if self.count.dtype == torch.uint8
                       else self.kept_p.to(self.count.dtype))
        if self.label_p is not None:
            self.label_p = self.label_p.index_select(1, rows)

    def _open_pixels(self) -> Tensor:
        """Global pixel indices of the open points."""
        _, h, w = self.kept.shape
        local = _flat_nonzero(self._interior(self.open_p))
        row = torch.div(local, h * w, rounding_mode="floor")
        return self.samples.index_select(0, row) * (h * w) + local % (h * w)

    def run(self, d_done: int) -> tuple[int, Tensor | None]:
        """Scan rings beyond ``d_done``; returns the last ring done and the still-open points
        (global pixel indices) when the scan handed over to the window search, else ``None``."""
        _, h, w = self.kept.shape
        hw = h * w
        device = self.kept.device
        shifter = self.shifter
        rings = _rings(min((h - 1) ** 2 + (w - 1) ** 2, shifter.pad**2))
        for d2 in sorted(rings):
            if d2 <= d_done:
                continue
            open_ = self._interior(self.open_p)
            any_open = open_.view(torch.uint8).amax((1, 2)) > 0
            components = (self.runs_per_sample - self.forest.merges).index_select(0, self.samples)
            unfinished = (components > 1) & any_open
            n_unfinished = int(unfinished.sum())
            if n_unfinished == 0:
                return d_done, None
            if n_unfinished <= 0.75 * self.samples.numel():
                self._keep_rows(unfinished.nonzero().squeeze(1))
                open_ = self._interior(self.open_p)
            # Hand over to the window search when it is cheaper than the rings still to scan,
            # estimated from the open points on every fourth image row: their number and mean count
            # (counts grow like the disc area, i.e. like D).
            sampled = open_[:, ::4]
            n_sampled, counted = (
                int(v)
                for v in torch.stack([
                    sampled.view(torch.uint8).sum(dtype=torch.int32),
                    (sampled.view(torch.uint8) * self.count[:, ::4]).sum(dtype=torch.int32),
                ])
            )
            n_open = n_sampled * open_.shape[1] / sampled.shape[1]
            expected_d2 = d2 * self.k / (counted / max(n_sampled, 1) + 1)
            offsets_left = max(math.pi * (expected_d2 - d2), len(rings[d2]))
            if n_open * tuning.WINDOW_COST_PER_POINT < self.kept.numel() * offsets_left:
                return d_done, self._open_pixels()
            if self.label_p is None or self.unlabelled_edges * _RELABEL_EDGES > self.kept.numel():
                self._labels()
            kept, kept_p, count = self.kept, self.kept_p, self.count
            forward = [(dy, dx) for dy, dx in rings[d2] if _is_forward(dy, dx)]
            pairs = torch.empty((len(forward),) + kept.shape, dtype=torch.bool, device=device)
            differ, scratch = torch.empty_like(kept), torch.empty_like(kept)
            for dy, dx in rings[d2]:
                count += shifter.view(self.unit_p, dy, dx)
            if count.dtype == torch.uint8:
                torch.minimum(count, self.k_row, out=count)
            # Early rings of dense maps: every point is still open, and the open test can go.
            all_open = bool(torch.equal(open_, kept))
            for pair, (dy, dx) in zip(pairs, forward):
                torch.logical_and(kept, shifter.view(kept_p, dy, dx), out=pair)
                if not all_open:
                    pair &= open_ | shifter.view(self.open_p, dy, dx)
                for i, plane in enumerate(self.label_p):
                    torch.ne(self._interior(plane), shifter.view(plane, dy, dx),
                             out=differ if i == 0 else scratch)
                    if i:
                        differ |= scratch
                pair &= differ
            steps = [dy * w + dx for dy, dx in forward]
            found = _flat_nonzero(pairs)
            per_offset = kept.numel()
            which, local = torch.div(found, per_offset, rounding_mode="floor"), found % per_offset
            if local.numel():
                row = torch.div(local, hw, rounding_mode="floor")
                pixel = self.samples.index_select(0, row) * hw + local % hw
                self.forest.connect(
                    self.run_of_pixel.index_select(0, pixel),
                    self.run_of_pixel.index_select(
                        0, pixel + torch.tensor(steps, device=device).index_select(0, which)),
                    d2,
                )
                self.unlabelled_edges += local.numel()
            torch.logical_and(kept, torch.lt(count, self.k_row), out=open_)
            d_done = d2
        return d_done, self._open_pixels()
