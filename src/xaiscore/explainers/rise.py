r"""RISE (Petsiuk, Das and Saenko, BMVC 2018): saliency from randomly masked copies of the input.

RISE probes the model with ``N`` masked copies :math:`x \odot M_i` of each input and weights each
mask by the target-class probability it leaves:

.. math:: S(x) = \frac{1}{N\,p} \sum_{i=1}^{N} f_c(x \odot M_i)\, M_i

Masks (the paper's procedure): a binary grid of ``s`` cells per axis, each cell on with
probability ``p``, is upsampled (bi/tri)linearly to ``(s + 1) * cell`` pixels per axis, with
``cell = ceil(side / s)``, and cropped to the input size at a random offset in ``[0, cell)`` per
axis. Upsampling follows :func:`torch.nn.functional.interpolate` (``align_corners=False``,
half-pixel centres, edges clamped). The authors' code upsamples with ``skimage.transform.resize``
(``mode="reflect"``), which differs from this within half a cell of the upsampled grid's border.

Implementation: the upsample-and-crop of mask ``i`` is separable, ``M_i = W_{i,1} G_i W_{i,2}^T``
with per-axis interpolation matrices ``W_{i,k}`` ``(side_k, s_k)`` that already contain the
shift, so a chunk of masks is a few batched matrix products and no mask is ever built larger
than the input. The ``N x n`` masked copies go through the model in chunks of at most
``max_batch_size`` (whole masks times all samples when ``n <= max_batch_size``), and each chunk's
scores are folded into the saliency at once (one ``addmm``), so nothing of size ``N x n x |x|``
is ever held. Masks are drawn from a generator seeded once at construction, so they depend only
on the seed and the input's spatial shape: every sample, every call and every chunk size sees
the same mask set (results agree for any ``max_batch_size`` up to floating-point summation
order). A mask set of at most :data:`MASK_CACHE_BYTES` (128 MiB: e.g. 4000 masks of 64 x 64,
640 of 224 x 224 in float32) is built once and kept for the next calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from xaiscore._checks import DTypeError, OptionError, ShapeError, check_fraction, check_positive_int
from xaiscore._engine.batching import (
    ChunkBuffers,
    call_model,
    check_items_or_bytes,
    class_scores,
    items_per_call,
)
from xaiscore._engine.explain_fn import BuiltExplainer, format_shape
from xaiscore._engine.random import draw_seed, resolve_generator
from xaiscore.explainers._common import check_model_inputs

__all__ = ["RiseExplainer", "rise_explainer", "RiseMaskParameters", "MASK_CACHE_BYTES"]

#: The most memory an explainer keeps its masks in between calls: all ``N`` masks of the latest
#: input shape, dtype and device, if they fit; larger sets are rebuilt chunk by chunk per call.
MASK_CACHE_BYTES = 128 * 2**20


class RiseMaskParameters(NamedTuple):
    """What defines RISE's masks for one spatial shape (:meth:`RiseExplainer.mask_parameters`)."""

    #: ``(N, s_1, ..., s_d)`` float 0/1: the low-resolution binary grids.
    grids: Tensor
    #: ``(N, d)`` long: the crop offset of each mask per axis, in ``[0, cell_k)``.
    shifts: Tensor
    #: ``(s_1, ..., s_d)``: grid cells per axis.
    grid_size: tuple[int, ...]
    #: ``(cell_1, ..., cell_d)``: ``ceil(side_k / s_k)``; the upsampled grid has
    #: ``(s_k + 1) cell_k`` pixels.
    cell_size: tuple[int, ...]


