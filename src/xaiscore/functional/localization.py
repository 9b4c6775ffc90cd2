"""Localization metrics: does the attribution map point at the annotated region?

Every kernel takes attributions ``a`` of shape ``(B, C, *S)`` (1 to 3 spatial
dims) and a ground-truth ``mask`` of shape ``(B, 1|C, *S)`` (bool or 0/1), and
returns a ``(B,)`` float tensor on the input's device. An empty mask gives NaN
(there is nothing to localize). Channels are reduced per pixel with
``reduce_channels`` (``"sum"`` by default; ``None`` scores every channel value
as its own feature, with a one-channel mask applied to all channels).

See ``docs/localization.md`` for formulas, defaults and the differences from Quantus.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from xaiscore._checks import (
    check_attributions,
    check_fraction,
    check_mask,
    check_option,
)
from xaiscore._engine.reduction import ChannelReduction, reduce_mask_channels
from xaiscore._engine.reduction import reduce_channels as _reduce_channels
from xaiscore.functional._common import (
    doubled_rank_sum,
    expected_top_k_hits,
    nan_where,
    prepare_map_and_mask,
    resolve_count,
)
from xaiscore.functional.box_masks import boxes_to_mask  # re-exported: its former home
from xaiscore.functional.segmentation import localization_iou  # re-exported: its former home

__all__ = [
    "pointing_game",
    "energy_pointing_game",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "top_k_intersection",
    "attribution_localisation",
    "localization_auc",
    "localization_iou",
    "boxes_to_mask",
]

Ties = Literal["fraction", "any", "first"]
Relevance = Literal["positive", "absolute", "signed"]


def _ball_kernel(radius: float, spatial_dims: int, dtype: torch.dtype,
                 device: torch.device) -> Tensor:
    r = math.floor(radius)
    offsets = torch.arange(-r, r + 1, dtype=torch.float64)
    grids = torch.meshgrid(*([offsets] * spatial_dims), indexing="ij")
    squared = sum(g**2 for g in grids)
    kernel = (squared <= radius**2 + 1e-9).to(dtype=dtype, device=device)
    return kernel.reshape((1, 1) + kernel.shape)


def _dilate(mask: Tensor, radius: float) -> Tensor:
    """Pixels within Euclidean distance ``radius`` of a mask pixel, ``(B, 1, *S)`` bool."""
    spatial_dims = mask.ndim - 2
    # No two pixels are farther apart than the diagonal: a larger radius (up to inf) dilates the
    # same.
    radius = min(radius, math.sqrt(sum((side - 1) ** 2 for side in mask.shape[2:])))
    kernel = _ball_kernel(radius, spatial_dims, torch.float32, mask.device)
    conv = (F.conv1d, F.conv2d, F.conv3d)[spatial_dims - 1]
    padding = kernel.shape[-1] // 2
    counts = conv(mask.to(torch.float32), kernel, padding=padding)
    return counts > 0.5


def pointing_game(
    a: Tensor,
    mask: Tensor,
    *,
    tolerance: float = 0.0,
    ties: Ties = "fraction",
    weighted: bool = False,
    reduce_channels: ChannelReduction | None = "sum",
    validate: bool = True,
) -> Tensor:
    r"""Pointing game (Zhang et al. 2018): is the map's maximum inside the mask?

    A hit is scored 1 when the location of the largest attribution lies within
    ``tolerance`` pixels (Euclidean) of the mask, else 0. Zhang et al. and
    TorchRay use a 15-pixel tolerance for 224-pixel ImageNet images; the
    default here is 0 (the maximum must lie in the mask itself).

    Ties (several locations share the maximum):
        * ``"fraction"`` (default): the share of tied maxima that are hits, i.e.
          the expected score when the tie is broken uniformly at random. A
          constant map scores the mask's area fraction, the chance level.
        * ``"any"``: 1 if any tied maximum is a hit (Quantus' rule; a constant
          map then always scores 1).
        * ``"first"``: only the first maximum in row-major order counts
          (``argmax``, as TorchRay does).

    Args:
        a: Attributions ``(B, C, *S)``.
        mask: Ground truth ``(B, 1|C, *S)``, bool or 0/1.
        tolerance: Radius in pixels around the mask that still counts as a hit.
        ties: How tied maxima are scored (see above).
        weighted: Multiply hits by ``1 - |mask| / N``, rewarding hits on small
            masks (Quantus' ``weighted``; Quantus 0.6.0 crashes on it).
        reduce_channels: ``"sum"``, ``"mean"``, ``"max_abs"`` or ``None``.
        validate: Check values (finite ``a``, binary ``mask``).

    Returns:
        ``(B,)`` scores in [0, 1]; NaN for an empty mask.

    Shape:
        - a: ``(B, C, *S)``
        - mask: ``(B, 1, *S)`` or ``(B, C, *S)``
        - output: ``(B,)``

    Example:
        >>> a = torch.zeros(2, 1, 4, 4); a[0, 0, 1, 1] = 1.0; a[1, 0, 3, 3] = 1.0
        >>> mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool); mask[:, :, :2, :2] = True
        >>> pointing_game(a, mask).tolist()
        [1.0, 0.0]
        >>> pointing_game(a, mask, tolerance=2.9).tolist()
        [1.0, 1.0]
    """
    check_option(ties, "ties", ("fraction", "any", "first"))
    tolerance = check_fraction(tolerance, "tolerance", high=math.inf)
    a = check_attributions(a, validate=validate)
    mask = check_mask(mask, a, validate=validate)
    if reduce_channels is None:
        a_map, mask_map = a, mask.expand_as(a)
    else:
        a_map, mask_map = _reduce_channels(a, reduce_channels), reduce_mask_channels(mask)
    area = mask_map.reshape(a.shape[0], -1).sum(1)
    target = mask_map
    if tolerance > 0:
        target = _dilate(mask_map.reshape((-1, 1) + mask_map.shape[2:]),
                         tolerance).reshape(mask_map.shape)
    a_flat = a_map.reshape(a.shape[0], -1)
    target_flat = target.reshape(a.shape[0], -1)
    dtype = a_flat.dtype
    if ties == "first":
        first = a_flat.argmax(dim=1, keepdim=True)
        score = target_flat.gather(1, first).squeeze(1).to(dtype)
    else:
        is_max = a_flat == a_flat.amax(dim=1, keepdim=True)
        hits = (is_max & target_flat).sum(1)
        if ties == "any":
            score = (hits > 0).to(dtype)
        else:
            score = hits.to(dtype) / is_max.sum(1).to(dtype)
    if weighted:
        score = score * (1.0 - area.to(dtype) / a_flat.shape[1])
    return nan_where(area == 0, score)


def _relevance(a_flat: Tensor, relevance: Relevance) -> Tensor:
    check_option(relevance, "relevance", ("positive", "absolute", "signed"))
    if relevance == "positive":
        return a_flat.clamp(min=0)
    if relevance == "absolute":
        return a_flat.abs()
    return a_flat


def _mass_inside(a_flat: Tensor, mask_flat: Tensor) -> Tensor:
    """``sum(a in mask) / sum(a)``; NaN for an empty mask or a zero total."""
    inside = (a_flat * mask_flat).sum(1)
    total = a_flat.sum(1)
    ratio = inside / torch.where(total == 0, torch.ones_like(total), total)
    return nan_where((mask_flat.sum(1) == 0) | (total == 0), ratio)


def energy_pointing_game(
    a: Tensor,
    mask: Tensor,
    *,
    reduce_channels: ChannelReduction | None = "sum",
    validate: bool = True,
) -> Tensor:
    r"""Energy-based pointing game (Wang et al. 2020, Score-CAM).

    The share of the map's positive energy that falls inside the mask:

    .. math:: \mathrm{EPG} = \frac{\sum_{p \in M} a_p^+}{\sum_{p} a_p^+}, \qquad a^+ = \max(a, 0)

    Negative values are clipped to zero after the channel reduction (CAM maps
    are non-negative by construction). Scale-invariant.

    Returns:
        ``(B,)`` scores in [0, 1]; NaN for an empty mask or a map with no
        positive value.

    Shape:
        - a: ``(B, C, *S)``; mask: ``(B, 1|C, *S)``; output: ``(B,)``

    Example:
        >>> a = torch.tensor([[[3.0, 1.0, -2.0, 0.0]]])
        >>> mask = torch.tensor([[[True, False, True, False]]])
        >>> energy_pointing_game(a, mask).tolist()
        [0.75]
    """
    a_flat, mask_flat = prepare_map_and_mask(a, mask, channel_reduction=reduce_channels,
                                             validate=validate)
    return _mass_inside(a_flat.clamp(min=0), mask_flat)


def relevance_mass_accuracy(
    a: Tensor,
    mask: Tensor,
    *,
    relevance: Relevance = "positive",
    reduce_channels: ChannelReduction | None = "sum",
    validate: bool = True,
) -> Tensor:
    r"""Relevance mass accuracy (Arras et al. 2022, CLEVR-XAI).

    .. math:: \mathrm{RMA} = \frac{R_{\text{within}}}{R_{\text{total}}}
              = \frac{\sum_{p \in M} R_p}{\sum_p R_p}

    where ``R`` is the pooled heatmap. Arras et al. evaluate heatmaps pooled to
    positive (or absolute) relevance; with ``relevance="positive"`` (default)
    the score lies in [0, 1]. ``"signed"`` uses the raw values as Quantus does,
    which can leave [0, 1] and explode when positive and negative mass cancel.

    Args:
        relevance: ``"positive"`` (clip at 0), ``"absolute"`` or ``"signed"``.

    Returns:
        ``(B,)``; NaN for an empty mask or a zero total relevance.

    Shape:
        - a: ``(B, C, *S)``; mask: ``(B, 1|C, *S)``; output: ``(B,)``

    Example:
        >>> a = torch.tensor([[[3.0, 1.0, -2.0, 0.0]]])
        >>> mask = torch.tensor([[[True, False, True, False]]])
        >>> relevance_mass_accuracy(a, mask).tolist()
        [0.75]
        >>> relevance_mass_accuracy(a, mask, relevance="absolute").tolist()
        [0.8333333134651184]
    """
    a_flat, mask_flat = prepare_map_and_mask(a, mask, channel_reduction=reduce_channels,
                                             validate=validate)
    return _mass_inside(_relevance(a_flat, relevance), mask_flat)


def relevance_rank_accuracy(
    a: Tensor,
    mask: Tensor,
    *,
    reduce_channels: ChannelReduction | None = "sum",
    validate: bool = True,
) -> Tensor:
    r"""Relevance rank accuracy (Arras et al. 2022, CLEVR-XAI).

    With ``K = |M|`` the size of the mask, the share of the ``K`` highest-ranked
    features that lie inside it: ``|top_K(a) ∩ M| / K``.

    Ties at the K-th value are broken uniformly at random and the expected
    score is returned (Quantus breaks them by memory order). Invariant under
    any strictly increasing transform of ``a``.

    Returns:
        ``(B,)`` scores in [0, 1]; NaN for an empty mask.

    Shape:
        - a: ``(B, C, *S)``; mask: ``(B, 1|C, *S)``; output: ``(B,)``

    Example:
        >>> a = torch.tensor([[[0.9, 0.8, 0.1, 0.2]]])
        >>> mask = torch.tensor([[[True, False, False, True]]])
        >>> relevance_rank_accuracy(a, mask).tolist()
        [0.5]
    """
    a_flat, mask_flat = prepare_map_and_mask(a, mask, channel_reduction=reduce_channels,
                                             validate=validate)
    k = mask_flat.sum(1)
    hits = expected_top_k_hits(a_flat, mask_flat, k)
    return nan_where(k == 0, hits / k.clamp(min=1).to(a_flat.dtype))


def top_k_intersection(
    a: Tensor,
    mask: Tensor,
    *,
    k: int | float = 1000,
    concept_influence: bool = False,
    reduce_channels: ChannelReduction | None = "sum",
    validate: bool = True,
) -> Tensor:
    r"""Top-k intersection (Theiner et al. 2022): the share of the k highest features inside the
    mask.

    .. math:: \mathrm{TKI} = \frac{|\mathrm{top}_k(a) \cap M|}{k}

    Args:
        k: A count (int, at most the number of features) or a fraction of the
            features (float in (0, 1], rounded up). Default 1000 as in Quantus.
        concept_influence: Multiply by ``N / |M|``, the inverse mask fraction
            (Quantus' option), so that chance level is 1.

    Ties at the k-th value are broken uniformly at random and the expected
    score is returned.

    Returns:
        ``(B,)``; NaN for an empty mask.

    Shape:
        - a: ``(B, C, *S)``; mask: ``(B, 1|C, *S)``; output: ``(B,)``

    Example:
        >>> a = torch.tensor([[[0.9, 0.8, 0.1, 0.2]]])
        >>> mask = torch.tensor([[[True, False, False, True]]])
        >>> top_k_intersection(a, mask, k=1).tolist()
        [1.0]
        >>> top_k_intersection(a, mask, k=0.75).tolist()
        [0.6666666865348816]
    """
    a_flat, mask_flat = prepare_map_and_mask(a, mask, channel_reduction=reduce_channels,
                                             validate=validate)
    n_features = a_flat.shape[1]
    count = resolve_count(k, n_features)
    k_tensor = torch.full((a_flat.shape[0],), count, dtype=torch.long, device=a_flat.device)
    score = expected_top_k_hits(a_flat, mask_flat, k_tensor) / count
    area = mask_flat.sum(1)
    if concept_influence:
        score = score * n_features / area.clamp(min=1).to(score.dtype)
    return nan_where(area == 0, score)


def attribution_localisation(
    a: Tensor,
    mask: Tensor,
    *,
    weighted: bool = False,
    reduce_channels: ChannelReduction | None = "sum",
    validate: bool = True,
) -> Tensor:
    r"""Attribution localisation (Kohlbrenner et al. 2020).

    The inside-total ratio of positive attribution,

    .. math:: \mu = \frac{R^+_{\text{in}}}{R^+_{\text{tot}}}, \qquad
              \mu_w = \mu \cdot \frac{S_{\text{tot}}}{S_{\text{in}}} \quad (\texttt{weighted=True})

    where ``S`` counts pixels: the weighted score divides by the mask's area
    fraction, so that a uniform map scores 1 whatever the mask size. Quantus
    0.6.0 multiplies by the area fraction instead and computes it from
    ``x_batch[2:]`` (a slice of the batch); we follow the paper.

    Returns:
        ``(B,)``; NaN for an empty mask or a map with no positive value.

    Shape:
        - a: ``(B, C, *S)``; mask: ``(B, 1|C, *S)``; output: ``(B,)``

    Example:
        >>> a = torch.tensor([[[3.0, 1.0, -2.0, 0.0]]])
        >>> mask = torch.tensor([[[True, False, False, False]]])
        >>> attribution_localisation(a, mask).tolist()
        [0.75]
        >>> attribution_localisation(a, mask, weighted=True).tolist()
        [3.0]
    """
    a_flat, mask_flat = prepare_map_and_mask(a, mask, channel_reduction=reduce_channels,
                                             validate=validate)
    ratio = _mass_inside(a_flat.clamp(min=0), mask_flat)
    if weighted:
        area = mask_flat.sum(1).clamp(min=1).to(ratio.dtype)
        ratio = ratio * (a_flat.shape[1] / area)
    return ratio


def localization_auc(
    a: Tensor,
    mask: Tensor,
    *,
    reduce_channels: ChannelReduction | None = "sum",
    validate: bool = True,
) -> Tensor:
    r"""ROC-AUC of the attribution map as a detector of mask pixels.

    The probability that a random mask pixel outranks a random pixel outside
    the mask, counting ties as one half (the Mann-Whitney statistic):

    .. math:: \mathrm{AUC} = \frac{\sum_{p \in M} \mathrm{rank}(a_p) - |M|(|M|+1)/2}{|M|\,(N - |M|)}

    with average ranks for ties. Equal to ``sklearn.metrics.roc_auc_score(mask, a)``.
    Computed with exact integer rank sums. Invariant under strictly
    increasing transforms of ``a``.

    Returns:
        ``(B,)`` in [0, 1]; NaN when the mask is empty or covers every feature.

    Shape:
        - a: ``(B, C, *S)``; mask: ``(B, 1|C, *S)``; output: ``(B,)``

    Example:
        >>> a = torch.tensor([[[0.9, 0.8, 0.1, 0.8]]])
        >>> mask = torch.tensor([[[True, False, False, True]]])
        >>> localization_auc(a, mask).tolist()
        [0.875]
    """
    a_flat, mask_flat = prepare_map_and_mask(a, mask, channel_reduction=reduce_channels,
                                             validate=validate)
    n_features = a_flat.shape[1]
    positives = mask_flat.sum(1)
    negatives = n_features - positives
    rank_sum = doubled_rank_sum(a_flat, mask_flat)  # exact int64
    # U = R_pos - P (P + 1) / 2; everything below is doubled and stays an exact integer.
    doubled_u = rank_sum - positives * (positives + 1)
    denominator = (2 * positives * negatives).clamp(min=1)
    auc = (doubled_u.double() / denominator.double()).to(a_flat.dtype)
    return nan_where((positives == 0) | (negatives == 0), auc)
