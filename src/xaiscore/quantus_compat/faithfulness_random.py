"""Quantus' faithfulness metrics that draw random subsets or noise: faithfulness correlation,
infidelity and sensitivity-n, on :mod:`xaiscore.functional.faithfulness.random_perturbations`.

Conventions (baselines, seeding, ranking) as in :mod:`xaiscore.quantus_compat.faithfulness`,
which re-exports these classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from xaiscore._checks import OptionError
from xaiscore.functional.faithfulness.random_perturbations import (default_subset_sizes,
                                                                   sensitivity_n)
from xaiscore.quantus_compat._base import (Prepared, QuantusCompatibilityError, ScoreDirection,
                                           common)
from xaiscore.quantus_compat._faithfulness_base import _Faithfulness, _positive

__all__ = ["FaithfulnessCorrelation", "Infidelity", "SensitivityN"]


class FaithfulnessCorrelation(_Faithfulness):
    """Faithfulness correlation (Bhatt et al. 2020) on
    :func:`xaiscore.functional.faithfulness_correlation`.

    ``nr_runs`` random subsets of ``subset_size`` channel values per sample are
    replaced by the baseline; the score is the Pearson correlation of the
    subsets' attribution sums with the drops of the target score. Subsets are
    drawn from ``seed`` (Quantus: ``np.random.choice``, one call per sample and run).

    ``similarity_func``: ``None`` or Quantus' ``correlation_pearson``.

    Defaults: ``nr_runs=100, subset_size=224, perturb_baseline="black", abs=False,
    normalise=True, return_aggregate=True`` (the batch mean, as Quantus);
    ``softmax=False`` in ``__call__``.
    """

    name = "Faithfulness Correlation"
    score_direction = ScoreDirection.HIGHER
    default_softmax = False

    def __init__(self, similarity_func: Callable[..., Any] | None = None, nr_runs: int = 100,
                 subset_size: int = 224,
                 abs: bool = False, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_baseline: Any = "black",
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = True, aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False,
                 display_progressbar: bool = False, seed: int | None = None,
                 quantus_bug_compatible: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        self._set_similarity(similarity_func, "pearson")
        self.nr_runs = _positive(nr_runs, "nr_runs")
        self.subset_size = _positive(subset_size, "subset_size")
        self._setup_perturbation(perturb_func, perturb_baseline, perturb_func_kwargs, seed)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        from xaiscore.functional.faithfulness.random_perturbations import faithfulness_correlation

        return faithfulness_correlation(prepared.forward_fn, prepared.x, prepared.a, prepared.y,
                                        subset_size=self.subset_size, n_runs=self.nr_runs,
                                        baseline=self._baseline,
                                        reduce_channels=None, softmax=prepared.softmax,
                                        max_batch_size=prepared.batch_size,
                                        generator=self._generator())


class Infidelity(_Faithfulness):
    """Infidelity (Yeh et al. 2019) on :func:`xaiscore.functional.infidelity`.

    ``n_perturb_samples`` times per sample, a square of side drawn from
    ``perturb_patch_sizes`` at a random position is replaced by the baseline
    (``I = x - x_perturbed``); the score is the mean squared difference between
    ``sum(a * I)`` and the drop of the target score (lower is better).
    ``normalize=True`` applies Yeh et al.'s optimal scaling of ``a`` first.

    Differences from Quantus 0.6.0: Quantus' repeats are identical: each removes
    every square of a fixed grid in raster order, cumulatively (a deletion
    curve rather than random perturbations); ours draw a fresh random square per
    repeat from ``seed``. ``loss_func`` must be ``"mse"``.

    Defaults: ``loss_func="mse", perturb_patch_sizes=[4], n_perturb_samples=10,
    perturb_baseline="black", abs=False, normalise=False``; ``softmax=False`` in ``__call__``.
    """

    name = "Infidelity"
    score_direction = ScoreDirection.LOWER
    default_softmax = False

    def __init__(self, loss_func: str | Callable[..., Any] = "mse",
                 perturb_patch_sizes: Sequence[int] | None = None,
                 n_perturb_samples: int = 10, abs: bool = False, normalise: bool = False,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_baseline: Any = "black",
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False, aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False,
                 display_progressbar: bool = False, seed: int | None = None,
                 normalize: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        if not (loss_func == "mse" or getattr(loss_func, "__name__", None) == "mse"):
            raise QuantusCompatibilityError(
                f"Infidelity supports loss_func='mse' (the default), but got {loss_func!r}.")
        self.loss_func = loss_func
        sizes = [4] if perturb_patch_sizes is None else list(perturb_patch_sizes)
        self.perturb_patch_sizes = [_positive(size, "perturb_patch_sizes") for size in sizes]
        self.n_perturb_samples = _positive(n_perturb_samples, "n_perturb_samples")
        self.normalize = bool(normalize)
        self._setup_perturbation(perturb_func, perturb_baseline, perturb_func_kwargs, seed)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        from xaiscore.functional.faithfulness.random_perturbations import infidelity

        return infidelity(prepared.forward_fn, prepared.x, prepared.a, prepared.y,
                          perturbation="square",
                          patch_sizes=self.perturb_patch_sizes, baseline=self._baseline,
                          n_perturbations=self.n_perturb_samples, normalize=self.normalize,
                          multiply_by_inputs=False, softmax=prepared.softmax,
                          max_batch_size=prepared.batch_size,
                          generator=self._generator())


class SensitivityN(_Faithfulness):
    """Sensitivity-n (Ancona et al. 2018) on :func:`xaiscore.functional.sensitivity_n`.

    For each subset size ``n`` (``subset_sizes``; default 10 log-spaced sizes
    up to ``n_max_percentage`` of the channel values) and each sample,
    ``n_subsets`` random subsets of size ``n`` are replaced by the baseline and
    the attribution sums are correlated (Pearson) with the score drops.

    Returns, as Quantus, one number per ``n`` (a list over the sizes): here the
    mean over the samples of their correlations; with ``return_aggregate=True``
    (the default) their mean.

    Differences from Quantus 0.6.0: Quantus does not follow the paper: it deletes
    features cumulatively along the sorted map, ``features_in_step`` at a time,
    and correlates *across the samples of its first batch* per step (later batches
    are dropped); ours samples random subsets per sample and size, as Ancona et al.

    Model work: with ``n_subsets=None`` (default) the drop-in spends Quantus' budget of
    ``ceil(N / features_in_step)`` inputs per sample (``N`` values): ``budget // len(sizes)``
    subsets per size, clipped to [2, 100] (fewer default sizes when under 2 per size).

    Defaults: ``n_max_percentage=0.8, features_in_step=1, perturb_baseline="black", abs=False,
    normalise=True, return_aggregate=True, n_subsets=None``; ``softmax=True`` in ``__call__``.
    """

    name = "Sensitivity-N"
    score_direction = ScoreDirection.HIGHER

    def __init__(self, similarity_func: Callable[..., Any] | None = None,
                 n_max_percentage: float = 0.8,
                 features_in_step: int = 1, abs: bool = False, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_baseline: Any = "black",
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = True, aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False,
                 display_progressbar: bool = False, seed: int | None = None,
                 subset_sizes: Sequence[int | float] | None = None, n_subsets: int | None = None,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        self._set_similarity(similarity_func, "pearson")
        if not 0.0 < float(n_max_percentage) <= 1.0:
            raise OptionError(
                f"Expected `n_max_percentage` in (0, 1], but got {n_max_percentage!r}.")
        self.n_max_percentage = float(n_max_percentage)
        self.features_in_step = _positive(features_in_step, "features_in_step")
        self.subset_sizes = None if subset_sizes is None else list(subset_sizes)
        self.n_subsets = None if n_subsets is None else _positive(n_subsets, "n_subsets")
        self._setup_perturbation(perturb_func, perturb_baseline, perturb_func_kwargs, seed)

    def _plan(self, n_features: int) -> tuple[list[int | float], int]:
        """``(subset_sizes, n_subsets)``: as given, or within Quantus' model budget (see the class).
        """
        budget = math.ceil(n_features / self.features_in_step)  # Quantus' deletions per sample
        sizes = self.subset_sizes
        if sizes is None:
            count = 10 if self.n_subsets is not None or budget >= 20 else max(1, budget // 2)
            sizes = default_subset_sizes(n_features, count=count,
                                         max_fraction=self.n_max_percentage)
        return sizes, self.n_subsets or min(100, max(2, budget // len(sizes)))

    def _evaluate(self, prepared: Prepared) -> list[float]:
        sizes, n_subsets = self._plan(prepared.x[0].numel())
        result = sensitivity_n(prepared.forward_fn, prepared.x, prepared.a, prepared.y,
                               subset_sizes=sizes,
                               n_subsets=n_subsets, baseline=self._baseline, reduce_channels=None,
                               softmax=prepared.softmax, max_batch_size=prepared.batch_size,
                               generator=self._generator())
        return torch.nanmean(result.curve.double(), dim=0).cpu().tolist()
