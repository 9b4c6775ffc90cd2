"""The synthetic chest-radiograph dataset: determinism, ground truth, shortcut marker, balance."""

from __future__ import annotations

import pytest
import torch

from tests.harness.data_fixtures import bounding_edges, box_mask
from xaiscore import DTypeError, OptionError
from xaiscore.functional import pointing_game
from xaiscore.harness.data import collate, iterate_batches, make_synthetic_dataset
from xaiscore.harness.data.transforms import Resize


def records(dataset, indices=None):
    return [dataset[i] for i in (range(len(dataset)) if indices is None else indices)]


def test_same_seed_same_data_other_seed_other_data():
    a = collate(records(make_synthetic_dataset(12, size=(32, 32), seed=3, shortcut=0.5)))
    b = collate(records(make_synthetic_dataset(12, size=(32, 32), seed=3, shortcut=0.5)))
    c = collate(records(make_synthetic_dataset(12, size=(32, 32), seed=4, shortcut=0.5)))
    assert torch.equal(a.x, b.x) and torch.equal(a.mask, b.mask) and torch.equal(a.labels, b.labels)
    assert a.source_ids == b.source_ids
    assert not torch.equal(a.x, c.x)


def test_samples_do_not_depend_on_n_or_access_order():
    small = make_synthetic_dataset(10, size=(16, 24), seed=1)
    large = make_synthetic_dataset(150, size=(16, 24), seed=1)
    late_first = large[140]  # a second block, drawn before the first
    for i in range(10):
        assert torch.equal(small[i].image, large[i].image) and torch.equal(small[i].mask,
                                                                           large[i].mask)
    assert torch.equal(late_first.image, make_synthetic_dataset(150, size=(16, 24),
                                                                seed=1)[140].image)


@pytest.mark.parametrize("classes", [("No Finding", "Nodule"), ("No Finding", "Nodule", "Mass",
                                                                "Opacity")])
@pytest.mark.parametrize("n", [1, 7, 70])
def test_labels_are_balanced_in_every_prefix(classes, n):
    dataset = make_synthetic_dataset(n, size=(16, 16), classes=classes)
    labels = [dataset[i].label for i in range(n)]
    counts = [labels.count(k) for k in range(len(classes))]
    assert max(counts) - min(counts) <= 1
    assert all(dataset[i].finding == classes[labels[i]] for i in range(n))


def test_ground_truth_is_exact_and_boxes_are_tight():
    dataset = make_synthetic_dataset(64, size=(48, 40),
                                     classes=("No Finding", "Nodule", "Mass", "Opacity"))
    positives = 0
    for record in records(dataset):
        assert record.image.shape == (1, 48, 40) and record.image.dtype == torch.float32
        assert 0.0 <= float(record.image.min()) and float(record.image.max()) <= 1.0
        if record.label == 0:
            assert (record.boxes.shape == (0, 4)
                    and not record.mask.any() and record.meta["lesion_center"] is None)
            continue
        positives += 1
        assert (record.mask.any() and record.boxes.shape == (1, 4)
                and record.box_labels == (record.finding,))
        box = record.boxes[0].tolist()
        # the box contains the lesion mask and touches it on all four sides
        assert not (record.mask[0] & ~box_mask(48, 40, [box])).any()
        assert bounding_edges(record.mask[0]) == tuple(int(v) for v in box)
        # the lesion centre lies in a lung
        cx, cy = record.meta["lesion_center"]
        assert record.extra_masks["lungs"][0, int(cy), int(cx)]
    assert positives == 48


def test_lesions_are_brighter_than_the_negatives():
    """A classifier has something to learn: lesion pixels are brighter than negative images on
    average."""
    dataset = make_synthetic_dataset(256, size=(32, 32), seed=0, noise=0.0)
    batch = collate(records(dataset))
    positive = batch.labels == 1
    inside = batch.x[positive][batch.mask[positive]]
    assert inside.mean() > batch.x[~positive].mean() + 0.1


