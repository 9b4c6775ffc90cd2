"""The static HTML report of a run: summary tables and matplotlib figures (Agg backend).

:func:`write_report` writes ``report.html`` and ``figures/*.png`` into a
folder, from a results Dataset alone (so ``xaiscore report results.nc`` can
redo it anywhere):

* a scoreboard: every method x metric mean, coloured by its rank among the
  methods (better is greener, respecting ``higher_is_better``);
* tables: mean with bootstrap confidence interval, means per finding class,
  per-image win rates, rank agreement between metrics (Kendall tau), the
  metrics won by an uninformative baseline (random or constant maps), and
  the metrics that were skipped and why;
* figures: example images with their ground-truth boxes and each method's
  heatmap, score distributions per method, perturbation curves (deletion,
  insertion, ... when those metrics ran), the rank-agreement matrix.

Example:
    >>> import tempfile, numpy as np
    >>> from xaiscore.harness.results import build_dataset
    >>> ds = build_dataset(
    ...     methods=["a", "b"],
    ...     samples={"source_id": ["0", "1"], "label": [1, 0], "target": [1, 0],
    ...              "prediction": [1, 0], "finding": ["x", ""]},
    ...     scores={"m": {"a": np.array([1.0, 0.5]), "b": np.array([0.0, 0.25])}},
    ...     metric_info={"m": {"higher_is_better": True, "family": "localization"}})
    >>> path = write_report(ds, tempfile.mkdtemp())
    >>> path.name, "Scoreboard" in path.read_text()
    ('report.html', True)
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from xaiscore.harness.summary import finding_table, per_sample_scores, rank_agreement, summary_table, win_rates
from xaiscore.harness.store import atomic_write_bytes
from xaiscore.harness.results import curve_variables, higher_is_better, metric_variables

__all__ = ["write_report", "plot_scoreboard", "plot_examples", "plot_distributions", "plot_curves",
           "plot_rank_agreement", "plot_overview", "default_win_metric", "baseline_methods", "BASELINE_EXPLAINERS"]

_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td.name, th.name { text-align: left; }
td.best { font-weight: bold; background: #e6f4ea; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.meta { color: #666; font-size: 0.9em; } .note { color: #666; font-size: 0.85em; }
"""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    _pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _arrow(metric_ds: xr.Dataset, metric: str) -> str:
    direction = higher_is_better(metric_ds, metric)
    return "" if direction is None else (" ↑" if direction else " ↓")


def _ranks(means: pd.DataFrame, ds: xr.Dataset) -> pd.DataFrame:
    """Per metric (column), 1 for the best method ... 0 for the worst (NaN: no direction or no value)."""
    out = pd.DataFrame(np.nan, index=means.index, columns=means.columns)
    for metric in means.columns:
        direction = higher_is_better(ds, metric)
        column = means[metric]
        if direction is None or column.notna().sum() < 2:
            continue
        oriented = column if direction else -column
        ranked = oriented.rank(method="average")
        span = ranked.max() - ranked.min()
        out[metric] = (ranked - ranked.min()) / span if span > 0 else 0.5
    return out


def plot_scoreboard(ds: xr.Dataset, summary: pd.DataFrame, ax: Any = None) -> Any:
    """Metrics x methods table of the mean scores, coloured by the methods' rank within each metric."""
    plt = _pyplot()
    means = summary["mean"].unstack("metric")
    metrics = [m for m in metric_variables(ds) if m in means.columns]
    methods = [str(m) for m in ds["explainer"].values]
    means = means.reindex(index=methods, columns=metrics)
    ranks = _ranks(means, ds).T
    table = means.T
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.0 * len(methods) + 3.0, 0.32 * len(metrics) + 1.2), layout="constrained")
    ax.imshow(np.ma.masked_invalid(ranks.to_numpy(dtype=float)), cmap="RdYlGn", vmin=-0.15, vmax=1.15,
              aspect="auto")
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            value = table.iat[i, j]
            text = "–" if not np.isfinite(value) else (f"{value:.2g}" if abs(value) < 1000 else f"{value:.1e}")
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
    families = [str(ds[m].attrs.get("family", "")) for m in metrics]
    for i in range(1, len(metrics)):
        if families[i] != families[i - 1]:
            ax.axhline(i - 0.5, color="white", linewidth=2.5)
    ax.set_yticks(range(len(metrics)), [f"{m}{_arrow(ds, m)}" for m in metrics], fontsize=8)
    ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.set_title("Mean score (colour: rank among methods, green = best)", fontsize=9, pad=28)
    return ax.figure


