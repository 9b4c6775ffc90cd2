"""Timing of the harness data layer: synthetic generation, reading, collation, mask resizing.

Run: ``python benchmarks/bench_harness_data.py`` (CPU, one torch thread so that a shared
machine gives stable figures; prints one line per case, best of 3, and the load average);
``--quick``: small sizes and one repeat, a smoke run in seconds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _run(args.quick)
    finally:
        torch.set_num_threads(threads)
    return 0


def _run(quick: bool) -> None:
    from PIL import Image

    from xaiscore.harness.data import (collate, iterate_batches, make_synthetic_dataset,
                                       read_nih_chestxray14)
    from xaiscore.harness.data.transforms import Resize, resize_mask

    repeats = 1 if quick else 3
    n_records, n_png, png_side, mask_side = (64, 8, 64, 128) if quick else (1024, 200, 512, 1024)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average "
        f"{os.getloadavg()}")
    sizes = ((64, (32, 32)),) if quick else ((1024, (64, 64)), (256, (224, 224)))
    for n, size in sizes:
        seconds = best_of(lambda: [r for r in make_synthetic_dataset(n, size=size, shortcut=0.5)],  # noqa: B023, E501
                          repeats)
        print(f"synthetic n={n} {size}: {seconds:.3f} s ({n / seconds:.0f} samples/s)")
    dataset = make_synthetic_dataset(n_records, size=(64, 64))
    records = [dataset[i] for i in range(n_records)]
    seconds = best_of(lambda: [collate(records[i:i + 64]) for i in range(0, n_records, 64)],
                      repeats)
    print(f"collate {n_records} records (64x64) in batches of 64: {seconds:.3f} s")
    mask = torch.rand(64, 1, mask_side, mask_side) > 0.7
    for rule in ("nearest", "area"):
        seconds = best_of(lambda: resize_mask(mask, (224, 224), rule=rule), repeats)  # noqa: B023
        print(f"resize_mask 64 x {mask_side}^2 -> 224^2 ({rule}): {seconds:.3f} s")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        lines = ["Image Index,Finding Label,Bbox [x,y,w,h],,,"]
        image = (np.random.default_rng(0).random((png_side, png_side)) * 255).astype(np.uint8)
        for i in range(n_png):
            Image.fromarray(image).save(root / f"{i:08d}_000.png")
            lines.append(f"{i:08d}_000.png,Nodule,{10 + i},20,15,12,,,")
        (root / "BBox_List_2017.csv").write_text("\n".join(lines) + "\n")
        seconds = best_of(lambda: read_nih_chestxray14(root), repeats)
        print(f"NIH reader: parse {n_png} rows: {seconds * 1000:.1f} ms")
        ds = read_nih_chestxray14(root, transform=Resize((224, 224)))
        seconds = best_of(lambda: [b for b in iterate_batches(ds, 32)], min(repeats, 2))
        print(f"NIH reader: load+resize+collate {n_png} PNGs {png_side}^2 -> 224^2: "
              f"{seconds:.2f} s ({n_png / seconds:.0f} images/s)")


if __name__ == "__main__":
    raise SystemExit(main())
