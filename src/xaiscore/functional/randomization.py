"""Randomization sanity checks: do explanations change when the model does?

* :func:`mprt`: Model Parameter Randomisation Test (Adebayo et al. 2018), layer
  by layer, one similarity per layer and sample (Hedström et al. 2023).
* :func:`smooth_mprt`: sMPRT, the same on explanations averaged over noisy
  copies of the input (Hedström et al. 2023).
* :func:`efficient_mprt`: eMPRT, the relative rise of the explanation's
  histogram entropy after full randomization (Hedström et al. 2023).
* :func:`random_logit`: similarity between the explanation of the target class
  and of a random other class (Sixt et al. 2020).

**The explainer protocol.** These metrics re-explain *other* models (random
copies of ``model``), so they take an explainer *factory*: ``explainer_factory(model)``
returns a batched :class:`xaiscore.explainers.ExplainFn` ``(x, target) -> a``
bound to that model. Every builder in :mod:`xaiscore.explainers` that takes the
model first is one, e.g. ``lambda m: captum_explainer(m, "Saliency")``
or ``lambda m: make_explainer("IntegratedGradients", m)``. The factory is
called once per model (original and each randomization step); the explain
function it returns is called on chunks of at most ``max_batch_size`` items.

**The random baseline.** Binder et al. (2023) show that uninformative maps pass
MPRT easily, so every result carries ``baseline``: the same metric computed for
a random explainer, whose maps are i.i.d. uniform noise of the explanations'
shape, drawn afresh for every model and every class (from a generator seeded
with the first draw of ``generator``), with the same post-processing and
similarity. A method is only credible where it scores clearly better than
noise would *and* far from the model-independent explainer's worst case
(similarity 1).

Randomness: ``seed`` fixes the model re-initialisation (:func:`randomized_models`);
``generator`` (default: a CPU generator seeded with ``seed``) draws the sMPRT
noise, the random classes and the baseline maps. Results do not depend on
``max_batch_size``. The user's model is never modified: randomization works
on a deep copy, and the original explanations are computed on that copy too.

See ``docs/randomization.md`` for formulas, defaults and the differences from Quantus.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from xaiscore._engine.batching import ModelOutputError, call_model, check_max_batch_size, chunked_map
from xaiscore._engine.random import resolve_generator
from xaiscore._checks import (
    DeviceError,
    DTypeError,
    NonFiniteError,
    OptionError,
    check_attributions,
    check_fraction,
    check_inputs_like,
    check_option,
    check_positive_int,
    check_target,
    check_tensor,
)
from xaiscore._engine.noise import BlockNoise, Chunk, perturbed_statistics
from xaiscore._engine.reduction import ChannelReduction, flatten_features, normalise_by_max
from xaiscore._engine.reduction import reduce_channels as _reduce_channels
from xaiscore._engine.explain_fn import BuiltExplainer, ExplainerFactory, ExplainFn, check_explanation
from xaiscore.functional._common import (
    nan_where,
    sorted_quantile,
    unit_rank_vectors,
    unit_rank_vectors_of_levels,
)
from xaiscore.functional.similarity import SIMILARITIES, SimilarityFn, spearman_of_unit_ranks
from xaiscore._engine.model_randomization import (
    LAYER_ORDERS,
    LayerOrder,
    NoParameterisedLayersError,
    Reinit,
    parameterised_layers,
    randomized_models,
)

__all__ = [
    "ExplainerFactory",
    "RandomizationResult",
    "RandomLogitResult",
    "mprt",
    "smooth_mprt",
    "efficient_mprt",
    "random_logit",
    "histogram_entropy",
    "BIN_RULES",
    # the model randomizer the kernels use (implemented in the private engine)
    "LAYER_ORDERS",
    "NoParameterisedLayersError",
    "parameterised_layers",
    "randomized_models",
]

Normalise = Literal["max", "second_moment"]
Summary = Literal["mean", "last"]
BinRule = Literal["freedman_diaconis", "scott", "sqrt", "sturges", "rice"]

#: The bin-count rules :func:`efficient_mprt` accepts besides a fixed count.
BIN_RULES: tuple[str, ...] = ("freedman_diaconis", "scott", "sqrt", "sturges", "rice")


class RandomizationResult(NamedTuple):
    """What the MPRT family returns.

    Attributes:
        score: ``(B,)`` the metric per sample (NaN where undefined).
        curve: ``(B, T)`` per randomization step: the similarity to the
            original explanation (MPRT, sMPRT) or the explanation entropy (eMPRT).
        x: ``(T,)`` the number of layers randomized at each step (for
            ``order="independent"``: the index of the one randomized layer).
        layers: ``T`` names of the layer randomized at each step (eMPRT:
            ``"original"`` and the last layer's name, or every layer's).
        baseline: ``(B,)`` the same metric for random attribution maps, or
            ``None`` with ``random_baseline=False``.

    ``.score``, ``.curve`` and ``.x`` are as in :class:`xaiscore.functional._results.CurveResult`.
    """

    score: Tensor
    curve: Tensor
    x: Tensor
    layers: tuple[str, ...]
    baseline: Tensor | None


class RandomLogitResult(NamedTuple):
    """What :func:`random_logit` returns.

    Attributes:
        score: ``(B,)`` similarity between the target-class and random-class explanations.
        baseline: ``(B,)`` the same for random maps, or ``None``.
        off_target: ``(B,)`` long, the random class drawn for each sample.
    """

    score: Tensor
    baseline: Tensor | None
    off_target: Tensor


# --- validation ----------------------------------------------------------------------------


def _check_factory(explainer_factory: Any) -> ExplainerFactory:
    if isinstance(explainer_factory, BuiltExplainer):
        raise DTypeError(
            "Expected `explainer_factory` to be a factory `explainer_factory(model) -> explain function` (the "
            "randomization metrics re-explain randomized copies of the model), but got a "
            f"{type(explainer_factory).__name__} bound to one model. Pass e.g. `lambda model: "
            "captum_explainer(model, 'Saliency')`, or `lambda model: explainer` for an explainer that ignores "
            "the model."
        )
    if not callable(explainer_factory):
        raise DTypeError(
            f"Expected `explainer_factory` to be callable, but got {type(explainer_factory).__name__}.")
    return explainer_factory


def _bind(explainer_factory: ExplainerFactory, model: nn.Module) -> ExplainFn:
    bound = explainer_factory(model)
    if not callable(bound):
        raise ModelOutputError(
            "Expected `explainer_factory(model)` to return an explain function `(x, target) -> a`, but got "
            f"{type(bound).__name__}."
        )
    return bound


def _check_model_inputs(model: Any, x: Any, target: Any, *, validate: bool) -> tuple[Tensor, Tensor]:
    if not isinstance(model, nn.Module):
        raise DTypeError(f"Expected `model` to be a torch.nn.Module, but got {type(model).__name__}.")
    x = check_tensor(x, "x")
    if not x.is_floating_point():
        raise DTypeError(f"Expected `x` to be a floating-point tensor, but got dtype {x.dtype}.")
    check_attributions(x, name="x", validate=validate)
    target = check_target(target, x.shape[0], device=x.device, validate=validate)
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.device != x.device:
        raise DeviceError(
            f"Expected `x` on the device of the model's parameters ({parameter.device}), but got {x.device}. "
            "Move it with `x.to(device)`."
        )
    return x.detach(), target  # explainers take their own gradients; the caller's graph is not needed


def _check_given_attributions(a: Any, x: Tensor, *, validate: bool) -> Tensor:
    a = check_attributions(a, validate=validate)
    check_inputs_like(x, a)
    return a.detach()


def _unit_ranks(a: Tensor) -> Tensor:
    """Centred average ranks per sample scaled to unit length (float64; NaN rows for constant or NaN maps)."""
    return unit_rank_vectors(flatten_features(a))


class _Comparison:
    """A similarity split into a per-map ``prepare`` step and a ``compare`` step.

    MPRT compares one original map with every randomized one; preparing it once
    (for Spearman: ranking it) saves a rank computation per layer. The result is
    that of the similarity function (for Spearman up to float64 rounding); callers
    cast it to the dtype of the maps.
    """

    def __init__(self, similarity: str | SimilarityFn, kwargs: Mapping[str, Any] | None) -> None:
        kwargs = dict(kwargs or {})
        self.prepare: Callable[[Tensor], Tensor] = lambda a: a
        #: Whether ``prepare`` keeps only the ranks of the values (Spearman).
        self.ranks_only = False
        if callable(similarity):
            self.compare = partial(similarity, **kwargs) if kwargs else similarity
            return
        check_option(similarity, "similarity", tuple(SIMILARITIES))
        if similarity == "spearman" and not kwargs:
            self.prepare = _unit_ranks
            self.compare = spearman_of_unit_ranks
            self.ranks_only = True
        else:
            self.compare = partial(SIMILARITIES[similarity], validate=False, **kwargs)

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        return self.compare(self.prepare(a), self.prepare(b)).to(a.dtype)


def _check_postprocessing(abs: bool, normalise: str | None, reduce_channels: str | None) -> None:
    if not isinstance(abs, bool):
        raise DTypeError(f"Expected `abs` to be a bool, but got {type(abs).__name__}.")
    check_option(normalise, "normalise", ("max", "second_moment", None))
    check_option(reduce_channels, "reduce_channels", ("sum", "mean", "max_abs", None))


def _where(layer: str | None) -> str:
    return "the original model" if layer is None else f"the model with layer {layer!r} randomized"


# --- explaining ----------------------------------------------------------------------------


class _FiniteCheck:
    """Counts non-finite explanation values on the device; reads the count once per model."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, a: Tensor, where: str) -> None:
        if self.enabled and not bool(torch.isfinite(a).all()):
            raise NonFiniteError(
                "Expected the explain functions of `explainer_factory` to return finite attributions, but got "
                f"{int(torch.isnan(a).sum())} NaN and {int(torch.isinf(a).sum())} infinite value(s) for {where}."
            )


