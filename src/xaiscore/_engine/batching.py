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

Models that are not plain logit classifiers: :func:`declare_model_output`
attaches a :class:`ModelOutput` to a model (a dict/tuple output and the key to
read, a function that extracts the scores, or a model that returns
probabilities); :func:`call_model`, which every kernel's model call goes
through, applies it. A model declared to return probabilities ``p`` gives the
kernels ``log p`` as its logits: ``softmax(log p) = p`` exactly, so metrics
that track probabilities see ``p`` (never a second softmax), the argmax is
unchanged, and metrics that track logits see ``log p``, the logits of a
softmax output layer up to a per-input constant.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
    "check_items_or_bytes",
    "items_per_call",
    "chunked_map",
    "call_model",
    "class_scores",
    "ModelOutput",
    "declare_model_output",
    "model_output_of",
    "carry_model_output",
    "ChunkBuffers",
]


class ModelOutputError(XaiscoreError, ValueError):
    """A ``forward_fn`` or ``explain_fn`` returned something of the wrong shape or with NaN."""


def check_items_per_call(max_batch_size: object) -> int:
    """Raise unless ``max_batch_size`` is a positive ``int`` (for code that needs a fixed number).
    """
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int):
        raise DTypeError(
            "Expected `max_batch_size` to be a positive int, but got "
            f"{type(max_batch_size).__name__}."
        )
    if max_batch_size < 1:
        raise OptionError(f"Expected `max_batch_size` >= 1, but got {max_batch_size}.")
    return max_batch_size


def check_items_or_bytes(max_batch_size: object) -> int | BatchPolicy:
    """Validate a ``max_batch_size`` that must not depend on timing: a positive ``int`` or a byte
    budget such as ``"2GB"`` (its item count depends on the input's shape only), not ``"auto"``.

    For explainers whose noise is drawn per call or whose sums run per chunk (the captum
    adapter's NoiseTunnel/GradientShap passes, RISE's mask blocks): with ``"auto"`` the values
    would depend on the timing of a probe. Resolve it per call with :func:`items_per_call`.

    Raises:
        DTypeError: neither an int nor a string.
        OptionError: an int below 1, ``"auto"``, or a string that is not a byte size.

    Example:
        >>> check_items_or_bytes(16), check_items_or_bytes("1MiB").max_bytes
        (16, 1048576)
    """
    if isinstance(max_batch_size, (str, BatchPolicy)):
        policy = parse_batch_policy(max_batch_size)
        if policy.auto:
            raise OptionError(
                "Expected `max_batch_size` as an int or a byte budget such as '2GB' here (an "
                "explainer's noise or sums may depend on how its calls are cut, so the size must "
                f"not depend on timing), but got {max_batch_size!r}.")
        return policy
    return check_items_per_call(max_batch_size)


