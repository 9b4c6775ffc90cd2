"""Sensitivity to input noise: max- and average-sensitivity, the local Lipschitz estimate.

Max- and average-sensitivity (Yeh et al. 2019) and the local Lipschitz estimate
(Alvarez-Melis and Jaakkola 2018) explain noisy copies of every input again.

The common arguments (noise, prediction changes, post-processing) are described in
:mod:`xaiscore.functional.robustness`; see ``docs/robustness.md`` for the formulas, defaults
and differences from Quantus.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from xaiscore._engine.explain_fn import ExplainFn
from xaiscore._engine.model_mode import models_in_eval_mode
from xaiscore._engine.noise import Chunk
from xaiscore.functional.robustness._common import (
    Noise,
    PredictionChange,
    _check_common,
    _check_norm_order,
    _noisy_metric,
    _norm,
    _prepare,
    _safe_divide,
)

__all__ = ["max_sensitivity", "avg_sensitivity", "local_lipschitz_estimate"]


# --- Yeh et al. 2019 -----------------------------------------------------------------------


def _sensitivity(x, a, target, *, explain_fn, forward_fn, n_samples, noise, radius, noise_bounds, p,
                 relative,
                 abs, normalise, on_prediction_change, generator, seed, max_batch_size, validate,
                 how):
    x, a, target = _check_common(x, a, target, explain_fn, validate)
    p = _check_norm_order(p)
    reference = _prepare(a, abs, normalise)
    scale = _norm(reference, p) if relative else None

    def item_value(chunk: Chunk) -> Tensor:
        change = _norm(reference[chunk.rows] - _prepare(chunk.a_perturbed, abs, normalise), p)
        return change if scale is None else _safe_divide(change, scale.index_select(0, chunk.rows))

    return _noisy_metric(
        x, reference, target, explain_fn=explain_fn, forward_fn=forward_fn, n_samples=n_samples,
        noise=noise,
        radius=radius, noise_bounds=noise_bounds, item_value=item_value, needs_logits=False,
        on_prediction_change=on_prediction_change, how=how, generator=generator, seed=seed,
        max_batch_size=max_batch_size, validate=validate,
    )


@models_in_eval_mode("explain_fn", "forward_fn")
def max_sensitivity(
    x: Tensor,
    a: Tensor,
    target: Tensor,
    *,
    explain_fn: ExplainFn,
    forward_fn: Callable[[Tensor], Tensor] | None = None,
    n_samples: int = 200,
    noise: Noise = "uniform",
    radius: float = 0.2,
    noise_bounds: tuple[float, float] | None = None,
    p: float = 2.0,
    relative: bool = True,
    abs: bool = False,
    normalise: Literal["sample"] | None = None,
    on_prediction_change: PredictionChange = "keep",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    max_batch_size: int = 64,
    validate: bool = True,
) -> Tensor:
    r"""Max-sensitivity (Yeh et al. 2019): the largest change of the explanation under small input
    noise.

    .. math:: \mathrm{SENS}_{\max}(x) = \max_{j=1..n}
              \frac{\lVert \Phi(x + \delta_j) - \Phi(x) \rVert_p}{\lVert \Phi(x) \rVert_p},
              \qquad \delta_j \sim \mathcal{U}[-r, r]^d

    a Monte Carlo estimate of :math:`\max_{\lVert \delta \rVert_\infty \le r}`.
    Yeh et al. define the numerator alone (``relative=False``); dividing by
    :math:`\lVert \Phi(x) \rVert` (``relative=True``, the default, as in Quantus
    and in common use) makes the score comparable across methods whose maps
    differ in scale. Lower is better; a constant explainer scores 0.

    Defaults follow Quantus' ``MaxSensitivity`` (uniform noise, radius 0.2,
    200 samples, Frobenius norm, no normalisation).

    Args:
        x: Inputs ``(B, C, *S)``.
        a: Their explanations ``(B, 1|C, *S)``, e.g. ``explain_fn(x, target)``.
        target: ``(B,)`` classes to explain.
        explain_fn: Batched ``explain_fn(x, target) -> a`` (no model needed otherwise).
        forward_fn: The model, only for ``on_prediction_change`` other than ``"keep"``.
        n_samples: Noisy copies per sample.
        noise, radius, noise_bounds: The perturbation (module docstring).
        p: The norm order (2: Frobenius; ``math.inf`` allowed).
        relative: Divide by :math:`\lVert \Phi(x) \rVert_p`.
        abs, normalise: Applied to every explanation (module docstring).
        on_prediction_change: ``"keep"``, ``"exclude"`` or ``"nan"``.
        generator, seed: The source of the noise.
        max_batch_size: The most inputs per ``explain_fn`` call.
        validate: Check values (finite ``a``, targets, explanations).

    Returns:
        ``(B,)`` scores >= 0; NaN where ``relative`` and :math:`\Phi(x) = 0`, or
        where no perturbation is left (``"exclude"``/``"nan"``).

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0))
        >>> target = torch.zeros(2, dtype=torch.long)
        >>> square = lambda x, t: x**2                    # a toy explainer
        >>> max_sensitivity(x, square(x, target), target, explain_fn=square, n_samples=8, seed=0).shape
        torch.Size([2])
        >>> max_sensitivity(x, x * 0 + 1, target, explain_fn=lambda x, t: x * 0 + 1, seed=0).tolist()
        [0.0, 0.0]
    """  # noqa: E501
    return _sensitivity(x, a, target, explain_fn=explain_fn, forward_fn=forward_fn,
                        n_samples=n_samples,
                        noise=noise, radius=radius, noise_bounds=noise_bounds, p=p,
                        relative=relative, abs=abs,
                        normalise=normalise, on_prediction_change=on_prediction_change,
                        generator=generator,
                        seed=seed, max_batch_size=max_batch_size, validate=validate, how="max")


@models_in_eval_mode("explain_fn", "forward_fn")
def avg_sensitivity(
    x: Tensor,
    a: Tensor,
    target: Tensor,
    *,
    explain_fn: ExplainFn,
    forward_fn: Callable[[Tensor], Tensor] | None = None,
    n_samples: int = 200,
    noise: Noise = "uniform",
    radius: float = 0.2,
    noise_bounds: tuple[float, float] | None = None,
    p: float = 2.0,
    relative: bool = True,
    abs: bool = False,
    normalise: Literal["sample"] | None = None,
    on_prediction_change: PredictionChange = "keep",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    max_batch_size: int = 64,
    validate: bool = True,
) -> Tensor:
    r"""Average sensitivity (Yeh et al. 2019): the mean change of the explanation under small input
    noise.

    .. math:: \mathrm{SENS}_{\mathrm{avg}}(x) = \frac{1}{n} \sum_{j=1}^{n}
              \frac{\lVert \Phi(x + \delta_j) - \Phi(x) \rVert_p}{\lVert \Phi(x) \rVert_p},
              \qquad \delta_j \sim \mathcal{U}[-r, r]^d

    a Monte Carlo estimate of the expectation over the noise. Options and
    defaults as :func:`max_sensitivity`. Lower is better.

    Returns:
        ``(B,)`` scores >= 0; NaN as for :func:`max_sensitivity`.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> x = torch.ones(1, 1, 4)
        >>> double = lambda x, t: 2 * x       # Phi(x + d) - Phi(x) = 2 d
        >>> target = torch.zeros(1, dtype=torch.long)
        >>> score = avg_sensitivity(x, double(x, target), target, explain_fn=double, relative=False,
        ...                         noise_bounds=(0.1, 0.1), n_samples=3, seed=0)
        >>> round(score.item(), 6)   # ||2 * 0.1 * ones(4)||_2
        0.4
    """
    return _sensitivity(x, a, target, explain_fn=explain_fn, forward_fn=forward_fn,
                        n_samples=n_samples,
                        noise=noise, radius=radius, noise_bounds=noise_bounds, p=p,
                        relative=relative, abs=abs,
                        normalise=normalise, on_prediction_change=on_prediction_change,
                        generator=generator,
                        seed=seed, max_batch_size=max_batch_size, validate=validate, how="mean")


# --- Alvarez-Melis and Jaakkola 2018 -------------------------------------------------------


@models_in_eval_mode("explain_fn", "forward_fn")
def local_lipschitz_estimate(
    x: Tensor,
    a: Tensor,
    target: Tensor,
    *,
    explain_fn: ExplainFn,
    forward_fn: Callable[[Tensor], Tensor] | None = None,
    n_samples: int = 200,
    noise: Noise = "gaussian",
    radius: float = 0.1,
    noise_bounds: tuple[float, float] | None = None,
    p: float = 2.0,
    abs: bool = False,
    normalise: Literal["sample"] | None = "sample",
    on_prediction_change: PredictionChange = "keep",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    max_batch_size: int = 64,
    validate: bool = True,
) -> Tensor:
    r"""Local Lipschitz estimate (Alvarez-Melis and Jaakkola 2018).

    .. math:: \hat L(x) = \max_{j=1..n}
              \frac{\lVert \Phi(x) - \Phi(x + \delta_j) \rVert_p}{\lVert \delta_j \rVert_p}

    a sampled estimate of :math:`\max_{x' \in B_\epsilon(x)} \lVert \Phi(x) -
    \Phi(x') \rVert_2 / \lVert x - x' \rVert_2`. Defaults follow Quantus'
    ``LocalLipschitzEstimate``: Gaussian noise with standard deviation 0.1,
    200 samples, Euclidean norms, maps normalised by their maximum (per sample
    here, per batch in Quantus). Lower is better.

    The paper maximises over distinct points ``x' != x``: a perturbation with
    :math:`\delta_j = 0` (zero noise) is left out; Quantus instead adds 1e-10
    to the denominator.

    Args:
        See :func:`max_sensitivity`; ``p`` is the order of both norms.

    Returns:
        ``(B,)`` scores >= 0; NaN where every perturbation is zero or left out.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> x = torch.zeros(1, 1, 5)
        >>> triple = lambda x, t: 3 * x        # a 3-Lipschitz map
        >>> target = torch.zeros(1, dtype=torch.long)
        >>> score = local_lipschitz_estimate(x, triple(x, target), target, explain_fn=triple,
        ...                                  normalise=None, n_samples=4, seed=0)
        >>> round(score.item(), 5)
        3.0
    """
    x, a, target = _check_common(x, a, target, explain_fn, validate)
    p = _check_norm_order(p)
    reference = _prepare(a, abs, normalise)

    def item_value(chunk: Chunk) -> Tensor:
        change = _norm(reference[chunk.rows] - _prepare(chunk.a_perturbed, abs, normalise), p)
        return _safe_divide(change, _norm(chunk.x_perturbed - chunk.x, p))

    return _noisy_metric(
        x, reference, target, explain_fn=explain_fn, forward_fn=forward_fn, n_samples=n_samples,
        noise=noise,
        radius=radius, noise_bounds=noise_bounds, item_value=item_value, needs_logits=False,
        on_prediction_change=on_prediction_change, how="max", generator=generator, seed=seed,
        max_batch_size=max_batch_size, validate=validate,
    )