def _explain(explainer: ExplainFn, x: Tensor, target: Tensor, *, max_batch_size: int) -> Tensor:
    """Explain all ``B`` samples in chunks of at most ``max_batch_size``: ``(B, C', *S)``."""

    def compute(start: int, stop: int) -> Tensor:
        x_chunk = x[start:stop]
        return check_explanation(explainer(x_chunk, target[start:stop]), x_chunk, validate=False,
                                 name="explainer_factory(model)(x, target)").detach()

    return chunked_map(x.shape[0], compute, max_batch_size=max_batch_size)


class _SmoothExplainer:
    """Explanations averaged over ``n`` noisy copies per sample (the last copy noise-free), in chunks.

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
        self.noise = BlockNoise(x.shape[0] * n_samples, tuple(x.shape[1:]), kind="gaussian", low=0.0, high=1.0,
                                generator=generator, device=x.device, dtype=x.dtype)
        # Small enough: all noisy inputs are built once, up front, and reused by every model.
        self.keep_all = x.numel() * n_samples * x.element_size() <= self.CACHE_BYTES
        self.noisy_inputs: Tensor | None = None

    def _all_noisy_inputs(self) -> Tensor:
        """``(B * n, C, *S)``: every noisy copy, copy ``n - 1`` of each sample noise-free."""
        if self.noisy_inputs is None:
            batch, n = self.x.shape[0], self.n
            inputs = torch.empty((batch * n,) + tuple(self.x.shape[1:]), dtype=self.x.dtype, device=self.x.device)
            self.noise.fill(inputs, workers=torch.get_num_threads())
            per_sample = inputs.view((batch, n) + tuple(self.x.shape[1:]))
            noisy = per_sample[:, : n - 1]
            torch.addcmul(self.x.unsqueeze(1), noisy, self.std.unsqueeze(1), out=noisy)  # as the per-chunk path
            per_sample[:, n - 1].copy_(self.x)
            self.noisy_inputs = inputs
        return self.noisy_inputs

    def _perturb(self, x_rows: Tensor | None, start: int, stop: int, steps: Tensor) -> Tensor:
        if x_rows is None:  # keep_all: perturbed_statistics was told not to gather the rows
            return self._all_noisy_inputs()[start:stop]
        rows = torch.div(torch.arange(start, stop, device=x_rows.device), self.n, rounding_mode="floor")
        noisy = (steps != self.n - 1).to(x_rows.dtype).reshape((-1,) + (1,) * (x_rows.ndim - 1))
        return torch.addcmul(x_rows, self.noise(start, stop), self.std.index_select(0, rows) * noisy)

    def __call__(self, explainer: ExplainFn) -> Tensor:
        sums: list[Tensor] = []

        def accumulate(chunk: Chunk) -> Tensor:
            # Items are sample-major, so each sample's copies are added in copy order whatever the
            # chunking (index_add_ adds rows in index order on the CPU; GPUs may reorder within a chunk).
            a = chunk.a_perturbed.detach()
            if not sums:
                sums.append(torch.zeros((self.x.shape[0],) + tuple(a.shape[1:]), dtype=a.dtype, device=a.device))
            sums[0].index_add_(0, chunk.rows, a)
            return torch.zeros(chunk.stop - chunk.start, device=a.device)

        perturbed_statistics(explainer, self.x, self.target, n_perturbations=self.n, perturb=self._perturb,
                             statistic=accumulate, max_batch_size=self.max_batch_size, validate=False,
                             name="explainer_factory(model)(x, target)", gather_inputs=not self.keep_all)
        return (sums[0] / self.n).to(self.x.dtype)


# --- post-processing -----------------------------------------------------------------------


def _normalise(a: Tensor, mode: str | None) -> Tensor:
    if mode is None:
        return a
    if mode == "max":
        return normalise_by_max(a, "sample")
    flat = flatten_features(a)
    scale = flat.pow(2).mean(dim=1).sqrt().reshape((-1,) + (1,) * (a.ndim - 1))
    return a / torch.where(scale > 0, scale, torch.ones_like(scale))


class _PostProcess(NamedTuple):
    """Channel reduction, then per-sample normalisation, then absolute values."""

    abs: bool
    normalise: str | None
    reduce_channels: str | None

    def __call__(self, a: Tensor) -> Tensor:
        a = _normalise(_reduce_channels(a, self.reduce_channels), self.normalise)
        return a.abs() if self.abs else a


class _RandomMaps:
    """The random explainer of the baseline: i.i.d. uniform maps, a fresh batch at every call.

    Every value is uniform on the grid ``(k + 1/2) / 2**16``, ``k = 0 .. 2**16 - 1`` (exact in
    float32 and float64), drawn as the integer ``k`` (its *level*). Its generator (on the device
    of the maps) is seeded with one draw from ``generator``, taken at construction; a whole
    batch is drawn at a time, so the maps do not depend on ``max_batch_size`` nor on the dtype.

    The levels let :func:`_prepared_random_map` rank a map by counting (no sort) when the
    similarity only sees ranks.
    """

    #: Number of grid values a random map's values take.
    LEVELS = 2**16

    def __init__(self, generator: torch.Generator, device: torch.device) -> None:
        key = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        self.generator = torch.Generator(device=device).manual_seed(key)
        self.device = device

    def levels(self, like: Tensor) -> Tensor:
        """``like.shape`` int64 levels in ``[0, LEVELS)``: the next random map."""
        return torch.randint(0, self.LEVELS, like.shape, generator=self.generator, device=self.device,
                             dtype=torch.int64)

    @classmethod
    def values(cls, levels: Tensor, dtype: torch.dtype) -> Tensor:
        """The map of ``levels`` as values ``(levels + 1/2) / LEVELS`` in ``dtype``."""
        values = levels.to(torch.float32).add_(0.5).mul_(1.0 / cls.LEVELS)
        return values.to(dtype)

    def __call__(self, like: Tensor) -> Tensor:
        return self.values(self.levels(like), like.dtype)


#: Channel counts up to which a channel sum of random levels is ranked by counting: float32 adds
#: up to 64 grid values exactly (a multiple of 2**-17 below 64 needs 23 bits), and the later
#: division by ``C`` and by the normalisation keeps distinct sums apart.
_COUNTED_CHANNELS = 64


#: Counting ranks allocate a table of ``B x range``: used while the range is at most this many
#: times the number of features (a sort is cheap for the small maps beyond that).
_COUNTING_RANGE_PER_FEATURE = 4


def _reduced_levels(levels: Tensor, reduce_channels: str | None) -> tuple[Tensor, int] | None:
    """The random map's levels after the channel reduction, flattened ``(B, N)``, and their range.

    The post-processing of a map of positive grid values is strictly increasing in these
    integers (channel sum or mean, largest value, positive rescaling, absolute value), so they
    have the ranks of the post-processed values. ``None`` where that is not guaranteed.
    """
    channels = levels.shape[1]
    if reduce_channels is None or channels == 1:
        return flatten_features(levels), _RandomMaps.LEVELS
    if reduce_channels == "max_abs":
        return flatten_features(levels.amax(dim=1)), _RandomMaps.LEVELS
    if channels > _COUNTED_CHANNELS:
        return None
    return flatten_features(levels.sum(dim=1, dtype=torch.int32)), channels * (_RandomMaps.LEVELS - 1) + 1


def _prepared_random_map(random: _RandomMaps, like: Tensor, similarity: _Comparison, post: _PostProcess) -> Tensor:
    """A fresh random map shaped as ``like``, post-processed and prepared for ``similarity``.

    Spearman on float32/float64 maps ranks the levels by counting (:func:`unit_rank_vectors_of_levels`,
    no sort; exactly the ranks of the post-processed values), when the range of the levels is at
    most a few times the number of features; otherwise the values go through ``post`` and the
    similarity's own preparation.
    """
    levels = random.levels(like)
    if similarity.ranks_only and like.dtype in (torch.float32, torch.float64):
        reduced = _reduced_levels(levels, post.reduce_channels)
        if reduced is not None and reduced[1] <= _COUNTING_RANGE_PER_FEATURE * reduced[0].shape[1]:
            return unit_rank_vectors_of_levels(*reduced)
    return similarity.prepare(post(random.values(levels, like.dtype)))


def _summarise(curve: Tensor, summary: str) -> Tensor:
    return curve.mean(dim=1) if summary == "mean" else curve[:, -1]


# --- MPRT and sMPRT ------------------------------------------------------------------------


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
    for name, step_model in randomized_models(model, order=order, seed=seed, reinit=reinit,
                                              include_original=a is None):
        explanation = explain(_bind(explainer_factory, step_model))
        finite(explanation, _where(name))
        if a is not None and explanation.shape != a.shape:
            raise ModelOutputError(
                "Expected the explain functions of `explainer_factory` to return attributions of the shape of "
                f"`a` {tuple(a.shape)}, but got {tuple(explanation.shape)} for {_where(name)}."
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
    """
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
        summary=summary, random_baseline=random_baseline, generator=resolve_generator(generator, seed, seed_has_own_role=True),
        validate=validate,
    )


