"""One results Dataset from the runner's per-batch shards.

:func:`assemble` concatenates, for every (method, metric), the shards of the
batches in order (NaN rows where a batch failed), records why a metric was
skipped or failed for a method, gathers the report's example images and hands
everything to :func:`xaiscore.harness.results.build_dataset`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:  # the runner imports this module
    from xaiscore.harness.runner import _BatchResult, _Runner, _Shard

__all__ = ["assemble", "gather_examples"]

_SAMPLE_KEYS = ("index", "source_id", "label", "target", "prediction", "finding")


def _concat(
    parts: list[Tensor | None], n_rows: list[int], tail: tuple[int, ...] | None
) -> Tensor | None:
    if tail is None:
        return None
    filled = [
        p if p is not None else torch.full((rows, *tail), float("nan"), dtype=torch.float64)
        for p, rows in zip(parts, n_rows)
    ]
    return torch.cat(filled, dim=0)


@dataclass
class _Arrays:
    """The metric arrays of the Dataset, filled one (method, metric) at a time."""

    scores: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    curves: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    curve_x: dict[str, Tensor] = field(default_factory=dict)
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    undefined: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # metric -> method -> SetResult
    set_level: dict[str, dict[str, Any]] = field(default_factory=dict)


def _split_shards(
    shards: Sequence[_Shard | None], batches: list[int]
) -> tuple[list[_Shard | None], list[tuple[int, str]]]:
    """The usable shard of each batch (``None``: missing or failed), and the failed
    ``(batch, error)``."""
    usable: list[_Shard | None] = []
    errors: list[tuple[int, str]] = []
    for batch, shard in zip(batches, shards):
        if shard is not None and shard.error is not None:
            errors.append((batch, shard.error))
            shard = None
        usable.append(shard)
    return usable, errors


def _add_metric(
    arrays: _Arrays,
    method: str,
    name: str,
    shards: Sequence[_Shard | None],
    batches: list[int],
    rows: list[int],
    repeats: int,
) -> None:
    """One (method, metric): its scores (and curve) over all batches, NaN where a batch failed."""
    usable, errors = _split_shards(shards, batches)
    good = [s for s in usable if s is not None]
    if errors:
        first_batch, message = errors[0]
        arrays.skipped.setdefault(name, {})[method] = (
            f"failed on {len(errors)} of {len(batches)} batch(es), first on batch {first_batch}: "
            f"{message}"
        )
    if not good and not errors:
        return
    _add_causes(arrays, method, name, good)
    runs = good[0].score.shape[1] if good else repeats
    score = _concat([None if s is None else s.score for s in usable], rows, (runs,))
    arrays.scores.setdefault(name, {})[method] = score if runs > 1 else score[:, 0]
    if good and good[0].curve is not None:
        tail = tuple(good[0].curve.shape[1:])
        curve = _concat([None if s is None else s.curve for s in usable], rows, tail)
        arrays.curves.setdefault(name, {})[method] = curve if runs > 1 else curve[:, 0]
        arrays.curve_x[name] = good[0].x


def _add_set_metric(arrays: _Arrays, method: str, planned: Any, shards: Sequence[_Shard | None],
                    batches: list[int], max_batch_size: int) -> None:
    """One (method, set-level metric): the value over every batch; NaN when a batch failed (a
    value over part of the set would be another metric)."""
    from xaiscore.harness.set_scoring import SetResult, finish

    name = planned.spec.name
    usable, errors = _split_shards(shards, batches)
    good = [s for s in usable if s is not None and s.set_state is not None]
    if errors:
        first_batch, message = errors[0]
        arrays.skipped.setdefault(name, {})[method] = (
            f"failed on {len(errors)} of {len(batches)} batch(es), first on batch {first_batch}: "
            f"{message}; a set-level metric needs every batch"
        )
        arrays.set_level.setdefault(name, {})[method] = SetResult(float("nan"), 0)
        return
    if good:
        arrays.set_level.setdefault(name, {})[method] = finish(
            planned, [s.set_state for s in good], max_batch_size=max_batch_size)


def _add_causes(arrays: _Arrays, method: str, name: str, good: list[_Shard]) -> None:
    """Sum the NaN causes of the good shards; ``None`` when a shard predates them (no reasons)."""
    total: dict[str, Any] | None = {}
    for shard in good:
        causes = getattr(shard, "nan_causes", None)
        if causes is None:
            total = None
            break
        for key, value in causes.items():
            if key == "curve_x":
                total["curve_x"] = sorted(set(total.get("curve_x", [])) | set(value))
            else:
                total[key] = total.get(key, 0) + int(value)
    arrays.undefined.setdefault(name, {})[method] = total  # type: ignore[assignment]


def _metric_info(runner: _Runner) -> dict[str, dict[str, Any]]:
    from xaiscore.harness.axes import curve_axes
    from xaiscore.harness.gaps import nan_rule

    info = {}
    for p in runner.plan:
        info[p.spec.name] = {
            "family": p.spec.family,
            "higher_is_better": p.spec.higher_is_better,
            "citation": p.spec.citation,
            "description": p.spec.description,
            "settings": p.settings,
            "stochastic": p.spec.stochastic,
            "scope": p.spec.scope,
            "nan_rule": "" if p.unavailable else nan_rule(p.spec),
        }
        if p.spec.output == "curve":
            info[p.spec.name]["curve_axes"] = curve_axes(p.spec, p.settings)
    return info


def _dataset_attrs(runner: _Runner, attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "seed": runner.seed,
        "batch_size": runner.batch_size,
        "target_rule": runner.target,
        "repeats": runner.repeats,
        "methods": {m.name: m.settings for m in runner.methods},
        "class_names": list(getattr(runner.dataset, "class_names", ())),
        "skipped_samples": runner.skipped_samples,
        **attrs,
    }


def assemble(runner: _Runner, results: Mapping[int, _BatchResult], attrs: Mapping[str, Any]) -> Any:
    """The results Dataset of a run from its batches' results (schema:
    :mod:`xaiscore.harness.results`)."""
    from xaiscore.harness.results import build_dataset

    batches = sorted(results)
    samples: dict[str, list[Any]] = {k: [] for k in _SAMPLE_KEYS}
    for b in batches:
        for key in samples:
            samples[key].extend(results[b].samples[key])
    rows = [len(results[b].samples["index"]) for b in batches]
    probabilities = [results[b].samples.get("probability") for b in batches]
    arrays = _Arrays(skipped={metric: dict(reasons) for metric, reasons in runner.skipped.items()})
    for method in runner.methods:
        for planned in runner.runnable[method.name]:
            name = planned.spec.name
            shards = [results[b].shards.get((method.name, name)) for b in batches]
            if planned.spec.scope == "set":
                _add_set_metric(arrays, method.name, planned, shards, batches,
                                runner.max_batch_size)
            else:
                _add_metric(arrays, method.name, name, shards, batches, rows,
                            runner._repeats(planned))
    examples = gather_examples(
        [results[b].examples for b in batches if results[b].examples], runner.n_examples
    )
    return build_dataset(
        methods=[m.name for m in runner.methods],
        samples=samples,
        sample_index=samples["index"],
        scores=arrays.scores,
        curves=arrays.curves,
        curve_x=arrays.curve_x,
        metric_info=_metric_info(runner),
        skipped=arrays.skipped,
        undefined=arrays.undefined,
        set_level=arrays.set_level,
        probabilities=None if any(p is None for p in probabilities) else torch.cat(probabilities),
        examples=examples,
        attrs=_dataset_attrs(runner, attrs),
    )


def gather_examples(parts: list[dict[str, Any]], n_examples: int) -> dict[str, Any] | None:
    """Up to ``n_examples`` example images over all batches, positives first, in batch order."""
    if not parts or n_examples == 0:
        return None
    rows = [
        (not positive, part_index, row)
        for part_index, part in enumerate(parts)
        for row, positive in enumerate(part["positive"])
    ]
    chosen = sorted(rows)[:n_examples]
    chosen.sort(key=lambda item: (item[1], item[2]))
    width = max(parts[p]["boxes"].shape[1] for _, p, _ in chosen)

    def pick(key: str) -> Tensor:
        return torch.stack([parts[p][key][r] for _, p, r in chosen])

    boxes = torch.full((len(chosen), width, 4), float("nan"))
    for i, (_, p, r) in enumerate(chosen):
        row = parts[p]["boxes"][r]
        boxes[i, : row.shape[0]] = row
    methods = parts[0]["attributions"].keys()
    return {
        "sample": [parts[p]["index"][r] for _, p, r in chosen],
        "image": pick("image"),
        "mask": pick("mask"),
        "boxes": boxes,
        "attributions": {
            m: torch.stack([parts[p]["attributions"][m][r] for _, p, r in chosen]) for m in methods
        },
    }
