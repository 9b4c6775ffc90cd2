"""Two CPU processes on gloo give what one process gives: a per-sample, a curve, a per-sample
stochastic, a summed-statistics and a stored set-level metric, with a sampler that pads by
repeating samples (as ``DistributedSampler`` does)."""

from __future__ import annotations

import os
import pathlib

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.metrics import cases

WORLD = 2


def make_metrics(tools):
    from xaiscore import metrics

    return {
        "pointing": metrics.PointingGame(),
        "deletion": metrics.Deletion(tools["forward_fn"], features_per_step=16),
        "sensitivity": metrics.MaxSensitivity(tools["explain_fn"], n_samples=3),
        "accuracy": metrics.PointingAccuracy(num_classes=cases.CLASSES),
        "sufficiency": metrics.Sufficiency(tools["forward_fn"]),
    }


def shard(rank: int) -> torch.Tensor:
    """DistributedSampler(shuffle=False) on 7 samples over 2 ranks: 8 rows, sample 0 twice."""
    padded = torch.cat([torch.arange(cases.N), torch.arange(1)])
    return padded[rank::WORLD]


def feed(metric, data, rows: torch.Tensor, *, with_index: bool) -> None:
    names = [n for n in cases.update_names(metric) if n in data]
    for start in range(0, rows.numel(), 2):  # batches of 2
        picked = rows[start : start + 2]
        batch = {n: data[n][picked] for n in names}
        if with_index and "sample_index" in metric.update_signature.parameters:
            batch["sample_index"] = picked
        metric.update(**batch)


def summary(metric) -> dict:
    result = metric.result()
    return {
        "value": result.value,
        "n_samples": result.n_samples,
        "scores": result.scores,
        "curves": result.curves,
        "index": result.index,
    }


def worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        tools, data = cases.callables(), cases.dataset()
        results = {}
        for name, metric in make_metrics(tools).items():
            # PointingAccuracy keeps sums only: each sample once (no padding); the others dedup.
            rows = torch.arange(cases.N)[rank::WORLD] if name == "accuracy" else shard(rank)
            feed(metric, data, rows, with_index=True)
            results[name] = summary(metric)
            results[name + "_local"] = (
                int(metric.n_samples) if hasattr(metric, "n_samples") else None
            )
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_gloo_processes_equal_one(tmp_path: pathlib.Path):
    # fork (where there is one) spares the children re-importing torch and xaiscore
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(
        worker,
        args=(str(tmp_path / "init"), str(tmp_path)),
        nprocs=WORLD,
        join=True,
        start_method=method,
    )
    tools, data = cases.callables(), cases.dataset()
    single = {}
    for name, metric in make_metrics(tools).items():
        feed(metric, data, torch.arange(cases.N), with_index=True)
        single[name] = summary(metric)
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for name, expected in single.items():
            one = got[name]
            assert int(one["n_samples"]) == int(expected["n_samples"]) == cases.N, name
            torch.testing.assert_close(
                one["value"], expected["value"], rtol=1e-12, atol=0, equal_nan=True, msg=name
            )
            for field in ("scores", "curves", "index"):
                if expected[field] is None:
                    assert one[field] is None, (name, field)
                else:
                    cases.nan_equal(one[field], expected[field])
        # the local states stay local after compute (unsync), as torchmetrics does
        assert got["pointing_local"] == shard(rank).numel()
