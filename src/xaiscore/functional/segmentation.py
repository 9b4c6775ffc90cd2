"""Heatmaps as segmentations: IoU of the thresholded map with the mask, and the threshold tuned on
a validation split (the CheXlocalize protocol, Saporta et al. 2022).

:func:`localization_iou` binarises each map and scores ``|B ∩ M| / |B ∪ M|``;
:func:`tune_threshold` picks, among candidate thresholds, the one that maximises the mean IoU
over a validation set, to be applied on the test set with :func:`localization_iou`. Otsu's
method (``threshold_mode="otsu"``) is the untuned default of the protocol; its hit rate (the
map's first maximum in the mask) is :func:`~xaiscore.functional.pointing_game` with
``ties="first"``. See ``docs/localization.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from xaiscore._checks import OptionError, check_fraction, check_option
from xaiscore._engine.reduction import ChannelReduction
from xaiscore._engine.thresholds import (
    level_histogram,
    min_max_normalize,
    otsu_threshold,
    threshold_levels,
    threshold_values,
)
from xaiscore.functional._boxes import threshold_grid
from xaiscore.functional._common import nan_where, prepare_map_and_mask, sorted_quantile

__all__ = ["CHEXLOCALIZE_THRESHOLDS", "ThresholdTuning", "localization_iou", "tune_threshold"]

IoUThresholdMode = Literal["max_fraction", "quantile", "min_max", "otsu"]
EmptyPrediction = Literal["zero", "nan"]
_MODES = ("max_fraction", "quantile", "min_max", "otsu")

#: CheXlocalize's candidate thresholds on min-max normalised maps: ``numpy.arange(0.2, .8, .1)``
#: in ``tune_heatmap_threshold.py``, which (by float rounding) ends with 0.8 (0.7999999999999999),
#: seven candidates; written here as the decimals they stand for.
CHEXLOCALIZE_THRESHOLDS: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def _check_threshold(threshold: float, mode: str) -> float:
    if mode == "otsu":
        return math.nan
    return check_fraction(threshold, "threshold", low_inclusive=mode != "max_fraction")


def _iou(
    intersection: Tensor,
    selected: Tensor,
    mask_size: Tensor,
    dtype: torch.dtype,
    empty_prediction: str,
) -> Tensor:
    union = selected + mask_size - intersection
    iou = intersection.to(dtype) / union.clamp(min=1).to(dtype)
    undefined = mask_size == 0
    if empty_prediction == "nan":
        undefined = undefined | (selected == 0)
    return nan_where(undefined, iou)


def localization_iou(
    a: Tensor,
    mask: Tensor,
    *,
    threshold: float = 0.5,
    threshold_mode: IoUThresholdMode = "max_fraction",
    empty_prediction: EmptyPrediction = "zero",
    reduce_channels: ChannelReduction | None = "sum",
    validate: bool = True,
) -> Tensor:
    r"""Intersection over union between the thresholded map and the mask.

    The map is binarized per sample, then ``IoU = |B ∩ M| / |B ∪ M|``:

    * ``threshold_mode="max_fraction"`` (default): ``B = {p : a_p >= t * max(a)}``,
      the CAM rule of Zhou et al. 2016 (who use t = 0.2 on the CAM). A map
      with no positive value selects nothing.
    * ``threshold_mode="quantile"``: ``B = {p : a_p >= q_t(a)}``, the ``t``-quantile
      of the sample's values (linear interpolation, as numpy), so that about
      a ``1 - t`` share of the features is kept; ties at the quantile are kept.
    * ``threshold_mode="min_max"``: ``B = {p : s_p > t}`` with ``s`` the map min-max
      normalised to [0, 1] per sample (a constant map selects nothing), CheXlocalize's rule
      for a tuned threshold (:func:`tune_threshold`).
    * ``threshold_mode="otsu"``: ``B = {p : a_p > t_Otsu(a)}``, Otsu's threshold per sample
      (as ``skimage.filters.threshold_otsu``; ``threshold`` is ignored), CheXlocalize's
      untuned default.

    Args:
        threshold: ``t`` in (0, 1] for ``"max_fraction"``, in [0, 1] for ``"quantile"`` and
            ``"min_max"``; unused for ``"otsu"``.
        threshold_mode: See above.
        empty_prediction: ``"zero"`` (default): a map that selects nothing scores 0 (its
            union is the mask); ``"nan"``: such a sample is undefined, CheXlocalize's
            ``true_pos_only`` evaluation (and its threshold tuning).
        reduce_channels: ``"sum"``, ``"mean"``, ``"max_abs"`` or ``None``.
        validate: Check values.

    Returns:
        ``(B,)`` in [0, 1]; NaN for an empty mask (and an empty selection with
        ``empty_prediction="nan"``).

    Shape:
        - a: ``(B, C, *S)``; mask: ``(B, 1|C, *S)``; output: ``(B,)``

    Example:
        >>> a = torch.tensor([[[1.0, 0.6, 0.2, 0.0]]])
        >>> mask = torch.tensor([[[True, False, True, False]]])
        >>> localization_iou(a, mask, threshold=0.5).tolist()
        [0.3333333432674408]
        >>> localization_iou(a, mask, threshold=0.1, threshold_mode="min_max").tolist()
        [0.6666666865348816]
    """
    check_option(threshold_mode, "threshold_mode", _MODES)
    check_option(empty_prediction, "empty_prediction", ("zero", "nan"))
    threshold = _check_threshold(threshold, threshold_mode)
    a_flat, mask_flat = prepare_map_and_mask(
        a, mask, channel_reduction=reduce_channels, validate=validate
    )
    if threshold_mode == "max_fraction":
        peak = a_flat.amax(dim=1, keepdim=True)
        selected = (a_flat >= threshold * peak) & (peak > 0)
    elif threshold_mode == "quantile":
        selected = a_flat >= sorted_quantile(a_flat, threshold)
    elif threshold_mode == "min_max":
        selected = min_max_normalize(a_flat) > threshold
    else:
        selected = a_flat > otsu_threshold(a_flat).unsqueeze(1)
    return _iou(
        (selected & mask_flat).sum(1),
        selected.sum(1),
        mask_flat.sum(1),
        a_flat.dtype,
        empty_prediction,
    )


class ThresholdTuning(NamedTuple):
    """The threshold that maximises the mean IoU over a validation set (:func:`tune_threshold`).

    Attributes:
        threshold: The best candidate (the first on ties), a Python float for
            :func:`localization_iou`'s ``threshold``; NaN when no IoU is defined.
        mean_iou: ``(T,)`` the NaN-aware mean IoU over the samples at each candidate.
        thresholds: ``(T,)`` the candidates.
        iou: ``(B, T)`` each sample's IoU at each candidate (concatenate over batches and
            take the NaN-aware mean to tune on a set scored in batches).
        hit_rate: ``()`` the share of samples whose map's first maximum lies in the mask
            (CheXlocalize's hit rate; samples with an empty mask left out), independent of the
            threshold.
    """

    threshold: float
    mean_iou: Tensor
    thresholds: Tensor
    iou: Tensor
    hit_rate: Tensor


def _selection_thresholds(a_flat: Tensor, grid: Tensor, mode: str) -> tuple[Tensor, Tensor, bool]:
    """The values to threshold, the thresholds ``(T,)`` or ``(B, T)``, whether ``>`` is strict."""
    if mode == "min_max":
        return min_max_normalize(a_flat), grid, True
    return (
        a_flat,
        threshold_values(a_flat, grid, mode),
        False,
    )  # max_fraction: +inf without a positive peak


def tune_threshold(
    a: Tensor,
    mask: Tensor,
    *,
    thresholds: Sequence[float] | Tensor = CHEXLOCALIZE_THRESHOLDS,
    threshold_mode: Literal["min_max", "max_fraction", "quantile"] = "min_max",
    empty_prediction: EmptyPrediction = "nan",
    reduce_channels: ChannelReduction | None = "sum",
    validate: bool = True,
) -> ThresholdTuning:
    r"""The threshold that maximises the mean IoU on a validation set (CheXlocalize's tuning).

    .. math:: t^* = \arg\max_{t \in \mathcal{T}} \frac{1}{|V_t|} \sum_{n \in V_t}
              \mathrm{IoU}\big(B_t(a_n), M_n\big)

    over the samples ``V_t`` whose IoU is defined at ``t`` (see ``empty_prediction``), with
    ``B_t`` the binarisation of :func:`localization_iou` in ``threshold_mode``. The defaults
    are CheXlocalize's (Saporta et al. 2022, ``tune_heatmap_threshold.py``): candidates 0.2,
    0.3, ..., 0.8 on min-max normalised maps, ``s > t``, IoU undefined where the prediction or
    the mask is empty, the first best candidate. Then score the test split with
    ``localization_iou(a_test, mask_test, threshold=result.threshold,
    threshold_mode=threshold_mode, empty_prediction=...)``.

    All candidates are evaluated from one sort of levels per sample (no loop over thresholds).

    Args:
        a: Validation attributions ``(B, C, *S)``.
        mask: Validation masks ``(B, 1|C, *S)``.
        thresholds: Increasing candidates (fractions in [0, 1]; in (0, 1] for
            ``"max_fraction"``).
        threshold_mode: ``"min_max"`` (default), ``"max_fraction"`` or ``"quantile"``, as in
            :func:`localization_iou` (Otsu's method has no threshold to tune).
        empty_prediction: ``"nan"`` (default, CheXlocalize) or ``"zero"``, as in
            :func:`localization_iou`.
        reduce_channels: ``"sum"``, ``"mean"``, ``"max_abs"`` or ``None``.
        validate: Check values.

    Returns:
        :class:`ThresholdTuning`.

    Shape:
        - a: ``(B, C, *S)``; mask: ``(B, 1|C, *S)``; mean_iou: ``(T,)``; iou: ``(B, T)``

    Example:
        >>> a = torch.tensor([[[0.0, 0.35, 0.8, 1.0]], [[0.0, 0.1, 0.45, 1.0]]])
        >>> mask = torch.tensor([[[False, False, True, True]], [[False, False, True, True]]])
        >>> tuned = tune_threshold(a, mask)
        >>> tuned.threshold, [round(v, 4) for v in tuned.mean_iou.tolist()]
        (0.4, [0.8333, 0.8333, 1.0, 0.75, 0.75, 0.75, 0.5])
        >>> localization_iou(a, mask, threshold=tuned.threshold, threshold_mode="min_max").tolist()
        [1.0, 1.0]
    """
    check_option(threshold_mode, "threshold_mode", ("min_max", "max_fraction", "quantile"))
    check_option(empty_prediction, "empty_prediction", ("zero", "nan"))
    a_flat, mask_flat = prepare_map_and_mask(
        a, mask, channel_reduction=reduce_channels, validate=validate
    )
    grid = threshold_grid(thresholds, include_end=False, device=a_flat.device)
    low, high = float(grid[0]), float(grid[-1])
    if low < 0 or high > 1 or (threshold_mode == "max_fraction" and low <= 0):
        interval = "(0, 1]" if threshold_mode == "max_fraction" else "[0, 1]"
        raise OptionError(
            f"Expected `thresholds` in {interval} for threshold_mode={threshold_mode!r}, but got "
            f"{grid.tolist()}."
        )
    values, per_sample, strict = _selection_thresholds(
        a_flat, grid.to(a_flat.dtype), threshold_mode
    )
    levels = threshold_levels(values, per_sample, strict=strict)  # selected at k when level > k
    n_thr = grid.numel()
    selected = level_histogram(levels, n_thr).flip(1).cumsum(1).flip(1)[:, 1:]
    inside = level_histogram(levels, n_thr, mask_flat).flip(1).cumsum(1).flip(1)[:, 1:]
    mask_size = mask_flat.sum(1, keepdim=True)
    iou = _iou(inside, selected, mask_size, a_flat.dtype, empty_prediction)  # (B, T)
    mean_iou = torch.nanmean(iou, dim=0)
    best = int(
        mean_iou.nan_to_num(-math.inf).argmax()
    )  # the first maximum; read once, at the boundary
    threshold = math.nan if bool(torch.isnan(mean_iou).all()) else float(grid[best])
    hits = mask_flat.gather(1, a_flat.argmax(dim=1, keepdim=True)).squeeze(1).to(a_flat.dtype)
    hit_rate = torch.nanmean(nan_where(mask_size.squeeze(1) == 0, hits))
    return ThresholdTuning(threshold, mean_iou, grid.to(a_flat.dtype), iou, hit_rate)
