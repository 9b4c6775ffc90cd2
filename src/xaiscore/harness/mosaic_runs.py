"""The mosaic metrics in a run: a sub-run on mosaics per metric, its scores in the results.

With ``mosaics`` (a :class:`~xaiscore.harness.mosaic_data.MosaicsConfig`, the config's
``[mosaics]`` section), :func:`~xaiscore.harness.runner.evaluate` takes the metrics that need
``tiles`` (``grid_pointing_game``, ``focus``) out of the dataset's plan and, once the dataset's
batches are done, scores each on its own mosaics
(:func:`~xaiscore.harness.mosaic_data.build_mosaic_dataset`) with the same model, methods, seed
and batching: an ordinary sub-run whose shards live in ``out/mosaics/<metric>/`` (resumed like
the run's own, on every process of a distributed run; a folder holding other mosaics, e.g. of
another ``[mosaics]`` section, is cleared and recomputed). The explained class is the mosaic's
target class. Without ``mosaics`` these metrics are skipped with the reason (the dataset does
not provide ``tiles``).

Results (schema additions, ``docs/harness.md``), for a mosaic metric ``<m>``:

* ``<m>`` ``(explainer, <m>_mosaic)``: the score of each mosaic, attrs as every metric plus
  ``chance_level`` (``target_tiles / n^2``: 1/n² for the grid pointing game, 1/2 for Focus),
  ``mosaic_grid``, ``mosaic_target_tiles``, ``mosaic_min_confidence``, ``mosaic_images`` (the
  base images considered) and ``mosaic_usable`` (JSON: class -> confidently classified images);
* ``<m>_target`` ``(explainer, <m>_mosaic)``, ``<m>_tile_class`` and ``<m>_tile_sample``
  ``(explainer, <m>_mosaic, <m>_tile)``: each mosaic's target class, the class and the dataset
  index (``sample``) of each tile in raster order (the same for every method of a model; on the
  ``explainer`` dim so that models with their own mosaics combine);
* ``<m>_example_image`` ``(explainer, channel, <m>_y, <m>_x)`` and ``<m>_example_attribution``
  ``(explainer, <m>_y, <m>_x)``: mosaic 0 and each method's map of it (channels summed), for the
  report.

A model that cannot take the mosaics (``n`` times the images' size; e.g. a ViT with fixed
position embeddings) gets NaN scores with the reason in ``skipped`` (``on_error="record"``) or
raises (``on_error="raise"``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xaiscore._checks import OptionError
from xaiscore.harness.mosaic_data import (
    MOSAIC_INPUT,
    MosaicDataset,
    MosaicsConfig,
    build_mosaic_dataset,
    mosaic_layout,
    mosaic_metric_variables,
    parse_mosaics,
)

__all__ = ["split_mosaic_plan", "score_mosaics", "add_mosaic_results", "MOSAIC_DIR",
           "mosaic_metric_variables"]

#: The folder of the mosaic sub-runs inside a run folder.
MOSAIC_DIR = "mosaics"


@dataclass
class MosaicPart:
    """One mosaic metric's sub-run: its mosaics, results (``None``: not scored) and skips."""

    planned: Any
    data: MosaicDataset | None  # None: the mosaics could not be built (the reason in `skipped`)
    config: MosaicsConfig
    ds: Any = None
    skipped: dict[str, str] = field(default_factory=dict)


def split_mosaic_plan(plan: Sequence[Any], mosaics: Any) -> tuple[list[Any], list[Any],
                                                                  MosaicsConfig | None]:
    """``(dataset plan, mosaic plan, config)``: with mosaics configured, the available metrics
    that need ``tiles`` move to the mosaic plan.

    Raises:
        OptionError: a bad ``mosaics`` mapping.
    """
    config = parse_mosaics(mosaics)
    if config is None:
        return list(plan), [], None
    on_mosaics = [p for p in plan if MOSAIC_INPUT in p.spec.needs and p.unavailable is None
                  and p.spec.scope == "sample"]
    return [p for p in plan if all(p is not q for q in on_mosaics)], on_mosaics, config


