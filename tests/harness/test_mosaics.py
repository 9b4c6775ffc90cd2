"""Mosaics in the harness: the mosaic dataset, the runner scoring the mosaic metrics, resume,
the report rows (issue 20)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from xaiscore._checks import OptionError
from xaiscore.functional import focus, grid_pointing_game
from xaiscore.harness.config import ConfigError, parse_config
from xaiscore.harness.data.records import RecordList, SampleRecord
from xaiscore.harness.mosaic_data import MosaicsConfig, build_mosaic_dataset, parse_mosaics
from xaiscore.harness.multimodel import combine_model_results
from xaiscore.harness.results import load_dataset
from xaiscore.harness.runner import evaluate

K = 4  # classes
SIZE = 8


class Bright(nn.Module):
    """Class ``c``: the brightest pixel of channel ``c`` (an oracle for :func:`dataset`)."""

    def forward(self, x):
        return 10.0 * x.amax(dim=(2, 3))


class FixedSize(nn.Module):
    """Takes only ``SIZE x SIZE`` images (as a ViT with fixed position embeddings)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(K * SIZE * SIZE, K)

    def forward(self, x):
        return self.linear(x.flatten(1))


def dataset(n=16, classes=K, weak=()):
    """Images whose class ``c`` is a bright square in channel ``c``; ``weak`` classes dim."""
    generator = torch.Generator().manual_seed(0)
    records = []
    for i in range(n):
        c = i % classes
        image = torch.rand(K, SIZE, SIZE, generator=generator) * 0.1
        image[c, 2:5, 2:5] += 0.15 if c in weak else 1.0
        mask = torch.zeros(1, SIZE, SIZE, dtype=torch.bool)
        mask[0, 2:5, 2:5] = True
        records.append(SampleRecord(image=image, label=c, boxes=torch.tensor([[2.0, 2, 5, 5]]),
                                    box_labels=("x",), mask=mask, source_id=f"s{i}",
                                    finding=f"c{c}"))
    return RecordList(records, class_names=[f"c{j}" for j in range(classes)])


def brightest_channel(image):
    return int(image.flatten(1).amax(dim=1).argmax())


@pytest.mark.parametrize(("metric", "grid", "target_tiles"),
                         [("grid_pointing_game", 2, 1), ("focus", 2, 2)])
def test_the_target_tiles_show_the_target_class_and_the_others_other_classes(metric, grid,
                                                                             target_tiles):
    data = dataset()
    mosaics = build_mosaic_dataset(data, Bright(), MosaicsConfig(num_mosaics=6, grid=grid),
                                   metric=metric, seed=3)
    assert len(mosaics) == 6
    for i in range(len(mosaics)):
        record = mosaics[i]
        assert record.image.shape == (K, grid * SIZE, grid * SIZE)
        tiles = record.meta["tiles"]
        assert sum(tiles) == target_tiles
        shown = []
        for t in range(grid * grid):
            row, col = divmod(t, grid)
            tile = record.image[:, row * SIZE:(row + 1) * SIZE, col * SIZE:(col + 1) * SIZE]
            shown.append(brightest_channel(tile))
            # the tile is the base image it names
            base = data[int(mosaics.tile_samples[i, t])].image
            assert torch.equal(tile, base)
            assert tiles[t] == (shown[-1] == record.label)
            assert bool(record.mask[0, row * SIZE, col * SIZE]) == tiles[t]
        others = [c for c, flag in zip(shown, tiles) if not flag]
        assert len(set(others)) == len(others) and record.label not in others
        assert record.boxes.shape == (target_tiles, 4)
    batch_tiles = mosaics.batch_inputs(type("B", (), {"meta": [mosaics[0].meta],
                                                      "x": torch.zeros(1)})())["tiles"]
    assert batch_tiles.dtype == torch.bool and batch_tiles.shape == (1, grid * grid)


def test_the_mosaics_are_deterministic_for_a_seed():
    data = dataset()
    config = MosaicsConfig(num_mosaics=5)
    first = build_mosaic_dataset(data, Bright(), config, metric="grid_pointing_game", seed=1)
    again = build_mosaic_dataset(data, Bright(), config, metric="grid_pointing_game", seed=1)
    other = build_mosaic_dataset(data, Bright(), config, metric="grid_pointing_game", seed=2)
    assert torch.equal(first.mosaics.x, again.mosaics.x)
    assert torch.equal(first.tile_samples, again.tile_samples)
    assert not torch.equal(first.tile_samples, other.tile_samples)
    fixed = MosaicsConfig(num_mosaics=5, seed=7)  # its own seed wins over the run's
    assert torch.equal(
        build_mosaic_dataset(data, Bright(), fixed, metric="focus", seed=1).tile_samples,
        build_mosaic_dataset(data, Bright(), fixed, metric="focus", seed=2).tile_samples)


