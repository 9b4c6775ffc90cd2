"""The Quantus call protocol on top of our kernels: numpy in, tensors on ``device``, kernels,
numpy/lists out.

:class:`Metric` reproduces what Quantus 0.6.0's ``Metric.__call__`` does before
and after its per-batch loop (``general_preprocess``, ``explain_batch``,
aggregation), and hands one :class:`Prepared` batch to the subclass's
``_evaluate``, which calls a vectorised kernel from :mod:`xaiscore.functional`
once for all samples.

What happens to the inputs, in Quantus' order:

1. ``channel_first=None`` infers the layout of ``x_batch`` with Quantus' rule
   (:func:`infer_channel_first`); channel-last inputs are moved to channel-first.
   Unlike Quantus, an ``a_batch``/``s_batch`` given channel-last with the
   dimensions of ``x_batch`` is moved too.
2. The model (an ``nn.Module``) is used for logits; a trailing ``nn.Softmax``
   is stripped (on a copy) and ``softmax=True`` applies the softmax in the
   kernel, which is what Quantus' ``PyTorchModel`` computes. It receives the
   inputs channel-first, in float32 unless its parameters are of another
   floating dtype, on ``device``.
3. ``a_batch`` (or, if ``None``, the explanations of ``explain_func`` in chunks
   of ``batch_size``) gets a channel axis as in Quantus
   (``expand_attribution_channel``), then ``normalise`` and ``abs``.
   ``normalise`` divides **each sample** by its own largest absolute value;
   ``quantus_bug_compatible=True`` divides by the maximum over the whole batch
   (over each ``batch_size`` chunk for explanations computed here), as Quantus does.
4. The subclass computes all scores in one kernel call (``batch_size`` is the
   kernel's ``max_batch_size``: the most images per model or explainer call).
5. Scores come back as Quantus returns them: a list of floats per sample (or
   curves, or a dict), ``[aggregate_func(scores)]`` with ``return_aggregate``.
"""

from __future__ import annotations

import enum
import functools
import importlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from xaiscore._checks import DTypeError, OptionError
from xaiscore.explainers import QuantusExplainer
from xaiscore.quantus_compat._inputs import (
    Layout,
    attributions_tensor,
    canonical_inputs,
    check_model,
    float_tensor,
    infer_channel_first,
    masks_tensor,
    model_dtype,
    resolve_device,
    targets_tensor,
)

# Kept under its old name for the tests that import it from here.
from xaiscore.quantus_compat._inputs import expand_like_quantus as _expand_like_quantus  # noqa: F401

__all__ = [
    "Metric",
    "Prepared",
    "ScoreDirection",
    "infer_channel_first",
    "resolve_device",
    "QuantusCompatibilityError",
]

#: Constructor keywords every Quantus metric shares (and that :class:`Metric` handles).
COMMON_KEYWORDS: tuple[str, ...] = (
    "abs",
    "normalise",
    "normalise_func",
    "normalise_func_kwargs",
    "return_aggregate",
    "aggregate_func",
    "default_plot_func",
    "disable_warnings",
    "display_progressbar",
    "quantus_bug_compatible",
)


class QuantusCompatibilityError(OptionError, NotImplementedError):
    """A Quantus option or metric that the drop-in does not support (the message names the
    alternative)."""


class ScoreDirection(enum.Enum):
    """Whether a higher or a lower score is better (Quantus' ``ScoreDirection`` names)."""

    HIGHER = "higher"
    LOWER = "lower"


def common(local_vars: Mapping[str, Any]) -> dict[str, Any]:
    """The shared constructor keywords from a subclass ``__init__``'s ``locals()``
    (plus its ``**kwargs``)."""
    out = {key: local_vars[key] for key in COMMON_KEYWORDS}
    out.update(local_vars.get("kwargs", {}))
    return out


def reject_unknown(kwargs: Mapping[str, Any], where: str) -> None:
    """Raise like Quantus' ``warn.check_kwargs`` (a ``ValueError``) on unexpected keywords."""
    if kwargs:
        raise OptionError(
            f"Unexpected keyword argument(s) to {where}: {sorted(kwargs)}. Check their spelling "
            "against the class docstring (options of the explainer go in `explain_func_kwargs`, of "
            "the model in `model_predict_kwargs`, of the normalisation in `normalise_func_kwargs`)."
        )


