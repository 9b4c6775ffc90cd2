"""The metric classes behave as torchmetrics users expect: MetricCollection, state_dict, reset,
forward, a Lightning-style loop, sample indices, pickling, and helpful errors."""

from __future__ import annotations

import copy
import inspect
import pickle

import pytest
import torch
from torchmetrics import MetricCollection

from tests.metrics import cases
from xaiscore import functional as F
from xaiscore import metrics
from xaiscore.metrics import (
    Deletion,
    EnergyPointingGame,
    MetricResult,
    PointingAccuracy,
    PointingGame,
    Sparseness,
    Sufficiency,
)


def localization_data():
    data = cases.dataset()
    return data["a"], data["mask"]


def test_a_metric_collection_updates_each_metric_with_the_inputs_it_takes():
    tools, data = cases.callables(), cases.dataset()
    collection = MetricCollection(
        {
            "pointing": PointingGame(),
            "energy": EnergyPointingGame(),
            "pointing_tolerant": PointingGame(tolerance=2.0),
            "sparseness": Sparseness(),
            "deletion": Deletion(tools["forward_fn"], features_per_step=16),
            "accuracy": PointingAccuracy(num_classes=cases.CLASSES),
        }
    )
    for start, stop in [(0, 3), (3, cases.N)]:
        collection.update(**{k: v[start:stop] for k, v in data.items()})
    values = collection.compute()
    a, mask, x, target = data["a"], data["mask"], data["x"], data["target"]
    expected = {
        "pointing": F.pointing_game(a, mask).nanmean(),
        "energy": F.energy_pointing_game(a, mask).nanmean(),
        "pointing_tolerant": F.pointing_game(a, mask, tolerance=2.0).nanmean(),
        "sparseness": F.sparseness(a).nanmean(),
        "deletion": F.deletion(
            tools["forward_fn"], x, a, target, features_per_step=16
        ).score.nanmean(),
        "accuracy": F.pointing_accuracy(a, mask, target, num_classes=cases.CLASSES).accuracy,
    }
    assert set(values) == set(expected)
    for name, value in expected.items():
        (
            torch.testing.assert_close(
                values[name], value.to(values[name].dtype), rtol=1e-12, atol=0
            ),
            name,
        )
    # Metrics of equal states on the first batch must not be merged into one compute group.
    assert all(len(group) == 1 for group in collection.compute_groups.values())
    collection.reset()
    assert all(m.update_count == 0 for m in collection.values())


def test_two_identical_states_do_not_share_a_compute_group():
    a = torch.zeros(2, 1, 4, 4)
    a[:, 0, 0, 0] = 1.0
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[:, :, 0, 0] = True
    # both score 1.0 on the first batch
    collection = MetricCollection([PointingGame(), EnergyPointingGame()])
    collection.update(a, mask)
    collection.update(a, ~mask)
    values = collection.compute()
    assert values["PointingGame"].item() == pytest.approx(0.5)
    assert values["EnergyPointingGame"].item() == pytest.approx(0.5)
    assert len(collection.compute_groups) == 2


def test_state_dict_round_trip_restores_every_kind_of_state():
    tools, data = cases.callables(), cases.dataset()
    for make in (
        PointingGame,
        lambda: Deletion(tools["forward_fn"], features_per_step=16),
        lambda: Sufficiency(tools["forward_fn"]),
        lambda: PointingAccuracy(num_classes=cases.CLASSES),
    ):
        metric = make()
        names = [n for n in cases.update_names(metric)]
        metric.update(**{n: data[n][:4] for n in names})
        saved = copy.deepcopy(metric.state_dict())
        assert saved, "states are persistent"
        restored = make()
        restored.load_state_dict(saved)
        for m in (metric, restored):
            m.update(**{n: data[n][4:] for n in names})
        one, two = metric.result(), restored.result()
        assert torch.equal(one.value.nan_to_num(-1), two.value.nan_to_num(-1))
        assert int(one.n_samples) == int(two.n_samples) == cases.N


