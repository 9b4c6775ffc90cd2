"""Feature-removal faithfulness metrics that correlate or compare per-feature effects.

Faithfulness estimate (Alvarez-Melis and Jaakkola 2018), monotonicity (Arya et
al. 2019) and monotonicity correlation (Nguyen and Martinez 2020). Each returns
a ``(B,)`` tensor. Features are ranked once per sample by the perturbation
engine (:mod:`xaiscore._engine.perturbation`); every perturbed input of every sample goes
through ``forward_fn`` in chunks of at most ``max_batch_size`` images, and the
result does not depend on ``max_batch_size``.

See ``docs/faithfulness.md`` for formulas, defaults and the differences from Quantus.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from xaiscore._checks import check_positive_int
from xaiscore._engine.model_mode import models_in_eval_mode
from xaiscore._engine.perturbation import (
    constant_or_baseline,
    element_ranks,
    feature_attributions,
    features_differ,
    partition,
    SparseSubstrate,
    perturbed_scores,
    rank_features,
)
from xaiscore._engine.random import counter_uniform_at, random_keys
from xaiscore._engine.reduction import ChannelReduction
from xaiscore.functional.faithfulness._common import (
    finish_scores,
    pearson_rows,
    prepare_model_inputs,
    resolve_step,
    spearman_rows,
    step_edges,
)

__all__ = ["faithfulness_estimate", "monotonicity", "monotonicity_correlation"]

Baseline = str | float | Callable[[Tensor], Tensor]


def _group_sums(values: Tensor, ranks: Tensor, per_step: int, n_groups: int) -> Tensor:
    """Sum ``values`` ``(B, F)`` over the groups ``rank // per_step``: ``(B, n_groups)``."""
    groups = torch.div(ranks, per_step, rounding_mode="floor")
    out = torch.zeros(values.shape[0], n_groups, dtype=values.dtype, device=values.device)
    return out.scatter_add_(1, groups, values)


@models_in_eval_mode("forward_fn")
def faithfulness_estimate(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None = None,
    *,
    features_per_step: int | float = 1,
    baseline: Baseline = "zeros",
    softmax: bool = False,
    reduce_channels: ChannelReduction | None = "sum",
    max_batch_size: int = 64,
    generator: torch.Generator | None = None,
    validate: bool = True,
) -> Tensor:
    r"""Faithfulness estimate (Alvarez-Melis and Jaakkola 2018): do attributions predict removal
    effects?

    Features (pixels; channel values with ``reduce_channels=None``) are sorted
    by attribution, highest first, and cut into ``T = ceil(N / s)`` groups of
    ``s = features_per_step`` (the last may be smaller). Group ``g`` alone is
    replaced by the baseline, giving :math:`x_{\setminus g}`, and

    .. math:: \rho = \mathrm{corr}_g\Bigl(\sum_{i \in g} a_i,\; f_c(x) - f_c(x_{\setminus g})\Bigr)

    is the Pearson correlation over the groups (higher is better).
    ``features_per_step`` may also be a float fraction of the features. With
    ``s = 1`` this is the paper's per-feature estimate. Quantus'
    ``FaithfulnessEstimate`` defaults to ``"black"`` (our ``"min"``) and logits, as here.

    Returns:
        ``(B,)`` in [-1, 1]; NaN when the group sums or the score drops are
        constant (e.g. a constant map with ``s = 1``) or there is only one group.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> linear = torch.nn.Linear(4, 2, bias=False)
        >>> _ = linear.weight.data.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), linear)
        >>> x = torch.ones(2, 1, 4)
        >>> a = torch.tensor([[[1.0, 2.0, 3.0, 4.0]], [[4.0, 3.0, 2.0, 1.0]]])
        >>> faithfulness_estimate(model, x, a, torch.tensor([0, 0])).tolist()
        [1.0, -1.0]
    """
    inputs = prepare_model_inputs(forward_fn, x, a, target, softmax=softmax,
                                  max_batch_size=max_batch_size,
                                  validate=validate)
    part = partition(x.shape, reduce_channels=reduce_channels, device=x.device)
    scores = feature_attributions(inputs.a, part, reduce_channels=reduce_channels)
    ranks = rank_features(scores, order="morf")
    n = part.n_features
    step = resolve_step(features_per_step, n)
    edges = step_edges(n, step, x.device)
    substrate = constant_or_baseline(inputs.x, baseline, generator=generator)
    perturbed = perturbed_scores(forward_fn, inputs.x, element_ranks(ranks, part), inputs.target,
                                 edges[:-1],
                                 edges[1:], substrate=substrate, softmax=softmax,
                                 max_batch_size=max_batch_size)
    drops = inputs.score.unsqueeze(1) - finish_scores(perturbed, inputs.x, validate=validate)
    # A group equal to the baseline changes nothing: its drop is exactly 0, not the model's
    # rounding.
    changed = _changed_groups(inputs.x, substrate, part, ranks, step, edges.shape[0] - 1)
    drops = torch.where(changed, drops, torch.zeros_like(drops))
    sums = _group_sums(scores, ranks, step, edges.shape[0] - 1)
    return pearson_rows(sums, drops).to(inputs.x.dtype)


