"""Config method entries: every explainer's options checked at parse time, references resolved,
a model's explainer_options (attention hooks) passed to its methods, the factory's seed rule."""

from __future__ import annotations

import textwrap

import pytest
import torch

from xaiscore.explainers.tiny_models import TinyViT
from xaiscore.harness.config import ConfigError, MethodConfig, parse_config
from xaiscore.harness.method_options import accepted_options
from xaiscore.harness.methods import MethodExplainer, resolve_options
from xaiscore.harness.models import SmallCNN


def _methods(*entries, model=None):
    raw = {"methods": list(entries)}
    if model is not None:
        raw["model"] = model
    return parse_config(raw).methods


def test_every_new_explainer_takes_its_options_from_a_config():
    methods = _methods(
        {"method": "RISE", "n_masks": 64, "grid_size": [4, 4], "p": 0.3, "baseline": 0.5},
        {"method": "KernelShap", "grid": 4, "n_samples": 50},
        {"method": "Lime", "grid": [2, 4], "n_samples": 20},
        {"method": "FeatureAblation", "feature_mask": [[0, 0], [1, 1]]},
        {"method": "AttentionRollout", "head_fusion": "max", "discard_ratio": 0.9},
        {"method": "CheferRelevance", "prefix_tokens": 2, "class_token": 1},
        {"method": "Prototype", "top_k": 2, "candidates": "all"},
    )
    assert [m.method for m in methods] == ["RISE", "KernelShap", "Lime", "FeatureAblation",
                                           "AttentionRollout", "CheferRelevance", "Prototype"]
    assert dict(methods[0].options) == {"n_masks": 64, "grid_size": [4, 4], "p": 0.3,
                                        "baseline": 0.5}


@pytest.mark.parametrize(("entry", "message"), [
    ({"method": "RISE", "n_mask": 8}, r"unknown option 'n_mask' in `methods\[0\]` \(RISE\); "
                                      r"did you mean 'n_masks'\?"),
    ({"method": "RISE", "n_masks": 0}, r"`methods\[0\]` \(RISE\).*n_masks"),
    ({"method": "RISE", "p": 0.0}, r"\(RISE\).*`p`"),
    ({"method": "RISE", "grid_size": "big"}, r"\(RISE\).*grid_size"),
    ({"method": "AttentionRollout", "head_fusion": "median"}, r"head_fusion.*'median'"),
    ({"method": "AttentionRollout", "discard_ratio": 1.0}, r"discard_ratio"),
    ({"method": "AttentionRollout", "attention_fn": "no_colon"},
     r"`methods\[0\].attention_fn` as 'package.module:function'"),
    ({"method": "AttentionRollout", "attention_modules": 3}, r"attention_modules.*got 3"),
    ({"method": "CheferRelevance", "class_token": 1}, r"class_token"),
    ({"method": "CheferRelevance", "head_fusion": "max"}, r"unknown option 'head_fusion'"),
    ({"method": "KernelShap", "grid": 0}, r"\(KernelShap\).*grid"),
    ({"method": "Lime", "grid": 4, "feature_mask": [[0]]}, r"at most one of `grid` and "),
    ({"method": "Saliency", "grid": 4}, r"\(Saliency\).*only for the feature-group methods"),
    ({"method": "FeatureAblation", "feature_mask": 7}, r"feature_mask.*a .npy/.pt file"),
    ({"method": "Prototype", "top_k": 0}, r"\(Prototype\).*top_k"),
    ({"method": "Prototype", "similarity_fn": 3}, r"similarity_fn"),
    ({"method": "LayerGradCam"}, r"\(LayerGradCam\).*layer"),
    ({"method": "IntegratedGradients", "n_step": 8}, r"did you mean 'n_steps'"),
    ({"method": "random", "distribution": "cauchy"}, r"\(random\).*distribution"),
])
def test_bad_options_fail_at_parse_time_naming_entry_and_method(entry, message):
    with pytest.raises(ConfigError, match=message):
        _methods(entry)


def test_options_a_run_needs_the_model_for_are_left_to_the_run():
    # the attention modules and the Grad-CAM layer exist only on the real model
    methods = _methods({"method": "AttentionRollout", "attention_modules": "enc.*.probs"},
                       {"method": "LayerGradCam", "layer": "features.6"},
                       {"method": "Prototype", "prototype_layer": "protos"})
    assert methods[0].options["attention_modules"] == "enc.*.probs"


def test_accepted_options_follow_the_builders():
    assert {"n_masks", "grid_size", "p", "seed"} <= accepted_options("RISE")
    assert {"grid", "feature_mask", "n_samples", "perturbations_per_eval"} <= \
        accepted_options("KernelShap")
    assert "seed" not in accepted_options("constant")
    assert accepted_options("quantus") is None


