"""The run directory: atomic shard files that make a run resumable.

Layout of ``out/``::

    .xaiscore/manifest-<rank>.txt the files xaiscore wrote here; .xaiscore/lock, the run lock
    run.json                      what the shards belong to (dataset, model, batching, seed)
    model.pt                      the demo model's weights (when the run trained one)
    shards/b000012/samples.pt     ids, labels, targets, predictions of batch 12
    shards/b000012/examples.pt    example images and maps for the report (first batches only)
    shards/b000012/<method>/<metric>.pt   one (method, metric, batch) result
    attributions/<method>/b000012.pt      the maps (with save_attributions)
    results.nc                    the assembled Dataset
    report.html, figures/         the report

Every file is written to a temporary name in its folder and moved into place
with :func:`os.replace`, so a killed run leaves either the old file or the new
one, never half of one; a restarted run loads what is there and computes the
rest. The folder's content is untrusted data (:mod:`xaiscore.harness.rundir`):
files are read with ``weights_only=True`` (a file holding more than plain data
raises :class:`~xaiscore.harness.rundir.UnsafeFileError`, an unreadable one is
computed again after a warning), every file written is listed in the
folder's manifest first (:meth:`RunStore.clear` deletes only listed files),
and :meth:`RunStore.lock` keeps a second run out.

Example:
    >>> import tempfile, torch
    >>> store = RunStore(tempfile.mkdtemp())
    >>> path = store.shard_path(3, "Integrated Gradients", "pointing_game")
    >>> path.relative_to(store.root).as_posix()
    'shards/b000003/Integrated_Gradients-5b3d/pointing_game.pt'
    >>> shard = {"settings": "{}", "score": torch.ones(2), "curve": None, "x": None, "error": None}
    >>> store.save(path, shard)
    >>> store.load(path)["score"].tolist()
    [1.0, 1.0]
    >>> [p.name for p in store.manifest.listed()]
    ['pointing_game.pt']
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from xaiscore.harness.config import ConfigError
from xaiscore.harness.results import atomic_path
from xaiscore.harness.rundir import (
    Manifest,
    RunFolderError,
    RunLock,
    hold_run_folder,
    load_plain,
    remove_leftovers,
)

__all__ = ["RunStore", "RunFolderError", "atomic_write_bytes", "open_run", "slug"]


def slug(name: str) -> str:
    """A file-name-safe form of ``name``; names that had to change get a short hash (no collisions).
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "_"
    if safe == name:
        return safe
    return f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:4]}"


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and :func:`os.replace`."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


