"""eMPRT: the relative rise of the explanation's histogram entropy after full randomization.

* :func:`efficient_mprt`: eMPRT (Hedström et al. 2023).
* :func:`histogram_entropy`: the entropy it measures, per sample.

The explainer protocol, the random baseline and the randomness rules are those of
:mod:`xaiscore.functional.randomization`. See ``docs/randomization.md`` for formulas,
defaults and the differences from Quantus.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from xaiscore._checks import (
    DTypeError,
    check_attributions,
    check_option,
    check_positive_int,
    check_tensor,
)
from xaiscore._engine.batching import check_max_batch_size
from xaiscore._engine.explain_fn import ExplainerFactory
from xaiscore._engine.model_mode import models_in_eval_mode
from xaiscore._engine.model_randomization import (
    LayerOrder,
    Reinit,
    parameterised_layers,
    randomized_models,
)
from xaiscore._engine.random import resolve_generator
from xaiscore._engine.reduction import ChannelReduction, flatten_features
from xaiscore.functional._common import nan_where, sorted_quantile
from xaiscore.functional.randomization._common import (
    Normalise,
    RandomizationResult,
    _bind,
    _check_factory,
    _check_model_inputs,
    _check_postprocessing,
    _check_target_classes,
    _explain,
    _FiniteCheck,
    _where,
)
from xaiscore.functional.randomization._comparison import _PostProcess, _RandomMaps

__all__ = ["efficient_mprt", "histogram_entropy", "BIN_RULES"]

BinRule = Literal["freedman_diaconis", "scott", "sqrt", "sturges", "rice"]

#: The bin-count rules :func:`efficient_mprt` accepts besides a fixed count.
BIN_RULES: tuple[str, ...] = ("freedman_diaconis", "scott", "sqrt", "sturges", "rice")



def _bin_counts(values: Tensor, rule: int | str, min_bins: int,
                max_bins: int) -> tuple[Tensor, int]:
    """Bins per sample ``(B,)`` long and their upper bound, for a fixed count or a rule."""
    batch, n = values.shape
    if isinstance(rule, int):
        return torch.full((batch,), rule, dtype=torch.long, device=values.device), rule
    span = values.amax(dim=1) - values.amin(dim=1)
    n_float = float(n)
    if rule == "sqrt":
        raw = torch.full((batch,), math.ceil(math.sqrt(n_float)), dtype=values.dtype,
                         device=values.device)
    elif rule == "sturges":
        raw = torch.full((batch,), math.ceil(math.log2(n_float)) + 1, dtype=values.dtype,
                         device=values.device)
    elif rule == "rice":
        raw = torch.full((batch,), math.ceil(2 * n_float ** (1 / 3)), dtype=values.dtype,
                         device=values.device)
    else:
        if rule == "freedman_diaconis":
            spread = (sorted_quantile(values, 0.75) - sorted_quantile(values, 0.25)).squeeze(1)
            width = 2 * spread / n_float ** (1 / 3)
        else:  # scott
            width = 3.5 * values.std(dim=1, correction=0) / n_float ** (1 / 3)
        # Zero width (a degenerate spread) asks for arbitrarily many bins: the clamp gives max_bins.
        raw = torch.where(width > 0, torch.ceil(span / torch.where(width > 0, width,
                                                                   torch.ones_like(width))),
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
        raise DTypeError(
            f"Expected `a` to be a floating-point (B, ...) tensor, but got dtype {a.dtype} and "
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
    # A sample holding NaN (reachable with validate=False) has no histogram: NaN, without disturbing
    # the others.
    undefined = torch.isnan(values).any(dim=1)
    values = values.masked_fill(undefined.unsqueeze(1), 0.0)
    return nan_where(undefined, _finite_histogram_entropy(values, n_bins, min_bins, max_bins))


def _finite_histogram_entropy(values: Tensor, n_bins: int | str, min_bins: int,
                              max_bins: int) -> Tensor:
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
    # numpy builds with linspace as `i * step + first` (the last one exactly `last`). Bin indices
    # stay floats (exact integers) until the count, and the passes work in place.
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
    # flat bin ids exact in this dtype: one conversion
    if batch * upper <= 2 / torch.finfo(index.dtype).eps:
        flat = index.add_(rows.to(index.dtype)).to(torch.long)
    else:
        flat = index.to(torch.long) + rows
    counts = torch.bincount(flat.reshape(-1), minlength=batch * upper)
    counts = counts.reshape(batch, upper).to(values.dtype)
    p = counts / n
    terms = torch.where(p > 0, -p * torch.log(torch.where(p > 0, p, torch.ones_like(p))),
                        torch.zeros_like(p))
    return terms.sum(dim=1)


@models_in_eval_mode("model")
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
    r"""Efficient MPRT (Hedström et al. 2023): the relative rise in explanation complexity after
    randomization.

    .. math:: \mathrm{eMPRT} = \frac{H(P(e_{\mathrm{rand}})) - H(P(e_0))}{H(P(e_0))}

    with :math:`H` the histogram entropy of :func:`histogram_entropy` (100 bins
    by default, or a per-sample bin rule), :math:`e_0` the original
    explanation and :math:`e_{\mathrm{rand}}` the explanation of the fully
    randomized model (every layer, in ``order``). Higher is better: the
    explanation becomes more disordered when the model loses what it learnt.
    Only two explain passes are needed (original and fully randomized), unless
    ``layerwise=True`` asks for the entropy after every step.

    Args:
        model, x, target, explainer_factory, seed, reinit, max_batch_size, validate: As in
            :func:`mprt`.
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
        - x: ``(B, C, *S)``; target: ``(B,)``; output: score ``(B,)``, curve ``(B, 2)`` or
          ``(B, L + 1)``

    Example:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        >>> x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
        >>> result = efficient_mprt(model, x, torch.tensor([0, 2]), explainer_factory=lambda m: (lambda x, t: x))
        >>> result.score.tolist(), result.x.tolist()  # an explainer ignoring the model: no rise
        ([0.0, 0.0], [0.0, 1.0])
    """  # noqa: E501
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

    # grid values: finite, no NaN test
    def random_entropy(maps: _RandomMaps, like: Tensor) -> Tensor:
        values = flatten_features(post(maps(like)))
        return _finite_histogram_entropy(values, n_bins, min_bins, max_bins)

    finite = _FiniteCheck(validate)
    names: list[str] = []
    entropies: list[Tensor] = []
    positions: list[int] = []
    random_entropies: list[Tensor] = []
    random = _RandomMaps(generator, x.device) if random_baseline else None
    for step, (name, step_model) in enumerate(randomized_models(model, order=order, seed=seed,
                                                                reinit=reinit,
                                                               include_original=True)):
        if step == 0:
            _check_target_classes(step_model, x, target, validate=validate)
        if not (layerwise or step in (0, n_layers)):
            continue
        explanation = _explain(_bind(explainer_factory, step_model), x, target,
                               max_batch_size=max_batch_size)
        finite(explanation, _where(name))
        names.append("original" if name is None else name)
        positions.append(step)
        entropies.append(entropy(explanation))
        if random is not None and step in (0, n_layers):
            random_entropies.append(random_entropy(random, explanation))
    curve = torch.stack(entropies, dim=1)
    score = _relative_rise(curve[:, 0], curve[:, -1])
    baseline = (_relative_rise(random_entropies[0], random_entropies[-1]) if random_entropies
                else None)
    steps = torch.tensor(positions, dtype=curve.dtype, device=curve.device)
    return RandomizationResult(score, curve, steps, tuple(names), baseline)


def _relative_rise(before: Tensor, after: Tensor) -> Tensor:
    undefined = before == 0
    rise = (after - before) / torch.where(undefined, torch.ones_like(before), before)
    return nan_where(undefined, rise)

