"""Linear imputation of removed pixels (ROAD, Rong et al. 2022), solved for a whole batch on the
device.

ROAD's *noisy linear imputation* replaces every removed pixel by the weighted
mean of its in-image neighbours, whether those neighbours are kept or removed
themselves, and adds a little Gaussian noise. The removed values ``u`` solve one
sparse linear system per image (and channel): for every removed pixel ``i``

.. math::

    \\Big(\\sum_{j \\in N(i)} w_{ij}\\Big)\\, u_i - \\sum_{j \\in N(i),\\ j\\ \\text{removed}} w_{ij}\\, u_j
    = \\sum_{j \\in N(i),\\ j\\ \\text{kept}} w_{ij}\\, x_j,

where ``N(i)`` are the neighbours that lie inside the image, with weight
``w = 1/6`` for the four direct and ``1/12`` for the four diagonal neighbours
(Rong et al.; for 1-D signals the two neighbours weigh ``1/2`` each, which makes
the imputation a linear interpolation between kept samples). Volumes use the
26-neighbourhood with the same construction: Rong et al.'s weights are the
tensor product of ``[1, 2, 1]`` along each axis with the centre removed,
normalised to sum 1, i.e. a neighbour whose offset has ``k`` non-zero entries
weighs ``2^(d - k) / (4^d - 2^d)`` in ``d`` dimensions. In 3-D the six face
neighbours weigh ``1/14``, the twelve edge neighbours ``1/28`` and the eight
corner neighbours ``1/56``. Image borders are
handled by dropping the missing neighbours from both sides of the equation, as
in the authors' code.

The matrix is the graph Laplacian of the removed pixels with the kept pixels as
Dirichlet boundary: symmetric positive definite whenever at least one pixel is
kept. Quantus builds it with ``scipy.sparse`` and calls ``spsolve`` once per
image and percentage. Here all systems of a batch are solved at once by the
conjugate gradient method preconditioned with one geometric multigrid V-cycle
(bilinear prolongation, Galerkin coarse operators assembled directly from the
fine stencil, Jacobi-type smoothing weighted by the absolute row sums; volumes use
separable coarse operators instead, see :mod:`xaiscore._engine.separable_levels`), so every
step is a stencil operation on ``(M, C, *S)`` tensors on the input's device.
Each system stops iterating as soon as its own residual is below the tolerance,
so a system's result never depends on the other systems of the batch; the
systems are ordered by their number of unknowns
(hardest first) and the working set shrinks to the leading ones still iterating.

When *every* pixel of an image is removed there is no kept value to interpolate
from (the system is singular); the imputation is then 0 everywhere (the
minimum-norm solution).
"""  # noqa: E501

from __future__ import annotations

import itertools
import math
import warnings

import torch
from torch import Tensor

from xaiscore._checks import OptionError, ShapeError
from xaiscore._engine.separable_levels import _SeparableLevel, separable_levels
from xaiscore._engine.stencil_grid import (
    _along,
    _Buffers,
    _coarse_shape,
    _full_weighting_axis,
    _neighbour_sum,
    _offsets,
    _padded,
    _rows,
    _separable_sum,
    _shifted,
    _smoother,
    _SMOOTHER_SHARE,
)

__all__ = ["linear_imputation", "neighbour_weights"]


def neighbour_weights(spatial_dims: int) -> dict[tuple[int, ...], float]:
    """The imputation stencil: offset -> weight, for 1, 2 or 3 spatial dimensions.

    In ``d >= 2`` dimensions an offset with ``k`` non-zero entries weighs
    ``2^(d - k) / (4^d - 2^d)`` (Rong et al.'s 1/6 and 1/12 in 2-D; 1/14, 1/28 and
    1/56 for the face, edge and corner neighbours in 3-D).

    Example:
        >>> neighbour_weights(1)
        {(-1,): 0.5, (1,): 0.5}
        >>> w = neighbour_weights(2); w[(0, 1)], w[(1, 1)], sum(w.values())
        (0.16666666666666666, 0.08333333333333333, 1.0)
        >>> w = neighbour_weights(3); len(w), w[(0, 0, 1)], w[(1, 1, 1)]
        (26, 0.07142857142857142, 0.017857142857142856)
    """
    if spatial_dims == 1:
        return {(-1,): 0.5, (1,): 0.5}
    if spatial_dims in (2, 3):
        total = 4**spatial_dims - 2**spatial_dims
        return {
            offset: 2.0 ** (spatial_dims - sum(1 for o in offset if o)) / total
            for offset in itertools.product((-1, 0, 1), repeat=spatial_dims)
            if any(offset)
        }
    raise ShapeError(
        f"Expected 1, 2 or 3 spatial dimensions for the linear imputation, but got {spatial_dims}."
    )



