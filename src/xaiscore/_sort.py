"""Fast row-wise sorting on every device.

``torch.sort`` is fast on GPUs but about 15x slower than numpy's SIMD sort on CPUs (measured
here: 64 x 50,176 float32 values, ~450 ms vs ~30 ms). On CPU tensors these helpers sort
through numpy on a zero-copy view (no device, so nothing to synchronise); on other devices
they call ``torch.sort``. Results are identical: values in ascending order, NaN last.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["sort_values", "sort_values_", "argsort"]

_NUMPY_SORTABLE = {torch.float16, torch.float32, torch.float64, torch.int8, torch.int16,
                   torch.int32, torch.int64, torch.uint8, torch.bool}


def _numpy_path(t: Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype in _NUMPY_SORTABLE


def sort_values(t: Tensor, *, descending: bool = False) -> Tensor:
    """Values of ``t`` sorted along the last axis.

    Example:
        >>> sort_values(torch.tensor([[3.0, 1.0, 2.0]]), descending=True).tolist()
        [[3.0, 2.0, 1.0]]
    """
    if _numpy_path(t):
        out = torch.from_numpy(np.sort(t.detach().numpy(), axis=-1))
    else:
        out = torch.sort(t, dim=-1).values
    return out.flip(-1) if descending else out


def sort_values_(t: Tensor) -> Tensor:
    """Sort ``t`` ascending along the last axis in place where it can (CPU, contiguous), and return it.

    For temporaries the caller owns: no second buffer of the input's size is allocated on CPU
    (on other devices, or for a non-contiguous ``t``, the sorted values come back in a new tensor).

    Example:
        >>> t = torch.tensor([[3, 1, 2]])
        >>> sort_values_(t).tolist(), t.tolist()
        ([[1, 2, 3]], [[1, 2, 3]])
    """
    if _numpy_path(t) and t.is_contiguous() and not t.requires_grad:
        t.numpy().sort(axis=-1)
        return t
    return sort_values(t)


def argsort(t: Tensor) -> Tensor:
    """Indices that sort ``t`` ascending along the last axis (order among ties unspecified), int64.

    Example:
        >>> argsort(torch.tensor([[3.0, 1.0, 2.0]])).tolist()
        [[1, 2, 0]]
    """
    if _numpy_path(t):
        return torch.from_numpy(np.argsort(t.detach().numpy(), axis=-1).astype(np.int64, copy=False))
    return torch.sort(t, dim=-1).indices
