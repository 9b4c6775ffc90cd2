"""Volumes: deletion and ROAD on 3-D inputs against their model-work floor, and peak memory at 64^3 and 128^3.

Usage::

    python benchmarks/bench_volumes.py               # 16 volumes of 64^3, a small 3-D CNN
    python benchmarks/bench_volumes.py --quick       # a smoke run (4 volumes of 24^3)
    python benchmarks/bench_volumes.py --no-memory   # timing only
    python benchmarks/bench_volumes.py --no-memory --model wide --clock cpu --threads 1

1. **Floor**: for deletion and ROAD, our time (validation, ranking, perturbation, ROAD's
   imputation and the unperturbed pass included) divided by the *model-work floor*: the time of
   pushing the same number of volumes through the same model in batches of the best batch size
   (the fastest of a few candidates), on a preallocated input. Metric and floor runs alternate
   and the minimum of each is kept (robust to a shared CPU). For ROAD the floor leaves out the
   imputation, which is work the metric needs (one sparse system per volume and percentage);
   the table also gives the imputation alone. ``--model tiny`` (default) is a 3-D CNN whose
   first convolution already halves each axis (about 3 ms per 64^3 volume on one core), so the
   kernel's fixed work (ranking 262,144 voxels per volume, scattering each step) weighs much;
   ``--model wide`` starts with 16 channels at full resolution, as 3-D segmentation-style
   backbones do, and shows the same kernel against a model that costs what real ones cost;
   ``--model encoder`` adds a second full-resolution convolution (a light 3-D U-Net stage);
   ``--model resnet10`` is a 3-D ResNet-10 classifier (the smallest MedicalNet-style backbone).
   The last column is the model time per call at which the kernel's own work (ours minus floor)
   would be 0.2x the floor, i.e. from which model cost on the kernel is within 1.2x.
2. **Peak memory**: the largest resident set size of a fresh subprocess per setting during the
   call (sampled every 2 ms) minus its RSS right before the call (inputs built), for deletion and
   ROAD at 64^3 and 128^3 and a few ``max_batch_size`` values (counts and byte budgets),
   against the inputs' own size and against the inputs of one model call (``peak/call_inputs``).

The CPU may be shared: the load average is printed with the machine line.
"""  # noqa: E501

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import machine_line, print_table  # noqa: E402

from xaiscore._engine.batching import check_items_or_bytes, items_per_call  # noqa: E402
from xaiscore._engine.imputation import linear_imputation  # noqa: E402
from xaiscore.functional.faithfulness import deletion, road  # noqa: E402

road_module = sys.modules["xaiscore.functional.faithfulness.road"]


def cnn3d(classes: int = 2, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)  # benchmark-only model initialisation
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveMaxPool3d(1), torch.nn.Flatten(), torch.nn.Linear(32, classes),
    ).eval()