class _FineLevel:
    """The imputation operator itself: a constant stencil masked to the removed pixels.

    For ``u`` that vanishes off the unknowns, ``A u = D * u - U * N(u)`` where
    ``U`` marks the unknowns, ``N`` sums the weighted neighbours (zero outside
    the image) and ``D`` is the in-image neighbour weight on unknowns, 1 elsewhere
    (identity rows off the unknowns). In 2-D, ``N(u) = (S(u) - 4 u) / 12`` with
    ``S`` the separable ``[1, 2, 1] x [1, 2, 1]`` sum.
    """

    def __init__(self, unknown: Tensor, diagonal: Tensor) -> None:
        self.unknown = unknown  # (M, 1, *S), 1.0 on unknowns
        self.diagonal = diagonal  # (M, 1, *S)
        self.spatial = tuple(unknown.shape[2:])
        self.buffers = _Buffers()
        self._padded_unknown: Tensor | None = None
        # The smoother weights 1 / (0.55 * sum_j |a_ij|), in place (see _smoother).
        row_sums = _neighbour_sum(unknown).mul_(unknown).add_(diagonal)
        self.inverse_diagonal = row_sums.mul_(_SMOOTHER_SHARE).reciprocal_()
        dims = len(self.spatial)
        if dims == 1:  # A u = D u - (U / 2) (u[i-1] + u[i+1])
            self._self_weight, sum_weight = diagonal, 0.5
        else:  # A u = (D + U 2^d / n) u - (U / n) S(u), n = 4^d - 2^d (2-D: 1/3 and 1/12)
            n = 4**dims - 2**dims
            self._self_weight, sum_weight = (torch.add(diagonal, unknown, alpha=2.0**dims / n),
                                             1.0 / n)
        self._sum_weight = torch.mul(unknown, sum_weight)
        self._negative_sum_weight = torch.mul(unknown, -sum_weight)

    def _neighbours(self, u: Tensor, out: Tensor) -> Tensor:
        """``u(i-1) + u(i+1)`` (1-D) or the ``[1 2 1]`` sum along every axis (2-D, 3-D) into
        ``out``."""
        padded = _padded(u, self.buffers)
        if u.ndim == 3:
            return torch.add(padded[..., :-2], padded[..., 2:], out=out)
        scratch, shape = [], list(padded.shape)
        for i in range(u.ndim - 3):  # every pass but the last drops the padding of one more axis
            shape[u.ndim - 1 - i] -= 2
            scratch.append(self.buffers.get(f"rows{i}", tuple(shape), u))
        return _separable_sum(padded, u.ndim - 2, out=out, scratch=scratch)

    def apply(self, u: Tensor, out: Tensor) -> Tensor:
        """Write ``A u`` into ``out`` (which must not alias ``u``)."""
        return self._neighbours(u, out).mul_(self._negative_sum_weight).addcmul_(self._self_weight,
                                                                                 u)

    def residual(self, r: Tensor, u: Tensor, out: Tensor) -> Tensor:
        """Write ``r - A u`` into ``out`` (which must alias neither)."""
        neighbours = self._neighbours(u, out)
        return torch.addcmul(r, self._sum_weight, neighbours, out=out).addcmul_(self._self_weight,
                                                                                u, value=-1.0)

    def field(self, offset: tuple[int, ...]) -> tuple[Tensor, float]:
        """``(G, c)`` with ``c * G(i) = A[i, i + offset]`` on unknown rows and columns, else 0
        (:func:`_galerkin`)."""
        out = self.buffers.get("field", self.unknown.shape, self.unknown)
        if not any(offset):
            return torch.mul(self.unknown, self.diagonal, out=out), 1.0
        if self._padded_unknown is None:
            self._padded_unknown = _padded(self.unknown, self.buffers, "unknown_padded")
        shifted = _shifted(self._padded_unknown, offset, self.spatial)
        return (torch.mul(self.unknown, shifted, out=out),
                -neighbour_weights(len(self.spatial))[offset])

    def head(self, n: int) -> _FineLevel:
        """The operator of the first ``n`` systems (views; scratch buffers shared)."""
        out = object.__new__(_FineLevel)
        out.__dict__.update({k: (v[:n] if isinstance(v, Tensor) else v)
                             for k, v in self.__dict__.items()})
        return out


