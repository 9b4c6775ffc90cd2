"""The set-level box classes (BoxAccuracy, MaxBoxAccuracy, PxAP): any split of a dataset into
batches gives the kernel's value on the whole dataset, with masks or boxes as ground truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.metrics import cases
from tests.reference import box_localization as ref
from xaiscore import functional as F
from xaiscore import metrics
from xaiscore.functional.box_statistics import BOX_ACCURACY, MAX_BOX_ACCURACY, PXAP

N = 9


def data(seed: int = 0, dims: int = 2):
    g = torch.Generator().manual_seed(seed)
    spatial = (10, 12) if dims == 2 else (5, 6, 7)
    a = torch.rand((N, 1) + spatial, generator=g, dtype=torch.float64)
    mask = torch.zeros((N, 1) + spatial, dtype=torch.bool)
    boxes = torch.full((N, 2, 2 * dims), math.nan, dtype=torch.float64)
    for i in range(N):
        for j in range(1 + i % 2):  # one or two ground-truth boxes, some touching the border
            low = [int(torch.randint(0, s - 1, (1,), generator=g)) for s in spatial]
            high = [int(torch.randint(lo + 1, s + 1, (1,), generator=g))
                    for lo, s in zip(low, spatial)]
            region = (i, slice(None)) + tuple(slice(lo, hi) for lo, hi in zip(low, high))
            mask[region] = True
            a[region] += 0.5 + 0.3 * j
            boxes[i, j] = torch.tensor(low[::-1] + high[::-1], dtype=torch.float64)
    mask[4] = False  # a sample without ground truth
    boxes[4] = math.nan
    return a, mask, boxes


SPLITS = [[(0, N)], [(i, i + 1) for i in range(N)]]


def _splits():
    rng = np.random.default_rng(7)
    return SPLITS + [cases.random_bounds(N, rng) for _ in range(2)]


def _feed(metric, bounds, **inputs):
    for start, stop in bounds:
        metric.update(**{k: v[start:stop] for k, v in inputs.items()})


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("truth", ["mask", "boxes"])
@pytest.mark.parametrize("version", [1, 2])
def test_max_box_accuracy_class_equals_the_kernel_on_the_whole_set(dims, truth, version):
    a, mask, boxes = data(dims, dims)
    ground = {"mask": mask} if truth == "mask" else {"boxes": boxes}
    kernel = F.max_box_accuracy(a, **ground, thresholds=40, version=version)
    for bounds in _splits():
        metric = metrics.MaxBoxAccuracy(thresholds=40, version=version)
        _feed(metric, bounds, a=a, **ground)
        result = metric.result()
        assert metric.compute().item() == pytest.approx(kernel.value.item(), abs=1e-12)
        assert metric.compute().dtype == a.dtype
        torch.testing.assert_close(result.details.accuracy, kernel.accuracy, equal_nan=True)
        torch.testing.assert_close(result.details.best_threshold, kernel.best_threshold)
        assert int(result.details.valid) == int(kernel.statistics.valid.sum()) == N - 1
        assert int(result.n_samples) == N and result.scores is None


@pytest.mark.parametrize("truth", ["mask", "boxes"])
def test_box_accuracy_class_equals_the_pooled_figures_of_the_reference(truth):
    a, mask, boxes = data(3)
    ground = {"mask": mask} if truth == "mask" else {"boxes": boxes}
    gt = [[box for box, _ in ref.regions(mask[i, 0].numpy())]
          for i in range(N)] if truth == "mask" else [
        [tuple(r) for r in b.tolist() if not math.isnan(r[0])] for b in boxes]
    thresholds, limits = [60.0, 180.0], [0.1, 0.25, 0.5, 0.75, 0.9]
    per = [ref.box_accuracy(a[i, 0].numpy(), gt[i], thresholds, "iobb", limits, True)
           for i in range(N)]
    hits = sum(p[0] for p in per)
    false_positives = sum(p[1] for p in per)
    n_boxes = sum(len(g) for g in gt)
    for bounds in _splits():
        metric = metrics.BoxAccuracy()
        _feed(metric, bounds, a=a, **ground)
        details = metric.result().details
        np.testing.assert_array_equal(details.hits.numpy(), hits)
        np.testing.assert_array_equal(details.false_positives.numpy(), false_positives)
        assert int(details.num_boxes) == n_boxes and int(details.num_images) == N
        np.testing.assert_allclose(details.accuracy.numpy(), hits / n_boxes)
        np.testing.assert_allclose(details.average_false_positives.numpy(), false_positives / N)
        assert metric.compute().item() == pytest.approx((hits / n_boxes).mean())
    kernel = F.box_accuracy(a, **ground)
    assert kernel.value.item() == pytest.approx((hits / n_boxes).mean())
    np.testing.assert_allclose(kernel.average_false_positives.numpy(), false_positives / N)


def test_pxap_class_equals_the_pooled_kernel_value_with_ignore_regions():
    a, mask, _ = data(5)
    ignore = torch.zeros_like(mask)
    ignore[:, :, 0, :] = True
    ignore &= ~mask
    kernel = F.pxap(a, mask, ignore=ignore, thresholds=50)
    grid = (np.arange(51) * (1.0 / 50)).tolist()
    expected = ref.pxap(list(a[:, 0].numpy()), list(mask[:, 0].numpy()), grid,
                        list(ignore[:, 0].numpy()))
    assert kernel.value.item() == pytest.approx(expected, abs=1e-12)
    for bounds in _splits():
        metric = metrics.PxAP(thresholds=50)
        _feed(metric, bounds, a=a, mask=mask, ignore=ignore)
        result = metric.result()
        assert metric.compute().item() == pytest.approx(expected, abs=1e-12)
        torch.testing.assert_close(result.details.precision, kernel.precision)
        torch.testing.assert_close(result.details.recall, kernel.recall)
    without = metrics.PxAP(thresholds=50)
    without.update(a, mask)
    assert without.compute().item() == pytest.approx(F.pxap(a, mask, thresholds=50).value.item())


@pytest.mark.parametrize("statistics, options", [
    (BOX_ACCURACY, {}),
    (BOX_ACCURACY, {"threshold_mode": "otsu"}),
    (BOX_ACCURACY, {"thresholds": 100.0, "overlap_thresholds": (0.5,)}),
    (MAX_BOX_ACCURACY, {"thresholds": 30}),
    (MAX_BOX_ACCURACY, {"thresholds": [0.0, 0.5], "version": 2}),
    (MAX_BOX_ACCURACY, {"thresholds": 10, "version": 2, "iou_thresholds": (0.5, 0.6)}),
    (PXAP, {"thresholds": 30}),
    (PXAP, {"thresholds": [0.2, 0.4]}),
])
def test_zeros_have_the_shapes_and_dtypes_of_a_batch(statistics, options):
    a, mask, _ = data(2)
    from xaiscore.functional.set_statistics import call_with_options

    zeros = call_with_options(statistics.zeros, options=options)
    batch = call_with_options(statistics.update, a, mask, options=options)
    assert zeros.keys() == batch.keys()
    for key in zeros:
        assert zeros[key].shape == batch[key].shape and zeros[key].dtype == batch[key].dtype, key
        assert not zeros[key].any()
    empty = call_with_options(statistics.compute, zeros, options=options)
    assert math.isnan(empty[0].item())


def test_empty_metric_is_nan_and_the_mask_or_boxes_choice_is_checked():
    metric = metrics.MaxBoxAccuracy(thresholds=10)
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(metric.compute().item())
    a, mask, boxes = data(1)
    with pytest.raises(ValueError, match="exactly one of `mask` and `boxes`"):
        metric.update(a)
    with pytest.raises(ValueError, match="exactly one of `mask` and `boxes`"):
        metric.update(a, mask, boxes=boxes)


def test_docs_example_runs_and_equals_the_kernels_on_the_whole_set(capsys):
    import pathlib
    import re

    page = pathlib.Path(__file__).resolve().parents[2] / "docs" / "box_localization.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
    namespace: dict = {}
    exec(compile(blocks[0], str(page), "exec"), namespace)
    assert "tensor(" in capsys.readouterr().out
    a, mask, boxes = namespace["a"], namespace["mask"], namespace["boxes"]
    assert namespace["max_box"].compute().item() == F.max_box_accuracy(a, boxes=boxes,
                                                                       version=2).value.item()
    assert namespace["pxap"].compute().item() == pytest.approx(F.pxap(a, mask).value.item(),
                                                               abs=1e-12)
    assert namespace["box_accuracy"].compute().item() == pytest.approx(
        F.box_accuracy(a, mask).value.item())