def test_reset_forgets_everything():
    a, mask = localization_data()
    metric = PointingGame(keep_samples=True)
    metric.update(a, mask)
    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert torch.isnan(metric.compute())
    result = metric.result()
    assert int(result.n_samples) == 0 and result.scores is None
    metric.update(a[:2], mask[:2])
    assert int(metric.result().n_samples) == 2


def test_forward_returns_the_batch_value_and_accumulates():
    a, mask = localization_data()
    metric = PointingGame()
    batch_values = [metric(a[s:e], mask[s:e]) for s, e in [(0, 2), (2, cases.N)]]
    for (s, e), value in zip([(0, 2), (2, cases.N)], batch_values):
        assert value.item() == pytest.approx(
            F.pointing_game(a[s:e], mask[s:e]).nanmean().item(), nan_ok=True
        )
    assert metric.compute().item() == pytest.approx(F.pointing_game(a, mask).nanmean().item())


def test_forward_keeps_the_accumulated_states_without_copying_them():
    tools, data = cases.callables(), cases.dataset()
    metric = Sufficiency(tools["forward_fn"])
    metric(data["x"][:3], data["a"][:3])
    first = metric.explanations[0]
    metric(data["x"][3:], data["a"][3:])
    assert metric.explanations[0] is first and len(metric.explanations) == 2
    expected = F.sufficiency(tools["forward_fn"], data["x"], data["a"])
    cases.nan_equal(metric.result().scores, expected, exact=True)


def test_states_do_not_alias_the_callers_tensors():
    tools, data = cases.callables(), cases.dataset()
    expected = F.sufficiency(tools["forward_fn"], data["x"], data["a"])
    metric, pointing = Sufficiency(tools["forward_fn"]), PointingGame()
    buffer, index = data["a"].clone(), torch.arange(cases.N)
    metric.update(data["x"], buffer)
    pointing.update(buffer, data["mask"], sample_index=index)
    buffer.zero_()  # a caller that reuses its buffers for the next batch
    index.zero_()
    cases.nan_equal(metric.result().scores, expected, exact=True)
    assert torch.equal(pointing.result().index, torch.arange(cases.N))


def test_forward_that_fails_leaves_the_states_as_they_were():
    a, mask = localization_data()
    metric = PointingGame()
    metric(a[:2], mask[:2])
    with pytest.raises(ValueError, match="spatial shape"):
        metric(a[2:], mask[2:, ..., :6])
    assert int(metric.result().n_samples) == 2 and metric.update_count == 1
    metric(a[2:], mask[2:])
    assert metric.compute().item() == pytest.approx(F.pointing_game(a, mask).nanmean().item())


def test_metric_collection_forward_returns_the_batch_values():
    a, mask = localization_data()
    collection = MetricCollection([PointingGame(), EnergyPointingGame()])
    first = collection(a=a[:3], mask=mask[:3])
    collection(a=a[3:], mask=mask[3:])
    assert first["PointingGame"].item() == pytest.approx(
        F.pointing_game(a[:3], mask[:3]).nanmean().item()
    )
    total = collection.compute()
    assert total["EnergyPointingGame"].item() == pytest.approx(
        F.energy_pointing_game(a, mask).nanmean().item()
    )


def test_per_sample_rows_go_into_blocks_whatever_the_batch_sizes(monkeypatch):
    from xaiscore.metrics import _sample

    monkeypatch.setattr(_sample, "BLOCK_ROWS", 3)
    tools, data = cases.callables(), cases.dataset()
    metric = Deletion(tools["forward_fn"], features_per_step=16)
    for start, stop in [(0, 2), (2, 3), (3, 7)]:  # fills a block, then one larger than a block
        metric.update(
            data["x"][start:stop],
            data["a"][start:stop],
            data["target"][start:stop],
            sample_index=torch.arange(start, stop),
        )
    assert [t.shape[0] for t in metric.scores] == [3, 4]
    expected = F.deletion(
        tools["forward_fn"], data["x"], data["a"], data["target"], features_per_step=16
    )
    result = metric.result()
    cases.nan_equal(result.scores, expected.score)
    cases.nan_equal(result.curves, expected.curve)
    saved = metric.state_dict()
    for key in ("scores", "curves", "index"):
        for t in saved[key]:
            assert t.untyped_storage().nbytes() == t.numel() * t.element_size(), key
    monkeypatch.setattr(_sample, "BLOCK_ROWS", 4096)
    metric = PointingGame()
    a, mask = localization_data()
    for i in range(cases.N):
        metric(a[i : i + 1], mask[i : i + 1])  # forward: the batch's rows join the same block
    assert len(metric.scores) == 1 and metric.scores[0].shape == (cases.N,)
    cases.nan_equal(metric.result().scores, F.pointing_game(a, mask), exact=True)


