"""What the fuzz suite draws: problems, one builder per input a metric ``needs``, bad variants, bad
options.

Everything is generated from the registry: a spec's ``needs`` name the inputs
(:data:`NEED_BUILDERS` builds each from a drawn :class:`Problem`), its kernel's
signature names the options (:func:`bad_option_values` corrupts them by the type of their
default). A new metric is fuzzed by registering its spec; a spec whose ``needs`` include a
name without a builder must be listed in :data:`NOT_YET_FUZZED` (``test_coverage`` fails
otherwise).

The models and explain functions here are per-sample functions (no batch norm, no
randomness), so a kernel's score of a sample must not depend on its batch-mates.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor, nn

from xaiscore._checks import (
    DeviceError,
    DTypeError,
    MaskError,
    NonFiniteError,
    OptionError,
    ShapeError,
    XaiscoreError,
)
from xaiscore._engine.batching import ModelOutputError
from xaiscore.specs import MetricSpec

# --- what is fuzzed, and what is not (yet) ---------------------------------------------------

#: Registered metrics (by name) or public functions of ``xaiscore.functional`` that the suite does
#: not fuzz, with the reason. Names may belong to branches not merged yet (they are ignored while
#: absent). A spec whose ``needs`` have no builder must be here; so must every public function
#: that is neither a registered kernel nor in :data:`EXTRA_FUNCTIONS`.
NOT_YET_FUZZED: dict[str, str] = {
    # Box localization helpers (branch `components`): statistics and conversions, no `needs`.
    "mask_to_boxes": (
        "a conversion helper; its kernels (box_accuracy, ...) are fuzzed through their specs"
    ),
    "max_box_accuracy_statistics": (
        "sufficient statistics of max_box_accuracy; needs its own generator"
    ),
    "max_box_accuracy_from_statistics": (
        "reduces max_box_accuracy_statistics; needs its own generator"
    ),
    "pxap_statistics": "sufficient statistics of pxap; needs its own generator",
    "pxap_from_counts": "reduces pxap_statistics; needs its own generator",
    # Mosaics (functional/mosaic.py).
    "make_mosaics": (
        "builds a data set from images and a model (no `needs`); its errors, determinism and "
        "layout are tested in tests/functional/test_mosaic.py"
    ),
}

#: Metrics defined over a reference set (their scores depend on the batch by definition):
#: only permutation equivariance is checked. ``spec.scope == "set"`` adds to this once the
#: registry carries scopes; the names cover specs registered before it did.
SET_SCOPE: frozenset[str] = frozenset({"sufficiency", "consistency", "pointing_accuracy",
                                       "max_box_accuracy",
                                       "pxap"})


def is_set_scope(spec: MetricSpec) -> bool:
    return getattr(spec, "scope", "sample") == "set" or spec.name in SET_SCOPE


# --- problems --------------------------------------------------------------------------------


@dataclass
class Problem:
    """One drawn evaluation problem: the shapes, dtypes and every input a metric may need."""

    batch: int
    channels: int
    spatial: tuple[int, ...]
    n_classes: int
    x_dtype: torch.dtype
    inputs: dict[str, Any] = field(default_factory=dict)
    # how each input was drawn (for failure output)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return math.prod(self.spatial)

    def subset(self, index: Tensor) -> dict[str, Any]:
        """The per-sample inputs of the samples ``index`` (functions and models are shared)."""
        return {name: value[index] if isinstance(value, Tensor) else value
                for name, value in self.inputs.items()}


class FuzzNet(nn.Module):
    """Flatten -> Linear -> Tanh -> Linear, computed in float64, returned in the input's dtype.

    Two parameterised layers (the MPRT family randomizes them; relative representation
    stability reads the input of the last leaf). Records its calls in :attr:`calls` of the
    class, shared by deep copies, when :attr:`recording` is set.
    """

    calls: list[int] = []

    def __init__(self, n_inputs: int, n_classes: int, *, seed: int = 0,
                 nan_from_call: int | None = None) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.hidden = nn.Linear(n_inputs, 4).double()
        self.act = nn.Tanh()
        self.head = nn.Linear(4, n_classes).double()
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator,
                                            dtype=torch.float64))
        self.nan_from_call = nan_from_call

    def forward(self, x: Tensor) -> Tensor:
        out = self.head(self.act(self.hidden(x.reshape(x.shape[0], -1).double()))).to(x.dtype)
        if self.nan_from_call is not None:
            FuzzNet.calls.append(x.shape[0])
            if len(FuzzNet.calls) > self.nan_from_call:
                out = out * math.nan
        return out


def _scale(t: Tensor, ndim: int) -> Tensor:
    return t.reshape((-1,) + (1,) * (ndim - 1))


def fuzz_explain_fn(x: Tensor, target: Tensor) -> Tensor:
    """A smooth per-sample explainer that depends on the class: one channel."""
    return torch.tanh(3 * x - 1).sum(dim=1, keepdim=True) * _scale(1.0 + target.to(x.dtype), x.ndim)


def fuzz_explainer_factory(model: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    """``(x - logit)^2`` with the target logit of ``model``: its ranks change when the layers are
    randomized (a product ``x * logit`` would keep them, and MPRT would see no change)."""

    def explain(x: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            logit = model(x).gather(1, target.reshape(-1, 1)).reshape(-1)
        return (x - _scale(logit, x.ndim)) ** 2

    return explain


_A_KINDS = ("explanation", "normal", "positive", "constant", "zeros", "ties", "one_hot", "tiny",
            "huge")
_X_KINDS = ("uniform", "uniform", "uniform", "constant", "ties", "zeros")
_MASK_KINDS = ("random", "random", "empty", "full", "single")


def _values(kind: str, shape: tuple[int, ...], generator: torch.Generator,
            dtype: torch.dtype) -> Tensor:
    if kind == "normal":
        return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)
    if kind == "positive":
        return torch.rand(shape, generator=generator, dtype=torch.float64).to(dtype)
    if kind == "constant":
        return torch.full(shape, 0.75, dtype=dtype)
    if kind == "zeros":
        return torch.zeros(shape, dtype=dtype)
    if kind == "ties":
        levels = torch.tensor([-1.0, 0.0, 0.5, 1.0], dtype=torch.float64)
        return levels[torch.randint(0, 4, shape, generator=generator)].to(dtype)
    if kind == "one_hot":
        out = torch.zeros(shape, dtype=dtype)
        out.view(shape[0], -1)[:, 0] = 1.0
        return out
    if kind == "tiny":
        return (torch.randn(shape, generator=generator, dtype=torch.float64) * 1e-6).to(dtype)
    if kind == "huge":
        return (torch.randn(shape, generator=generator, dtype=torch.float64) * 1e6).to(dtype)
    raise AssertionError(kind)


@st.composite
def problems(draw: st.DrawFn, *, edge: bool = True, well_posed: bool = False) -> Problem:
    """A small problem with every input of :data:`NEED_BUILDERS` built; ``edge`` allows edge cases
    (constant, tied, empty, tiny or huge values, half-precision attributions). ``well_posed``: 2-D
    inputs of side 3 to 5 and 2 to 4 samples, where every metric has a defined score for
    almost every draw (to compare two runs)."""
    n_dims = 2 if well_posed else draw(st.sampled_from((2, 2, 2, 1, 3)))
    side = {1: st.integers(1, 10), 2: st.integers(3, 5) if well_posed else st.integers(1, 6),
            3: st.integers(1, 3)}[n_dims]
    spatial = tuple(draw(side) for _ in range(n_dims))
    problem = Problem(
        batch=draw(st.integers(2 if well_posed else 1, 4)),
        channels=draw(st.sampled_from((1, 3))),
        spatial=spatial,
        n_classes=draw(st.integers(2, 4)),
        x_dtype=draw(st.sampled_from((torch.float32, torch.float64))),
    )
    seed = draw(st.integers(0, 2**16))
    for name in NEED_BUILDERS:
        problem.inputs[name] = NEED_BUILDERS[name](draw, problem, seed, edge)
    return problem


# --- one builder per input name ----------------------------------------------------------------


def _generator(seed: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 31 + salt)


def _build_model(draw: st.DrawFn, p: Problem, seed: int, edge: bool) -> nn.Module:
    return FuzzNet(p.channels * p.n_features, p.n_classes, seed=seed).eval()


def _build_forward_fn(draw: st.DrawFn, p: Problem, seed: int, edge: bool) -> nn.Module:
    return p.inputs.get("model") or _build_model(draw, p, seed, edge)


def _build_x(draw: st.DrawFn, p: Problem, seed: int, edge: bool) -> Tensor:
    kind = draw(st.sampled_from(_X_KINDS)) if edge else "uniform"
    p.labels["x"] = kind
    shape = (p.batch, p.channels) + p.spatial
    return torch.rand(shape, generator=_generator(seed, 1), dtype=torch.float64).to(p.x_dtype) \
        if kind == "uniform" else _values(kind, shape, _generator(seed, 1), p.x_dtype)


def _build_target(draw: st.DrawFn, p: Problem, seed: int, edge: bool) -> Tensor:
    return torch.randint(0, p.n_classes, (p.batch,), generator=_generator(seed, 2))


def _build_a(draw: st.DrawFn, p: Problem, seed: int, edge: bool) -> Tensor:
    kind = draw(st.sampled_from(_A_KINDS)) if edge else "normal"
    dtype = p.x_dtype
    if edge and draw(st.integers(0, 5)) == 0:
        dtype = draw(st.sampled_from((torch.float16, torch.bfloat16)))
    channels = draw(st.sampled_from((1, p.channels)))
    p.labels["a"] = f"{kind} {dtype} C={channels}"
    if kind == "explanation":
        a = fuzz_explain_fn(p.inputs["x"], p.inputs["target"])
        return (a if channels == 1 else a.expand((-1, channels) + p.spatial).contiguous()).to(dtype)
    return _values(kind, (p.batch, channels) + p.spatial, _generator(seed, 3), dtype)


def _build_mask(draw: st.DrawFn, p: Problem, seed: int, edge: bool) -> Tensor:
    kind = draw(st.sampled_from(_MASK_KINDS)) if edge else "random"
    p.labels["mask"] = kind
    shape = (p.batch, 1) + p.spatial
    if kind == "random":
        return torch.rand(shape, generator=_generator(seed, 4)) < 0.4
    if kind == "empty":
        return torch.zeros(shape, dtype=torch.bool)
    if kind == "full":
        return torch.ones(shape, dtype=torch.bool)
    mask = torch.zeros(shape, dtype=torch.bool)
    mask.view(p.batch, -1)[:, -1] = True
    return mask


def _build_explain_fn(draw: st.DrawFn, p: Problem, seed: int,
                      edge: bool) -> Callable[[Tensor, Tensor], Tensor]:
    return fuzz_explain_fn


def _build_explainer_factory(draw: st.DrawFn, p: Problem, seed: int,
                             edge: bool) -> Callable[..., Any]:
    return fuzz_explainer_factory


def _build_segments(draw: st.DrawFn, p: Problem, seed: int, edge: bool) -> Tensor:
    return torch.randint(0, draw(st.integers(1, 4)), (p.batch,) + p.spatial,
                         generator=_generator(seed, 5))


def _build_boxes(draw: st.DrawFn, p: Problem, seed: int, edge: bool) -> Tensor:
    """``(B, N, 4)`` xyxy pixel boxes (NaN rows are padding), as :func:`boxes_to_mask` takes them.
    """
    height, width = (p.spatial + (1, 1))[:2] if len(p.spatial) < 2 else p.spatial[-2:]
    n = draw(st.integers(1, 3))
    corners = torch.rand((p.batch, n, 4), generator=_generator(seed, 6), dtype=torch.float64)
    x0, x1 = (corners[..., 0] * width).floor(), (corners[..., 2] * width).ceil()
    y0, y1 = (corners[..., 1] * height).floor(), (corners[..., 3] * height).ceil()
    boxes = torch.stack([torch.minimum(x0, x1), torch.minimum(y0, y1), torch.maximum(x0, x1),
                         torch.maximum(y0, y1)], dim=-1).float()
    if n > 1 and edge:
        boxes[0, -1] = math.nan
    return boxes


def _build_tiles(draw: st.DrawFn, p: Problem, seed: int, edge: bool) -> Tensor:
    """Which tiles of a mosaic show the target class: ``(B, n^2)`` bool flags (n = 2 mostly, so that
    :func:`focus` takes them) or ``(B,)`` one tile index of a 2 x 2 grid; with ``edge``, a sample
    without a target tile."""
    kind = (draw(st.sampled_from(("2x2 flags", "2x2 flags", "3x3 flags", "index"))) if edge
            else "2x2 flags")
    p.labels["tiles"] = kind
    generator = _generator(seed, 7)
    if kind == "index":
        return torch.randint(0, 4, (p.batch,), generator=generator)
    cells = 9 if kind == "3x3 flags" else 4
    flags = torch.rand((p.batch, cells), generator=generator) < 0.4
    flags[torch.arange(p.batch), torch.randint(0, cells, (p.batch,), generator=generator)] = True
    if edge and draw(st.integers(0, 3)) == 0:
        flags[0] = False
    return flags


#: Builders in dependency order (``a`` may be ``explain_fn(x, target)``; ``forward_fn`` is
#: ``model``).
NEED_BUILDERS: dict[str, Callable[[st.DrawFn, Problem, int, bool], Any]] = {
    "model": _build_model,
    "forward_fn": _build_forward_fn,
    "x": _build_x,
    "target": _build_target,
    "a": _build_a,
    "mask": _build_mask,
    "explain_fn": _build_explain_fn,
    "explainer_factory": _build_explainer_factory,
    "segments": _build_segments,
    "boxes": _build_boxes,
    "tiles": _build_tiles,
}


def fuzzable(spec: MetricSpec) -> bool:
    return spec.needs <= set(NEED_BUILDERS) and spec.name not in NOT_YET_FUZZED


# --- options that keep a call small ----------------------------------------------------------

_FAST_OPTIONS: dict[str, dict[str, Any]] = {
    "top_k_intersection": {"k": 0.25},
    "deletion": {"features_per_step": 0.25},
    "insertion": {"features_per_step": 0.25},
    "pixel_flipping": {"features_per_step": 0.25},
    "region_perturbation": {"patch_size": 1, "steps": 4},
    "selectivity": {"patch_size": 1},
    "irof": {"n_segments": 4},
    "faithfulness_estimate": {"features_per_step": 0.25},
    "monotonicity": {"features_per_step": 0.25},
    "monotonicity_correlation": {"features_per_step": 0.25, "n_samples": 2},
    "road": {"percentages": (20, 60)},
    "infidelity": {"n_perturbations": 3, "patch_sizes": (1,)},
    "faithfulness_correlation": {"subset_size": 0.25, "n_runs": 4},
    "sensitivity_n": {"n_subsets": 3},
    "non_sensitivity": {"patch_size": 1},
    "max_sensitivity": {"n_samples": 3},
    "avg_sensitivity": {"n_samples": 3},
    "local_lipschitz_estimate": {"n_samples": 3},
    "relative_input_stability": {"n_samples": 3},
    "relative_output_stability": {"n_samples": 3},
    "relative_representation_stability": {"n_samples": 3},
    "continuity": {"n_steps": 2},
    "consistency": {"k": 1},
    "smooth_mprt": {"n_samples": 2},
}


def parameters(spec: MetricSpec) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(spec.fn).parameters)


def call_options(spec: MetricSpec, *, max_batch_size: int | None = None) -> dict[str, Any]:
    """The spec's defaults, made small, with a fixed seed for stochastic kernels."""
    taken = parameters(spec)
    options = {k: v for k, v in spec.defaults.items() if k in taken}
    options.update({k: v for k, v in _FAST_OPTIONS.get(spec.name, {}).items() if k in taken})
    if "generator" in taken:
        options["generator"] = torch.Generator().manual_seed(7)
    elif "seed" in taken:
        options["seed"] = 7
    if max_batch_size is not None and "max_batch_size" in taken:
        options["max_batch_size"] = max_batch_size
    return options