class _StencilLevel:
    """A coarse grid: the Galerkin operator as a variable-coefficient 3^d-point stencil."""

    def __init__(self, coef: Tensor, unknown: Tensor, row_sums: Tensor | None = None) -> None:
        self.coef = coef  # (M, K, *S)
        self.unknown = unknown  # (M, 1, *S) in the working dtype, 1 on unknowns
        if row_sums is None:
            row_sums = coef.abs().sum(dim=1, keepdim=True)
        self.inverse_diagonal = _smoother(row_sums)
        self.spatial = tuple(coef.shape[2:])
        self.buffers = _Buffers()

    def apply(self, u: Tensor, out: Tensor) -> Tensor:
        """Write ``A u = sum_k coef[:, k] * u(i + o_k)`` into ``out``."""
        padded = _padded(u, self.buffers)
        offsets = _offsets(len(self.spatial))
        torch.mul(self.coef[:, :1], _shifted(padded, offsets[0], self.spatial), out=out)
        for k in range(1, len(offsets)):
            out.addcmul_(self.coef[:, k : k + 1], _shifted(padded, offsets[k], self.spatial))
        return out

    def residual(self, r: Tensor, u: Tensor, out: Tensor) -> Tensor:
        """Write ``r - A u`` into ``out`` (which must alias neither)."""
        padded = _padded(u, self.buffers)
        offsets = _offsets(len(self.spatial))
        torch.addcmul(r, self.coef[:, :1], _shifted(padded, offsets[0], self.spatial), value=-1.0,
                      out=out)
        for k in range(1, len(offsets)):
            out.addcmul_(self.coef[:, k : k + 1], _shifted(padded, offsets[k], self.spatial),
                         value=-1.0)
        return out

    def field(self, offset: tuple[int, ...]) -> tuple[Tensor, float]:
        """``(G, 1)`` with ``G(i) = A[i, i + offset]`` on unknown rows and columns, else 0
        (:func:`_galerkin`)."""
        k = sum((o + 1) * 3 ** (len(offset) - 1 - i) for i, o in enumerate(offset))
        if not any(offset):  # identity rows off the unknowns
            out = self.buffers.get("field", self.unknown.shape, self.unknown)
            return torch.mul(self.coef[:, k : k + 1], self.unknown, out=out), 1.0
        return self.coef[:, k : k + 1], 1.0

    def head(self, n: int) -> _StencilLevel:
        """The operator of the first ``n`` systems (views; scratch buffers shared)."""
        out = object.__new__(_StencilLevel)
        out.__dict__.update({k: (v[:n] if isinstance(v, Tensor) else v)
                             for k, v in self.__dict__.items()})
        return out


_Level = _FineLevel | _StencilLevel


# --- grid transfer --------------------------------------------------------------------------------



def _interpolate_axis(c: Tensor, dim: int, out: Tensor) -> Tensor:
    """Linear interpolation along ``dim`` into ``out`` (twice ``c``'s size along ``dim``).

    Fine ``2k`` takes coarse ``k``, fine ``2k + 1`` the mean of ``k`` and
    ``k + 1``; a coarse point beyond the grid counts as 0.
    """
    n, ndim = c.shape[dim], c.ndim
    out[_along(dim, ndim, slice(0, None, 2))].copy_(c)
    odd = out[_along(dim, ndim, slice(1, None, 2))]
    if n > 1:
        inner = odd[_along(dim, ndim, slice(0, n - 1))]
        torch.lerp(c[_along(dim, ndim, slice(0, n - 1))], c[_along(dim, ndim, slice(1, n))], 0.5,
                   out=inner)
    torch.mul(c[_along(dim, ndim, slice(n - 1, n))], 0.5, out=odd[_along(dim, ndim,
                                                                         slice(n - 1, n))])
    return out



