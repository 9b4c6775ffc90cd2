"""The run directory: atomic shard files that make a run resumable.

Layout of ``out/``::

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
rest.

Example:
    >>> import tempfile, torch
    >>> store = RunStore(tempfile.mkdtemp())
    >>> path = store.shard_path(3, "Integrated Gradients", "pointing_game")
    >>> path.relative_to(store.root).as_posix()
    'shards/b000003/Integrated_Gradients-5b3d/pointing_game.pt'
    >>> store.save(path, {"score": torch.ones(2)})
    >>> store.load(path)["score"].tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from xaiscore.harness.config import ConfigError
from xaiscore.harness.results import atomic_path

__all__ = ["RunStore", "atomic_write_bytes", "slug"]


def slug(name: str) -> str:
    """A file-name-safe form of ``name``; names that had to change get a short hash (no collisions)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "_"
    if safe == name:
        return safe
    return f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:4]}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and :func:`os.replace`."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


class RunStore:
    """Paths and atomic reads/writes of one run directory (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

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
        """``torch.save`` ``content`` to ``path`` atomically."""
        with atomic_path(path) as temporary:
            torch.save(content, temporary)

    def load(self, path: Path) -> Any | None:
        """The content of ``path``, or ``None`` when it does not exist."""
        if not path.is_file():
            return None
        return torch.load(path, map_location="cpu", weights_only=False)

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
            changed = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
            if changed:
                details = "; ".join(f"{k}: {stored.get(k)!r} then, {current.get(k)!r} now" for k in changed)
                raise ConfigError(
                    f"{self.root} holds results of a different run ({details}). Choose another output "
                    "folder, or start over (resume=False, `--overwrite`)."
                )
            return
        atomic_write_bytes(path, text.encode())

    def clear(self) -> None:
        """Delete what a run wrote here (shards, attributions, results, report, run.json).

        A trained ``model.pt`` stays: it is reused only when its training settings match.
        """
        for name in ("shards", "attributions", "figures"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        for name in ("run.json", "results.nc", "report.html"):
            (self.root / name).unlink(missing_ok=True)