def _logits_model(model: nn.Module) -> nn.Module:
    """``model`` itself, or a copy without its trailing ``nn.Softmax``
    (Quantus' ``PyTorchModel`` rule)."""
    named = list(model.named_modules())
    if len(named) > 1 and isinstance(named[-1][1], nn.Softmax):
        import copy

        from xaiscore._engine.batching import declare_model_output, model_output_of

        stripped = copy.deepcopy(model)
        stripped.set_submodule(named[-1][0], nn.Identity())
        declared = model_output_of(model)
        if declared is not None:  # the copy returns logits, whatever the model was declared to give
            declare_model_output(stripped, output_key=declared.key, output_fn=declared.fn)
        return stripped
    return model


class ForwardFn:
    """Canonical inputs ``(n, C, *S)`` -> logits of the user's model, which sees Quantus' layout.

    Calls ``model(x.reshape(n, *model_shape), **model_predict_kwargs)``; an
    ``nn.Module`` ending in ``nn.Softmax`` is used without it (see :func:`_logits_model`).
    """

    def __init__(self, model: nn.Module, model_shape: tuple[int, ...],
                 predict_kwargs: Mapping[str, Any],
                 counter: Callable[[int], None] | None = None) -> None:
        self.model = _logits_model(model)
        self.model_shape = model_shape
        self.predict_kwargs = dict(predict_kwargs)
        self.counter = counter

    def __call__(self, x: Tensor) -> Tensor:
        if self.counter is not None:
            self.counter(x.shape[0])
        return self.model(x.reshape((x.shape[0],) + self.model_shape), **self.predict_kwargs)


class ExplainAdapter:
    """Quantus' ``explain_func(model, inputs, targets, **kwargs)`` as a batched
    ``explain_fn(x, target)``.

    Inputs reach ``explain_func`` as numpy arrays in Quantus' layout (channel-first,
    the original shape for ``(B, F)`` data); the result gets its channel axis as in
    Quantus and comes back canonical, ``(n, 1|C, *S)``, on the device of ``x``.
    ``transform`` (normalisation, abs) is applied to every result when given.
    """

    def __init__(self, model: Any, explain_func: Callable[..., Any],
                 explain_kwargs: Mapping[str, Any],
                 model_shape: tuple[int, ...], *,
                 transform: Callable[[Tensor], Tensor] | None = None,
                 counter: Callable[[int], None] | None = None) -> None:
        self.inner = QuantusExplainer(model, explain_func, **dict(explain_kwargs))
        self.model_shape = model_shape
        self.transform = transform
        self.counter = counter

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        if self.counter is not None:
            self.counter(x.shape[0])
        n = x.shape[0]
        if len(self.model_shape) == 1:  # (n, F) data: the explainer sees (n, F), we see (n, 1, F)
            a = self.inner(x.reshape(n, -1), target).reshape(n, 1, -1)
        else:
            a = self.inner(x, target)
        return self.transform(a) if self.transform is not None else a


@dataclass
class Prepared:
    """One call's inputs, canonical and on the device.

    Attributes:
        x: ``(B, C, *S)`` inputs in the model's dtype.
        y: ``(B,)`` long targets, or ``None`` where the metric needs none.
        a: ``(B, 1|C, *S)`` attributions after ``normalise``/``abs`` (per the class),
            or ``None`` for metrics that explain themselves.
        a_raw: the attributions before ``normalise``/``abs``.
        s: ``(B, 1, *S)`` bool masks or ``None``.
        model: The user's model (or ``None``).
        forward_fn: canonical ``x`` -> logits, or ``None`` without a model.
        explain_fn: canonical ``(x, target)`` -> raw attributions, or ``None``.
        explainer_factory: ``model -> explain_fn`` for re-explaining other models.
        softmax: Whether scores are probabilities.
        batch_size: Quantus' ``batch_size``: our ``max_batch_size``.
        device: Where everything lives.
        model_shape: The per-sample shape the model and the explainer receive.
        custom_batch: Quantus' ``custom_batch`` as given.
    """

    x: Tensor
    y: Tensor | None
    a: Tensor | None
    a_raw: Tensor | None
    s: Tensor | None
    model: nn.Module | None
    forward_fn: ForwardFn | None
    explain_fn: ExplainAdapter | None
    explainer_factory: Callable[[nn.Module], ExplainAdapter] | None
    softmax: bool
    batch_size: int
    device: torch.device
    model_shape: tuple[int, ...]
    custom_batch: Any = None


