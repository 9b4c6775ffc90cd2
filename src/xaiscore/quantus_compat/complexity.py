"""Quantus' complexity metrics on :mod:`xaiscore.functional.complexity`.

Every value of the (normalised, absolute) map is a feature, channel values
included, as in Quantus. Our kernels never modify their input (Quantus'
``Sparseness``/``Complexity`` write into the caller's ``a_batch`` when
``abs=False, normalise=False``).

Example:
    >>> import numpy as np
    >>> from xaiscore.quantus_compat import Sparseness
    >>> a = np.array([[[0.0, 0.0, 0.0, 2.0]], [[1.0, 1.0, 1.0, 1.0]]])
    >>> Sparseness(disable_warnings=True)(None, np.zeros((2, 1, 4)), np.zeros(2, int), a)
    [0.75, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from torch import Tensor

from xaiscore._checks import check_fraction
from xaiscore.functional.complexity import complexity, effective_complexity, sparseness
from xaiscore.quantus_compat._base import Metric, Prepared, ScoreDirection, common

__all__ = ["Sparseness", "Complexity", "EffectiveComplexity"]


class Sparseness(Metric):
    """Sparseness (Chalasani et al. 2020): the Gini index of ``|a|``, on
    :func:`xaiscore.functional.sparseness`.

    Differences from Quantus 0.6.0: no 1e-7 added to every value (a
    difference of about 1e-7); an all-zero map is NaN (Quantus: 0); the Gini
    index is taken of ``|a|`` also with ``abs=False`` (Quantus then ranks signed
    values, for which the Gini index is undefined); the caller's array is never modified.

    Defaults: ``abs=True, normalise=True``.
    """

    name = "Sparseness"
    evaluation_category = "Complexity"
    score_direction = ScoreDirection.HIGHER

    def __init__(self, abs: bool = True, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))

    def _evaluate(self, prepared: Prepared) -> Tensor:
        return sparseness(prepared.a, reduce_channels=None)


class Complexity(Metric):
    """Complexity (Bhatt et al. 2020): the entropy of ``|a| / sum |a|``, on
    :func:`xaiscore.functional.complexity`.

    Differences from Quantus 0.6.0: the exact ``0 log 0 = 0`` (Quantus takes
    ``log(p + 1e-12)``, a difference below ``N * 1e-12``); an all-zero map is
    NaN; fractions of ``|a|`` also with ``abs=False`` (Quantus then takes the log
    of negative values: NaN); the caller's array is never modified.

    Defaults: ``abs=True, normalise=True``. Lower is better.
    """

    name = "Complexity"
    evaluation_category = "Complexity"
    score_direction = ScoreDirection.LOWER

    def __init__(self, abs: bool = True, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))

    def _evaluate(self, prepared: Prepared) -> Tensor:
        return complexity(prepared.a, reduce_channels=None)


class EffectiveComplexity(Metric):
    """Effective complexity (Nguyen and Martinez 2020): the number of values above ``eps``.

    On :func:`xaiscore.functional.effective_complexity`, counting ``|a| > eps``
    after ``normalise`` (per sample here; batch-wide, as Quantus, with
    ``quantus_bug_compatible=True``). Returned as floats.

    Differences from Quantus 0.6.0: the normalisation is per sample, so a
    sample's count does not depend on its batch-mates; ``|a|`` is counted also
    with ``abs=False`` (Quantus then counts only positive values above ``eps``).

    Defaults: ``eps=1e-5, abs=True, normalise=True``. Lower is better.
    """

    name = "Effective Complexity"
    evaluation_category = "Complexity"
    score_direction = ScoreDirection.LOWER

    def __init__(self, eps: float = 1e-5, abs: bool = True, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        self.eps = check_fraction(eps, "eps", high=math.inf)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        return effective_complexity(prepared.a, eps=self.eps, normalise=None, reduce_channels=None)
