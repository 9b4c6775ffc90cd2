"""The report's set-level parts: the set-level scoreboard, box accuracy's table, predicted boxes.

A set-level metric (:mod:`xaiscore.harness.set_results`) has one value per method over the
whole dataset: no per-sample distribution, so no bootstrap interval and no paired test; the
report shows the value with the size of its reference set and marks the best value in the
metric's direction ("set-level, no paired test"). Box accuracy (Wang et al. 2017) gets the
paper's table: accuracy and average false positives (AFP) per finding class and overlap
threshold T(IoBB), per binarisation threshold. In the example grid each method's predicted
boxes (the connected regions of its map binarised as box accuracy does it, at the first
binarisation threshold) are drawn beside the ground-truth boxes.

Example:
    >>> import numpy as np
    >>> from xaiscore.harness.results import build_dataset
    >>> from xaiscore.harness.set_scoring import SetResult
    >>> ds = build_dataset(methods=["a", "b"], scores={},
    ...     samples={"source_id": ["0"], "label": [1], "target": [1], "prediction": [1], "finding": ["x"]},
    ...     set_level={"pxap": {"a": SetResult(0.75, 1), "b": SetResult(0.5, 1)}},
    ...     metric_info={"pxap": {"higher_is_better": True}})
    >>> "set-level, no paired test" in set_level_html(ds)
    True
    >>> set_level_lines(ds)
    ['Set-level metrics (one value over the whole set, no paired test): pxap: best a 0.750 (n = 1).']
"""  # noqa: E501

from __future__ import annotations

import json
from typing import Any

import numpy as np

from xaiscore.harness.report_html import esc, fmt
from xaiscore.harness.set_results import FINDING_DIM, set_metric_variables, set_summary_table

__all__ = ["set_level_html", "set_level_lines", "box_tables_html", "box_protocols_3d_html",
           "predicted_boxes", "set_level_rows"]

_BOX_METRIC = "box_accuracy"


def _reason(ds: Any, metric: str, method: str) -> str:
    return str(json.loads(ds[metric].attrs.get("skipped", "{}")).get(method, ""))


def set_level_html(ds: Any) -> str:
    """The set-level scoreboard (metric x method: value and reference-set size) and box
    accuracy's table; ``""`` without set-level metrics."""
    metrics = set_metric_variables(ds)
    if not metrics:
        return ""
    table = set_summary_table(ds)
    methods = [str(m) for m in ds["explainer"].values]
    head = "".join(f"<th>{esc(m)}</th>" for m in methods)
    rows = []
    for metric in metrics:
        part = table[table["metric"] == metric].set_index("method")
        arrow = {1: " ↑", 0: " ↓"}.get(int(ds[metric].attrs.get("higher_is_better", -1)), "")
        cells = []
        for method in methods:
            row = part.loc[method]
            if not np.isfinite(row["value"]):
                reason = _reason(ds, metric, method) or "undefined on this set"
                cells.append(f'<td title="{esc(reason)}">–</td>')
                continue
            text = f"{fmt(row['value'])} <small>(n = {int(row['n_samples'])})</small>"
            cells.append(f"<td><strong>{text}</strong></td>" if row["best"] else f"<td>{text}</td>")
        rows.append(f'<tr><th scope="row">{esc(metric)}{arrow}</th>{"".join(cells)}'
                    "<td>set-level, no paired test</td></tr>")
    note = (
        '<p class="note">Set-level metrics are defined over a reference set: one value per method '
        'over '
        "all scored samples (n), whatever the batch size, so there is no per-sample distribution, "
        "no interval and no paired test. Bold: the best value in the metric's direction. A dash: "
        "undefined or not scored (hover for the reason).</p>"
    )
    html = (f'<h2>Set-level metrics</h2><div class="scroll"><table><thead><tr><th>metric</th>{head}'
            f"<th>test</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>{note}")
    return (html + _by_finding_html(ds, metrics) + box_protocols_3d_html(ds)
            + box_tables_html(ds))


def _spatial_dims(ds: Any) -> int:
    """2 for images, 3 for volumes: what the set-level metrics saw (default 2)."""
    dims = {int(ds[m].attrs["spatial_dims"]) for m in set_metric_variables(ds)
            if "spatial_dims" in ds[m].attrs}
    return max(dims, default=2)


#: The box protocols of the volume table, with their column heads.
_BOX_PROTOCOLS = (("box_accuracy", "box accuracy (Wang)"), ("max_box_accuracy", "MaxBoxAcc"),
                  ("pxap", "PxAP"))