def _changed_groups(x: Tensor, substrate: Tensor | float, part, ranks: Tensor, per_step: int,
                    n_groups: int) -> Tensor:
    """``(B, n_groups)`` bool: does inserting (or removing) group ``g`` change any input value?"""
    per_feature = features_differ(x, substrate, part).to(x.dtype)
    return _group_sums(per_feature, ranks, per_step, n_groups) > 0


@models_in_eval_mode("forward_fn")
def monotonicity(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None = None,
    *,
    features_per_step: int | float = 1,
    baseline: Baseline = "zeros",
    softmax: bool = True,
    reduce_channels: ChannelReduction | None = "sum",
    max_batch_size: int = 64,
    generator: torch.Generator | None = None,
    validate: bool = True,
) -> Tensor:
    r"""Monotonicity (Arya et al. 2019, AIX360): inserting features by increasing attribution never
    lowers the score.

    Start from the baseline and *insert* the input's features in order of
    increasing attribution, ``s = features_per_step`` at a time; after step
    ``t = 1 .. T`` (``s`` an int, or a float fraction of the features) the
    first ``k_t = min(t s, N)`` features hold their values
    from ``x`` and the rest the baseline's. With :math:`p_t` the target
    probability after step ``t``,

    .. math:: \mathrm{Monotonicity} = \mathbb{1}\bigl[p_{t} \ge p_{t-1} \;\forall\, t = 2 .. T\bigr]

    (1 is better). As in AIX360 the all-baseline start is not part of the
    sequence and the attributions are used as given (pass ``a.abs()`` for
    Quantus' default ``abs=True``). A step that changes no input value (the
    inserted values equal the baseline's) counts as non-decreasing, so that
    float noise between identical inputs cannot decide the score.

    Quantus 0.6.0's ``Monotonicity`` replaces baseline values by the baseline
    again instead of inserting ``x``, so its sequence is constant and it
    returns True for any attribution; we insert.

    Returns:
        ``(B,)`` of 0.0 / 1.0 (1.0 when ``T = 1``).

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> linear = torch.nn.Linear(4, 2, bias=False)
        >>> _ = linear.weight.data.copy_(torch.tensor([[1.0, -2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), linear)
        >>> x = torch.ones(2, 1, 4)
        >>> a = torch.tensor([[[1.0, -2.0, 3.0, 4.0]], [[1.0, 2.0, 3.0, 4.0]]])
        >>> monotonicity(model, x, a, torch.tensor([0, 0])).tolist()
        [1.0, 0.0]
    """  # noqa: E501
    inputs = prepare_model_inputs(forward_fn, x, a, target, softmax=softmax,
                                  max_batch_size=max_batch_size,
                                  validate=validate)
    part = partition(x.shape, reduce_channels=reduce_channels, device=x.device)
    scores = feature_attributions(inputs.a, part, reduce_channels=reduce_channels)
    ranks = rank_features(scores, order="lerf")
    n = part.n_features
    step = resolve_step(features_per_step, n)
    edges = step_edges(n, step, x.device)
    n_steps = edges.shape[0] - 1
    substrate = constant_or_baseline(inputs.x, baseline, generator=generator)
    if n_steps > 1:
        lo = edges[1:-1]  # the last step inserts everything: that is x, whose score is known
        perturbed = perturbed_scores(forward_fn, inputs.x, element_ranks(ranks, part),
                                     inputs.target, lo,
                                     None, substrate=substrate, softmax=softmax,
                                     max_batch_size=max_batch_size)
        curve = torch.cat(
            [finish_scores(perturbed, inputs.x, validate=validate), inputs.score.unsqueeze(1)], 1)
    else:
        curve = inputs.score.unsqueeze(1)
    changed = _changed_groups(inputs.x, substrate, part, ranks, step, n_steps)
    ok = (curve[:, 1:] >= curve[:, :-1]) | ~changed[:, 1:]
    return ok.all(dim=1).to(inputs.x.dtype)


