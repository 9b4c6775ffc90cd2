"""Explain functions: the protocol, captum and Quantus-style adapters, random and constant baselines.

An *explain function* maps a batch of inputs and target classes to attributions::

    explain_fn(x: (n, C, *S), target: (n,)) -> a: (n, C' , *S)    with C' = C or 1

It is **batched**: a re-explaining metric (robustness, randomization) calls it on
chunks of at most ``max_batch_size`` items drawn from a logical batch of
``B x n`` perturbed inputs, so it must treat rows independently (call
``model.eval()`` first: batch norm in training mode mixes rows) and must not
rely on being called with the original ``B`` rows.

This module provides

* :class:`ExplainFn`, the protocol, and :func:`check_explanation`, the one
  validation helper every re-explaining metric uses;
* :func:`captum_explainer`: one-line adapters for captum's attribution
  classes (Saliency, IntegratedGradients, InputXGradient, GuidedBackprop,
  DeepLift, LayerGradCam upsampled to the input size, Occlusion,
  GradientShap, NoiseTunnel/SmoothGrad, LRP). captum is an optional
  dependency (``pip install xaiscore[captum]``), imported on first use;
* :func:`quantus_explainer`: wraps a Quantus-style numpy
  ``explain_func(model, inputs, targets, **kwargs)`` such as ``quantus.explain``;
* :func:`random_explainer` and :func:`constant_explainer`: baselines no real
  method should lose to (Binder et al. 2023 report a random-attribution
  baseline beside every randomization score);
* :func:`make_explainer`/:func:`list_explainers`: a registry of method names
  usable from a config file.

Randomness: the stochastic captum methods (GradientShap, NoiseTunnel/SmoothGrad)
draw from the *global* torch and numpy generators inside captum. The adapter
draws one seed per call from its own ``generator`` (or ``seed``), runs captum
inside :func:`torch.random.fork_rng` with the torch, numpy and Python global
generators seeded from it, and restores their state afterwards. Results are
therefore reproducible for a given seed and call sequence, and the caller's
global RNG state is left untouched; they do depend on how a metric chunks its
calls (each call gets a fresh seed). :func:`random_explainer` instead uses a
counter-based hash, so its maps depend only on the seed and the running row
count, not on the chunking.

See ``docs/explainers.md``.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaiscore._batching import ModelOutputError
from xaiscore._checks import (
    DTypeError,
    NonFiniteError,
    OptionError,
    check_option,
    check_tensor,
)
from xaiscore._noise import resolve_generator
from xaiscore._reduce import CHANNEL_REDUCTIONS, ChannelReduction, reduce_channels as _reduce_channels

__all__ = [
    "ExplainFn",
    "check_explanation",
    "captum_explainer",
    "quantus_explainer",
    "random_explainer",
    "constant_explainer",
    "make_explainer",
    "list_explainers",
    "CAPTUM_METHODS",
    "CaptumExplainer",
    "QuantusExplainer",
    "RandomExplainer",
    "ConstantExplainer",
]


@runtime_checkable
class ExplainFn(Protocol):
    """A batched explain function ``explain_fn(x, target) -> a``.

    Shape:
        - x: ``(n, C, *S)`` float inputs (1 to 3 spatial dims).
        - target: ``(n,)`` long class indices.
        - output: ``(n, C, *S)`` or ``(n, 1, *S)``, on the device of ``x``.

    Any function or callable object with this signature qualifies (a
    ``lambda x, t: ...`` as well as the adapters in this module). It must
    treat rows independently, so that metrics may call it on chunks.
    """

    def __call__(self, x: Tensor, target: Tensor, /) -> Tensor: ...


def _shape(dims: Any) -> str:
    dims = tuple(dims)
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def check_explanation(a: Any, x: Tensor, *, name: str = "explain_fn", validate: bool = True) -> Tensor:
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
        xaiscore._batching.ModelOutputError: Expected `explain_fn` to return attributions of shape (2, 3, 4, 4) or (2, 1, 4, 4) for inputs of shape (2, 3, 4, 4), but got (2, 4, 4). Add the channel axis with `a.unsqueeze(1)`.
    """
    if not isinstance(a, Tensor):
        raise ModelOutputError(
            f"Expected `{name}` to return a torch.Tensor of attributions, but got {type(a).__name__}."
        )
    expected = f"{_shape(x.shape)} or {_shape((x.shape[0], 1) + tuple(x.shape[2:]))}"
    if a.ndim != x.ndim or a.shape[0] != x.shape[0] or a.shape[2:] != x.shape[2:] or a.shape[1] not in (1, x.shape[1]):
        hint = " Add the channel axis with `a.unsqueeze(1)`." if tuple(a.shape) == (x.shape[0],) + tuple(x.shape[2:]) else ""
        raise ModelOutputError(
            f"Expected `{name}` to return attributions of shape {expected} for inputs of shape "
            f"{_shape(x.shape)}, but got {_shape(a.shape)}.{hint}"
        )
    if not a.is_floating_point():
        raise ModelOutputError(f"Expected `{name}` to return floating-point attributions, but got dtype {a.dtype}.")
    if a.device != x.device:
        raise ModelOutputError(
            f"Expected `{name}` to return attributions on the device of its inputs ({x.device}), "
            f"but got {a.device}."
        )
    if validate and not bool(torch.isfinite(a).all()):
        raise NonFiniteError(
            f"Expected `{name}` to return finite attributions, but got {int(torch.isnan(a).sum())} NaN and "
            f"{int(torch.isinf(a).sum())} infinite value(s) for inputs of shape {_shape(x.shape)}."
        )
    return a


