"""Critical-difference diagram (Demšar 2006, Figure 1): mean ranks, the CD, groups that tie.

The axis shows the mean rank of every method (1 = best, on the left); each
method's name hangs from its mean rank, the better half on the left, the
worse half on the right. The bar at the top is the critical difference: two
methods whose mean ranks are closer than it are not significantly different
(Nemenyi). Thick bars under the axis join the groups of methods that are not
significantly different from one another.

matplotlib is imported when the function runs (the ``stats`` extra); pyplot
is not used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from xaiscore._checks import OptionError, ShapeError
from xaiscore.stats._input import method_names
from xaiscore.stats.ranks import PostHocResult, indistinguishable_groups

__all__ = ["plot_critical_difference"]


def _inputs(result: PostHocResult | None, mean_ranks: Any, methods: Any, cd: Any,
            groups: Any) -> tuple[np.ndarray, tuple[str, ...], float, tuple, str]:
    if result is not None:
        if any(v is not None for v in (mean_ranks, methods, cd, groups)):
            raise OptionError("Expected either `result` or `mean_ranks`/`methods`/"
                              "`critical_difference`/`groups`, but got both.")
        note = f"{result.test.capitalize()}, alpha = {result.alpha:g}, N = {result.n}"
        return (np.asarray(result.mean_ranks, np.float64), result.methods,
                float(result.critical_difference), result.groups, note)
    if mean_ranks is None:
        raise OptionError("Expected `result` (from nemenyi_test/conover_test) or `mean_ranks`, "
                          "but got neither.")
    ranks = np.asarray(mean_ranks, dtype=np.float64)
    if ranks.ndim != 1 or ranks.size < 1 or not np.all(np.isfinite(ranks)):
        raise ShapeError(
            f"Expected `mean_ranks` as a 1-D array of finite numbers, but got {ranks}."
        )
    names = method_names(methods, ranks.size)
    cd = math.nan if cd is None else float(cd)
    if groups is None:
        groups = ()
        if math.isfinite(cd):
            differ = np.abs(np.subtract.outer(ranks, ranks)) >= cd
            groups = indistinguishable_groups(ranks, differ, names)
    return ranks, names, cd, tuple(tuple(g) for g in groups), ""


def plot_critical_difference(result: PostHocResult | None = None, *, mean_ranks: Any = None,
                             methods: Sequence[str] | None = None,
                             critical_difference: float | None = None,
                             groups: Sequence[Sequence[str]] | None = None, ax: Any = None,
                             title: str | None = None, font_size: float = 9.0) -> Any:
    """Draw a critical-difference diagram; returns the matplotlib ``Figure``.

    A new figure is a plain ``matplotlib.figure.Figure``, not registered with
    pyplot: nothing to close; save it with ``figure.savefig(...)``.

    Args:
        result: A :class:`~xaiscore.stats.PostHocResult` (from
            :func:`~xaiscore.stats.nemenyi_test` or :func:`~xaiscore.stats.conover_test`);
            or, instead, the keywords below.
        mean_ranks: ``(k,)`` mean ranks, 1 = best.
        methods: ``k`` names.
        critical_difference: The CD bar's length (omitted when ``None``/NaN, e.g. Conover).
        groups: The groups to join (default: from ``critical_difference``).
        ax: An axes to draw into (default: a new figure sized for the names).
        title: A title.
        font_size: Size of the names, in points.

    Example:
        >>> figure = plot_critical_difference(mean_ranks=[3.143, 2.000, 2.893, 1.964],
        ...                                   methods=["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"],
        ...                                   critical_difference=1.25)
        >>> figure.axes[0].get_title()
        'Critical difference diagram'
    """
    from matplotlib.figure import Figure

    ranks, names, cd, bars, note = _inputs(result, mean_ranks, methods, critical_difference, groups)
    k = ranks.size
    low, high = 1.0, float(max(k, math.ceil(ranks.max())))
    order = np.argsort(ranks, kind="stable")
    left = list(order[: (k + 1) // 2])  # the better half, best at the top
    right = list(order[(k + 1) // 2:])[::-1]  # the worse half, worst at the top
    rows = max(len(left), len(right))
    longest = max((len(n) for n in names), default=4) + 7  # the name and " (2.50)"
    margin = 0.3 + 0.075 * longest * font_size / 9.0  # inches beside the axis for the names
    axis_width = max(3.0, 0.7 * (high - low + 1))
    bar_step, row_step = 0.12, 0.3
    first_row = -0.35 - bar_step * len(bars)
    if ax is None:
        height = 0.85 - (first_row - row_step * (rows + 0.3)) + 0.55  # one inch per unit of y
        width = axis_width + 2 * margin
        figure = Figure(figsize=(width, height))
        ax = figure.add_axes((margin / width, 0.1 / height, axis_width / width,
                              (height - 0.45) / height))
    figure = ax.figure
    ax.set_xlim(low - 0.05, high + 0.05)
    ax.set_ylim(first_row - row_step * (rows + 0.3), 0.85)
    ax.axis("off")
    line = {"color": "black", "linewidth": 1.0, "clip_on": False}

    ax.plot([low, high], [0, 0], **line)
    for tick in range(int(low), int(high) + 1):
        ax.plot([tick, tick], [0, 0.08], **line)
        ax.text(tick, 0.12, str(tick), ha="center", va="bottom", fontsize=font_size)
    ax.text((low + high) / 2, first_row - row_step * rows, "mean rank: 1 = best, lower is better",
            ha="center", va="bottom", fontsize=font_size - 1, style="italic")
    if math.isfinite(cd) and cd > 0:
        end = low + cd
        ax.plot([low, end], [0.55, 0.55], color="black", linewidth=1.5, clip_on=False)
        for x in (low, end):
            ax.plot([x, x], [0.5, 0.6], color="black", linewidth=1.0, clip_on=False)
        label = f"CD = {cd:.2f}" + (f" ({note})" if note else "")
        ax.text(low, 0.63, label, ha="left", va="bottom", fontsize=font_size - 1)
    for position, group in enumerate(bars):
        members = [ranks[names.index(name)] for name in group]
        y = -0.2 - bar_step * position
        ax.plot([min(members) - 0.03, max(members) + 0.03], [y, y], color="black", linewidth=3.0,
                solid_capstyle="round", clip_on=False)
    for side, indices in (("left", left), ("right", right)):
        for row, index in enumerate(indices):
            y = first_row - row_step * row
            edge = low - 0.1 if side == "left" else high + 0.1
            ax.plot([ranks[index], ranks[index], edge], [0, y, y], **line)
            ax.text(edge + (-0.05 if side == "left" else 0.05), y,
                    f"{names[index]} ({ranks[index]:.2f})",
                    ha="right" if side == "left" else "left", va="center", fontsize=font_size,
                    clip_on=False)
    ax.set_title(title if title is not None else "Critical difference diagram",
                 fontsize=font_size + 1, pad=2)
    return figure
