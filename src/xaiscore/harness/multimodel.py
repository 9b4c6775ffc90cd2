"""Runs that compare several models: one sub-run per model, one results file for all.

A config with a ``[models]`` table (name -> model table) instead of ``[model]`` runs every method
on the models it names (a method's ``models`` list; all models when left out). Each model is an
ordinary run in ``out/models/<name>/`` (its own shards, cached demo model, resume and lock);
:func:`combine_model_results` then joins their results into ``out/results.nc`` and the report
shows the models side by side.

How the models appear in the results (schema additions, see ``docs/harness.md``):

* the ``explainer`` dimension holds every model's methods, named ``"<model>/<method>"``
  (``"cnn/GradCAM"``, ``"vit/rollout"``), grouped by model in config order, with the coordinates
  ``model`` (the model's name) and ``method_name`` (the method's name in the config) along it:
  ``ds.sel(explainer=ds.model == "vit")`` keeps one model's methods;
* a curve whose steps depend on the model (the MPRT family: one step per randomized layer) has
  the union of the models' steps, NaN past a model's last step;
* the model-dependent sample coordinates of every model sit on a ``models`` dimension:
  ``model_prediction (models, sample)``, ``model_target (models, sample)`` and
  ``model_probabilities (models, sample, class)``; the plain ``prediction``, ``target`` and
  ``model_probability`` are those of the first model (so readers of single-model files keep
  working);
* attrs ``models`` (JSON: name -> the model's settings and sub-run folder), ``methods`` and
  ``config`` list the methods under their ``"<model>/<method>"`` names.

A run with a single ``[model]`` is unchanged (no ``model`` coordinate).

Example:
    >>> import numpy as np
    >>> from xaiscore.harness.results import build_dataset
    >>> def part(methods, prediction):
    ...     return build_dataset(methods=methods, samples={
    ...         "source_id": ["a", "b"], "label": [1, 0], "target": [1, 0],
    ...         "prediction": prediction, "finding": ["x", ""]},
    ...         scores={"m": {k: np.array([1.0, 0.0]) for k in methods}},
    ...         metric_info={"m": {"higher_is_better": True}})
    >>> ds = combine_model_results({"cnn": part(["gradcam", "random"], [1, 0]),
    ...                             "vit": part(["rollout"], [1, 1])})
    >>> ds["explainer"].values.tolist(), ds["model"].values.tolist()
    (['cnn/gradcam', 'cnn/random', 'vit/rollout'], ['cnn', 'cnn', 'vit'])
    >>> ds["model_prediction"].sel(models="vit").values.tolist()
    [1, 1]
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from xaiscore._checks import OptionError
from xaiscore.harness.config import ConfigError, RunConfig

__all__ = ["combine_model_results", "run_models", "sub_config", "MODEL_DIR"]

#: The folder of the model sub-runs inside a run folder.
MODEL_DIR = "models"
_SHARED = ("source_id", "label", "finding")
_PER_MODEL = ("target", "prediction")


def sub_config(config: RunConfig, name: str) -> RunConfig:
    """The single-model run of model ``name``: its methods, its folder ``out/models/<name>``."""
    from xaiscore.harness.method_options import methods_for_model

    out = None if config.out is None else str(Path(config.out) / MODEL_DIR / name)
    methods = tuple(replace(m, models=()) for m in methods_for_model(config, name))
    return replace(config, model=config.models[name], models={}, methods=methods, out=out,
                   report=False)


def _json(ds: Any, key: str, default: str = "{}") -> Any:
    return json.loads(ds.attrs.get(key, default) or default)


def _check_samples(parts: Mapping[str, Any]) -> None:
    first_name, first = next(iter(parts.items()))
    for name, ds in parts.items():
        same = np.array_equal(ds["sample"].values, first["sample"].values) and all(
            np.array_equal(ds[key].values, first[key].values) for key in _SHARED)
        if not same:
            raise OptionError(f"Expected the models {first_name!r} and {name!r} to be scored on "
                              "the same samples, but their sample coordinates differ.")


def _prefixed(reasons: Mapping[str, Any], model: str) -> dict[str, Any]:
    return {f"{model}/{method}": value for method, value in reasons.items()}


def _metric_attrs(parts: Mapping[str, Any], name: str,
                  template: Mapping[str, Any]) -> dict[str, Any]:
    """The attrs of metric variable ``name``: ``skipped`` and ``undefined`` of every model."""
    from xaiscore.harness.results import to_json

    skipped: dict[str, Any] = {}
    undefined: dict[str, Any] = {}
    for model, ds in parts.items():
        if name in ds.variables:
            skipped.update(_prefixed(json.loads(ds[name].attrs.get("skipped", "{}")), model))
            undefined.update(_prefixed(json.loads(ds[name].attrs.get("undefined", "null") or "{}")
                                       or {}, model))
        else:
            skipped.update(_prefixed(_json(ds, "skipped").get(name, {}), model))
    return {**template, "skipped": to_json(skipped), "undefined": to_json(undefined)}


def _aligned(parts: Mapping[str, Any]) -> list[Any]:
    """Each part with the ``explainer``-dimension variables of all parts (NaN where missing),
    its explainers renamed ``<model>/<method>`` and the per-model coordinates moved out."""
    import xarray as xr

    templates: dict[str, Any] = {}
    for ds in parts.values():
        for key, variable in ds.data_vars.items():
            if "explainer" in variable.dims:
                templates.setdefault(str(key), variable)
    aligned = []
    for model, ds in parts.items():
        methods = [str(m) for m in ds["explainer"].values]
        ds = ds.drop_vars([c for c in ("model_probability", "class", *_PER_MODEL)
                           if c in ds.coords])
        for key, template in templates.items():
            if key not in ds.data_vars:
                shape = dict(template.sizes, explainer=len(methods))
                ds[key] = xr.Variable(template.dims, np.full(tuple(shape.values()), np.nan,
                                                             dtype=template.dtype),
                                      attrs=template.attrs)
        ds = ds.assign_coords(explainer=np.array([f"{model}/{m}" for m in methods], dtype=object))
        ds = ds.assign_coords(model=("explainer", np.array([model] * len(methods), dtype=object)),
                              method_name=("explainer", np.array(methods, dtype=object)))
        aligned.append(ds)
    return aligned


def _model_coords(ds: Any, parts: Mapping[str, Any]) -> Any:
    """``ds`` with the per-model sample coordinates (``models`` dim) and the first model's plain
    ones."""
    first = next(iter(parts.values()))
    coords: dict[str, Any] = {"models": np.array(list(parts), dtype=object)}
    for key in _PER_MODEL:
        coords[f"model_{key}"] = (("models", "sample"),
                                  np.stack([p[key].values for p in parts.values()]))
        coords[key] = ("sample", first[key].values)
    if all("model_probability" in p.coords for p in parts.values()):
        coords["model_probability"] = first["model_probability"]
        coords["model_probabilities"] = (("models", "sample", "class"), np.stack(
            [p["model_probability"].values for p in parts.values()]))
    return ds.assign_coords(coords)


def _joined_attrs(ds: Any, parts: Mapping[str, Any]) -> dict[str, Any]:
    """The Dataset attrs that list methods or metrics, over every model (names prefixed)."""
    from xaiscore.harness.results import to_json

    scored = set(map(str, ds.data_vars))
    skipped: dict[str, dict[str, Any]] = {}
    settings: dict[str, Any] = {}
    methods: dict[str, Any] = {}
    for model, part in parts.items():
        for metric, reasons in _json(part, "skipped").items():
            if metric not in scored:
                skipped.setdefault(metric, {}).update(_prefixed(reasons, model))
        settings.update(_json(part, "metric_settings"))
        methods.update(_prefixed(_json(part, "methods"), model))
    return {"skipped": to_json(skipped), "metric_settings": to_json(settings),
            "methods": to_json(methods),
            "models": to_json({name: {"folder": f"{MODEL_DIR}/{name}"} for name in parts})}


def combine_model_results(parts: Mapping[str, Any], *,
                          attrs: Mapping[str, Any] | None = None) -> Any:
    """One results Dataset from the results of several models (schema in the module docstring).

    Args:
        parts: model name -> that model's results Dataset (same samples), in the order the
            report shows them.
        attrs: Extra Dataset attrs (non-scalar values stored as JSON).

    Raises:
        OptionError: no parts, or the parts were scored on different samples or show different
            example images.
    """
    import xarray as xr

    from xaiscore.harness.results import to_json

    if not parts:
        raise OptionError("Expected the results of at least one model, but got none.")
    _check_samples(parts)
    examples = [p["example"].values.tolist() for p in parts.values() if "example" in p.coords]
    if any(e != examples[0] for e in examples):
        raise OptionError(f"Expected the models {list(parts)} to show the same example images, "
                          "but their examples differ.")
    # join="outer": a curve whose steps depend on the model (MPRT: one per layer) gets the
    # union of the steps, NaN past a model's last layer
    ds = xr.concat(_aligned(parts), dim="explainer", data_vars="minimal", coords="minimal",
                   compat="override", join="outer", combine_attrs="override")
    ds = _model_coords(ds, parts)
    for key in ds.data_vars:  # every metric variable (per sample, or set-level per explainer)
        if ds[key].dims[:1] == ("explainer",) and "skipped" in ds[key].attrs:
            ds[key].attrs = _metric_attrs(parts, str(key), ds[key].attrs)
    ds.attrs.update(_joined_attrs(ds, parts))
    for key, value in (attrs or {}).items():
        ds.attrs[key] = value if isinstance(value, (str, int, float)) else to_json(value)
    return ds


def _config_attrs(config: RunConfig) -> dict[str, Any]:
    """The ``config`` and ``models`` attrs: the config as run, methods under their results names."""
    from xaiscore.harness.method_options import methods_for_model

    raw = {k: v for k, v in asdict(config).items() if k != "source"}
    raw["methods"] = [
        {**asdict(method), "name": f"{name}/{method.name}", "method": method.method, "model": name}
        for name in config.models for method in methods_for_model(config, name)
    ]
    models = {name: {"folder": f"{MODEL_DIR}/{name}", "kind": model.kind,
                     "architecture": model.architecture if model.kind == "demo" else None}
              for name, model in config.models.items()}
    return {"config": raw, "config_source": config.source, "models": models}


def run_models(config: RunConfig, run_single: Callable[..., Any], *, progress: bool = False,
               resume: bool = True, timing: dict[str, Any] | None = None) -> Any:
    """Run a config with ``[models]``: each model's sub-run, then ``results.nc`` and the report.

    Args:
        config: The config (with ``models``).
        run_single: Runs one single-model config
            (:func:`xaiscore.harness.runner.run_config`, which calls this function).
        progress: Show progress bars.
        resume: Load finished results of the sub-runs.
        timing: Filled with the sub-runs' summed ``seconds``, ``results_computed`` and
            ``results_loaded``.

    Returns:
        The combined results Dataset (``None`` on ranks other than 0).
    """
    from xaiscore.harness.config import check_config_files
    from xaiscore.harness.distributed import DistributedContext
    from xaiscore.harness.results import save_dataset
    from xaiscore.harness.rundir import hold_run_folder
    from xaiscore.harness.store import RunStore

    if config.out is None:
        raise ConfigError(f"{config.source}: expected `out`, the run folder.")
    subs = {name: sub_config(config, name) for name in config.models}
    for sub in subs.values():
        check_config_files(sub)
    context = DistributedContext.from_environment(device=config.device)
    store = RunStore(config.out, rank=context.rank)
    held = contextlib.ExitStack()
    try:
        hold_run_folder(store, context, held)
        parts, totals = {}, {"seconds": 0.0, "results_computed": 0, "results_loaded": 0}
        for name, sub in subs.items():
            part_timing: dict[str, Any] = {}
            parts[name] = run_single(sub, progress=progress, resume=resume, timing=part_timing)
            for key in totals:
                totals[key] += part_timing.get(key, 0)
        if timing is not None:
            timing.update(totals)
        if not context.is_main:
            return None
        ds = combine_model_results(parts, attrs=_config_attrs(config))
        store.record(store.results_path)
        save_dataset(ds, store.results_path)
        if config.report:
            from xaiscore.harness.report import write_report

            with store.recording_new_files("report.html", "summary.csv", "figures"):
                write_report(ds, Path(config.out), progress=progress)
        return ds
    finally:
        held.close()
        context.close()
