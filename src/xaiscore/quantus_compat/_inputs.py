"""Quantus' inputs made canonical, one step per input: layout, model, targets, attributions, masks.

:meth:`xaiscore.quantus_compat._base.Metric._prepare` runs these steps in
Quantus' order (the module docstring of :mod:`~xaiscore.quantus_compat._base`
lists it). Each step validates its input at the boundary and returns a tensor on
the device, in the canonical layout ``(B, C, *S)``: channel-first, with a
channel axis of one for ``(B, F)`` data.

Example:
    >>> import numpy as np
    >>> x_np, layout = canonical_inputs(np.zeros((2, 8, 8, 3)), None)
    >>> x_np.shape, layout.channel_first, layout.canonical
    ((2, 3, 8, 8), False, (2, 3, 8, 8))
    >>> masks_tensor(np.ones((2, 8, 8, 1), dtype=bool), layout, x=torch.zeros(2, 3, 8, 8),
    ...              device=torch.device("cpu")).shape
    torch.Size([2, 1, 8, 8])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from xaiscore._checks import DTypeError, OptionError, ShapeError, check_mask

__all__ = [
    "Layout",
    "infer_channel_first",
    "channel_last_to_first",
    "expand_like_quantus",
    "resolve_device",
    "model_dtype",
    "float_tensor",
    "canonical_inputs",
    "check_model",
    "targets_tensor",
    "attributions_tensor",
    "masks_tensor",
]


# --- layout ---------------------------------------------------------------------------------------


def infer_channel_first(shape: Sequence[int]) -> bool:
    """Quantus' ``infer_channel_first`` rule for a batch of inputs of ``shape``.

    * ``(B, F)``: channel-first (no channel axis).
    * ``(B, d1, d2)``: channel-first if ``d1 < d2``, channel-last if ``d1 > d2``.
    * ``(B, d1, d2, d3)``: channel-last if ``d3`` is the smallest, channel-first if ``d1`` is.

    Raises:
        ShapeError: the shape is ambiguous (pass ``channel_first``) or has more than 4 dimensions.

    Example:
        >>> infer_channel_first((8, 3, 32, 32)), infer_channel_first((8, 32, 32, 3))
        (True, False)
    """
    shape = tuple(shape)
    ambiguous = ShapeError(
        f"Ambiguous input shape {shape}: cannot infer channel-first or channel-last order. "
        "Pass `channel_first=True` or `channel_first=False`."
    )
    if len(shape) == 2:
        return True
    if len(shape) == 3:
        if shape[1] == shape[2]:
            raise ambiguous
        return shape[1] < shape[2]
    if len(shape) == 4:
        if shape[3] < shape[1] and shape[3] < shape[2]:
            return False
        if shape[1] < shape[2] and shape[1] < shape[3]:
            return True
        raise ambiguous
    raise ShapeError(
        "Expected `x_batch` of 2 to 4 dimensions to infer the channel order, but got shape "
        f"{shape}. Pass `channel_first=True` for volumes (B, C, D, H, W)."
    )


def channel_last_to_first(array: np.ndarray) -> np.ndarray:
    """Move the last axis to position 1 (arrays of more than two dimensions)."""
    if array.ndim <= 2:
        return array
    return np.moveaxis(array, -1, 1)


def expand_like_quantus(a: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """Quantus' ``expand_attribution_channel``: insert the input axes that ``a`` lacks."""
    if a.shape[0] != x_shape[0]:
        raise ShapeError(
            f"Expected attributions for the {x_shape[0]} samples of `x_batch`, but got "
            f"{a.shape[0]} (shape {a.shape})."
        )
    if a.ndim > len(x_shape):
        raise ShapeError(
            f"Expected attributions with at most the {len(x_shape)} dimensions of `x_batch` "
            f"{x_shape}, but got shape {a.shape}."
        )
    if a.ndim == len(x_shape):
        return a
    a_dims = [d for d in a.shape[1:] if d != 1]
    x_dims = list(x_shape[1:])
    for start in range(len(x_dims) - len(a_dims) + 1):
        stop = start + len(a_dims)
        if x_dims[start:stop] == a_dims and (start == 0 or stop == len(x_dims)):
            covered = list(range(start + 1, stop + 1))
            missing = tuple(axis for axis in range(1, len(x_shape)) if axis not in covered)
            return np.expand_dims(a.reshape((a.shape[0],) + tuple(a_dims)), axis=missing)
    raise ShapeError(
        "Expected attributions whose dimensions are the leading or trailing dimensions of the "
        f"inputs {x_shape}, but got shape {a.shape}."
    )


