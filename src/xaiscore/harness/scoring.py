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

Planning and calling are :mod:`xaiscore.dispatch`'s, shared with the
meta-evaluation; this module adds the harness's selection (a metrics config),
its error type (``ConfigError``, messages prefixed with the config's name) and
the unpacking of results.

Example:
    >>> plan = plan_metrics(["pointing_game", "sparseness"], {"pointing_game": {"tolerance": 1.0}})
    >>> [p.spec.name for p in plan], plan[0].options
    (['pointing_game', 'sparseness'], {'tolerance': 1.0})
    >>> missing_inputs(plan[0].spec, available={"a", "x"})
    ['mask']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from xaiscore import dispatch
from xaiscore._engine.batching import ModelOutputError
from xaiscore.dispatch import PlannedMetric, missing_inputs
from xaiscore.harness.config import ConfigError, MetricsConfig
from xaiscore.specs import MetricSpec, get_metric, list_metrics

__all__ = ["PlannedMetric", "select_metrics", "plan_metrics", "missing_inputs", "call_metric",
           "unpack_result"]


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


def plan_metrics(metrics: Iterable[MetricSpec | str],
                 options: Mapping[str, Mapping[str, Any]] | None = None,
                 *, source: str = "<config>") -> list[PlannedMetric]:
    """Merge options and check them against each kernel's signature
    (:func:`xaiscore.dispatch.plan_metrics`).

    A kernel that cannot be imported is planned with the reason in
    :attr:`~xaiscore.dispatch.PlannedMetric.unavailable` (the runner skips it).

    Args:
        metrics: Specs or registered names.
        options: metric -> keyword options overriding the spec's defaults.
        source: The config's name for error messages.

    Raises:
        ConfigError: an option the kernel does not take, or an input name
            (``a``, ``x``, ...) given as an option.
    """
    return dispatch.plan_metrics(metrics, options, error=ConfigError, prefix=f"{source}: ",
                                 supplier="the harness")


def call_metric(planned: PlannedMetric, inputs: Mapping[str, Any], *, max_batch_size: int,
                seed: int | None, device: torch.device) -> Any:
    """Call the kernel with its needed inputs by keyword and its options.

    ``max_batch_size`` is passed where the kernel takes it and the options do
    not set it; so is a ``generator`` seeded with ``seed`` (on ``device``), or
    ``seed`` itself for kernels without a ``generator`` argument
    (:func:`xaiscore.dispatch.kernel_options`).
    """
    return dispatch.call_kernel(planned, inputs, max_batch_size=max_batch_size, seed=seed,
                                device=device)


def unpack_result(result: Any, *, name: str,
                  batch_size: int) -> tuple[Tensor, Tensor | None, Tensor | None]:
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
        raise ModelOutputError(
            f"Expected metric {name!r} to return scores of shape ({batch_size},), but got {shape}.")
    if curve is not None and (curve.ndim != 2 or curve.shape[0] != batch_size or x is None
                              or tuple(x.shape) != (curve.shape[1],)):
        raise ModelOutputError(
            f"Expected metric {name!r} to return a curve ({batch_size}, T) with x positions (T,), "
            f"but got {tuple(curve.shape)} and {None if x is None else tuple(x.shape)}."
        )
    return (score.detach(), None if curve is None else curve.detach(),
            None if x is None else x.detach())
