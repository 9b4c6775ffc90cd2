"""Model randomization for the MPRT family: layer by layer, never touching the user's model.

A **layer** is a module that owns parameters directly (``module.parameters(recurse=False)``
is not empty), listed in ``model.named_modules()`` order (the order in which the
modules were registered, which for ``nn.Sequential`` and most models is the
order of the forward pass, input to output). Containers such as
``nn.Sequential`` own no parameters and are skipped; so are parameter-free
modules (activations, pooling, ``BatchNorm`` with ``affine=False``). A module
registered twice is listed once.

Orders (Hedström et al. 2023, "Sanity Checks Revisited"):
    * ``"bottom_up"`` (default, recommended by Hedström et al.): cascading from
      the first layer to the last; step ``k`` has layers ``1..k`` randomized.
    * ``"top_down"`` (Adebayo et al. 2018): cascading from the last layer to
      the first; lower layers stay intact until the end.
    * ``"independent"``: step ``k`` has only layer ``k`` randomized (in
      ``bottom_up`` order), all others original.

Re-initialisation rule (``reinit``):
    * ``"reset_parameters"`` (default): the layer's own ``reset_parameters()``
      (PyTorch's default initialisation, e.g. Kaiming-uniform for ``nn.Linear``
      and ``nn.Conv2d``; for ``BatchNorm`` it also resets the running
      statistics) is run on a float64 CPU copy of the layer under a forked CPU
      random state seeded with the layer's seed, and the layer's own
      parameters and buffers are copied back (cast to their dtype). The global
      random state is left as it was, and the random weights do not depend on
      the device or the floating dtype of the model. ``nn.MultiheadAttention``
      names its initialisation ``_reset_parameters()`` (Xavier-uniform input
      projections, zero biases), which is used the same way. Other layers without
      ``reset_parameters()`` fall back to ``"normal"``.
    * ``"normal"``: every own parameter is redrawn from
      :math:`\\mathcal{N}(0, s^2)` with ``s`` the root mean square of the
      original tensor (an all-zero tensor stays zero).
    * a callable ``reinit(module, generator)`` that re-initialises the
      module's own parameters in place, drawing only from the given CPU
      ``torch.Generator``.

Seeds: layer ``i`` (its position in the ``named_modules`` order) always gets the
same seed, derived from ``seed`` and ``i`` alone, whatever the order; so the
fully randomized model is the same for ``"bottom_up"`` and ``"top_down"``.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> [name for name, _ in parameterised_layers(model)]
    ['0', '2']
    >>> before = {k: v.clone() for k, v in model.state_dict().items()}
    >>> steps = [(name, m[0].weight.clone()) for name, m in randomized_models(model, seed=1)]
    >>> [name for name, _ in steps]
    ['0', '2']
    >>> all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    True
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Literal

import torch
from torch import Tensor, nn

from xaiscore._checks import DTypeError, OptionError, check_option
from xaiscore._engine.batching import carry_model_output

__all__ = [
    "LayerOrder",
    "LAYER_ORDERS",
    "NoParameterisedLayersError",
    "parameterised_layers",
    "layer_seeds",
    "reinitialise_layer",
    "randomized_models",
]

LayerOrder = Literal["bottom_up", "top_down", "independent"]
LAYER_ORDERS: tuple[str, ...] = ("bottom_up", "top_down", "independent")
Reinit = Literal["reset_parameters", "normal"] | Callable[[nn.Module, torch.Generator], None]


class NoParameterisedLayersError(OptionError):
    """The model has no module that owns parameters, so there is nothing to randomize."""


def _owns_parameters(module: nn.Module) -> bool:
    return next(module.parameters(recurse=False), None) is not None


def parameterised_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers of ``model``: modules owning parameters, in ``named_modules`` order.

    The root module itself counts when it owns parameters (``""`` is its name).

    Raises:
        DTypeError: ``model`` is not an ``nn.Module``.
        NoParameterisedLayersError: no module owns parameters.
    """
    if not isinstance(model, nn.Module):
        raise DTypeError(
            f"Expected `model` to be a torch.nn.Module, but got {type(model).__name__}.")
    layers = [(name, module) for name, module in model.named_modules() if _owns_parameters(module)]
    if not layers:
        raise NoParameterisedLayersError(
            f"Expected `model` to have at least one layer with parameters to randomize, but "
            f"{type(model).__name__} has none."
        )
    return layers


