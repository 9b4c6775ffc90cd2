"""Axiomatic checks: completeness (Sundararajan et al. 2017) and non-sensitivity
(Nguyen and Martinez 2020).

Common arguments: ``forward_fn`` returns logits ``(n, K)`` (an ``nn.Module``
qualifies); ``x`` ``(B, C, *S)``; ``a`` ``(B, 1|C, *S)``; ``target`` ``(B,)``
long (``None`` tracks the model's prediction on ``x``). Model calls go through
the model in chunks of at most ``max_batch_size`` images.

See ``docs/axiomatic.md`` for formulas, defaults and the differences from Quantus.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from xaiscore._engine.batching import call_model, chunked_map, class_scores
from xaiscore._checks import check_fraction, check_option
from xaiscore._engine.model_mode import models_in_eval_mode
from xaiscore._engine.perturbation import (feature_attributions, make_baseline, partition,
                                           perturbed_scores)
from xaiscore._engine.reduction import NORMALISATIONS, ChannelReduction, Normalisation
from xaiscore.functional.faithfulness._common import finish_scores, prepare_model_inputs

__all__ = ["completeness", "non_sensitivity"]

Baseline = str | float | Callable[[Tensor], Tensor]


@models_in_eval_mode("forward_fn")
def completeness(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None = None,
    *,
    baseline: Baseline = "zeros",
    rtol: float = 0.05,
    atol: float = 1e-6,
    softmax: bool = False,
    max_batch_size: int = 64,
    validate: bool = True,
) -> Tensor:
    r"""Completeness (Sundararajan et al. 2017): do the attributions add up to the output
    difference?

    .. math:: \Big|\sum_e a_e - \big(f_c(x) - f_c(x_0)\big)\Big| \le
              \mathrm{atol} + \mathrm{rtol}\,\big|f_c(x) - f_c(x_0)\big|

    scores 1, otherwise 0, where :math:`x_0` is the baseline and ``f_c`` the
    target logit (or probability with ``softmax``). The sum runs over every
    element of ``a`` as given (a one-channel map is not repeated over
    channels). Integrated Gradients satisfies completeness exactly in the limit
    of its Riemann sum; Sundararajan et al. recommend checking it to within 5 %,
    the default ``rtol``. Quantus compares with float equality (``==``), which
    rounding breaks even for exact attributions. Higher is better.

    Args:
        baseline: The reference input :math:`x_0` (see
            :func:`xaiscore._engine.perturbation.make_baseline`; IG's black image is
            ``"zeros"``, Quantus' ``"black"`` is ``"min"``).
        rtol, atol: Relative and absolute tolerance (``>= 0``).
        softmax: Probabilities instead of logits (default logits: the function IG explains).
        max_batch_size: Most images per model call.
        validate: Check values (finite ``x``/``a``, target range, NaN outputs).

    Returns:
        ``(B,)`` with 1.0 where complete within the tolerance, else 0.0.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> linear = torch.nn.Linear(3, 2)
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), linear)
        >>> x = torch.tensor([[[1.0, 2.0, 3.0]]])
        >>> exact = linear.weight[0].detach().reshape(1, 1, 3) * x  # IG of a linear model, zero baseline
        >>> completeness(model, x, exact, torch.tensor([0])).tolist()
        [1.0]
        >>> completeness(model, x, 2 * exact, torch.tensor([0])).tolist()
        [0.0]
    """  # noqa: E501
    rtol = check_fraction(rtol, "rtol", high=math.inf)
    atol = check_fraction(atol, "atol", high=math.inf)
    inputs = prepare_model_inputs(forward_fn, x, a, target, softmax=softmax,
                                  max_batch_size=max_batch_size,
                                  validate=validate)
    x, target = inputs.x, inputs.target
    reference = make_baseline(x, baseline).expand_as(x)

    def compute(start: int, stop: int) -> Tensor:
        logits = call_model(forward_fn, reference[start:stop].contiguous())
        return class_scores(logits, target[start:stop], softmax=softmax)

    reference_score = finish_scores(chunked_map(x.shape[0], compute, max_batch_size=max_batch_size),
                                    x,
                                    validate=validate)
    difference = inputs.score - reference_score
    total = inputs.a.reshape(x.shape[0], -1).sum(dim=1).to(x.dtype)
    return ((total - difference).abs() <= atol + rtol * difference.abs()).to(x.dtype)


@models_in_eval_mode("forward_fn")
def non_sensitivity(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None = None,
    *,
    eps: float = 1e-5,
    baseline: Baseline = "zeros",
    reduce_channels: ChannelReduction | None = "sum",
    patch_size: int | None = None,
    normalise: Normalisation | None = "sample",
    softmax: bool = True,
    max_batch_size: int = 64,
    validate: bool = True,
) -> Tensor:
    r"""Non-sensitivity (Nguyen and Martinez 2020): are exactly the features the model ignores
    attributed zero?

    Each feature is replaced by the baseline on its own (one model call per
    feature). With :math:`Z_f` the features whose removal changes the target
    output by less than ``eps`` and :math:`Z_a` the features whose attribution
    magnitude is below ``eps``,

    .. math:: \mathrm{NS} = |Z_f \,\triangle\, Z_a|,

    the number of features that are ignored by the model but attributed, or
    attributed zero but used. 0 is ideal; lower is better.

    A feature's attribution magnitude is the channel reduction of ``|a|``
    (summed over a patch), divided by its sample's largest magnitude
    (``normalise="sample"``), by the batch's largest (``"batch"``, as Quantus'
    ``normalise=True, abs=True``) or left raw (``None``).

    Args:
        eps: The threshold for both "no change" and "zero attribution" (Quantus: 1e-5).
        baseline: Replacement values (Quantus' default ``"black"`` is ``"min"``).
        reduce_channels: Pixel features (a reduction) or ``None`` for single
            elements (Quantus).
        patch_size: Square patches of this side as features instead (see
            :func:`xaiscore._engine.perturbation.partition`).
        normalise: ``"sample"``, ``"batch"`` or ``None`` (see above).
        softmax: Probabilities (default, as Quantus) or logits.
        max_batch_size: Most images per model call.
        validate: Check values (finite ``x``/``a``, target range, NaN outputs).

    Returns:
        ``(B,)`` counts (as floats) in ``[0, F]``.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> linear = torch.nn.Linear(4, 2, bias=False)
        >>> _ = linear.weight.data.copy_(torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), linear)
        >>> x = torch.ones(1, 1, 4)
        >>> right, wrong = torch.tensor([[[1.0, 0.0, 2.0, 0.0]]]), torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])
        >>> non_sensitivity(model, x, right, torch.tensor([0]), softmax=False).tolist()
        [0.0]
        >>> non_sensitivity(model, x, wrong, torch.tensor([0]), softmax=False).tolist()  # features 1 and 2 wrong
        [2.0]
    """  # noqa: E501
    eps = check_fraction(eps, "eps", high=math.inf)
    check_option(normalise, "normalise", NORMALISATIONS)
    inputs = prepare_model_inputs(forward_fn, x, a, target, softmax=softmax,
                                  max_batch_size=max_batch_size,
                                  validate=validate)
    x = inputs.x
    part = partition(x.shape, reduce_channels=reduce_channels, patch_size=patch_size,
                     device=x.device)
    # (B, F), >= 0
    magnitude = feature_attributions(inputs.a.abs(), part, reduce_channels=reduce_channels)
    if normalise is not None:
        scale = magnitude.amax(dim=1, keepdim=True) if normalise == "sample" else magnitude.amax()
        magnitude = magnitude / torch.where(scale > 0, scale, torch.ones_like(scale))
    n = part.n_features
    steps = torch.arange(n, device=x.device)
    substrate = make_baseline(x, baseline)
    scores = perturbed_scores(forward_fn, x, part.ids, inputs.target, steps, steps + 1,
                              substrate=substrate,
                              softmax=softmax, max_batch_size=max_batch_size)
    change = (finish_scores(scores, x, validate=validate) - inputs.score.unsqueeze(1)).abs()
    ignored = change < eps
    unattributed = magnitude < eps
    return (ignored ^ unattributed).sum(dim=1).to(x.dtype)
