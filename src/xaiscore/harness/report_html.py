"""HTML pieces of the report: the scoreboard, model sanity, win rates, gaps, agreement heatmap.

Each function returns an HTML fragment (a string, every value escaped) from
a results Dataset and what :mod:`xaiscore.harness.verdicts`,
:mod:`xaiscore.harness.sanity` and :mod:`xaiscore.harness.gaps` computed;
:func:`xaiscore.harness.report.write_report` puts them on the page.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from xaiscore.harness.results import higher_is_better, metric_variables

__all__ = [
    "arrow",
    "gap_anchor",
    "table_html",
    "scoreboard_html",
    "sanity_html",
    "models_sanity_html",
    "win_rates_html",
    "gaps_html",
    "agreement_html",
    "pairwise_html",
    "verdict_text",
]


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def header(name: str) -> str:
    """A column name that may break at word boundaries (camelCase, ``_``, ``-``) only."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[_-])", "<wbr>", esc(name))


def arrow(ds: Any, metric: str) -> str:
    """`` ↑`` (higher is better), `` ↓`` (lower is better) or nothing."""
    direction = higher_is_better(ds, metric)
    return "" if direction is None else (" ↑" if direction else " ↓")


def gap_anchor(metric: str, method: str) -> str:
    """The id of a (metric, method) row in the "Skipped and undefined" section."""
    return "gap-" + re.sub(r"[^A-Za-z0-9_-]+", "_", f"{metric}-{method}")


def fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return "–"
        return f"{value:.{digits}g}" if abs(value) < 1e5 else f"{value:.2e}"
    return str(value)