def call(spec: MetricSpec, inputs: dict[str, Any], options: dict[str, Any]) -> Any:
    return spec.fn(**{name: inputs[name] for name in spec.needs}, **options)


def score_of(result: Any) -> Tensor:
    """The ``(B,)`` scores of a kernel's result (a tensor, or a result object with ``score``)."""
    return result if isinstance(result, Tensor) else result.score


# --- bad inputs: each variant is invalid for every metric it applies to ------------------------


def _nan_at_first(t: Tensor) -> Tensor:
    t = t.clone()
    t.view(-1)[0] = math.nan
    return t


def _one_more_sample(t: Tensor) -> Tensor:
    return torch.cat([t, t[:1]])


def _wrong_spatial(t: Tensor) -> Tensor:
    return torch.cat([t, t[..., :1]], dim=-1)


@dataclass(frozen=True)
class BadInput:
    """A bad value for one input: ``build(problem)``, the error it must raise, and where it is bad.

    ``applies(spec)`` says whether the value is invalid for that metric (``a`` with one sample
    more is only wrong next to an ``x`` or a ``mask``).
    """

    build: Callable[[Problem], Any]
    error: type[Exception] = XaiscoreError
    applies: Callable[[MetricSpec], bool] = lambda spec: True


def _from(name: str, change: Callable[[Tensor], Any]) -> Callable[[Problem], Any]:
    return lambda p: change(p.inputs[name])


