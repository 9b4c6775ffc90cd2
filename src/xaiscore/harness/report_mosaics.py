"""The report's mosaic part: the mosaic metrics' table (with chance level) and an example mosaic.

The mosaic metrics (:mod:`xaiscore.harness.mosaic_runs`) are scored on mosaics, not on the
dataset's samples, so they are not in the scoreboard (no paired tests against the other metrics'
samples): a table gives each method's mean over the mosaics with a 95 % percentile-bootstrap
interval, the number of mosaics and the chance level (``1 / n^2`` for the grid pointing game,
1/2 for Focus: the score of a map spread evenly). A method is bold (and named best) only when
paired tests over the same mosaics put it ahead of every other method of its model
(:func:`xaiscore.stats.scoreboard_verdict`, Wilcoxon, Holm at 0.05, as on the scoreboard); a
higher mean alone names no best. Below, mosaic 0 of each metric with each method's map over it, the target tiles outlined.

Example:
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"focus": (("explainer", "focus_mosaic"), np.array([[1.0, 0.8], [0.5, 0.4]]),
    ...                            {"chance_level": 0.5, "higher_is_better": 1})},
    ...                 coords={"explainer": ["a", "b"]})
    >>> mosaic_rows(ds)[["metric", "method", "mean", "n", "chance_level"]].values.tolist()
    [['focus', 'a', 0.9, 2, 0.5], ['focus', 'b', 0.45, 2, 0.5]]
    >>> "chance" in mosaic_html(ds)
    True
"""  # noqa: E501

from __future__ import annotations

import json
from typing import Any

import numpy as np

from xaiscore.harness.mosaic_runs import mosaic_metric_variables
from xaiscore.harness.report_html import esc, fmt
from xaiscore.harness.summary import _bootstrap_interval, _seed_for

__all__ = ["mosaic_html", "mosaic_rows", "mosaic_lines", "set_and_mosaic_rows"]


def _interval(values: np.ndarray, n_boot: int, seed: int, metric: str,
              method: str) -> tuple[float, float]:
    """The summary table's 95 % percentile bootstrap, seeded by the (metric, method) names as
    there; NaN with fewer than two mosaics or no resamples."""
    if values.size < 2 or n_boot < 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(_seed_for(seed, metric, method))
    return _bootstrap_interval(values, n_boot=n_boot, confidence=0.95, rng=rng)


def mosaic_rows(ds: Any, *, n_boot: int = 1000, seed: int = 0) -> Any:
    """One row per (mosaic metric, method): ``mean`` over the mosaics with a score, ``ci_low``,
    ``ci_high`` (95 % bootstrap interval), ``n`` (mosaics), ``chance_level``, ``scope = "mosaic"``,
    ``family``, ``higher_is_better``, ``best``."""
    import pandas as pd

    rows = []
    for metric in mosaic_metric_variables(ds):
        variable = ds[metric]
        direction = int(variable.attrs.get("higher_is_better", -1))
        values = variable.values.reshape(variable.shape[0], variable.shape[1], -1).mean(axis=2)
        means = []
        for i, method in enumerate(str(m) for m in ds["explainer"].values):
            scored = values[i][np.isfinite(values[i])]
            mean = float(scored.mean()) if scored.size else float("nan")
            low, high = _interval(scored, n_boot, seed, metric, method)
            means.append(mean)
            rows.append({"metric": metric, "method": method, "mean": mean, "ci_low": low,
                         "ci_high": high, "n": int(scored.size),
                         "chance_level": float(variable.attrs.get("chance_level", np.nan)),
                         "scope": "mosaic", "family": str(variable.attrs.get("family", "")),
                         "higher_is_better": None if direction < 0 else bool(direction)})
        best = _significant_best(ds, values, direction, seed=seed,
                                 n_resamples=max(n_boot, 100))
        for row in rows[len(rows) - len(means):]:
            row["best"] = row["method"] in best
    columns = ["metric", "method", "mean", "ci_low", "ci_high", "n", "chance_level", "scope",
               "family", "higher_is_better", "best"]
    return pd.DataFrame(rows, columns=columns)


