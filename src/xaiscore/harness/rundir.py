"""What makes a run folder safe to resume, share and overwrite.

A run folder travels (shared file systems under ``torchrun``, archives, colleagues), so xaiscore
treats what it finds there as *untrusted data*:

* :func:`load_plain` reads the ``.pt`` files of a run (shards, samples, examples, attributions,
  the demo model) with ``torch.load(weights_only=True)``: tensors, numbers, strings, lists and
  dicts only. A file that holds anything else (a pickle that could run code) is refused with
  :class:`UnsafeFileError` before any of it runs; a file that cannot be read (cut short, empty,
  garbage, or not the structure xaiscore writes) is reported with a :class:`CorruptFileWarning`
  naming it and computed again.
* :class:`Manifest`: every file xaiscore writes into the folder is listed in
  ``.xaiscore/manifest-<rank>.txt`` before it is written; ``--overwrite`` (``resume=False``)
  deletes only listed files (inside the folder, never through a link that leads out of it).
* :class:`RunLock`: one run at a time per folder (``.xaiscore/lock``, a kernel file lock that a
  killed process releases by itself, so a lock is never stale).
* :func:`remove_leftovers`: the temporary files of writes that a kill interrupted
  (``.<name>.<random>.tmp``) are removed when the next run opens the folder.

Example:
    >>> import tempfile, torch
    >>> root = Path(tempfile.mkdtemp())
    >>> torch.save({"score": torch.ones(2)}, root / "shard.pt")
    >>> load_plain(root / "shard.pt", required=("score",))["score"].tolist()
    [1.0, 1.0]
    >>> load_plain(root / "missing.pt") is None
    True
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from xaiscore.harness.config import ConfigError

__all__ = [
    "RunFolderError",
    "UnsafeFileError",
    "CorruptFileWarning",
    "load_plain",
    "Manifest",
    "RunLock",
    "remove_leftovers",
    "hold_run_folder",
    "STATE_DIR",
]

#: The folder inside a run folder where xaiscore keeps its manifest and lock.
STATE_DIR = ".xaiscore"

#: The name :func:`xaiscore.harness.results.atomic_path` gives a file while it is written.
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


class RunFolderError(ConfigError):
    """The run folder cannot be used: locked by another run, or holding files xaiscore did not
    write."""


class UnsafeFileError(RunFolderError):
    """A file in a run folder holds more than plain data (a pickle that could run code); it was
    not loaded."""


class CorruptFileWarning(UserWarning):
    """A file in a run folder could not be read; its content is computed again."""


def load_plain(
    path: str | os.PathLike[str], *, required: Sequence[str] | None = None, what: str = "run file"
) -> Any | None:
    """The plain content of a ``.pt`` file of a run folder; ``None`` if it is missing or unreadable.

    Args:
        path: The file.
        required: Keys the content (a dict) must have; ``None`` accepts any content.
        what: What the file is, for messages.

    Returns:
        The content, or ``None`` when the file does not exist or cannot be read (then after a
        :class:`CorruptFileWarning` that names it).

    Raises:
        UnsafeFileError: the file holds objects other than tensors, numbers, strings, lists,
            tuples and dicts (torch's ``weights_only`` loader refused it; nothing in it ran).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Detected pickle protocol", category=UserWarning
            )
            content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" in str(error).lower():
            raise UnsafeFileError(
                f"{path}: refused to load this {what}: it holds objects other than plain "
                "tensors and data (a pickle that could run code). xaiscore never writes such "
                "files; someone or something else put it there. Delete it (or use a fresh output "
                "folder) after checking where it "
                "came from."
            ) from None
        return _corrupt(path, what, error)
    except (
        Exception
    ) as error:  # torch raises RuntimeError, EOFError, KeyError ... for a broken file
        return _corrupt(path, what, error)
    if required is not None:
        if not isinstance(content, Mapping):
            return _corrupt(path, what, f"expected a dict, but it holds a {type(content).__name__}")
        missing = [key for key in required if key not in content]
        if missing:
            return _corrupt(path, what, f"the keys {missing} are missing")
    return content


def _corrupt(path: Path, what: str, reason: object) -> None:
    if isinstance(reason, BaseException):
        first = str(reason).splitlines()[0] if str(reason) else "no message"
        reason = f"{type(reason).__name__}: {first}"
    warnings.warn(
        CorruptFileWarning(f"{path}: cannot read this {what} ({reason}); computing it again."),
        stacklevel=3,
    )
    return None


# --- the manifest ---------------------------------------------------------------------------------


