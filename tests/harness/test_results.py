"""The results Dataset: schema, netCDF round trip, atomic writes, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

from xaiscore._checks import OptionError, ShapeError
from xaiscore.harness.results import (
    build_dataset,
    curve_variables,
    higher_is_better,
    load_dataset,
    metric_variables,
    save_dataset,
)

SAMPLES = {"source_id": ["a", "b", "c"], "label": [1, 0, 1], "target": [1, 0, 1],
           "prediction": [1, 1, 1],
           "finding": ["Nodule", "No Finding", "Mass"]}


def full_dataset() -> xr.Dataset:
    rng = np.random.default_rng(0)
    return build_dataset(
        methods=["Saliency", "random"],
        samples=SAMPLES,
        sample_index=[4, 5, 9],
        scores={
            "pointing_game": {"Saliency": np.array([1.0, np.nan, 0.0]), "random": torch.tensor([0.0, np.nan, 1.0])},  # noqa: E501
            "noisy": {"Saliency": rng.random((3, 2)), "random": rng.random((3, 2))},
            "count": {"Saliency": np.array([3.0, 4.0, 5.0])},
            "deletion": {"Saliency": np.array([0.1, 0.2, 0.3]), "random": np.array([0.4, 0.5, 0.6])},  # noqa: E501
        },
        curves={"deletion": {"Saliency": rng.random((3, 5)), "random": rng.random((3, 5))}},
        curve_x={"deletion": np.linspace(0, 1, 5)},
        metric_info={
            "pointing_game": {"family": "localization", "higher_is_better": True, "settings": {"tolerance": 2.0}},  # noqa: E501
            "noisy": {"family": "robustness", "higher_is_better": False, "stochastic": True},
            "count": {"family": "complexity", "higher_is_better": None},
            "deletion": {"family": "faithfulness", "higher_is_better": False,
                         "settings": {"features_per_step": (1, 2)}},
        },
        skipped={"count": {"random": "no reason"}, "ghost": {"Saliency": "cannot import"}},
        examples={
            "image": torch.rand(2, 1, 4, 4), "mask": torch.zeros(2, 4, 4, dtype=torch.bool),
            "boxes": torch.tensor([[[0.0, 0.0, 2.0, 2.0]], [[np.nan] * 4]]), "sample": [4, 9],
            "attributions": {"Saliency": torch.ones(2, 4, 4)},
        },
        attrs={"seed": 7, "config": {"a": [1, 2]}, "flag": True},
    )


def test_schema_dims_coords_and_attrs():
    ds = full_dataset()
    assert ds["pointing_game"].dims == ("explainer", "sample")
    assert ds["noisy"].dims == ("explainer", "sample", "run")
    assert ds["deletion_curve"].dims == ("explainer", "sample", "deletion_step")
    assert ds["deletion"].sel(explainer="random").values.tolist() == [0.4, 0.5, 0.6]
    np.testing.assert_allclose(ds["deletion_step"].values, np.linspace(0, 1, 5))
    assert ds["sample"].values.tolist() == [4, 5, 9]
    assert ds["source_id"].values.tolist() == ["a", "b", "c"]
    assert ds["finding"].sel(sample=9).item() == "Mass"
    # a method without scores is NaN, and the reason is kept
    assert np.isnan(ds["count"].sel(explainer="random").values).all()
    assert json.loads(ds["count"].attrs["skipped"]) == {"random": "no reason"}
    # a metric no method could score is listed in the Dataset attrs
    assert json.loads(ds.attrs["skipped"]) == {"ghost": {"Saliency": "cannot import"}}
    assert [higher_is_better(ds, m) for m in ("pointing_game", "noisy", "count")] == [True, False,
                                                                                      None]
    assert json.loads(ds["deletion_curve"].attrs["settings"]) == {"features_per_step": [1, 2]}
    assert metric_variables(ds) == ["pointing_game", "noisy", "count", "deletion"]
    assert curve_variables(ds) == ["deletion"]
    assert ds.attrs["seed"] == 7 and ds.attrs["flag"] == 1
    for value in list(ds.attrs.values()) + [v for var in ds.data_vars.values() for v
                                            in var.attrs.values()]:
        assert isinstance(value, (str, int, float)), value


def test_netcdf_round_trip_is_identical(tmp_path):
    ds = full_dataset()
    path = save_dataset(ds, tmp_path / "sub" / "results.nc")
    loaded = load_dataset(path)
    xr.testing.assert_identical(loaded, ds)
    # the file is closed: it can be replaced right away
    save_dataset(ds, path)
    # and it reads back with plain xarray too
    with xr.open_dataset(path) as plain:
        assert plain["pointing_game"].attrs["higher_is_better"] == 1


def test_write_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "results.nc"
    first = full_dataset()
    save_dataset(first, path)
    before = path.read_bytes()

    def broken(self, target, *args, **kwargs):
        with open(target, "wb") as stream:
            stream.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        save_dataset(first.assign(pointing_game=first["pointing_game"] * 0), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.nc"]


def test_errors():
    with pytest.raises(ShapeError, match="3 samples"):
        build_dataset(methods=["m"], samples=SAMPLES, scores={"x1": {"m": np.zeros(2)}})
    with pytest.raises(OptionError, match="reserved"):
        build_dataset(methods=["m"], samples=SAMPLES, scores={"label": {"m": np.zeros(3)}})
    with pytest.raises(OptionError, match="among"):
        build_dataset(methods=["m"], samples=SAMPLES, scores={"x1": {"other": np.zeros(3)}})
    with pytest.raises(OptionError, match="missing"):
        build_dataset(methods=["m"], samples={"source_id": ["a"]}, scores={})
    with pytest.raises(ShapeError, match="x positions"):
        build_dataset(methods=["m"], samples=SAMPLES, scores={},
                      curves={"c": {"m": np.zeros((3, 4))}},
                      curve_x={"c": np.zeros(3)})
    with pytest.raises(FileNotFoundError, match="nope.nc"):
        load_dataset("nope.nc")


def test_coordinates_and_curves_say_what_they_measure(tmp_path):
    from xaiscore.harness.axes import curve_axes
    from xaiscore.specs import get_metric

    ds = build_dataset(
        methods=["Saliency"], samples=SAMPLES,
        scores={"road": {"Saliency": np.array([0.1, 0.2, 0.3])}},
        curves={"road": {"Saliency": np.random.default_rng(0).random((3, 2))}},
        curve_x={"road": np.array([0.3, 0.7])},  # the config's percentages [30, 70] / 100
        metric_info={"road": {"higher_is_better": False, "description": "ROAD",
                              "curve_axes": curve_axes(get_metric("road"),
                                                       {"percentages": [30, 70]}),
                              "nan_rule": ""}},
        probabilities=np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]))
    loaded = load_dataset(save_dataset(ds, tmp_path / "r.nc"))
    assert loaded["road_step"].attrs == {"long_name": "fraction of features removed", "units": "1"}
    assert loaded["road_step"].values.tolist() == [0.3, 0.7]
    assert loaded["road_curve"].attrs["long_name"] == "accuracy"
    assert loaded["road_curve"].attrs["units"] == "1"
    assert loaded["road"].attrs["long_name"] == "ROAD"
    for name in ("explainer", "sample", "label", "target", "prediction", "finding", "class"):
        assert loaded[name].attrs.get("long_name"), name
    assert loaded["model_probability"].dims == ("sample", "class")
    np.testing.assert_allclose(loaded["model_probability"].values[0], [0.2, 0.8])


def test_files_written_before_the_rename_load_with_the_explainer_dimension(tmp_path):
    old = full_dataset().rename({"explainer": "method"})
    old.to_netcdf(tmp_path / "old.nc")
    loaded = load_dataset(tmp_path / "old.nc")
    assert "method" not in loaded.dims and loaded["pointing_game"].dims == ("explainer", "sample")
    assert loaded["pointing_game"].sel(explainer="random").values.tolist()[0] == 0.0