def test_model_explainer_options_reach_the_methods_that_take_them():
    methods = _methods(
        "AttentionRollout",
        {"method": "CheferRelevance", "attention_modules": "own.*"},
        {"method": "RISE", "n_masks": 8},
        model={"explainer_options": {"attention_modules": "blocks.*.attn.attn_drop",
                                     "prefix_tokens": 1}},
    )
    assert dict(methods[0].options) == {"attention_modules": "blocks.*.attn.attn_drop",
                                        "prefix_tokens": 1}
    assert methods[1].options["attention_modules"] == "own.*"  # the method's own wins
    assert dict(methods[2].options) == {"n_masks": 8}  # RISE takes neither
    with pytest.raises(ConfigError, match=r"unknown explainer option 'atention_modules' in "
                                          r"`model.explainer_options`; did you mean"):
        _methods("AttentionRollout", model={"explainer_options": {"atention_modules": "x"}})
    with pytest.raises(ConfigError, match=r"`model.explainer_options.attention_fn` as"):
        _methods("AttentionRollout", model={"explainer_options": {"attention_fn": 3}})


def test_an_attention_function_reference_from_the_config_is_imported_and_used(tmp_path,
                                                                             monkeypatch):
    (tmp_path / "my_hooks.py").write_text(textwrap.dedent("""
        CALLS = []

        def attention(model, x):
            CALLS.append(x.shape[0])
            maps = []
            handles = [b.attn.attn_drop.register_forward_hook(lambda m, i, o: maps.append(o))
                       for b in model.blocks]
            logits = model(x)
            for handle in handles:
                handle.remove()
            return logits, maps
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    (config,) = _methods({"method": "AttentionRollout", "name": "r"},
                         model={"explainer_options": {"attention_fn": "my_hooks:attention"}})
    assert config.options["attention_fn"] == "my_hooks:attention"
    model = TinyViT(1, 2, image_size=8, patch_size=4).eval()
    x, target = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.zeros(
        3, dtype=torch.long)
    by_reference = MethodExplainer(config, model, seed=0)(x, target)
    by_hooks = MethodExplainer(MethodConfig("r", "AttentionRollout"), model, seed=0)(x, target)
    import my_hooks

    assert my_hooks.CALLS == [3]
    torch.testing.assert_close(by_reference, by_hooks)
    with pytest.raises(ConfigError, match="Cannot import"):
        resolve_options({"attention_fn": "no_such_module_xyz:f"})


def test_feature_masks_from_a_list_or_a_file_relative_to_the_config(tmp_path):
    import numpy as np

    np.save(tmp_path / "mask.npy", np.array([[0, 0, 1, 1]] * 4))
    (tmp_path / "run.yaml").write_text(
        "methods:\n  - {method: FeatureAblation, feature_mask: mask.npy}\n"
        "  - {method: FeatureAblation, name: listed, feature_mask: [[0, 1, 1, 0]]}\n")
    from xaiscore.harness.config import load_config

    first, second = load_config(tmp_path / "run.yaml").methods
    assert first.options["feature_mask"] == str(tmp_path / "mask.npy")
    mask = resolve_options(first.options)["feature_mask"]
    assert mask.dtype == torch.long and mask.shape == (4, 4) and mask.sum() == 8
    assert resolve_options(second.options)["feature_mask"].tolist() == [[0, 1, 1, 0]]
    model = SmallCNN(1, 2, width=2).eval()
    a = MethodExplainer(first, model, seed=0)(torch.rand(2, 1, 4, 4), torch.tensor([0, 1]))
    assert a.shape == (2, 1, 4, 4)
    assert torch.equal(a[:, :, :, 0], a[:, :, :, 1])  # one value per feature group
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_options({"feature_mask": str(tmp_path / "missing.npy")})


def test_a_model_based_method_draws_the_same_masks_for_every_model():
    """RISE in a randomization metric: the same masks for the original and randomized models, so
    the check compares maps and not mask draws; the random baseline draws new maps."""
    model = SmallCNN(1, 2, width=2).eval()
    other = SmallCNN(1, 2, width=2, generator=torch.Generator().manual_seed(9)).eval()
    x, target = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor(
        [0, 1])
    rise = MethodExplainer(MethodConfig("rise", "RISE", {"n_masks": 16, "grid_size": 2}), model,
                           seed=5)
    torch.testing.assert_close(rise(model)(x, target), rise(x, target))
    torch.testing.assert_close(rise(other)(x, target), rise(other)(x, target))
    fresh = MethodExplainer(MethodConfig("rise", "RISE", {"n_masks": 16, "grid_size": 2}), other,
                            seed=5)
    torch.testing.assert_close(rise(other)(x, target), fresh(x, target))
    random = MethodExplainer(MethodConfig("rnd", "random"), model, seed=5)
    assert not torch.equal(random(model)(x, target), random(model)(x, target))
