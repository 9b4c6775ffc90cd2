"""The HTML report of a run: one self-contained page a reviewer can read and check.

:func:`write_report` writes ``report.html`` (self-contained: charts are inline
SVG, images and the CSV are data URIs, so the one file can be mailed or
attached) and ``summary.csv`` into a folder, from a results Dataset alone
(so ``xaiscore report results.nc`` can redo it anywhere). The page holds:

* the model's accuracy and AUROC on the scored samples and a warning when it
  is at chance level (:mod:`xaiscore.harness.sanity`);
* the scoreboard, an HTML table (metrics x methods, mean with a 95 %
  bootstrap interval) whose verdict column names a best method only when it
  is significantly better than every other, else the tie group
  (:mod:`xaiscore.harness.verdicts`);
* a critical-difference diagram of the methods' ranks across the metrics
  (Friedman and Nemenyi tests);
* per-sample win rates with bootstrap intervals, overall and per finding;
* example images with each method's map (sign kept, one colour bar);
* the perturbation curves with their y scale and x meaning (inline SVG);
* the metrics an uninformative baseline (random or constant maps) wins;
* rank agreement between metrics (Kendall tau and how many methods it rests
  on), means per finding, every pairwise test, score distributions
  (collapsible);
* "Skipped and undefined": every NaN of the scoreboard with its reason
  (:mod:`xaiscore.harness.gaps`).

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

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from xaiscore.harness.report_html import (
    agreement_html,
    arrow,
    esc,
    gaps_html,
    pairwise_html,
    scoreboard_html,
    table_html,
    win_rates_html,
)
from xaiscore.harness.report_mosaics import mosaic_html, set_and_mosaic_rows
from xaiscore.harness.report_sets import predicted_boxes, set_level_html
from xaiscore.harness.results import curve_variables, higher_is_better, metric_variables
from xaiscore.harness.set_results import set_metric_variables
from xaiscore.harness.store import atomic_write_bytes
from xaiscore.harness.summary import finding_table, rank_agreement, score_array, summary_table

__all__ = ["write_report", "default_win_metric", "baseline_methods", "BASELINE_EXPLAINERS"]

_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 1.5em auto;
       max-width: 1200px; color: #222; line-height: 1.45; padding: 0 1em; font-size: 15px; }
h1 { margin-bottom: 0.2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 13px; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .45em; text-align: right; vertical-align: top; }
th { background: #f4f4f4; font-weight: 600; } th.name, td.left { text-align: left; }
thead th { overflow-wrap: anywhere; }
table.board { font-size: 12.5px; } table.board td, table.board th { padding: .2em .35em; }
table.board td.verdict { text-align: left; min-width: 7em; }
tr.family th { text-align: left; background: #e8eef6; font-size: 12px; text-transform: uppercase; }
td .v { display: block; }
td .ci { display: block; color: #666; font-size: 11px; white-space: nowrap; }
td.best { background: #c8e6c9; font-weight: 600; } td.tie { background: #eef7ee; }
td.verdict.best { background: #c8e6c9; } td.verdict.chance { background: #ffe0b2; }
a.gap, a.nan { color: #a33; text-decoration: none; font-size: 11px; }
a.nan { display: block; font-size: 10px; }
.warning { background: #fff3e0; border-left: 5px solid #e65100; padding: .6em 1em; margin: 1em 0; }
.meta, .note { color: #555; font-size: 13px; }
img { max-width: 100%; height: auto; }
table.tiles td { padding: 2px; border: none; }
table.tiles th { border: none; background: none; font-size: 12px; }
img.tile { width: 96px; height: 96px; image-rendering: pixelated; display: block; }
.panels { display: flex; flex-wrap: wrap; gap: .6em; }
.panels svg { max-width: 100%; height: auto; }
details { margin: .8em 0; } summary { cursor: pointer; font-weight: 600; }
table.heat td { width: 14px; min-width: 14px; height: 14px; padding: 0; font-size: 9px;
                text-align: center; } table.heat td.blank { background: #fff; }
table.heat th.name { font-size: 11px; white-space: nowrap; }
th.rot { height: 9em; vertical-align: bottom; padding: 2px 0; }
th.rot span { writing-mode: vertical-rl;
         transform: rotate(180deg); font-size: 11px; font-weight: normal; white-space: nowrap; }
.legend { display: flex; align-items: center; gap: .5em; font-size: 12px; }
.legend .bar { width: 160px; height: 12px; border: 1px solid #ccc;
               background: linear-gradient(to right, rgb(31,119,180), #fff, rgb(214,39,40)); }
.swatch { display: inline-block; width: 12px; height: 12px; margin: 0 .3em 0 .8em;
          vertical-align: -1px; }
table.gaps td.reason { max-width: 40em; }
tr.models th.group { background: #dde6f2; text-align: center; border: 1px solid #ccc; }
"""

