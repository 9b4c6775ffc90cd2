"""Relative stability (Agarwal et al. 2022): relative input, output and representation stability.

The common arguments (noise, prediction changes, post-processing) are described in
:mod:`xaiscore.functional.robustness`; see ``docs/robustness.md`` for the formulas, defaults
and differences from Quantus.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from xaiscore._checks import DTypeError, OptionError, check_fraction
from xaiscore._engine.batching import (call_model, check_finite_output, check_max_batch_size,
                                       chunked_map)
from xaiscore._engine.explain_fn import ExplainFn
from xaiscore._engine.model_mode import models_in_eval_mode
from xaiscore._engine.noise import Chunk
from xaiscore.functional.robustness._common import (
    Noise,
    PredictionChange,
    _check_common,
    _check_norm_order,
    _check_prediction_mode,
    _noisy_metric,
    _norm,
    _predict,
    _prepare,
)

__all__ = [
    "relative_input_stability",
    "relative_output_stability",
    "relative_representation_stability",
]


# --- Agarwal et al. 2022 -------------------------------------------------------------------


class _RelativeChange:
    """``|| (reference[rows] - perturbed) / reference[rows] ||_p`` per item, exact zeros of the
    denominator replaced by ``eps_min``; the denominators are built once per call, not per chunk."""

    def __init__(self, reference: Tensor, eps_min: float, p: float) -> None:
        self.reference = reference
        self.denominator = torch.where(reference == 0, eps_min, reference)
        self.p = p

    def __call__(self, rows: Tensor, perturbed: Tensor,
                 reference_rows: Tensor | None = None) -> Tensor:
        """``reference_rows``: ``reference[rows]`` where the caller already holds it."""
        change = torch.sub(self.reference[rows] if reference_rows is None else reference_rows,
                           perturbed)
        change.div_(self.denominator[rows])
        return _norm(change, self.p)


def _check_stability_options(p: float, eps_min: float) -> tuple[float, float]:
    return _check_norm_order(p), check_fraction(eps_min, "eps_min", high=math.inf,
                                                low_inclusive=False)


@models_in_eval_mode("forward_fn", "explain_fn")
def relative_input_stability(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor,
    *,
    explain_fn: ExplainFn,
    n_samples: int = 200,
    noise: Noise = "uniform",
    radius: float = 0.2,
    noise_bounds: tuple[float, float] | None = None,
    p: float = 2.0,
    eps_min: float = 1e-6,
    abs: bool = False,
    normalise: Literal["sample"] | None = None,
    on_prediction_change: PredictionChange = "exclude",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    max_batch_size: int = 64,
    validate: bool = True,
) -> Tensor:
    r"""Relative input stability, RIS (Agarwal et al. 2022).

    .. math:: \mathrm{RIS}(x) = \max_{x'} \frac{\lVert (e_x - e_{x'}) / e_x \rVert_p}
              {\max(\lVert (x - x') / x \rVert_p,\ \epsilon_{\min})}

    over noisy copies :math:`x' = x + \delta_j` that keep the prediction
    (:math:`\hat y_{x'} = \hat y_x`, ``on_prediction_change="exclude"``); the
    divisions are element-wise (percent change), with exact zeros of
    :math:`e_x` and :math:`x` replaced by :math:`\epsilon_{\min}` as Quantus
    does. Lower is better.

    ``forward_fn`` decides which copies keep the prediction (pass
    ``on_prediction_change="keep"`` to skip the model). Quantus draws uniform
    noise on [0.02, 0.2] (``noise_bounds=(0.02, 0.2)``) and makes the whole
    score NaN as soon as one copy changes the prediction (``"nan"``); it adds
    :math:`\epsilon_{\min}` only to an exactly zero denominator.

    Args:
        forward_fn: The model (logits), for the prediction check.
        eps_min: The floor of the denominator and the stand-in for zeros.
        Others: see :func:`max_sensitivity`.

    Returns:
        ``(B,)`` scores >= 0; NaN where every copy changed the prediction.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 3))
        >>> x = torch.rand(2, 2, 4, generator=torch.Generator().manual_seed(0)) + 1
        >>> target = model(x).argmax(1)
        >>> same = lambda x, t: x.clone()     # e_x = x: relative changes are equal
        >>> ris = relative_input_stability(model, x, same(x, target), target, explain_fn=same,
        ...                                n_samples=5, seed=0, on_prediction_change="keep")
        >>> torch.allclose(ris, torch.ones(2))
        True
    """
    x, a, target = _check_common(x, a, target, explain_fn, validate)
    p, eps_min = _check_stability_options(p, eps_min)
    reference = _prepare(a, abs, normalise)
    explanation_change = _RelativeChange(reference, eps_min, p)
    input_change = _RelativeChange(x, eps_min, p)

    def item_value(chunk: Chunk) -> Tensor:
        numerator = explanation_change(chunk.rows, _prepare(chunk.a_perturbed, abs, normalise))
        return numerator / input_change(chunk.rows, chunk.x_perturbed, chunk.x).clamp(min=eps_min)

    return _noisy_metric(
        x, reference, target, explain_fn=explain_fn, forward_fn=forward_fn, n_samples=n_samples,
        noise=noise,
        radius=radius, noise_bounds=noise_bounds, item_value=item_value, needs_logits=False,
        on_prediction_change=on_prediction_change, how="max", generator=generator, seed=seed,
        max_batch_size=max_batch_size, validate=validate,
    )


@models_in_eval_mode("forward_fn", "explain_fn")
def relative_output_stability(
    forward_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    a: Tensor,
    target: Tensor,
    *,
    explain_fn: ExplainFn,
    n_samples: int = 200,
    noise: Noise = "uniform",
    radius: float = 0.2,
    noise_bounds: tuple[float, float] | None = None,
    p: float = 2.0,
    eps_min: float = 1e-6,
    abs: bool = False,
    normalise: Literal["sample"] | None = None,
    on_prediction_change: PredictionChange = "exclude",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    max_batch_size: int = 64,
    validate: bool = True,
) -> Tensor:
    r"""Relative output stability, ROS (Agarwal et al. 2022).

    .. math:: \mathrm{ROS}(x) = \max_{x'} \frac{\lVert (e_x - e_{x'}) / e_x \rVert_p}
              {\max(\lVert h(x) - h(x') \rVert_p,\ \epsilon_{\min})}

    with :math:`h` the logits (``forward_fn``) and :math:`x'` as in
    :func:`relative_input_stability`. Lower is better.

    Returns:
        ``(B,)`` scores >= 0; NaN where every copy changed the prediction.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 3))
        >>> x = torch.rand(2, 2, 4, generator=torch.Generator().manual_seed(0))
        >>> target = model(x).argmax(1)
        >>> constant = lambda x, t: torch.ones_like(x)
        >>> relative_output_stability(model, x, constant(x, target), target, explain_fn=constant,
        ...                           n_samples=5, seed=0).tolist()
        [0.0, 0.0]
    """
    x, a, target = _check_common(x, a, target, explain_fn, validate)
    p, eps_min = _check_stability_options(p, eps_min)
    _check_prediction_mode(on_prediction_change, forward_fn)
    if forward_fn is None or not callable(forward_fn):
        raise DTypeError(
            "Expected `forward_fn` to be callable (the model's logits), but got "
            f"{type(forward_fn).__name__}.")
    reference = _prepare(a, abs, normalise)
    logits = _predict(forward_fn, x, max_batch_size, validate=validate)
    explanation_change = _RelativeChange(reference, eps_min, p)

    def item_value(chunk: Chunk) -> Tensor:
        numerator = explanation_change(chunk.rows, _prepare(chunk.a_perturbed, abs, normalise))
        change = torch.linalg.vector_norm(logits[chunk.rows] - chunk.logits, ord=p, dim=1)
        return numerator / change.to(numerator.dtype).clamp(min=eps_min)

    return _noisy_metric(
        x, reference, target, explain_fn=explain_fn, forward_fn=forward_fn, n_samples=n_samples,
        noise=noise,
        radius=radius, noise_bounds=noise_bounds, item_value=item_value, needs_logits=True,
        on_prediction_change=on_prediction_change, how="max", generator=generator, seed=seed,
        max_batch_size=max_batch_size, validate=validate, reference_logits=logits,
    )


class _RepresentationProbe:
    """Calls ``model`` and keeps the flattened outputs of ``layers`` from the last call."""

    def __init__(self, model: nn.Module, layers: Sequence[str] | None) -> None:
        self.model = model
        if layers is None:
            leaves = [m for m in model.modules() if not list(m.children())]
            if len(leaves) < 2:
                raise OptionError(
                    "Expected `layer` to name the layer whose representation to compare; the "
                    "default (the input of the model's last leaf module) needs a model with at "
                    "least two leaf modules."
                )
            self.modules, self.use_input = [leaves[-1]], True
        else:
            self.modules, self.use_input = [], False
            for name in layers:
                try:
                    self.modules.append(model.get_submodule(name))
                except AttributeError:
                    names = [n for n, _ in model.named_modules() if n][:12]
                    raise OptionError(
                        f"Expected `layer` to name a submodule of the model, e.g. one of {names}, "
                        f"but got {name!r}."
                    ) from None
        self.captured: list[Tensor] = []
        self.active = False

    def _hook(self, module: nn.Module, inputs: tuple[Tensor, ...],
              output: Tensor | None = None) -> None:
        if not self.active:  # the explainer's own model calls are not ours to record
            return
        value = inputs[0] if self.use_input else output
        if not isinstance(value, Tensor):
            raise OptionError(
                f"Expected the layer {type(module).__name__} to output a tensor, but got "
                f"{type(value).__name__}.")
        self.captured.append(value.detach().reshape(value.shape[0], -1))

    def __enter__(self) -> _RepresentationProbe:
        if self.use_input:
            self.handles = [m.register_forward_pre_hook(self._hook) for m in self.modules]
        else:
            self.handles = [m.register_forward_hook(self._hook) for m in self.modules]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()

    def __call__(self, x: Tensor) -> Tensor:
        with self.recording_model_calls():
            return self.model(x)

    @contextlib.contextmanager
    def recording_model_calls(self) -> Iterator[None]:
        """Record the layers during the model calls inside (``perturbed_statistics`` uses it when
        the explainer hands out the logits of its own forward pass: that pass then fills
        :meth:`representation`)."""
        self.captured = []
        self.active = True
        try:
            yield
        finally:
            self.active = False

    def representation(self) -> Tensor:
        return self.captured[0] if len(self.captured) == 1 else torch.cat(self.captured, dim=1)


def _layer_names(layer: object) -> list[str]:
    if not isinstance(layer, Sequence) or not layer or not all(isinstance(name, str)
                                                               for name in layer):
        raise OptionError(
            "Expected `layer` as a submodule name or a non-empty sequence of names, but got "
            f"{layer!r}."
        )
    return list(layer)


@models_in_eval_mode("model", "explain_fn")
def relative_representation_stability(
    model: nn.Module,
    x: Tensor,
    a: Tensor,
    target: Tensor,
    *,
    explain_fn: ExplainFn,
    layer: str | Sequence[str] | None = None,
    n_samples: int = 200,
    noise: Noise = "uniform",
    radius: float = 0.2,
    noise_bounds: tuple[float, float] | None = None,
    p: float = 2.0,
    eps_min: float = 1e-6,
    abs: bool = False,
    normalise: Literal["sample"] | None = None,
    on_prediction_change: PredictionChange = "exclude",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    max_batch_size: int = 64,
    validate: bool = True,
) -> Tensor:
    r"""Relative representation stability, RRS (Agarwal et al. 2022).

    .. math:: \mathrm{RRS}(x) = \max_{x'} \frac{\lVert (e_x - e_{x'}) / e_x \rVert_p}
              {\max(\lVert (L_x - L_{x'}) / L_x \rVert_p,\ \epsilon_{\min})}

    with :math:`L_x` the flattened output of ``layer`` (several names are
    concatenated), read with a forward hook during the model call that also
    decides whether the prediction changed; the hooks are removed before the
    function returns. With ``layer=None`` the representation is the *input* of
    the model's last leaf module (the classifier head of most networks).
    Quantus concatenates every layer by default. Lower is better.

    Args:
        model: An ``nn.Module`` returning logits.
        layer: Dotted submodule name(s), e.g. ``"features.3"``.
        Others: see :func:`relative_input_stability`.

    Returns:
        ``(B,)`` scores >= 0; NaN where every copy changed the prediction.

    Shape:
        - x: ``(B, C, *S)``; a: ``(B, 1|C, *S)``; target: ``(B,)``; output: ``(B,)``

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 4), torch.nn.ReLU(),
        ...                             torch.nn.Linear(4, 3))
        >>> x = torch.rand(3, 2, 4, generator=torch.Generator().manual_seed(0))
        >>> target = model(x).argmax(1)
        >>> twice = lambda x, t: 2 * x
        >>> relative_representation_stability(model, x, twice(x, target), target, explain_fn=twice,
        ...                                   layer="1", n_samples=4, seed=0).shape
        torch.Size([3])
    """
    if not isinstance(model, nn.Module):
        raise DTypeError(
            "Expected `model` to be a torch.nn.Module (hooks read its layers), but got "
            f"{type(model).__name__}.")
    x, a, target = _check_common(x, a, target, explain_fn, validate)
    p, eps_min = _check_stability_options(p, eps_min)
    layers = [layer] if isinstance(layer, str) else (None if layer is None else _layer_names(layer))
    probe = _RepresentationProbe(model, layers)
    reference = _prepare(a, abs, normalise)
    with probe:
        n_classes: list[int] = []

        def reference_pass(start: int, stop: int) -> Tensor:
            out = call_model(probe, x[start:stop], name="model")
            n_classes[:] = [out.shape[1]]
            return torch.cat([out, probe.representation().to(out.dtype)], dim=1)

        both = chunked_map(x.shape[0], reference_pass,
                           max_batch_size=check_max_batch_size(max_batch_size))
        logits, rep = both[:, : n_classes[0]], both[:, n_classes[0]:]
        if validate:
            check_finite_output(logits, name="model")
        explanation_change = _RelativeChange(reference, eps_min, p)
        representation_change = _RelativeChange(rep, eps_min, p)

        def item_value(chunk: Chunk) -> Tensor:
            numerator = explanation_change(chunk.rows, _prepare(chunk.a_perturbed, abs, normalise))
            change = representation_change(chunk.rows, probe.representation())
            return numerator / change.to(numerator.dtype).clamp(min=eps_min)

        return _noisy_metric(
            x, reference, target, explain_fn=explain_fn, forward_fn=probe, n_samples=n_samples,
            noise=noise,
            radius=radius, noise_bounds=noise_bounds, item_value=item_value, needs_logits=True,
            on_prediction_change=on_prediction_change, how="max", generator=generator, seed=seed,
            max_batch_size=max_batch_size, validate=validate, reference_logits=logits,
            model_name="model",
        )