def _significant_best(ds: Any, values: np.ndarray, direction: int, *, seed: int,
                      n_resamples: int) -> set[str]:
    """The methods that paired tests name best, one per model at most (each model has its own
    mosaics, so only its methods' scores are paired)."""
    from xaiscore.stats import scoreboard_verdict

    if direction < 0:
        return set()
    names = [str(m) for m in ds["explainer"].values]
    models = ([str(m) for m in ds["model"].values] if "model" in ds["explainer"].coords
              else [""] * len(names))
    best = set()
    for model in dict.fromkeys(models):
        rows = [i for i, m in enumerate(models) if m == model]
        if not np.isfinite(values[rows]).any():
            continue
        verdict = scoreboard_verdict(values[rows], higher_is_better=bool(direction),
                                     methods=[names[i] for i in rows], seed=seed,
                                     n_resamples=n_resamples)
        if verdict.best is not None:
            best.add(verdict.best)
    return best


def mosaic_lines(ds: Any) -> list[str]:
    """One console line per mosaic metric: the best method when paired tests name one, else the
    highest mean, with the chance level."""
    table = mosaic_rows(ds, n_boot=0)
    parts = []
    for metric in mosaic_metric_variables(ds):
        rows = table[table["metric"] == metric]
        best = rows[rows["best"]]
        chance = float(ds[metric].attrs.get("chance_level", np.nan))
        scored = rows[np.isfinite(rows["mean"].to_numpy(dtype=float))]
        if scored.empty:
            parts.append(f"{metric}: undefined")
        elif not best.empty:
            parts.append(f"{metric}: best {best.iloc[0]['method']} {best.iloc[0]['mean']:.3f} "
                         f"(chance {chance:.3g}, {best.iloc[0]['n']} mosaics)")
        else:
            higher = rows["higher_is_better"].iloc[0] is not False
            top = scored.sort_values("mean", ascending=not higher).iloc[0]
            parts.append(f"{metric}: no significant best (highest mean {top['method']} "
                         f"{top['mean']:.3f}; chance {chance:.3g}, {top['n']} mosaics)")
    return ["Mosaic metrics (on mosaics of the dataset): " + "; ".join(parts) + "."] if parts \
        else []


