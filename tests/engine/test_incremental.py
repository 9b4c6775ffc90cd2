"""The sparse (incremental) build of perturbed images equals the documented images bit for bit.

``perturbed_scores`` builds item ``(b, t)`` as ``x[b]`` with the elements of rank in
``[lo[b, t], hi[b, t])`` taken from the substrate. On CPU it may rewrite only the elements that
differ from the previous image of the sample (``xaiscore._engine.incremental``). These tests force
the sparse path, the dense path and the automatic choice, record every image the model sees, and
compare each with the image built directly from the definition (``torch.where``).
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

import xaiscore._engine.incremental as incremental
from xaiscore._engine.perturbation import perturbed_scores
from xaiscore.functional import faithfulness as fa

PATHS = {"sparse": 1e9, "dense": 0.0, "auto": incremental.DENSE_COST}


class Recorder:
    """A model that keeps a copy of every image it sees and returns their flat sums as one logit."""

    def __init__(self, in_place: bool = False) -> None:
        self.images: list[torch.Tensor] = []
        self.in_place = in_place

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.images.append(images.clone())
        logits = images.flatten(1).sum(1, keepdim=True).to(torch.float64).expand(-1, 2).clone()
        if self.in_place:  # a model that writes into its input must not corrupt later images
            images.mul_(-3.0)
        return logits


def expected_images(x, rank, lo, hi, substrate, n_steps):
    """The items in step-major order, straight from the definition."""
    b = x.shape[0]
    rank = rank.long().expand((b,) + tuple(rank.shape[1:]))
    fill = (substrate.expand_as(x) if isinstance(substrate, torch.Tensor)
            else torch.full_like(x, substrate))
    items = []
    for t in range(n_steps):
        for i in range(b):
            low = 0 if lo is None else int(lo[i, t] if lo.ndim == 2 else lo[t])
            high = 2**40 if hi is None else int(hi[i, t] if hi.ndim == 2 else hi[t])
            inside = (rank[i] >= low) & (rank[i] < high)
            items.append(torch.where(inside, fill[i], x[i]))
    return torch.stack(items)


def run(path, x, rank, lo, hi, substrate, max_batch_size, *, in_place=False):
    recorder = Recorder(in_place)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(incremental, "DENSE_COST", PATHS[path])
        perturbed_scores(recorder, x, rank, torch.zeros(x.shape[0], dtype=torch.long), lo, hi,
                         substrate=substrate, softmax=False, max_batch_size=max_batch_size)
    return torch.cat(recorder.images)


@st.composite
def cases(draw):
    b = draw(st.integers(1, 4))
    channels = draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=2)))
    n_positions = int(torch.tensor(spatial).prod())
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
    x = torch.randn((b, channels) + spatial, generator=generator).to(dtype)
    rank_kind = draw(st.sampled_from(["pixels", "elements", "ties", "shared"]))
    if rank_kind == "pixels":  # one rank per position, all channels together
        rank = torch.stack([torch.randperm(n_positions, generator=generator) for _ in range(b)])
        rank = rank.reshape((b, 1) + spatial)
    elif rank_kind == "elements":  # one rank per element
        rank = torch.stack([torch.randperm(channels * n_positions, generator=generator)
                            for _ in range(b)])
        rank = rank.reshape((b, channels) + spatial)
    # patches or segments: several positions share a rank, some ranks unused
    elif rank_kind == "ties":
        rank = torch.randint(0, max(1, n_positions // 2) + 1, (b, 1) + spatial, generator=generator)
    else:  # one rank map for every sample (e.g. the feature ids of a partition)
        rank = torch.randperm(n_positions, generator=generator).reshape((1, 1) + spatial)
    rank = rank.int() if draw(st.booleans()) else rank.long()
    n_ranks = int(rank.max()) + 1
    n_steps = draw(st.integers(1, 6))
    pattern = draw(st.sampled_from(["deletion", "insertion", "window", "random"]))
    edges = torch.linspace(0, n_ranks, n_steps + 1).round().long()
    if pattern == "deletion":
        lo, hi = None, edges[1:]
    elif pattern == "insertion":
        lo, hi = edges[:-1], None
    elif pattern == "window":
        lo, hi = edges[:-1], edges[1:]
    else:
        lo = torch.randint(-1, n_ranks + 2, (b, n_steps), generator=generator)
        hi = torch.randint(-1, n_ranks + 2, (b, n_steps), generator=generator)
        if draw(st.booleans()):
            lo = None
    substrate_kind = draw(st.sampled_from(["zero", "constant", "per_sample", "per_channel", "full",
                                           "shared"]))
    if substrate_kind == "zero":
        substrate = 0.0
    elif substrate_kind == "constant":
        substrate = -1.5
    elif substrate_kind == "per_sample":
        substrate = torch.randn((b,) + (1,) * (x.ndim - 1), generator=generator).to(dtype)
    elif substrate_kind == "per_channel":
        substrate = torch.randn((b, channels) + (1,) * len(spatial), generator=generator).to(dtype)
    elif substrate_kind == "full":
        substrate = torch.randn(x.shape, generator=generator).to(dtype)
    else:
        substrate = torch.randn((1,) + tuple(x.shape[1:]), generator=generator).to(dtype)
    max_batch_size = draw(st.integers(1, b * n_steps + 2))
    return x, rank, lo, hi, substrate, n_steps, max_batch_size


@settings(max_examples=150)
@given(case=cases())
def test_every_path_builds_the_documented_images(case):
    x, rank, lo, hi, substrate, n_steps, max_batch_size = case
    expected = expected_images(x, rank, lo, hi, substrate, n_steps)
    for path in PATHS:
        images = run(path, x, rank, lo, hi, substrate, max_batch_size)
        assert images.shape == expected.shape
        assert torch.equal(images, expected), path  # bit for bit, every dtype


@settings(max_examples=50)
@given(case=cases())
def test_a_model_writing_into_its_input_sees_the_right_images(case):
    x, rank, lo, hi, substrate, n_steps, max_batch_size = case
    expected = expected_images(x, rank, lo, hi, substrate, n_steps)
    images = run("sparse", x, rank, lo, hi, substrate, max_batch_size, in_place=True)
    assert torch.equal(images, expected)


def test_pixel_flipping_takes_the_sparse_path_on_cpu(monkeypatch):
    """The automatic choice picks the sparse build where steps change few pixels (and is exact)."""
    calls = []
    for name in ("_scatter", "_scatter_runs"):  # general runs, and runs shared by a step's samples
        original = getattr(incremental.IncrementalBuilder, name)
        monkeypatch.setattr(incremental.IncrementalBuilder, name,
                            lambda self, *args, original=original: calls.append(1)
                            or original(self, *args))
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=generator)
    a = torch.rand(4, 1, 32, 32, generator=generator)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 5))
    target = torch.tensor([0, 1, 2, 3])
    fast = fa.pixel_flipping(model, x, a, target, features_per_step=16, max_batch_size=4)
    assert len(calls) >= 60  # every one-step chunk after the first
    monkeypatch.setattr(incremental, "DENSE_COST", 0.0)
    dense = fa.pixel_flipping(model, x, a, target, features_per_step=16, max_batch_size=4)
    assert torch.equal(fast.curve, dense.curve)


def test_the_sparse_path_is_skipped_where_it_cannot_pay():
    x = torch.rand(2, 1, 8, 8)
    rank = torch.stack([torch.randperm(64) for _ in range(2)]).reshape(2, 1, 8, 8)
    half = torch.tensor([32])
    # half the image per item
    assert incremental.incremental_builder(x, rank, None, half, 0.0) is None
    assert incremental.incremental_builder(x, rank, None, torch.arange(1, 65), 0.0) is not None
    assert (incremental.incremental_builder(x, rank, None, torch.arange(1, 65), lambda s, t: s)
            is None)
    assert incremental.incremental_builder(x, rank.float(), None, torch.arange(1, 65), 0.0) is None


@pytest.mark.parametrize("features_per_step", [1, 7])
def test_monotonicity_and_faithfulness_estimate_unchanged_by_the_path(monkeypatch,
                                                                      features_per_step):
    """Insertion (monotonicity) and one group at a time (faithfulness estimate) on both paths."""
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(3, 2, 6, 5, generator=generator, dtype=torch.float64)
    a = torch.rand(3, 2, 6, 5, generator=generator, dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(60, 4)).double()
    target = torch.tensor([0, 3, 1])
    results = {}
    for path in ("sparse", "dense"):
        monkeypatch.setattr(incremental, "DENSE_COST", PATHS[path])
        results[path] = (
            fa.monotonicity(model, x, a, target, features_per_step=features_per_step,
                            baseline="min"),
            fa.faithfulness_estimate(model, x, a, target, features_per_step=features_per_step,
                                     baseline="mean",
                                     max_batch_size=4),
        )
    assert torch.equal(results["sparse"][0], results["dense"][0])
    assert torch.equal(results["sparse"][1], results["dense"][1])


@settings(max_examples=100)
@given(rows=st.integers(1, 4), m=st.integers(1, 30), top=st.integers(0, 12),
       seed=st.integers(0, 2**16))
def test_positions_of_bounds_equal_a_search_per_row(rows, m, top, seed):
    """Bounds become positions in every row's rank order with one vectorized search."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sorted_ranks = np.sort(rng.integers(0, top + 1, (rows, m)), axis=1)
    bounds = rng.integers(0, top + 3, (rows, 5))
    got = incremental.IncrementalBuilder._positions(bounds, sorted_ranks)
    expected = np.stack([np.searchsorted(row, values) for row, values in zip(sorted_ranks, bounds)])
    assert (got == expected).all()


