"""Per-class pointing-game accuracy (Zhang et al. 2018, TorchRay's benchmark): a set-level metric.

Each row (an image and one class present in it, with that class's mask and the
explanation for that class) is a pointing-game trial: a hit when the explanation's
maximum lies in (or within ``tolerance`` of) the mask. Over the evaluation set,

.. math:: \\mathrm{acc}_c = \\frac{\\mathrm{hits}_c}{\\mathrm{hits}_c + \\mathrm{misses}_c},
          \\qquad \\mathrm{accuracy} = \\frac{1}{|C'|} \\sum_{c \\in C'} \\mathrm{acc}_c

with :math:`C'` the classes that have at least one trial. The value depends on the whole
set (a class's share of the rows does not weigh its accuracy), so it is computed from
per-class sums (:data:`POINTING_ACCURACY`, a
:class:`~xaiscore.functional.set_statistics.SetStatistics`): summed over batches and
processes, they give the same value as one call on the whole set.

Differences from TorchRay's ``PointingGame``: a class without any trial is left out of
the mean (TorchRay counts it as accuracy 0 among all ``num_classes``; on full VOC or COCO
every class has trials, so both agree); its tolerance region is ``distance < tolerance``
(ours is ``distance <= tolerance``, so TorchRay's ``tolerance=15`` is ours with
``tolerance=math.sqrt(224)``, squared pixel distances being integers); TorchRay takes
the first maximum (ours: ``ties="first"``; the default ``"fraction"`` scores the share of
tied maxima that hit). Rows with an empty mask are not trials (TorchRay skips them).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from xaiscore._checks import DTypeError, check_attributions, check_positive_int, check_target
from xaiscore._engine.reduction import ChannelReduction
from xaiscore.functional.localization import pointing_game
from xaiscore.functional.set_statistics import SetStatistics

__all__ = [
    "PointingAccuracyResult",
    "pointing_accuracy",
    "pointing_accuracy_statistics",
    "pointing_accuracy_from_statistics",
    "POINTING_ACCURACY",
]

Ties = Literal["fraction", "any", "first"]


class PointingAccuracyResult(NamedTuple):
    """Per-class pointing accuracy over a set.

    Attributes:
        accuracy: 0-d, the mean of ``class_accuracy`` over the classes with at least one
            trial; NaN when no row had a non-empty mask.
        class_accuracy: ``(K,)`` hits / trials per class, NaN for a class without trials.
        hits: ``(K,)`` float64 hits per class (fractional under ``ties="fraction"``).
        trials: ``(K,)`` float64 rows with a non-empty mask per class (hits + misses).
        score: ``(B,)`` the pointing-game hit of each row (NaN for an empty mask), or
            ``None`` when the result comes from summed statistics.
    """

    accuracy: Tensor
    class_accuracy: Tensor
    hits: Tensor
    trials: Tensor
    score: Tensor | None = None


def _check_num_classes(num_classes: object) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise DTypeError(
            f"Expected `num_classes` to be an int, but got {type(num_classes).__name__}."
        )
    return check_positive_int(num_classes, "num_classes")


def _row_hits(
    a: Tensor,
    mask: Tensor,
    target: Tensor,
    num_classes: int | None,
    tolerance: float,
    ties: Ties,
    reduce_channels: ChannelReduction | None,
    validate: bool,
) -> tuple[Tensor, Tensor, int]:
    a = check_attributions(a, validate=validate)
    hits = pointing_game(
        a, mask, tolerance=tolerance, ties=ties, reduce_channels=reduce_channels, validate=validate
    )
    if num_classes is not None:
        num_classes = _check_num_classes(num_classes)
    target = check_target(
        target, a.shape[0], num_classes=num_classes, device=a.device, validate=validate
    )
    if num_classes is None:  # read once at the boundary
        num_classes = int(target.max()) + 1 if target.numel() else 1
    return hits, target, num_classes


def _class_sums(hits: Tensor, target: Tensor, num_classes: int) -> dict[str, Tensor]:
    defined = ~torch.isnan(hits)
    sums = torch.zeros(2, num_classes, dtype=torch.float64, device=hits.device)
    sums[0].index_add_(0, target, torch.where(defined, hits, torch.zeros_like(hits)).double())
    sums[1].index_add_(0, target, defined.double())
    return {"hits": sums[0], "trials": sums[1]}


def pointing_accuracy_zeros(*, num_classes: int) -> dict[str, Tensor]:
    """The statistics of the empty set: ``hits`` and ``trials`` ``(num_classes,)`` float64 zeros."""
    num_classes = _check_num_classes(num_classes)
    return {
        "hits": torch.zeros(num_classes, dtype=torch.float64),
        "trials": torch.zeros(num_classes, dtype=torch.float64),
    }


def pointing_accuracy_statistics(
    a: Tensor,
    mask: Tensor,
    target: Tensor,
    *,
    num_classes: int,
    tolerance: float = 0.0,
    ties: Ties = "fraction",
    reduce_channels: ChannelReduction | None = "sum",
    validate: bool = True,
) -> dict[str, Tensor]:
    """The per-class sums of one batch: ``{"hits": (K,), "trials": (K,)}`` float64.

    Sums over disjoint batches give the statistics of their union; see
    :func:`pointing_accuracy` for the arguments.

    Example:
        >>> a = torch.zeros(2, 1, 2, 2); a[0, 0, 0, 0] = 1.0; a[1, 0, 1, 1] = 1.0
        >>> mask = torch.zeros(2, 1, 2, 2, dtype=torch.bool); mask[:, :, 0, 0] = True
        >>> stats = pointing_accuracy_statistics(a, mask, torch.tensor([1, 1]), num_classes=3)
        >>> stats["hits"].tolist(), stats["trials"].tolist()
        ([0.0, 1.0, 0.0], [0.0, 2.0, 0.0])
    """
    hits, target, num_classes = _row_hits(
        a, mask, target, num_classes, tolerance, ties, reduce_channels, validate
    )
    return _class_sums(hits, target, num_classes)


def pointing_accuracy_from_statistics(statistics: dict[str, Tensor]) -> PointingAccuracyResult:
    """The metric from summed per-class statistics (``score`` is ``None``).

    Example:
        >>> result = pointing_accuracy_from_statistics(
        ...     {"hits": torch.tensor([1.0, 0.0, 0.0]), "trials": torch.tensor([2.0, 1.0, 0.0])})
        >>> result.accuracy.item(), result.class_accuracy.tolist()
        (0.25, [0.5, 0.0, nan])
    """
    hits, trials = statistics["hits"], statistics["trials"]
    has_trials = trials > 0
    class_accuracy = torch.where(
        has_trials,
        hits / torch.where(has_trials, trials, torch.ones_like(trials)),
        torch.full_like(hits, math.nan),
    )
    return PointingAccuracyResult(torch.nanmean(class_accuracy), class_accuracy, hits, trials)


#: Per-class pointing accuracy as summable statistics (the states of its metric class).
POINTING_ACCURACY = SetStatistics(
    inputs=("a", "mask", "target"),
    zeros=pointing_accuracy_zeros,
    update=pointing_accuracy_statistics,
    compute=pointing_accuracy_from_statistics,
)


def pointing_accuracy(
    a: Tensor,
    mask: Tensor,
    target: Tensor,
    *,
    num_classes: int | None = None,
    tolerance: float = 0.0,
    ties: Ties = "fraction",
    reduce_channels: ChannelReduction | None = "sum",
    validate: bool = True,
) -> PointingAccuracyResult:
    r"""Per-class pointing-game accuracy over a set (Zhang et al. 2018; TorchRay's protocol).

    Every row is one (image, class) trial: ``a[i]`` explains class ``target[i]``, whose
    ground truth is ``mask[i]`` (an image with several classes gives several rows). The
    hit of a row is :func:`~xaiscore.functional.pointing_game` (the maximum of the map in
    the mask, within ``tolerance`` pixels); per class,
    :math:`\mathrm{acc}_c = \mathrm{hits}_c / (\mathrm{hits}_c + \mathrm{misses}_c)`, and
    the accuracy is the mean of :math:`\mathrm{acc}_c` over the classes with at least one
    trial. **Set-level**: the batch is the evaluation set; to score a dataset in batches,
    sum :func:`pointing_accuracy_statistics` or use ``xaiscore.metrics.PointingAccuracy``.

    Args:
        a: Attributions ``(B, C, *S)``, one map per row.
        mask: Ground truth of the row's class ``(B, 1|C, *S)``, bool or 0/1.
        target: ``(B,)`` long, the class of each row.
        num_classes: Number of classes ``K`` (``None``: ``target.max() + 1``).
        tolerance: Radius in pixels around the mask that still counts as a hit
            (TorchRay's ``tolerance=15`` is ``math.sqrt(224)`` here, see the module notes).
        ties: ``"fraction"`` (default), ``"any"`` or ``"first"`` (TorchRay), as in
            :func:`~xaiscore.functional.pointing_game`.
        reduce_channels: ``"sum"``, ``"mean"``, ``"max_abs"`` or ``None``.
        validate: Check values (finite ``a``, binary ``mask``, ``target`` in ``[0, K)``).

    Returns:
        :class:`PointingAccuracyResult`: ``accuracy`` (0-d, in ``a``'s dtype), the per-class
        accuracies, hits and trials, and ``score`` ``(B,)``, the hit of each row (NaN for an
        empty mask, which is no trial). NaN accuracy when no row has a non-empty mask.

    Shape:
        - a: ``(B, C, *S)``; mask: ``(B, 1|C, *S)``; target: ``(B,)``
        - accuracy: ``()``; class_accuracy, hits, trials: ``(K,)``; score: ``(B,)``

    Example:
        >>> a = torch.zeros(3, 1, 4, 4); a[0, 0, 0, 0] = 1; a[1, 0, 3, 3] = 1; a[2, 0, 0, 0] = 1
        >>> mask = torch.zeros(3, 1, 4, 4, dtype=torch.bool); mask[:, :, :2, :2] = True
        >>> result = pointing_accuracy(a, mask, torch.tensor([0, 0, 1]))
        >>> result.class_accuracy.tolist(), result.accuracy.item(), result.score.tolist()
        ([0.5, 1.0], 0.75, [1.0, 0.0, 1.0])
    """
    hits, target, num_classes = _row_hits(
        a, mask, target, num_classes, tolerance, ties, reduce_channels, validate
    )
    result = pointing_accuracy_from_statistics(_class_sums(hits, target, num_classes))
    return result._replace(accuracy=result.accuracy.to(hits.dtype), score=hits)