class RunStore:
    """Paths and atomic reads/writes of one run directory (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], *, rank: int = 0) -> None:
        self.root = Path(root)
        self.manifest = Manifest(self.root, rank=rank)

    def batch_dir(self, batch: int) -> Path:
        return self.root / "shards" / f"b{batch:06d}"

    def shard_path(self, batch: int, method: str, metric: str) -> Path:
        return self.batch_dir(batch) / slug(method) / f"{slug(metric)}.pt"

    def samples_path(self, batch: int) -> Path:
        return self.batch_dir(batch) / "samples.pt"

    def examples_path(self, batch: int) -> Path:
        return self.batch_dir(batch) / "examples.pt"

    def attributions_path(self, batch: int, method: str) -> Path:
        return self.root / "attributions" / slug(method) / f"b{batch:06d}.pt"

    @property
    def results_path(self) -> Path:
        return self.root / "results.nc"

    @property
    def model_path(self) -> Path:
        return self.root / "model.pt"

    def save(self, path: Path, content: Any) -> None:
        """``torch.save`` ``content`` (plain tensors and data only) to ``path`` atomically; listed
        in the manifest first."""
        self.record(path)
        with atomic_path(path) as temporary:
            torch.save(content, temporary)

    def record(self, path: Path) -> None:
        """List ``path`` in the folder's manifest as a file xaiscore writes (before writing it)."""
        self.manifest.record(path)

    def load(self, path: Path) -> Any | None:
        """The content of ``path``; ``None`` when it does not exist or cannot be read (after a
        warning).

        Raises:
            UnsafeFileError: the file holds more than plain tensors and data (nothing of it ran).
        """
        required, what = self._expected(path)
        return load_plain(path, required=required, what=what)

    def _expected(self, path: Path) -> tuple[tuple[str, ...] | None, str]:
        """The keys a file of this kind must hold, and its kind in words."""
        if path == self.model_path:
            return ("settings", "state_dict"), "cached demo model"
        if path.name == "samples.pt":
            keys = ("index", "source_id", "label", "target", "prediction", "finding")
            return keys, "samples file"
        if path.name == "examples.pt":
            return (), "examples file"
        if path.relative_to(self.root).parts[:1] == ("attributions",):
            return ("settings", "a"), "attributions file"
        return ("settings", "score", "curve", "x", "error"), "shard"

    def lock(self) -> RunLock:
        """The folder's run lock (``with store.lock(): ...``); re-entrant within a process.

        Raises:
            RunFolderError: another run holds it (on entering).
        """
        return RunLock(self.root)

    @contextlib.contextmanager
    def recording_new_files(self, *names: str) -> Iterator[None]:
        """List in the manifest the files that the code inside creates or replaces at ``names``.

        For writers that do not go through :meth:`save` (the report): each name is a file or a
        folder (searched recursively) relative to the run folder; a file counts when it is new or
        was replaced (another inode, size or modification time) when the block ends.
        """
        before = {path: _stamp(path) for path in self._files_at(names)}
        yield
        for path in self._files_at(names):
            if before.get(path) != _stamp(path):
                self.record(path)

    def _files_at(self, names: tuple[str, ...]) -> list[Path]:
        found = []
        for name in names:
            path = self.root / name
            if path.is_file():
                found.append(path)
            elif path.is_dir():
                found.extend(p for p in path.rglob("*") if p.is_file())
        return found

    def remove_leftovers(self) -> list[Path]:
        """Delete the temporary files of interrupted writes (call while holding :meth:`lock`)."""
        return remove_leftovers(self.root)

    def check_run(self, identity: Mapping[str, Any]) -> None:
        """Record what this run is, or check that the folder holds the same run.

        Raises:
            ConfigError: the folder holds shards of a different run (another
                dataset, model, batch size, seed or target); :meth:`clear` it first
                to start over.
        """
        path = self.root / "run.json"
        text = json.dumps(dict(identity), sort_keys=True, indent=1, default=str)
        if path.is_file():
            stored = json.loads(path.read_text(encoding="utf-8"))
            current = json.loads(text)
            changed = sorted(k for k in set(stored) | set(current)
                             if stored.get(k) != current.get(k))
            if changed:
                details = "; ".join(f"{k}: {stored.get(k)!r} then, {current.get(k)!r} now"
                                    for k in changed)
                raise ConfigError(
                    f"{self.root} holds results of a different run ({details}). Choose another "
                    "output folder, or start over (resume=False, `--overwrite`)."
                )
            return
        self.record(path)
        atomic_write_bytes(path, text.encode())

    def clear(self) -> None:
        """Delete what xaiscore wrote here (the files its manifest lists), and nothing else.

        A trained ``model.pt`` stays: it is reused only when its training settings match.

        Raises:
            RunFolderError: the folder holds a ``run.json`` but no manifest (written by an older
                xaiscore, or not by xaiscore): nothing is deleted; delete the folder yourself.
        """
        if not self.manifest.exists():
            if (self.root / "run.json").exists():
                raise RunFolderError(
                    f"{self.root} holds a run.json but no list of the files xaiscore wrote "
                    "(.xaiscore/manifest-*.txt; earlier versions of xaiscore wrote none), so "
                    "`--overwrite` deletes nothing there. Delete the folder yourself or choose "
                    "another."
                )
            return
        self.manifest.remove(keep=(self.model_path.relative_to(self.root).as_posix(),))


def open_run(out: str | os.PathLike[str], dataset: Any, model: Any, *, context: Any, resume: bool,
             batch_size: int, seed: int, target: str, held: contextlib.ExitStack) -> RunStore:
    """The run folder of :func:`~xaiscore.harness.runner.evaluate`: locked (until ``held``
    closes), the leftovers of killed writes removed, cleared first without ``resume``, and checked
    to hold this run (dataset, model, batching, seed, target) or nothing.

    Raises:
        RunFolderError: another run holds the folder; or (without ``resume``) it has a
            ``run.json`` but no manifest.
        ConfigError: the folder holds another run.
    """
    from xaiscore.harness.models import model_fingerprint
    from xaiscore.harness.skips import first_source_id

    store = RunStore(out, rank=context.rank)
    identity = {
        "n_samples": len(dataset),
        "first_source_id": first_source_id(dataset),
        "class_names": list(getattr(dataset, "class_names", ())),
        "model": model_fingerprint(model),
        "batch_size": batch_size,
        "seed": seed,
        "target": target,
    }
    hold_run_folder(store, context, held)
    if context.is_main:
        if not resume:
            store.clear()
        store.check_run(identity)
    context.barrier()
    if not context.is_main:
        store.check_run(identity)
    return store
