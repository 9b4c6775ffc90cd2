"""Quantus' localisation metrics on :mod:`xaiscore.functional.localization`.

Every class takes ``a_batch`` (or ``explain_func``), ``s_batch`` masks
``(B, 1, *S)`` and returns one float per sample, NaN for an empty mask.
``x_batch`` fixes the layout; ``model`` and ``y_batch`` are only used to
compute missing attributions. Multi-channel attributions are summed over
channels (Quantus crashes on them).

Example:
    >>> import numpy as np
    >>> from xaiscore.quantus_compat import RelevanceRankAccuracy
    >>> a = np.arange(32.0).reshape(2, 1, 4, 4); a[1] = -a[1]  # sample 0 peaks bottom-right, 1 top-left
    >>> s = np.zeros((2, 1, 4, 4)); s[:, 0, :2, :2] = 1
    >>> RelevanceRankAccuracy(disable_warnings=True)(None, np.zeros((2, 1, 4, 4)), np.zeros(2, int), a, s)
    [0.0, 0.5]
"""  # noqa: E501

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from xaiscore._checks import DTypeError, OptionError, ShapeError
from xaiscore.functional import localization as loc
from xaiscore.functional.mosaic import focus
from xaiscore.quantus_compat._base import Metric, Prepared, ScoreDirection, common

__all__ = [
    "PointingGame",
    "AttributionLocalisation",
    "TopKIntersection",
    "RelevanceMassAccuracy",
    "RelevanceRankAccuracy",
    "AUC",
    "Focus",
]


class _Localisation(Metric):
    evaluation_category = "Localisation"
    needs_masks = True
    score_direction = ScoreDirection.HIGHER


class PointingGame(_Localisation):
    """Pointing game (Zhang et al. 2018) on :func:`xaiscore.functional.pointing_game`.

    1.0 when the maximum of the map lies in the mask, else 0.0; with
    ``weighted=True`` a hit scores ``1 - |mask| / N``.

    Differences from Quantus 0.6.0: scores are floats (Quantus returns bools);
    an **empty mask is NaN** (Quantus writes NaN into a bool array: a hit);
    ``weighted=True`` works (Quantus crashes); tied maxima score the share of
    them that hit (the expected score of a random tie-break); Quantus counts a
    hit if *any* tied maximum hits (``quantus_bug_compatible=True``), so a
    constant map always scores 1.

    Defaults: ``abs=False, normalise=True`` (no effect on the argmax).
    """

    name = "Pointing Game"

    def __init__(self, weighted: bool = False, abs: bool = False, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        self.weighted = bool(weighted)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        ties = "any" if self.quantus_bug_compatible else "fraction"
        return loc.pointing_game(prepared.a, prepared.s, weighted=self.weighted, ties=ties)


class AttributionLocalisation(_Localisation):
    """Attribution localisation (Kohlbrenner et al. 2020) on
    :func:`xaiscore.functional.attribution_localisation`.

    The share of positive attribution inside the mask; ``weighted=True``
    divides it by the mask's area fraction ``|M| / N`` (the paper's weighting).

    Differences from Quantus 0.6.0: positive attribution only, always (Quantus
    sums signed values unless ``positive_attributions=True`` or ``abs=True``,
    its default, and turns ratios above 1 into NaN); Quantus' ``weighted``
    *multiplies* by ``|M| / x_batch[2:].size``, a slice of the batch, so its
    weighted score depends on the batch size; no 1e-9 in the denominator (a
    map without positive values is NaN). ``max_size`` only warns, as in Quantus.

    Defaults: ``abs=True, normalise=True``.
    """

    name = "Attribution Localisation"

    def __init__(self, weighted: bool = False, max_size: float = 1.0,
                 positive_attributions: bool = False,
                 abs: bool = True, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 display_progressbar: bool = False, disable_warnings: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        self.weighted = bool(weighted)
        self.max_size = float(max_size)
        self.positive_attributions = bool(positive_attributions)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        if not self.disable_warnings:
            area = prepared.s.reshape(prepared.s.shape[0], -1).float().mean(1)
            if bool((area > self.max_size).any()):
                warnings.warn(
                    f"AttributionLocalisation: a mask covers more than max_size={self.max_size} "
                    "of the input.", UserWarning, stacklevel=4)
        return loc.attribution_localisation(prepared.a, prepared.s, weighted=self.weighted)


class TopKIntersection(_Localisation):
    """Top-k intersection (Theiner et al. 2022) on :func:`xaiscore.functional.top_k_intersection`.

    The share of the ``k`` highest-attributed pixels that lie inside the mask;
    ``concept_influence=True`` multiplies by ``N / |M|``.

    Differences from Quantus 0.6.0: ties at the k-th value count by their
    expectation (Quantus breaks them by memory order); ``k`` may equal the
    number of pixels (Quantus requires ``k < N``).

    Defaults: ``k=1000, abs=False, normalise=True``.
    """

    name = "Top-K Intersection"

    def __init__(self, k: int = 1000, concept_influence: bool = False, abs: bool = False,
                 normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise DTypeError(f"Expected `k` to be an int, but got {type(k).__name__} {k!r}.")
        self.k = int(k)
        self.concept_influence = bool(concept_influence)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        return loc.top_k_intersection(prepared.a, prepared.s, k=self.k,
                                      concept_influence=self.concept_influence)


class RelevanceMassAccuracy(_Localisation):
    """Relevance mass accuracy (Arras et al. 2022) on
    :func:`xaiscore.functional.relevance_mass_accuracy`.

    ``sum(R in mask) / sum(R)`` with ``R`` the positive part of the map
    (Arras et al.), in [0, 1].

    Differences from Quantus 0.6.0: Quantus uses the signed values (with its
    default ``abs=False``), so mixed-sign maps can leave [0, 1] and explode when
    positive and negative mass cancel; ``quantus_bug_compatible=True`` uses the
    signed values. NaN also for a map without positive values.

    Defaults: ``abs=False, normalise=True``.
    """

    name = "Relevance Mass Accuracy"

    def __init__(self, abs: bool = False, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))

    def _evaluate(self, prepared: Prepared) -> Tensor:
        relevance = "signed" if self.quantus_bug_compatible else "positive"
        return loc.relevance_mass_accuracy(prepared.a, prepared.s, relevance=relevance)


class RelevanceRankAccuracy(_Localisation):
    """Relevance rank accuracy (Arras et al. 2022) on
    :func:`xaiscore.functional.relevance_rank_accuracy`.

    The share of the ``|M|`` highest-attributed pixels that lie inside the mask.

    Differences from Quantus 0.6.0: ties at the ``|M|``-th value count by their
    expectation (Quantus: memory order).

    Defaults: ``abs=False, normalise=True``.
    """

    name = "Relevance Rank Accuracy"

    def __init__(self, abs: bool = False, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))

    def _evaluate(self, prepared: Prepared) -> Tensor:
        return loc.relevance_rank_accuracy(prepared.a, prepared.s)


class AUC(_Localisation):
    """ROC-AUC of the map as a detector of mask pixels (Fawcett 2006) on
    :func:`xaiscore.functional.localization_auc`.

    Equal to ``sklearn.metrics.roc_auc_score(mask, a)`` per sample (Quantus
    computes it with sklearn's ``roc_curve``). NaN when the mask is empty or
    covers everything (Quantus: NaN and a sklearn warning).

    Defaults: ``abs=False, normalise=True``.
    """

    name = "AUC"

    def __init__(self, abs: bool = False, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))

    def _evaluate(self, prepared: Prepared) -> Tensor:
        return loc.localization_auc(prepared.a, prepared.s)