def _with(*others: str) -> Callable[[MetricSpec], bool]:
    return lambda spec: any(other in spec.needs for other in others)


def _model_returning(change: Callable[[Tensor], Any]) -> Callable[[Problem],
                                                                  Callable[[Tensor], Any]]:
    def build(p: Problem) -> Callable[[Tensor], Any]:
        model = p.inputs["model"]
        return lambda x: change(model(x))

    return build


def _tensor_variants(name: str, *, compared_with: tuple[str, ...]) -> dict[str, BadInput]:
    """Variants of any tensor input; shape variants only where another input fixes the shape."""
    shaped = _with(*compared_with)
    return {
        "numpy": BadInput(_from(name, lambda t: t.float().numpy()), DTypeError),
        "list": BadInput(_from(name, lambda t: t.tolist()), DTypeError),
        "meta": BadInput(_from(name, lambda t: t.to("meta")), DeviceError),
        "empty batch": BadInput(_from(name, lambda t: t[:0]), ShapeError),
        "no channel axis": BadInput(_from(name, lambda t: t[:, 0]), ShapeError, shaped),
        "one more sample": BadInput(_from(name, _one_more_sample), ShapeError, shaped),
        "wrong spatial size": BadInput(_from(name, _wrong_spatial), ShapeError, shaped),
    }


