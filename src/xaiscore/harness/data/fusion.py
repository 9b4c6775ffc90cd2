"""Fusing boxes drawn by several readers (radiologists) of one image.

* ``"union"``: every reader's boxes; the ground truth is their union.
* ``"majority"``: the region covered by the boxes of **more than half** of the
  image's readers (``R`` = the distinct readers who annotated the image at all,
  including those who found nothing), a pixel-wise majority vote computed
  exactly, independent of the image resolution: the box edges split the plane
  into a grid of cells, and a cell is in the region when more than ``R / 2``
  readers have a box covering it (a reader counts once per cell, however many
  of its boxes overlap there). The region is a union of cells; its mask is
  those cells rasterised by the pixel-centre rule, and its boxes are the
  bounding boxes of its connected components (cells sharing an edge).
* ``"per_reader"``: one sample per reader, with that reader's boxes.

Example:
    >>> boxes = {"R1": [(0, 0, 4, 4)], "R2": [(2, 0, 6, 4)], "R3": []}
    >>> region = majority_region(boxes, n_readers=3)
    >>> region.cells, region.boxes
    ([(2.0, 0.0, 4.0, 4.0)], [(2.0, 0.0, 4.0, 4.0)])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["FUSIONS", "MajorityRegion", "majority_region"]

FUSIONS: tuple[str, ...] = ("union", "majority", "per_reader")

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class MajorityRegion:
    """The majority region: its cells (disjoint boxes) and the bounding boxes of its components."""

    cells: list[Box]
    boxes: list[Box]

    @property
    def empty(self) -> bool:
        return not self.cells


def _components(grid: np.ndarray) -> np.ndarray:
    """4-connected component labels of a boolean grid (0 = background)."""
    labels = np.zeros(grid.shape, dtype=np.int64)
    current = 0
    for start in zip(*np.nonzero(grid)):
        if labels[start]:
            continue
        current += 1
        stack = [start]
        labels[start] = current
        while stack:
            i, j = stack.pop()
            for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
                if (0 <= a < grid.shape[0] and 0 <= b < grid.shape[1] and grid[a, b]
                    and not labels[a, b]):
                    labels[a, b] = current
                    stack.append((a, b))
    return labels


def majority_region(boxes_by_reader: Mapping[str, Sequence[Box]], *,
                    n_readers: int) -> MajorityRegion:
    """The region covered by boxes of more than ``n_readers / 2`` readers (see the module docs).

    Args:
        boxes_by_reader: Reader id to that reader's ``xyxy`` boxes (for one finding).
        n_readers: ``R``, the number of readers of the image (at least the
            number of keys; readers without boxes count).

    Returns:
        A :class:`MajorityRegion`; empty when no point has a majority.
    """
    all_boxes = [b for boxes in boxes_by_reader.values() for b in boxes]
    if not all_boxes:
        return MajorityRegion([], [])
    xs = np.unique(np.array([[b[0], b[2]] for b in all_boxes], dtype=np.float64))
    ys = np.unique(np.array([[b[1], b[3]] for b in all_boxes], dtype=np.float64))
    centre_x = (xs[:-1] + xs[1:]) / 2
    centre_y = (ys[:-1] + ys[1:]) / 2
    votes = np.zeros((len(centre_y), len(centre_x)), dtype=np.int64)
    for boxes in boxes_by_reader.values():
        covered = np.zeros_like(votes, dtype=bool)
        for x0, y0, x1, y1 in boxes:
            covered |= (((centre_y >= y0) & (centre_y < y1))[:, None]
                        & ((centre_x >= x0) & (centre_x < x1))[None, :])
        votes += covered
    grid = 2 * votes > n_readers
    cells = [(float(xs[j]), float(ys[i]), float(xs[j + 1]), float(ys[i + 1]))
             for i, j in zip(*np.nonzero(grid))]
    labels = _components(grid)
    components = []
    for k in range(1, int(labels.max()) + 1):
        rows, cols = np.nonzero(labels == k)
        components.append((float(xs[cols.min()]), float(ys[rows.min()]), float(xs[cols.max() + 1]),
                           float(ys[rows.max() + 1])))
    return MajorityRegion(cells, components)
