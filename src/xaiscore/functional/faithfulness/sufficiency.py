"""Sufficiency (Dasgupta, Frost and Moshkovitz 2022): do samples with similar explanations get the
same prediction?

See ``docs/faithfulness.md`` for the formula, defaults and the differences from Quantus.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from xaiscore._checks import DTypeError, check_fraction, check_option
from xaiscore._engine.model_mode import models_in_eval_mode
from xaiscore._engine.reduction import NORMALISATIONS, Normalisation, normalise_by_max
from xaiscore.functional._common import nan_where
from xaiscore.functional.faithfulness._common import prepare_model_inputs

__all__ = ["sufficiency"]


def _pairwise_distances(e: Tensor, distance: str) -> Tensor:
    """``(B, B)`` distances between the rows of ``e`` ``(B, N)`` from the differences
    (no matmul expansion, whose cancellation would blur the threshold for near-identical
    explanations)."""
    if distance == "seuclidean":
        if e.shape[0] > 1:
            variance = e.var(dim=0, correction=1)
            # A feature equal in every sample separates no pair: leave it out instead of dividing by
            # 0.
            keep = variance > 0
            e = e[:, keep] / variance[keep].sqrt()
    return (
        torch.cdist(e.unsqueeze(0), e.unsqueeze(0), compute_mode="donot_use_mm_for_euclid_dist")[0])


@models_in_eval_mode("forward_fn")
def sufficiency(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    *,
    threshold: float = 0.6,
    distance: Literal["seuclidean", "euclidean"] = "seuclidean",
    normalise_distances: bool = True,
    absolute: bool = True,
    normalise: Normalisation | None = "sample",
    max_batch_size: int = 64,
    validate: bool = True,
) -> Tensor:
    r"""Sufficiency (Dasgupta et al. 2022): the share of similarly explained samples that share the
    prediction.

    An explanation is sufficient when every input with the same explanation
    gets the same prediction. With the batch as the reference set, explanations
    ``e_i`` (``a`` flattened, optionally absolute and normalised) and pairwise
    distances :math:`d_{ij}` (divided by the largest distance in the batch when
    ``normalise_distances``), the neighbours of sample ``i`` are
    :math:`N_i = \{j \ne i : d_{ij} \le \text{threshold}\}` and

    .. math:: \mathrm{Sufficiency}_i = \frac{|\{j \in N_i : \hat y_j = \hat y_i\}|}{|N_i|}

    with :math:`\hat y = \arg\max f(x)`. Higher is better.

    The score of a sample depends on the other samples by definition (they are
    its reference set): here the whole input batch, whatever ``max_batch_size``.

    Args:
        threshold: Largest (normalised) distance of a neighbour (Quantus: 0.6).
        distance: ``"seuclidean"`` (Euclidean after dividing every feature by
            its standard deviation over the batch; features constant over the
            batch are left out; Quantus' default) or ``"euclidean"``.
        normalise_distances: Divide distances by their maximum over the batch (Quantus).
        absolute: Compare ``|a|`` (Quantus' ``abs=True``).
        normalise: Divide each map by its own largest magnitude (``"sample"``),
            by the batch's (``"batch"``, Quantus) or not (``None``).
        max_batch_size: Most images per model call.
        validate: Check values (finite ``x``/``a``, NaN outputs).

    Returns:
        ``(B,)`` in [0, 1]; NaN for a sample without neighbours (Quantus scores 0).

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; output: ``(B,)``

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 2, bias=False))
        >>> _ = model[1].weight.data.copy_(torch.eye(2))  # predicts the larger input
        >>> x = torch.tensor([[[1.0, 0.0]], [[0.9, 0.1]], [[0.0, 1.0]], [[0.2, 0.8]]])
        >>> a = torch.tensor([[[1.0, 0.0]], [[1.0, 0.1]], [[1.0, 0.0]], [[0.0, 1.0]]])
        >>> sufficiency(model, x, a, distance="euclidean", threshold=0.2).tolist()
        [0.5, 0.5, 0.0, nan]
    """
    threshold = check_fraction(threshold, "threshold", high=math.inf)
    check_option(distance, "distance", ("seuclidean", "euclidean"))
    check_option(normalise, "normalise", NORMALISATIONS)
    for value, name in ((normalise_distances, "normalise_distances"), (absolute, "absolute")):
        if not isinstance(value, bool):
            raise DTypeError(f"Expected `{name}` to be a bool, but got {type(value).__name__}.")
    inputs = prepare_model_inputs(forward_fn, x, a, None, softmax=False,
                                  max_batch_size=max_batch_size,
                                  validate=validate)
    b = inputs.x.shape[0]
    e = inputs.a.reshape(b, -1)
    # distances in float32 (torch.cdist has no half kernels)
    if e.dtype in (torch.float16, torch.bfloat16):
        e = e.float()
    if absolute:
        e = e.abs()
    e = normalise_by_max(e, normalise)
    distances = _pairwise_distances(e, distance)
    if normalise_distances:
        largest = distances.amax()
        distances = distances / torch.where(largest > 0, largest, torch.ones_like(largest))
    eye = torch.eye(b, dtype=torch.bool, device=distances.device)
    neighbours = (distances <= threshold) & ~eye
    prediction = inputs.target
    same = prediction.unsqueeze(0) == prediction.unsqueeze(1)
    count = neighbours.sum(dim=1)
    agree = (neighbours & same).sum(dim=1)
    dtype = inputs.x.dtype
    score = agree.to(dtype) / count.clamp(min=1).to(dtype)
    return nan_where(count == 0, score)
