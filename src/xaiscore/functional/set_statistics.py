"""The contract of a set-level metric computed from fixed-size sufficient statistics.

Some metrics are defined over a whole evaluation set, yet need only a few numbers per
set to be computed exactly: per-class hit counts (per-class pointing accuracy),
per-threshold counts (MaxBoxAcc, PxAP). Such a metric describes itself with a
:class:`SetStatistics`:

* ``zeros(**options)``: the statistics of the empty set, a dict of tensors whose shapes
  and dtypes depend on the options only (e.g. ``num_classes``);
* ``update(*inputs, **optional_inputs, **options)``: the statistics of one batch, same
  keys, shapes and dtypes (``optional_inputs``, e.g. ground-truth ``boxes`` instead of a
  ``mask``, are passed by keyword when given); the statistics of a union of disjoint batches are
  their **sums**, so they add up over batches and over processes (``torch.distributed`` all-reduce)
  exactly;
* ``compute(statistics, **options)``: the metric from the summed statistics, a
  ``NamedTuple`` whose **first field is the 0-d metric value**.

Each function receives only the options its signature names (:func:`call_with_options`).
The functional kernel is then ``compute(update(...))`` on one batch, and
``xaiscore.metrics`` turns the same description into a ``torchmetrics`` class whose states
are the statistics (``dist_reduce_fx="sum"``): its result is independent of how the set
is split into batches and processes, with memory that does not grow with the set.

A new metric of this kind registers its spec with ``scope="set"`` and
``statistics="module:ATTRIBUTE"`` naming its :class:`SetStatistics`; see
:mod:`xaiscore.functional.pointing_accuracy` for a complete example.

Example:
    >>> import torch
    >>> counts = SetStatistics(
    ...     inputs=("values",),
    ...     zeros=lambda: {"total": torch.zeros((), dtype=torch.float64),
    ...                    "n": torch.zeros((), dtype=torch.float64)},
    ...     update=lambda values: {"total": values.double().sum(),
    ...                            "n": torch.tensor(float(values.numel()))},
    ...     compute=lambda statistics: (statistics["total"] / statistics["n"],),
    ... )
    >>> first, second = counts.update(torch.tensor([1.0, 2.0])), counts.update(torch.tensor([6.0]))
    >>> summed = {key: first[key] + second[key] for key in first}
    >>> counts.compute(summed)[0].item()
    3.0
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

__all__ = ["SetStatistics", "call_with_options"]


@dataclass(frozen=True)
class SetStatistics:
    """A set-level metric as summable, fixed-size statistics and a final reduction.

    Attributes:
        inputs: The tensors ``update`` takes positionally, e.g. ``("a", "mask", "target")``.
        zeros: ``zeros(**options) -> dict[str, Tensor]``: the statistics of the empty set.
        update: ``update(*inputs, **options) -> dict[str, Tensor]``: one batch's statistics.
        compute: ``compute(statistics, **options) -> NamedTuple``: the metric; its first field
            is the 0-d value.
        optional_inputs: Per-batch tensors ``update`` takes by keyword when they are given
            (e.g. ``("mask", "boxes")``: the ground truth as a mask or as boxes); empty by
            default.
    """

    inputs: tuple[str, ...]
    zeros: Callable[..., dict[str, Tensor]]
    update: Callable[..., dict[str, Tensor]]
    compute: Callable[..., Any]
    optional_inputs: tuple[str, ...] = ()

    def option_names(self) -> frozenset[str]:
        """Every keyword option one of the three functions accepts."""
        names: set[str] = set()
        for fn in (self.zeros, self.update, self.compute):
            names |= {
                p.name
                for p in inspect.signature(fn).parameters.values()
                if p.kind is p.KEYWORD_ONLY
            }
        return frozenset(names)


def call_with_options(fn: Callable[..., Any], *args: Any, options: Mapping[str, Any]) -> Any:
    """``fn(*args, **options)`` restricted to the keyword-only options ``fn`` declares.

    Example:
        >>> def f(x, *, scale=1):
        ...     return x * scale
        >>> call_with_options(f, 2, options={"scale": 3, "other": 0})
        6
    """
    parameters = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return fn(*args, **options)
    accepted = {
        name: value
        for name, value in options.items()
        if name in parameters and parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
    }
    return fn(*args, **accepted)
