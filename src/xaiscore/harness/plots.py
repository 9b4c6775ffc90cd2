"""The report's bitmap figures (matplotlib, Agg, no pyplot state): example heatmaps and the CD diagram.

Every figure is drawn on a plain :class:`matplotlib.figure.Figure` (not
registered with pyplot: nothing to close) and returned as PNG bytes by
:func:`figure_png`. Line and box plots of the report are inline SVG
(:mod:`xaiscore.harness.svg`), tables are HTML.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

__all__ = ["figure_png", "plot_examples", "plot_cd_diagram", "HEATMAP_COLORMAP"]

#: Diverging colour map of the heatmaps: red positive, blue negative, white zero.
HEATMAP_COLORMAP = "RdBu_r"
_MAX_TILE = 96  # longest side of a tile in the mosaic (larger images are subsampled)


def figure_png(figure: Any, *, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _gray(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` -> ``(H, W)`` in [0, 1] (channel mean, min-max scaled)."""
    gray = np.nan_to_num(image.mean(axis=0))
    low, high = float(gray.min()), float(gray.max())
    return (gray - low) / (high - low) if high > low else np.zeros_like(gray)


def _signed(a: np.ndarray) -> np.ndarray:
    """``a / max |a|`` in [-1, 1] (sign kept); zeros for an all-zero or missing map."""
    if not np.isfinite(a).any():
        return np.full_like(a, np.nan)
    top = float(np.nanmax(np.abs(a)))
    return a / top if top > 0 else np.zeros_like(a)


def _tile(image: np.ndarray, heat: np.ndarray | None, cmap: Any) -> np.ndarray:
    """One RGB tile: the gray image, overlaid with ``heat`` in [-1, 1] (opacity grows with |heat|)."""
    rgb = np.repeat(image[..., None], 3, axis=-1) * 0.85 + 0.1
    if heat is None:
        return rgb
    if not np.isfinite(heat).any():
        return np.full_like(rgb, 0.85)
    colours = cmap((np.nan_to_num(heat) + 1.0) / 2.0)[..., :3]
    alpha = 0.25 + 0.75 * np.abs(np.nan_to_num(heat))[..., None]
    return rgb * (1.0 - alpha) + colours * alpha


def plot_examples(ds: Any, *, max_examples: int = 6) -> Any:
    """Example images (ground-truth boxes in green) and each method's map, with one colour bar.

    Each map is divided by its largest magnitude, so its sign is kept: red is
    positive attribution, blue negative, white zero (a map without negative
    values shows only red). One mosaic image in one axes: fast at any size.

    Returns:
        A :class:`matplotlib.figure.Figure`.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    cmap = colormaps[HEATMAP_COLORMAP]
    methods = [str(m) for m in ds["explainer"].values]
    n_rows = min(max_examples, ds.sizes.get("example", 0))
    height, width = ds.sizes["y"], ds.sizes["x"]
    stride = max(1, int(np.ceil(max(height, width) / _MAX_TILE)))
    h, w = len(range(0, height, stride)), len(range(0, width, stride))
    gap = max(2, h // 16)
    columns = len(methods) + 1
    mosaic = np.ones((n_rows * (h + gap), columns * (w + gap), 3))
    findings = dict(zip(ds["sample"].values.tolist(), ds["finding"].values.tolist()))
    attributions = ds["example_attribution"].values  # (M, E, H, W)
    boxes_all = ds["example_boxes"].values
    for row in range(n_rows):
        image = _gray(ds["example_image"].values[row])[::stride, ::stride]
        for col in range(columns):
            heat = None if col == 0 else _signed(attributions[col - 1, row])[::stride, ::stride]
            top, left = row * (h + gap), col * (w + gap)
            mosaic[top:top + h, left:left + w] = _tile(image, heat, cmap)
    tile_inches = 1.15
    fig_width = columns * tile_inches + 1.9
    fig_height = n_rows * tile_inches + 1.0
    figure = Figure(figsize=(fig_width, fig_height))
    ax = figure.add_axes((1.0 / fig_width, 0.15 / fig_height, columns * tile_inches / fig_width,
                          n_rows * tile_inches / fig_height))
    ax.imshow(np.clip(mosaic, 0, 1), interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    for row in range(n_rows):
        example = int(ds["example"].values[row])
        ax.text(-gap, row * (h + gap) + h / 2, f"#{example}\n{findings.get(example, '')}", ha="right",
                va="center", fontsize=7)
        for col in range(columns):
            for x0, y0, x1, y1 in boxes_all[row]:
                if np.isfinite(x0):
                    ax.add_patch(Rectangle((col * (w + gap) + (x0 - 0.5) / stride, row * (h + gap) + (y0 - 0.5) / stride),
                                           (x1 - x0) / stride, (y1 - y0) / stride, fill=False,
                                           edgecolor="#00c853", linewidth=1.0))
    for col, name in enumerate(["image"] + methods):
        ax.text(col * (w + gap) + w / 2, -gap, name, ha="center", va="bottom", fontsize=7,
                rotation=20 if len(name) > 12 else 0)
    bar = figure.add_axes(((columns * tile_inches + 1.2) / fig_width, 0.15 / fig_height,
                           0.12 / fig_width, n_rows * tile_inches / fig_height))
    colorbar = figure.colorbar(ScalarMappable(Normalize(-1, 1), cmap), cax=bar)
    colorbar.set_label("attribution / max |attribution| of the map", fontsize=7)
    colorbar.ax.tick_params(labelsize=6)
    return figure


def plot_cd_diagram(result: Any, *, title: str) -> Any:
    """The critical-difference diagram of a :class:`~xaiscore.stats.PostHocResult`."""
    from xaiscore.stats import plot_critical_difference

    return plot_critical_difference(result, title=title)
