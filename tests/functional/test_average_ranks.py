"""``average_ranks`` (Spearman's ranks everywhere) against scipy's ``rankdata``, row by row.

Both code paths are drawn: rows with few ties (on CPU only the tie groups are rewritten) and rows
with many ties (a scan over every position); the packed float32/half sort and the float64 argsort.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given
from hypothesis import strategies as st

from xaiscore.functional._common import (
    _doubled_ranks_of_sorted,
    average_ranks,
    unit_rank_vectors,
    unit_rank_vectors_of_levels,
)

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def expected_doubled_ranks(rows: torch.Tensor) -> np.ndarray:
    values = rows.double().numpy()
    return np.stack([2 * scipy.stats.rankdata(row) for row in values]).astype(np.int64)


@st.composite
def rows_with_ties(draw):
    batch = draw(st.integers(1, 4))
    n = draw(st.integers(1, 60))
    levels = draw(st.sampled_from([3, 20, 10_000]))  # many ties, some, almost none
    values = draw(st.lists(st.integers(-levels, levels), min_size=batch * n, max_size=batch * n))
    scale = draw(st.sampled_from([1.0, 0.25, 1e-3]))
    rows = torch.tensor(values, dtype=torch.float64).reshape(batch, n) * scale
    if draw(st.booleans()):  # signed zeros are equal values
        rows = torch.where(rows == 0, torch.tensor(-0.0, dtype=torch.float64), rows)
    return rows


@pytest.mark.parametrize("dtype", DTYPES)
@given(rows=rows_with_ties())
def test_average_ranks_match_rankdata(dtype, rows):
    # rounding to half may create more ties: the reference sees the same values
    rows = rows.to(dtype)
    ours = average_ranks(rows)
    assert ours.dtype == torch.int64
    np.testing.assert_array_equal(ours.numpy(), expected_doubled_ranks(rows))


@pytest.mark.parametrize("tied_fraction", [0.0, 0.05, 0.5, 1.0])
def test_both_tie_paths_on_long_rows(tied_fraction):
    generator = torch.Generator().manual_seed(3)
    rows = torch.randn(3, 5_000, generator=generator)
    tied = torch.rand(3, 5_000, generator=generator) < tied_fraction
    # tied values clustered on a coarse grid
    rows = torch.where(tied, rows.mul(4).round() / 4, rows)
    for dtype in (torch.float32, torch.float64):
        np.testing.assert_array_equal(average_ranks(rows.to(dtype)).numpy(),
                                      expected_doubled_ranks(rows.to(dtype)))


def test_tie_group_at_row_boundaries_stays_in_its_row():
    # The last positions of row 0 and the first of row 1 hold equal values: the groups must not
    # merge.
    rows = torch.tensor([[0.0, 1.0, 2.0, 2.0], [2.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    np.testing.assert_array_equal(average_ranks(rows).numpy(), expected_doubled_ranks(rows))


def test_sorted_rows_scan_and_sparse_paths_agree():
    generator = torch.Generator().manual_seed(0)
    values = torch.randint(0, 40, (5, 300), generator=generator).sort(dim=1).values
    # 40 levels in 300: dense ties, scan path
    sparse = _doubled_ranks_of_sorted(values, torch.int64)
    few = torch.arange(300).expand(5, 300).clone()
    few[:, 10:13] = 10  # one tie group per row: the sparse path
    expected = torch.arange(2, 602, 2).expand(5, 300).clone()
    expected[:, 10:13] = 24  # positions 10..12: 1-based ranks 11, 12, 13
    np.testing.assert_array_equal(_doubled_ranks_of_sorted(few, torch.int64).numpy(),
                                  expected.numpy())
    np.testing.assert_array_equal(sparse.numpy(), expected_doubled_ranks(values.double()))


def test_single_feature_and_empty_batch():
    assert average_ranks(torch.tensor([[7.0], [-1.0]])).tolist() == [[2], [2]]
    assert average_ranks(torch.empty(0, 5)).shape == (0, 5)


# --- unit rank vectors of integer levels (counting, no sort) ------------------------------------


def reference_unit_ranks(rows: torch.Tensor) -> np.ndarray:
    """Centred scipy average ranks scaled to unit length, row by row (NaN for a constant row)."""
    out = []
    for row in rows.double().numpy():
        centred = scipy.stats.rankdata(row) - (len(row) + 1) / 2
        norm = np.linalg.norm(centred)
        out.append(centred / norm if norm > 0 else np.full(len(row), np.nan))
    return np.stack(out)


@given(batch=st.integers(1, 4), n=st.integers(1, 60), n_levels=st.sampled_from([1, 2, 5, 64, 1000]),
       seed=st.integers(0, 2**31 - 1))
def test_unit_rank_vectors_of_levels_match_rankdata(batch, n, n_levels, seed):
    levels = torch.randint(0, n_levels, (batch, n), generator=torch.Generator().manual_seed(seed),
                           dtype=torch.int32)
    ours = unit_rank_vectors_of_levels(levels, n_levels)
    assert ours.dtype == torch.float64 and ours.shape == (batch, n)
    np.testing.assert_allclose(ours.numpy(), reference_unit_ranks(levels), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.numpy(), unit_rank_vectors(levels.double()).numpy(), rtol=1e-12,
                               atol=1e-12)


def test_unit_rank_vectors_of_levels_edge_cases():
    # A constant row (no rank variance) is NaN, its neighbours are not; levels at both ends of the
    # range.
    levels = torch.tensor([[4, 4, 4], [0, 9, 0], [9, 0, 5]])
    ours = unit_rank_vectors_of_levels(levels, 10)
    assert torch.isnan(ours[0]).all() and not torch.isnan(ours[1:]).any()
    np.testing.assert_allclose(ours[1:].numpy(), reference_unit_ranks(levels[1:]), rtol=1e-12)
    # one feature: constant
    assert unit_rank_vectors_of_levels(torch.tensor([[3]]), 4).isnan().all()
