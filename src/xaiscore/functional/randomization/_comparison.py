"""How the randomization kernels compare maps: post-processing, similarities, the random baseline.

Private to :mod:`xaiscore.functional.randomization`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import Tensor

from xaiscore._checks import DTypeError, OptionError, check_option
from xaiscore._engine.reduction import flatten_features, normalise_by_max
from xaiscore._engine.reduction import reduce_channels as _reduce_channels
from xaiscore.functional._common import unit_rank_vectors, unit_rank_vectors_of_levels
from xaiscore.functional.similarity import SIMILARITIES, SimilarityFn, spearman_of_unit_ranks


def _unit_ranks(a: Tensor) -> Tensor:
    """Centred average ranks per sample scaled to unit length (float64; NaN rows for constant or NaN
    maps)."""
    return unit_rank_vectors(flatten_features(a))


class _Comparison:
    """A similarity split into a per-map ``prepare`` step and a ``compare`` step.

    MPRT compares one original map with every randomized one; preparing it once
    (for Spearman: ranking it) saves a rank computation per layer. The result is
    that of the similarity function (for Spearman up to float64 rounding); callers
    cast it to the dtype of the maps.
    """

    def __init__(self, similarity: str | SimilarityFn, kwargs: Mapping[str, Any] | None) -> None:
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise DTypeError(
                "Expected `similarity_kwargs` to be a mapping of keyword options, but got "
                f"{type(kwargs).__name__}."
            )
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
            function = SIMILARITIES[similarity]
            # "ssim_flat" forwards its keywords to ssim (with flatten=True).
            accepted = set(
                inspect.signature(SIMILARITIES["ssim"] if similarity == "ssim_flat" else function)
                .parameters) - {"a", "b", "validate",
                                "flatten" if similarity == "ssim_flat" else ""}
            unknown = sorted(set(kwargs) - accepted)
            if unknown:
                raise OptionError(
                    f"Expected `similarity_kwargs` among {sorted(accepted)} for "
                    f"similarity={similarity!r}, but got {unknown}."
                )
            self.compare = partial(function, validate=False, **kwargs)

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        return self.compare(self.prepare(a), self.prepare(b)).to(a.dtype)


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
        return torch.randint(0, self.LEVELS, like.shape, generator=self.generator,
                             device=self.device,
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
    return (flatten_features(levels.sum(dim=1, dtype=torch.int32)),
            channels * (_RandomMaps.LEVELS - 1) + 1)


def _prepared_random_map(random: _RandomMaps, like: Tensor, similarity: _Comparison,
                         post: _PostProcess) -> Tensor:
    """A fresh random map shaped as ``like``, post-processed and prepared for ``similarity``.

    Spearman on float32/float64 maps ranks the levels by counting
    (:func:`unit_rank_vectors_of_levels`, no sort; exactly the ranks of the post-processed values),
    when the range of the levels is at most a few times the number of features; otherwise the values
    go through ``post`` and the similarity's own preparation.
    """
    levels = random.levels(like)
    if similarity.ranks_only and like.dtype in (torch.float32, torch.float64):
        reduced = _reduced_levels(levels, post.reduce_channels)
        if reduced is not None and reduced[1] <= _COUNTING_RANGE_PER_FEATURE * reduced[0].shape[1]:
            return unit_rank_vectors_of_levels(*reduced)
    return similarity.prepare(post(random.values(levels, like.dtype)))