def _interpolate(u: Tensor, spatial: tuple[int, ...], buffers: _Buffers) -> Tensor:
    """(Bi)linear interpolation of a coarse grid onto the fine grid ``spatial``
    (a view of a reused buffer).

    The inner axis goes first, while the grid is still coarse along the outer axes: its strided
    writes are the slow part, and this way they touch half the fine grid only.
    """
    current = u
    for dim, size in reversed(list(zip(range(2, u.ndim), spatial))):
        shape = list(current.shape)
        shape[dim] = 2 * current.shape[dim]
        full = buffers.get(f"interpolate{dim}", tuple(shape), u)
        current = _interpolate_axis(current, dim, full)[_along(dim, u.ndim, slice(0, size))]
    return current


def _add_prolongation(z: Tensor, c: Tensor, fine: _Level) -> Tensor:
    """``z += P c``: the outer axis of the interpolation fused into the masked update
    (even and odd rows)."""
    current = c
    # inner axes as in _interpolate
    for dim, size in reversed(list(zip(range(3, c.ndim), fine.spatial[1:]))):
        shape = list(current.shape)
        shape[dim] = 2 * current.shape[dim]
        full = fine.buffers.get(f"interpolate{dim}", tuple(shape), c)
        current = _interpolate_axis(current, dim, full)[_along(dim, c.ndim, slice(0, size))]
    n, size = current.shape[2], fine.spatial[0]
    z[:, :, 0::2].addcmul_(fine.unknown[:, :, 0::2], current)  # fine 2k: coarse k
    n_odd = size // 2
    if n_odd:  # fine 2k + 1: the mean of coarse k and k + 1 (0 beyond the grid)
        between = fine.buffers.get("between", current.shape[:2] + (n_odd,)
                                   + tuple(current.shape[3:]), c)
        if n > 1:
            torch.add(current[:, :, : n - 1], current[:, :, 1:n], out=between[:, :, : n - 1])
        if n_odd == n:
            between[:, :, n - 1 :].copy_(current[:, :, n - 1 :])
        z[:, :, 1::2].addcmul_(fine.unknown[:, :, 1::2], between, value=0.5)
    return z


def _restrict(r: Tensor, fine: _Level, out: Tensor) -> Tensor:
    """``P^T r``: the adjoint of the prolongation ``P`` of :func:`_add_prolongation`
    (full weighting), into ``out``, for ``r`` that vanishes off the fine unknowns
    (residuals do: every row off the unknowns is an identity row acting on zeros).

    The outer axes go first (contiguous rows), so the strided inner-axis pass reads a grid already
    halved.
    """
    current = r
    dims = list(range(2, r.ndim))
    for i, dim in enumerate(dims):
        if i == len(dims) - 1:
            target = out
        else:
            shape = list(current.shape)
            shape[dim] = (current.shape[dim] + 1) // 2
            target = fine.buffers.get(f"restrict{dim}", tuple(shape), r)
        current = _full_weighting_axis(current, dim, target)
    return out


# --- multigrid ------------------------------------------------------------------------------------


def _transfer_taps(k: int, o: int) -> tuple[float, float, float]:
    """Per axis, the weights ``p(d) p(d + k - 2 o)``, ``d = -1, 0, 1``, of the fine values
    ``G(2 I + d)`` in the coarse entry ``(I, I + o)`` of ``P^T G S_k P``
    (``S_k`` the shift by ``k``, ``p`` the hat 1, 1/2, 0)."""

    def hat(d: int) -> float:
        return (1.0, 0.5)[abs(d)] if abs(d) < 2 else 0.0

    return tuple(hat(d) * hat(d + k - 2 * o) for d in (-1, 0, 1))  # type: ignore[return-value]