def resolve_device(device: str | torch.device | None, model: nn.Module | None) -> torch.device:
    """The device to compute on.

    ``None`` means the device of the model's first parameter (CPU without a
    model or parameters); ``"gpu"`` (Quantus' documented spelling) means
    ``"cuda"``; anything else is passed to :class:`torch.device` (``"cpu"``,
    ``"cuda"``, ``"cuda:1"``, ``"mps"``).

    Example:
        >>> resolve_device("cpu", None), resolve_device(None, torch.nn.Linear(2, 2))
        (device(type='cpu'), device(type='cpu'))
    """
    if device is None:
        if isinstance(model, nn.Module):
            for parameter in model.parameters():
                return parameter.device
        return torch.device("cpu")
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise DTypeError(
            "Expected `device` as a string such as 'cpu' or 'cuda:0', but got "
            f"{type(device).__name__}."
        )
    name = device.strip().lower()
    if name == "gpu" or name.startswith("gpu:"):
        name = "cuda" + name[3:]
    try:
        return torch.device(name)
    except RuntimeError:
        raise OptionError(
            f"Expected `device` as 'cpu', 'cuda', 'cuda:<index>', 'gpu' or another torch device, "
            f"but got {device!r}."
        ) from None


def model_dtype(model: nn.Module | None) -> torch.dtype:
    """The dtype of the model's first floating parameter (float32 without one)."""
    if isinstance(model, nn.Module):
        for parameter in model.parameters():
            if parameter.is_floating_point():
                return parameter.dtype
    return torch.float32


def float_tensor(array: Any, device: torch.device, dtype: torch.dtype | None = None) -> Tensor:
    """``array`` as a floating tensor on ``device`` (float64 stays float64, else float32 by
    default)."""
    if isinstance(array, Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if dtype is None:
        dtype = torch.float64 if array.dtype == np.float64 else torch.float32
    return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=device)


def _numpy(array: Any) -> np.ndarray:
    return np.asarray(array.detach().cpu().numpy() if isinstance(array, Tensor) else array)


