"""The report's example heatmaps: PNG tiles (numpy and zlib, no matplotlib) in an HTML grid.

Each example image and each method's map on it is one small PNG at the
image's own resolution (subsampled above 128 pixels), scaled up by the
browser without smoothing; the labels, the ground-truth legend and the colour
bar are HTML, so text stays sharp. Maps keep their sign: each is divided by
its largest magnitude and coloured with a diverging map (ColorBrewer RdBu:
blue negative, white zero, red positive) over the gray image.

Example:
    >>> import numpy as np
    >>> png_bytes(np.zeros((2, 3, 3), dtype=np.uint8))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
"""

from __future__ import annotations

import base64
import html
import struct
import zlib
from typing import Any

import numpy as np

__all__ = ["png_bytes", "diverging_rgb", "example_tiles", "examples_html", "DIVERGING"]

#: ColorBrewer RdBu (11 classes) from -1 (blue) to +1 (red).
DIVERGING = (
    "#053061",
    "#2166ac",
    "#4393c3",
    "#92c5de",
    "#d1e5f0",
    "#f7f7f7",
    "#fddbc7",
    "#f4a582",
    "#d6604d",
    "#b2182b",
    "#67001f",
)
_MAX_TILE = 128
_BOX = np.array([0.0, 0.78, 0.33])  # ground-truth outline (green)
_PREDICTED = np.array([1.0, 0.84, 0.0])  # a method's predicted boxes (amber)


def png_bytes(rgb: np.ndarray) -> bytes:
    """An ``(H, W, 3)`` uint8 array as a PNG file (8-bit RGB, no filter)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width, _ = rgb.shape
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rgb.reshape(height, -1)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def _anchors() -> np.ndarray:
    return np.array([[int(c[i : i + 2], 16) / 255.0 for i in (1, 3, 5)] for c in DIVERGING])


def diverging_rgb(values: np.ndarray) -> np.ndarray:
    """Colours in [0, 1] of ``values`` in [-1, 1] (:data:`DIVERGING`, linear between anchors)."""
    anchors = _anchors()
    position = (np.clip(values, -1.0, 1.0) + 1.0) / 2.0 * (len(anchors) - 1)
    low = np.floor(position).astype(int).clip(0, len(anchors) - 2)
    weight = (position - low)[..., None]
    return anchors[low] * (1.0 - weight) + anchors[low + 1] * weight


def _gray(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` -> ``(H, W)`` in [0, 1] (channel mean, min-max scaled)."""
    gray = np.nan_to_num(image.mean(axis=0))
    low, high = float(gray.min()), float(gray.max())
    return (gray - low) / (high - low) if high > low else np.zeros_like(gray)


def _signed(a: np.ndarray) -> np.ndarray:
    """``a / max |a|`` in [-1, 1] (sign kept); NaN for a missing map, zeros for an all-zero one."""
    if not np.isfinite(a).any():
        return np.full_like(a, np.nan)
    top = float(np.nanmax(np.abs(a)))
    return np.nan_to_num(a) / top if top > 0 else np.zeros_like(a)


def _outline(rgb: np.ndarray, boxes: np.ndarray, stride: int, colour: np.ndarray = _BOX) -> None:
    height, width, _ = rgb.shape
    for x0, y0, x1, y1 in boxes:
        if not np.isfinite(x0):
            continue
        left, right = (
            int(np.clip(x0 // stride, 0, width - 1)),
            int(np.clip((x1 - 1) // stride, 0, width - 1)),
        )
        top, bottom = (
            int(np.clip(y0 // stride, 0, height - 1)),
            int(np.clip((y1 - 1) // stride, 0, height - 1)),
        )
        rgb[top, left : right + 1] = rgb[bottom, left : right + 1] = colour
        rgb[top : bottom + 1, left] = rgb[top : bottom + 1, right] = colour


def example_tiles(ds: Any, *, max_examples: int = 6,
                  predicted: np.ndarray | None = None) -> list[list[bytes]]:
    """PNG bytes per example (rows) and column (the image, then each method's map over it);
    ``predicted`` ``(M, E, K, 4)``: each method's predicted boxes, drawn under the ground truth."""
    n_rows = min(max_examples, ds.sizes.get("example", 0))
    height, width = ds.sizes["y"], ds.sizes["x"]
    stride = max(1, int(np.ceil(max(height, width) / _MAX_TILE)))
    images = ds["example_image"].values
    boxes = ds["example_boxes"].values
    maps = ds["example_attribution"].values  # (M, E, H, W)
    rows = []
    for row in range(n_rows):
        gray = _gray(images[row])[::stride, ::stride]
        base = np.repeat(gray[..., None], 3, axis=-1) * 0.85 + 0.1
        tiles = []
        for column in range(maps.shape[0] + 1):
            rgb = base.copy()
            if column:
                heat = _signed(maps[column - 1, row])[::stride, ::stride]
                if np.isfinite(heat).any():
                    alpha = (0.25 + 0.75 * np.abs(heat))[..., None]
                    rgb = rgb * (1.0 - alpha) + diverging_rgb(heat) * alpha
                else:
                    rgb = np.full_like(rgb, 0.85)
                if predicted is not None:
                    _outline(rgb, predicted[column - 1, row], stride, _PREDICTED)
            _outline(rgb, boxes[row], stride)
            tiles.append(png_bytes(np.round(np.clip(rgb, 0, 1) * 255)))
        rows.append(tiles)
    return rows


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def examples_html(ds: Any, *, max_examples: int = 6, predicted: np.ndarray | None = None) -> str:
    """The example grid as HTML: tiles per sample and method, headers, the colour bar
    (``predicted``: each method's predicted boxes, see :func:`example_tiles`)."""
    from xaiscore.harness.report_models import column_labels, model_header_row

    methods = [str(m) for m in ds["explainer"].values]
    findings = dict(zip(ds["sample"].values.tolist(), [str(f) for f in ds["finding"].values]))
    tiles = example_tiles(ds, max_examples=max_examples, predicted=predicted)
    labels = column_labels(ds)  # several models: grouped under a header row naming the model
    names = ["image"] + [labels[m] for m in methods]
    header = "".join(f"<th>{html.escape(name)}</th>" for name in names)
    rows = []
    for row, pngs in enumerate(tiles):
        example = int(ds["example"].values[row])
        label = f"#{example}<br>{html.escape(findings.get(example, ''))}"
        cells = "".join(
            f'<td><img class="tile" src="{_uri(png)}" alt="{html.escape(name)} on sample '
            f'{example}"></td>'
            for png, name in zip(pngs, ["image"] + methods)
        )
        rows.append(f'<tr><th class="name" scope="row">{label}</th>{cells}</tr>')
    gradient = ", ".join(DIVERGING)
    colour_bar = (
        '<div class="legend"><span>−1 (negative)</span><span class="bar" style="background: '
        f'linear-gradient(to right, {gradient})"></span><span>+1 '
        '(positive)</span><span>attribution '
        '/ '
        "largest |attribution| of the map; white: 0; green outline: ground-truth box"
        + ("; amber outline: the method's predicted boxes (its map binarised as box accuracy does)"
           if predicted is not None else "")
        + "</span></div>"
    )
    return (
        f'<div class="scroll"><table class="tiles"><thead>{model_header_row(ds, leading=2)}'
        f'<tr><th></th>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>{colour_bar}"
    )