_NORMALISE_MODULE = "quantus.functions.normalise_func"


def normalise(a: Tensor, mode: str, *, batch_wide: bool = False) -> Tensor:
    """Quantus' ``normalise_by_max`` (``"max"``) or ``normalise_by_average_second_moment_estimate``
    (``"second_moment"``), per sample or over the whole batch (``batch_wide``, Quantus' default
    axes).

    A zero scale leaves the values unchanged, as in Quantus.

    Example:
        >>> a = torch.tensor([[2.0, -4.0], [1.0, 0.5]])
        >>> normalise(a, "max").tolist(), normalise(a, "max", batch_wide=True).tolist()
        ([[0.5, -1.0], [1.0, 0.5]], [[0.5, -1.0], [0.25, 0.125]])
    """
    dims = tuple(range(a.ndim)) if batch_wide else tuple(range(1, a.ndim))
    if mode == "max":
        scale = a.abs().amax(dim=dims, keepdim=True)
    else:
        scale = a.pow(2).mean(dim=dims, keepdim=True).sqrt()
    return a / torch.where(scale > 0, scale, torch.ones_like(scale))


def _is_quantus_function(func: Any, module: str, name: str) -> bool:
    return getattr(func, "__module__", None) == module and getattr(func, "__name__", None) == name


def _progress_counter(enabled: bool, description: str) -> tuple[Callable[[int], None] | None, Any]:
    if not enabled:
        return None, None
    try:
        tqdm = importlib.import_module("tqdm.auto").tqdm
    except ImportError as error:
        raise ImportError("`display_progressbar=True` needs tqdm (`pip install tqdm`).") from error
    bar = tqdm(desc=description, unit="item")
    return bar.update, bar