def test_lesion_changes_exactly_the_pixels_of_its_mask():
    """Drawing the same block with zero lesion amplitude changes nothing outside the masks."""
    from xaiscore.harness.data.synthetic import LESION_KINDS, LesionKind, _draw_block

    nodule = LESION_KINDS["Nodule"]
    options = {"size": (40, 48), "noise": 0.02, "shortcut": 0.5, "shortcut_negative": 0.0,
               "corner": "top_left"}
    with_lesions = _draw_block(5, 0, kinds=(nodule,), **options)
    flat = LesionKind(radius=nodule.radius, aspect=nodule.aspect, amplitude=(0.0, 0.0))
    without = _draw_block(5, 0, kinds=(flat,), **options)
    lesion = with_lesions["lesion"]
    assert torch.equal(with_lesions["image"][~lesion], without["image"][~lesion])
    inside, before = with_lesions["image"][lesion], without["image"][lesion]
    assert ((inside > before) | (before >= 1.0)).all() and lesion.any()


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0])
def test_shortcut_marker_appears_at_the_requested_rate(rate):
    n = 600 if 0 < rate < 1 else 64
    dataset = make_synthetic_dataset(n, size=(16, 16), shortcut=rate, seed=2)
    marked = {0: 0, 1: 0}
    for record in records(dataset):
        has = record.meta["shortcut"]
        marked[record.label] += has
        assert bool(record.extra_masks["shortcut"].any()) == has
        if has:
            x0, y0, x1, y1 = record.meta["shortcut_box"]
            assert torch.equal(record.extra_masks["shortcut"][0], box_mask(16, 16,
                                                                           [(x0, y0, x1, y1)]))
            assert record.image[record.extra_masks["shortcut"]].eq(1.0).all()
            assert not (record.extra_masks["shortcut"] & record.mask).any()
    assert marked[0] == 0
    positives = n // 2
    if rate in (0.0, 1.0):
        assert marked[1] == rate * positives
    else:  # binomial(300, 0.3): sd about 7.9; allow 4 sd
        assert abs(marked[1] - rate * positives) <= 4 * (positives * rate * (1 - rate)) ** 0.5


def test_shortcut_on_negatives_and_corner():
    dataset = make_synthetic_dataset(40, size=(32, 32), shortcut=0.0, shortcut_negative=1.0,
                                     marker_corner="bottom_right")
    for record in records(dataset):
        assert record.meta["shortcut"] == (record.label == 0)
        if record.label == 0:
            x0, y0, x1, y1 = record.meta["shortcut_box"]
            assert x1 <= 32 and y1 <= 32 and x0 > 16 and y0 > 16


def test_marker_is_what_a_pointing_game_catches():
    """An attribution that points at the marker scores 0 on the lesion, 1 on the marker mask."""
    dataset = make_synthetic_dataset(8, size=(32, 32), shortcut=1.0)
    batch = collate([r for r in records(dataset) if r.label == 1])
    attribution = batch.extra_masks["shortcut"].float()
    assert pointing_game(attribution, batch.mask).eq(0).all()
    assert pointing_game(attribution, batch.extra_masks["shortcut"]).eq(1).all()


def test_channels_transform_and_batches():
    dataset = make_synthetic_dataset(6, size=(32, 32), channels=3, transform=Resize((16, 16)))
    record = dataset[0]
    assert record.image.shape == (3, 16, 16)
    assert torch.equal(record.image[0], record.image[2])
    assert record.mask.shape == (1, 16, 16)
    assert [len(b) for b in iterate_batches(dataset, 4)] == [4, 2]


def test_index_errors_and_bad_options():
    dataset = make_synthetic_dataset(3, size=(8, 8))
    assert torch.equal(dataset[-1].image, dataset[2].image)
    with pytest.raises(IndexError):
        dataset[3]
    with pytest.raises(DTypeError):
        dataset[1.0]
    for bad in ({"size": (4, 8)}, {"shortcut": 1.5}, {"classes": ("No Finding", "Tumour")},
                {"classes": ("No Finding",)}, {"channels": 2}, {"marker_corner": "middle"}):
        with pytest.raises(OptionError):
            make_synthetic_dataset(3, **bad)
    with pytest.raises(OptionError):
        make_synthetic_dataset(0)
    with pytest.raises(DTypeError):
        make_synthetic_dataset(3, seed=1.5)