def _group_noise(x: Tensor, part, ranks: Tensor, per_step: int, n_groups: int, n_samples: int,
                 generator: torch.Generator | None) -> SparseSubstrate:
    """The substrate of item ``(b, g * R + r)``: uniform noise on ``[min x_b, max x_b]`` over group
    ``g``.

    Noise comes from :func:`counter_uniform_at` with one key per (sample, draw), evaluated at the
    group's element indices only (the value of element ``e`` is column ``e`` of
    ``counter_uniform(key, C * prod(S))``); elements outside the group are never used.
    """
    b, n_features = ranks.shape
    keys = random_keys((b, n_samples), generator).to(x.device)
    dims = tuple(range(1, x.ndim))
    low, high = x.amin(dim=dims), x.amax(dim=dims)
    per_image = math.prod(x.shape[1:])
    order = torch.empty_like(ranks).scatter_(
        1, ranks, torch.arange(n_features, device=x.device).expand(b, -1))
    padded = torch.arange(n_groups * per_step, device=x.device).clamp(max=n_features - 1)
    # feature ids; the last group repeats its last one
    groups = order[:, padded].reshape(b, n_groups, per_step)
    if part.ids.shape[1] == 1:  # a feature is a position with all its channels
        positions = per_image // x.shape[1]
        channel_offsets = torch.arange(x.shape[1], device=x.device) * positions
        groups = (groups.unsqueeze(-1) + channel_offsets).reshape(b, n_groups, -1)

    group_rows = groups.reshape(b * n_groups, -1)
    spread = high - low

    def substrate(sample: Tensor, step_index: Tensor) -> tuple[Tensor, Tensor]:
        group = torch.div(step_index, n_samples, rounding_mode="floor")
        draw = step_index - group * n_samples
        # (n, m) flat element indices: exactly the group's elements (row gather: cheaper than 2-D
        # indexing)
        elements = group_rows.index_select(0, sample * n_groups + group)
        u = counter_uniform_at(keys.reshape(-1).index_select(0, sample * n_samples + draw),
                               elements, dtype=x.dtype)
        return elements, torch.addcmul(low.index_select(0, sample).unsqueeze(1), u,
                                       spread.index_select(0, sample).unsqueeze(1))

    return SparseSubstrate(substrate)


