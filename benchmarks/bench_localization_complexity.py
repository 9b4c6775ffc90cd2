"""Localization and complexity kernels against Quantus 0.6.0 on identical inputs, in the same run.

Usage::

    python benchmarks/bench_localization_complexity.py            # B=64, 224x224, 5 repeats
    python benchmarks/bench_localization_complexity.py --quick    # a smoke run in seconds

For each metric and input configuration it prints the median time of Quantus' class call
(numpy in, its own preprocessing included, as users call it) and of our kernel (torch tensors
in, validation included), and the ratio. Quantus' localization metrics accept one-channel
attributions only, so the 3x224x224 configuration scores one-channel maps for localization and
three-channel maps for complexity.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import machine_line, median_time, print_table  # noqa: E402

from xaiscore.functional import (  # noqa: E402
    attribution_localisation,
    complexity,
    effective_complexity,
    localization_auc,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    sparseness,
    top_k_intersection,
)


def make_inputs(batch: int, channels: int, size: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, channels, size, size, generator=generator)
    # Smooth, positive maps: blurred noise, like a saliency map.
    noise = torch.rand(batch, 1, size // 8, size // 8, generator=generator)
    a1 = torch.nn.functional.interpolate(noise, size=(size, size), mode="bilinear",
                                         align_corners=False)
    a1 = a1 + 1e-3 * torch.rand(a1.shape, generator=generator)  # break ties
    a_c = a1.repeat(1, channels, 1, 1) * torch.rand(batch, channels, 1, 1, generator=generator)
    mask = torch.zeros(batch, 1, size, size, dtype=torch.bool)
    corners = torch.randint(0, size // 2, (batch, 2), generator=generator)
    for i, (r, c) in enumerate(corners.tolist()):
        mask[i, 0, r : r + size // 3, c : c + size // 4] = True
    return x, a1, a_c, mask


def run(batch: int, size: int, repeats: int) -> list[dict[str, object]]:
    import quantus

    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # Quantus 0.6.0 on numpy >= 2.4
    rows = []
    for channels in (1, 3):
        x, a1, a_c, mask = make_inputs(batch, channels, size)
        x_np, y_np = x.numpy(), np.zeros(batch, dtype=np.int64)
        a1_np, ac_np, s_np = a1.numpy(), a_c.numpy(), mask.float().numpy()
        config = f"B={batch} {channels}x{size}x{size}"
        cases = [
            ("pointing_game", quantus.PointingGame(disable_warnings=True),
             lambda: pointing_game(a1, mask), a1_np),
            ("relevance_mass_accuracy", quantus.RelevanceMassAccuracy(disable_warnings=True),
             lambda: relevance_mass_accuracy(a1, mask, relevance="signed"), a1_np),
            ("relevance_rank_accuracy", quantus.RelevanceRankAccuracy(disable_warnings=True),
             lambda: relevance_rank_accuracy(a1, mask), a1_np),
            ("top_k_intersection", quantus.TopKIntersection(k=1000, disable_warnings=True),
             lambda: top_k_intersection(a1, mask, k=1000), a1_np),
            ("attribution_localisation", quantus.AttributionLocalisation(disable_warnings=True),
             lambda: attribution_localisation(a1, mask), a1_np),
            ("localization_auc", quantus.AUC(disable_warnings=True),
             lambda: localization_auc(a1, mask), a1_np),
            ("sparseness", quantus.Sparseness(disable_warnings=True), lambda: sparseness(a_c),
             ac_np),
            ("complexity", quantus.Complexity(disable_warnings=True), lambda: complexity(a_c),
             ac_np),
            ("effective_complexity", quantus.EffectiveComplexity(disable_warnings=True),
             lambda: effective_complexity(a_c, normalise="batch"), ac_np),
        ]
        for name, metric, ours, a_np in cases:
            def call_quantus(metric=metric, a_np=a_np):
                return metric(model=None, x_batch=x_np, y_batch=y_np, a_batch=a_np.copy(),
                              s_batch=s_np, device="cpu")

            t_quantus = median_time(call_quantus, repeats=repeats)
            t_ours = median_time(ours, repeats=repeats)
            rows.append({
                "metric": name, "inputs": config, "quantus_ms": 1e3 * t_quantus, "ours_ms": 1e3 * t_ours,  # noqa: E501
                "quantus_ms_per_sample": 1e3 * t_quantus / batch, "speedup": t_quantus / t_ours,
            })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="B=4, 32x32, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.repeats = 4, 32, 1
    warnings.filterwarnings("ignore")
    print(f"# localization and complexity vs Quantus; {machine_line()}")
    rows = run(args.batch, args.size, args.repeats)
    print_table(rows, ["metric", "inputs", "quantus_ms", "ours_ms", "quantus_ms_per_sample",
                       "speedup"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
