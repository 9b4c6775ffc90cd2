"""The set-level variables of the results Dataset (metrics with ``scope="set"``).

A set-level metric has one value per method, computed over the whole dataset
(:mod:`xaiscore.harness.set_scoring`), so its variables have no ``sample`` dim:

* ``<metric>`` ``(explainer,)``: the value; attrs as every metric variable (``family``,
  ``higher_is_better``, ``settings``, ``skipped`` ...) plus ``scope = "set"``;
* ``<metric>_n_samples`` ``(explainer,)`` int: the size of the reference set (samples the
  value rests on; 0 where the method was not scored);
* ``<metric>_by_finding`` ``(explainer, finding_class)``: the metric over each finding
  class's samples (metrics with summable statistics only);
* ``<metric>_by_threshold`` ``(explainer, <metric>_threshold)``: the set-level curve of a
  curve metric (MaxBoxAcc: the accuracy per map threshold, the mean over IoU thresholds);
* box accuracy (Wang et al.'s table): ``<metric>_accuracy`` and ``<metric>_afp``
  ``(explainer, <metric>_binarisation, <metric>_overlap)``, and per finding class
  ``<metric>_finding_accuracy``, ``<metric>_finding_afp`` ``(explainer, finding_class,
  <metric>_binarisation, <metric>_overlap)``.

Example:
    >>> import numpy as np
    >>> from xaiscore.harness.results import build_dataset
    >>> from xaiscore.harness.set_scoring import SetResult
    >>> ds = build_dataset(
    ...     methods=["a", "b"],
    ...     samples={"source_id": ["0", "1"], "label": [1, 0], "target": [1, 0],
    ...              "prediction": [1, 0], "finding": ["x", ""]},
    ...     scores={},
    ...     set_level={"pxap": {"a": SetResult(0.75, 2), "b": SetResult(0.5, 2)}},
    ...     metric_info={"pxap": {"higher_is_better": True, "scope": "set"}},
    ... )
    >>> set_metric_variables(ds), ds["pxap"].values.tolist(), ds["pxap_n_samples"].values.tolist()
    (['pxap'], [0.75, 0.5], [2, 2])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["set_level_variables", "set_metric_variables", "set_summary_table", "FINDING_DIM"]

#: The dim of the per-finding set-level variables.
FINDING_DIM = "finding_class"


def set_level_variables(set_level: Mapping[str, Mapping[str, Any]], methods: Sequence[str],
                        attrs_of: Callable[[str], dict[str, Any]]) -> tuple[dict[str, Any],
                                                                            dict[str, Any]]:
    """``(data_vars, coords)`` of the set-level results (metric -> method -> ``SetResult``)."""
    data_vars: dict[str, Any] = {}
    coords: dict[str, Any] = {}
    findings = sorted({f for per_method in set_level.values() for r in per_method.values()
                       for f in r.by_finding})
    m = len(methods)
    for metric, per_method in set_level.items():
        attrs = {**attrs_of(metric), "scope": "set",
                 "reference_set": "the whole dataset (all batches and processes)"}
        value = np.full(m, np.nan)
        n_samples = np.zeros(m, dtype=np.int64)
        by_finding = np.full((m, len(findings)), np.nan)
        for i, method in enumerate(methods):
            result = per_method.get(method)
            if result is None:
                continue
            value[i], n_samples[i] = result.value, result.n_samples
            for j, finding in enumerate(findings):
                by_finding[i, j] = result.by_finding.get(finding, np.nan)
        dims = {r.spatial_dims for r in per_method.values() if r.spatial_dims is not None}
        if len(dims) == 1:  # 2: images, 3: volumes (the report words its box tables by it)
            attrs["spatial_dims"] = int(dims.pop())
        data_vars[metric] = xr.Variable(("explainer",), value, attrs=attrs)
        data_vars[f"{metric}_n_samples"] = xr.Variable(
            ("explainer",), n_samples,
            attrs={"long_name": f"samples in the reference set of {metric}"})
        if any(r.by_finding for r in per_method.values()):
            data_vars[f"{metric}_by_finding"] = xr.Variable(
                ("explainer", FINDING_DIM), by_finding,
                attrs={"long_name": f"{metric} over the samples of each finding class"})
        _curve(data_vars, coords, metric, per_method, methods)
        _box_tables(data_vars, coords, metric, per_method, methods, findings)
    if any(FINDING_DIM in v.dims for v in data_vars.values()):
        coords[FINDING_DIM] = np.array(findings, dtype=object)
    return data_vars, coords


def _curve(data_vars: dict[str, Any], coords: dict[str, Any], metric: str,
           per_method: Mapping[str, Any], methods: Sequence[str]) -> None:
    with_curve = [r for r in per_method.values() if r.curve is not None]
    if not with_curve:
        return
    x = with_curve[0].x.numpy()
    values = np.full((len(methods), x.shape[0]), np.nan)
    for i, method in enumerate(methods):
        result = per_method.get(method)
        if result is not None and result.curve is not None:
            values[i] = result.curve.numpy()
    coords[f"{metric}_threshold"] = xr.Variable((f"{metric}_threshold",), x,
                                                attrs={"long_name": "map threshold"})
    data_vars[f"{metric}_by_threshold"] = xr.Variable(
        ("explainer", f"{metric}_threshold"), values,
        attrs={"long_name": f"{metric} of the set at each map threshold"})


def _box_tables(data_vars: dict[str, Any], coords: dict[str, Any], metric: str,
                per_method: Mapping[str, Any], methods: Sequence[str], findings: list[str]) -> None:
    with_tables = [r for r in per_method.values() if r.tables]
    if not with_tables:
        return
    first = with_tables[0].tables
    binarisation, overlap = f"{metric}_binarisation", f"{metric}_overlap"
    h, k = first["accuracy"].shape
    coords[binarisation] = np.array([str(t) for t in first["thresholds"]], dtype=object)
    coords[overlap] = np.asarray(first["overlaps"], dtype=np.float64)
    for key, long_name in (("accuracy", "share of ground-truth boxes hit"),
                           ("afp", "average false positives per image")):
        overall = np.full((len(methods), h, k), np.nan)
        per_finding = np.full((len(methods), len(findings), h, k), np.nan)
        for i, method in enumerate(methods):
            result = per_method.get(method)
            if result is None or not result.tables:
                continue
            overall[i] = result.tables[key].numpy()
            for j, finding in enumerate(result.tables["findings"]):
                per_finding[i, findings.index(finding)] = result.tables[f"finding_{key}"][j].numpy()
        data_vars[f"{metric}_{key}"] = xr.Variable(("explainer", binarisation, overlap), overall,
                                                   attrs={"long_name": long_name})
        data_vars[f"{metric}_finding_{key}"] = xr.Variable(
            ("explainer", FINDING_DIM, binarisation, overlap), per_finding,
            attrs={"long_name": f"{long_name}, per finding class"})


def set_metric_variables(ds: xr.Dataset) -> list[str]:
    """Names of the set-level metric variables (dims ``(explainer,)``, attr ``scope = "set"``)."""
    return [str(name) for name, var in ds.data_vars.variables.items()
            if var.dims == ("explainer",) and var.attrs.get("scope") == "set"]


def set_summary_table(ds: xr.Dataset) -> Any:
    """One row per (set-level metric, method): ``value``, ``n_samples`` and ``best`` (the
    method with the best value in the metric's direction; no test: one value per method).

    Example:
        >>> from xaiscore.harness.results import build_dataset
        >>> from xaiscore.harness.set_scoring import SetResult
        >>> ds = build_dataset(methods=["a", "b"], scores={},
        ...     samples={"source_id": ["0"], "label": [1], "target": [1], "prediction": [1], "finding": ["x"]},
        ...     set_level={"pxap": {"a": SetResult(0.75, 1), "b": SetResult(0.5, 1)}},
        ...     metric_info={"pxap": {"higher_is_better": True}})
        >>> set_summary_table(ds)[["metric", "method", "value", "best"]].values.tolist()
        [['pxap', 'a', 0.75, True], ['pxap', 'b', 0.5, False]]
    """  # noqa: E501
    import pandas as pd

    rows = []
    for metric in set_metric_variables(ds):
        values = np.asarray(ds[metric].values, dtype=np.float64)
        stored = int(ds[metric].attrs.get("higher_is_better", -1))  # as results.higher_is_better
        direction = None if stored < 0 else bool(stored)
        best = None
        if direction is not None and np.isfinite(values).any():
            best = np.nanmax(values) if direction else np.nanmin(values)
        for method, value, n in zip(ds["explainer"].values, values,
                                    ds[f"{metric}_n_samples"].values):
            rows.append({"metric": metric, "method": str(method), "value": float(value),
                         "n_samples": int(n), "best": bool(best is not None and value == best)})
    return pd.DataFrame(rows, columns=["metric", "method", "value", "n_samples", "best"])
