"""Adapters for captum's attribution classes (an optional dependency, imported on first use).

Randomness: the stochastic captum methods (GradientShap, NoiseTunnel/SmoothGrad)
draw from the *global* torch and numpy generators inside captum. The adapter
draws one seed per call from its own ``generator`` (or ``seed``), runs captum
inside :func:`torch.random.fork_rng` with the torch, numpy and Python global
generators seeded from it, and restores their state afterwards. Results are
therefore reproducible for a given seed and call sequence, and the caller's
global RNG state is left untouched; they do depend on how a metric chunks its
calls (each call gets a fresh seed) and on ``max_batch_size`` (the noise of a call
is drawn pass by pass).

Models that return a dict, a tuple or probabilities: the adapter reads the declaration of
:func:`xaiscore.declare_model_output` and explains the selected scores (``output_key`` /
``output_fn``) as the model returns them (probabilities stay probabilities: captum explains
the model's own output).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaiscore._checks import DTypeError, OptionError, check_option, check_tensor
from xaiscore._engine.batching import (
    ModelOutput,
    check_items_or_bytes,
    check_logits,
    items_per_call,
    model_output_of,
)
from xaiscore._engine.explain_fn import BuiltExplainer
from xaiscore._engine.random import draw_seed, resolve_generator, seeded_global_rngs
from xaiscore._engine.reduction import CHANNEL_REDUCTIONS, ChannelReduction
from xaiscore._engine.reduction import reduce_channels as _reduce_channels
from xaiscore.explainers._feature_masks import FeatureMaskSource, check_grid, resolve_feature_mask

__all__ = ["CAPTUM_METHODS", "CaptumExplainer", "captum_explainer"]


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
    #: The method perturbs groups of features of a feature mask (``grid`` or ``feature_mask``).
    feature_groups: bool = False


#: The captum methods the adapter knows, by name (also the names for config files).
CAPTUM_METHODS: dict[str, _CaptumMethod] = {
    "Saliency": _CaptumMethod("Saliency", {"abs": True}, description="|gradient| (Simonyan et al. 2014)",  # noqa: E501
                              single_forward=True),
    "Gradient": _CaptumMethod("Saliency", {"abs": False}, description="signed gradient", single_forward=True),  # noqa: E501
    "IntegratedGradients": _CaptumMethod(
        "IntegratedGradients", {"n_steps": 50}, description=(
            "Integrated Gradients, zero baseline (Sundararajan et al. 2017)"
        )
    ),
    "InputXGradient": _CaptumMethod("InputXGradient", {}, description="input x gradient", single_forward=True),  # noqa: E501
    "GuidedBackprop": _CaptumMethod("GuidedBackprop", {}, description=(
        "guided backpropagation (needs nn.ReLU modules)"
    ),
                                    single_forward=True),
    "DeepLift": _CaptumMethod("DeepLift", {}, description="DeepLIFT rescale rule, zero baseline (Shrikumar et al. 2017)"),  # noqa: E501
    "LayerGradCam": _CaptumMethod(
        "LayerGradCam", {"relu_attributions": True}, needs_layer=True, single_forward=True,
        description="Grad-CAM at `layer`, upsampled to the input size (Selvaraju et al. 2017)",
    ),
    "Occlusion": _CaptumMethod("Occlusion", {}, description="occlusion with sliding windows (Zeiler and Fergus 2014)"),  # noqa: E501
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
    "LRP": _CaptumMethod("LRP", {}, description="layer-wise relevance propagation, epsilon rules (Bach et al. 2015)"),  # noqa: E501
    "FeatureAblation": _CaptumMethod(
        "FeatureAblation", {}, feature_groups=True,
        description="superpixels (grid cells or a label map) set to the baseline one at a time",
    ),
    "KernelShap": _CaptumMethod(
        "KernelShap", {"n_samples": 200}, stochastic=True, feature_groups=True,
        description="Kernel SHAP over superpixels (Lundberg and Lee 2017)",
    ),
    "Lime": _CaptumMethod(
        "Lime", {"n_samples": 200}, stochastic=True, feature_groups=True,
        description="LIME over superpixels, captum's Lasso surrogate (Ribeiro et al. 2016)",
    ),
}


def _resolve_layer(model: nn.Module, layer: nn.Module | str | None, method: str) -> nn.Module:
    if layer is None:
        raise OptionError(
            f"Expected a `layer` (module or dotted name, e.g. 'features.3') for {method}, but got "
            "None.")
    if isinstance(layer, nn.Module):
        return layer
    if not isinstance(layer, str):
        raise DTypeError(
            "Expected `layer` to be an nn.Module or a dotted name, but got "
            f"{type(layer).__name__}.")
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n][:12]
        raise OptionError(
            f"Expected `layer` to name a submodule of the model, e.g. one of {names}, but got "
            f"{layer!r}."
        ) from None


class _SelectedOutput(nn.Module):
    """``model`` with its declared output selection applied: what captum calls and hooks."""

    def __init__(self, model: nn.Module, output: ModelOutput) -> None:
        super().__init__()
        self.model = model
        self.output = output

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.output.select(self.model(*args, **kwargs), name="model")


class CaptumExplainer(BuiltExplainer):
    """A captum attribution method as an :class:`ExplainFn`; build it with :func:`captum_explainer`.
    """

    def __init__(
        self,
        model: nn.Module,
        method: str,
        /,
        *,
        layer: nn.Module | str | None = None,
        base_method: str = "Saliency",
        reduce_channels: ChannelReduction | None = None,
        grid: int | Sequence[int] | None = None,
        feature_mask: FeatureMaskSource | None = None,
        max_batch_size: int | str = 64,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        **attribute_kwargs: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise DTypeError(
                f"Expected `model` to be a torch.nn.Module, but got {type(model).__name__}.")
        check_option(method, "method", tuple(CAPTUM_METHODS))
        check_option(reduce_channels, "reduce_channels", CHANNEL_REDUCTIONS + (None,))
        spec = CAPTUM_METHODS[method]
        captum_attr = _import_captum_attr()
        self.model = model
        self._output = model_output_of(model)
        self._forward = model if self._output is None else _SelectedOutput(model, self._output)
        self.method = method
        self.reduce_channels = reduce_channels
        self.attribute_kwargs = {**spec.defaults, **attribute_kwargs}
        self.stochastic = spec.stochastic
        self._generator = resolve_generator(generator, seed) if spec.stochastic else None
        if spec.captum_class == "NoiseTunnel":
            base = "Saliency" if method == "SmoothGrad" else base_method
            check_option(base, "base_method", tuple(m for m in CAPTUM_METHODS
                                                    if m not in ("NoiseTunnel", "SmoothGrad")))
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
        self._feature_groups = spec.feature_groups
        if not spec.feature_groups and (grid is not None or feature_mask is not None):
            groups = ", ".join(m for m, sp in CAPTUM_METHODS.items() if sp.feature_groups)
            raise OptionError(
                "Expected `grid` and `feature_mask` only for the feature-group methods "
                f"({groups}), but got them for {method}."
            )
        if grid is not None and feature_mask is not None:
            raise OptionError("Expected at most one of `grid` and `feature_mask`, but got both.")
        self.grid = check_grid(grid) if grid is not None else None
        self.feature_mask = feature_mask
        self.max_batch_size = check_items_or_bytes(max_batch_size)
        self._baselines_for_shap = method == "GradientShap"
        #: How the method's model passes grow with its options (see _attribute_in_passes).
        self._passes = {"IntegratedGradients": "steps", "NoiseTunnel": "noise",
                        "GradientShap": "samples"}.get(
            spec.captum_class)
        self._base_steps = spec.captum_class == "NoiseTunnel" and CAPTUM_METHODS[
            "Saliency" if method == "SmoothGrad" else base_method].captum_class == "IntegratedGradients"  # noqa: E501
        #: Whether :meth:`explain_with_output` can hand out the model's output
        #: (one plain forward pass on x).
        self.shares_forward = spec.single_forward and spec.captum_class != "NoiseTunnel"

    def _build(self, captum_attr: Any, class_name: str, layer: nn.Module | None) -> Any:
        cls = getattr(captum_attr, class_name)
        return cls(self._forward, layer) if layer is not None else cls(self._forward)

    def __repr__(self) -> str:
        return (
            f"captum_explainer({type(self.model).__name__}, {self.method!r}, "
            f"**{self.attribute_kwargs!r})"
        )

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        return self._explain(x, target, record=False)[0]

    def explain_with_output(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor | None]:
        """The attributions for ``x`` and the model's output on ``x`` from the explanation's own
        forward pass.

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

    def _watch_outputs(self, inputs: Tensor, calls: list[tuple[bool, Any]] | None) -> Any:
        """A forward hook on the model that records its calls into ``calls`` (when given) and, for
        a model without an output declaration, raises a clear error for a non-tensor output."""
        if calls is None and self._output is not None:
            return None

        def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            if self._output is None and not isinstance(out, Tensor):
                check_logits(out, inputs, name="model")  # raises, saying how to declare it
            if calls is not None:
                calls.append((len(args) > 0 and args[0] is inputs, out))

        return self.model.register_forward_hook(hook)

    def _recorded_output(self, calls: list[tuple[bool, Any]]) -> Tensor | None:
        """The model's output on the inputs themselves, as the kernels read it, when it ran once."""
        if len(calls) != 1 or not calls[0][0]:
            return None
        out = calls[0][1]
        recorded = out if self._output is None else self._output.logits(out, name="model")
        return recorded.detach() if isinstance(recorded, Tensor) else None

    def _explain(self, x: Tensor, target: Tensor, *, record: bool) -> tuple[Tensor, Tensor | None]:
        x = check_tensor(x, "x")
        kwargs = dict(self.attribute_kwargs)
        if self._occlusion:
            kwargs.update(_occlusion_defaults(x, kwargs))
        if self._baselines_for_shap and kwargs.get("baselines") is None:
            kwargs["baselines"] = torch.zeros_like(x[:1])
        if self._feature_groups:
            kwargs["feature_mask"] = resolve_feature_mask(self.feature_mask, self.grid, x)
            if "perturbations_per_eval" not in kwargs:
                # FeatureAblation perturbs the whole batch at once; Lime/KernelShap one input.
                per_call = x.shape[0] if self.method == "FeatureAblation" else 1
                limit = items_per_call(self.max_batch_size, x)
                kwargs["perturbations_per_eval"] = max(1, limit // per_call)
        with torch.inference_mode(False), torch.enable_grad():
            # A detached alias is enough (requires_grad on it leaves the caller's tensor alone);
            # inference tensors cannot enter autograd and need a real copy.
            inputs = (x.clone() if x.is_inference() else x.detach()).requires_grad_(True)
            target = target.clone() if target.is_inference() else target
            calls: list[tuple[bool, Any]] = []
            handle = self._watch_outputs(inputs, calls if record else None)
            try:
                with warnings.catch_warnings():
                    # captum's Lime/KernelShap warn that a batch trains one surrogate per input.
                    warnings.filterwarnings("ignore", message="You are providing multiple inputs")
                    if self._generator is not None:
                        with seeded_global_rngs(draw_seed(self._generator)):
                            a = self._attribute_in_passes(inputs, target, kwargs)
                    else:
                        a = self._attribute_in_passes(inputs, target, kwargs)
            finally:
                if handle is not None:
                    handle.remove()
        output = self._recorded_output(calls)
        a = a.detach()
        if self._upsample:
            a = _upsample(a, tuple(x.shape[2:]))
        if self.reduce_channels is not None:
            a = _reduce_channels(a, self.reduce_channels)
        return a.to(x.dtype), output

    def _attribute_in_passes(self, inputs: Tensor, target: Tensor,
                             kwargs: dict[str, Any]) -> Tensor:
        """captum's ``attribute``, with the model passes of multi-pass methods under
        ``max_batch_size``.

        Integrated Gradients (``n_steps`` passes per input), NoiseTunnel/SmoothGrad
        (``nt_samples``, times the base method's steps) and GradientShap (``n_samples``) run
        ``n x passes`` model inputs; unless the user set captum's own batching option, they are
        grouped into passes of at most ``max_batch_size`` inputs: whole rows with all their
        passes when they fit, else captum's ``internal_batch_size`` (steps) and
        ``nt_samples_batch_size`` (noise samples) over chunks of at most ``max_batch_size`` rows.
        Deterministic methods give the same attributions (up to the order of float sums); the
        stochastic ones draw their noise chunk by chunk from the same seeded stream.
        """
        attribute = self._attribution.attribute
        n, limit = inputs.shape[0], items_per_call(self.max_batch_size, inputs)
        kind = self._passes
        if kind is None or "additional_forward_args" in kwargs:
            return attribute(inputs, target=target, **kwargs)
        kwargs = dict(kwargs)
        if kind == "steps":
            if "internal_batch_size" in kwargs or n * int(kwargs.get("n_steps", 50)) <= limit:
                return attribute(inputs, target=target, **kwargs)
            kwargs["internal_batch_size"], rows = limit, min(n, limit)
        elif kind == "noise":
            inner = int(kwargs.get("n_steps", 50)) if self._base_steps else 1
            samples = int(kwargs.get("nt_samples", 5))
            if "nt_samples_batch_size" in kwargs or n * samples * inner <= limit:
                return attribute(inputs, target=target, **kwargs)
            rows = min(n, max(1, limit // (samples * inner)) if samples * inner <= limit else limit)
            kwargs["nt_samples_batch_size"] = max(1, min(samples, limit // (rows * inner)))
            if self._base_steps and "internal_batch_size" not in kwargs:
                kwargs["internal_batch_size"] = limit
        else:  # "samples": GradientShap runs n_samples passes per input
            samples = int(kwargs.get("n_samples", 5))
            if n * samples <= limit:
                return attribute(inputs, target=target, **kwargs)
            rows = max(1, limit // samples)
        baselines = kwargs.get("baselines")
        per_row = kind != "samples" and isinstance(baselines, Tensor) and baselines.ndim > 0 \
            and baselines.shape[0] == n and n > 1
        parts = []
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            if per_row:
                kwargs["baselines"] = baselines[start:stop]
            part_target = (target[start:stop] if isinstance(target, Tensor) and target.ndim > 0
                           else target)
            with warnings.catch_warnings():
                # captum warns when a chunk holds more rows than internal_batch_size allows steps
                # for.
                warnings.filterwarnings("ignore", message="Internal batch size cannot be less")
                parts.append(attribute(inputs[start:stop], target=part_target, **kwargs).detach())
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def captum_explainer(
    model: nn.Module,
    method: str,
    /,
    *,
    layer: nn.Module | str | None = None,
    base_method: str = "Saliency",
    reduce_channels: ChannelReduction | None = None,
    grid: int | Sequence[int] | None = None,
    feature_mask: FeatureMaskSource | None = None,
    max_batch_size: int | str = 64,
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
      Smilkov et al. recommend 10-20 %): stochastic;
    * ``"FeatureAblation"``, ``"KernelShap"`` and ``"Lime"`` (``n_samples=200`` for the last
      two; stochastic) perturb groups of features: the cells of a ``grid`` (default 8 cells per
      axis, at most one per pixel) or the segments of a user ``feature_mask``, all channels of
      a pixel together; masked-out features take ``baselines`` (default 0). They are batched
      through captum's ``perturbations_per_eval``: ``max_batch_size // n`` perturbations of the
      whole batch per model call for FeatureAblation, ``max_batch_size`` perturbations of one
      input for Lime and KernelShap (captum fits one surrogate per input). Lime uses captum's
      defaults: a Lasso surrogate (``alpha=0.01``) and an exponential kernel on the cosine
      distance (width 1) in the binary feature space.

    Args:
        model: The network (an ``nn.Module``).
        method: A name from :data:`CAPTUM_METHODS`.
        layer: The layer for layer methods (``LayerGradCam``).
        base_method: The method NoiseTunnel wraps.
        reduce_channels: ``"sum"``, ``"mean"``, ``"max_abs"`` or ``None``
            (default: keep the input's channels).
        grid: Cells per spatial axis (an int or one per axis) of the superpixel grid of the
            feature-group methods (default 8, capped at the side).
        feature_mask: Instead of ``grid``: integer feature ids of shape ``S`` or
            ``(1|n, 1|C, *S)``, or a callable ``feature_mask(x)`` returning them per batch
            (e.g. SLIC superpixels); ids are renumbered to ``0 .. F - 1``.
        max_batch_size: The most inputs per model call for the methods that run the model
            many times per input: the feature-group methods (sets ``perturbations_per_eval``
            unless given), Integrated Gradients (``n_steps`` passes per input; captum's
            ``internal_batch_size`` unless given), NoiseTunnel/SmoothGrad (``nt_samples``;
            ``nt_samples_batch_size`` unless given) and GradientShap (``n_samples``; whole
            rows). The inputs of a call are grouped so that each pass holds up to
            ``max_batch_size`` of them; the stochastic methods' noise therefore depends on it.
            An int, or a byte budget such as ``"512MB"`` (that many bytes of model inputs per
            pass: one 3 x 512 x 512 image weighs fifteen 1 x 224 x 224 ones); not ``"auto"``,
            which would make the noise depend on timing.
        generator, seed: The source of randomness for the stochastic methods
            (see the module docstring); ignored by deterministic methods.
        **attribute_kwargs: Passed to captum's ``attribute``.

    Raises:
        ImportError: captum is not installed.
        OptionError: unknown method, a missing/unknown ``layer``, or ``grid``/``feature_mask``
            for a method that does not group features.
        ShapeError: a ``feature_mask`` that does not fit the inputs (at call).

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
        grid=grid, feature_mask=feature_mask, max_batch_size=max_batch_size, generator=generator,
        seed=seed, **attribute_kwargs,
    )