def cnn3d_wide(classes: int = 2, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)  # benchmark-only model initialisation
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(16, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(32, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveMaxPool3d(1), torch.nn.Flatten(), torch.nn.Linear(32, classes),
    ).eval()


def cnn3d_encoder(classes: int = 2, seed: int = 0) -> torch.nn.Module:
    """Two 16-channel convolutions at full resolution, as the first stage of a 3-D U-Net encoder
    (which has 32), then strided ones."""
    torch.manual_seed(seed)  # benchmark-only model initialisation
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(16, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(32, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveMaxPool3d(1), torch.nn.Flatten(), torch.nn.Linear(32, classes),
    ).eval()


class _BasicBlock3d(torch.nn.Module):
    """Two 3x3x3 convolutions with batch norm and an identity (or 1x1x1 projection) shortcut."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv3d(channels_in, channels_out, 3, stride, 1, bias=False),
            torch.nn.BatchNorm3d(channels_out), torch.nn.ReLU(),
            torch.nn.Conv3d(channels_out, channels_out, 3, 1, 1, bias=False),
            torch.nn.BatchNorm3d(channels_out))
        self.shortcut = (torch.nn.Identity() if stride == 1 and channels_in == channels_out
                         else torch.nn.Sequential(
                             torch.nn.Conv3d(channels_in, channels_out, 1, stride, bias=False),
                             torch.nn.BatchNorm3d(channels_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet10_3d(classes: int = 2, seed: int = 0) -> torch.nn.Module:
    """A 3-D ResNet-10 classifier (one basic block per stage, 64-128-256-512 channels, a 7^3
    strided stem and a max pool), the smallest of the 3-D ResNets that medical volume classifiers
    are commonly built on (e.g. MedicalNet's pretrained backbones)."""
    torch.manual_seed(seed)  # benchmark-only model initialisation
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 64, 7, stride=2, padding=3, bias=False), torch.nn.BatchNorm3d(64),
        torch.nn.ReLU(), torch.nn.MaxPool3d(3, stride=2, padding=1),
        _BasicBlock3d(64, 64, 1), _BasicBlock3d(64, 128, 2), _BasicBlock3d(128, 256, 2),
        _BasicBlock3d(256, 512, 2),
        torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(512, classes),
    ).eval()


MODELS = {"tiny": cnn3d, "wide": cnn3d_wide, "encoder": cnn3d_encoder, "resnet10": resnet10_3d}


def make_inputs(batch: int, side: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, side, side, side, generator=generator)
    smooth = torch.nn.functional.avg_pool3d(torch.rand(batch, 1, side, side, side,
                                                       generator=generator), 5, 1, 2)
    return x, smooth, torch.arange(batch) % 2


class CountingModel(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.images = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += x.shape[0]
        return self.model(x)


def _push(model, inputs, n_images: int, batch_size: int) -> None:
    with torch.inference_mode():
        for start in range(0, n_images, batch_size):
            model(inputs[: min(batch_size, n_images - start)])


#: The clock of the floor runs: wall time, or the process's CPU time (``--clock cpu``: steadier
#: on a shared CPU; use it with a fixed number of torch threads).
CLOCK = {"clock": time.perf_counter}


def _seconds(fn) -> float:
    clock = CLOCK["clock"]
    start = clock()
    fn()
    return clock() - start


def best_batch_size(model, shape, candidates) -> int:
    times = {}
    for m in candidates:
        inputs = torch.rand((m,) + tuple(shape))
        _push(model, inputs, m, m)
        times[m] = min(_seconds(lambda: _push(model, inputs, 2 * max(candidates), m)) for _ in range(2))  # noqa: B023, E501
    return min(times, key=times.get)


def road_imputation(x: torch.Tensor, a: torch.Tensor, options: dict) -> None:
    """ROAD's imputation work alone: one system per volume and percentage (MoRF masks from the
    attribution ``a``), solved in the kernel's groups of ``road._GROUP_BYTES``."""
    flat = a.reshape(a.shape[0], -1)
    rank = flat.argsort(dim=1, descending=True).argsort(dim=1).reshape(a.shape)
    group = max(1, road_module._GROUP_BYTES // x[0].nbytes)
    for percentage in options["percentages"]:
        removed = rank < int(flat.shape[1] * percentage / 100)
        for start in range(0, x.shape[0], group):
            linear_imputation(x[start:start + group], removed[start:start + group])


def configs(quick: bool) -> dict:
    return {
        "deletion": (deletion, {"features_per_step": 1 / 16}),
        "road": (road, {"percentages": [50] if quick else [10, 50, 90], "noise": 0.01}),
    }


def run_floor(batch: int, side: int, repeats: int, quick: bool,
              model_name: str = "tiny",
              metrics: tuple[str, ...] | list[str] = ("deletion", "road")) -> list[dict]:
    x, a, target = make_inputs(batch, side)
    model = MODELS[model_name]()
    best = best_batch_size(model, x.shape[1:], [4] if quick else [4, 8, 16, 32])
    inputs = torch.rand((best,) + tuple(x.shape[1:]))
    rows = []
    for name, (kernel, options) in configs(quick).items():
        if name not in metrics:
            continue
        counter = CountingModel(model)

        def call():
            return kernel(counter, x, a, target, max_batch_size=best,
                          generator=torch.Generator().manual_seed(0),
                          **options)
        call()
        images = counter.images
        ours, floor = math.inf, math.inf
        for _ in range(repeats):
            ours = min(ours, _seconds(call))
            floor = min(floor, _seconds(lambda: _push(model, inputs, images, best)))  # noqa: B023
        row = {"metric": name, "model": model_name, "volumes": f"{batch}x{side}^3",
               "model calls": images, "batch": best,
               "ours_s": ours, "floor_s": floor, "ours/floor": ours / floor,
               # the model time per call at which this kernel's own work would be 0.2x the floor
               "1.2x_at_model_s/call": max(0.0, ours - floor) / (0.2 * images)}
        # the imputation alone: the kernel's own systems (every volume at every percentage, the
        # voxels ranked by the attribution, most relevant removed first), in the kernel's groups
        if name == "road":
            row["imputation_s"] = _seconds(lambda: road_imputation(x, a, options))  # noqa: B023
        rows.append(row)
        print("  ...", row, flush=True)
    return rows


_CHILD = r"""
import json, os, sys, threading, time, torch
sys.path.insert(0, {here!r})
from bench_volumes import cnn3d, make_inputs, configs
torch.set_num_threads({threads})
name, batch, side, mbs = {name!r}, {batch}, {side}, {mbs!r}
kernel, options = configs(False)[name]
if name == "road":
    options = dict(options, percentages=[50])
model = cnn3d()
x, a, target = make_inputs(batch, side)
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * page

peak, done = [rss()], []

def sample():
    while not done:
        peak.append(max(peak[-1], rss()))
        time.sleep(0.002)

before = rss()
thread = threading.Thread(target=sample)
thread.start()
kernel(model, x, a, target, max_batch_size=mbs, generator=torch.Generator().manual_seed(0), **options)
done.append(1)
thread.join()
print(json.dumps({{"peak_mb": (max(peak) - before) / 2**20, "inputs_mb": 2 * x.numel() * 4 / 2**20}}))
"""  # noqa: E501


def run_memory(settings) -> list[dict]:
    rows = []
    here = os.path.dirname(os.path.abspath(__file__))
    for name, batch, side, mbs in settings:
        code = _CHILD.format(here=here, threads=torch.get_num_threads(), name=name, batch=batch,
                             side=side, mbs=mbs)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        volume_mb = side**3 * 4 / 2**20
        # volumes per model call: a count as it is, a byte budget as the volumes it holds
        items = items_per_call(check_items_or_bytes(mbs), torch.empty(1, 1, side, side, side))
        rows.append({"metric": name, "volumes": f"{batch}x{side}^3", "max_batch_size": mbs,
                     "volumes/call": items, "peak_mb": result["peak_mb"],
                     "x+a_mb": result["inputs_mb"],
                     "peak/call_inputs": result["peak_mb"] / (volume_mb * items)})
        print("  ...", rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny",
                        help="the 3-D CNN of the floor runs (the memory runs use tiny)")
    parser.add_argument("--metrics", nargs="+", choices=["deletion", "road"],
                        default=["deletion", "road"])
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="time the floor runs by wall clock or by the process's CPU time")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: as is)")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    CLOCK["clock"] = time.process_time if args.clock == "cpu" else time.perf_counter
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)
        CLOCK["clock"] = time.perf_counter


