"""Concurrent CPU work: row sorts split over threads, noise blocks drawn on threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xaiscore._engine import sorting as _sort
from xaiscore._engine.noise import BlockNoise
from xaiscore._engine.threads import run_concurrently


@pytest.fixture
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("rows", [1, 2, 3, 17])
def test_large_row_sorts_equal_numpy_whatever_the_split(two_threads, rows):
    g = np.random.default_rng(rows)
    n = (1 << 19) // rows + 5  # above the parallel threshold
    values = g.integers(-50, 50, (rows, n)).astype(np.float32)  # many ties
    t = torch.from_numpy(values.copy())
    assert torch.equal(_sort.sort_values(t), torch.from_numpy(np.sort(values, axis=-1)))
    order = _sort.argsort(t)
    assert torch.equal(t.gather(1, order), torch.from_numpy(np.sort(values, axis=-1)))
    # a permutation per row
    assert torch.equal(order.sort(dim=1).values, torch.arange(n).expand(rows, n))
    keys = torch.from_numpy(g.integers(0, 2**62, (rows, n)))
    expected = np.sort(keys.numpy(), axis=-1)
    assert _sort.sort_values_(keys) is keys
    assert np.array_equal(keys.numpy(), expected)


def test_three_dimensional_and_non_contiguous_inputs(two_threads):
    g = torch.Generator().manual_seed(0)
    t = torch.rand(4, 3, 1 << 17, generator=g).transpose(0, 1)  # non-contiguous
    assert torch.equal(_sort.sort_values(t), torch.from_numpy(np.sort(t.numpy(), axis=-1)))
    assert torch.equal(t.gather(-1, _sort.argsort(t)),
                       torch.from_numpy(np.sort(t.numpy(), axis=-1)))


def test_run_concurrently_runs_every_call_and_reraises(two_threads):
    out = torch.zeros(5)
    run_concurrently([lambda i=i: out[i].fill_(i + 1) for i in range(5)])
    assert out.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]

    def fail():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_concurrently([lambda: None, fail, lambda: None])
    with pytest.raises(ValueError, match="boom"):
        run_concurrently([fail], workers=4)


@pytest.mark.parametrize("threads", [1, 2])
def test_noise_drawn_on_threads_equals_serial_draws(threads):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        noise = BlockNoise(100, (3, 5), kind="uniform", low=-1.0, high=1.0,
                           generator=torch.Generator().manual_seed(0))
        x = torch.rand(100, 3, 5, generator=torch.Generator().manual_seed(1))
        expected = x + noise(0, 100)
        for start, stop in [(0, 100), (0, 64), (64, 100), (10, 90)]:
            assert torch.equal(noise.add_to(x[start:stop], start, stop), expected[start:stop])
        assert torch.equal(noise.fill(torch.empty(100, 3, 5), workers=threads), noise(0, 100))
    finally:
        torch.set_num_threads(previous)
