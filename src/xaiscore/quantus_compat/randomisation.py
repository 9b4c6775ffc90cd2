"""Quantus' randomisation metrics on :mod:`xaiscore.functional.randomization`.

``explain_func`` is called on randomized deep copies of the model (the user's
model is never modified); every model's explanations of all samples go
through it in chunks of ``batch_size``. Layers are re-initialised with
``reset_parameters`` from per-layer seeds derived from ``seed`` (Quantus
reseeds torch's *global* generator with ``seed + 1`` before every layer, so
layers of the same shape get identical weights); ``quantus_bug_compatible=True``
re-initialises exactly as Quantus (under a forked RNG state) to reproduce its
numbers. ``normalise``/``abs`` are applied to every explanation, per sample.

Example:
    >>> import numpy as np, torch
    >>> from xaiscore.quantus_compat import MPRT
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Linear(8, 3)).eval()
    >>> def ignores_model(model, inputs, targets, **kwargs):
    ...     return inputs ** 2
    >>> x = np.random.default_rng(0).random((2, 1, 4, 4)).astype(np.float32)
    >>> scores = MPRT(disable_warnings=True)(model, x, np.array([0, 1]), explain_func=ignores_model)
    >>> list(scores), [round(v, 6) for v in scores["1"]]  # an explainer that ignores the model fails
    (['original', '2', '1'], [1.0, 1.0])
"""  # noqa: E501

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from xaiscore._checks import DTypeError, OptionError, check_positive_int
from xaiscore._engine.noise import BlockNoise
from xaiscore.functional.randomization import efficient_mprt, mprt, random_logit, smooth_mprt
from xaiscore.functional.similarity import resolve_similarity
from xaiscore.quantus_compat._base import (
    ExplainAdapter,
    Metric,
    Prepared,
    QuantusCompatibilityError,
    ScoreDirection,
    common,
)
from xaiscore.quantus_compat._base import normalise as normalise_maps
from xaiscore.quantus_compat._options import map_similarity, quantus_function_name

__all__ = ["MPRT", "ModelParameterRandomisation", "SmoothMPRT", "EfficientMPRT", "RandomLogit"]


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DTypeError(f"Expected `seed` to be an int, but got {type(seed).__name__} {seed!r}.")
    return int(seed)


def _check_order(order: Any) -> str:
    if order not in ("top_down", "bottom_up", "independent"):
        raise OptionError(
            f"Expected `layer_order` in 'top_down', 'bottom_up', 'independent', but got {order!r}.")
    return order


def quantus_reinit(seed: int) -> Callable[[nn.Module, torch.Generator], None]:
    """Quantus' re-initialisation: ``torch.manual_seed(seed + 1)`` then ``reset_parameters()`` for
    every layer.

    Runs under :func:`torch.random.fork_rng`, so the caller's global RNG state is restored
    afterwards.
    """

    def reinit(module: nn.Module, generator: torch.Generator) -> None:
        devices = [p.device.index or 0 for p in module.parameters() if p.device.type == "cuda"][:1]
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed + 1)
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    return reinit


class _Randomisation(Metric):
    evaluation_category = "Randomisation"
    needs_model = True
    needs_explainer = True
    needs_attributions = False
    transforms_attributions = False
    #: Quantus' default ``normalise_func`` for this class: ``"max"`` or ``"second_moment"``.
    _default_normalise = "max"

    #: Whether ``quantus_bug_compatible`` normalises each explain call's batch as a whole, as
    #: Quantus (possible where explanations are computed per chunk of samples, in order).
    _batch_wide_in_bug_mode = True

    def _post(self) -> tuple[str | None, Callable[[Tensor], Tensor] | None]:
        """``(kernel normalise option, explanation transform)`` for
        ``normalise``/``normalise_func``."""
        if not self.normalise:
            return None, None
        mode = self.normalisation_mode()
        if mode is not None and not (self.quantus_bug_compatible and self._batch_wide_in_bug_mode):
            return mode, None
        return None, lambda a: self.transform_attributions(a, apply_abs=False)

    def _factory(self, prepared: Prepared,
                 transform: Callable[[Tensor], Tensor] | None) -> Callable[..., Any]:
        base = prepared.explainer_factory
        if transform is None:
            return base

        def factory(model: nn.Module) -> ExplainAdapter:
            adapter = base(model)
            adapter.transform = transform
            return adapter

        return factory

    def _reinit(self) -> Any:
        return quantus_reinit(self.seed) if self.quantus_bug_compatible else "reset_parameters"


