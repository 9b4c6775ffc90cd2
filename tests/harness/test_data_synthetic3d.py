"""The 3-D phantom: determinism, balance, exact masks and boxes, the shortcut marker; the 3-D CNN
learns it."""

from __future__ import annotations

import pytest
import torch

from xaiscore import DTypeError, OptionError
from xaiscore.harness.data import open_dataset
from xaiscore.harness.data.synthetic3d import make_synthetic_volumes


def test_samples_depend_only_on_seed_and_index():
    small, large = make_synthetic_volumes(3, size=16, seed=5), make_synthetic_volumes(9, size=16,
                                                                                      seed=5)
    for i in range(3):
        assert torch.equal(small[i].image, large[i].image) and small[i].label == large[i].label
    assert not torch.equal(make_synthetic_volumes(3, size=16, seed=6)[0].image, small[0].image)
    labels = [large[i].label for i in range(8)]
    assert all(labels[2 * k] + labels[2 * k + 1] == 1 for k in range(4))  # each pair: one of each


def test_lesion_mask_is_exact_and_the_box_is_tight():
    ds = make_synthetic_volumes(8, size=(20, 16, 24), seed=1)
    clean = make_synthetic_volumes(8, size=(20, 16, 24), seed=1, noise=0.0)
    for i in range(8):
        r = clean[i]
        assert r.image.shape == (1, 20, 16, 24) and r.image.min() >= 0 and r.image.max() <= 1
        if r.label == 0:
            assert not r.mask.any() and r.boxes.shape == (0, 6)
            continue
        mask = r.mask[0]
        z, y, x = mask.nonzero().T
        assert r.boxes.tolist() == [[float(x.min()), float(y.min()), float(z.min()),
                                     float(x.max()) + 1,
                                     float(y.max()) + 1, float(z.max()) + 1]]
        cx, cy, cz = r.meta["lesion_center"]
        assert mask[int(cz), int(cy), int(cx)]  # the centre is inside the lesion
        assert bool((mask & r.extra_masks["lungs"][0]).any())
        assert ds[i].label == r.label and torch.equal(ds[i].mask, r.mask)
        # the lesion is the brightest structure: its peak beats every voxel outside it
        assert float(r.image[0][mask].max()) > float(r.image[0][~mask].max())


def test_shortcut_marker_and_options():
    ds = make_synthetic_volumes(4, size=16, shortcut=1.0, shortcut_negative=0.0)
    for i in range(4):
        r = ds[i]
        marked = bool(r.extra_masks["shortcut"].any())
        assert marked == (r.label == 1) == r.meta["shortcut"]
        if marked:
            x0, y0, z0, x1, y1, z1 = (int(v) for v in r.meta["shortcut_box"])
            assert bool((r.image[0, z0:z1, y0:y1, x0:x1] == 1.0).all())
    with pytest.raises(OptionError, match="at least 12"):
        make_synthetic_volumes(2, size=8)
    with pytest.raises(DTypeError, match="size"):
        make_synthetic_volumes(2, size=(16, 16))
    with pytest.raises(OptionError, match="shortcut"):
        make_synthetic_volumes(2, shortcut=2.0)
    assert open_dataset("synthetic3d", n=2, size=16)[1].image.shape == (1, 16, 16, 16)


@pytest.mark.slow
def test_the_small_3d_cnn_learns_the_phantom():
    from xaiscore.harness.models import SmallCNN, accuracy, stack_dataset, train_model

    torch.manual_seed(0)
    train = make_synthetic_volumes(128, size=24, seed=1)
    x, _ = stack_dataset(train)
    model = SmallCNN(1, 2, width=4, spatial_dims=3, input_mean=float(x.mean()),
                     input_std=float(x.std()))
    train_model(model, train, epochs=12, batch_size=16, lr=1e-2, stop_at_accuracy=0.98)
    assert accuracy(model, make_synthetic_volumes(32, size=24, seed=2)) >= 0.9
