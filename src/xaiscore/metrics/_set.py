"""The wrappers for set-level metrics (``scope="set"``): computed over everything seen.

Two kinds:

* :class:`StatisticsSetMetric`: the metric's
  :class:`~xaiscore.functional.set_statistics.SetStatistics` declares fixed-size statistics
  that add up over batches; the states are those statistics (``dist_reduce_fx="sum"``) and
  ``compute`` applies the final reduction. Memory does not grow with the set (per-class
  pointing accuracy, box accuracy, MaxBoxAcc, PxAP).
* :class:`PredictionSetMetric`: metrics whose kernel uses the model only for the predicted
  class of the unperturbed inputs (sufficiency, consistency). The states are each sample's
  explanation (flattened, in its own dtype: exact) and predicted class; ``compute`` calls the
  kernel once on the whole set, with the stored predictions standing in for the model.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import Tensor

from xaiscore._checks import OptionError, ShapeError, check_attributions, check_inputs_like
from xaiscore._engine.batching import call_model, check_max_batch_size, chunked_map
from xaiscore.functional.set_statistics import call_with_options
from xaiscore.metrics._base import MetricResult, XaiscoreMetric, cat_state, dedup_order

__all__ = ["StatisticsSetMetric", "PredictionSetMetric"]


class StatisticsSetMetric(XaiscoreMetric):
    """A set-level metric kept as summed, fixed-size statistics (one ``sum`` state per statistic).

    States: the statistics of the spec's ``SetStatistics`` (``persistent``,
    ``dist_reduce_fx="sum"``) and ``n_samples`` (rows seen). Rows are not deduplicated (there
    is no per-row state): under ``torch.distributed``, use a sampler that does not repeat
    samples.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        statistics = self.spec.set_statistics
        self._statistic_names: tuple[str, ...] = ()
        for name, zero in call_with_options(statistics.zeros, options=self.options).items():
            self.add_state(f"statistic_{name}", zero, dist_reduce_fx="sum", persistent=True)
            self._statistic_names += (name,)
        self.add_state(
            "n_samples", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum", persistent=True
        )
        self._value_dtype: torch.dtype = torch.get_default_dtype()

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Add one batch's statistics; the inputs are named as in the kernel."""
        inputs, _ = self._bind_update(args, kwargs)
        statistics = self.spec.set_statistics
        values = [inputs[name] for name in statistics.inputs]
        given = {n: inputs[n] for n in statistics.optional_inputs if inputs.get(n) is not None}
        update = functools.partial(statistics.update, **given) if given else statistics.update
        batch = call_with_options(update, *values, options=self.options)
        for name in self._statistic_names:
            state = getattr(self, f"statistic_{name}")
            setattr(self, f"statistic_{name}", state + batch[name].to(state.device, state.dtype))
        self.n_samples += self._batch_size(inputs)
        floating = [v for v in values if isinstance(v, Tensor) and v.is_floating_point()]
        if floating:
            self._value_dtype = floating[0].dtype

    def _result(self) -> MetricResult:
        statistics = {name: getattr(self, f"statistic_{name}") for name in self._statistic_names}
        details = call_with_options(
            self.spec.set_statistics.compute, statistics, options=self.options
        )
        return MetricResult(
            details[0].to(self._value_dtype), None, self.n_samples.clone(), details=details
        )


class PredictionSetMetric(XaiscoreMetric):
    """A set-level metric on explanations and predicted classes (sufficiency, consistency).

    States (``persistent``, ``dist_reduce_fx="cat"``): ``explanations`` ``(N, numel(a_i))`` in
    ``a``'s dtype, ``predictions`` ``(N,)`` long, ``index`` (the ``sample_index`` of each row
    when given; rows sharing an index count once). Memory: ``N * numel(a_i) * itemsize`` bytes
    plus 8 per sample, and the kernel's ``(N, N)`` pairwise matrices during ``compute``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("explanations", "predictions", "index"):
            self.add_state(name, [], dist_reduce_fx="cat", persistent=True)
        self._item_shape: tuple[int, ...] | None = None

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Keep one batch's explanations and predicted classes."""
        inputs, sample_index = self._bind_update(args, kwargs)
        validate = self.options.get("validate", True)
        a = check_attributions(inputs["a"], validate=bool(validate)).detach()
        x = check_inputs_like(inputs["x"], a).detach()
        forward_fn = self._callables["forward_fn"]
        max_batch_size = check_max_batch_size(self.options.get("max_batch_size", 64))
        predictions = chunked_map(
            x.shape[0],
            lambda s, e: call_model(forward_fn, x[s:e]).argmax(dim=1),
            max_batch_size=max_batch_size,
        )
        if self._item_shape is not None and tuple(a.shape[1:]) != self._item_shape:
            raise ShapeError(
                "Expected every batch's `a` to have the per-sample shape "
                f"{self._item_shape} of the "
                f"first, but got {tuple(a.shape[1:])}."
            )
        self._item_shape = tuple(a.shape[1:])
        self.explanations.append(a.reshape(a.shape[0], -1).clone())  # never the caller's buffer
        self.predictions.append(predictions)
        if sample_index is not None:
            self.index.append(sample_index.to(predictions.device))

    def _result(self) -> MetricResult:
        explanations, predictions = cat_state(self.explanations), cat_state(self.predictions)
        if explanations is None or predictions is None or self._item_shape is None:
            nan = torch.tensor(math.nan)
            return MetricResult(nan, torch.tensor(0), torch.tensor(0), torch.empty(0))
        predictions = predictions.long()
        index = cat_state(self.index)
        if index is not None:
            if index.numel() != predictions.numel():
                raise OptionError(
                    "Expected `sample_index` in every update or in none, but got "
                    f"{index.numel()} indices for "
                    f"{predictions.numel()} samples."
                )
            keep = dedup_order(index.long())
            index = index.long()[keep]
            explanations = explanations[keep.to(explanations.device)]
            predictions = predictions[keep.to(predictions.device)]
        scores = self._score_set(explanations, predictions)
        defined = ~torch.isnan(scores)
        value = (
            torch.nanmean(scores)
            if bool(defined.any())
            else torch.tensor(math.nan, dtype=scores.dtype)
        )
        return MetricResult(value, defined.sum(), torch.tensor(scores.numel()), scores, index)

    def _score_set(self, explanations: Tensor, predictions: Tensor) -> Tensor:
        """The kernel on the whole set, with the stored predictions standing in for the model.

        The kernel's ``x`` is a view of each sample's position (the first element of every
        row holds it exactly) and its ``forward_fn`` returns one-hot logits of the stored
        prediction at that position, so the kernel sees the same explanations and predicted
        classes as on the real inputs.
        """
        n = explanations.shape[0]
        a = explanations.reshape((n,) + self._item_shape)  # type: ignore[operator]
        exact = round(2 / torch.finfo(a.dtype).eps)  # integers up to here are exact in a.dtype
        code_dtype = a.dtype if n <= exact else torch.float64
        codes = torch.arange(n, device=a.device, dtype=code_dtype).reshape(
            (n,) + (1,) * (a.ndim - 1)
        )
        x = codes.expand(a.shape)
        predictions = predictions.to(a.device)
        num_classes = int(predictions.max()) + 1

        def stored_logits(chunk: Tensor) -> Tensor:
            position = chunk[(slice(None),) + (0,) * (chunk.ndim - 1)].long()
            return torch.nn.functional.one_hot(predictions[position], num_classes).to(chunk.dtype)

        options = {**self.options, "validate": False}  # validated at update
        return self.kernel(stored_logits, x, a, **options).to(a.dtype)
