"""Generate one metric class per registered metric from its spec and its kernel's signature."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from xaiscore._checks import OptionError
from xaiscore.metrics._base import CALLABLE_NAMES, TENSOR_INPUT_NAMES, XaiscoreMetric
from xaiscore.metrics._sample import PerSampleMetric
from xaiscore.metrics._set import PredictionSetMetric, StatisticsSetMetric
from xaiscore.specs import MetricSpec, get_metric

__all__ = ["metric_class", "class_name", "default_seeding", "STREAM_EXACT"]

_SPELLED = {
    "mprt": "MPRT",
    "smooth_mprt": "SmoothMPRT",
    "efficient_mprt": "EfficientMPRT",
    "irof": "IROF",
    "road": "ROAD",
    "localization_auc": "LocalizationAUC",
    "localization_iou": "LocalizationIoU",
    "sensitivity_n": "SensitivityN",
    "top_k_intersection": "TopKIntersection",
    "mst_compactness": "MSTCompactness",
    "pxap": "PxAP",
}

#: Stochastic metrics whose kernels draw their random numbers sample after sample, in batch
#: order, with their default options: a generator carried from batch to batch then gives exactly
#: the values of one kernel call on the concatenated batches (tests/metrics/test_seeding.py).
STREAM_EXACT: frozenset[str] = frozenset(
    {
        "monotonicity_correlation",
        "road",
        "faithfulness_correlation",
        "sensitivity_n",
        "mprt",
        "efficient_mprt",
    }
)
#: Option values with which a kernel draws out of sample order (stream seeding is then not exact).
_OUT_OF_ORDER: dict[str, dict[str, tuple[Any, ...]]] = {
    "irof": {"baseline": ("uniform",)},
    "faithfulness_correlation": {"baseline": ("uniform",)},
    "sensitivity_n": {"baseline": ("uniform",)},
}


def class_name(metric: str) -> str:
    """The class name of a registered metric name.

    Example:
        >>> class_name("pointing_game"), class_name("smooth_mprt")
        ('PointingGame', 'SmoothMPRT')
    """
    return _SPELLED.get(metric) or "".join(part.capitalize() for part in metric.split("_"))


def default_seeding(spec: MetricSpec, options: Mapping[str, Any]) -> str:
    """``"stream"`` where one generator carried across batches is exact (see :data:`STREAM_EXACT`),
    else ``"per_sample"``.

    Example:
        >>> from xaiscore.specs import get_metric
        >>> default_seeding(get_metric("road"), {})
        'stream'
        >>> default_seeding(get_metric("max_sensitivity"), {})
        'per_sample'
        >>> default_seeding(get_metric("irof"), {"baseline": "uniform"})
        'per_sample'
    """
    if spec.stochastic and spec.name not in STREAM_EXACT:
        return "per_sample"
    for option, values in _OUT_OF_ORDER.get(spec.name, {}).items():
        value = options.get(option)
        if isinstance(value, str) and value in values:
            return "per_sample"
    return "stream"


_CACHE: dict[tuple[Any, ...], type[XaiscoreMetric]] = {}
_P = inspect.Parameter


def metric_class(metric: str | MetricSpec) -> type[XaiscoreMetric]:
    """The ``torchmetrics`` class of a registered metric (built once, then cached).

    Per-sample metrics get :class:`~xaiscore.metrics._sample.PerSampleMetric`; set-level
    metrics with a ``statistics`` entry :class:`~xaiscore.metrics._set.StatisticsSetMetric`;
    set-level metrics on explanations and predicted classes (``needs`` within
    ``{forward_fn, x, a}``) :class:`~xaiscore.metrics._set.PredictionSetMetric`.

    Raises:
        UnknownMetricError: no metric of that name.
        OptionError: a set-level metric that none of the wrappers can hold.

    Example:
        >>> metric_class("pointing_game").__name__
        'PointingGame'
    """
    spec = get_metric(metric) if isinstance(metric, str) else metric
    key = (spec.name, spec.function, spec.scope, spec.statistics, spec.output)
    if key not in _CACHE:
        _CACHE[key] = _build(spec)
    return _CACHE[key]


def _base_of(spec: MetricSpec) -> type[XaiscoreMetric]:
    if spec.scope == "sample":
        return PerSampleMetric
    if spec.statistics is not None:
        return StatisticsSetMetric
    if "forward_fn" in spec.needs and spec.needs <= {"forward_fn", "x", "a"}:
        return PredictionSetMetric
    raise OptionError(
        "Expected a set-level metric to name its `statistics` (a SetStatistics) or to need only "
        f"forward_fn, x "
        f"and a, but {spec.name!r} needs {sorted(spec.needs)}."
    )


def _build(spec: MetricSpec) -> type[XaiscoreMetric]:
    base = _base_of(spec)
    kernel = inspect.signature(spec.fn).parameters
    statistics = spec.set_statistics if base is StatisticsSetMetric else None

    callables = [p for p in kernel.values() if p.name in CALLABLE_NAMES]
    required_callables = [p.name for p in callables if p.name in spec.needs]
    optional_callables = [p.name for p in callables if p.name not in spec.needs]
    if statistics is not None:
        required_inputs = list(statistics.inputs)
        optional_inputs = list(statistics.optional_inputs)
    else:
        inputs = [p for p in kernel.values() if p.name in TENSOR_INPUT_NAMES]
        required_inputs = [p.name for p in inputs if p.name in spec.needs and p.default is _P.empty]
        optional_inputs = [p.name for p in inputs if p.name not in required_inputs]
    skip = set(CALLABLE_NAMES) | set(TENSOR_INPUT_NAMES) | {"generator", "seed"}
    # e.g. `boxes`, `ignore`: inputs, not options
    skip |= set(required_inputs) | set(optional_inputs)
    options = [
        p
        for p in kernel.values()
        if p.name not in skip and p.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)
    ]
    required_options = set()
    if statistics is not None:
        for fn in (statistics.zeros, statistics.update, statistics.compute):
            required_options |= {
                p.name
                for p in inspect.signature(fn).parameters.values()
                if p.kind is _P.KEYWORD_ONLY and p.default is _P.empty
            }
    uses_randomness = "generator" in kernel or "seed" in kernel
    seed_parameter = kernel.get("seed")
    seed_has_own_role = (
        "generator" in kernel and seed_parameter is not None and seed_parameter.default is not None
    )

    init = [_P("self", _P.POSITIONAL_OR_KEYWORD)]
    init += [
        _P(name, _P.POSITIONAL_OR_KEYWORD, annotation=kernel[name].annotation)
        for name in required_callables
    ]
    init += [
        _P(name, _P.KEYWORD_ONLY, default=None, annotation=kernel[name].annotation)
        for name in optional_callables
    ]
    init += [
        _P(
            p.name,
            _P.KEYWORD_ONLY,
            annotation="int" if p.name in required_options and p.default is None else p.annotation,
            default=_P.empty if p.name in required_options else p.default,
        )
        for p in options
    ]
    if uses_randomness:
        init += [
            _P("seed", _P.KEYWORD_ONLY, default=0, annotation="int"),
            _P(
                "seeding",
                _P.KEYWORD_ONLY,
                default=None,
                annotation="Literal['stream', 'per_sample'] | None",
            ),
        ]
    if base is PerSampleMetric:
        init.append(_P("keep_samples", _P.KEYWORD_ONLY, default=True, annotation="bool"))
    init.append(_P("kwargs", _P.VAR_KEYWORD, annotation="Any"))

    update = [_P(name, _P.POSITIONAL_OR_KEYWORD, annotation="Tensor") for name in required_inputs]
    update += [
        _P(name, _P.POSITIONAL_OR_KEYWORD, default=None, annotation="Tensor | None")
        for name in optional_inputs
    ]
    if base is not StatisticsSetMetric:
        update.append(_P("sample_index", _P.KEYWORD_ONLY, default=None, annotation="Tensor | None"))

    name = class_name(spec.name)
    namespace: dict[str, Any] = {
        "spec": spec,
        "kernel": staticmethod(spec.fn),
        "higher_is_better": spec.higher_is_better,
        "kernel_parameters": frozenset(kernel),
        "init_signature": inspect.Signature(init),
        "update_signature": inspect.Signature(update),
        "update_positional": tuple(required_inputs + optional_inputs),
        "callable_names": tuple(required_callables + optional_callables),
        "option_names": tuple(p.name for p in options),
        "uses_randomness": uses_randomness,
        "seed_has_own_role": seed_has_own_role,
        "default_seeding": staticmethod(lambda opts, _spec=spec: default_seeding(_spec, opts)),
        "__module__": "xaiscore.metrics",
        "__qualname__": name,
        "__init__": _with_signature(base.__init__, inspect.Signature(init), name, "__init__"),
        "update": _with_signature(
            base.update,
            inspect.Signature([_P("self", _P.POSITIONAL_OR_KEYWORD), *update]),
            name,
            "update",
            doc=base.update.__doc__,
        ),
    }
    cls = type(name, (base,), namespace)
    cls.__doc__ = _docstring(
        cls,
        spec,
        base,
        required_callables,
        optional_callables,
        required_inputs,
        optional_inputs,
        options,
    )
    return cls


def _with_signature(
    method: Any, signature: inspect.Signature, owner: str, name: str, doc: str | None = None
) -> Any:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return method(self, *args, **kwargs)

    wrapper.__signature__ = signature  # type: ignore[attr-defined]
    wrapper.__name__, wrapper.__qualname__ = name, f"{owner}.{name}"
    wrapper.__module__ = "xaiscore.metrics"
    wrapper.__doc__ = doc
    return wrapper


_SCOPE_TEXT = {
    PerSampleMetric: (
        "Per-sample metric: each sample's score depends on that sample alone, so any split of a "
        "dataset into batches (and processes) gives the same per-sample scores. ``compute()`` "
        "returns their NaN-aware mean."
    ),
    StatisticsSetMetric: (
        "Set-level metric: defined over the whole evaluation set. The class keeps fixed-size "
        "statistics that add up over batches and processes (``dist_reduce_fx='sum'``), so "
        "``compute()`` equals the kernel on the whole set, whatever the batches; memory does not "
        "grow with the set."
    ),
    PredictionSetMetric: (
        "Set-level metric: each sample is scored against the whole evaluation set (every batch, "
        "every process). The class keeps every explanation (flattened, exact) and predicted "
        "class, and ``compute()`` calls the kernel once on the whole set: "
        "``N * numel(a_i) * itemsize`` bytes of state, and the kernel's ``(N, N)`` pairwise "
        "matrices while computing."
    ),
}


def _docstring(
    cls: type[XaiscoreMetric],
    spec: MetricSpec,
    base: type[XaiscoreMetric],
    required_callables: list[str],
    optional_callables: list[str],
    required_inputs: list[str],
    optional_inputs: list[str],
    options: list[inspect.Parameter],
) -> str:
    kernel = f":func:`xaiscore.functional.{spec.name}`"
    better = {True: "higher is better", False: "lower is better", None: "no better direction"}[
        spec.higher_is_better
    ]
    lines = [
        f"{spec.description or spec.name} ({better}).",
        "",
        f"The ``torchmetrics.Metric`` of {kernel} ({spec.citation}). {_SCOPE_TEXT[base]}",
        "",
        "Args:",
    ]
    for name in required_callables:
        lines.append(f"    {name}: Given once, used for every batch (the kernel's ``{name}``).")
    for name in optional_callables:
        lines.append(f"    {name}: Optional, as in the kernel.")
    if options:
        listed = ", ".join(f"``{p.name}``" for p in options)
        lines.append(f"    options: The kernel's keyword options, with its defaults: {listed}.")
    if cls.uses_randomness:
        lines.append(
            "    seed: Seeds every random draw; the metric restarts from it at ``reset()``."
        )
        example = default_seeding(spec, {})
        lines.append(
            '    seeding: ``"stream"`` (one generator carried from batch to batch) or '
            '``"per_sample"`` '
            "(a generator per sample, seeded ``derive_seed(seed, sample_index)``); ``None`` picks "
            f'the exact one, here ``"{example}"`` with the default options (``docs/metrics.md``).'
        )
    if base is PerSampleMetric:
        lines.append(
            "    keep_samples: Keep the per-sample scores (and curves) for ``result()`` and "
            "``sample_index`` ordering; ``False`` keeps three numbers only (``sample_index`` then "
            "neither orders nor deduplicates rows, and only keys per-sample seeds)."
        )
    lines.append(
        "    kwargs: ``torchmetrics.Metric`` options (``compute_on_cpu``, ``dist_sync_on_step``, "
        "``sync_on_compute``, ``process_group``, ...)."
    )
    inputs = ", ".join(required_inputs + [f"{n}=None" for n in optional_inputs])
    index = ", *, sample_index=None" if base is not StatisticsSetMetric else ""
    lines += [
        "",
        "Update:",
        f"    ``update({inputs}{index})`` (or calling the metric, which also returns the batch's "
        "value): "
        "tensors as the kernel takes them."
        + (
            " ``sample_index`` ``(B,)`` (optional, unique per row) orders the per-sample results, "
            "makes rows "
            "repeated by a distributed sampler count once, and keys per-sample seeds."
            if index
            else ""
        ),
        "",
        "Compute:",
        "    ``compute()``: the 0-d value; ``result()``: :class:`xaiscore.metrics.MetricResult` "
        "with the "
        "per-sample scores, counts"
        + (", curves" if spec.output == "curve" else "")
        + " and details.",
    ]
    return "\n".join(lines)