def test_keep_samples_false_keeps_three_numbers_and_the_same_mean():
    a, mask = localization_data()
    kept, summed = PointingGame(), PointingGame(keep_samples=False)
    for metric in (kept, summed):
        metric.update(a[:3], mask[:3])
        metric.update(a[3:], mask[3:])
    assert summed.result().scores is None
    assert summed.compute().item() == pytest.approx(kept.compute().item(), rel=1e-12)
    defined = int(summed.result().n_defined)
    assert defined == int(kept.result().n_defined) == cases.N - 1  # one empty mask
    assert all(not isinstance(v, list) or not v for v in summed.metric_state.values())


def test_sample_index_orders_results_and_counts_repeated_rows_once():
    a, mask = localization_data()
    metric = PointingGame()
    # A distributed sampler pads with repeats: rows 0 and 1 arrive twice, out of order.
    order = torch.tensor([5, 0, 1, 6, 2, 3, 4, 0, 1])
    metric.update(a[order[:4]], mask[order[:4]], sample_index=order[:4])
    metric.update(a[order[4:]], mask[order[4:]], sample_index=order[4:])
    result = metric.result()
    assert torch.equal(result.index, torch.arange(cases.N))
    cases.nan_equal(result.scores, F.pointing_game(a, mask), exact=True)
    assert int(result.n_samples) == cases.N
    assert metric.compute().item() == pytest.approx(F.pointing_game(a, mask).nanmean().item())


def test_sample_index_in_some_updates_only_is_refused():
    a, mask = localization_data()
    metric = PointingGame()
    metric.update(a[:2], mask[:2], sample_index=torch.tensor([0, 1]))
    metric.update(a[2:], mask[2:])
    with pytest.raises(ValueError, match="every update or in none"):
        metric.result()


def test_bad_arguments_fail_at_the_boundary_with_typed_errors():
    a, mask = localization_data()
    with pytest.raises(TypeError, match="callable"):
        Deletion(forward_fn=3)
    with pytest.raises(ValueError, match="among .*tolerance"):
        PointingGame(no_such_option=1)
    with pytest.raises(TypeError):
        PointingAccuracy()  # num_classes sizes the states
    with pytest.raises(TypeError, match="keep_samples"):
        PointingGame(keep_samples="yes")
    metric = PointingGame()
    with pytest.raises(TypeError):
        metric.update(a)  # mask missing
    with pytest.raises(ValueError, match="sample_index"):
        metric.update(a, mask, sample_index=torch.tensor([0]))
    with pytest.raises(TypeError, match="sample_index"):
        metric.update(a, mask, sample_index=torch.zeros(cases.N))
    with pytest.raises(ValueError, match="spatial shape"):
        metric.update(a, mask[..., :6])


def test_curves_must_keep_their_length():
    tools, data = cases.callables(), cases.dataset()
    metric = Deletion(tools["forward_fn"], features_per_step=16)  # 144 pixels: 10 steps; 64: 5
    metric.update(data["x"][:2], data["a"][:2], data["target"][:2])
    small = {k: v[2:4, ..., :8, :8] for k, v in data.items() if k in ("x", "a")}
    with pytest.raises(ValueError, match="steps"):
        metric.update(small["x"], small["a"], data["target"][2:4])


def test_prediction_set_metric_refuses_maps_of_another_shape():
    tools, data = cases.callables(), cases.dataset()
    metric = Sufficiency(tools["forward_fn"])
    metric.update(data["x"][:2], data["a"][:2])
    with pytest.raises(ValueError, match="per-sample shape"):
        metric.update(data["x"][2:4, ..., :8, :8], data["a"][2:4, ..., :8, :8])


