"""The run folder as untrusted data: planted pickles are refused, corrupt files recomputed,
leftovers removed, `--overwrite` deletes only what the manifest lists, and one run at a time holds
the folder."""

from __future__ import annotations

import fcntl
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import xarray as xr

from tests.harness.runner_fixtures import tiny_dataset, tiny_model  # noqa: F401
from tests.harness.test_runner import CALLS, KILL_SCRIPT, ROOT, test_metrics  # noqa: F401
from xaiscore.harness.rundir import (
    CorruptFileWarning,
    Manifest,
    RunFolderError,
    RunLock,
    UnsafeFileError,
    load_plain,
)
from xaiscore.harness.runner import evaluate
from xaiscore.harness.store import RunStore


class _Payload:
    """Unpickling this runs ``open(marker, "w")``: a stand-in for any shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(path: Path, marker: Path, *, zipped: bool) -> None:
    """Replace ``path`` by a malicious pickle: torch's zip format, or a bare pickle stream."""
    content = {
        "settings": _Payload(marker),
        "score": torch.ones(1),
        "curve": None,
        "x": None,
        "error": None,
    }
    if zipped:
        torch.save(content, path)
    else:
        path.write_bytes(pickle.dumps(content, protocol=2))


RUN = dict(
    methods=["Gradient", "random"],
    metrics=["sparseness", "pointing_game"],
    batch_size=8,
    n_examples=2,
    save_attributions=True,
)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_dataset, tiny_model):  # noqa: F811
    out = tmp_path_factory.mktemp("finished") / "run"
    reference = evaluate(tiny_dataset, tiny_model, out=out, **RUN)
    return out, reference


