"""Resizing of ground-truth masks by two documented rules (used by records and transforms).

See :mod:`xaiscore.harness.data.transforms` for the rules (``"nearest"``, the pixel-centre
rule of ``boxes_to_mask``, and ``"area"``, covered fraction at least ``threshold``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from xaiscore._checks import DTypeError, OptionError, ShapeError, check_fraction, check_option

__all__ = ["MaskRule", "resize_mask", "check_size"]


MaskRule = Literal["nearest", "area"]


def check_size(size: object, name: str = "size", ndim: int | None = None) -> tuple[int, ...]:
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size,) * (ndim or 2)
    if (
        not isinstance(size, Sequence)
        or isinstance(size, str)
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)
    ):
        raise DTypeError(f"Expected `{name}` as a tuple of ints, but got {size!r}.")
    if ndim is not None and len(size) != ndim:
        raise ShapeError(
            f"Expected `{name}` with {ndim} entries, but got {len(size)}: {tuple(size)}.")
    if any(s <= 0 for s in size):
        raise OptionError(f"Expected positive sides in `{name}`, but got {tuple(size)}.")
    return tuple(int(s) for s in size)


def _nearest_index(n_in: int, n_out: int, device: torch.device) -> Tensor:
    # integer arithmetic: floor((k + 0.5) * n_in / n_out) = floor((2k + 1) * n_in / (2 n_out))
    k = torch.arange(n_out, device=device, dtype=torch.int64)
    return ((2 * k + 1) * n_in // (2 * n_out)).clamp(max=n_in - 1)


def _integrate_cells(values: Tensor, n_out: int) -> Tensor:
    """Exact integer area sums of ``n_out`` equal cells along the last axis, in units of
    ``1 / n_out``.

    Output cell ``k`` covers ``[k n_in / n_out, (k + 1) n_in / n_out)``. With the inclusive
    prefix sums ``C`` of ``values``, the integral up to ``e = E / n_out`` (``E`` an integer) is
    ``C[E // n_out - 1] + (E % n_out) / n_out * values[E // n_out]``; times ``n_out`` it is an
    integer, so no rounding is involved.
    """
    n_in = values.shape[-1]
    prefix = values.cumsum(dim=-1)
    edges = torch.arange(n_out + 1, device=values.device, dtype=torch.int64) * n_in
    whole, part = edges // n_out, (edges % n_out).to(values.dtype)
    before = prefix.index_select(-1, (whole - 1).clamp(min=0)) * (whole > 0).to(values.dtype)
    at = values.index_select(-1, whole.clamp(max=n_in - 1))  # weight 0 where whole == n_in
    integral = before * n_out + part * at
    return integral[..., 1:] - integral[..., :-1]


def resize_mask(
    mask: Tensor,
    size: Sequence[int],
    *,
    rule: MaskRule = "nearest",
    threshold: float = 0.5,
) -> Tensor:
    """Resize a boolean mask over its last ``len(size)`` axes.

    Args:
        mask: ``(..., *S)`` bool or 0/1 tensor; the leading axes are kept.
        size: The new spatial shape ``S'`` (1 to 3 axes).
        rule: ``"nearest"`` (pixel under the output pixel's centre) or ``"area"``
            (covered fraction of the output pixel ``>= threshold``); see the module docs.
        threshold: The covered fraction for ``rule="area"``, in ``(0, 1]``.

    Returns:
        The resized mask, bool, on the device of ``mask``.

    Raises:
        ShapeError: ``mask`` has fewer axes than ``size``.
        OptionError: unknown ``rule``, a non-positive side, or ``threshold`` out of range.

    Shape:
        - mask: ``(..., *S)``
        - output: ``(..., *size)``

    Example:
        >>> import torch
        >>> m = torch.zeros(1, 4, 4, dtype=torch.bool); m[0, :2, :3] = True
        >>> resize_mask(m, (2, 2))[0].int().tolist()  # centres of output pixels fall on input (1, 1) and (1, 3)
        [[1, 0], [0, 0]]
        >>> resize_mask(m, (2, 2), rule="area")[0].int().tolist()  # half of the right pixel is covered
        [[1, 1], [0, 0]]
        >>> resize_mask(m, (8, 8))[0].sum().item()
        24
    """  # noqa: E501
    check_option(rule, "rule", ("nearest", "area"))
    threshold = check_fraction(threshold, "threshold", low_inclusive=False)
    size = check_size(size)
    if not 1 <= len(size) <= 3:
        raise ShapeError(f"Expected `size` with 1 to 3 spatial sides, but got {size}.")
    if not isinstance(mask, Tensor):
        raise DTypeError(f"Expected `mask` to be a torch.Tensor, but got {type(mask).__name__}.")
    if mask.ndim < len(size):
        raise ShapeError(
            f"Expected `mask` with at least {len(size)} dimensions for size {size}, "
            f"but got shape {tuple(mask.shape)}."
        )
    spatial_axes = range(mask.ndim - len(size), mask.ndim)
    if rule == "nearest":
        out = mask.bool()
        for axis, n_out in zip(spatial_axes, size):
            out = out.index_select(axis, _nearest_index(out.shape[axis], n_out, mask.device))
        return out
    # exact covered areas in whole numbers: after each axis the sums are in units of 1 / n_out of
    # that axis, so the covered fraction of an output pixel is sums / prod(n_in). Each axis runs in
    # the cheapest dtype that holds its largest intermediate value exactly.
    total = math.prod(mask.shape[a] for a in spatial_axes)
    sums, largest = mask, 1
    for axis, n_out in reversed(list(zip(spatial_axes, size))):  # the contiguous last axis first
        n_in = mask.shape[axis]
        bound = largest * n_in * n_out * 2
        dtype = torch.float32 if bound < 2**24 else torch.float64 if bound < 2**53 else torch.int64
        moved = torch.movedim(sums.to(dtype), axis, -1)
        moved = moved if axis == mask.ndim - 1 else moved.contiguous()
        sums = torch.movedim(_integrate_cells(moved, n_out), -1, axis)
        largest *= n_in
    return sums.to(torch.float64) / total >= threshold


