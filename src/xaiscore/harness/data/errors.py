"""Errors of the data layer, and the ``on_error="raise"|"skip"`` policy.

Every reader reports a bad file or a bad annotation row with a
:class:`DatasetError` that names the file and the row. With
``on_error="skip"`` the reader records the problem in its ``skipped`` list
instead, as a :class:`Skip` ``(source, row, reason)``, and leaves the affected
sample out; nothing is ever dropped without a trace.

Example:
    >>> err = DatasetError("unknown finding 'Foo'", file="labels.csv", row=3)
    >>> str(err)
    "labels.csv, row 3: unknown finding 'Foo'"
    >>> isinstance(err, ValueError), (err.file, err.row)
    (True, ('labels.csv', 3))
"""

from __future__ import annotations

import os
from typing import Literal, NamedTuple

from xaiscore._checks import OptionError, XaiscoreError

__all__ = ["DatasetError", "DataWarning", "Skip", "OnError", "SkipLog", "check_on_error"]

OnError = Literal["raise", "skip"]


class DatasetError(XaiscoreError, ValueError):
    """A data file or an annotation row cannot be used.

    Attributes:
        file: The file at fault (annotation file or image), as a string, or ``None``.
        row: Where in ``file``: a 1-based line number for CSV files (the header
            is line 1), an index or id (``"annotations[3] (id 17)"``) for JSON
            and XML files, or ``None`` when the whole file is at fault.
        reason: The problem, without the location.
    """

    def __init__(self, reason: str, *, file: str | os.PathLike[str] | None = None,
                 row: int | str | None = None) -> None:
        self.file = None if file is None else os.fspath(file)
        self.row = row
        self.reason = reason
        location = self.file or "<data>"
        if row is not None:
            location += f", row {row}"
        super().__init__(f"{location}: {reason}")

    def __reduce__(self):  # keep file/row through pickling (DataLoader workers)
        return (_rebuild_dataset_error, (self.reason, self.file, self.row))


class DataWarning(UserWarning):
    """A data file loads but looks damaged (e.g. a CSV whose last line has no line break)."""


def _rebuild_dataset_error(reason: str, file: str | None, row: int | str | None) -> DatasetError:
    return DatasetError(reason, file=file, row=row)


class Skip(NamedTuple):
    """One sample (or annotation row) left out under ``on_error="skip"``."""

    source: str
    row: int | str | None
    reason: str


def check_on_error(on_error: object) -> OnError:
    """Raise :class:`~xaiscore.OptionError` unless ``on_error`` is ``"raise"`` or ``"skip"``."""
    if on_error not in ("raise", "skip"):
        raise OptionError(
            f"Expected `on_error` to be one of 'raise', 'skip', but got {on_error!r}.")
    return on_error  # type: ignore[return-value]


class SkipLog:
    """Applies the ``on_error`` policy: raise the error, or record it and go on.

    Args:
        on_error: ``"raise"`` re-raises every :class:`DatasetError`; ``"skip"``
            appends a :class:`Skip` to :attr:`skipped` and returns.

    Example:
        >>> log = SkipLog("skip")
        >>> log.report(DatasetError("missing image", file="a.png"))
        >>> log.skipped
        [Skip(source='a.png', row=None, reason='missing image')]
    """

    def __init__(self, on_error: OnError) -> None:
        self.on_error: OnError = check_on_error(on_error)
        self.skipped: list[Skip] = []

    def report(self, error: DatasetError) -> None:
        """Raise ``error`` (``on_error="raise"``) or record it (``"skip"``)."""
        if self.on_error == "raise":
            raise error
        self.skipped.append(Skip(error.file or "<data>", error.row, error.reason))

    def note(self, source: str, row: int | str | None, reason: str) -> None:
        """Record a by-design exclusion (e.g. no reader majority) whatever the policy."""
        self.skipped.append(Skip(source, row, reason))