@pytest.mark.parametrize(("raw", "message"), [
    ({"grid": 1}, "`mosaics.grid` to be an int of at least 2, but got 1"),
    ({"num_mosaics": 0}, "`mosaics.num_mosaics` to be an int of at least 1"),
    ({"min_confidence": 1.5}, "`mosaics.min_confidence` in [0, 1], but got 1.5"),
    ({"seed": -1}, "`mosaics.seed` to be an int >= 0"),
    ({"grids": 2}, "Unknown key(s) ['grids'] in `mosaics`"),
    ("2x2", "Expected `mosaics` to be a table/mapping, but got str"),
])
def test_a_bad_mosaics_section_is_a_typed_error(raw, message):
    with pytest.raises(OptionError) as caught:
        parse_mosaics(raw)
    assert message in str(caught.value)
    with pytest.raises(ConfigError, match="<config>"):
        parse_config({"mosaics": raw})


def test_the_config_section_round_trips():
    config = parse_config({"mosaics": {"grid": 3, "num_mosaics": 4, "min_confidence": 0.5}})
    assert config.mosaics == MosaicsConfig(grid=3, num_mosaics=4, min_confidence=0.5)
    assert parse_config({}).mosaics is None


def test_too_few_classes_or_confident_images_is_a_typed_error_naming_the_need():
    with pytest.raises(OptionError, match=r"at least 4 classes .* but it has 3"):
        build_mosaic_dataset(dataset(classes=3), Bright(), MosaicsConfig(),
                             metric="grid_pointing_game", seed=0)
    with pytest.raises(OptionError, match=r"at least 9 classes .* 3 x 3 mosaics"):
        build_mosaic_dataset(dataset(), Bright(), MosaicsConfig(grid=3),
                             metric="grid_pointing_game", seed=0)
    # class 3 is never confident at 0.99: 4 classes needed, 3 usable; the counts are in the message
    with pytest.raises(OptionError, match=r"min_confidence` = 0.99.*\[4, 4, 4, 0\]"):
        build_mosaic_dataset(dataset(weak=(3,)), Bright(), MosaicsConfig(),
                             metric="grid_pointing_game", seed=0)
    # Focus needs three classes only
    assert len(build_mosaic_dataset(dataset(weak=(3,)), Bright(), MosaicsConfig(num_mosaics=2),
                                    metric="focus", seed=0)) == 2


def test_volumes_cannot_make_mosaics():
    volume = SampleRecord(image=torch.zeros(1, 4, 4, 4), label=0, boxes=torch.zeros(0, 6),
                          box_labels=(), mask=None, source_id="v", finding="No Finding")
    data = RecordList([volume] * 4, class_names=["a", "b", "c", "d"])
    with pytest.raises(OptionError, match="2-D images"):
        build_mosaic_dataset(data, Bright(), MosaicsConfig(), metric="focus", seed=0)


def _maps(x, target):
    """A fixed map per input: the image's channel sum (any deterministic map would do)."""
    return x.sum(dim=1, keepdim=True) * torch.linspace(0.5, 1.5, x.shape[-1])


METHODS = ["Saliency", "random", ("mine", _maps)]
METRICS = ["grid_pointing_game", "focus", "pointing_game"]


def _run(out=None, **kwargs):
    options = {"mosaics": {"num_mosaics": 6, "min_confidence": 0.9}, "batch_size": 4,
               "methods": METHODS, "metrics": METRICS, **kwargs}
    return evaluate(dataset(), Bright(), out=out, **options)


