"""Scoring any registered metric on stacked (perturbed) problems, in as few kernel calls as it
allows.

A *group* is one evaluation problem: a model, ``n`` inputs with targets (and
masks, segments), and one explanation ``(n, C', *S)`` per method. Every kernel
scores samples independently (``docs/conventions.md``), so rows of different
problems and different methods can share one call wherever the metric does
not need the model:

* a metric needing neither ``forward_fn``, ``model`` nor ``explain_fn``
  (attribution-only, e.g. sparseness, or localization) is called **once** for
  all groups and all methods, their rows concatenated along the batch axis;
* a metric needing the model (``forward_fn``/``model``) is called once per
  group, all methods stacked (methods whose maps have different shapes go in
  separate calls);
* a metric needing ``explain_fn`` (robustness, randomization) is called once
  per group and method, with the method's explainer bound to the group's model.

The explainer handed to a metric is an :class:`BoundExplainer`: called as
``(x, target)`` it explains with the group's model; called with a model it
returns the method bound to that model, the factory protocol of the
randomization metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from xaiscore import dispatch
from xaiscore._checks import DTypeError, OptionError
from xaiscore._engine.batching import ModelOutputError, chunked_map
from xaiscore._engine.explain_fn import ExplainerFactory, check_explanation
from xaiscore._engine.random import derive_seed
from xaiscore.dispatch import PlannedMetric, call_kernel, missing_inputs
from xaiscore.specs import MetricSpec, get_metric

__all__ = [
    "ExplainerFactory",
    "BoundExplainer",
    "PlannedMetric",
    "Group",
    "derive_seed",
    "plan_metrics",
    "explain",
    "predict",
    "score_groups",
]

#: Inputs the meta-evaluation always supplies: never options, whatever a spec needs.
_SUPPLIED = frozenset({"a", "x", "target", "mask"})


class BoundExplainer:
    """A method's explainer factory bound to one model; also usable as the factory itself.

    ``bound(x, target)`` explains with ``model`` (the explainer is built on
    first use); ``bound(other_model)`` returns ``factory(other_model)``.
    """

    def __init__(self, factory: ExplainerFactory, model: nn.Module, name: str) -> None:
        self.factory = factory
        self.model = model
        self.name = name
        self._explainer: Callable[[Tensor, Tensor], Tensor] | None = None

    def __repr__(self) -> str:
        return f"BoundExplainer({self.name!r}, {type(self.model).__name__})"

    def __call__(self, *args: Any) -> Any:
        if len(args) == 1 and isinstance(args[0], nn.Module):
            return _bind(self.factory, args[0], self.name)
        if self._explainer is None:
            self._explainer = _bind(self.factory, self.model, self.name)
        return self._explainer(*args)


def _bind(factory: ExplainerFactory, model: nn.Module,
          name: str) -> Callable[[Tensor, Tensor], Tensor]:
    explainer = factory(model)
    if not callable(explainer):
        raise ModelOutputError(
            f"Expected the factory of method {name!r} to return an explain function `(x, target) "
            f"-> a` when called with a model, but got {type(explainer).__name__}."
        )
    return explainer


@dataclass
class Group:
    """One evaluation problem: ``n`` rows, a model, and one explanation per method."""

    model: nn.Module | None
    x: Tensor
    target: Tensor
    explanations: list[Tensor]
    mask: Tensor | None = None
    segments: Tensor | None = None
    label: str = ""
    factories: Sequence[ExplainerFactory] = field(default_factory=tuple)
    method_names: Sequence[str] = field(default_factory=tuple)

    def __len__(self) -> int:
        return self.x.shape[0]


def _resolve(metrics: Sequence[str | MetricSpec]) -> list[MetricSpec]:
    if isinstance(metrics, (str, MetricSpec)) or not isinstance(metrics, Sequence):
        raise DTypeError(
            f"Expected `metrics` to be a sequence of metric names or MetricSpec objects, but got "
            f"{type(metrics).__name__}."
        )
    if not metrics:
        raise OptionError("Expected at least one metric, but got none.")
    specs = []
    for item in metrics:
        if isinstance(item, MetricSpec):
            specs.append(item)
        elif isinstance(item, str):
            specs.append(get_metric(item))
        else:
            raise DTypeError(
                f"Expected a metric name or a MetricSpec, but got {type(item).__name__}.")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise OptionError(f"Expected each metric at most once, but got {names}.")
    return specs


def plan_metrics(metrics: Sequence[str | MetricSpec],
                 options: Mapping[str, Mapping[str, Any]] | None,
                 *, available: frozenset[str]) -> tuple[list[PlannedMetric], dict[str, str]]:
    """Resolve metrics, merge their options (spec defaults, then the user's) and check them.

    The shared part is :func:`xaiscore.dispatch.plan_metrics`; the meta-evaluation
    adds its argument checks, reserves the inputs it always supplies (``a``, ``x``,
    ``target``, ``mask``) and skips metrics whose inputs it was not given.

    Returns:
        ``(planned, skipped)``: the runnable metrics, and metric name -> why it
        cannot run (an input that is not available, e.g. no ``mask``).

    Raises:
        UnknownMetricError: an unknown metric name.
        DTypeError: ``metrics`` is not a sequence of names or specs.
        OptionError: no metric, a metric named twice, options for a metric not
            selected, an option the kernel does not take or that names an input.
    """
    specs = _resolve(metrics)
    names = [s.name for s in specs]
    options = dict(options or {})
    stray = sorted(set(options) - set(names))
    if stray:
        raise OptionError(
            f"Expected `metric_options` only for the selected metrics {names}, but got {stray}.")
    everything = dispatch.plan_metrics(specs, options, error=OptionError,
                                       supplier="the meta-evaluation",
                                       reserved=_SUPPLIED, unimportable="raise")
    planned, skipped = [], {}
    for p in everything:
        missing = missing_inputs(p.spec, available=available)
        if missing:
            skipped[p.name] = f"needs {missing}, which the meta-evaluation was not given"
        else:
            planned.append(p)
    return planned, skipped


def predict(model: nn.Module, x: Tensor, *, max_batch_size: int) -> Tensor:
    """Arg-max class of ``model`` on ``x`` under ``torch.inference_mode()``, in chunks: ``(n,)``
    long."""
    from xaiscore._engine.batching import call_model

    return chunked_map(x.shape[0], lambda s, e: call_model(model, x[s:e], name="model").argmax(1),
                       max_batch_size=max_batch_size)


def explain(factory: ExplainerFactory, model: nn.Module, x: Tensor, target: Tensor, *, name: str,
            max_batch_size: int, validate: bool) -> Tensor:
    """Explain ``x`` with the method bound to ``model``, in chunks; checked, detached."""
    explainer = _bind(factory, model, name)
    label = f"method {name!r}"

    def compute(start: int, stop: int) -> Tensor:
        a = explainer(x[start:stop], target[start:stop])
        return check_explanation(a, x[start:stop], name=label, validate=False).detach()

    a = chunked_map(x.shape[0], compute, max_batch_size=max_batch_size)
    if validate:
        check_explanation(a, x, name=label, validate=True)
    return a


def _repeat(t: Tensor | None, times: int) -> Tensor | None:
    if t is None or times == 1:
        return t
    return t.repeat((times,) + (1,) * (t.ndim - 1))


def _cat(parts: list[Tensor | None]) -> Tensor | None:
    if parts[0] is None:
        return None
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)  # type: ignore[arg-type]


def _call(planned: PlannedMetric, inputs: dict[str, Any], *, n: int, max_batch_size: int, seed: int,
          validate: bool) -> Tensor:
    result = call_kernel(planned, inputs, max_batch_size=max_batch_size, seed=seed,
                         device=inputs["x"].device,
                         validate=validate)
    score = result if isinstance(result, Tensor) else getattr(result, "score", None)
    if not isinstance(score, Tensor) or score.shape != (n,):
        shape = tuple(score.shape) if isinstance(score, Tensor) else type(result).__name__
        raise ModelOutputError(
            f"Expected metric {planned.name!r} to return ({n},) scores (a tensor or a result with "
            f".score), but got {shape}."
        )
    return score.detach().to(torch.float64)


def _shape_classes(explanations: list[Tensor]) -> list[list[int]]:
    classes: dict[tuple[int, ...], list[int]] = {}
    for index, a in enumerate(explanations):
        classes.setdefault(tuple(a.shape), []).append(index)
    return list(classes.values())


def _merged(groups: Sequence[Group]) -> Group:
    """The rows of every group as one problem without a model (for metrics that do not use it)."""
    n_methods = len(groups[0].explanations)
    explanations = [_cat([g.explanations[method] for g in groups]) for method in range(n_methods)]
    return Group(
        model=None,
        x=_cat([g.x for g in groups]),  # type: ignore[arg-type]
        target=_cat([g.target for g in groups]),  # type: ignore[arg-type]
        explanations=explanations,  # type: ignore[arg-type]
        mask=_cat([g.mask for g in groups]),
        segments=_cat([g.segments for g in groups]),
        label="+".join(g.label for g in groups),
        factories=groups[0].factories,
        method_names=groups[0].method_names,
    )


def _score_per_method(planned: PlannedMetric, unit: Group, unit_index: int, *, max_batch_size: int,
                      seed: int,
                      validate: bool) -> list[Tensor]:
    """One call per method, each with the method's explainer bound to the unit's model."""
    rows = []
    for method in range(len(unit.explanations)):
        explainer = BoundExplainer(unit.factories[method], unit.model, unit.method_names[method])
        inputs = {"model": unit.model, "forward_fn": unit.model, "x": unit.x, "target": unit.target,
                  "a": unit.explanations[method], "mask": unit.mask, "segments": unit.segments,
                  "explain_fn": explainer, "explainer_factory": explainer}
        rows.append(_call(planned, inputs, n=len(unit), max_batch_size=max_batch_size,
                          validate=validate,
                          seed=derive_seed(seed, unit_index, "method", method)))
    return rows


def _score_stacked(planned: PlannedMetric, unit: Group, unit_index: int, *, max_batch_size: int,
                   seed: int,
                   validate: bool) -> list[Tensor]:
    """One call per class of methods whose maps have the same shape, their rows stacked."""
    n = len(unit)
    rows: list[Tensor | None] = [None] * len(unit.explanations)
    for class_index, members in enumerate(_shape_classes(unit.explanations)):
        times = len(members)
        inputs = {"model": unit.model, "forward_fn": unit.model, "x": _repeat(unit.x, times),
                  "target": _repeat(unit.target, times), "a": _cat([unit.explanations[m] for m in members]),  # noqa: E501
                  "mask": _repeat(unit.mask, times), "segments": _repeat(unit.segments, times)}
        scores = _call(planned, inputs, n=n * times, max_batch_size=max_batch_size,
                       validate=validate,
                       seed=derive_seed(seed, unit_index, "class", class_index))
        for position, method in enumerate(members):
            rows[method] = scores[position * n:(position + 1) * n]
    return rows  # type: ignore[return-value]


def score_groups(planned: PlannedMetric, groups: Sequence[Group], *, max_batch_size: int, seed: int,
                 validate: bool) -> Tensor:
    """Score every method on every group: ``(L, sum of the groups' n)`` float64, groups in order.

    Uses as few kernel calls as the metric allows (module docstring). Each call
    gets its own generator (or ``seed``), derived from ``seed`` and the call's
    position in this plan, which does not depend on ``max_batch_size``.
    """
    units = [_merged(groups)] if planned.shares_model and len(groups) > 1 else list(groups)
    score_unit = _score_per_method if planned.per_method else _score_stacked
    columns = [torch.stack(score_unit(planned, unit, unit_index, max_batch_size=max_batch_size,
                                      seed=seed,
                                      validate=validate))
               for unit_index, unit in enumerate(units)]
    return columns[0] if len(columns) == 1 else torch.cat(columns, dim=1)
