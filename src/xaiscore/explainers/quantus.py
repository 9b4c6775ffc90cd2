"""An adapter for Quantus-style numpy explain functions (``quantus.explain`` by default)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from xaiscore._checks import DTypeError, check_tensor
from xaiscore._engine.batching import ModelOutputError
from xaiscore._engine.explain_fn import BuiltExplainer, check_explanation

__all__ = ["QuantusExplainer", "quantus_explainer"]


class QuantusExplainer(BuiltExplainer):
    """A Quantus-style numpy ``explain_func`` as an :class:`ExplainFn`; see
    :func:`quantus_explainer`."""

    def __init__(self, model: Any, explain_func: Callable[..., Any] | None = None,
                 **explain_func_kwargs: Any) -> None:
        if explain_func is None:
            try:
                explain_func = importlib.import_module("quantus").explain
            except ImportError as error:
                raise ImportError(
                    "quantus_explainer without `explain_func` uses quantus.explain; install it "
                    "with `pip install xaiscore[quantus]`."
                ) from error
        if not callable(explain_func):
            raise DTypeError(
                f"Expected `explain_func` to be callable, but got {type(explain_func).__name__}.")
        self.model = model
        self.explain_func = explain_func
        self.explain_func_kwargs = explain_func_kwargs

    def __repr__(self) -> str:
        name = getattr(self.explain_func, "__qualname__", type(self.explain_func).__name__)
        return (
            f"quantus_explainer({type(self.model).__name__}, {name}, "
            f"**{self.explain_func_kwargs!r})"
        )

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        x = check_tensor(x, "x")
        training = ([m.training for m in self.model.modules()] if isinstance(self.model, nn.Module)
                    else None)
        try:
            out = self.explain_func(
                model=self.model,
                inputs=x.detach().cpu().numpy(),
                targets=target.detach().cpu().numpy(),
                **self.explain_func_kwargs,
            )
        finally:
            # quantus.explain calls model.eval(); give the model back as it came
            if training is not None:
                for module, flag in zip(self.model.modules(), training):
                    module.training = flag
        if isinstance(out, Tensor):
            a = out.detach().to(device=x.device, dtype=x.dtype)
        else:
            try:
                a = torch.as_tensor(np.asarray(out), dtype=x.dtype, device=x.device)
            except (TypeError, ValueError) as error:
                raise ModelOutputError(
                    "Expected `explain_func` to return a numpy array of attributions, but got "
                    f"{type(out).__name__}."
                ) from error
        if a.ndim == x.ndim - 1 and a.shape[0] == x.shape[0] and a.shape[1:] == x.shape[2:]:
            a = a.unsqueeze(1)  # Quantus often sums the channel axis away
        return check_explanation(a, x, name="explain_func", validate=False)


def quantus_explainer(
    model: Any, explain_func: Callable[..., Any] | None = None, **explain_func_kwargs: Any
) -> QuantusExplainer:
    """A Quantus-style ``explain_func(model, inputs, targets, **kwargs)`` (numpy in/out) as an
    explain function.

    The inputs are moved to the host as numpy arrays, the result comes back as
    a tensor on the device and in the dtype of ``x``; a result without channel
    axis ``(n, *S)`` (Quantus sums channels by default) gets one, ``(n, 1, *S)``.
    ``quantus.explain`` calls ``model.eval()``; the adapter restores each
    module's training flag afterwards.

    Args:
        model: Passed to ``explain_func`` as ``model``.
        explain_func: Defaults to ``quantus.explain`` (needs ``xaiscore[quantus]``).
        **explain_func_kwargs: Passed on, e.g. ``method="Saliency"``.

    Shape:
        - x: ``(n, C, *S)``; target: ``(n,)``; output: ``(n, C, *S)`` or ``(n, 1, *S)``.

    Example:
        >>> def explain_func(model, inputs, targets, **kwargs):
        ...     return inputs.sum(axis=1) * 2.0  # a toy numpy explainer: no channel axis
        >>> explain = quantus_explainer(None, explain_func)
        >>> explain(torch.ones(2, 3, 4, 4), torch.tensor([0, 1])).shape
        torch.Size([2, 1, 4, 4])
    """
    return QuantusExplainer(model, explain_func, **explain_func_kwargs)

