"""What :func:`~xaiscore.harness.runner.evaluate` accepts as a dataset.

Besides the record datasets of :mod:`xaiscore.harness.data` (``len``, indexing to
:class:`~xaiscore.harness.data.records.SampleRecord`, ``class_names``), ``evaluate`` takes
plain PyTorch data, converted here into records:

* a map-style dataset (``len`` and indexing, e.g. :class:`torch.utils.data.TensorDataset` or a
  list) of samples; converted lazily, one sample per index (a dataset with a ``class_names``
  attribute is taken for a record dataset);
* a :class:`torch.utils.data.DataLoader` or any other iterable of samples or of batches; read
  once and kept in memory (the runner indexes samples and may read them again on resume).

A sample is a tuple ``(x, y)`` or ``(x, y, mask)``, or a mapping with keys ``x`` (or
``image``), ``y`` (or ``label``, ``target``), and optionally ``mask``, ``boxes`` (``(N, 4)``
``xyxy`` end-exclusive pixels, a list per sample in a batch), ``finding`` and ``source_id``; a
batch may also be a :class:`~xaiscore.harness.data.records.Batch` (a DataLoader over records
with ``collate_fn=collate``). ``x`` is ``(C, *S)``, ``y`` a class index (int or 0-d tensor),
``mask`` ``(1, *S)`` or ``S``. A batch has the same entries with a leading batch dimension
(``y`` of shape ``(B,)``). Samples get the ids ``sample-000000``, ``sample-000001``, ... in
order (unless they have a ``source_id``), and the finding name ``class_names[y]`` (the
dataset's, or its DataLoader's dataset's, ``class_names`` or ``classes``) or ``str(y)``.

Example:
    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> data = TensorDataset(torch.rand(5, 1, 8, 8), torch.tensor([0, 1, 1, 0, 1]))
    >>> records = as_record_dataset(data)
    >>> len(records), records[1].label, records[1].source_id, records[1].mask
    (5, 1, 'sample-000001', None)
    >>> batches = as_record_dataset(DataLoader(data, batch_size=2))
    >>> len(batches), batches[4].finding
    (5, '1')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from torch import nn

from xaiscore._checks import DTypeError, OptionError, ShapeError, check_option, check_positive_int
from xaiscore._engine.batching import check_max_batch_size

__all__ = ["as_record_dataset", "ConvertedDataset", "check_run_arguments"]

_ACCEPTED = (
    "a record dataset (len, indexing to SampleRecord, class_names), a map-style dataset or "
    "list of (x, y) / (x, y, mask) tuples or dicts with keys 'x', 'y' (and 'mask', 'boxes'), "
    "or a DataLoader / iterable of such samples or batches"
)
_X_KEYS = ("x", "image")
_Y_KEYS = ("y", "label", "target")


def _class_names(dataset: Any) -> tuple[str, ...]:
    inner = getattr(dataset, "dataset", None)  # a DataLoader's dataset
    names = next((n for n in (getattr(d, k, None) for d in (dataset, inner)
                              for k in ("class_names", "classes")) if n), ())
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        return ()
    return tuple(str(n) for n in names)


def _fields(item: Any, position: int) -> dict[str, Any]:
    """``x``, ``y``, ``mask``, ``boxes``, ``finding``, ``source_id`` of one sample or batch."""
    from xaiscore.harness.data.records import Batch

    if isinstance(item, Batch):  # a DataLoader with collate_fn=records.collate
        return {"x": item.x, "y": item.labels, "mask": item.mask, "boxes": item.boxes,
                "finding": item.findings, "source_id": item.source_ids}
    if isinstance(item, Mapping):
        x_key = next((k for k in _X_KEYS if k in item), None)
        y_key = next((k for k in _Y_KEYS if k in item), None)
        if x_key is None or y_key is None:
            raise DTypeError(
                f"Expected item {position} of the dataset to have keys 'x' and 'y' (or 'image' and "
                f"'label'), but got keys {sorted(map(str, item))}."
            )
        return {"x": item[x_key], "y": item[y_key], "mask": item.get("mask"),
                "boxes": item.get("boxes"), "finding": item.get("finding"), "source_id": item.get("source_id")}  # noqa: E501
    if isinstance(item, (tuple, list)) and len(item) in (2, 3):
        return {"x": item[0], "y": item[1], "mask": item[2] if len(item) == 3 else None,
                "boxes": None, "finding": None}
    what = f"a {len(item)}-tuple" if isinstance(item, (tuple, list)) else type(item).__name__
    raise DTypeError(f"Expected item {position} of the dataset to be {_ACCEPTED}; but got {what}.")


def _is_batch(fields: Mapping[str, Any]) -> bool:
    y = fields["y"]
    return isinstance(y, Tensor) and y.ndim >= 1 or isinstance(y, (list, tuple))


def _label(y: Any, where: str) -> int:
    if isinstance(y, Tensor):
        if y.numel() != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise DTypeError(
                f"Expected y of {where} to be a class index (an int or a 0-d integer tensor), but "
                f"got a {y.dtype} tensor of shape {tuple(y.shape)}."
            )
        return int(y.reshape(()))
    if isinstance(y, bool) or not isinstance(y, int):
        raise DTypeError(
            f"Expected y of {where} to be a class index (an int), but got {type(y).__name__}.")
    return y


def _image(x: Any, where: str) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim < 2:
        got = f"a tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ShapeError(f"Expected x of {where} to be an image tensor (C, *S), but got {got}.")
    return x.detach().float() if not x.is_floating_point() else x.detach()


def _mask(mask: Any, spatial: tuple[int, ...], where: str) -> Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, Tensor) or tuple(mask.shape) not in (spatial, (1, *spatial)):
        got = f"shape {tuple(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
        raise ShapeError(
            f"Expected the mask of {where} of shape {(1, *spatial)} or {spatial}, but got {got}.")
    return mask.detach().reshape(1, *spatial).to(torch.bool) if mask.dtype == torch.bool \
        else (mask.detach().reshape(1, *spatial) > 0)


def _boxes(boxes: Any, where: str) -> Tensor:
    if boxes is None:
        return torch.zeros(0, 4)
    boxes = torch.as_tensor(boxes.detach() if isinstance(boxes, Tensor) else boxes,
                            dtype=torch.float32)
    if boxes.numel() == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ShapeError(
            f"Expected the boxes of {where} of shape (N, 4), but got {tuple(boxes.shape)}.")
    return boxes


def _record(fields: Mapping[str, Any], index: int, class_names: Sequence[str]) -> Any:
    from xaiscore.harness.data.records import SampleRecord

    where = f"sample {index}"
    image = _image(fields["x"], where)
    label = _label(fields["y"], where)
    finding = fields.get("finding")
    if finding is None:
        finding = class_names[label] if 0 <= label < len(class_names) else str(label)
    boxes = _boxes(fields.get("boxes"), where)
    return SampleRecord(image=image, label=label, boxes=boxes,
                        box_labels=(str(finding),) * boxes.shape[0],
                        mask=_mask(fields.get("mask"), tuple(image.shape[1:]), where),
                        source_id=str(fields.get("source_id") or f"sample-{index:06d}"),
                        finding=str(finding))


def _unbatch(fields: Mapping[str, Any], position: int) -> list[dict[str, Any]]:
    y = fields["y"]
    n = len(y)
    samples = []
    for i in range(n):
        sample = {}
        for key, value in fields.items():
            if value is None:
                sample[key] = None
                continue
            if len(value) != n:
                raise ShapeError(
                    f"Expected {key!r} of batch {position} to have {n} rows (as y), but got "
                    f"{len(value)}."
                )
            sample[key] = value[i]
        samples.append(sample)
    return samples


class ConvertedDataset:
    """A record dataset over plain samples (see the module docstring); ``len``, indexing,
    ``class_names``.

    Args:
        samples: A map-style dataset of samples (converted on indexing), or a list of
            already unbatched sample fields.
        class_names: The class names (may be empty).
    """

    def __init__(self, samples: Any, *, class_names: Sequence[str] = ()) -> None:
        self.samples = samples
        self.class_names: tuple[str, ...] = tuple(class_names)
        self.skipped: list[Any] = []
        self.on_error = "raise"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Any:
        item = self.samples[i]
        fields = item if isinstance(item, dict) and "_fields" in item else _fields(item, i)
        if _is_batch(fields):
            raise ShapeError(f"Expected item {i} of the dataset to be one sample, but y has shape "
                             f"{tuple(torch.as_tensor(fields['y']).shape)} (a batch?).")
        return _record(fields, i, self.class_names)


def as_record_dataset(dataset: Any) -> Any:
    """``dataset`` as a record dataset: unchanged when it is one, else converted.

    Raises:
        DTypeError: anything else (a tensor, a string, a mapping, an item of another kind).
        ShapeError: an item's tensors of the wrong shape.
    """
    from torch.utils.data import DataLoader

    from xaiscore.harness.data.records import SampleRecord

    if isinstance(dataset, (str, bytes, Mapping, Tensor)) or not isinstance(dataset, Iterable) \
            and not hasattr(dataset, "__getitem__"):
        raise DTypeError(f"Expected `dataset` to be {_ACCEPTED}; but got {type(dataset).__name__}.")
    class_names = _class_names(dataset)
    indexable = hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")
    if indexable and not isinstance(dataset, DataLoader):
        # a record dataset: nothing loaded here
        if len(dataset) == 0 or hasattr(dataset, "class_names"):
            return dataset
        first = dataset[0]
        if isinstance(first, SampleRecord):
            return dataset
        if not _is_batch(_fields(first, 0)):
            return ConvertedDataset(dataset, class_names=class_names)
    samples: list[dict[str, Any]] = []
    for position, item in enumerate(dataset):
        if isinstance(item, SampleRecord):
            raise DTypeError(
                "Expected a record dataset to be indexable (len and [i]), but got an iterable "
                "of SampleRecord; wrap it in xaiscore.harness.data.records.RecordList.")
        fields = _fields(item, position)
        samples.extend(_unbatch(fields, position) if _is_batch(fields) else [fields])
    for sample in samples:
        sample["_fields"] = True
    return ConvertedDataset(samples, class_names=class_names)


def check_run_arguments(model: Any, dataset: Any, *, batch_size: int, max_batch_size: int,
                        repeats: int,
                         n_examples: int, target: str, on_error: str) -> None:
    """Check :func:`~xaiscore.harness.runner.evaluate`'s arguments (after
    :func:`as_record_dataset`).

    Raises:
        OptionError, DTypeError: a value out of range, not a module, or an empty dataset.
    """
    check_positive_int(batch_size, "batch_size")
    check_max_batch_size(max_batch_size)
    check_positive_int(repeats, "repeats")
    check_positive_int(n_examples, "n_examples", minimum=0)
    check_option(target, "target", ("label", "predicted"))
    check_option(on_error, "on_error", ("raise", "record"))
    if not isinstance(model, nn.Module):
        raise OptionError(
            f"Expected `model` to be a torch.nn.Module, but got {type(model).__name__}.")
    if len(dataset) == 0:
        raise OptionError("Expected a non-empty dataset, but it has 0 samples.")
