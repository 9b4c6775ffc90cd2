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

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from torch import Tensor

from xaiscore._checks import OptionError, check_positive_int
from xaiscore.functional.robustness import (
    avg_sensitivity,
    consistency,
    continuity,
    local_lipschitz_estimate,
    max_sensitivity,
)
from xaiscore.quantus_compat._base import (
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
from xaiscore.quantus_compat._robustness_base import _check_seed, _prediction_mode, _Reexplaining
from xaiscore.quantus_compat.robustness_stability import (
    RelativeInputStability,
    RelativeOutputStability,
    RelativeRepresentationStability,
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
