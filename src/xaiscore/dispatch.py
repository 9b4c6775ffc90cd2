"""One metric-dispatch layer over the registry: plan a metric, then call its kernel.

The harness (:mod:`xaiscore.harness.scoring`) and the meta-evaluation
(:mod:`xaiscore.meta._scoring`) both run registered metrics by name. What they
share lives here:

* :func:`plan_metrics` resolves names to :class:`~xaiscore.specs.MetricSpec`,
  merges the options (the spec's ``defaults``, then the user's) and checks the
  user's options against the kernel's signature: an option the kernel does not
  take, or one that names an input the caller supplies, is an error of the
  caller's type (``error``, an :class:`~xaiscore.OptionError` subclass: the
  harness raises its ``ConfigError``);
* :func:`missing_inputs` says which inputs of a spec a caller cannot supply;
* :func:`kernel_options` adds what the caller controls (``max_batch_size``,
  ``validate``, a seeded ``generator`` or ``seed``) to the planned options, and
  :func:`call_kernel` calls the kernel with its inputs by keyword.

This module imports only the registry, :mod:`xaiscore._checks` and the engine;
the harness and the meta-evaluation import it, never the other way round.

Example:
    >>> plan = plan_metrics(["pointing_game", "sparseness"], {"pointing_game": {"tolerance": 1.0}})
    >>> [p.name for p in plan], plan[0].options
    (['pointing_game', 'sparseness'], {'tolerance': 1.0})
    >>> missing_inputs(plan[0].spec, available={"a", "x"})
    ['mask']
    >>> try:
    ...     plan_metrics(["sparseness"], {"sparseness": {"bins": 3}})
    ... except OptionError as error:
    ...     print(error)
    'sparseness' has no option(s) ['bins']; expected options among ['reduce_channels', 'validate'].
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from xaiscore._checks import OptionError
from xaiscore.specs import MetricSpec, get_metric

__all__ = [
    "MODEL_INPUTS",
    "PlannedMetric",
    "kernel_signature",
    "plan_metrics",
    "missing_inputs",
    "kernel_options",
    "call_kernel",
]

#: Inputs that tie a metric to one model: rows of different models cannot share a call.
MODEL_INPUTS: frozenset[str] = frozenset({"forward_fn", "model", "explain_fn", "explainer_factory"})

#: Inputs that re-explain: each explanation method needs a call of its own.
_EXPLAIN_INPUTS: frozenset[str] = frozenset({"explain_fn", "explainer_factory"})


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
    def name(self) -> str:
        """The registry name."""
        return self.spec.name

    @property
    def settings(self) -> dict[str, Any]:
        """What results record as the metric's settings."""
        return dict(self.options)

    @property
    def shares_model(self) -> bool:
        """Whether rows of different problems may share one call (it does not use the model)."""
        return not (self.spec.needs & MODEL_INPUTS)

    @property
    def per_method(self) -> bool:
        """Whether each method needs its own call (the metric re-explains)."""
        return bool(self.spec.needs & _EXPLAIN_INPUTS)


def kernel_signature(spec: MetricSpec) -> tuple[frozenset[str], bool]:
    """``(parameter names, takes **kwargs)`` of the spec's kernel.

    Raises:
        ImportError, AttributeError: the kernel cannot be imported.
    """
    signature = inspect.signature(spec.fn)
    names = frozenset(signature.parameters)
    open_kwargs = any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()
    )
    return names, open_kwargs


def _check_options(
    spec: MetricSpec,
    user: Mapping[str, Any],
    parameters: frozenset[str],
    open_kwargs: bool,
    *,
    reserved: frozenset[str],
    error: type[OptionError],
    prefix: str,
    supplier: str,
) -> None:
    clash = sorted(set(user) & (spec.needs | reserved))
    if clash:
        raise error(
            f"{prefix}options of {spec.name!r} name its inputs {clash}; {supplier} supplies them."
        )
    if open_kwargs:
        return
    unknown = sorted(set(user) - parameters)
    if unknown:
        accepted = sorted(parameters - spec.needs)
        raise error(
            f"{prefix}{spec.name!r} has no option(s) {unknown}; expected options among {accepted}."
        )