@models_in_eval_mode("forward_fn")
def monotonicity_correlation(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None = None,
    *,
    features_per_step: int | float = 1,
    n_samples: int = 100,
    baseline: Baseline = "uniform",
    absolute: bool = True,
    softmax: bool = True,
    reduce_channels: ChannelReduction | None = "sum",
    max_batch_size: int = 64,
    generator: torch.Generator | None = None,
    validate: bool = True,
) -> Tensor:
    r"""Monotonicity correlation (Nguyen and Martinez 2020): attribution magnitude vs. effect of
    removal.

    Features are sorted by attribution (ascending) and cut into ``T`` groups of
    ``s = features_per_step`` (an int, or a float fraction of the features). For each group ``g``
    and each of ``R = n_samples`` draws, the group's values are replaced by noise
    (default ``"uniform"``: i.i.d. uniform on ``[min x, max x]`` of the sample, per element) and

    .. math:: v_g = \frac{1}{R} \sum_{r=1}^{R} \bigl(f_c(x) - f_c(x_{g \leftarrow u_r})\bigr)^2,
              \qquad \mathrm{MC} = \rho_{\mathrm{Spearman}}\bigl(\textstyle\sum_{i\in g} |a_i|,\; v_g\bigr)

    (higher is better; ties share their average rank). ``absolute=True`` ranks
    and sums :math:`|a|` (the paper and Quantus); deterministic baselines
    make all ``R`` draws equal.

    Noise is drawn from ``generator`` as one key per (sample, draw) and expanded
    by a counter-based hash evaluated at the group's elements only
    (:func:`xaiscore._engine.perturbation.counter_uniform_at`), so it does not depend on
    ``max_batch_size``. Quantus' ``MonotonicityCorrelation``
    replaces a whole group by one uniform scalar in [0, 1] per draw and scales
    ``v_g`` by :math:`1 / f_c(x)^2` (irrelevant to a rank correlation).

    Returns:
        ``(B,)`` in [-1, 1]; NaN when the group sums or the ``v_g`` are constant
        or there is only one group.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> linear = torch.nn.Linear(4, 2, bias=False)
        >>> _ = linear.weight.data.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), linear)
        >>> x, a = torch.ones(1, 1, 4), torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
        >>> monotonicity_correlation(model, x, a, torch.tensor([0]), baseline="zeros", n_samples=1,
        ...                          softmax=False).tolist()
        [1.0]
    """  # noqa: E501
    check_positive_int(n_samples, "n_samples")
    inputs = prepare_model_inputs(forward_fn, x, a, target, softmax=softmax,
                                  max_batch_size=max_batch_size,
                                  validate=validate)
    part = partition(x.shape, reduce_channels=reduce_channels, device=x.device)
    scores = feature_attributions(inputs.a.abs() if absolute else inputs.a, part,
                                  reduce_channels=reduce_channels)
    ranks = rank_features(scores, order="lerf")
    n = part.n_features
    step = resolve_step(features_per_step, n)
    edges = step_edges(n, step, x.device)
    n_groups = edges.shape[0] - 1
    lo = edges[:-1].repeat_interleave(n_samples)
    hi = edges[1:].repeat_interleave(n_samples)
    xs = inputs.x
    if isinstance(baseline, str) and baseline == "uniform":
        fill = _group_noise(xs, part, ranks, step, n_groups, n_samples, generator)
    else:
        fill = constant_or_baseline(xs, baseline, generator=generator)
    perturbed = perturbed_scores(forward_fn, xs, element_ranks(ranks, part), inputs.target, lo, hi,
                                 substrate=fill, softmax=softmax, max_batch_size=max_batch_size)
    perturbed = finish_scores(perturbed, xs, validate=validate).reshape(xs.shape[0], n_groups,
                                                                        n_samples)
    change = perturbed - inputs.score.reshape(-1, 1, 1)
    # a group equal to a constant baseline changes nothing
    if not isinstance(fill, SparseSubstrate):
        changed = _changed_groups(xs, fill, part, ranks, step, n_groups).unsqueeze(2)
        change = torch.where(changed, change, torch.zeros_like(change))
    variance = (change**2).mean(dim=2)
    sums = _group_sums(scores, ranks, step, n_groups)
    return spearman_rows(sums, variance).to(xs.dtype)
