"""Mosaic protocols: the grid pointing game and Focus against the per-tile reference, the mosaic
builder's guarantees, and parity of Focus with Quantus."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.reference import mosaic as ref
from xaiscore._checks import DTypeError, MaskError, NonFiniteError, OptionError, ShapeError
from xaiscore.functional import focus, grid_pointing_game, make_mosaics, tile_index
from xaiscore.testing import strategies as xst


@st.composite
def mosaic_maps(draw, grid=None):
    n = draw(st.integers(2, 3)) if grid is None else grid
    batch = draw(st.integers(1, 4))
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))  # sizes n need not divide
    channels = draw(st.sampled_from([1, 3]))
    a = draw(xst.attributions(shape=(batch, channels, height, width), ties=st.booleans(),
                              constant=st.booleans()))
    flags = draw(st.lists(st.lists(st.booleans(), min_size=n * n, max_size=n * n), min_size=batch,
                          max_size=batch))
    return a, torch.tensor(flags, dtype=torch.bool), n


def _expected(a, flags, n, reduce):
    return [ref.positive_share(a[i].numpy(), flags[i].tolist(), n, reduce)
            for i in range(a.shape[0])]


@given(mosaic_maps(), st.sampled_from(["sum", None]))
def test_grid_pointing_game_matches_the_per_tile_reference(case, reduce):
    a, flags, n = case
    got = grid_pointing_game(a, flags, reduce_channels=reduce)
    np.testing.assert_allclose(got.numpy(), _expected(a, flags, n, reduce), rtol=1e-12, atol=1e-12)
    assert got.dtype == a.dtype and got.shape == (a.shape[0],)


@given(mosaic_maps(grid=2), st.sampled_from([None, "sum"]))
def test_focus_matches_the_reference_on_2x2_mosaics(case, reduce):
    a, flags, _ = case
    got = focus(a, flags, reduce_channels=reduce)
    np.testing.assert_allclose(got.numpy(), _expected(a, flags, 2, reduce), rtol=1e-12, atol=1e-12)


@given(st.integers(1, 12), st.integers(1, 12), st.integers(2, 4))
def test_tile_index_matches_the_reference_slices(height, width, n):
    index = tile_index((height, width), n)
    expected = np.full((height, width), -1)
    for k, (rows, cols) in enumerate(ref.tile_slices(height, width, n)):
        expected[rows, cols] = k
    np.testing.assert_array_equal(index.numpy(), expected)


def test_a_tile_index_equals_its_one_hot_flags():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 2, 9, 9, generator=g, dtype=torch.float64)
    index = torch.tensor([0, 4, 8, 2, 5])
    flags = torch.nn.functional.one_hot(index, 9).bool()
    assert torch.equal(grid_pointing_game(a, index, grid=3), grid_pointing_game(a, flags))
    assert torch.equal(grid_pointing_game(a[:, :, :8, :8], index[:2].remainder(4)[:1].expand(5)),
                       grid_pointing_game(a[:, :, :8, :8],
                                          torch.zeros(5, 4, dtype=torch.bool).index_fill_(
                           1, index[:1].remainder(4), True)))


def test_properties_map_on_the_target_scores_one_outside_zero_uniform_chance():
    for n in (2, 3):
        side = 4 * n
        tiles = torch.arange(5) % (n * n)
        flags = torch.nn.functional.one_hot(tiles, n * n).bool()
        target_map = flags[:, tile_index((side, side), n)].unsqueeze(1).double()
        assert torch.equal(grid_pointing_game(target_map, tiles, grid=n),
                           torch.ones(5, dtype=torch.float64))
        assert torch.equal(grid_pointing_game(1.0 - target_map, tiles, grid=n),
                           torch.zeros(5, dtype=torch.float64))
        uniform = torch.full((5, 1, side, side), 0.3, dtype=torch.float64)
        torch.testing.assert_close(grid_pointing_game(uniform, tiles, grid=n),
                                   torch.full((5,), 1 / n**2, dtype=torch.float64))
    # Focus: the two target tiles, chance 1/2
    flags = torch.tensor([[True, False, False, True]])
    assert focus(torch.ones(1, 3, 6, 6), flags).item() == pytest.approx(0.5)
    # negative attribution in the target does not count; it is not subtracted either
    a = torch.zeros(1, 1, 4, 4)
    a[0, 0, 0, 0], a[0, 0, 3, 3], a[0, 0, 1, 1] = 2.0, 1.0, -5.0
    assert focus(a, torch.tensor([[True, False, False, False]])).item() == pytest.approx(2 / 3)


def test_nan_cases_one_pixel_maps_and_batch_of_one():
    zeros = torch.zeros(2, 1, 4, 4)
    assert torch.isnan(grid_pointing_game(zeros, torch.tensor([0, 3]))).all()
    negative = -torch.rand(1, 1, 4, 4)
    assert torch.isnan(focus(negative, torch.tensor([[True, True, False, False]]))).all()
    a = torch.rand(1, 1, 4, 4) + 0.1
    assert torch.isnan(focus(a, torch.zeros(1, 4, dtype=torch.bool))).all()  # no target tile
    one_pixel = torch.ones(3, 1, 1, 1)  # the pixel lies in the last tile of every grid
    assert grid_pointing_game(one_pixel, torch.tensor([3, 0, 1])).tolist() == [1.0, 0.0, 0.0]


def test_batch_split_invariance_and_float32_agreement():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(6, 3, 10, 10, generator=g, dtype=torch.float64)
    flags = torch.rand(6, 4, generator=g) > 0.5
    whole = grid_pointing_game(a, flags)
    parts = torch.cat([grid_pointing_game(a[i:i + 2], flags[i:i + 2]) for i in range(0, 6, 2)])
    assert torch.equal(whole.nan_to_num(-1.0), parts.nan_to_num(-1.0)) and torch.isnan(whole).any()
    torch.testing.assert_close(grid_pointing_game(a.float(), flags).double(), whole, rtol=1e-5,
                               atol=1e-6,
                               equal_nan=True)


def test_bad_inputs_raise_typed_errors():
    a = torch.rand(2, 1, 4, 4)
    with pytest.raises(ShapeError, match="n x n"):
        grid_pointing_game(a, torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ShapeError, match="grid=3"):
        grid_pointing_game(a, torch.ones(2, 4, dtype=torch.bool), grid=3)
    with pytest.raises(ShapeError, match=r"\(2, n\^2\) flags"):
        grid_pointing_game(a, torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(OptionError, match=r"\[0, 4\)"):
        grid_pointing_game(a, torch.tensor([0, 4]))
    with pytest.raises(MaskError, match="0 or 1"):
        focus(a, torch.tensor([[0, 2, 0, 0], [1, 0, 0, 0]]))
    with pytest.raises(DTypeError, match="tiles"):
        focus(a, torch.rand(2, 4))
    with pytest.raises(ShapeError, match="2 spatial"):
        focus(torch.rand(2, 1, 4, 4, 4), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ShapeError, match="flags per row for grid=2"):
        focus(a, torch.ones(2, 9, dtype=torch.bool))
    bad = a.clone()
    bad[0, 0, 0, 0] = math.nan
    with pytest.raises(NonFiniteError):
        focus(bad, torch.ones(2, 4, dtype=torch.bool))


# --- the mosaic builder ---------------------------------------------------------------------------


def _dataset(classes=6, per_class=3, size=4):
    """Images whose class is the bright channel; the model reads it off (confident), except that the
    last image of every class is dim (not confident)."""
    images = torch.zeros(classes * per_class, classes, size, size)
    labels = torch.arange(classes).repeat_interleave(per_class)
    images[torch.arange(classes * per_class), labels] = 1.0
    images[per_class - 1::per_class] *= 0.05
    images += 0.01 * torch.arange(classes * per_class).reshape(-1, 1, 1, 1)  # every image distinct
    return images, labels


def model(x):
    return 20.0 * x.mean(dim=(2, 3))


@pytest.mark.parametrize("grid, target_tiles", [(2, 1), (2, 2), (2, 3), (3, 1), (3, 2)])
def test_mosaics_tile_confident_images_of_different_classes(grid, target_tiles):
    images, labels = _dataset(classes=10, per_class=4)
    m = make_mosaics(model, images, labels, num_mosaics=12, grid=grid, target_tiles=target_tiles,
                     min_confidence=0.9, seed=4)
    cells = grid * grid
    assert m.x.shape == (12, 10, grid * 4, grid * 4) and m.tile_classes.shape == (12, cells)
    probs = model(images).softmax(1)
    for i in range(12):
        indices = m.tile_indices[i].tolist()
        assert len(set(indices)) == cells  # no image twice in a mosaic
        assert all(probs[k, labels[k]] >= 0.9 and probs[k].argmax() == labels[k] for k in indices)
        assert m.tile_classes[i].tolist() == labels[indices].tolist()
        targets = [k for k in range(cells) if m.tile_classes[i, k] == m.target[i]]
        assert len(targets) == target_tiles and m.tiles[i].nonzero().squeeze(1).tolist() == targets
        others = [c for c in m.tile_classes[i].tolist() if c != m.target[i]]
        assert len(set(others)) == len(others)  # the other tiles show different classes
        assert m.target_tile[i].item() == targets[0]
        for k, (rows, cols) in enumerate(ref.tile_slices(grid * 4, grid * 4, grid)):
            assert torch.equal(m.x[i, :, rows, cols], images[indices[k]])
            assert bool(m.mask[i, 0, rows, cols].all()) == bool(m.tiles[i, k])
            assert bool(m.tile_masks[k, rows, cols].all()) and int(m.tile_masks[k].sum()) == 16
    # a map equal to the target tiles' mask scores 1
    assert torch.equal(grid_pointing_game(m.mask.double(), m.tiles),
                       torch.ones(12, dtype=torch.float64))


def test_mosaics_are_deterministic_and_follow_the_generator():
    images, labels = _dataset()
    one = make_mosaics(model, images, labels, num_mosaics=8, min_confidence=0.9, seed=7)
    two = make_mosaics(model, images, labels, num_mosaics=8, min_confidence=0.9,
                       generator=torch.Generator().manual_seed(7))
    three = make_mosaics(model, images, labels, num_mosaics=8, min_confidence=0.9, seed=8)
    assert all(torch.equal(p, q) for p, q in zip(one, two))
    assert not torch.equal(one.tile_indices, three.tile_indices)
    chunked = make_mosaics(model, images, labels, num_mosaics=8, min_confidence=0.9, seed=7,
                           max_batch_size=1)
    assert all(torch.equal(p, q) for p, q in zip(one, chunked))


def test_mosaics_use_predictions_without_labels_and_skip_wrong_labels():
    images, labels = _dataset(classes=5, per_class=2)
    wrong = labels.clone()
    wrong[0] = 4  # the model predicts class 0 for image 0: not usable with this label
    m = make_mosaics(model, images, wrong, num_mosaics=20, min_confidence=0.5, seed=0)
    assert 0 not in m.tile_indices.tolist()
    unlabelled = make_mosaics(model, images, None, num_mosaics=20, min_confidence=0.5, seed=0)
    assert (unlabelled.tile_classes.tolist()
            == model(images).argmax(1)[unlabelled.tile_indices].tolist())


def test_target_classes_restrict_the_targets_not_the_other_tiles():
    images, labels = _dataset(classes=5, per_class=3)
    m = make_mosaics(model, images, labels, num_mosaics=30, min_confidence=0.9, seed=2,
                     target_classes=[1, 3])
    assert set(m.target.tolist()) == {1, 3}
    others = m.tile_classes[~m.tiles]
    assert 0 in others.tolist() and 4 in others.tolist()  # the other classes still fill tiles
    everything = make_mosaics(model, images, labels, num_mosaics=30, min_confidence=0.9, seed=2)
    assert set(everything.target.tolist()) == {0, 1, 2, 3, 4}
    with pytest.raises(OptionError, match=r"`target_classes` to be class indices in \[0, 5\)"):
        make_mosaics(model, images, labels, num_mosaics=2, target_classes=[5])
    with pytest.raises(OptionError, match=r"`target_classes`"):
        make_mosaics(model, images, labels, num_mosaics=2, target_classes=[])
    # class 2 has two confident images, Focus needs two of the target: fine; three: not
    with pytest.raises(OptionError, match=r"targets among classes \[2\]"):
        make_mosaics(model, images, labels, num_mosaics=2, target_tiles=3, min_confidence=0.9,
                     target_classes=[2])


def test_mosaic_builder_errors():
    images, labels = _dataset(classes=3)
    with pytest.raises(OptionError, match="at least 4 classes"):
        make_mosaics(model, images, labels, num_mosaics=2, min_confidence=0.9)
    with pytest.raises(OptionError, match="target_tiles"):
        make_mosaics(model, images, labels, num_mosaics=2, target_tiles=4)
    # two confident images per class only
    with pytest.raises(OptionError, match="one with 3 images"):
        make_mosaics(model, images, labels, num_mosaics=2, target_tiles=3, min_confidence=0.9)
    with pytest.raises(OptionError, match="at most one of"):
        make_mosaics(model, images, labels, num_mosaics=2, seed=1, generator=torch.Generator())
    with pytest.raises(ShapeError, match="labels"):
        make_mosaics(model, images, labels[:-1], num_mosaics=2)
    with pytest.raises(DTypeError, match="labels"):
        make_mosaics(model, images, labels.float(), num_mosaics=2)
    with pytest.raises(OptionError, match="labels"):
        make_mosaics(model, images, labels + 10, num_mosaics=2)
    with pytest.raises(ShapeError, match="images"):
        make_mosaics(model, images[:, :, 0], labels, num_mosaics=2)


# --- Quantus parity: Focus on mosaics of odd and non-square sizes ---------------------------------


@pytest.mark.quantus
@pytest.mark.parametrize("height, width", [(6, 10), (5, 7), (9, 4)])
def test_focus_kernel_equals_quantus_focus(height, width):
    quantus = pytest.importorskip("quantus")
    g = torch.Generator().manual_seed(height * width)
    a = torch.randn(6, 3, height, width, generator=g, dtype=torch.float64)
    flags = torch.stack([torch.randperm(4, generator=g) < 2 for _ in range(6)])
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * height * width, 2))
    theirs = quantus.Focus(disable_warnings=True, normalise=False)(
        net, torch.zeros_like(a).numpy(), np.zeros(6, int), a.numpy(),
        custom_batch=flags.int().numpy(),
        device="cpu")
    np.testing.assert_allclose(focus(a, flags).numpy(), theirs, rtol=1e-7, atol=1e-8)