def plan_metrics(
    metrics: Iterable[MetricSpec | str],
    options: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    error: type[OptionError] = OptionError,
    prefix: str = "",
    supplier: str = "the caller",
    reserved: Iterable[str] = (),
    unimportable: Literal["record", "raise"] = "record",
) -> list[PlannedMetric]:
    """Resolve metrics, merge their options (spec defaults, then the user's) and check them.

    Args:
        metrics: Specs or registered names, in the order to plan them.
        options: metric name -> keyword options overriding the spec's defaults
            (names of metrics not in ``metrics`` are ignored here).
        error: The :class:`~xaiscore.OptionError` subclass to raise.
        prefix: Put before every message (e.g. the config file's name and ``": "``).
        supplier: Who supplies the inputs, for the message (e.g. ``"the harness"``).
        reserved: Input names that may not be options beyond each spec's ``needs``.
        unimportable: ``"record"`` a kernel that cannot be imported in
            :attr:`PlannedMetric.unavailable`, or ``"raise"`` its import error.

    Raises:
        UnknownMetricError: an unknown metric name.
        error: an option that names an input, or one the kernel does not take.
        ImportError, AttributeError: an unimportable kernel, with ``unimportable="raise"``.
    """
    options = options or {}
    reserved = frozenset(reserved)
    planned = []
    for item in metrics:
        spec = get_metric(item) if isinstance(item, str) else item
        user = dict(options.get(spec.name, {}))
        unavailable = None
        try:
            parameters, open_kwargs = kernel_signature(spec)
        except (ImportError, AttributeError) as failure:
            if unimportable == "raise":
                raise
            parameters, open_kwargs = frozenset(), True  # nothing to check the options against
            unavailable = (
                f"kernel {spec.function} cannot be imported ({type(failure).__name__}: {failure})"
            )
        _check_options(
            spec,
            user,
            parameters,
            open_kwargs,
            reserved=reserved,
            error=error,
            prefix=prefix,
            supplier=supplier,
        )
        planned.append(PlannedMetric(spec, {**spec.defaults, **user}, parameters, unavailable))
    return planned


def missing_inputs(spec: MetricSpec, *, available: Iterable[str]) -> list[str]:
    """The inputs ``spec`` needs that are not ``available``, sorted."""
    return sorted(set(spec.needs) - set(available))


def kernel_options(
    planned: PlannedMetric,
    *,
    max_batch_size: int,
    seed: int | None,
    device: torch.device,
    validate: bool | None = None,
) -> dict[str, Any]:
    """The planned options plus what the caller controls, where the kernel takes it.

    ``max_batch_size`` and ``validate`` (unless ``None``) are passed as they are; a
    ``generator`` seeded with ``seed`` on ``device`` where the kernel takes one, else
    ``seed`` itself. Nothing the options set is overridden, and a ``generator`` in the
    options leaves ``seed`` unset.
    """
    kwargs = dict(planned.options)
    if "max_batch_size" in planned.parameters:
        kwargs.setdefault("max_batch_size", max_batch_size)
    if validate is not None and "validate" in planned.parameters:
        kwargs.setdefault("validate", validate)
    if seed is not None and "generator" not in kwargs:
        if "generator" in planned.parameters:
            kwargs["generator"] = torch.Generator(device=device).manual_seed(seed)
        elif "seed" in planned.parameters:
            kwargs.setdefault("seed", seed)
    return kwargs


def call_kernel(
    planned: PlannedMetric,
    inputs: Mapping[str, Any],
    *,
    max_batch_size: int,
    seed: int | None,
    device: torch.device,
    validate: bool | None = None,
) -> Any:
    """Call the kernel with its inputs by keyword and :func:`kernel_options`; return its result."""
    kwargs = kernel_options(
        planned, max_batch_size=max_batch_size, seed=seed, device=device, validate=validate
    )
    call = {name: inputs[name] for name in planned.spec.needs}
    return planned.spec.fn(**call, **kwargs)
