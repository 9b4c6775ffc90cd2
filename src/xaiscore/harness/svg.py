"""Small inline SVG charts for the report: box plots and line plots with labelled axes.

Dozens of small panels (one per metric) cost seconds in matplotlib and come
out as blurry bitmaps; as SVG they cost milliseconds, stay sharp at any zoom
and their text is real text. Each function returns one ``<svg>`` element as a
string (escaped, no script, no external reference).

Example:
    >>> import numpy as np
    >>> svg = box_plot_svg([np.array([0.1, 0.5, 0.9]), np.array([0.2, 0.3])], ["a", "b"],
    ...                    x_label="score", title="m")
    >>> svg.startswith("<svg") and "score" in svg
    True
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["PALETTE", "nice_ticks", "box_plot_svg", "line_plot_svg", "cd_diagram_svg"]

#: The colours of methods, in order (matplotlib's tab10).
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)

_FONT = "font-family:Helvetica,Arial,sans-serif"


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """About ``count`` round tick values covering ``[low, high]``.

    Example:
        >>> nice_ticks(0.03, 0.97)
        [0.0, 0.25, 0.5, 0.75, 1.0]
        >>> nice_ticks(-2.46, 4.9)
        [-4.0, -2.0, 0.0, 2.0, 4.0, 6.0]
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        span = abs(low) or 1.0
        low, high = low - 0.5 * span, high + 0.5 * span
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(value)
        value = start + len(ticks) * step
    if ticks[-1] < high:
        ticks.append(ticks[-1] + step)
    return [round(tick, 12) + 0.0 for tick in ticks]  # + 0.0: no "-0.0"


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) >= 1e-12 else "0"


def _text(
    x: float, y: float, text: str, *, size: int = 11, anchor: str = "middle", extra: str = ""
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" {extra}>'
        f"{html.escape(text)}</text>"
    )


class _Frame:
    """Pixel mapping of a plot area and its x axis (ticks, tick labels, axis label)."""

    def __init__(
        self,
        *,
        width: int,
        height: int,
        left: int,
        right: int,
        top: int,
        bottom: int,
        x_range: tuple[float, float],
        y_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = left, width - right, top, height - bottom
        self.x_ticks = nice_ticks(*x_range)
        self.x0, self.x1 = (self.x_ticks[0], self.x_ticks[-1]) if self.x_ticks else (0.0, 1.0)
        self.y0, self.y1 = y_range

    def x(self, value: float) -> float:
        return self.left + (value - self.x0) / ((self.x1 - self.x0) or 1.0) * (
            self.right - self.left
        )

    def y(self, value: float) -> float:
        return self.bottom - (value - self.y0) / ((self.y1 - self.y0) or 1.0) * (
            self.bottom - self.top
        )

    def x_axis(self, label: str) -> list[str]:
        parts = [
            f'<line x1="{self.left}" y1="{self.bottom}" x2="{self.right}" y2="{self.bottom}" '
            'stroke="#333"/>'
        ]
        for tick in self.x_ticks:
            px = self.x(tick)
            parts.append(
                f'<line x1="{px:.1f}" y1="{self.bottom}" x2="{px:.1f}" y2="{self.bottom + 4}" '
                'stroke="#333"/>'
            )
            parts.append(_text(px, self.bottom + 15, _fmt(tick), size=10))
        parts.append(_text((self.left + self.right) / 2, self.height - 4, label, size=11))
        return parts


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    label = html.escape(title, quote=True)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{label}" style="{_FONT}">'
        f"<title>{html.escape(title)}</title>{''.join(body)}</svg>"
    )


