"""Result types shared by the kernels that return more than one ``(B,)`` tensor."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

__all__ = ["CurveResult"]


class CurveResult(NamedTuple):
    """A perturbation curve per sample and its scalar summary.

    Attributes:
        score: ``(B,)`` summary per sample (e.g. the area under the curve), NaN where undefined.
        curve: ``(B, T)`` the curve: the tracked model score (or metric value) at each step.
        x: ``(T,)`` the curve's x positions, e.g. the fraction of features perturbed in [0, 1].

    A ``NamedTuple``, so ``score, curve, x = deletion(...)`` unpacks it.
    """

    score: Tensor
    curve: Tensor
    x: Tensor
