"""MPRT and sMPRT: the similarity of explanations before and after each layer's randomization.

* :func:`mprt`: Model Parameter Randomisation Test (Adebayo et al. 2018), layer
  by layer, one similarity per layer and sample (Hedström et al. 2023).
* :func:`smooth_mprt`: sMPRT, the same on explanations averaged over noisy
  copies of the input (Hedström et al. 2023).

The explainer protocol, the random baseline and the randomness rules are those of
:mod:`xaiscore.functional.randomization`. See ``docs/randomization.md`` for formulas,
defaults and the differences from Quantus.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from xaiscore._checks import check_fraction, check_option, check_positive_int
from xaiscore._engine.batching import ModelOutputError, check_max_batch_size
from xaiscore._engine.explain_fn import ExplainerFactory, ExplainFn
from xaiscore._engine.model_mode import models_in_eval_mode
from xaiscore._engine.model_randomization import (
    LAYER_ORDERS,
    LayerOrder,
    Reinit,
    parameterised_layers,
    randomized_models,
)
from xaiscore._engine.noise import BlockNoise, Chunk, perturbed_statistics
from xaiscore._engine.random import resolve_generator
from xaiscore._engine.reduction import ChannelReduction
from xaiscore.functional.randomization._common import (
    Normalise,
    RandomizationResult,
    Summary,
    _bind,
    _check_factory,
    _check_given_attributions,
    _check_model_inputs,
    _check_postprocessing,
    _check_target_classes,
    _explain,
    _FiniteCheck,
    _summarise,
    _where,
)
from xaiscore.functional.randomization._comparison import (
    _Comparison,
    _PostProcess,
    _prepared_random_map,
    _RandomMaps,
)
from xaiscore.functional.similarity import SimilarityFn

__all__ = ["mprt", "smooth_mprt"]


class _SmoothExplainer:
    """Explanations averaged over ``n`` noisy copies per sample (the last copy noise-free), in
    chunks.

    The logical batch holds ``B * n`` items, sample-major (item ``k`` is copy
    ``k % n`` of sample ``k // n``); the Gaussian noise comes from one
    :class:`xaiscore._engine.noise.BlockNoise`, so every model sees the same noise
    (common random numbers) and nothing depends on ``max_batch_size``.
    """

    #: Noisy inputs up to this size are kept for the next model instead of being drawn again.
    CACHE_BYTES = 256 * 2**20

    def __init__(self, x: Tensor, target: Tensor, *, n_samples: int, noise_magnitude: float,
                 generator: torch.Generator, max_batch_size: int) -> None:
        self.x, self.target, self.n = x, target, n_samples
        self.max_batch_size = max_batch_size
        spatial = tuple(range(1, x.ndim))
        spread = x.amax(dim=spatial) - x.amin(dim=spatial)
        self.std = (noise_magnitude * spread).reshape((-1,) + (1,) * (x.ndim - 1))
        self.noise = BlockNoise(x.shape[0] * n_samples, tuple(x.shape[1:]), kind="gaussian",
                                low=0.0, high=1.0,
                                generator=generator, device=x.device, dtype=x.dtype)
        # Small enough: all noisy inputs are built once, up front, and reused by every model.
        self.keep_all = x.numel() * n_samples * x.element_size() <= self.CACHE_BYTES
        self.noisy_inputs: Tensor | None = None

    def _all_noisy_inputs(self) -> Tensor:
        """``(B * n, C, *S)``: every noisy copy, copy ``n - 1`` of each sample noise-free."""
        if self.noisy_inputs is None:
            batch, n = self.x.shape[0], self.n
            inputs = torch.empty((batch * n,) + tuple(self.x.shape[1:]), dtype=self.x.dtype,
                                 device=self.x.device)
            self.noise.fill(inputs, workers=torch.get_num_threads())
            per_sample = inputs.view((batch, n) + tuple(self.x.shape[1:]))
            noisy = per_sample[:, : n - 1]
            # as the per-chunk path
            torch.addcmul(self.x.unsqueeze(1), noisy, self.std.unsqueeze(1), out=noisy)
            per_sample[:, n - 1].copy_(self.x)
            self.noisy_inputs = inputs
        return self.noisy_inputs

    def _perturb(self, x_rows: Tensor | None, start: int, stop: int, steps: Tensor) -> Tensor:
        if x_rows is None:  # keep_all: perturbed_statistics was told not to gather the rows
            return self._all_noisy_inputs()[start:stop]
        rows = torch.div(torch.arange(start, stop, device=x_rows.device), self.n,
                         rounding_mode="floor")
        noisy = (steps != self.n - 1).to(x_rows.dtype).reshape((-1,) + (1,) * (x_rows.ndim - 1))
        return torch.addcmul(x_rows, self.noise(start, stop),
                             self.std.index_select(0, rows) * noisy)

    def __call__(self, explainer: ExplainFn) -> Tensor:
        sums: list[Tensor] = []

        def accumulate(chunk: Chunk) -> Tensor:
            # Items are sample-major, so each sample's copies are added in copy order whatever the
            # chunking (index_add_ adds rows in index order on the CPU; GPUs may reorder within a
            # chunk).
            a = chunk.a_perturbed.detach()
            if not sums:
                sums.append(torch.zeros((self.x.shape[0],) + tuple(a.shape[1:]), dtype=a.dtype,
                                        device=a.device))
            sums[0].index_add_(0, chunk.rows, a)
            return torch.zeros(chunk.stop - chunk.start, device=a.device)

        perturbed_statistics(explainer, self.x, self.target, n_perturbations=self.n,
                             perturb=self._perturb,
                             statistic=accumulate, max_batch_size=self.max_batch_size,
                             validate=False,
                             name="explainer_factory(model)(x, target)",
                             gather_inputs=not self.keep_all)
        return (sums[0] / self.n).to(self.x.dtype)


def _layerwise_similarity(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    explainer_factory: ExplainerFactory,
    explain: Callable[[ExplainFn], Tensor],
    a: Tensor | None,
    similarity: _Comparison,
    order: str,
    seed: int,
    reinit: Reinit,
    post: _PostProcess,
    summary: str,
    random_baseline: bool,
    generator: torch.Generator,
    validate: bool,
) -> RandomizationResult:
    finite = _FiniteCheck(validate)
    prepare, compare = similarity.prepare, similarity.compare
    original: Tensor | None = None if a is None else prepare(post(a))
    random = _RandomMaps(generator, x.device) if random_baseline else None
    random_original: Tensor | None = None
    names: list[str] = []
    similarities: list[Tensor] = []
    baselines: list[Tensor] = []
    for step, (name, step_model) in enumerate(randomized_models(model, order=order, seed=seed,
                                                                reinit=reinit,
                                                                include_original=a is None)):
        if step == 0:
            _check_target_classes(step_model, x, target, validate=validate)
        explanation = explain(_bind(explainer_factory, step_model))
        finite(explanation, _where(name))
        if a is not None and explanation.shape != a.shape:
            raise ModelOutputError(
                "Expected the explain functions of `explainer_factory` to return attributions of "
                f"the shape of `a` {tuple(a.shape)}, but got {tuple(explanation.shape)} for "
                f"{_where(name)}."
            )
        if random is not None and random_original is None:
            random_original = _prepared_random_map(random, explanation, similarity, post)
        if name is None:
            original = prepare(post(explanation))
            continue
        names.append(name)
        similarities.append(compare(original, prepare(post(explanation))).to(explanation.dtype))
        if random is not None:
            random_map = _prepared_random_map(random, explanation, similarity, post)
            baselines.append(compare(random_original, random_map).to(explanation.dtype))
    curve = torch.stack(similarities, dim=1)
    steps = torch.arange(1, len(names) + 1, dtype=curve.dtype, device=curve.device)
    baseline = _summarise(torch.stack(baselines, dim=1), summary) if baselines else None
    return RandomizationResult(_summarise(curve, summary), curve, steps, tuple(names), baseline)


@models_in_eval_mode("model")
def mprt(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    explainer_factory: ExplainerFactory,
    a: Tensor | None = None,
    similarity: str | SimilarityFn = "spearman",
    similarity_kwargs: Mapping[str, Any] | None = None,
    order: LayerOrder = "bottom_up",
    summary: Summary = "mean",
    abs: bool = True,
    normalise: Normalise | None = "max",
    reduce_channels: ChannelReduction | None = None,
    seed: int = 0,
    reinit: Reinit = "reset_parameters",
    random_baseline: bool = True,
    generator: torch.Generator | None = None,
    max_batch_size: int = 64,
    validate: bool = True,
) -> RandomizationResult:
    r"""Model Parameter Randomisation Test (Adebayo et al. 2018), layer by layer.

    With :math:`e_0` the explanation of the original model and :math:`e_l` the
    explanation after randomization step :math:`l = 1..L` (one per layer, see
    :func:`randomized_models` for layers, orders and re-initialisation),
    both post-processed by :math:`P` (channel reduction, per-sample
    normalisation, absolute value, in that order):

    .. math:: \mathrm{curve}_{l} = \mathrm{sim}(P(e_0), P(e_l)), \qquad
              \mathrm{score} = \frac{1}{L} \sum_{l=1}^{L} \mathrm{curve}_l
              \;\text{(``summary="mean"``) or } \mathrm{curve}_L \;\text{(``"last"``)}

    A lower similarity is better: the explanation depends on the parameters.
    Only the :math:`L` randomized steps enter the score; Quantus also averages in
    the trivial similarity of :math:`e_0` with itself (1 for Spearman), which we
    do not. An explainer that ignores the model scores 1 (Spearman, Pearson, cosine).

    Args:
        model: The network; never modified.
        x: ``(B, C, *S)`` inputs on the model's device.
        target: ``(B,)`` classes to explain (the same for every randomized model).
        explainer_factory: Explainer factory ``explainer_factory(model) -> (x, target) -> a``
            (see the module docstring).
        a: ``(B, C', *S)`` explanations of the original model; computed with
            ``explainer_factory(model)`` when ``None``.
        similarity: ``"spearman"`` (default, as Adebayo et al. and Quantus),
            ``"pearson"``, ``"cosine"``, ``"ssim"`` (windowed, spatial),
            ``"ssim_flat"`` (Quantus' SSIM), ``"mse"`` (a distance: higher =
            more change), or a callable ``(a, b) -> (B,)``.
        similarity_kwargs: Keyword options for the similarity (e.g. ``{"window": "gaussian"}``).
        order: ``"bottom_up"`` (default, Hedström et al.), ``"top_down"`` (Adebayo et al.)
            or ``"independent"``.
        summary: ``"mean"`` over the layers (default) or ``"last"`` (the fully
            randomized model for the cascading orders).
        abs: Take absolute values (default ``True``, as Quantus).
        normalise: ``"max"`` (default: divide by the sample's max ``|a|``),
            ``"second_moment"`` (divide by the root mean square) or ``None``;
            per sample. Scale-free similarities (Spearman, Pearson, cosine) ignore it.
        reduce_channels: ``"sum"``, ``"mean"``, ``"max_abs"`` or ``None`` (default:
            every channel value is a feature).
        seed: Seeds the re-initialisation of the layers.
        reinit: ``"reset_parameters"`` (default), ``"normal"`` or a callable
            ``(module, generator) -> None``.
        random_baseline: Also compute :attr:`RandomizationResult.baseline`.
        generator: Draws the baseline's random maps (default: seeded with ``seed``).
        max_batch_size: Most samples per explain call.
        validate: Check inputs and that every explanation is finite (one host read per model).

    Returns:
        :class:`RandomizationResult` with ``score`` ``(B,)``, ``curve`` ``(B, L)``,
        ``x`` = ``1..L``, the layer names and the random baseline. NaN where the
        similarity is undefined (e.g. a constant explanation under Spearman).

    Raises:
        NoParameterisedLayersError: the model has no layer with parameters.
        ModelOutputError: ``explainer_factory`` returns the wrong shape.
        NonFiniteError: an explanation holds NaN or inf (when ``validate``).

    Shape:
        - x: ``(B, C, *S)``; target: ``(B,)``; a: ``(B, 1|C, *S)``
        - output: score ``(B,)``, curve ``(B, L)``

    Example:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> def gradient(m):  # explainer factory: the input gradient of the target logit
        ...     def explain(x, target):
        ...         x = x.clone().requires_grad_(True)
        ...         m(x).gather(1, target[:, None]).sum().backward()
        ...         return x.grad
        ...     return explain
        >>> x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(0))
        >>> result = mprt(model, x, torch.tensor([0, 1, 2, 0]), explainer_factory=gradient)
        >>> result.curve.shape, result.layers
        (torch.Size([4, 2]), ('1', '3'))
        >>> constant = mprt(model, x, torch.zeros(4, dtype=torch.long), explainer_factory=lambda m: (lambda x, t: x))
        >>> constant.score.tolist()  # an explainer that ignores the model fails the test
        [1.0, 1.0, 1.0, 1.0]
    """  # noqa: E501
    x, target = _check_model_inputs(model, x, target, validate=validate)
    explainer_factory = _check_factory(explainer_factory)
    check_max_batch_size(max_batch_size)
    check_option(order, "order", LAYER_ORDERS)
    check_option(summary, "summary", ("mean", "last"))
    _check_postprocessing(abs, normalise, reduce_channels)
    parameterised_layers(model)
    given = None if a is None else _check_given_attributions(a, x, validate=validate)
    return _layerwise_similarity(
        model, x, target, explainer_factory=explainer_factory,
        explain=lambda explainer: _explain(explainer, x, target, max_batch_size=max_batch_size),
        a=given, similarity=_Comparison(similarity, similarity_kwargs), order=order, seed=seed,
        reinit=reinit, post=_PostProcess(abs, normalise, reduce_channels),
        summary=summary, random_baseline=random_baseline,
        generator=resolve_generator(generator, seed, seed_has_own_role=True),
        validate=validate,
    )


@models_in_eval_mode("model")
def smooth_mprt(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    explainer_factory: ExplainerFactory,
    a: Tensor | None = None,
    n_samples: int = 50,
    noise_magnitude: float = 0.1,
    similarity: str | SimilarityFn = "spearman",
    similarity_kwargs: Mapping[str, Any] | None = None,
    order: LayerOrder = "bottom_up",
    summary: Summary = "mean",
    abs: bool = True,
    normalise: Normalise | None = "second_moment",
    reduce_channels: ChannelReduction | None = None,
    seed: int = 0,
    reinit: Reinit = "reset_parameters",
    random_baseline: bool = True,
    generator: torch.Generator | None = None,
    max_batch_size: int = 64,
    validate: bool = True,
) -> RandomizationResult:
    r"""Smooth MPRT (Hedström et al. 2023): MPRT on explanations denoised by averaging over noisy
    inputs.

    Every explanation (original model and each randomization step) is replaced by

    .. math:: \bar e(x) = \frac{1}{N} \sum_{n=1}^{N} e(x + \varepsilon_n), \quad
              \varepsilon_n \sim \mathcal{N}\big(0, \sigma^2 I\big),\;
              \sigma = \text{noise\_magnitude} \cdot (\max x - \min x),\; \varepsilon_N = 0

    (the last copy is the clean input, as in Quantus, so ``n_samples=1`` is
    plain MPRT), then scored as in :func:`mprt`. The same noise is used for
    every model (common random numbers), drawn from ``generator``. All
    ``B * N`` noisy copies of one model go through the explainer in chunks of
    at most ``max_batch_size``; when they take at most 256 MiB they are kept
    for the next model, so the explain function must not modify its inputs
    in place.

    Args:
        model, x, target, explainer_factory: As in :func:`mprt`.
        a: ``(B, C', *S)`` smoothed explanations of the original model (the reference of
            every step); computed (``B * N`` explanations) when ``None``.
        n_samples: ``N`` (default 50, Hedström et al.'s ImageNet setting).
        noise_magnitude: Noise standard deviation relative to each sample's
            value range (default 0.1).
        normalise: Default ``"second_moment"`` (divide by the root mean square,
            as Quantus' sMPRT and Binder et al. 2023); ``"max"`` or ``None``.
        similarity, similarity_kwargs, order, summary, abs, reduce_channels, seed,
        reinit, random_baseline, max_batch_size, validate: As in :func:`mprt`.
        generator: Draws the noise and the baseline maps (default: seeded with ``seed``).

    Returns:
        :class:`RandomizationResult` as for :func:`mprt`. The baseline uses one
        random map per explanation (averaging i.i.d. noise maps gives noise again).

    Shape:
        - x: ``(B, C, *S)``; target: ``(B,)``; output: score ``(B,)``, curve ``(B, L)``

    Example:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        >>> x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
        >>> result = smooth_mprt(model, x, torch.tensor([0, 2]), n_samples=4,
        ...                      explainer_factory=lambda m: (lambda x, t: x * 2))  # ignores the model
        >>> result.score.tolist(), result.layers
        ([1.0, 1.0], ('1',))
    """  # noqa: E501
    x, target = _check_model_inputs(model, x, target, validate=validate)
    explainer_factory = _check_factory(explainer_factory)
    check_max_batch_size(max_batch_size)
    n_samples = check_positive_int(n_samples, "n_samples")
    noise_magnitude = check_fraction(noise_magnitude, "noise_magnitude", high=math.inf)
    check_option(order, "order", LAYER_ORDERS)
    check_option(summary, "summary", ("mean", "last"))
    _check_postprocessing(abs, normalise, reduce_channels)
    parameterised_layers(model)
    generator = resolve_generator(generator, seed, seed_has_own_role=True)
    given = None if a is None else _check_given_attributions(a, x, validate=validate)
    smooth = _SmoothExplainer(x, target, n_samples=n_samples, noise_magnitude=noise_magnitude,
                              generator=generator, max_batch_size=max_batch_size)
    return _layerwise_similarity(
        model, x, target, explainer_factory=explainer_factory, explain=smooth, a=given,
        similarity=_Comparison(similarity, similarity_kwargs), order=order, seed=seed,
        reinit=reinit,
        post=_PostProcess(abs, normalise, reduce_channels),
        summary=summary, random_baseline=random_baseline, generator=generator, validate=validate,
    )

