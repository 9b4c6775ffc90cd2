"""Why a score is missing: every NaN of a results Dataset with its reason.

A NaN score has one of three origins, and the results say which:

* **skipped**: the method cannot supply what the metric needs (e.g. a
  precomputed map has no explain function), or the kernel cannot be imported;
  stored per metric in the variable's ``skipped`` attr (method -> reason);
* **error**: the metric raised on a batch under ``on_error="record"``; stored
  the same way (the reason starts with "failed");
* **undefined**: the kernel returned NaN because the score is undefined for
  that input (an empty mask, a constant map, a correlation of a constant
  side, ...). When it scores a batch, the runner classifies its NaN samples
  (:func:`nan_causes`: an empty mask, a constant map, a curve undefined at
  some of its points, or the kernel's documented rule) and stores the counts
  in the variable's ``undefined`` attr; the rule from the kernel's docstring
  is stored in its ``nan_rule`` attr (:func:`nan_rule`).

:func:`gap_table` lists every (metric, method) pair with a NaN and its
reason; a NaN that none of these explains is reported as "unexplained" (a
bug to fix, or results written by an older version).

Example:
    >>> import torch
    >>> from xaiscore.specs import get_metric
    >>> a = torch.stack([torch.ones(1, 4, 4), torch.rand(1, 4, 4)])
    >>> mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    >>> mask[1, 0, 1, 1] = True
    >>> nan_causes(get_metric("pointing_game"), {"a": a, "mask": mask},
    ...            torch.tensor([[float("nan")], [1.0]]), None, None)
    {'empty_mask': 1}
    >>> nan_rule(get_metric("pointing_game"))
    'NaN for an empty mask.'
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from xaiscore.specs import MetricSpec, get_metric

__all__ = [
    "CAUSES",
    "nan_causes",
    "nan_rule",
    "describe_undefined",
    "gap_table",
    "unexplained_gaps",
]

#: What each cause code means, for the report.
CAUSES: dict[str, str] = {
    "empty_mask": "no ground-truth region (empty mask)",
    "constant_map": "the attribution map is constant (e.g. all zero)",
    "curve": "its curve is undefined at some points and the score uses every point",
    "rule": "by the metric's rule",
}

#: Words of a documented rule that make a cause plausible (an empty rule allows every cause).
_CAUSE_WORDS = {"empty_mask": ("mask",), "constant_map": ("constant", "zero", "entropy")}

#: Metrics whose docstring defers to another's rule.
_SAME_RULE_AS = {"smooth_mprt": "mprt", "avg_sensitivity": "max_sensitivity"}
_SECTIONS = (
    "Args:",
    "Returns:",
    "Shape:",
    "Raises:",
    "Example:",
    "Examples:",
    "Note:",
    "Attributes:",
)
_SENTENCE_END = re.compile(r"(?<!e\.g\.)(?<!i\.e\.)(?<=\.)\s+(?=[A-Z`:(])")


def nan_causes(
    spec: MetricSpec,
    inputs: Mapping[str, Any],
    score: Tensor,
    curve: Tensor | None,
    x: Tensor | None,
) -> dict[str, Any]:
    """Classify the samples of one scored batch whose score is NaN.

    A sample counts when any of its runs is NaN. Causes, first match wins:
    ``empty_mask`` (the metric takes a mask and the sample's is empty),
    ``constant_map`` (every attribution value of the sample is equal),
    ``curve`` (the curve has NaN at some x; the x positions are listed under
    ``"curve_x"``), else ``rule`` (the kernel's documented rule). The first
    two are considered only when the kernel's rule (:func:`nan_rule`) speaks
    of masks, respectively of constant, zero or zero-entropy maps (or states
    no rule): a constant map is no cause of a metric that is undefined when
    every noisy copy changed the prediction.

    Args:
        spec: The metric.
        inputs: The inputs it was called with (``a``, ``mask`` are read).
        score: ``(B, R)`` scores.
        curve: ``(B, R, T)`` curves or ``None``.
        x: ``(T,)`` curve x positions or ``None``.

    Returns:
        ``{cause: count}`` over the NaN samples (empty when there is none),
        plus ``"curve_x": [...]`` when a curve is undefined somewhere.
    """
    missing = torch.isnan(score).reshape(score.shape[0], -1).any(dim=1).cpu()
    if not bool(missing.any()):
        return {}
    cause = torch.full(missing.shape, len(CAUSES) - 1)
    checks: list[tuple[int, Tensor]] = []
    rule = nan_rule(spec).lower()

    def plausible(code: str) -> bool:
        return not rule or any(word in rule for word in _CAUSE_WORDS[code])

    mask = inputs.get("mask")
    if "mask" in spec.needs and isinstance(mask, Tensor) and plausible("empty_mask"):
        checks.append((0, ~mask.reshape(mask.shape[0], -1).bool().any(dim=1).cpu()))
    a = inputs.get("a")
    if isinstance(a, Tensor) and plausible("constant_map"):
        flat = a.detach().reshape(a.shape[0], -1)
        checks.append((1, (flat.amax(dim=1) == flat.amin(dim=1)).cpu()))
    curve_x: list[float] = []
    if curve is not None:
        undefined = torch.isnan(curve).reshape(curve.shape[0], -1, curve.shape[-1])  # (B, R, T)
        checks.append((2, undefined.any(dim=(1, 2)).cpu()))
        columns = undefined[missing.to(undefined.device)].any(dim=(0, 1)).cpu()
        if x is not None and bool(columns.any()):
            curve_x = [float(v) for v in x.detach().cpu()[columns].tolist()]
    for code, hit in reversed(checks):  # the first check wins: apply it last
        cause = torch.where(hit, torch.tensor(code), cause)
    names = list(CAUSES)
    counts: dict[str, Any] = {}
    for code in cause[missing].tolist():
        counts[names[code]] = counts.get(names[code], 0) + 1
    if curve_x and "curve" in counts:
        counts["curve_x"] = curve_x
    return counts


def _sections(doc: str) -> dict[str, str]:
    parts: dict[str, list[str]] = {"": []}
    current = ""
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in _SECTIONS and not line.startswith(" "):
            current = stripped[:-1]
            parts.setdefault(current, [])
            continue
        parts.setdefault(current, []).append(stripped)
    return {key: " ".join(" ".join(lines).split()) for key, lines in parts.items()}


def _plain(text: str) -> str:
    """Docstring markup as plain text: ``x`` -> x, :func:`f` -> f, :math:`a` -> a."""
    text = re.sub(r":\w+:`([^`]*)`", r"\1", text)
    return text.replace("``", "")


def _cut_open_parenthesis(sentence: str) -> str:
    """A sentence taken from inside "(... NaN where ...)" ends at the ``)`` that closes it."""
    depth = 0
    for i, char in enumerate(sentence):
        if char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return sentence[:i].rstrip(",; ") + "."
            depth -= 1
    return sentence


def nan_rule(spec: MetricSpec) -> str:
    """The kernel's documented rule for NaN scores (sentences of its docstring that say "NaN").

    Read from the *Returns* section and the description; empty when the
    docstring states none (or the kernel cannot be imported).
    """
    return _nan_rule(spec)


@functools.lru_cache(maxsize=256)
def _nan_rule(spec: MetricSpec) -> str:
    same = _SAME_RULE_AS.get(spec.name)
    if same is not None:
        return nan_rule(get_metric(same))
    try:
        doc = inspect.getdoc(spec.fn) or ""
    except (ImportError, AttributeError):
        return ""
    sections = _sections(doc)
    found: list[str] = []
    for key in ("Returns", ""):
        for sentence in _SENTENCE_END.split(sections.get(key, "")):
            start = sentence.find("NaN")
            if start < 0 or sentence.startswith("Quantus") or "validate" in sentence:
                continue
            if key == "Returns":
                sentence = _cut_open_parenthesis(sentence[start:])
            text = _plain(sentence)
            if text not in found:
                found.append(text)
    return " ".join(found)


def describe_undefined(counts: Mapping[str, Any], x_label: str = "x") -> str:
    """One sentence for the report from :func:`nan_causes` counts summed over batches."""
    parts = []
    for code, meaning in CAUSES.items():
        count = counts.get(code, 0)
        if not count:
            continue
        text = (
            f"{count} {'sample' if count == 1 else 'samples'} {meaning}"
            if code == "rule"
            else f"{meaning}: {count}"
        )
        if code == "curve" and counts.get("curve_x"):
            positions = ", ".join(f"{v:g}" for v in counts["curve_x"])
            text = (f"its curve is undefined at {x_label} = {positions} and the score uses every "
                    f"point: {count}")
        parts.append(text)
    return "; ".join(parts)


def _missing_per_method(ds: Any, metric: str) -> dict[str, int]:
    """method -> samples with a NaN score (in any run)."""
    values = ds.variables[metric].transpose("explainer", "sample", ...).values
    missing = np.isnan(values).reshape(values.shape[0], values.shape[1], -1).any(axis=2).sum(axis=1)
    return dict(zip([str(m) for m in ds["explainer"].values], missing.tolist()))


def _mosaic_rows(ds: Any) -> list[dict[str, Any]]:
    """The skipped (method, mosaic metric) pairs; ``n`` counts mosaics."""
    from xaiscore.harness.mosaic_data import mosaic_metric_variables

    rows = []
    for metric in mosaic_metric_variables(ds):
        size = int(ds.sizes[f"{metric}_mosaic"])
        for method, reason in json.loads(ds.variables[metric].attrs.get("skipped", "{}")).items():
            rows.append(_row(metric, method, size, size, "skipped", reason))
    return rows


def gap_table(ds: Any) -> Any:
    """Every (metric, method) with NaN scores, and why (a :class:`pandas.DataFrame`).

    Columns ``metric``, ``method``, ``n_nan`` (samples with a NaN score, in any
    run), ``n`` (samples), ``kind`` (``skipped``, ``error``, ``undefined``,
    ``unexplained``) and ``reason``. Metrics that no method could run
    (the Dataset attr ``skipped``) have one row per method with ``n_nan = n``.
    A pair with several origins (a failed batch and undefined samples) has
    one row per origin.
    """
    import pandas as pd

    from xaiscore.harness.results import metric_variables

    rows: list[dict[str, Any]] = []
    n = int(ds.sizes.get("sample", 0))
    for metric, reasons in json.loads(ds.attrs.get("skipped", "{}")).items():
        for method, reason in reasons.items():
            rows.append(_row(metric, method, n, n, "skipped", reason))
    rows.extend(_mosaic_rows(ds))
    for metric in metric_variables(ds):
        attrs = ds.variables[metric].attrs
        skipped = json.loads(attrs.get("skipped", "{}"))
        undefined = json.loads(attrs.get("undefined", "null") or "null")
        rule = str(attrs.get("nan_rule", ""))
        x_label = (
            str(ds.variables[f"{metric}_step"].attrs.get("long_name", "x"))
            if f"{metric}_step" in ds.coords
            else "x"
        )
        for method, count in _missing_per_method(ds, metric).items():
            count = int(count)
            if count == 0:
                continue
            left = count
            reason = skipped.get(str(method))
            if reason is not None:
                kind = "error" if reason.startswith("failed") else "skipped"
                explained = (
                    count if kind == "skipped" else _failed_rows(reason, count, undefined, method)
                )
                rows.append(_row(metric, method, explained, n, kind, reason))
                left -= explained
            causes = (undefined or {}).get(str(method))
            n_undefined = _n_undefined(causes)
            if left > 0 and n_undefined:
                text = f"undefined for this input: {describe_undefined(causes, x_label)}."
                if rule:
                    text += f" Rule: {rule}"
                rows.append(_row(metric, method, min(left, n_undefined), n, "undefined", text))
                left -= min(left, n_undefined)
            if left > 0:
                text = (
                    "no reason stored (results written without reasons, e.g. by an older version)"
                    if causes is None
                    else "no reason found: a bug to report"
                )
                rows.append(
                    _row(
                        metric,
                        method,
                        left,
                        n,
                        "unexplained",
                        text + (f". Rule: {rule}" if rule else ""),
                    )
                )
    columns = ["metric", "method", "n_nan", "n", "kind", "reason"]
    return pd.DataFrame(rows, columns=columns)


def _n_undefined(causes: Mapping[str, Any] | None) -> int:
    return sum(int(v) for k, v in (causes or {}).items() if k in CAUSES)


def _failed_rows(reason: str, count: int, undefined: Any, method: Any) -> int:
    """NaN rows owed to failed batches: all NaN rows but those the good batches left undefined."""
    return max(count - _n_undefined((undefined or {}).get(str(method))), 0)


def _row(metric: str, method: Any, n_nan: int, n: int, kind: str, reason: str) -> dict[str, Any]:
    return {
        "metric": metric,
        "method": str(method),
        "n_nan": int(n_nan),
        "n": n,
        "kind": kind,
        "reason": reason,
    }


def unexplained_gaps(ds: Any) -> list[tuple[str, str]]:
    """``(metric, method)`` pairs with a NaN that no stored reason explains (should be empty)."""
    table = gap_table(ds)
    rows = table[table["kind"] == "unexplained"]
    return list(zip(rows["metric"], rows["method"]))
