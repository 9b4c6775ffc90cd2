"""The options of a config's method entries: checked before any work, resolved when built.

Every method entry of a config (``{method = "RISE", n_masks = 500}``) is checked when the config
is parsed, so a typo fails in a second with the file and the entry named, not after the model
has trained:

* the option names against what the explainer takes (its builder's keyword arguments; for captum
  methods also the ``attribute`` arguments of the captum class);
* the option values by building the explainer on a stand-in model (the values the explainers
  check themselves: ``n_masks``, ``p``, ``grid_size``, ``head_fusion``, ``discard_ratio``,
  ``grid``, ``top_k``, ...). What needs the real model (a ``layer`` name, the attention modules)
  is checked when the run builds the explainer.

Options that are Python objects are written as references in a config:

* ``attention_fn`` (AttentionRollout, CheferRelevance), ``similarity_fn`` (Prototype) and a
  ``feature_mask`` (FeatureAblation, KernelShap, Lime) given as ``"package.module:function"``
  are imported when the explainer is built;
* a ``feature_mask`` given as a ``.npy`` or ``.pt`` file (relative to the config's folder) is
  read then; a nested list becomes a tensor
  (:func:`xaiscore.harness.methods.resolve_options`).

A model's ``explainer_options`` (``[model.explainer_options]`` or
``[models.<name>.explainer_options]``) go to every method of that model that takes them and
does not set them itself: the way a transformer passes its attention hook configuration
(``attention_modules``, ``attention_fn``, ``prefix_tokens``, ``patch_grid``) or a prototype
network its ``prototype_layer``/``similarity_fn`` once for all its methods.

Example:
    >>> from xaiscore.harness.config import parse_config
    >>> config = parse_config({"model": {"explainer_options": {"attention_modules": "*attn_drop"}},
    ...                        "methods": [{"method": "RISE", "n_masks": 64}, "AttentionRollout"]})
    >>> [dict(m.options) for m in config.methods]
    [{'n_masks': 64}, {'attention_modules': '*attn_drop'}]
    >>> parse_config({"methods": [{"method": "RISE", "n_mask": 64}]})
    Traceback (most recent call last):
    ...
    xaiscore.harness.config.ConfigError: <config>: unknown option 'n_mask' in `methods[0]` (RISE); ...
"""  # noqa: E501

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from xaiscore._checks import OptionError

if TYPE_CHECKING:
    from xaiscore.harness.config import MethodConfig, ModelConfig, RunConfig

__all__ = [
    "REFERENCE_OPTIONS",
    "accepted_options",
    "check_method_options",
    "check_explainer_options",
    "apply_model_options",
    "check_method_models",
    "methods_for_model",
]

#: Options a config may give as ``"package.module:function"`` (imported when the explainer is
#: built).
REFERENCE_OPTIONS = ("attention_fn", "similarity_fn", "feature_mask")
_MODULE_OPTIONS = ("attention_modules", "prototype_layer", "layer", "class_weights")
_ALWAYS = frozenset({"seed"})


