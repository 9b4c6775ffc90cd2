"""Rows and samples left out of a run, as the results record them (``skipped_samples``).

The schema of an entry (``file``, ``row``, ``reason``, ``index``) is in ``docs/harness.md``,
section *Results schema*.

Example:
    >>> from xaiscore.harness.data import Skip
    >>> class Data:
    ...     skipped = [Skip("labels.csv", 7, "unknown finding 'Foo'")]
    >>> reader_skips(Data())
    [{'file': 'labels.csv', 'row': 7, 'reason': "unknown finding 'Foo'", 'index': None}]
"""

from __future__ import annotations

from typing import Any

from xaiscore._checks import OptionError

__all__ = ["first_source_id", "skipped_row", "reader_skips"]


def first_source_id(dataset: Any) -> str:
    """The id of the dataset's first sample, read without loading it where the dataset allows.

    Under ``on_error="skip"`` a first record that fails to load is passed over (the batch that
    holds it records the skip).
    """
    from xaiscore.harness.data.errors import DatasetError

    entries = getattr(dataset, "entries", None)
    if entries and isinstance(getattr(entries[0], "source_id", None), str):
        return entries[0].source_id
    for index in range(len(dataset)):
        try:
            return dataset[index].source_id
        except DatasetError:
            if getattr(dataset, "on_error", "raise") != "skip":
                raise
    raise OptionError(
        "No sample could be loaded: every record failed (see the dataset's `skipped`)."
    )


def skipped_row(file: Any, row: Any, reason: Any, index: int | None) -> dict[str, Any]:
    """One entry of the results' ``skipped_samples`` (schema in ``docs/harness.md``)."""
    return {
        "file": None if file is None else str(file),
        "row": row if row is None or isinstance(row, (int, str)) else str(row),
        "reason": str(reason),
        "index": index,
    }


def reader_skips(dataset: Any) -> list[dict[str, Any]]:
    """The rows and samples the dataset's reader left out (its ``skipped`` list), as entries."""
    return [
        skipped_row(
            getattr(skip, "source", None),
            getattr(skip, "row", None),
            getattr(skip, "reason", skip),
            None,
        )
        for skip in getattr(dataset, "skipped", None) or ()
    ]