# --- one step per input ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """The layout of one call's ``x_batch``.

    Attributes:
        channel_first: Whether ``x_batch`` was given channel-first (given or inferred).
        raw_shape: ``x_batch``'s shape as given.
        x_shape: Its shape channel-first.
        model_shape: The per-sample shape the model and the explainer receive.
        canonical: ``(B, C, *S)``: ``x_shape``, with a channel axis of one for ``(B, F)``.
    """

    channel_first: bool
    raw_shape: tuple[int, ...]
    x_shape: tuple[int, ...]
    model_shape: tuple[int, ...]
    canonical: tuple[int, ...]


def canonical_inputs(x_batch: Any, channel_first: bool | None) -> tuple[np.ndarray, Layout]:
    """``x_batch`` channel-first as numpy, and its :class:`Layout`.

    Raises:
        OptionError: ``x_batch`` is ``None`` (a ``ValueError``, as Quantus raises).
        ShapeError: no feature axis, an empty batch, or an ambiguous layout.
    """
    if x_batch is None:
        raise OptionError("Expected `x_batch` as a numpy array of inputs, but got None.")
    x_np = _numpy(x_batch)
    if x_np.ndim < 2:
        raise ShapeError(
            "Expected `x_batch` with a batch axis and at least one feature axis, but got "
            f"{x_np.shape}."
        )
    if x_np.shape[0] == 0:
        raise ShapeError("Expected `x_batch` to hold at least one sample, but got an empty batch.")
    raw_shape = x_np.shape
    if channel_first is None:
        channel_first = infer_channel_first(raw_shape)
    if not channel_first:
        x_np = channel_last_to_first(x_np)
    x_shape = x_np.shape
    model_shape = tuple(x_shape[1:])
    canonical = (x_shape[0], 1) + model_shape if x_np.ndim == 2 else x_shape
    return x_np, Layout(bool(channel_first), raw_shape, x_shape, model_shape, canonical)


def check_model(model: Any, *, needs_model: bool, metric: str) -> None:
    """A ``model`` must be an ``nn.Module``; a metric that calls it needs one in eval mode.

    Raises:
        DTypeError: not an ``nn.Module``.
        OptionError: missing where ``needs_model``, or in training mode.
    """
    if model is not None and not isinstance(model, nn.Module):
        raise DTypeError(
            f"Expected `model` to be a torch.nn.Module, but got {type(model).__name__} "
            "(the drop-in runs PyTorch models only)."
        )
    if not needs_model:
        return
    if model is None:
        raise OptionError(f"{metric} calls the model: pass `model` (a torch.nn.Module).")
    if model.training:
        raise OptionError(
            "Expected `model` in evaluation mode, but it is in training mode; call `model.eval()` "
            "first (Quantus refuses it too)."
        )


def targets_tensor(y_batch: Any, *, n: int, device: torch.device) -> Tensor:
    """``y_batch`` as ``(n,)`` long class indices (whole-valued floats are accepted).

    Raises:
        DTypeError: not integer class indices.
        ShapeError: not ``n`` of them.
    """
    y_np = np.asarray(y_batch)
    if y_np.dtype.kind not in "iub":
        if y_np.dtype.kind == "f" and np.all(np.equal(np.mod(y_np, 1), 0)):
            y_np = y_np.astype(np.int64)
        else:
            raise DTypeError(
                f"Expected `y_batch` to hold integer class indices, but got dtype {y_np.dtype}."
            )
    y = torch.as_tensor(y_np.reshape(-1).astype(np.int64), device=device)
    if y.shape[0] != n:
        raise ShapeError(f"Expected `y_batch` of shape ({n},), but got {tuple(np.shape(y_batch))}.")
    return y


def attributions_tensor(
    a_batch: Any, layout: Layout, *, like: Tensor, device: torch.device
) -> Tensor:
    """A given ``a_batch`` as ``(B, 1|C, *S)`` floats like the canonical inputs ``like``.

    A channel-last ``a_batch`` with the dimensions of ``x_batch`` is moved to
    channel-first; missing axes are inserted as Quantus does.

    Raises:
        ShapeError: attributions that do not fit the inputs.
    """
    a_np = _numpy(a_batch)
    raw_shape, x_shape = layout.raw_shape, layout.x_shape
    if (
        not layout.channel_first
        and a_np.ndim == len(raw_shape)
        and a_np.shape[-1] in (1, raw_shape[-1])
        and a_np.shape[1:-1] == raw_shape[1:-1]
    ):
        a_np = channel_last_to_first(a_np)
    a_np = expand_like_quantus(a_np, x_shape)
    if len(x_shape) > 2 and a_np.shape[1:] not in (tuple(x_shape[1:]), (1,) + tuple(x_shape[2:])):
        raise ShapeError(
            f"Expected attributions of shape {x_shape} or {(x_shape[0], 1) + tuple(x_shape[2:])} "
            f"(after adding the channel axis as Quantus does), but got {a_np.shape}."
        )
    if len(x_shape) == 2 and a_np.shape != x_shape:
        raise ShapeError(f"Expected attributions of shape {x_shape}, but got {a_np.shape}.")
    return float_tensor(a_np, device).reshape((like.shape[0], -1) + tuple(like.shape[2:]))


def masks_tensor(s_batch: Any, layout: Layout, *, x: Tensor, device: torch.device) -> Tensor:
    """``s_batch`` as ``(B, 1, *S)`` bool masks of the canonical inputs ``x``.

    Raises:
        ShapeError, MaskError, DTypeError: masks that do not fit ``x`` (:func:`check_mask`).
    """
    s_np = _numpy(s_batch)
    if not layout.channel_first and s_np.ndim == len(layout.raw_shape) and s_np.shape[-1] == 1:
        s_np = channel_last_to_first(s_np)
    if s_np.ndim == x.ndim - 1:
        s_np = s_np[:, None]
    s_t = torch.as_tensor(np.ascontiguousarray(s_np), device=device)
    if s_t.ndim != x.ndim:
        raise ShapeError(
            f"Expected `s_batch` of shape (B, 1, *S) like {(x.shape[0], 1) + tuple(x.shape[2:])}, "
            f"but got {tuple(s_np.shape)}."
        )
    return check_mask(s_t, x, name="s_batch", a_name="x_batch")
