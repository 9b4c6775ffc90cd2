"""Set-level metrics in the harness: one value per method over the whole dataset.

A metric with ``scope="set"`` in the registry (:mod:`xaiscore.specs`) is defined over a
reference set, so the runner does not score it per ``batch_size`` shard. Per batch it keeps
what the metric needs from that batch, as plain tensors in the batch's shard file (written
and resumed like every shard, :mod:`xaiscore.harness.store`):

* metrics with summable statistics (``spec.statistics``: per-class pointing accuracy, box
  accuracy, MaxBoxAcc, PxAP): the batch's statistics
  (:class:`~xaiscore.functional.set_statistics.SetStatistics` ``update``), one row per
  finding class present in the batch, so that the report can also show each finding's value;
* metrics on explanations and predictions (sufficiency, consistency): the batch's maps and
  predicted classes, with the samples' indices.

:func:`finish` then combines the batches of every process in sample order: it sums the
statistics and applies the metric's ``compute``, or calls the kernel once on all stored
maps, with the stored predictions standing in for the model (as the ``xaiscore.metrics``
classes do). The result does not depend on ``batch_size``, on the number of processes or on
resuming; a resumed run recomputes only this last, cheap step.

Example:
    >>> import torch
    >>> from xaiscore.dispatch import plan_metrics
    >>> (planned,) = plan_metrics(["pointing_accuracy"])
    >>> a = torch.zeros(4, 1, 4, 4); a[:, 0, 0, 0] = 1.0
    >>> mask = torch.zeros(4, 1, 4, 4, dtype=torch.bool); mask[:2, :, 0, 0] = True; mask[2:, :, 3, 3] = True
    >>> target = torch.tensor([1, 1, 2, 2])
    >>> states = [batch_state(planned, {"a": a[s:s + 2], "mask": mask[s:s + 2], "target": target[s:s + 2]},
    ...                       findings=["x", "y"], prediction=target[s:s + 2], index=[s, s + 1],
    ...                       num_classes=3) for s in (0, 2)]
    >>> result = finish(planned, states)
    >>> result.value, result.n_samples, result.by_finding
    (0.5, 4, {'x': 0.5, 'y': 0.5})
"""  # noqa: E501

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from xaiscore.dispatch import PlannedMetric
from xaiscore.functional.set_statistics import call_with_options

__all__ = ["SetResult", "is_set_level", "batch_state", "finish", "option_value"]


def is_set_level(planned: PlannedMetric) -> bool:
    """Whether the harness scores ``planned`` over the whole set (``scope="set"``)."""
    return planned.spec.scope == "set"


@dataclass
class SetResult:
    """One method's set-level result.

    Attributes:
        value: The metric over the whole set (NaN when undefined).
        n_samples: Samples in the reference set (rows the metric saw).
        n_defined: Samples with a defined per-sample score against the set (metrics on
            stored maps), else ``None``.
        by_finding: finding -> the metric over that finding's samples (metrics with
            statistics; NaN where undefined, e.g. no ground-truth box).
        curve: ``(T,)`` the set-level curve of a curve metric (MaxBoxAcc: accuracy per map
            threshold, the mean over IoU thresholds), else ``None``; ``x`` its positions.
        tables: name -> array for the report (box accuracy: ``accuracy`` and ``afp``,
            ``(H, K)`` per binarisation and overlap threshold, and per finding ``(F, H, K)``).
        spatial_dims: The maps' spatial dimensions (2 for images, 3 for volumes), where known.
    """

    value: float
    n_samples: int
    n_defined: int | None = None
    by_finding: dict[str, float] = field(default_factory=dict)
    curve: Tensor | None = None
    x: Tensor | None = None
    tables: dict[str, Any] = field(default_factory=dict)
    spatial_dims: int | None = None


def option_value(planned: PlannedMetric, name: str) -> Any:
    """The option ``name`` as the kernel sees it: the planned value, else the kernel's default."""
    if name in planned.options:
        return planned.options[name]
    parameter = inspect.signature(planned.spec.fn).parameters.get(name)
    return None if parameter is None else parameter.default


def _statistics_options(planned: PlannedMetric, num_classes: int | None) -> dict[str, Any]:
    options = dict(planned.options)
    if num_classes is not None and "num_classes" in planned.spec.set_statistics.option_names():
        options.setdefault("num_classes", num_classes)
    return options


def batch_state(planned: PlannedMetric, inputs: Mapping[str, Any], *, findings: Sequence[str],
                prediction: Tensor, index: Sequence[int],
                num_classes: int | None = None) -> dict[str, Any]:
    """What one batch contributes to a set-level metric, as plain tensors and lists (CPU).

    Args:
        planned: The metric and its options.
        inputs: The batch's kernel inputs by name (``a``, ``mask``, ``x``, ``target``).
        findings: Each row's finding class name.
        prediction: ``(B,)`` each row's predicted class (the model's argmax).
        index: Each row's dataset index.
        num_classes: The model's number of classes (``num_classes`` of per-class statistics
            when the options do not set it).
    """
    statistics = planned.spec.set_statistics
    if statistics is None:
        return {"kind": "stored", "a": inputs["a"].detach().cpu(),
                "prediction": prediction.detach().cpu(),
                "index": torch.as_tensor(list(index), dtype=torch.long)}
    options = _statistics_options(planned, num_classes)
    groups = sorted(set(findings))
    rows_of = {g: [i for i, f in enumerate(findings) if f == g] for g in groups}
    parts = []
    for group in groups:
        rows = torch.tensor(rows_of[group], device=inputs["a"].device)
        sub = {k: v.index_select(0, rows) if isinstance(v, Tensor) else v
               for k, v in inputs.items()}
        given = {n: sub[n] for n in statistics.optional_inputs if sub.get(n) is not None}
        update = functools.partial(statistics.update, **given) if given else statistics.update
        batch = call_with_options(update, *[sub[n] for n in statistics.inputs], options=options)
        parts.append({k: v.detach().cpu() for k, v in batch.items()})
    return {
        "kind": "statistics",
        "groups": groups,
        "rows": [len(rows_of[g]) for g in groups],
        "statistics": {k: torch.stack([p[k] for p in parts]) for k in parts[0]},
        "num_classes": num_classes,
        "spatial_dims": inputs["a"].ndim - 2,
    }