#: Explainers that carry no information about the model: a metric they win cannot rank real methods.
BASELINE_EXPLAINERS = ("random", "constant")


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def default_win_metric(ds: xr.Dataset) -> str | None:
    """The metric of the win rates by default: the first localization metric with a direction."""
    names = [m for m in metric_variables(ds) if higher_is_better(ds, m) is not None]
    localization = [m for m in names if ds.variables[m].attrs.get("family") == "localization"]
    return (localization or names or [None])[0]


def baseline_methods(ds: xr.Dataset) -> dict[str, str]:
    """The methods of a run that are uninformative baselines, ``{name: explainer}``.

    Read from the stored run config (attr ``config``), else from the methods'
    settings (attr ``methods``); empty when neither is there.

    Example:
        >>> ds = xr.Dataset(attrs={"config": json.dumps({"methods": [
        ...     {"name": "saliency", "method": "Saliency"},
        ...     {"name": "flat", "method": "constant"}]})})
        >>> baseline_methods(ds)
        {'flat': 'constant'}
    """
    try:
        methods = json.loads(ds.attrs.get("config", "{}")).get("methods", [])
        if not methods:
            settings = json.loads(ds.attrs.get("methods", "{}"))
            methods = [
                {"name": name, **value}
                for name, value in settings.items()
                if isinstance(value, dict)
            ]
    except (TypeError, ValueError, AttributeError):
        return {}
    return {
        str(m["name"]): str(m["method"])
        for m in methods
        if isinstance(m, dict) and m.get("method") in BASELINE_EXPLAINERS and "name" in m
    }


def _baseline_wins_html(ds: xr.Dataset, verdicts: dict[str, Any]) -> str:
    """The metrics on which a baseline explainer is significantly best or leads the tie group."""
    baselines = baseline_methods(ds)
    methods = [str(m) for m in ds["explainer"].values]
    if not baselines or len(baselines) == len(methods):
        return ""
    rows = []
    for metric, verdict in verdicts.items():
        leader = verdict.ranking[0] if verdict.ranking else None
        if leader in baselines:
            how = "significantly best" if verdict.best == leader else "leads the tie group"
            rows.append((metric, leader, baselines[leader], how))
    if not rows:
        return ""
    frame = pd.DataFrame(rows, columns=["metric", "method", "explainer", "verdict"]).set_index(
        "metric"
    )
    return (
        "<h2>Baselines that win</h2>"
        '<p class="note">On these metrics an uninformative baseline (random or constant maps, '
        'which '
        ''
        "know nothing about the model) ranks first. Such a metric cannot rank the real methods "
        "here: "
        "it rewards a property the baseline has by construction (a constant map never changes "
        "under "
        ""
        "noise, so robustness metrics favour it; random maps change completely when the model "
        "does, "
        ""
        "so MPRT favours them, as Binder et al. 2023 show) or the differences are noise. Read "
        "these "
        ""
        "metrics beside a faithfulness or localization metric, not alone.</p>" + table_html(frame)
    )


