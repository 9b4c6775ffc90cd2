"""The coarse levels of the 3-D imputation solver (``xaiscore._engine.separable_levels``).

The dense matrices here are built from the stencil weights with numpy loops (no solver code): the
fine operator on the whole grid, the trilinear interpolation, and ``P^T A P`` from them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from tests.reference import road_subsets_axiomatic as ref
from xaiscore._engine.imputation import linear_imputation
from xaiscore._engine.separable_levels import (
    _hierarchy,
    _offdiagonals_nonpositive,
    separable_levels,
)


def grid_operator(shape):
    """The imputation operator with every voxel unknown (26 neighbours, borders dropped)."""
    points = list(itertools.product(*[range(n) for n in shape]))
    index = {p: i for i, p in enumerate(points)}
    matrix = np.zeros((len(points), len(points)))
    for p in points:
        for offset in itertools.product((-1, 0, 1), repeat=3):
            k = sum(1 for o in offset if o)
            if k == 0:
                continue
            q = tuple(a + o for a, o in zip(p, offset))
            if q in index:
                weight = 2.0 ** (3 - k) / 56.0
                matrix[index[p], index[p]] += weight
                matrix[index[p], index[q]] -= weight
    return matrix


def interpolation(shape):
    """Trilinear interpolation: fine 2k takes coarse k, fine 2k + 1 the mean of k and k + 1."""
    def one_axis(n):
        nc = (n + 1) // 2
        p = np.zeros((n, nc))
        for i in range(n):
            if i % 2 == 0:
                p[i, i // 2] = 1.0
            else:
                for k in (i // 2, i // 2 + 1):
                    if k < nc:
                        p[i, k] = 0.5
        return p
    out = one_axis(shape[0])
    for n in shape[1:]:
        out = np.kron(out, one_axis(n))
    return out


@pytest.mark.parametrize("shape", [(6, 6, 6), (7, 4, 5), (5, 1, 6), (2, 9, 3)])
def test_first_level_is_the_galerkin_operator_inside_a_removed_region(shape):
    """With every voxel removed (no kept voxel: no Dirichlet coupling) the separable coarse operator
    is exactly ``P^T A P``."""
    unknown = torch.ones((1, 1) + shape, dtype=torch.float64)
    level = separable_levels(unknown, coarsest_size=1)[0]
    p = interpolation(shape)
    expected = p.T @ grid_operator(shape) @ p
    n = p.shape[1]
    basis = torch.eye(n, dtype=torch.float64).reshape((n, 1) + level.spatial)
    every = separable_levels(unknown.expand((n, 1) + shape), coarsest_size=1)[0]
    out = torch.empty_like(basis)
    every.apply(basis, out)
    np.testing.assert_allclose(out.reshape(n, n).numpy().T, expected, atol=1e-12)
    assert level.unknown.min() == 1


def _one_system(level, system, n):
    """The level of one system, repeated ``n`` times (one basis vector each)."""
    single = object.__new__(type(level))
    single.__dict__.update(level.__dict__)
    for name in level._PER_SYSTEM:
        value = getattr(level, name)[system : system + 1]
        setattr(single, name, value.expand((n,) + tuple(value.shape[1:])))
    return single


def test_coarse_operators_are_symmetric_positive_definite_with_kept_voxels():
    generator = torch.Generator().manual_seed(1)
    removed = torch.rand((3, 1, 9, 8, 7), generator=generator) < torch.tensor([0.2, 0.6, 0.95]
                                                                            ).reshape(3, 1, 1, 1, 1)
    levels = separable_levels(removed.double(), coarsest_size=2)
    assert [level.spatial for level in levels] == [(5, 4, 4), (3, 2, 2), (2, 1, 1)]
    for level in levels:
        n = int(np.prod(level.spatial))
        m = level.unknown.shape[0]
        basis = torch.eye(n, dtype=torch.float64).reshape((n, 1) + level.spatial)
        for system in range(m):
            single = _one_system(level, system, n)
            out = torch.empty_like(basis)
            single.apply(basis * single.unknown, out)
            matrix = out.reshape(n, n).numpy().T
            unknown = single.unknown[0].reshape(-1).numpy() > 0
            block = matrix[np.ix_(unknown, unknown)]
            np.testing.assert_allclose(block, block.T, atol=1e-12)
            assert np.linalg.eigvalsh(block).min() > 0


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32, 64, 128])
def test_power_of_two_grids_have_nonpositive_offdiagonals(n):
    """There the smoother's row sums take the shortcut ``sum_j |c_ij| = 2 c_ii - sum_j c_ij``
    (other sizes can have small positive entries at the far border and sum the 27 terms)."""
    assert all(nonpositive for _, _, nonpositive in _hierarchy((n, n, n), 1))


@pytest.mark.parametrize("shape", [(16, 8, 8), (10, 7, 9), (6, 6, 6)])
def test_smoother_weights_are_the_absolute_row_sums(shape):
    """``1 / (0.55 sum_j |c_ij|)`` on unknown rows, against the dense matrix of each level (both
    the shortcut and the 27-term sum)."""
    generator = torch.Generator().manual_seed(2)
    removed = torch.rand((2, 1) + shape, generator=generator) < 0.7
    paths = set()
    for level, (_, _, nonpositive) in zip(separable_levels(removed.double(), coarsest_size=1),
                                          _hierarchy(shape, 1)):
        paths.add(nonpositive)
        n = int(np.prod(level.spatial))
        basis = torch.eye(n, dtype=torch.float64).reshape((n, 1) + level.spatial)
        for system in range(2):
            single = _one_system(level, system, n)
            out = torch.empty_like(basis)
            single.apply(basis * single.unknown, out)
            matrix = out.reshape(n, n).numpy().T
            unknown = single.unknown[0].reshape(-1).numpy() > 0
            expected = np.abs(matrix[unknown]).sum(axis=1)
            got = 1.0 / (0.55 * level.inverse_diagonal[system].reshape(-1).numpy()[unknown])
            np.testing.assert_allclose(got, expected, rtol=1e-12)
    if shape == (10, 7, 9):
        assert paths == {True, False}


def test_the_sign_check_sees_a_positive_offdiagonal():
    x = (torch.eye(3, dtype=torch.float64) + 1.0,) * 3
    y = (torch.eye(3, dtype=torch.float64),) * 3
    assert not _offdiagonals_nonpositive(x, y)
    assert _offdiagonals_nonpositive(y, x)


@pytest.mark.parametrize("shape", [(33, 5, 2), (1, 17, 9), (20, 1, 1), (9, 12, 11)])
def test_imputation_matches_spsolve_on_uneven_grids(shape):
    """Odd sizes, axes of length 1 and several coarse levels, against scipy's sparse solve."""
    generator = torch.Generator().manual_seed(3)
    x = torch.rand((3, 1) + shape, generator=generator, dtype=torch.float64)
    grids = torch.meshgrid(*(torch.arange(float(n)) for n in shape), indexing="ij")
    smooth = (torch.sin(0.4 * grids[0] + 0.3) * torch.cos(0.3 * grids[1]) + 0.2 * grids[2]
              + 1e-3 * torch.rand(shape, generator=generator)).reshape(-1)
    rank = smooth.argsort(descending=True).argsort().reshape(shape)
    n = rank.numel()
    removed = torch.stack([rank < int(n * p) for p in (0.1, 0.5, 0.9)])[:, None]
    out = linear_imputation(x, removed)
    expected = np.stack([ref.linear_imputation(x[i].numpy(), removed[i, 0].numpy())
                         for i in range(3)])
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-8)