def _quadrant_flags(positions: Any, batch: int, spatial: tuple[int, ...],
                    device: torch.device) -> Tensor:
    """``(B, 4)`` bool: the mosaic quadrants flagged in ``positions``
    (top-left, top-right, bottom-left, bottom-right), as :func:`xaiscore.functional.focus` takes
    them."""
    if len(spatial) != 2:
        raise ShapeError(
            f"Expected 2-D mosaics (B, C, H, W) for Focus, but got spatial shape {spatial}.")
    flags = np.asarray(positions)
    if flags.shape != (batch, 4):
        raise ShapeError(
            f"Expected `custom_batch` with 4 quadrant flags per mosaic, shape ({batch}, 4) "
            f"(top-left, top-right, bottom-left, bottom-right), but got {flags.shape}."
        )
    if not ((flags == 0) | (flags == 1)).all():
        raise OptionError(
            "Expected `custom_batch` flags in {0, 1} (1: the quadrant shows the target class).")
    return torch.as_tensor(flags.astype(bool), device=device)


class Focus(Metric):
    """Focus (Arias-Duart et al. 2022) on :func:`xaiscore.functional.focus`.

    ``x_batch`` holds 2 x 2 mosaics and ``custom_batch`` ``(B, 4)`` flags which
    quadrants (top-left, top-right, bottom-left, bottom-right) show the target
    class. Focus is the share of the positive relevance that falls in those
    quadrants,

    .. math:: \\mathrm{Focus} = \\frac{\\sum_{p \\in Q_y} a_p^+}{\\sum_p a_p^+},

    every channel value a feature, as Quantus. The quadrants split the map at
    ``H // 2`` and ``W // 2`` (axes 2 and 3), as Quantus 0.6.0 does: on odd
    sizes the top and left quadrants are one row or column smaller than the
    others, kept for parity (see docs/box_localization.md).

    Differences from Quantus 0.6.0: NaN for a map without positive relevance
    (Quantus divides by ``0 + 1e-9``: 0); ``model`` is not required when
    ``a_batch`` is given. ``mosaic_shape`` is accepted and unused, as in Quantus.

    Defaults: ``abs=False, normalise=True``.

    Example:
        >>> import numpy as np
        >>> a = np.zeros((1, 1, 4, 4)); a[0, 0, :2, :2] = 1.0; a[0, 0, 2:, 2:] = 1.0
        >>> Focus(disable_warnings=True)(None, np.zeros((1, 1, 4, 4)), np.zeros(1, int), a,
        ...                              custom_batch=[(1, 0, 0, 0)])
        [0.5]
    """

    name = "Focus"
    evaluation_category = "Localisation"
    score_direction = ScoreDirection.HIGHER

    def __init__(self, mosaic_shape: Any | None = None, abs: bool = False, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        self.mosaic_shape = mosaic_shape

    def _evaluate(self, prepared: Prepared) -> Tensor:
        if prepared.custom_batch is None:
            raise OptionError(
                "Focus needs `custom_batch`: the (B, 4) quadrant flags of the target class per "
                "mosaic.")
        flags = _quadrant_flags(prepared.custom_batch, prepared.a.shape[0],
                                tuple(prepared.a.shape[2:]),
                                prepared.device)
        return focus(prepared.a, flags, reduce_channels=None)
