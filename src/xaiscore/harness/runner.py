"""The runner: explain every sample with every method, score every metric, assemble one Dataset.

:func:`evaluate` is the Python API (a dataset, a model, methods, metrics);
:func:`run_config` does the same from a :class:`~xaiscore.harness.config.RunConfig`
(building the dataset and the model, training the demo model when asked) and
writes the report.

The unit of work is a *batch* of ``batch_size`` consecutive samples. For each
batch the runner predicts, explains with each method (explanations are
computed in chunks of ``max_batch_size``), and scores each metric; each
(method, metric, batch) result is written atomically to the run folder
(:mod:`xaiscore.harness.store`). A restarted run loads the finished results
instead of recomputing them. Every random draw is seeded from ``(seed,
method/metric, batch)``, never from the process or the order of work, so the
results do not depend on resuming or on how many processes share the batches
(:mod:`xaiscore.harness.distributed`). Metrics share their random draws across
methods (paired comparisons).

Example:
    >>> import torch
    >>> from xaiscore.harness.data import make_synthetic_dataset
    >>> from xaiscore.harness.models import SmallCNN
    >>> data = make_synthetic_dataset(4, size=(16, 16))
    >>> ds = evaluate(data, SmallCNN().eval(), methods=["Saliency", "random"],
    ...               metrics=["pointing_game", "sparseness"], batch_size=2)
    >>> ds["pointing_game"].dims, ds["explainer"].values.tolist()
    (('explainer', 'sample'), ['Saliency', 'random'])
    >>> from xaiscore.harness.results import metric_variables
    >>> metric_variables(ds)
    ['pointing_game', 'sparseness']
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from xaiscore._checks import OptionError
from xaiscore._engine.batching import call_model, chunked_map
from xaiscore._engine.random import derive_seed
from xaiscore.harness.assemble import assemble
from xaiscore.harness.config import ConfigError, MetricsConfig, RunConfig
from xaiscore.harness.distributed import DistributedContext
from xaiscore.harness.gaps import nan_causes
from xaiscore.harness.inputs import as_record_dataset, check_run_arguments
from xaiscore.harness.method_list import (
    MethodInput,
    RunMethod,
    normalise_methods,
)
from xaiscore.harness.methods import MethodExplainer
from xaiscore.harness.models import build_model
from xaiscore.harness.mosaic_data import mosaic_hint
from xaiscore.harness.mosaic_runs import add_mosaic_results, score_mosaics, split_mosaic_plan
from xaiscore.harness.multimodel import run_models
from xaiscore.harness.scoring import (
    PlannedMetric,
    call_metric,
    missing_inputs,
    plan_metrics,
    select_metrics,
    unpack_result,
)
from xaiscore.harness.rundir import hold_run_folder
from xaiscore.harness.set_scoring import batch_state, is_set_level
from xaiscore.harness.skips import reader_skips, skipped_row
from xaiscore.harness.store import RunStore, open_run

__all__ = ["evaluate", "run_config", "build_model", "MethodInput"]

@dataclass
class _Shard:
    """One (method, metric, batch) result as stored."""

    settings: str
    score: Tensor | None = None  # (B, R)
    curve: Tensor | None = None  # (B, R, T)
    x: Tensor | None = None  # (T,)
    error: str | None = None
    nan_causes: dict[str, Any] | None = None  # why scores are NaN (harness.gaps.nan_causes)
    set_state: dict[str, Any] | None = None  # a set-level metric's part of this batch (set_scoring)


@dataclass
class _BatchResult:
    samples: dict[str, Any]
    shards: dict[tuple[str, str], _Shard] = field(default_factory=dict)
    examples: dict[str, Any] | None = None


class _Runner:
    def __init__(self, dataset: Any, model: nn.Module, methods: list[RunMethod],
                 plan: list[PlannedMetric], *,
                 store: RunStore | None, context: DistributedContext, seed: int, batch_size: int,
                 max_batch_size: int, target: str, repeats: int, n_examples: int, on_error: str,
                 save_attributions: bool, progress: bool) -> None:
        self.dataset = dataset
        self.model = model
        self.methods = methods
        self.plan = plan
        self.store = store
        self.context = context
        self.device = context.device
        self.seed = seed
        self.batch_size = batch_size
        self.max_batch_size = max_batch_size
        self.target = target
        self.repeats = repeats
        self.n_examples = n_examples
        self.on_error = on_error
        self.save_attributions = save_attributions
        self.progress = progress
        self.n_batches = math.ceil(len(dataset) / batch_size)
        per_batch = max(1, math.ceil(4 * n_examples / batch_size)) if n_examples else 0
        self.example_batches = set(range(min(per_batch, self.n_batches)))
        self.skipped_samples: list[dict[str, Any]] = []
        self.n_loaded = 0  # (batch, method, metric) results found on disk
        self.n_computed = 0  # ... and computed by this process
        self.seconds = 0.0  # spent loading, explaining and scoring (not training, not the report)
        self.runnable: dict[str, list[PlannedMetric]] = {}
        self.skipped: dict[str, dict[str, str]] = {}
        for method in methods:
            self.runnable[method.name] = []
            for planned in plan:
                reason = planned.unavailable
                if reason is None:
                    missing = missing_inputs(planned.spec, available=method.available | getattr(
                        dataset, "inputs", frozenset()))  # inputs the dataset provides (tiles)
                    if missing:  # a method supplies the model and explanations, the data the rest
                        reason = (f"needs {missing}, which method {method.name!r} "
                                  f"({method.settings['method']}) cannot supply")
                        if not set(missing) & {"model", "explain_fn", "explainer_factory"}:
                            reason = (f"needs {missing}, which the dataset does not provide"
                                      + mosaic_hint(missing))
                if reason is None:
                    self.runnable[method.name].append(planned)
                else:
                    self.skipped.setdefault(planned.spec.name, {})[method.name] = reason

    # --- settings -------------------------------------------------------------------------
    def _settings(self, method: RunMethod, planned: PlannedMetric) -> str:
        from xaiscore.harness.results import to_json

        # older per-batch shards do not match
        scope = {"scope": "set"} if is_set_level(planned) else {}
        return to_json({"method": method.settings, "metric": planned.settings, "seed": self.seed,
                        "repeats": self._repeats(planned), **scope})

    def _repeats(self, planned: PlannedMetric) -> int:
        return self.repeats if planned.spec.stochastic else 1

    # --- one batch ------------------------------------------------------------------------
    def _load_done(self, batch: int) -> tuple[_BatchResult | None,
                                              list[tuple[RunMethod, PlannedMetric]]]:
        """What is finished on disk, and the (method, metric) pairs still to do."""
        todo = [(m, p) for m in self.methods for p in self.runnable[m.name]]
        if self.store is None:
            return None, todo
        samples = self.store.load(self.store.samples_path(batch))
        if samples is None:
            return None, todo
        result = _BatchResult(samples=samples,
                              examples=self.store.load(self.store.examples_path(batch)))
        remaining = []
        for method, planned in todo:
            stored = self.store.load(self.store.shard_path(batch, method.name, planned.spec.name))
            if stored is not None and stored["settings"] == self._settings(method, planned) \
                    and stored["error"] is None:
                result.shards[(method.name, planned.spec.name)] = _Shard(**stored)
            else:
                remaining.append((method, planned))
        return result, remaining

    def _load_records(self, batch: int) -> tuple[list[Any], list[int]]:
        from xaiscore.harness.data.errors import DatasetError

        records, indices = [], []
        start = batch * self.batch_size
        for index in range(start, min(start + self.batch_size, len(self.dataset))):
            try:
                records.append(self.dataset[index])
            except DatasetError as error:
                if getattr(self.dataset, "on_error", "raise") != "skip":
                    raise
                skip = skipped_row(error.file, error.row, error.reason, index)
                self.skipped_samples.append(skip)
                continue
            indices.append(index)
        return records, indices

    def n_results(self) -> int:
        """(method, metric) results per batch: what the progress bar counts."""
        return sum(len(self.runnable[m.name]) for m in self.methods)

    def run_batch(self, batch: int, *,
                  tick: Callable[..., Any] | None = None) -> _BatchResult | None:
        """Load or compute one batch; ``tick(k, label)`` reports ``k`` more results."""
        tick = tick or (lambda k, label=None: None)
        done, todo = self._load_done(batch)
        self.n_loaded += self.n_results() - len(todo)
        needs_examples = batch in self.example_batches and (done is None or done.examples is None)
        if done is not None and not todo and not needs_examples:
            tick(self.n_results(), "loaded")
            return done
        tick(self.n_results() - len(todo), "loaded")
        records, indices = self._load_records(batch)
        if not records:
            tick(len(todo))
            return None
        data, target, samples = self._predict(records, indices)
        result = self._batch_result(batch, done, samples)
        example_maps: dict[str, Tensor] = {}
        for method in self.methods:
            pending = [p for m, p in todo if m is method]
            if pending or needs_examples:
                a = self._explain(method, batch, data, target)
                if needs_examples:
                    example_maps[method.name] = a.sum(dim=1).to("cpu", torch.float32)
                for planned in pending:
                    result.shards[(method.name, planned.spec.name)] = self._score(
                        method, planned, batch, data, target, a, result.samples)
                    self.n_computed += 1
                    tick(1, f"{method.name} / {planned.spec.name}")
        if needs_examples:
            result.examples = self._examples(data, indices, example_maps)
            if self.store is not None:
                self.store.save(self.store.examples_path(batch), result.examples)
        return result

    def _predict(self, records: list[Any], indices: list[int]) -> tuple[Any, Tensor,
                                                                        dict[str, Any]]:
        """The collated batch on the device, the target to explain, and the samples' record."""
        from xaiscore.harness.data.records import collate

        data = collate(records).to(self.device)
        logits = chunked_map(len(data), lambda s, e: call_model(self.model, data.x[s:e]),
                             max_batch_size=self.max_batch_size)
        prediction = logits.argmax(dim=1)
        target = data.labels if self.target == "label" else prediction
        samples = {
            "index": indices,
            "source_id": list(data.source_ids),
            "label": data.labels.tolist(),
            "target": target.tolist(),
            "prediction": prediction.tolist(),
            "finding": list(data.findings),
            "probability": logits.detach().to("cpu", torch.float64).softmax(dim=1),  # model sanity
        }
        return data, target, samples

    def _batch_result(self, batch: int, done: _BatchResult | None,
                      samples: dict[str, Any]) -> _BatchResult:
        """The stored result to complete (checked against ``samples``), or a new one (stored)."""
        if done is not None:
            if done.samples["source_id"] != samples["source_id"]:
                raise ConfigError(
                    f"The samples of batch {batch} changed since the shards were written; start "
                    "over with resume=False (`--overwrite`) or another output folder.")
            return done
        if self.store is not None:
            self.store.save(self.store.samples_path(batch), samples)
        return _BatchResult(samples=samples)

    def _explain(self, method: RunMethod, batch: int, data: Any, target: Tensor) -> Tensor:
        from xaiscore._engine.explain_fn import check_explanation

        path = self.store.attributions_path(batch, method.name) if self.store is not None else None
        if path is not None and self.save_attributions:
            cached = self.store.load(path)  # type: ignore[union-attr]
            if cached is not None and cached["settings"] == method.settings:
                return cached["a"].to(self.device)
        if method.precomputed is not None:
            a = method.precomputed.lookup(data.source_ids, like=data.x)
        else:
            explain = method.explain_fn or MethodExplainer(
                method.config, self.model, seed=derive_seed(self.seed, "explain", method.name, batch))  # type: ignore[arg-type]  # noqa: E501
            a = chunked_map(len(data), lambda s, e: explain(data.x[s:e], target[s:e]),
                            max_batch_size=self.max_batch_size)
        a = check_explanation(a, data.x, name=f"method {method.name!r}").detach()
        if path is not None and self.save_attributions:
            self.store.save(path, {"settings": method.settings, "a": a.cpu(),  # type: ignore[union-attr]
                                   "source_id": list(data.source_ids)})
        return a

    def _score(self, method: RunMethod, planned: PlannedMetric, batch: int, data: Any,
               target: Tensor, a: Tensor, samples: Mapping[str, Any]) -> _Shard:
        name = planned.spec.name
        settings = self._settings(method, planned)
        inputs: dict[str, Any] = {"a": a, "mask": data.mask, "x": data.x, "target": target,
                                  "forward_fn": self.model, "model": self.model, "segments": None,
                                  # what the dataset adds (mosaics: `tiles`, harness.mosaic_data)
                                  **getattr(self.dataset, "batch_inputs", lambda data: {})(data)}
        if planned.spec.needs & {"explain_fn", "explainer_factory"}:
            # One object serves both protocols: explainer(x, target) and explainer(model) -> explain
            # function.
            explainer = method.explain_fn or MethodExplainer(
                method.config, self.model,  # type: ignore[arg-type]
                seed=derive_seed(self.seed, "re-explain", method.name, name, batch))
            inputs["explain_fn"] = explainer
            if isinstance(explainer, MethodExplainer):
                inputs["explainer_factory"] = explainer
        try:
            # the batch's part of the set; scored over the set in assemble
            if is_set_level(planned):
                state = batch_state(planned, inputs, findings=samples["finding"],
                                    index=samples["index"],
                                    prediction=torch.as_tensor(samples["prediction"],
                                                               dtype=torch.long),
                                    num_classes=getattr(samples.get("probability"), "shape",
                                                        (0, None))[1])
                shard = _Shard(settings, set_state=state)
            else:
                shard = self._score_samples(planned, batch, inputs, settings, len(data))
        except Exception as error:  # recorded (on_error="record") or re-raised with context
            if self.on_error != "record":
                if hasattr(error, "add_note"):
                    error.add_note(
                        f"(while scoring {name!r} for method {method.name!r} on batch {batch})")
                raise
            shard = _Shard(settings, error=f"{type(error).__name__}: {error}")
        if self.store is not None:
            self.store.save(self.store.shard_path(batch, method.name, name), asdict(shard))
        return shard

    def _score_samples(self, planned: PlannedMetric, batch: int, inputs: dict[str, Any],
                       settings: str,
                       n: int) -> _Shard:
        scores, curves, x = [], [], None
        for run in range(self._repeats(planned)):
            seed = derive_seed(self.seed, "metric", planned.spec.name, batch, run)
            output = call_metric(planned, inputs, max_batch_size=self.max_batch_size, seed=seed,
                                 device=self.device)
            score, curve, x = unpack_result(output, name=planned.spec.name, batch_size=n)
            scores.append(score.to("cpu", torch.float64))
            if curve is not None:
                curves.append(curve.to("cpu", torch.float64))
        score = torch.stack(scores, dim=1)
        curve = torch.stack(curves, dim=1) if curves else None
        x = None if x is None else x.to("cpu", torch.float64)
        return _Shard(settings, score=score, curve=curve, x=x,
                      nan_causes=nan_causes(planned.spec, inputs, score, curve, x))

    def _examples(self, data: Any, indices: list[int],
                  maps: Mapping[str, Tensor]) -> dict[str, Any]:
        """Up to ``n_examples`` samples of the batch, positives first (volumes: slices; empty for
        1-D)."""
        if data.x.ndim == 5:  # three orthogonal slices through the lesion centre
            from xaiscore.harness.report_slices import volume_examples

            return volume_examples(data.x, data.mask, data.boxes, indices, maps, self.n_examples)
        if data.x.ndim != 4:
            return {}
        has_mask = data.mask.flatten(1).any(dim=1).cpu()
        order = sorted(range(len(data)),
                       key=lambda i: (not bool(has_mask[i]), i))[: self.n_examples]
        width = max([data.boxes[i].shape[0] for i in order] + [1])
        boxes = torch.full((len(order), width, 4), float("nan"))
        for row, i in enumerate(order):
            boxes[row, : data.boxes[i].shape[0]] = data.boxes[i].to("cpu", torch.float32)
        return {
            "index": [indices[i] for i in order],
            "positive": [bool(has_mask[i]) for i in order],
            "image": data.x[order].to("cpu", torch.float32),
            "mask": data.mask[order, 0].cpu(),
            "boxes": boxes,
            "attributions": {name: m[order] for name, m in maps.items()},
        }

    # --- the whole run --------------------------------------------------------------------
    def run(self) -> dict[int, _BatchResult]:
        """Run this process's batches; a bar counts (batch, method, metric) results when asked."""
        import time

        start = time.perf_counter()
        mine = [b for b in range(self.n_batches) if self.context.owns(b)]
        bar = None
        if self.progress and self.context.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(mine) * self.n_results(), desc="explain and score", unit="result",
                       dynamic_ncols=True)

            def tick(k: int, label: str | None = None) -> None:
                if label is not None:
                    bar.set_postfix_str(label, refresh=False)
                bar.update(k)
        results = {}
        for batch in mine:
            result = self.run_batch(batch, tick=tick if bar is not None else None)
            if result is not None:
                results[batch] = result
        if bar is not None:
            bar.close()
        self.seconds = time.perf_counter() - start
        return results


