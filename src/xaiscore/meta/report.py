"""Tables, figures and an HTML section for a meta-evaluation Dataset (matplotlib, Agg backend).

* :func:`mc_table`: one row per metric: MC mean and spread per space, the four
  criteria per space, split-half reliability, separation from random maps.
* :func:`plot_meta_consistency`: MC per metric and space with its spread over
  iterations, against the level of a noise estimator.
* :func:`plot_criteria`: the four criteria per space as a heatmap.
* :func:`plot_metric_agreement`: Kendall's tau between the metrics' method rankings.
* :func:`meta_report_html`: writes the figures into a folder and returns an
  HTML fragment (heading, table, figures) for a report page; the harness
  report can append it to its own page. :func:`write_meta_report` writes a
  standalone ``meta_report.html``.

Example:
    >>> import tempfile, torch
    >>> from xaiscore.explainers import captum_explainer
    >>> from xaiscore.meta import meta_evaluate
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    >>> x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> methods = {"gradient": lambda m: captum_explainer(m, "Gradient"),
    ...            "saliency": lambda m: captum_explainer(m, "Saliency")}
    >>> ds = meta_evaluate(model, x, methods, ["sparseness", "complexity"], iterations=2, perturbations=2,
    ...                    n_splits=4)
    >>> list(mc_table(ds).index)
    ['sparseness', 'complexity']
    >>> path = write_meta_report(ds, tempfile.mkdtemp())
    >>> path.name, "Meta-evaluation" in path.read_text()
    ('meta_report.html', True)
"""  # noqa: E501

from __future__ import annotations

import html
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["mc_table", "plot_meta_consistency", "plot_criteria", "plot_metric_agreement",
           "meta_report_html",
           "write_meta_report"]

_CRITERIA = (("iac", "resilience", "IAC_NR"), ("iac", "adversary", "IAC_AR"),
             ("iec", "resilience", "IEC_NR"), ("iec", "adversary", "IEC_AR"))


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _names(ds: Any, dim: str) -> list[str]:
    return [str(v) for v in ds[dim].values]


def mc_table(ds: Any) -> Any:
    """One row per metric: ``MC <space>`` (mean over iterations) and ``MC <space> std``, the
    criteria ``<space> IAC_NR`` ... ``<space> IEC_AR`` (means over iterations), ``split-half``,
    and (with a random baseline) ``beats random`` (methods that do / methods)."""
    import pandas as pd

    metrics = _names(ds, "metric")
    table = pd.DataFrame(index=pd.Index(metrics, name="metric"))
    tests = _names(ds, "test")
    for space in _names(ds, "space"):
        table[f"MC {space}"] = ds["mc_mean"].sel(space=space).values
        table[f"MC {space} std"] = ds["mc_std"].sel(space=space).values
    for space in ("input", "model"):
        for variable, kind, label in _CRITERIA:
            test = f"{space}_{kind}"
            if test in tests:
                table[f"{space} {label}"] = ds[f"{variable}_mean"].sel(test=test).values
    table["split-half"] = ds["split_half_mean"].values
    if "beats_random" in ds:
        beats = ds["beats_random"].values
        table["beats random"] = [f"{int(row.sum())}/{row.size}" for row in beats]
    return table


def plot_meta_consistency(ds: Any, ax: Any = None) -> Any:
    """Bars: MC per metric and space (error bars: spread over iterations); dashed: a noise
    estimator's level."""
    plt = _pyplot()
    metrics, spaces = _names(ds, "metric"), _names(ds, "space")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.9 * max(len(metrics), 2) + 2.5, 3.2), layout="constrained")
    width = 0.8 / max(len(spaces), 1)
    positions = np.arange(len(metrics))
    for j, space in enumerate(spaces):
        means = ds["mc_mean"].sel(space=space).values
        spread = np.nan_to_num(ds["mc_std"].sel(space=space).values)
        ax.bar(positions + (j - (len(spaces) - 1) / 2) * width, means, width, yerr=spread,
               capsize=2,
               label=f"{space} perturbation", color=f"C{j}", alpha=0.85)
    level = float(ds.attrs.get("random_level_mc", np.nan))
    if np.isfinite(level):
        ax.axhline(level, color="grey", linestyle="--", linewidth=1,
                   label=f"noise estimator ({level:.2f})")
    ax.set_xticks(positions, metrics, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("MC score (1 = ideal)")
    ax.set_title("Meta-consistency: resilient to noise, reactive to change?", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return ax.figure


def plot_criteria(ds: Any, ax: Any = None) -> Any:
    """Heatmap: metrics x (space, criterion) of the four criteria, averaged over iterations."""
    plt = _pyplot()
    table = mc_table(ds)
    columns = [c for c in table.columns if c.split(" ")[-1] in {label for _, _, label in _CRITERIA}]
    values = table[columns].to_numpy(dtype=float)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.75 * max(len(columns), 2) + 2.5, 0.35 * len(table) + 1.6),
                             layout="constrained")
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            text = "–" if not np.isfinite(values[i, j]) else f"{values[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(columns)), columns, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(len(table)), list(table.index), fontsize=8)
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title("Criteria (1 = ideal)", fontsize=10)
    return ax.figure