#: ``need -> {variant: BadInput}``.
BAD_INPUTS: dict[str, dict[str, BadInput]] = {
    "a": {
        **_tensor_variants("a", compared_with=("x", "mask")),
        "integer": BadInput(_from("a", lambda t: t.round().long()), DTypeError),
        "complex": BadInput(_from("a", lambda t: t.to(torch.complex64)), DTypeError),
        "NaN": BadInput(_from("a", lambda t: _nan_at_first(t.float())), NonFiniteError),
        "inf": BadInput(_from("a", lambda t: t.float().index_fill(0, torch.tensor([0]), math.inf)),
                        NonFiniteError),
        "2 channels of 3": BadInput(lambda p: torch.zeros((p.batch, 2) + p.spatial), ShapeError,
                                    lambda spec: "x" in spec.needs),
    },
    "x": {
        **_tensor_variants("x", compared_with=("a",)),
        "one more sample": BadInput(_from("x", _one_more_sample), ShapeError, _with("a", "target")),
        "integer": BadInput(_from("x", lambda t: t.round().long()), DTypeError),
        "NaN": BadInput(_from("x", _nan_at_first), NonFiniteError),
        "inf": BadInput(_from("x", lambda t: t.index_fill(0, torch.tensor([0]), math.inf)), NonFiniteError),  # noqa: E501
    },
    "mask": {
        **_tensor_variants("mask", compared_with=("a",)),
        "not binary": BadInput(_from("mask", lambda t: t.double() * 0.5 + 0.25), MaskError),
        "complex": BadInput(_from("mask", lambda t: t.to(torch.complex64)), DTypeError),
    },
    "target": {
        "float": BadInput(_from("target", lambda t: t.double()), DTypeError),
        "one more": BadInput(_from("target", _one_more_sample), ShapeError),
        "2-D": BadInput(_from("target", lambda t: t.reshape(-1, 1)), ShapeError),
        "negative": BadInput(lambda p: p.inputs["target"] - p.n_classes, OptionError),
        "too large": BadInput(lambda p: p.inputs["target"] + p.n_classes, OptionError,
                              _with("forward_fn", "model")),
        "meta": BadInput(_from("target", lambda t: t.to("meta")), DeviceError),
        "numpy": BadInput(_from("target", lambda t: t.numpy()), DTypeError),
    },
    "forward_fn": {
        "not callable": BadInput(lambda p: "model", DTypeError),
        "integer "
        "logits": BadInput(_model_returning(lambda out: (out * 10).long()), ModelOutputError),
        "bool logits": BadInput(_model_returning(lambda out: out > 0), ModelOutputError),
        "NaN logits": BadInput(_model_returning(lambda out: out * math.nan), NonFiniteError),
        "1-D output": BadInput(_model_returning(lambda out: out[:, 0]), ModelOutputError),
        "one row short": BadInput(_model_returning(lambda out: out[1:]), ModelOutputError),
        "tuple output": BadInput(_model_returning(lambda out: (out,)), ModelOutputError),
        "numpy "
        "output": BadInput(_model_returning(lambda out: out.detach().numpy()), ModelOutputError),
    },
    "model": {
        "not a module": BadInput(lambda p: (lambda x: p.inputs["model"](x)), DTypeError),
        "NaN "
        "logits": BadInput(lambda p: FuzzNet(p.channels * p.n_features, p.n_classes, nan_from_call=0).eval(),  # noqa: E501
                               NonFiniteError),
    },
    "explain_fn": {
        "not callable": BadInput(lambda p: 3, DTypeError),
        "NaN "
        "maps": BadInput(lambda p: (lambda x, t: fuzz_explain_fn(x, t) * math.nan), NonFiniteError),
        "integer "
        "maps": BadInput(lambda p: (lambda x, t: fuzz_explain_fn(x, t).long()), ModelOutputError),
        "no channel "
        "axis": BadInput(lambda p: (lambda x, t: fuzz_explain_fn(x, t)[:, 0]), ModelOutputError),
        "numpy "
        "maps": BadInput(lambda p: (lambda x, t: fuzz_explain_fn(x, t).numpy()), ModelOutputError),
        "meta "
        "maps": BadInput(lambda p: (lambda x, t: fuzz_explain_fn(x, t).to("meta")), ModelOutputError),  # noqa: E501
    },
    "explainer_factory": {
        "not callable": BadInput(lambda p: "Saliency", DTypeError),
        "returns no function": BadInput(lambda p: (lambda model: None), ModelOutputError),
        "NaN "
        "maps": BadInput(lambda p: (lambda model: (lambda x, t: fuzz_explainer_factory(model)(x, t) * math.nan)),  # noqa: E501
                             NonFiniteError),
        "no channel axis": BadInput(
            lambda p: (lambda model: (lambda x, t: fuzz_explainer_factory(model)(x, t)[:, 0])),
            ModelOutputError),
        "integer maps": BadInput(
            lambda p: (lambda model: (lambda x, t: fuzz_explainer_factory(model)(x, t).long())),
            ModelOutputError),
    },
    "segments": {
        "float": BadInput(_from("segments", lambda t: t.double() + 0.5), DTypeError),
        "wrong spatial size": BadInput(_from("segments", _wrong_spatial), ShapeError),
        "one more sample": BadInput(_from("segments", _one_more_sample), ShapeError),
        "meta": BadInput(_from("segments", lambda t: t.to("meta")), DeviceError),
    },
    "boxes": {
        "complex": BadInput(_from("boxes", lambda t: t.to(torch.complex64)), DTypeError),
        "three coordinates": BadInput(_from("boxes", lambda t: t[..., :3]), ShapeError),
        "meta": BadInput(_from("boxes", lambda t: t.to("meta")), DeviceError),
    },
    "tiles": {
        "float": BadInput(_from("tiles", lambda t: t.double()), DTypeError),
        "complex": BadInput(_from("tiles", lambda t: t.to(torch.complex64)), DTypeError),
        "numpy": BadInput(_from("tiles", lambda t: t.numpy()), DTypeError),
        "meta": BadInput(_from("tiles", lambda t: t.to("meta")), DeviceError),
        "one more sample": BadInput(_from("tiles", _one_more_sample), ShapeError),
        "5 flags": BadInput(lambda p: torch.ones((p.batch, 5), dtype=torch.bool), ShapeError),
        "3-D": BadInput(lambda p: torch.ones((p.batch, 2, 2), dtype=torch.bool), ShapeError),
        "flags of 2": BadInput(lambda p: torch.full((p.batch, 4), 2), MaskError),
        "index out of the grid": BadInput(lambda p: torch.full((p.batch,), 4), OptionError),
        "negative index": BadInput(lambda p: torch.full((p.batch,), -1), OptionError),
    },
}


