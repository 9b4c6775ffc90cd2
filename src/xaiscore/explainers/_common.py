"""Shared pieces of the model-reading explainers (RISE, transformers, prototype networks).

* :class:`ModelStructureError`: the model lacks what an explainer reads (attention modules,
  a prototype layer, a class-connection layer), with a message naming what was expected;
* :func:`check_model_inputs`: the boundary checks of every explain function (``x`` a float
  tensor ``(n, C, *S)`` with 1 to 3 spatial dims, ``target`` ``(n,)`` integer on its device);
* :func:`upsample`: patch or feature maps to the input's spatial size;
* :func:`find_modules`: submodules by dotted name or glob pattern.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaiscore._checks import (
    DTypeError,
    OptionError,
    ShapeError,
    XaiscoreError,
    check_target,
    check_tensor,
)
from xaiscore._engine.explain_fn import format_shape

__all__ = [
    "ModelStructureError",
    "check_model",
    "check_model_inputs",
    "upsample",
    "find_modules",
    "UPSAMPLE_MODES",
]


class ModelStructureError(XaiscoreError, ValueError):
    """The model lacks the structure an explainer reads (attention modules, a prototype layer, ...).

    The message names what was expected and where to point the explainer instead.
    """


def check_model(model: object, name: str = "model") -> nn.Module:
    """Raise :class:`DTypeError` unless ``model`` is an ``nn.Module``."""
    if not isinstance(model, nn.Module):
        raise DTypeError(
            f"Expected `{name}` to be a torch.nn.Module, but got {type(model).__name__}."
        )
    return model


def check_model_inputs(x: object, target: object) -> tuple[Tensor, Tensor]:
    """Check ``x`` ``(n, C, *S)`` (float, 1 to 3 spatial dims) and ``target`` ``(n,)``; return both.

    Raises:
        DTypeError: ``x`` not a floating-point tensor, ``target`` not integer.
        ShapeError: ``x`` without 1 to 3 spatial dims, ``target`` not of shape ``(n,)``.
        DeviceError: ``target`` on another device than ``x``.
    """
    x = check_tensor(x, "x")
    if not x.is_floating_point():
        raise DTypeError(f"Expected `x` to be a floating-point tensor, but got dtype {x.dtype}.")
    if x.ndim not in (3, 4, 5) or x.shape[0] == 0:
        raise ShapeError(
            f"Expected `x` of shape (n, C, *S) with n >= 1 and 1 to 3 spatial dims, but got "
            f"{format_shape(x.shape)}."
        )
    target = check_target(target, x.shape[0], device=x.device)
    return x, target


UPSAMPLE_MODES: tuple[str, ...] = ("linear", "nearest", "bicubic")


def upsample(maps: Tensor, size: Sequence[int], mode: str = "linear") -> Tensor:
    """Resize ``maps`` ``(n, k, *s)`` to ``(n, k, *size)``.

    ``"linear"`` is (bi/tri)linear with half-pixel centres (``align_corners=False``, as
    :func:`torch.nn.functional.interpolate`), ``"nearest"`` nearest neighbour, ``"bicubic"``
    (2-D only) torch's bicubic (``a = -0.75``, as OpenCV's ``INTER_CUBIC``).

    Example:
        >>> upsample(torch.tensor([[[0.0, 1.0]]]), (4,)).tolist()
        [[[0.0, 0.25, 0.75, 1.0]]]
    """
    size = tuple(int(s) for s in size)
    if tuple(maps.shape[2:]) == size:
        return maps
    spatial = len(size)
    if mode == "linear":
        return F.interpolate(
            maps,
            size=size,
            mode=("linear", "bilinear", "trilinear")[spatial - 1],
            align_corners=False,
        )
    if mode == "nearest":
        return F.interpolate(maps, size=size, mode="nearest")
    if mode == "bicubic":
        if spatial != 2:
            raise OptionError(f'Expected 2-D maps for `upsample="bicubic"`, but got {spatial}-D.')
        return F.interpolate(maps, size=size, mode="bicubic", align_corners=False)
    raise OptionError(
        f"Expected `upsample` to be one of {', '.join(map(repr, UPSAMPLE_MODES))}, "
        f"but got {mode!r}."
    )


def find_modules(model: nn.Module, patterns: str | Sequence[str]) -> list[tuple[str, nn.Module]]:
    """The submodules whose dotted names match any of ``patterns`` (names or globs), in model order.

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
        >>> [name for name, _ in find_modules(model, ["0", "2"])]
        ['0', '2']
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    if not all(isinstance(p, str) for p in patterns):
        raise DTypeError(
            f"Expected module names or glob patterns (str), but got {list(patterns)!r}."
        )
    return [
        (name, module)
        for name, module in model.named_modules()
        if name and any(fnmatch.fnmatchcase(name, p) for p in patterns)
    ]


def module_names_hint(model: nn.Module, limit: int = 8) -> str:
    """A few dotted submodule names of ``model`` for error messages."""
    names = [name for name, _ in model.named_modules() if name]
    more = ", ..." if len(names) > limit else ""
    return "[" + ", ".join(repr(n) for n in names[:limit]) + more + "]"


def output_dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.get_default_dtype()
