"""Faithfulness under random perturbations: infidelity, faithfulness correlation and sensitivity-n.

Each kernel perturbs every sample many times at random (noise, a random square,
a random subset of features), asks the model about all perturbed copies as one
logical batch in chunks of at most ``max_batch_size`` images, and compares the
output change with what the attribution predicts. Every perturbation is a pure
function of a per-item key drawn up front from ``generator``
(:mod:`xaiscore._engine.random_subsets`), so results are identical for
every chunk size and reproducible from a seed.

Common arguments: ``forward_fn`` returns logits ``(n, K)`` (an ``nn.Module``
qualifies); ``x`` ``(B, C, *S)``; ``a`` ``(B, 1|C, *S)``; ``target`` ``(B,)``
long (``None`` tracks the model's prediction on ``x``).

See ``docs/faithfulness.md`` for formulas, defaults and the differences from Quantus.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor

from xaiscore._engine.batching import ChunkBuffers, call_model, chunked_map, class_scores
from xaiscore._checks import (
    DTypeError,
    OptionError,
    check_fraction,
    check_option,
    check_positive_int,
)
from xaiscore._engine.model_mode import models_in_eval_mode
from xaiscore._engine.perturbation import (
    Partition,
    feature_attributions,
    features_differ,
    make_baseline,
    partition,
)
from xaiscore._engine.random import random_keys
from xaiscore._engine.reduction import ChannelReduction
from xaiscore._engine.sorting import sort_values
from xaiscore.functional.faithfulness._common import (
    finish_scores,
    pearson_rows,
    prepare_model_inputs,
    resolve_step,
)
from xaiscore._engine.random_subsets import (
    box_sum_tables,
    drawn_as_indices,
    patch_weights,
    random_patches,
    random_subset_indices,
    random_subsets,
    table_box_sums,
)
from xaiscore._engine.random import counter_normal
from xaiscore.functional._results import CurveResult
from xaiscore.functional._sample_items import item_samples, take_rows, where_items

__all__ = ["infidelity", "faithfulness_correlation", "sensitivity_n", "default_subset_sizes"]

Baseline = str | float | Callable[[Tensor], Tensor]


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise DTypeError(f"Expected `{name}` to be a bool, but got {type(value).__name__}.")
    return value


def _substrate_rows(substrate: Tensor, sample: Tensor) -> Tensor:
    return take_rows(substrate, sample) if substrate.shape[0] > 1 else substrate


def _element_mask(chosen: Tensor, part: Partition) -> Tensor:
    """Expand a per-feature choice ``(n, F)`` to the elements ``(n, 1|C, *S)`` of a shared
    partition.

    Shared pixel and element partitions number their features in memory order: a reshape suffices.
    """
    shape = (chosen.shape[0],) + tuple(part.ids.shape[1:])
    if part.ids.shape[0] == 1 and part.n_features == part.ids.numel():
        return chosen.reshape(shape)
    ids = part.ids.reshape(1, -1).expand(chosen.shape[0], -1)
    return chosen.gather(1, ids).reshape(shape)


# --- infidelity -----------------------------------------------------------------------------------


@models_in_eval_mode("forward_fn")
def infidelity(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None = None,
    *,
    perturbation: Literal["square", "noise"] = "square",
    patch_sizes: Sequence[int] = (4,),
    baseline: Baseline = "zeros",
    noise_std: float = 0.2,
    n_perturbations: int = 10,
    normalize: bool = True,
    multiply_by_inputs: bool = False,
    softmax: bool = False,
    max_batch_size: int = 64,
    generator: torch.Generator | None = None,
    validate: bool = True,
) -> Tensor:
    r"""Infidelity (Yeh et al. 2019): how badly ``a`` predicts the output change under random
    perturbations.

    For perturbations :math:`I_j` (``j = 1 .. n``) with perturbed inputs
    :math:`\tilde x_j = x - I_j`,

    .. math::

        s_j = \sum_e w_{j,e}\, a_e, \qquad \Delta_j = f_c(x) - f_c(\tilde x_j), \qquad
        \mathrm{INFD} = \frac{1}{n} \sum_j (\beta s_j - \Delta_j)^2,

    where ``f_c`` is the target logit (or probability with ``softmax``) and
    ``w = I`` (``multiply_by_inputs=False``: ``a`` is a local, gradient-like
    attribution) or ``w = I / (x - x_0)`` (``True``: ``a`` is already multiplied
    by ``x - x_0``, e.g. Integrated Gradients, so a removed square contributes
    its indicator; a zero denominator counts as 1, as in captum). With
    ``normalize`` (Yeh et al.'s optimal scaling; captum's ``normalize=True``),
    :math:`\beta = \sum_j s_j \Delta_j / \sum_j s_j^2` (0 when all ``s_j`` are 0),
    otherwise :math:`\beta = 1`. Lower is better.

    Perturbations (one per item, drawn independently for every sample and repeat):

    * ``"square"`` (Yeh et al.'s square removal): a square (cube in 3-D,
      segment in 1-D) of side drawn uniformly from ``patch_sizes``, at a
      uniformly random position fully inside the input, all channels, is
      replaced by the baseline: ``I = mask * (x - x_0)``.
    * ``"noise"``: Gaussian noise, ``I = noise_std * N(0, 1)`` per element.

    Args:
        perturbation: ``"square"`` or ``"noise"``.
        patch_sizes: Square sides to draw from (Quantus' default ``(4,)``); each
            at most the smallest spatial size.
        baseline: The removal value ``x_0`` (see
            :func:`xaiscore._engine.perturbation.make_baseline`); also the ``x_0`` of
            ``multiply_by_inputs`` for noise. Quantus uses ``"black"`` = ``"min"``.
        noise_std: Standard deviation of ``"noise"`` (Yeh et al.: 0.2).
        n_perturbations: Perturbations per sample (captum/Quantus: 10).
        normalize: Apply the optimal scaling ``beta``.
        multiply_by_inputs: See above (captum's perturbation decorator flag).
        softmax: Compare probabilities instead of logits (default logits, as
            captum and Quantus).
        max_batch_size: Most images per model call.
        generator: Source of all random draws (keys are drawn before a
            ``"uniform"`` baseline).
        validate: Check values (finite ``x``/``a``, target range, NaN outputs).

    Returns:
        ``(B,)`` infidelity, >= 0.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> linear = torch.nn.Linear(4, 2, bias=False)
        >>> _ = linear.weight.data.copy_(torch.tensor([[1.0, -2.0, 3.0, 0.5], [0.0, 0.0, 0.0, 0.0]]))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), linear)
        >>> x = torch.rand(2, 1, 4, generator=torch.Generator().manual_seed(0))
        >>> gradient = linear.weight[0].detach().expand(2, 1, 4)  # exact for a linear model
        >>> infidelity(model, x, gradient, torch.tensor([0, 0]), patch_sizes=(2,), normalize=False,
        ...            generator=torch.Generator().manual_seed(0)).abs().max() < 1e-10
        tensor(True)
    """  # noqa: E501
    check_option(perturbation, "perturbation", ("square", "noise"))
    check_positive_int(n_perturbations, "n_perturbations")
    normalize = _check_bool(normalize, "normalize")
    multiply_by_inputs = _check_bool(multiply_by_inputs, "multiply_by_inputs")
    noise_std = check_fraction(noise_std, "noise_std", high=math.inf)
    inputs = prepare_model_inputs(forward_fn, x, a, target, softmax=softmax,
                                  max_batch_size=max_batch_size,
                                  validate=validate)
    x, target = inputs.x, inputs.target
    b = x.shape[0]
    spatial = tuple(x.shape[2:])
    sizes: tuple[int, ...] = ()
    if perturbation == "square":
        if (isinstance(patch_sizes, (str, bytes)) or not isinstance(patch_sizes, Sequence)
            or not patch_sizes):
            raise DTypeError(
                f"Expected `patch_sizes` as a non-empty sequence of ints, but got {patch_sizes!r}.")
        sizes = tuple(check_positive_int(p, "patch_sizes") for p in patch_sizes)
        if max(sizes) > min(spatial):
            raise OptionError(
                "Expected every entry of `patch_sizes` at most the smallest spatial size "
                f"{min(spatial)}, but got {max(sizes)}."
            )
    keys = random_keys(b * n_perturbations, generator).to(x.device)
    substrate = make_baseline(x, baseline, generator=generator)
    a_full = inputs.a.expand_as(x)
    if perturbation == "square":
        # s_j = sum over the square of sum_c w a: box sums of one map per sample, from its integral
        # image.
        removed = x - substrate
        weight = (removed != 0).to(x.dtype) if multiply_by_inputs else removed
        projected = (weight * a_full).sum(dim=1)  # (B, *S): a square's projection is its box sum
        # Every item's square and projection up front (a few numbers per item): per chunk only the
        # images.
        all_sides, all_corners = random_patches(keys, spatial, sizes)
        all_samples = torch.arange(b, device=x.device).repeat_interleave(n_perturbations)
        all_projections = table_box_sums(box_sum_tables(projected, sizes), all_samples, all_sides,
                                         all_corners).to(x.dtype)

    buffers = ChunkBuffers()

    def compute(start: int, stop: int) -> Tensor:
        sample, _ = item_samples(start, stop, n_perturbations, x.device)
        if perturbation == "square":
            shape = (stop - start,) + tuple(x.shape[1:])
            weights = patch_weights(all_sides[start:stop], all_corners[start:stop], spatial,
                                    x.dtype,
                                    out=buffers.get("weights", (stop - start, 1) + spatial, x.dtype,
                                                    x.device))
            perturbed = where_items(weights, substrate, x, start, stop, n_perturbations,
                                    out=buffers.get("images", shape, x.dtype, x.device))
            projection = all_projections[start:stop]
        else:
            originals = take_rows(x, sample)
            draws = counter_normal(keys[start:stop], originals[0].numel(), dtype=x.dtype)
            change = noise_std * draws.reshape(originals.shape)
            perturbed = originals - change
            if multiply_by_inputs:
                scale = originals - _substrate_rows(substrate, sample)
                change = change / torch.where(scale != 0, scale, torch.ones_like(scale))
            projection = (change * take_rows(a_full, sample)).reshape(len(sample), -1).sum(1)
        scores = class_scores(call_model(forward_fn, perturbed), target.index_select(0, sample),
                              softmax=softmax)
        return torch.stack([projection, scores.to(projection.dtype)], dim=1)

    out = chunked_map(b * n_perturbations, compute,
                      max_batch_size=max_batch_size).reshape(b, n_perturbations, 2)
    projection = out[..., 0]
    delta = inputs.score.unsqueeze(1) - finish_scores(out[..., 1], x, validate=validate)
    if not normalize:
        return ((projection - delta) ** 2).mean(dim=1)
    ss, sd, dd = (projection * projection).sum(1), (projection * delta).sum(1), (delta * delta).sum(
        1)
    beta = sd / torch.where(ss != 0, ss, torch.ones_like(ss))
    return ((beta * beta * ss - 2 * beta * sd + dd) / n_perturbations).clamp(min=0)


# --- random-subset correlations -------------------------------------------------------------------


def _subset_scores(forward_fn, inputs, part: Partition, values: Tensor, keys: Tensor,
                   sizes: list[int],
                   group: int, substrate: Tensor, *, softmax: bool, max_batch_size: int) -> Tensor:
    """``(B, R, 2)`` with ``R = len(sizes) * group``: each subset's attribution sum and the score
    without it.

    Item ``(sample, r)`` (flat ``sample * R + r``) removes a random subset of
    ``sizes[r // group]`` features drawn from ``keys[item]``.
    """
    x, target = inputs.x, inputs.target
    b, per_sample = x.shape[0], len(sizes) * group
    # A subset whose features all equal the baseline changes nothing: it keeps the exact original
    # score.
    differs = features_differ(x, substrate, part)
    # Subsets that change the same features give the same input and must get one score (the model's
    # rounding may differ between rows of a batch). That matters when few features differ from the
    # baseline (otherwise equal changed sets are vanishingly rare and leave other items' signal):
    # for samples with at most _HASHED_FEATURES differing features, the changed set is hashed with
    # fixed random weights over those features; other samples' items keep their own scores.
    hashed = differs.sum(1) <= _HASHED_FEATURES
    top = torch.topk(differs.to(torch.uint8), min(_HASHED_FEATURES, part.n_features), dim=1)
    # (B, m) the differing features of hashed samples (first m for the others)
    feature_of = top.indices
    weights = torch.randint(1, 2**40, feature_of.shape,
                            generator=torch.Generator().manual_seed(20261124))
    weights_of = weights.to(x.device) * top.values  # padding (features that do not differ) weighs 0
    hashes: list[Tensor] = []
    # Small subsets of shared pixel or element features are handled as index lists: a copy of x and
    # a scatter of the substrate per item instead of passes over dense (item, feature) masks.
    identity = part.ids.shape[0] == 1 and part.n_features == part.ids.numel()
    sparse_sizes = {size for size in sizes if identity and drawn_as_indices(part.n_features, size)}
    sparse_state: dict[str, Tensor] = {}

    def sparse_tables() -> dict[str, Tensor]:
        if not sparse_state:
            f = part.n_features
            sparse_state["values"] = values.reshape(-1)
            sparse_state["differs"] = differs.reshape(-1)
            # Per sample, the hash weight of each feature (0 but for its hashed features): the hash
            # of a subset is then a sum over its indices, equal to the dense path's sum over
            # `feature_of`.
            weight_map = torch.zeros((b, f), dtype=torch.long, device=x.device)
            sparse_state["weights"] = weight_map.scatter_(1, feature_of, weights_of).reshape(-1)
            sparse_state["substrate"] = substrate.to(x.dtype).expand_as(x).reshape(-1)
            sparse_state["x"] = x.reshape(b, -1)  # a copy only for a non-contiguous x, once
        return sparse_state

    def sparse_piece(out: Tensor, sample: Tensor, start: int, stop: int, size: int
                     ) -> tuple[Tensor, Tensor, Tensor]:
        """Build the items ``start .. stop - 1`` (one subset size) into ``out``; their sums, hashes,
        changes."""
        tables, f = sparse_tables(), part.n_features
        index = sort_values(random_subset_indices(keys[start:stop], f, size))[:, :size]  # ascending
        flat = index + (sample * f).unsqueeze(1)
        attribution_sum = tables["values"].take(flat).sum(1)
        subset_hash = tables["weights"].take(flat).sum(1)
        changed = tables["differs"].take(flat).view(torch.uint8).amax(1) > 0
        torch.index_select(tables["x"], 0, sample, out=out.view(len(sample), -1))
        # a pixel feature: its position in every channel
        channels = x.shape[1] if part.ids.shape[1] == 1 else 1
        element = (index.unsqueeze(1) + torch.arange(channels, device=x.device).reshape(1, -1, 1)
                   * f)
        element = element.reshape(len(sample), -1)
        fill = tables["substrate"].take(element + (sample * x[0].numel()).unsqueeze(1))
        out.view(len(sample), -1).scatter_(1, element, fill)
        return attribution_sum, subset_hash, changed

    def dense_piece(out: Tensor, sample: Tensor, start: int, stop: int, size: int
                    ) -> tuple[Tensor, Tensor, Tensor]:
        """As :func:`sparse_piece` through dense masks; a piece's items all belong to one sample."""
        owner = start // per_sample
        chosen = random_subsets(keys[start:stop], part.n_features, size)
        weights = chosen.to(x.dtype)  # one pass, shared by the sums and the blend
        attribution_sum = torch.mv(weights.to(values.dtype), values[owner])
        where_items(_element_mask(weights, part), substrate, x, start, stop, per_sample, out=out)
        in_set = chosen.gather(1, feature_of[owner].expand(len(sample), -1)).to(torch.int64)
        subset_hash = (in_set * weights_of[owner]).sum(1)  # integer matmul does not exist on CUDA
        changed = torch.mv(weights, differs[owner].to(x.dtype)) > 0
        return attribution_sum, subset_hash, changed

    buffers = ChunkBuffers()

    def compute(start: int, stop: int) -> Tensor:
        sample, _ = item_samples(start, stop, per_sample, x.device)
        perturbed = buffers.get("images", (stop - start,) + tuple(x.shape[1:]), x.dtype, x.device)
        # Items of one size form runs of ``group``: one draw per run within the chunk.
        bounds = [start] + list(range((start // group + 1) * group, stop, group)) + [stop]
        parts = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            size = sizes[(lo % per_sample) // group]
            piece = sparse_piece if size in sparse_sizes else dense_piece
            parts.append(piece(perturbed[lo - start:hi - start], sample[lo - start:hi - start], lo,
                               hi, size))
        attribution_sum, subset_hash, changed = (torch.cat(v) if len(parts) > 1 else v[0]
                                                 for v in zip(*parts))
        scores = class_scores(call_model(forward_fn, perturbed), target.index_select(0, sample),
                              softmax=softmax)
        items = torch.arange(start, stop, device=x.device)
        hashes.append(torch.where(hashed.index_select(0, sample), subset_hash, -1 - items))
        scores = torch.where(changed, scores, inputs.score.index_select(0, sample).to(scores.dtype))
        return torch.stack([attribution_sum, scores.to(attribution_sum.dtype)], dim=1)

    out = chunked_map(b * per_sample, compute, max_batch_size=max_batch_size).reshape(b, per_sample,
                                                                                      2)
    representative = _first_with_equal_key(torch.cat(hashes).reshape(b, per_sample))
    return torch.stack([out[..., 0], out[..., 1].gather(1, representative)], dim=2)


#: Samples with at most this many features that differ from the baseline get equal scores for equal
#: inputs.
_HASHED_FEATURES = 64


def _first_with_equal_key(key: Tensor) -> Tensor:
    """``(B, R)`` long: for each entry, the index of the first entry of its row with the same key.
    """
    order = torch.sort(key, dim=1, stable=True).indices
    ordered = key.gather(1, order)
    new_group = torch.ones_like(ordered, dtype=torch.bool)
    new_group[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    position = torch.arange(key.shape[1], device=key.device).expand_as(key)
    first_in_order = torch.cummax(position * new_group, dim=1).values
    return torch.empty_like(order).scatter_(1, order, order.gather(1, first_in_order))


@models_in_eval_mode("forward_fn")
def faithfulness_correlation(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None = None,
    *,
    subset_size: int | float = 224,
    n_runs: int = 100,
    baseline: Baseline = "zeros",
    reduce_channels: ChannelReduction | None = "sum",
    softmax: bool = False,
    max_batch_size: int = 64,
    generator: torch.Generator | None = None,
    validate: bool = True,
) -> Tensor:
    r"""Faithfulness correlation (Bhatt et al. 2020): do attribution sums of random subsets predict
    their removal?

    For ``n_runs`` subsets :math:`S_j` of ``subset_size`` features drawn
    uniformly without replacement (independently per sample and run),

    .. math:: \mu_F = \operatorname{corr}_j\Big(\sum_{i \in S_j} a_i,\;
              f_c(x) - f_c\big(x_{[x_{S_j} = \bar x_{S_j}]}\big)\Big)

    (Pearson), where :math:`\bar x` is the baseline. Features are pixels with
    all their channels (attribution: ``a`` reduced over channels) or, with
    ``reduce_channels=None``, single elements as in Quantus. Higher is better.

    Args:
        subset_size: ``|S|`` as a count, or a float fraction of the features
            (Quantus' default 224 features; at most the number of features).
        n_runs: Number of subsets per sample (Bhatt et al., Quantus: 100).
        baseline: Replacement values ``x_bar`` (see
            :func:`xaiscore._engine.perturbation.make_baseline`); Quantus' ``"black"`` is ``"min"``.
        reduce_channels: ``"sum"``, ``"mean"``, ``"max_abs"`` or ``None`` (elements).
        softmax: Probabilities instead of logits (default logits, as Quantus).
        max_batch_size: Most images per model call.
        generator: Source of the subsets (and of a ``"uniform"`` baseline).
        validate: Check values (finite ``x``/``a``, target range, NaN outputs).

    Returns:
        ``(B,)`` correlations in [-1, 1]; NaN where either side is constant over
        the runs (e.g. a constant map, or subsets covering every feature).

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> linear = torch.nn.Linear(6, 2, bias=False)
        >>> _ = linear.weight.data.copy_(torch.tensor([[1.0, -2.0, 3.0, 0.5, 2.0, -1.0], [0.0] * 6]))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), linear)
        >>> x = torch.rand(1, 1, 6, generator=torch.Generator().manual_seed(0))
        >>> a = linear.weight[0].detach().reshape(1, 1, 6) * x  # exact for a linear model and zero baseline
        >>> faithfulness_correlation(model, x, a, torch.tensor([0]), subset_size=2, n_runs=20,
        ...                          generator=torch.Generator().manual_seed(0)).round(decimals=6).tolist()
        [1.0]
    """  # noqa: E501
    check_positive_int(n_runs, "n_runs")
    inputs = prepare_model_inputs(forward_fn, x, a, target, softmax=softmax,
                                  max_batch_size=max_batch_size,
                                  validate=validate)
    x = inputs.x
    part = partition(x.shape, reduce_channels=reduce_channels, device=x.device)
    size = resolve_step(subset_size, part.n_features, "subset_size")
    values = feature_attributions(inputs.a, part, reduce_channels=reduce_channels)
    keys = random_keys(x.shape[0] * n_runs, generator).to(x.device)
    substrate = make_baseline(x, baseline, generator=generator)
    out = _subset_scores(forward_fn, inputs, part, values, keys, [size], n_runs, substrate,
                         softmax=softmax,
                         max_batch_size=max_batch_size)
    delta = inputs.score.unsqueeze(1) - finish_scores(out[..., 1], x, validate=validate)
    return pearson_rows(out[..., 0], delta).to(x.dtype)


def default_subset_sizes(n_features: int, count: int = 10, max_fraction: float = 0.8) -> list[int]:
    """``count`` log-spaced subset sizes from 1 to ``max_fraction`` of the features
    (duplicates dropped).

    Example:
        >>> default_subset_sizes(1000)
        [1, 2, 4, 9, 20, 41, 86, 181, 381, 800]
        >>> default_subset_sizes(4)
        [1, 2, 3]
    """
    top = max(1, math.floor(max_fraction * n_features))
    if count == 1 or top == 1:
        return [top]
    sizes = [round(math.exp(math.log(top) * k / (count - 1))) for k in range(count)]
    return sorted(set(min(top, max(1, s)) for s in sizes))


@models_in_eval_mode("forward_fn")
def sensitivity_n(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor | None = None,
    *,
    subset_sizes: Sequence[int | float] | None = None,
    n_subsets: int = 100,
    baseline: Baseline = "zeros",
    reduce_channels: ChannelReduction | None = "sum",
    softmax: bool = False,
    max_batch_size: int = 64,
    generator: torch.Generator | None = None,
    validate: bool = True,
) -> CurveResult:
    r"""Sensitivity-n (Ancona et al. 2018): for each subset size ``n``, correlate attribution sums
    with output drops.

    For every size :math:`n_t` and ``n_subsets`` subsets :math:`S` of
    :math:`n_t` features drawn uniformly without replacement (independently
    per sample, size and subset),

    .. math:: c_t = \operatorname{corr}_{S,\ |S| = n_t}\Big(\sum_{i \in S} a_i,\;
              f_c(x) - f_c\big(x_{[x_S = \bar x_S]}\big)\Big),

    (Pearson, per sample). An attribution satisfies sensitivity-n when
    :math:`c_t = 1`; the summary is the mean of the curve over the sizes
    (ignoring NaN). Higher is better.

    Args:
        subset_sizes: The sizes ``n`` as counts or float fractions of the
            features; ``None`` means :func:`default_subset_sizes` (10 log-spaced
            sizes from 1 to 80 % of the features, as Ancona et al. sweep ``n``
            on a log scale).
        n_subsets: Subsets per size and sample.
        baseline: Replacement values (Ancona et al.: zeros).
        reduce_channels: Pixel features (a reduction) or ``None`` for elements.
        softmax: Probabilities instead of logits (default logits: the
            pre-softmax target output).
        max_batch_size: Most images per model call.
        generator: Source of the subsets (and of a ``"uniform"`` baseline).
        validate: Check values (finite ``x``/``a``, target range, NaN outputs).

    Returns:
        ``CurveResult(score (B,), curve (B, T), x (T,))`` with ``x`` the sizes as
        fractions of the features; NaN where a correlation is undefined (a
        constant side, e.g. ``n`` equal to the number of features).

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``
        - output: ``score (B,)``, ``curve (B, T)``, ``x (T,)``

    Example:
        >>> linear = torch.nn.Linear(6, 2, bias=False)
        >>> _ = linear.weight.data.copy_(torch.tensor([[1.0, -2.0, 3.0, 0.5, 2.0, -1.0], [0.0] * 6]))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), linear)
        >>> x = torch.rand(1, 1, 6, generator=torch.Generator().manual_seed(0))
        >>> a = linear.weight[0].detach().reshape(1, 1, 6) * x  # a linear model satisfies sensitivity-n
        >>> result = sensitivity_n(model, x, a, torch.tensor([0]), subset_sizes=[1, 2, 3], n_subsets=20,
        ...                        generator=torch.Generator().manual_seed(0))
        >>> result.curve.round(decimals=6).tolist(), result.x.tolist()
        ([[1.0, 1.0, 1.0]], [0.1666666716337204, 0.3333333432674408, 0.5])
    """  # noqa: E501
    check_positive_int(n_subsets, "n_subsets")
    inputs = prepare_model_inputs(forward_fn, x, a, target, softmax=softmax,
                                  max_batch_size=max_batch_size,
                                  validate=validate)
    x = inputs.x
    part = partition(x.shape, reduce_channels=reduce_channels, device=x.device)
    n = part.n_features
    if subset_sizes is None:
        counts = default_subset_sizes(n)
    else:
        if (isinstance(subset_sizes, (str, bytes)) or not isinstance(subset_sizes, Sequence)
            or not subset_sizes):
            raise DTypeError(
                f"Expected `subset_sizes` as a non-empty sequence, but got {subset_sizes!r}.")
        counts = [resolve_step(s, n, "subset_sizes") for s in subset_sizes]
    n_sizes = len(counts)
    values = feature_attributions(inputs.a, part, reduce_channels=reduce_channels)
    per_sample = n_sizes * n_subsets
    keys = random_keys(x.shape[0] * per_sample, generator).to(x.device)
    substrate = make_baseline(x, baseline, generator=generator)
    out = _subset_scores(forward_fn, inputs, part, values, keys, counts, n_subsets, substrate,
                         softmax=softmax,
                         max_batch_size=max_batch_size)
    b = x.shape[0]
    sums = out[..., 0].reshape(b * n_sizes, n_subsets)
    delta = inputs.score.reshape(b, 1, 1) - finish_scores(out[..., 1], x,
                                                          validate=validate).reshape(b, n_sizes,
                                                                                                      n_subsets)
    curve = pearson_rows(sums, delta.reshape(b * n_sizes, n_subsets)).reshape(b,
                                                                              n_sizes).to(x.dtype)
    positions = torch.tensor(counts, dtype=x.dtype, device=x.device) / n
    return CurveResult(torch.nanmean(curve, dim=1), curve, positions)
