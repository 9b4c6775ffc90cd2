"""`evaluate` on plain PyTorch data: TensorDataset, DataLoaders of tuples and of dicts, lists."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from xaiscore._checks import DTypeError, ShapeError
from xaiscore.harness.inputs import as_record_dataset
from xaiscore.harness.models import SmallCNN
from xaiscore.harness.runner import evaluate

N, SIZE = 6, 16


@pytest.fixture(scope="module")
def data():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(N, 1, SIZE, SIZE, generator=generator)
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    mask = torch.zeros(N, 1, SIZE, SIZE, dtype=torch.bool)
    mask[y == 1, :, 4:9, 5:11] = True
    boxes = [torch.tensor([[5.0, 4.0, 11.0, 9.0]]) if int(label) else torch.zeros(0, 4)
             for label in y]
    return x, y, mask, boxes


@pytest.fixture(scope="module")
def model():
    return SmallCNN(1, 2, width=4, generator=torch.Generator().manual_seed(0)).eval()


def _run(dataset, model, **kwargs):
    return evaluate(dataset, model, methods=["Saliency"],
                    metrics=["pointing_game", "sparseness", "pxap"],
                    metric_options={"pxap": {"thresholds": 20}}, batch_size=4, n_examples=0,
                    **kwargs)


@pytest.fixture(scope="module")
def reference(data, model):
    x, y, mask, _ = data
    return _run(TensorDataset(x, y, mask), model)


def _assert_same(ds, reference):
    assert ds.sizes["sample"] == N
    assert ds["label"].values.tolist() == reference["label"].values.tolist()
    for name in ("pointing_game", "sparseness", "pxap"):
        np.testing.assert_array_equal(ds[name].values, reference[name].values, err_msg=name)


def test_a_tensor_dataset_of_x_y_mask(reference, data):
    assert reference["source_id"].values.tolist()[:2] == ["sample-000000", "sample-000001"]
    assert reference["label"].values.tolist() == data[1].tolist()
    assert np.isfinite(reference["pointing_game"].values[0, data[1].numpy() == 1]).all()
    assert np.isnan(reference["pointing_game"].values[0, data[1].numpy() == 0]).all()  # empty masks


def test_a_tensor_dataset_of_x_y_has_empty_masks(data, model):
    x, y, _, _ = data
    ds = _run(TensorDataset(x, y), model)
    assert np.isnan(ds["pointing_game"].values).all()
    np.testing.assert_array_equal(ds["sparseness"].values.shape, (1, N))


def test_a_dataloader_of_tuples(data, model, reference):
    x, y, mask, _ = data
    _assert_same(_run(DataLoader(TensorDataset(x, y, mask), batch_size=4), model), reference)


def test_a_dataloader_of_dicts_with_boxes(data, model, reference):
    x, y, mask, boxes = data
    items = [{"x": x[i], "y": y[i], "mask": mask[i], "boxes": boxes[i]} for i in range(N)]

    def collate(rows):  # boxes stay a list per sample
        return {"x": torch.stack([r["x"] for r in rows]), "y": torch.stack([r["y"] for r in rows]),
                "mask": torch.stack([r["mask"] for r in rows]), "boxes": [r["boxes"] for r in rows]}

    loader = DataLoader(items, batch_size=4, collate_fn=collate)
    _assert_same(_run(loader, model), reference)
    records = as_record_dataset(loader)
    assert records[1].boxes.tolist() == [[5.0, 4.0, 11.0, 9.0]] and records[0].boxes.shape == (0, 4)


def test_a_list_of_dicts_with_boxes_only_rasterises_the_boxes(data, model, reference):
    x, y, _, boxes = data
    items = [{"image": x[i], "label": int(y[i]), "boxes": boxes[i]} for i in range(N)]
    _assert_same(_run(items, model), reference)  # the boxes cover exactly the masks


def test_a_generator_of_batches_and_class_names(data, model):
    x, y, mask, _ = data

    class Named(TensorDataset):
        classes = ("healthy", "lesion")

    records = as_record_dataset(Named(x, y, mask))
    assert records[1].finding == "lesion" and records.class_names == ("healthy", "lesion")
    batches = as_record_dataset((x[s:s + 4], y[s:s + 4]) for s in range(0, N, 4))
    assert len(batches) == N and batches[5].label == int(y[5])


def test_a_record_dataset_passes_unchanged():
    from xaiscore.harness.data import make_synthetic_dataset

    records = make_synthetic_dataset(2, size=(8, 8))
    assert as_record_dataset(records) is records


@pytest.mark.parametrize("bad, error, words", [
    (torch.rand(4, 1, 8, 8), DTypeError, "but got Tensor"),
    ("images/", DTypeError, "but got str"),
    ({"x": torch.rand(4, 1, 8, 8)}, DTypeError, "but got dict"),
    ([(torch.rand(1, 8, 8), 0, None, "extra")], DTypeError, "a 4-tuple"),
    ([{"image": torch.rand(1, 8, 8)}], DTypeError, "keys 'x' and 'y'"),
    ([(torch.rand(1, 8, 8), 0.5)], DTypeError, "class index"),
    ([(torch.rand(1, 8, 8), torch.tensor(0.0))], DTypeError, "class index"),
    ([(torch.rand(8), 0)], ShapeError, "image tensor (C, *S)"),
    ([(torch.rand(1, 8, 8), 0, torch.ones(4, 4))], ShapeError, "mask of sample 0"),
    ([(torch.rand(1, 8, 8), 0)] * 0 + [{"x": torch.rand(1, 8, 8), "y": 0, "boxes": torch.ones(3)}],
     ShapeError, "boxes of sample 0"),
    (iter([(torch.rand(2, 1, 8, 8), torch.tensor([0, 1]), torch.ones(3, 1, 8, 8))]), ShapeError,
     "'mask' of batch 0 to have 2 rows"),
], ids=["tensor", "string", "mapping", "4-tuple", "no-y", "float-y", "float-tensor-y", "no-channel",
        "mask-shape", "box-shape", "ragged-batch"])
def test_anything_else_is_a_typed_error(bad, error, words, model):
    with pytest.raises(error) as raised:
        evaluate(bad, model, methods=["random"], metrics=["sparseness"], n_examples=0)
    assert words in str(raised.value)


def test_a_dataloader_of_collated_records_keeps_ids_and_findings(model):
    from xaiscore.harness.data import make_synthetic_dataset
    from xaiscore.harness.data.records import collate

    records = make_synthetic_dataset(6, size=(SIZE, SIZE), seed=2)
    loader = DataLoader(records, batch_size=4, collate_fn=collate)
    converted = as_record_dataset(loader)
    for i in range(6):
        assert converted[i].source_id == records[i].source_id
        assert converted[i].finding == records[i].finding
        assert torch.equal(converted[i].mask, records[i].mask)
    assert converted.class_names == records.class_names
    direct = _run(records, model)
    via_loader = _run(loader, model)
    np.testing.assert_array_equal(direct["pxap"].values, via_loader["pxap"].values)
    assert via_loader["source_id"].values.tolist() == direct["source_id"].values.tolist()
