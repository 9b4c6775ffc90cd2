"""``meta_evaluate``: MetaQuantus' four perturbation tests for any registered metrics, on our kernels.

See :mod:`xaiscore.meta` for the overview and ``docs/meta.md`` for the definitions.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from xaiscore._engine.batching import check_max_batch_size
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
from xaiscore._version import __version__
from xaiscore.explainers import ConstantExplainer, QuantusExplainer, RandomExplainer, random_explainer
from xaiscore.meta._scoring import (
    ExplainerFactory,
    Group,
    PlannedMetric,
    explain,
    plan_metrics,
    predict,
    score_groups,
)
from xaiscore._engine.random import derive_seed, draw_seed, resolve_generator
from xaiscore.meta.agreement import metric_agreement, random_baseline_separation, split_half_reliability
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


def _import_xarray() -> Any:
    try:
        import xarray
    except ImportError as error:  # pragma: no cover - xarray is in the harness and test extras
        raise ImportError(
            "meta_evaluate returns an xarray.Dataset; install xarray with `pip install xaiscore[harness]`."
        ) from error
    return xarray


def _check_explainers(explainers: Any) -> tuple[list[str], list[ExplainerFactory]]:
    if not isinstance(explainers, Mapping):
        raise DTypeError(
            "Expected `explainers` to be a mapping method name -> explainer factory `factory(model) -> "
            f"explain_fn`, but got {type(explainers).__name__}."
        )
    if len(explainers) < 2:
        raise OptionError(
            f"Expected at least 2 explanation methods (inter-consistency compares their rankings), but got "
            f"{len(explainers)}."
        )
    names, factories = [], []
    for name, factory in explainers.items():
        if not isinstance(name, str) or not name:
            raise DTypeError(f"Expected method names to be non-empty strings, but got {name!r}.")
        if isinstance(factory, (RandomExplainer, ConstantExplainer, QuantusExplainer)) or (
            type(factory).__name__ == "CaptumExplainer"
        ):
            raise DTypeError(
                f"Expected `explainers[{name!r}]` to be a factory `factory(model) -> explain_fn` (perturbed models "
                f"need their own explainer), but got a {type(factory).__name__} bound to one model. Pass e.g. "
                "`lambda model: captum_explainer(model, 'Saliency')`, or `lambda model: explainer` for one that "
                "ignores the model."
            )
        if not callable(factory):
            raise DTypeError(f"Expected `explainers[{name!r}]` to be callable, but got {type(factory).__name__}.")
        names.append(name)
        factories.append(factory)
    return names, factories


def _check_model_inputs(model: Any, x: Any, *, validate: bool) -> Tensor:
    if not isinstance(model, nn.Module):
        raise DTypeError(f"Expected `model` to be a torch.nn.Module, but got {type(model).__name__}.")
    x = check_attributions(x, name="x", validate=validate)
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.device != x.device:
        raise DeviceError(
            f"Expected `x` on the device of the model's parameters ({parameter.device}), but got {x.device}. "
            "Move it with `x.to(device)`."
        )
    return x


def _check_segments(segments: Any, x: Tensor) -> Tensor | None:
    if segments is None:
        return None
    segments = check_tensor(segments, "segments")
    if segments.ndim < 1 or segments.shape[0] != x.shape[0]:
        raise ShapeError(
            f"Expected `segments` with a leading batch axis of {x.shape[0]}, but got {tuple(segments.shape)}."
        )
    if segments.device != x.device:
        raise DeviceError(f"Expected `segments` on the device of `x` ({x.device}), but got {segments.device}.")
    return segments


def _repeat(t: Tensor | None, times: int) -> Tensor | None:
    return None if t is None else t.repeat((times,) + (1,) * (t.ndim - 1))


def _nan_stats(values: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """NaN-ignoring mean and population standard deviation along ``dim``."""
    finite = ~torch.isnan(values)
    count = finite.sum(dim)
    zeros = torch.zeros_like(values)
    mean = torch.where(finite, values, zeros).sum(dim) / count.clamp(min=1)
    centred = torch.where(finite, values - mean.unsqueeze(dim), zeros)
    std = (centred.pow(2).sum(dim) / count.clamp(min=1)).sqrt()
    nan = torch.full_like(mean, math.nan)
    return torch.where(count > 0, mean, nan), torch.where(count > 0, std, nan)


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
) -> Any:
    r"""Meta-evaluate metrics (Hedström et al. 2023, MetaQuantus): are they resilient to noise and reactive to change?

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

    Returns:
        An ``xarray.Dataset`` (netCDF-safe), dims ``metric``, ``method``,
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
    """
    xr = _import_xarray()
    x = _check_model_inputs(model, x, validate=validate)
    method_names, factories = _check_explainers(explainers)
    iterations = check_positive_int(iterations, "iterations")
    perturbations = check_positive_int(perturbations, "perturbations")
    n_splits = check_positive_int(n_splits, "n_splits")
    max_batch_size = check_max_batch_size(max_batch_size)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
        raise OptionError(f"Expected `alpha` in (0, 1), but got {alpha!r}.")
    if not isinstance(clip, bool) or not isinstance(random_baseline, bool):
        raise DTypeError("Expected `clip` and `random_baseline` to be bools.")
    suite = resolve_tests(tests, magnitudes)
    seed_given = generator is None
    generator = resolve_generator(generator, seed, default_seed=0)
    seed = 0 if seed is None else seed
    if mask is not None:
        mask = check_mask(mask, x, a_name="x", validate=validate)
    segments = _check_segments(segments, x)
    available = {"a", "x", "target", "forward_fn", "model", "explain_fn", "explainer_factory"}
    available |= {"mask"} if mask is not None else set()
    available |= {"segments"} if segments is not None else set()
    planned, skipped = plan_metrics(metrics, metric_options, available=frozenset(available))
    if not planned:
        raise OptionError(f"Expected at least one metric that can run, but every one was skipped: {skipped}.")

    # All randomness is drawn here, in a fixed order, before any model or explainer call.
    seeds = perturbation_seeds(generator, len(suite), iterations, perturbations)
    metric_seed = draw_seed(generator)
    baseline_seed = draw_seed(generator)
    split_generator = torch.Generator(device=generator.device).manual_seed(draw_seed(generator))

    b, n_methods, k_count = x.shape[0], len(method_names), perturbations
    clean = copy.deepcopy(model)
    prediction = predict(clean, x, max_batch_size=max_batch_size)
    if target is None:
        target = prediction
    else:
        target = check_target(target, b, device=x.device, validate=validate)
    low, high = (x.min(), x.max()) if clip else (None, None)

    def explain_all(network: nn.Module, inputs: Tensor, targets: Tensor) -> list[Tensor]:
        return [explain(f, network, inputs, targets, name=n, max_batch_size=max_batch_size, validate=validate)
                for f, n in zip(factories, method_names)]

    def group(network: nn.Module | None, inputs: Tensor, targets: Tensor, maps: list[Tensor], times: int,
              label: str, names: Sequence[str] = method_names,
              makers: Sequence[ExplainerFactory] = factories) -> Group:
        return Group(model=network, x=inputs, target=targets, explanations=maps, mask=_repeat(mask, times),
                     segments=_repeat(segments, times), label=label, factories=makers, method_names=names)

    def score(p: PlannedMetric, groups: list[Group], *label: object) -> Tensor:
        return score_groups(p, groups, max_batch_size=max_batch_size, validate=validate,
                            seed=derive_seed(metric_seed, p.name, *label))

    original = group(clean, x, target, explain_all(clean, x, target), 1, "original")
    q = torch.stack([score(p, [original], "original") for p in planned])  # (M, L, B)

    baseline = None
    if random_baseline:
        maps_random = random_explainer(seed=baseline_seed)

        def random_factory(network: nn.Module) -> RandomExplainer:
            return maps_random

        a_random = explain(random_factory, clean, x, target, name="random", max_batch_size=max_batch_size,
                           validate=validate)
        random_group = group(clean, x, target, [a_random], 1, "random", names=["random"], makers=[random_factory])
        baseline = torch.stack([score(p, [random_group], "random")[0] for p in planned])  # (M, B)

    shape = (len(planned), len(suite), iterations, k_count, n_methods, b)
    q_hat = torch.full(shape, math.nan, dtype=torch.float64, device=x.device)
    kept = torch.zeros((len(suite), iterations, k_count, b), dtype=torch.bool, device=x.device)
    perturber: ModelPerturber | None = None
    for t, test in enumerate(suite):
        for i in range(iterations):
            if test.space == "input":
                x_hat = torch.cat([
                    perturb_inputs(x, magnitude=test.magnitude, seed=seeds[t][i][k], low=low, high=high)
                    for k in range(k_count)
                ])
                changed = predict(clean, x_hat, max_batch_size=max_batch_size).reshape(k_count, b) != prediction
                kept[t, i] = changed if test.adversary else ~changed
                targets = target.repeat(k_count)
                maps = explain_all(clean, x_hat, targets)
                perturbed = group(clean, x_hat, targets, maps, k_count, f"{test.name}{i}")
                for m, p in enumerate(planned):
                    scores = score(p, [perturbed], test.name, i)  # (L, K * B), perturbation-major
                    q_hat[m, t, i] = scores.reshape(n_methods, k_count, b).transpose(0, 1)
            else:
                perturber = perturber or ModelPerturber(model)
                groups = []
                for k in range(k_count):
                    noisy = perturber.perturb(std=test.magnitude, seed=seeds[t][i][k])
                    changed = predict(noisy, x, max_batch_size=max_batch_size) != prediction
                    kept[t, i, k] = changed if test.adversary else ~changed
                    current = group(noisy, x, target, explain_all(noisy, x, target), 1, f"{test.name}{i}.{k}")
                    for m, p in enumerate(planned):
                        if not p.shares_model:
                            q_hat[m, t, i, k] = score(p, [current], test.name, i, k)
                    current.model = None  # the copy changes with the next perturbation
                    groups.append(current)
                for m, p in enumerate(planned):
                    if p.shares_model:
                        scores = score(p, groups, test.name, i)  # (L, K * B), perturbation-major
                        q_hat[m, t, i] = scores.reshape(n_methods, k_count, b).transpose(0, 1)

    directions = [p.spec.higher_is_better for p in planned]
    iac = torch.full((len(planned), len(suite), iterations), math.nan, dtype=torch.float64, device=x.device)
    iec = torch.full_like(iac, math.nan)
    iac_method = torch.full((len(planned), len(suite), iterations, n_methods), math.nan, dtype=torch.float64,
                            device=x.device)
    for t, test in enumerate(suite):
        for m in range(len(planned)):
            iac[m, t], iec[m, t], iac_method[m, t] = consistency(
                q[m].expand(iterations, n_methods, b), q_hat[m, t], kept[t], adversary=test.adversary,
                higher_is_better=directions[m])
    index = {test.name: t for t, test in enumerate(suite)}
    spaces = [s for s in SPACES if f"{s}_resilience" in index and f"{s}_adversary" in index]
    mc = torch.stack([
        meta_consistency(iac[:, index[f"{s}_resilience"]], iac[:, index[f"{s}_adversary"]],
                         iec[:, index[f"{s}_resilience"]], iec[:, index[f"{s}_adversary"]])
        for s in spaces
    ], dim=1) if spaces else torch.zeros((len(planned), 0, iterations), dtype=torch.float64, device=x.device)
    mc_mean, mc_std = _nan_stats(mc, -1)
    agreement, agreement_per_sample = metric_agreement(q, directions)
    split_half = split_half_reliability(q, n_splits=n_splits, generator=split_generator)

    ds = _build_dataset(
        xr, planned=planned, method_names=method_names, suite=suite, spaces=spaces, iterations=iterations,
        perturbations=k_count, q=q, q_hat=q_hat, kept=kept, iac=iac, iec=iec, iac_method=iac_method, mc=mc,
        mc_mean=mc_mean, mc_std=mc_std, agreement=agreement, agreement_per_sample=agreement_per_sample,
        split_half=split_half, baseline=baseline, directions=directions, alpha=float(alpha),
        prediction=prediction, target=target)
    ds.attrs.update({
        "xaiscore_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "seed": int(seed) if seed_given else -1,
        "seed_from_generator": int(not seed_given),
        "iterations": iterations,
        "perturbations": k_count,
        "n_methods": n_methods,
        "tests": json.dumps({t.name: t.magnitude for t in suite}),
        "clip": int(clip),
        "alpha": float(alpha),
        "random_level_mc": random_mc_level(n_methods),
        "metric_settings": json.dumps({p.name: p.options for p in planned}, default=repr, sort_keys=True),
        "skipped": json.dumps(skipped, sort_keys=True),
        "citation": "Hedström et al. 2023, The meta-evaluation problem in explainable AI: identifying reliable "
                    "estimators with MetaQuantus, TMLR",
    })
    return ds


def _direction_code(direction: bool | None) -> int:
    return -1 if direction is None else int(direction)


def _build_dataset(xr: Any, *, planned: list[PlannedMetric], method_names: list[str], suite: Sequence[PerturbationTest],
                   spaces: list[str], iterations: int, perturbations: int, q: Tensor, q_hat: Tensor, kept: Tensor,
                   iac: Tensor, iec: Tensor, iac_method: Tensor, mc: Tensor, mc_mean: Tensor, mc_std: Tensor,
                   agreement: Tensor, agreement_per_sample: Tensor, split_half: Tensor, baseline: Tensor | None,
                   directions: list[bool | None], alpha: float, prediction: Tensor, target: Tensor) -> Any:
    def np64(t: Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float64).numpy()

    names = [p.name for p in planned]
    b = q.shape[-1]
    iac_mean, _ = _nan_stats(iac, -1)
    iec_mean, _ = _nan_stats(iec, -1)
    split_mean, _ = _nan_stats(split_half, -1)
    agreement_mean, _ = _nan_stats(agreement_per_sample, -1)
    variables: dict[str, Any] = {
        "score": (("metric", "method", "sample"), np64(q)),
        "score_perturbed": (("metric", "test", "iteration", "perturbation", "method", "sample"), np64(q_hat)),
        "kept": (("test", "iteration", "perturbation", "sample"), kept.cpu().numpy().astype(np.int8)),
        "kept_fraction": (("test", "iteration"), np64(kept.to(torch.float64).mean((-2, -1)))),
        "iac": (("metric", "test", "iteration"), np64(iac)),
        "iec": (("metric", "test", "iteration"), np64(iec)),
        "iac_per_method": (("metric", "test", "iteration", "method"), np64(iac_method)),
        "iac_mean": (("metric", "test"), np64(iac_mean)),
        "iec_mean": (("metric", "test"), np64(iec_mean)),
        "mc": (("metric", "space", "iteration"), np64(mc)),
        "mc_mean": (("metric", "space"), np64(mc_mean)),
        "mc_std": (("metric", "space"), np64(mc_std)),
        "mc_overall": (("metric",), np64(mc_mean.mean(-1)) if spaces else np.full(len(names), np.nan)),
        "agreement": (("metric", "metric_other"), np64(agreement)),
        "agreement_per_sample": (("metric", "metric_other", "sample"), np64(agreement_per_sample)),
        "agreement_per_sample_mean": (("metric", "metric_other"), np64(agreement_mean)),
        "split_half": (("metric", "split"), np64(split_half)),
        "split_half_mean": (("metric",), np64(split_mean)),
    }
    if baseline is not None:
        win_rate, p_value = random_baseline_separation(q, baseline, directions)
        beats = (win_rate > 0.5) & (p_value < alpha)
        variables.update({
            "baseline_score": (("metric", "sample"), np64(baseline)),
            "win_rate_vs_random": (("metric", "method"), np64(win_rate)),
            "p_vs_random": (("metric", "method"), np64(p_value)),
            "beats_random": (("metric", "method"), beats.cpu().numpy().astype(np.int8)),
            "separates_random": (("metric",), beats.all(-1).cpu().numpy().astype(np.int8)),
        })
    coords = {
        "metric": names,
        "method": list(method_names),
        "test": [t.name for t in suite],
        "space": list(spaces),
        "iteration": np.arange(iterations),
        "perturbation": np.arange(perturbations),
        "sample": np.arange(b),
        "metric_other": names,
        "split": np.arange(split_half.shape[-1]),
        "family": ("metric", [p.spec.family for p in planned]),
        "higher_is_better": ("metric", np.array([_direction_code(d) for d in directions], dtype=np.int8)),
        "test_space": ("test", [t.space for t in suite]),
        "test_kind": ("test", [t.kind for t in suite]),
        "test_magnitude": ("test", np.array([t.magnitude for t in suite], dtype=np.float64)),
        "prediction": ("sample", prediction.cpu().numpy().astype(np.int64)),
        "target": ("sample", target.cpu().numpy().astype(np.int64)),
    }
    ds = xr.Dataset(variables, coords=coords)
    descriptions = {
        "score": "unperturbed score per metric, method and sample",
        "score_perturbed": "score after each perturbation (NaN where the metric is undefined)",
        "kept": "1 where the sample is kept: prediction unchanged (resilience) or changed (adversary)",
        "iac": "intra-consistency: mean Wilcoxon p (resilience) or 1 - p (adversary) over methods and perturbations",
        "iec": "inter-consistency: share of unchanged method ranks (resilience) or of scores that got worse "
               "in the metric's direction (adversary)",
        "mc": "meta-consistency: mean of IAC_NR, IAC_AR, IEC_NR, IEC_AR of a space, per iteration",
        "mc_mean": "MC averaged over iterations", "mc_std": "population std of MC over iterations",
        "agreement": "Kendall tau-b between two metrics' method rankings by mean score",
        "split_half": "Kendall tau-b between the method rankings of two random halves of the samples",
    }
    for name, text in descriptions.items():
        ds[name].attrs["description"] = text
    return ds