def _model_takes(model: Any, dataset: Any, grid: int, device: Any) -> str | None:
    """``None`` when the model takes an input of a mosaic's shape (zeros), else why not; asked
    before any mosaic is built (a model that cannot take them needs no confident images)."""
    from xaiscore._engine.batching import call_model
    from xaiscore.harness.data.errors import DatasetError

    try:
        image = dataset[0].image
    except DatasetError:  # building the mosaics reports the records that fail to load
        return None
    if image.ndim != 3:  # ... and images that are not 2-D
        return None
    x = torch.zeros(1, image.shape[0], grid * image.shape[1], grid * image.shape[2],
                    dtype=image.dtype, device=device)
    try:
        with torch.inference_mode():
            call_model(model, x)
    except Exception as error:  # reported as the skip reason (or re-raised, see score_mosaics)
        return (f"needs the model on {tuple(x.shape[2:])} mosaics ({grid} x {grid} images), "
                f"which it cannot take: {type(error).__name__}: {error}")
    return None


def _sub_store(runner: Any, folder: Path, data: MosaicDataset, *, resume: bool,
               held: contextlib.ExitStack) -> Any:
    """The sub-run's folder, locked; cleared first when it holds other mosaics (another
    ``[mosaics]`` section, seed or model): its shards would not match them."""
    import json

    from xaiscore.harness.store import atomic_write_bytes, open_run

    layout = json.dumps({"grid": data.grid, "target": data.mosaics.target.tolist(),
                         "tiles": data.tile_source_ids}).encode()
    path = folder / "mosaics.json"
    same = path.is_file() and path.read_bytes() == layout  # (a new folder: nothing to clear)
    store = open_run(folder, data, runner.model, context=runner.context, resume=resume and same,
                     batch_size=runner.batch_size, seed=runner.seed, target="label", held=held)
    if runner.context.is_main and not same:
        store.record(path)
        atomic_write_bytes(path, layout)
    runner.context.barrier()
    return store


def score_mosaics(runner: Any, plan: Sequence[Any], config: MosaicsConfig | None, *,
                  out: Any, resume: bool, held: contextlib.ExitStack) -> dict[str, MosaicPart]:
    """Score each metric of ``plan`` on its mosaics (every process; the parts on rank 0, ``{}``
    elsewhere). ``runner`` is the dataset's runner: its settings (and class) run the sub-runs;
    its counters (``n_loaded``, ``n_computed``, ``seconds``) grow by theirs."""
    import time

    from xaiscore.harness.assemble import assemble
    from xaiscore.harness.store import slug

    parts: dict[str, MosaicPart] = {}
    if config is None:
        return parts
    for planned in plan:
        start = time.perf_counter()
        name = planned.spec.name
        reason = _model_takes(runner.model, runner.dataset, mosaic_layout(name, config)[0],
                              runner.device)
        if reason is not None:
            if runner.on_error != "record":
                raise OptionError(f"Cannot score {name!r}: it {reason}.")
            parts[name] = MosaicPart(planned, None, config,
                                     skipped={m.name: reason for m in runner.methods})
            continue
        try:
            data = build_mosaic_dataset(runner.dataset, runner.model, config, metric=name,
                                        seed=runner.seed, max_batch_size=runner.max_batch_size,
                                        device=runner.device)
        except OptionError as error:  # too few classes or confident images
            if runner.on_error != "record":
                raise
            parts[name] = MosaicPart(planned, None, config,
                                     skipped={m.name: f"needs mosaics: {error}"
                                              for m in runner.methods})
            continue
        part = MosaicPart(planned, data, config)
        parts[name] = part
        store = None if out is None else _sub_store(runner, Path(out) / MOSAIC_DIR / slug(name),
                                                    data, resume=resume, held=held)
        sub = type(runner)(
            data, runner.model, runner.methods, [planned], store=store, context=runner.context,
            seed=runner.seed, batch_size=runner.batch_size, max_batch_size=runner.max_batch_size,
            target="label", repeats=runner.repeats, n_examples=1, on_error=runner.on_error,
            save_attributions=runner.save_attributions, progress=runner.progress)
        results = sub.run()
        runner.n_loaded += sub.n_loaded
        runner.n_computed += sub.n_computed
        runner.seconds += time.perf_counter() - start
        gathered = runner.context.gather(results)
        if runner.context.is_main:
            merged: dict[int, Any] = {}
            for piece in gathered:
                merged.update(piece)
            part.ds = assemble(sub, merged, {})
            part.skipped = dict(sub.skipped.get(name, {}))
    return parts if runner.context.is_main else {}


