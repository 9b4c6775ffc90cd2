"""Hypothesis strategies for testing explainers and metrics.

Import them in your own tests (hypothesis must be installed; it is not a
dependency of xaiscore itself)::

    from hypothesis import given
    from xaiscore.testing import strategies as xst

    @given(xst.metric_inputs())
    def test_my_metric_is_bounded(inputs):
        score = my_metric(inputs.a, inputs.mask)
        assert ((score >= 0) & (score <= 1)).all()

Every argument is keyword-only and accepts either a plain value or a
hypothesis strategy drawing that value (as in ``xarray.testing.strategies``).
Defaults are small (batches of 1 to 3, sides of 1 to 6 pixels) so that tests
stay fast and shrink well. Edge cases are switched on explicitly: constant
maps, ties, empty and full masks.

Example:
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5)
    ... @given(attributions(shape=(2, 1, 4, 4)))
    ... def check(a):
    ...     assert a.shape == (2, 1, 4, 4)
    >>> check()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst
from torch import Tensor

__all__ = [
    "MetricInputs",
    "shapes",
    "attributions",
    "masks",
    "boxes",
    "metric_inputs",
    "ModelInputs",
    "tiny_mlp",
    "model_inputs",
]

T = TypeVar("T")

#: Values used when ``ties=True``: a handful of levels so that equal values are common.
TIE_LEVELS: tuple[float, ...] = (-1.0, 0.0, 0.25, 0.5, 1.0, 2.0)


def _strategy(value: T | st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    return value if isinstance(value, st.SearchStrategy) else st.just(value)


class MetricInputs(NamedTuple):
    """Attributions and a matching mask, as drawn by :func:`metric_inputs`."""

    a: Tensor
    mask: Tensor


@st.composite
def shapes(
    draw: st.DrawFn,
    *,
    batch_size: int | st.SearchStrategy[int] = st.integers(1, 3),
    channels: int | st.SearchStrategy[int] = st.integers(1, 3),
    spatial_dims: int | st.SearchStrategy[int] = st.integers(1, 3),
    side: int | st.SearchStrategy[int] = st.integers(1, 6),
) -> tuple[int, ...]:
    """Shapes ``(B, C, *S)`` with 1 to 3 spatial dimensions.

    Args:
        batch_size: ``B``.
        channels: ``C``.
        spatial_dims: The number of spatial axes (1 to 3).
        side: The size of each spatial axis (drawn per axis).
    """
    b = draw(_strategy(batch_size))
    c = draw(_strategy(channels))
    d = draw(_strategy(spatial_dims))
    side_strategy = _strategy(side)
    spatial = tuple(draw(side_strategy) for _ in range(d))
    return (b, c) + spatial


def _shape(draw: st.DrawFn,
           shape: Sequence[int] | st.SearchStrategy[Sequence[int]] | None) -> tuple[int, ...]:
    return tuple(draw(shapes())) if shape is None else tuple(draw(_strategy(shape)))


@st.composite
def attributions(
    draw: st.DrawFn,
    *,
    shape: Sequence[int] | st.SearchStrategy[Sequence[int]] | None = None,
    dtype: torch.dtype | st.SearchStrategy[torch.dtype] = torch.float64,
    min_value: float = -10.0,
    max_value: float = 10.0,
    nonnegative: bool | st.SearchStrategy[bool] = False,
    ties: bool | st.SearchStrategy[bool] = False,
    constant: bool | st.SearchStrategy[bool] = False,
) -> Tensor:
    """Finite attribution tensors ``(B, C, *S)``.

    Args:
        shape: A shape or a strategy of shapes (default :func:`shapes`).
        dtype: ``torch.float64`` by default.
        min_value, max_value: Range of the values.
        nonnegative: Clip the range at 0 (saliency-like maps).
        ties: Draw values from a few levels (:data:`TIE_LEVELS`) so that ties are common.
        constant: Every sample is a constant map (its own constant).
    """
    dims = _shape(draw, shape)
    dtype = draw(_strategy(dtype))
    low = max(min_value, 0.0) if draw(_strategy(nonnegative)) else min_value
    if draw(_strategy(constant)):
        values = draw(npst.arrays(np.float64, (dims[0],),
                                  elements=st.floats(low, max_value, width=32)))
        array = np.broadcast_to(values.reshape((-1,) + (1,) * (len(dims) - 1)), dims).copy()
    elif draw(_strategy(ties)):
        levels = [v for v in TIE_LEVELS if low <= v <= max_value] or [low]
        array = draw(npst.arrays(np.float64, dims, elements=st.sampled_from(levels)))
    else:
        elements = st.floats(low, max_value, allow_nan=False, allow_infinity=False, width=32)
        array = draw(npst.arrays(np.float64, dims, elements=elements))
    return torch.from_numpy(array).to(dtype)


@st.composite
def masks(
    draw: st.DrawFn,
    *,
    shape: Sequence[int] | st.SearchStrategy[Sequence[int]] | None = None,
    kind: str | st.SearchStrategy[str] = st.sampled_from(["random", "box"]),
    allow_empty: bool = False,
) -> Tensor:
    """Boolean masks of the given shape (channel axis included, usually 1).

    Args:
        shape: ``(B, 1, *S)`` (or any ``(B, C, *S)``).
        kind: ``"random"`` (independent pixels), ``"box"`` (an axis-aligned
            box per sample), ``"empty"`` or ``"full"``.
        allow_empty: Unless set, a sample whose mask came out empty gets one
            pixel switched on, so every sample has a non-empty mask.
    """
    dims = _shape(draw, shape)
    kind = draw(_strategy(kind))
    if kind == "empty":
        return torch.zeros(dims, dtype=torch.bool)
    if kind == "full":
        return torch.ones(dims, dtype=torch.bool)
    if kind == "random":
        out = torch.from_numpy(draw(npst.arrays(np.bool_, dims)))
    elif kind == "box":
        out = torch.zeros(dims, dtype=torch.bool)
        for i in range(dims[0]):
            index: list[Any] = [i, slice(None)]
            for side in dims[2:]:
                start = draw(st.integers(0, side - 1))
                stop = draw(st.integers(start + 1, side))
                index.append(slice(start, stop))
            out[tuple(index)] = True
    else:
        raise ValueError(f"Expected `kind` in 'random', 'box', 'empty', 'full', but got {kind!r}.")
    if not allow_empty:
        flat = out.reshape(dims[0], -1)
        empty = ~flat.any(dim=1)
        if empty.any():
            position = draw(st.integers(0, flat.shape[1] - 1))
            flat[empty, position] = True
    return out


@st.composite
def boxes(
    draw: st.DrawFn,
    *,
    batch_size: int | st.SearchStrategy[int] = st.integers(1, 3),
    size: tuple[int, int] | st.SearchStrategy[tuple[int, int]] = (8, 10),
    max_boxes: int = 3,
    box_format: str = "xyxy",
    integer: bool | st.SearchStrategy[bool] = False,
    inside: bool = True,
) -> list[Tensor]:
    """Bounding boxes: a list of ``B`` float tensors ``(N_i, 4)`` with ``0 <= N_i <= max_boxes``.

    Args:
        batch_size: ``B``.
        size: The image size ``(H, W)`` the boxes refer to.
        max_boxes: Most boxes per sample.
        box_format: ``"xyxy"`` or ``"xywh"``.
        integer: Integer-valued coordinates (otherwise quarter-pixel steps).
        inside: Keep boxes within the image; otherwise they may extend up to
            half the image size beyond it.
    """
    b = draw(_strategy(batch_size))
    height, width = draw(_strategy(size))
    step = 1.0 if draw(_strategy(integer)) else 0.25
    out = []
    for _ in range(b):
        n = draw(st.integers(0, max_boxes))
        rows = []
        for _ in range(n):
            lo_x, hi_x = (0.0, float(width)) if inside else (-width / 2, 1.5 * width)
            lo_y, hi_y = (0.0, float(height)) if inside else (-height / 2, 1.5 * height)
            grid_x = st.integers(int(lo_x / step), int(hi_x / step)).map(lambda v: v * step)
            grid_y = st.integers(int(lo_y / step), int(hi_y / step)).map(lambda v: v * step)
            x0, x1 = sorted((draw(grid_x), draw(grid_x)))
            y0, y1 = sorted((draw(grid_y), draw(grid_y)))
            rows.append([x0, y0, x1 - x0, y1 - y0] if box_format == "xywh" else [x0, y0, x1, y1])
        out.append(torch.tensor(rows, dtype=torch.float64).reshape(n, 4))
    return out


@st.composite
def metric_inputs(
    draw: st.DrawFn,
    *,
    shape: Sequence[int] | st.SearchStrategy[Sequence[int]] | None = None,
    dtype: torch.dtype | st.SearchStrategy[torch.dtype] = torch.float64,
    nonnegative: bool | st.SearchStrategy[bool] = False,
    ties: bool | st.SearchStrategy[bool] = False,
    constant: bool | st.SearchStrategy[bool] = False,
    mask_kind: str | st.SearchStrategy[str] = st.sampled_from(["random", "box"]),
    mask_channels: int | st.SearchStrategy[int] = 1,
    allow_empty_mask: bool = False,
    edge_cases: bool = False,
) -> MetricInputs:
    """Attributions and a matching mask for localization metrics.

    Args:
        shape: Shape of ``a``, ``(B, C, *S)`` (default :func:`shapes`).
        dtype, nonnegative, ties, constant: Passed to :func:`attributions`.
        mask_kind: Passed to :func:`masks`.
        mask_channels: 1, or the channel count of ``a`` (pass ``-1`` for that).
        allow_empty_mask: Let masks be empty.
        edge_cases: Shorthand: draw ties, constant maps, empty and full masks
            with fair probability (overrides ``ties``, ``constant``,
            ``mask_kind`` and ``allow_empty_mask``).
    """
    dims = _shape(draw, shape)
    if edge_cases:
        ties = st.booleans()
        constant = st.booleans()
        mask_kind = st.sampled_from(["random", "box", "empty", "full"])
        allow_empty_mask = True
    a = draw(attributions(shape=dims, dtype=dtype, nonnegative=nonnegative, ties=ties,
                          constant=constant))
    c = draw(_strategy(mask_channels))
    mask_dims = (dims[0], dims[1] if c == -1 else c) + dims[2:]
    mask = draw(masks(shape=mask_dims, kind=mask_kind, allow_empty=allow_empty_mask))
    return MetricInputs(a, mask)


class ModelInputs(NamedTuple):
    """A tiny model with inputs, attributions and targets, as drawn by :func:`model_inputs`."""

    forward_fn: torch.nn.Module
    x: Tensor
    a: Tensor
    target: Tensor


def tiny_mlp(input_shape: Sequence[int], num_classes: int, *, seed: int = 0, hidden: int = 8,
             dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    """A small MLP ``Flatten -> Linear -> Tanh -> Linear`` for inputs ``(n, *input_shape)``.

    Weights are drawn from ``torch.Generator().manual_seed(seed)`` (never the
    global RNG), standard normal scaled by ``1 / sqrt(fan_in)``; the model is in
    eval mode.

    Example:
        >>> model = tiny_mlp((1, 4, 4), 3, seed=1)
        >>> model(torch.zeros(2, 1, 4, 4, dtype=torch.float64)).shape
        torch.Size([2, 3])
    """
    generator = torch.Generator().manual_seed(seed)
    features = int(np.prod(input_shape))
    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(features, hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(hidden, num_classes),
    ).to(dtype)
    with torch.no_grad():
        for parameter in model.parameters():
            fan_in = parameter.shape[1] if parameter.ndim == 2 else hidden
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=dtype) / fan_in
                            **0.5)
    return model.eval()


@st.composite
def model_inputs(
    draw: st.DrawFn,
    *,
    shape: Sequence[int] | st.SearchStrategy[Sequence[int]] | None = None,
    dtype: torch.dtype = torch.float64,
    num_classes: int | st.SearchStrategy[int] = st.integers(2, 4),
    attribution_channels: int | st.SearchStrategy[int] = st.sampled_from([1, -1]),
    ties: bool | st.SearchStrategy[bool] = False,
    constant: bool | st.SearchStrategy[bool] = False,
) -> ModelInputs:
    """A :func:`tiny_mlp`, inputs ``x`` in [-1, 1], attributions and targets for model-based
    metrics.

    Args:
        shape: Shape of ``x``, ``(B, C, *S)`` (default :func:`shapes`).
        dtype: Of ``x``, ``a`` and the model.
        num_classes: ``K``; targets are drawn in ``[0, K)``.
        attribution_channels: 1, or ``-1`` for the channels of ``x``.
        ties, constant: Passed to :func:`attributions`.

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=3)
        ... @given(model_inputs(shape=(2, 1, 3, 3)))
        ... def check(case):
        ...     assert case.forward_fn(case.x).shape[0] == 2 and case.target.shape == (2,)
        >>> check()
    """
    dims = _shape(draw, shape)
    elements = st.floats(-1.0, 1.0, allow_nan=False, width=32)
    x = torch.from_numpy(draw(npst.arrays(np.float64, dims, elements=elements))).to(dtype)
    c = draw(_strategy(attribution_channels))
    a = draw(attributions(shape=(dims[0], dims[1] if c == -1 else c) + dims[2:], dtype=dtype,
                          ties=ties,
                          constant=constant))
    k = draw(_strategy(num_classes))
    model = tiny_mlp(dims[1:], k, seed=draw(st.integers(0, 2**16)), dtype=dtype)
    target = torch.tensor(draw(st.lists(st.integers(0, k - 1), min_size=dims[0], max_size=dims[0])),
                          dtype=torch.long)
    return ModelInputs(model, x, a, target)
