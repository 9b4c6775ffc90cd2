"""Graph machinery of MST compactness (MST-C), batched over samples.

The kernel is :func:`xaiscore.functional.complexity.mst_compactness`; this private package holds
what it computes, one module per stage: :mod:`.points` (salient points), :mod:`.hull` (hull
areas), :mod:`.spanning_forest` (the k-NN spanning forest: near edges, then :mod:`.ring_scan` and
:mod:`.window_search` for the far ones, merged by the union-find of :mod:`.forest`), with the
lattice geometry in :mod:`.lattice`, fast tensor primitives in :mod:`.primitives` and the cost
model that picks a search path in :mod:`.tuning`.

Everything here works on a batch of boolean *salient-point* images ``kept`` of shape
``(B, H, W)``: a point is a kept pixel at its integer (row, column) coordinates. Three
quantities are computed for all samples at once, without a loop over samples:

- :func:`salient_points`: the pixels at or above a percentile of the map (and non-zero).
- :func:`hull_areas`: the area of the convex hull of each sample's points.
- :func:`spanning_forest_lengths`: the total length of the minimum spanning forest of each
  sample's symmetric k-nearest-neighbour graph, with ties at the k-th distance included.

The k-NN graph (``k`` neighbours, Euclidean weights) is defined without arbitrary tie breaking:
with :math:`d_k(p)` the distance from ``p`` to its k-th nearest other point (infinite when the
sample has at most ``k`` other points), points ``p`` and ``q`` are joined when
:math:`|pq| \\le \\max(d_k(p), d_k(q))`, i.e. when ``q`` is among the (tie-inclusive) k nearest
of ``p`` or vice versa. On the integer grid, :math:`|pq| \\le d_k(p)` holds exactly when fewer
than ``k`` other points are strictly closer to ``p`` than ``q`` is.

How the forest is found without touching every edge:

1. *Always-present edges.* Fewer than ``k`` lattice offsets are strictly shorter than
   :math:`\\sqrt{D_a}` (``D_a = 5`` for ``k = 20``), so every pair at squared distance at most
   ``D_a`` is an edge, whatever the data. These *near* edges are lighter than every other edge,
   so Kruskal's algorithm takes a spanning forest of them first.
2. *Runs.* A horizontal run of kept pixels is a path of unit edges, the lightest possible, so it
   is in some minimum spanning forest: each run is contracted to one node (``length - 1``).
3. *Near edges between runs.* For each near offset only the leftmost pixel pair of each pair of
   runs is kept (the others are parallel edges of equal weight), and a pair is dropped when a
   kept pixel offers a path of two strictly shorter near edges (a heavier edge on a cycle of
   lighter ones is in no minimum spanning forest). Edges of equal length need no order among
   themselves, so one connectivity pass per near length (hooking onto the smaller root, then
   pointer jumping) gives the near forest and its components.
4. *Far edges, ring by ring.* Squared distances ``D > D_a`` are visited in increasing order.
   Whether a pair at distance :math:`\\sqrt{D}` is an edge depends on how many points lie
   strictly closer (a count image updated ring by ring); only pairs between different current
   components matter. Each ring's edges (all of equal weight) are merged by a connectivity
   pass, so the forest grows exactly as in Kruskal's algorithm. Counts and component labels are
   uint8 images (labels split into byte planes): on CPU, comparisons of uint8 tensors are
   vectorised and those of wider integers are not. The scan stops for the batch once every
   sample is a single component or has no point whose k-th neighbour is still farther.
5. *Sparse leftovers.* When few points remain open, the ring scan over whole images is
   wasteful: each remaining point instead finds its neighbours in a window bounded by a
   summed-area table (the smallest square holding ``k`` other points bounds :math:`d_k`), gets
   its exact :math:`d_k` by sorting its candidates (those in the disc of that bound), and its
   remaining edges go through one last Borůvka pass (its lightest edges first: the heavy edges
   they already connect are dropped unseen). Sparse maps (few points per pixel) take this path for
   all their edges, near ones included (:math:`d_k \\ge \\sqrt{D_a}` always), and skip steps 3
   and 4.

Host synchronisation: graph sizes are data-dependent, so the functions read a handful of
counts per ring, per Borůvka or connectivity round and per pointer-jumping step
(edge counts, whether the scan is finished); there is no per-sample loop and no per-edge Python
work. On CPU the two selection steps (the percentile, the candidates' order) go through numpy on
zero-copy views, which is several times faster than ``torch.kthvalue``/``torch.sort`` there; other
devices use torch.
"""

from __future__ import annotations

from xaiscore.functional._mst.hull import hull_areas
from xaiscore.functional._mst.lattice import always_present_d2
from xaiscore.functional._mst.points import salient_points
from xaiscore.functional._mst.spanning_forest import spanning_forest_lengths

__all__ = ["salient_points", "hull_areas", "spanning_forest_lengths", "always_present_d2"]
