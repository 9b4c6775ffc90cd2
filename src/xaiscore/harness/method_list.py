"""The methods of a run: what :func:`~xaiscore.harness.runner.evaluate` accepts as a method entry,
normalised to one record per method with the inputs it can supply to metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from xaiscore._checks import OptionError
from xaiscore.harness.config import PRECOMPUTED, MethodConfig
from xaiscore.harness.methods import PrecomputedAttributions, method_settings

__all__ = ["MethodInput", "ALWAYS_AVAILABLE", "RunMethod", "normalise_methods"]

#: What a method entry of :func:`evaluate` may be: a method name, a config
#: mapping (``{"method": ..., "name": ..., **options}``), a :class:`MethodConfig`,
#: or ``(name, explain_fn)`` for your own explain function.
MethodInput = str | Mapping[str, Any] | MethodConfig | tuple[str,
                                                             Callable[[Tensor, Tensor], Tensor]]

#: Inputs the runner supplies for every method. ``segments`` is passed as ``None``: the
#: kernels that take a segmentation then use their built-in regular grid (``n_segments`` cells).
ALWAYS_AVAILABLE = frozenset({"a", "mask", "x", "target", "forward_fn", "segments"})


@dataclass
class RunMethod:
    """One method of a run: its name, settings and how it explains (config or callable)."""

    name: str
    settings: dict[str, Any]
    config: MethodConfig | None = None
    explain_fn: Callable[[Tensor, Tensor], Tensor] | None = None
    precomputed: PrecomputedAttributions | None = None

    @property
    def available(self) -> frozenset[str]:
        extra = {"model"}
        if self.precomputed is None:
            extra.add("explain_fn")
        if self.config is not None and self.precomputed is None:
            extra.add("explainer_factory")  # a configured method can be rebuilt for another model
        return ALWAYS_AVAILABLE | extra


def normalise_methods(methods: Sequence[MethodInput]) -> list[RunMethod]:
    from xaiscore.harness.config import parse_config

    if isinstance(methods, (str, Mapping)) or not methods:
        raise OptionError(f"Expected `methods` to be a non-empty list, but got {methods!r}.")
    result: list[RunMethod] = []
    for position, entry in enumerate(methods):
        if isinstance(entry, tuple) and len(entry) == 2 and callable(entry[1]):
            name, explain_fn = entry
            result.append(RunMethod(str(name), {"method": "callable", "repr": repr(explain_fn)},
                                  explain_fn=explain_fn))
            continue
        if isinstance(entry, MethodConfig):
            entry = {"method": entry.method, "name": entry.name, **entry.options}
        (config,) = parse_config({"methods": [entry]}, source=f"methods[{position}]").methods
        precomputed = None
        if config.method == PRECOMPUTED:
            precomputed = PrecomputedAttributions(config.options["path"],
                                                  ids=config.options.get("ids"),
                                                  variable=config.options.get("variable",
                                                                              "attributions"))
        result.append(RunMethod(config.name, method_settings(config), config=config,
                              precomputed=precomputed))
    names = [m.name for m in result]
    if len(set(names)) != len(names):
        raise OptionError(f"Expected distinct method names, but got {names}.")
    return result
