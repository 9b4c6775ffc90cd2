"""Box-level localization kernels against the per-sample, per-threshold references (scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst

from tests.reference import box_localization as ref
from xaiscore._checks import DTypeError, MaskError, OptionError, ShapeError
from xaiscore.functional import (
    box_accuracy,
    boxes_to_mask,
    mask_to_boxes,
    max_box_accuracy,
    max_box_accuracy_from_statistics,
    max_box_accuracy_statistics,
    pxap,
    pxap_from_counts,
    pxap_statistics,
    relevance_rank_accuracy,
    top_k_intersection,
)

VALUES = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 3.0])  # ties at and between thresholds


@st.composite
def maps_and_boxes(draw, dims: int | None = None, max_boxes: int = 3):
    dims = draw(st.integers(1, 3)) if dims is None else dims
    side = 8 if dims < 3 else 5
    spatial = tuple(draw(st.integers(1, side)) for _ in range(dims))
    batch = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["ties", "continuous", "constant"]))
    if kind == "ties":
        a = draw(npst.arrays(np.float64, (batch, 1) + spatial, elements=VALUES))
    elif kind == "continuous":
        a = draw(npst.arrays(np.float64, (batch, 1) + spatial, elements=st.floats(-2, 2, width=32)))
    else:
        a = np.broadcast_to(draw(st.floats(-2, 2)), (batch, 1) + spatial).copy()
    boxes = []
    for _ in range(batch):
        rows = []
        for _ in range(draw(st.integers(0, max_boxes))):
            low, high = [], []
            for size in spatial[::-1]:  # x first: the last axis
                start = draw(st.integers(0, size - 1))
                low.append(float(start))
                # may be empty, may touch the border
                high.append(float(draw(st.integers(start, size))))
            rows.append(low + high)
        boxes.append(torch.tensor(rows, dtype=torch.float64).reshape(len(rows), 2 * dims))
    return torch.from_numpy(a), boxes


def gt_list(boxes: torch.Tensor) -> list[tuple[float, ...]]:
    return [tuple(row) for row in boxes.tolist()]


CONNECTIVITY = st.sampled_from(["full", "face", "edge"])


@given(data=maps_and_boxes(), version=st.sampled_from([1, 2]), connectivity=CONNECTIVITY,
       thresholds=st.sampled_from([4, 10, [0.0, 0.1, 0.25, 0.5, 0.75, 1.0]]))
def test_max_box_accuracy_matches_the_per_threshold_protocol(data, version, connectivity,
                                                             thresholds):
    a, boxes = data
    full = connectivity
    stats = max_box_accuracy_statistics(a, boxes=boxes, thresholds=thresholds, version=version,
                                        connectivity=connectivity)
    taus = stats.thresholds.tolist()
    deltas = stats.iou_thresholds.tolist()
    assert deltas == ([0.5] if version == 1 else [0.3, 0.5, 0.7])
    for b in range(a.shape[0]):
        expected = ref.max_box_correct(a[b, 0].numpy(), gt_list(boxes[b]), taus, deltas, version,
                                       full)
        np.testing.assert_array_equal(stats.correct[b].numpy(), expected)
        assert stats.valid[b].item() == (boxes[b].shape[0] > 0)
    # The set score: mean over deltas of the best accuracy over thresholds, valid samples only.
    valid = [b for b in range(a.shape[0]) if boxes[b].shape[0] > 0]
    result = max_box_accuracy(a, boxes=boxes, thresholds=thresholds, version=version,
                              connectivity=connectivity)
    if not valid:
        assert math.isnan(result.value.item()) and torch.isnan(result.score).all()
        return
    accuracy = stats.correct[valid].double().mean(0)
    assert result.value.item() == pytest.approx(accuracy.max(1).values.mean().item(), abs=1e-12)
    assert result.score[valid].mean().item() == pytest.approx(result.value.item(), abs=1e-12)


@given(data=maps_and_boxes(), overlap=st.sampled_from(["iobb", "iou"]), connectivity=CONNECTIVITY,
       thresholds=st.sampled_from([(60.0, 180.0), (0.0,), (100.0, 255.0)]))
def test_box_accuracy_matches_the_per_threshold_protocol(data, overlap, connectivity, thresholds):
    a, boxes = data
    full = connectivity
    limits = [0.1, 0.25, 0.5, 0.75, 0.9]
    result = box_accuracy(a, boxes=boxes, thresholds=thresholds, overlap=overlap,
                          connectivity=connectivity)
    for b in range(a.shape[0]):
        hits, false_positives, detections = ref.box_accuracy(a[b, 0].numpy(), gt_list(boxes[b]),
                                                             list(thresholds),
                                                             overlap, limits, full)
        np.testing.assert_array_equal(result.hits[b].numpy(), hits)
        np.testing.assert_array_equal(result.false_positives[b].numpy(), false_positives)
        np.testing.assert_array_equal(result.detections[b].numpy(), detections)
        n = boxes[b].shape[0]
        assert result.num_boxes[b].item() == n
        if n == 0:
            assert math.isnan(result.score[b].item())
        else:
            assert result.score[b].item() == pytest.approx(hits.mean() / n)


@st.composite
def maps_and_masks(draw):
    dims = draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, 7 if dims < 3 else 4)) for _ in range(dims))
    batch = draw(st.integers(1, 3))
    elements = st.one_of(VALUES, st.floats(-2, 2, width=32))
    a = draw(npst.arrays(np.float64, (batch, 1) + spatial, elements=elements))
    mask = draw(npst.arrays(np.bool_, (batch, 1) + spatial))
    ignore = draw(npst.arrays(np.bool_, (batch, 1) + spatial)) & ~mask
    return torch.from_numpy(a), torch.from_numpy(mask), torch.from_numpy(ignore)


@given(data=maps_and_masks(), thresholds=st.sampled_from([4, 10, [0.0, 0.3, 0.5, 1.0]]),
       use_ignore=st.booleans())
def test_pxap_matches_direct_counting(data, thresholds, use_ignore):
    a, mask, ignore = data
    result = pxap(a, mask, ignore=ignore if use_ignore else None, thresholds=thresholds)
    taus = result.thresholds.tolist()
    maps = [a[b, 0].numpy() for b in range(a.shape[0])]
    masks = [mask[b, 0].numpy() for b in range(a.shape[0])]
    ignores = [ignore[b, 0].numpy() for b in range(a.shape[0])] if use_ignore else None
    expected = ref.pxap(maps, masks, taus, ignores)
    np.testing.assert_allclose(result.value.item(), expected, rtol=1e-12, atol=1e-12,
                               equal_nan=True)
    for b in range(a.shape[0]):
        one = ref.pxap(maps[b:b + 1], masks[b:b + 1], taus,
                       None if ignores is None else ignores[b:b + 1])
        np.testing.assert_allclose(result.score[b].item(), one, rtol=1e-12, atol=1e-12,
                                   equal_nan=True)


def test_pxap_equals_wsolevaluation_on_its_default_grid():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.random((4, 1, 12, 12)))
    a[1] = torch.round(a[1] * 8) / 8  # ties
    mask = torch.from_numpy(rng.random((4, 1, 12, 12)) < 0.3)
    ours = pxap(a, mask).value.item()  # thresholds=1000: 0, 0.001, ..., 1
    theirs = ref.wsol_pxap([a[b, 0].numpy() for b in range(4)], [mask[b, 0].numpy() for b
                                                                 in range(4)], 0.001)
    assert ours == pytest.approx(theirs, abs=1e-12)


@pytest.mark.parametrize("dims", [2, 3])
def test_three_d_and_two_d_share_the_protocol(dims):
    rng = np.random.default_rng(dims)
    shape = (2, 1) + (6,) * dims
    a = torch.from_numpy(rng.random(shape))
    boxes = torch.tensor([[[1.0] * dims + [4.0] * dims], [[0.0] * dims + [6.0] * dims]])
    stats = max_box_accuracy_statistics(a, boxes=boxes, thresholds=20, version=2)
    for b in range(2):
        expected = ref.max_box_correct(a[b, 0].numpy(), gt_list(boxes[b]),
                                       stats.thresholds.tolist(),
                                       [0.3, 0.5, 0.7], 2, True)
        np.testing.assert_array_equal(stats.correct[b].numpy(), expected)


# --- properties the papers imply ------------------------------------------------------------------


def _lesions(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    boxes = torch.tensor([[[2.0, 3.0, 7.0, 9.0], [10.0, 10.0, 15.0, 16.0]], [[0.0, 0.0, 4.0, 4.0],
                                                                             [math.nan] * 4]])
    return boxes, boxes_to_mask(boxes, (size, size))


def test_a_map_equal_to_the_mask_scores_one_and_a_map_outside_scores_zero():
    boxes, mask = _lesions()
    a = mask.double()
    for version in (1, 2):
        result = max_box_accuracy(a, boxes=boxes, version=version)
        if version == 1:  # the largest component is one of the two lesions of sample 0
            assert result.statistics.correct[1].any()
        else:
            assert result.value.item() == 1.0
    assert pxap(a, mask).value.item() == 1.0
    wang = box_accuracy(a, boxes=boxes)
    assert (wang.hits == wang.num_boxes[:, None, None]).all() and (wang.false_positives == 0).all()
    outside = torch.zeros_like(a)
    outside[:, :, 12:16, 0:4] = 1.0  # away from every box
    for version in (1, 2):
        assert max_box_accuracy(outside, boxes=boxes, version=version).value.item() == 0.0
    assert (box_accuracy(outside, boxes=boxes, overlap_thresholds=(0.1,)).hits == 0).all()
    # At tau = 0 everything is selected (precision = the mask's share), above it no mask pixel.
    assert pxap(outside, mask).value.item() == pytest.approx(mask.double().mean().item())


def test_mask_and_boxes_give_the_same_ground_truth():
    boxes, mask = _lesions()
    assert torch.equal(torch.nan_to_num(mask_to_boxes(mask), -1), torch.nan_to_num(boxes, -1))
    a = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    one = max_box_accuracy_statistics(a, mask, version=2, thresholds=50)
    two = max_box_accuracy_statistics(a, boxes=boxes, version=2, thresholds=50)
    assert torch.equal(one.correct, two.correct)
    assert torch.equal(box_accuracy(a, mask).hits, box_accuracy(a, boxes=list(boxes)).hits)


@pytest.mark.parametrize("split", [1, 2, 3])
def test_statistics_do_not_depend_on_the_batch_split(split):
    rng = np.random.default_rng(3)
    a = torch.from_numpy(rng.random((5, 1, 10, 10)))
    boxes = torch.tensor([[[1.0, 2.0, 6.0, 8.0]]] * 5)
    mask = boxes_to_mask(boxes, (10, 10))
    whole = max_box_accuracy_statistics(a, boxes=boxes, version=2, thresholds=100)
    parts = [max_box_accuracy_statistics(a[i:i + split], boxes=boxes[i:i + split], version=2,
                                         thresholds=100)
             for i in range(0, 5, split)]
    correct = torch.cat([p.correct for p in parts])
    valid = torch.cat([p.valid for p in parts])
    assert torch.equal(correct, whole.correct)
    value, _, _ = max_box_accuracy_from_statistics(correct, valid)
    assert value.item() == max_box_accuracy(a, boxes=boxes, version=2, thresholds=100).value.item()
    counts = [pxap_statistics(a[i:i + split], mask[i:i + split], thresholds=100)
              for i in range(0, 5, split)]
    pooled = pxap_from_counts(sum(c.positives.sum(0) for c in counts),
                              sum(c.negatives.sum(0) for c in counts))
    assert pooled.item() == pxap(a, mask, thresholds=100).value.item()


def test_samples_without_ground_truth_are_nan_and_not_counted():
    a = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    boxes = [torch.tensor([[0.0, 0.0, 6.0, 6.0]]), torch.zeros(0, 4)]
    result = max_box_accuracy(a, boxes=boxes, thresholds=10)
    assert result.statistics.valid.tolist() == [True, False]
    assert math.isnan(result.score[1].item()) and torch.isnan(result.curve[1]).all()
    assert result.value.item() == result.score[0].item()
    wang = box_accuracy(a, boxes=boxes)
    assert math.isnan(wang.score[1].item()) and wang.num_boxes.tolist() == [1, 0]
    empty = torch.zeros(2, 1, 6, 6, dtype=torch.bool)
    assert math.isnan(pxap(a, empty).value.item()) and torch.isnan(pxap(a, empty).score).all()


def test_constant_maps_select_everything_at_zero_only():
    a = torch.full((1, 1, 4, 4), 2.5)
    stats = max_box_accuracy_statistics(a, boxes=torch.tensor([[[0.0, 0.0, 4.0, 4.0]]]),
                                        thresholds=[0.0, 0.5])
    assert stats.correct.tolist() == [[[True, False]]]
    assert (box_accuracy(a, boxes=torch.tensor([[[0.0, 0.0, 4.0, 4.0]]])).detections.tolist()
            == [[0, 0]])


def test_box_accuracy_threshold_modes():
    a = torch.zeros(1, 1, 8, 8)
    a[0, 0, 1:3, 1:3] = 4.0
    a[0, 0, 5:7, 5:8] = 2.0
    gt = torch.tensor([[[1.0, 1.0, 3.0, 3.0]]])
    absolute = box_accuracy(a, boxes=gt, thresholds=(1.0, 3.0), threshold_mode="absolute")
    assert absolute.detections.tolist() == [[2, 1]]
    fraction = box_accuracy(a, boxes=gt, thresholds=(0.25, 0.75), threshold_mode="max_fraction")
    assert fraction.detections.tolist() == [[2, 1]]
    quantile = box_accuracy(a, boxes=gt, thresholds=(0.95,), threshold_mode="quantile")
    assert quantile.detections.tolist() == [[1]] and quantile.hits[0, 0].tolist() == [1, 1, 1, 1, 1]
    otsu = box_accuracy(a, boxes=gt, threshold_mode="otsu")
    assert otsu.detections.tolist() == [[2]]  # Otsu splits the background from both squares
    assert otsu.false_positives[0, 0].tolist() == [1, 1, 1, 1, 1]


def test_matching_is_many_to_many():
    # Two fragments inside one lesion: one hit, no false positive (IoBB); one box over two lesions.
    a = torch.zeros(1, 1, 10, 20)
    a[0, 0, 2:4, 2:4] = 1.0
    a[0, 0, 2:4, 6:8] = 1.0
    a[0, 0, 5:9, 11:19] = 1.0
    gt = torch.tensor([[[1.0, 1.0, 9.0, 5.0], [11.0, 5.0, 15.0, 9.0], [15.0, 5.0, 19.0, 9.0]]])
    r = box_accuracy(a, boxes=gt, thresholds=(128.0,), overlap_thresholds=(0.4,))
    assert r.detections.tolist() == [[3]]
    assert r.hits.tolist() == [[[3]]] and r.false_positives.tolist() == [[[0]]]
    strict = box_accuracy(a, boxes=gt, thresholds=(128.0,), overlap_thresholds=(0.6,))
    assert strict.hits.tolist() == [[[1]]] and strict.false_positives.tolist() == [[[1]]]


def test_top_k_with_k_the_mask_size_is_relevance_rank_accuracy():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 1, 7, 7, generator=g)
    a[3] = torch.round(a[3])  # ties at the K-th value
    for size in (1, 9, 30):
        mask = torch.zeros(6, 1, 49, dtype=torch.bool)
        for b in range(6):
            mask[b, 0, torch.randperm(49, generator=g)[:size]] = True
        mask = mask.reshape(6, 1, 7, 7)
        torch.testing.assert_close(relevance_rank_accuracy(a, mask),
                                   top_k_intersection(a, mask, k=size))
    # masks of different sizes in one batch: K is each sample's own mask size
    mask = torch.rand(6, 1, 7, 7, generator=g) < torch.linspace(0.05, 0.9, 6).reshape(6, 1, 1, 1)
    mask[:, 0, 0, 0] = True
    per_sample = torch.cat([top_k_intersection(a[i:i + 1], mask[i:i + 1], k=int(mask[i].sum()))
                            for i in range(6)])
    assert len(set(mask.sum((1, 2, 3)).tolist())) > 1
    torch.testing.assert_close(relevance_rank_accuracy(a, mask), per_sample)


def test_bad_inputs_raise_typed_errors():
    a = torch.rand(2, 1, 6, 6)
    gt = torch.tensor([[[0.0, 0.0, 3.0, 3.0]]] * 2)
    with pytest.raises(OptionError, match="exactly one"):
        max_box_accuracy(a)
    with pytest.raises(OptionError, match="exactly one"):
        box_accuracy(a, torch.ones(2, 1, 6, 6, dtype=torch.bool), boxes=gt)
    with pytest.raises(ShapeError, match=r"\(2, N, 4\)"):
        max_box_accuracy(a, boxes=torch.zeros(2, 1, 6))
    with pytest.raises(ShapeError, match="2 samples"):
        max_box_accuracy(a, boxes=[gt[0]])
    with pytest.raises(OptionError, match="non-negative extents"):
        max_box_accuracy(a, boxes=torch.tensor([[[3.0, 0.0, 1.0, 3.0]]] * 2))
    with pytest.raises(OptionError, match="strictly increasing"):
        max_box_accuracy(a, boxes=gt, thresholds=[0.5, 0.2])
    with pytest.raises(OptionError, match="version"):
        max_box_accuracy(a, boxes=gt, version=3)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="connectivity"):
        max_box_accuracy(a, boxes=gt, connectivity="diagonal")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="reduce_channels"):
        pxap(a, gt.new_ones(2, 1, 6, 6).bool(), reduce_channels=None)  # type: ignore[arg-type]
    with pytest.raises(DTypeError):
        max_box_accuracy(a, boxes="boxes")  # type: ignore[arg-type]
    with pytest.raises(MaskError):
        pxap(a, torch.full((2, 1, 6, 6), 2.0))
    with pytest.raises(OptionError, match="quantile thresholds"):
        box_accuracy(a, boxes=gt, thresholds=(0.5, 1.5), threshold_mode="quantile")
    with pytest.raises(OptionError, match="overlap"):
        box_accuracy(a, boxes=gt, overlap="dice")  # type: ignore[arg-type]


def test_results_do_not_depend_on_the_overlap_chunks(monkeypatch):
    from xaiscore.functional import box_localization as module

    rng = np.random.default_rng(5)
    a = torch.from_numpy(rng.random((3, 1, 12, 12)))
    mask = torch.from_numpy(rng.random((3, 1, 12, 12)) < 0.2)  # many small ground-truth regions
    whole = (max_box_accuracy_statistics(a, mask, version=2, thresholds=30).correct,
             box_accuracy(a, mask, overlap="iou"))
    chunks = module._version_chunks
    monkeypatch.setattr(module, "_version_chunks",
                        lambda count, width: chunks(count, width, budget=7))
    parts = (max_box_accuracy_statistics(a, mask, version=2, thresholds=30).correct,
             box_accuracy(a, mask, overlap="iou"))
    assert torch.equal(whole[0], parts[0])
    for one, two in zip(whole[1], parts[1]):
        torch.testing.assert_close(one, two, rtol=0, atol=0, equal_nan=True)