def _axis_weights(shifts: Tensor, side: int, cells: int, cell: int, dtype: torch.dtype) -> Tensor:
    """Interpolation matrices ``(m, side, cells)``.

    Row ``j`` of mask ``i`` reads the upsampled grid at ``shift_i + j``.
    """
    position = shifts.to(torch.float64).unsqueeze(1) + torch.arange(
        side, dtype=torch.float64, device=shifts.device
    )
    scale = cells / ((cells + 1) * cell)  # input size / output size, as F.interpolate computes it
    source = ((position + 0.5) * scale - 0.5).clamp_(min=0.0)
    low = source.floor().clamp_(max=cells - 1)
    weight_high = source - low
    low = low.long()
    high = (low + 1).clamp_(max=cells - 1)
    weights = torch.zeros(shifts.shape[0], side, cells, dtype=torch.float64, device=shifts.device)
    weights.scatter_add_(2, low.unsqueeze(2), (1.0 - weight_high).unsqueeze(2))
    weights.scatter_add_(2, high.unsqueeze(2), weight_high.unsqueeze(2))
    return weights.to(dtype)


def _upsample_and_crop(
    grids: Tensor,
    shifts: Tensor,
    spatial: tuple[int, ...],
    grid_size: tuple[int, ...],
    cell_size: tuple[int, ...],
    dtype: torch.dtype,
) -> Tensor:
    """The masks ``(m, *spatial)`` of ``grids`` ``(m, *grid_size)`` shifted by ``shifts``."""
    weights = [
        _axis_weights(shifts[:, k], spatial[k], grid_size[k], cell_size[k], dtype)
        for k in range(len(spatial))
    ]
    grids = grids.to(dtype)
    if len(spatial) == 1:
        return torch.bmm(weights[0], grids.unsqueeze(2)).squeeze(2)
    if len(spatial) == 2:
        return torch.bmm(torch.bmm(weights[0], grids), weights[1].transpose(1, 2))
    out = torch.einsum("mai,mijk->majk", weights[0], grids)
    out = torch.einsum("mbj,majk->mabk", weights[1], out)
    return torch.einsum("mck,mabk->mabc", weights[2], out)


