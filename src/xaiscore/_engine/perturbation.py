"""The perturbation engine shared by the faithfulness metrics.

A perturbation metric asks the model about many perturbed copies of each input:
``B`` samples times ``T`` steps. This module builds those copies lazily, chunk
by chunk, without ever copying the whole batch per step:

1. **Partition** the input into features (:func:`partition`): every element of
   ``x`` (``(B, C, *S)``) gets a feature id. Features are pixels (all channels
   of a position together), single elements (each channel value on its own),
   square patches on a grid, or the labels of a user-given segment map.
2. **Score and rank** the features once per sample (:func:`feature_attributions`,
   :func:`rank_features`): MoRF (most relevant first), LeRF (least relevant
   first) or a random order. Ties are broken by the lower feature id first
   (a stable sort), so results never depend on memory layout beyond that rule.
3. **Rank every element** (:func:`element_ranks`): the rank of the feature the
   element belongs to, a ``(B, 1|C, *S)`` integer tensor.
4. **Build and score** any set of perturbed inputs (:func:`perturbed_scores`):
   item ``(b, t)`` replaces the elements whose rank lies in ``[lo[b, t], hi[b, t])``
   by a substrate (:func:`make_baseline`, :func:`gaussian_blur`). Deletion of the
   first ``k`` features is ``[0, k)``; insertion of the first ``k`` features into
   a substrate is ``[k, F)``; perturbing only the ``t``-th group is
   ``[t * s, (t + 1) * s)``. All ``B * T`` items form one logical batch that
   goes through the model in chunks of at most ``max_batch_size`` images
   (:func:`xaiscore._engine.batching.chunked_map`); items are independent, so the
   result is the same for every chunk size.

Randomness comes only from an explicit ``torch.Generator``. Noise that must be
fresh per item (e.g. per repeat) comes from :func:`xaiscore._engine.random.counter_uniform`, a
counter-based generator: a pure function of a per-row key (drawn up front from
the generator) and the element index, so chunks of any size see the same noise
and nothing of size ``B * T * N`` is ever held in memory.

Example:
    >>> x = torch.arange(8.0).reshape(2, 1, 4)           # two 1-D "images"
    >>> a = torch.tensor([[[0.1, 0.9, 0.5, 0.3]], [[4.0, 3.0, 2.0, 1.0]]])
    >>> part = partition(x.shape, reduce_channels="sum")
    >>> ranks = rank_features(feature_attributions(a, part, reduce_channels="sum"), order="morf")
    >>> rank = element_ranks(ranks, part)
    >>> rank[:, 0].tolist()
    [[3, 0, 1, 2], [0, 1, 2, 3]]
    >>> apply_perturbation(x.clone(), rank, None, torch.tensor([2, 2]), torch.zeros(1)).tolist()
    [[[0.0, 0.0, 0.0, 3.0]], [[0.0, 0.0, 6.0, 7.0]]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from xaiscore._engine.batching import (
    ChunkBuffers,
    call_model,
    check_max_batch_size,
    chunked_map,
    class_scores,
)
from xaiscore._checks import (
    DTypeError,
    OptionError,
    ShapeError,
    check_fraction,
    check_option,
    check_positive_int,
    check_same_device,
    check_tensor,
)
from xaiscore._engine.incremental import incremental_builder
from xaiscore._engine.random import resolve_generator
from xaiscore._engine.reduction import ChannelReduction
from xaiscore._engine.reduction import reduce_channels as _reduce_channels
from xaiscore._engine.sorting import PACKABLE_DTYPES, sorted_packed_keys

__all__ = [
    "Order",
    "ORDERS",
    "BASELINES",
    "Partition",
    "partition",
    "grid_cells",
    "feature_attributions",
    "features_differ",
    "rank_features",
    "element_ranks",
    "make_baseline",
    "constant_or_baseline",
    "gaussian_blur",
    "rise_gaussian_kernel",
    "apply_perturbation",
    "perturbed_scores",
    "SparseSubstrate",
    "trapezoid",
]

Order = Literal["morf", "lerf", "random"]
ORDERS: tuple[str, ...] = ("morf", "lerf", "random")

#: Named baselines (substrates) understood by :func:`make_baseline`.
BASELINES: tuple[str, ...] = ("zeros", "min", "mean", "uniform", "blur")


class SparseSubstrate(NamedTuple):
    """A substrate given only where it is used: ``fn(sample, step) -> (elements, values)``.

    For the items ``(sample[i], step[i])`` of a chunk, ``elements`` ``(n, m)`` are flat element
    indices into ``x[sample[i]]`` (``C * prod(S)`` elements) and ``values`` ``(n, m)`` the substrate
    there. The caller guarantees that ``elements`` are exactly the elements of rank in
    ``[lo, hi)`` of the item (repeats allowed, with equal values): the item is then ``x`` with
    those elements overwritten, one copy and one scatter instead of a blend over whole images.
    """

    fn: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


Substrate = Tensor | float | Callable[[Tensor, Tensor], Tensor] | SparseSubstrate


# --- 1. partitions ---------------------------------------------------------------------------


class Partition(NamedTuple):
    """Which feature every element of the input belongs to.

    Attributes:
        ids: ``(B|1, 1|C, *S)`` long feature id per element (broadcasts against
            ``x``); a leading 1 means every sample shares the partition.
        n_features: ``F``, the number of feature slots (ids lie in ``[0, F)``).
        counts: ``(B|1,)`` long, the number of features each sample really has
            (``F`` except for segment maps whose samples have fewer segments).
            Slots ``>= counts[b]`` hold no element and are ranked last.
    """

    ids: Tensor
    n_features: int
    counts: Tensor


def grid_cells(spatial_shape: Sequence[int], patch_size: int,
               device: torch.device | None = None) -> tuple[Tensor, int]:
    """Label every position with its cell on a grid of ``patch_size``-sided cells.

    Each axis of size ``n`` is padded to a multiple of ``patch_size`` with the
    padding split evenly (the smaller half before), as Quantus' region metrics
    do, so border cells may be smaller. Cells are numbered in row-major order.

    Returns:
        ``(labels, n_cells)`` with ``labels`` of shape ``S`` (long).

    Example:
        >>> grid_cells((5,), 2)[0].tolist()  # padded to 6: none before, one after
        [0, 0, 1, 1, 2]
        >>> grid_cells((4, 4), 3)[0].tolist()  # padded to 6: one before, one after
        [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    """
    check_positive_int(patch_size, "patch_size")
    labels = torch.zeros((), dtype=torch.long, device=device)
    n_cells = 1
    for n in spatial_shape:
        remainder = n % patch_size
        before = (patch_size - remainder) // 2 if remainder else 0
        cells = -(-(n + (patch_size - remainder if remainder else 0)) // patch_size)
        index = (torch.arange(n, device=device) + before) // patch_size
        labels = labels.unsqueeze(-1) * cells + index
        n_cells *= cells
    return labels, n_cells


def partition(
    x_shape: Sequence[int],
    *,
    reduce_channels: ChannelReduction | None = "sum",
    patch_size: int | None = None,
    segments: Tensor | None = None,
    device: torch.device | None = None,
) -> Partition:
    """Partition inputs of shape ``x_shape = (B, C, *S)`` into features.

    Args:
        x_shape: Shape of the inputs.
        reduce_channels: ``None`` makes every channel value its own feature
            (``F = C * prod(S)``); any reduction makes every position a feature
            with all its channels (``F = prod(S)``). Ignored for patches and
            segments, which always span all channels.
        patch_size: Square (cubic) patches of this side on a grid (see
            :func:`grid_cells`).
        segments: ``(B, *S)`` integer label map; each distinct label of a
            sample is one feature. Labels are renumbered ``0 .. L_b - 1`` per
            sample in increasing label order (this reads the data: one host
            synchronisation, because ``F`` depends on it).
        device: Device of the ids (that of ``segments`` when given).

    Raises:
        OptionError: both ``patch_size`` and ``segments`` given.
        ShapeError, DTypeError: a malformed ``segments``.
    """
    b, c, *spatial = (int(v) for v in x_shape)
    if patch_size is not None and segments is not None:
        raise OptionError("Expected at most one of `patch_size` and `segments`, but got both.")
    if segments is not None:
        return _segment_partition(segments, b, tuple(spatial))
    if patch_size is not None:
        labels, n_cells = grid_cells(spatial, patch_size, device)
        ids = labels.reshape((1, 1) + tuple(spatial))
        return Partition(ids, n_cells, torch.full((1,), n_cells, dtype=torch.long, device=device))
    n_positions = math.prod(spatial)
    if reduce_channels is None:
        ids = torch.arange(c * n_positions, device=device).reshape((1, c) + tuple(spatial))
        n_features = c * n_positions
    else:
        ids = torch.arange(n_positions, device=device).reshape((1, 1) + tuple(spatial))
        n_features = n_positions
    return Partition(ids, n_features, torch.full((1,), n_features, dtype=torch.long, device=device))


def _segment_partition(segments: Tensor, batch_size: int, spatial: tuple[int, ...]) -> Partition:
    segments = check_tensor(segments, "segments")
    if segments.is_floating_point() or segments.is_complex() or segments.dtype == torch.bool:
        raise DTypeError(
            f"Expected `segments` to hold integer labels, but got dtype {segments.dtype}.")
    if tuple(segments.shape) != (batch_size,) + spatial:
        raise ShapeError(
            f"Expected `segments` of shape (B, *S) = {(batch_size,) + spatial}, but got "
            f"{tuple(segments.shape)}."
        )
    flat = segments.reshape(batch_size, -1).long()
    # Renumber per sample: unique (sample, label) pairs, sorted, give consecutive global ids.
    low = flat.amin()
    span = flat.amax() - low + 1
    keys = torch.arange(batch_size, device=flat.device).unsqueeze(1) * span + (flat - low)
    unique_keys, inverse = torch.unique(keys, return_inverse=True)
    owner = torch.div(unique_keys, span, rounding_mode="floor")
    counts = torch.bincount(owner, minlength=batch_size)
    first = torch.cumsum(counts, 0) - counts
    local = inverse - first.gather(
        0, torch.div(keys, span, rounding_mode="floor").reshape(-1)).reshape(inverse.shape)
    n_features = int(counts.max())
    return Partition(local.reshape((batch_size, 1) + spatial), n_features, counts)


# --- 2. feature scores and ranks -------------------------------------------------------------


def feature_attributions(
    a: Tensor,
    part: Partition,
    *,
    reduce_channels: ChannelReduction | None = "sum",
    aggregate: Literal["sum", "mean"] = "sum",
) -> Tensor:
    """Aggregate attributions ``a`` ``(B, 1|C, *S)`` per feature of ``part``: ``(B, F)``.

    For features that span all channels (pixels, patches, segments) the
    channels of ``a`` are first reduced with ``reduce_channels`` (``None`` means
    ``"sum"`` there); for element features a one-channel ``a`` is broadcast to
    every channel. Each feature's value is the ``"sum"`` or ``"mean"`` of its
    elements; empty feature slots get 0.

    Example:
        >>> a = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
        >>> part = partition(a.shape, patch_size=2)
        >>> feature_attributions(a, part).tolist()
        [[3.0, 7.0, 5.0]]
    """
    check_option(aggregate, "aggregate", ("sum", "mean"))
    ids = part.ids
    if ids.shape[1] == 1:
        a_map = _reduce_channels(a, reduce_channels if reduce_channels is not None else "sum")
    else:
        a_map = a.expand((a.shape[0], ids.shape[1]) + tuple(a.shape[2:]))
    b = a_map.shape[0]
    values = a_map.reshape(b, -1)
    index = ids.reshape(ids.shape[0], -1)
    sums = torch.zeros(b, part.n_features, dtype=values.dtype, device=values.device)
    sums.scatter_add_(1, index.expand(b, -1), values)
    if aggregate == "sum":
        return sums
    sizes = torch.zeros(index.shape[0], part.n_features, dtype=values.dtype, device=values.device)
    sizes.scatter_add_(1, index, torch.ones(index.shape, dtype=values.dtype, device=values.device))
    return sums / sizes.clamp(min=1)


def features_differ(x: Tensor, substrate: Tensor | float, part: Partition) -> Tensor:
    """``(B, F)`` bool: does replacing feature ``f`` of ``x[b]`` by the substrate change any value?

    A perturbation that changes nothing must leave the model's score exactly as it was; the
    model's own rounding can differ between batch sizes, so the kernels use this to keep such
    scores exact (a correlation over rounding noise would otherwise look like a signal).
    """
    differs = (x != substrate).to(x.dtype).expand_as(x)
    if part.ids.shape[1] == 1:  # a feature is a position with all its channels
        differs = differs.amax(dim=1, keepdim=True)
    return feature_attributions(differs, part, reduce_channels="sum") > 0


def rank_features(
    scores: Tensor,
    *,
    order: Order = "morf",
    counts: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Perturbation rank of every feature: ``(B, F)`` long, 0 = perturbed first.

    Args:
        scores: ``(B, F)`` feature attributions.
        order: ``"morf"`` (highest score first), ``"lerf"`` (lowest first) or
            ``"random"`` (a uniform random permutation per sample:
            ``torch.rand(B, F, generator=generator).argsort(1)`` on the
            generator's device). Ties go to the lower feature id first.
        counts: ``(B|1,)`` real feature counts; slots ``>= counts[b]`` are ranked last.
        generator: Only for ``"random"``; ``None`` draws a fresh OS-seeded generator.

    Example:
        >>> rank_features(torch.tensor([[0.5, 2.0, 0.5, -1.0]])).tolist()
        [[1, 0, 2, 3]]
        >>> rank_features(torch.tensor([[0.5, 2.0, 0.5, -1.0]]), order="lerf").tolist()
        [[1, 3, 2, 0]]
    """
    check_option(order, "order", ORDERS)
    b, n = scores.shape
    if order == "random":
        gen = resolve_generator(generator, None)
        key = torch.rand(b, n, generator=gen, device=gen.device,
                         dtype=torch.float64).to(scores.device)
    else:
        key = -scores if order == "morf" else scores
    if counts is not None:
        slot = torch.arange(n, device=scores.device).unsqueeze(0)
        key = torch.where(slot < counts.reshape(-1, 1), key, torch.full_like(key, math.inf))
    if key.dtype in PACKABLE_DTYPES and n < 2**31:
        # A stable sort by (value, feature id) as one int64 sort: 4x faster than torch's stable sort
        # on CPU.
        ordering = sorted_packed_keys(key, torch.arange(n, device=key.device), 32) & 0xFFFFFFFF
    else:
        ordering = torch.sort(key, dim=1, stable=True).indices
    ranks = torch.empty_like(ordering)
    ranks.scatter_(1, ordering, torch.arange(n, device=scores.device).expand(b, n))
    return ranks


def element_ranks(ranks: Tensor, part: Partition) -> Tensor:
    """The rank of each element's feature: ``(B, 1|C, *S)`` (int32 when it fits, else long)."""
    b = ranks.shape[0]
    ids = part.ids
    flat = ids.reshape(ids.shape[0], -1).expand(b, -1)
    out = ranks.gather(1, flat).reshape((b,) + tuple(ids.shape[1:]))
    return out.int() if part.n_features < 2**31 - 1 else out


# --- 3. substrates ---------------------------------------------------------------------------


def rise_gaussian_kernel(kernel_size: int = 11, sigma: float = 5.0, *,
                         dtype: torch.dtype = torch.float64) -> Tensor:
    """The 1-D factor of RISE's blur kernel (Petsiuk et al. 2018, ``gkern``).

    RISE builds its ``klen x klen`` kernel by Gaussian-filtering a centred unit
    impulse with ``scipy.ndimage.gaussian_filter(inp, sigma)`` (truncate 4,
    ``mode="reflect"``), so Gaussian mass beyond the window is reflected back
    in. The kernel is separable; this returns its 1-D factor (sums to 1).

    Example:
        >>> k = rise_gaussian_kernel(11, 5.0)
        >>> round(float(k.sum()), 12), k.shape
        (1.0, torch.Size([11]))
    """
    check_positive_int(kernel_size, "kernel_size")
    if kernel_size % 2 == 0:
        raise OptionError(f"Expected an odd `kernel_size`, but got {kernel_size}.")
    sigma = check_fraction(sigma, "sigma", high=math.inf, low_inclusive=False, high_inclusive=False)
    radius = int(4.0 * float(sigma) + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (offsets / float(sigma)) ** 2)
    weights = weights / weights.sum()
    centre = kernel_size // 2
    # Output i collects the weights of every offset j whose reflected source index i + j is the
    # impulse.
    source = torch.arange(kernel_size).unsqueeze(1) + offsets.long().unsqueeze(0)  # (k, 2r+1)
    period = 2 * kernel_size
    folded = torch.remainder(source, period)
    folded = torch.where(folded < kernel_size, folded, period - 1 - folded)
    kernel = (weights.unsqueeze(0) * (folded == centre)).sum(1)
    return kernel.to(dtype)


def gaussian_blur(x: Tensor, *, kernel_size: int = 11, sigma: float = 5.0) -> Tensor:
    """Blur every channel of ``x`` ``(B, C, *S)`` with RISE's Gaussian kernel, zero-padded.

    The kernel (:func:`rise_gaussian_kernel`) is applied along each spatial
    axis in turn with zero padding of ``kernel_size // 2``, which equals RISE's
    2-D convolution with ``padding=klen // 2`` (borders darken, as in RISE).

    Shape:
        - x: ``(B, C, *S)`` with 1 to 3 spatial axes; output: same.

    Example:
        >>> y = gaussian_blur(torch.ones(1, 1, 31, 31))
        >>> round(float(y[0, 0, 15, 15]), 6), float(y[0, 0, 0, 0]) < 0.5
        (1.0, True)
    """
    kernel = rise_gaussian_kernel(kernel_size, sigma, dtype=x.dtype).to(x.device).reshape(1, 1, -1)
    out = x
    for axis in range(2, x.ndim):
        moved = out.movedim(axis, -1)
        shape = moved.shape
        blurred = F.conv1d(moved.reshape(-1, 1, shape[-1]), kernel, padding=kernel_size // 2)
        out = blurred.reshape(shape).movedim(-1, axis)
    return out


def make_baseline(
    x: Tensor,
    baseline: str | float | Callable[[Tensor], Tensor] = "zeros",
    *,
    generator: torch.Generator | None = None,
    blur_kernel_size: int = 11,
    blur_sigma: float = 5.0,
) -> Tensor:
    """The substrate that perturbed elements take their values from, per sample.

    Args:
        x: Inputs ``(B, C, *S)``.
        baseline: One of

            * ``"zeros"``: 0 everywhere (RISE deletion; Quantus' ``0.0``).
            * a number: that constant.
            * ``"min"``: each sample's minimum over all its elements (Quantus'
              ``"black"``).
            * ``"mean"``: each sample's per-channel mean over positions (the
              image's mean colour).
            * ``"uniform"``: noise, i.i.d. uniform on ``[min(x_b), max(x_b)]``
              per element, drawn once per sample from ``generator`` (the same
              noise image at every step, so a deleted element keeps its value).
            * ``"blur"``: :func:`gaussian_blur` of ``x`` (RISE insertion).
            * a callable ``fn(x) -> Tensor`` broadcastable to ``x``.
        generator: Randomness for ``"uniform"`` (``None``: fresh OS-seeded).
        blur_kernel_size, blur_sigma: For ``"blur"``.

    Returns:
        A tensor broadcastable to ``x``: ``(B|1, C|1, *S|1...)``.

    Raises:
        OptionError: an unknown name. ShapeError: a callable's output does not broadcast.
    """
    if callable(baseline):
        out = baseline(x)
        out = check_tensor(out, "baseline(x)")
        try:
            torch.broadcast_shapes(out.shape, x.shape)
        except RuntimeError:
            raise ShapeError(
                f"Expected `baseline(x)` to broadcast to x {tuple(x.shape)}, but got "
                f"{tuple(out.shape)}."
            ) from None
        if out.ndim != x.ndim or torch.broadcast_shapes(out.shape, x.shape) != x.shape:
            raise ShapeError(
                f"Expected `baseline(x)` with {x.ndim} dimensions broadcasting to x "
                f"{tuple(x.shape)}, but got {tuple(out.shape)}."
            )
        return out.to(dtype=x.dtype, device=x.device)
    if isinstance(baseline, bool):
        raise DTypeError(
            "Expected `baseline` to be a name, a number or a callable, but got a bool.")
    if isinstance(baseline, (int, float)):
        return torch.full((1,) * x.ndim, float(baseline), dtype=x.dtype, device=x.device)
    check_option(baseline, "baseline", BASELINES)
    dims = tuple(range(1, x.ndim))
    if baseline == "zeros":
        return torch.zeros((1,) * x.ndim, dtype=x.dtype, device=x.device)
    if baseline == "min":
        return x.amin(dim=dims, keepdim=True)
    if baseline == "mean":
        return x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)
    if baseline == "uniform":
        gen = resolve_generator(generator, None)
        noise = torch.rand(x.shape, generator=gen, device=gen.device, dtype=x.dtype).to(x.device)
        low, high = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
        return low + noise * (high - low)
    return gaussian_blur(x, kernel_size=blur_kernel_size, sigma=blur_sigma)


# --- 4. building and scoring perturbed inputs ------------------------------------------------


def constant_or_baseline(
    x: Tensor,
    baseline: str | float | Callable[[Tensor], Tensor],
    *,
    generator: torch.Generator | None = None,
    blur_kernel_size: int = 11,
    blur_sigma: float = 5.0,
) -> Tensor | float:
    """:func:`make_baseline`, except that ``"zeros"`` and numbers stay Python floats.

    :func:`perturbed_scores` builds constant substrates with fewer passes over the data.
    """
    if isinstance(baseline, str) and baseline == "zeros":
        return 0.0
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return float(baseline)
    return make_baseline(x, baseline, generator=generator, blur_kernel_size=blur_kernel_size,
                         blur_sigma=blur_sigma)


def apply_perturbation(x: Tensor, rank: Tensor, lo: Tensor | None, hi: Tensor | None,
                       substrate: Tensor) -> Tensor:
    """``x`` with the elements whose rank lies in ``[lo, hi)`` replaced by ``substrate``.

    Args:
        x: ``(n, C, *S)`` inputs, one per item. Overwritten in place when the
            substrate is a single value (pass a copy, e.g. a gathered chunk).
        rank: ``(n, 1|C, *S)`` element ranks.
        lo, hi: ``(n,)`` integer bounds per item; ``None`` means no lower
            (upper) bound, which saves a comparison pass.
        substrate: broadcastable to ``x``.
    """
    view = (-1,) + (1,) * (x.ndim - 1)
    if lo is None and hi is None:
        inside = torch.ones_like(rank, dtype=torch.bool)
    elif lo is None:
        inside = rank < hi.reshape(view).to(rank.dtype)
    elif hi is None:
        inside = rank >= lo.reshape(view).to(rank.dtype)
    else:
        inside = (rank >= lo.reshape(view).to(rank.dtype)) & (
            rank < hi.reshape(view).to(rank.dtype))
    if substrate.numel() == 1:
        return x.masked_fill_(inside, substrate.reshape(()).to(x.dtype))
    return torch.where(inside, substrate, x)


def perturbed_scores(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    rank: Tensor,
    target: Tensor,
    lo: Tensor | None,
    hi: Tensor | None,
    *,
    substrate: Substrate,
    softmax: bool,
    max_batch_size: int,
) -> Tensor:
    """Score the target class on every perturbed item ``(b, t)``: ``(B, T)``.

    Item ``(b, t)`` is ``x[b]`` with the elements of rank in
    ``[lo[b, t], hi[b, t])`` taken from the substrate. Items are ordered step
    by step (flat index ``t * B + b``), so a chunk of at most ``max_batch_size``
    images covers at most three rectangular pieces (steps x consecutive
    samples): each is built from the rank *slices* and the bounds by a few
    float passes (a 0/1 weight ``keep``) and one ``torch.lerp(fill, x, keep)``
    into the chunk's buffer, with no gather of ``x`` or of the ranks. The
    images are exact (kept elements equal ``x``, perturbed ones the
    substrate, bit for bit) as long as ``x - substrate`` is finite, i.e. for
    float32 values below about 1e38 in magnitude. Chunks go through
    ``forward_fn`` under ``torch.inference_mode()``.

    On CPU, when consecutive steps of a sample (or each item and ``x``) differ in few elements,
    a constant or tensor substrate is applied by rewriting only those elements of a kept image per
    sample (:mod:`xaiscore._engine.incremental`), with the same images bit for bit. Buffers are
    reused between chunks, so ``forward_fn`` must not keep a reference to its input after returning;
    a ``forward_fn`` that writes into its input is detected and handled (the images stay correct).

    Args:
        forward_fn: Model returning logits ``(n, K)``.
        x: ``(B, C, *S)`` inputs.
        rank: ``(B|1, 1|C, *S)`` element ranks (:func:`element_ranks`).
        target: ``(B,)`` long class per sample.
        lo, hi: ``(B, T)`` or ``(T,)`` integer bounds; one of them may be
            ``None`` (no bound on that side: ``lo=None`` deletes the first
            ``hi`` features, ``hi=None`` keeps only the first ``lo``).
        substrate: A number (a constant; ``0.0`` is the fastest path), a
            tensor broadcastable to ``x`` with a batch axis of 1 or ``B``
            (:func:`make_baseline`), a callable
            ``fn(sample, step) -> (n, C|1, *S)`` for the items
            ``(sample[i], step[i])`` of a chunk, e.g. noise from
            :func:`xaiscore._engine.random.counter_uniform`, or a :class:`SparseSubstrate` giving
            values only at the perturbed elements. It must depend on the item only.
        softmax: Score probabilities instead of logits.
        max_batch_size: Most images per model call.

    Returns:
        ``(B, T)`` scores in the dtype of the model output.
    """
    check_max_batch_size(max_batch_size)
    b = x.shape[0]
    given = [t for t in (lo, hi) if t is not None]
    if not given:
        raise OptionError("Expected at least one of `lo` and `hi`, but got neither.")
    n_steps = given[0].shape[-1]
    for bound in given:
        if bound.ndim not in (1, 2) or bound.shape[-1] != n_steps or (bound.ndim == 2
                                                                      and bound.shape[0] != b):
            shapes = ", ".join(str(tuple(t.shape)) for t in given)
            raise ShapeError(f"Expected `lo` and `hi` of shape ({b}, T) or (T,), but got {shapes}.")
    if isinstance(substrate, bool):
        raise DTypeError(
            "Expected `substrate` to be a number, a tensor or a callable, but got a bool.")
    if isinstance(substrate, Tensor):
        check_same_device(x, substrate, reference_name="x", other_name="substrate")
    spatial_ones = (1,) * (x.ndim - 1)
    # Ranks and bounds as floats: the mask is built by float arithmetic (exact for integers below
    # 2**24 in float32), which vectorizes far better on CPU than torch.where with a bool condition.
    n_ranks = rank.shape[1:].numel()
    mask_dtype = x.dtype if x.dtype == torch.float64 or (x.dtype == torch.float32
                                                         and n_ranks < 2**24) \
        else (torch.float32 if n_ranks < 2**24 else torch.float64)
    rank_float: list[Tensor] = []  # made on first use: the sparse path never needs it

    def bound_piece(bound: Tensor | None, t0: int, t1: int, b0: int, b1: int) -> Tensor | None:
        if bound is None:
            return None
        piece = (bound[t0:t1].unsqueeze(1) if bound.ndim == 1
                 else bound[b0:b1, t0:t1].transpose(0, 1))
        return piece.reshape((t1 - t0, -1) + spatial_ones).to(mask_dtype)  # (kt, kb|1, 1, ...)

    def piece_items(t0: int, t1: int, b0: int, b1: int) -> tuple[Tensor, Tensor]:
        """``(sample, step)`` of the items of a piece, step-major like the chunk."""
        samples = torch.arange(b0, b1, device=x.device).repeat(t1 - t0)
        return samples, torch.arange(t0, t1, device=x.device).repeat_interleave(b1 - b0)

    zero_substrate = isinstance(substrate, (int, float)) and substrate == 0
    constant_fill = (torch.full((1,) * x.ndim, float(substrate), dtype=x.dtype, device=x.device)
                     if isinstance(substrate, (int, float)) else None)

    def build(out: Tensor, t0: int, t1: int, b0: int, b1: int) -> None:
        kt, kb = t1 - t0, b1 - b0
        view = out.view((kt, kb) + tuple(x.shape[1:]))
        if isinstance(substrate, SparseSubstrate):
            elements, values = substrate.fn(*piece_items(t0, t1, b0, b1))
            view.copy_(x[b0:b1].unsqueeze(0).expand_as(view))
            out.view(kt * kb, -1).scatter_(1, elements, values.to(x.dtype))
            return
        if not rank_float:
            rank_float.append(rank.to(mask_dtype))
        rank_f = rank_float[0]
        r = (rank_f[b0:b1] if rank_f.shape[0] == b else rank_f).unsqueeze(0)
        low, high = bound_piece(lo, t0, t1, b0, b1), bound_piece(hi, t0, t1, b0, b1)
        # keep = 1 outside [lo, hi) and 0 inside, from float arithmetic on integer ranks:
        # r >= hi <=> r - (hi - 1) >= 1, r < lo <=> lo - r >= 1, and both at once
        # <=> |r - mid| - half >= 1 with mid = (lo + hi - 1) / 2, half = (hi - 1 - lo) / 2.
        if low is None:
            keep = torch.sub(r, high - 1).clamp_(0, 1)
        elif high is None:
            keep = torch.sub(low, r).clamp_(0, 1)
        else:
            keep = torch.sub(r, (low + high - 1) * 0.5).abs_().sub_((high - 1 - low) * 0.5).clamp_(
                0, 1)
        keep = keep.to(x.dtype)
        if zero_substrate:
            torch.mul(x[b0:b1], keep, out=view)  # exact: x * 1 == x, x * 0 == 0
            return
        if constant_fill is not None:
            fill = constant_fill
        elif isinstance(substrate, Tensor):
            fill = substrate[b0:b1] if substrate.shape[0] == b and b > 1 else substrate
        else:
            fill = substrate(*piece_items(t0, t1, b0, b1)).reshape((kt, kb) + tuple(x.shape[1:]))
        # One pass; torch.lerp is exact at weights 0 and 1 (start + 0 * d, end - d * 0), so kept
        # elements equal x and perturbed ones the fill bit for bit while x - fill is finite.
        torch.lerp(fill, x[b0:b1], keep, out=view)

    # On CPU, items that differ from the previous step of their sample (or from x) in few elements
    # are built by rewriting only those elements (xaiscore._engine.incremental); the images are the
    # same.
    builder = None if callable(substrate) or isinstance(substrate, SparseSubstrate) \
        else incremental_builder(x, rank, lo, hi, substrate)

    buffers = ChunkBuffers()
    # Under the caller's inference mode the builder's state is an inference tensor, which has no
    # version counter to tell whether the model wrote into it: build into the chunk buffer then.
    in_state = builder is not None and not torch.is_inference_mode_enabled()

    def compute(start: int, stop: int) -> Tensor:
        t_first, b_first = divmod(start, b)
        t_last, b_last = divmod(stop - 1, b)
        if t_first == t_last:
            pieces = [(t_first, t_first + 1, b_first, b_last + 1)]
        else:
            pieces = [(t_first, t_first + 1, b_first, b)]
            if t_last > t_first + 1:
                pieces.append((t_first + 1, t_last, 0, b))
            pieces.append((t_last, t_last + 1, 0, b_last + 1))
        plans = [builder.plan(*pieces[0], in_place=True)] if in_state and len(pieces) == 1 else []
        state_rows = (builder.build_in_state(plans[0], *pieces[0]) if plans and plans[0] is not None
                      else None)
        if state_rows is not None:  # one step of consecutive samples: the state's rows themselves
            version = state_rows._version
            logits = call_model(forward_fn, state_rows)
            if state_rows._version != version:  # the model wrote into its input: rebuild those rows
                builder.reset(pieces[0][2], pieces[0][3])
        else:
            # One buffer for every chunk: no fresh pages to fault in per chunk.
            images = buffers.get("images", (stop - start,) + tuple(x.shape[1:]), x.dtype, x.device)
            offset = 0
            for index, (t0, t1, b0, b1) in enumerate(pieces):
                size = (t1 - t0) * (b1 - b0)
                piece = images[offset:offset + size]
                plan = plans[index] if plans else \
                    builder.plan(t0, t1, b0, b1, in_place=False) if builder is not None else None
                if plan is not None:
                    builder.build(plan, piece, t0, t1, b0, b1)
                else:
                    build(piece, t0, t1, b0, b1)
                    if builder is not None:
                        builder.adopt(piece, t0, t1, b0, b1)
                offset += size
            logits = call_model(forward_fn, images)
        return class_scores(logits, item_targets[start:stop], softmax=softmax)

    item_targets = target.repeat(n_steps)  # step-major items: item t * B + i scores target[i]
    scores = chunked_map(b * n_steps, compute, max_batch_size=max_batch_size)
    return scores.reshape(n_steps, b).transpose(0, 1).contiguous()


# --- curve helpers ---------------------------------------------------------------------------


def trapezoid(y: Tensor, x: Tensor) -> Tensor:
    """Trapezoid-rule area under each row of ``y`` ``(B, T)`` over positions ``x`` ``(T,)`` or
    ``(B, T)``.

    NaN entries of ``y`` propagate (a curve with a NaN has no area).

    Example:
        >>> trapezoid(torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0.0, 0.5, 1.0])).tolist()
        [0.25]
    """
    dx = x[..., 1:] - x[..., :-1]
    return ((y[:, 1:] + y[:, :-1]) * 0.5 * dx).sum(1)
