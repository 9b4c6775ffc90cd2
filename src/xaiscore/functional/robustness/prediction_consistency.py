"""Local consistency (Dasgupta et al. 2022): same explanation, same prediction?

Consistency does not perturb the inputs: it compares the predictions of the samples of the batch
whose discretised explanations agree. See ``docs/robustness.md`` for the formula, defaults and
differences from Quantus.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from xaiscore._checks import (
    DTypeError,
    OptionError,
    check_attributions,
    check_finite,
    check_inputs_like,
    check_option,
    check_positive_int,
)
from xaiscore._engine.batching import check_max_batch_size
from xaiscore._engine.model_mode import models_in_eval_mode
from xaiscore._engine.reduction import ChannelReduction, flatten_features
from xaiscore._engine.reduction import reduce_channels as _reduce_channels
from xaiscore.functional.robustness._common import _predict, _safe_divide

__all__ = ["consistency"]


# --- Dasgupta et al. 2022 ------------------------------------------------------------------


def _discrete_keys(a_flat: Tensor, discretisation: str, k: int) -> Tensor:
    """Integer-valued keys ``(B, L)`` (float64) such that equal keys mean equal discretised
    explanations."""
    if discretisation == "sign":
        return torch.sign(a_flat).to(torch.float64)
    order = torch.sort(-a_flat.abs(), dim=1, stable=True).indices[:, :k]  # ties: lowest index first
    members, _ = torch.sort(order, dim=1)
    if discretisation == "top_k":
        return members.to(torch.float64)
    signs = torch.sign(a_flat.gather(1, members))
    return torch.cat([members.to(torch.float64), signs.to(torch.float64)], dim=1)


def _equal_rows(keys: Tensor) -> Tensor:
    """``(B, B)`` bool: rows of ``keys`` are equal (exact: integer values in float64)."""
    squared = (keys * keys).sum(dim=1)
    distance = squared.unsqueeze(0) + squared.unsqueeze(1) - 2.0 * keys @ keys.T
    return distance == 0


@models_in_eval_mode("forward_fn")
def consistency(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    *,
    discretisation: Literal["top_k_sign", "top_k", "sign"] = "top_k_sign",
    k: int = 5,
    reduce_channels: ChannelReduction | None = "sum",
    max_batch_size: int = 64,
    validate: bool = True,
) -> Tensor:
    r"""Local consistency (Dasgupta et al. 2022): do inputs with the same explanation get the same
    prediction?

    .. math:: m(x_i) = \frac{\#\{j \ne i : e(x_j) = e(x_i),\ f(x_j) = f(x_i)\}}{\#\{j \ne i : e(x_j) = e(x_i)\}}

    the empirical :math:`\Pr_{x'}[f(x') = f(x) \mid e(x') = e(x)]` over the
    other samples of the batch, with :math:`f` the predicted class and
    :math:`e` a discretised explanation:

    * ``"top_k_sign"`` (default): the set of the ``k`` features with the
      largest :math:`|a|` (after ``reduce_channels``) and their signs;
    * ``"top_k"``: that set alone; ``"sign"``: the sign of every feature.

    Ties in :math:`|a|` go to the lower feature index. Higher is better (a
    probability). **The score depends on the batch by definition** (the batch
    is the sample of the data distribution): pass as large and as
    representative a batch as you can.

    Quantus' ``Consistency`` discretises with the signs of the *first* five
    features in memory order (not the top five), takes ``abs`` first (so
    every sign is +1 or 0), scores a sample with no explanation-mate 0 instead
    of undefined, and marks the score lower-is-better.

    Args:
        forward_fn: The model (logits); its argmax is the prediction.
        x: Inputs ``(B, C, *S)``.
        a: Explanations ``(B, 1|C, *S)``.
        discretisation: ``"top_k_sign"``, ``"top_k"`` or ``"sign"``.
        k: Features in the top set (at most the number of features).
        reduce_channels: ``"sum"``, ``"mean"``, ``"max_abs"`` or ``None``.
        max_batch_size: The most inputs per model call.
        validate: Check values (finite ``a`` and ``x``, NaN logits).

    Returns:
        ``(B,)`` scores in [0, 1]; NaN for a sample whose discretised
        explanation no other sample shares.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; output: ``(B,)``

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> with torch.no_grad():
        ...     _ = model[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
        ...     _ = model[1].bias.zero_()
        >>> x = torch.tensor([[[1.0, 0, 0, 0]], [[2.0, 0, 0, 0]], [[0, 1.0, 0, 0]], [[0, 0, 1.0, 0]]])
        >>> a = torch.tensor([[[1.0, 0, 0, 0]], [[1.0, 0, 0, 0]], [[1.0, 0, 0, 0]], [[0, 0, 1.0, 0]]])
        >>> consistency(model, x, a, k=1).tolist()
        [0.5, 0.5, 0.0, nan]
    """  # noqa: E501
    a = check_attributions(a, validate=validate)
    x = check_inputs_like(x, a)
    if validate:
        check_finite(x, "x")
    if not callable(forward_fn):
        raise DTypeError(
            f"Expected `forward_fn` to be callable, but got {type(forward_fn).__name__}.")
    check_option(discretisation, "discretisation", ("top_k_sign", "top_k", "sign"))
    a_flat = flatten_features(_reduce_channels(a, reduce_channels))
    if discretisation != "sign":
        k = check_positive_int(k, "k")
        if k > a_flat.shape[1]:
            raise OptionError(
                f"Expected `k` <= {a_flat.shape[1]} (the number of features), but got {k}.")
    predicted = _predict(forward_fn, x, check_max_batch_size(max_batch_size),
                         validate=validate).argmax(dim=1)
    same_explanation = _equal_rows(_discrete_keys(a_flat, discretisation, k))
    same_explanation.fill_diagonal_(False)
    same_prediction = predicted.unsqueeze(0) == predicted.unsqueeze(1)
    mates = same_explanation.sum(dim=1)
    agree = (same_explanation & same_prediction).sum(dim=1)
    return _safe_divide(agree.to(a.dtype), mates.to(a.dtype))
