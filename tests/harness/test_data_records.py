"""SampleRecord, collate, iterate_batches, class mapping, DatasetError and the skip policy."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch.utils.data import DataLoader

from tests.harness.data_fixtures import box_mask
from xaiscore import DTypeError, OptionError, ShapeError, XaiscoreError
from xaiscore.harness.data import (
    Batch,
    DatasetError,
    RecordList,
    SampleRecord,
    Skip,
    class_to_index,
    collate,
    index_to_class,
    iterate_batches,
)
from xaiscore.harness.data.errors import SkipLog, check_on_error


def record(source_id="s", *, size=(6, 8), boxes=(), mask=None, label=1, channels=1, extra=None):
    boxes_tensor = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return SampleRecord(
        image=torch.rand(channels, *size, generator=torch.Generator().manual_seed(len(source_id))),
        label=label,
        boxes=boxes_tensor,
        box_labels=("Nodule",) * len(boxes_tensor),
        mask=mask,
        source_id=source_id,
        finding="Nodule" if label else "No Finding",
        extra_masks=extra or {},
    )


class FlakyDataset:
    """Indices in ``broken`` raise DatasetError, like a corrupt image."""

    def __init__(self, n, broken, on_error="skip"):
        self.n, self.broken, self.on_error = n, set(broken), on_error
        self.class_names = ("No Finding", "Nodule")
        self.skipped: list[Skip] = []

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i in self.broken:
            raise DatasetError("corrupt image", file=f"img{i}.png", row=i + 2)
        return record(f"r{i}", label=i % 2)


def test_collate_rasterises_boxes_with_the_pixel_centre_rule():
    boxes = [(1.0, 0.5, 3.6, 4.0), (6.2, 3.0, 8.0, 6.0)]
    batch = collate([record("a", boxes=boxes), record("b")])
    assert batch.x.shape == (2, 1, 6, 8)
    assert torch.equal(batch.mask[0, 0], box_mask(6, 8, boxes))
    assert not batch.mask[1].any()
    assert batch.target.tolist() == batch.labels.tolist() == [1, 1]
    assert batch.target.dtype == torch.long and batch.mask.dtype == torch.bool
    assert batch.source_ids == ["a", "b"] and batch.findings == ["Nodule", "Nodule"]
    assert batch.box_labels == [("Nodule", "Nodule"), ()]
    assert len(batch) == 2


def test_collate_prefers_the_record_mask_over_its_boxes():
    mask = torch.zeros(1, 6, 8, dtype=torch.bool)
    mask[0, 5, 7] = True
    batch = collate([record("a", boxes=[(0, 0, 2, 2)], mask=mask)])
    assert torch.equal(batch.mask[0], mask)


def test_collate_target_is_a_copy_of_labels():
    batch = collate([record("a")])
    batch.target[0] = 0
    assert batch.labels.tolist() == [1]


def test_collate_stacks_extra_masks_and_fills_missing_ones_with_false():
    marker = torch.zeros(1, 6, 8, dtype=torch.bool)
    marker[0, 0, 0] = True
    batch = collate([record("a", extra={"shortcut": marker}), record("b")])
    assert set(batch.extra_masks) == {"shortcut"}
    assert batch.extra_masks["shortcut"][0, 0, 0, 0] and batch.extra_masks["shortcut"].sum() == 1


def test_collate_rejects_bad_input():
    with pytest.raises(ShapeError, match="at least one record"):
        collate([])
    with pytest.raises(ShapeError, match=r"Resize"):
        collate([record("a"), record("b", size=(6, 7))])
    with pytest.raises(DTypeError, match="SampleRecord"):
        collate([torch.zeros(1, 2, 2)])
    with pytest.raises(ShapeError, match="mask"):
        collate([record("a", mask=torch.zeros(1, 3, 3, dtype=torch.bool))])
    with pytest.raises(OptionError):
        collate([record("a")], rule="corner")


def test_collate_one_dimensional_records():
    plain = SampleRecord(torch.rand(2, 10), 0, torch.zeros(0, 4), (), None, "a", "No Finding")
    assert collate([plain]).mask.shape == (1, 1, 10) and not collate([plain]).mask.any()
    boxed = SampleRecord(torch.rand(2, 10), 1, torch.tensor([[0.0, 0.0, 1.0, 1.0]]), ("x",), None,
                         "b", "x")
    with pytest.raises(ShapeError, match="2-D"):
        collate([boxed])


def test_collate_cover_rule():
    batch = collate([record("a", boxes=[(1.2, 1.2, 1.4, 1.4)])], rule="cover")
    assert batch.mask.sum() == 1 and batch.mask[0, 0, 1, 1]
    assert collate([record("a", boxes=[(1.2, 1.2, 1.4, 1.4)])]).mask.sum() == 0


def test_collate_is_a_dataloader_collate_fn():
    dataset = RecordList([record(f"r{i}", boxes=[(0, 0, i + 1, 2)]) for i in range(5)],
                         class_names=("No Finding", "Nodule"))
    batches = list(DataLoader(dataset, batch_size=2, collate_fn=collate))
    assert [len(b) for b in batches] == [2, 2, 1]
    assert batches[1].mask[1, 0].sum() == 4 * 2


def test_batch_to_and_mask_at():
    batch = collate([record("a", boxes=[(0, 0, 4, 2)], size=(4, 8))])
    moved = batch.to("cpu")
    assert isinstance(moved, Batch) and moved.x.device.type == "cpu"
    small = batch.mask_at((2, 4))
    assert small.shape == (1, 1, 2, 4)
    assert small[0, 0].int().tolist() == [[1, 1, 0, 0], [0, 0, 0, 0]]


def test_iterate_batches_sizes_order_and_drop_last():
    dataset = RecordList([record(f"r{i}") for i in range(7)], class_names=("a", "b"))
    assert [len(b) for b in iterate_batches(dataset, 3)] == [3, 3, 1]
    assert [len(b) for b in iterate_batches(dataset, 3, drop_last=True)] == [3, 3]
    order = [b.source_ids for b in iterate_batches(dataset, 2, indices=[6, 0, 3])]
    assert order == [["r6", "r0"], ["r3"]]
    with pytest.raises(OptionError):
        list(iterate_batches(dataset, 0))


def test_iterate_batches_skips_and_records_failures_once():
    dataset = FlakyDataset(6, broken={1, 4})
    for _ in range(2):  # a second pass must not duplicate the skip entries
        batches = list(iterate_batches(dataset, 2))
        assert [b.source_ids for b in batches] == [["r0", "r2"], ["r3", "r5"]]
    assert dataset.skipped == [Skip("img1.png", 3, "corrupt image"), Skip("img4.png", 6,
                                                                          "corrupt image")]


def test_iterate_batches_raises_when_asked():
    dataset = FlakyDataset(4, broken={2}, on_error="raise")
    with pytest.raises(DatasetError) as info:
        list(iterate_batches(dataset, 2))
    assert (info.value.file, info.value.row) == ("img2.png", 4)
    # the call's on_error overrides the dataset's
    assert sum(len(b) for b in iterate_batches(dataset, 2, on_error="skip")) == 3


def test_iterate_batches_skip_needs_a_skipped_list():
    class Plain:
        class_names = ("a",)

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return record("x")

    with pytest.raises(OptionError, match="skipped"):
        list(iterate_batches(Plain(), 1, on_error="skip"))


def test_class_mapping_round_trips_and_rejects_duplicates():
    names = ("No Finding", "Mass", "Nodule")
    forward, backward = class_to_index(names), index_to_class(names)
    assert forward == {"No Finding": 0, "Mass": 1, "Nodule": 2}
    assert all(backward[i] == name for name, i in forward.items())
    assert class_to_index(RecordList([], class_names=names)) == forward
    with pytest.raises(OptionError, match="duplicates"):
        class_to_index(("a", "b", "a"))


def test_dataset_error_is_a_located_value_error_and_pickles():
    error = DatasetError("unknown finding 'X'", file="labels.csv", row=7)
    assert isinstance(error, XaiscoreError) and isinstance(error, ValueError)
    assert str(error) == "labels.csv, row 7: unknown finding 'X'"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.file, copy.row, copy.reason, str(copy)) == (error.file, error.row, error.reason,
                                                             str(error))
    assert str(DatasetError("broken")) == "<data>: broken"


def test_skip_log_policy():
    with pytest.raises(OptionError):
        check_on_error("ignore")
    log = SkipLog("raise")
    with pytest.raises(DatasetError):
        log.report(DatasetError("x", file="f", row=1))
    log.note("f", 2, "by design")
    assert log.skipped == [Skip("f", 2, "by design")]


def test_record_with_updates_merges_meta():
    r = SampleRecord(torch.zeros(1, 2, 2), 0, torch.zeros(0, 4), (), None, "a", "No Finding",
                     meta={"a": 1})
    updated = r.with_updates(meta={"b": 2}, label=1)
    assert dict(updated.meta) == {"a": 1, "b": 2} and updated.label == 1 and r.label == 0
    assert r.spatial_shape == (2, 2)