def _restrict_axis(src: Tensor, dim: int, taps: tuple[float, float, float], out: Tensor, *,
                   alpha: float = 1.0, accumulate: bool = False) -> None:
    """``out(I) (+)= alpha * sum_d taps[d + 1] * src(2 I + d)`` along ``dim``
    (values beyond the grid count as 0)."""
    ndim = src.ndim
    even = src[_along(dim, ndim, slice(0, None, 2))]
    odd = src[_along(dim, ndim, slice(1, None, 2))]
    n_odd, n_coarse = odd.shape[dim], even.shape[dim]
    if not accumulate:
        if taps[1]:
            torch.mul(even, alpha * taps[1], out=out)
        else:
            out.zero_()
    elif taps[1]:
        out.add_(even, alpha=alpha * taps[1])
    if taps[2]:  # d = +1: fine 2I + 1 is odd[I]
        out[_along(dim, ndim, slice(0, n_odd))].add_(odd, alpha=alpha * taps[2])
    if taps[0]:  # d = -1: fine 2I - 1 is odd[I - 1]
        m = min(n_odd, n_coarse - 1)
        out[_along(dim, ndim, slice(1, 1 + m))].add_(odd[_along(dim, ndim, slice(0, m))],
                                                     alpha=alpha * taps[0])


def _galerkin(fine: _Level) -> _StencilLevel:
    """The coarse operator ``P^T A P`` as a 3^d-point stencil, assembled directly from the fine
    stencil.

    Write ``A = sum_k G_k S_k`` with ``S_k`` the shift by the stencil offset ``k`` and
    ``G_k(i) = A[i, i + k]`` on unknown rows and columns (0 elsewhere, as ``P``
    only reaches the unknowns). The interpolation is a tensor product of 1-D
    hats, so the coarse entry ``(I, I + o)`` of ``P^T G_k S_k P`` is a separable
    weighted sum of ``G_k`` over the fine points ``2 I + d``, ``d`` in {-1, 0, 1}^d,
    with per-axis weights :func:`_transfer_taps`: a few strided adds per axis
    instead of applying the operator to probe vectors.
    """
    spatial_dims = len(fine.spatial)
    coarse = _coarse_shape(fine.spatial)
    m = fine.unknown.shape[0]
    offsets = _offsets(spatial_dims)
    n_offsets = len(offsets)

    def index(offset: tuple[int, ...]) -> int:
        return sum((o + 1) * 3 ** (spatial_dims - 1 - i) for i, o in enumerate(offset))

    coef = fine.unknown.new_zeros((m, n_offsets) + coarse)
    scratch = _Buffers()
    for offset in offsets:
        field, scale = fine.field(offset)
        partials: list[tuple[Tensor, tuple[int, ...]]] = [(field, ())]
        for axis in range(spatial_dims):
            dim, last = axis + 2, axis == spatial_dims - 1
            expanded = []
            for source, prefix in partials:
                for o in (-1, 0, 1):
                    taps = _transfer_taps(offset[axis], o)
                    # the other half follows by symmetry
                    if not any(taps) or (o < 0 and not any(prefix)):
                        continue
                    if last:
                        target = coef[:, index(prefix + (o,)) : index(prefix + (o,)) + 1]
                        _restrict_axis(source, dim, taps, target, alpha=scale, accumulate=True)
                    else:
                        shape = list(source.shape)
                        shape[dim] = coarse[axis]
                        target = scratch.get(f"axis{axis}{prefix}{o}", tuple(shape), source)
                        _restrict_axis(source, dim, taps, target)
                    expanded.append((target, prefix + (o,)))
            partials = expanded
    del scratch
    # Symmetry: the entry (I, I - o) is the entry (I - o, I) of the row I - o.
    for offset in offsets:
        if not any(offset) or next(o for o in offset if o) > 0:
            continue
        target = (slice(None),) + tuple(slice(1, None) if o < 0 else slice(0, n - 1) if o > 0
                                        else slice(None)
                                        for o, n in zip(offset, coarse))
        source = (slice(None),) + tuple(slice(0, n - 1) if o < 0 else slice(1, None) if o > 0
                                        else slice(None)
                                        for o, n in zip(offset, coarse))
        mirror = tuple(-o for o in offset)
        coef[:, index(offset)][target].copy_(coef[:, index(mirror)][source])
    for k, offset in enumerate(offsets):  # no coarse neighbour beyond the grid
        for dim, o in enumerate(offset):
            if o:
                coef[:, k][_along(dim + 1, spatial_dims + 1, slice(0, 1) if o < 0
                                  else slice(-1, None))].zero_()
    dtype = coef.dtype
    n_colours = n_offsets
    # Entries that should cancel exactly come out at rounding level; left in, their products on
    # coarser grids sink into denormal numbers, which are extremely slow on CPUs. Drop them.
    # (A symmetric positive semi-definite matrix has no entry larger than its largest diagonal
    # entry; one channel at a time keeps the temporaries small.)
    centre = n_colours // 2
    diagonal = coef[:, centre : centre + 1]
    threshold = (64 * torch.finfo(dtype).eps) * diagonal.amax(dim=tuple(range(1, coef.ndim)),
                                                              keepdim=True)
    for k in range(n_colours):
        channel = coef[:, k : k + 1]
        channel.masked_fill_(channel.abs() <= threshold, 0.0)
    unknown = diagonal > 0
    # Coarse points without a fine unknown nearby are not unknowns: identity rows.
    diagonal.masked_fill_(~unknown, 1.0)
    row_sums = coef[:, :1].abs()
    for k in range(1, n_colours):
        row_sums.add_(coef[:, k : k + 1].abs())
    return _StencilLevel(coef, unknown.to(dtype), row_sums=row_sums)


