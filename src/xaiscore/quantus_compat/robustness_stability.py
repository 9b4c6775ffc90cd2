"""Quantus' relative stability metrics (Agarwal et al. 2022) on
:mod:`xaiscore.functional.robustness`: relative input, output and representation
stability. Conventions as in :mod:`xaiscore.quantus_compat.robustness`, which
re-exports these classes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from xaiscore._checks import OptionError, check_positive_int
from xaiscore.functional.robustness import (
    relative_input_stability,
    relative_output_stability,
    relative_representation_stability,
)
from xaiscore.quantus_compat._base import Prepared, QuantusCompatibilityError, common
from xaiscore.quantus_compat._options import check_perturb_func
from xaiscore.quantus_compat._robustness_base import _check_seed, _Reexplaining

__all__ = ["RelativeInputStability", "RelativeOutputStability",
           "RelativeRepresentationStability"]


class _RelativeStability(_Reexplaining):
    """RIS, ROS and RRS share the constructor and Quantus' call signature
    (channel-first by default)."""

    def __init__(self, nr_samples: int = 200, abs: bool = False, normalise: bool = False,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None, disable_warnings: bool = False,
                 display_progressbar: bool = False, eps_min: float = 1e-6,
                 default_plot_func: Callable[..., Any] | None = None,
                 return_nan_when_prediction_changes: bool | None = None, seed: int | None = None,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        layer_names = kwargs.pop("layer_names", None)
        layer_indices = kwargs.pop("layer_indices", None)
        super().__init__(**common(locals()))
        name = type(self).__name__
        self.nr_samples = check_positive_int(int(nr_samples), "nr_samples")
        check_perturb_func(perturb_func, ("batch_uniform_noise", "uniform_noise"), name)
        self.perturb_func = perturb_func
        options = dict(perturb_func_kwargs or {})
        unknown = set(options) - {"lower_bound", "upper_bound"}
        if unknown:
            raise QuantusCompatibilityError(
                f"{name} supports the perturbation options lower_bound, upper_bound, "
                f"but got {sorted(unknown)}.")
        self.perturb_func_kwargs = options
        self.eps_min = float(eps_min)
        self.return_nan_when_prediction_changes = return_nan_when_prediction_changes
        self.seed = _check_seed(seed)
        self.layer_names, self.layer_indices = layer_names, layer_indices

    def _noise(self) -> dict[str, Any]:
        options = self.perturb_func_kwargs
        if "upper_bound" in options:
            return {"noise_bounds": (float(options.get("lower_bound", 0.02)),
                                     float(options["upper_bound"]))}
        if "lower_bound" in options:
            return {"radius": float(options["lower_bound"])}
        # Quantus' default: upper_bound=0.2 makes U(0.02, 0.2), one-sided
        if self.quantus_bug_compatible:
            return {"noise_bounds": (0.02, 0.2)}
        return {"radius": 0.2}

    def _prediction_change(self) -> str:
        flag = self.return_nan_when_prediction_changes
        if flag is None:
            return "nan" if self.quantus_bug_compatible else "exclude"
        return "nan" if flag else "keep"

    def __call__(self, model: nn.Module, x_batch: np.ndarray, y_batch: np.ndarray,
                 model_predict_kwargs: Mapping[str, Any] | None = None,
                 explain_func: Callable[..., Any] | None = None,
                 explain_func_kwargs: Mapping[str, Any] | None = None,
                 a_batch: np.ndarray | None = None,
                 device: str | torch.device | None = None, softmax: bool = False,
                 channel_first: bool = True,
                 batch_size: int = 64, **kwargs: Any) -> Any:
        """Score a batch (Quantus' argument order for this metric; ``channel_first=True`` by
        default)."""
        return super().__call__(model, x_batch, y_batch, a_batch=a_batch,
                                channel_first=channel_first,
                                explain_func=explain_func, explain_func_kwargs=explain_func_kwargs,
                                model_predict_kwargs=model_predict_kwargs, softmax=softmax,
                                device=device,
                                batch_size=batch_size, **kwargs)

    def _options(self, prepared: Prepared) -> tuple[Tensor, dict[str, Any]]:
        a, explain, post = self._kernel_postprocessing(prepared)
        return a, dict(explain_fn=explain, n_samples=self.nr_samples, eps_min=self.eps_min,
                       on_prediction_change=self._prediction_change(), seed=self.seed,
                       max_batch_size=prepared.batch_size, **self._noise(), **post)


_STABILITY_DOC = """

    ``nr_samples`` copies with uniform noise; the score is the largest ratio
    over the copies that keep the prediction (Agarwal et al.).

    Differences from Quantus 0.6.0: Quantus' default noise is one-sided,
    U(0.02, 0.2) (it passes ``upper_bound=0.2``); ours is U(-0.2, 0.2) unless
    ``perturb_func_kwargs`` sets ``lower_bound``/``upper_bound``. Quantus returns
    NaN for a sample as soon as one copy changes the prediction
    (``return_nan_when_prediction_changes=True``, its default); ours leaves
    those copies out (default ``None``; ``True`` gives NaN, ``False`` keeps them).
    ``quantus_bug_compatible=True`` restores both Quantus defaults. The
    denominator is ``max(., eps_min)`` (Quantus adds ``eps_min`` only to exact
    zeros). Noise from ``seed``.

    Defaults: ``nr_samples=200, eps_min=1e-6, abs=False, normalise=False``;
    ``softmax=False``, ``channel_first=True`` in ``__call__``. Lower is better.
    """


class RelativeInputStability(_RelativeStability):
    __doc__ = ("Relative input stability (Agarwal et al. 2022) on "
               ":func:`xaiscore.functional.relative_input_stability`." + _STABILITY_DOC)

    name = "Relative Input Stability"
    needs_model = True

    def _evaluate(self, prepared: Prepared) -> Tensor:
        a, options = self._options(prepared)
        return relative_input_stability(prepared.forward_fn, prepared.x, a, prepared.y, **options)


class RelativeOutputStability(_RelativeStability):
    __doc__ = ("Relative output stability (Agarwal et al. 2022) on "
               ":func:`xaiscore.functional.relative_output_stability`; with ``softmax=True`` the "
               "model output is the probabilities." + _STABILITY_DOC)

    name = "Relative Output Stability"
    needs_model = True

    def _evaluate(self, prepared: Prepared) -> Tensor:
        a, options = self._options(prepared)
        forward = prepared.forward_fn
        if prepared.softmax:
            forward = _Softmaxed(forward)
        return relative_output_stability(forward, prepared.x, a, prepared.y, **options)


class _Softmaxed:
    def __init__(self, forward_fn: Callable[[Tensor], Tensor]) -> None:
        self.forward_fn = forward_fn

    def __call__(self, x: Tensor) -> Tensor:
        return torch.softmax(self.forward_fn(x), dim=-1)


class _LayoutModel(nn.Module):
    """The user's model behind canonical inputs, so that hooks see its layers as ``model.<name>``.
    """

    def __init__(self, model: nn.Module, model_shape: tuple[int, ...],
                 predict_kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.model_shape = model_shape
        self.predict_kwargs = dict(predict_kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x.reshape((x.shape[0],) + self.model_shape), **self.predict_kwargs)


def _hidden_layers(model: nn.Module, names: Sequence[str] | None,
                   indices: Sequence[int] | None) -> list[str]:
    """Quantus' layer selection: the modules other than the model itself and ``nn.Sequential``
    containers, those named in ``names`` or at ``indices`` in that list
    (all of them when neither is given)."""
    n_modules = len(list(model.named_modules()))
    hidden = [name for name, module in model.named_modules() if not isinstance(
        module, (type(model), nn.Sequential))]
    positions = {i if i >= 0 else n_modules + i for i in (indices or [])}
    everything = not names and not positions
    wanted = [name for index, name in enumerate(hidden)
              if everything or index in positions or name in (names or [])]
    if not wanted:
        raise OptionError(
            "No hidden representations were selected: check `layer_names`/`layer_indices`.")
    return wanted


class RelativeRepresentationStability(_RelativeStability):
    __doc__ = ("Relative representation stability (Agarwal et al. 2022) on "
               ":func:`xaiscore.functional.relative_representation_stability`.\n\n"
               "    The representation is the outputs of the layers ``layer_names`` / "
               "``layer_indices``\n    (Quantus' selection: all modules but containers when "
               "neither is given), concatenated."
               + _STABILITY_DOC)

    name = "Relative Representation Stability"
    needs_model = True

    def __init__(self, nr_samples: int = 200, abs: bool = False, normalise: bool = False,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None, disable_warnings: bool = False,
                 display_progressbar: bool = False, eps_min: float = 1e-6,
                 default_plot_func: Callable[..., Any] | None = None,
                 layer_names: Sequence[str] | None = None,
                 layer_indices: Sequence[int] | None = None,
                 return_nan_when_prediction_changes: bool | None = None,
                 seed: int | None = None, quantus_bug_compatible: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(nr_samples=nr_samples, abs=abs, normalise=normalise,
                         normalise_func=normalise_func,
                         normalise_func_kwargs=normalise_func_kwargs, perturb_func=perturb_func,
                         perturb_func_kwargs=perturb_func_kwargs, return_aggregate=return_aggregate,
                         aggregate_func=aggregate_func, disable_warnings=disable_warnings,
                         display_progressbar=display_progressbar, eps_min=eps_min,
                         default_plot_func=default_plot_func,
                         return_nan_when_prediction_changes=return_nan_when_prediction_changes,
                         seed=seed,
                         quantus_bug_compatible=quantus_bug_compatible, layer_names=layer_names,
                         layer_indices=layer_indices, **kwargs)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        a, options = self._options(prepared)
        model = prepared.model
        layers = ["model." + name for name in _hidden_layers(model, self.layer_names,
                                                             self.layer_indices)]
        wrapped = _LayoutModel(model, prepared.model_shape, prepared.forward_fn.predict_kwargs)
        return relative_representation_stability(wrapped, prepared.x, a, prepared.y, layer=layers,
                                                 **options)
