"""Box-level localization kernels against the per-threshold protocol loop, in the same run.

Usage::

    python benchmarks/bench_box_localization.py            # 64 maps of 224x224 and 16 volumes of 64^3
    python benchmarks/bench_box_localization.py --quick    # a smoke run in seconds

The baseline is the loop that the published protocols run (wsolevaluation's BoxEvaluator, with
``scipy.ndimage`` in place of OpenCV's contours): for every map and every threshold, binarise,
``scipy.ndimage.label``, ``find_objects``, boxes, IoU with the ground-truth boxes (all boxes for
MaxBoxAccV2; the largest region's box, by ``bincount`` sizes, for v1). It is written to be fast
(numpy IoU over all boxes at once), not slow on purpose. Because it takes minutes for a whole
batch, it is timed on the first ``--reference-maps`` maps and scaled to the batch (its cost per
map does not depend on the other maps); ours runs on the whole batch. The two alternate
(``--repeats`` pairs), and the ratio is the median of the per-pair ratios. The results of the
two are checked to agree on the maps both ran.

Maps: bilinear upsampling of 28 x 28 (2-D) or 16^3 (3-D) noise plus 1 % pixel noise, min-max
normalised per map, so the upper level sets break into many small regions near each threshold
as real saliency maps do; one ground-truth box per map. Timings include input validation.
"""  # noqa: E501

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from _timing import machine_line, print_table

from xaiscore.functional import max_box_accuracy_statistics


def make_inputs(batch: int, side: int, dims: int,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    coarse = max(2, side // 8 if dims == 2 else side // 4)
    noise = torch.rand((batch, 1) + (coarse,) * dims, generator=generator)
    mode = "bilinear" if dims == 2 else "trilinear"
    a = F.interpolate(noise, size=(side,) * dims, mode=mode, align_corners=False)
    a = a + 0.01 * torch.rand(a.shape, generator=generator)
    low = torch.randint(0, side // 2, (batch, dims), generator=generator).double()
    extent = torch.randint(side // 8, side // 2, (batch, dims), generator=generator).double()
    boxes = torch.cat([low, (low + extent).clamp(max=side)], dim=1).unsqueeze(1)
    return a, boxes


def baseline(a: np.ndarray, boxes: np.ndarray, thresholds: np.ndarray, deltas: np.ndarray,
             version: int) -> np.ndarray:
    """The per-map, per-threshold protocol loop: ``(B, D, T)`` correctness."""
    from scipy import ndimage

    dims = a.ndim - 2
    structure = ndimage.generate_binary_structure(dims, dims)
    out = np.zeros((a.shape[0], len(deltas), len(thresholds)), dtype=bool)
    for b in range(a.shape[0]):
        m = a[b, 0]
        s = (m - m.min()) / (m.max() - m.min())
        gt = boxes[b]
        for t, tau in enumerate(thresholds):
            labels, count = ndimage.label(s >= tau, structure=structure)
            if count == 0:
                continue
            found = ndimage.find_objects(labels)
            if version == 1:
                sizes = np.bincount(labels.ravel())
                found = [found[int(np.argmax(sizes[1:]))]]
            low = np.array([[sl.start for sl in slices][::-1] for slices in found],
                           dtype=np.float64)
            high = np.array([[sl.stop for sl in slices][::-1] for slices in found],
                            dtype=np.float64)
            inter = np.clip(np.minimum(high[:, None], gt[None, :, dims:])
                            - np.maximum(low[:, None], gt[None, :, :dims]),
                            0, None).prod(-1)
            union = ((high - low).prod(-1)[:, None] + (gt[:, dims:] - gt[:, :dims]).prod(-1)[None]
                     - inter)
            out[b, :, t] = (inter / union).max() >= deltas
    return out


def run_case(name: str, a: torch.Tensor, boxes: torch.Tensor, version: int, n_thresholds: int,
             reference_maps: int,
             repeats: int) -> dict[str, object]:
    import time

    thresholds = np.arange(n_thresholds) * (1.0 / n_thresholds)
    deltas = np.array([0.5] if version == 1 else [0.3, 0.5, 0.7])
    a_np, boxes_np = a.numpy(), boxes.numpy()
    batch = a.shape[0]
    ours_times, reference_times, ratios = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        stats = max_box_accuracy_statistics(a, boxes=boxes, thresholds=n_thresholds,
                                            version=version)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        expected = baseline(a_np[:reference_maps], boxes_np[:reference_maps], thresholds, deltas,
                            version)
        reference = (time.perf_counter() - start) * batch / reference_maps
        if not np.array_equal(stats.correct[:reference_maps].numpy(), expected):
            raise AssertionError(f"{name}: the kernel and the protocol loop disagree")
        ours_times.append(ours)
        reference_times.append(reference)
        ratios.append(reference / ours)
    return {
        "case": name,
        "version": f"v{version}",
        "thresholds": n_thresholds,
        "loop_s": float(np.median(reference_times)),
        "ours_s": float(np.median(ours_times)),
        "speed-up": float(np.median(ratios)),
        "loop_maps": reference_maps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (a smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-maps", type=int, default=4,
                        help="maps the protocol loop is timed on")
    parser.add_argument("--no-3d", action="store_true", help="skip the volumes")
    args = parser.parse_args(argv)
    if args.quick:
        cases = [("2-D B=4 32x32", 4, 32, 2, 100), ("3-D B=2 12^3", 2, 12, 3, 100)]
        repeats, reference_maps = 1, 2
    else:
        cases = [("2-D B=64 224x224", 64, 224, 2, 1000), ("3-D B=16 64^3", 16, 64, 3, 1000)]
        repeats, reference_maps = args.repeats, args.reference_maps
    if args.no_3d:
        cases = [c for c in cases if c[3] == 2]
    print(machine_line())
    from scipy import ndimage  # noqa: F401  (imported before the clock starts)

    rows = []
    for name, batch, side, dims, n_thresholds in cases:
        a, boxes = make_inputs(batch, side, dims)
        for version in (1, 2):
            rows.append(run_case(name, a, boxes, version, n_thresholds, min(reference_maps, batch),
                                 repeats))
    print_table(rows, ["case", "version", "thresholds", "loop_s", "ours_s", "speed-up",
                       "loop_maps"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
