"""The perturbation engine (xaiscore._engine.perturbation) against plain numpy/scipy constructions.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import faithfulness as ref
from xaiscore._checks import DTypeError, OptionError, ShapeError
from xaiscore._engine.perturbation import (
    apply_perturbation,
    element_ranks,
    feature_attributions,
    gaussian_blur,
    grid_cells,
    make_baseline,
    partition,
    rank_features,
    rise_gaussian_kernel,
    trapezoid,
)
from xaiscore._engine.random import counter_uniform, random_keys


@given(spatial=st.lists(st.integers(1, 9), min_size=1, max_size=3), patch=st.integers(1, 5))
def test_grid_cells_match_the_padded_grid(spatial, patch):
    labels, n_cells = grid_cells(tuple(spatial), patch)
    expected = ref.grid_labels(tuple(spatial), patch)
    np.testing.assert_array_equal(labels.numpy(), expected)
    assert n_cells == int(np.prod([-(-n // patch) if n % patch == 0
                                   else (n + patch - n % patch) // patch
                                   for n in spatial]))


@given(data=st.data())
def test_segment_partition_renumbers_each_sample_in_label_order(data):
    b = data.draw(st.integers(1, 3))
    spatial = tuple(data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
    size = b * int(np.prod(spatial))
    labels = torch.tensor(data.draw(st.lists(st.integers(-5, 1000), min_size=size,
                                             max_size=size))).reshape(
        (b,) + spatial)
    part = partition((b, 2) + spatial, segments=labels)
    for i in range(b):
        unique = np.unique(labels[i].numpy())
        expected = np.searchsorted(unique, labels[i].numpy())
        np.testing.assert_array_equal(part.ids[i, 0].numpy(), expected)
        assert part.counts[i] == len(unique)
    assert part.n_features == int(part.counts.max())


def test_segment_slots_beyond_a_sample_count_are_ranked_last():
    labels = torch.tensor([[0, 0, 1, 1], [0, 0, 0, 0]])
    part = partition((2, 1, 4), segments=labels)
    scores = feature_attributions(torch.tensor([[[1.0, 1.0, 5.0, 5.0]],
                                                [[-9.0, -9.0, -9.0, -9.0]]]), part,
                                  aggregate="mean")
    assert scores.tolist() == [[1.0, 5.0], [-9.0, 0.0]]
    assert rank_features(scores, counts=part.counts).tolist() == [[1, 0], [0, 1]]
    assert rank_features(scores, counts=part.counts, order="lerf").tolist() == [[0, 1], [0, 1]]


@given(values=st.lists(st.sampled_from([-1.0, 0.0, 0.5, 2.0]), min_size=1, max_size=12),
       order=st.sampled_from(["morf", "lerf"]))
def test_ranks_break_ties_by_lower_index(values, order):
    ranks = rank_features(torch.tensor([values]), order=order)[0].tolist()
    expected_order = ref.ordering(np.array(values), order)
    assert [expected_order.index(f) for f in range(len(values))] == ranks


@given(rows=st.integers(1, 4), n=st.integers(1, 40),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]),
       order=st.sampled_from(["morf", "lerf"]), seed=st.integers(0, 2**16))
def test_ranks_equal_a_stable_sort_with_signed_zeros_and_many_ties(rows, n, dtype, order, seed):
    """float32/half ranks come from one packed int64 sort, float64 from torch's stable sort: the
    same rule."""
    generator = torch.Generator().manual_seed(seed)
    pool = torch.tensor([-2.5, -0.0, 0.0, 1e-30, 3.0, -1e-30], dtype=dtype)
    scores = pool[torch.randint(0, len(pool), (rows, n), generator=generator)]
    key = -scores if order == "morf" else scores
    expected = torch.empty((rows, n), dtype=torch.long)
    expected.scatter_(1, torch.sort(key, dim=1, stable=True).indices,
                      torch.arange(n).expand(rows, n))
    assert torch.equal(rank_features(scores, order=order), expected)
    counts = torch.randint(0, n + 1, (rows,), generator=generator)
    ranked = rank_features(scores, order=order, counts=counts)
    # the first counts[row] slots keep their relative order; the rest come last
    for row in range(rows):
        k = int(counts[row])
        assert torch.equal(ranked[row, :k], rank_features(scores[row:row + 1, :k], order=order)[0])
        assert ranked[row, k:].tolist() == list(range(k, n))


def test_element_features_broadcast_a_one_channel_map():
    a = torch.tensor([[[[1.0, 3.0]]]])  # (1, 1, 1, 2)
    part = partition((1, 2, 1, 2), reduce_channels=None)
    assert part.n_features == 4 and part.ids.shape == (1, 2, 1, 2)
    scores = feature_attributions(a, part, reduce_channels=None)
    assert scores.tolist() == [[1.0, 3.0, 1.0, 3.0]]
    rank = element_ranks(rank_features(scores), part)
    assert rank.tolist() == [[[[2, 0]], [[3, 1]]]]


def test_rise_kernel_equals_scipy_filtered_impulse():
    for klen, sigma in [(11, 5.0), (7, 1.5), (3, 0.4), (1, 2.0)]:
        impulse = np.zeros((klen, klen))
        impulse[klen // 2, klen // 2] = 1.0
        expected = scipy.ndimage.gaussian_filter(impulse, sigma)
        k = rise_gaussian_kernel(klen, sigma).numpy()
        np.testing.assert_allclose(np.outer(k, k), expected, atol=1e-15)


@pytest.mark.parametrize("spatial", [(13,), (12, 15), (6, 7, 5)])
def test_gaussian_blur_matches_scipy_correlation_with_zero_padding(spatial):
    x = torch.rand((2, 3) + spatial, generator=torch.Generator().manual_seed(0),
                   dtype=torch.float64)
    ours = gaussian_blur(x)
    for i in range(2):
        np.testing.assert_allclose(ours[i].numpy(), ref.rise_blur(x[i].numpy()), atol=1e-12)
    assert gaussian_blur(x.float()).dtype == torch.float32


def test_apply_perturbation_replaces_exactly_the_rank_interval():
    x = torch.arange(6.0).reshape(1, 1, 6).repeat(3, 1, 1)
    rank = torch.tensor([[[5, 4, 3, 2, 1, 0]]]).expand(3, 1, 6)
    out = apply_perturbation(x, rank, torch.tensor([0, 2, 1]), torch.tensor([0, 6, 3]),
                             torch.full((1, 1, 1), -1.0))
    assert out.tolist() == [[[0, 1, 2, 3, 4, 5]], [[-1, -1, -1, -1, 4, 5]], [[0, 1, 2, -1, -1, 5]]]
    x = torch.arange(6.0).reshape(1, 1, 6).repeat(3, 1, 1)
    below = apply_perturbation(x.clone(), rank, None, torch.tensor([0, 2, 6]),
                               torch.full((3, 1, 6), -1.0))
    assert below.tolist() == [[[0, 1, 2, 3, 4, 5]], [[0, 1, 2, 3, -1, -1]], [[-1] * 6]]
    above = apply_perturbation(x.clone(), rank, torch.tensor([0, 2, 6]), None,
                               torch.full((1, 1, 1), -1.0))
    assert above.tolist() == [[[-1] * 6], [[-1, -1, -1, -1, 4, 5]], [[0, 1, 2, 3, 4, 5]]]


def test_counter_uniform_is_chunk_free_and_uniform():
    keys = random_keys(200, torch.Generator().manual_seed(1))
    u = counter_uniform(keys, 500, dtype=torch.float64)
    torch.testing.assert_close(counter_uniform(keys[37:38], 500, dtype=torch.float64), u[37:38],
                               rtol=0, atol=0)
    torch.testing.assert_close(counter_uniform(keys, 100, dtype=torch.float64, offset=400),
                               u[:, 400:],
                               rtol=0, atol=0)
    values = u.numpy().ravel()
    assert values.min() >= 0 and values.max() < 1
    # Kolmogorov-Smirnov against U(0, 1), and no correlation between neighbouring columns or rows.
    from scipy.stats import kstest

    assert kstest(values, "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(u[:, 1:].ravel(), u[:, :-1].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(u[1:].ravel(), u[:-1].ravel())[0, 1]) < 0.01
    f32 = counter_uniform(keys, 500)
    assert f32.dtype == torch.float32 and float(f32.max()) < 1.0


def test_make_baseline_named_and_callable():
    x = torch.tensor([[[1.0, 3.0], [5.0, 7.0]]])  # (1, 2, 2)
    assert make_baseline(x, "zeros").expand_as(x).tolist() == [[[0.0, 0.0], [0.0, 0.0]]]
    assert make_baseline(x, 2.5).expand_as(x).tolist() == [[[2.5, 2.5], [2.5, 2.5]]]
    assert make_baseline(x, "min").expand_as(x).tolist() == [[[1.0, 1.0], [1.0, 1.0]]]
    assert make_baseline(x, "mean").expand_as(x).tolist() == [[[2.0, 2.0], [6.0, 6.0]]]
    noise = make_baseline(x, "uniform", generator=torch.Generator().manual_seed(0))
    assert noise.shape == x.shape and bool(((noise >= 1) & (noise <= 7)).all())
    assert make_baseline(x, lambda t: t * 2).tolist() == [[[2.0, 6.0], [10.0, 14.0]]]
    with pytest.raises(OptionError, match="baseline"):
        make_baseline(x, "black")
    with pytest.raises(DTypeError, match="bool"):
        make_baseline(x, True)
    with pytest.raises(ShapeError, match="broadcast"):
        make_baseline(x, lambda t: t[0])


def test_trapezoid_matches_numpy():
    y = torch.rand(3, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    positions = torch.tensor([0.0, 0.1, 0.15, 0.5, 0.6, 0.9, 1.0], dtype=torch.float64)
    np.testing.assert_allclose(trapezoid(y, positions).numpy(),
                               np.trapezoid(y.numpy(), positions.numpy(), axis=1))


@settings(max_examples=10)
@given(patch=st.integers(1, 3), how=st.sampled_from(["sum", "mean", "max_abs"]))
def test_patch_attributions_sum_the_reduced_map(patch, how):
    a = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    part = partition(a.shape, patch_size=patch)
    ours = feature_attributions(a, part, reduce_channels=how)
    labels = ref.grid_labels((5, 4), patch)
    for i in range(2):
        _, values = ref.segment_features(np.zeros((3, 5, 4)), a[i].numpy(), labels, how, "sum")
        np.testing.assert_allclose(ours[i].numpy(), values, atol=1e-12)


@pytest.mark.parametrize("substrate_kind", ["zero", "constant", "per_sample", "callable"])
@pytest.mark.parametrize("bounds", ["hi", "lo", "both"])
@settings(max_examples=8)
@given(max_batch_size=st.integers(1, 7))
def test_perturbed_scores_builds_exactly_the_documented_images(substrate_kind, bounds,
                                                               max_batch_size):
    """Every item (b, t) is x[b] with ranks in [lo, hi) from the substrate, in any chunking."""
    from xaiscore._engine.perturbation import perturbed_scores

    generator = torch.Generator().manual_seed(0)
    b, steps = 3, 4
    x = torch.randn(b, 2, 3, 2, generator=generator, dtype=torch.float64)
    rank = torch.stack([torch.randperm(6, generator=generator) for _ in range(b)]).reshape(
        b, 1, 3, 2).int()
    lo = torch.tensor([[0, 1, 2, 6], [3, 0, 5, 2], [1, 1, 0, 4]])
    hi = torch.tensor([[2, 4, 2, 6], [6, 1, 6, 5], [3, 6, 0, 6]])
    fills = {
        "zero": 0.0,
        "constant": -2.5,
        "per_sample": torch.randn(b, 2, 3, 2, generator=generator, dtype=torch.float64),
        "callable": lambda sample, step: (sample * 10 + step).to(torch.float64).reshape(-1, 1, 1, 1).expand(-1, 2, 3, 2),  # noqa: E501
    }
    fill = fills[substrate_kind]
    weights = torch.randn(12, 2, generator=generator, dtype=torch.float64)

    def model(images):  # two random linear read-outs of the whole image
        return images.flatten(1) @ weights

    use_lo = lo if bounds in ("lo", "both") else None
    use_hi = hi if bounds in ("hi", "both") else None
    scores = [perturbed_scores(model, x, rank, torch.full((b,), k, dtype=torch.long), use_lo,
                               use_hi,
                               substrate=fill, softmax=False, max_batch_size=max_batch_size)
              for k in (0, 1)]
    assert scores[0].shape == (b, steps)
    for i in range(b):
        for t in range(steps):
            low = 0 if use_lo is None else int(lo[i, t])
            high = 6 if use_hi is None else int(hi[i, t])
            inside = (rank[i] >= low) & (rank[i] < high)
            if substrate_kind == "callable":
                value = torch.full_like(x[i], float(i * 10 + t))
            elif substrate_kind == "per_sample":
                value = fill[i]
            else:
                value = torch.full_like(x[i], fill)
            expected = torch.where(inside, value, x[i]).flatten() @ weights
            torch.testing.assert_close(torch.stack([scores[0][i, t], scores[1][i, t]]), expected,
                                       rtol=0, atol=1e-12)


def test_block_noise_fill_equals_the_chunked_draws_for_any_worker_count():
    from xaiscore._engine.noise import NOISE_BLOCK_ITEMS, BlockNoise

    n_items = 3 * NOISE_BLOCK_ITEMS + 5
    for kind, dtype in (("gaussian", torch.float32), ("uniform", torch.float64)):
        noise = BlockNoise(n_items, (2, 3), kind=kind, low=-0.5, high=0.5,
                           generator=torch.Generator().manual_seed(3), dtype=dtype)
        expected = torch.cat([noise(0, 7), noise(7, 70), noise(70, n_items)])
        for workers in (1, 2, 4):
            out = noise.fill(torch.empty((n_items, 2, 3), dtype=dtype), workers=workers)
            assert torch.equal(out, expected)
    with pytest.raises(ValueError, match=r"Expected `out` of shape \(101, 2, 3\)"):
        noise.fill(torch.empty((n_items, 2), dtype=torch.float64))
