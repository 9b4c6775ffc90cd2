"""Prototype maps and the prototype evaluation of Huang et al. (2023) against references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tests.explainer_helpers import blob_data, trained_protopnet
from tests.reference import explainers as ref
from xaiscore._checks import DTypeError, OptionError, ShapeError
from xaiscore._engine.batching import ModelOutputError
from xaiscore.explainers import (
    ModelStructureError,
    PrototypeExplainer,
    check_explanation,
    make_explainer,
    prototype_box_hits,
    prototype_consistency,
    prototype_explainer,
    prototype_peaks,
    prototype_stability,
    stability_noise,
)
from xaiscore.explainers.tiny_models import TinyProtoPNet


@pytest.fixture(scope="module")
def proto():
    model, accuracy = trained_protopnet()
    assert accuracy > 0.9
    return model


@pytest.fixture(scope="module")
def data():
    return blob_data(8, 16, seed=4, dtype=torch.float64)


def test_the_hook_reads_the_prototype_layers_similarity_maps(proto, data):
    x, _, _ = data
    maps = prototype_explainer(proto).similarity_maps(x)
    with torch.no_grad():
        features = proto.add_on(proto.backbone((x - proto.input_mean) / proto.input_std))
    flat = features.flatten(2).detach().numpy()
    prototypes = proto.prototype_layer.prototypes.detach().numpy()
    for i in range(2):  # log((d + 1) / (d + 1e-4)) of squared L2 distances, position by position
        for j in range(prototypes.shape[0]):
            d = np.maximum(((flat[i] - prototypes[j][:, None]) ** 2).sum(0), 0)
            np.testing.assert_allclose(
                maps[i, j].flatten().numpy(), np.log((d + 1) / (d + 1e-4)), rtol=1e-9
            )
    with torch.no_grad():
        logits = proto(x)
        pooled = maps.flatten(2).amax(2) @ proto.last_layer.weight.t()
    np.testing.assert_allclose(logits.numpy(), pooled.numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    "top_k, candidates",
    [(3, "positive"), (1, "positive"), (None, "positive"), (2, "all"), (None, "all"), (10, "all")],
)
def test_prototype_maps_match_the_reference(proto, data, top_k, candidates):
    x, y, _ = data
    explain = prototype_explainer(proto, top_k=top_k, candidates=candidates)
    a = explain(x, y)
    assert a.shape == (8, 1, 16, 16) and a.dtype == torch.float64 and not a.is_inference()
    check_explanation(a, x)
    maps = explain.similarity_maps(x).numpy()
    weights = proto.last_layer.weight.detach().numpy()
    for i in range(8):
        expected = ref.prototype_map(
            maps[i], weights, int(y[i]), top_k=top_k, candidates=candidates, size=(16, 16)
        )
        np.testing.assert_allclose(a[i, 0].numpy(), expected, rtol=1e-10, atol=1e-12)


@given(
    maps=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=2 * 5 * 9, max_size=2 * 5 * 9),
    weights=st.lists(st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0]), min_size=15, max_size=15),
    top_k=st.one_of(st.none(), st.integers(1, 6)),
    candidates=st.sampled_from(["positive", "all"]),
)
@settings(max_examples=30)
def test_prototype_maps_with_ties_and_any_weights(maps, weights, top_k, candidates):
    """Ties in the contributions go to the lower prototype index; zero and negative weights too."""
    similarity = torch.tensor(maps, dtype=torch.float64).reshape(2, 5, 3, 3)
    w = torch.tensor(weights, dtype=torch.float64).reshape(3, 5)
    x = torch.zeros(2, 1, 6, 6, dtype=torch.float64)
    target = torch.tensor([0, 2])
    explain = prototype_explainer(
        nn.Identity(),
        top_k=top_k,
        candidates=candidates,
        similarity_fn=lambda m, t: similarity,
        class_weights=w,
    )
    a = explain(x, target)
    for i in range(2):
        expected = ref.prototype_map(
            similarity[i].numpy(),
            w.numpy(),
            int(target[i]),
            top_k=top_k,
            candidates=candidates,
            size=(6, 6),
        )
        np.testing.assert_allclose(a[i, 0].numpy(), expected, rtol=1e-12, atol=1e-12)


def test_prototype_maps_follow_the_lesion_and_batches(proto):
    x, y, boxes = blob_data(16, 16, seed=11, dtype=torch.float64)
    explain = prototype_explainer(proto)
    a = explain(x, y)
    alone = torch.cat([explain(x[i : i + 1], y[i : i + 1]) for i in range(16)])
    np.testing.assert_allclose(alone.numpy(), a.numpy(), rtol=1e-12, atol=1e-14)
    inside = []
    for i in torch.nonzero(y == 1).flatten().tolist():
        x0, y0, x1, y1 = (int(v) for v in boxes[i, 0])
        region = torch.zeros(16, 16, dtype=torch.bool)
        region[y0:y1, x0:x1] = True
        inside.append(bool(a[i, 0][region].mean() > a[i, 0][~region].mean()))
    assert np.mean(inside) >= 0.75


@pytest.mark.parametrize("spatial_dims, size", [(1, (16,)), (3, (8, 8, 8))])
def test_one_and_three_dimensional_prototype_networks(spatial_dims, size):
    model = TinyProtoPNet(2, 3, prototypes_per_class=2, spatial_dims=spatial_dims).double().eval()
    x = torch.rand((2, 2) + size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    explain = prototype_explainer(model, top_k=2)
    a = explain(x, torch.tensor([0, 2]))
    assert a.shape == (2, 1) + size
    maps = explain.similarity_maps(x).numpy()
    for i, target in enumerate((0, 2)):
        expected = ref.prototype_map(
            maps[i],
            model.last_layer.weight.detach().numpy(),
            target,
            top_k=2,
            candidates="positive",
            size=size,
        )
        np.testing.assert_allclose(a[i, 0].numpy(), expected, rtol=1e-10, atol=1e-12)


def test_upsampling_modes_and_names(proto, data):
    x, y, _ = data
    nearest = prototype_explainer(proto, upsample="nearest")(x, y)
    assert torch.equal(
        nearest[:, :, ::4, ::4].repeat_interleave(4, 2).repeat_interleave(4, 3), nearest
    )
    bicubic = prototype_explainer(proto, upsample="bicubic")(x, y)
    assert bicubic.shape == nearest.shape and not torch.equal(bicubic, nearest)
    by_tensor = prototype_explainer(proto, class_weights=proto.last_layer.weight.detach().clone())(
        x, y
    )
    assert torch.equal(by_tensor, prototype_explainer(proto)(x, y))
    built = make_explainer("Prototype", proto, top_k=1, seed=0, generator=None)  # both ignored
    assert isinstance(built, PrototypeExplainer) and "top_k=1" in repr(built)


def test_errors_name_what_the_model_lacks(proto, data):
    x, y, _ = data
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
    with pytest.raises(ModelStructureError, match=r"'prototype_layer'.*similarity_fn"):
        prototype_explainer(cnn)
    with pytest.raises(ModelStructureError, match=r"'last_layer'.*class_weights"):
        prototype_explainer(cnn, similarity_fn=lambda m, t: t)
    with pytest.raises(ModelStructureError, match="weight"):
        prototype_explainer(proto, class_weights="add_on")  # a Sequential has no weight
    with pytest.raises(ModelStructureError, match=r"\(K, 6\)"):
        prototype_explainer(proto, class_weights=torch.ones(2, 5, dtype=torch.float64))(x, y)
    with pytest.raises(ModelOutputError, match="similarity maps"):
        prototype_explainer(proto, similarity_fn=lambda m, t: t.flatten(1))(x, y)
    with pytest.raises(ModelOutputError, match="the prototype layer 'last_layer'"):
        prototype_explainer(
            proto, prototype_layer="last_layer", class_weights=torch.ones(2, 2, dtype=torch.float64)
        )(x, y)
    with pytest.raises(OptionError, match="top_k"):
        prototype_explainer(proto, top_k=0)
    with pytest.raises(DTypeError, match="top_k"):
        prototype_explainer(proto, top_k=1.5)
    with pytest.raises(OptionError, match="candidates"):
        prototype_explainer(proto, candidates="negative")
    with pytest.raises(DTypeError, match="similarity_fn"):
        prototype_explainer(proto, similarity_fn="maps")
    with pytest.raises(DTypeError, match="class_weights"):
        prototype_explainer(proto, class_weights=3)


# --- evaluation --------------------------------------------------------------------------------


def _peaks_reference(maps: np.ndarray, size) -> np.ndarray:
    peaks = np.zeros(maps.shape[:2] + (2,), dtype=np.int64)
    for i in range(maps.shape[0]):
        for j in range(maps.shape[1]):
            up = ref.linear_resize(maps[i, j], size)
            peaks[i, j] = np.unravel_index(int(np.argmax(up)), size)  # the first maximum, row-major
    return peaks


def test_peaks_are_the_first_maximum_of_the_upsampled_map(proto, data):
    x, _, _ = data
    maps = prototype_explainer(proto).similarity_maps(x)
    peaks = prototype_peaks(maps, (16, 16), upsample_mode="linear").numpy()
    expected = _peaks_reference(maps.numpy(), (16, 16))
    for i, j in np.ndindex(*peaks.shape[:2]):
        up = ref.linear_resize(maps[i, j].numpy(), (16, 16))
        assert (
            up[tuple(peaks[i, j])] >= up.max() - 1e-12
        )  # a maximum (edge pixels may tie up to rounding)
        if np.sum(up >= up.max() - 1e-9) == 1:
            assert tuple(peaks[i, j]) == tuple(expected[i, j])
    ties = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    assert prototype_peaks(ties, (3, 3)).tolist() == [[[0, 0]]]
    assert prototype_peaks(maps, (16, 16)).shape == (8, 6, 2)


_box = st.one_of(
    st.just((math.nan,) * 4),
    st.tuples(st.floats(0, 9), st.floats(0, 9), st.floats(0, 4), st.floats(0, 4)).map(
        lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3])
    ),
)


@given(
    peaks=st.lists(st.integers(0, 9), min_size=6 * 3 * 2, max_size=6 * 3 * 2),
    noisy=st.lists(st.integers(0, 9), min_size=6 * 3 * 2, max_size=6 * 3 * 2),
    boxes=st.lists(_box, min_size=6 * 2, max_size=6 * 2),
    labels=st.lists(st.integers(0, 1), min_size=6, max_size=6),
    classes=st.lists(st.integers(0, 1), min_size=3, max_size=3),
    by_class=st.booleans(),
    half_size=st.integers(0, 2),
    regions=st.sampled_from(["union", "each"]),
    threshold=st.sampled_from([0.0, 0.5, 0.8, 1.0]),
)
@settings(max_examples=40)
def test_consistency_and_stability_match_the_reference(
    peaks, noisy, boxes, labels, classes, by_class, half_size, regions, threshold
):
    peaks_t = torch.tensor(peaks).reshape(6, 3, 2)
    noisy_t = torch.tensor(noisy).reshape(6, 3, 2)
    boxes_t = torch.tensor(boxes, dtype=torch.float64).reshape(6, 2, 4)
    labels_t = torch.tensor(labels) if by_class else None
    classes_t = torch.tensor(classes) if by_class else None
    result = prototype_consistency(
        peaks_t,
        boxes_t,
        labels=labels_t,
        prototype_classes=classes_t,
        threshold=threshold,
        half_size=half_size,
        regions=regions,
    )
    score, per_prototype = ref.consistency(
        peaks_t.numpy(),
        boxes_t.numpy(),
        labels if by_class else None,
        classes,
        (10, 10),
        threshold=threshold,
        half_size=half_size,
        regions=regions,
    )
    np.testing.assert_allclose(result.per_prototype.numpy(), per_prototype, equal_nan=True)
    np.testing.assert_allclose(result.score.item(), score, equal_nan=True)
    stable = prototype_stability(
        peaks_t,
        noisy_t,
        boxes_t,
        labels=labels_t,
        prototype_classes=classes_t,
        half_size=half_size,
        regions=regions,
    )
    score, per_prototype = ref.stability(
        peaks_t.numpy(),
        noisy_t.numpy(),
        boxes_t.numpy(),
        labels if by_class else None,
        classes,
        (10, 10),
        half_size=half_size,
        regions=regions,
    )
    np.testing.assert_allclose(
        stable.per_prototype.numpy(), per_prototype, rtol=1e-12, equal_nan=True
    )
    np.testing.assert_allclose(stable.score.item(), score, rtol=1e-12, equal_nan=True)
    hits = prototype_box_hits(peaks_t, boxes_t, half_size=half_size)
    expected_hits, _ = ref.hit_vectors(
        peaks_t.numpy(), boxes_t.numpy(), (10, 10), half_size, "each"
    )
    np.testing.assert_array_equal(hits.numpy(), expected_hits)


def test_evaluation_edge_cases_and_the_trained_network(proto):
    peaks = torch.tensor([[[1, 1]], [[1, 1]]])
    empty = torch.full((2, 1, 4), math.nan, dtype=torch.float64)
    result = prototype_consistency(peaks, empty)
    assert math.isnan(result.score.item()) and math.isnan(result.per_prototype[0].item())
    assert math.isnan(prototype_stability(peaks, peaks, empty).score.item())
    box = torch.tensor([[[0.0, 0.0, 2.0, 2.0]], [[0.0, 0.0, 2.0, 2.0]]], dtype=torch.float64)
    assert prototype_consistency(peaks, box, threshold=1.0).score.item() == 1.0
    assert (
        prototype_consistency(peaks, box.squeeze(1)).score.item() == 1.0
    )  # (N, 4) = one box per image
    assert prototype_stability(peaks, peaks, box).score.item() == 1.0
    x, y, boxes = blob_data(32, 16, seed=2, dtype=torch.float64)
    explain = prototype_explainer(proto)
    clean = prototype_peaks(explain.similarity_maps(x), (16, 16))
    noisy = prototype_peaks(explain.similarity_maps(stability_noise(x, seed=0)), (16, 16))
    classes = proto.prototype_class_identity.argmax(1)
    consistency = prototype_consistency(
        clean, boxes, labels=y, prototype_classes=classes, threshold=0.5, half_size=1
    )
    stability = prototype_stability(clean, noisy, boxes, labels=y, prototype_classes=classes)
    assert torch.isnan(consistency.per_prototype[:3]).all()  # class 0 has no lesion boxes
    assert 0 <= consistency.score.item() <= 1 and 0 <= stability.score.item() <= 1
    assert (
        stability.score.item() > 0.5
    )  # the lesion prototypes stay on or off the lesion under faint noise


def test_evaluation_errors_and_noise():
    peaks = torch.zeros(2, 3, 2, dtype=torch.long)
    boxes = torch.zeros(2, 1, 4, dtype=torch.float64)
    with pytest.raises(ShapeError, match="peaks"):
        prototype_box_hits(peaks.float(), boxes)
    with pytest.raises(ShapeError, match="boxes"):
        prototype_box_hits(peaks, torch.zeros(3, 1, 4))
    with pytest.raises(OptionError, match="half_size"):
        prototype_box_hits(peaks, boxes, half_size=-1)
    with pytest.raises(OptionError, match="both"):
        prototype_consistency(peaks, boxes, labels=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ShapeError, match="prototype_classes"):
        prototype_consistency(
            peaks,
            boxes,
            labels=torch.zeros(2, dtype=torch.long),
            prototype_classes=torch.zeros(2, dtype=torch.long),
        )
    with pytest.raises(OptionError, match="threshold"):
        prototype_consistency(peaks, boxes, threshold=1.5)
    with pytest.raises(OptionError, match="regions"):
        prototype_consistency(peaks, boxes, regions="all")
    with pytest.raises(ShapeError, match="noisy_peaks"):
        prototype_stability(peaks, peaks[:1], boxes)
    with pytest.raises(ShapeError, match="similarity_maps"):
        prototype_peaks(torch.zeros(2, 3, 4), (8, 8))
    x = torch.zeros(1000)
    noise = stability_noise(x, generator=torch.Generator().manual_seed(1))
    clipped = (noise.abs() == 0.25).double().mean().item()
    assert (
        noise.abs().max() <= 0.25 and abs(clipped - math.erfc(1.25 / math.sqrt(2))) < 0.04
    )  # P(|z| > 1.25)
    assert torch.equal(noise, stability_noise(x, seed=1))
    with pytest.raises(DTypeError, match="floating"):
        stability_noise(x.long())
    with pytest.raises(OptionError, match="at most one"):
        stability_noise(x, seed=1, generator=torch.Generator())