def items_per_call(max_batch_size: int | BatchPolicy, inputs: Tensor) -> int:
    """The most model inputs per call: an ``int`` as it is; a byte budget as the number of
    ``inputs``' items (along dim 0) it holds, at least one.

    Example:
        >>> items_per_call(check_items_or_bytes("1MiB"), torch.zeros(3, 1, 64, 64))  # 16 KiB each
        64
    """
    if isinstance(max_batch_size, int):
        return max_batch_size
    item_bytes = max(1, inputs[0].numel() * inputs.element_size()) if inputs.shape[0] else 1
    return max(1, int(max_batch_size.max_bytes or 0) // item_bytes)


def check_max_batch_size(max_batch_size: object) -> int | BatchPolicy:
    """Validate ``max_batch_size``: a positive ``int``, ``"auto"``, a byte budget, or a
    :class:`BatchPolicy`.

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
            "Expected `max_batch_size` to be a positive int, 'auto' or a byte budget such as "
            f"'2GB', but got {type(max_batch_size).__name__}."
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


#: The attribute :func:`declare_model_output` sets on a model.
MODEL_OUTPUT_ATTRIBUTE = "xaiscore_model_output"


@dataclass(frozen=True)
class ModelOutput:
    """How to read a model's output as ``(n, K)`` class scores (see :func:`declare_model_output`).

    Attributes:
        key: The entry of a dict output (``"logits"``), a tuple/list index (``0``), or an
            attribute name of an output object; ``None``: the output itself.
        fn: A function from the (keyed) output to the ``(n, K)`` scores; ``None``: none.
        probabilities: The scores are probabilities (the model ends in a softmax).
    """

    key: str | int | None = None
    fn: Callable[[Any], Any] | None = None
    probabilities: bool = False

    def select(self, out: Any, *, name: str = "forward_fn") -> Any:
        """The model's scores as it returns them (``key`` then ``fn`` applied)."""
        if self.key is not None:
            out = _pick(out, self.key, name=name)
        if self.fn is not None:
            out = self.fn(out)
        return out

    def logits(self, out: Any, *, name: str = "forward_fn") -> Any:
        """The scores as the kernels read them: :meth:`select`, then ``log`` for probabilities."""
        out = self.select(out, name=name)
        if self.probabilities and isinstance(out, Tensor):
            out = torch.log(out)
        return out


def _pick(out: Any, key: str | int, *, name: str) -> Any:
    try:
        if isinstance(out, Mapping) or (
            isinstance(out, Sequence) and not isinstance(out, (str, Tensor))
        ):
            return out[key]
        if isinstance(key, str):
            return getattr(out, key)
    except (KeyError, IndexError, AttributeError, TypeError):
        pass
    available = (
        f" (keys {list(out.keys())})"
        if isinstance(out, Mapping)
        else (f" (a {type(out).__name__} of {len(out)})" if isinstance(out, Sequence) else "")
    )
    raise ModelOutputError(
        f"Expected the output of `{name}` to have the entry {key!r} (`output_key`), but got a "
        f"{type(out).__name__}{available}."
    )


def declare_model_output(
    model: Any,
    *,
    output_key: str | int | None = None,
    output_fn: Callable[[Any], Any] | None = None,
    probabilities: bool = False,
) -> Any:
    """Tell xaiscore how to read ``model``'s output; returns ``model`` (marked in place).

    Every kernel that calls a model (through :func:`call_model`) and the captum explainers
    read the declaration, also on the copies the randomization metrics make.

    Args:
        model: An ``nn.Module`` (or any callable that accepts attributes).
        output_key: The entry with the class scores: a dict key (Hugging Face's ``"logits"``),
            a tuple index, or an attribute of the output object.
        output_fn: A function from the output (after ``output_key``) to ``(n, K)`` scores.
        probabilities: The scores are probabilities: metrics that track probabilities take
            them as they are (no second softmax); see the module docstring for the rest.

    Raises:
        DTypeError: bad argument types, or attributes cannot be set on ``model``.

    Example:
        >>> class Dicted(torch.nn.Module):
        ...     def forward(self, x):
        ...         return {"logits": x.flatten(1), "hidden": x}
        >>> model = declare_model_output(Dicted(), output_key="logits")
        >>> call_model(model, torch.ones(2, 1, 3)).shape
        torch.Size([2, 3])
        >>> p = torch.tensor([[0.2, 0.8]])
        >>> probs = declare_model_output(torch.nn.Identity(), probabilities=True)
        >>> class_scores(call_model(probs, p), torch.tensor([1]), softmax=True)
        tensor([0.8000])
    """
    if output_key is not None and (
        isinstance(output_key, bool) or not isinstance(output_key, (str, int))
    ):
        raise DTypeError(
            "Expected `output_key` to be a str, an int or None, but got "
            f"{type(output_key).__name__}."
        )
    if output_fn is not None and not callable(output_fn):
        raise DTypeError(
            f"Expected `output_fn` to be callable or None, but got {type(output_fn).__name__}."
        )
    if not isinstance(probabilities, bool):
        raise DTypeError(
            f"Expected `probabilities` to be a bool, but got {type(probabilities).__name__}."
        )
    declaration = ModelOutput(output_key, output_fn, probabilities)
    try:
        setattr(
            model, MODEL_OUTPUT_ATTRIBUTE, None if declaration == ModelOutput() else declaration
        )
    except (AttributeError, TypeError) as error:
        raise DTypeError(
            f"Cannot mark a {type(model).__name__} with its output declaration ({error}); wrap it "
            "in a torch.nn.Module or pass a function that returns the logits."
        ) from None
    return model


def model_output_of(forward_fn: Any) -> ModelOutput | None:
    """The :class:`ModelOutput` declared on ``forward_fn``, on the model a wrapper holds as
    ``.model``, or on the module of a bound ``forward``; ``None`` when there is none."""
    candidates = [forward_fn, getattr(forward_fn, "__self__", None)]
    if not isinstance(forward_fn, torch.nn.Module):  # a module's own `.model` is a submodule
        candidates.append(getattr(forward_fn, "model", None))
    for candidate in candidates:
        declared = (
            getattr(candidate, MODEL_OUTPUT_ATTRIBUTE, None) if candidate is not None else None
        )
        if isinstance(declared, ModelOutput):
            return declared
    return None


def carry_model_output(source: Any, copy_: Any) -> Any:
    """Give ``copy_`` (e.g. a deep copy, which loses Python attributes of TorchScript modules) the
    output declaration of ``source``; returns ``copy_``."""
    declared = model_output_of(source)
    if declared is not None and model_output_of(copy_) != declared:
        with contextlib.suppress(AttributeError, TypeError):
            setattr(copy_, MODEL_OUTPUT_ATTRIBUTE, copy.copy(declared))
    return copy_


def call_model(
    forward_fn: Callable[[Tensor], Tensor], x: Tensor, *, name: str = "forward_fn"
) -> Tensor:
    """Call ``forward_fn`` on ``x`` under ``torch.inference_mode()`` and check it returns ``(n, K)``
    logits.

    The output goes through the model's :class:`ModelOutput` first when one is declared
    (:func:`declare_model_output`).

    Raises:
        ModelOutputError: the output is not a tensor of shape ``(len(x), K)``.
    """
    with torch.inference_mode():
        out = forward_fn(x)
        declared = model_output_of(forward_fn)
        if declared is not None:
            out = declared.logits(out, name=name)
    return check_logits(out, x, name=name)


def check_logits(out: Any, x: Tensor, *, name: str = "forward_fn") -> Tensor:
    """Check that ``out`` (a model's output for ``x``) is a floating-point tensor of shape
    ``(len(x), K)``.

    Integer, bool and complex outputs are refused, not cast: they are class indices or one-hot
    predictions far more often than scores, and a softmax over them is no probability.

    Raises:
        ModelOutputError: it is not.
    """
    if not isinstance(out, Tensor):
        hint = ""
        if isinstance(out, (Mapping, tuple, list)) or hasattr(out, "logits"):
            hint = (
                " For a model that returns a dict, tuple or output object, declare where its "
                "logits are: "
                "xaiscore.declare_model_output(model, output_key='logits') (or output_fn=...; "
                "`output_key` in a config's [model] section)."
            )
        raise ModelOutputError(
            f"Expected `{name}` to return a torch.Tensor of logits, but got "
            f"{type(out).__name__}.{hint}"
        )
    if out.ndim != 2 or out.shape[0] != x.shape[0]:
        raise ModelOutputError(
            f"Expected `{name}` to return logits of shape ({x.shape[0]}, num_classes) for an input "
            f"batch of {x.shape[0]}, but got {tuple(out.shape)}."
        )
    if not out.is_floating_point():
        raise ModelOutputError(
            f"Expected `{name}` to return floating-point logits, but got dtype {out.dtype}. Return "
            "the model's real-valued scores; if these integers are scores, cast them with "
            "`.float()`."
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
        raise ShapeError(
            f"Expected `target` of shape ({logits.shape[0]},), but got {tuple(target.shape)}.")
    values = torch.softmax(logits.float() if logits.dtype in (torch.float16, torch.bfloat16)
                           else logits, dim=1) \
        if softmax else logits
    return values.gather(1, target.reshape(-1, 1)).squeeze(1)


def check_finite_output(values: Tensor, *, name: str = "forward_fn") -> Tensor:
    """Raise :class:`NonFiniteError` if ``values`` hold NaN (reads the data: call once, at the end).
    """
    if bool(torch.isnan(values).any()):
        raise NonFiniteError(
            f"Expected `{name}` to return finite values, but got NaN for "
            f"{int(torch.isnan(values).sum())} item(s). Check the model on perturbed inputs (e.g. "
            "NaN baselines or overflow)."
        )
    return values


class ChunkBuffers:
    """Reusable per-chunk work tensors: one allocation per name for a whole chunked loop.

    A fresh multi-megabyte CPU tensor per chunk is returned to the OS when freed and faults its
    pages in again on the next chunk (measured: 3-4 ms per 12.8 MB chunk, more than the arithmetic);
    a buffer kept for the loop pays that once. Buffers hand out views, so a caller must be done with
    a chunk's tensor before asking for the next (as a model call is).

    Example:
        >>> buffers = ChunkBuffers()
        >>> first = buffers.get("images", (4, 2), torch.float32)
        >>> second = buffers.get("images", (3, 2), torch.float32)  # the same memory, fewer rows
        >>> second.data_ptr() == first.data_ptr(), tuple(second.shape)
        (True, (3, 2))
    """

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype,
            device: torch.device | None = None
            ) -> Tensor:
        """An uninitialised ``(n, *rest)`` view of the buffer ``name`` (regrown if ``n`` exceeds
        it)."""
        held = self._buffers.get(name)
        if held is None or held.shape[1:] != shape[
                1:] or held.dtype != dtype or held.shape[0] < shape[0] \
                or (device is not None and held.device != torch.device(device)):
            held = torch.empty(shape, dtype=dtype, device=device)
            self._buffers[name] = held
        return held[: shape[0]]