def _meta_html(ds: xr.Dataset) -> str:
    n = ds.sizes.get("sample", 0)
    findings = (
        pd.Series([str(f) for f in ds["finding"].values]).value_counts().to_dict() if n else {}
    )
    counts = ", ".join(f"{esc(k or '(none)')}: {v}" for k, v in findings.items())
    methods = [str(m) for m in ds["explainer"].values]
    items = [
        f"{n} samples ({counts})",
        f"{len(methods)} methods: {esc(', '.join(methods))}",
        f"{len(metric_variables(ds)) + len(set_metric_variables(ds))} metrics",
        f"xaiscore {esc(ds.attrs.get('xaiscore_version', '?'))}, torch "
        f"{esc(ds.attrs.get('torch_version', '?'))}, "
        f"seed {esc(ds.attrs.get('seed', '?'))}",
    ]
    return '<p class="meta">' + "<br>".join(items) + "</p>"


def _glance_html(ds: xr.Dataset, sanity: Any, verdicts: dict[str, Any], ranking: Any) -> str:
    from xaiscore.harness.verdicts import best_counts

    items = []
    if sanity.at_chance:
        items.append(
            "<strong>No method is named best: the model is at chance level</strong> (see below)."
        )
    else:
        counts = best_counts(verdicts)
        ties = sum(1 for v in verdicts.values() if v.best is None)
        if counts:
            text = ", ".join(f"{esc(m)} ({c})" for m, c in counts.items())
            items.append(
                f"Significantly best (paired Wilcoxon tests, Holm-adjusted, alpha 0.05) on "
                f"{sum(counts.values())} of {len(verdicts)} metrics: {text}."
            )
        else:
            items.append(f"No method is significantly best on any of the {len(verdicts)} metrics.")
        if ties:
            items.append(f"{ties} metrics end in a tie group (no significant best).")
    if ranking is not None and ranking.n >= 2:
        groups = "; ".join("{" + ", ".join(esc(m) for m in g) + "}" for g in ranking.groups)
        items.append(
            f"Across {ranking.n} metrics, groups of methods the Nemenyi test cannot separate: "
            f"{groups}."
        )
    return "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def _cd_html(ranking: Any) -> str:
    from xaiscore.harness.svg import cd_diagram_svg

    if ranking is None or ranking.n < 2:
        return (
            "<p>Fewer than two metrics have a mean score for every method: no ranking across "
            "metrics.</p>"
        )
    friedman = ranking.friedman
    image = cd_diagram_svg(
        ranking.mean_ranks,
        ranking.methods,
        critical_difference=ranking.critical_difference,
        groups=ranking.groups,
        title="Methods ranked across metrics (1 = best)",
        note=f"Nemenyi, alpha = {ranking.alpha:g}, N = {ranking.n} metrics",
    )
    excluded = (
        f" Left out (no score at all): {esc(', '.join(friedman.excluded))}."
        if friedman.excluded
        else ""
    )
    return (
        image + f'<p class="note">Each metric ranks the methods by their mean score (1 = best, in '
        f"the metric's direction); the axis is the mean rank over the {ranking.n} metrics on which "
        "every "
        f"method has a mean ({friedman.n_dropped} metrics with a missing mean are left "
        f"out).{excluded} "
        f"Friedman chi² = {friedman.statistic:.3g}, p = {friedman.p_value:.3g} (Iman-Davenport "
        f"F = {friedman.iman_davenport:.3g}, p = {friedman.iman_davenport_p_value:.3g}). Methods "
        "joined "
        f"by a thick bar are not significantly different (Nemenyi, alpha = {ranking.alpha:g}, "
        "critical "
        f"difference CD = {ranking.critical_difference:.2f}). Metrics are not independent data "
        "sets "
        ""
        "(metrics of one family move together), so read this as a description of how consistently "
        "the "
        "metrics rank the methods, not as a confirmed effect. How to read the diagram: "
        "docs/statistics.md, <em>Reading a critical-difference diagram</em>.</p>"
    )


def _legend(methods: list[str]) -> str:
    from xaiscore.harness.svg import PALETTE

    return (
        '<p class="note">'
        + "".join(
            f'<span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>{esc(m)}'
            for i, m in enumerate(methods)
        )
        + "</p>"
    )