def finish(planned: PlannedMetric, states: Sequence[Mapping[str, Any]], *,
           max_batch_size: int = 64) -> SetResult:
    """The set-level result from every batch's :func:`batch_state` (any order, any process).

    Raises:
        OptionError: the states are of another kind than the metric's (a changed registry).
    """
    if not states:
        return SetResult(math.nan, 0)
    if planned.spec.set_statistics is None:
        return _finish_stored(planned, states, max_batch_size=max_batch_size)
    return _finish_statistics(planned, states)


def _finish_statistics(planned: PlannedMetric, states: Sequence[Mapping[str, Any]]) -> SetResult:
    statistics = planned.spec.set_statistics
    num_classes = next((s.get("num_classes") for s in states if s.get("num_classes") is not None),
                       None)
    options = _statistics_options(planned, num_classes)
    per_group: dict[str, dict[str, Tensor]] = {}
    rows: dict[str, int] = {}
    for state in states:
        for position, group in enumerate(state["groups"]):
            part = {k: v[position] for k, v in state["statistics"].items()}
            held = per_group.get(group)
            per_group[group] = part if held is None else {k: held[k] + part[k] for k in held}
            rows[group] = rows.get(group, 0) + int(state["rows"][position])
    groups = sorted(per_group)
    total = {k: sum(per_group[g][k] for g in groups) for k in per_group[groups[0]]}

    def compute(stats: dict[str, Tensor]) -> Any:
        return call_with_options(statistics.compute, stats, options=options)

    details = compute(total)
    by_group = {g: compute(per_group[g]) for g in groups}
    result = SetResult(float(details[0]), sum(rows.values()),
                       by_finding={g: float(by_group[g][0]) for g in groups},
                       spatial_dims=next((s["spatial_dims"] for s in states
                                          if s.get("spatial_dims") is not None), None))
    if planned.spec.output == "curve" and hasattr(details, "accuracy") and hasattr(details,
                                                                                   "thresholds"):
        result.curve = details.accuracy.double().reshape(-1, details.thresholds.numel()).mean(0)
        result.x = details.thresholds.double()
    if hasattr(details, "average_false_positives"):  # box accuracy: the paper's table
        result.tables = {
            "accuracy": details.accuracy.double(),
            "afp": details.average_false_positives.double(),
            "finding_accuracy": torch.stack([by_group[g].accuracy.double() for g in groups]),
            "finding_afp": torch.stack([by_group[g].average_false_positives.double() for g in groups]),  # noqa: E501
            "findings": groups,
            "thresholds": _binarisations(planned),
            "overlaps": [float(t) for t in option_value(planned, "overlap_thresholds")],
        }
    return result


def _binarisations(planned: PlannedMetric) -> list[str]:
    """The names of box accuracy's binarisation thresholds (``"otsu"`` for Otsu's)."""
    if option_value(planned, "threshold_mode") == "otsu":
        return ["otsu"]
    thresholds = option_value(planned, "thresholds")
    values = [thresholds] if isinstance(thresholds, (int, float)) else list(thresholds)
    return [f"{float(t):g}" for t in values]


class _StoredPredictions:
    """The model of the whole-set call: each input row holds its position in the set; the
    output is the one-hot logits of that row's stored prediction."""

    def __init__(self, prediction: Tensor) -> None:
        self.prediction = prediction
        self.num_classes = int(prediction.max()) + 1 if prediction.numel() else 1

    def __call__(self, x: Tensor) -> Tensor:
        position = x.reshape(x.shape[0], -1)[:, 0].round().long()
        logits = torch.nn.functional.one_hot(self.prediction[position], self.num_classes)
        return logits.to(x.dtype)


def _finish_stored(planned: PlannedMetric, states: Sequence[Mapping[str, Any]], *,
                   max_batch_size: int) -> SetResult:
    from xaiscore.dispatch import call_kernel

    index = torch.cat([s["index"] for s in states])
    order = torch.argsort(index, stable=True)
    a = torch.cat([s["a"] for s in states])[order]
    prediction = torch.cat([s["prediction"] for s in states]).long()[order]
    n = a.shape[0]
    exact = 2 / torch.finfo(a.dtype).eps if a.is_floating_point() else 0
    code_dtype = a.dtype if n <= exact else torch.float64
    codes = torch.arange(n, dtype=code_dtype).reshape((n,) + (1,) * (a.ndim - 1)).expand(a.shape)
    inputs = {"forward_fn": _StoredPredictions(prediction), "model": None, "x": codes, "a": a}
    scores = call_kernel(planned, inputs, max_batch_size=max_batch_size, seed=None,
                         device=torch.device("cpu"))
    scores = getattr(scores, "score", scores).double()
    defined = ~torch.isnan(scores)
    value = float(scores[defined].mean()) if bool(defined.any()) else math.nan
    return SetResult(value, n, n_defined=int(defined.sum()), spatial_dims=a.ndim - 2)
