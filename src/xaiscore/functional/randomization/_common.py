"""What the randomization kernels share: result types, validation, explaining in chunks.

Private to :mod:`xaiscore.functional.randomization`.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from xaiscore._checks import (
    DeviceError,
    DTypeError,
    NonFiniteError,
    check_attributions,
    check_inputs_like,
    check_option,
    check_target,
    check_tensor,
)
from xaiscore._engine.batching import ModelOutputError, check_finite_output, chunked_map
from xaiscore._engine.explain_fn import (
    BuiltExplainer,
    ExplainerFactory,
    ExplainFn,
    check_explanation,
)

Normalise = Literal["max", "second_moment"]
Summary = Literal["mean", "last"]


class RandomizationResult(NamedTuple):
    """What the MPRT family returns.

    Attributes:
        score: ``(B,)`` the metric per sample (NaN where undefined).
        curve: ``(B, T)`` per randomization step: the similarity to the
            original explanation (MPRT, sMPRT) or the explanation entropy (eMPRT).
        x: ``(T,)`` the number of layers randomized at each step (for
            ``order="independent"``: the index of the one randomized layer).
        layers: ``T`` names of the layer randomized at each step (eMPRT:
            ``"original"`` and the last layer's name, or every layer's).
        baseline: ``(B,)`` the same metric for random attribution maps, or
            ``None`` with ``random_baseline=False``.

    ``.score``, ``.curve`` and ``.x`` are as in :class:`xaiscore.functional._results.CurveResult`.
    """

    score: Tensor
    curve: Tensor
    x: Tensor
    layers: tuple[str, ...]
    baseline: Tensor | None


class RandomLogitResult(NamedTuple):
    """What :func:`random_logit` returns.

    Attributes:
        score: ``(B,)`` similarity between the target-class and random-class explanations.
        baseline: ``(B,)`` the same for random maps, or ``None``.
        off_target: ``(B,)`` long, the random class drawn for each sample.
    """

    score: Tensor
    baseline: Tensor | None
    off_target: Tensor


# --- validation ----------------------------------------------------------------------------


def _check_factory(explainer_factory: Any) -> ExplainerFactory:
    if isinstance(explainer_factory, BuiltExplainer):
        raise DTypeError(
            "Expected `explainer_factory` to be a factory `explainer_factory(model) -> explain "
            "function` (the randomization metrics re-explain randomized copies of the model), but "
            f"got a {type(explainer_factory).__name__} bound to one model. Pass e.g. `lambda "
            "model: captum_explainer(model, 'Saliency')`, or `lambda model: explainer` for an "
            "explainer that ignores the model."
        )
    if not callable(explainer_factory):
        raise DTypeError(
            "Expected `explainer_factory` to be callable, but got "
            f"{type(explainer_factory).__name__}.")
    return explainer_factory


def _bind(explainer_factory: ExplainerFactory, model: nn.Module) -> ExplainFn:
    bound = explainer_factory(model)
    if not callable(bound):
        raise ModelOutputError(
            "Expected `explainer_factory(model)` to return an explain function `(x, target) -> a`, "
            f"but got {type(bound).__name__}."
        )
    return bound


def _check_model_inputs(model: Any, x: Any, target: Any, *,
                        validate: bool) -> tuple[Tensor, Tensor]:
    if not isinstance(model, nn.Module):
        raise DTypeError(
            f"Expected `model` to be a torch.nn.Module, but got {type(model).__name__}.")
    x = check_tensor(x, "x")
    if not x.is_floating_point():
        raise DTypeError(f"Expected `x` to be a floating-point tensor, but got dtype {x.dtype}.")
    check_attributions(x, name="x", validate=validate)
    target = check_target(target, x.shape[0], device=x.device, validate=validate)
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.device != x.device:
        raise DeviceError(
            f"Expected `x` on the device of the model's parameters ({parameter.device}), but got "
            f"{x.device}. Move it with `x.to(device)`."
        )
    # explainers take their own gradients; the caller's graph is not needed
    return x.detach(), target


def _check_target_classes(model: nn.Module, x: Tensor, target: Tensor, *, validate: bool) -> None:
    """With ``validate``: ``target`` must be a class of ``model``, read from one call on ``x[:1]``.

    Called on the first (deep-copied) model of a run, before any explanation. The MPRT family
    never needs logits, so a model whose output is not ``(1, K)`` floating-point logits (e.g. a
    dict) is not checked beyond ``target >= 0``; NaN logits raise :class:`NonFiniteError`.
    """
    if not validate:
        return
    with torch.inference_mode():
        out = model(x[:1])
    if isinstance(out, Tensor) and out.ndim == 2 and out.shape[0] == 1 and out.is_floating_point():
        check_finite_output(out, name="model")
        check_target(target, x.shape[0], num_classes=out.shape[1], device=x.device, validate=True)


def _check_given_attributions(a: Any, x: Tensor, *, validate: bool) -> Tensor:
    a = check_attributions(a, validate=validate)
    check_inputs_like(x, a)
    return a.detach()


def _check_postprocessing(abs: bool, normalise: str | None, reduce_channels: str | None) -> None:
    if not isinstance(abs, bool):
        raise DTypeError(f"Expected `abs` to be a bool, but got {type(abs).__name__}.")
    check_option(normalise, "normalise", ("max", "second_moment", None))
    check_option(reduce_channels, "reduce_channels", ("sum", "mean", "max_abs", None))


def _where(layer: str | None) -> str:
    return "the original model" if layer is None else f"the model with layer {layer!r} randomized"


# --- explaining ----------------------------------------------------------------------------


class _FiniteCheck:
    """Counts non-finite explanation values on the device; reads the count once per model."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, a: Tensor, where: str) -> None:
        if self.enabled and not bool(torch.isfinite(a).all()):
            raise NonFiniteError(
                "Expected the explain functions of `explainer_factory` to return finite "
                f"attributions, but got {int(torch.isnan(a).sum())} NaN and "
                f"{int(torch.isinf(a).sum())} infinite value(s) for {where}."
            )


def _explain(explainer: ExplainFn, x: Tensor, target: Tensor, *, max_batch_size: int) -> Tensor:
    """Explain all ``B`` samples in chunks of at most ``max_batch_size``: ``(B, C', *S)``."""

    def compute(start: int, stop: int) -> Tensor:
        x_chunk = x[start:stop]
        return check_explanation(explainer(x_chunk, target[start:stop]), x_chunk, validate=False,
                                 name="explainer_factory(model)(x, target)").detach()

    return chunked_map(x.shape[0], compute, max_batch_size=max_batch_size)




def _summarise(curve: Tensor, summary: str) -> Tensor:
    return curve.mean(dim=1) if summary == "mean" else curve[:, -1]
