r"""Prototype networks ("this looks like that"): attribution maps from prototype similarity maps.

A part-prototype network (ProtoPNet, Chen et al., NeurIPS 2019, and its successors) compares
every position ``u`` of a feature map with ``m`` learned prototypes, giving similarity maps
:math:`g_j(x)(u)` ``(n, m, *s)``; the class logits are a linear layer (the class connections
:math:`w_{c,j}`) over the maps' maxima. For a target class ``c`` the adapter returns

.. math:: a(x) = \mathrm{up}\Big(\sum_{j \in J_c} w_{c,j}\, g_j(x)\Big)

where :math:`J_c` holds the ``top_k`` prototypes with the largest contribution
:math:`w_{c,j} \max_u g_j(x)(u)` to the logit of ``c`` among the candidates (``"positive"``:
prototypes with a positive connection to ``c``, i.e. ProtoPNet's own-class prototypes;
``"all"``), ties to the lower prototype index, and ``up`` resizes to the input
((bi/tri)linear by default; ProtoPNet's visualisations use bicubic, ``upsample="bicubic"``).
Upsampling is linear, so the sum may be taken before it.

**Model structure.** By default a forward hook reads the output of the submodule named
``prototype_layer`` (the similarity maps ``(n, m, *s)``, one spatial dim per input dim) and the
class connections are the ``weight`` ``(K, m)`` of the submodule named ``last_layer``, as in
:class:`~xaiscore.explainers.tiny_models.TinyProtoPNet`. Other structures: ``prototype_layer``
and ``class_weights`` take other dotted names, ``similarity_fn(model, x) -> (n, m, *s)``
replaces the hook (e.g. ``lambda m, x: m.distance_2_similarity(m.push_forward(x)[1])`` for the
authors' ProtoPNet code) and ``class_weights`` may be a ``(K, m)`` tensor. Names are resolved on
every call, so the randomization checks (which explain re-initialised copies) see the
randomized layers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from xaiscore._checks import DTypeError, check_option, check_positive_int
from xaiscore._engine.batching import ModelOutputError
from xaiscore._engine.explain_fn import BuiltExplainer, format_shape
from xaiscore.explainers._common import (
    UPSAMPLE_MODES,
    ModelStructureError,
    check_model,
    check_model_inputs,
    module_names_hint,
    upsample,
)

__all__ = ["PrototypeExplainer", "prototype_explainer", "SimilarityFn", "PROTOTYPE_CANDIDATES"]

SimilarityFn = Callable[[nn.Module, Tensor], Tensor]
"""``similarity_fn(model, x) -> (n, m, *s)`` prototype similarity maps."""
PROTOTYPE_CANDIDATES: tuple[str, ...] = ("positive", "all")


def _submodule(model: nn.Module, name: str, role: str, hint: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ModelStructureError(
            f"Expected {type(model).__name__} to have a submodule {name!r} ({role}), but its "
            "submodules are "
            f"{module_names_hint(model)}. {hint}"
        ) from None


class PrototypeExplainer(BuiltExplainer):
    """Prototype-network attribution maps; build it with :func:`prototype_explainer`."""

    def __init__(
        self,
        model: nn.Module,
        /,
        *,
        top_k: int | None = 3,
        candidates: str = "positive",
        prototype_layer: str = "prototype_layer",
        similarity_fn: SimilarityFn | None = None,
        class_weights: str | Tensor = "last_layer",
        upsample: str = "linear",
    ) -> None:
        self.model = check_model(model)
        self.top_k = None if top_k is None else check_positive_int(top_k, "top_k")
        self.candidates = check_option(candidates, "candidates", PROTOTYPE_CANDIDATES)
        self.upsample = check_option(upsample, "upsample", UPSAMPLE_MODES)
        if similarity_fn is not None and not callable(similarity_fn):
            raise DTypeError(
                f"Expected `similarity_fn` to be callable, but got {type(similarity_fn).__name__}."
            )
        if not isinstance(prototype_layer, str):
            raise DTypeError(
                f"Expected `prototype_layer` to be a dotted module name, but got "
                f"{type(prototype_layer).__name__}."
            )
        if not isinstance(class_weights, (str, Tensor)):
            raise DTypeError(
                f"Expected `class_weights` to be a dotted module name or a (K, m) tensor, but got "
                f"{type(class_weights).__name__}."
            )
        self.similarity_fn = similarity_fn
        self.prototype_layer = prototype_layer
        self.class_weights = class_weights
        if similarity_fn is None:  # fail at construction, not at the first call
            _submodule(
                model,
                prototype_layer,
                "the prototype layer, whose output is the similarity maps",
                "Pass `prototype_layer` or `similarity_fn(model, x)`.",
            )
        self._weights()

    def __repr__(self) -> str:
        return (
            f"prototype_explainer({type(self.model).__name__}, top_k={self.top_k}, "
            f"candidates={self.candidates!r})"
        )

    def _weights(self) -> Tensor:
        if isinstance(self.class_weights, Tensor):
            weights = self.class_weights
        else:
            layer = _submodule(
                self.model,
                self.class_weights,
                "the class-connection layer",
                "Pass `class_weights` (a module name or a (K, m) tensor).",
            )
            weights = getattr(layer, "weight", None)
            if not isinstance(weights, Tensor):
                raise ModelStructureError(
                    f"Expected the class-connection layer {self.class_weights!r} to have a "
                    f"`weight` tensor (K, m), but {type(layer).__name__} has none."
                )
        if weights.ndim != 2 or not weights.is_floating_point():
            raise ModelStructureError(
                f"Expected class-connection weights (K, m) of a floating dtype, but got "
                f"{format_shape(weights.shape)} of dtype {weights.dtype}."
            )
        return weights.detach()

    def similarity_maps(self, x: Tensor) -> Tensor:
        """The similarity maps ``(n, m, *s)`` of ``x`` (one forward pass, in inference mode).

        Example:
            >>> from xaiscore.explainers.tiny_models import TinyProtoPNet
            >>> model = TinyProtoPNet(1, 2, prototypes_per_class=3).eval()
            >>> prototype_explainer(model).similarity_maps(torch.rand(4, 1, 16, 16)).shape
            torch.Size([4, 6, 4, 4])
        """
        with torch.inference_mode():
            if self.similarity_fn is not None:
                maps = self.similarity_fn(self.model, x)
                name = "similarity_fn"
            else:
                layer = _submodule(
                    self.model,
                    self.prototype_layer,
                    "the prototype layer",
                    "Pass `prototype_layer` or `similarity_fn(model, x)`.",
                )
                outputs: list = []
                handle = layer.register_forward_hook(lambda module, args, out: outputs.append(out))
                try:
                    self.model(x)
                finally:
                    handle.remove()
                if len(outputs) != 1:
                    raise ModelStructureError(
                        f"Expected the prototype layer {self.prototype_layer!r} to run once per "
                        f"forward pass, but it ran {len(outputs)} times."
                    )
                maps, name = outputs[0], f"the prototype layer {self.prototype_layer!r}"
        if (
            not isinstance(maps, Tensor)
            or maps.ndim != x.ndim
            or maps.shape[0] != x.shape[0]
            or not maps.is_floating_point()
        ):
            shape = format_shape(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
            raise ModelOutputError(
                f"Expected {name} to give similarity maps (n, m, *s) of a floating dtype with "
                f"{x.ndim - 2} spatial dim(s) for inputs {format_shape(x.shape)}, but got {shape}."
            )
        return maps

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        x, target = check_model_inputs(x, target)
        maps = self.similarity_maps(x)
        with torch.inference_mode():
            weights = self._weights().to(device=maps.device, dtype=maps.dtype)
            if weights.shape[1] != maps.shape[1]:
                raise ModelStructureError(
                    f"Expected class-connection weights (K, {maps.shape[1]}) for "
                    f"{maps.shape[1]} prototypes, but got {format_shape(weights.shape)}."
                )
            w = weights.index_select(0, target.to(maps.device))  # (n, m)
            contribution = w * maps.flatten(2).amax(2)
            eligible = (
                w > 0 if self.candidates == "positive" else torch.ones_like(w, dtype=torch.bool)
            )
            if self.top_k is not None and self.top_k < w.shape[1]:
                key = torch.where(eligible, contribution, torch.full_like(contribution, -torch.inf))
                chosen = torch.sort(key, dim=1, descending=True, stable=True).indices[
                    :, : self.top_k
                ]
                eligible = eligible & torch.zeros_like(eligible).scatter(1, chosen, True)
            coefficients = torch.where(eligible, w, torch.zeros_like(w))
            combined = torch.einsum("nj,nj...->n...", coefficients, maps).unsqueeze(1)
            out = upsample(combined, tuple(x.shape[2:]), self.upsample).to(x.dtype)
        return out.clone()


def prototype_explainer(
    model: nn.Module,
    /,
    *,
    top_k: int | None = 3,
    candidates: str = "positive",
    prototype_layer: str = "prototype_layer",
    similarity_fn: SimilarityFn | None = None,
    class_weights: str | Tensor = "last_layer",
    upsample: str = "linear",
) -> PrototypeExplainer:
    r"""A prototype network's similarity maps as attribution maps (see the module docstring).

    :math:`a = \mathrm{up}(\sum_{j \in J_c} w_{c,j} g_j(x))` over the ``top_k`` prototypes with the
    largest contribution :math:`w_{c,j} \max_u g_j(x)(u)` to the target logit. One forward pass
    under ``torch.inference_mode()``.

    Args:
        model: The prototype network.
        top_k: How many prototypes to combine (``None``: every candidate).
        candidates: ``"positive"`` (prototypes with a positive class connection to the target)
            or ``"all"``.
        prototype_layer: Dotted name of the module whose output is the similarity maps
            ``(n, m, *s)``.
        similarity_fn: Instead of the hook: ``similarity_fn(model, x) -> (n, m, *s)``.
        class_weights: Dotted name of the class-connection layer (its ``weight`` ``(K, m)``) or the
            ``(K, m)`` weights themselves.
        upsample: ``"linear"`` ((bi/tri)linear), ``"nearest"`` or ``"bicubic"`` (2-D).

    Raises:
        ModelStructureError: the model has no such modules, or the weights do not fit the maps.
        ModelOutputError: the similarity maps are not ``(n, m, *s)``.
        OptionError: a non-positive ``top_k`` or an unknown option.

    Shape:
        - x: ``(n, C, *S)``; target: ``(n,)``; output: ``(n, 1, *S)`` in the dtype of ``x``.

    Example:
        >>> from xaiscore.explainers.tiny_models import TinyProtoPNet
        >>> model = TinyProtoPNet(1, 2, prototypes_per_class=3).eval()
        >>> explain = prototype_explainer(model, top_k=2)
        >>> a = explain(torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 1, 0]))
        >>> a.shape, bool((a >= 0).all())
        (torch.Size([4, 1, 16, 16]), True)
    """
    return PrototypeExplainer(
        model,
        top_k=top_k,
        candidates=candidates,
        prototype_layer=prototype_layer,
        similarity_fn=similarity_fn,
        class_weights=class_weights,
        upsample=upsample,
    )
