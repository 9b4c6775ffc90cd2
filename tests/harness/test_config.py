"""Config files: TOML and YAML parse alike, paths resolve, and every bad entry names its file and
key."""

from __future__ import annotations

import textwrap

import pytest

from xaiscore.harness.config import ConfigError, MetricsConfig, load_config, parse_config
from xaiscore.harness.scoring import plan_metrics, select_metrics

TOML = """
out = "runs/first"
seed = 3
device = "cpu"
batch_size = 4
max_batch_size = 32
target = "predicted"
repeats = 2
n_examples = 2
on_error = "record"
save_attributions = true
report = false
methods = ["Saliency", {method = "LayerGradCam", name = "gradcam", layer = "features.6"},
           {method = "precomputed", name = "mine", path = "maps/a.pt"}]

[dataset]
kind = "nih"
root = "data/nih"
class_names = ["No Finding", "Nodule"]

[model]
kind = "factory"
factory = "mypackage.models:build"
state_dict = "weights/model.pt"
kwargs = {num_classes = 2}

[metrics]
include = ["pointing_game", "deletion"]
exclude = ["deletion"]
families = ["localization", "faithfulness"]
[metrics.options.pointing_game]
tolerance = 2.0
"""

YAML = """
out: runs/first
seed: 3
device: cpu
batch_size: 4
max_batch_size: 32
target: predicted
repeats: 2
n_examples: 2
on_error: record
save_attributions: true
report: false
methods:
  - Saliency
  - {method: LayerGradCam, name: gradcam, layer: features.6}
  - {method: precomputed, name: mine, path: maps/a.pt}
dataset:
  kind: nih
  root: data/nih
  class_names: [No Finding, Nodule]
model:
  kind: factory
  factory: "mypackage.models:build"
  state_dict: weights/model.pt
  kwargs: {num_classes: 2}
metrics:
  include: [pointing_game, deletion]
  exclude: [deletion]
  families: [localization, faithfulness]
  options:
    pointing_game: {tolerance: 2.0}
"""


def test_toml_and_yaml_give_the_same_config(tmp_path):
    (tmp_path / "run.toml").write_text(TOML)
    (tmp_path / "run.yaml").write_text(YAML)
    from_toml = load_config(tmp_path / "run.toml")
    from_yaml = load_config(tmp_path / "run.yaml")
    assert from_toml.with_overrides(source="x") == from_yaml.with_overrides(source="x")
    config = from_toml
    assert config.out == str(tmp_path / "runs/first")
    assert config.dataset.kind == "nih" and config.dataset.options["root"] == str(tmp_path
                                                                                  / "data/nih")
    assert config.dataset.options["class_names"] == ["No Finding", "Nodule"]
    assert config.model.state_dict == str(tmp_path / "weights/model.pt")
    assert [(m.name, m.method) for m in config.methods] == [
        ("Saliency", "Saliency"), ("gradcam", "LayerGradCam"), ("mine", "precomputed")]
    assert config.methods[1].options == {"layer": "features.6"}
    assert config.methods[2].options["path"] == str(tmp_path / "maps/a.pt")
    assert (config.seed, config.batch_size, config.max_batch_size, config.target,
            config.repeats) == (
        3, 4, 32, "predicted", 2)
    assert (config.on_error, config.save_attributions, config.report, config.n_examples) == (
        "record", True, False, 2)
    assert [s.name for s in select_metrics(config.metrics)] == ["pointing_game"]
    assert config.metrics.options == {"pointing_game": {"tolerance": 2.0}}


def test_defaults_and_overrides():
    config = parse_config({})
    assert config.dataset.kind == "synthetic" and config.model.kind == "demo"
    assert [m.name for m in config.methods] == ["Saliency", "random"]
    assert config.metrics == MetricsConfig()
    assert config.with_overrides(out="elsewhere", device=None).out == "elsewhere"
    assert parse_config({"metrics": ["sparseness"]}).metrics.include == ("sparseness",)
    assert config.max_batch_size == 64


@pytest.mark.parametrize("value", [32, "auto", "2GB", "auto:512MiB"])
def test_max_batch_size_takes_an_int_auto_or_a_byte_budget(value):
    assert parse_config({"max_batch_size": value}).max_batch_size == value


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"seeed": 1}, r"unknown key 'seeed'; did you mean 'seed'"),
        ({"metrics": ["pointing_gam"]}, r"'pointing_gam'.*Did you mean 'pointing_game'"),
        ({"metrics": {"exclude": ["nope_metric"]}}, r"'nope_metric'"),
        ({"metrics": {"families": ["faith"]}}, r"metrics.families"),
        ({"metrics": {"includes": "all"}}, r"unknown key metrics.'includes'"),
        ({"methods": ["Salency"]}, r"unknown method 'Salency' in `methods\[0\]`.*'Saliency'"),
        ({"methods": ["Saliency", "Saliency"]}, r"distinct method names"),
        ({"methods": [{"method": "precomputed"}]}, r"methods\[0\].path"),
        ({"methods": []}, r"non-empty list"),
        ({"target": "true"}, r"`target`"),
        ({"batch_size": 0}, r"`batch_size` to be at least 1"),
        ({"max_batch_size": 0}, r"`max_batch_size` to be at least 1"),
        ({"max_batch_size": "fast"}, r"`max_batch_size`: .*'fast'"),
        ({"max_batch_size": True}, r"`max_batch_size` to be an int, \"auto\" or a byte budget"),
        ({"seed": "zero"}, r"`seed` to be an int"),
        ({"model": {"kind": "factory"}}, r"model.factory"),
        ({"model": {"kind": "torchscript"}}, r"model.path"),
        ({"model": {"kind": "onnx"}}, r"model.kind"),
        ({"model": {"weights": "x"}}, r"unknown key model.'weights'"),
        ({"dataset": "synthetic"}, r"`dataset` to be a table"),
    ],
)
def test_bad_configs_name_the_file_and_key(tmp_path, raw, match):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=match) as error:
        load_config(path)
    assert str(error.value).startswith(str(path))
    assert isinstance(error.value, ValueError)


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(ConfigError, match="suffix '.json'"):
        load_config(tmp_path / "c.json")
    (tmp_path / "c.toml").write_text("seed = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "c.toml")
    (tmp_path / "c.yaml").write_text(textwrap.dedent("a: [1, 2"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "c.yaml")


def test_metric_options_are_checked_against_the_kernel():
    planned = plan_metrics(["pointing_game"], {"pointing_game": {"tolerance": 1.5}})
    assert planned[0].options["tolerance"] == 1.5
    with pytest.raises(ConfigError,
                       match=r"'pointing_game' has no option\(s\) \['tolerence'\].*'tolerance'"):
        plan_metrics(["pointing_game"], {"pointing_game": {"tolerence": 1.5}})
    with pytest.raises(ConfigError, match=r"name its inputs \['mask'\]"):
        plan_metrics(["pointing_game"], {"pointing_game": {"mask": None}})