def test_the_runner_scores_the_mosaic_metrics_on_the_mosaics(tmp_path):
    ds = _run(tmp_path / "run")
    assert ds["grid_pointing_game"].dims == ("explainer", "grid_pointing_game_mosaic")
    assert ds["focus"].dims == ("explainer", "focus_mosaic")
    assert ds["pointing_game"].dims == ("explainer", "sample")  # the dataset's metric as before
    assert ds["grid_pointing_game"].attrs["chance_level"] == 0.25
    assert ds["focus"].attrs["chance_level"] == 0.5
    # Saliency of the oracle: the gradient of the target channel's brightest pixel, which lies
    # in a target tile: all positive attribution there
    for metric in ("grid_pointing_game", "focus"):
        assert ds[metric].sel(explainer="Saliency").values.tolist() == [1.0] * 6
    # the scores are the kernels' on the same mosaics (tiles passed in the mosaics' order)
    for metric, kernel in (("grid_pointing_game", grid_pointing_game), ("focus", focus)):
        mosaics = build_mosaic_dataset(dataset(), Bright(), MosaicsConfig(
            num_mosaics=6, min_confidence=0.9), metric=metric, seed=0)
        expected = kernel(_maps(mosaics.mosaics.x, None), mosaics.mosaics.tiles)
        np.testing.assert_allclose(ds[metric].sel(explainer="mine").values, expected.double())
        assert ds[f"{metric}_tile_sample"].sel(explainer="mine").values.tolist() == \
            mosaics.tile_samples.tolist()
        assert ds[f"{metric}_target"].sel(explainer="mine").values.tolist() == \
            mosaics.mosaics.target.tolist()
        assert ds[f"{metric}_example_image"].shape == (3, K, 2 * SIZE, 2 * SIZE)
    # the random baseline sits near chance
    assert abs(float(ds["grid_pointing_game"].sel(explainer="random").mean()) - 0.25) < 0.1
    assert abs(float(ds["focus"].sel(explainer="random").mean()) - 0.5) < 0.1
    stored = load_dataset(tmp_path / "run" / "results.nc")  # netCDF round trip
    np.testing.assert_array_equal(stored["focus"].values, ds["focus"].values)
    assert json.loads(stored.attrs["skipped"]) == {}


def test_resume_loads_the_mosaic_shards_instead_of_recomputing_them(tmp_path):
    first_timing, again_timing = {}, {}
    first = _run(tmp_path / "run", timing=first_timing)
    again = _run(tmp_path / "run", timing=again_timing)
    assert first_timing["results_computed"] == 3 * (4 + 2 * 2)  # 3 methods x (4 + 2 x 2 batches)
    assert again_timing["results_computed"] == 0
    assert again_timing["results_loaded"] == first_timing["results_computed"]
    for metric in ("grid_pointing_game", "focus"):
        np.testing.assert_array_equal(again[metric].values, first[metric].values)


def test_without_mosaics_the_mosaic_metrics_are_skipped_with_the_reason():
    ds = evaluate(dataset(), Bright(), methods=["Saliency"], metrics=METRICS, batch_size=8)
    skipped = json.loads(ds.attrs["skipped"])
    assert set(skipped) == {"grid_pointing_game", "focus"}
    assert "which the dataset does not provide (a `[mosaics]` section builds mosaics that do)" \
        in skipped["focus"]["Saliency"]
    assert "grid_pointing_game" not in ds.data_vars


def test_a_model_that_cannot_take_mosaics_is_recorded_or_raises():
    model = FixedSize()
    with torch.no_grad():  # make it an oracle on single images
        model.linear.weight.zero_()
        for c in range(K):
            model.linear.weight[c, c * SIZE * SIZE:(c + 1) * SIZE * SIZE] = 1.0
    ds = evaluate(dataset(), model, methods=["Saliency", "random"], metrics=METRICS,
                  batch_size=8, mosaics={"num_mosaics": 3, "min_confidence": 0.9},
                  on_error="record")
    reasons = json.loads(ds["focus"].attrs["skipped"])
    assert set(reasons) == {"Saliency", "random"}
    assert "(16, 16) mosaics" in reasons["Saliency"] and "cannot take" in reasons["Saliency"]
    assert np.isnan(ds["focus"].values).all()
    assert np.isfinite(ds["pointing_game"].values).all()
    with pytest.raises(OptionError, match="Cannot score 'grid_pointing_game'"):
        evaluate(dataset(), model, methods=["Saliency"], metrics=METRICS, batch_size=8,
                 mosaics={"num_mosaics": 3, "min_confidence": 0.9})