def table_html(frame: pd.DataFrame, *, digits: int = 3, css: str = "") -> str:
    """A plain table: the index as the first column, numbers with ``digits`` significant digits."""
    index_name = esc(" / ".join(str(n) for n in frame.index.names if n) or "")
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = []
    for key, row in frame.iterrows():
        label = " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)
        cells = "".join(f"<td>{esc(fmt(v, digits))}</td>" for v in row.tolist())
        rows.append(f'<tr><th class="name" scope="row">{esc(label)}</th>{cells}</tr>')
    klass = f' class="{css}"' if css else ""
    return (
        f'<div class="scroll"><table{klass}><thead><tr><th '
        f'class="name">{index_name}</th>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def verdict_text(verdict: Any, *, at_chance: bool) -> tuple[str, str]:
    """``(short text, css class)`` of a metric's verdict for the scoreboard."""
    if verdict is None:
        return "no direction", "none"
    if at_chance:
        return "no winner: model at chance", "chance"
    if verdict.best is not None:
        return f"★ {verdict.best}", "best"
    if not verdict.tie_group:
        return "no scores", "none"
    return f"tie: {', '.join(verdict.tie_group)}", "tie"


def _mean_cell(row: pd.Series, star: bool) -> str:
    interval = ""
    if math.isfinite(row["ci_low"]):
        interval = f'<span class="ci">[{fmt(row["ci_low"], 2)}, {fmt(row["ci_high"], 2)}]</span>'
    return f'<span class="v">{"★ " if star else ""}{fmt(row["mean"])}</span>{interval}'


def _nan_link(metric: str, method: str, text: str, reason: str, css: str) -> str:
    return f'<a class="{css}" href="#{gap_anchor(metric, method)}" title="{esc(reason)}">{text}</a>'


def scoreboard_html(
    ds: Any,
    summary: pd.DataFrame,
    verdicts: Mapping[str, Any],
    *,
    at_chance: bool,
    gap_reasons: Mapping[tuple[str, str], str],
) -> str:
    """Metrics (rows, grouped by family) x methods: mean [95 % CI]; the verdict per metric.

    ★ marks a method significantly better than every other (Holm-adjusted
    Wilcoxon, see :func:`xaiscore.stats.scoreboard_verdict`); a shaded cell is
    in the tie group (not significantly worse than the leader). A dash (no
    score at all) or a NaN count links to the reason in the "Skipped and
    undefined" section; a count every method shares is shown once, under the
    metric's name.
    """
    from xaiscore.harness.report_models import column_labels, model_header_row

    methods = [str(m) for m in ds["explainer"].values]
    n = int(ds.sizes.get("sample", 0))
    labels = column_labels(ds)  # several models: grouped under a header row naming the model
    head = "".join(f'<th scope="col">{header(labels[m])}</th>' for m in methods)
    rows = []
    family = None
    for metric in metric_variables(ds):
        if str(ds.variables[metric].attrs.get("family", "")) != family:
            family = str(ds.variables[metric].attrs.get("family", ""))
            rows.append(
                '<tr class="family"><th '
                f'colspan="{len(methods) + 2}">{esc(family or "other")}</th></tr>'
            )
        verdict = verdicts.get(metric)
        text, klass = verdict_text(verdict, at_chance=at_chance)
        board = summary.loc[metric].reindex(methods)
        nan_counts = board["n_nan"].astype(int)
        shared = nan_counts.nunique() == 1 and 0 < int(nan_counts.iloc[0]) < n
        cells = []
        for method in methods:
            row = board.loc[method]
            reason = gap_reasons.get((metric, method), "no reason stored")
            css = []
            if not math.isfinite(row["mean"]):
                content = _nan_link(metric, method, "no score<br>why?", reason, "gap")
            else:
                star = verdict is not None and not at_chance and verdict.best == method
                if star:
                    css.append("best")
                elif (
                    verdict is not None
                    and not at_chance
                    and verdict.best is None
                    and method in verdict.tie_group
                ):
                    css.append("tie")
                content = _mean_cell(row, star)
                if int(row["n_nan"]) and not shared:
                    content += _nan_link(metric, method, f"{int(row['n_nan'])} NaN", reason, "nan")
            klass_attr = f' class="{" ".join(css)}"' if css else ""
            cells.append(f"<td{klass_attr}>{content}</td>")
        title = esc(
            f"{ds.variables[metric].attrs.get('description', '')} "
            f"({ds.variables[metric].attrs.get('citation', '')})"
        )
        note = ""
        if shared:
            note = _nan_link(
                metric,
                methods[0],
                f"{int(nan_counts.iloc[0])} of {n} undefined",
                gap_reasons.get((metric, methods[0]), ""),
                "nan",
            )
        reason = esc(
            verdict.reason if verdict is not None else "The metric has no better direction."
        )
        rows.append(
            f'<tr><th class="name" scope="row" title="{title}">{header(metric)}{arrow(ds, metric)}'
            f'{note}</th>{"".join(cells)}<td class="verdict {klass}" '
            f'title="{reason}">{header(text)}</td></tr>'
        )
    return (
        '<div class="scroll"><table class="board"><thead>'
        f"{model_header_row(ds, leading=1, trailing=1)}"
        f'<tr><th class="name">metric</th>{head}'
        f"<th>verdict</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _percent(value: float) -> str:
    return f"{value:.1%}" if math.isfinite(value) else "–"


def sanity_html(sanity: Any) -> str:
    """The model's accuracy and AUROC on the scored samples, per finding, and the chance warning."""
    parts = []
    if sanity.warning:
        parts.append(
            '<div class="warning" role="alert"><strong>Warning.</strong> '
            f'{esc(sanity.warning)}</div>'
        )
    predicted = ", ".join(sanity.predicted_classes) or "–"
    parts.append(
        f"<p>Accuracy {_percent(sanity.accuracy)} on {sanity.n} scored samples; always guessing "
        "the "
        "majority "
        f"class ({esc(sanity.majority_class)}) would get {_percent(sanity.majority_rate)}. "
        "One-sided binomial "
        f"test of accuracy &gt; majority rate: p = {fmt(sanity.p_value)} (at chance when p &gt; "
        f"{sanity.alpha:g}, or when one class is predicted for every sample). AUROC "
        f"{fmt(sanity.auroc)}. "
        f"Predicted classes: {esc(predicted)}.</p>"
    )
    if sanity.groups:
        frame = pd.DataFrame(
            [(g.finding or "(none)", g.n, _percent(g.accuracy), g.auroc) for g in sanity.groups],
            columns=["finding", "samples", "accuracy", "AUROC (one vs rest)"],
        ).set_index("finding")
        parts.append(table_html(frame))
        parts.append(
            '<p class="note">AUROC per finding: the model\'s probability of the class named like '
            "the finding, its samples against all others (blank when no class has that name or "
            "the probabilities were not stored).</p>"
        )
    return "".join(parts)


def win_rates_html(rates: Any, metric: str) -> str:
    """Methods x (all samples, each finding): win rate [95 % bootstrap interval]."""
    columns = {f"all ({rates.n})": rates}
    for group, part in rates.by_group.items():
        if part.n:  # a finding without any scored sample (e.g. negatives on a localization metric)
            columns[f"{group} ({part.n})"] = part
    head = "".join(f"<th>{header(c)}</th>" for c in columns)
    rows = []
    for i, method in enumerate(rates.methods):
        cells = []
        for part in columns.values():
            value = part.rates[i] if part.n else float("nan")
            interval = ""
            if math.isfinite(part.ci_low[i]):
                low, high = fmt(part.ci_low[i], 2), fmt(part.ci_high[i], 2)
                interval = f'<span class="ci">[{low}, {high}]</span>'
            cells.append(f'<td><span class="v">{fmt(value, 2)}</span>{interval}</td>')
        rows.append(f'<tr><th class="name" scope="row">{esc(method)}</th>{"".join(cells)}</tr>')
    return (
        f'<div class="scroll"><table><thead><tr><th class="name">method</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        f'<p class="note">Share of samples on which the method has the best {esc(metric)} score '
        "(samples in brackets; ties split the win; a NaN score cannot win); 95 % percentile "
        "bootstrap "
        "intervals over the samples.</p>"
    )


def gaps_html(table: pd.DataFrame) -> str:
    """The "Skipped and undefined" table: methods with the same reason on a metric share a row."""
    if table.empty:
        return "<p>Every score is defined: no NaN in the results.</p>"
    grouped = table.groupby(["metric", "kind", "reason", "n_nan", "n"], sort=False)["method"].apply(
        list
    )
    rows = []
    for (metric, kind, reason, n_nan, n), methods in grouped.items():
        anchors = "".join(f'<span id="{gap_anchor(metric, m)}"></span>' for m in methods)
        rows.append(
            f'<tr class="{esc(kind)}"><th class="name" scope="row">{anchors}{esc(metric)}</th>'
            f'<td class="left">{esc(", ".join(methods))}</td><td>{n_nan} of {n}</td>'
            f'<td class="left">{esc(kind)}</td><td class="left reason">{esc(reason)}</td></tr>'
        )
    return (
        '<div class="scroll"><table class="gaps"><thead><tr><th '
        'class="name">metric</th><th>methods</th>'
        "<th>NaN samples</th><th>kind</th><th>reason</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _tau_colour(tau: float) -> str:
    """Diverging blue (-1) - white (0) - red (+1)."""
    t = max(-1.0, min(1.0, tau))
    red, blue = (214, 39, 40), (31, 119, 180)
    end = red if t > 0 else blue
    mix = [round(255 + (c - 255) * abs(t)) for c in end]
    return f"rgb({mix[0]},{mix[1]},{mix[2]})"


def agreement_html(table: pd.DataFrame, n_methods: int) -> str:
    """Kendall tau between metrics as a heatmap table, with a colour bar; blank where undefined.

    A cell whose tau rests on fewer than all ``n_methods`` methods shows that
    number; every cell's tooltip gives tau and the count.
    """
    counts = table.attrs.get("n_methods")
    names = [str(c) for c in table.columns]
    head = "".join(f'<th class="rot"><span>{esc(c)}</span></th>' for c in names)
    rows = []
    for i, row_name in enumerate(names):
        cells = []
        for j in range(len(names)):
            tau = float(table.iat[i, j])
            count = int(counts.iat[i, j]) if counts is not None else n_methods
            if not math.isfinite(tau):
                cells.append(f'<td class="blank" title="undefined ({count} methods)"></td>')
                continue
            mark = str(count) if count < n_methods else ""
            cells.append(
                f'<td style="background:{_tau_colour(tau)}" title="tau = {tau:.2f} over {count} '
                f'methods">{mark}</td>'
            )
        rows.append(f'<tr><th class="name" scope="row">{esc(row_name)}</th>{"".join(cells)}</tr>')
    legend = (
        '<div class="legend"><span>−1 (opposite rankings)</span><span class="bar"></span>'
        "<span>+1 (same ranking)</span></div>"
    )
    return (
        f'{legend}<div class="scroll"><table class="heat"><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def pairwise_html(verdicts: Mapping[str, Any], metrics: Sequence[str]) -> str:
    """Every pair of methods per metric: Holm-adjusted p, median difference [95 % CI], P(better)."""
    rows = []
    for metric in metrics:
        verdict = verdicts.get(metric)
        if verdict is None or verdict.tests is None:
            continue
        for c in verdict.tests.comparisons:
            better = c.better or "–"
            rows.append(
                f'<tr><th class="name" scope="row">{esc(metric)}</th><td '
                f'class="left">{esc(c.first)} vs '
                f'{esc(c.second)}</td><td>{c.n}</td><td>{fmt(c.p_adjusted)}</td><td class="left">'
                f"{esc(better)}</td><td>{fmt(c.median_difference)} [{fmt(c.ci_low)}, "
                f"{fmt(c.ci_high)}]</td>"
                f"<td>{fmt(c.superiority, 2)}</td></tr>"
            )
    return (
        '<div class="scroll"><table><thead><tr><th class="name">metric</th><th>pair</th><th>n</th>'
        "<th>p (Holm)</th><th>significantly better</th><th>median difference [95% CI]</th>"
        f"<th>P(first better)</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def models_sanity_html(ds: Any, sanity: Any, *, alpha: float) -> str:
    """"The model on the scored samples": one part per model when there are several."""
    from xaiscore.harness.report_models import column_labels, model_groups, model_view
    from xaiscore.harness.sanity import model_sanity

    groups = model_groups(ds)
    if groups is None:
        return sanity_html(sanity)
    parts = []
    for name, members in groups:
        check = model_sanity(model_view(ds, name), alpha=alpha)
        labels = column_labels(ds)
        methods = ", ".join(esc(labels[m]) for m in members)
        parts.append(f"<h3>Model {esc(name)}</h3><p class=\"note\">Methods: {methods}.</p>"
                     + sanity_html(check))
    return "".join(parts)