def box_plot_svg(
    groups: Sequence[np.ndarray],
    names: Sequence[str],
    *,
    x_label: str,
    title: str,
    width: int = 340,
) -> str:
    """Horizontal box plots, one row per group (box: quartiles, line: median, whiskers: 1.5 IQR).

    Groups without finite values show "no score". The x axis carries ``x_label``.
    """
    row = 16
    left = max(60, 7 * max((len(n) for n in names), default=4) + 8)
    left = min(left, width // 2)
    height = 24 + row * len(groups) + 36
    finite = [g[np.isfinite(g)] for g in groups]
    values = np.concatenate([g for g in finite if g.size] or [np.zeros(0)])
    x_range = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    frame = _Frame(
        width=width,
        height=height,
        left=left,
        right=12,
        top=22,
        bottom=36,
        x_range=x_range,
        y_range=(len(groups), 0),
    )
    body = [_text(width / 2, 14, title, size=12, extra='font-weight="bold"')]
    for i, (name, data) in enumerate(zip(names, finite)):
        colour = PALETTE[i % len(PALETTE)]
        y = frame.top + row * i + row / 2
        body.append(_text(left - 6, y + 4, name[:24], size=10, anchor="end"))
        if data.size == 0:
            body.append(
                _text(left + 6, y + 4, "no score", size=10, anchor="start", extra='fill="#999"')
            )
            continue
        q1, median, q3 = np.quantile(data, [0.25, 0.5, 0.75])
        iqr = q3 - q1
        low = float(data[data >= q1 - 1.5 * iqr].min())
        high = float(data[data <= q3 + 1.5 * iqr].max())
        body.append(
            f'<line x1="{frame.x(low):.1f}" y1="{y:.1f}" x2="{frame.x(high):.1f}" y2="{y:.1f}" '
            f'stroke="{colour}"/>'
        )
        body.append(
            f'<rect x="{frame.x(q1):.1f}" y="{y - 5:.1f}" '
            f'width="{max(frame.x(q3) - frame.x(q1), 1):.1f}" '
            f'height="10" fill="{colour}" fill-opacity="0.45" stroke="{colour}"/>'
        )
        body.append(
            f'<line x1="{frame.x(median):.1f}" y1="{y - 6:.1f}" x2="{frame.x(median):.1f}" '
            f'y2="{y + 6:.1f}" stroke="#000" stroke-width="1.5"/>'
        )
    body.extend(frame.x_axis(x_label))
    return _svg(width, height, title, body)


def line_plot_svg(
    x: np.ndarray,
    series: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    x_label: str,
    y_label: str,
    title: str,
    width: int = 360,
    height: int = 230,
) -> str:
    """Lines with a shaded band: ``series`` holds ``(name, mean (T,), half-width (T,))`` per line.

    Lines are coloured by their position in ``series`` (:data:`PALETTE`); a
    series whose mean has no finite value is left out.
    """
    x = np.asarray(x, dtype=np.float64)
    stacked = [np.concatenate([m - e, m + e]) for _, m, e in series]
    values = np.concatenate(stacked) if stacked else np.zeros(0)
    values = values[np.isfinite(values)]
    y_ticks = nice_ticks(float(values.min()), float(values.max())) if values.size else [0.0, 1.0]
    frame = _Frame(
        width=width,
        height=height,
        left=52,
        right=10,
        top=24,
        bottom=38,
        x_range=(float(np.nanmin(x)), float(np.nanmax(x))) if x.size else (0.0, 1.0),
        y_range=(y_ticks[0], y_ticks[-1]),
    )
    body = [_text(width / 2, 15, title, size=12, extra='font-weight="bold"')]
    for tick in y_ticks:
        py = frame.y(tick)
        body.append(
            f'<line x1="{frame.left}" y1="{py:.1f}" x2="{frame.right}" y2="{py:.1f}" '
            'stroke="#eee"/>'
        )
        body.append(_text(frame.left - 4, py + 3.5, _fmt(tick), size=10, anchor="end"))
    body.append(
        f'<line x1="{frame.left}" y1="{frame.top}" x2="{frame.left}" y2="{frame.bottom}" '
        'stroke="#333"/>'
    )
    middle = (frame.top + frame.bottom) / 2
    body.append(
        _text(12, middle, y_label, size=11, extra=f'transform="rotate(-90 12 {middle:.1f})"')
    )
    for i, (name, mean, error) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        keep = np.isfinite(mean) & np.isfinite(x)
        if not keep.any():
            continue
        xs, ms, es = x[keep], mean[keep], np.nan_to_num(error[keep])
        upper = " ".join(f"{frame.x(a):.1f},{frame.y(b):.1f}" for a, b in zip(xs, ms + es))
        lower = " ".join(
            f"{frame.x(a):.1f},{frame.y(b):.1f}" for a, b in zip(xs[::-1], (ms - es)[::-1])
        )
        body.append(
            f'<polygon points="{upper} {lower}" fill="{colour}" fill-opacity="0.15" stroke="none"/>'
        )
        line = " ".join(f"{frame.x(a):.1f},{frame.y(b):.1f}" for a, b in zip(xs, ms))
        body.append(
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.6">'
            f"<title>{html.escape(name)}</title></polyline>"
        )
    body.extend(frame.x_axis(x_label))
    return _svg(width, height, title, body)


def cd_diagram_svg(
    mean_ranks: Sequence[float],
    methods: Sequence[str],
    *,
    critical_difference: float,
    groups: Sequence[Sequence[str]],
    title: str,
    note: str = "",
    width: int = 640,
) -> str:
    """A critical-difference diagram (Demšar 2006) as SVG: the layout of
    :func:`xaiscore.stats.plot_critical_difference`, drawn without matplotlib.

    The axis is the mean rank (1 = best, on the left); each method hangs from
    its mean rank (the better half to the left, the worse half to the right);
    the bar at the top is the critical difference; thick bars join the groups
    that are not significantly different.
    """
    ranks = np.asarray(mean_ranks, dtype=np.float64)
    k = ranks.size
    high = float(max(k, math.ceil(ranks.max()))) if k else 1.0
    longest = max((len(m) for m in methods), default=4) + 7
    margin = min(width // 3, 14 + 6.3 * longest)
    order = list(np.argsort(ranks, kind="stable"))
    left, right = order[: (k + 1) // 2], order[(k + 1) // 2 :][::-1]
    rows = max(len(left), len(right), 1)
    axis_y = 70
    bars_y = axis_y + 14
    first_row = bars_y + 10 * len(groups) + 18
    height = int(first_row + 22 * rows + 26)

    def x(rank: float) -> float:
        return margin + (rank - 1.0) / ((high - 1.0) or 1.0) * (width - 2 * margin)

    body = [
        _text(width / 2, 16, title, size=13, extra='font-weight="bold"'),
        f'<line x1="{x(1):.1f}" y1="{axis_y}" x2="{x(high):.1f}" y2="{axis_y}" stroke="#000"/>',
    ]
    for tick in range(1, int(high) + 1):
        body.append(
            f'<line x1="{x(tick):.1f}" y1="{axis_y}" x2="{x(tick):.1f}" y2="{axis_y - 6}" '
            'stroke="#000"/>'
        )
        body.append(_text(x(tick), axis_y - 10, str(tick), size=11))
    if math.isfinite(critical_difference) and critical_difference > 0:
        end = x(1.0 + critical_difference)
        body.append(
            f'<line x1="{x(1):.1f}" y1="34" x2="{end:.1f}" y2="34" stroke="#000" stroke-width="2"/>'
        )
        body.append(
            f'<line x1="{x(1):.1f}" y1="29" x2="{x(1):.1f}" y2="39" stroke="#000"/>'
            f'<line x1="{end:.1f}" y1="29" x2="{end:.1f}" y2="39" stroke="#000"/>'
        )
        body.append(
            _text(
                end + 6,
                38,
                f"CD = {critical_difference:.2f}" + (f" ({note})" if note else ""),
                size=11,
                anchor="start",
            )
        )
    index = {name: i for i, name in enumerate(methods)}
    for position, group in enumerate(groups):
        members = [ranks[index[name]] for name in group if name in index]
        y = bars_y + 10 * position
        body.append(
            f'<line x1="{x(min(members)) - 3:.1f}" y1="{y}" x2="{x(max(members)) + 3:.1f}" '
            f'y2="{y}" '
            ''
            'stroke="#000" stroke-width="4" stroke-linecap="round"/>'
        )
    for side, indices in (("left", left), ("right", right)):
        for row, i in enumerate(indices):
            y = first_row + 22 * row
            edge = margin - 8 if side == "left" else width - margin + 8
            body.append(
                f'<polyline points="{x(ranks[i]):.1f},{axis_y} {x(ranks[i]):.1f},{y} '
                f'{edge:.1f},{y}" '
                'fill="none" stroke="#000"/>'
            )
            body.append(
                _text(
                    edge + (-4 if side == "left" else 4),
                    y + 4,
                    f"{methods[i]} ({ranks[i]:.2f})",
                    size=11,
                    anchor="end" if side == "left" else "start",
                )
            )
    body.append(
        _text(
            width / 2,
            height - 6,
            "mean rank: 1 = best, lower is better",
            size=11,
            extra='font-style="italic"',
        )
    )
    return _svg(width, height, title, body)
