"""Scores as one :class:`xarray.Dataset`: construction, atomic netCDF writes, loading.

The harness (:mod:`xaiscore.harness`) collects per-sample scores of every
(method, metric) pair and hands them to :func:`build_dataset`; users read the
result with :func:`load_dataset` and slice it with xarray.

Schema (see ``docs/harness.md``, section *Results schema*):

* dims ``explainer`` (the explanation methods, string coord) and ``sample`` (the
  dataset index, int coord), plus ``run`` for repeated stochastic metrics and
  ``<metric>_step`` for the x positions of a curve metric, plus ``example``,
  ``channel``, ``y``, ``x``, ``box`` for the example images of the report;
* sample coords ``source_id``, ``label``, ``target`` (the explained class),
  ``prediction`` and ``finding``;
* one variable ``<metric>`` ``(explainer, sample[, run])`` per scored metric and
  ``<metric>_curve`` ``(explainer, sample[, run], <metric>_step)`` per curve
  metric; each carries attrs ``family``, ``higher_is_better`` (1 higher is
  better, 0 lower is better, -1 no direction), ``citation``, ``settings`` (the
  keyword options as JSON), ``stochastic`` (0/1) and ``skipped`` (JSON:
  method -> reason, for methods the metric could not score);
* Dataset attrs: library, torch and numpy versions, ``seed``, ``class_names``,
  ``metric_settings`` (JSON: metric -> options), ``skipped`` (JSON: metric ->
  method -> reason, for metrics no method could be scored on) and whatever the
  caller adds. Every attr is a str, int or float, so the file is netCDF-safe.

xarray is an optional dependency (the ``harness`` extra); it is imported when
this module is.

Select a method with ``ds.sel(explainer="saliency")``. The dimension was
called ``method`` in earlier versions: ``ds.sel(method=...)`` passes
xarray's own ``method`` argument (the inexact-match rule) and silently
selected nothing.

Example:
    >>> import numpy as np
    >>> ds = build_dataset(
    ...     methods=["saliency", "random"],
    ...     samples={"source_id": ["a", "b"], "label": [1, 0], "target": [1, 0],
    ...              "prediction": [1, 1], "finding": ["nodule", ""]},
    ...     scores={"pointing_game": {"saliency": np.array([1.0, np.nan]),
    ...                               "random": np.array([0.0, np.nan])}},
    ...     metric_info={"pointing_game": {"family": "localization", "higher_is_better": True}},
    ... )
    >>> ds["pointing_game"].sel(explainer="saliency").values.tolist()
    [1.0, nan]
    >>> int(ds["pointing_game"].attrs["higher_is_better"])
    1
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from xaiscore._checks import OptionError, ShapeError
from xaiscore._version import __version__

__all__ = [
    "SAMPLE_COORDS",
    "build_dataset",
    "save_dataset",
    "load_dataset",
    "atomic_path",
    "metric_variables",
    "curve_variables",
    "higher_is_better",
    "to_json",
]

#: The per-sample coordinates every results Dataset carries, with their dtypes.
SAMPLE_COORDS: dict[str, type] = {
    "source_id": str,
    "label": int,
    "target": int,
    "prediction": int,
    "finding": str,
}

_RESERVED = {"explainer", "sample", "run", "example", "channel", "y", "x", "box", *SAMPLE_COORDS}


def to_json(value: Any) -> str:
    """``value`` as compact, key-sorted JSON; tuples become lists, anything else its ``str``."""
    return json.dumps(value, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


def _direction(higher: bool | None) -> int:
    return -1 if higher is None else int(bool(higher))


def _netcdf_safe(value: Any) -> str | int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (str, int, float)):
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return to_json(value)


def _as_array(value: Any, *, what: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        raise ShapeError(f"Expected {what} to have a sample axis, but got a scalar.")
    return array


def _stack_methods(per_method: Mapping[str, Any], methods: Sequence[str], n: int, *,
                   what: str) -> np.ndarray:
    """``(M, N, ...)`` with NaN rows for methods absent from ``per_method``."""
    arrays = {m: _as_array(v, what=f"{what} of method {m!r}") for m, v in per_method.items()}
    unknown = set(arrays) - set(methods)
    if unknown:
        raise OptionError(
            f"Expected {what} for methods among {list(methods)}, but got {sorted(unknown)}.")
    tail = {a.shape[1:] for a in arrays.values()}
    if len(tail) != 1:
        raise ShapeError(f"Expected {what} of one shape for every method, but got {sorted(tail)}.")
    (tail_shape,) = tail
    out = np.full((len(methods), n) + tail_shape, np.nan)
    for i, m in enumerate(methods):
        if m in arrays:
            if arrays[m].shape[0] != n:
                raise ShapeError(
                    f"Expected {what} of method {m!r} for {n} samples, but got "
                    f"{arrays[m].shape[0]}."
                )
            out[i] = arrays[m]
    return out


def build_dataset(
    *,
    methods: Sequence[str],
    samples: Mapping[str, Sequence[Any]],
    scores: Mapping[str, Mapping[str, Any]],
    curves: Mapping[str, Mapping[str, Any]] | None = None,
    curve_x: Mapping[str, Any] | None = None,
    metric_info: Mapping[str, Mapping[str, Any]] | None = None,
    skipped: Mapping[str, Mapping[str, str]] | None = None,
    undefined: Mapping[str, Mapping[str, Any]] | None = None,
    sample_index: Sequence[int] | None = None,
    examples: Mapping[str, Any] | None = None,
    probabilities: Any = None,
    attrs: Mapping[str, Any] | None = None,
    set_level: Mapping[str, Mapping[str, Any]] | None = None,
) -> xr.Dataset:
    """Assemble per-sample scores into the results Dataset (schema in the module docstring).

    Args:
        methods: Method names, in the order of the ``explainer`` dim.
        samples: The sample coordinates of :data:`SAMPLE_COORDS`, each of length ``N``.
        scores: metric -> method -> ``(N,)`` or ``(N, R)`` scores (arrays or tensors).
            A method missing for a metric gets NaN (say why in ``skipped``).
        curves: metric -> method -> ``(N, T)`` or ``(N, R, T)`` curves.
        curve_x: metric -> ``(T,)`` x positions of its curve (default ``0 .. T-1``).
        metric_info: metric -> ``family``, ``higher_is_better``, ``citation``,
            ``settings`` (dict), ``stochastic``, ``description``, ``nan_rule`` (the
            kernel's rule for NaN scores), ``curve_axes``
            (:class:`~xaiscore.harness.axes.CurveAxes` of a curve metric).
        skipped: metric -> method -> reason, for pairs that could not be scored.
            A metric with reasons but no scores is listed in the Dataset attr ``skipped``.
        undefined: metric -> method -> counts of the causes of NaN scores
            (:func:`xaiscore.harness.gaps.nan_causes`, summed), or ``None`` when unknown.
        sample_index: The ``sample`` coordinate (default ``0 .. N-1``).
        examples: Optional example images for the report: ``image`` ``(E, C, H, W)``,
            ``mask`` ``(E, H, W)``, ``boxes`` ``(E, K, 4)`` (NaN-padded), ``sample``
            ``(E,)`` and ``attributions`` (method -> ``(E, H, W)``).
        probabilities: ``(N, K)`` softmax outputs of the model on the samples (the
            ``model_probability`` coordinate, dims ``sample, class``), or ``None``.
        attrs: Extra Dataset attrs (non-scalar values are stored as JSON).
        set_level: metric -> method -> :class:`~xaiscore.harness.set_scoring.SetResult` of
            the set-level metrics (variables without a ``sample`` dim,
            :mod:`xaiscore.harness.set_results`).

    Returns:
        The Dataset.

    Raises:
        ShapeError: lengths or shapes disagree.
        OptionError: a metric name collides with a reserved name, or an unknown method.
    """
    methods = [str(m) for m in methods]
    if len(set(methods)) != len(methods):
        raise OptionError(f"Expected distinct method names, but got {methods}.")
    coords = _sample_coords(methods, samples, sample_index)
    n = len(samples["source_id"])
    curves = curves or {}
    curve_x = curve_x or {}
    metric_info = metric_info or {}
    skipped = skipped or {}
    if undefined:
        metric_info = {m: {**metric_info.get(m, {}), "undefined": undefined.get(m)}
                       for m in set(metric_info) | set(undefined)}

    data_vars = _metric_variables(scores, curves, curve_x, metric_info, skipped, methods, n,
                                  coords=coords)
    if set_level:
        from xaiscore.harness.set_results import set_level_variables

        set_vars, set_coords = set_level_variables(
            set_level, methods, lambda m: _metric_attrs(metric_info.get(m, {}), skipped.get(m, {})))
        data_vars.update(set_vars)
        coords.update(set_coords)
    _add_run_coord(data_vars, coords)
    if examples is not None:
        _add_examples(data_vars, coords, examples, methods)
    if probabilities is not None:
        values = _as_array(probabilities, what="model probabilities")
        if values.ndim != 2 or values.shape[0] != n:
            raise ShapeError(
                f"Expected model probabilities of shape ({n}, K), but got {values.shape}.")
        coords["model_probability"] = xr.Variable(  # per-sample metadata, like `prediction`
            ("sample", "class"), values,
            attrs={"long_name": "softmax output of the model on the sample", "units": "1"})
        coords["class"] = np.arange(values.shape[1])

    ds = xr.Dataset(data_vars, coords=coords)
    _describe_coords(ds)
    ds.attrs.update({
        "title": "xaiscore results",
        "xaiscore_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "xarray_version": xr.__version__,
        "python_version": platform.python_version(),
        "metric_settings": to_json({m: dict(metric_info.get(m, {}).get("settings", {}))
                                    for m in [*scores, *(set_level or {})]}),
        "skipped": to_json({m: dict(r) for m, r in skipped.items()
                            if m not in scores and m not in curves and m not in (set_level or {})}),
    })
    for key, value in (attrs or {}).items():
        ds.attrs[key] = _netcdf_safe(value)
    return ds


def _metric_variables(scores: Mapping[str, Mapping[str, Any]],
                      curves: Mapping[str, Mapping[str, Any]],
                      curve_x: Mapping[str, Any], metric_info: Mapping[str, Mapping[str, Any]],
                      skipped: Mapping[str, Mapping[str, str]], methods: list[str], n: int, *,
                      coords: dict[str, Any]) -> dict[str, Any]:
    """name -> variable: each metric's scores (``<metric>``) and curve (``<metric>_curve``)."""
    data_vars: dict[str, Any] = {}
    for metric in list(scores) + [c for c in curves if c not in scores]:
        if metric in _RESERVED or metric.endswith(("_curve", "_step")):
            raise OptionError(
                f"Expected a metric name other than {metric!r} (a reserved results name).")
        var_attrs = _metric_attrs(metric_info.get(metric, {}), skipped.get(metric, {}))
        if metric in scores:
            values = _stack_methods(scores[metric], methods, n, what=f"scores of {metric!r}")
            dims = ("explainer", "sample") + (("run",) if values.ndim == 3 else ())
            data_vars[metric] = xr.Variable(dims, values, attrs=var_attrs)
        if metric in curves:
            axes = metric_info.get(metric, {}).get("curve_axes")
            curve_attrs = {**var_attrs, "long_name": "step", "units": "", "curve_scale": "",
                           "x_long_name": "step", "x_units": ""}
            if axes is not None:
                curve_attrs.update({"long_name": axes.scale, "units": axes.y_units,
                                    "curve_scale": axes.scale, "x_long_name": axes.x,
                                    "x_units": axes.x_units})
            data_vars[f"{metric}_curve"] = _curve_variable(metric, curves[metric],
                                                           curve_x.get(metric), methods, n,
                                                           coords=coords, attrs=curve_attrs)
    return data_vars


def _sample_coords(methods: list[str], samples: Mapping[str, Sequence[Any]],
                   sample_index: Sequence[int] | None) -> dict[str, Any]:
    """The ``explainer``, ``sample`` and per-sample coordinates (:data:`SAMPLE_COORDS`)."""
    missing = [k for k in SAMPLE_COORDS if k not in samples]
    if missing:
        raise OptionError(
            f"Expected sample coordinates {list(SAMPLE_COORDS)}, but {missing} are missing.")
    n = len(samples["source_id"])
    coords: dict[str, Any] = {
        "explainer": np.array(methods, dtype=object),
        "sample": np.arange(n) if sample_index is None else np.asarray(sample_index, dtype=np.int64),  # noqa: E501
    }
    for key, kind in SAMPLE_COORDS.items():
        values = list(samples[key])
        if len(values) != n:
            raise ShapeError(
                f"Expected sample coordinate {key!r} of length {n}, but got {len(values)}.")
        array = np.array([str(v) for v in values], dtype=object) if kind is str \
            else np.asarray(values, dtype=np.int64)
        coords[key] = ("sample", array)
    return coords


def _describe_coords(ds: xr.Dataset) -> None:
    """``long_name``/``units`` attrs on every coordinate (CF style), curve steps included."""
    from xaiscore.harness.axes import COORD_ATTRS

    for name, attrs in COORD_ATTRS.items():
        if name in ds.coords:
            ds.coords[name].attrs.update(attrs)
    for name in ds.data_vars:
        if str(name).endswith("_curve"):
            metric = str(name)[: -len("_curve")]
            step = f"{metric}_step"
            ds.coords[step].attrs.update({
                "long_name": str(ds[name].attrs.pop("x_long_name", "step")),
                "units": str(ds[name].attrs.pop("x_units", "")),
            })


def _metric_attrs(info: Mapping[str, Any], skipped: Mapping[str, str]) -> dict[str, Any]:
    """A metric variable's netCDF-safe attrs."""
    undefined = info.get("undefined")
    return {
        "long_name": str(info.get("description", "")),
        "nan_rule": str(info.get("nan_rule", "")),
        "undefined": "null" if undefined is None else to_json(dict(undefined)),
        "family": str(info.get("family", "")),
        "higher_is_better": _direction(info.get("higher_is_better")),
        "citation": str(info.get("citation", "")),
        "description": str(info.get("description", "")),
        "settings": to_json(info.get("settings", {})),
        "stochastic": int(bool(info.get("stochastic", False))),
        "skipped": to_json(dict(skipped)),
    }


def _curve_variable(metric: str, curves: Mapping[str, Any], x: Any, methods: list[str], n: int, *,
                    coords: dict[str, Any], attrs: dict[str, Any]) -> xr.Variable:
    """The ``<metric>_curve`` variable; its ``<metric>_step`` coordinate (x positions) goes into
    ``coords``."""
    values = _stack_methods(curves, methods, n, what=f"curves of {metric!r}")
    step = f"{metric}_step"
    dims = ("explainer", "sample") + (("run",) if values.ndim == 4 else ()) + (step,)
    x_positions = np.arange(values.shape[-1], dtype=np.float64) if x is None \
        else _as_array(x, what=f"curve x of {metric!r}")
    if x_positions.shape != (values.shape[-1],):
        raise ShapeError(
            f"Expected the x positions of {metric!r} of shape ({values.shape[-1]},), "
            f"but got {x_positions.shape}."
        )
    coords[step] = x_positions
    return xr.Variable(dims, values, attrs=attrs)


def _add_run_coord(data_vars: dict[str, Any], coords: dict[str, Any]) -> None:
    """The ``run`` coordinate, when stochastic metrics were repeated (the same number of times)."""
    runs = {v.shape[v.dims.index("run")] for v in data_vars.values() if "run" in v.dims}
    if len(runs) > 1:
        raise ShapeError(
            f"Expected one number of runs for every stochastic metric, but got {sorted(runs)}.")
    if runs:
        coords["run"] = np.arange(runs.pop())


def _add_examples(data_vars: dict[str, Any], coords: dict[str, Any], examples: Mapping[str, Any],
                  methods: Sequence[str]) -> None:
    image = _as_array(examples["image"], what="example images")
    if image.ndim != 4:
        raise ShapeError(f"Expected example images of shape (E, C, H, W), but got {image.shape}.")
    e, _, h, w = image.shape
    data_vars["example_image"] = xr.Variable(("example", "channel", "y", "x"),
                                             image.astype(np.float32))
    mask = np.asarray(examples["mask"], dtype=np.int8).reshape(e, h, w)
    data_vars["example_mask"] = xr.Variable(("example", "y", "x"), mask)
    boxes = _as_array(examples.get("boxes", np.full((e, 0, 4), np.nan)), what="example boxes")
    data_vars["example_boxes"] = xr.Variable(("example", "box", "corner"), boxes.reshape(e, -1, 4))
    maps = np.full((len(methods), e, h, w), np.nan, dtype=np.float32)
    for i, m in enumerate(methods):
        if m in examples.get("attributions", {}):
            maps[i] = _as_array(examples["attributions"][m],
                                what=f"example attributions of {m!r}").reshape(e, h, w)
    data_vars["example_attribution"] = xr.Variable(("explainer", "example", "y", "x"), maps)
    coords["example"] = np.asarray(examples["sample"], dtype=np.int64)
    coords["corner"] = np.array(["x0", "y0", "x1", "y1"], dtype=object)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path next to ``path`` to write to; moved onto ``path`` (``os.replace``) on
    success.

    A reader never sees a half-written file, and a process killed while
    writing leaves the previous file intact. On an exception the temporary
    file is removed and the exception propagates. The file gets the
    permissions of a newly created one (``0o666`` less the umask, e.g.
    ``rw-r--r--``), or those of the file it replaces, not the ``0o600`` of a
    temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, _file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (else set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def save_dataset(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``ds`` to netCDF atomically (see :func:`atomic_path`).

    Returns:
        The path written.
    """
    with atomic_path(path) as temporary:
        ds.to_netcdf(temporary, engine=_engine())
    return Path(path)


def load_dataset(path: str | os.PathLike[str]) -> xr.Dataset:
    """Read a results file fully into memory (the file is closed on return).

    A file written before the ``method`` dimension was renamed ``explainer`` is
    read with the new name.

    Raises:
        FileNotFoundError: no such file (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Expected a results file (netCDF), but {str(path)!r} does not exist.")
    with xr.open_dataset(path, engine=_engine()) as ds:
        loaded = ds.load()
    if "method" in loaded.dims and "explainer" not in loaded.dims:  # written before the rename
        loaded = loaded.rename({"method": "explainer"})
    for name in list(loaded.coords) + list(loaded.data_vars):
        if loaded[name].dtype.kind in "SU":  # netCDF may hand strings back as fixed-width
            loaded[name] = loaded[name].astype(object)
    return loaded


def _engine() -> str | None:
    try:
        import netCDF4  # noqa: F401
    except ImportError:  # pragma: no cover - the harness extra installs it
        return None
    return "netcdf4"


def metric_variables(ds: xr.Dataset) -> list[str]:
    """Names of the score variables (dims ``explainer``, ``sample``[, ``run``]), in order."""
    return [  # .variables: plain Variables, no DataArray (with every coordinate) built per name
        str(name) for name, var in ds.data_vars.variables.items()
        if var.dims[:2] == ("explainer", "sample") and not str(name).endswith("_curve")
    ]


def curve_variables(ds: xr.Dataset) -> list[str]:
    """Metric names that have a ``<metric>_curve`` variable."""
    return [str(name)[: -len("_curve")] for name in ds.data_vars if str(name).endswith("_curve")]


def higher_is_better(ds: xr.Dataset, metric: str) -> bool | None:
    """The direction of ``metric`` as stored in its attrs (``None``: no direction)."""
    value = int(ds.variables[metric].attrs.get("higher_is_better", -1))
    return None if value < 0 else bool(value)