class Manifest:
    """The files xaiscore wrote into a run folder, one relative path per line.

    Each process appends to its own file (``.xaiscore/manifest-<rank>.txt``), so processes of a
    distributed run never write to the same file. A path is listed *before* its file is written,
    so a file that exists was always listed first.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> manifest = Manifest(root)
        >>> manifest.record(root / "shards" / "b000000" / "samples.pt")
        >>> [p.relative_to(root).as_posix() for p in manifest.listed()]
        ['shards/b000000/samples.pt']
    """

    def __init__(self, root: str | os.PathLike[str], *, rank: int = 0) -> None:
        self.root = Path(root)
        self.path = self.root / STATE_DIR / f"manifest-{rank}.txt"
        self._known: set[str] = set()

    def _relative(self, path: str | os.PathLike[str]) -> str:
        relative = Path(
            os.path.relpath(os.path.abspath(path), os.path.abspath(self.root))
        ).as_posix()
        if relative == ".." or relative.startswith("../"):
            raise ValueError(f"{path} is not inside the run folder {self.root}.")
        return relative

    def record(self, path: str | os.PathLike[str]) -> None:
        """List ``path`` (a file inside the run folder) as written by xaiscore."""
        relative = self._relative(path)
        if relative in self._known:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(relative + "\n")
        self._known.add(relative)

    def files(self) -> list[Path]:
        """Every manifest file of the folder (all ranks)."""
        folder = self.root / STATE_DIR
        return sorted(folder.glob("manifest-*.txt")) if folder.is_dir() else []

    def exists(self) -> bool:
        """Whether any process of any run listed a file here."""
        return bool(self.files())

    def listed(self) -> list[Path]:
        """The listed paths that lie inside the folder (entries leading out of it are ignored)."""
        root = Path(os.path.realpath(self.root))
        seen: dict[str, Path] = {}
        for manifest in self.files():
            for line in manifest.read_text(encoding="utf-8", errors="replace").splitlines():
                relative = line.strip()
                if (
                    not relative
                    or relative in seen
                    or Path(relative).is_absolute()
                    or ".." in Path(relative).parts
                ):
                    continue
                candidate = self.root / relative
                parent = Path(os.path.realpath(candidate.parent))
                if parent != root and root not in parent.parents:
                    continue  # through a link that leads out of the folder
                seen[relative] = candidate
        return list(seen.values())

    def remove(self, *, keep: Iterable[str] = ()) -> list[Path]:
        """Delete every listed file except ``keep`` (relative paths), and folders left empty.

        The manifest then lists only the kept files that exist.

        Returns:
            The files deleted.
        """
        kept = set(keep)
        removed, still_listed = [], []
        for path in self.listed():
            relative = path.relative_to(self.root).as_posix()
            if relative in kept:
                if path.is_file():
                    still_listed.append(relative)
                continue
            if path.is_symlink() or path.is_file():
                path.unlink()
                removed.append(path)
        for folder in sorted({p.parent for p in removed}, key=lambda p: len(p.parts), reverse=True):
            while folder != self.root and self.root in folder.parents:
                try:
                    folder.rmdir()  # only when empty
                except OSError:
                    break
                folder = folder.parent
        for manifest in self.files():
            manifest.unlink()
        self._known = set()
        for relative in still_listed:
            self.record(self.root / relative)
        return removed


# --- the lock -------------------------------------------------------------------------------------

_HELD: dict[str, list[Any]] = {}  # real path of the lock file -> [open file, depth]


class RunLock:
    """An exclusive lock on a run folder for this process (re-entrant), released on exit or death.

    ``fcntl.flock`` (POSIX) or ``msvcrt.locking`` (Windows) on ``.xaiscore/lock``: the operating
    system drops the lock when the process ends, however it ends, so there is no stale lock to
    clean up; the file itself stays and means nothing. On file systems without working locks
    (some network file systems) two machines may not see each other's lock.

    Raises:
        RunFolderError: another process holds the lock (from :meth:`acquire`).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.path = self.root / STATE_DIR / "lock"
        self._acquired = False

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.path)
        held = _HELD.get(key)
        if held is not None:
            held[1] += 1
            self._acquired = True
            return self
        handle = open(self.path, "a+b")
        try:
            _lock_file(handle)
        except OSError:
            handle.close()
            raise RunFolderError(
                f"{self.root}: another xaiscore run is using this folder (it holds {self.path}). "
                "Wait for it to finish or choose another output folder. The lock ends with the "
                "process that "
                "holds it; if none is running, the file system does not support locks: delete "
                f"{self.path} and run again."
            ) from None
        _HELD[key] = [handle, 1]
        self._acquired = True
        return self

    def release(self) -> None:
        if not self._acquired:
            return
        self._acquired = False
        key = os.path.realpath(self.path)
        held = _HELD.get(key)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del _HELD[key]
            with contextlib.suppress(OSError):
                _unlock_file(held[0])
            held[0].close()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_file(handle: Any) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock_file(handle: Any) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --- leftovers ------------------------------------------------------------------------------------


def remove_leftovers(root: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of interrupted writes (``.<name>.<8 characters>.tmp``) here.

    Call it only while holding the folder's :class:`RunLock` (no write is in flight then).

    Returns:
        The files deleted.
    """
    root = Path(root)
    removed = []
    if not root.is_dir():
        return removed
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [s for s in subfolders if s != STATE_DIR]
        for name in names:
            if _TEMPORARY.match(name):
                path = Path(folder) / name
                if path.is_file() and not path.is_symlink():
                    path.unlink()
                    removed.append(path)
    return removed


def hold_run_folder(store: Any, context: Any, held: contextlib.ExitStack) -> None:
    """Lock ``store``'s run folder on rank 0 until ``held`` closes; remove the leftovers of killed
    writes. ``context`` is the run's :class:`~xaiscore.harness.distributed.DistributedContext`:
    every rank learns whether the lock was refused.

    Raises:
        RunFolderError: another run holds the folder (on every rank).
    """
    message = None
    if context.is_main:
        try:
            held.enter_context(store.lock())
        except RunFolderError as error:
            message = str(error)
        else:
            store.remove_leftovers()
    message = context.broadcast(message)
    if message is not None:
        raise RunFolderError(message)