def _dense_inverse(level: _StencilLevel) -> Tensor:
    """(Pseudo-)inverse of the coarsest operator as a batch of dense ``(M, n, n)`` matrices."""
    spatial = level.spatial
    n = math.prod(spatial)
    m = level.coef.shape[0]
    device, dtype = level.coef.device, level.coef.dtype
    matrix = torch.zeros(m, n, n, dtype=dtype, device=device)
    positions = list(itertools.product(*[range(s) for s in spatial]))
    for k, offset in enumerate(_offsets(len(spatial))):
        for row, point in enumerate(positions):
            neighbour = tuple(p + o for p, o in zip(point, offset))
            if all(0 <= q < s for q, s in zip(neighbour, spatial)):
                column = positions.index(neighbour)
                matrix[:, row, column] += level.coef[(slice(None), k) + point]
    # Galerkin operators can be singular where the interpolation is rank deficient
    # (two coarse points reaching the same few fine unknowns): the pseudo-inverse keeps the
    # preconditioner symmetric.
    return torch.linalg.pinv(0.5 * (matrix + matrix.transpose(1, 2)), hermitian=True)


class _Multigrid:
    """A symmetric V(nu, nu)-cycle with row-sum-weighted Jacobi smoothing, used as a CG
    preconditioner."""

    def __init__(self, fine: _FineLevel, *, smoothing_steps: int = 1,
                 coarsest_size: int = 3) -> None:
        self.levels: list[_Level | _SeparableLevel] = [fine]
        if len(fine.spatial) == 3:  # volumes: separable coarse operators (separable_levels)
            self.levels += separable_levels(fine.unknown, coarsest_size)
        while max(self.levels[-1].spatial) > coarsest_size:
            self.levels.append(_galerkin(self.levels[-1]))
        coarsest = self.levels[-1]
        self.coarsest_inverse = (None if len(self.levels) == 1
                                 else coarsest.dense_inverse() if isinstance(coarsest,
                                                                             _SeparableLevel)
                                 else _dense_inverse(coarsest))
        self.smoothing_steps = smoothing_steps

    def head(self, n: int) -> _Multigrid:
        """The preconditioner of the first ``n`` systems only (views: the setup is not repeated)."""
        out = object.__new__(_Multigrid)
        out.levels = [level.head(n) for level in self.levels]
        out.coarsest_inverse = None if self.coarsest_inverse is None else self.coarsest_inverse[:n]
        out.smoothing_steps = self.smoothing_steps
        return out

    def __call__(self, r: Tensor) -> Tensor:
        """``z = B r`` for the residual ``r`` of the finest level; ``z`` is a reused buffer."""
        return self._cycle(0, r)

    def _cycle(self, depth: int, r: Tensor) -> Tensor:
        level = self.levels[depth]
        z = level.buffers.get("z", r.shape, r)
        if depth == len(self.levels) - 1 and self.coarsest_inverse is not None:
            m, c = r.shape[:2]
            flat = r.reshape(m, c, -1).transpose(1, 2)  # (M, n, C)
            return z.copy_(torch.bmm(self.coarsest_inverse, flat).transpose(1, 2).reshape(r.shape))
        work = level.buffers.get("work", r.shape, r)
        torch.mul(level.inverse_diagonal, r, out=z)
        for _ in range(self.smoothing_steps - 1):
            z.addcmul_(level.inverse_diagonal, level.residual(r, z, work))
        if depth < len(self.levels) - 1:
            coarse = self.levels[depth + 1]
            coarse_r = _restrict(level.residual(r, z, work), level,
                                 coarse.buffers.get("r", r.shape[:2] + coarse.spatial, r))
            _add_prolongation(z, self._cycle(depth + 1, coarse_r), level)
        for _ in range(self.smoothing_steps):
            z.addcmul_(level.inverse_diagonal, level.residual(r, z, work))
        return z


