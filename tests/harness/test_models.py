"""Models: the demo CNN, deterministic training, loading users' models
(factory + state dict, TorchScript)."""

from __future__ import annotations

import pytest
import torch

from xaiscore.harness.config import ConfigError
from xaiscore.harness.data import make_synthetic_dataset
from xaiscore.harness.models import SmallCNN, load_model, model_fingerprint, train_model


def build_tiny(num_classes: int = 2) -> SmallCNN:
    """A factory for load_model (imported by name in the tests)."""
    return SmallCNN(1, num_classes, width=4)


@pytest.mark.parametrize(("dims", "shape"), [(1, (2, 3, 12)), (2, (2, 3, 12, 10)), (3, (2, 3, 8, 8,
                                                                                        8))])
def test_small_cnn_shapes(dims, shape):
    model = SmallCNN(3, 4, width=2, spatial_dims=dims)
    assert model(torch.rand(shape)).shape == (2, 4)
    assert isinstance(model.get_submodule("features.6"), torch.nn.Module)


def test_initialisation_comes_from_the_generator_only():
    state = torch.random.get_rng_state()
    first = SmallCNN(1, 2, generator=torch.Generator().manual_seed(1))
    second = SmallCNN(1, 2, generator=torch.Generator().manual_seed(1))
    third = SmallCNN(1, 2, generator=torch.Generator().manual_seed(2))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert model_fingerprint(first) == model_fingerprint(second) != model_fingerprint(third)


def test_training_is_deterministic_learns_and_leaves_the_global_rng_alone():
    data = make_synthetic_dataset(64, size=(24, 24), seed=5)
    state = torch.random.get_rng_state()
    models = []
    for _ in range(2):
        model = SmallCNN(1, 2, width=4, generator=torch.Generator().manual_seed(0))
        history = train_model(model, data, epochs=3, batch_size=16, seed=4)
        models.append(model)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert not models[0].training
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        assert torch.equal(a, b)
    assert sum(history["loss"][-4:]) < sum(history["loss"][:4])
    assert not torch.are_deterministic_algorithms_enabled()


def test_load_factory_with_state_dict(tmp_path):
    source = SmallCNN(1, 3, width=4, generator=torch.Generator().manual_seed(9))
    torch.save(source.state_dict(), tmp_path / "weights.pt")
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, tmp_path / "checkpoint.pt")
    x = torch.rand(2, 1, 16, 16)
    for name in ("weights.pt", "checkpoint.pt"):
        model = load_model(factory="tests.harness.test_models:build_tiny",
                           state_dict=tmp_path / name,
                           kwargs={"num_classes": 3})
        assert not model.training
        torch.testing.assert_close(model(x), source(x))
    with pytest.raises(ConfigError, match="does not fit the model"):
        # 2 classes, weights have 3
        load_model(factory=build_tiny, state_dict=tmp_path / "weights.pt")


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_load_torchscript(tmp_path):
    source = SmallCNN(1, 2, width=4).eval()
    path = tmp_path / "model.ts"
    torch.jit.script(source).save(str(path))
    loaded = load_model(torchscript=path)
    x = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(loaded(x), source(x))


def test_load_exported_program(tmp_path):
    from xaiscore.explainers import captum_explainer

    source = SmallCNN(1, 2, width=4).eval()
    x = torch.rand(2, 1, 16, 16)
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.export.save(torch.export.export(source, (x,), dynamic_shapes={"x": {0: batch}}),
                      tmp_path / "m.pt2")
    loaded = load_model(exported=tmp_path / "m.pt2")
    torch.testing.assert_close(loaded(torch.cat([x, x, x])), source(torch.cat([x, x, x])))
    target = torch.tensor([0, 1])
    torch.testing.assert_close(captum_explainer(loaded, "Saliency")(x, target),
                               captum_explainer(source, "Saliency")(x, target))


def test_load_errors_name_the_file_or_factory(tmp_path):
    with pytest.raises(ConfigError, match="missing.pt' does not exist"):
        load_model(factory=build_tiny, state_dict=tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="model.ts' does not exist"):
        load_model(torchscript=tmp_path / "model.ts")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="junk.pt"):
        load_model(factory=build_tiny, state_dict=tmp_path / "junk.pt")
    with pytest.raises(ConfigError, match="no_such_module_xyz"):
        load_model(factory="no_such_module_xyz:build")
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        load_model(factory="tests.harness.test_models:nope")
    with pytest.raises(ConfigError, match="m.pt2' does not exist"):
        load_model(exported=tmp_path / "m.pt2")
    with pytest.raises(ConfigError, match="exactly one"):
        load_model()