def _heat(a: np.ndarray) -> np.ndarray:
    """Map to [0, 1] for display: |a| / max |a| (signed maps show magnitude)."""
    magnitude = np.abs(a)
    top = np.nanmax(magnitude) if np.isfinite(magnitude).any() else 0.0
    return magnitude / top if top > 0 else magnitude


def plot_examples(ds: xr.Dataset, *, max_examples: int = 6, axes: Any = None) -> Any:
    """Grid: one row per example image (with its boxes), one column per method's heatmap."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    examples = ds["example"].values[:max_examples]
    methods = [str(m) for m in ds["explainer"].values]
    n_rows, n_cols = len(examples), len(methods) + 1
    if axes is None:
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.6 * n_cols, 1.6 * n_rows + 0.4), squeeze=False,
                                 layout="constrained")
    findings = dict(zip(ds["sample"].values.tolist(), ds["finding"].values.tolist()))
    for row, example in enumerate(examples):
        image = ds["example_image"].isel(example=row).values
        gray = image.mean(axis=0)
        boxes = ds["example_boxes"].isel(example=row).values
        for col in range(n_cols):
            ax = axes[row][col]
            ax.imshow(gray, cmap="gray")
            if col > 0:
                heat = _heat(ds["example_attribution"].isel(example=row).values[col - 1])
                ax.imshow(heat, cmap="inferno", alpha=0.6, vmin=0, vmax=1)
            for x0, y0, x1, y1 in boxes:
                if np.isfinite(x0):
                    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                           edgecolor="#00e5ff", linewidth=1.2))
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title("image" if col == 0 else methods[col - 1], fontsize=8)
            if col == 0:
                ax.set_ylabel(f"#{int(example)} {findings.get(int(example), '')}", fontsize=7)
    return axes[0][0].figure


def plot_distributions(ds: xr.Dataset, metrics: Sequence[str], *, columns: int = 5) -> Any:
    """One panel per metric: a box plot of the per-sample scores of each method (methods in legend order)."""
    plt = _pyplot()
    rows = max(1, math.ceil(len(metrics) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.0 * rows + 0.6), squeeze=False)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.6 / (2.0 * rows + 0.6), top=1 - 0.35 / (2.0 * rows + 0.6),
                        hspace=0.45, wspace=0.3)
    methods = [str(m) for m in ds["explainer"].values]
    colours = [f"C{i % 10}" for i in range(len(methods))]
    for ax, metric in zip(axes.flat, metrics):
        scores = per_sample_scores(ds, metric).values
        data = [row[np.isfinite(row)] for row in scores]
        parts = ax.boxplot([d if d.size else np.array([np.nan]) for d in data], showfliers=False,
                           patch_artist=True, widths=0.6)
        for patch, colour in zip(parts["boxes"], colours):
            patch.set_facecolor(colour)
            patch.set_alpha(0.6)
        ax.set_xticks([])
        ax.set_title(f"{metric}{_arrow(ds, metric)}", fontsize=8)
        ax.tick_params(axis="y", labelsize=6, length=2)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=c, alpha=0.6) for c in colours]
    fig.legend(handles, methods, loc="lower center", ncol=min(len(methods), 8), fontsize=8, frameon=False)
    return fig


def plot_curves(ds: xr.Dataset, metrics: Sequence[str]) -> Any:
    """Mean perturbation curve per method for each curve metric (shaded: +- one standard error)."""
    plt = _pyplot()
    columns = min(3, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False,
                             layout="constrained")
    for ax, metric in zip(axes.flat, metrics):
        curve = ds[f"{metric}_curve"]
        if "run" in curve.dims:
            curve = curve.mean("run", skipna=True)
        step = f"{metric}_step"
        x = ds[step].values
        for method in ds["explainer"].values:
            values = curve.sel({"explainer": method}).transpose("sample", step).values
            values = values[np.isfinite(values).all(axis=1)]
            if values.size == 0:
                continue
            mean = values.mean(axis=0)
            error = values.std(axis=0, ddof=1) / math.sqrt(len(values)) if len(values) > 1 else 0 * mean
            ax.plot(x, mean, label=str(method), linewidth=1.3)
            ax.fill_between(x, mean - error, mean + error, alpha=0.15)
        ax.set_title(f"{metric}{_arrow(ds, metric)}", fontsize=9)
        ax.set_xlabel(step, fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    return fig


def plot_rank_agreement(table: pd.DataFrame) -> Any:
    """Heatmap of Kendall's tau between the method rankings of pairs of metrics."""
    plt = _pyplot()
    n = len(table)
    fig, ax = plt.subplots(figsize=(0.3 * n + 3.0, 0.3 * n + 2.2), layout="constrained")
    image = ax.imshow(table.to_numpy(dtype=float), cmap="coolwarm", vmin=-1, vmax=1)
    ax.set_xticks(range(n), table.columns, rotation=70, ha="right", fontsize=7)
    ax.set_yticks(range(n), table.index, fontsize=7)
    fig.colorbar(image, ax=ax, shrink=0.7, label="Kendall tau")
    ax.set_title("Do metrics agree on the ranking of methods?", fontsize=10)
    return fig


