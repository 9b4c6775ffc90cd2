"""The one rule for models in training mode: every kernel runs them in evaluation mode, then
restores them.

A model in training mode makes a sample's score depend on its batch-mates and on the chunk size
(batch norm normalises over the rows of each call), draws dropout masks from the global random
state (not from the kernel's ``generator``) and updates batch norm running statistics, i.e. it
changes the user's model. So every public kernel that receives a model -- as ``forward_fn`` or
``model`` (an ``nn.Module``), or inside a built explain function (its ``model`` attribute, as
the adapters of :mod:`xaiscore.explainers` have) -- switches it to evaluation mode for the call
(``model.eval()``, which respects overridden ``train`` methods) and gives every submodule its own
``training`` flag back afterwards, also when the kernel raises. A model already in evaluation
mode is not touched. To run a model in training mode on purpose (e.g. Monte Carlo dropout), wrap
it in a plain function: ``forward_fn=lambda x: model(x)`` is called as it is.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))          # training mode
    >>> @models_in_eval_mode("model")
    ... def flags(model):
    ...     return [m.training for m in model.modules()]
    >>> flags(model), [m.training for m in model.modules()]
    ([False, False, False], [True, True, True])
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from torch import nn

__all__ = ["evaluation_mode", "models_in_eval_mode", "held_models"]

F = TypeVar("F", bound=Callable[..., Any])


def held_models(value: Any) -> list[nn.Module]:
    """The models an argument holds: itself if an ``nn.Module``, else its ``model`` attribute if
    that is one."""
    if isinstance(value, nn.Module):
        return [value]
    held = getattr(value, "model", None) if value is not None else None
    return [held] if isinstance(held, nn.Module) else []


@contextlib.contextmanager
def evaluation_mode(*values: Any) -> Iterator[None]:
    """Run the models held by ``values`` (see :func:`held_models`) in evaluation mode inside the
    block.

    Every submodule's ``training`` flag is restored on exit, whatever the block raised.
    """
    saved: dict[int, tuple[nn.Module, bool]] = {}
    roots: list[nn.Module] = []
    for value in values:
        for model in held_models(value):
            if any(module.training for module in model.modules()):
                roots.append(model)
                for module in model.modules():
                    saved.setdefault(id(module), (module, module.training))
    try:
        for model in roots:
            model.eval()
        yield
    finally:
        for module, flag in saved.values():
            module.training = flag


def models_in_eval_mode(*names: str) -> Callable[[F], F]:
    """Decorate a kernel so that the models in its arguments ``names`` run in evaluation mode for
    the call.

    The arguments are found by name, whether passed by position or by keyword.
    """

    def decorate(function: F) -> F:
        parameters = list(inspect.signature(function).parameters)
        positions = {name: parameters.index(name) for name in names}

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = [
                kwargs.get(name) if positions[name] >= len(args) else args[positions[name]]
                for name in names
            ]
            if not any(held_models(value) for value in values):
                return function(*args, **kwargs)
            with evaluation_mode(*values):
                return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
