"""Timing of the harness data layer: synthetic generation, reading, collation, mask resizing.

Run: ``python benchmarks/bench_harness_data.py`` (CPU, one torch thread so that a shared
machine gives stable figures; prints one line per case, best of 3, and the load average).
"""

from __future__ import annotations

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


def main() -> None:
    from PIL import Image

    from xaiscore.harness.data import (collate, iterate_batches, make_synthetic_dataset,
                                       read_nih_chestxray14)
    from xaiscore.harness.data.transforms import Resize, resize_mask

    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average "
        f"{os.getloadavg()}")
    for n, size in ((1024, (64, 64)), (256, (224, 224))):
        seconds = best_of(lambda: [r for r in make_synthetic_dataset(n, size=size, shortcut=0.5)])
        print(f"synthetic n={n} {size}: {seconds:.3f} s ({n / seconds:.0f} samples/s)")
    dataset = make_synthetic_dataset(1024, size=(64, 64))
    records = [dataset[i] for i in range(1024)]
    seconds = best_of(lambda: [collate(records[i:i + 64]) for i in range(0, 1024, 64)])
    print(f"collate 1024 records (64x64) in batches of 64: {seconds:.3f} s")
    mask = torch.rand(64, 1, 1024, 1024) > 0.7
    for rule in ("nearest", "area"):
        seconds = best_of(lambda: resize_mask(mask, (224, 224), rule=rule))
        print(f"resize_mask 64 x 1024^2 -> 224^2 ({rule}): {seconds:.3f} s")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        lines = ["Image Index,Finding Label,Bbox [x,y,w,h],,,"]
        image = (np.random.default_rng(0).random((512, 512)) * 255).astype(np.uint8)
        for i in range(200):
            Image.fromarray(image).save(root / f"{i:08d}_000.png")
            lines.append(f"{i:08d}_000.png,Nodule,{100 + i},200,150,120,,,")
        (root / "BBox_List_2017.csv").write_text("\n".join(lines) + "\n")
        seconds = best_of(lambda: read_nih_chestxray14(root))
        print(f"NIH reader: parse 200 rows: {seconds * 1000:.1f} ms")
        ds = read_nih_chestxray14(root, transform=Resize((224, 224)))
        seconds = best_of(lambda: [b for b in iterate_batches(ds, 32)], repeats=2)
        print(f"NIH reader: load+resize+collate 200 PNGs 512^2 -> 224^2: {seconds:.2f} s "
              f"({200 / seconds:.0f} images/s)")


if __name__ == "__main__":
    main()
