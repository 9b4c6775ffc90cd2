"""Noise drawn in blocks, and explanations of perturbed copies computed in chunks.

Shared by the metrics that re-explain perturbed inputs (robustness; smooth
MPRT averages explanations over noisy inputs). The logical batch has
``B * n`` *items*, one per (sample, perturbation) pair, in **sample-major**
order: item ``k`` is perturbation ``k % n`` of sample ``k // n``.

* :class:`BlockNoise` returns the noise of items ``start .. stop - 1``. The
  noise is drawn in fixed blocks of :data:`NOISE_BLOCK_ITEMS` items, each from
  its own generator seeded up front from the caller's ``generator``, so the
  values depend on the seed and the item index only, never on how a metric
  chunks its work (``max_batch_size``), and the full ``(B, n, C, *S)`` noise
  tensor is never materialised.
* :func:`perturbed_statistics` runs the chunk loop: it builds the perturbed
  inputs of a chunk, explains them with one ``explain_fn`` call (and, if
  asked, runs the model on them under ``torch.inference_mode()``), checks the
  explanations' shape, and reduces each item to a few numbers with a
  caller-supplied ``statistic``; only those numbers are kept.

Nothing here synchronises with the host per chunk: non-finite explanations
are counted on the device and reported once at the end.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from xaiscore._engine.batching import (
    ModelOutputError,
    call_model,
    check_logits,
    check_max_batch_size,
    chunked_map,
)
from xaiscore._checks import NonFiniteError, OptionError, ShapeError, check_fraction
from xaiscore._engine.explain_fn import check_explanation
from xaiscore._engine.threads import run_concurrently

__all__ = [
    "NOISE_BLOCK_ITEMS",
    "NoiseKind",
    "BlockNoise",
    "Chunk",
    "perturbed_statistics",
    "check_noise_options",
]

#: Items per noise block: fixed, so that noise never depends on ``max_batch_size``.
NOISE_BLOCK_ITEMS = 32

NoiseKind = Literal["uniform", "gaussian"]


def check_noise_options(noise: str, radius: float,
                        bounds: tuple[float, float] | None) -> tuple[float, float]:
    """Validate noise options and return ``(low, high)`` for uniform or ``(0, std)`` for Gaussian
    noise.

    Uniform noise is drawn on ``[-radius, radius]`` (the L-infinity ball of
    that radius) unless ``bounds=(low, high)`` is given; Gaussian noise has
    mean 0 and standard deviation ``radius``.
    """
    if noise not in ("uniform", "gaussian"):
        raise OptionError(
            f"Expected `noise` to be one of 'uniform', 'gaussian', but got {noise!r}.")
    radius = check_fraction(radius, "radius", high=math.inf, high_inclusive=False)
    if bounds is None:
        return (-radius, radius) if noise == "uniform" else (0.0, radius)
    if noise != "uniform":
        raise OptionError(
            "Expected `noise_bounds` only with noise='uniform', but got noise='gaussian'.")
    if not isinstance(bounds, Sequence) or len(bounds) != 2:
        raise OptionError(f"Expected `noise_bounds` as a pair (low, high), but got {bounds!r}.")
    low, high = (check_fraction(v, "noise_bounds", low=-math.inf, high=math.inf,
                                low_inclusive=False,
                                high_inclusive=False) for v in bounds)
    if not low <= high:
        raise OptionError(f"Expected `noise_bounds` with low <= high, but got ({low}, {high}).")
    return low, high


class BlockNoise:
    """Noise for ``n_items`` items of shape ``item_shape``, reproducible under any chunking.

    Args:
        n_items: Size of the logical batch.
        item_shape: Shape of one item's noise, e.g. ``(C, *S)``.
        kind: ``"uniform"`` on ``[low, high)`` or ``"gaussian"`` with mean
            ``low`` and standard deviation ``high`` (see :func:`check_noise_options`).
        low, high: The distribution's parameters.
        generator: Source of the block seeds (drawn once, up front).
        device, dtype: Where the noise lives and its dtype (the inputs'); the random
            numbers are drawn in float32 and cast, so float32 and float64 inputs
            see the same noise.

    Example:
        >>> noise = BlockNoise(5, (2,), kind="uniform", low=-1.0, high=1.0,
        ...                    generator=torch.Generator().manual_seed(0))
        >>> whole = noise(0, 5)
        >>> torch.equal(torch.cat([noise(0, 2), noise(2, 3), noise(3, 5)]), whole)
        True
    """

    def __init__(self, n_items: int, item_shape: Sequence[int], *, kind: NoiseKind, low: float,
                 high: float,
                 generator: torch.Generator, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.n_items = n_items
        self.item_shape = tuple(item_shape)
        self.kind = kind
        self.low = low
        self.high = high
        self.device = torch.device(device)
        self.dtype = dtype
        n_blocks = -(-n_items // NOISE_BLOCK_ITEMS)
        # One host read, up front: the per-block seeds.
        self._seeds = torch.randint(0, 2**62, (n_blocks,), generator=generator,
                                    device=generator.device).tolist()
        self._cached: tuple[int, Tensor] | None = None

    def _block(self, index: int) -> Tensor:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        size = min(NOISE_BLOCK_ITEMS, self.n_items - index * NOISE_BLOCK_ITEMS)
        block_generator = torch.Generator(device=self.device).manual_seed(self._seeds[index])
        shape = (size,) + self.item_shape
        # Drawn in float32 whatever the output dtype, so that float32 and float64 runs see the same
        # noise.
        values = torch.empty(shape, device=self.device, dtype=torch.float32)
        if self.kind == "uniform":
            values.uniform_(self.low, self.high, generator=block_generator)
        else:
            values.normal_(self.low, self.high, generator=block_generator)
        values = values.to(self.dtype)
        self._cached = (index, values)
        return values

    def _fill(self, out: Tensor, index: int) -> None:
        """Draw block ``index`` straight into ``out`` (its exact size), without caching it."""
        block_generator = torch.Generator(device=self.device).manual_seed(self._seeds[index])
        target = out if self.dtype == torch.float32 else torch.empty(out.shape, device=self.device,
                                                                      dtype=torch.float32)
        if self.kind == "uniform":
            target.uniform_(self.low, self.high, generator=block_generator)
        else:
            target.normal_(self.low, self.high, generator=block_generator)
        if target is not out:
            out.copy_(target)

    def fill(self, out: Tensor, *, workers: int = 1) -> Tensor:
        """Draw the noise of every item into ``out`` ``(n_items, *item_shape)``; equal to
        ``self(0, n_items)``.

        With ``workers > 1`` (CPU only) the blocks are drawn on that many
        threads: each block has its own generator, so the values are the same.
        """
        expected = (self.n_items,) + self.item_shape
        if tuple(out.shape) != expected:
            raise ShapeError(f"Expected `out` of shape {expected}, but got {tuple(out.shape)}.")
        n_blocks = len(self._seeds)

        def draw(index: int) -> Callable[[], None]:
            return lambda: self._fill(
                out[index * NOISE_BLOCK_ITEMS: (index + 1) * NOISE_BLOCK_ITEMS], index)

        run_concurrently([draw(index) for index in range(n_blocks)],
                         workers=workers if self.device.type == "cpu" else 1)
        return out

    def add_to(self, x: Tensor, start: int, stop: int) -> Tensor:
        """``x + noise(start, stop)`` as a new tensor, drawing whole blocks in place (fewer passes).

        Equal to ``x + self(start, stop)``.
        """
        out = torch.empty((stop - start,) + self.item_shape, device=self.device, dtype=self.dtype)
        whole_blocks = []
        for index in range(start // NOISE_BLOCK_ITEMS, (stop - 1) // NOISE_BLOCK_ITEMS + 1):
            offset = index * NOISE_BLOCK_ITEMS
            size = min(NOISE_BLOCK_ITEMS, self.n_items - offset)
            lo, hi = max(start, offset), min(stop, offset + size)
            if lo == offset and hi == offset + size:
                whole_blocks.append((out[lo - start: hi - start], index))
            else:
                out[lo - start: hi - start].copy_(self._block(index)[lo - offset: hi - offset])
        # Whole blocks straight into `out`, on several threads on CPU (torch draws serially).
        run_concurrently([partial(self._fill, view, index) for view, index in whole_blocks],
                         workers=None if self.device.type == "cpu" else 1)
        return out.add_(x)

    def __call__(self, start: int, stop: int) -> Tensor:
        """The noise of items ``start .. stop - 1``, shape ``(stop - start, *item_shape)``."""
        first, last = start // NOISE_BLOCK_ITEMS, (stop - 1) // NOISE_BLOCK_ITEMS
        parts = []
        for index in range(first, last + 1):  # a loop over a few fixed-size blocks
            offset = index * NOISE_BLOCK_ITEMS
            block = self._block(index)
            parts.append(block[max(start - offset, 0): min(stop - offset, block.shape[0])])
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class Chunk(NamedTuple):
    """What :func:`perturbed_statistics` hands the ``statistic`` for items ``start .. stop - 1``.

    Attributes:
        start, stop: The item range.
        rows: ``(m,)`` long, the sample index of each item (``item // n``).
        steps: ``(m,)`` long, the perturbation index of each item (``item % n``).
        x: ``(m, C, *S)`` the unperturbed inputs of those samples (``None`` when
            :func:`perturbed_statistics` was called with ``gather_inputs=False``).
        x_perturbed: ``(m, C, *S)`` the perturbed inputs.
        a_perturbed: ``(m, C', *S)`` their explanations.
        logits: ``(m, K)`` the model's outputs on ``x_perturbed``, or ``None``.
    """

    start: int
    stop: int
    rows: Tensor
    steps: Tensor
    x: Tensor | None
    x_perturbed: Tensor
    a_perturbed: Tensor
    logits: Tensor | None


@dataclass
class _FiniteTracker:
    count: Tensor | None = None  # a bool scalar on the device: did any explanation hold NaN or inf?

    def add(self, values: Tensor) -> None:
        # One pass, no host sync: min and max propagate NaN and are infinite iff some value is.
        low, high = torch.aminmax(values)
        bad = ~(torch.isfinite(low) & torch.isfinite(high))
        self.count = bad if self.count is None else self.count | bad

    def check(self, name: str) -> None:
        if self.count is not None and bool(self.count):
            raise NonFiniteError(
                f"Expected `{name}` to return finite attributions, but got NaN or infinite values "
                "on the perturbed inputs."
            )


@dataclass
class _NanTracker:
    seen: Tensor | None = None  # a bool scalar on the device: did any logit hold NaN?

    def add(self, values: Tensor) -> None:
        bad = torch.isnan(values).any()
        self.seen = bad if self.seen is None else self.seen | bad

    def check(self, name: str) -> None:
        if self.seen is not None and bool(self.seen):
            raise NonFiniteError(
                f"Expected `{name}` to return finite logits, but got NaN on the perturbed inputs. "
                "Check the model on perturbed inputs (e.g. overflow)."
            )


def _shared_model_call(explain_fn: Any, forward_fn: Any) -> tuple[Callable[..., Any],
                                                                  Callable[[], Any]] | None:
    """``explain_fn.explain_with_output`` and a recording context, when it runs the very model
    ``forward_fn`` calls.

    Two cases qualify: ``forward_fn`` *is* the explainer's ``model``, or it declares
    ``recording_model_calls`` (a context in which it records the model's calls, e.g. layer
    outputs, as its own call would) and wraps that same ``model``.
    """
    joint = getattr(explain_fn, "explain_with_output", None)
    model = getattr(explain_fn, "model", None)
    if joint is None or model is None or forward_fn is None or not getattr(explain_fn,
                                                                           "shares_forward", True):
        return None
    if forward_fn is model:
        return joint, contextlib.nullcontext
    recording = getattr(forward_fn, "recording_model_calls", None)
    if recording is not None and getattr(forward_fn, "model", None) is model:
        return joint, recording
    return None


def perturbed_statistics(
    explain_fn: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    target: Tensor,
    *,
    n_perturbations: int,
    perturb: Callable[[Tensor | None, int, int, Tensor], Tensor],
    statistic: Callable[[Chunk], Tensor],
    max_batch_size: int,
    forward_fn: Callable[[Tensor], Tensor] | None = None,
    explanation_shape: Sequence[int] | None = None,
    validate: bool = True,
    name: str = "explain_fn",
    gather_inputs: bool = True,
    model_name: str = "forward_fn",
) -> Tensor:
    """Explain ``n_perturbations`` perturbed copies of every sample in chunks and reduce each to
    statistics.

    For items ``k = i * n + j`` (sample ``i``, perturbation ``j``) in chunks of
    at most ``max_batch_size``: ``x_perturbed = perturb(x[rows], start, stop,
    steps)``, ``a_perturbed = explain_fn(x_perturbed, target[rows])`` (called
    with gradients allowed), ``logits = forward_fn(x_perturbed)`` under
    ``torch.inference_mode()`` if a ``forward_fn`` is given, then
    ``statistic(chunk)`` returns ``(m, ...)`` per-item values.

    When ``forward_fn`` is the model of an explainer with ``explain_with_output`` (the
    gradient methods of :func:`xaiscore.explainers.captum_explainer`), the logits come from the
    explanation's own forward pass, and ``forward_fn`` is called only when that method could
    not hand them out: one model call less per item.

    Args:
        explain_fn: The batched explain function.
        x: ``(B, C, *S)`` inputs; target: ``(B,)`` long.
        n_perturbations: ``n``, the copies per sample.
        perturb: Builds the perturbed inputs of a chunk from the unperturbed
            rows, the item range and the perturbation indices.
        statistic: Reduces a :class:`Chunk` to ``(m, ...)`` values.
        max_batch_size: The most items per ``explain_fn``/``forward_fn`` call.
        forward_fn: Also run the model on the perturbed inputs.
        explanation_shape: The shape every explanation must have, ``(C', *S)``
            (default: what :func:`xaiscore.explainers.check_explanation` allows).
        validate: Check at the end that every explanation was finite and no logit was NaN
            (one host read).
        name: The explain function's name in error messages.
        gather_inputs: Copy the unperturbed rows ``x[rows]`` of each chunk for
            ``perturb`` and the statistic; ``False`` passes ``None`` instead (for
            perturbations that do not read them, e.g. precomputed inputs).
        model_name: The model's name in error messages.

    Returns:
        ``(B, n, ...)``: the statistics, sample-major.

    Raises:
        ModelOutputError: an explanation (or model output) of the wrong shape.
        NonFiniteError: a NaN or infinite explanation, or a NaN logit (only when ``validate``).
    """
    check_max_batch_size(max_batch_size)
    batch = x.shape[0]
    n = n_perturbations
    tracker = _FiniteTracker()
    logit_tracker = _NanTracker()
    expected = None if explanation_shape is None else tuple(explanation_shape)
    shared = _shared_model_call(explain_fn, forward_fn)

    def compute(start: int, stop: int) -> Tensor:
        items = torch.arange(start, stop, device=x.device)
        rows = torch.div(items, n, rounding_mode="floor")
        steps = items - rows * n
        # Advanced indexing: index_select is ~40x slower on CPU for 4-D tensors.
        x_rows = x[rows] if gather_inputs else None
        x_perturbed = perturb(x_rows, start, stop, steps)
        logits = None
        if shared is not None:
            explain_with_output, recording = shared
            with torch.enable_grad(), recording():
                a_perturbed, logits = explain_with_output(x_perturbed, target[rows])
        else:
            with torch.enable_grad():  # gradient explainers work even when the caller disabled grad
                a_perturbed = explain_fn(x_perturbed, target[rows])
        a_perturbed = (
            check_explanation(a_perturbed, x_perturbed, name=name, validate=False).detach())
        if expected is not None and tuple(a_perturbed.shape[1:]) != expected:
            raise ModelOutputError(
                f"Expected `{name}` to return attributions of shape (n, "
                f"{', '.join(map(str, expected))}) like `a`, but got {tuple(a_perturbed.shape)}."
            )
        if validate:
            tracker.add(a_perturbed)
        if logits is not None:
            logits = check_logits(logits, x_perturbed, name=model_name)
        elif forward_fn is not None:
            logits = call_model(forward_fn, x_perturbed, name=model_name)
        if validate and logits is not None:
            logit_tracker.add(logits)
        return statistic(Chunk(start, stop, rows, steps, x_rows, x_perturbed, a_perturbed, logits))

    out = chunked_map(batch * n, compute, max_batch_size=max_batch_size)
    if validate:
        tracker.check(name)
        logit_tracker.check(model_name)
    return out.reshape((batch, n) + tuple(out.shape[1:]))