def bad_input_cases(spec: MetricSpec) -> list[tuple[str, str]]:
    """``(need, variant)`` pairs that are invalid for ``spec``."""
    return [(need, variant) for need in sorted(spec.needs)
            for variant, bad in BAD_INPUTS.get(need, {}).items()
            if bad.applies(spec)]


# --- bad options, by the type of the default ---------------------------------------------------

_BAD_BY_TYPE: dict[type, tuple[Any, ...]] = {
    bool: ("yes", None, 2),
    int: (0, -1, 2.5, "2", None, True, math.nan),
    float: (math.nan, math.inf, -math.inf, -1.0, 0.0, "0.5", None, True),
    str: ("bogus", None, 3, ""),
    tuple: ((), ("a",), (-1,), None, "bogus"),
    type(None): ("bogus", -1, math.nan, (1, 2, 3)),
}

#: Options left out of the option fuzz: the inputs, and switches whose bad values are tested
#: elsewhere or that only skip checks.
_NOT_OPTIONS = frozenset({"validate"})


def option_cases(spec: MetricSpec) -> dict[str, tuple[Any, ...]]:
    """``option -> bad values`` for the kernel's keyword-only options with a default."""
    cases = {}
    for name, parameter in parameters(spec).items():
        if (parameter.kind is not inspect.Parameter.KEYWORD_ONLY or name in spec.needs
            or name in _NOT_OPTIONS):
            continue
        if parameter.default is inspect.Parameter.empty:
            continue
        values = _BAD_BY_TYPE.get(type(parameter.default), ())
        if values:
            cases[name] = values
    return cases