def _curves_html(ds: xr.Dataset, curves: list[str]) -> str:
    from xaiscore.harness.svg import line_plot_svg

    methods = [str(m) for m in ds["explainer"].values]
    panels = []
    for metric in curves:
        curve = ds[f"{metric}_curve"]
        if "run" in curve.dims:
            with np.errstate(all="ignore"):
                curve = curve.mean("run", skipna=True)
        step = f"{metric}_step"
        values = curve.transpose("explainer", "sample", step).values
        series = []
        for i, method in enumerate(methods):
            steps = np.isfinite(values[i]).any(axis=0)  # its steps (models of several depths)
            rows = values[i][np.isfinite(values[i][:, steps]).all(axis=1)]
            mean = rows.mean(axis=0) if len(rows) else np.full(values.shape[-1], np.nan)
            error = (
                rows.std(axis=0, ddof=1) / np.sqrt(len(rows))
                if len(rows) > 1
                else np.zeros_like(mean)
            )
            series.append((method, mean, error))
        direction = higher_is_better(ds, metric)
        better = (
            ""
            if direction is None
            else (", score: higher is better" if direction else ", score: lower is better")
        )
        y_label = str(curve.attrs.get("curve_scale") or curve.attrs.get("long_name") or "value")
        units = str(curve.attrs.get("units", ""))
        if units and units != "1":
            y_label += f" [{units}]"
        x_label = str(ds[step].attrs.get("long_name", step))
        panels.append(
            line_plot_svg(
                ds[step].values,
                series,
                x_label=x_label,
                y_label=y_label,
                title=f"{metric}{arrow(ds, metric)}{better}",
            )
        )
    return (
        _legend(methods) + f'<div class="panels">{"".join(panels)}</div>'
        '<p class="note">Mean curve over the samples whose curve is defined everywhere; band: ± '
        'one '
        ''
        "standard error. The y axis is what the metric tracks with the options of this run (e.g. "
        "the "
        "class probability or logit); the metric's score summarises the curve (e.g. its area).</p>"
    )


def _distributions_html(ds: xr.Dataset, metrics: list[str]) -> str:
    from xaiscore.harness.svg import box_plot_svg

    methods = [str(m) for m in ds["explainer"].values]
    panels = []
    for metric in metrics:
        scores = score_array(ds, metric)
        direction = higher_is_better(ds, metric)
        label = "score" + (
            ""
            if direction is None
            else (" (higher is better)" if direction else " (lower is better)")
        )
        panels.append(
            box_plot_svg(list(scores), methods, x_label=label, title=f"{metric}{arrow(ds, metric)}")
        )
    return (
        f'<div class="panels">{"".join(panels)}</div><p class="note">Per-sample scores; box: '
        "quartiles, black line: median, whiskers: 1.5 IQR; NaN scores left out.</p>"
    )


def _stage(progress: Any, done: str, following: str) -> None:
    """Count stage ``done`` on the bar and name the one that starts."""
    if progress is not None:
        progress.set_postfix_str(f"{done} done, {following}", refresh=False)
        progress.update(1)


