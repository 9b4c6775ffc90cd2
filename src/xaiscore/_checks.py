"""Validation at the public boundary: the one place where inputs are checked.

Every public kernel calls the ``check_*`` helpers here once, before any
computation. Each failure raises one of the error types below, all of which
subclass :class:`XaiscoreError` *and* the builtin :class:`ValueError` or
:class:`TypeError`, so ``except ValueError`` keeps working for users who do not
know our types. Messages always say what was expected and what came, e.g.::

    Expected `mask` to have the spatial shape of `a` (224, 224), but got (112, 112).

Checks that read the data (finiteness, binary masks) cost a pass over the
tensor and a host synchronisation; kernels expose ``validate=False`` to skip
them when the caller already knows the data is clean. Structural checks
(type, dtype, shape, device) are free and always run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "XaiscoreError",
    "ShapeError",
    "DTypeError",
    "NonFiniteError",
    "MaskError",
    "DeviceError",
    "OptionError",
    "check_tensor",
    "check_attributions",
    "check_finite",
    "check_mask",
    "check_same_device",
    "check_option",
    "check_positive_int",
    "check_fraction",
    "check_target",
    "check_inputs_like",
]


class XaiscoreError(Exception):
    """Base class of every input error raised by xaiscore."""


class ShapeError(XaiscoreError, ValueError):
    """A tensor has the wrong number of dimensions or the wrong shape."""


class DTypeError(XaiscoreError, TypeError):
    """An argument has the wrong type or dtype (e.g. integer attributions)."""


class NonFiniteError(XaiscoreError, ValueError):
    """A tensor holds NaN or infinite values where finite values are required."""


class MaskError(XaiscoreError, ValueError):
    """A mask holds values other than 0/1 (or False/True)."""


class DeviceError(XaiscoreError, ValueError):
    """Two tensors that must live on the same device do not, or a tensor is on the ``meta`` device.
    """


class OptionError(XaiscoreError, ValueError):
    """A keyword option has a value outside its allowed set or range."""


def _shape(t: Tensor | Sequence[int]) -> str:
    dims = tuple(t.shape) if isinstance(t, Tensor) else tuple(t)
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def check_tensor(value: Any, name: str) -> Tensor:
    """Raise :class:`DTypeError` unless ``value`` is a :class:`torch.Tensor`, :class:`DeviceError`
    if it is on the ``meta`` device (no data to score; checked before anything reads the values)."""
    if not isinstance(value, Tensor):
        kind = type(value).__name__
        hint = " Convert it with torch.as_tensor(...)." if hasattr(value, "__array__") else ""
        raise DTypeError(f"Expected `{name}` to be a torch.Tensor, but got {kind}.{hint}")
    if value.is_meta:
        raise DeviceError(
            f"Expected `{name}` to hold data, but got a tensor on the 'meta' device (a shape "
            "without values). Create or load it on a real device, e.g. "
            f"`{name}.to_empty(device='cpu')` filled with data."
        )
    return value


def check_attributions(
    a: Any,
    *,
    name: str = "a",
    min_spatial_dims: int = 1,
    max_spatial_dims: int = 3,
    validate: bool = True,
) -> Tensor:
    """Check an attribution batch of shape ``(B, C, *S)`` and return it unchanged.

    Args:
        a: The attributions: a floating-point tensor with a batch axis, a
            channel axis and ``min_spatial_dims`` to ``max_spatial_dims``
            spatial axes.
        name: The argument name used in error messages.
        min_spatial_dims: The fewest spatial axes accepted.
        max_spatial_dims: The most spatial axes accepted.
        validate: Also check that every value is finite (reads the data).

    Raises:
        DTypeError: ``a`` is not a tensor, or not floating point.
        ShapeError: ``a`` has an unsupported number of dimensions, or an empty
            batch, channel or spatial axis.
        NonFiniteError: ``a`` holds NaN or inf (only when ``validate``).
    """
    a = check_tensor(a, name)
    if not a.is_floating_point():
        raise DTypeError(
            f"Expected `{name}` to be a floating-point tensor, but got dtype {a.dtype}. "
            f"Attributions are real-valued; convert with `{name}.float()`."
        )
    low, high = 2 + min_spatial_dims, 2 + max_spatial_dims
    if not low <= a.ndim <= high:
        spatial = (
            f"{min_spatial_dims}"
            if min_spatial_dims == max_spatial_dims
            else f"{min_spatial_dims} to {max_spatial_dims}"
        )
        raise ShapeError(
            f"Expected `{name}` of shape (B, C, *S) with {spatial} spatial dimension(s), "
            f"i.e. {low} to {high} dimensions in all, but got {a.ndim} dimension(s) "
            f"with shape {_shape(a)}."
            + (" Add a channel axis with `a.unsqueeze(1)`." if a.ndim == low - 1 else "")
        )
    if a.shape[0] == 0:
        raise ShapeError(
            f"Expected `{name}` to hold at least one sample, but got an empty batch {_shape(a)}.")
    if a.numel() == 0:
        raise ShapeError(
            f"Expected every axis of `{name}` to be non-empty, but got shape {_shape(a)}.")
    if validate and not _all_finite(a):
        n_nan = int(torch.isnan(a).sum())
        n_inf = int(torch.isinf(a).sum())
        raise NonFiniteError(
            f"Expected `{name}` to be finite, but got {n_nan} NaN and {n_inf} infinite value(s). "
            "Replace them (e.g. torch.nan_to_num) or drop those samples."
        )
    return a


def check_finite(t: Tensor, name: str) -> Tensor:
    """Raise :class:`NonFiniteError` unless every value of ``t`` is finite (reads the data)."""
    if not _all_finite(t):
        raise NonFiniteError(
            f"Expected `{name}` to be finite, but got {int(torch.isnan(t).sum())} NaN and "
            f"{int(torch.isinf(t).sum())} infinite value(s)."
        )
    return t


def _all_finite(t: Tensor) -> bool:
    """Whether every value is finite: one sum (NaN/inf propagate), elementwise only if it is not
    finite.

    The sum accumulates in the tensor's own dtype (float32 for half types; a float64 accumulator
    is 10x slower on CPU); a sum that overflows only sends the check to the exact elementwise path.
    """
    accumulate = torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else None
    if bool(torch.isfinite(t.sum(dtype=accumulate))):
        return True
    return bool(torch.isfinite(t).all())  # the sum can overflow for huge finite values


def check_same_device(reference: Tensor, other: Tensor, *, reference_name: str,
                      other_name: str) -> None:
    """Raise :class:`DeviceError` unless both tensors live on the same device."""
    if other.device != reference.device:
        raise DeviceError(
            f"Expected `{other_name}` on the device of `{reference_name}` ({reference.device}), "
            f"but got {other.device}. Move it with `{other_name}.to({reference_name}.device)`."
        )


def check_mask(
    mask: Any,
    a: Tensor,
    *,
    name: str = "mask",
    a_name: str = "a",
    validate: bool = True,
) -> Tensor:
    """Check a mask against attributions ``a`` and return it as a bool tensor.

    The mask must have shape ``(B, 1, *S)`` or ``(B, C, *S)`` where ``a`` has
    shape ``(B, C, *S)``; it may be bool or numeric with values in {0, 1}.

    Raises:
        DTypeError: ``mask`` is not a tensor, or is complex.
        ShapeError: batch, channel or spatial shape differ from ``a``.
        DeviceError: ``mask`` is on another device than ``a``.
        MaskError: ``mask`` holds values other than 0 and 1 (only when ``validate``).
    """
    mask = check_tensor(mask, name)
    if mask.is_complex():
        raise DTypeError(
            f"Expected `{name}` to be bool or 0/1 numbers, but got dtype {mask.dtype}.")
    if mask.ndim != a.ndim:
        raise ShapeError(
            f"Expected `{name}` to have {a.ndim} dimensions like `{a_name}` {_shape(a)}, i.e. "
            f"(B, 1|C, *S), but got {mask.ndim} dimension(s) with shape {_shape(mask)}."
        )
    if mask.shape[0] != a.shape[0]:
        raise ShapeError(
            f"Expected `{name}` to have the batch size of `{a_name}` ({a.shape[0]}), "
            f"but got {mask.shape[0]}."
        )
    if mask.shape[2:] != a.shape[2:]:
        raise ShapeError(
            f"Expected `{name}` to have the spatial shape of `{a_name}` {_shape(a.shape[2:])}, "
            f"but got {_shape(mask.shape[2:])}."
        )
    if mask.shape[1] not in (1, a.shape[1]):
        raise ShapeError(
            f"Expected `{name}` to have 1 channel or the {a.shape[1]} channel(s) of `{a_name}`, "
            f"but got {mask.shape[1]}."
        )
    check_same_device(a, mask, reference_name=a_name, other_name=name)
    if mask.dtype == torch.bool:
        return mask
    if validate:
        binary = (mask == 0) | (mask == 1)
        if not bool(binary.all()):
            bad = mask[~binary]
            raise MaskError(
                f"Expected `{name}` to be binary (bool or values in {{0, 1}}), but got "
                f"{bad.numel()} other value(s), e.g. {bad[0].item()!r}. "
                f"Binarize it first, e.g. `{name} > 0.5`."
            )
    return mask != 0


def check_option(value: Any, name: str, allowed: Sequence[Any]) -> Any:
    """Raise :class:`OptionError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        choices = ", ".join(repr(v) for v in allowed)
        raise OptionError(f"Expected `{name}` to be one of {choices}, but got {value!r}.")
    return value


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Raise unless ``value`` is an ``int`` (not bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise DTypeError(
            f"Expected `{name}` to be an int, but got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise OptionError(f"Expected `{name}` to be at least {minimum}, but got {value}.")
    return value


def check_fraction(value: Any, name: str, *, low: float = 0.0, high: float = 1.0,
                   low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """Raise unless ``value`` is a real number in the interval [low, high] (bounds as given)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DTypeError(
            f"Expected `{name}` to be a number, but got {type(value).__name__} {value!r}.")
    value = float(value)
    above = value >= low if low_inclusive else value > low
    below = value <= high if high_inclusive else value < high
    if not (above and below) or value != value:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        raise OptionError(f"Expected `{name}` in {left}{low}, {high}{right}, but got {value}.")
    return value


def check_target(target: Any, batch_size: int, *, num_classes: int | None = None,
                 name: str = "target", device: torch.device | None = None,
                 validate: bool = True) -> Tensor:
    """Check a class-index tensor of shape ``(B,)`` and return it as ``long``.

    Raises:
        DTypeError: not a tensor, or not an integer dtype.
        ShapeError: not of shape ``(batch_size,)``.
        DeviceError: on another device than ``device``.
        OptionError: an index outside ``[0, num_classes)``, or a negative one when ``num_classes``
            is ``None`` (only when ``validate``).
    """
    target = check_tensor(target, name)
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise DTypeError(
            f"Expected `{name}` to hold integer class indices, but got dtype {target.dtype}.")
    if target.shape != (batch_size,):
        raise ShapeError(f"Expected `{name}` of shape ({batch_size},), but got {_shape(target)}.")
    if device is not None and target.device != device:
        raise DeviceError(f"Expected `{name}` on device {device}, but got {target.device}.")
    if validate and batch_size > 0:
        low, high = int(target.min()), int(target.max())
        if num_classes is None and low < 0:
            raise OptionError(f"Expected `{name}` to hold class indices >= 0, but got {low}.")
        if num_classes is not None and (low < 0 or high >= num_classes):
            bad = low if low < 0 else high
            raise OptionError(
                f"Expected `{name}` in [0, {num_classes}) (the model returns {num_classes} "
                f"classes), but got {bad}."
            )
    return target.long()


def check_inputs_like(x: Any, a: Tensor, *, name: str = "x", a_name: str = "a") -> Tensor:
    """Check that inputs ``x`` match attributions ``a`` in batch and spatial shape and device."""
    x = check_tensor(x, name)
    if not x.is_floating_point():
        raise DTypeError(
            f"Expected `{name}` to be a floating-point tensor, but got dtype {x.dtype}.")
    if x.ndim != a.ndim or x.shape[0] != a.shape[0] or x.shape[2:] != a.shape[2:]:
        raise ShapeError(
            f"Expected `{name}` of shape (B, C, *S) matching `{a_name}` {_shape(a)} in batch and "
            f"spatial size, but got {_shape(x)}."
        )
    if a.shape[1] not in (1, x.shape[1]):
        raise ShapeError(
            f"Expected `{a_name}` to have 1 channel or the {x.shape[1]} channel(s) of `{name}`, "
            f"but got {a.shape[1]}."
        )
    check_same_device(a, x, reference_name=a_name, other_name=name)
    return x