def plot_metric_agreement(ds: Any, *, per_sample: bool = False, ax: Any = None) -> Any:
    """Heatmap of Kendall's tau between the metrics' method rankings (overall, or mean of per-sample
    taus)."""
    plt = _pyplot()
    variable = "agreement_per_sample_mean" if per_sample else "agreement"
    values = ds[variable].values
    metrics = _names(ds, "metric")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * len(metrics) + 3.0, 0.45 * len(metrics) + 2.2),
                             layout="constrained")
    image = ax.imshow(np.ma.masked_invalid(values), cmap="coolwarm", vmin=-1, vmax=1)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(metrics)), metrics, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(metrics)), metrics, fontsize=7)
    ax.figure.colorbar(image, ax=ax, shrink=0.7, label="Kendall tau")
    kind = "per sample (mean)" if per_sample else "by mean score"
    ax.set_title(f"Do metrics rank the methods alike? ({kind})", fontsize=9)
    return ax.figure


def _save(fig: Any, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    _pyplot().close(fig)
    path.write_bytes(buffer.getvalue())


def _table_html(table: Any) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for name, row in table.iterrows():
        cells = []
        for value in row.values:
            if isinstance(value, (float, np.floating)):
                text = "–" if not np.isfinite(value) else f"{value:.3g}"
            else:
                text = html.escape(str(value))
            cells.append(f"<td>{text}</td>")
        rows.append(f"<tr><td class=\"name\">{html.escape(str(name))}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th class=\"name\">metric</th>{head}</tr>{''.join(rows)}</table>"


def meta_report_html(ds: Any, figures_dir: str | os.PathLike[str], *,
                     figures_url: str = "figures") -> str:
    """Write ``meta_consistency.png``, ``meta_criteria.png`` and ``meta_agreement.png`` into
    ``figures_dir`` and return an HTML fragment showing them with the :func:`mc_table`.

    Args:
        ds: A Dataset from :func:`xaiscore.meta.meta_evaluate`.
        figures_dir: Folder for the PNG files (created).
        figures_url: How the page refers to that folder (relative URL).
    """
    folder = Path(figures_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _save(plot_meta_consistency(ds), folder / "meta_consistency.png")
    _save(plot_criteria(ds), folder / "meta_criteria.png")
    parts = [
        "<h2>Meta-evaluation (MetaQuantus tests)</h2>",
        f"<p class=\"note\">{int(ds.attrs.get('iterations', 0))} iterations x "
        f"{int(ds.attrs.get('perturbations', 0))} perturbations per test; magnitudes "
        f"{html.escape(str(json.loads(ds.attrs.get('tests', '{}'))))}. MC = mean of IAC_NR, "
        "IAC_AR, IEC_NR, IEC_AR (1 = ideal); a noise estimator scores about "
        f"{float(ds.attrs.get('random_level_mc', np.nan)):.2f}.</p>",
        _table_html(mc_table(ds)),
        f"<img src=\"{figures_url}/meta_consistency.png\" alt=\"MC scores\">",
        f"<img src=\"{figures_url}/meta_criteria.png\" alt=\"criteria\">",
    ]
    if ds.sizes.get("metric", 0) >= 2:
        _save(plot_metric_agreement(ds), folder / "meta_agreement.png")
        parts.append("<h3>Agreement between metrics</h3>"
                     f"<img src=\"{figures_url}/meta_agreement.png\" alt=\"metric agreement\">")
    skipped = json.loads(ds.attrs.get("skipped", "{}"))
    if skipped:
        items = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in skipped.items())
        parts.append(f"<p class=\"note\">Skipped metrics:</p><ul>{items}</ul>")
    return "".join(parts)


def write_meta_report(ds: Any, out_dir: str | os.PathLike[str], *,
                      title: str = "xaiscore meta-evaluation") -> Path:
    """Write ``meta_report.html`` and its figures (``figures/meta_*.png``) into ``out_dir``; return
    the page's path."""
    out = Path(out_dir)
    body = meta_report_html(ds, out / "figures")
    style = ("body{font-family:sans-serif;margin:2em auto;max-width:1100px;padding:0 1em}"
             "table{border-collapse:collapse;font-size:.85em}th,td{border:1px solid "
             "#ddd;padding:.2em .5em;"
             "text-align:right}td.name,th.name{text-align:left}img{max-width:100%}.note{color:#666}")
    page = (
        "<!DOCTYPE html><html lang=\"en\"><head><meta "
        f"charset=\"utf-8\"><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")
    path = out / "meta_report.html"
    path.write_text(page, encoding="utf-8")
    return path