def write_report(
    ds: xr.Dataset,
    out_dir: str | os.PathLike[str],
    *,
    win_metric: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    title: str = "xaiscore report",
    progress: bool | Callable[..., Any] = False,
) -> Path:
    """Write ``report.html`` (self-contained) and ``summary.csv`` into ``out_dir``.

    Args:
        ds: A results Dataset (from the runner or :func:`xaiscore.harness.results.load_dataset`).
        out_dir: Folder to write into (created).
        win_metric: The metric of the win-rate table (default: :func:`default_win_metric`).
        n_boot: Bootstrap resamples of the confidence intervals.
        seed: Seed of the bootstraps.
        alpha: Family-wise error rate of the verdicts and level of the other tests.
        title: The page title.
        progress: ``True`` shows a tqdm bar over the report's stages (on stderr);
            a callable is used as the tqdm class. Off by default: library code
            does not print.

    Returns:
        The path of ``report.html``.
    """
    from xaiscore.harness.gaps import gap_table
    from xaiscore.harness.report_html import models_sanity_html
    from xaiscore.harness.report_models import report_sanity
    from xaiscore.harness.verdicts import metric_ranking, metric_verdicts, win_rate_table

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = (tqdm if progress is True else progress)(total=5, desc="report", unit="step")
    try:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        metrics = metric_variables(ds)
        sanity = report_sanity(ds, alpha=alpha)  # several models: at chance if any model is
        summary = summary_table(ds, n_boot=n_boot, seed=seed)
        verdicts = metric_verdicts(ds, alpha=alpha, seed=seed, cache_dir=out / ".cache")
        _stage(bar, "verdicts", "model and ranking")
        ranking = metric_ranking(ds, alpha=alpha) if metrics else None
        gaps = gap_table(ds)
        gap_reasons = {(r.metric, r.method): f"{r.kind}: {r.reason}" for r in gaps.itertuples()}
        parts = [
            f"<h1>{esc(title)}</h1>",
            _meta_html(ds),
            "<h2>At a glance</h2>",
            _glance_html(ds, sanity, verdicts, ranking),
            "<h2>The model on the scored samples</h2>",
            models_sanity_html(ds, sanity, alpha=alpha),
        ]
        _stage(bar, "model and ranking", "scoreboard and examples")
        # set-level and mosaic metrics: no paired test against the samples' metrics
        set_level = set_level_html(ds) + mosaic_html(ds, n_boot=n_boot, seed=seed)
        if metrics:
            parts.append(
                "<h2>Scoreboard</h2>"
                + scoreboard_html(
                    ds, summary, verdicts, at_chance=sanity.at_chance, gap_reasons=gap_reasons
                )
            )
            parts.append(
                '<p class="note">Mean over the samples with a defined score, 95 % '
                'percentile-bootstrap '
                f"interval in brackets ({n_boot} resamples). ↑ higher is better, ↓ lower is "
                "better. "
                "★: "
                "significantly better than every other method (paired Wilcoxon signed-rank tests "
                "on "
                "the "
                "samples both methods scored, Holm-adjusted over all pairs of the metric, alpha = "
                f"{alpha:g}); "
                "shaded: the tie group, methods not significantly worse than the leader. Hover a "
                "verdict for "
                "the test behind it; a dash or a NaN count links to its reason below.</p>"
            )
            parts.append(set_level)
            parts.append(
                "<h2>Ranking across metrics (critical-difference diagram)</h2>" + _cd_html(ranking)
            )
            win_metric = win_metric or default_win_metric(ds)
            if win_metric is not None:
                rates = win_rate_table(ds, win_metric, seed=seed, n_resamples=n_boot)
                parts.append(
                    f"<h2>Per-sample win rates on {esc(win_metric)}</h2>"
                    + win_rates_html(rates, win_metric)
                )
            parts.append(_examples_html(ds))
            _stage(bar, "scoreboard and examples", "curves and tables")
            curves = curve_variables(ds)
            if curves:
                parts.append("<h2>Perturbation curves</h2>" + _curves_html(ds, curves))
            parts.append(_baseline_wins_html(ds, verdicts))
            agreement = rank_agreement(ds)
            if len(agreement) >= 2 and ds.sizes.get("explainer", 0) >= 2:
                parts.append(
                    "<h2>Rank agreement between metrics</h2>"
                    '<p class="note">Kendall tau-b between the method rankings (by mean score, in '
                    'each '
                    "metric's direction) of two metrics, over the methods with a mean on both. A "
                    "number "
                    f"in a cell: the tau rests on that many methods (fewer than all "
                    f"{ds.sizes['explainer']}); blank: undefined (fewer than two methods, or a "
                    "constant "
                    "ranking). Hover a cell for its value.</p>"
                    + agreement_html(agreement, ds.sizes["explainer"])
                )
            findings = finding_table(ds)
            if findings.shape[1] > 1:
                parts.append(
                    f"<details><summary>Mean score per finding class ({len(findings)} "
                    "rows)</summary>"
                    + table_html(findings)
                    + "</details>"
                )
            parts.append(
                f"<details><summary>Pairwise tests ({len(verdicts)} metrics)</summary>"
                '<p class="note">Wilcoxon signed-rank (Pratt) on the samples both methods scored, '
                "Holm-adjusted over the pairs of each metric; median difference first - second "
                "with "
                "a "
                "95 % bootstrap interval; P(first better): share of samples on which the first is "
                "better, ties counting half.</p>" + pairwise_html(verdicts, metrics) + "</details>"
            )
            parts.append(
                f"<details><summary>Score distributions ({len(metrics)} metrics)</summary>"
                + _distributions_html(ds, metrics)
                + "</details>"
            )
            _stage(bar, "curves and tables", "writing")
            csv = _summary_csv(summary, verdicts, sanity.at_chance,
                               set_and_mosaic_rows(ds, n_boot=n_boot, seed=seed))
            atomic_write_bytes(out / "summary.csv", csv)
            parts.append(
                f'<p class="note">All numbers: <a href="{_data_uri(csv, "text/csv")}" '
                'download="summary.csv">summary.csv</a> (also written next to this page).</p>'
            )
        else:
            parts.append(set_level + _examples_html(ds) if set_level
                         else "<p>No metric could be scored.</p>")
            if set_level:  # only set-level metrics: their rows are the whole summary
                atomic_write_bytes(out / "summary.csv",
                                   set_and_mosaic_rows(ds, n_boot=n_boot, seed=seed).to_csv(
                                       index=False).encode())
        parts.append("<h2>Skipped and undefined</h2>" + _gaps_intro(gaps) + gaps_html(gaps))
        page = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_STYLE}</style></head>"
            f"<body>{''.join(parts)}</body></html>"
        )
        path = out / "report.html"
        atomic_write_bytes(path, page.encode("utf-8"))
        _stage(bar, "writing", "report.html written")
        return path
    finally:
        if bar is not None:
            bar.close()


