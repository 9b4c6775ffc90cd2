"""Input conversion and validation at the boundary of :mod:`xaiscore.stats`.

Everything in the statistics package computes in float64 numpy; tensors are
detached and copied to the host here, once (this is a reporting tool, not a
kernel: the host copy is the point).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from xaiscore._checks import DTypeError, OptionError, ShapeError, check_fraction

__all__ = [
    "as_float_array",
    "as_scores",
    "check_alpha",
    "check_direction",
    "method_names",
    "orient",
    "rng_keyword",
    "scipy_wilcoxon_method",
]


def as_float_array(values: Any, name: str) -> np.ndarray:
    """``values`` (numpy array, torch tensor or nested sequence of numbers) as float64 numpy.

    Raises:
        DTypeError: not numeric (strings, objects, complex, bool).
    """
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # a torch.Tensor (torch not imported)
        if values.is_complex() or str(values.dtype) == "torch.bool":
            raise DTypeError(
                f"Expected `{name}` to hold real numbers (int or float), but got dtype "
                f"{values.dtype}."
            )
        values = values.detach().cpu().double().numpy()  # half and bfloat16 included
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as error:  # ragged nested sequences
        raise ShapeError(f"Expected `{name}` to be a rectangular array, but got {error}.") from None
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer)
                                       or np.issubdtype(array.dtype, np.floating)):
        raise DTypeError(
            f"Expected `{name}` to hold real numbers (int or float), but got dtype {array.dtype}."
        )
    return array.astype(np.float64, copy=True)


def as_scores(values: Any, name: str = "scores", *, min_methods: int = 1) -> np.ndarray:
    """A ``(methods, samples)`` float64 array, NaN allowed, +-inf turned into NaN.

    Raises:
        DTypeError: not numeric.
        ShapeError: not 2-D, fewer than ``min_methods`` rows or no column.
    """
    array = as_float_array(values, name)
    if array.ndim != 2:
        raise ShapeError(
            f"Expected `{name}` of shape (methods, samples), but got {array.ndim} dim(s) "
            f"{tuple(array.shape)}."
        )
    if array.shape[0] < min_methods or array.shape[1] < 1:
        raise ShapeError(
            f"Expected `{name}` with at least {min_methods} method(s) and one sample, but got "
            f"shape {tuple(array.shape)}."
        )
    array[~np.isfinite(array)] = np.nan
    return array


def check_direction(higher_is_better: Any, name: str = "higher_is_better", *,
                    allow_none: bool = True) -> bool | None:
    """``True``, ``False`` or (when allowed) ``None``; anything else raises."""
    if higher_is_better is None and allow_none:
        return None
    if isinstance(higher_is_better, (bool, np.bool_)):
        return bool(higher_is_better)
    allowed = "True, False or None" if allow_none else "True or False"
    raise OptionError(f"Expected `{name}` to be {allowed}, but got {higher_is_better!r}.")


def orient(scores: np.ndarray, higher_is_better: bool | None) -> np.ndarray:
    """Scores with lower-is-better negated, so that higher is better (``None``: unchanged)."""
    return -scores if higher_is_better is False else scores


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """A significance level in (0, 1)."""
    return check_fraction(alpha, name, low_inclusive=False, high_inclusive=False)


def method_names(methods: Sequence[str] | None, count: int) -> tuple[str, ...]:
    """``methods`` as a tuple of ``count`` distinct strings (default ``"0"``, ``"1"``, ...)."""
    if methods is None:
        return tuple(str(i) for i in range(count))
    if isinstance(methods, str):
        raise DTypeError(
            f"Expected `methods` to be a sequence of names, but got the string {methods!r}."
        )
    names = tuple(str(m) for m in methods)
    if len(names) != count:
        raise ShapeError(f"Expected {count} method names (one per row), but got {len(names)}.")
    if len(set(names)) != count:
        raise OptionError(f"Expected distinct method names, but got {names}.")
    return names


@functools.cache
def rng_keyword(function: Callable[..., Any]) -> str:
    """``"rng"`` for scipy functions that take it (scipy >= 1.15), else ``"random_state"``."""
    return "rng" if "rng" in inspect.signature(function).parameters else "random_state"


def scipy_wilcoxon_method(method: str) -> str:
    """scipy's name for a Wilcoxon ``method`` (``"asymptotic"`` was ``"approx"`` before 1.13)."""
    import scipy

    major, minor = (int(part) for part in scipy.__version__.split(".")[:2])
    return "approx" if method == "asymptotic" and (major, minor) < (1, 13) else method
