"""The shared base of the Quantus faithfulness drop-ins (perturbation options, seeding)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from xaiscore._checks import DTypeError, check_positive_int
from xaiscore._engine.random import resolve_generator
from xaiscore.quantus_compat._base import Metric, QuantusCompatibilityError
from xaiscore.quantus_compat._options import (check_perturb_func, map_baseline, map_similarity,
                                              perturb_option)

_REPLACE = ("batch_baseline_replacement_by_indices", "baseline_replacement_by_indices")


def _positive(value: Any, name: str) -> int:
    if isinstance(value, (np.integer,)):
        value = int(value)
    return check_positive_int(value, name)


class _Faithfulness(Metric):
    """Model-based metrics that perturb ``x`` by the ranking of ``a``."""

    evaluation_category = "Faithfulness"
    needs_model = True
    default_softmax = True
    _perturb_funcs: tuple[str, ...] = _REPLACE

    def _set_similarity(self, similarity_func: Any, correlation: str) -> None:
        """Accept only ``correlation`` (``"pearson"`` or ``"spearman"``, the metric's default
        ``similarity_func``) and keep the argument as given."""
        if map_similarity(similarity_func, default=correlation, allow_callable=False,
                          metric=type(self).__name__) != correlation:
            raise QuantusCompatibilityError(
                f"{type(self).__name__} computes the {correlation.capitalize()} correlation (its "
                "default `similarity_func`); other similarities are not supported.")
        self.similarity_func = similarity_func

    def _setup_perturbation(self, perturb_func: Any, perturb_baseline: Any,
                            perturb_func_kwargs: Any,
                            seed: int | None) -> None:
        check_perturb_func(perturb_func, self._perturb_funcs, type(self).__name__)
        self.perturb_func = perturb_func
        self.perturb_baseline = perturb_option(perturb_func_kwargs, "perturb_baseline",
                                               perturb_baseline,
                                               type(self).__name__)
        self.perturb_func_kwargs = dict(perturb_func_kwargs or {})
        self._baseline = map_baseline(self.perturb_baseline)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise DTypeError(
                f"Expected `seed` to be an int or None, but got {type(seed).__name__}.")
        self.seed = None if seed is None else int(seed)

    def _generator(self) -> torch.Generator:
        """A fresh generator per call: seeded with ``seed``, or from the OS when ``seed`` is None.
        """
        return resolve_generator(None, self.seed)
