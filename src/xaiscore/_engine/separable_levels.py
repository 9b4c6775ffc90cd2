"""Coarse grids of the 3-D ROAD imputation solver: separable operators with a masked support.

The 2-D solver (:mod:`xaiscore._engine.imputation`) assembles every coarse operator as the
Galerkin product ``P^T A P`` of the masked fine operator: a variable-coefficient 3^d-point stencil.
In 3-D that assembly (27 coefficient fields, each restricted along three axes) costs as much as the
whole iteration, and applying the 27-point stencils is a large share of every V-cycle. Volumes use
a cheaper coarse operator with the same structure as the fine one instead.

On the whole grid (every voxel an unknown, borders handled by dropping the missing neighbours) the
imputation operator is separable:

.. math:: A_{\\text{grid}} = \\big(D_s^{\\otimes d} - S^{\\otimes d}\\big) / (4^d - 2^d),

with ``S`` the 1-D ``[1, 2, 1]`` matrix and ``D_s`` the diagonal of its row sums (3 at the ends,
4 inside). The imputation operator is its principal submatrix on the removed voxels ``U``. With
a tensor-product interpolation ``P``, ``P^T A_grid P`` stays a difference of two Kronecker products
of 1-D tridiagonal matrices, ``X_l = P^T X_{l-1} P`` and ``Y_l = P^T Y_{l-1} P``, computed once in
1-D. A coarse level ``l`` uses

.. math:: C_l = U_l \\, \\hat C_l \\, U_l + \\operatorname{diag}(\\pi_l)
          \\quad(\\text{identity rows off } U_l),

where ``U_l`` marks the coarse points whose interpolation reaches an unknown of the finer level,
``\\hat C_l = (X_l^{\\otimes d} - Y_l^{\\otimes d}) / (4^d - 2^d)`` and ``\\pi_l`` is the lumped
Dirichlet coupling: at the finest level ``\\pi_0(i)`` is the weight from unknown ``i`` to its kept
neighbours, restricted by full weighting ``\\pi_l = P^T \\pi_{l-1}`` to the coarser levels. Inside
a removed region ``C_l`` is the Galerkin operator exactly; near the kept voxels it approximates it.
Every ``C_l`` is symmetric positive definite (a principal submatrix of the positive semi-definite
``\\hat C_l`` plus a non-negative diagonal that is positive somewhere whenever a voxel is kept), so
the V-cycle stays a symmetric positive definite preconditioner and conjugate gradients converge
to the same solution, to the same tolerance, as with the Galerkin hierarchy. Applying ``C_l`` is six
tridiagonal passes instead of 27 stencil terms, and the setup is a few restrictions of two masks.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from xaiscore._engine.stencil_grid import (
    _Buffers,
    _coarse_shape,
    _full_weighting_axis,
    _neighbour_sum,
    _offsets,
    _smoother,
)

__all__: list[str] = []


def _interpolation_1d(n_fine: int) -> Tensor:
    """The 1-D linear interpolation ``(n_fine, (n_fine + 1) // 2)`` of the solver, in float64.

    Fine ``2k`` takes coarse ``k``, fine ``2k + 1`` the mean of ``k`` and ``k + 1`` (a coarse point
    beyond the grid counts as 0), as ``_interpolate_axis`` of the solver.
    """
    n_coarse = (n_fine + 1) // 2
    p = torch.zeros(n_fine, n_coarse, dtype=torch.float64)
    k = torch.arange(n_coarse)
    p[2 * k, k] = 1.0
    odd = k[2 * k + 1 < n_fine]
    p[2 * odd + 1, odd] = 0.5
    inner = odd[odd + 1 < n_coarse]
    p[2 * inner + 1, inner + 1] = 0.5
    return p


def _fine_matrices(n: int) -> tuple[Tensor, Tensor]:
    """``(D_s, S)`` for one axis of ``n`` points: the 1-D ``[1, 2, 1]`` matrix and its row sums."""
    s = 2.0 * torch.eye(n, dtype=torch.float64)
    s += torch.diag(torch.ones(n - 1, dtype=torch.float64), 1)
    s += torch.diag(torch.ones(n - 1, dtype=torch.float64), -1)
    return torch.diag(s.sum(dim=1)), s


def _bands(matrix: Tensor, dim: int, ndim: int, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(centre, lower, upper)`` of a tridiagonal matrix, shaped to broadcast along ``dim``.

    ``lower[i] = M[i + 1, i]`` multiplies ``v[i]`` into row ``i + 1``; ``upper[i] = M[i, i + 1]``
    multiplies ``v[i + 1]`` into row ``i``.
    """
    shape = [1] * ndim

    def view(t: Tensor) -> Tensor:
        shape[dim] = t.shape[0]
        return t.to(dtype=like.dtype, device=like.device).reshape(shape)

    return (view(torch.diagonal(matrix).clone()), view(torch.diagonal(matrix, -1).clone()),
            view(torch.diagonal(matrix, 1).clone()))


def _offdiagonals_nonpositive(x_mats: tuple[Tensor, ...], y_mats: tuple[Tensor, ...]
                              ) -> bool:
    """Whether every off-diagonal entry of ``X^(x)d - Y^(x)d`` is <= 0 (on the host, in float64)."""
    for offset in _offsets(len(x_mats)):
        if not any(offset):
            continue
        x_part = torch.ones(())
        y_part = torch.ones(())
        for x, y, o in zip(x_mats, y_mats, offset):
            x_part = x_part[..., None] * torch.diagonal(x, o)
            y_part = y_part[..., None] * torch.diagonal(y, o)
        if x_part.numel() and bool((x_part > y_part).any()):
            return False
    return True


class _SeparableLevel:
    """A coarse level ``U C U + diag(pi)`` with ``C = (X^(x)d - Y^(x)d) / n`` (module docstring).
    """

    _PER_SYSTEM = ("unknown", "penalty", "inverse_diagonal", "_scaled_unknown")

    def __init__(self, x_mats: tuple[Tensor, ...], y_mats: tuple[Tensor, ...], unknown: Tensor,
                 penalty: Tensor, *, offdiagonals_nonpositive: bool) -> None:
        self.x_mats, self.y_mats = x_mats, y_mats  # per axis, float64 on the host
        ndim = unknown.ndim
        self.spatial = tuple(unknown.shape[2:])
        dims = len(self.spatial)
        self.scale = 1.0 / (4**dims - 2**dims)
        self._x_bands = [_bands(m, 2 + a, ndim, unknown) for a, m in enumerate(x_mats)]
        self._y_bands = [_bands(m, 2 + a, ndim, unknown) for a, m in enumerate(y_mats)]
        self.unknown = unknown  # (M, 1, *S), 1.0 on unknowns
        self.penalty = penalty  # (M, 1, *S), 0 off the unknowns
        self._scaled_unknown = unknown * self.scale
        self.buffers = _Buffers()
        x_centre, y_centre = self._x_bands[0][0], self._y_bands[0][0]
        for axis in range(1, dims):
            x_centre = x_centre * self._x_bands[axis][0]
            y_centre = y_centre * self._y_bands[axis][0]
        centre = (x_centre - y_centre) * self.scale  # (1, 1, *S)
        if offdiagonals_nonpositive:
            # sum_j |c_ij| = 2 c_ii - sum_j c_ij U_j on an unknown row i.
            coupled = self._operator(unknown, unknown.new_empty(unknown.shape))
            row_sums = coupled.mul_(-self.scale).add_(centre, alpha=2.0)
        else:
            row_sums = self.absolute_row_sums(centre)
        row_sums.mul_(unknown).add_(penalty).add_(1.0 - unknown)
        self.inverse_diagonal = _smoother(row_sums)

    def absolute_row_sums(self, centre: Tensor) -> Tensor:
        """``sum_j |c_ij| U_j`` on every row (any signs), one stencil offset at a time."""
        dims = len(self.spatial)
        out = torch.abs(centre) * self.unknown
        padded = torch.nn.functional.pad(self.unknown, (1, 1) * dims)
        for offset in _offsets(dims):
            if not any(offset):
                continue
            x_part = y_part = None
            for axis, o in enumerate(offset):
                bands = (self._x_bands[axis], self._y_bands[axis])
                parts = []
                for centre_band, lower, upper in bands:
                    if o == 0:
                        parts.append(centre_band)
                    else:  # M[i, i + o] on row i; 0 where i + o leaves the grid
                        band = upper if o > 0 else lower
                        full = torch.zeros_like(centre_band)
                        n = band.shape[2 + axis]
                        target = full.narrow(2 + axis, 0 if o > 0 else 1, n)
                        target.copy_(band)
                        parts.append(full)
                x_part = parts[0] if x_part is None else x_part * parts[0]
                y_part = parts[1] if y_part is None else y_part * parts[1]
            coefficient = (x_part - y_part).abs_().mul_(self.scale)
            shifted = padded[(Ellipsis,) + tuple(slice(1 + o, 1 + o + n)
                                                 for o, n in zip(offset, self.spatial))]
            out = out + coefficient * shifted
        return out

    def _kronecker(self, u: Tensor, bands: list[tuple[Tensor, Tensor, Tensor]], out: Tensor,
                   name: str) -> Tensor:
        """``(M_0 (x) M_1 (x) ...) u`` into ``out``: one tridiagonal pass per axis."""
        current = u
        for axis, (centre, lower, upper) in enumerate(bands):
            dim = 2 + axis
            target = out if axis == len(bands) - 1 else self.buffers.get(f"{name}{axis}",
                                                                        tuple(u.shape), u)
            torch.mul(current, centre, out=target)
            n = current.shape[dim]
            if n > 1:
                target.narrow(dim, 1, n - 1).addcmul_(current.narrow(dim, 0, n - 1), lower)
                target.narrow(dim, 0, n - 1).addcmul_(current.narrow(dim, 1, n - 1), upper)
            current = target
        return out

    def _operator(self, u: Tensor, out: Tensor) -> Tensor:
        """``(X^(x)d - Y^(x)d) u`` (unscaled, unmasked) into ``out``."""
        x_part = self._kronecker(u, self._x_bands, self.buffers.get("x", tuple(u.shape), u), "k")
        self._kronecker(u, self._y_bands, out, "k")
        return torch.sub(x_part, out, out=out)

    def apply(self, u: Tensor, out: Tensor) -> Tensor:
        """Write ``C u`` into ``out`` for ``u`` that vanishes off the unknowns."""
        return self._operator(u, out).mul_(self._scaled_unknown).addcmul_(self.penalty, u)

    def residual(self, r: Tensor, u: Tensor, out: Tensor) -> Tensor:
        """Write ``r - C u`` into ``out`` (``u`` vanishing off the unknowns)."""
        return self.apply(u, out).neg_().add_(r)

    def head(self, n: int) -> _SeparableLevel:
        """The operator of the first ``n`` systems (views; scratch buffers shared)."""
        out = object.__new__(_SeparableLevel)
        out.__dict__.update(self.__dict__)
        for name in self._PER_SYSTEM:
            setattr(out, name, getattr(self, name)[:n])
        return out

    def dense_inverse(self) -> Tensor:
        """(Pseudo-)inverse of this level's operator as dense ``(M, n, n)`` matrices."""
        stencil_x, stencil_y = self.x_mats[0], self.y_mats[0]
        for x, y in zip(self.x_mats[1:], self.y_mats[1:]):
            stencil_x, stencil_y = torch.kron(stencil_x, x), torch.kron(stencil_y, y)
        m = self.unknown.shape[0]
        grid = ((stencil_x - stencil_y) * self.scale).to(self.unknown)
        unknown = self.unknown.reshape(m, -1)
        matrix = unknown[:, :, None] * grid * unknown[:, None, :]
        matrix = matrix + torch.diag_embed(self.penalty.reshape(m, -1) + (1.0 - unknown))
        return torch.linalg.pinv(0.5 * (matrix + matrix.transpose(1, 2)), hermitian=True)


def _full_weighting(t: Tensor) -> Tensor:
    """``P^T t``: full weighting along every spatial axis (allocates)."""
    current = t
    for dim in range(2, t.ndim):
        shape = list(current.shape)
        shape[dim] = _coarse_shape((current.shape[dim],))[0]
        current = _full_weighting_axis(current, dim, current.new_empty(shape))
    return current


@functools.lru_cache(maxsize=32)
def _hierarchy(spatial: tuple[int, ...], coarsest_size: int
               ) -> tuple[tuple[tuple[Tensor, ...], tuple[Tensor, ...], bool], ...]:
    """Per coarse level: the 1-D matrices ``X_l``, ``Y_l`` of every axis (float64, on the host)
    and whether every off-diagonal entry of ``X_l^(x)d - Y_l^(x)d`` is <= 0. Depends on the grid
    shape only."""
    x_mats, y_mats = zip(*(_fine_matrices(n) for n in spatial))
    out = []
    while max(spatial) > coarsest_size:
        transfers = [_interpolation_1d(n) for n in spatial]
        x_mats = tuple(p.T @ m @ p for p, m in zip(transfers, x_mats))
        y_mats = tuple(p.T @ m @ p for p, m in zip(transfers, y_mats))
        spatial = _coarse_shape(spatial)
        out.append((x_mats, y_mats, _offdiagonals_nonpositive(x_mats, y_mats)))
    return tuple(out)


def separable_levels(unknown: Tensor, coarsest_size: int) -> list[_SeparableLevel]:
    """The coarse levels below a fine level with unknowns ``unknown`` ``(M, 1, *S)`` (0/1 floats).

    Levels halve every axis longer than ``coarsest_size`` until none is; empty for a fine grid
    that is already that small.
    """
    levels: list[_SeparableLevel] = []
    coupling = _neighbour_sum(1.0 - unknown).mul_(unknown)  # weight to the kept neighbours
    for x_mats, y_mats, nonpositive in _hierarchy(tuple(unknown.shape[2:]), coarsest_size):
        reach = _full_weighting(unknown)
        unknown, coupling = (reach > 0).to(reach.dtype), _full_weighting(coupling)
        levels.append(_SeparableLevel(x_mats, y_mats, unknown, coupling,
                                      offdiagonals_nonpositive=nonpositive))
    return levels