def test_mosaics_that_cannot_be_built_are_recorded_under_on_error_record():
    ds = evaluate(dataset(weak=(3,)), Bright(), methods=["Saliency"], metrics=METRICS,
                  batch_size=8, mosaics={"num_mosaics": 3}, on_error="record")
    assert "needs mosaics" in json.loads(ds["grid_pointing_game"].attrs["skipped"])["Saliency"]
    assert np.isfinite(ds["focus"].values).all()  # Focus needs three classes only
    assert (ds["grid_pointing_game_tile_class"].values == -1).all()


def test_models_with_their_own_mosaics_combine():
    cnn = _run()
    fixed = evaluate(dataset(), FixedSize(), methods=["random"], metrics=METRICS, batch_size=4,
                     mosaics={"num_mosaics": 6, "min_confidence": 0.0}, on_error="record")
    ds = combine_model_results({"oracle": cnn, "fixed": fixed})
    assert ds["focus"].dims == ("explainer", "focus_mosaic")
    assert np.isfinite(ds["focus"].sel(explainer="oracle/Saliency").values).all()
    assert np.isnan(ds["focus"].sel(explainer="fixed/random").values).all()
    assert "fixed/random" in json.loads(ds["focus"].attrs["skipped"])
    # each model keeps its own mosaics
    assert ds["focus_tile_sample"].sel(explainer="oracle/mine").values.tolist() == \
        cnn["focus_tile_sample"].sel(explainer="mine").values.tolist()
    # the example mosaics: a row for the model with maps only
    from xaiscore.harness.report_mosaics import mosaic_html

    page = mosaic_html(ds, n_boot=10)
    assert "oracle: target c" in page and "fixed: target" not in page


def test_the_report_shows_the_mosaic_metrics_with_the_chance_level(tmp_path):
    from xaiscore.harness.report import write_report

    ds = _run()
    page = write_report(ds, tmp_path / "report", n_boot=50).read_text()
    assert "<h2>Mosaic localization</h2>" in page
    section = page[page.index("<h2>Mosaic localization</h2>"):]
    assert "grid_pointing_game ↑" in section and "focus ↑" in section
    assert "<td>0.25</td>" in section and "<td>0.5</td>" in section  # chance levels
    assert "grid_pointing_game: mosaic 0" in section and 'alt="mine on sample 0"' in section
    rows = pd.read_csv(tmp_path / "report" / "summary.csv")
    mosaic = rows[rows["scope"] == "mosaic"].set_index(["metric", "method"])
    assert set(mosaic.index) == {(m, e) for m in ("grid_pointing_game", "focus")
                                 for e in ("Saliency", "random", "mine")}
    assert mosaic.loc[("focus", "Saliency"), "mean"] == 1.0
    assert mosaic.loc[("grid_pointing_game", "random"), "chance_level"] == 0.25
    assert (mosaic["n"] == 6).all()