# --- the system -----------------------------------------------------------------------------------


def _fine_system(x: Tensor, removed: Tensor) -> tuple[_FineLevel, Tensor]:
    """The imputation operator and right-hand side for inputs ``x`` and a removal mask."""
    spatial = tuple(x.shape[2:])
    m = x.shape[0]
    unknown = removed.to(x.dtype)  # (M, 1, *S)
    kept = 1.0 - unknown
    in_image_weight = _neighbour_sum(torch.ones((1, 1) + spatial, dtype=x.dtype, device=x.device))
    rhs = _neighbour_sum(x * kept).mul_(unknown)
    # No kept pixel at all: the Laplacian is singular; any positive shift gives the solution 0
    # (b = 0).
    flat = unknown.reshape(m, -1)
    all_removed = (flat.amin(dim=1) > 0).to(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))
    diagonal = torch.addcmul(kept, unknown, in_image_weight).addcmul_(unknown, all_removed)
    return _FineLevel(unknown, diagonal), rhs


def linear_imputation(
    x: Tensor,
    removed: Tensor,
    *,
    tol: float | None = None,
    max_iterations: int = 500,
    check_every: int = 2,
) -> Tensor:
    """Replace the removed pixels of ``x`` by ROAD's linear imputation (no noise).

    Solves the imputation system (see the module docstring) of every image and
    channel with multigrid-preconditioned conjugate gradients. Kept pixels are
    returned unchanged.

    Args:
        x: Images ``(M, C, *S)`` with 1, 2 or 3 spatial dimensions.
        removed: ``(M, 1, *S)`` bool, ``True`` where a pixel is removed (all its
            channels are imputed).
        tol: Stop a system once ``||b - A u||_2 <= tol * ||b||_2``. Default
            ``1e-5`` in float32 (near its rounding floor) and ``1e-10`` in float64.
        max_iterations: The most CG iterations; a system that has not
            converged by then keeps its last iterate and a ``RuntimeWarning`` is
            issued (this does not happen for well-posed inputs: the
            preconditioned iteration converges in a few tens of steps).
        check_every: Test convergence every this many iterations (each test
            is one host synchronisation).

    Returns:
        ``(M, C, *S)`` in the dtype and on the device of ``x``.

    Shape:
        - x: ``(M, C, *S)``, ``S`` of 1, 2 or 3 axes
        - removed: ``(M, 1, *S)``
        - output: ``(M, C, *S)``

    Example:
        >>> x = torch.tensor([[[0.0, 5.0, 5.0, 3.0]]])
        >>> removed = torch.tensor([[[False, True, True, False]]])
        >>> [round(v, 4) for v in linear_imputation(x, removed)[0, 0].tolist()]
        [0.0, 1.0, 2.0, 3.0]
    """
    spatial_dims = x.ndim - 2
    neighbour_weights(spatial_dims)  # raises for unsupported dimensions
    if removed.shape != (x.shape[0], 1) + tuple(x.shape[2:]):
        raise ShapeError(
            f"Expected `removed` of shape {(x.shape[0], 1) + tuple(x.shape[2:])}, but got "
            f"{tuple(removed.shape)}."
        )
    if tol is None:
        tol = 1e-10 if x.dtype == torch.float64 else 1e-5
    if not tol > 0:
        raise OptionError(f"Expected `tol` > 0, but got {tol}.")
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    m = work.shape[0]
    # Hardest systems (most unknowns) first: the solver then narrows its working set to the leading
    # systems that are still iterating, with views instead of copies.
    order = removed.reshape(m, -1).sum(dim=1).argsort(descending=True, stable=True)
    fine, b = _fine_system(_rows(work, order), _rows(removed, order))
    solution = _conjugate_gradients(fine, b, tol=tol, max_iterations=max_iterations,
                                    check_every=check_every)
    unsorted = torch.empty_like(solution)
    unsorted.reshape(m, -1).index_copy_(0, order, solution.reshape(m, -1))
    return torch.where(removed, unsorted, work, out=unsorted).to(x.dtype)


