"""The explain-function contract: what every re-explaining metric calls, and its one check.

An *explain function* maps a batch of inputs and target classes to attributions::

    explain_fn(x: (n, C, *S), target: (n,)) -> a: (n, C' , *S)    with C' = C or 1

It is **batched**: a re-explaining metric (robustness, randomization) calls it on
chunks of at most ``max_batch_size`` items drawn from a logical batch of
``B x n`` perturbed inputs, so it must treat rows independently (call
``model.eval()`` first: batch norm in training mode mixes rows) and must not
rely on being called with the original ``B`` rows. An *explainer factory*
builds one for a given model (the randomization checks re-explain with
re-initialised copies of the model).

The adapters that build explain functions (captum, Quantus-style, baselines) live in
:mod:`xaiscore.explainers`; this module is the contract they and the kernels share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from xaiscore._checks import NonFiniteError
from xaiscore._engine.batching import ModelOutputError

__all__ = ["ExplainFn", "ExplainerFactory", "BuiltExplainer", "check_explanation", "format_shape"]


@runtime_checkable
class ExplainFn(Protocol):
    """A batched explain function ``explain_fn(x, target) -> a``.

    Shape:
        - x: ``(n, C, *S)`` float inputs (1 to 3 spatial dims).
        - target: ``(n,)`` long class indices.
        - output: ``(n, C, *S)`` or ``(n, 1, *S)``, on the device of ``x``.

    Any function or callable object with this signature qualifies (a
    ``lambda x, t: ...`` as well as the adapters in :mod:`xaiscore.explainers`). It must
    treat rows independently, so that metrics may call it on chunks.
    """

    def __call__(self, x: Tensor, target: Tensor, /) -> Tensor: ...


ExplainerFactory = Callable[[nn.Module], ExplainFn]
"""Builds an explain function for a model: ``factory(model) -> explain_fn``."""


class BuiltExplainer:
    """Base class of the explain functions that :mod:`xaiscore.explainers` builds.

    They are explain functions, not factories: a metric that takes an
    ``explainer_factory`` (the randomization checks) rejects them with a hint to wrap
    them (``lambda model: captum_explainer(model, "Saliency")``).
    """


def format_shape(dims: Any) -> str:
    """``(2, 3)``-style text of a shape for error messages (``(5,)`` for one dim)."""
    dims = tuple(dims)
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def check_explanation(a: Any, x: Tensor, *, name: str = "explain_fn",
                      validate: bool = True) -> Tensor:
    """Check what an explain function returned for inputs ``x`` and return it.

    Args:
        a: The explain function's output.
        x: The inputs it was called on, ``(n, C, *S)``.
        name: The function's name for error messages.
        validate: Also check that every value is finite (reads the data and
            synchronises with the device; metrics call it with
            ``validate=False`` per chunk and check finiteness once at the end).

    Returns:
        ``a`` unchanged.

    Raises:
        ModelOutputError: ``a`` is not a floating-point tensor of shape
            ``(n, C, *S)`` or ``(n, 1, *S)`` on the device of ``x``.
        NonFiniteError: ``a`` holds NaN or inf (only when ``validate``).

    Shape:
        - a: ``(n, 1|C, *S)``; x: ``(n, C, *S)``; output: as ``a``.

    Example:
        >>> x = torch.zeros(2, 3, 4, 4)
        >>> check_explanation(torch.ones(2, 1, 4, 4), x).shape
        torch.Size([2, 1, 4, 4])
        >>> check_explanation(torch.ones(2, 4, 4), x)
        Traceback (most recent call last):
        ...
        xaiscore._engine.batching.ModelOutputError: Expected `explain_fn` to return attributions of shape (2, 3, 4, 4) or (2, 1, 4, 4) for inputs of shape (2, 3, 4, 4), but got (2, 4, 4). Add the channel axis with `a.unsqueeze(1)`.
    """  # noqa: E501
    if not isinstance(a, Tensor):
        raise ModelOutputError(
            f"Expected `{name}` to return a torch.Tensor of attributions, but got "
            f"{type(a).__name__}."
        )
    expected = f"{format_shape(x.shape)} or {format_shape((x.shape[0], 1) + tuple(x.shape[2:]))}"
    if (a.ndim != x.ndim or a.shape[0] != x.shape[0] or a.shape[2:] != x.shape[2:]
        or a.shape[1] not in (1, x.shape[1])):
        hint = (" Add the channel axis with `a.unsqueeze(1)`."
                if tuple(a.shape) == (x.shape[0],) + tuple(x.shape[2:]) else "")
        raise ModelOutputError(
            f"Expected `{name}` to return attributions of shape {expected} for inputs of shape "
            f"{format_shape(x.shape)}, but got {format_shape(a.shape)}.{hint}"
        )
    if not a.is_floating_point():
        raise ModelOutputError(
            f"Expected `{name}` to return floating-point attributions, but got dtype {a.dtype}.")
    if a.device != x.device:
        raise ModelOutputError(
            f"Expected `{name}` to return attributions on the device of its inputs ({x.device}), "
            f"but got {a.device}."
        )
    if validate and not bool(torch.isfinite(a).all()):
        raise NonFiniteError(
            f"Expected `{name}` to return finite attributions, but got {int(torch.isnan(a).sum())} "
            f"NaN and {int(torch.isinf(a).sum())} infinite value(s) for inputs of shape "
            f"{format_shape(x.shape)}."
        )
    return a

