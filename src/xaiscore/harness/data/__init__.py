"""The harness data layer: sample records, readers, geometry and the synthetic default.

* :mod:`~xaiscore.harness.data.records`: :class:`SampleRecord`, :class:`Batch`,
  :func:`collate`, :func:`iterate_batches`, class-name mapping.
* :mod:`~xaiscore.harness.data.errors`: :class:`DatasetError` and the
  ``on_error="raise"|"skip"`` policy.
* :mod:`~xaiscore.harness.data.synthetic`: :func:`make_synthetic_dataset`, the
  offline default.
* :mod:`~xaiscore.harness.data.transforms`: resize/crop/pad that boxes and masks follow.
* Readers: :func:`read_nih_chestxray14`, :func:`read_rsna_pneumonia`,
  :func:`read_vindr_cxr`, :func:`read_coco`, :func:`read_voc`,
  :func:`read_mask_folder`, :func:`read_mvtec`; by name through
  :func:`open_dataset` (:mod:`~xaiscore.harness.data.registry`).

Heavy optional dependencies (Pillow, pydicom, scipy) are imported only when a
reader needs them. Every format, its files and fields are described in
``docs/harness.md`` (section *Data*).
"""

from xaiscore.harness.data._base import AnnotatedDataset
from xaiscore.harness.data.coco import read_coco
from xaiscore.harness.data.errors import DatasetError, DataWarning, Skip
from xaiscore.harness.data.masks import read_mask_folder, read_mvtec
from xaiscore.harness.data.nih import read_nih_chestxray14
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
from xaiscore.harness.data.registry import READERS, get_reader, open_dataset
from xaiscore.harness.data.rsna import read_rsna_pneumonia
from xaiscore.harness.data.synthetic import make_synthetic_dataset
from xaiscore.harness.data.vindr import read_vindr_cxr
from xaiscore.harness.data.voc import read_voc

__all__ = [
    "NEGATIVE_FINDING",
    "READERS",
    "AnnotatedDataset",
    "Batch",
    "DatasetError",
    "DataWarning",
    "RecordDataset",
    "RecordList",
    "SampleRecord",
    "Skip",
    "class_to_index",
    "collate",
    "get_reader",
    "index_to_class",
    "iterate_batches",
    "make_synthetic_dataset",
    "open_dataset",
    "read_coco",
    "read_mask_folder",
    "read_mvtec",
    "read_nih_chestxray14",
    "read_rsna_pneumonia",
    "read_vindr_cxr",
    "read_voc",
]