def _examples_html(ds: xr.Dataset) -> str:
    if "example_image" not in ds or not ds.sizes.get("example", 0):
        return ""
    from xaiscore.harness.plots import examples_html

    return (
        "<h2>Examples</h2>" + examples_html(ds, predicted=predicted_boxes(ds))
        + '<p class="note">Each map is divided by its largest magnitude, so the sign is kept: red '
        "positive, blue negative attribution, white zero (a map without negative values shows no "
        "blue); its opacity grows with the magnitude.</p>"
    )


def _gaps_intro(gaps: pd.DataFrame) -> str:
    if gaps.empty:
        return ""
    counts = gaps["kind"].value_counts().to_dict()
    text = ", ".join(f"{v} {k}" for k, v in counts.items())
    return (
        f'<p class="note">Every (metric, method) pair with NaN scores ({text}): <em>skipped</em> '
        '(the '
        "method cannot supply what the metric needs), <em>error</em> (the metric failed on a "
        "batch), "
        "<em>undefined</em> (the score is undefined for that input, with the cause per sample and "
        "the "
        "kernel's rule), <em>unexplained</em> (no stored reason: a bug, or results of an older "
        "version).</p>"
    )


def _summary_csv(summary: pd.DataFrame, verdicts: dict[str, Any], at_chance: bool,
                 set_rows: pd.DataFrame) -> bytes:
    frame = summary.reset_index()
    frame["scope"] = "sample"
    best, tie = [], []
    for metric, method in zip(frame["metric"], frame["method"]):
        verdict = verdicts.get(metric)
        best.append(int(verdict is not None and not at_chance and verdict.best == method))
        tie.append(int(verdict is not None and method in verdict.tie_group))
    frame["significant_best"] = best
    frame["tie_group"] = tie
    frame = pd.concat([frame, set_rows], ignore_index=True) if len(set_rows) else frame
    return frame.to_csv(index=False).encode()