# --- randomness ----------------------------------------------------------------------------


def _draw_seed(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))


@contextlib.contextmanager
def _seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seed torch's (CPU and initialised CUDA), numpy's and Python's global RNGs; restore them on exit."""
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


# --- captum adapters -----------------------------------------------------------------------


def _import_captum_attr() -> Any:
    try:
        return importlib.import_module("captum.attr")
    except ImportError as error:
        raise ImportError(
            "The captum adapters need the optional dependency captum; install it with "
            "`pip install xaiscore[captum]` (or `pip install captum`)."
        ) from error


def _occlusion_defaults(x: Tensor, kwargs: dict[str, Any]) -> dict[str, Any]:
    spatial = tuple(x.shape[2:])
    window = kwargs.get("sliding_window_shapes")
    if window is None:
        window = (x.shape[1],) + tuple(min(side, 4) for side in spatial)
    strides = kwargs.get("strides")
    if strides is None:
        strides = (window[0],) + tuple(max(1, w // 2) for w in window[1:])
    return {"sliding_window_shapes": tuple(window), "strides": tuple(strides)}


def _upsample(attribution: Tensor, size: tuple[int, ...]) -> Tensor:
    if tuple(attribution.shape[2:]) == size:
        return attribution
    mode = ("linear", "bilinear", "trilinear")[len(size) - 1]
    return F.interpolate(attribution, size=size, mode=mode, align_corners=False)


@dataclass(frozen=True)
class _CaptumMethod:
    """How to build and call one captum method."""

    captum_class: str
    defaults: Mapping[str, Any]
    stochastic: bool = False
    needs_layer: bool = False
    description: str = ""
    #: The method runs the model exactly once, on the inputs themselves (gradient methods):
    #: :meth:`CaptumExplainer.explain_with_output` can hand out that output.
    single_forward: bool = False


#: The captum methods the adapter knows, by name (also the names for config files).
CAPTUM_METHODS: dict[str, _CaptumMethod] = {
    "Saliency": _CaptumMethod("Saliency", {"abs": True}, description="|gradient| (Simonyan et al. 2014)",
                              single_forward=True),
    "Gradient": _CaptumMethod("Saliency", {"abs": False}, description="signed gradient", single_forward=True),
    "IntegratedGradients": _CaptumMethod(
        "IntegratedGradients", {"n_steps": 50}, description="Integrated Gradients, zero baseline (Sundararajan et al. 2017)"
    ),
    "InputXGradient": _CaptumMethod("InputXGradient", {}, description="input x gradient", single_forward=True),
    "GuidedBackprop": _CaptumMethod("GuidedBackprop", {}, description="guided backpropagation (needs nn.ReLU modules)",
                                    single_forward=True),
    "DeepLift": _CaptumMethod("DeepLift", {}, description="DeepLIFT rescale rule, zero baseline (Shrikumar et al. 2017)"),
    "LayerGradCam": _CaptumMethod(
        "LayerGradCam", {"relu_attributions": True}, needs_layer=True, single_forward=True,
        description="Grad-CAM at `layer`, upsampled to the input size (Selvaraju et al. 2017)",
    ),
    "Occlusion": _CaptumMethod("Occlusion", {}, description="occlusion with sliding windows (Zeiler and Fergus 2014)"),
    "GradientShap": _CaptumMethod(
        "GradientShap", {"n_samples": 5, "stdevs": 0.0}, stochastic=True,
        description="expected gradients over random baselines (Lundberg and Lee 2017)",
    ),
    "NoiseTunnel": _CaptumMethod(
        "NoiseTunnel", {"nt_type": "smoothgrad", "nt_samples": 10, "stdevs": 0.15}, stochastic=True,
        description="NoiseTunnel around `base_method` (default Saliency)",
    ),
    "SmoothGrad": _CaptumMethod(
        "NoiseTunnel", {"nt_type": "smoothgrad", "nt_samples": 10, "stdevs": 0.15}, stochastic=True,
        description="SmoothGrad: Saliency averaged over Gaussian noise (Smilkov et al. 2017)",
    ),
    "LRP": _CaptumMethod("LRP", {}, description="layer-wise relevance propagation, epsilon rules (Bach et al. 2015)"),
}


def _resolve_layer(model: nn.Module, layer: nn.Module | str | None, method: str) -> nn.Module:
    if layer is None:
        raise OptionError(f"Expected a `layer` (module or dotted name, e.g. 'features.3') for {method}, but got None.")
    if isinstance(layer, nn.Module):
        return layer
    if not isinstance(layer, str):
        raise DTypeError(f"Expected `layer` to be an nn.Module or a dotted name, but got {type(layer).__name__}.")
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n][:12]
        raise OptionError(
            f"Expected `layer` to name a submodule of the model, e.g. one of {names}, but got {layer!r}."
        ) from None


class CaptumExplainer:
    """A captum attribution method as an :class:`ExplainFn`; build it with :func:`captum_explainer`."""

    def __init__(
        self,
        model: nn.Module,
        method: str,
        /,
        *,
        layer: nn.Module | str | None = None,
        base_method: str = "Saliency",
        reduce_channels: ChannelReduction | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        **attribute_kwargs: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise DTypeError(f"Expected `model` to be a torch.nn.Module, but got {type(model).__name__}.")
        check_option(method, "method", tuple(CAPTUM_METHODS))
        check_option(reduce_channels, "reduce_channels", CHANNEL_REDUCTIONS + (None,))
        spec = CAPTUM_METHODS[method]
        captum_attr = _import_captum_attr()
        self.model = model
        self.method = method
        self.reduce_channels = reduce_channels
        self.attribute_kwargs = {**spec.defaults, **attribute_kwargs}
        self.stochastic = spec.stochastic
        self._generator = resolve_generator(generator, seed) if spec.stochastic else None
        if spec.captum_class == "NoiseTunnel":
            base = "Saliency" if method == "SmoothGrad" else base_method
            check_option(base, "base_method", tuple(m for m in CAPTUM_METHODS if m not in ("NoiseTunnel", "SmoothGrad")))
            base_spec = CAPTUM_METHODS[base]
            base_layer = _resolve_layer(model, layer, base) if base_spec.needs_layer else None
            inner = self._build(captum_attr, base_spec.captum_class, base_layer)
            for key, value in base_spec.defaults.items():
                self.attribute_kwargs.setdefault(key, value)
            self._attribution = captum_attr.NoiseTunnel(inner)
            self._upsample = base_spec.needs_layer
        else:
            self.layer = _resolve_layer(model, layer, method) if spec.needs_layer else None
            self._attribution = self._build(captum_attr, spec.captum_class, self.layer)
            self._upsample = spec.needs_layer
        self._occlusion = spec.captum_class == "Occlusion"
        self._baselines_for_shap = method == "GradientShap"
        #: Whether :meth:`explain_with_output` can hand out the model's output (one plain forward pass on x).
        self.shares_forward = spec.single_forward and spec.captum_class != "NoiseTunnel"

    def _build(self, captum_attr: Any, class_name: str, layer: nn.Module | None) -> Any:
        cls = getattr(captum_attr, class_name)
        return cls(self.model, layer) if layer is not None else cls(self.model)

    def __repr__(self) -> str:
        return f"captum_explainer({type(self.model).__name__}, {self.method!r}, **{self.attribute_kwargs!r})"

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        return self._explain(x, target, record=False)[0]

    def explain_with_output(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor | None]:
        """The attributions for ``x`` and the model's output on ``x`` from the explanation's own forward pass.

        Metrics that need both (the relative stabilities, the prediction check of the robustness
        metrics) save one model call per input. The output is ``None`` unless the method runs
        the model exactly once, on ``x`` itself (Saliency, Gradient, InputXGradient,
        GuidedBackprop, LayerGradCam), which is checked on every call; it is detached.

        Example:
            >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
            >>> x, target = torch.rand(2, 1, 2, 2), torch.tensor([0, 2])
            >>> a, logits = captum_explainer(model, "Saliency").explain_with_output(x, target)
            >>> a.shape, torch.equal(logits, model(x).detach())
            (torch.Size([2, 1, 2, 2]), True)
        """
        return self._explain(x, target, record=self.shares_forward)

    def _explain(self, x: Tensor, target: Tensor, *, record: bool) -> tuple[Tensor, Tensor | None]:
        x = check_tensor(x, "x")
        kwargs = dict(self.attribute_kwargs)
        if self._occlusion:
            kwargs.update(_occlusion_defaults(x, kwargs))
        if self._baselines_for_shap and kwargs.get("baselines") is None:
            kwargs["baselines"] = torch.zeros_like(x[:1])
        with torch.inference_mode(False), torch.enable_grad():
            # A detached alias is enough (requires_grad on it leaves the caller's tensor alone);
            # inference tensors cannot enter autograd and need a real copy.
            inputs = (x.clone() if x.is_inference() else x.detach()).requires_grad_(True)
            target = target.clone() if target.is_inference() else target
            calls: list[tuple[bool, Any]] = []
            handle = self.model.register_forward_hook(
                lambda module, args, out: calls.append((len(args) > 0 and args[0] is inputs, out))
            ) if record else None
            try:
                if self._generator is not None:
                    with _seeded_global_rngs(_draw_seed(self._generator)):
                        a = self._attribution.attribute(inputs, target=target, **kwargs)
                else:
                    a = self._attribution.attribute(inputs, target=target, **kwargs)
            finally:
                if handle is not None:
                    handle.remove()
        output = None
        if len(calls) == 1 and calls[0][0] and isinstance(calls[0][1], Tensor):
            output = calls[0][1].detach()
        a = a.detach()
        if self._upsample:
            a = _upsample(a, tuple(x.shape[2:]))
        if self.reduce_channels is not None:
            a = _reduce_channels(a, self.reduce_channels)
        return a.to(x.dtype), output


def captum_explainer(
    model: nn.Module,
    method: str,
    /,
    *,
    layer: nn.Module | str | None = None,
    base_method: str = "Saliency",
    reduce_channels: ChannelReduction | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    **attribute_kwargs: Any,
) -> CaptumExplainer:
    """A captum attribution method as a batched explain function.

    ``captum_explainer(model, "IntegratedGradients", n_steps=32)`` returns an
    ``explain_fn(x, target)`` that calls
    ``IntegratedGradients(model).attribute(x, target=target, n_steps=32)``
    with gradients enabled (also inside ``torch.inference_mode``) on a
    detached copy of ``x``, and returns the detached attributions in the
    dtype of ``x``. The model is used as it is: call ``model.eval()`` first.

    Methods (:data:`CAPTUM_METHODS`) and the defaults set here (all
    overridable through ``attribute_kwargs``):

    * ``"Saliency"`` (``abs=True``), ``"Gradient"`` (``abs=False``),
      ``"InputXGradient"``, ``"GuidedBackprop"``, ``"DeepLift"``, ``"LRP"``;
    * ``"IntegratedGradients"`` (``n_steps=50``, zero baseline);
    * ``"LayerGradCam"`` at ``layer`` (module or dotted name),
      ``relu_attributions=True`` as in Selvaraju et al., upsampled
      (bi/tri)linearly to the input size, one channel;
    * ``"Occlusion"``: ``sliding_window_shapes=(C, 4, 4)`` (each side at most
      the input side) and strides of half the window unless given;
    * ``"GradientShap"`` (``n_samples=5``, ``stdevs=0.0``, a zero baseline
      unless ``baselines`` is given): stochastic;
    * ``"SmoothGrad"`` (NoiseTunnel over Saliency) and ``"NoiseTunnel"`` (over
      ``base_method``), ``nt_type="smoothgrad"``, ``nt_samples=10``,
      ``stdevs=0.15`` (absolute; 15 % of the range for inputs in [0, 1], as
      Smilkov et al. recommend 10-20 %): stochastic.

    Args:
        model: The network (an ``nn.Module``).
        method: A name from :data:`CAPTUM_METHODS`.
        layer: The layer for layer methods (``LayerGradCam``).
        base_method: The method NoiseTunnel wraps.
        reduce_channels: ``"sum"``, ``"mean"``, ``"max_abs"`` or ``None``
            (default: keep the input's channels).
        generator, seed: The source of randomness for the stochastic methods
            (see the module docstring); ignored by deterministic methods.
        **attribute_kwargs: Passed to captum's ``attribute``.

    Raises:
        ImportError: captum is not installed.
        OptionError: unknown method, or a missing/unknown ``layer``.

    Shape:
        - x: ``(n, C, *S)``; target: ``(n,)``; output: ``(n, C, *S)``, or
          ``(n, 1, *S)`` for LayerGradCam and with ``reduce_channels``.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval()
        >>> explain = captum_explainer(model, "Gradient")
        >>> x = torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(0))
        >>> a = explain(x, torch.tensor([0, 2]))
        >>> a.shape, torch.allclose(a[1].flatten(), model[1].weight[2])
        (torch.Size([2, 3, 2, 2]), True)
    """
    return CaptumExplainer(
        model, method, layer=layer, base_method=base_method, reduce_channels=reduce_channels,
        generator=generator, seed=seed, **attribute_kwargs,
    )


# --- Quantus-style adapter -----------------------------------------------------------------


class QuantusExplainer:
    """A Quantus-style numpy ``explain_func`` as an :class:`ExplainFn`; see :func:`quantus_explainer`."""

    def __init__(self, model: Any, explain_func: Callable[..., Any] | None = None, **explain_func_kwargs: Any) -> None:
        if explain_func is None:
            try:
                explain_func = importlib.import_module("quantus").explain
            except ImportError as error:
                raise ImportError(
                    "quantus_explainer without `explain_func` uses quantus.explain; install it with "
                    "`pip install xaiscore[quantus]`."
                ) from error
        if not callable(explain_func):
            raise DTypeError(f"Expected `explain_func` to be callable, but got {type(explain_func).__name__}.")
        self.model = model
        self.explain_func = explain_func
        self.explain_func_kwargs = explain_func_kwargs

    def __repr__(self) -> str:
        name = getattr(self.explain_func, "__qualname__", type(self.explain_func).__name__)
        return f"quantus_explainer({type(self.model).__name__}, {name}, **{self.explain_func_kwargs!r})"

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        x = check_tensor(x, "x")
        training = [m.training for m in self.model.modules()] if isinstance(self.model, nn.Module) else None
        try:
            out = self.explain_func(
                model=self.model,
                inputs=x.detach().cpu().numpy(),
                targets=target.detach().cpu().numpy(),
                **self.explain_func_kwargs,
            )
        finally:
            if training is not None:  # quantus.explain calls model.eval(); give the model back as it came
                for module, flag in zip(self.model.modules(), training):
                    module.training = flag
        if isinstance(out, Tensor):
            a = out.detach().to(device=x.device, dtype=x.dtype)
        else:
            try:
                a = torch.as_tensor(np.asarray(out), dtype=x.dtype, device=x.device)
            except (TypeError, ValueError) as error:
                raise ModelOutputError(
                    f"Expected `explain_func` to return a numpy array of attributions, but got {type(out).__name__}."
                ) from error
        if a.ndim == x.ndim - 1 and a.shape[0] == x.shape[0] and a.shape[1:] == x.shape[2:]:
            a = a.unsqueeze(1)  # Quantus often sums the channel axis away
        return check_explanation(a, x, name="explain_func", validate=False)


def quantus_explainer(
    model: Any, explain_func: Callable[..., Any] | None = None, **explain_func_kwargs: Any
) -> QuantusExplainer:
    """A Quantus-style ``explain_func(model, inputs, targets, **kwargs)`` (numpy in/out) as an explain function.

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


# --- baselines -----------------------------------------------------------------------------

_MASK32 = 0xFFFFFFFF


def _hash32(v: Tensor) -> Tensor:
    """A 32-bit integer hash (Wellons' ``lowbias32`` shape with 31-bit multipliers), int64 in, int64 in [0, 2^32) out.

    Every product stays below 2^63, so the arithmetic is exact on every device.
    """
    v = v & _MASK32
    v = v ^ (v >> 16)
    v = (v * 0x21F0AAAD) & _MASK32
    v = v ^ (v >> 15)
    v = (v * 0x735A2D97) & _MASK32
    return v ^ (v >> 15)


Channels = Literal["one", "input"]


def _map_shape(x: Tensor, channels: Channels) -> tuple[int, ...]:
    return (x.shape[0], 1 if channels == "one" else x.shape[1]) + tuple(x.shape[2:])


class RandomExplainer:
    """Random attribution maps; see :func:`random_explainer`."""

    def __init__(self, *, distribution: str = "uniform", channels: Channels = "one",
                 generator: torch.Generator | None = None, seed: int | None = None) -> None:
        check_option(distribution, "distribution", ("uniform", "normal"))
        check_option(channels, "channels", ("one", "input"))
        self.distribution = distribution
        self.channels = channels
        self._key = _draw_seed(resolve_generator(generator, seed)) & _MASK32
        self._rows = 0

    def __repr__(self) -> str:
        return f"random_explainer(distribution={self.distribution!r}, channels={self.channels!r})"

    def reset(self) -> None:
        """Start the row counter again: the next call returns the same maps as the first did."""
        self._rows = 0

    def _uniform(self, rows: Tensor, features: Tensor, salt: int) -> Tensor:
        row_key = _hash32(rows ^ _hash32(torch.tensor(self._key ^ salt, dtype=torch.int64)))
        bits = _hash32(_hash32(features.unsqueeze(0) ^ row_key.unsqueeze(1)) ^ row_key.unsqueeze(1))
        return (bits.to(torch.float64) + 0.5) / 2.0**32  # in (0, 1)

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        x = check_tensor(x, "x")
        shape = _map_shape(x, self.channels)
        n_features = math.prod(shape[1:])
        rows = torch.arange(self._rows, self._rows + shape[0], dtype=torch.int64, device=x.device)
        features = torch.arange(n_features, dtype=torch.int64, device=x.device)
        self._rows += shape[0]
        u = self._uniform(rows, features, 0)
        if self.distribution == "normal":
            u2 = self._uniform(rows, features, 0x5BD1E995)
            u = torch.sqrt(-2.0 * torch.log(u)) * torch.cos(2.0 * math.pi * u2)
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        return u.to(dtype).reshape(shape)


def random_explainer(
    *,
    distribution: Literal["uniform", "normal"] = "uniform",
    channels: Channels = "one",
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> RandomExplainer:
    """An explainer returning random maps that ignore the input, the target and the model.

    Every call returns fresh maps: uniform on (0, 1) or standard normal
    values, one channel (``channels="one"``) or the input's channels
    (``"input"``). No real explanation method should score worse on a
    quality metric; Binder et al. (2023) show that such uninformative maps
    pass model-randomization tests easily, so report this baseline beside
    every randomization score. Under a robustness metric it scores the
    worst possible sensitivity: every noisy copy gets an unrelated map.

    The values come from a counter-based hash of (seed, row number, feature
    index), where the row number counts all rows explained so far by this
    object. So the maps depend only on the seed and on the order of the rows,
    not on how a metric chunks its calls or on the device; :meth:`RandomExplainer.reset`
    starts the count again.

    Args:
        distribution: ``"uniform"`` (on (0, 1)) or ``"normal"`` (standard normal).
        channels: ``"one"`` for ``(n, 1, *S)`` maps, ``"input"`` for ``(n, C, *S)``.
        generator, seed: Where the hash key comes from (one draw at
            construction); neither gives a non-reproducible key.

    Shape:
        - x: ``(n, C, *S)``; target: ``(n,)``; output: ``(n, 1, *S)`` or ``(n, C, *S)``.

    Example:
        >>> explain = random_explainer(seed=0)
        >>> x, target = torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.long)
        >>> first = explain(x, target)
        >>> first.shape, bool(((first > 0) & (first < 1)).all())
        (torch.Size([4, 1, 8, 8]), True)
        >>> explain.reset()
        >>> torch.equal(torch.cat([explain(x[:1], target[:1]), explain(x[1:], target[1:])]), first)
        True
    """
    return RandomExplainer(distribution=distribution, channels=channels, generator=generator, seed=seed)


class ConstantExplainer:
    """A constant attribution map; see :func:`constant_explainer`."""

    def __init__(self, value: float = 1.0, *, channels: Channels = "one") -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise OptionError(f"Expected `value` to be a finite number, but got {value!r}.")
        check_option(channels, "channels", ("one", "input"))
        self.value = float(value)
        self.channels = channels

    def __repr__(self) -> str:
        return f"constant_explainer({self.value!r}, channels={self.channels!r})"

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        x = check_tensor(x, "x")
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        return torch.full(_map_shape(x, self.channels), self.value, dtype=dtype, device=x.device)


def constant_explainer(value: float = 1.0, *, channels: Channels = "one") -> ConstantExplainer:
    """An explainer returning the same constant map for every input: the uninformative baseline.

    It is perfectly robust (sensitivity 0) and perfectly insensitive to model
    randomization, so it shows which metrics reward ignoring the model.

    Args:
        value: The constant (finite).
        channels: ``"one"`` for ``(n, 1, *S)`` maps, ``"input"`` for ``(n, C, *S)``.

    Shape:
        - x: ``(n, C, *S)``; target: ``(n,)``; output: ``(n, 1, *S)`` or ``(n, C, *S)``.

    Example:
        >>> constant_explainer(0.5)(torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long)).unique().tolist()
        [0.5]
    """
    return ConstantExplainer(value, channels=channels)


# --- registry ------------------------------------------------------------------------------

_BASELINES: dict[str, Callable[..., ExplainFn]] = {
    "random": random_explainer,
    "constant": constant_explainer,
}


def list_explainers() -> tuple[str, ...]:
    """The method names :func:`make_explainer` accepts: the baselines, ``"quantus"`` and the captum methods.

    Example:
        >>> {"random", "constant", "Saliency", "LayerGradCam"} <= set(list_explainers())
        True
    """
    return tuple(_BASELINES) + ("quantus",) + tuple(CAPTUM_METHODS)


def make_explainer(method: str, model: nn.Module | None = None, /, **kwargs: Any) -> ExplainFn:
    """Build an explain function by name, e.g. from a config file entry ``{method: ..., **kwargs}``.

    ``"random"`` and ``"constant"`` build the baselines (no model needed),
    ``"quantus"`` wraps ``quantus.explain`` (``kwargs`` are its keyword
    arguments, e.g. ``method="Saliency"`` is passed as ``quantus_method``),
    and every name in :data:`CAPTUM_METHODS` builds :func:`captum_explainer`.

    Args:
        method: A name from :func:`list_explainers`.
        model: The network (needed by all but the baselines).
        **kwargs: Passed to the builder.

    Raises:
        OptionError: unknown method, or a model-based method without ``model``.

    Example:
        >>> explain = make_explainer("constant", value=2.0)
        >>> explain(torch.zeros(1, 1, 3), torch.zeros(1, dtype=torch.long)).tolist()
        [[[2.0, 2.0, 2.0]]]
    """
    check_option(method, "method", list_explainers())
    if method in _BASELINES:
        return _BASELINES[method](**kwargs)
    if model is None:
        raise OptionError(f"Expected a `model` for the explainer {method!r}, but got None.")
    if method == "quantus":
        if "quantus_method" in kwargs:
            kwargs["method"] = kwargs.pop("quantus_method")
        return quantus_explainer(model, **kwargs)
    return captum_explainer(model, method, **kwargs)