def _keywords(function: Any) -> tuple[frozenset[str], bool]:
    """The keyword parameters of ``function`` and whether it takes ``**kwargs``."""
    parameters = inspect.signature(function).parameters.values()
    names = frozenset(p.name for p in parameters
                      if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
    return names, any(p.kind is p.VAR_KEYWORD for p in parameters)


@functools.lru_cache(maxsize=None)
def accepted_options(method: str) -> frozenset[str] | None:
    """The option names ``method`` takes in a config (``None``: any, e.g. ``quantus``).

    Example:
        >>> sorted(accepted_options("AttentionRollout"))[:3]
        ['attention_fn', 'attention_modules', 'class_token']
    """
    from xaiscore.explainers import CAPTUM_METHODS, MODEL_EXPLAINERS, captum_explainer
    from xaiscore.explainers.baselines import constant_explainer, random_explainer

    baselines = {"random": random_explainer, "constant": constant_explainer}
    if method in baselines:
        names, _ = _keywords(baselines[method])
        return names - {"generator"}
    if method in MODEL_EXPLAINERS:
        names, _ = _keywords(MODEL_EXPLAINERS[method])
        return (names - {"model", "generator"}) | _ALWAYS
    if method not in CAPTUM_METHODS:
        return None
    names, _ = _keywords(captum_explainer)
    spec = CAPTUM_METHODS[method]
    if spec.captum_class == "NoiseTunnel":  # its attribute() passes anything on to the base method
        return None
    try:
        import captum.attr as captum_attr
    except ImportError:  # checked when the explainer is built
        return None
    attribute, _ = _keywords(getattr(captum_attr, spec.captum_class).attribute)
    return (names | attribute | _ALWAYS) - {"model", "method", "generator", "inputs", "target"}


class _StandIn(nn.Module):
    """A model for checking option values: every submodule name resolves to a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :2]


def _stand_in_options(options: Mapping[str, Any], model: nn.Module) -> dict[str, Any]:
    """``options`` with the model-structure ones replaced by stand-ins the explainers accept."""
    values = dict(options)
    for key in _MODULE_OPTIONS:
        if key in values:
            values[key] = model.layer if key == "layer" else None
    values = {k: v for k, v in values.items() if v is not None or k not in _MODULE_OPTIONS}
    for key in ("attention_fn", "similarity_fn"):
        if key in values:
            values[key] = lambda *args: None
    if "feature_mask" in values:
        values["feature_mask"] = lambda x: x
    if "class_weights" in options:
        values["class_weights"] = torch.zeros(2, 1)
    return values


def _check_reference(value: Any, *, key: str, files: bool = False) -> None:
    if isinstance(value, str) and (":" in value or files):
        module, _, attribute = value.partition(":")
        if module and attribute or (files and value.endswith((".npy", ".pt"))):
            return
    expected = "'package.module:function'" + (", a .npy/.pt file or a list" if files else "")
    if files and isinstance(value, list):
        return
    raise OptionError(f"expected `{key}` as {expected}, but got {value!r}.")


def _check_references(options: dict[str, Any], base: Path | None, *, where: str) -> None:
    for key in REFERENCE_OPTIONS:
        if key in options:
            _check_reference(options[key], key=f"{where}.{key}",
                             files=key == "feature_mask")
    mask = options.get("feature_mask")
    if isinstance(mask, str) and mask.endswith((".npy", ".pt")):
        path = Path(mask).expanduser()
        options["feature_mask"] = str(base / path if base is not None and not path.is_absolute()
                                      else path)
    modules = options.get("attention_modules")
    if modules is not None and not (isinstance(modules, str) or (
            isinstance(modules, Sequence) and all(isinstance(m, str) for m in modules))):
        raise OptionError(f"expected `{where}.attention_modules` to be a module name or glob "
                            f"pattern, or a list of them, but got {modules!r}.")


def check_method_options(method: str, options: Mapping[str, Any], *, base: Path | None,
                         where: str) -> dict[str, Any]:
    """Check a method entry's options (names, then values); return them with paths resolved.

    Raises:
        OptionError: an unknown option (with a close match) or a bad value (the explainer's
            message), naming the entry and the method (the config adds the file).
    """
    options = dict(options)
    accepted = accepted_options(method)
    if accepted is not None:
        for key in options:
            if key not in accepted:
                close = difflib.get_close_matches(str(key), sorted(accepted), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else \
                    f"; {method} takes {sorted(accepted)}."
                raise OptionError(f"unknown option {key!r} in `{where}` ({method}){hint}")
    _check_references(options, base, where=where)
    _check_values(method, options, where=where)
    return options


def _check_values(method: str, options: Mapping[str, Any], *, where: str) -> None:
    """Build the explainer on a stand-in model; its own checks judge the values."""
    from xaiscore.explainers import ModelStructureError, make_explainer

    if method == "quantus":
        return
    model = _StandIn()
    values = _stand_in_options(options, model)
    try:
        make_explainer(method, model, **values)
    except (ModelStructureError, ImportError):
        return  # a property of the real model (or captum missing): checked when the run builds it
    except (OptionError, TypeError, ValueError) as error:
        raise OptionError(f"in `{where}` ({method}): {error}") from None


def check_explainer_options(options: Mapping[str, Any], *, base: Path | None, where: str) -> None:
    """Check a model's ``explainer_options``: each taken by some explainer, references well formed.

    Raises:
        OptionError: an option no explainer takes, or a malformed reference.
    """
    from xaiscore.explainers import list_explainers

    known: set[str] = set()
    for method in list_explainers():
        accepted = accepted_options(method)
        known |= accepted or set()
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise OptionError(f"unknown explainer option {key!r} in `{where}`{hint}")
    _check_references(dict(options), base, where=where)


def apply_model_options(methods: Sequence[MethodConfig],
                        model: ModelConfig) -> tuple[MethodConfig, ...]:
    """``methods`` with ``model.explainer_options`` added where the method takes them and does not
    set them itself."""
    shared = dict(model.explainer_options)
    if not shared:
        return tuple(methods)
    result = []
    for method in methods:
        accepted = accepted_options(method.method)
        added = {k: v for k, v in shared.items()
                 if k not in method.options and accepted is not None and k in accepted}
        result.append(dataclasses.replace(method, options={**method.options, **added})
                      if added else method)
    return tuple(result)


def check_method_models(config: RunConfig) -> None:
    """Every method's ``models`` names a model of ``[models]``, and every model has a method.

    Raises:
        OptionError: an unknown model name, ``models`` without a ``[models]`` table, or a model
            no method explains.
    """
    names = list(config.models)
    for position, method in enumerate(config.methods):
        if method.models and not names:
            raise OptionError(f"`methods[{position}].models` picks models of a "
                                       "`[models]` table, but the config has a single `model`.")
        unknown = [m for m in method.models if m not in config.models]
        if unknown:
            raise OptionError(f"unknown model(s) {unknown} in `methods[{position}].models`;"
                                       f" expected names from `models`: {names}.")
    for name in names:
        if not methods_for_model(config, name):
            raise OptionError(f"no method explains model {name!r}; list it in a method's "
                                       "`models` (or leave `models` out to explain every model).")


def methods_for_model(config: RunConfig, name: str) -> tuple[MethodConfig, ...]:
    """The methods of model ``name`` (of ``config.models``), its ``explainer_options`` applied."""
    chosen = [m for m in config.methods if not m.models or name in m.models]
    return apply_model_options(chosen, config.models[name])
