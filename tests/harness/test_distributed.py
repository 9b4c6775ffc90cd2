"""Scale-out: a 2-process run (gloo on CPU) gives the same Dataset as a 1-process run."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import xarray as xr

from xaiscore.harness.config import parse_config
from xaiscore.harness.runner import run_config
from xaiscore.harness.results import load_dataset

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def config(out: Path):
    return parse_config({
        "out": str(out),
        "batch_size": 4,
        "report": False,
        "n_examples": 2,
        "dataset": {"kind": "synthetic", "n": 14, "size": [24, 24], "seed": 1},
        "model": {"kind": "demo", "train": {"n": 32, "epochs": 1, "width": 4}},
        "methods": ["Saliency", "random"],
        # pxap and sufficiency are set-level: scored over the batches of both processes
        "metrics": {"include": ["pointing_game", "sparseness", "deletion", "max_sensitivity", "pxap",  # noqa: E501
                                "sufficiency"],
                    "options": {"deletion": {"features_per_step": 0.25}, "max_sensitivity": {"n_samples": 2},  # noqa: E501
                                "pxap": {"thresholds": 50}}},
    })


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ds = run_config(config(Path(out)))
    if rank == 0:
        assert ds is not None
    elif ds is not None:
        raise AssertionError("only rank 0 returns the Dataset")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_give_the_same_dataset_as_one(tmp_path):
    torch.multiprocessing.spawn(_worker, args=(2, free_port(), str(tmp_path / "two")), nprocs=2,
                                join=True)
    two = load_dataset(tmp_path / "two" / "results.nc")
    one = run_config(config(tmp_path / "one"))
    different = {"config", "config_source"}  # they name the output folder
    assert two.attrs.keys() == one.attrs.keys()
    assert {k: v for k, v in two.attrs.items() if k not in different} == \
        {k: v for k, v in one.attrs.items() if k not in different}
    xr.testing.assert_equal(two.drop_attrs(), one.drop_attrs())
    # each process computed its own batches: 4 batches, 2 per rank, all present
    assert two.sizes["sample"] == 14
    assert two["pxap"].dims == ("explainer",) and two["pxap_n_samples"].values.tolist() == [14, 14]
    assert len(list((tmp_path / "two" / "shards").glob("b*/samples.pt"))) == 4
    # the demo model was trained once (rank 0) and shared
    assert (tmp_path / "two" / "model.pt").is_file()
