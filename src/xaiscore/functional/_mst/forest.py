"""Borůvka on a batch of disjoint graphs: union-find over the nodes of all samples."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from xaiscore.functional._mst.primitives import _kth_smallest

# Borůvka passes with more than this many edges per node first take the lightest ~_LIGHT_EDGES per
# node.
_FILTER_EDGES = 8
_LIGHT_EDGES = 3
_INT64_MAX = torch.iinfo(torch.int64).max


def _jump_to_roots(parent: Tensor, hooked: Tensor) -> None:
    """Pointer jumping: make every ``hooked`` node point at its root (one host read per doubling).
    """
    up = parent.index_select(0, hooked)
    while True:
        upper = parent.index_select(0, up)
        if torch.equal(up, upper):
            break
        parent.scatter_(0, hooked, upper)
        up = upper


class _Forest:
    """Union-find state over the nodes of all samples, grown by Borůvka passes.

    Node ids are global and ``node_sample`` gives each node's sample; ``parent`` maps every node
    to its component's root after each pass. ``length`` (float64) and ``merges`` (int64)
    accumulate per sample.
    """

    def __init__(self, node_sample: Tensor, n_samples: int) -> None:
        device = node_sample.device
        self.node_sample = node_sample
        # int32 node ids where they fit: gathers of half the width (scatters take int64 indices).
        dtype = torch.int32 if node_sample.numel() < 2**31 else torch.int64
        self.parent = torch.arange(node_sample.numel(), dtype=dtype, device=device)
        self.length = torch.zeros(n_samples, dtype=torch.float64, device=device)
        self.merges = torch.zeros(n_samples, dtype=torch.int64, device=device)
        self._best = torch.full((node_sample.numel(),), _INT64_MAX, dtype=torch.int64,
                                device=device)

    def add_edges(self, u: Tensor, v: Tensor, d2: Tensor) -> None:
        """Merge along the minimum spanning forest of the given edges over the current components.

        ``u``, ``v``: node ids of the same sample; ``d2``: integer squared lengths (weights
        ``sqrt(d2)``). Ties are broken by the position of the edge in the input, so the order of
        the edges (squared length, position) is total and no cycle can form.
        """
        n_edges = u.numel()
        if n_edges == 0:
            return
        if n_edges > _FILTER_EDGES * self.parent.numel():
            # Many more edges than nodes (a k-NN graph): Kruskal's order split in two (filter
            # Kruskal). The light edges, about _LIGHT_EDGES per node, go first; a heavy edge whose
            # ends they connect is in no minimum spanning forest and is dropped unseen by Borůvka.
            sample = d2[:: max(1, n_edges // 65536)]
            cut = int(_kth_smallest(sample.unsqueeze(0),
                                    min(sample.numel() - 1, sample.numel() * _LIGHT_EDGES
                                        * self.parent.numel() // n_edges))[0])
            light = d2 <= cut
            heavy = (~light).nonzero().squeeze(1)
            if 0 < heavy.numel() < n_edges:
                light = light.nonzero().squeeze(1)
                self.add_edges(u.index_select(0, light), v.index_select(0, light),
                               d2.index_select(0, light))
                u, v, d2 = (self.find(u.index_select(0, heavy)),
                            self.find(v.index_select(0, heavy)), d2.index_select(0, heavy))
                apart = (u != v).nonzero().squeeze(1)
                self.add_edges(u.index_select(0, apart), v.index_select(0, apart),
                               d2.index_select(0, apart))
                return
        parent, best = self.parent, self._best
        key = d2 * n_edges + torch.arange(n_edges, device=u.device)
        u, v = self.find(u).long(), self.find(v).long()
        rounds = 0
        while True:
            alive = (u != v).nonzero().squeeze(1)
            if alive.numel() == 0:
                break
            if alive.numel() < u.numel():
                u, v, key = (u.index_select(0, alive), v.index_select(0, alive),
                             key.index_select(0, alive))
            best.scatter_reduce_(0, u, key, "amin")
            best.scatter_reduce_(0, v, key, "amin")
            pick_u = best.index_select(0, u) == key  # the lightest edge leaving u's component
            pick_v = best.index_select(0, v) == key
            chosen = (pick_u | pick_v).nonzero().squeeze(1)
            sample = self.node_sample.index_select(0, u.index_select(0, chosen))
            length = torch.div(key.index_select(0, chosen), n_edges,
                               rounding_mode="floor").double().sqrt_()
            self.length.index_add_(0, sample, length)
            self.merges.index_add_(0, sample, torch.ones_like(sample))
            by_u, by_v = pick_u.nonzero().squeeze(1), pick_v.nonzero().squeeze(1)
            # Each component picks exactly one edge and hooks onto the component at its other end.
            hooked = torch.cat([u.index_select(0, by_u), v.index_select(0, by_v)])
            target = torch.cat([v.index_select(0, by_u), u.index_select(0, by_v)])
            parent.scatter_(0, hooked, target.to(parent.dtype))
            # Two components that picked the same edge point at each other: the smaller id is the
            # root.
            mutual = (parent.index_select(0, target) == hooked) & (hooked < target)
            parent.scatter_(0, hooked, torch.where(mutual, hooked, target).to(parent.dtype))
            best.index_fill_(0, hooked, _INT64_MAX)
            # Pointer jumping until every hooked component points at its root.
            _jump_to_roots(parent, hooked)
            u = parent.index_select(0, u).long()
            v = parent.index_select(0, v).long()
            rounds += 1
        self.compress()

    def connect(self, u: Tensor, v: Tensor, d2: int) -> None:
        """Merge along edges that all have the same squared length ``d2``.

        Any spanning forest of equal-weight edges is a minimum one, so only connectivity matters:
        each round every component root at the larger end of a live edge hooks onto the smallest
        root across its edges (always a smaller id, so no cycle forms), then the hooked roots jump
        to their new roots. Each hooked root is one merge of weight ``sqrt(d2)``. Cheaper per round
        than :meth:`add_edges` (no edge keys, one scatter).
        """
        if u.numel() == 0:
            return
        parent, mark = self.parent, self._best
        merges_before = self.merges.clone()
        u, v = self.find(u), self.find(v)
        while True:
            alive = (u != v).nonzero().squeeze(1)
            if alive.numel() == 0:
                break
            if alive.numel() < u.numel():
                u, v = u.index_select(0, alive), v.index_select(0, alive)
            low, high = torch.minimum(u, v), torch.maximum(u, v)
            high = high.long()
            parent.scatter_reduce_(0, high, low, "amin")
            # The distinct hooked roots: one edge per high end wins the scatter below.
            position = torch.arange(high.numel(), device=high.device)
            mark.scatter_(0, high, position)
            hooked = high.index_select(
                0, (mark.index_select(0, high) == position).nonzero().squeeze(1))
            mark.index_fill_(0, hooked, _INT64_MAX)
            self.merges.index_add_(0, self.node_sample.index_select(0, hooked),
                                   torch.ones_like(hooked))
            # Pointer jumping until every hooked root points at its new root.
            _jump_to_roots(parent, hooked)
            u = parent.index_select(0, u)
            v = parent.index_select(0, v)
        # Nodes below a hooked root still point at it until the next compress().
        self.length += (self.merges - merges_before).double() * math.sqrt(d2)

    def find(self, nodes: Tensor) -> Tensor:
        """The roots of the given nodes (``parent`` need not be compressed)."""
        nodes = self.parent.index_select(0, nodes)
        while True:
            up = self.parent.index_select(0, nodes)
            if torch.equal(up, nodes):
                return nodes
            nodes = up

    def compress(self) -> None:
        """Point every node directly at its root."""
        while True:
            up = self.parent.index_select(0, self.parent)
            if torch.equal(up, self.parent):
                return
            self.parent.copy_(up)