def evaluate(
    dataset: Any,
    model: nn.Module,
    *,
    methods: Sequence[MethodInput] = ("Saliency", "random"),
    metrics: MetricsConfig | Sequence[str] | None = None,
    metric_options: Mapping[str, Mapping[str, Any]] | None = None,
    out: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    batch_size: int = 16,
    max_batch_size: int = 64,
    target: str = "label",
    repeats: int = 1,
    n_examples: int = 6,
    on_error: str = "raise",
    save_attributions: bool = False,
    resume: bool = True,
    progress: bool = False,
    attrs: Mapping[str, Any] | None = None,
    timing: dict[str, Any] | None = None,
    mosaics: Any = None,
) -> Any:
    """Explain ``dataset`` with every method and score every selected metric.

    Args:
        dataset: A :class:`~xaiscore.harness.data.records.RecordDataset`
            (``len``, indexing to :class:`SampleRecord`, ``class_names``), or plain data:
            a map-style dataset, DataLoader or iterable of ``(x, y)``, ``(x, y, mask)``
            or dicts with those keys (:mod:`xaiscore.harness.inputs`).
        model: The classifier (logits ``(n, K)``); used in eval mode, on ``device``.
        methods: Method entries (see :data:`MethodInput`): explainer names from
            :func:`xaiscore.explainers.list_explainers`, config mappings
            (``{"method": "LayerGradCam", "layer": "features.6", "name": "gradcam"}``,
            ``{"method": "precomputed", "path": "maps.pt"}``) or ``(name, explain_fn)``.
        metrics: Names, a :class:`MetricsConfig`, or ``None`` for every registered
            metric. Metrics whose inputs a method cannot supply are skipped for
            it, with the reason in the variable's ``skipped`` attr.
        metric_options: metric -> keyword options over the registry defaults.
        out: Run folder for shards, ``results.nc`` and resume (``None``: in memory only).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, or ``None``/``"auto"``.
        seed: Seed of every random draw (explainers, metrics).
        batch_size: Samples per unit of work (and per shard). Set-level metrics
            (``scope="set"``) are scored over the whole dataset, whatever the batch size.
        max_batch_size: Most items per model/explainer call inside a metric.
        target: Explain and score the ``"label"`` or the ``"predicted"`` class.
        repeats: Runs of each stochastic metric (a ``run`` dim when > 1).
        n_examples: Example images kept for the report (2-D images only).
        on_error: ``"raise"`` a metric's exception, or ``"record"`` it (NaN scores,
            the message in the ``skipped`` attr; retried on resume).
        save_attributions: Also store each method's maps in ``out/attributions``
            (reused on resume).
        resume: Load finished results from ``out`` (else start over there).
        progress: Show a progress bar (tqdm) on rank 0.
        attrs: Extra Dataset attrs.
        timing: A dict to fill with this call's ``seconds`` (loading, explaining and
            scoring; not training, not the report), ``results_computed`` and
            ``results_loaded`` ((batch, method, metric) results; this process's).
        mosaics: Score the metrics that need ``tiles`` on mosaics built from ``dataset``
            (a :class:`~xaiscore.harness.mosaic_data.MosaicsConfig` or its mapping;
            :mod:`xaiscore.harness.mosaic_runs`), or ``None`` to skip them.

    Returns:
        The results :class:`xarray.Dataset` (schema in :mod:`xaiscore.harness.results`),
        also written to ``out/results.nc``; ``None`` on ranks other than 0 of
        a distributed run.

    Raises:
        ConfigError: an unknown option for a metric, or ``out`` holds another run.
        OptionError, DTypeError: bad arguments.
    """
    from xaiscore.harness.models import eval_mode
    from xaiscore.harness.results import save_dataset

    dataset = as_record_dataset(dataset)
    check_run_arguments(model, dataset, batch_size=batch_size, max_batch_size=max_batch_size,
                        repeats=repeats,
                         n_examples=n_examples, target=target, on_error=on_error)
    method_list = normalise_methods(methods)
    metrics_config = metrics if isinstance(metrics, MetricsConfig) else (
        MetricsConfig() if metrics is None else MetricsConfig(include=tuple(metrics)))
    options = {**metrics_config.options, **(metric_options or {})}
    plan, mosaic_plan, mosaics = split_mosaic_plan(plan_metrics(select_metrics(metrics_config),
                                                                options), mosaics)

    context = DistributedContext.from_environment(device=device)
    held = contextlib.ExitStack()
    try:
        model = eval_mode(model.to(context.device))
        store = None if out is None else open_run(
            out, dataset, model, context=context, resume=resume, batch_size=batch_size, seed=seed,
            target=target, held=held)
        runner = _Runner(
            dataset, model, method_list, plan, store=store, context=context, seed=seed,
            batch_size=batch_size,
            max_batch_size=max_batch_size, target=target, repeats=repeats, n_examples=n_examples,
            on_error=on_error, save_attributions=save_attributions, progress=progress,
        )
        results = runner.run()
        mosaic_parts = score_mosaics(runner, mosaic_plan, mosaics, out=out, resume=resume,
                                     held=held)
        if timing is not None:
            timing.update(seconds=runner.seconds, results_computed=runner.n_computed,
                          results_loaded=runner.n_loaded)
        gathered = context.gather((results, runner.skipped_samples))
        if not context.is_main:
            context.barrier()
            return None
        merged = _merge(runner, gathered)
        ds = add_mosaic_results(assemble(runner, merged, {"device": str(context.device),
                                                          **(attrs or {})}), mosaic_parts)
        if store is not None:
            store.record(store.results_path)
            save_dataset(ds, store.results_path)
        context.barrier()
        return ds
    finally:
        held.close()
        context.close()


