"""Translating Quantus' function-valued options (baselines, perturbation, similarity, norms) to
kernel options.

Quantus configures metrics with numpy functions (``perturb_func``,
``similarity_func``, ``norm_numerator``...). The kernels implement the
standard choices natively; here each Quantus function is recognised by its
module and name and mapped to the kernel option that computes the same thing.
A function we cannot map raises :class:`QuantusCompatibilityError` naming the
options that work, except where a kernel accepts any callable (similarities of
the MPRT family, Random Logit), which then runs the user's numpy function per sample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from xaiscore._checks import DTypeError, OptionError
from xaiscore.quantus_compat._base import QuantusCompatibilityError

__all__ = [
    "quantus_function_name",
    "map_baseline",
    "check_perturb_func",
    "perturb_option",
    "map_similarity",
    "map_norm",
]

_PERTURB = "quantus.functions.perturb_func"
_SIMILARITY = "quantus.functions.similarity_func"
_NORM = "quantus.functions.norm_func"


def quantus_function_name(func: Any, module: str) -> str | None:
    """The name of ``func`` if it is (a ``functools.partial`` of) a function of Quantus' ``module``.
    """
    inner = getattr(func, "func", func)
    if getattr(inner, "__module__", None) == module:
        return getattr(inner, "__name__", None)
    return None


def _white(x: Tensor) -> Tensor:
    return x.amax(dim=tuple(range(1, x.ndim)), keepdim=True)


def map_baseline(value: Any) -> str | float | Callable[[Tensor], Tensor]:
    """Quantus' ``perturb_baseline`` as a baseline of
    :func:`xaiscore._engine.perturbation.make_baseline`.

    ``"black"`` -> ``"min"`` (the sample's minimum), ``"white"`` -> its maximum,
    ``"mean"`` -> ``"mean"`` (per channel, of the unperturbed sample), ``"uniform"``
    -> ``"uniform"`` (i.i.d. per element on ``[min x, max x]``), a number -> that number.

    Example:
        >>> map_baseline("black"), map_baseline(0)
        ('min', 0.0)
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)):
        raise DTypeError("Expected `perturb_baseline` as a name or a number, but got a bool.")
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str):
        name = value.lower()
        table: dict[str, str | Callable[[Tensor], Tensor]] = {
            "black": "min", "white": _white, "mean": "mean", "uniform": "uniform",
        }
        if name in table:
            return table[name]
        if name == "random":
            raise OptionError("`perturb_baseline='random'` was removed in Quantus; use 'uniform'.")
    raise QuantusCompatibilityError(
        "Expected `perturb_baseline` as 'black', 'white', 'mean', 'uniform' or a number, but got "
        f"{value!r} (neighbourhood baselines and arrays are not supported by the drop-in)."
    )


def check_perturb_func(perturb_func: Any, allowed: Iterable[str], metric: str) -> None:
    """Accept ``None`` or one of Quantus' perturbation functions the kernel implements."""
    if perturb_func is None:
        return
    allowed = tuple(allowed)
    name = quantus_function_name(perturb_func, _PERTURB)
    if name in allowed:
        return
    shown = getattr(perturb_func, "__name__", type(perturb_func).__name__)
    raise QuantusCompatibilityError(
        f"{metric} runs its perturbation inside a vectorised kernel and supports `perturb_func` "
        f"{' or '.join(f'quantus.functions.perturb_func.{a}' for a in allowed)} (the default), but "
        f"got {shown}. Use the kernel options through the class keywords instead, or the original "
        "quantus class."
    )


def perturb_option(perturb_func_kwargs: Mapping[str, Any] | None, key: str, default: Any,
                   metric: str,
                   allowed: Iterable[str] = ()) -> Any:
    """Quantus merges ``perturb_func_kwargs`` over the class keyword; read ``key`` from it
    (unknown keys raise)."""
    kwargs = dict(perturb_func_kwargs or {})
    value = kwargs.pop(key, default)
    unknown = set(kwargs) - set(allowed)
    if unknown:
        raise QuantusCompatibilityError(
            f"{metric} does not support the perturbation option(s) {sorted(unknown)} (supported: "
            f"{sorted({key, *allowed})})."
        )
    return value


_SIMILARITY_NAMES = {
    "correlation_spearman": "spearman",
    "correlation_pearson": "pearson",
    "ssim": "ssim_flat",
}


def map_similarity(func: Any, *, default: str, allow_callable: bool, metric: str) -> Any:
    """Quantus' ``similarity_func`` as a kernel similarity.

    ``None`` -> ``default``; Quantus' ``correlation_spearman``/``correlation_pearson``
    -> ``"spearman"``/``"pearson"``; its (flattened) ``ssim`` -> ``"ssim_flat"``.
    Any other callable ``f(a, b)`` on two 1-D numpy arrays (Quantus' protocol)
    is run per sample on the host where ``allow_callable``, else raises.
    """
    if func is None:
        return default
    name = quantus_function_name(func, _SIMILARITY)
    if name in _SIMILARITY_NAMES:
        return _SIMILARITY_NAMES[name]
    if not callable(func):
        raise DTypeError(
            f"Expected `similarity_func` to be callable, but got {type(func).__name__}.")
    if not allow_callable:
        raise QuantusCompatibilityError(
            f"{metric} supports `similarity_func` "
            "quantus.functions.similarity_func.correlation_pearson/correlation_spearman as its "
            f"kernel computes them, but got {getattr(func, '__name__', func)!r}."
        )

    def similarity(a: Tensor, b: Tensor) -> Tensor:
        left = a.detach().reshape(a.shape[0], -1).cpu().double().numpy()
        right = b.detach().reshape(b.shape[0], -1).cpu().double().numpy()
        values = [float(func(left[i], right[i])) for i in range(left.shape[0])]
        return torch.tensor(values, dtype=a.dtype if a.is_floating_point() else torch.float64,
                            device=a.device)

    return similarity


def map_norm(func: Any, name: str, metric: str) -> float:
    """Quantus' ``fro_norm``/``l2_norm`` -> 2, ``linf_norm`` -> inf (``None``: Quantus' default, 2).
    """
    if func is None:
        return 2.0
    found = quantus_function_name(func, _NORM)
    if found in ("fro_norm", "l2_norm"):
        return 2.0
    if found == "linf_norm":
        return float("inf")
    raise QuantusCompatibilityError(
        f"{metric} supports `{name}` quantus.functions.norm_func.fro_norm, l2_norm or linf_norm, "
        f"but got {getattr(func, '__name__', func)!r}."
    )
