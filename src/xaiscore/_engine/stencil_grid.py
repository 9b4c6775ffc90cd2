"""Grid primitives shared by the levels of the batched ROAD imputation solver.

Scratch buffers, the separable ``[1, 2, 1]`` neighbour sums, the smoother weights and the 1-D
full weighting (the adjoint of linear interpolation) used by :mod:`xaiscore._engine.imputation`
and :mod:`xaiscore._engine.separable_levels`.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

# --- scratch buffers ------------------------------------------------------------------------------


class _Buffers:
    """Scratch tensors reused across iterations, keyed by name and shape without the leading
    (system) axis.

    Allocating fresh multi-megabyte tensors in a loop costs page faults that
    dominate the run time on CPU; every hot operation below writes into one of
    these instead. A request for fewer systems than stored gets the leading rows
    of the stored tensor (a contiguous view), so the solver can shrink its
    working set to the still-active leading systems without allocating. Buffers
    requested with ``zero=True`` are zeroed once: the padded buffers only ever
    have their interior overwritten, so the border stays 0.
    """

    def __init__(self) -> None:
        self._store: dict[tuple[str, tuple[int, ...]], Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: Tensor, *, zero: bool = False) -> Tensor:
        key = (name, tuple(shape[1:]))
        out = self._store.get(key)
        if out is None or out.shape[0] < shape[0]:
            out = like.new_zeros(shape) if zero else like.new_empty(shape)
            self._store[key] = out
        return out[: shape[0]]

    def clear(self) -> None:
        self._store.clear()


def _rows(t: Tensor, index: Tensor) -> Tensor:
    """``t[index]`` along dim 0 through a 2-D view (``index_select`` on >2-D CPU tensors is very
    slow)."""
    return t.reshape(t.shape[0], -1).index_select(0, index).reshape((index.shape[0],)
                                                                    + tuple(t.shape[1:]))


def _along(dim: int, ndim: int, index: slice) -> tuple[slice, ...]:
    """An indexing tuple that applies ``index`` to dimension ``dim`` only."""
    out = [slice(None)] * ndim
    out[dim] = index
    return tuple(out)


def _padded(u: Tensor, buffers: _Buffers, name: str = "pad") -> Tensor:
    """``u`` copied into a reusable buffer with a zero border of one on every spatial side."""
    shape = u.shape[:2] + tuple(n + 2 for n in u.shape[2:])
    out = buffers.get(name, shape, u, zero=True)
    out[(Ellipsis,) + tuple(slice(1, n + 1) for n in u.shape[2:])].copy_(u)
    return out


# --- stencil operators ----------------------------------------------------------------------------


def _offsets(spatial_dims: int) -> list[tuple[int, ...]]:
    """All offsets in {-1, 0, 1}^d in row-major order; the centre sits at index ``3**d // 2``."""
    return list(itertools.product((-1, 0, 1), repeat=spatial_dims))


def _shifted(padded: Tensor, offset: tuple[int, ...], spatial: tuple[int, ...]) -> Tensor:
    """View of ``v[i + offset]`` from a tensor zero-padded by one on every spatial side."""
    return padded[(Ellipsis,) + tuple(slice(1 + o, 1 + o + n) for o, n in zip(offset, spatial))]


def _separable_sum(padded: Tensor, spatial_dims: int, out: Tensor | None = None,
                   scratch: list[Tensor] | None = None) -> Tensor:
    """The ``[1, 2, 1]`` sum along every spatial axis of a tensor zero-padded by one on every
    spatial side.

    Axes are summed innermost first; each pass drops the padding of its axis. ``scratch`` holds the
    intermediate results (one per pass but the last) when given, else they are allocated.
    """
    current = padded
    for i, dim in enumerate(range(current.ndim - 1, current.ndim - 1 - spatial_dims, -1)):
        n = current.shape[dim] - 2
        low, mid, high = (current.narrow(dim, start, n) for start in (0, 1, 2))
        last = i == spatial_dims - 1
        target = out if last else (scratch[i] if scratch is not None else None)
        if target is None:
            current = torch.add(low, high).add_(mid, alpha=2.0)
        else:
            current = torch.add(low, high, out=target).add_(mid, alpha=2.0)
    return current


def _neighbour_sum(u: Tensor) -> Tensor:
    """``sum_j w_j u(i + o_j)`` over the in-image neighbours (zero outside the image); allocates.

    Built from shifted adds (a one-channel ``conv2d`` does the same but is many
    times slower on CPU).
    """
    spatial_dims = u.ndim - 2
    padded = F.pad(u, (1, 1) * spatial_dims)
    if spatial_dims == 1:
        return torch.add(padded[..., :-2], padded[..., 2:]).mul_(0.5)
    # 2^(d-k) / (4^d - 2^d) per neighbour: ([1 2 1]^d - 2^d * centre) / (4^d - 2^d).
    total = _separable_sum(padded, spatial_dims)
    return total.sub_(u, alpha=2.0**spatial_dims).mul_(1.0 / (4**spatial_dims - 2**spatial_dims))


#: The smoother divides residuals by ``_SMOOTHER_SHARE`` times the absolute row sum.
_SMOOTHER_SHARE = 0.55


def _smoother(row_sums: Tensor) -> Tensor:
    """The weights ``1 / m`` of the Jacobi-type smoother ``z += (r - A z) / m``,
    ``m = 0.55 sum_j |a_ij|``.

    The iteration converges for a symmetric positive semi-definite ``A`` when
    ``2 M - A`` is positive definite; with ``m_i > sum_j |a_ij| / 2`` that matrix is
    strictly diagonally dominant, so the smoother is convergent on every level
    (also where Galerkin operators lose diagonal dominance) and the V-cycle stays
    a symmetric positive definite preconditioner. On a Laplacian-like row
    (``sum_j |a_ij| = 2 a_ii``) this is Jacobi damped by ``1 / 1.1``, much stronger
    than l1-Jacobi (``m = sum_j |a_ij|``, damping 1/2); 0.55 took a quarter fewer
    CG iterations than l1-Jacobi on ROAD masks.
    """
    return 1.0 / (_SMOOTHER_SHARE * row_sums)



def _coarse_shape(spatial: tuple[int, ...]) -> tuple[int, ...]:
    return tuple((n + 1) // 2 for n in spatial)



def _full_weighting_axis(r: Tensor, dim: int, out: Tensor) -> Tensor:
    """The adjoint of :func:`_interpolate_axis`: coarse ``k`` collects fine ``2k`` and half of
    ``2k +- 1``."""
    ndim = r.ndim
    even = r[_along(dim, ndim, slice(0, None, 2))]
    odd = r[_along(dim, ndim, slice(1, None, 2))]
    n_odd, n_coarse = odd.shape[dim], even.shape[dim]
    torch.add(even[_along(dim, ndim, slice(0, n_odd))], odd, alpha=0.5,
              out=out[_along(dim, ndim, slice(0, n_odd))])
    if n_odd < n_coarse:
        out[_along(dim, ndim, slice(n_odd, None))].copy_(even[_along(dim, ndim,
                                                                     slice(n_odd, None))])
    shifted = odd[_along(dim, ndim, slice(0, min(n_odd, n_coarse - 1)))]
    out[_along(dim, ndim, slice(1, 1 + shifted.shape[dim]))].add_(shifted, alpha=0.5)
    return out
