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
  ``"keep"`` (no model calls), ``"exclude"`` (leave them out of the max/mean;
  NaN if none is left) or ``"nan"`` (the sample's score is NaN if any copy
  changed its prediction: Quantus' ``return_nan_when_prediction_changes``).
* ``abs`` and ``normalise``: applied to ``a`` and to every re-computed
  explanation alike (normalise first, then abs, as Quantus does);
  ``normalise="sample"`` divides each map by its own largest absolute value.

Returns ``(B,)`` scores on the device and in the dtype of ``x``. See
``docs/robustness.md`` for the formulas, defaults and differences from Quantus.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from xaiscore._engine.batching import call_model, check_max_batch_size, chunked_map
from xaiscore._checks import (
    DTypeError,
    OptionError,
    check_attributions,
    check_fraction,
    check_inputs_like,
    check_option,
    check_positive_int,
    check_target,
)
from xaiscore._engine.explain_fn import ExplainFn
from xaiscore._engine.noise import BlockNoise, Chunk, check_noise_options, perturbed_statistics
from xaiscore._engine.random import resolve_generator
from xaiscore._engine.reduction import ChannelReduction, flatten_features, normalise_by_max
from xaiscore._engine.reduction import reduce_channels as _reduce_channels
from xaiscore.functional._common import nan_where

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

Noise = Literal["uniform", "gaussian"]
PredictionChange = Literal["keep", "exclude", "nan"]
_PREDICTION_CHANGE = ("keep", "exclude", "nan")


# --- shared helpers ------------------------------------------------------------------------


def _check_common(x: Tensor, a: Tensor, target: Tensor, explain_fn: object, validate: bool) -> tuple[Tensor, Tensor, Tensor]:
    a = check_attributions(a, validate=validate)
    x = check_inputs_like(x, a)
    target = check_target(target, x.shape[0], device=x.device, validate=validate)
    if not callable(explain_fn):
        raise DTypeError(f"Expected `explain_fn` to be callable as explain_fn(x, target), but got {type(explain_fn).__name__}.")
    return x.detach(), a.detach(), target


def _check_norm_order(p: float, name: str = "p") -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not (p >= 1):
        raise OptionError(f"Expected `{name}` to be a norm order >= 1 (math.inf allowed), but got {p!r}.")
    return float(p)


def _norm(values: Tensor, p: float) -> Tensor:
    """Per-row p-norm of ``(m, ...)`` values, ``(m,)``."""
    return torch.linalg.vector_norm(flatten_features(values), ord=p, dim=1)


def _prepare(a: Tensor, abs_: bool, normalise: str | None) -> Tensor:
    check_option(normalise, "normalise", ("sample", None))
    if normalise is not None:
        a = normalise_by_max(a, "sample")
    return a.abs() if abs_ else a


def _check_prediction_mode(mode: str, forward_fn: object) -> None:
    check_option(mode, "on_prediction_change", _PREDICTION_CHANGE)
    if mode != "keep" and forward_fn is None:
        raise OptionError(
            f"Expected a `forward_fn` with on_prediction_change={mode!r} (it decides whether the prediction "
            "changed), but got None. Pass the model or use on_prediction_change='keep'."
        )
    if forward_fn is not None and not callable(forward_fn):
        raise DTypeError(f"Expected `forward_fn` to be callable, but got {type(forward_fn).__name__}.")


def _predict(forward_fn: Callable[[Tensor], Tensor], x: Tensor, max_batch_size: int) -> Tensor:
    """Logits of the unperturbed inputs, in chunks."""
    return chunked_map(x.shape[0], lambda s, e: call_model(forward_fn, x[s:e]), max_batch_size=max_batch_size)


def _aggregate(values: Tensor, changed: Tensor | None, how: Literal["max", "mean"], mode: str) -> Tensor:
    """Reduce ``(B, n)`` per-perturbation values to ``(B,)``; NaN terms never count.

    ``changed`` ``(B, n)`` marks copies whose prediction changed: ``"exclude"``
    drops them, ``"nan"`` makes the whole sample NaN, ``"keep"`` ignores it.
    """
    nan = torch.full_like(values, math.nan)
    if changed is not None and mode == "exclude":
        values = torch.where(changed, nan, values)
    missing = torch.isnan(values)
    if how == "max":
        out = torch.where(missing, torch.full_like(values, -math.inf), values).amax(dim=1)
        out = nan_where(missing.all(dim=1), out)
    else:
        out = torch.nanmean(values, dim=1)
    if changed is not None and mode == "nan":
        out = nan_where(changed.any(dim=1), out)
    return out


def _safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` with NaN where the denominator is 0."""
    zero = denominator == 0
    return nan_where(zero, numerator / torch.where(zero, torch.ones_like(denominator), denominator))


def _noisy_metric(
    x: Tensor,
    a: Tensor,
    target: Tensor,
    *,
    explain_fn: ExplainFn,
    forward_fn: Callable[[Tensor], Tensor] | None,
    n_samples: int,
    noise: str,
    radius: float,
    noise_bounds: tuple[float, float] | None,
    item_value: Callable[[Chunk], Tensor],
    needs_logits: bool,
    on_prediction_change: str,
    how: Literal["max", "mean"],
    generator: torch.Generator | None,
    seed: int | None,
    max_batch_size: int,
    validate: bool,
    reference_logits: Tensor | None = None,
) -> Tensor:
    """Shared driver: draw noise, explain the noisy copies, reduce per item, then per sample."""
    n_samples = check_positive_int(n_samples, "n_samples")
    low, high = check_noise_options(noise, radius, noise_bounds)
    _check_prediction_mode(on_prediction_change, forward_fn)
    check_max_batch_size(max_batch_size)
    source = BlockNoise(x.shape[0] * n_samples, x.shape[1:], kind=noise, low=low, high=high,
                        generator=resolve_generator(generator, seed), device=x.device, dtype=x.dtype)
    track = on_prediction_change != "keep"
    run_model = track or needs_logits
    if track:
        if reference_logits is None:
            reference_logits = _predict(forward_fn, x, max_batch_size)
        reference_class = reference_logits.argmax(dim=1)

    def statistic(chunk: Chunk) -> Tensor:
        value = item_value(chunk)
        if not track:
            return value.unsqueeze(1)
        changed = chunk.logits.argmax(dim=1) != reference_class.index_select(0, chunk.rows)
        return torch.stack([value, changed.to(value.dtype)], dim=1)

    stats = perturbed_statistics(
        explain_fn, x, target, n_perturbations=n_samples,
        perturb=lambda rows_x, start, stop, steps: source.add_to(rows_x, start, stop),
        statistic=statistic, max_batch_size=max_batch_size,
        forward_fn=forward_fn if run_model else None,
        explanation_shape=a.shape[1:], validate=validate,
    )
    changed = stats[..., 1] > 0.5 if track else None
    return _aggregate(stats[..., 0], changed, how, on_prediction_change)


# --- Yeh et al. 2019 -----------------------------------------------------------------------


def _sensitivity(x, a, target, *, explain_fn, forward_fn, n_samples, noise, radius, noise_bounds, p, relative,
                 abs, normalise, on_prediction_change, generator, seed, max_batch_size, validate, how):
    x, a, target = _check_common(x, a, target, explain_fn, validate)
    p = _check_norm_order(p)
    reference = _prepare(a, abs, normalise)
    scale = _norm(reference, p) if relative else None

    def item_value(chunk: Chunk) -> Tensor:
        change = _norm(reference[chunk.rows] - _prepare(chunk.a_perturbed, abs, normalise), p)
        return change if scale is None else _safe_divide(change, scale.index_select(0, chunk.rows))

    return _noisy_metric(
        x, reference, target, explain_fn=explain_fn, forward_fn=forward_fn, n_samples=n_samples, noise=noise,
        radius=radius, noise_bounds=noise_bounds, item_value=item_value, needs_logits=False,
        on_prediction_change=on_prediction_change, how=how, generator=generator, seed=seed,
        max_batch_size=max_batch_size, validate=validate,
    )


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
    r"""Max-sensitivity (Yeh et al. 2019): the largest change of the explanation under small input noise.

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
    """
    return _sensitivity(x, a, target, explain_fn=explain_fn, forward_fn=forward_fn, n_samples=n_samples,
                        noise=noise, radius=radius, noise_bounds=noise_bounds, p=p, relative=relative, abs=abs,
                        normalise=normalise, on_prediction_change=on_prediction_change, generator=generator,
                        seed=seed, max_batch_size=max_batch_size, validate=validate, how="max")


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
    r"""Average sensitivity (Yeh et al. 2019): the mean change of the explanation under small input noise.

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
    return _sensitivity(x, a, target, explain_fn=explain_fn, forward_fn=forward_fn, n_samples=n_samples,
                        noise=noise, radius=radius, noise_bounds=noise_bounds, p=p, relative=relative, abs=abs,
                        normalise=normalise, on_prediction_change=on_prediction_change, generator=generator,
                        seed=seed, max_batch_size=max_batch_size, validate=validate, how="mean")


# --- Alvarez-Melis and Jaakkola 2018 -------------------------------------------------------


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
        x, reference, target, explain_fn=explain_fn, forward_fn=forward_fn, n_samples=n_samples, noise=noise,
        radius=radius, noise_bounds=noise_bounds, item_value=item_value, needs_logits=False,
        on_prediction_change=on_prediction_change, how="max", generator=generator, seed=seed,
        max_batch_size=max_batch_size, validate=validate,
    )


# --- Agarwal et al. 2022 -------------------------------------------------------------------


class _RelativeChange:
    """``|| (reference[rows] - perturbed) / reference[rows] ||_p`` per item, exact zeros of the
    denominator replaced by ``eps_min``; the denominators are built once per call, not per chunk."""

    def __init__(self, reference: Tensor, eps_min: float, p: float) -> None:
        self.reference = reference
        self.denominator = torch.where(reference == 0, eps_min, reference)
        self.p = p

    def __call__(self, rows: Tensor, perturbed: Tensor, reference_rows: Tensor | None = None) -> Tensor:
        """``reference_rows``: ``reference[rows]`` where the caller already holds it."""
        change = torch.sub(self.reference[rows] if reference_rows is None else reference_rows, perturbed)
        change.div_(self.denominator[rows])
        return _norm(change, self.p)


def _check_stability_options(p: float, eps_min: float) -> tuple[float, float]:
    return _check_norm_order(p), check_fraction(eps_min, "eps_min", high=math.inf, low_inclusive=False)


def relative_input_stability(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor,
    *,
    explain_fn: ExplainFn,
    n_samples: int = 200,
    noise: Noise = "uniform",
    radius: float = 0.2,
    noise_bounds: tuple[float, float] | None = None,
    p: float = 2.0,
    eps_min: float = 1e-6,
    abs: bool = False,
    normalise: Literal["sample"] | None = None,
    on_prediction_change: PredictionChange = "exclude",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    max_batch_size: int = 64,
    validate: bool = True,
) -> Tensor:
    r"""Relative input stability, RIS (Agarwal et al. 2022).

    .. math:: \mathrm{RIS}(x) = \max_{x'} \frac{\lVert (e_x - e_{x'}) / e_x \rVert_p}
              {\max(\lVert (x - x') / x \rVert_p,\ \epsilon_{\min})}

    over noisy copies :math:`x' = x + \delta_j` that keep the prediction
    (:math:`\hat y_{x'} = \hat y_x`, ``on_prediction_change="exclude"``); the
    divisions are element-wise (percent change), with exact zeros of
    :math:`e_x` and :math:`x` replaced by :math:`\epsilon_{\min}` as Quantus
    does. Lower is better.

    ``forward_fn`` decides which copies keep the prediction (pass
    ``on_prediction_change="keep"`` to skip the model). Quantus draws uniform
    noise on [0.02, 0.2] (``noise_bounds=(0.02, 0.2)``) and makes the whole
    score NaN as soon as one copy changes the prediction (``"nan"``); it adds
    :math:`\epsilon_{\min}` only to an exactly zero denominator.

    Args:
        forward_fn: The model (logits), for the prediction check.
        eps_min: The floor of the denominator and the stand-in for zeros.
        Others: see :func:`max_sensitivity`.

    Returns:
        ``(B,)`` scores >= 0; NaN where every copy changed the prediction.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 3))
        >>> x = torch.rand(2, 2, 4, generator=torch.Generator().manual_seed(0)) + 1
        >>> target = model(x).argmax(1)
        >>> same = lambda x, t: x.clone()     # e_x = x: relative changes are equal
        >>> ris = relative_input_stability(model, x, same(x, target), target, explain_fn=same,
        ...                                n_samples=5, seed=0, on_prediction_change="keep")
        >>> torch.allclose(ris, torch.ones(2))
        True
    """
    x, a, target = _check_common(x, a, target, explain_fn, validate)
    p, eps_min = _check_stability_options(p, eps_min)
    reference = _prepare(a, abs, normalise)
    explanation_change = _RelativeChange(reference, eps_min, p)
    input_change = _RelativeChange(x, eps_min, p)

    def item_value(chunk: Chunk) -> Tensor:
        numerator = explanation_change(chunk.rows, _prepare(chunk.a_perturbed, abs, normalise))
        return numerator / input_change(chunk.rows, chunk.x_perturbed, chunk.x).clamp(min=eps_min)

    return _noisy_metric(
        x, reference, target, explain_fn=explain_fn, forward_fn=forward_fn, n_samples=n_samples, noise=noise,
        radius=radius, noise_bounds=noise_bounds, item_value=item_value, needs_logits=False,
        on_prediction_change=on_prediction_change, how="max", generator=generator, seed=seed,
        max_batch_size=max_batch_size, validate=validate,
    )


def relative_output_stability(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor,
    *,
    explain_fn: ExplainFn,
    n_samples: int = 200,
    noise: Noise = "uniform",
    radius: float = 0.2,
    noise_bounds: tuple[float, float] | None = None,
    p: float = 2.0,
    eps_min: float = 1e-6,
    abs: bool = False,
    normalise: Literal["sample"] | None = None,
    on_prediction_change: PredictionChange = "exclude",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    max_batch_size: int = 64,
    validate: bool = True,
) -> Tensor:
    r"""Relative output stability, ROS (Agarwal et al. 2022).

    .. math:: \mathrm{ROS}(x) = \max_{x'} \frac{\lVert (e_x - e_{x'}) / e_x \rVert_p}
              {\max(\lVert h(x) - h(x') \rVert_p,\ \epsilon_{\min})}

    with :math:`h` the logits (``forward_fn``) and :math:`x'` as in
    :func:`relative_input_stability`. Lower is better.

    Returns:
        ``(B,)`` scores >= 0; NaN where every copy changed the prediction.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 3))
        >>> x = torch.rand(2, 2, 4, generator=torch.Generator().manual_seed(0))
        >>> target = model(x).argmax(1)
        >>> constant = lambda x, t: torch.ones_like(x)
        >>> relative_output_stability(model, x, constant(x, target), target, explain_fn=constant,
        ...                           n_samples=5, seed=0).tolist()
        [0.0, 0.0]
    """
    x, a, target = _check_common(x, a, target, explain_fn, validate)
    p, eps_min = _check_stability_options(p, eps_min)
    _check_prediction_mode(on_prediction_change, forward_fn)
    if forward_fn is None or not callable(forward_fn):
        raise DTypeError(f"Expected `forward_fn` to be callable (the model's logits), but got {type(forward_fn).__name__}.")
    reference = _prepare(a, abs, normalise)
    logits = _predict(forward_fn, x, max_batch_size)
    explanation_change = _RelativeChange(reference, eps_min, p)

    def item_value(chunk: Chunk) -> Tensor:
        numerator = explanation_change(chunk.rows, _prepare(chunk.a_perturbed, abs, normalise))
        change = torch.linalg.vector_norm(logits[chunk.rows] - chunk.logits, ord=p, dim=1)
        return numerator / change.to(numerator.dtype).clamp(min=eps_min)

    return _noisy_metric(
        x, reference, target, explain_fn=explain_fn, forward_fn=forward_fn, n_samples=n_samples, noise=noise,
        radius=radius, noise_bounds=noise_bounds, item_value=item_value, needs_logits=True,
        on_prediction_change=on_prediction_change, how="max", generator=generator, seed=seed,
        max_batch_size=max_batch_size, validate=validate, reference_logits=logits,
    )


class _RepresentationProbe:
    """Calls ``model`` and keeps the flattened outputs of ``layers`` from the last call."""

    def __init__(self, model: nn.Module, layers: Sequence[str] | None) -> None:
        self.model = model
        if layers is None:
            leaves = [m for m in model.modules() if not list(m.children())]
            if len(leaves) < 2:
                raise OptionError(
                    "Expected `layer` to name the layer whose representation to compare; the default (the input "
                    "of the model's last leaf module) needs a model with at least two leaf modules."
                )
            self.modules, self.use_input = [leaves[-1]], True
        else:
            self.modules, self.use_input = [], False
            for name in layers:
                try:
                    self.modules.append(model.get_submodule(name))
                except AttributeError:
                    names = [n for n, _ in model.named_modules() if n][:12]
                    raise OptionError(
                        f"Expected `layer` to name a submodule of the model, e.g. one of {names}, but got {name!r}."
                    ) from None
        self.captured: list[Tensor] = []
        self.active = False

    def _hook(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor | None = None) -> None:
        if not self.active:  # the explainer's own model calls are not ours to record
            return
        value = inputs[0] if self.use_input else output
        if not isinstance(value, Tensor):
            raise OptionError(f"Expected the layer {type(module).__name__} to output a tensor, but got {type(value).__name__}.")
        self.captured.append(value.detach().reshape(value.shape[0], -1))

    def __enter__(self) -> _RepresentationProbe:
        if self.use_input:
            self.handles = [m.register_forward_pre_hook(self._hook) for m in self.modules]
        else:
            self.handles = [m.register_forward_hook(self._hook) for m in self.modules]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()

    def __call__(self, x: Tensor) -> Tensor:
        with self.recording_model_calls():
            return self.model(x)

    @contextlib.contextmanager
    def recording_model_calls(self) -> Iterator[None]:
        """Record the layers during the model calls inside (``perturbed_statistics`` uses it when the
        explainer hands out the logits of its own forward pass: that pass then fills :meth:`representation`)."""
        self.captured = []
        self.active = True
        try:
            yield
        finally:
            self.active = False

    def representation(self) -> Tensor:
        return self.captured[0] if len(self.captured) == 1 else torch.cat(self.captured, dim=1)


def relative_representation_stability(
    model: nn.Module,
    x: Tensor,
    a: Tensor,
    target: Tensor,
    *,
    explain_fn: ExplainFn,
    layer: str | Sequence[str] | None = None,
    n_samples: int = 200,
    noise: Noise = "uniform",
    radius: float = 0.2,
    noise_bounds: tuple[float, float] | None = None,
    p: float = 2.0,
    eps_min: float = 1e-6,
    abs: bool = False,
    normalise: Literal["sample"] | None = None,
    on_prediction_change: PredictionChange = "exclude",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    max_batch_size: int = 64,
    validate: bool = True,
) -> Tensor:
    r"""Relative representation stability, RRS (Agarwal et al. 2022).

    .. math:: \mathrm{RRS}(x) = \max_{x'} \frac{\lVert (e_x - e_{x'}) / e_x \rVert_p}
              {\max(\lVert (L_x - L_{x'}) / L_x \rVert_p,\ \epsilon_{\min})}

    with :math:`L_x` the flattened output of ``layer`` (several names are
    concatenated), read with a forward hook during the model call that also
    decides whether the prediction changed; the hooks are removed before the
    function returns. With ``layer=None`` the representation is the *input* of
    the model's last leaf module (the classifier head of most networks).
    Quantus concatenates every layer by default. Lower is better.

    Args:
        model: An ``nn.Module`` returning logits.
        layer: Dotted submodule name(s), e.g. ``"features.3"``.
        Others: see :func:`relative_input_stability`.

    Returns:
        ``(B,)`` scores >= 0; NaN where every copy changed the prediction.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 4), torch.nn.ReLU(),
        ...                             torch.nn.Linear(4, 3))
        >>> x = torch.rand(3, 2, 4, generator=torch.Generator().manual_seed(0))
        >>> target = model(x).argmax(1)
        >>> twice = lambda x, t: 2 * x
        >>> relative_representation_stability(model, x, twice(x, target), target, explain_fn=twice,
        ...                                   layer="1", n_samples=4, seed=0).shape
        torch.Size([3])
    """
    if not isinstance(model, nn.Module):
        raise DTypeError(f"Expected `model` to be a torch.nn.Module (hooks read its layers), but got {type(model).__name__}.")
    x, a, target = _check_common(x, a, target, explain_fn, validate)
    p, eps_min = _check_stability_options(p, eps_min)
    layers = [layer] if isinstance(layer, str) else (None if layer is None else list(layer))
    probe = _RepresentationProbe(model, layers)
    reference = _prepare(a, abs, normalise)
    with probe:
        n_classes: list[int] = []

        def reference_pass(start: int, stop: int) -> Tensor:
            out = call_model(probe, x[start:stop])
            n_classes[:] = [out.shape[1]]
            return torch.cat([out, probe.representation().to(out.dtype)], dim=1)

        both = chunked_map(x.shape[0], reference_pass, max_batch_size=check_max_batch_size(max_batch_size))
        logits, rep = both[:, : n_classes[0]], both[:, n_classes[0]:]
        explanation_change = _RelativeChange(reference, eps_min, p)
        representation_change = _RelativeChange(rep, eps_min, p)

        def item_value(chunk: Chunk) -> Tensor:
            numerator = explanation_change(chunk.rows, _prepare(chunk.a_perturbed, abs, normalise))
            change = representation_change(chunk.rows, probe.representation())
            return numerator / change.to(numerator.dtype).clamp(min=eps_min)

        return _noisy_metric(
            x, reference, target, explain_fn=explain_fn, forward_fn=probe, n_samples=n_samples, noise=noise,
            radius=radius, noise_bounds=noise_bounds, item_value=item_value, needs_logits=True,
            on_prediction_change=on_prediction_change, how="max", generator=generator, seed=seed,
            max_batch_size=max_batch_size, validate=validate, reference_logits=logits,
        )


# --- Montavon et al. 2018 ------------------------------------------------------------------


def _translation_shifts(width: int, n_steps: int) -> list[int]:
    """Quantus' schedule: ``n_steps`` shifts of ``(2W + 1) // n_steps`` pixels, starting at ``-W``."""
    step = (2 * width + 1) // n_steps
    if step == 0:
        raise OptionError(
            f"Expected `n_steps` <= 2 * {width} + 1 (one pixel per step at least along the translated axis), "
            f"but got {n_steps}."
        )
    return [-width + step * k for k in range(1, n_steps + 1)]


def _fill_values(x: Tensor, fill: str | float) -> Tensor:
    flat = flatten_features(x)
    if isinstance(fill, str):
        check_option(fill, "fill", ("black", "white", "mean"))
        value = {"black": flat.amin, "white": flat.amax, "mean": flat.mean}[fill](dim=1)
    elif isinstance(fill, bool) or not isinstance(fill, (int, float)):
        raise DTypeError(f"Expected `fill` to be 'black', 'white', 'mean' or a number, but got {type(fill).__name__}.")
    else:
        value = torch.full((x.shape[0],), float(fill), dtype=x.dtype, device=x.device)
    return value


def _translate(x: Tensor, shifts: Tensor, fill: Tensor, axis: int) -> Tensor:
    """Shift each row of ``x`` by ``shifts[i]`` pixels along ``axis`` (positive: towards higher indices), filling with ``fill[i]``."""
    moved = x.movedim(axis, -1)
    width = moved.shape[-1]
    source = torch.arange(width, device=x.device).unsqueeze(0) - shifts.unsqueeze(1)  # (m, W)
    valid = (source >= 0) & (source < width)
    view = (x.shape[0],) + (1,) * (moved.ndim - 2) + (width,)
    index = source.clamp(0, width - 1).reshape(view).expand_as(moved)
    gathered = moved.gather(-1, index)
    filled = torch.where(valid.reshape(view), gathered, fill.reshape((-1,) + (1,) * (moved.ndim - 1)).to(x.dtype))
    return filled.movedim(-1, axis)


def continuity(
    x: Tensor,
    a: Tensor,
    target: Tensor,
    *,
    explain_fn: ExplainFn,
    forward_fn: Callable[[Tensor], Tensor] | None = None,
    n_steps: int = 28,
    shifts: Sequence[int] | None = None,
    axis: int = -1,
    fill: str | float = "black",
    p_explanation: float = 1.0,
    p_input: float = 2.0,
    abs: bool = True,
    normalise: Literal["sample"] | None = "sample",
    on_prediction_change: PredictionChange = "keep",
    max_batch_size: int = 64,
    validate: bool = True,
) -> Tensor:
    r"""Explanation continuity (Montavon et al. 2018) under translations of the input.

    .. math:: \mathrm{Cont}(x) = \max_{t} \frac{\lVert R(x) - R(\tau_t x) \rVert_1}
              {\lVert x - \tau_t x \rVert_2}

    where :math:`\tau_t` shifts the input by ``t`` pixels along ``axis`` and
    fills the uncovered pixels with ``fill`` (``"black"``: the sample's
    minimum, as Quantus), and :math:`R` is the explanation. Montavon et al.
    define the strongest variation of the explanation over nearby inputs; as in
    Quantus' ``Continuity`` the nearby inputs are translated copies, with
    Quantus' shift schedule by default (``n_steps`` shifts of
    ``(2W + 1) // n_steps`` pixels from ``-W``). Translations that leave the
    input unchanged (shift 0) are left out: the quotient is 0/0 there (Quantus
    adds 1e-9 to the denominator, which turns any randomness in the explainer
    into a score near 1e9). Lower is better. Deterministic: no noise.

    Args:
        x, a, target, explain_fn: As in :func:`max_sensitivity`.
        forward_fn: Only for ``on_prediction_change`` (the reference is the
            prediction on ``x``; Quantus compares with ``target``).
        n_steps: The number of shifts of the default schedule.
        shifts: Explicit shifts in pixels (overrides ``n_steps``).
        axis: The spatial axis to translate along (an axis of ``x``; -1: the last).
        fill: ``"black"``, ``"white"``, ``"mean"`` (per sample) or a number.
        p_explanation, p_input: The norm orders (1 and 2 in the paper).
        abs, normalise: Applied to every explanation (Quantus: both on).

    Returns:
        ``(B,)`` scores >= 0; NaN where no shift changes the input (a constant input).

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> x = torch.zeros(1, 1, 6); x[0, 0, 2] = 1.0
        >>> identity = lambda x, t: x.clone()
        >>> target = torch.zeros(1, dtype=torch.long)
        >>> continuity(x, identity(x, target), target, explain_fn=identity, shifts=[1, -1]).tolist()
        [1.4142135381698608]
    """
    x, a, target = _check_common(x, a, target, explain_fn, validate)
    check_positive_int(n_steps, "n_steps")
    p_explanation = _check_norm_order(p_explanation, "p_explanation")
    p_input = _check_norm_order(p_input, "p_input")
    _check_prediction_mode(on_prediction_change, forward_fn)
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise DTypeError(f"Expected `axis` to be an int, but got {type(axis).__name__}.")
    if not -x.ndim <= axis < x.ndim or axis % x.ndim < 2:
        raise OptionError(f"Expected `axis` to be a spatial axis of `x` (2 to {x.ndim - 1}, or negative), but got {axis}.")
    axis = axis % x.ndim
    if shifts is None:
        shift_list = _translation_shifts(x.shape[axis], n_steps)
    else:
        if isinstance(shifts, (str, bytes)) or not isinstance(shifts, Sequence) or len(shifts) == 0:
            raise OptionError(f"Expected `shifts` as a non-empty sequence of ints, but got {shifts!r}.")
        if any(isinstance(s, bool) or not isinstance(s, int) for s in shifts):
            raise DTypeError(f"Expected `shifts` to hold ints (pixels), but got {list(shifts)!r}.")
        shift_list = list(shifts)
    shift_tensor = torch.tensor(shift_list, dtype=torch.long, device=x.device)
    fill_values = _fill_values(x, fill)
    reference = _prepare(a, abs, normalise)
    track = on_prediction_change != "keep"
    if track:
        reference_class = _predict(forward_fn, x, max_batch_size).argmax(dim=1)

    def statistic(chunk: Chunk) -> Tensor:
        change = _norm(reference[chunk.rows] - _prepare(chunk.a_perturbed, abs, normalise),
                       p_explanation)
        value = _safe_divide(change, _norm(chunk.x - chunk.x_perturbed, p_input))
        if not track:
            return value.unsqueeze(1)
        changed = chunk.logits.argmax(dim=1) != reference_class.index_select(0, chunk.rows)
        return torch.stack([value, changed.to(value.dtype)], dim=1)

    stats = perturbed_statistics(
        explain_fn, x, target, n_perturbations=len(shift_list),
        perturb=lambda rows_x, start, stop, steps: _translate(
            rows_x, shift_tensor.index_select(0, steps),
            fill_values.index_select(0, torch.div(torch.arange(start, stop, device=x.device), len(shift_list),
                                                  rounding_mode="floor")), axis),
        statistic=statistic, max_batch_size=max_batch_size, forward_fn=forward_fn if track else None,
        explanation_shape=a.shape[1:], validate=validate,
    )
    changed = stats[..., 1] > 0.5 if track else None
    return _aggregate(stats[..., 0], changed, "max", on_prediction_change)


# --- Dasgupta et al. 2022 ------------------------------------------------------------------


def _discrete_keys(a_flat: Tensor, discretisation: str, k: int) -> Tensor:
    """Integer-valued keys ``(B, L)`` (float64) such that equal keys mean equal discretised explanations."""
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
    r"""Local consistency (Dasgupta et al. 2022): do inputs with the same explanation get the same prediction?

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
        validate: Check values (finite ``a``).

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
    """
    a = check_attributions(a, validate=validate)
    x = check_inputs_like(x, a)
    if not callable(forward_fn):
        raise DTypeError(f"Expected `forward_fn` to be callable, but got {type(forward_fn).__name__}.")
    check_option(discretisation, "discretisation", ("top_k_sign", "top_k", "sign"))
    a_flat = flatten_features(_reduce_channels(a, reduce_channels))
    if discretisation != "sign":
        k = check_positive_int(k, "k")
        if k > a_flat.shape[1]:
            raise OptionError(f"Expected `k` <= {a_flat.shape[1]} (the number of features), but got {k}.")
    predicted = _predict(forward_fn, x, check_max_batch_size(max_batch_size)).argmax(dim=1)
    same_explanation = _equal_rows(_discrete_keys(a_flat, discretisation, k))
    same_explanation.fill_diagonal_(False)
    same_prediction = predicted.unsqueeze(0) == predicted.unsqueeze(1)
    mates = same_explanation.sum(dim=1)
    agree = (same_explanation & same_prediction).sum(dim=1)
    return _safe_divide(agree.to(a.dtype), mates.to(a.dtype))
