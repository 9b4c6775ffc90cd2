r"""Robustness metrics: how much does the explanation change when the input changes a little?

All but :func:`consistency` call the explainer again on perturbed copies of
every input: ``n`` copies per sample, explained in chunks of at most
``max_batch_size`` through :func:`xaiscore._engine.noise.perturbed_statistics`. The
noise comes from ``generator``/``seed`` in fixed blocks, so scores do not
depend on ``max_batch_size`` (for a deterministic ``explain_fn``).

Common arguments:

* ``x`` ``(B, C, *S)`` inputs, ``a`` ``(B, 1|C, *S)`` their explanations
  (``explain_fn(x, target)``, computed by the caller), ``target`` ``(B,)``.
* ``explain_fn(x, target) -> a``: batched (see :mod:`xaiscore.explainers`);
  its output must have the shape of ``a`` per sample.
* ``noise`` and ``radius``: ``"uniform"`` noise on ``[-radius, radius]`` per
  feature (the L-infinity ball of Yeh et al.) or ``"gaussian"`` noise with
  standard deviation ``radius``; ``noise_bounds=(low, high)`` draws uniform
  noise on ``[low, high]`` instead (Quantus' RIS/ROS/RRS use (0.02, 0.2)).
* ``on_prediction_change``: what to do with perturbed copies whose predicted
  class (argmax of ``forward_fn``) differs from that of the unperturbed input:
  ``"keep"`` (no model calls on the copies), ``"exclude"`` (leave them out of the max/mean;
  NaN if none is left) or ``"nan"`` (the sample's score is NaN if any copy
  changed its prediction: Quantus' ``return_nan_when_prediction_changes``).
* ``validate``: also check that ``a`` and ``x`` are finite, that every
  re-computed explanation is finite and that the model never returns a NaN logit
  (:class:`~xaiscore.NonFiniteError`), and that ``target`` is a class of the
  model where a kernel holds one (read from the logits it computes anyway, else
  from one model call on ``x[:1]``). A negative ``target`` is always refused,
  before ``explain_fn`` sees it.
* A model held in training mode (``forward_fn``/``model``, or the ``model`` of
  an explain function) runs in evaluation mode for the call (``docs/conventions.md``).
* ``abs`` and ``normalise``: applied to ``a`` and to every re-computed
  explanation alike (normalise first, then abs, as Quantus does);
  ``normalise="sample"`` divides each map by its own largest absolute value.

Returns ``(B,)`` scores on the device and in the dtype of ``x``. See
``docs/robustness.md`` for the formulas, defaults and differences from Quantus.
"""

from __future__ import annotations

# Types of the signatures, importable from here as before the split.
from xaiscore.functional.robustness._common import Noise, PredictionChange  # noqa: F401
from xaiscore.functional.robustness.prediction_consistency import consistency
from xaiscore.functional.robustness.relative_stability import (
    relative_input_stability,
    relative_output_stability,
    relative_representation_stability,
)
from xaiscore.functional.robustness.sensitivity import (
    avg_sensitivity,
    local_lipschitz_estimate,
    max_sensitivity,
)
from xaiscore.functional.robustness.translation import continuity

__all__ = [
    "max_sensitivity",
    "avg_sensitivity",
    "local_lipschitz_estimate",
    "relative_input_stability",
    "relative_output_stability",
    "relative_representation_stability",
    "continuity",
    "consistency",
]