def _postprocess(a: Tensor, *, abs: bool, normalise: str | None) -> Tensor:
    if normalise is not None:
        a = normalise_maps(a, normalise)
    return a.abs() if abs else a


def _compare(similarity: Any, a: Tensor, b: Tensor) -> Tensor:
    fn = resolve_similarity(similarity) if isinstance(similarity, str) else similarity
    return fn(a, b)


class MPRT(_Randomisation):
    """Model parameter randomisation test (Adebayo et al. 2018) on :func:`xaiscore.functional.mprt`.

    Layers are randomized one by one (``layer_order``: ``"top_down"``,
    ``"bottom_up"`` or ``"independent"``), the model is re-explained after each
    step and compared with the original explanation (``a_batch``, or computed)
    by ``similarity_func`` (Spearman by default; Quantus' ``correlation_pearson``
    and ``ssim`` map to our kernels, any other ``f(a, b)`` on flat numpy arrays
    runs per sample on the host).

    Returns (as Quantus): a dict ``{"original": [...], layer name: [...], ...}``
    of per-sample similarities, ``"original"`` comparing ``a_batch`` with a fresh
    explanation of the unchanged model (only the last layer with
    ``skip_layers=True``); with ``return_average_correlation`` the per-sample
    mean over the layers, with ``return_last_correlation`` the last layer's.
    Lower is better.

    Differences from Quantus 0.6.0: the average is over the randomized layers
    only (Quantus also averages in the ``"original"`` entry, about 1);
    per-layer seeds; per-sample normalisation. ``quantus_bug_compatible=True``
    reproduces Quantus' re-initialisation and average.

    Defaults: ``layer_order="top_down", seed=42, abs=True, normalise=True``.
    """

    name = "Model Parameter Randomisation Test"
    score_direction = ScoreDirection.LOWER

    def __init__(self, similarity_func: Callable[..., Any] | None = None,
                 layer_order: str = "top_down",
                 seed: int = 42, return_sample_correlation: bool | None = None,
                 return_average_correlation: bool = False, return_last_correlation: bool = False,
                 skip_layers: bool = False, abs: bool = True, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        if return_sample_correlation is not None:
            warnings.warn(
                "`return_sample_correlation` is deprecated in Quantus; use "
                "`return_average_correlation`.",
                DeprecationWarning, stacklevel=2)
            return_average_correlation = bool(return_sample_correlation)
        if return_average_correlation and return_last_correlation:
            raise OptionError(
                "Expected at most one of `return_average_correlation` and "
                "`return_last_correlation`.")
        if return_average_correlation and skip_layers:
            raise OptionError(
                "`return_average_correlation` needs every layer: it cannot be combined with "
                "`skip_layers`.")
        self.similarity_func = similarity_func
        self._similarity = map_similarity(similarity_func, default="spearman", allow_callable=True,
                                          metric=type(self).__name__)
        self.layer_order = _check_order(layer_order)
        self.seed = _check_seed(seed)
        self.return_average_correlation = bool(return_average_correlation)
        self.return_last_correlation = bool(return_last_correlation)
        self.skip_layers = bool(skip_layers)

    def _run(self, prepared: Prepared, reference: Tensor | None, normalise: str | None,
             factory: Any) -> Any:
        return mprt(prepared.model, prepared.x, prepared.y, explainer_factory=factory, a=reference,
                    similarity=self._similarity, order=self.layer_order, abs=self.abs,
                    normalise=normalise,
                    reduce_channels=None, seed=self.seed, reinit=self._reinit(),
                    random_baseline=False,
                    max_batch_size=prepared.batch_size)

    def _reference_similarity(self, prepared: Prepared, reference: Tensor | None,
                              normalise: str | None,
                              factory: Any) -> Tensor:
        """Quantus' ``"original"``: ``a_batch`` (or a first explanation) against a fresh
        explanation."""
        explain = factory(prepared.model)
        fresh = self._explain_in_chunks(explain, prepared.x, prepared.y, prepared.batch_size)
        reference = fresh if reference is None else reference
        return _compare(self._similarity,
                        _postprocess(reference, abs=self.abs, normalise=normalise),
                        _postprocess(fresh, abs=self.abs, normalise=normalise))

    def _evaluate(self, prepared: Prepared) -> Any:
        if prepared.y is None:
            raise OptionError(f"{type(self).__name__} explains the targets: pass `y_batch`.")
        normalise, transform = self._post()
        factory = self._factory(prepared, transform)
        reference = (prepared.a_raw if transform is None or prepared.a_raw is None
                     else transform(prepared.a_raw))
        result = self._run(prepared, reference, normalise, factory)
        curve = result.curve.double().cpu()
        if self.return_average_correlation:
            if self.quantus_bug_compatible:  # Quantus averages in the "original" entry
                original = self._reference_similarity(prepared, reference, normalise,
                                                      factory).double().cpu()
                return ((original + curve.sum(1)) / (curve.shape[1] + 1)).tolist()
            return curve.mean(1).tolist()
        if self.return_last_correlation:
            return curve[:, -1].tolist()
        original = (
            self._reference_similarity(prepared, reference, normalise, factory).double().cpu())
        scores: dict[str, list[float]] = {"original": original.tolist()}
        layers = list(result.layers)
        keep = layers[-1:] if self.skip_layers else layers
        for index, layer in enumerate(layers):
            if layer in keep:
                scores[layer] = curve[:, index].tolist()
        return scores

    def _finish(self, result: Any) -> Any:
        if self.return_aggregate:
            if isinstance(result, dict):
                raise OptionError(
                    "Set `return_average_correlation` or `return_last_correlation` to aggregate "
                    "MPRT scores (as Quantus requires).")
            result = self._aggregate(result)
        self.evaluation_scores = result
        self.all_evaluation_scores.append(result)
        return result


class ModelParameterRandomisation(MPRT):
    """The deprecated name of :class:`MPRT` (Quantus prints a notice; we issue a
    ``DeprecationWarning``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warnings.warn("ModelParameterRandomisation was renamed MPRT in Quantus 0.5; use MPRT.",
                      DeprecationWarning,
                      stacklevel=2)
        super().__init__(*args, **kwargs)


def _smoothed(explain: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor, *, n_samples: int,
              noise_magnitude: float, generator: torch.Generator, batch_size: int) -> Tensor:
    """Explanations averaged over ``n_samples`` Gaussian copies of each input, the last copy clean
    (sMPRT).

    Items are sample-major (item ``k`` is copy ``k % n`` of sample ``k // n``), noise from
    :class:`xaiscore._engine.noise.BlockNoise`, so the result does not depend on ``batch_size``.
    """
    spatial = tuple(range(1, x.ndim))
    std = noise_magnitude * (x.amax(dim=spatial) - x.amin(dim=spatial))
    n_items = x.shape[0] * n_samples
    noise = BlockNoise(n_items, tuple(x.shape[1:]), kind="gaussian", low=0.0, high=1.0,
                       generator=generator,
                       device=x.device, dtype=x.dtype)
    total: Tensor | None = None
    view = (-1,) + (1,) * (x.ndim - 1)
    for start in range(0, n_items, batch_size):  # chunks of the logical batch, not samples
        items = torch.arange(start, min(start + batch_size, n_items), device=x.device)
        rows = torch.div(items, n_samples, rounding_mode="floor")
        noisy = (items % n_samples != n_samples - 1).to(x.dtype)
        inputs = x[rows] + noise(start, start + items.shape[0]) * (std[rows] * noisy).reshape(view)
        a = explain(inputs, y[rows]).detach()
        if total is None:
            total = torch.zeros((x.shape[0],) + tuple(a.shape[1:]), dtype=a.dtype, device=a.device)
        total.index_add_(0, rows, a)
    return total / n_samples


class SmoothMPRT(MPRT):
    """Smooth MPRT (Hedström et al. 2023) on :func:`xaiscore.functional.smooth_mprt`.

    MPRT on explanations averaged over ``nr_samples`` noisy copies of the input
    (Gaussian, standard deviation ``noise_magnitude * (max x - min x)``, the
    last copy clean), as Quantus; the noise comes from ``seed`` and is shared by
    the randomized models. The unchanged model is explained once (``seed + 1``
    noise) and serves both as every layer's reference and in ``"original"``, so
    the model work is Quantus' (``B * nr_samples`` explanations per model). Returns
    the structure of :class:`MPRT`.

    Differences from Quantus 0.6.0: ``explain_func`` is used (Quantus' sMPRT
    always calls ``quantus.explain``); the reference for every layer is the
    smoothed explanation of the original model (Quantus uses ``a_batch`` when
    given); ``"original"`` compares ``a_batch`` (or a second smoothed
    explanation) with a smoothed explanation of the unchanged model, with
    noise of its own; see :class:`MPRT` for the rest.

    Defaults: ``layer_order="bottom_up", seed=42, nr_samples=50, noise_magnitude=0.1, abs=True,
    normalise=True`` (by the root mean square, Quantus'
    ``normalise_by_average_second_moment_estimate``).
    """

    name = "Smooth Model Parameter Randomisation Test"
    _default_normalise = "second_moment"
    _batch_wide_in_bug_mode = False  # the smoothing averages per-copy explanations first

    def __init__(self, similarity_func: Callable[..., Any] | None = None,
                 layer_order: str = "bottom_up",
                 seed: int = 42, nr_samples: int = 50, noise_magnitude: float = 0.1,
                 return_average_correlation: bool = False, return_last_correlation: bool = False,
                 skip_layers: bool = False, abs: bool = True, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(similarity_func=similarity_func, layer_order=layer_order, seed=seed,
                         return_average_correlation=return_average_correlation,
                         return_last_correlation=return_last_correlation, skip_layers=skip_layers,
                         abs=abs,
                         normalise=normalise, normalise_func=normalise_func,
                         normalise_func_kwargs=normalise_func_kwargs,
                         return_aggregate=return_aggregate,
                         aggregate_func=aggregate_func, default_plot_func=default_plot_func,
                         disable_warnings=disable_warnings, display_progressbar=display_progressbar,
                         quantus_bug_compatible=quantus_bug_compatible, **kwargs)
        self.nr_samples = check_positive_int(int(nr_samples), "nr_samples")
        self.noise_magnitude = float(noise_magnitude)
        self._memo: tuple[Prepared, Tensor] | None = None

    def _original(self, prepared: Prepared, factory: Any) -> Tensor:
        """The smoothed explanation of the unchanged model, computed once per call (as Quantus)."""
        if self._memo is None or self._memo[0] is not prepared:
            fresh = _smoothed(factory(prepared.model), prepared.x, prepared.y,
                              n_samples=self.nr_samples,
                              noise_magnitude=self.noise_magnitude, batch_size=prepared.batch_size,
                              generator=torch.Generator().manual_seed(self.seed + 1))
            self._memo = (prepared, fresh)
        return self._memo[1]

    def _evaluate(self, prepared: Prepared) -> Any:
        try:
            return super()._evaluate(prepared)
        finally:
            self._memo = None

    def _run(self, prepared: Prepared, reference: Tensor | None, normalise: str | None,
             factory: Any) -> Any:
        return smooth_mprt(prepared.model, prepared.x, prepared.y, explainer_factory=factory,
                           n_samples=self.nr_samples,
                           a=self._original(prepared, factory),
                           noise_magnitude=self.noise_magnitude, similarity=self._similarity,
                           order=self.layer_order, abs=self.abs, normalise=normalise,
                           reduce_channels=None,
                           seed=self.seed, reinit=self._reinit(), random_baseline=False,
                           max_batch_size=prepared.batch_size)

    def _reference_similarity(self, prepared: Prepared, reference: Tensor | None,
                              normalise: str | None,
                              factory: Any) -> Tensor:
        fresh = self._original(prepared, factory)
        options = dict(n_samples=self.nr_samples, noise_magnitude=self.noise_magnitude,
                       batch_size=prepared.batch_size)
        if reference is None:
            explain = factory(prepared.model)
            reference = _smoothed(explain, prepared.x, prepared.y,
                                  generator=torch.Generator().manual_seed(self.seed + 2), **options)
        return _compare(self._similarity,
                        _postprocess(reference, abs=self.abs, normalise=normalise),
                        _postprocess(fresh, abs=self.abs, normalise=normalise))


_BIN_RULES = {
    "Freedman Diaconis": "freedman_diaconis",
    "Scotts": "scott",
    "Square Root": "sqrt",
    "Sturges Formula": "sturges",
    "Rice": "rice",
}


class EfficientMPRT(_Randomisation):
    """Efficient MPRT (Hedström et al. 2023) on :func:`xaiscore.functional.efficient_mprt`.

    The relative rise of the explanation's histogram entropy from the original
    to the fully randomized model, ``(H_rand - H_orig) / H_orig``, per sample
    (higher is better). ``complexity_func_kwargs`` may set ``n_bins`` or a
    ``rule`` (Quantus' names: "Freedman Diaconis", "Scotts", "Square Root",
    "Sturges Formula", "Rice") with ``min_n_bins``/``max_n_bins``
    (default 100 bins).

    Differences from Quantus 0.6.0: bin rules count each sample's values (Quantus
    counts the dimensions of ``a_batch[0]``, e.g. 3, and computes one count for the
    whole batch); ``compute_extra_scores=True`` (model entropies) is not
    supported; per-layer seeds (``quantus_bug_compatible=True``: Quantus'
    re-initialisation).

    Defaults: ``layer_order="bottom_up", seed=42, skip_layers=True, abs=False, normalise=False``
    (when on: by the root mean square, as Quantus).
    """

    name = "Efficient Model Parameter Randomisation Test"
    score_direction = ScoreDirection.HIGHER
    default_softmax = True
    _default_normalise = "second_moment"

    def __init__(self, complexity_func: Callable[..., Any] | None = None,
                 complexity_func_kwargs: Mapping[str, Any] | None = None,
                 similarity_func: Callable[..., Any] | None = None, layer_order: str = "bottom_up",
                 seed: int = 42,
                 compute_extra_scores: bool = False, skip_layers: bool = True, abs: bool = False,
                 normalise: bool = False, normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        if complexity_func is not None and quantus_function_name(
                complexity_func, "quantus.functions.complexity_func") != "discrete_entropy":
            raise QuantusCompatibilityError(
                "EfficientMPRT computes the histogram entropy (Quantus' default "
                "`complexity_func`, discrete_entropy); other functions are not supported.")
        if compute_extra_scores:
            raise QuantusCompatibilityError(
                "EfficientMPRT(compute_extra_scores=True) is not supported by the "
                "drop-in; use quantus.EfficientMPRT for the model-entropy extras.")
        options = dict(complexity_func_kwargs or {})
        options.pop("debug", None)
        unknown = set(options) - {"n_bins", "rule", "n_bins_default", "min_n_bins", "max_n_bins"}
        if unknown:
            raise QuantusCompatibilityError(
                f"Unsupported `complexity_func_kwargs` {sorted(unknown)}.")
        self.complexity_func, self.complexity_func_kwargs = (complexity_func,
                                                             dict(complexity_func_kwargs or {}))
        if "n_bins" in options:
            self._n_bins: int | str = check_positive_int(int(options["n_bins"]), "n_bins")
        elif options.get("rule") is not None:
            if options["rule"] not in _BIN_RULES:
                raise OptionError(
                    f"Expected `rule` in {sorted(_BIN_RULES)}, but got {options['rule']!r}.")
            self._n_bins = _BIN_RULES[options["rule"]]
        else:
            self._n_bins = check_positive_int(int(options.get("n_bins_default", 100)),
                                              "n_bins_default")
        self._min_bins = int(options.get("min_n_bins", 10))
        self._max_bins = int(options.get("max_n_bins", 200))
        self.similarity_func = similarity_func
        self.layer_order = _check_order(layer_order)
        if self.layer_order == "independent":
            raise OptionError(
                "EfficientMPRT needs a cascading `layer_order` ('bottom_up' or 'top_down').")
        self.seed = _check_seed(seed)
        self.compute_extra_scores = False
        self.skip_layers = bool(skip_layers)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        if prepared.y is None:
            raise OptionError("EfficientMPRT explains the targets: pass `y_batch`.")
        normalise, transform = self._post()
        result = efficient_mprt(prepared.model, prepared.x, prepared.y,
                                explainer_factory=self._factory(prepared, transform),
                                n_bins=self._n_bins, min_bins=self._min_bins,
                                max_bins=self._max_bins,
                                layerwise=not self.skip_layers, order=self.layer_order,
                                abs=self.abs,
                                normalise=normalise, reduce_channels=None, seed=self.seed,
                                reinit=self._reinit(),
                                random_baseline=False, max_batch_size=prepared.batch_size)
        return result.score


class RandomLogit(_Randomisation):
    """Random logit (Sixt et al. 2020) on :func:`xaiscore.functional.random_logit`.

    The similarity between the explanation of the target class (``a_batch``, or
    computed) and that of a random other class drawn from ``seed`` (lower is better).

    Differences from Quantus 0.6.0: the default similarity is the windowed SSIM
    over the spatial axes (Sixt et al. compare images; a 7-wide window, the
    largest odd width that fits on inputs narrower than 7, the flattened SSIM
    below 3); Quantus flattens the
    maps (passing Quantus' ``ssim`` explicitly, or ``quantus_bug_compatible=True``,
    gives the flattened SSIM); the classes are drawn from ``seed`` without
    reseeding numpy's global generator (Quantus reseeds it for every batch).

    Defaults: ``num_classes=1000, seed=42, abs=False, normalise=True``.
    """

    name = "Random Logit"
    score_direction = ScoreDirection.LOWER
    needs_attributions = True

    def __init__(self, similarity_func: Callable[..., Any] | None = None, num_classes: int = 1000,
                 seed: int = 42,
                 abs: bool = False, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        self.similarity_func = similarity_func
        default = "ssim_flat" if quantus_bug_compatible else "ssim"
        self._similarity = map_similarity(similarity_func, default=default, allow_callable=True,
                                          metric=type(self).__name__)
        self.num_classes = check_positive_int(int(num_classes), "num_classes", minimum=2)
        self.seed = _check_seed(seed)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        normalise, transform = self._post()
        a = prepared.a_raw if transform is None else transform(prepared.a_raw)
        similarity, options = self._similarity, None
        if similarity == "ssim":  # a 7-wide window, narrowed (odd) for small inputs; flat below 3
            side = min(prepared.x.shape[2:])
            if side < 3:
                similarity = "ssim_flat"
            elif side < 7:
                options = {"win_size": side if side % 2 else side - 1}
        result = random_logit(prepared.model, prepared.x, prepared.y,
                              explainer_factory=self._factory(prepared, transform),
                              a=a, num_classes=self.num_classes, similarity=similarity,
                              similarity_kwargs=options,
                              abs=self.abs,
                              normalise=normalise, reduce_channels=None, seed=self.seed,
                              random_baseline=False,
                              max_batch_size=prepared.batch_size)
        return result.score
