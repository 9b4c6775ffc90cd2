"""The harness data layer: sample records, readers, geometry and the synthetic default.

* :mod:`~xaiscore.harness.data.records`: :class:`SampleRecord`, :class:`Batch`,
  :func:`collate`, :func:`iterate_batches`, class-name mapping.
* :mod:`~xaiscore.harness.data.errors`: :class:`DatasetError` and the
  ``on_error="raise"|"skip"`` policy.
* :mod:`~xaiscore.harness.data.synthetic`: :func:`make_synthetic_dataset`, the
  offline default.

Heavy optional dependencies (Pillow, pydicom, scipy) are imported only when a
reader needs them.
"""

from xaiscore.harness.data.errors import DatasetError, Skip
from xaiscore.harness.data.records import (
    NEGATIVE_FINDING,
    Batch,
    RecordDataset,
    RecordList,
    SampleRecord,
    class_to_index,
    collate,
    index_to_class,
    iterate_batches,
)
from xaiscore.harness.data.synthetic import make_synthetic_dataset

__all__ = [
    "NEGATIVE_FINDING",
    "Batch",
    "DatasetError",
    "RecordDataset",
    "RecordList",
    "SampleRecord",
    "Skip",
    "class_to_index",
    "collate",
    "index_to_class",
    "iterate_batches",
    "make_synthetic_dataset",
]