def smooth_mprt(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    explainer_factory: ExplainerFactory,
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
    r"""Smooth MPRT (Hedström et al. 2023): MPRT on explanations denoised by averaging over noisy inputs.

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
    """
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
    smooth = _SmoothExplainer(x, target, n_samples=n_samples, noise_magnitude=noise_magnitude,
                              generator=generator, max_batch_size=max_batch_size)
    return _layerwise_similarity(
        model, x, target, explainer_factory=explainer_factory, explain=smooth, a=None,
        similarity=_Comparison(similarity, similarity_kwargs), order=order, seed=seed, reinit=reinit,
        post=_PostProcess(abs, normalise, reduce_channels),
        summary=summary, random_baseline=random_baseline, generator=generator, validate=validate,
    )


# --- eMPRT ---------------------------------------------------------------------------------


def _bin_counts(values: Tensor, rule: int | str, min_bins: int, max_bins: int) -> tuple[Tensor, int]:
    """Bins per sample ``(B,)`` long and their upper bound, for a fixed count or a rule."""
    batch, n = values.shape
    if isinstance(rule, int):
        return torch.full((batch,), rule, dtype=torch.long, device=values.device), rule
    span = values.amax(dim=1) - values.amin(dim=1)
    n_float = float(n)
    if rule == "sqrt":
        raw = torch.full((batch,), math.ceil(math.sqrt(n_float)), dtype=values.dtype, device=values.device)
    elif rule == "sturges":
        raw = torch.full((batch,), math.ceil(math.log2(n_float)) + 1, dtype=values.dtype, device=values.device)
    elif rule == "rice":
        raw = torch.full((batch,), math.ceil(2 * n_float ** (1 / 3)), dtype=values.dtype, device=values.device)
    else:
        if rule == "freedman_diaconis":
            spread = (sorted_quantile(values, 0.75) - sorted_quantile(values, 0.25)).squeeze(1)
            width = 2 * spread / n_float ** (1 / 3)
        else:  # scott
            width = 3.5 * values.std(dim=1, correction=0) / n_float ** (1 / 3)
        # Zero width (a degenerate spread) asks for arbitrarily many bins: the clamp gives max_bins.
        raw = torch.where(width > 0, torch.ceil(span / torch.where(width > 0, width, torch.ones_like(width))),
                          torch.full_like(width, float(max_bins)))
    return raw.clamp(min_bins, max_bins).to(torch.long), max_bins


def histogram_entropy(
    a: Tensor,
    *,
    n_bins: int | BinRule = 100,
    min_bins: int = 10,
    max_bins: int = 200,
    validate: bool = True,
) -> Tensor:
    r"""Shannon entropy of the histogram of each sample's values (the eMPRT complexity).

    The values of a sample are counted in ``k`` equal-width bins spanning
    their range (exactly as ``numpy.histogram(values, bins=k)``, including its
    edge rules and its range of one around a constant), and

    .. math:: H = -\sum_{j=1}^{k} p_j \ln p_j, \qquad p_j = \frac{\text{count}_j}{N}

    (natural logarithm, :math:`0 \ln 0 = 0`, as ``scipy.stats.entropy``).

    Args:
        a: ``(B, ...)`` values; every value of a sample counts.
        n_bins: A fixed count ``k`` (default 100, Hedström et al.), or a rule
            computed per sample from its ``N`` values and clamped to
            ``[min_bins, max_bins]``: ``"freedman_diaconis"``
            (width ``2 IQR / N^{1/3}``), ``"scott"`` (width ``3.5 sd / N^{1/3}``),
            ``"sqrt"`` (``ceil(sqrt N)``), ``"sturges"`` (``ceil(log2 N) + 1``),
            ``"rice"`` (``ceil(2 N^{1/3})``); widths give ``ceil(range / width)``
            bins and a zero width gives ``max_bins``.
        min_bins, max_bins: The clamp for the rules (10 and 200, Quantus' defaults).
        validate: Check that ``a`` is finite.

    Returns:
        ``(B,)`` entropies in ``[0, ln k]``.

    Shape:
        - a: ``(B, ...)``; output: ``(B,)``

    Example:
        >>> a = torch.tensor([[0.0, 1.0, 2.0, 3.0], [5.0, 5.0, 5.0, 5.0]])
        >>> [round(v, 4) for v in histogram_entropy(a, n_bins=4).tolist()]  # ln 4 and 0
        [1.3863, 0.0]
    """
    a = check_tensor(a, "a")
    if not a.is_floating_point() or a.ndim < 2:
        raise DTypeError(f"Expected `a` to be a floating-point (B, ...) tensor, but got dtype {a.dtype} and "
                         f"shape {tuple(a.shape)}.")
    if validate:
        check_attributions(a.reshape(a.shape[0], 1, -1), validate=True)
    if isinstance(n_bins, str):
        check_option(n_bins, "n_bins", BIN_RULES)
        min_bins = check_positive_int(min_bins, "min_bins")
        max_bins = check_positive_int(max_bins, "max_bins", minimum=min_bins)
    else:
        n_bins = check_positive_int(n_bins, "n_bins")
    values = flatten_features(a)
    return _histogram_entropy(values, n_bins, min_bins, max_bins)


def _histogram_entropy(values: Tensor, n_bins: int | str, min_bins: int, max_bins: int) -> Tensor:
    # A sample holding NaN (reachable with validate=False) has no histogram: NaN, without disturbing the others.
    undefined = torch.isnan(values).any(dim=1)
    values = values.masked_fill(undefined.unsqueeze(1), 0.0)
    return nan_where(undefined, _finite_histogram_entropy(values, n_bins, min_bins, max_bins))


def _finite_histogram_entropy(values: Tensor, n_bins: int | str, min_bins: int, max_bins: int) -> Tensor:
    bins, upper = _bin_counts(values, n_bins, min_bins, max_bins)
    batch, n = values.shape
    low = values.amin(dim=1, keepdim=True)
    high = values.amax(dim=1, keepdim=True)
    constant = low == high
    first = torch.where(constant, low - 0.5, low)
    last = torch.where(constant, high + 0.5, high)
    k = bins.unsqueeze(1)  # (B, 1)
    k_float = k.to(values.dtype)
    step = (last - first) / k_float
    # numpy.histogram: a first guess from the scaled value, then corrected against the edges, which
    # numpy builds with linspace as `i * step + first` (the last one exactly `last`). Bin indices stay
    # floats (exact integers) until the count, and the passes work in place.
    index = values - first
    index.div_(last - first).mul_(k_float).floor_()
    torch.minimum(index, k_float - 1, out=index)
    edge = index * step
    index.sub_((values < edge.add_(first)).to(values.dtype))
    above = index + 1
    torch.mul(above, step, out=edge)
    # The last bin's upper edge is ``last`` itself; nothing moves up from the last bin, so that
    # edge is never compared.
    index.add_((values >= edge.add_(first)).logical_and_(above != k_float).to(values.dtype))
    rows = torch.arange(batch, device=values.device).unsqueeze(1) * upper
    if batch * upper <= 2 / torch.finfo(index.dtype).eps:  # flat bin ids exact in this dtype: one conversion
        flat = index.add_(rows.to(index.dtype)).to(torch.long)
    else:
        flat = index.to(torch.long) + rows
    counts = torch.bincount(flat.reshape(-1), minlength=batch * upper)
    counts = counts.reshape(batch, upper).to(values.dtype)
    p = counts / n
    terms = torch.where(p > 0, -p * torch.log(torch.where(p > 0, p, torch.ones_like(p))), torch.zeros_like(p))
    return terms.sum(dim=1)


def efficient_mprt(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    explainer_factory: ExplainerFactory,
    n_bins: int | BinRule = 100,
    min_bins: int = 10,
    max_bins: int = 200,
    layerwise: bool = False,
    order: LayerOrder = "bottom_up",
    abs: bool = False,
    normalise: Normalise | None = None,
    reduce_channels: ChannelReduction | None = None,
    seed: int = 0,
    reinit: Reinit = "reset_parameters",
    random_baseline: bool = True,
    generator: torch.Generator | None = None,
    max_batch_size: int = 64,
    validate: bool = True,
) -> RandomizationResult:
    r"""Efficient MPRT (Hedström et al. 2023): the relative rise in explanation complexity after randomization.

    .. math:: \mathrm{eMPRT} = \frac{H(P(e_{\mathrm{rand}})) - H(P(e_0))}{H(P(e_0))}

    with :math:`H` the histogram entropy of :func:`histogram_entropy` (100 bins
    by default, or a per-sample bin rule), :math:`e_0` the original
    explanation and :math:`e_{\mathrm{rand}}` the explanation of the fully
    randomized model (every layer, in ``order``). Higher is better: the
    explanation becomes more disordered when the model loses what it learnt.
    Only two explain passes are needed (original and fully randomized), unless
    ``layerwise=True`` asks for the entropy after every step.

    Args:
        model, x, target, explainer_factory, seed, reinit, max_batch_size, validate: As in :func:`mprt`.
        n_bins, min_bins, max_bins: The bins (see :func:`histogram_entropy`).
        layerwise: Also explain after every randomization step (``curve`` then
            has ``L + 1`` columns).
        order: The cascading order; ``"independent"`` is rejected (there is no
            fully randomized model).
        abs, normalise, reduce_channels: Post-processing, as in :func:`mprt`;
            defaults as Quantus (none). The entropy is invariant to positive scaling.
        random_baseline: Also compute the score of random maps (about 0).
        generator: Draws the baseline's random maps (default: seeded with ``seed``).

    Returns:
        :class:`RandomizationResult`: ``score`` ``(B,)`` (NaN where the
        original explanation has zero entropy, e.g. a constant map), ``curve``
        ``(B, T)`` the entropies (original first), ``x`` the number of layers
        randomized at each column.

    Shape:
        - x: ``(B, C, *S)``; target: ``(B,)``; output: score ``(B,)``, curve ``(B, 2)`` or ``(B, L + 1)``

    Example:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        >>> x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
        >>> result = efficient_mprt(model, x, torch.tensor([0, 2]), explainer_factory=lambda m: (lambda x, t: x))
        >>> result.score.tolist(), result.x.tolist()  # an explainer ignoring the model: no rise
        ([0.0, 0.0], [0.0, 1.0])
    """
    x, target = _check_model_inputs(model, x, target, validate=validate)
    explainer_factory = _check_factory(explainer_factory)
    check_max_batch_size(max_batch_size)
    check_option(order, "order", ("bottom_up", "top_down"))
    _check_postprocessing(abs, normalise, reduce_channels)
    if isinstance(n_bins, str):
        check_option(n_bins, "n_bins", BIN_RULES)
        min_bins = check_positive_int(min_bins, "min_bins")
        max_bins = check_positive_int(max_bins, "max_bins", minimum=min_bins)
    else:
        n_bins = check_positive_int(n_bins, "n_bins")
    n_layers = len(parameterised_layers(model))
    generator = resolve_generator(generator, seed, seed_has_own_role=True)
    post = _PostProcess(abs, normalise, reduce_channels)

    def entropy(a: Tensor) -> Tensor:
        return _histogram_entropy(flatten_features(post(a)), n_bins, min_bins, max_bins)

    def random_entropy(maps: _RandomMaps, like: Tensor) -> Tensor:  # grid values: finite, no NaN test
        values = flatten_features(post(maps(like)))
        return _finite_histogram_entropy(values, n_bins, min_bins, max_bins)

    finite = _FiniteCheck(validate)
    names: list[str] = []
    entropies: list[Tensor] = []
    positions: list[int] = []
    random_entropies: list[Tensor] = []
    random = _RandomMaps(generator, x.device) if random_baseline else None
    for step, (name, step_model) in enumerate(randomized_models(model, order=order, seed=seed, reinit=reinit,
                                                               include_original=True)):
        if not (layerwise or step in (0, n_layers)):
            continue
        explanation = _explain(_bind(explainer_factory, step_model), x, target, max_batch_size=max_batch_size)
        finite(explanation, _where(name))
        names.append("original" if name is None else name)
        positions.append(step)
        entropies.append(entropy(explanation))
        if random is not None and step in (0, n_layers):
            random_entropies.append(random_entropy(random, explanation))
    curve = torch.stack(entropies, dim=1)
    score = _relative_rise(curve[:, 0], curve[:, -1])
    baseline = _relative_rise(random_entropies[0], random_entropies[-1]) if random_entropies else None
    steps = torch.tensor(positions, dtype=curve.dtype, device=curve.device)
    return RandomizationResult(score, curve, steps, tuple(names), baseline)


def _relative_rise(before: Tensor, after: Tensor) -> Tensor:
    undefined = before == 0
    rise = (after - before) / torch.where(undefined, torch.ones_like(before), before)
    return nan_where(undefined, rise)


# --- Random Logit --------------------------------------------------------------------------


def random_logit(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    explainer_factory: ExplainerFactory,
    a: Tensor | None = None,
    num_classes: int | None = None,
    similarity: str | SimilarityFn = "ssim",
    similarity_kwargs: Mapping[str, Any] | None = None,
    abs: bool = False,
    normalise: Normalise | None = "max",
    reduce_channels: ChannelReduction | None = None,
    random_baseline: bool = True,
    seed: int = 0,
    generator: torch.Generator | None = None,
    max_batch_size: int = 64,
    validate: bool = True,
) -> RandomLogitResult:
    r"""Random Logit test (Sixt et al. 2020): is the explanation class-specific?

    .. math:: \mathrm{score} = \mathrm{sim}\big(P(e(x, y)),\, P(e(x, \tilde y))\big),
              \quad \tilde y \sim \mathcal{U}(\{0..K-1\} \setminus \{y\})

    Lower is better: the explanation of another class should look different.

    Args:
        model: The network; a deep copy of it is explained, so it is never modified.
        x, target: ``(B, C, *S)`` inputs and ``(B,)`` classes.
        explainer_factory: Explainer factory, as in :func:`mprt` (called once, on ``model``).
        a: ``(B, C', *S)`` explanations of ``target``; computed when ``None``.
        num_classes: ``K``; inferred from one forward pass on ``x[:1]`` when ``None``.
        similarity: Default ``"ssim"`` (windowed over the spatial axes, as Sixt
            et al. compare images; Quantus flattens: ``"ssim_flat"``); any
            name accepted by :func:`mprt` or a callable.
        similarity_kwargs: Keyword options for the similarity.
        abs, normalise, reduce_channels: Post-processing, as in :func:`mprt`
            (defaults as Quantus: no ``abs``, per-sample max normalisation).
        random_baseline: Also compute the similarity of two random maps.
        seed, generator: The random classes and baseline maps are drawn from
            ``generator`` (default: a CPU generator seeded with ``seed``).
        max_batch_size, validate: As in :func:`mprt`.

    Returns:
        :class:`RandomLogitResult` with ``score`` ``(B,)``, ``baseline`` and ``off_target``.

    Raises:
        OptionError: fewer than two classes.

    Shape:
        - x: ``(B, C, *S)``; target: ``(B,)``; output: score ``(B,)``

    Example:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
        >>> def gradient(m):
        ...     def explain(x, target):
        ...         x = x.clone().requires_grad_(True)
        ...         m(x).gather(1, target[:, None]).sum().backward()
        ...         return x.grad
        ...     return explain
        >>> x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> result = random_logit(model, x, torch.tensor([0, 3]), explainer_factory=gradient)
        >>> bool((result.off_target != torch.tensor([0, 3])).all()), result.score.shape
        (True, torch.Size([2]))
    """
    x, target = _check_model_inputs(model, x, target, validate=False)
    explainer_factory = _check_factory(explainer_factory)
    check_max_batch_size(max_batch_size)
    _check_postprocessing(abs, normalise, reduce_channels)
    working = copy.deepcopy(model)  # explained and run instead of `model`: state changes never reach it
    if num_classes is None:
        num_classes = call_model(working, x[:1], name="model").shape[1]
    num_classes = check_positive_int(num_classes, "num_classes")
    if num_classes < 2:
        raise OptionError(f"Expected at least 2 classes to draw a random other class from, but got {num_classes}.")
    if validate:
        check_attributions(x, name="x", validate=True)
        target = check_target(target, x.shape[0], num_classes=num_classes, device=x.device, validate=True)
    generator = resolve_generator(generator, seed, seed_has_own_role=True)
    explainer = _bind(explainer_factory, working)
    finite = _FiniteCheck(validate)
    if a is not None:
        a = _check_given_attributions(a, x, validate=validate)
    # The baseline's key is the generator's first draw, as in the other metrics of this module.
    random = _RandomMaps(generator, x.device) if random_baseline else None
    shift = torch.randint(0, num_classes - 1, (x.shape[0],), generator=generator, device=generator.device)
    off_target = shift.to(x.device)
    off_target = off_target + (off_target >= target).to(off_target.dtype)
    if a is None:
        # Both explanations of every sample in one logical batch of 2 B items (one explain call
        # when 2 B <= max_batch_size, instead of two half-size ones).
        both = _explain(explainer, torch.cat([x, x]), torch.cat([target, off_target]), max_batch_size=max_batch_size)
        a, a_off = both[: x.shape[0]], both[x.shape[0]:]
        finite(a, "the target classes")
    else:
        a_off = _explain(explainer, x, off_target, max_batch_size=max_batch_size)
    finite(a_off, "the random other classes")
    post = _PostProcess(abs, normalise, reduce_channels)
    sim = _Comparison(similarity, similarity_kwargs)
    score = sim(post(a), post(a_off))
    baseline = None
    if random is not None:
        first = _prepared_random_map(random, a, sim, post)
        second = _prepared_random_map(random, a_off, sim, post)
        baseline = sim.compare(first, second).to(a.dtype)
    return RandomLogitResult(score, baseline, off_target)