def test_metrics_pickle_and_deepcopy():
    tools, data = cases.callables(), cases.dataset()
    metric = Deletion(tools["forward_fn"], features_per_step=16)
    metric.update(data["x"][:3], data["a"][:3], data["target"][:3])
    for clone in (pickle.loads(pickle.dumps(metric)), copy.deepcopy(metric), metric.clone()):
        clone.update(data["x"][3:], data["a"][3:], data["target"][3:])
        assert int(clone.result().n_samples) == cases.N
    assert not list(metric.parameters()), "the model is not registered as a submodule of the metric"


def test_signatures_and_docstrings_are_real():
    parameters = inspect.signature(Deletion).parameters
    assert (
        list(parameters)[0] == "forward_fn"
        and parameters["features_per_step"].kind is inspect.Parameter.KEYWORD_ONLY
    )
    assert list(inspect.signature(Deletion.update).parameters)[1:] == [
        "x",
        "a",
        "target",
        "sample_index",
    ]
    assert "seed" not in inspect.signature(PointingGame).parameters
    assert "seeding" in inspect.signature(metrics.MaxSensitivity).parameters
    assert "Update:" in Deletion.__doc__ and "deletion" in Deletion.__doc__
    assert repr(PointingGame(tolerance=2.0)) == "PointingGame(tolerance=2.0)"


def test_result_is_a_named_tuple_of_tensors():
    a, mask = localization_data()
    metric = PointingGame()
    metric.update(a, mask)
    result = metric.result()
    assert (
        isinstance(result, MetricResult)
        and result.value.ndim == 0
        and result.scores.shape == (cases.N,)
    )
    assert result.curves is None and result.details is None


# --- a Lightning-style evaluation loop, without Lightning -----------------------------------------


class EvaluationModule(torch.nn.Module):
    """What a LightningModule does with metrics: forward per step, compute/reset per epoch."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.pointing = PointingGame()
        self.deletion = Deletion(model, features_per_step=16)
        self.logged: dict[str, list[float]] = {}

    def log(self, name: str, value: torch.Tensor) -> None:
        self.logged.setdefault(name, []).append(float(value))

    def validation_step(self, batch: dict[str, torch.Tensor]) -> None:
        self.log("pointing_step", self.pointing(batch["a"], batch["mask"]))
        self.log("deletion_step", self.deletion(batch["x"], batch["a"], batch["target"]))

    def on_validation_epoch_end(self) -> None:
        self.log("pointing", self.pointing.compute())
        self.log("deletion", self.deletion.compute())
        self.pointing.reset()
        self.deletion.reset()


def test_lightning_style_loop_logs_step_and_epoch_values():
    tools, data = cases.callables(), cases.dataset()
    module = EvaluationModule(tools["model"])
    batches = [(0, 3), (3, cases.N)]
    for _epoch in range(2):
        for start, stop in batches:
            module.validation_step({k: v[start:stop] for k, v in data.items()})
        module.on_validation_epoch_end()
    expected = F.deletion(
        tools["model"], data["x"], data["a"], data["target"], features_per_step=16
    ).score
    assert module.logged["deletion"] == pytest.approx([expected.nanmean().item()] * 2)
    assert len(module.logged["deletion_step"]) == 4
    state = module.state_dict()
    assert any(key.startswith("pointing.") for key in state) and "model.0.weight" in state
    assert not any(key.startswith(("deletion.model", "deletion.forward_fn")) for key in state)


def test_with_lightning_when_installed(tmp_path):
    lightning = pytest.importorskip("lightning")
    tools, data = cases.callables(), cases.dataset()

    class Module(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = tools["model"]
            self.pointing = PointingGame()

        def validation_step(self, batch, batch_index):
            a, mask = batch
            self.pointing(a, mask)
            self.log("pointing", self.pointing, on_epoch=True)

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data["a"], data["mask"]), batch_size=3
    )
    trainer = lightning.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    (logged,) = trainer.validate(Module(), loader, verbose=False)
    assert logged["pointing"] == pytest.approx(
        F.pointing_game(data["a"], data["mask"]).nanmean().item()
    )