# --- public functions that are not registered metrics ------------------------------------------


@st.composite
def boxes_to_mask_calls(draw: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any],
                                                  type[Exception] | None]:
    """``(args, kwargs, expected error or None)`` for :func:`xaiscore.functional.boxes_to_mask`."""
    batch, n = draw(st.integers(1, 3)), draw(st.integers(0, 3))
    dims = draw(st.sampled_from((2, 2, 3, 1)))
    shape = tuple(draw(st.integers(1, 6)) for _ in range(dims))
    box_format = draw(st.sampled_from(("xyxy", "xywh")))
    corners = draw(st.lists(st.floats(-2.0, 8.0, allow_nan=False, width=32),
                            min_size=batch * n * 2 * dims,
                            max_size=batch * n * 2 * dims))
    boxes = torch.tensor(corners, dtype=torch.float32).reshape(batch, n, 2 * dims)
    low, high = boxes[..., :dims], boxes[..., dims:]
    if box_format == "xyxy":
        boxes = torch.cat([torch.minimum(low, high), torch.maximum(low, high)], dim=-1)
    else:
        boxes[..., dims:] = high.abs()
    kwargs = {"box_format": box_format, "rule": draw(st.sampled_from(("center", "cover")))}
    variant = draw(st.sampled_from(("good", "good", "list", "complex", "bool", "meta", "numpy",
                                    "a coordinate short",
                                    "bad size", "bad format", "negative extent")))
    error: type[Exception] | None = None
    size: Any = shape
    if variant == "list":
        boxes = [boxes[i] for i in range(batch)]
    elif variant == "complex":
        boxes, error = boxes.to(torch.complex64), DTypeError
    elif variant == "bool":
        boxes, error = boxes > 0, DTypeError
    elif variant == "meta":
        boxes, error = boxes.to("meta"), DeviceError
    elif variant == "numpy":
        boxes, error = boxes.numpy(), DTypeError
    elif variant == "a coordinate short":
        boxes, error = boxes[..., :-1], ShapeError
    elif variant == "bad size":  # (3,) or (3, 3) is a size of another dimension than the boxes'
        size, error = draw(st.sampled_from(((0, 3), (3,) * (1 if dims > 1 else 2), (2.0, 3), "3x3",
                                            (True, 2),
                                            (2, 2, 2, 2)))), ShapeError
    elif variant == "bad format":
        kwargs["box_format"], error = "cxcywh", OptionError
    elif variant == "negative extent" and n > 0:
        if box_format == "xyxy":
            boxes[0, 0, 0], boxes[0, 0, dims] = 3.0, 1.0
        else:
            boxes[0, 0, dims] = -1.0
        error = OptionError
    return (boxes, size), kwargs, error


