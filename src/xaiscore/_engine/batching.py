"""Chunked model and explainer calls under a ``max_batch_size`` memory budget.

A metric that perturbs ``B`` samples at ``T`` steps has a *logical batch* of
``B * T`` items. It never materialises that batch: it hands
:func:`chunked_map` a ``compute(start, stop)`` callable that builds items
``start .. stop - 1`` (flat index ``i = sample * T + step``, or any order the
metric documents), runs the model on them and returns per-item results (e.g.
the target-class score). :func:`chunked_map` calls it on consecutive chunks of
at most ``max_batch_size`` items and concatenates the results, so the result
does not depend on the chunk size as long as ``compute`` treats items
independently (draw any randomness up front, not per chunk).

``max_batch_size`` is a positive ``int`` (the most items per chunk), ``"auto"``, a byte
budget such as ``"2GB"``, or both (``"auto:2GB"``); see :func:`check_max_batch_size` and
:mod:`xaiscore._engine.auto_batch` for how the chunk size is then chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from xaiscore._checks import DTypeError, NonFiniteError, OptionError, ShapeError, XaiscoreError
from xaiscore._engine.auto_batch import BatchPolicy, adaptive_chunks, parse_batch_policy

__all__ = [
    "ModelOutputError",
    "BatchPolicy",
    "check_max_batch_size",
    "check_items_per_call",
    "chunked_map",
    "call_model",
    "class_scores",
    "ChunkBuffers",
]


class ModelOutputError(XaiscoreError, ValueError):
    """A ``forward_fn`` or ``explain_fn`` returned something of the wrong shape or with NaN."""


def check_items_per_call(max_batch_size: object) -> int:
    """Raise unless ``max_batch_size`` is a positive ``int`` (for code that needs a fixed number)."""
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int):
        raise DTypeError(
            f"Expected `max_batch_size` to be a positive int, but got {type(max_batch_size).__name__}."
        )
    if max_batch_size < 1:
        raise OptionError(f"Expected `max_batch_size` >= 1, but got {max_batch_size}.")
    return max_batch_size


def check_max_batch_size(max_batch_size: object) -> int | BatchPolicy:
    """Validate ``max_batch_size``: a positive ``int``, ``"auto"``, a byte budget, or a :class:`BatchPolicy`.

    * an ``int``: at most that many items per model or explainer call;
    * ``"auto"``: the fastest chunk size of a few candidates, probed on the first
      chunks of real work and cached per call site, model, item shape and device
      (:mod:`xaiscore._engine.auto_batch`), within a default budget of chunk inputs
      (32 MiB on the CPU: 160 images of 1 x 224 x 224, 32 of 1 x 512 x 512);
    * a byte budget, e.g. ``"2GB"``, ``"512MiB"``: the largest chunk whose inputs
      (items of the model's or explainer's input) take at most that many bytes;
    * ``"auto:2GB"``: the fastest chunk size within that budget.

    Results never depend on the choice (chunk-size invariance). Returns the
    ``int``, or the parsed :class:`BatchPolicy`.

    Raises:
        DTypeError: neither an int nor a string (or policy).
        OptionError: an int below 1 or a string that is neither "auto" nor a byte size.

    Example:
        >>> check_max_batch_size(32), check_max_batch_size("auto:1GB").max_bytes
        (32, 1000000000)
    """
    if isinstance(max_batch_size, (str, BatchPolicy)):
        return parse_batch_policy(max_batch_size)
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int):
        raise DTypeError(
            "Expected `max_batch_size` to be a positive int, 'auto' or a byte budget such as '2GB', but got "
            f"{type(max_batch_size).__name__}."
        )
    return check_items_per_call(max_batch_size)


def chunked_map(n_items: int, compute: Callable[[int, int], Tensor], *,
                max_batch_size: int | str | BatchPolicy) -> Tensor:
    """Run ``compute(start, stop)`` over ``[0, n_items)`` in chunks and concatenate along dim 0.

    Args:
        n_items: Size of the logical batch.
        compute: Returns the results for items ``start .. stop - 1`` with a
            leading axis of length ``stop - start``.
        max_batch_size: The most items per call, ``"auto"``, a byte budget such as
            ``"2GB"``, or ``"auto:2GB"`` (:func:`check_max_batch_size`).

    Example:
        >>> chunked_map(5, lambda s, e: torch.arange(s, e) * 10, max_batch_size=2).tolist()
        [0, 10, 20, 30, 40]
    """
    limit = check_max_batch_size(max_batch_size)
    if n_items <= 0:
        raise OptionError(f"Expected a positive number of items, but got {n_items}.")
    parts = []
    if isinstance(limit, int):
        chunks = ((start, min(start + limit, n_items)) for start in range(0, n_items, limit))
        results = ((start, stop, compute(start, stop)) for start, stop in chunks)
    else:
        results = adaptive_chunks(n_items, compute, limit)
    for start, stop, out in results:
        if out.shape[:1] != (stop - start,):
            raise ModelOutputError(
                f"Expected {stop - start} results for items {start}..{stop - 1}, but got shape "
                f"{tuple(out.shape)}."
            )
        parts.append(out)
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)


def call_model(forward_fn: Callable[[Tensor], Tensor], x: Tensor, *, name: str = "forward_fn") -> Tensor:
    """Call ``forward_fn`` on ``x`` under ``torch.inference_mode()`` and check it returns ``(n, K)`` logits.

    Raises:
        ModelOutputError: the output is not a tensor of shape ``(len(x), K)``.
    """
    with torch.inference_mode():
        out = forward_fn(x)
    return check_logits(out, x, name=name)


def check_logits(out: Any, x: Tensor, *, name: str = "forward_fn") -> Tensor:
    """Check that ``out`` (a model's output for ``x``) is a tensor of shape ``(len(x), K)`` and return it.

    Raises:
        ModelOutputError: it is not.
    """
    if not isinstance(out, Tensor):
        raise ModelOutputError(f"Expected `{name}` to return a torch.Tensor of logits, but got {type(out).__name__}.")
    if out.ndim != 2 or out.shape[0] != x.shape[0]:
        raise ModelOutputError(
            f"Expected `{name}` to return logits of shape ({x.shape[0]}, num_classes) for an input "
            f"batch of {x.shape[0]}, but got {tuple(out.shape)}."
        )
    return out


def class_scores(logits: Tensor, target: Tensor, *, softmax: bool) -> Tensor:
    """The score of class ``target[i]`` in row ``i``: a probability if ``softmax`` else the logit.

    Args:
        logits: ``(n, K)``.
        target: ``(n,)`` long, on the device of ``logits``.
        softmax: Apply a softmax over classes first.

    Raises:
        ShapeError: ``target`` does not have ``n`` entries.
    """
    if target.shape != logits.shape[:1]:
        raise ShapeError(f"Expected `target` of shape ({logits.shape[0]},), but got {tuple(target.shape)}.")
    values = torch.softmax(logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits, dim=1) \
        if softmax else logits
    return values.gather(1, target.reshape(-1, 1)).squeeze(1)


def check_finite_output(values: Tensor, *, name: str = "forward_fn") -> Tensor:
    """Raise :class:`NonFiniteError` if ``values`` hold NaN (reads the data: call once, at the end)."""
    if bool(torch.isnan(values).any()):
        raise NonFiniteError(
            f"Expected `{name}` to return finite values, but got NaN for {int(torch.isnan(values).sum())} "
            "item(s). Check the model on perturbed inputs (e.g. NaN baselines or overflow)."
        )
    return values


class ChunkBuffers:
    """Reusable per-chunk work tensors: one allocation per name for a whole chunked loop.

    A fresh multi-megabyte CPU tensor per chunk is returned to the OS when freed and faults its pages
    in again on the next chunk (measured: 3-4 ms per 12.8 MB chunk, more than the arithmetic); a
    buffer kept for the loop pays that once. Buffers hand out views, so a caller must be done with a
    chunk's tensor before asking for the next (as a model call is).

    Example:
        >>> buffers = ChunkBuffers()
        >>> first = buffers.get("images", (4, 2), torch.float32)
        >>> second = buffers.get("images", (3, 2), torch.float32)  # the same memory, fewer rows
        >>> second.data_ptr() == first.data_ptr(), tuple(second.shape)
        (True, (3, 2))
    """

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | None = None
            ) -> Tensor:
        """An uninitialised ``(n, *rest)`` view of the buffer ``name`` (regrown if ``n`` exceeds it)."""
        held = self._buffers.get(name)
        if held is None or held.shape[1:] != shape[1:] or held.dtype != dtype or held.shape[0] < shape[0] \
                or (device is not None and held.device != torch.device(device)):
            held = torch.empty(shape, dtype=dtype, device=device)
            self._buffers[name] = held
        return held[: shape[0]]