def plot_overview(ds: xr.Dataset, summary: pd.DataFrame, *, max_examples: int | None = None) -> Any:
    """The scoreboard beside the example grid: the one figure that tells the story of a run.

    ``max_examples`` defaults to as many example rows as the scoreboard's height holds (at least 2).
    """
    plt = _pyplot()
    methods = len(ds["explainer"])
    metrics = len(metric_variables(ds))
    board_height = 0.3 * metrics + 1.6
    if max_examples is None:
        max_examples = max(2, int((board_height - 0.6) // 1.55))
    n_examples = min(max_examples, ds.sizes.get("example", 0)) if "example_image" in ds else 0
    board_width = 1.0 * methods + 3.2
    grid_width = 1.5 * (methods + 1) if n_examples else 0.0
    height = max(board_height, 1.55 * n_examples + 0.6, 3.0)
    fig = plt.figure(figsize=(board_width + grid_width, height), layout="constrained")
    if not n_examples:
        plot_scoreboard(ds, summary, ax=fig.add_subplot())
        return fig
    left, right = fig.subfigures(1, 2, width_ratios=[board_width, grid_width])
    plot_scoreboard(ds, summary, ax=left.add_subplot())
    axes = right.subplots(n_examples, methods + 1, squeeze=False)
    plot_examples(ds, max_examples=n_examples, axes=axes)
    right.suptitle("Examples: ground-truth boxes (cyan) and |attribution|", fontsize=9)
    return fig


def default_win_metric(ds: xr.Dataset) -> str | None:
    """The metric win rates are shown for by default: the first localization metric with a direction."""
    names = [m for m in metric_variables(ds) if higher_is_better(ds, m) is not None]
    localization = [m for m in names if ds[m].attrs.get("family") == "localization"]
    return (localization or names or [None])[0]


def _table(frame: pd.DataFrame, *, best: pd.DataFrame | None = None, digits: int = 3) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    index_name = html.escape(" / ".join(str(n) for n in frame.index.names if n) or "")
    rows = []
    for key, row in frame.iterrows():
        label = " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)
        cells = []
        for column, value in row.items():
            css = " class=\"best\"" if best is not None and bool(best.at[key, column]) else ""
            if isinstance(value, (float, np.floating)):
                text = "–" if not np.isfinite(value) else f"{value:.{digits}g}"
            else:
                text = html.escape(str(value))
            cells.append(f"<td{css}>{text}</td>")
        rows.append(f"<tr><td class=\"name\">{html.escape(label)}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th class=\"name\">{index_name}</th>{head}</tr>{''.join(rows)}</table>"


def _summary_html(ds: xr.Dataset, summary: pd.DataFrame) -> str:
    cells = summary.apply(
        lambda r: "–" if not np.isfinite(r["mean"]) else f"{r['mean']:.3g} [{r['ci_low']:.3g}, {r['ci_high']:.3g}]",
        axis=1,
    ).unstack("metric")
    metrics = [m for m in metric_variables(ds) if m in cells.columns]
    methods = [str(m) for m in ds["explainer"].values]
    cells = cells.reindex(index=methods, columns=metrics)
    means = summary["mean"].unstack("metric").reindex(index=methods, columns=metrics)
    best = _ranks(means, ds).eq(1.0)
    cells.columns = [f"{m}{_arrow(ds, m)}" for m in metrics]
    best.columns = cells.columns
    return _table(cells.T, best=best.T)


def write_report(ds: xr.Dataset, out_dir: str | os.PathLike[str], *, win_metric: str | None = None,
                 n_boot: int = 1000, seed: int = 0, title: str = "xaiscore report") -> Path:
    """Write ``report.html`` and ``figures/*.png`` for a results Dataset into ``out_dir``.

    Args:
        ds: A results Dataset (from the runner or :func:`xaiscore.harness.results.load_dataset`).
        out_dir: Folder to write into (created).
        win_metric: The metric of the win-rate table (default: :func:`default_win_metric`).
        n_boot: Bootstrap resamples of the confidence intervals.
        seed: Seed of the bootstrap.
        title: The page title.

    Returns:
        The path of ``report.html``.
    """
    out = Path(out_dir)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    metrics = metric_variables(ds)
    summary = summary_table(ds, n_boot=n_boot, seed=seed)
    parts = [f"<h1>{html.escape(title)}</h1>", _meta_html(ds)]
    if metrics:
        _save(plot_overview(ds, summary), figures / "overview.png")
        parts.append("<h2>Scoreboard</h2><img src=\"figures/overview.png\" alt=\"scoreboard and examples\">")
        parts.append("<h2>Mean scores [95% bootstrap CI]</h2>" + _summary_html(ds, summary))
        parts.append("<p class=\"note\">↑ higher is better, ↓ lower is better; bold: the best method per metric. "
                     "NaN scores (undefined cases, e.g. no ground-truth region) are left out; "
                     "the n column of the CSV below counts the rest.</p>")
        parts.append(_baseline_wins_html(ds, summary))
        findings = finding_table(ds)
        if findings.shape[1] > 1:
            parts.append("<h2>Mean score per finding class</h2>" + _table(findings))
        win_metric = win_metric or default_win_metric(ds)
        if win_metric is not None:
            rates = win_rates(ds, win_metric)
            parts.append(f"<h2>Per-image win rates on {html.escape(win_metric)}</h2>"
                         + _table(rates.to_frame("win rate"))
                         + f"<p class=\"note\">{rates.attrs['n_images']} images; ties split the win.</p>")
        agreement = rank_agreement(ds)
        if len(agreement) >= 2 and len(ds["explainer"]) >= 2:
            _save(plot_rank_agreement(agreement), figures / "rank_agreement.png")
            parts.append("<h2>Rank agreement between metrics</h2>"
                         "<img src=\"figures/rank_agreement.png\" alt=\"rank agreement\">")
        curves = curve_variables(ds)
        if curves:
            _save(plot_curves(ds, curves), figures / "curves.png")
            parts.append("<h2>Perturbation curves</h2><img src=\"figures/curves.png\" alt=\"curves\">")
        _save(plot_distributions(ds, metrics), figures / "distributions.png")
        parts.append("<h2>Score distributions</h2><img src=\"figures/distributions.png\" alt=\"distributions\">")
        csv = summary.reset_index().to_csv(index=False)
        atomic_write_bytes(out / "summary.csv", csv.encode())
        parts.append("<p class=\"note\">All numbers: <a href=\"summary.csv\">summary.csv</a>.</p>")
    else:
        parts.append("<p>No metric could be scored.</p>")
    parts.append(_skipped_html(ds))
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>")
    path = out / "report.html"
    atomic_write_bytes(path, page.encode("utf-8"))
    return path


#: Explainers that carry no information about the model: a metric they win cannot rank real methods.
BASELINE_EXPLAINERS = ("random", "constant")


def baseline_methods(ds: xr.Dataset) -> dict[str, str]:
    """The methods of a run that are uninformative baselines, ``{name: explainer}``, from its stored config.

    Empty when the Dataset holds no run config (e.g. built by hand).

    Example:
        >>> ds = xr.Dataset(attrs={"config": json.dumps({"methods": [
        ...     {"name": "saliency", "method": "Saliency"}, {"name": "flat", "method": "constant"}]})})
        >>> baseline_methods(ds)
        {'flat': 'constant'}
    """
    try:
        methods = json.loads(ds.attrs.get("config", "{}")).get("methods", [])
    except (TypeError, ValueError, AttributeError):
        return {}
    return {str(m["name"]): str(m["method"]) for m in methods
            if isinstance(m, dict) and m.get("method") in BASELINE_EXPLAINERS and "name" in m}


def _baseline_wins_html(ds: xr.Dataset, summary: pd.DataFrame) -> str:
    """A warning listing the metrics on which a baseline explainer has the best mean score."""
    baselines = baseline_methods(ds)
    methods = [str(m) for m in ds["explainer"].values]
    if not baselines or len(baselines) == len(methods):
        return ""
    metrics = [m for m in metric_variables(ds) if m in summary["mean"].unstack("metric").columns]
    means = summary["mean"].unstack("metric").reindex(index=methods, columns=metrics)
    best = _ranks(means, ds).eq(1.0)
    rows = [(metric, name, baselines[name]) for metric in metrics for name in baselines
            if name in best.index and bool(best.at[name, metric])]
    if not rows:
        return ""
    frame = pd.DataFrame(rows, columns=["metric", "best method", "explainer"]).set_index("metric")
    return ("<h2>Baselines that win</h2>"
            "<p class=\"note\">On these metrics an uninformative baseline (random or constant maps, which "
            "know nothing about the model) has the best mean score. Such a metric cannot rank the real "
            "methods here: it rewards a property the baseline has by construction (a constant map never "
            "changes under noise, so robustness metrics favour it; random maps change completely when the model does, so MPRT favours them, as Binder et al. 2023 show) or the "
            "differences are noise. Read these metrics beside a faithfulness or localization metric, "
            "not alone.</p>" + _table(frame))


def _meta_html(ds: xr.Dataset) -> str:
    n = ds.sizes.get("sample", 0)
    findings = pd.Series([str(f) for f in ds["finding"].values]).value_counts().to_dict() if n else {}
    correct = float((ds["prediction"] == ds["label"]).mean()) if n else float("nan")
    counts = ", ".join(f"{html.escape(k or '(none)')}: {v}" for k, v in findings.items())
    items = [
        f"{n} samples ({counts})",
        f"{len(ds['explainer'])} methods: {html.escape(', '.join(map(str, ds['explainer'].values)))}",
        f"{len(metric_variables(ds))} metrics; model accuracy on these samples {correct:.1%}",
        f"xaiscore {html.escape(str(ds.attrs.get('xaiscore_version', '?')))}, torch "
        f"{html.escape(str(ds.attrs.get('torch_version', '?')))}, seed {html.escape(str(ds.attrs.get('seed', '?')))}",
    ]
    return "<p class=\"meta\">" + "<br>".join(items) + "</p>"


def _skipped_html(ds: xr.Dataset) -> str:
    rows = []
    for metric, reasons in json.loads(ds.attrs.get("skipped", "{}")).items():
        for method, reason in reasons.items():
            rows.append((metric, method, reason))
    for metric in metric_variables(ds):
        for method, reason in json.loads(ds[metric].attrs.get("skipped", "{}")).items():
            rows.append((metric, method, reason))
    if not rows:
        return ""
    frame = pd.DataFrame(rows, columns=["metric", "method", "reason"]).set_index("metric")
    return "<h2>Skipped</h2>" + _table(frame)
