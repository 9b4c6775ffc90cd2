"""The canonical sample record, the dataset protocol, collation and batching.

Every reader in :mod:`xaiscore.harness.data` returns a :class:`RecordDataset`:
a sized, indexable collection of :class:`SampleRecord` objects with a
``class_names`` tuple. :func:`collate` stacks records into a :class:`Batch`
whose tensors go straight into the metric kernels (``x``, ``target``, ``mask``);
it is also a valid ``collate_fn`` for :class:`torch.utils.data.DataLoader`.

Geometry conventions (shared with :func:`xaiscore.functional.boxes_to_mask`):
pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``; boxes are ``xyxy`` in
absolute pixels of the record's current canvas (the image as the model sees
it), end-exclusive, so a box ``(0, 0, W, H)`` is the whole image. Volumes
``(C, D, H, W)`` carry boxes ``(x0, y0, z0, x1, y1, z1)``: voxel ``(k, i, j)``
covers ``[j, j + 1) x [i, i + 1) x [k, k + 1)``.

Example:
    >>> import torch
    >>> record = SampleRecord(
    ...     image=torch.zeros(1, 4, 6), label=1, boxes=torch.tensor([[1.0, 0.0, 3.0, 2.0]]),
    ...     box_labels=("Nodule",), mask=None, source_id="s0", finding="Nodule")
    >>> batch = collate([record])
    >>> batch.x.shape, batch.target.tolist(), batch.mask.shape
    (torch.Size([1, 1, 4, 6]), [1], torch.Size([1, 1, 4, 6]))
    >>> batch.mask[0, 0].int().tolist()
    [[0, 1, 1, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

from xaiscore.harness.data.mask_resize import resize_mask
from xaiscore._checks import DTypeError, OptionError, ShapeError, check_option, check_positive_int
from xaiscore.harness.data.errors import DatasetError, Skip, check_on_error

__all__ = [
    "SampleRecord",
    "RecordDataset",
    "RecordList",
    "Batch",
    "collate",
    "iterate_batches",
    "class_to_index",
    "index_to_class",
    "NEGATIVE_FINDING",
]

#: The finding name of a sample without findings, used by every reader by default.
NEGATIVE_FINDING = "No Finding"


@dataclass(frozen=True, eq=False)
class SampleRecord:
    """One sample: the image as the model sees it, its label and its ground truth.

    Records compare by identity (``eq=False``): their tensor fields have no
    single truth value. Use :func:`dataclasses.replace` to derive a new record.

    Attributes:
        image: ``(C, *S)`` float32, the image after all transforms.
        label: Class index of the classification target in the dataset's
            ``class_names``.
        boxes: ``(N, 4)`` float32, ``xyxy`` absolute pixels in the current
            canvas (end-exclusive; ``N`` may be 0); on a volume ``(C, D, H, W)``,
            ``(N, 6)`` ``(x0, y0, z0, x1, y1, z1)`` voxels (``x`` along ``W``, ``z``
            along ``D``; see :mod:`xaiscore.harness.data.boxes3d`).
        box_labels: One finding name per box.
        mask: ``(1, *S)`` bool ground-truth mask at the image's resolution, or
            ``None``: then :func:`collate` rasterises ``boxes`` (pixel-centre rule).
        source_id: Stable id (file name, patient id, synthetic index, plus the
            finding when one image yields several samples).
        finding: The sample's finding class name (:data:`NEGATIVE_FINDING` for negatives).
        meta: Free-form facts (original size, reader, file, rows ...).
        extra_masks: Further named ``(1, *S)`` bool masks that follow every
            geometry transform, e.g. ``"shortcut"`` for the synthetic marker.
    """

    image: Tensor
    label: int
    boxes: Tensor
    box_labels: tuple[str, ...]
    mask: Tensor | None
    source_id: str
    finding: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    extra_masks: Mapping[str, Tensor] = field(default_factory=dict)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """The spatial shape ``S`` of the image."""
        return tuple(self.image.shape[1:])

    def with_updates(self, **changes: Any) -> SampleRecord:
        """A copy with ``changes`` applied (``meta`` entries are merged, not replaced)."""
        if "meta" in changes:
            changes["meta"] = MappingProxyType({**self.meta, **changes["meta"]})
        return replace(self, **changes)


@runtime_checkable
class RecordDataset(Protocol):
    """What every reader returns: ``len``, integer indexing and ``class_names``.

    Readers also expose ``skipped: list[Skip]`` (left-out samples and why) and
    ``on_error``; :func:`iterate_batches` uses them when present.
    """

    class_names: tuple[str, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> SampleRecord: ...


class RecordList:
    """An in-memory :class:`RecordDataset` over a list of records.

    Args:
        records: The records.
        class_names: The class names the records' ``label`` index into.

    Example:
        >>> import torch
        >>> r = SampleRecord(torch.zeros(1, 2, 2), 0, torch.zeros(0, 4), (), None, "a", "No Finding")
        >>> ds = RecordList([r], class_names=("No Finding", "Nodule"))
        >>> len(ds), ds[0].source_id, ds.skipped
        (1, 'a', [])
    """  # noqa: E501

    def __init__(self, records: Iterable[SampleRecord], *, class_names: Sequence[str]) -> None:
        self.records: list[SampleRecord] = list(records)
        self.class_names: tuple[str, ...] = tuple(class_names)
        self.skipped: list[Skip] = []
        self.on_error = "raise"

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> SampleRecord:
        return self.records[i]


@dataclass
class Batch:
    """A collated batch, ready for the metric kernels.

    Attributes:
        x: ``(B, C, *S)`` float images.
        target: ``(B,)`` long, the class whose score/explanation is evaluated.
        mask: ``(B, 1, *S)`` bool ground truth: the record's mask, or its boxes
            rasterised by :func:`~xaiscore.functional.boxes_to_mask` (pixel-centre rule).
        boxes: ``B`` tensors ``(N_i, 4)`` xyxy (``(N_i, 6)`` on volumes).
        source_ids: ``B`` stable ids.
        findings: ``B`` finding names.
        labels: ``(B,)`` long true labels (equal to ``target`` unless the run
            explains another class).
        box_labels: ``B`` tuples of finding names, one per box.
        meta: ``B`` meta mappings.
        extra_masks: Name to ``(B, 1, *S)`` bool (all ``False`` for records
            without that mask).
    """

    x: Tensor
    target: Tensor
    mask: Tensor
    boxes: list[Tensor]
    source_ids: list[str]
    findings: list[str]
    labels: Tensor
    box_labels: list[tuple[str, ...]] = field(default_factory=list)
    meta: list[Mapping[str, Any]] = field(default_factory=list)
    extra_masks: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.x.shape[0]

    def mask_at(self, size: Sequence[int], *, rule: Literal["nearest", "area"] = "nearest",
                threshold: float = 0.5) -> Tensor:
        """The ground-truth mask resized to ``size`` (e.g. the attribution's resolution).

        See :func:`xaiscore.harness.data.mask_resize.resize_mask` for the rules.
        """
        return resize_mask(self.mask, size, rule=rule, threshold=threshold)

    def to(self, device: torch.device | str) -> Batch:
        """The batch with every tensor moved to ``device``."""
        return replace(
            self,
            x=self.x.to(device),
            target=self.target.to(device),
            mask=self.mask.to(device),
            boxes=[b.to(device) for b in self.boxes],
            labels=self.labels.to(device),
            extra_masks={k: v.to(device) for k, v in self.extra_masks.items()},
        )


def _check_record(record: Any, position: int) -> SampleRecord:
    if not isinstance(record, SampleRecord):
        raise DTypeError(
            f"Expected records[{position}] to be a SampleRecord, but got {type(record).__name__}.")
    if (not isinstance(record.image, Tensor)
        or not record.image.is_floating_point() or record.image.ndim < 2):
        got = (f"{record.image.dtype} tensor of shape {tuple(record.image.shape)}"
               if isinstance(record.image, Tensor) else type(record.image).__name__)
        raise ShapeError(
            f"Expected the image of record {record.source_id!r} as a float tensor (C, *S), but got "
            f"{got}."
        )
    spatial_dims = record.image.ndim - 1
    width = 6 if spatial_dims == 3 else 4
    if record.boxes.ndim != 2 or record.boxes.shape[1] not in (4, 6) or (
            record.boxes.shape[0] > 0 and record.boxes.shape[1] != width):
        layout = "(N, 6) (x0, y0, z0, x1, y1, z1)" if width == 6 else "(N, 4)"
        raise ShapeError(
            f"Expected the boxes of record {record.source_id!r} of shape {layout}, "
            f"but got {tuple(record.boxes.shape)}."
        )
    if record.mask is not None and (record.mask.shape != (1, *record.spatial_shape)):
        raise ShapeError(
            f"Expected the mask of record {record.source_id!r} of shape "
            f"{(1, *record.spatial_shape)}, but got {tuple(record.mask.shape)}."
        )
    return record


def _check_same_shape(records: Sequence[SampleRecord]) -> None:
    first = records[0]
    for record in records[1:]:
        if record.image.shape != first.image.shape:
            raise ShapeError(
                f"Expected every image in a batch to have shape {tuple(first.image.shape)} "
                f"(record {first.source_id!r}), but record {record.source_id!r} has "
                f"{tuple(record.image.shape)}. Resize them to one size, e.g. with "
                "xaiscore.harness.data.transforms.Resize."
            )


def _masks(records: Sequence[SampleRecord], spatial: tuple[int, ...], *, rule: str,
           device: torch.device) -> Tensor:
    """``(B, 1, *S)``: each record's mask, or its boxes rasterised (2-D and 3-D; elsewhere none
    allowed)."""
    mask = torch.zeros((len(records), 1, *spatial), dtype=torch.bool, device=device)
    from_boxes = [i for i, r in enumerate(records) if r.mask is None]
    for i, r in enumerate(records):
        if r.mask is not None:
            mask[i] = r.mask.to(device=device, dtype=torch.bool)
    if not from_boxes:
        return mask
    if len(spatial) in (2, 3):
        from xaiscore.harness.data.boxes3d import rasterize_boxes

        width = 2 * len(spatial)
        rasterised = rasterize_boxes(
            [records[i].boxes.to(device).reshape(-1, width) for i in from_boxes], spatial,
            rule=rule,
            device=device,
        )
        mask[from_boxes] = rasterised
        return mask
    for i in from_boxes:
        if records[i].boxes.shape[0] > 0:
            raise ShapeError(
                f"Expected a mask for record {records[i].source_id!r}: boxes rasterise only onto "
                f"2-D and 3-D images, but the image has {len(spatial)} spatial dimension(s)."
            )
    return mask


def _extra_masks(records: Sequence[SampleRecord], spatial: tuple[int, ...], *,
                 device: torch.device) -> dict[str, Tensor]:
    """Name -> ``(B, 1, *S)`` of every extra mask any record has (empty for the records without it).
    """
    names = sorted({name for r in records for name in r.extra_masks})
    extra: dict[str, Tensor] = {}
    for name in names:
        stacked = torch.zeros((len(records), 1, *spatial), dtype=torch.bool, device=device)
        for i, r in enumerate(records):
            if name in r.extra_masks:
                stacked[i] = r.extra_masks[name].to(device=device, dtype=torch.bool)
        extra[name] = stacked
    return extra


def collate(records: Sequence[SampleRecord], *,
            rule: Literal["center", "cover"] = "center") -> Batch:
    """Stack records into a :class:`Batch`.

    Records without a mask get ``boxes_to_mask(boxes, rule=rule)`` (2-D images
    and volumes, :func:`~xaiscore.harness.data.boxes3d.rasterize_boxes`; a 1-D
    record without a mask must have no boxes and gets an empty mask). All images must share one
    shape: resize them first (see
    :mod:`xaiscore.harness.data.transforms`).

    Args:
        records: A non-empty sequence of :class:`SampleRecord`.
        rule: Box rasterisation rule, ``"center"`` (default) or ``"cover"``.

    Raises:
        ShapeError: no records, or images (or masks) of different shapes.
        DTypeError: an element is not a :class:`SampleRecord`.

    Shape:
        - records: ``B`` records with images ``(C, *S)``
        - output: ``x`` ``(B, C, *S)``, ``target``/``labels`` ``(B,)``, ``mask`` ``(B, 1, *S)``

    Example:
        >>> import torch
        >>> r = SampleRecord(torch.ones(1, 2, 3), 0, torch.zeros(0, 4), (), None, "a", "No Finding")
        >>> b = collate([r, r])
        >>> b.x.shape, b.mask.any().item(), b.source_ids
        (torch.Size([2, 1, 2, 3]), False, ['a', 'a'])
    """
    check_option(rule, "rule", ("center", "cover"))
    if len(records) == 0:
        raise ShapeError("Expected at least one record to collate, but got none.")
    records = [_check_record(r, i) for i, r in enumerate(records)]
    _check_same_shape(records)
    spatial = records[0].spatial_shape
    x = torch.stack([r.image for r in records])
    device = x.device
    mask = _masks(records, spatial, rule=rule, device=device)
    labels = torch.tensor([int(r.label) for r in records], dtype=torch.long, device=device)
    extra = _extra_masks(records, spatial, device=device)
    return Batch(
        x=x,
        target=labels.clone(),
        mask=mask,
        boxes=[r.boxes for r in records],
        source_ids=[r.source_id for r in records],
        findings=[r.finding for r in records],
        labels=labels,
        box_labels=[tuple(r.box_labels) for r in records],
        meta=[r.meta for r in records],
        extra_masks=extra,
    )


def iterate_batches(
    dataset: RecordDataset,
    batch_size: int,
    *,
    indices: Iterable[int] | None = None,
    drop_last: bool = False,
    on_error: Literal["raise", "skip"] | None = None,
    rule: Literal["center", "cover"] = "center",
) -> Iterator[Batch]:
    """Yield collated batches of ``batch_size`` records in index order.

    Args:
        dataset: Any :class:`RecordDataset`.
        batch_size: Records per batch (the last batch may be smaller).
        indices: Which samples, in which order (default: all, in order).
        drop_last: Leave out a last, smaller batch.
        on_error: What to do when loading a record raises :class:`DatasetError`
            (a corrupt image, a box outside the image): ``"raise"``, or
            ``"skip"`` to append a :class:`Skip` to ``dataset.skipped`` (once
            per failing sample) and fill the batch with the next records.
            Default: the dataset's own ``on_error`` (``"raise"`` if it has none).
        rule: Box rasterisation rule for records without a mask.

    Raises:
        DatasetError: a record cannot be loaded and ``on_error="raise"``.
        OptionError: ``on_error="skip"`` for a dataset without a ``skipped`` list.

    Example:
        >>> from xaiscore.harness.data.synthetic import make_synthetic_dataset
        >>> ds = make_synthetic_dataset(5, size=(16, 16))
        >>> [len(b) for b in iterate_batches(ds, 2)]
        [2, 2, 1]
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    policy = check_on_error(on_error if on_error is not None
                            else getattr(dataset, "on_error", "raise"))
    skipped = getattr(dataset, "skipped", None)
    if policy == "skip" and not isinstance(skipped, list):
        raise OptionError(
            "Expected a dataset with a `skipped` list for on_error='skip', but "
            f"{type(dataset).__name__} has none."
        )
    order = range(len(dataset)) if indices is None else indices
    pending: list[SampleRecord] = []
    for index in order:
        try:
            record = dataset[index]
        except DatasetError as error:
            if policy == "raise":
                raise
            entry = Skip(error.file or "<data>", error.row, error.reason)
            if entry not in skipped:  # type: ignore[operator]
                skipped.append(entry)  # type: ignore[union-attr]
            continue
        pending.append(record)
        if len(pending) == batch_size:
            yield collate(pending, rule=rule)
            pending = []
    if pending and not drop_last:
        yield collate(pending, rule=rule)


def class_to_index(class_names: Sequence[str] | RecordDataset) -> dict[str, int]:
    """Map class names to indices (accepts a dataset or a sequence of names).

    Raises:
        OptionError: a name occurs twice.

    Example:
        >>> class_to_index(("No Finding", "Nodule"))
        {'No Finding': 0, 'Nodule': 1}
    """
    names = tuple(getattr(class_names, "class_names", class_names))
    mapping = {name: i for i, name in enumerate(names)}
    if len(mapping) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise OptionError(f"Expected distinct class names, but got duplicates {duplicates}.")
    return mapping


def index_to_class(class_names: Sequence[str] | RecordDataset) -> dict[int, str]:
    """Map indices to class names (the inverse of :func:`class_to_index`).

    Example:
        >>> index_to_class(("No Finding", "Nodule"))[1]
        'Nodule'
    """
    return {i: name for name, i in class_to_index(class_names).items()}
