"""The wrapper for per-sample metrics: one score (and curve) per sample, kept or summed."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from xaiscore._checks import OptionError, ShapeError
from xaiscore.metrics._base import MetricResult, XaiscoreMetric, cat_state, dedup_order

__all__ = ["PerSampleMetric"]

#: Result fields that hold one entry per sample (joined over per-sample calls); the others
#: (``x``, ``layers``) are the same for every sample.
_PER_SAMPLE_FIELDS = frozenset({"score", "curve", "baseline", "off_target"})


def merge_results(parts: list[Any]) -> Any:
    """Join kernel results of consecutive slices of a batch (tensors or NamedTuples)."""
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, Tensor):
        return torch.cat(parts)
    fields = {}
    for name in first._fields:
        values = [getattr(part, name) for part in parts]
        if name in _PER_SAMPLE_FIELDS and isinstance(values[0], Tensor):
            fields[name] = torch.cat(values)
        else:
            fields[name] = values[0]
    return type(first)(**fields)


class PerSampleMetric(XaiscoreMetric):
    """A per-sample metric (``scope="sample"``): scores of a sample depend on that sample alone.

    States (all ``persistent``; ``dist_reduce_fx`` in brackets):

    * ``n_samples`` [sum]; with ``keep_samples=False``, ``score_sum`` [sum] float64 and
      ``n_defined`` [sum]: the NaN-aware mean without keeping any per-sample value;
    * with ``keep_samples=True`` (default): ``scores`` [cat] ``(N,)``, ``index`` [cat] the
      ``sample_index`` of each row when given, ``curves`` [cat] ``(N, T)`` for curve
      metrics, ``baseline`` [cat] for the randomization metrics' random-map baseline.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_state(
            "score_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum", persistent=True
        )
        self.add_state(
            "n_defined", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum", persistent=True
        )
        self.add_state(
            "n_samples", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum", persistent=True
        )
        for name in ("scores", "index", "curves", "baseline"):
            self.add_state(name, [], dist_reduce_fx="cat", persistent=True)
        self._score_dtype: torch.dtype = torch.get_default_dtype()
        self._curve_x: Tensor | None = None

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Score one batch; the inputs are named as in the kernel (see the class docstring)."""
        inputs, sample_index = self._bind_update(args, kwargs)
        result = self._call_kernel(inputs, sample_index, merge_results)
        score = result if isinstance(result, Tensor) else result.score
        batch = self._batch_size(inputs)
        if not isinstance(score, Tensor) or score.shape != (batch,):
            raise ShapeError(
                f"Expected {self.spec.name} to return ({batch},) scores, but got "
                f"{getattr(score, 'shape', type(score).__name__)}."
            )
        score = score.detach()
        if score.dtype != self._score_dtype:
            self._score_dtype = score.dtype
        self.n_samples.add_(batch)  # in place: no Module.__setattr__ per batch
        if not self.keep_samples:  # the per-sample list, when kept, gives the mean and counts
            device = self.score_sum.device
            self.score_sum.add_(torch.nansum(score, dtype=torch.float64).to(device))
            self.n_defined.add_((~torch.isnan(score)).sum().to(device))
            return
        self.scores.append(score)
        if sample_index is not None:
            self.index.append(sample_index.to(score.device))
        curve = getattr(result, "curve", None)
        if isinstance(curve, Tensor):
            x = result.x.detach()
            if self._curve_x is not None and self._curve_x.shape != x.shape:
                raise ShapeError(
                    f"Expected curves of {self._curve_x.shape[0]} steps in every batch (the x "
                    f"positions of the first), but got {x.shape[0]}."
                )
            self._curve_x = x
            self.curves.append(curve.detach())
        baseline = getattr(result, "baseline", None)
        if isinstance(baseline, Tensor):
            self.baseline.append(baseline.detach())

    def _result(self) -> MetricResult:
        scores = cat_state(self.scores)
        if scores is None:
            total, count = self.score_sum, self.n_defined
            value = total / count if int(count) > 0 else torch.tensor(math.nan, dtype=torch.float64)
            return MetricResult(
                value.to(self._score_dtype), self.n_defined.clone(), self.n_samples.clone()
            )
        index = cat_state(self.index)
        curves, baseline = cat_state(self.curves), cat_state(self.baseline)
        if index is not None:
            if index.numel() != scores.numel():
                raise OptionError(
                    "Expected `sample_index` in every update or in none, but got "
                    f"{index.numel()} indices for "
                    f"{scores.numel()} scores."
                )
            keep = dedup_order(index.long()).to(scores.device)
            index, scores = index.long()[keep], scores[keep]
            curves = None if curves is None else curves[keep.to(curves.device)]
            baseline = None if baseline is None else baseline[keep.to(baseline.device)]
        defined = ~torch.isnan(scores)
        value = (
            torch.nanmean(scores)
            if bool(defined.any())
            else torch.tensor(math.nan, dtype=scores.dtype)
        )
        x = None if curves is None or self._curve_x is None else self._curve_x
        return MetricResult(
            value.to(scores.dtype),
            defined.sum(),
            torch.tensor(scores.numel()),
            scores,
            index,
            curves,
            x,
            baseline,
        )