def _active_prefix(active: Tensor) -> int:
    """One more than the index of the last system with an active channel (0 if none); one host read.
    """
    row_active = active.reshape(active.shape[0], -1).any(dim=1)
    return int(torch.where(row_active, torch.arange(1, len(row_active) + 1, device=active.device),
                           0).max())


def _conjugate_gradients(fine: _FineLevel, b: Tensor, *, tol: float, max_iterations: int,
                         check_every: int) -> Tensor:
    """Solve ``A u = b`` for every image and channel with multigrid-preconditioned CG.

    Each (image, channel) system stops updating once its residual meets the
    tolerance, so its result does not depend on the other systems. The working
    set is the leading systems up to the last one still iterating (the caller
    orders the systems hardest first): trailing converged systems cost nothing.
    """
    spatial_dims = b.ndim - 2

    def dot(u: Tensor, v: Tensor) -> Tensor:
        """Per-system inner products ``(M, C, 1, ...)``, without an elementwise temporary.

        ``vecdot`` over the flattened systems is a single fused pass (``bmm`` with one-row matrices
        takes about two and a half times as long on CPU).
        """
        m, c = u.shape[:2]
        return torch.linalg.vecdot(u.reshape(m * c, -1), v.reshape(m * c, -1)).reshape(
            (m, c) + (1,) * spatial_dims)

    u = torch.zeros_like(b)
    norms = dot(b, b)
    threshold = (tol * tol) * norms
    active = norms > threshold
    n = _active_prefix(active)
    if n == 0:  # nothing removed (or nothing to fill in): no setup, no iteration
        return u
    r = b[:n]  # b is not needed again: the residual starts in its storage
    preconditioner = _Multigrid(fine.head(n))
    fine = preconditioner.levels[0]
    un, active, threshold = u[:n], active[:n], threshold[:n]
    p = preconditioner(r).clone()
    q = torch.empty_like(p)
    rz = dot(r, p)
    converged = False
    for iteration in range(1, max_iterations + 1):
        fine.apply(p, q)
        pq = dot(p, q)
        positive = active & (pq > 0)
        alpha = torch.where(positive, rz / torch.where(positive, pq, torch.ones_like(pq)),
                            torch.zeros_like(pq))
        un.addcmul_(alpha, p)
        r.addcmul_(alpha, q, value=-1.0)
        if iteration % check_every == 0:
            active = active & (dot(r, r) > threshold)
            n_active = _active_prefix(active)
            if n_active == 0:
                converged = True
                break
            if n_active < n:
                n = n_active
                un, r, p, q, rz, active, threshold = (t[:n] for t in (un, r, p, q, rz, active,
                                                                      threshold))
                preconditioner = preconditioner.head(n)
                fine = preconditioner.levels[0]
            # Converged systems carry zeros from here on (no work on ever tinier, denormal values).
            r.mul_(active)
        z = preconditioner(r)
        rz_new = dot(r, z)
        ratio_defined = active & (rz > 0)
        beta = torch.where(ratio_defined,
                           rz_new / torch.where(ratio_defined, rz, torch.ones_like(rz)),
                           torch.zeros_like(rz))
        p.mul_(beta).add_(z)
        rz = rz_new
    if not converged:
        active = active & (dot(r, r) > threshold)
        if bool(active.any()):
            warnings.warn(
                f"The linear imputation did not reach tol={tol} within {max_iterations} iterations "
                f"for {int(active.sum())} system(s); their last iterate is used.",
                RuntimeWarning,
                stacklevel=3,
            )
    return u