def _metric_attrs(part: MosaicPart, methods: Sequence[str]) -> dict[str, Any]:
    from xaiscore.harness.results import _metric_attrs as base_attrs
    from xaiscore.harness.results import to_json

    spec = part.planned.spec
    if part.ds is not None and spec.name in part.ds.data_vars:
        attrs = dict(part.ds[spec.name].attrs)
    else:
        attrs = base_attrs({"family": spec.family, "higher_is_better": spec.higher_is_better,
                            "citation": spec.citation, "description": spec.description,
                            "settings": part.planned.settings}, part.skipped)
    grid, target_tiles = mosaic_layout(spec.name, part.config)
    usable = {} if part.data is None else {
        c: int(k) for c, k in zip(part.data.class_names, part.data.pool.tolist())}
    return {**attrs, "scope": "mosaic", "chance_level": target_tiles / grid ** 2,
            "mosaic_grid": grid, "mosaic_target_tiles": target_tiles,
            "mosaic_min_confidence": float(part.config.min_confidence),
            "mosaic_images": int(part.config.max_images), "mosaic_usable": to_json(usable)}


def _scores(part: MosaicPart, m: int, count: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``(M, count[, R])`` scores (NaN where not scored) and the maps of mosaic 0 (or None)."""
    name = part.planned.spec.name
    if part.ds is None or name not in part.ds.data_vars:
        return np.full((m, count), np.nan), None
    scores = part.ds[name].transpose("explainer", "sample", ...).values.reshape(m, count, -1)
    example = (part.ds["example_attribution"].values[:, 0]
               if "example_attribution" in part.ds.data_vars else None)
    return (scores[..., 0] if scores.shape[-1] == 1 else scores), example


def _descriptors(part: MosaicPart, m: int, count: int, cells: int) -> dict[str, np.ndarray]:
    """Each mosaic's target, tile classes and tile samples, per method (-1: no mosaics)."""
    if part.data is None:
        return {"target": np.full((m, count), -1, dtype=np.int64),
                "tile_class": np.full((m, count, cells), -1, dtype=np.int64),
                "tile_sample": np.full((m, count, cells), -1, dtype=np.int64)}
    mosaics = part.data.mosaics
    per_mosaic = {"target": mosaics.target, "tile_class": mosaics.tile_classes,
                  "tile_sample": part.data.tile_samples}
    return {key: np.broadcast_to(values.numpy().astype(np.int64), (m, *values.shape)).copy()
            for key, values in per_mosaic.items()}


def add_mosaic_results(ds: Any, parts: Mapping[str, MosaicPart]) -> Any:
    """``ds`` with the mosaic metrics' variables (schema in the module docstring)."""
    import xarray as xr

    from xaiscore.harness.results import to_json

    if not parts:
        return ds
    methods = [str(m) for m in ds["explainer"].values]
    data_vars: dict[str, Any] = {}
    coords: dict[str, Any] = {}
    settings = dict(_json_attr(ds, "metric_settings"))
    for name, part in parts.items():
        m, (grid, _) = len(methods), mosaic_layout(name, part.config)
        count, cells = part.config.num_mosaics, grid ** 2
        dim, tile = f"{name}_mosaic", f"{name}_tile"
        scores, example = _scores(part, m, count)
        score_dims = ("explainer", dim) + (("run",) if scores.ndim == 3 else ())
        data_vars[name] = xr.Variable(score_dims, scores, attrs=_metric_attrs(part, methods))
        for key, array in _descriptors(part, m, count, cells).items():
            data_vars[f"{name}_{key}"] = xr.Variable(("explainer", dim, tile)[: array.ndim], array)
        if part.data is not None:  # without mosaics (NaN when models are combined)
            x = part.data.mosaics.x
            image = np.broadcast_to(x[0].float().numpy(), (m, *x.shape[1:])).copy()
            data_vars[f"{name}_example_image"] = xr.Variable(
                ("explainer", "channel", f"{name}_y", f"{name}_x"), image,
                attrs={"long_name": f"mosaic 0 of {name} (the same for every method of a model)"})
            data_vars[f"{name}_example_attribution"] = xr.Variable(
                ("explainer", f"{name}_y", f"{name}_x"),
                np.full((m, *x.shape[2:]), np.nan, dtype=np.float32) if example is None
                else example.astype(np.float32),
                attrs={"long_name": f"each method's map of mosaic 0 of {name} (channels summed)"})
        coords[dim] = np.arange(count)
        coords[tile] = np.arange(cells)
        settings[name] = dict(part.planned.settings)
    ds = ds.assign_coords(coords).assign(data_vars)
    ds.attrs["metric_settings"] = to_json(settings)
    return ds


def _json_attr(ds: Any, key: str) -> dict[str, Any]:
    import json

    return json.loads(ds.attrs.get(key, "{}") or "{}")