class RiseExplainer(BuiltExplainer):
    """RISE saliency as a batched explain function; build it with :func:`rise_explainer`."""

    def __init__(
        self,
        model: Callable[[Tensor], Tensor],
        /,
        *,
        n_masks: int = 4000,
        grid_size: int | Sequence[int] = 7,
        p: float = 0.5,
        baseline: float = 0.0,
        softmax: bool = True,
        max_batch_size: int | str = 64,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        if not callable(model):
            raise DTypeError(
                f"Expected `model` to be callable (an nn.Module or a forward function), but got "
                f"{type(model).__name__}."
            )
        self.model = model
        self.n_masks = check_positive_int(n_masks, "n_masks")
        if isinstance(grid_size, int) and not isinstance(grid_size, bool):
            check_positive_int(grid_size, "grid_size")
            self.grid_size: int | tuple[int, ...] = grid_size
        else:
            if not isinstance(grid_size, Sequence) or not grid_size:
                raise DTypeError(
                    "Expected `grid_size` to be an int or a sequence of ints, but got "
                    f"{grid_size!r}."
                )
            self.grid_size = tuple(check_positive_int(g, "grid_size") for g in grid_size)
        self.p = check_fraction(p, "p", low_inclusive=False)
        if (
            isinstance(baseline, bool)
            or not isinstance(baseline, (int, float))
            or not math.isfinite(baseline)
        ):
            raise OptionError(f"Expected `baseline` to be a finite number, but got {baseline!r}.")
        self.baseline = float(baseline)
        self.softmax = bool(softmax)
        self.max_batch_size = check_items_or_bytes(max_batch_size)
        self.seed = draw_seed(resolve_generator(generator, seed))
        self._cache: tuple[tuple, Tensor] | None = None

    def __repr__(self) -> str:
        return (
            f"rise_explainer({type(self.model).__name__}, n_masks={self.n_masks}, "
            f"grid_size={self.grid_size!r}, "
            f"p={self.p}, max_batch_size={self.max_batch_size})"
        )

    def _grid_size(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        if isinstance(self.grid_size, int):
            return (self.grid_size,) * len(spatial)
        if len(self.grid_size) != len(spatial):
            raise ShapeError(
                f"Expected `grid_size` to give one cell count per spatial dim of `x` "
                f"{format_shape(spatial)}, but got {self.grid_size!r}."
            )
        return self.grid_size

    def mask_parameters(self, spatial_shape: Sequence[int]) -> RiseMaskParameters:
        """The grids and shifts that define the masks for inputs of ``spatial_shape``.

        Drawn from a CPU generator seeded with the explainer's seed: the grids first
        (``torch.rand(N, *s) < p``), then the shifts axis by axis
        (``torch.randint(0, cell_k, (N,))``).

        Example:
            >>> explain = rise_explainer(lambda x: x.flatten(1), n_masks=3, grid_size=2, seed=0)
            >>> params = explain.mask_parameters((5, 4))
            >>> params.grids.shape, params.shifts.shape, params.cell_size
            (torch.Size([3, 2, 2]), torch.Size([3, 2]), (3, 2))
        """
        spatial = tuple(int(s) for s in spatial_shape)
        grid_size = self._grid_size(spatial)
        cell_size = tuple(-(-side // cells) for side, cells in zip(spatial, grid_size))
        generator = torch.Generator().manual_seed(self.seed)
        grids = (
            torch.rand((self.n_masks,) + grid_size, generator=generator, dtype=torch.float64)
            < self.p
        )
        shifts = torch.stack(
            [torch.randint(0, cell, (self.n_masks,), generator=generator) for cell in cell_size], 1
        )
        return RiseMaskParameters(grids.to(torch.float64), shifts, grid_size, cell_size)

    def masks(
        self,
        spatial_shape: Sequence[int],
        start: int = 0,
        stop: int | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Masks ``start .. stop - 1`` for inputs of ``spatial_shape``, values in ``[0, 1]``.

        Shape:
            - output: ``(stop - start, *spatial_shape)``.

        Example:
            >>> explain = rise_explainer(lambda x: x.flatten(1), n_masks=4, grid_size=3, seed=0)
            >>> m = explain.masks((10, 10))
            >>> in_range = bool(((m >= 0) & (m <= 1)).all())
            >>> m.shape, in_range, torch.equal(explain.masks((10, 10), 1, 3), m[1:3])
            (torch.Size([4, 10, 10]), True, True)
        """
        stop = self.n_masks if stop is None else stop
        params = self.mask_parameters(spatial_shape)
        return self._masks(
            params,
            tuple(int(s) for s in spatial_shape),
            start,
            stop,
            dtype,
            torch.device(device) if device is not None else torch.device("cpu"),
        )

    @staticmethod
    def _masks(
        params: RiseMaskParameters,
        spatial: tuple[int, ...],
        start: int,
        stop: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> Tensor:
        grids = params.grids[start:stop].to(device)
        shifts = params.shifts[start:stop].to(device)
        return _upsample_and_crop(grids, shifts, spatial, params.grid_size, params.cell_size, dtype)

    def _all_masks(
        self, spatial: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> Tensor | None:
        """All masks for this shape, dtype and device, kept between calls if they fit the budget."""
        key = (spatial, dtype, device)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        itemsize = torch.empty((), dtype=dtype).element_size()
        if self.n_masks * math.prod(spatial) * itemsize > MASK_CACHE_BYTES:
            return None
        params = self.mask_parameters(spatial)
        with torch.inference_mode():
            masks = self._masks(params, spatial, 0, self.n_masks, dtype, device)
        self._cache = (key, masks)
        return masks

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        x, target = check_model_inputs(x, target)
        n, channels, spatial = x.shape[0], x.shape[1], tuple(x.shape[2:])
        cached = self._all_masks(spatial, x.dtype, x.device)
        params = self.mask_parameters(spatial) if cached is None else None
        features = math.prod(spatial)
        limit = items_per_call(self.max_batch_size, x)
        if n <= limit:
            masks_per_chunk, sample_blocks = limit // n, [(0, n)]
        else:
            masks_per_chunk = 1
            sample_blocks = [(b, min(b + limit, n)) for b in range(0, n, limit)]
        buffers = ChunkBuffers()
        with torch.inference_mode():
            saliency = torch.zeros(n, features, dtype=x.dtype, device=x.device)
            shifted = x - self.baseline if self.baseline != 0.0 else x
            for first in range(0, self.n_masks, masks_per_chunk):
                last = min(first + masks_per_chunk, self.n_masks)
                if cached is not None:
                    masks = cached[first:last]  # (m, *S)
                else:
                    masks = self._masks(params, spatial, first, last, x.dtype, x.device)
                m = last - first
                for b0, b1 in sample_blocks:
                    rows = b1 - b0
                    inputs = buffers.get(
                        "inputs", (m * rows, channels) + spatial, x.dtype, x.device
                    )
                    torch.mul(
                        masks.view((m, 1, 1) + spatial),
                        shifted[b0:b1].unsqueeze(0),
                        out=inputs.view((m, rows, channels) + spatial),
                    )
                    if self.baseline != 0.0:
                        inputs.add_(self.baseline)
                    logits = call_model(self.model, inputs, name="model")
                    scores = class_scores(logits, target[b0:b1].repeat(m), softmax=self.softmax)
                    saliency[b0:b1].addmm_(
                        scores.view(m, rows).t().to(x.dtype), masks.view(m, features)
                    )
            saliency.mul_(1.0 / (self.n_masks * self.p))
        return saliency.view((n, 1) + spatial).clone()


def rise_explainer(
    model: Callable[[Tensor], Tensor],
    /,
    *,
    n_masks: int = 4000,
    grid_size: int | Sequence[int] = 7,
    p: float = 0.5,
    baseline: float = 0.0,
    softmax: bool = True,
    max_batch_size: int | str = 64,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> RiseExplainer:
    r"""RISE (Petsiuk et al. 2018) as a batched explain function.

    :math:`S(x) = \frac{1}{N p} \sum_i f_c(x \odot M_i) M_i` with ``N`` random masks
    (see the module docstring for how they are drawn and evaluated). A black-box method: the
    model is only called, under ``torch.inference_mode()``, ``n_masks * n`` times per call on
    ``n`` inputs, in chunks of at most ``max_batch_size``. The defaults (``N = 4000`` masks of
    ``s = 7`` cells, ``p = 0.5``) are ImageNet-scale settings of the kind the paper uses; fewer
    masks give noisier maps (the estimate's error falls as ``1 / sqrt(N)``).

    Args:
        model: The network, or any ``forward_fn(x) -> (n, K)`` logits.
        n_masks: ``N``.
        grid_size: ``s``, the grid cells per axis (an int, or one per spatial dim).
        p: Probability that a grid cell is kept.
        baseline: The value masked-out pixels take: the model sees
            ``baseline + M (x - baseline)`` (0 in the paper).
        softmax: Weight masks by the target-class probability (the paper) rather than its logit.
        max_batch_size: The most masked inputs per model call: an int, or a byte budget such
            as ``"512MB"`` of masked inputs per call (not ``"auto"``: the chunks set the order
            of the float sums, which must not depend on timing).
        generator, seed: Where the mask seed comes from (one draw at construction; neither:
            OS entropy). The masks then depend only on it and the input's spatial shape.

    Raises:
        OptionError: ``p`` not in (0, 1], a non-positive count or a non-finite ``baseline``.
        ShapeError: ``x`` without 1 to 3 spatial dims, or ``grid_size`` of the wrong length
            (at call).
        ModelOutputError: the model does not return ``(n, K)`` logits.

    Shape:
        - x: ``(n, C, *S)`` with 1 to 3 spatial dims; target: ``(n,)``; output: ``(n, 1, *S)``
          in the dtype of ``x``.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).eval()
        >>> explain = rise_explainer(model, n_masks=200, grid_size=2, seed=0, max_batch_size=50)
        >>> x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
        >>> a = explain(x, torch.tensor([0, 1, 1]))
        >>> a.shape, torch.allclose(explain(x[1:2], torch.tensor([1])), a[1:2])
        (torch.Size([3, 1, 4, 4]), True)
    """
    return RiseExplainer(
        model,
        n_masks=n_masks,
        grid_size=grid_size,
        p=p,
        baseline=baseline,
        softmax=softmax,
        max_batch_size=max_batch_size,
        generator=generator,
        seed=seed,
    )