def layer_seeds(seed: int, n_layers: int) -> list[int]:
    """One seed per layer (by position in ``named_modules`` order), derived from ``seed`` alone."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DTypeError(f"Expected `seed` to be an int, but got {type(seed).__name__} {seed!r}.")
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2**62, (n_layers,), generator=generator).tolist()


def _own_tensors(module: nn.Module) -> dict[str, Tensor]:
    tensors = dict(module.named_parameters(recurse=False))
    tensors.update({name: b for name, b in module.named_buffers(recurse=False) if b is not None})
    return tensors


def _normal_(module: nn.Module, generator: torch.Generator) -> None:
    for parameter in module.parameters(recurse=False):
        scale = parameter.detach().double().pow(2).mean().sqrt().item()
        draw = torch.randn(parameter.shape, generator=generator, dtype=torch.float64) * scale
        parameter.copy_(draw.to(dtype=parameter.dtype, device=parameter.device))


def _reset_method(module: nn.Module) -> str | None:
    """The name of the layer's own initialisation, if it has one."""
    if callable(getattr(module, "reset_parameters", None)):
        return "reset_parameters"
    if isinstance(module, nn.MultiheadAttention):  # torch keeps its initialisation private
        return "_reset_parameters"
    return None


def _cpu64(t: Tensor) -> Tensor:
    t = t.detach().to("cpu", copy=True)
    return t.to(torch.float64) if t.is_floating_point() else t


def reinitialise_layer(module: nn.Module, seed: int, reinit: Reinit = "reset_parameters") -> None:
    """Re-initialise the own parameters of ``module`` in place, deterministically under ``seed``.

    See the module docstring for the rules. The global random state is unchanged.
    """
    with torch.no_grad():
        if callable(reinit):
            reinit(module, torch.Generator().manual_seed(seed))
            return
        check_option(reinit, "reinit", ("reset_parameters", "normal"))
        reset = _reset_method(module)
        if reinit == "normal" or reset is None:
            _normal_(module, torch.Generator().manual_seed(seed))
            return
        # A float64 CPU copy of the layer (its own tensors only), reset under a forked CPU random
        # state: the draws then depend on the seed alone, not on the model's device or floating
        # dtype.
        fresh = copy.copy(module)
        fresh._parameters = {k: None if p is None
                             else nn.Parameter(_cpu64(p), requires_grad=p.requires_grad)
                             for k, p in module._parameters.items()}
        fresh._buffers = {k: None if b is None else _cpu64(b) for k, b in module._buffers.items()}
        fresh._modules = {k: copy.deepcopy(m).to("cpu", torch.float64) if m is not None else None
                          for k, m in module._modules.items()}
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            getattr(fresh, reset)()
        new = _own_tensors(fresh)
        for name, tensor in _own_tensors(module).items():
            tensor.copy_(new[name].to(device=tensor.device, dtype=tensor.dtype))


def randomized_models(
    model: nn.Module,
    *,
    order: LayerOrder = "bottom_up",
    seed: int = 0,
    reinit: Reinit = "reset_parameters",
    include_original: bool = False,
) -> Iterator[tuple[str | None, nn.Module]]:
    """Yield ``(layer_name, randomized_model)`` for each randomization step.

    The model is deep-copied once; the copy is randomized step by step and
    yielded each time (the same object, changed in place between steps: use it
    before advancing the iterator). ``model`` itself is never modified.
    With ``include_original``, the unmodified copy is yielded first, as
    ``(None, copy)``, so that even the original explanations never run on
    ``model`` (an explainer that mutates state, e.g. batch norm statistics in
    training mode, then cannot touch it).

    Args:
        model: The model to randomize.
        order: ``"bottom_up"``, ``"top_down"`` or ``"independent"`` (module docstring).
        seed: Seeds every layer's re-initialisation (see :func:`layer_seeds`).
        reinit: ``"reset_parameters"``, ``"normal"`` or a callable (module docstring).
        include_original: Yield ``(None, unmodified copy)`` first.

    Raises:
        OptionError: unknown ``order`` or ``reinit``.
        NoParameterisedLayersError: the model has no layer with parameters.
    """
    check_option(order, "order", LAYER_ORDERS)
    if not callable(reinit):
        check_option(reinit, "reinit", ("reset_parameters", "normal"))
    n_layers = len(parameterised_layers(model))
    seeds = layer_seeds(seed, n_layers)
    working = carry_model_output(model, copy.deepcopy(model))
    layers = list(enumerate(parameterised_layers(working)))
    if order == "top_down":
        layers = layers[::-1]
    if include_original:
        yield None, working
    for index, (name, module) in layers:
        saved = None
        if order == "independent":
            saved = {k: t.detach().clone() for k, t in _own_tensors(module).items()}
        reinitialise_layer(module, seeds[index], reinit)
        yield name, working
        if saved is not None:
            with torch.no_grad():
                for k, t in _own_tensors(module).items():
                    t.copy_(saved[k])
