"""Methods: seeded explainers that double as factories, and precomputed attributions in every
format."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from xaiscore._checks import ShapeError
from xaiscore.harness.config import ConfigError, MethodConfig
from xaiscore.harness.methods import MethodExplainer, PrecomputedAttributions
from xaiscore._engine.random import derive_seed
from xaiscore.harness.models import SmallCNN

IDS = ["s0", "s1", "s2"]
MAPS = torch.arange(3 * 2 * 4 * 4, dtype=torch.float32).reshape(3, 2, 4, 4)


def write_all_formats(tmp_path):
    paths = {}
    paths["dict.pt"] = tmp_path / "dict.pt"
    torch.save({i: m for i, m in zip(IDS, MAPS)}, paths["dict.pt"])
    paths["ids.pt"] = tmp_path / "ids.pt"
    torch.save({"ids": IDS, "attributions": MAPS}, paths["ids.pt"])
    paths["npz"] = tmp_path / "maps.npz"
    np.savez(paths["npz"], ids=np.array(IDS), attributions=MAPS.numpy())
    paths["npy"] = tmp_path / "maps.npy"
    np.save(paths["npy"], MAPS.numpy())
    (tmp_path / "ids.txt").write_text("\n".join(IDS) + "\n")
    paths["nc"] = tmp_path / "maps.nc"
    xr.Dataset({"attributions": (("sample", "channel", "y", "x"), MAPS.numpy())},
               coords={"source_id": ("sample", IDS)}).to_netcdf(paths["nc"])
    return paths


def test_every_format_gives_the_same_maps(tmp_path):
    paths = write_all_formats(tmp_path)
    like = torch.zeros(2, 2, 4, 4, dtype=torch.float64)
    for name, path in paths.items():
        ids = tmp_path / "ids.txt" if name == "npy" else None
        maps = PrecomputedAttributions(path, ids=ids).lookup(["s2", "s0"], like=like)
        assert maps.dtype == torch.float64, name
        torch.testing.assert_close(maps, MAPS[[2, 0]].double(), msg=name)


def test_maps_without_channel_axis_and_one_channel(tmp_path):
    path = tmp_path / "flat.pt"
    torch.save({"a": torch.ones(4, 4), "b": torch.zeros(1, 4, 4)}, path)
    maps = PrecomputedAttributions(path).lookup(["a", "b"], like=torch.zeros(2, 3, 4, 4))
    assert maps.shape == (2, 1, 4, 4)
    assert maps[0].sum() == 16 and maps[1].sum() == 0


def test_missing_ids_wrong_shapes_and_files_are_named(tmp_path):
    paths = write_all_formats(tmp_path)
    maps = PrecomputedAttributions(paths["dict.pt"])
    with pytest.raises(ConfigError, match=r"dict.pt: no attributions for sample id 'nope'"):
        maps.lookup(["s0", "nope"], like=torch.zeros(2, 2, 4, 4))
    with pytest.raises(ShapeError,
                       match=r"dict.pt: expected the map of sample 's0' of shape \(2, 8, 8\)"):
        maps.lookup(["s0"], like=torch.zeros(1, 2, 8, 8))
    with pytest.raises(ConfigError, match="missing.pt' does not exist"):
        PrecomputedAttributions(tmp_path / "missing.pt").lookup(["s0"],
                                                                like=torch.zeros(1, 2, 4, 4))
    with pytest.raises(ConfigError, match="holds no sample ids"):
        PrecomputedAttributions(paths["npy"]).lookup(["s0"], like=torch.zeros(1, 2, 4, 4))
    (tmp_path / "short.txt").write_text("s0\n")
    with pytest.raises(ConfigError, match="1 ids and 3 maps"):
        PrecomputedAttributions(paths["npy"], ids=tmp_path / "short.txt").lookup(
            ["s0"], like=torch.zeros(1, 2, 4, 4))
    with pytest.raises(ConfigError, match="variable 'maps'"):
        PrecomputedAttributions(paths["nc"], variable="maps").lookup(["s0"],
                                                                     like=torch.zeros(1, 2, 4, 4))
    (tmp_path / "maps.csv").write_text("x")
    with pytest.raises(ConfigError, match="suffix|expected a .pt"):
        PrecomputedAttributions(tmp_path / "maps.csv").lookup(["s0"], like=torch.zeros(1, 2, 4, 4))


def test_method_explainer_is_seeded_and_acts_as_a_factory():
    model = SmallCNN(1, 2, width=2).eval()
    x, target = (torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)),
                 torch.tensor([0, 1, 0]))
    config = MethodConfig("rnd", "random")
    first = MethodExplainer(config, model, seed=derive_seed(0, "rnd", 0))(x, target)
    again = MethodExplainer(config, model, seed=derive_seed(0, "rnd", 0))(x, target)
    other = MethodExplainer(config, model, seed=derive_seed(0, "rnd", 1))(x, target)
    assert torch.equal(first, again) and not torch.equal(first, other)
    saliency = MethodExplainer(MethodConfig("grad", "Gradient"), model, seed=0)
    copy = SmallCNN(1, 2, width=2, generator=torch.Generator().manual_seed(5)).eval()
    bound = saliency(copy)
    expected_input = x.clone().requires_grad_(True)
    copy(expected_input).gather(1, target[:, None]).sum().backward()
    torch.testing.assert_close(bound(x, target), expected_input.grad)
    with pytest.raises(ConfigError, match="precomputed"):
        MethodExplainer(MethodConfig("p", "precomputed", {"path": "x.pt"}), model, seed=0)


def test_method_explainer_hands_out_the_forward_pass_of_single_pass_methods():
    pytest.importorskip("captum")
    model = SmallCNN(1, 2, width=2).eval()
    x, target = (torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)),
                 torch.tensor([0, 1, 0]))
    saliency = MethodExplainer(MethodConfig("sal", "Saliency"), model, seed=0)
    a, logits = saliency.explain_with_output(x, target)
    assert saliency.shares_forward and saliency.model is model
    torch.testing.assert_close(a, saliency(x, target), rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x), rtol=0, atol=0)
    random = MethodExplainer(MethodConfig("rnd", "random"), model, seed=0)
    maps, none = random.explain_with_output(x, target)
    assert not random.shares_forward and none is None and maps.shape == (3, 1, 8, 8)