def mosaic_html(ds: Any, *, n_boot: int = 1000, seed: int = 0) -> str:
    """The mosaic metrics' section (table and example mosaics); ``""`` without them."""
    metrics = mosaic_metric_variables(ds)
    if not metrics:
        return ""
    table = mosaic_rows(ds, n_boot=n_boot, seed=seed)
    methods = [str(m) for m in ds["explainer"].values]
    head = "".join(f"<th>{esc(m)}</th>" for m in methods)
    rows = []
    for metric in metrics:
        part = table[table["metric"] == metric].set_index("method")
        attrs = ds[metric].attrs
        skipped = json.loads(attrs.get("skipped", "{}") or "{}")
        arrow = {1: " ↑", 0: " ↓"}.get(int(attrs.get("higher_is_better", -1)), "")
        cells = []
        for method in methods:
            row = part.loc[method]
            if not np.isfinite(row["mean"]):
                reason = skipped.get(method, "undefined on every mosaic")
                cells.append(f'<td title="{esc(reason)}">–</td>')
                continue
            text = (f"{fmt(row['mean'])} <small>[{fmt(row['ci_low'])}, {fmt(row['ci_high'])}] "
                    f"(n = {int(row['n'])})</small>")
            cells.append(f"<td><strong>{text}</strong></td>" if row["best"] else f"<td>{text}</td>")
        grid = attrs.get("mosaic_grid", "?")
        layout = (f"{grid} x {grid}, {attrs.get('mosaic_target_tiles', '?')} target tile(s); "
                  f"min. confidence {attrs.get('mosaic_min_confidence', '?')}")
        rows.append(f'<tr><th scope="row">{esc(metric)}{arrow}</th>{"".join(cells)}'
                    f"<td>{fmt(float(attrs.get('chance_level', np.nan)))}</td>"
                    f"<td>{esc(layout)}</td></tr>")
    note = ('<p class="note">Scored on mosaics built from the dataset (tiles of different classes, '
            "each classified confidently by the model on its own; Rao et al. 2022, Arias-Duart et "
            "al. 2022): the share of the positive attribution in the target tile(s). Mean over the "
            f"mosaics, 95 % percentile-bootstrap interval ({n_boot} resamples); chance: the score "
            "of a map spread evenly. A dash: not scored (hover for the reason).</p>")
    return ("<h2>Mosaic localization</h2>"
            f'<div class="scroll"><table><thead><tr><th>metric</th>{head}<th>chance</th>'
            f"<th>mosaics</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            + note + "".join(_example_html(ds, metric) for metric in metrics))


def _example_html(ds: Any, metric: str) -> str:
    """Mosaic 0 of ``metric`` with each method's map (one row per model: each has its mosaics)."""
    import xarray as xr

    from xaiscore.harness.plots import examples_html

    image_name, map_name = f"{metric}_example_image", f"{metric}_example_attribution"
    if image_name not in ds.data_vars or map_name not in ds.data_vars:
        return ""
    images = ds[image_name].values  # (M, C, H, W)
    maps = ds[map_name].values  # (M, H, W)
    models = ([str(m) for m in ds["model"].values] if "model" in ds.coords
              else [""] * images.shape[0])
    # the models with a map (a model that could not take the mosaics has none)
    groups = [g for g in dict.fromkeys(models)
              if np.isfinite(maps[[m == g for m in models]]).any()]
    if not groups:
        return ""
    first = [models.index(g) for g in groups]
    attribution = np.full((len(models), len(groups), *maps.shape[1:]), np.nan, dtype=np.float32)
    for i, model in enumerate(models):
        if model in groups:
            attribution[i, groups.index(model)] = maps[i]
    grid = int(ds[metric].attrs.get("mosaic_grid", 2))
    height, width = images.shape[2] // grid, images.shape[3] // grid
    boxes = np.full((len(groups), grid * grid, 4), np.nan)
    names = []
    for row, i in enumerate(first):
        target = int(ds[f"{metric}_target"].values[i, 0])
        tiles = ds[f"{metric}_tile_class"].values[i, 0]
        for t in np.flatnonzero(tiles == target):
            r, c = divmod(int(t), grid)
            boxes[row, t] = [c * width, r * height, (c + 1) * width, (r + 1) * height]
        classes = json.loads(ds.attrs.get("class_names", "[]") or "[]")
        name = classes[target] if 0 <= target < len(classes) else str(target)
        names.append(f"{groups[row]}: target {name}".lstrip(": "))
    coords = {"explainer": ds["explainer"].values, "example": np.arange(len(groups)),
              "sample": np.arange(len(groups)), "finding": ("sample", names)}
    for key in ("model", "method_name"):
        if key in ds.coords:
            coords[key] = ("explainer", ds[key].values)
    view = xr.Dataset({"example_image": (("example", "channel", "y", "x"), images[first]),
                       "example_boxes": (("example", "box", "corner"), boxes),
                       "example_attribution": (("explainer", "example", "y", "x"), attribution)},
                      coords=coords)
    return (f"<h3>{esc(metric)}: mosaic 0</h3>" + examples_html(view)
            + '<p class="note">Green outline: the target tile(s).</p>')


def set_and_mosaic_rows(ds: Any, *, n_boot: int = 1000, seed: int = 0) -> Any:
    """The rows of ``summary.csv`` beside the per-sample metrics': set-level, then mosaic."""
    import pandas as pd

    from xaiscore.harness.report_sets import set_level_rows

    parts = [set_level_rows(ds), mosaic_rows(ds, n_boot=n_boot, seed=seed).drop(columns="best")]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else set_level_rows(ds)
