"""Quantus' robustness metrics on :mod:`xaiscore.functional.robustness`.

The re-explaining metrics explain ``nr_samples`` noisy copies of every input
through ``explain_func`` (one logical batch in chunks of ``batch_size``), with
noise drawn from ``seed`` (Quantus: numpy's global generator, which it
advances). ``normalise`` and ``abs`` apply to ``a`` and to every
re-explanation alike, per sample (Quantus: per batch; identical for a batch
of one, and ``quantus_bug_compatible`` does not change it here). A user
``normalise_func`` is applied to each map separately.

Example:
    >>> import numpy as np, torch
    >>> from xaiscore.quantus_compat import MaxSensitivity
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    >>> def explain(model, inputs, targets, **kwargs):  # a toy numpy explainer
    ...     return np.ones_like(inputs)
    >>> x = np.random.default_rng(0).random((2, 1, 4, 4)).astype(np.float32)
    >>> MaxSensitivity(nr_samples=4, seed=0, disable_warnings=True)(
    ...     model, x, np.array([0, 1]), explain_func=explain)
    [0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from xaiscore._checks import DTypeError, OptionError, check_positive_int
from xaiscore.functional.robustness import (
    avg_sensitivity,
    consistency,
    continuity,
    local_lipschitz_estimate,
    max_sensitivity,
    relative_input_stability,
    relative_output_stability,
    relative_representation_stability,
)
from xaiscore.quantus_compat._base import (
    ExplainAdapter,
    Metric,
    Prepared,
    QuantusCompatibilityError,
    ScoreDirection,
    common,
)
from xaiscore.quantus_compat._options import (
    check_perturb_func,
    map_norm,
    perturb_option,
    quantus_function_name,
)

__all__ = [
    "MaxSensitivity",
    "AvgSensitivity",
    "LocalLipschitzEstimate",
    "Continuity",
    "Consistency",
    "RelativeInputStability",
    "RelativeOutputStability",
    "RelativeRepresentationStability",
]


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DTypeError(f"Expected `seed` to be an int or None, but got {type(seed).__name__}.")
    return int(seed)


class _Reexplaining(Metric):
    """Metrics that call ``explain_func`` on perturbed inputs; the kernel normalises every map."""

    evaluation_category = "Robustness"
    score_direction = ScoreDirection.LOWER
    needs_explainer = True
    transforms_attributions = False

    def _kernel_postprocessing(self, prepared: Prepared) -> tuple[Tensor, Any, dict[str, Any]]:
        """``(a, explain_fn, {abs, normalise})`` for a kernel that post-processes every explanation
        itself."""
        if not self.normalise or self.normalisation_mode() == "max":
            options = {"abs": self.abs, "normalise": "sample" if self.normalise else None}
            return prepared.a_raw, prepared.explain_fn, options
        # A user normalise_func: applied to every map by the explain adapter, abs by the kernel.
        transform = lambda a: self.transform_attributions(a, apply_abs=False)  # noqa: E731
        explain = _with_transform(prepared.explain_fn, transform)
        return transform(prepared.a_raw), explain, {"abs": self.abs, "normalise": None}


def _with_transform(explain_fn: ExplainAdapter,
                    transform: Callable[[Tensor], Tensor]) -> ExplainAdapter:
    adapter = ExplainAdapter.__new__(ExplainAdapter)
    adapter.__dict__.update(explain_fn.__dict__)
    adapter.transform = transform
    return adapter


def _prediction_mode(flag: Any) -> str:
    return "nan" if flag else "keep"


class _Sensitivity(_Reexplaining):
    _kernel: Callable[..., Tensor]

    def __init__(self, similarity_func: Callable[..., Any] | None = None,
                 norm_numerator: Callable[..., Any] | None = None,
                 norm_denominator: Callable[..., Any] | None = None,
                 nr_samples: int = 200, abs: bool = False, normalise: bool = False,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 lower_bound: float = 0.2, upper_bound: float | None = None,
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 return_nan_when_prediction_changes: bool = False, seed: int | None = None,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        name = type(self).__name__
        if similarity_func is not None and quantus_function_name(
                similarity_func, "quantus.functions.similarity_func") != "difference":
            raise QuantusCompatibilityError(
                f"{name} measures the difference of the maps (Quantus' default "
                "`similarity_func`, `difference`); other similarities are not supported.")
        p_numerator = map_norm(norm_numerator, "norm_numerator", name)
        p_denominator = map_norm(norm_denominator, "norm_denominator", name)
        if p_numerator != p_denominator:
            raise QuantusCompatibilityError(
                f"{name} uses one norm for numerator and denominator; got two.")
        self.similarity_func, self.norm_numerator, self.norm_denominator = (
            similarity_func,
            norm_numerator,
            norm_denominator,
        )
        self.p = p_numerator
        self.nr_samples = check_positive_int(int(nr_samples), "nr_samples")
        check_perturb_func(perturb_func, ("batch_uniform_noise", "uniform_noise"), name)
        self.perturb_func = perturb_func
        self.lower_bound = float(perturb_option(perturb_func_kwargs, "lower_bound", lower_bound,
                                                name,
                                                allowed=("upper_bound",)))
        upper = dict(perturb_func_kwargs or {}).get("upper_bound", upper_bound)
        self.upper_bound = None if upper is None else float(upper)
        self.return_nan_when_prediction_changes = bool(return_nan_when_prediction_changes)
        self.seed = _check_seed(seed)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        a, explain, post = self._kernel_postprocessing(prepared)
        noise_bounds = None if self.upper_bound is None else (self.lower_bound, self.upper_bound)
        return type(self)._kernel(prepared.x, a, prepared.y, explain_fn=explain,
                                  forward_fn=prepared.forward_fn,
                                  n_samples=self.nr_samples, noise="uniform",
                                  radius=self.lower_bound,
                                  noise_bounds=noise_bounds, p=self.p, relative=True,
                                  on_prediction_change=_prediction_mode(
                                      self.return_nan_when_prediction_changes),
                                  seed=self.seed, max_batch_size=prepared.batch_size, **post)


class MaxSensitivity(_Sensitivity):
    """Max-sensitivity (Yeh et al. 2019) on :func:`xaiscore.functional.max_sensitivity`.

    ``max_j ||a(x + d_j) - a(x)||_2 / ||a(x)||_2`` over ``nr_samples`` copies with
    uniform noise on ``[-lower_bound, lower_bound]`` (``[lower_bound, upper_bound]``
    when ``upper_bound`` is given), as Quantus.

    Differences from Quantus 0.6.0: noise from ``seed`` (Quantus: the global numpy
    generator); an all-zero map gives NaN (Quantus asserts); per-sample normalisation.

    Defaults: ``nr_samples=200, lower_bound=0.2, abs=False, normalise=False``. Lower is better.
    """

    name = "Max-Sensitivity"
    _kernel = staticmethod(max_sensitivity)


class AvgSensitivity(_Sensitivity):
    """Average sensitivity (Yeh et al. 2019) on :func:`xaiscore.functional.avg_sensitivity`.

    The mean instead of the maximum of :class:`MaxSensitivity`'s ratios; same
    options, defaults and differences.
    """

    name = "Avg-Sensitivity"
    _kernel = staticmethod(avg_sensitivity)


class LocalLipschitzEstimate(_Reexplaining):
    """Local Lipschitz estimate (Alvarez-Melis and Jaakkola 2018) on
    :func:`xaiscore.functional.local_lipschitz_estimate`.

    ``max_j ||a(x + d_j) - a(x)||_2 / ||d_j||_2`` with Gaussian noise of standard
    deviation ``perturb_std``.

    Differences from Quantus 0.6.0: noise from ``seed``; per-sample
    normalisation (Quantus normalises each batch by its maximum); no 1e-10 in the
    denominator. ``perturb_mean`` must be 0.

    Defaults: ``nr_samples=200, perturb_std=0.1, abs=False, normalise=True``;
    ``softmax=True`` in ``__call__`` (only for prediction changes). Lower is better.
    """

    name = "Local Lipschitz Estimate"
    default_softmax = True

    def __init__(self, similarity_func: Callable[..., Any] | None = None,
                 norm_numerator: Callable[..., Any] | None = None,
                 norm_denominator: Callable[..., Any] | None = None,
                 nr_samples: int = 200, abs: bool = False, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_mean: float = 0.0, perturb_std: float = 0.1,
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 return_nan_when_prediction_changes: bool = False, seed: int | None = None,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        name = type(self).__name__
        if similarity_func is not None and quantus_function_name(
                similarity_func, "quantus.functions.similarity_func") != "lipschitz_constant":
            raise QuantusCompatibilityError(
                f"{name} computes the Lipschitz quotient (Quantus' default "
                "`similarity_func`); other similarities are not supported.")
        for norm, label in ((norm_numerator, "norm_numerator"),
                            (norm_denominator, "norm_denominator")):
            if norm is not None and quantus_function_name(norm,
                                                          "quantus.functions.similarity_func") \
                    != "distance_euclidean":
                raise QuantusCompatibilityError(
                    f"{name} supports `{label}` distance_euclidean (the default) only.")
        self.similarity_func, self.norm_numerator, self.norm_denominator = (
            similarity_func,
            norm_numerator,
            norm_denominator,
        )
        self.nr_samples = check_positive_int(int(nr_samples), "nr_samples")
        check_perturb_func(perturb_func, ("batch_gaussian_noise", "gaussian_noise"), name)
        self.perturb_func = perturb_func
        self.perturb_std = float(perturb_option(perturb_func_kwargs, "perturb_std", perturb_std,
                                                name,
                                                allowed=("perturb_mean",)))
        self.perturb_mean = float(dict(perturb_func_kwargs or {}).get("perturb_mean", perturb_mean))
        if self.perturb_mean != 0.0:
            raise QuantusCompatibilityError(
                f"{name} supports zero-mean noise only, but got perturb_mean={perturb_mean}.")
        self.return_nan_when_prediction_changes = bool(return_nan_when_prediction_changes)
        self.seed = _check_seed(seed)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        a, explain, post = self._kernel_postprocessing(prepared)
        return local_lipschitz_estimate(
            prepared.x, a, prepared.y, explain_fn=explain, forward_fn=prepared.forward_fn,
            n_samples=self.nr_samples,
            noise="gaussian", radius=self.perturb_std, p=2.0,
            on_prediction_change=_prediction_mode(self.return_nan_when_prediction_changes),
            seed=self.seed,
            max_batch_size=prepared.batch_size, **post)


class Continuity(_Reexplaining):
    """Continuity (Montavon et al. 2018) on :func:`xaiscore.functional.continuity`.

    ``max_t ||a(x) - a(tau_t x)||_1 / ||x - tau_t x||_2`` over ``nr_steps``
    horizontal translations ``tau_t`` (Quantus' schedule), uncovered pixels
    filled with ``perturb_baseline``. As in Quantus, the maps are explained here
    (``a_batch`` is not used).

    Differences from Quantus 0.6.0: the zero shift (0/0) is left out (Quantus adds
    1e-9, which turns any randomness of the explainer into a score near 1e9);
    ``return_nan_when_prediction_changes`` compares with the prediction on ``x``
    (Quantus: with ``y_batch``); per-sample normalisation.

    Defaults: ``nr_steps=28, perturb_baseline="black", abs=True, normalise=True``. Lower is better.
    """

    name = "Continuity Test"
    needs_attributions = False

    def __init__(self, nr_steps: int = 28, abs: bool = True, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_baseline: Any = "black",
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False, aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False,
                 display_progressbar: bool = False,
                 return_nan_when_prediction_changes: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        name = type(self).__name__
        self.nr_steps = check_positive_int(int(nr_steps), "nr_steps")
        check_perturb_func(perturb_func, ("batched_translation", "translation_x_direction"), name)
        self.perturb_func = perturb_func
        self.perturb_baseline = perturb_option(perturb_func_kwargs, "perturb_baseline",
                                               perturb_baseline, name)
        fill = self.perturb_baseline
        if isinstance(fill, str) and fill.lower() in ("black", "white", "mean"):
            self._fill: str | float = fill.lower()
        elif (isinstance(fill, (int, float, np.integer, np.floating))
              and not isinstance(fill, (bool, np.bool_))):
            self._fill = float(fill)
        else:
            raise QuantusCompatibilityError(
                "Continuity fills with 'black', 'white', 'mean' or a number, but got "
                f"perturb_baseline={fill!r}."
            )
        self.return_nan_when_prediction_changes = bool(return_nan_when_prediction_changes)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        if prepared.y is None:
            raise OptionError("Continuity explains `x_batch`: pass `y_batch`.")
        raw = self._explain_in_chunks(prepared.explain_fn, prepared.x, prepared.y,
                                      prepared.batch_size)
        prepared.a_raw = raw
        a, explain, post = self._kernel_postprocessing(prepared)
        mode = _prediction_mode(self.return_nan_when_prediction_changes)
        return continuity(prepared.x, a, prepared.y, explain_fn=explain,
                          forward_fn=prepared.forward_fn if mode != "keep" else None,
                          n_steps=self.nr_steps,
                          fill=self._fill, on_prediction_change=mode,
                          max_batch_size=prepared.batch_size, **post)


_DISCRETISATIONS = {"top_n_sign": "top_k_sign", "sign": "sign"}


class Consistency(Metric):
    """Local consistency (Dasgupta et al. 2022) on :func:`xaiscore.functional.consistency`.

    The share of the *other* samples in the batch with the same discretised
    explanation that also get the same predicted class. ``discretise_func``:
    ``None`` or Quantus' ``top_n_sign`` (the set of the 5 largest ``|a|`` and their
    signs) or ``sign`` (the sign of every value).

    Differences from Quantus 0.6.0: ``top_n_sign`` takes the *largest* five values
    (Quantus takes the first five in memory order, so nearly all maps look
    alike); a sample without explanation-mates is NaN (Quantus: 0); higher is
    better (Quantus marks the metric lower-is-better although it is a probability
    of agreement).

    Defaults: ``abs=True, normalise=True``.
    """

    name = "Consistency"
    evaluation_category = "Robustness"
    score_direction = ScoreDirection.HIGHER
    needs_model = True
    default_softmax = True

    def __init__(self, discretise_func: Callable[..., Any] | None = None, abs: bool = True,
                 normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        name = "top_n_sign" if discretise_func is None else quantus_function_name(
            discretise_func, "quantus.functions.discretise_func")
        if name not in _DISCRETISATIONS:
            raise QuantusCompatibilityError(
                "Consistency supports `discretise_func` "
                "quantus.functions.discretise_func.top_n_sign (the default) or sign, but got "
                f"{getattr(discretise_func, '__name__', discretise_func)!r}."
            )
        self.discretise_func = discretise_func
        self._discretisation = _DISCRETISATIONS[name]

    def _evaluate(self, prepared: Prepared) -> Tensor:
        return consistency(prepared.forward_fn, prepared.x, prepared.a,
                           discretisation=self._discretisation, k=5,
                           reduce_channels=None, max_batch_size=prepared.batch_size)


class _RelativeStability(_Reexplaining):
    """RIS, ROS and RRS share the constructor and Quantus' call signature
    (channel-first by default)."""

    def __init__(self, nr_samples: int = 200, abs: bool = False, normalise: bool = False,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None, disable_warnings: bool = False,
                 display_progressbar: bool = False, eps_min: float = 1e-6,
                 default_plot_func: Callable[..., Any] | None = None,
                 return_nan_when_prediction_changes: bool | None = None, seed: int | None = None,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        layer_names = kwargs.pop("layer_names", None)
        layer_indices = kwargs.pop("layer_indices", None)
        super().__init__(**common(locals()))
        name = type(self).__name__
        self.nr_samples = check_positive_int(int(nr_samples), "nr_samples")
        check_perturb_func(perturb_func, ("batch_uniform_noise", "uniform_noise"), name)
        self.perturb_func = perturb_func
        options = dict(perturb_func_kwargs or {})
        unknown = set(options) - {"lower_bound", "upper_bound"}
        if unknown:
            raise QuantusCompatibilityError(
                f"{name} supports the perturbation options lower_bound, upper_bound, "
                f"but got {sorted(unknown)}.")
        self.perturb_func_kwargs = options
        self.eps_min = float(eps_min)
        self.return_nan_when_prediction_changes = return_nan_when_prediction_changes
        self.seed = _check_seed(seed)
        self.layer_names, self.layer_indices = layer_names, layer_indices

    def _noise(self) -> dict[str, Any]:
        options = self.perturb_func_kwargs
        if "upper_bound" in options:
            return {"noise_bounds": (float(options.get("lower_bound", 0.02)),
                                     float(options["upper_bound"]))}
        if "lower_bound" in options:
            return {"radius": float(options["lower_bound"])}
        # Quantus' default: upper_bound=0.2 makes U(0.02, 0.2), one-sided
        if self.quantus_bug_compatible:
            return {"noise_bounds": (0.02, 0.2)}
        return {"radius": 0.2}

    def _prediction_change(self) -> str:
        flag = self.return_nan_when_prediction_changes
        if flag is None:
            return "nan" if self.quantus_bug_compatible else "exclude"
        return "nan" if flag else "keep"

    def __call__(self, model: nn.Module, x_batch: np.ndarray, y_batch: np.ndarray,
                 model_predict_kwargs: Mapping[str, Any] | None = None,
                 explain_func: Callable[..., Any] | None = None,
                 explain_func_kwargs: Mapping[str, Any] | None = None,
                 a_batch: np.ndarray | None = None,
                 device: str | torch.device | None = None, softmax: bool = False,
                 channel_first: bool = True,
                 batch_size: int = 64, **kwargs: Any) -> Any:
        """Score a batch (Quantus' argument order for this metric; ``channel_first=True`` by
        default)."""
        return super().__call__(model, x_batch, y_batch, a_batch=a_batch,
                                channel_first=channel_first,
                                explain_func=explain_func, explain_func_kwargs=explain_func_kwargs,
                                model_predict_kwargs=model_predict_kwargs, softmax=softmax,
                                device=device,
                                batch_size=batch_size, **kwargs)

    def _options(self, prepared: Prepared) -> tuple[Tensor, dict[str, Any]]:
        a, explain, post = self._kernel_postprocessing(prepared)
        return a, dict(explain_fn=explain, n_samples=self.nr_samples, eps_min=self.eps_min,
                       on_prediction_change=self._prediction_change(), seed=self.seed,
                       max_batch_size=prepared.batch_size, **self._noise(), **post)


_STABILITY_DOC = """

    ``nr_samples`` copies with uniform noise; the score is the largest ratio
    over the copies that keep the prediction (Agarwal et al.).

    Differences from Quantus 0.6.0: Quantus' default noise is one-sided,
    U(0.02, 0.2) (it passes ``upper_bound=0.2``); ours is U(-0.2, 0.2) unless
    ``perturb_func_kwargs`` sets ``lower_bound``/``upper_bound``. Quantus returns
    NaN for a sample as soon as one copy changes the prediction
    (``return_nan_when_prediction_changes=True``, its default); ours leaves
    those copies out (default ``None``; ``True`` gives NaN, ``False`` keeps them).
    ``quantus_bug_compatible=True`` restores both Quantus defaults. The
    denominator is ``max(., eps_min)`` (Quantus adds ``eps_min`` only to exact
    zeros). Noise from ``seed``.

    Defaults: ``nr_samples=200, eps_min=1e-6, abs=False, normalise=False``;
    ``softmax=False``, ``channel_first=True`` in ``__call__``. Lower is better.
    """


class RelativeInputStability(_RelativeStability):
    __doc__ = ("Relative input stability (Agarwal et al. 2022) on "
               ":func:`xaiscore.functional.relative_input_stability`." + _STABILITY_DOC)

    name = "Relative Input Stability"
    needs_model = True

    def _evaluate(self, prepared: Prepared) -> Tensor:
        a, options = self._options(prepared)
        return relative_input_stability(prepared.forward_fn, prepared.x, a, prepared.y, **options)


class RelativeOutputStability(_RelativeStability):
    __doc__ = ("Relative output stability (Agarwal et al. 2022) on "
               ":func:`xaiscore.functional.relative_output_stability`; with ``softmax=True`` the "
               "model output is the probabilities." + _STABILITY_DOC)

    name = "Relative Output Stability"
    needs_model = True

    def _evaluate(self, prepared: Prepared) -> Tensor:
        a, options = self._options(prepared)
        forward = prepared.forward_fn
        if prepared.softmax:
            forward = _Softmaxed(forward)
        return relative_output_stability(forward, prepared.x, a, prepared.y, **options)


class _Softmaxed:
    def __init__(self, forward_fn: Callable[[Tensor], Tensor]) -> None:
        self.forward_fn = forward_fn

    def __call__(self, x: Tensor) -> Tensor:
        return torch.softmax(self.forward_fn(x), dim=-1)


class _LayoutModel(nn.Module):
    """The user's model behind canonical inputs, so that hooks see its layers as ``model.<name>``.
    """

    def __init__(self, model: nn.Module, model_shape: tuple[int, ...],
                 predict_kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.model_shape = model_shape
        self.predict_kwargs = dict(predict_kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x.reshape((x.shape[0],) + self.model_shape), **self.predict_kwargs)


def _hidden_layers(model: nn.Module, names: Sequence[str] | None,
                   indices: Sequence[int] | None) -> list[str]:
    """Quantus' layer selection: the modules other than the model itself and ``nn.Sequential``
    containers, those named in ``names`` or at ``indices`` in that list
    (all of them when neither is given)."""
    n_modules = len(list(model.named_modules()))
    hidden = [name for name, module in model.named_modules() if not isinstance(
        module, (type(model), nn.Sequential))]
    positions = {i if i >= 0 else n_modules + i for i in (indices or [])}
    everything = not names and not positions
    wanted = [name for index, name in enumerate(hidden)
              if everything or index in positions or name in (names or [])]
    if not wanted:
        raise OptionError(
            "No hidden representations were selected: check `layer_names`/`layer_indices`.")
    return wanted


class RelativeRepresentationStability(_RelativeStability):
    __doc__ = ("Relative representation stability (Agarwal et al. 2022) on "
               ":func:`xaiscore.functional.relative_representation_stability`.\n\n"
               "    The representation is the outputs of the layers ``layer_names`` / "
               "``layer_indices``\n    (Quantus' selection: all modules but containers when "
               "neither is given), concatenated."
               + _STABILITY_DOC)

    name = "Relative Representation Stability"
    needs_model = True

    def __init__(self, nr_samples: int = 200, abs: bool = False, normalise: bool = False,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None, disable_warnings: bool = False,
                 display_progressbar: bool = False, eps_min: float = 1e-6,
                 default_plot_func: Callable[..., Any] | None = None,
                 layer_names: Sequence[str] | None = None,
                 layer_indices: Sequence[int] | None = None,
                 return_nan_when_prediction_changes: bool | None = None,
                 seed: int | None = None, quantus_bug_compatible: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(nr_samples=nr_samples, abs=abs, normalise=normalise,
                         normalise_func=normalise_func,
                         normalise_func_kwargs=normalise_func_kwargs, perturb_func=perturb_func,
                         perturb_func_kwargs=perturb_func_kwargs, return_aggregate=return_aggregate,
                         aggregate_func=aggregate_func, disable_warnings=disable_warnings,
                         display_progressbar=display_progressbar, eps_min=eps_min,
                         default_plot_func=default_plot_func,
                         return_nan_when_prediction_changes=return_nan_when_prediction_changes,
                         seed=seed,
                         quantus_bug_compatible=quantus_bug_compatible, layer_names=layer_names,
                         layer_indices=layer_indices, **kwargs)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        a, options = self._options(prepared)
        model = prepared.model
        layers = ["model." + name for name in _hidden_layers(model, self.layer_names,
                                                             self.layer_indices)]
        wrapped = _LayoutModel(model, prepared.model_shape, prepared.forward_fn.predict_kwargs)
        return relative_representation_stability(wrapped, prepared.x, a, prepared.y, layer=layers,
                                                 **options)