def box_protocols_3d_html(ds: Any) -> str:
    """Volumes: the 3-D box protocols per finding class (method x finding; ``""`` for images or
    without a box protocol)."""
    names = [(m, head) for m, head in _BOX_PROTOCOLS if f"{m}_by_finding" in ds]
    if _spatial_dims(ds) != 3 or not names or FINDING_DIM not in ds.coords:
        return ""
    heads = []
    for metric, head in names:
        settings = json.loads(ds[metric].attrs.get("settings", "{}"))
        if metric == "max_box_accuracy" and settings.get("version", 1) == 2:
            head += "V2"
        heads.append(f"<th>{esc(head)}</th>")
    rows = []
    for i, method in enumerate(ds["explainer"].values):
        for j, finding in enumerate(ds[FINDING_DIM].values):
            values = [float(ds[f"{m}_by_finding"].values[i, j]) for m, _ in names]
            if not any(np.isfinite(v) for v in values):
                continue  # no ground-truth box in this finding class (e.g. negatives)
            cells = "".join(f"<td>{'–' if not np.isfinite(v) else fmt(v)}</td>" for v in values)
            rows.append(
                f'<tr><th scope="row">{esc(method)}</th><td>{esc(finding)}</td>{cells}</tr>')
    if not rows:
        return ""
    return (
        "<h2>3-D box protocols per finding</h2>"
        '<div class="scroll"><table><thead><tr><th>method</th><th>finding</th>'
        f"{''.join(heads)}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        '<p class="note">On volumes every box is a cuboid around a 26-connected region of the '
        "binarised map and overlaps are measured in voxels: box accuracy averaged over its "
        "binarisation thresholds and T(IoBB) (the full table below), MaxBoxAcc over the map "
        "thresholds with IoU between 3-D boxes at least δ (0.5; V2 averages 0.3, 0.5 and 0.7), "
        "PxAP over the voxels pooled across the finding's volumes. Each over the volumes of one "
        "finding class; finding classes without a ground-truth box are left out.</p>"
    )


def _by_finding_html(ds: Any, metrics: list[str]) -> str:
    """Collapsible: each set-level metric with statistics over each finding class's samples."""
    names = [m for m in metrics if f"{m}_by_finding" in ds]
    if not names or FINDING_DIM not in ds.coords:
        return ""
    findings = [str(f) for f in ds[FINDING_DIM].values]
    head = "".join(f"<th>{esc(f)}</th>" for f in findings)
    rows = []
    for metric in names:
        for i, method in enumerate(ds["explainer"].values):
            values = ds[f"{metric}_by_finding"].values[i]
            cells = "".join(f"<td>{'–' if not np.isfinite(v) else fmt(v)}</td>" for v in values)
            rows.append(f'<tr><th scope="row">{esc(metric)}</th><td>{esc(method)}</td>{cells}</tr>')
    return (f"<details><summary>Set-level metrics per finding class ({len(rows)} rows)</summary>"
            '<div '
            f'class="scroll"><table><thead><tr><th>metric</th><th>method</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
            '<p class="note">Each metric over the samples of one finding class (its own reference '
            "set); a dash: undefined there (e.g. no ground-truth box).</p></details>")


