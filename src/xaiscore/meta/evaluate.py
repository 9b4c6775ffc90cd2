"""``meta_evaluate``: MetaQuantus' four perturbation tests for any registered metrics, on our
kernels.

See :mod:`xaiscore.meta` for the overview and ``docs/meta.md`` for the definitions.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from xaiscore._checks import (
    DeviceError,
    DTypeError,
    OptionError,
    ShapeError,
    check_attributions,
    check_mask,
    check_positive_int,
    check_target,
    check_tensor,
)
from xaiscore._engine.batching import check_max_batch_size
from xaiscore._engine.random import derive_seed, draw_seed, resolve_generator
from xaiscore._version import __version__
from xaiscore.explainers import (
    ConstantExplainer,
    QuantusExplainer,
    RandomExplainer,
    random_explainer,
)
from xaiscore.meta._dataset import build_dataset, import_xarray, nan_stats
from xaiscore.meta._scoring import (
    ExplainerFactory,
    Group,
    PlannedMetric,
    explain,
    plan_metrics,
    predict,
    score_groups,
)
from xaiscore.meta.agreement import metric_agreement, split_half_reliability
from xaiscore.meta.consistency import consistency, meta_consistency, random_mc_level
from xaiscore.meta.perturbation import (
    ModelPerturber,
    PerturbationTest,
    perturb_inputs,
    perturbation_seeds,
    resolve_tests,
)
from xaiscore.specs import MetricSpec

__all__ = ["meta_evaluate", "SPACES"]

#: The perturbation spaces an MC score is reported for.
SPACES: tuple[str, ...] = ("input", "model")


def _check_explainers(explainers: Any) -> tuple[list[str], list[ExplainerFactory]]:
    if not isinstance(explainers, Mapping):
        raise DTypeError(
            "Expected `explainers` to be a mapping method name -> explainer factory "
            f"`factory(model) -> explain_fn`, but got {type(explainers).__name__}."
        )
    if len(explainers) < 2:
        raise OptionError(
            "Expected at least 2 explanation methods (inter-consistency compares their rankings), "
            f"but got {len(explainers)}."
        )
    names, factories = [], []
    for name, factory in explainers.items():
        if not isinstance(name, str) or not name:
            raise DTypeError(f"Expected method names to be non-empty strings, but got {name!r}.")
        if isinstance(factory, (RandomExplainer, ConstantExplainer, QuantusExplainer)) or (
            type(factory).__name__ == "CaptumExplainer"
        ):
            raise DTypeError(
                f"Expected `explainers[{name!r}]` to be a factory `factory(model) -> explain_fn` "
                f"(perturbed models need their own explainer), but got a {type(factory).__name__} "
                "bound to one model. Pass e.g. `lambda model: captum_explainer(model, "
                "'Saliency')`, or `lambda model: explainer` for one that ignores the model."
            )
        if not callable(factory):
            raise DTypeError(
                f"Expected `explainers[{name!r}]` to be callable, but got "
                f"{type(factory).__name__}.")
        names.append(name)
        factories.append(factory)
    return names, factories


def _check_model_inputs(model: Any, x: Any, *, validate: bool) -> Tensor:
    if not isinstance(model, nn.Module):
        raise DTypeError(
            f"Expected `model` to be a torch.nn.Module, but got {type(model).__name__}.")
    x = check_attributions(x, name="x", validate=validate)
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.device != x.device:
        raise DeviceError(
            f"Expected `x` on the device of the model's parameters ({parameter.device}), but got "
            f"{x.device}. Move it with `x.to(device)`."
        )
    return x


def _check_segments(segments: Any, x: Tensor) -> Tensor | None:
    if segments is None:
        return None
    segments = check_tensor(segments, "segments")
    if segments.ndim < 1 or segments.shape[0] != x.shape[0]:
        raise ShapeError(
            f"Expected `segments` with a leading batch axis of {x.shape[0]}, but got "
            f"{tuple(segments.shape)}."
        )
    if segments.device != x.device:
        raise DeviceError(
            f"Expected `segments` on the device of `x` ({x.device}), but got {segments.device}.")
    return segments


def _repeat(t: Tensor | None, times: int) -> Tensor | None:
    return None if t is None else t.repeat((times,) + (1,) * (t.ndim - 1))


def meta_evaluate(
    model: nn.Module,
    x: Tensor,
    explainers: Mapping[str, ExplainerFactory],
    metrics: Sequence[str | MetricSpec],
    *,
    target: Tensor | None = None,
    mask: Tensor | None = None,
    segments: Tensor | None = None,
    metric_options: Mapping[str, Mapping[str, Any]] | None = None,
    tests: Sequence[str] | None = None,
    magnitudes: Mapping[str, float] | None = None,
    iterations: int = 3,
    perturbations: int = 5,
    clip: bool = True,
    random_baseline: bool = True,
    n_splits: int = 100,
    alpha: float = 0.05,
    max_batch_size: int = 64,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    validate: bool = True,
    progress: bool = False,
) -> Any:
    r"""Meta-evaluate metrics (Hedström et al. 2023, MetaQuantus): are they resilient to noise and
    reactive to change?

    For each test (input/model x resilience/adversary, :mod:`xaiscore.meta.perturbation`),
    iteration and perturbation ``k = 1..K``, the evaluation problem is perturbed,
    every method re-explains its (perturbed) inputs with its (perturbed) model,
    and every metric scores them; samples are kept when their prediction is
    unchanged (resilience) or changed (adversary). The per-sample scores give the
    intra- and inter-consistency criteria and the MC score per space
    (:mod:`xaiscore.meta.consistency`):

    .. math::
        \mathrm{MC} = \tfrac14 (\mathrm{IAC}_{NR} + \mathrm{IAC}_{AR} + \mathrm{IEC}_{NR} + \mathrm{IEC}_{AR})
        \in [0, 1]

    Beyond MetaQuantus, on the unperturbed scores: the agreement between metrics
    (Kendall's tau of their method rankings, per sample and overall), the
    split-half reliability of each metric's ranking, and whether each metric
    separates the methods from random attribution maps
    (:mod:`xaiscore.meta.agreement`).

    Speed: all ``K`` perturbed inputs of an input test are explained and scored
    together (stacked along the batch axis); metrics that need no model score
    every perturbation and method of a test iteration in one kernel call;
    model-based metrics take one call per perturbed model with all methods
    stacked; re-explaining metrics one per perturbed model and method. Model and
    explainer calls are chunked by ``max_batch_size``.

    Args:
        model: The classifier (an ``nn.Module`` returning logits). Never
            modified: everything runs on deep copies. Call ``model.eval()``
            first (batch norm in training mode would mix stacked rows).
        x: Inputs ``(B, C, *S)``, on the model's device.
        explainers: Method name -> explainer factory ``factory(model) ->
            explain_fn(x, target)`` (at least 2 methods), e.g.
            ``{"saliency": lambda m: captum_explainer(m, "Saliency"), ...}``;
            the factory is called again for every perturbed model.
        metrics: Registered metric names or :class:`~xaiscore.specs.MetricSpec`
            objects (any family; a metric whose inputs are not available, e.g.
            localization without ``mask``, is skipped and recorded in the
            ``skipped`` attribute).
        target: ``(B,)`` classes to explain and score; default: the model's
            predictions on ``x`` (as MetaQuantus). The prediction filter always
            compares with the unperturbed prediction.
        mask: Ground truth ``(B, 1|C, *S)`` for localization metrics.
        segments: ``(B, ...)`` label maps for metrics that need them (IROF).
        metric_options: Metric name -> keyword options (over the spec's defaults).
        tests: Test names (default: all four, :data:`~xaiscore.meta.perturbation.TEST_NAMES`).
        magnitudes: Test name -> noise magnitude (default: the paper's,
            :data:`~xaiscore.meta.perturbation.DEFAULT_MAGNITUDES`).
        iterations: Repetitions of each test (the MC spread is over these). Default 3.
        perturbations: Perturbations ``K`` per iteration. Default 5.
        clip: Clip perturbed inputs to the batch's range ``[x.min(), x.max()]``.
        random_baseline: Also score :func:`~xaiscore.explainers.random_explainer`
            maps (unperturbed) and compare every method with them.
        n_splits: Random splits for the split-half reliability.
        alpha: Significance level of ``beats_random``.
        max_batch_size: Most items per model or explainer call.
        seed, generator: The one source of randomness (at most one of them; ``seed``
            defaults to 0; see :mod:`xaiscore._engine.random`): perturbation noise, metric
            generators, baseline maps, splits.
        validate: Check values (finite inputs and explanations) and pass
            ``validate`` to the kernels.
        progress: Show a tqdm bar (stderr) over the (test, iteration) pairs, the
            bulk of the work. Off by default.

    Returns:
        An ``xarray.Dataset`` (netCDF-safe), dims ``metric``, ``explainer``,
        ``test``, ``space``, ``iteration``, ``perturbation``, ``sample``,
        ``metric_other``, ``split``; variables ``score``, ``score_perturbed``,
        ``kept``, ``kept_fraction``, ``iac``, ``iec``, ``iac_per_method``,
        ``iac_mean``, ``iec_mean``, ``mc``, ``mc_mean``, ``mc_std``,
        ``mc_overall``, ``agreement``, ``agreement_per_sample``,
        ``agreement_per_sample_mean``, ``split_half``, ``split_half_mean`` and,
        with ``random_baseline``, ``baseline_score``, ``win_rate_vs_random``,
        ``p_vs_random``, ``beats_random``, ``separates_random``. See ``docs/meta.md``.

    Raises:
        DTypeError, ShapeError, DeviceError, OptionError: bad inputs or options
            (unknown test or metric, fewer than 2 methods, a bound explainer
            where a factory is needed, ...).
        UnknownMetricError: a metric name that is not registered.
        ModelOutputError: a model, explainer or metric returned the wrong shape.

    Shape:
        - x: ``(B, C, *S)``; target: ``(B,)``; mask: ``(B, 1|C, *S)``
        - output: a Dataset (see Returns)

    Example:
        >>> import torch
        >>> from xaiscore.explainers import captum_explainer
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
        >>> x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(0))
        >>> methods = {"gradient": lambda m: captum_explainer(m, "Gradient"),
        ...            "input_x_gradient": lambda m: captum_explainer(m, "InputXGradient")}
        >>> ds = meta_evaluate(model, x, methods, ["sparseness"], iterations=2, perturbations=2, n_splits=5)
        >>> ds["mc_mean"].dims, ds["score_perturbed"].shape
        (('metric', 'space'), (1, 4, 2, 2, 2, 8))
        >>> bool(0.0 <= float(ds["mc_mean"].sel(metric="sparseness", space="model")) <= 1.0)
        True
    """  # noqa: E501
    xr = import_xarray()
    seed_given = generator is None
    run, skipped, split_generator = _plan(
        model, x, explainers, metrics, target=target, mask=mask, segments=segments,
        metric_options=metric_options,
        tests=tests, magnitudes=magnitudes, iterations=iterations, perturbations=perturbations,
        clip=clip,
        random_baseline=random_baseline, n_splits=n_splits, alpha=alpha,
        max_batch_size=max_batch_size,
        seed=seed, generator=generator, validate=validate)
    q = torch.stack([run.score(p, [run.original], "original") for p in run.planned])  # (M, L, B)
    baseline = _random_baseline_scores(run) if random_baseline else None  # (M, B)
    q_hat, kept = _perturbation_tests(run, progress=progress)
    summaries = _summaries(run, q, q_hat, kept, n_splits=n_splits, split_generator=split_generator)
    ds = build_dataset(
        xr, planned=run.planned, method_names=run.method_names, suite=run.suite,
        iterations=run.iterations,
        perturbations=run.perturbations, q=q, q_hat=q_hat, kept=kept, baseline=baseline,
        alpha=float(alpha),
        prediction=run.prediction, target=run.target, **summaries)
    ds.attrs.update({
        "xaiscore_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "seed": int(0 if seed is None else seed) if seed_given else -1,
        "seed_from_generator": int(not seed_given),
        "iterations": run.iterations,
        "perturbations": run.perturbations,
        "n_methods": len(run.method_names),
        "tests": json.dumps({t.name: t.magnitude for t in run.suite}),
        "clip": int(clip),
        "alpha": float(alpha),
        "random_level_mc": random_mc_level(len(run.method_names)),
        "metric_settings": json.dumps({p.name: p.options for p in run.planned}, default=repr, sort_keys=True),  # noqa: E501
        "skipped": json.dumps(skipped, sort_keys=True),
        "citation": (
            "Hedström et al. 2023, The meta-evaluation problem in explainable AI: identifying "
            "reliable estimators with MetaQuantus, TMLR"
        ),
    })
    return ds


# --- plan ----------------------------------------------------------------------------------------


@dataclass
class _Run:
    """One meta-evaluation's checked inputs, plan and seeds, with the calls every stage shares."""

    model: nn.Module  # the user's, never modified: perturbed models are copies
    clean: nn.Module  # a copy, explained and scored unperturbed
    x: Tensor
    target: Tensor
    prediction: Tensor
    mask: Tensor | None
    segments: Tensor | None
    method_names: list[str]
    factories: list[ExplainerFactory]
    planned: list[PlannedMetric]
    suite: list[PerturbationTest]
    iterations: int
    perturbations: int
    max_batch_size: int
    validate: bool
    low: Tensor | None
    high: Tensor | None
    seeds: list  # (test, iteration, perturbation) -> seed
    metric_seed: int
    baseline_seed: int
    original: Group = field(init=False)

    def explain_all(self, network: nn.Module, inputs: Tensor, targets: Tensor) -> list[Tensor]:
        """Every method's explanations of ``inputs`` with ``network``."""
        return [explain(f, network, inputs, targets, name=n, max_batch_size=self.max_batch_size,
                        validate=self.validate)
                for f, n in zip(self.factories, self.method_names)]

    def group(self, network: nn.Module | None, inputs: Tensor, targets: Tensor, maps: list[Tensor],
              times: int,
              label: str, names: Sequence[str] | None = None,
              makers: Sequence[ExplainerFactory] | None = None) -> Group:
        """A problem of ``times`` stacked copies of the samples (their masks and segments repeated).
        """
        return Group(model=network, x=inputs, target=targets, explanations=maps,
                     mask=_repeat(self.mask, times),
                     segments=_repeat(self.segments, times), label=label,
                     factories=self.factories if makers is None else makers,
                     method_names=self.method_names if names is None else names)

    def score(self, p: PlannedMetric, groups: list[Group], *label: object) -> Tensor:
        """``(L, n)`` scores of metric ``p``, its seed derived from the run's and ``label``."""
        return score_groups(p, groups, max_batch_size=self.max_batch_size, validate=self.validate,
                            seed=derive_seed(self.metric_seed, p.name, *label))


def _check_options(*, iterations: int, perturbations: int, n_splits: int, max_batch_size: int,
                   alpha: Any,
                   clip: Any, random_baseline: Any) -> tuple[int, int, int, int]:
    iterations = check_positive_int(iterations, "iterations")
    perturbations = check_positive_int(perturbations, "perturbations")
    n_splits = check_positive_int(n_splits, "n_splits")
    max_batch_size = check_max_batch_size(max_batch_size)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
        raise OptionError(f"Expected `alpha` in (0, 1), but got {alpha!r}.")
    if not isinstance(clip, bool) or not isinstance(random_baseline, bool):
        raise DTypeError("Expected `clip` and `random_baseline` to be bools.")
    return iterations, perturbations, n_splits, max_batch_size


def _available_inputs(mask: Tensor | None, segments: Tensor | None) -> frozenset[str]:
    available = {"a", "x", "target", "forward_fn", "model", "explain_fn", "explainer_factory"}
    available |= {"mask"} if mask is not None else set()
    available |= {"segments"} if segments is not None else set()
    return frozenset(available)


def _plan(model: Any, x: Any, explainers: Any, metrics: Any, *, target: Any, mask: Any,
          segments: Any,
          metric_options: Any, tests: Any, magnitudes: Any, iterations: int, perturbations: int,
          clip: bool,
          random_baseline: bool, n_splits: int, alpha: float, max_batch_size: int, seed: int | None,
          generator: torch.Generator | None,
          validate: bool) -> tuple[_Run, dict[str, str], torch.Generator]:
    """Check every argument, plan the metrics, draw every seed, predict and explain the unperturbed
    inputs.

    Returns:
        ``(run, skipped, split_generator)``: the run, the metrics that cannot run
        (name -> why) and the generator of the split-half reliability.
    """
    x = _check_model_inputs(model, x, validate=validate)
    method_names, factories = _check_explainers(explainers)
    iterations, perturbations, n_splits, max_batch_size = _check_options(
        iterations=iterations, perturbations=perturbations, n_splits=n_splits,
        max_batch_size=max_batch_size,
        alpha=alpha, clip=clip, random_baseline=random_baseline)
    suite = resolve_tests(tests, magnitudes)
    generator = resolve_generator(generator, seed, default_seed=0)
    if mask is not None:
        mask = check_mask(mask, x, a_name="x", validate=validate)
    segments = _check_segments(segments, x)
    planned, skipped = plan_metrics(metrics, metric_options,
                                    available=_available_inputs(mask, segments))
    if not planned:
        raise OptionError(
            f"Expected at least one metric that can run, but every one was skipped: {skipped}.")

    # All randomness is drawn here, in a fixed order, before any model or explainer call.
    seeds = perturbation_seeds(generator, len(suite), iterations, perturbations)
    metric_seed = draw_seed(generator)
    baseline_seed = draw_seed(generator)
    split_generator = torch.Generator(device=generator.device).manual_seed(draw_seed(generator))

    clean = copy.deepcopy(model)
    prediction = predict(clean, x, max_batch_size=max_batch_size)
    if target is None:
        target = prediction
    else:
        target = check_target(target, x.shape[0], device=x.device, validate=validate)
    low, high = (x.min(), x.max()) if clip else (None, None)
    run = _Run(model=model, clean=clean, x=x, target=target, prediction=prediction, mask=mask,
               segments=segments,
               method_names=method_names, factories=factories, planned=planned, suite=suite,
               iterations=iterations,
               perturbations=perturbations, max_batch_size=max_batch_size, validate=validate,
               low=low, high=high,
               seeds=seeds, metric_seed=metric_seed, baseline_seed=baseline_seed)
    run.original = run.group(clean, x, target, run.explain_all(clean, x, target), 1, "original")
    return run, skipped, split_generator


def _random_baseline_scores(run: _Run) -> Tensor:
    """``(M, B)`` scores of :func:`~xaiscore.explainers.random_explainer` maps, unperturbed."""
    maps_random = random_explainer(seed=run.baseline_seed)

    def random_factory(network: nn.Module) -> RandomExplainer:
        return maps_random

    a_random = explain(random_factory, run.clean, run.x, run.target, name="random",
                       max_batch_size=run.max_batch_size, validate=run.validate)
    random_group = run.group(run.clean, run.x, run.target, [a_random], 1, "random",
                             names=["random"],
                             makers=[random_factory])
    return torch.stack([run.score(p, [random_group], "random")[0] for p in run.planned])


# --- perturbation tests ---------------------------------------------------------------------------


def _perturbation_tests(run: _Run, *, progress: bool = False) -> tuple[Tensor, Tensor]:
    """Every test and iteration: ``q_hat`` ``(M, T, I, K, L, B)`` scores and ``kept``
    ``(T, I, K, B)``."""
    bar = None
    if progress:  # tqdm comes with the harness extra: imported only when asked for
        from tqdm.auto import tqdm

        bar = tqdm(total=len(run.suite) * run.iterations, desc="meta-evaluate",
                   unit="test iteration")
    b, n_methods = run.x.shape[0], len(run.method_names)
    shape = (len(run.planned), len(run.suite), run.iterations, run.perturbations, n_methods, b)
    q_hat = torch.full(shape, math.nan, dtype=torch.float64, device=run.x.device)
    kept = torch.zeros((len(run.suite), run.iterations, run.perturbations, b), dtype=torch.bool,
                       device=run.x.device)
    perturber: ModelPerturber | None = None
    for t, test in enumerate(run.suite):
        for i in range(run.iterations):
            if test.space == "input":
                _input_test(run, t, test, i, q_hat=q_hat, kept=kept)
            else:
                perturber = perturber or ModelPerturber(run.model)
                _model_test(run, t, test, i, perturber, q_hat=q_hat, kept=kept)
            if bar is not None:
                bar.set_postfix_str(test.name, refresh=False)
                bar.update(1)
    if bar is not None:
        bar.close()
    return q_hat, kept


def _stacked_scores(run: _Run, scores: Tensor) -> Tensor:
    """``(L, K * B)`` perturbation-major scores as ``(K, L, B)``."""
    return scores.reshape(len(run.method_names), run.perturbations, run.x.shape[0]).transpose(0, 1)


def _input_test(run: _Run, t: int, test: PerturbationTest, i: int, *, q_hat: Tensor,
                kept: Tensor) -> None:
    """Iteration ``i`` of input test ``t``: all ``K`` perturbed inputs stacked, explained and scored
    together."""
    k_count = run.perturbations
    x_hat = torch.cat([
        perturb_inputs(run.x, magnitude=test.magnitude, seed=run.seeds[t][i][k], low=run.low,
                       high=run.high)
        for k in range(k_count)
    ])
    predicted = predict(run.clean, x_hat, max_batch_size=run.max_batch_size)
    changed = predicted.reshape(k_count, run.x.shape[0]) != run.prediction
    kept[t, i] = changed if test.adversary else ~changed
    targets = run.target.repeat(k_count)
    maps = run.explain_all(run.clean, x_hat, targets)
    perturbed = run.group(run.clean, x_hat, targets, maps, k_count, f"{test.name}{i}")
    for m, p in enumerate(run.planned):
        q_hat[m, t, i] = _stacked_scores(run, run.score(p, [perturbed], test.name, i))


def _model_test(run: _Run, t: int, test: PerturbationTest, i: int, perturber: ModelPerturber, *,
                q_hat: Tensor,
                kept: Tensor) -> None:
    """Iteration ``i`` of model test ``t``: one perturbed model at a time; model-free metrics score
    all at once."""
    groups = []
    for k in range(run.perturbations):
        noisy = perturber.perturb(std=test.magnitude, seed=run.seeds[t][i][k])
        changed = predict(noisy, run.x, max_batch_size=run.max_batch_size) != run.prediction
        kept[t, i, k] = changed if test.adversary else ~changed
        current = run.group(noisy, run.x, run.target, run.explain_all(noisy, run.x, run.target), 1,
                            f"{test.name}{i}.{k}")
        for m, p in enumerate(run.planned):
            if not p.shares_model:
                q_hat[m, t, i, k] = run.score(p, [current], test.name, i, k)
        current.model = None  # the copy changes with the next perturbation
        groups.append(current)
    for m, p in enumerate(run.planned):
        if p.shares_model:
            q_hat[m, t, i] = _stacked_scores(run, run.score(p, groups, test.name, i))


# --- summaries -----------------------------------------------------------------------------------


def _summaries(run: _Run, q: Tensor, q_hat: Tensor, kept: Tensor, *, n_splits: int,
               split_generator: torch.Generator) -> dict[str, Any]:
    """Intra-/inter-consistency, MC per space, metric agreement and split-half reliability."""
    directions = [p.spec.higher_is_better for p in run.planned]
    n_metrics, n_methods, b = len(run.planned), len(run.method_names), run.x.shape[0]
    iac = torch.full((n_metrics, len(run.suite), run.iterations), math.nan, dtype=torch.float64,
                     device=run.x.device)
    iec = torch.full_like(iac, math.nan)
    iac_method = torch.full((n_metrics, len(run.suite), run.iterations, n_methods), math.nan,
                            dtype=torch.float64, device=run.x.device)
    for t, test in enumerate(run.suite):
        for m in range(n_metrics):
            iac[m, t], iec[m, t], iac_method[m, t] = consistency(
                q[m].expand(run.iterations, n_methods, b), q_hat[m, t], kept[t],
                adversary=test.adversary,
                higher_is_better=directions[m])
    spaces, mc = _meta_consistency(run, iac, iec)
    mc_mean, mc_std = nan_stats(mc, -1)
    agreement, agreement_per_sample = metric_agreement(q, directions)
    split_half = split_half_reliability(q, n_splits=n_splits, generator=split_generator)
    return {"spaces": spaces, "iac": iac, "iec": iec, "iac_method": iac_method, "mc": mc,
            "mc_mean": mc_mean,
            "mc_std": mc_std, "agreement": agreement, "agreement_per_sample": agreement_per_sample,
            "split_half": split_half, "directions": directions}


def _meta_consistency(run: _Run, iac: Tensor, iec: Tensor) -> tuple[list[str], Tensor]:
    """The spaces with both of their tests, and ``(M, spaces, I)`` MC scores."""
    index = {test.name: t for t, test in enumerate(run.suite)}
    spaces = [s for s in SPACES if f"{s}_resilience" in index and f"{s}_adversary" in index]
    if not spaces:
        return spaces, torch.zeros((len(run.planned), 0, run.iterations), dtype=torch.float64,
                                   device=run.x.device)
    mc = torch.stack([
        meta_consistency(iac[:, index[f"{s}_resilience"]], iac[:, index[f"{s}_adversary"]],
                         iec[:, index[f"{s}_resilience"]], iec[:, index[f"{s}_adversary"]])
        for s in spaces
    ], dim=1)
    return spaces, mc
