"""Quantus' axiomatic metrics on :mod:`xaiscore.functional.axiomatic`.

Example:
    >>> import numpy as np, torch
    >>> from xaiscore.quantus_compat import Completeness
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2, bias=False)).eval()
    >>> _ = model[1].weight.data.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
    >>> x = np.ones((1, 1, 4), np.float32)
    >>> a = np.array([[[1.0, 2.0, 3.0, 4.0]]])  # input x gradient: complete w.r.t. a zero baseline
    >>> Completeness(perturb_baseline=0.0, disable_warnings=True)(model, x, np.array([0]), a)
    [1.0]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from torch import Tensor

from xaiscore._checks import check_fraction
from xaiscore.functional.axiomatic import completeness, non_sensitivity
from xaiscore.quantus_compat._base import (Metric, Prepared, QuantusCompatibilityError,
                                           ScoreDirection, common)
from xaiscore.quantus_compat._options import check_perturb_func, map_baseline, perturb_option

__all__ = ["Completeness", "NonSensitivity", "InputInvariance"]

_REPLACE = ("batch_baseline_replacement_by_indices", "baseline_replacement_by_indices")


class Completeness(Metric):
    """Completeness (Sundararajan et al. 2017) on :func:`xaiscore.functional.completeness`.

    1.0 when the attributions sum to the change of the target score from the
    baseline input to ``x``, ``sum(a) ~= f(x) - f(x_0)`` within ``rtol``/``atol``,
    else 0.0.

    Differences from Quantus 0.6.0: Quantus compares with ``==`` in floating
    point, so exact attributions fail on rounding (``rtol=0, atol=0`` asks for
    exact equality, but which rounding errors occur depends on the order of
    summation, so not even that reproduces Quantus' bools); ``normalise`` defaults to False here,
    because Quantus' default ``normalise=True`` divides ``a`` by the batch maximum, which breaks
    completeness for any exact attribution; floats instead of bools. ``output_func`` must be
    ``None`` (the identity).

    Defaults: ``perturb_baseline="black", abs=False, normalise=False, rtol=0.05, atol=1e-6``;
    ``softmax=False`` in ``__call__``.
    """

    name = "Completeness"
    evaluation_category = "Axiomatic"
    score_direction = ScoreDirection.HIGHER
    needs_model = True

    def __init__(self, abs: bool = False, normalise: bool = False,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 output_func: Callable[..., Any] | None = None,
                 perturb_baseline: Any = "black", perturb_func: Callable[..., Any] | None = None,
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 rtol: float = 0.05,
                 atol: float = 1e-6, quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        if output_func is not None:
            raise QuantusCompatibilityError(
                "Completeness compares with the raw output difference; `output_func` "
                "other than None is not supported by the drop-in.")
        self.output_func = output_func
        check_perturb_func(perturb_func, _REPLACE, "Completeness")
        self.perturb_func = perturb_func
        self.perturb_baseline = perturb_option(perturb_func_kwargs, "perturb_baseline",
                                               perturb_baseline,
                                               "Completeness")
        self._baseline = map_baseline(self.perturb_baseline)
        if self._baseline == "uniform":
            raise QuantusCompatibilityError(
                "Completeness needs a deterministic baseline, not 'uniform'.")
        self.rtol = check_fraction(rtol, "rtol", high=float("inf"))
        self.atol = check_fraction(atol, "atol", high=float("inf"))

    def _evaluate(self, prepared: Prepared) -> Tensor:
        return completeness(prepared.forward_fn, prepared.x, prepared.a, prepared.y,
                            baseline=self._baseline,
                            rtol=self.rtol, atol=self.atol, softmax=prepared.softmax,
                            max_batch_size=prepared.batch_size)


class NonSensitivity(Metric):
    """Non-sensitivity (Nguyen and Martinez 2020) on :func:`xaiscore.functional.non_sensitivity`.

    Every channel value is replaced by the baseline on its own; the score counts
    the values whose removal changes the target probability by less than ``eps``
    but whose attribution magnitude is at least ``eps``, or vice versa (lower is better).

    Differences from Quantus 0.6.0: per-sample normalisation (Quantus: batch-wide,
    ``quantus_bug_compatible=True``); the attribution magnitude ``|a|`` also with
    ``abs=False`` (Quantus then counts negative values as zero attribution);
    ``features_in_step`` must be 1 (Quantus crashes for larger steps). Scores are floats.

    Defaults: ``eps=1e-5, features_in_step=1, perturb_baseline="black", abs=True, normalise=True``;
    ``softmax=True`` in ``__call__``.
    """

    name = "Non-Sensitivity"
    evaluation_category = "Axiomatic"
    score_direction = ScoreDirection.LOWER
    needs_model = True
    default_softmax = True

    def __init__(self, eps: float = 1e-5, features_in_step: int = 1, abs: bool = True,
                 normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_baseline: Any = "black",
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = np.mean,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False,
                 display_progressbar: bool = False, quantus_bug_compatible: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        self.eps = check_fraction(eps, "eps", high=float("inf"))
        if features_in_step != 1:
            raise QuantusCompatibilityError(
                "NonSensitivity compares one prediction per feature with one attribution per "
                "feature: features_in_step must be 1 (Quantus 0.6.0 crashes for larger steps). For "
                "groups of pixels use xaiscore.functional.non_sensitivity(..., patch_size=...)."
            )
        self.features_in_step = 1
        check_perturb_func(perturb_func, _REPLACE, "NonSensitivity")
        self.perturb_func = perturb_func
        self.perturb_baseline = perturb_option(perturb_func_kwargs, "perturb_baseline",
                                               perturb_baseline,
                                               "NonSensitivity")
        self._baseline = map_baseline(self.perturb_baseline)
        if self._baseline == "uniform":
            raise QuantusCompatibilityError(
                "NonSensitivity needs a deterministic baseline, not 'uniform'.")

    def _evaluate(self, prepared: Prepared) -> Tensor:
        return non_sensitivity(prepared.forward_fn, prepared.x, prepared.a, prepared.y,
                               eps=self.eps,
                               baseline=self._baseline, reduce_channels=None, normalise=None,
                               softmax=prepared.softmax, max_batch_size=prepared.batch_size)


class InputInvariance(Metric):
    """Input invariance (Kindermans et al. 2017): **not supported** by the drop-in.

    The test needs a copy of the model whose first layer absorbs an input
    shift (Quantus adjusts the bias of a first convolution, exactly only away
    from the borders). There is no xaiscore kernel for it; constructing this
    class raises :class:`QuantusCompatibilityError`. Use ``quantus.InputInvariance``.
    """

    name = "Input Invariance"
    evaluation_category = "Axiomatic"
    score_direction = ScoreDirection.HIGHER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise QuantusCompatibilityError(
            "InputInvariance has no xaiscore kernel (it needs a model whose first layer absorbs an "
            "input shift); use quantus.InputInvariance from the original package."
        )