@pytest.mark.parametrize("spatial", [(32, 32, 32), (64, 64)])
def test_caller_inference_mode_gives_the_same_curves(spatial):
    # The in-state fast path reads the state's version counter, which inference tensors lack:
    # under the caller's inference mode the images are built in the chunk buffer instead.
    from torch import nn

    from xaiscore.functional import deletion

    generator = torch.Generator().manual_seed(0)
    conv = nn.Conv3d if len(spatial) == 3 else nn.Conv2d
    pool = nn.AdaptiveAvgPool3d if len(spatial) == 3 else nn.AdaptiveAvgPool2d
    torch.manual_seed(0)
    model = nn.Sequential(conv(1, 2, 3), pool(1), nn.Flatten()).eval()
    x = torch.rand((4, 1) + spatial, generator=generator)
    a = torch.rand((4, 1) + spatial, generator=generator)
    target = torch.tensor([0, 1, 0, 1])
    expected = deletion(model, x, a, target, features_per_step=64, max_batch_size=4)
    with torch.inference_mode():
        got = deletion(model, x, a, target, features_per_step=64, max_batch_size=4)
    torch.testing.assert_close(got.curve, expected.curve, rtol=0, atol=0)
    torch.testing.assert_close(got.score, expected.score, rtol=0, atol=0)