def box_tables_html(ds: Any) -> str:
    """Box accuracy and AFP per finding class and T(IoBB), one table per binarisation threshold."""
    if f"{_BOX_METRIC}_finding_accuracy" not in ds:
        return ""
    accuracy = ds[f"{_BOX_METRIC}_finding_accuracy"]
    afp = ds[f"{_BOX_METRIC}_finding_afp"]
    overlaps = [float(t) for t in ds[f"{_BOX_METRIC}_overlap"].values]
    head = "".join(f"<th>T(IoBB) = {t:g}</th>" for t in overlaps)
    sections = []
    for h, binarisation in enumerate(ds[f"{_BOX_METRIC}_binarisation"].values):
        rows = []
        for i, method in enumerate(ds["explainer"].values):
            for j, finding in enumerate(ds[FINDING_DIM].values):
                acc, fp = accuracy.values[i, j, h], afp.values[i, j, h]
                if not np.isfinite(fp).any():
                    continue
                cells = "".join(
                    f"<td>{'–' if not np.isfinite(a) else fmt(a)} <small>/ {fmt(f, 2)}</small></td>"
                    for a, f in zip(acc, fp))
                rows.append(
                    f'<tr><th scope="row">{esc(method)}</th><td>{esc(finding)}</td>{cells}</tr>')
        sections.append(
            f'<h3>Binarisation threshold {esc(binarisation)}</h3><div '
            'class="scroll"><table><thead><tr>'
            f"<th>method</th><th>finding</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "</div>")
    settings = json.loads(ds[_BOX_METRIC].attrs.get("settings", "{}"))
    mode = settings.get("threshold_mode", "min_max_255")
    volumes = _spatial_dims(ds) == 3
    unit = "volume" if volumes else "image"
    boxes = ("a 3-D box (cuboid) of the binarised map, IoBB in voxels," if volumes
             else "a box of the binarised map")
    return (
        f"<h2>Box accuracy per finding (Wang et al. 2017{', 3-D' if volumes else ''})</h2>"
        f'<p class="note">Each cell: accuracy (ground-truth boxes hit by {boxes} '
        f"with IoBB above T, pooled over the finding's {unit}s) / average false positives per "
        f"{unit}. Maps binarised at the threshold above (mode {esc(mode)}); a dash: no "
        f"ground-truth box (the AFP still counts boxes predicted on those {unit}s).</p>"
        + "".join(sections)
    )


def predicted_boxes(ds: Any) -> np.ndarray | None:
    """``(M, E, K, 4)`` NaN-padded boxes of each method's example map, binarised as box accuracy
    does at its first binarisation threshold; ``None`` without box accuracy or examples."""
    import torch

    from xaiscore._engine.thresholds import binarize, min_max_normalize, threshold_values
    from xaiscore.functional import mask_to_boxes

    if _BOX_METRIC not in ds or "example_attribution" not in ds or not ds.sizes.get("example", 0):
        return None
    settings = json.loads(ds[_BOX_METRIC].attrs.get("settings", "{}"))
    mode = settings.get("threshold_mode", "min_max_255")
    thresholds = settings.get("thresholds", (60.0, 180.0))
    first = float(thresholds if isinstance(thresholds, (int, float)) else thresholds[0])
    maps = torch.from_numpy(np.nan_to_num(ds["example_attribution"].values.astype(np.float64)))
    m, e = maps.shape[:2]
    flat = maps.reshape(m * e, -1)
    grid = torch.tensor([first], dtype=torch.float64)
    if mode == "min_max_255":
        flat, per_sample = min_max_normalize(flat, scale=255.0), grid
    elif mode == "otsu":
        per_sample = threshold_values(flat, None, "otsu")
    else:
        per_sample = threshold_values(flat, grid, mode)
    binary = binarize(flat.reshape(maps.shape[0] * e, *maps.shape[2:]), per_sample,
                      strict=mode == "otsu")
    connectivity = settings.get("connectivity", "full")
    boxes = mask_to_boxes(binary, connectivity=connectivity).numpy()
    missing = ~np.isfinite(ds["example_attribution"].values).any(axis=(2, 3)).reshape(-1)
    boxes[missing] = np.nan
    return boxes.reshape(m, e, boxes.shape[1], 4)


def set_level_lines(ds: Any) -> list[str]:
    """One console line naming each set-level metric's best method (no test)."""
    table = set_summary_table(ds)
    parts = []
    for metric in set_metric_variables(ds):
        rows = table[(table["metric"] == metric) & table["best"]]
        if rows.empty:
            parts.append(f"{metric}: undefined")
            continue
        best = rows.iloc[0]
        parts.append(
            f"{metric}: best {best['method']} {best['value']:.3f} (n = {best['n_samples']})")
    if not parts:
        return []
    return ["Set-level metrics (one value over the whole set, no paired test): " + "; ".join(parts)
            + "."]


def set_level_rows(ds: Any) -> Any:
    """The set-level results as rows of ``summary.csv`` (``mean`` = the value, ``n`` = the
    reference-set size, ``scope`` = ``"set"``; no interval)."""
    table = set_summary_table(ds)
    frame = table.rename(columns={"value": "mean", "n_samples": "n"}).drop(columns=["best"])
    frame["scope"] = "set"
    frame["family"] = [str(ds[m].attrs.get("family", "")) for m in frame["metric"]]
    direction = {m: int(ds[m].attrs.get("higher_is_better", -1)) for m in set(frame["metric"])}
    frame["higher_is_better"] = [None if direction[m] < 0 else bool(direction[m])
                                 for m in frame["metric"]]
    return frame