def copy_run(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("zipped", [True, False], ids=["torch-zip", "bare-pickle"])
@pytest.mark.parametrize(
    "which",
    [
        "shards/b000000/Gradient/sparseness.pt",
        "shards/b000001/samples.pt",
        "shards/b000000/examples.pt",
        "attributions/random/b000001.pt",
    ],
)
def test_a_planted_pickle_is_refused_and_never_runs(
    finished_run,
    tiny_dataset,
    tiny_model,
    tmp_path,  # noqa: F811
    which,
    zipped,
):
    out = copy_run(finished_run[0], tmp_path / "run")
    marker = tmp_path / "MARKER"
    plant(out / which, marker, zipped=zipped)
    if which.startswith("attributions"):  # the maps are read when a metric of their batch is to do
        (out / "shards" / "b000001" / "random" / "sparseness.pt").unlink()
    with pytest.raises(UnsafeFileError, match="refused to load") as caught:
        evaluate(tiny_dataset, tiny_model, out=out, **RUN)
    assert str(out / which) in str(caught.value)
    assert not marker.exists()


def test_a_planted_demo_model_is_refused(tmp_path):
    from xaiscore.harness.config import parse_config
    from xaiscore.harness.data.registry import open_dataset
    from xaiscore.harness.distributed import DistributedContext
    from xaiscore.harness.models import build_model

    config = parse_config(
        {"dataset": {"kind": "synthetic", "n": 4, "size": [16, 16]}, "out": str(tmp_path)}
    )
    store = RunStore(tmp_path)
    marker = tmp_path / "MARKER"
    torch.save({"settings": _Payload(marker), "state_dict": {}}, store.model_path)
    dataset = open_dataset("synthetic", **dict(config.dataset.options))
    with pytest.raises(UnsafeFileError, match="cached demo model"):
        build_model(config, dataset, store=store, context=DistributedContext())
    assert not marker.exists()


def test_the_cli_refuses_a_planted_pickle_in_one_line(tmp_path, capsys):
    from tests.harness.test_cli import write_config
    from xaiscore.harness.cli import main

    config = write_config(tmp_path, '["sparseness"]')
    assert main(["run", str(config), "--no-progress"]) == 0
    capsys.readouterr()
    shard = next((tmp_path / "run" / "shards").glob("b000000/*/sparseness.pt"))
    marker = tmp_path / "MARKER"
    plant(shard, marker, zipped=True)
    assert main(["run", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(shard) in err and "refused to load" in err
    assert not marker.exists()


def test_corrupt_files_are_recomputed_with_a_warning_naming_them(
    finished_run,
    tiny_dataset,
    tiny_model,  # noqa: F811
    tmp_path,
):
    out = copy_run(finished_run[0], tmp_path / "run")
    shard = out / "shards" / "b000001" / "Gradient" / "pointing_game.pt"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # cut short
    samples = out / "shards" / "b000000" / "samples.pt"
    samples.write_bytes(b"")
    with pytest.warns(CorruptFileWarning) as caught:
        resumed = evaluate(tiny_dataset, tiny_model, out=out, **RUN)
    messages = [str(w.message) for w in caught]
    assert any(str(shard) in m and "computing it again" in m for m in messages)
    assert any(str(samples) in m for m in messages)
    xr.testing.assert_identical(resumed, finished_run[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptFileWarning)  # rewritten: read cleanly now
        evaluate(tiny_dataset, tiny_model, out=out, **RUN)


def test_a_file_of_the_wrong_structure_counts_as_corrupt(tmp_path):
    path = tmp_path / "x.pt"
    torch.save([1, 2], path)
    with pytest.warns(CorruptFileWarning, match="expected a dict"):
        assert load_plain(path, required=("settings",)) is None
    torch.save({"settings": "{}"}, path)
    with pytest.warns(CorruptFileWarning, match=r"\['score'\] are missing"):
        assert load_plain(path, required=("settings", "score")) is None


def test_a_killed_and_corrupted_run_recovers(test_metrics, tmp_path):  # noqa: F811
    from xaiscore.harness.data import make_synthetic_dataset
    from xaiscore.harness.models import SmallCNN

    out = tmp_path / "killed"
    env = {
        **os.environ,
        "XAISCORE_TEST_METRIC_SLEEP": "0.3",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while len(list(out.glob("shards/*/*/counting_metric.pt"))) < 3:
            if process.poll() is not None:
                pytest.fail(
                    f"the run ended before it was killed: {process.stderr.read().decode()[-2000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail("the run wrote no shards in time")
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    # what a kill during a write leaves, and a shard cut short by a full disk or a bad copy
    leftovers = [
        out / ".results.nc.k2j4_x9a.tmp",
        out / "shards" / "b000000" / ".samples.pt.abcd1234.tmp",
    ]
    for leftover in leftovers:
        leftover.write_bytes(b"half")
    shard = sorted(out.glob("shards/*/*/counting_metric.pt"))[0]
    shard.write_bytes(shard.read_bytes()[:100])
    kwargs = dict(
        methods=["Gradient", "random"], metrics=["sparseness", "counting_metric"], batch_size=2
    )
    data = make_synthetic_dataset(16, size=(32, 32), seed=3)
    model = SmallCNN(1, 2, width=4).eval()
    with pytest.warns(CorruptFileWarning, match=str(shard)):
        resumed = evaluate(data, model, out=out, **kwargs)
    assert not any(leftover.exists() for leftover in leftovers)
    CALLS.clear()
    uninterrupted = evaluate(data, model, out=tmp_path / "uninterrupted", **kwargs)
    xr.testing.assert_identical(resumed, uninterrupted)


def test_overwrite_deletes_only_what_xaiscore_wrote(
    finished_run, tiny_dataset, tiny_model, tmp_path
):  # noqa: F811
    out = copy_run(finished_run[0], tmp_path / "run")
    mine = [
        out / "figures" / "mine.png",
        out / "shards" / "notes.txt",
        out / "attributions" / "keep.npy",
        out / "report.html",
    ]
    for path in mine:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("the user's own")
    outside = tmp_path / "outside.txt"
    outside.write_text("not in the run folder")
    with open(out / ".xaiscore" / "manifest-0.txt", "a") as handle:  # a tampered manifest
        handle.write("../outside.txt\n/etc/hostname\n")
    fresh = evaluate(
        tiny_dataset,
        tiny_model,
        out=out,
        resume=False,
        **{**RUN, "batch_size": 4, "n_examples": 0, "save_attributions": False},
    )
    assert fresh.attrs["batch_size"] == 4
    assert all(path.read_text() == "the user's own" for path in mine) and outside.exists()
    assert not list(out.glob("attributions/*/*.pt")) and not list(out.glob("shards/*/examples.pt"))
    RunStore(out).clear()
    assert all(path.exists() for path in mine)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        [p.relative_to(out).as_posix() for p in mine] + [".xaiscore/lock"]
    )


def test_clear_keeps_the_demo_model_and_refuses_folders_without_manifest(tmp_path):
    store = RunStore(tmp_path / "run")
    store.save(store.model_path, {"settings": {}, "state_dict": {}})
    store.save(store.samples_path(0), {"index": [0]})
    store.clear()
    assert store.model_path.exists() and not store.samples_path(0).exists()
    assert [p.name for p in store.manifest.listed()] == ["model.pt"]
    legacy = tmp_path / "legacy"
    (legacy / "shards").mkdir(parents=True)
    (legacy / "run.json").write_text("{}")
    with pytest.raises(RunFolderError, match="no list of the files xaiscore wrote"):
        RunStore(legacy).clear()
    assert (legacy / "run.json").exists()


def test_manifest_entries_leading_out_of_the_folder_are_ignored(tmp_path):
    root = tmp_path / "run"
    (root / ".xaiscore").mkdir(parents=True)
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "precious.txt").write_text("x")
    (root / "link").symlink_to(tmp_path / "target")
    (root / ".xaiscore" / "manifest-3.txt").write_text(
        "link/precious.txt\n../target/precious.txt\n"
    )
    assert Manifest(root).listed() == []
    Manifest(root).remove()
    assert (tmp_path / "target" / "precious.txt").exists()


def test_a_second_run_on_the_same_folder_is_refused(
    tiny_dataset,  # noqa: F811
    tiny_model,  # noqa: F811
    tmp_path,
):
    out = tmp_path / "run"
    (out / ".xaiscore").mkdir(parents=True)
    with open(out / ".xaiscore" / "lock", "a+b") as other:  # what another process's RunLock holds
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunFolderError, match="another xaiscore run is using this folder"):
            evaluate(tiny_dataset, tiny_model, out=out, methods=["random"], metrics=["sparseness"])
        assert not (out / "shards").exists()
    evaluate(
        tiny_dataset, tiny_model, out=out, methods=["random"], metrics=["sparseness"]
    )  # released
    with RunLock(out), RunLock(out):  # re-entrant within a process
        evaluate(tiny_dataset, tiny_model, out=out, methods=["random"], metrics=["sparseness"])


def test_the_lock_of_a_killed_process_is_not_stale(tmp_path):
    code = (
        "import sys, time; from xaiscore.harness.rundir import RunLock; "
        "RunLock(sys.argv[1]).acquire(); "
        "print('locked', flush=True); time.sleep(60)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], env=env, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout.readline().strip() == b"locked"
        with pytest.raises(RunFolderError):
            RunLock(tmp_path).acquire()
    finally:
        process.kill()
        process.wait()
    RunLock(tmp_path).acquire().release()


def test_a_planted_pickle_in_an_attributions_file_is_refused(tmp_path):
    from xaiscore.harness.methods import PrecomputedAttributions

    marker = tmp_path / "MARKER"
    path = tmp_path / "maps.pt"
    torch.save({"a": _Payload(marker)}, path)
    with pytest.raises(UnsafeFileError, match="refused to load these precomputed attributions"):
        PrecomputedAttributions(path).lookup(["a"], like=torch.zeros(1, 1, 2, 2))
    assert not marker.exists()