@st.composite
def tile_index_calls(draw: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any],
                                               type[Exception] | None]:
    """``(args, kwargs, expected error or None)`` for :func:`xaiscore.functional.tile_index`."""
    spatial: Any = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    grid: Any = draw(st.integers(2, 4))
    variant = draw(st.sampled_from(("good", "good", "good", "grid 1", "grid float", "grid bool",
                                    "3 sizes",
                                    "zero size", "float size", "size string")))
    error: type[Exception] | None = None
    if variant == "grid 1":
        grid, error = 1, OptionError
    elif variant == "grid float":
        grid, error = 2.0, DTypeError
    elif variant == "grid bool":
        grid, error = True, DTypeError
    elif variant == "3 sizes":
        spatial, error = spatial + (2,), ShapeError
    elif variant == "zero size":
        spatial, error = (0, spatial[1]), ShapeError
    elif variant == "float size":
        spatial, error = (float(spatial[0]), spatial[1]), ShapeError
    elif variant == "size string":
        spatial, error = "4x4", ShapeError
    return (spatial, grid), {}, error


@st.composite
def tune_threshold_calls(draw: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any],
                                                   type[Exception] | None]:
    """``(args, kwargs, expected error or None)`` for :func:`xaiscore.functional.tune_threshold`."""
    problem = draw(problems(edge=True))
    a, mask = problem.inputs["a"], problem.inputs["mask"]
    kwargs: dict[str, Any] = {
        "threshold_mode": draw(st.sampled_from(("min_max", "max_fraction", "quantile"))),
        "empty_prediction": draw(st.sampled_from(("nan", "zero"))),
    }
    kwargs["thresholds"] = (0.2, 0.5,
                            1.0) if kwargs["threshold_mode"] == "max_fraction" else (0.0, 0.3, 0.7)
    variant = draw(st.sampled_from(("good", "good", "good", "a NaN", "a integer", "mask not binary",
                                    "mask one more "
                                    "sample", "thresholds decreasing", "thresholds above 1",
                                    "mode otsu", "bad empty_prediction")))
    error: type[Exception] | None = None
    if variant == "a NaN":
        a, error = _nan_at_first(a.float()), NonFiniteError
    elif variant == "a integer":
        a, error = a.round().long(), DTypeError
    elif variant == "mask not binary":
        mask, error = mask.double() * 0.5 + 0.25, MaskError
    elif variant == "mask one more sample":
        mask, error = _one_more_sample(mask), ShapeError
    elif variant == "thresholds decreasing":
        kwargs["thresholds"], error = (0.7, 0.3), OptionError
    elif variant == "thresholds above 1":
        kwargs["thresholds"], error = (0.5, 1.5), OptionError
    elif variant == "mode otsu":
        kwargs["threshold_mode"], error = "otsu", OptionError
    elif variant == "bad empty_prediction":
        kwargs["empty_prediction"], error = "one", OptionError
    return (a, mask), kwargs, error


#: Public functions of ``xaiscore.functional`` that are not registered metrics, with their own
#: call generators (``test_extra_functions``).
EXTRA_FUNCTIONS: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
    "boxes_to_mask": boxes_to_mask_calls,
    "tile_index": tile_index_calls,
    "tune_threshold": tune_threshold_calls,
}
