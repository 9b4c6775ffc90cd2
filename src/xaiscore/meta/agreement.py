r"""Beyond MetaQuantus: do metrics agree, are their rankings reliable, do they beat random maps?

All three work on the unperturbed scores ``q`` of shape ``(M, L, B)`` (metrics x
methods x samples), oriented by each metric's direction so that higher is
better (a metric without a direction gives NaN where a direction is needed).

* :func:`metric_agreement`: Kendall's tau-b between the method rankings of two
  metrics, per sample (ranking the ``L`` methods on that sample) and overall
  (ranking the methods by their mean score over the samples, NaN scores left out).
* :func:`split_half_reliability`: split the samples at random into two halves
  (sizes ``floor(B/2)`` and ``ceil(B/2)``), rank the methods by their mean
  score in each half, and take Kendall's tau-b between the two rankings; one
  value per split. A metric whose ranking is a property of the methods, not of
  the particular samples, scores near 1.
* :func:`random_baseline_separation`: per metric and method, the share of
  samples on which the method scores better than the random-attribution
  baseline (:func:`xaiscore.explainers.random_explainer`; ties count one
  half), and the one-sided Wilcoxon signed-rank p-value of "the method scores
  better than the baseline" (:func:`xaiscore.meta._stats.wilcoxon_p_value`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from xaiscore._checks import ShapeError, check_positive_int
from xaiscore.meta._stats import kendall_tau_b, wilcoxon_p_value

__all__ = ["orient", "metric_agreement", "split_half_reliability", "random_baseline_separation"]


def _check_scores(q: Tensor, higher_is_better: Sequence[bool | None]) -> None:
    if not isinstance(q, Tensor) or q.ndim != 3:
        shape = tuple(q.shape) if isinstance(q, Tensor) else type(q).__name__
        raise ShapeError(f"Expected scores of shape (metrics, methods, samples), but got {shape}.")
    if len(higher_is_better) != q.shape[0]:
        raise ShapeError(
            f"Expected one direction per metric ({q.shape[0]}), but got {len(higher_is_better)}."
        )


def orient(q: Tensor, higher_is_better: Sequence[bool | None]) -> Tensor:
    """Scores ``(M, ...)`` as float64 with lower-is-better metrics negated and direction-less ones
    NaN.

    Example:
        >>> orient(torch.tensor([[1.0], [2.0], [3.0]]), [True, False, None]).tolist()
        [[1.0], [-2.0], [nan]]
    """
    signs = torch.tensor([math.nan if h is None else (1.0 if h else -1.0)
                          for h in higher_is_better],
                         dtype=torch.float64, device=q.device)
    return q.to(torch.float64) * signs.reshape((-1,) + (1,) * (q.ndim - 1))


def _nanmean(values: Tensor, dim: int) -> Tensor:
    finite = torch.isfinite(values)
    total = torch.where(finite, values, torch.zeros_like(values)).sum(dim)
    count = finite.sum(dim)
    mean = total / count.clamp(min=1)
    return torch.where(count > 0, mean, torch.full_like(mean, math.nan))


def metric_agreement(q: Tensor, higher_is_better: Sequence[bool | None]) -> tuple[Tensor, Tensor]:
    r"""Kendall's tau-b between the method rankings of every pair of metrics.

    Args:
        q: Unperturbed scores ``(M, L, B)``.
        higher_is_better: One direction per metric.

    Returns:
        ``(overall (M, M), per_sample (M, M, B))`` float64: tau between the
        rankings by mean score, and per sample; NaN for direction-less metrics
        and where a ranking is constant.

    Shape:
        - q: ``(M, L, B)``
        - output: ``(M, M)`` and ``(M, M, B)``

    Example:
        >>> q = torch.tensor([[[1.0], [2.0], [3.0]], [[3.0], [2.0], [1.0]]])  # 2 metrics, 3 methods, 1 sample
        >>> overall, per_sample = metric_agreement(q, [True, False])
        >>> overall.tolist()  # the second ranks the same way once its direction is applied
        [[1.0, 1.0], [1.0, 1.0]]
    """  # noqa: E501
    _check_scores(q, higher_is_better)
    oriented = orient(q, higher_is_better)
    per_sample = kendall_tau_b(oriented.unsqueeze(1).transpose(-1, -2),
                               oriented.unsqueeze(0).transpose(-1, -2))
    means = _nanmean(oriented, -1)  # (M, L)
    overall = kendall_tau_b(means.unsqueeze(1), means.unsqueeze(0))
    return overall, per_sample


def split_half_reliability(q: Tensor, *, n_splits: int = 100, generator: torch.Generator) -> Tensor:
    r"""Kendall's tau-b between the method rankings of two random halves of the samples, per split.

    The splits are drawn up front (``torch.rand(n_splits, B)`` from ``generator``,
    arg-sorted: the first ``floor(B/2)`` positions form one half) and shared by
    all metrics.

    Returns:
        ``(M, n_splits)`` float64; NaN where a half's ranking is constant or
        undefined (and for ``B < 2``).

    Shape:
        - q: ``(M, L, B)``; output: ``(M, n_splits)``

    Example:
        >>> q = torch.tensor([[[0.0, 0.1, 0.2, 0.3], [1.0, 1.1, 1.2, 1.3]]])  # method 2 always better
        >>> split_half_reliability(q, n_splits=3, generator=torch.Generator().manual_seed(0)).tolist()
        [[1.0, 1.0, 1.0]]
    """  # noqa: E501
    if not isinstance(q, Tensor) or q.ndim != 3:
        raise ShapeError(
            "Expected scores of shape (metrics, methods, samples), but got "
            f"{getattr(q, 'shape', q)}.")
    check_positive_int(n_splits, "n_splits")
    b = q.shape[-1]
    order = torch.rand(n_splits, b, generator=generator,
                       device=generator.device).argsort(dim=1).to(q.device)
    first = torch.zeros(n_splits, b, dtype=torch.bool, device=q.device)
    first.scatter_(1, order[:, : b // 2], True)
    values = q.to(torch.float64).unsqueeze(1)  # (M, 1, L, B)
    finite = torch.isfinite(values)

    def half_means(members: Tensor) -> Tensor:  # members (S, B) -> (M, S, L)
        use = finite & members.unsqueeze(1)
        total = torch.where(use, values, torch.zeros_like(values)).sum(-1)
        count = use.sum(-1)
        return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, math.nan))

    tau = kendall_tau_b(half_means(first), half_means(~first))
    if b < 2:
        tau = torch.full_like(tau, math.nan)
    return tau


def random_baseline_separation(q: Tensor, baseline: Tensor, higher_is_better: Sequence[bool | None]
                               ) -> tuple[Tensor, Tensor]:
    """Win rate and one-sided Wilcoxon p-value of each method against the random-attribution
    baseline.

    Args:
        q: Unperturbed scores ``(M, L, B)``.
        baseline: The random explainer's scores ``(M, B)``.
        higher_is_better: One direction per metric.

    Returns:
        ``(win_rate (M, L), p_value (M, L))`` float64; NaN for direction-less
        metrics and where no sample has finite scores for both.

    Example:
        >>> q = torch.tensor([[[0.9, 0.8, 0.7, 0.95, 0.85, 0.75, 0.65]]])  # 1 metric, 1 method, 7 samples
        >>> win, p = random_baseline_separation(q, torch.full((1, 7), 0.5), [True])
        >>> win.item(), round(p.item(), 4)
        (1.0, 0.0078)
    """  # noqa: E501
    _check_scores(q, higher_is_better)
    if baseline.shape != (q.shape[0], q.shape[2]):
        raise ShapeError(
            f"Expected `baseline` of shape {(q.shape[0], q.shape[2])}, but got "
            f"{tuple(baseline.shape)}.")
    oriented = orient(q, higher_is_better)
    base = orient(baseline, higher_is_better).unsqueeze(1)  # (M, 1, B)
    usable = torch.isfinite(oriented) & torch.isfinite(base)
    wins = (oriented > base).to(torch.float64) + 0.5 * (oriented == base).to(torch.float64)
    count = usable.sum(-1).to(torch.float64)
    win_rate = (wins * usable).sum(-1) / count.clamp(min=1)
    win_rate = torch.where(count > 0, win_rate, torch.full_like(win_rate, math.nan))
    p_value = wilcoxon_p_value(oriented, base, usable, alternative="greater")
    return win_rate, p_value

