"""Metric dispatch through the registry: which metrics run, with which options, on which inputs.

For every selected :class:`~xaiscore.specs.MetricSpec` the harness

* merges the options: the spec's ``defaults``, then the user's (unknown
  option names are a :class:`~xaiscore.harness.config.ConfigError` before
  anything runs), then ``max_batch_size`` and a seeded ``generator`` (or
  ``seed``) where the kernel takes them and the user did not set them;
* checks that it can supply every input in ``spec.needs`` for a method (a
  precomputed method has no ``explain_fn``) and records why not otherwise;
* calls the kernel with the inputs by keyword and unpacks a ``(B,)`` score or
  a curve result (``.score``, ``.curve``, ``.x``).

Example:
    >>> plan = plan_metrics(["pointing_game", "sparseness"], {"pointing_game": {"tolerance": 1.0}})
    >>> [p.spec.name for p in plan], plan[0].options
    (['pointing_game', 'sparseness'], {'tolerance': 1.0})
    >>> missing_inputs(plan[0].spec, available={"a", "x"})
    ['mask']
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from xaiscore._engine.batching import ModelOutputError
from xaiscore.harness.config import ConfigError, MetricsConfig
from xaiscore.specs import MetricSpec, get_metric, list_metrics

__all__ = ["PlannedMetric", "select_metrics", "plan_metrics", "missing_inputs", "call_metric", "unpack_result"]


@dataclass(frozen=True)
class PlannedMetric:
    """A metric ready to run, or the reason it cannot.

    Attributes:
        spec: The registry entry.
        options: The keyword options passed to the kernel (defaults, then the user's).
        parameters: The kernel's parameter names (empty when it cannot be imported).
        unavailable: Why the kernel cannot run at all (e.g. it cannot be imported), else ``None``.
    """

    spec: MetricSpec
    options: Mapping[str, Any]
    parameters: frozenset[str]
    unavailable: str | None = None

    @property
    def settings(self) -> dict[str, Any]:
        """What the results record as the metric's settings."""
        return dict(self.options)


def select_metrics(config: MetricsConfig | Sequence[str] | None) -> list[MetricSpec]:
    """The specs a metrics config selects, in registry order (or the order named).

    ``None`` or ``"all"`` selects every registered metric.

    Raises:
        UnknownMetricError: a name that is not registered.
    """
    if config is None:
        config = MetricsConfig()
    elif not isinstance(config, MetricsConfig):
        config = MetricsConfig(include=tuple(config))
    if config.include == "all":
        specs = list(list_metrics())
    else:
        specs = [get_metric(name) for name in config.include]
    for name in config.exclude:
        get_metric(name)
    if config.families is not None:
        specs = [s for s in specs if s.family in config.families]
    return [s for s in specs if s.name not in config.exclude]


def _parameters(spec: MetricSpec) -> tuple[frozenset[str], bool, str | None]:
    try:
        fn = spec.fn
    except (ImportError, AttributeError) as error:
        return frozenset(), False, f"kernel {spec.function} cannot be imported ({type(error).__name__}: {error})"
    signature = inspect.signature(fn)
    names = frozenset(signature.parameters)
    open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    return names, open_kwargs, None


def plan_metrics(metrics: Iterable[MetricSpec | str], options: Mapping[str, Mapping[str, Any]] | None = None,
                 *, source: str = "<config>") -> list[PlannedMetric]:
    """Merge options and check them against each kernel's signature.

    Args:
        metrics: Specs or registered names.
        options: metric -> keyword options overriding the spec's defaults.
        source: The config's name for error messages.

    Raises:
        ConfigError: an option the kernel does not take, or an input name
            (``a``, ``x``, ...) given as an option.
    """
    options = options or {}
    planned = []
    for item in metrics:
        spec = get_metric(item) if isinstance(item, str) else item
        user = dict(options.get(spec.name, {}))
        merged = {**spec.defaults, **user}
        parameters, open_kwargs, unavailable = _parameters(spec)
        clash = sorted(set(user) & set(spec.needs))
        if clash:
            raise ConfigError(f"{source}: options of {spec.name!r} name its inputs {clash}; the harness supplies them.")
        if unavailable is None and not open_kwargs:
            unknown = sorted(set(user) - parameters)
            if unknown:
                accepted = sorted(parameters - set(spec.needs))
                raise ConfigError(f"{source}: {spec.name!r} has no option(s) {unknown}; it accepts {accepted}.")
        planned.append(PlannedMetric(spec, merged, parameters, unavailable))
    return planned


def missing_inputs(spec: MetricSpec, *, available: Iterable[str]) -> list[str]:
    """The inputs ``spec`` needs that are not ``available``, sorted."""
    return sorted(set(spec.needs) - set(available))


def call_metric(planned: PlannedMetric, inputs: Mapping[str, Any], *, max_batch_size: int,
                seed: int | None, device: torch.device) -> Any:
    """Call the kernel with its needed inputs by keyword and its options.

    ``max_batch_size`` is passed where the kernel takes it and the options do
    not set it; so is a ``generator`` seeded with ``seed`` (on ``device``), or
    ``seed`` itself for kernels without a ``generator`` argument.
    """
    spec = planned.spec
    kwargs = dict(planned.options)
    if "max_batch_size" in planned.parameters:
        kwargs.setdefault("max_batch_size", max_batch_size)
    if seed is not None and "generator" not in kwargs:
        if "generator" in planned.parameters:
            kwargs["generator"] = torch.Generator(device=device).manual_seed(seed)
        elif "seed" in planned.parameters and "seed" not in kwargs:
            kwargs["seed"] = seed
    call = {name: inputs[name] for name in spec.needs}
    return spec.fn(**call, **kwargs)


def unpack_result(result: Any, *, name: str, batch_size: int) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``(score (B,), curve (B, T) or None, x (T,) or None)`` from a kernel's return value.

    Raises:
        ModelOutputError: neither a ``(B,)`` tensor nor an object with ``.score``/``.curve``/``.x``.
    """
    if isinstance(result, Tensor):
        score, curve, x = result, None, None
    elif all(hasattr(result, field) for field in ("score", "curve", "x")):
        score, curve, x = result.score, result.curve, result.x
    elif hasattr(result, "score") and isinstance(result.score, Tensor):
        score, curve, x = result.score, None, None
    else:
        raise ModelOutputError(
            f"Expected metric {name!r} to return a (B,) tensor or a result with .score/.curve/.x, "
            f"but got {type(result).__name__}."
        )
    if not isinstance(score, Tensor) or score.shape != (batch_size,):
        shape = tuple(score.shape) if isinstance(score, Tensor) else type(score).__name__
        raise ModelOutputError(f"Expected metric {name!r} to return scores of shape ({batch_size},), but got {shape}.")
    if curve is not None and (curve.ndim != 2 or curve.shape[0] != batch_size or x is None
                              or tuple(x.shape) != (curve.shape[1],)):
        raise ModelOutputError(
            f"Expected metric {name!r} to return a curve ({batch_size}, T) with x positions (T,), but got "
            f"{tuple(curve.shape)} and {None if x is None else tuple(x.shape)}."
        )
    return score.detach(), None if curve is None else curve.detach(), None if x is None else x.detach()