def _merge(runner: _Runner, gathered: Any) -> dict[int, _BatchResult]:
    """Every process's batch results in one mapping; the skipped rows (reader's and every
    process's load failures) go to ``runner.skipped_samples``."""
    merged: dict[int, _BatchResult] = {}
    runner.skipped_samples = reader_skips(runner.dataset)
    for part, skipped_samples in gathered:
        merged.update(part)
        runner.skipped_samples.extend(skipped_samples)
    if not merged:
        raise OptionError(
            "No sample could be loaded: every record failed (see the dataset's `skipped`).")
    return merged


# --- configs -------------------------------------------------------------------------------


def run_config(config: RunConfig, *, progress: bool = False, resume: bool = True,
               timing: dict[str, Any] | None = None) -> Any:
    """Run a config end to end: dataset, model, :func:`evaluate`, ``results.nc`` and the report.

    Returns:
        The results Dataset (``None`` on ranks other than 0).
    """
    from xaiscore.harness.data.registry import open_dataset
    from xaiscore.harness.results import to_json

    if config.models:  # several models: one sub-run each (xaiscore.harness.multimodel)
        return run_models(config, run_config, progress=progress, resume=resume, timing=timing)
    if config.out is None:
        raise ConfigError(f"{config.source}: expected `out`, the run folder.")
    from xaiscore.harness.config import check_config_files

    check_config_files(config)
    context = DistributedContext.from_environment(device=config.device)
    store = RunStore(config.out, rank=context.rank)
    held = contextlib.ExitStack()
    try:
        hold_run_folder(store, context, held)
        try:
            dataset = open_dataset(config.dataset.kind, **dict(config.dataset.options))
        except OptionError as error:
            raise ConfigError(f"{config.source}: in `dataset`: {error}") from error
        model = build_model(config, dataset, store=store, context=context, progress=progress)
        config_json = to_json({k: v for k, v in asdict(config).items() if k != "source"})
        ds = evaluate(
            dataset, model, methods=list(config.methods), metrics=config.metrics, out=config.out,
            device=context.device, seed=config.seed, batch_size=config.batch_size,
            max_batch_size=config.max_batch_size, target=config.target, repeats=config.repeats,
            n_examples=config.n_examples, on_error=config.on_error,
            save_attributions=config.save_attributions,
            resume=resume, progress=progress,
            attrs={"config": config_json, "config_source": config.source},
            timing=timing, mosaics=config.mosaics,
        )
        if ds is not None and config.report:
            from xaiscore.harness.report import write_report

            with store.recording_new_files("report.html", "summary.csv", "figures"):
                write_report(ds, Path(config.out), progress=progress)
        return ds
    finally:
        held.close()
        context.close()
