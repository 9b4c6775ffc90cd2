r"""Intra-consistency (IAC), inter-consistency (IEC) and the meta-consistency (MC) score.

Hedström et al. 2023, "The meta-evaluation problem in explainable AI: identifying
reliable estimators with MetaQuantus", TMLR. Notation: an estimator (metric)
scores ``L`` explanation methods on ``B`` samples; :math:`\bar q_{l,i}` are the
unperturbed scores, :math:`\hat q_{k,l,i}` the scores after perturbation
``k = 1..K`` of the evaluation problem (input or model), and :math:`\kappa_{k,i}`
says whether sample ``i`` is kept for perturbation ``k``: its prediction is
unchanged (resilience tests, "NR") or changed (adversary tests, "AR").

* **IAC** (does the score distribution move?): per method ``l`` and
  perturbation ``k``, the two-sided Wilcoxon signed-rank p-value
  :math:`p_{k,l}` between :math:`\bar q_{l,\cdot}` and :math:`\hat q_{k,l,\cdot}`
  over the kept samples (:func:`xaiscore.meta._stats.wilcoxon_p_value`).
  :math:`\mathrm{IAC}_{NR} = \operatorname{mean}_{k,l} p_{k,l}` (the scores should not move) and
  :math:`\mathrm{IAC}_{AR} = \operatorname{mean}_{k,l} (1 - p_{k,l})` (they should).
* **IEC** (do the rankings behave?):
  :math:`\mathrm{IEC}_{NR} = \operatorname{mean}_k \frac{1}{L |\kappa_k|}\sum_{i \in \kappa_k}
  \sum_l \mathbb 1[\bar r_{l,i} = \hat r_{k,l,i}]`, with :math:`r_{\cdot,i}`
  the ranks of the ``L`` methods on sample ``i`` (ties share their average rank),
  i.e. the share of methods keeping their rank;
  :math:`\mathrm{IEC}_{AR} = \operatorname{mean}_k \frac{1}{L |\kappa_k|}\sum_{i \in \kappa_k}
  \sum_l \mathbb 1[\hat q_{k,l,i} \text{ worse than } \bar q_{l,i}]`, "worse" meaning strictly
  lower for a higher-is-better metric and strictly higher for a lower-is-better one
  (:attr:`xaiscore.specs.MetricSpec.higher_is_better`); NaN for a metric without a direction.
* **MC** per perturbation space (input or model), per iteration:
  :math:`\mathrm{MC} = (\mathrm{IAC}_{NR} + \mathrm{IAC}_{AR} + \mathrm{IEC}_{NR} +
  \mathrm{IEC}_{AR}) / 4` in [0, 1], 1 being ideal; reported as its mean and (population) standard
  deviation over iterations.

Undefined cases (documented choices, MetaQuantus differs): pairs with a
non-finite score are dropped (from IEC_NR the whole sample, since its ranking
is undefined); a perturbation that keeps no sample contributes NaN and is left
out of the mean over ``k`` (MetaQuantus scores an empty Wilcoxon test as
``p = 0``, i.e. a perfect ``IAC_AR``); the criterion is NaN when no
perturbation keeps a sample.

Levels: an estimator returning the same score whatever happens gets
``IAC_NR = IEC_NR = 1`` and ``IAC_AR = IEC_AR = 0`` (MC = 0.5); one returning
independent noise gets about ``0.5, 0.5, 1/L, 0.5`` (MC about ``(1.5 + 1/L) / 4``,
0.4375 for four methods): :func:`random_mc_level`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from xaiscore._checks import OptionError, ShapeError
from xaiscore.meta._stats import average_ranks_small, wilcoxon_p_value

__all__ = [
    "intra_consistency",
    "inter_consistency_resilience",
    "inter_consistency_adversary",
    "consistency",
    "meta_consistency",
    "random_mc_level",
]


def _check_shapes(q: Tensor, q_hat: Tensor, kept: Tensor) -> None:
    if q_hat.ndim < 3 or q.ndim < 2:
        raise ShapeError(
            f"Expected `q` (..., L, B) and `q_hat` (..., K, L, B), but got shapes {tuple(q.shape)} "
            f"and {tuple(q_hat.shape)}."
        )
    if q.shape[-2:] != q_hat.shape[-2:]:
        raise ShapeError(
            f"Expected `q` and `q_hat` to share (L, B), but got {tuple(q.shape[-2:])} and "
            f"{tuple(q_hat.shape[-2:])}."
        )
    if kept.ndim < 2 or kept.shape[-1] != q_hat.shape[-1] or kept.shape[-2] != q_hat.shape[-3]:
        raise ShapeError(
            f"Expected `kept` of shape (..., K, B) = (..., {q_hat.shape[-3]}, {q_hat.shape[-1]}), "
            f"but got {tuple(kept.shape)}."
        )
    if kept.dtype != torch.bool:
        raise ShapeError(f"Expected `kept` to be a bool tensor, but got dtype {kept.dtype}.")


def _nanmean(values: Tensor, dims: tuple[int, ...]) -> Tensor:
    finite = ~torch.isnan(values)
    total = torch.where(finite, values, torch.zeros_like(values)).sum(dims)
    count = finite.sum(dims)
    mean = total / count.clamp(min=1)
    return torch.where(count > 0, mean, torch.full_like(mean, math.nan))


def intra_consistency(q: Tensor, q_hat: Tensor, kept: Tensor, *, adversary: bool) -> Tensor:
    r"""Per perturbation and method: the Wilcoxon p-value (resilience) or one minus it (adversary).

    Args:
        q: Unperturbed scores ``(..., L, B)``.
        q_hat: Perturbed scores ``(..., K, L, B)``.
        kept: ``(..., K, B)`` bool: the samples kept for each perturbation.
        adversary: Return ``1 - p`` (an adversary test) instead of ``p``.

    Returns:
        ``(..., K, L)`` float64 in [0, 1]; NaN where no pair is usable.

    Shape:
        - q: ``(..., L, B)``; q_hat: ``(..., K, L, B)``; kept: ``(..., K, B)``
        - output: ``(..., K, L)``

    Example:
        >>> q = torch.arange(6.0).reshape(1, 6)
        >>> intra_consistency(q, q.unsqueeze(0), torch.ones(1, 6, dtype=torch.bool), adversary=False).tolist()
        [[1.0]]
    """  # noqa: E501
    _check_shapes(q, q_hat, kept)
    p = wilcoxon_p_value(q.unsqueeze(-3), q_hat, kept.unsqueeze(-2))
    return 1.0 - p if adversary else p


def inter_consistency_resilience(q: Tensor, q_hat: Tensor, kept: Tensor) -> Tensor:
    r"""Per perturbation: the share of (method, kept sample) pairs whose method rank is unchanged.

    Ranks are over the ``L`` methods per sample, ties sharing their average rank;
    a sample with a non-finite score for any method (before or after) is left out.

    Returns:
        ``(..., K)`` float64 in [0, 1]; NaN where no sample is usable.

    Shape:
        - q: ``(..., L, B)``; q_hat: ``(..., K, L, B)``; kept: ``(..., K, B)``
        - output: ``(..., K)``

    Example:
        >>> q = torch.tensor([[1.0, 5.0], [2.0, 4.0], [3.0, 3.0]])  # 3 methods, 2 samples
        >>> q_hat = torch.tensor([[[1.5, 3.0], [2.5, 4.0], [3.5, 5.0]]])  # sample 1's order reversed
        >>> inter_consistency_resilience(q, q_hat, torch.ones(1, 2, dtype=torch.bool)).tolist()
        [0.6666666666666666]
    """  # noqa: E501
    _check_shapes(q, q_hat, kept)
    rank = average_ranks_small(q, dim=-2).unsqueeze(-3)
    rank_hat = average_ranks_small(q_hat, dim=-2)
    same = (rank == rank_hat).to(torch.float64)  # (..., K, L, B)
    # (..., K, B)
    usable = kept & torch.isfinite(q).all(-2).unsqueeze(-2) & torch.isfinite(q_hat).all(-2)
    agree = (same * usable.unsqueeze(-2)).sum((-2, -1))
    count = usable.sum(-1).to(torch.float64) * q.shape[-2]
    share = agree / count.clamp(min=1)
    return torch.where(count > 0, share, torch.full_like(share, math.nan))


def inter_consistency_adversary(q: Tensor, q_hat: Tensor, kept: Tensor, *,
                                higher_is_better: bool | None) -> Tensor:
    r"""Per perturbation: the share of (method, kept sample) pairs whose score got strictly worse.

    "Worse" follows the metric's direction: lower for ``higher_is_better=True``,
    higher for ``False``. MetaQuantus 0.0.5 takes the direction as the strings
    ``"higher"``/``"lower"``, both truthy, and so counts *increases* for every
    metric; here the direction is a bool and is applied.

    Returns:
        ``(..., K)`` float64 in [0, 1]; NaN where no pair is usable, and
        everywhere for ``higher_is_better=None`` (no direction, nothing is worse).

    Shape:
        - q: ``(..., L, B)``; q_hat: ``(..., K, L, B)``; kept: ``(..., K, B)``
        - output: ``(..., K)``

    Example:
        >>> q, q_hat = torch.ones(2, 3), torch.zeros(1, 2, 3)  # every score dropped from 1 to 0
        >>> kept = torch.ones(1, 3, dtype=torch.bool)
        >>> inter_consistency_adversary(q, q_hat, kept, higher_is_better=True).tolist()
        [1.0]
        >>> inter_consistency_adversary(q, q_hat, kept, higher_is_better=False).tolist()
        [0.0]
    """
    _check_shapes(q, q_hat, kept)
    if higher_is_better is not None and not isinstance(higher_is_better, bool):
        raise OptionError(
            f"Expected `higher_is_better` to be True, False or None, but got {higher_is_better!r} "
            "(a string such as 'lower' would be truthy)."
        )
    shape = q_hat.shape[:-2]
    if higher_is_better is None:
        return torch.full(shape, math.nan, dtype=torch.float64, device=q_hat.device)
    q64, q_hat64 = q.to(torch.float64).unsqueeze(-3), q_hat.to(torch.float64)
    worse = q_hat64 < q64 if higher_is_better else q_hat64 > q64
    usable = kept.unsqueeze(-2) & torch.isfinite(q64) & torch.isfinite(q_hat64)
    count = usable.sum((-2, -1)).to(torch.float64)
    share = (worse & usable).sum((-2, -1)).to(torch.float64) / count.clamp(min=1)
    return torch.where(count > 0, share, torch.full_like(share, math.nan))


def consistency(q: Tensor, q_hat: Tensor, kept: Tensor, *, adversary: bool,
                higher_is_better: bool | None) -> tuple[Tensor, Tensor, Tensor]:
    """IAC and IEC of one test, averaged over the perturbations (NaN ones left out).

    Returns:
        ``(iac (...), iec (...), iac_per_method (..., L))``, float64.

    Example:
        >>> q = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])  # 2 methods, 3 samples
        >>> kept = torch.ones(4, 3, dtype=torch.bool)
        >>> iac, iec, _ = consistency(q, q.expand(4, 2, 3), kept, adversary=False, higher_is_better=True)
        >>> iac.item(), iec.item()  # a score that never moves: perfectly resilient
        (1.0, 1.0)
    """  # noqa: E501
    p = intra_consistency(q, q_hat, kept, adversary=adversary)  # (..., K, L)
    if adversary:
        per_k = inter_consistency_adversary(q, q_hat, kept, higher_is_better=higher_is_better)
    else:
        per_k = inter_consistency_resilience(q, q_hat, kept)
    return _nanmean(p, (-2, -1)), _nanmean(per_k, (-1,)), _nanmean(p, (-2,))


def meta_consistency(iac_nr: Tensor, iac_ar: Tensor, iec_nr: Tensor, iec_ar: Tensor) -> Tensor:
    """The MC score: the mean of the four criteria (NaN if any is NaN).

    Example:
        >>> meta_consistency(*(torch.tensor([v]) for v in (1.0, 0.0, 1.0, 0.0))).tolist()
        [0.5]
    """
    return (iac_nr + iac_ar + iec_nr + iec_ar) / 4.0


def random_mc_level(n_methods: int) -> float:
    """The expected MC of an estimator returning independent noise: ``(0.5 + 0.5 + 1/L + 0.5) / 4``.

    Wilcoxon p-values are about uniform under the null (mean 1/2, for IAC_NR and
    IAC_AR), a method keeps its rank among ``L`` with probability ``1/L``
    (IEC_NR), and a noisy score gets worse half the time (IEC_AR).

    Example:
        >>> random_mc_level(4)
        0.4375
    """
    if isinstance(n_methods, bool) or not isinstance(n_methods, int) or n_methods < 1:
        raise OptionError(f"Expected `n_methods` to be a positive int, but got {n_methods!r}.")
    return (1.5 + 1.0 / n_methods) / 4.0