class Metric:
    """Base class of the Quantus-compatible metrics (see the module docstring for the call
    protocol).

    Subclasses set the class attributes and implement :meth:`_evaluate`.

    Attributes:
        evaluation_scores: The last call's result (as returned).
        all_evaluation_scores: The results of every call so far, as in Quantus.
    """

    name: ClassVar[str] = "Metric"
    score_direction: ClassVar[ScoreDirection] = ScoreDirection.HIGHER
    evaluation_category: ClassVar[str] = ""
    #: Whether __call__'s ``softmax=None`` means probabilities (Quantus' default of that class).
    default_softmax: ClassVar[bool] = False
    #: Whether the metric calls the model (then it must be an ``nn.Module`` in eval mode).
    needs_model: ClassVar[bool] = False
    #: Whether the metric needs ``a_batch`` (computed with ``explain_func`` when missing).
    needs_attributions: ClassVar[bool] = True
    #: Whether the metric re-explains (then ``explain_func`` is required).
    needs_explainer: ClassVar[bool] = False
    #: Whether the metric needs ``s_batch``.
    needs_masks: ClassVar[bool] = False
    #: Whether this class applies ``normalise``/``abs`` to ``a`` itself (False: the kernel does).
    transforms_attributions: ClassVar[bool] = True
    #: What ``normalise_func=None`` means for this class (Quantus' default ``normalise_func``).
    _default_normalise: ClassVar[str] = "max"

    def __init__(
        self,
        *,
        abs: bool,
        normalise: bool,
        normalise_func: Callable[..., np.ndarray] | None = None,
        normalise_func_kwargs: Mapping[str, Any] | None = None,
        return_aggregate: bool = False,
        aggregate_func: Callable[..., Any] | None = None,
        default_plot_func: Callable[..., Any] | None = None,
        disable_warnings: bool = False,
        display_progressbar: bool = False,
        quantus_bug_compatible: bool = False,
        **kwargs: Any,
    ) -> None:
        reject_unknown(kwargs, f"{type(self).__name__}()")
        for flag_name, flag in (("abs", abs), ("normalise", normalise),
                                ("return_aggregate", return_aggregate),
                                ("quantus_bug_compatible", quantus_bug_compatible)):
            if not isinstance(flag, (bool, np.bool_)):
                raise DTypeError(
                    f"Expected `{flag_name}` to be a bool, but got {type(flag).__name__} {flag!r}.")
        if normalise_func is not None and not callable(normalise_func):
            raise DTypeError(
                "Expected `normalise_func` to be callable, but got "
                f"{type(normalise_func).__name__}.")
        # `aggregate_func` is checked when it is used (return_aggregate=True), as Quantus accepts
        # any value at construction (its own tests pass `aggregate_func=True` without aggregating).
        self.abs = bool(abs)
        self.normalise = bool(normalise)
        self.normalise_func = normalise_func
        self.normalise_func_kwargs = dict(normalise_func_kwargs or {})
        self.return_aggregate = bool(return_aggregate)
        self.aggregate_func = aggregate_func if aggregate_func is not None else np.mean
        self.default_plot_func = default_plot_func
        self.disable_warnings = bool(disable_warnings)
        self.display_progressbar = bool(display_progressbar)
        self.quantus_bug_compatible = bool(quantus_bug_compatible)
        self.evaluation_scores: Any = []
        self.all_evaluation_scores: list[Any] = []

    # --- public API ------------------------------------------------------------------------------

    @property
    def get_params(self) -> dict[str, Any]:
        """The metric's parameters (Quantus' ``get_params``)."""
        excluded = {"evaluation_scores", "all_evaluation_scores", "default_plot_func"}
        return {key: value for key, value in self.__dict__.items() if key not in excluded}

    def __repr__(self) -> str:
        return f"xaiscore.quantus_compat.{type(self).__name__}()"

    def __call__(
        self,
        model: nn.Module | None,
        x_batch: np.ndarray,
        y_batch: np.ndarray | None,
        a_batch: np.ndarray | None = None,
        s_batch: np.ndarray | None = None,
        channel_first: bool | None = None,
        explain_func: Callable[..., Any] | None = None,
        explain_func_kwargs: Mapping[str, Any] | None = None,
        model_predict_kwargs: Mapping[str, Any] | None = None,
        softmax: bool | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 64,
        custom_batch: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Score a batch, with Quantus' call signature (see the class docstring for the result).

        Args:
            model: A ``torch.nn.Module`` (in eval mode), or ``None`` for metrics that need none.
            x_batch: Inputs, numpy ``(B, C, *S)`` / ``(B, *S, C)`` / ``(B, F)``.
            y_batch: Target classes ``(B,)``.
            a_batch: Attributions (or ``None`` to compute them with ``explain_func``).
            s_batch: Binary masks ``(B, 1, *S)`` (localisation).
            channel_first: Layout of ``x_batch``; ``None`` infers it (Quantus' rule).
            explain_func: ``explain_func(model, inputs, targets, **kwargs)`` returning numpy
                attributions, e.g. ``quantus.explain``.
            explain_func_kwargs: Passed to ``explain_func`` (``device`` is added, as in Quantus).
            model_predict_kwargs: Passed to ``model(x, **kwargs)``.
            softmax: Scores as probabilities; ``None``: this class's Quantus default.
            device: ``"cpu"``, ``"cuda"``, ``"cuda:0"``, ``"gpu"`` (= ``"cuda"``) or a
                ``torch.device``; ``None``: the model's device.
            batch_size: The most images per model or explainer call.
            custom_batch: Metric-specific extra data (``Focus``: the mosaic positions).
        """
        reject_unknown(kwargs, f"{type(self).__name__}.__call__")
        if (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
            or batch_size < 1):
            raise OptionError(
                f"Expected `batch_size` to be a positive int, but got {batch_size!r}.")
        counter, bar = _progress_counter(self.display_progressbar, type(self).__name__)
        try:
            prepared = self._prepare(
                model=model, x_batch=x_batch, y_batch=y_batch, a_batch=a_batch, s_batch=s_batch,
                channel_first=channel_first, explain_func=explain_func,
                explain_func_kwargs=explain_func_kwargs, model_predict_kwargs=model_predict_kwargs,
                softmax=self.default_softmax if softmax is None else bool(softmax), device=device,
                batch_size=int(batch_size), custom_batch=custom_batch, counter=counter,
            )
            result = self._evaluate(prepared)
        finally:
            if bar is not None:
                bar.close()
        return self._finish(result)

    # --- to implement ----------------------------------------------------------------------------

    def _evaluate(self, prepared: Prepared) -> Any:
        """Compute the scores: a ``(B,)`` tensor, or any result structure Quantus returns."""
        raise NotImplementedError

    # --- preprocessing ---------------------------------------------------------------------------

    def _prepare(self, *, model, x_batch, y_batch, a_batch, s_batch, channel_first, explain_func,
                 explain_func_kwargs, model_predict_kwargs, softmax, device, batch_size,
                 custom_batch,
                 counter) -> Prepared:
        """Quantus' inputs made canonical, one step per input
        (:mod:`~xaiscore.quantus_compat._inputs`)."""
        x_np, layout = canonical_inputs(x_batch, channel_first)
        check_model(model, needs_model=self.needs_model, metric=type(self).__name__)
        device_ = resolve_device(device, model)
        x = float_tensor(x_np, device_, model_dtype(model)).reshape(layout.canonical)
        y = None if y_batch is None else targets_tensor(y_batch, n=x.shape[0], device=device_)
        forward_fn = None
        if isinstance(model, nn.Module):
            forward_fn = ForwardFn(model, layout.model_shape, model_predict_kwargs or {}, counter)
        factory = self._explainer_factory(explain_func, explain_func_kwargs, device, layout,
                                          counter)
        explain_fn = None if factory is None else factory(model)
        a_raw = self._attributions(a_batch, layout, x=x, y=y, explain_fn=explain_fn,
                                   batch_size=batch_size,
                                   device=device_)
        a = a_raw
        if a_raw is not None and self.transforms_attributions:
            a = self.transform_attributions(a_raw,
                                            chunk=None if a_batch is not None else batch_size)
        s = None
        if s_batch is not None:
            s = masks_tensor(s_batch, layout, x=x, device=device_)
        elif self.needs_masks:
            raise OptionError(
                f"{type(self).__name__} needs ground-truth masks: pass `s_batch` (B, 1, *S).")
        return Prepared(x=x, y=y, a=a, a_raw=a_raw, s=s, model=model, forward_fn=forward_fn,
                        explain_fn=explain_fn,
                        explainer_factory=factory, softmax=softmax, batch_size=batch_size,
                        device=device_,
                        model_shape=layout.model_shape, custom_batch=custom_batch)

    def _explainer_factory(self, explain_func: Any, explain_func_kwargs: Mapping[str, Any] | None,
                           device: str | torch.device | None, layout: Layout,
                           counter: Callable[[int], None]
                           | None) -> Callable[[Any], ExplainAdapter] | None:
        """``model -> ExplainAdapter`` for ``explain_func``, or ``None`` without one
        (where allowed)."""
        if explain_func is None:
            if self.needs_explainer:
                raise OptionError(
                    f"{type(self).__name__} re-explains perturbed inputs or models: pass "
                    "`explain_func` (e.g. quantus.explain with explain_func_kwargs={'method': "
                    "'Saliency'})."
                )
            return None
        if not callable(explain_func):
            raise DTypeError(
                f"Expected `explain_func` to be callable, but got {type(explain_func).__name__}.")
        kwargs_for_explain = dict(explain_func_kwargs or {})
        if device is not None and "device" not in kwargs_for_explain:
            kwargs_for_explain["device"] = device  # as Quantus' general_preprocess
        model_shape = layout.model_shape

        def factory(m: Any, _kwargs: Mapping[str, Any] = kwargs_for_explain) -> ExplainAdapter:
            return ExplainAdapter(m, explain_func, _kwargs, model_shape, counter=counter)

        return factory

    def _attributions(self, a_batch: Any, layout: Layout, *, x: Tensor, y: Tensor | None,
                      explain_fn: ExplainAdapter | None, batch_size: int,
                      device: torch.device) -> Tensor | None:
        """The given ``a_batch``, else the explanations where the metric needs attributions, else
        ``None``."""
        if a_batch is not None:
            return attributions_tensor(a_batch, layout, like=x, device=device)
        if not self.needs_attributions:
            return None
        if explain_fn is None:
            raise OptionError(
                f"{type(self).__name__} needs attributions: pass `a_batch`, or `explain_func` to "
                "compute them."
            )
        if y is None:
            raise OptionError("Expected `y_batch` (the classes to explain), but got None.")
        return self._explain_in_chunks(explain_fn, x, y, batch_size)

    @staticmethod
    def _explain_in_chunks(explain_fn: ExplainAdapter, x: Tensor, y: Tensor,
                           batch_size: int) -> Tensor:
        parts = [explain_fn(x[start : start + batch_size], y[start : start + batch_size])
                 for start in range(0, x.shape[0], batch_size)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    # --- normalisation ---------------------------------------------------------------------------

    def normalisation_mode(self) -> str | None:
        """``"max"`` or ``"second_moment"`` when ``normalise_func`` is one of Quantus'
        (without options) and runs natively; ``None`` for a user function (applied as given)."""
        if self.normalise_func_kwargs:
            return None
        func = self.normalise_func
        if func is None:
            return self._default_normalise
        if _is_quantus_function(func, _NORMALISE_MODULE, "normalise_by_max"):
            return "max"
        if _is_quantus_function(func, _NORMALISE_MODULE,
                                "normalise_by_average_second_moment_estimate"):
            return "second_moment"
        return None

    def transform_attributions(self, a: Tensor, *, chunk: int | None = None,
                               apply_abs: bool = True) -> Tensor:
        """``normalise`` (per sample; batch-wide with ``quantus_bug_compatible``) then ``abs``.

        Args:
            a: ``(B, 1|C, *S)`` attributions.
            chunk: In batch-wide mode, normalise each run of ``chunk`` samples
                separately (Quantus' per-batch explanations); ``None``: the whole batch.
            apply_abs: Also take ``abs`` if the metric is configured so.
        """
        if self.normalise:
            a = self._normalise(a, chunk)
        if apply_abs and self.abs:
            a = a.abs()
        return a

    def _normalise(self, a: Tensor, chunk: int | None) -> Tensor:
        batch_wide = self.quantus_bug_compatible
        if batch_wide and chunk is not None and chunk < a.shape[0]:
            return torch.cat([self._normalise(a[start : start + chunk], None)
                              for start in range(0, a.shape[0], chunk)])
        mode = self.normalisation_mode()
        if mode is not None:
            return normalise(a, mode, batch_wide=batch_wide)
        func = functools.partial(self.normalise_func, **self.normalise_func_kwargs)
        array = a.detach().cpu().numpy()
        if batch_wide:
            out = np.asarray(func(array.copy()))
        else:  # a user function, applied to each sample (with its batch axis of one)
            out = np.concatenate([np.asarray(func(array[i : i + 1].copy())).reshape(
                (1,) + array.shape[1:])
                                  for i in range(array.shape[0])])
        return torch.as_tensor(out, dtype=a.dtype, device=a.device).reshape(a.shape)

    # --- results ---------------------------------------------------------------------------------

    def _aggregate(self, result: Any) -> list[Any]:
        """``[aggregate_func(result)]``; an ``aggregate_func`` that is not callable fails here, not
        earlier."""
        if not callable(self.aggregate_func):
            raise DTypeError("Expected `aggregate_func` to be callable to aggregate the scores "
                             "(return_aggregate=True), but got "
                             f"{type(self.aggregate_func).__name__}.")
        return [self.aggregate_func(result)]

    def _finish(self, result: Any) -> Any:
        if isinstance(result, Tensor):
            values = result.detach().cpu().double().numpy()
            if not self.disable_warnings and np.isnan(values).any():
                warnings.warn(
                    f"{type(self).__name__}: {int(np.isnan(values).sum())} of {values.size} "
                    "score(s) are NaN (undefined for those samples; see the class docstring). Pass "
                    "disable_warnings=True to silence this.",
                    UserWarning,
                    stacklevel=3,
                )
            result = [float(v) for v in values]
        if self.return_aggregate:
            result = self._aggregate(result)
        self.evaluation_scores = result
        if isinstance(result, list):
            self.all_evaluation_scores.extend(result)
        else:
            self.all_evaluation_scores.append(result)
        return result