def _distributed_worker(rank: int, world_size: int, port: int, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ds = _run(out, methods=["Saliency", "random"])
    if (ds is None) != (rank != 0):
        raise AssertionError("only rank 0 returns the Dataset")


def test_two_processes_give_the_mosaic_scores_of_one(tmp_path):
    import torch.distributed as dist

    from tests.harness.test_distributed import free_port

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    torch.multiprocessing.spawn(_distributed_worker,
                                args=(2, free_port(), str(tmp_path / "two")), nprocs=2, join=True)
    two = load_dataset(tmp_path / "two" / "results.nc")
    one = _run(tmp_path / "one", methods=["Saliency", "random"])
    for metric in ("grid_pointing_game", "focus"):
        np.testing.assert_array_equal(two[metric].values, one[metric].values)
        np.testing.assert_array_equal(two[f"{metric}_tile_sample"].values,
                                      one[f"{metric}_tile_sample"].values)


def test_the_mosaic_report_loads_in_a_browser_and_fits_800_px(tmp_path):
    from tests.harness.test_browser import BROWSER, probe
    from xaiscore.harness.report import write_report

    if BROWSER is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    page = write_report(_run(), tmp_path / "report", n_boot=50).read_text(encoding="utf-8")
    found = probe(page, tmp_path, 800)
    assert found["broken"] == [] and found["errors"] == []
    assert found["images"] >= 2 * 4  # the example mosaics: image + 3 maps per metric
    assert found["overflow"] <= 0


def test_a_run_of_mosaic_metrics_only_has_a_report_and_a_summary(tmp_path):
    from xaiscore.harness.console import summary_lines
    from xaiscore.harness.report import write_report

    ds = _run(metrics=["focus"], methods=["Saliency", "random"])
    page = write_report(ds, tmp_path / "report", n_boot=20).read_text(encoding="utf-8")
    assert "<h2>Mosaic localization</h2>" in page and "No metric could be scored" not in page
    rows = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert rows[["metric", "method"]].values.tolist() == [["focus", "Saliency"],
                                                           ["focus", "random"]]
    lines, warnings = summary_lines(ds)
    assert lines[0].startswith("Scored 2 methods x 1 metrics")
    assert any("focus: best Saliency 1.000 (chance 0.5, 6 mosaics)" in line for line in lines)
    assert warnings == []


def test_the_negative_class_is_no_target_unless_asked():
    base = dataset(n=32)
    data = RecordList([base[i] for i in range(len(base))],
                      class_names=["No Finding", "c1", "c2", "c3"])
    default = build_mosaic_dataset(data, Bright(), MosaicsConfig(num_mosaics=20),
                                   metric="grid_pointing_game", seed=0)
    assert 0 not in default.mosaics.target.tolist()
    assert (default.mosaics.tile_classes == 0).any(dim=1).all()  # four classes: one tile each
    asked = build_mosaic_dataset(data, Bright(), MosaicsConfig(num_mosaics=20,
                                                               negative_target=True),
                                 metric="grid_pointing_game", seed=0)
    assert 0 in asked.mosaics.target.tolist()
    with pytest.raises(OptionError, match="negative_target` to be true or false"):
        parse_mosaics({"negative_target": "no"})


def test_other_mosaics_in_the_run_folder_are_recomputed_not_an_error(tmp_path):
    _run(tmp_path / "run")
    timing = {}
    ds = _run(tmp_path / "run", mosaics={"num_mosaics": 5, "min_confidence": 0.9, "seed": 3},
              timing=timing)
    assert ds.sizes["focus_mosaic"] == 5
    assert timing["results_computed"] == 3 * 2 * 2  # the mosaics' shards only: 2 batches each
    fresh = _run(tmp_path / "fresh", mosaics={"num_mosaics": 5, "min_confidence": 0.9, "seed": 3})
    np.testing.assert_array_equal(ds["focus"].values, fresh["focus"].values)


def _mosaic_ds(scores, names, models=None):
    import xarray as xr

    coords = {"explainer": names}
    if models is not None:
        coords["model"] = ("explainer", models)
    return xr.Dataset({"focus": (("explainer", "focus_mosaic"), np.asarray(scores, dtype=float),
                                 {"chance_level": 0.5, "higher_is_better": 1})}, coords=coords)


def test_a_higher_mean_alone_names_no_best_mosaic_method():
    from xaiscore.harness.report_mosaics import mosaic_lines, mosaic_rows

    # four mosaics: no paired test can separate two methods at 0.05 (the smallest exact
    # two-sided Wilcoxon p-value with n = 4 is 0.125)
    close = _mosaic_ds([[0.6, 0.4, 0.5, 0.55], [0.5, 0.45, 0.52, 0.5]], ["a", "b"])
    assert not mosaic_rows(close, n_boot=20)["best"].any()
    assert "focus: no significant best (highest mean a 0.512" in mosaic_lines(close)[0]
    # ten mosaics where a beats b on every one: a is the best
    clear = _mosaic_ds([np.linspace(0.8, 0.9, 10), np.linspace(0.4, 0.5, 10)], ["a", "b"])
    assert mosaic_rows(clear, n_boot=20)["best"].tolist() == [True, False]
    assert "focus: best a 0.850" in mosaic_lines(clear)[0]


def test_each_model_gets_its_own_mosaic_verdict():
    from xaiscore.harness.report_mosaics import mosaic_rows

    # each model has its own mosaics: its methods are compared with each other only
    ds = _mosaic_ds([np.linspace(0.8, 0.9, 10), np.linspace(0.4, 0.5, 10),
                     np.linspace(0.3, 0.35, 10), np.linspace(0.1, 0.15, 10)],
                    ["cnn/a", "cnn/b", "vit/a", "vit/b"], models=["cnn", "cnn", "vit", "vit"])
    assert mosaic_rows(ds, n_boot=20)["best"].tolist() == [True, False, True, False]