def _run(args: argparse.Namespace) -> int:
    batch, side = (4, 24) if args.quick else (args.batch, args.side)
    print(machine_line(), f"load average {os.getloadavg()[0]:.1f}, {args.clock} clock")
    if not args.no_floor:
        rows = run_floor(batch, side, 1 if args.quick else args.repeats, args.quick, args.model,
                         args.metrics)
        print_table(rows, ["metric", "model", "volumes", "model calls", "batch", "ours_s",
                           "floor_s", "ours/floor", "imputation_s", "1.2x_at_model_s/call"])
    if args.no_memory:
        return 0
    settings = [("deletion", 4, 24, 2), ("road", 4, 24, "128KiB")] if args.quick else [
        ("deletion", 16, 64, 4), ("deletion", 16, 64, 16), ("road", 16, 64, 4),
        ("road", 16, 64, 16),
        ("deletion", 4, 128, 4), ("road", 4, 128, 1), ("road", 4, 128, 4),
        # byte budgets: the inputs of one model call at most that many bytes
        ("deletion", 16, 64, "4MiB"), ("road", 16, 64, "4MiB"), ("road", 4, 128, "16MiB")]
    print_table(run_memory(settings), ["metric", "volumes", "max_batch_size", "volumes/call",
                                       "peak_mb", "x+a_mb", "peak/call_inputs"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
