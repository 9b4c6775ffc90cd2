"""Models that are not plain logit classifiers: dict/tuple outputs (Hugging Face style), an output
function, and models that return probabilities, through the kernels, the captum explainers and the
harness."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from xaiscore import declare_model_output
from xaiscore._engine.batching import (
    ModelOutputError,
    call_model,
    carry_model_output,
    model_output_of,
)
from xaiscore.explainers import captum_explainer
from xaiscore.functional.faithfulness import deletion, insertion


def small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 36, 4)
    ).eval()


class Dicted(nn.Module):
    """Hugging Face style: a dict of outputs with the logits under ``"logits"``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return {"logits": self.net(x), "hidden": x.flatten(1)}


class Tupled(Dicted):
    def forward(self, x):
        return (self.net(x), x.flatten(1))


def inputs(n: int = 3):
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, 6, 6, generator=generator)
    a = torch.rand(n, 1, 6, 6, generator=generator)
    return x, a, torch.tensor([0, 2, 3][:n])


def test_a_dict_output_without_a_declaration_says_how_to_declare_it():
    x, a, target = inputs()
    with pytest.raises(
        ModelOutputError, match=r"declare_model_output\(model, output_key='logits'\)"
    ):
        deletion(Dicted(small_model()), x, a, target)
    with pytest.raises(ModelOutputError, match="declare_model_output"):
        captum_explainer(Dicted(small_model()), "Saliency").explain_with_output(x, target)


@pytest.mark.parametrize(
    ("wrapper", "declaration"),
    [
        (Dicted, {"output_key": "logits"}),
        (Tupled, {"output_key": 0}),
        (Dicted, {"output_fn": lambda out: out["logits"]}),
    ],
)
def test_declared_outputs_give_the_numbers_of_the_plain_model(wrapper, declaration):
    x, a, target = inputs()
    plain = small_model()
    wrapped = declare_model_output(wrapper(copy.deepcopy(plain)), **declaration)
    expected = deletion(plain, x, a, target, features_per_step=4)
    got = deletion(wrapped, x, a, target, features_per_step=4)
    torch.testing.assert_close(got.curve, expected.curve, rtol=0, atol=0)
    a_plain, out_plain = captum_explainer(plain, "Saliency").explain_with_output(x, target)
    a_wrapped, out_wrapped = captum_explainer(wrapped, "Saliency").explain_with_output(x, target)
    torch.testing.assert_close(a_wrapped, a_plain, rtol=0, atol=0)
    torch.testing.assert_close(out_wrapped, out_plain, rtol=0, atol=0)
    for method in ("IntegratedGradients", "GuidedBackprop", "DeepLift"):
        torch.testing.assert_close(
            captum_explainer(wrapped, method)(x, target), captum_explainer(plain, method)(x, target)
        )


def test_a_missing_key_is_named():
    x, a, target = inputs()
    model = declare_model_output(Dicted(small_model()), output_key="scores")
    with pytest.raises(ModelOutputError, match=r"entry 'scores'.*keys \['logits', 'hidden'\]"):
        call_model(model, x)


def test_probabilities_are_not_softmaxed_again():
    x, a, target = inputs()
    plain = small_model()
    softmaxed = nn.Sequential(copy.deepcopy(plain), nn.Softmax(dim=1)).eval()
    declared = declare_model_output(copy.deepcopy(softmaxed), probabilities=True)
    for kernel in (deletion, insertion):
        expected = kernel(plain, x, a, target, features_per_step=4, softmax=True).curve
        torch.testing.assert_close(
            kernel(declared, x, a, target, features_per_step=4, softmax=True).curve,
            expected,
            rtol=1e-5,
            atol=1e-6,
        )
        undeclared = kernel(softmaxed, x, a, target, features_per_step=4, softmax=True).curve
        assert not torch.allclose(undeclared, expected, atol=1e-3)  # the silent second softmax
    # the predicted class is the model's, and logit-tracking metrics see log p
    torch.testing.assert_close(
        call_model(declared, x), torch.log_softmax(plain(x), dim=1), rtol=1e-5, atol=1e-6
    )


def test_the_declaration_survives_copies_and_wrappers():
    model = declare_model_output(Dicted(small_model()), output_key="logits")
    assert model_output_of(copy.deepcopy(model)) == model_output_of(model)
    assert model_output_of(model.forward) == model_output_of(model)  # a bound forward

    class Probe:  # a kernel's wrapper that holds the model (as relative_representation_stability's)
        def __init__(self, model):
            self.model = model

        def __call__(self, x):
            return self.model(x)

    x = inputs()[0]
    torch.testing.assert_close(call_model(Probe(model), x), model.net(x))
    scripted = torch.jit.script(small_model())
    declare_model_output(scripted, probabilities=True)
    copied = carry_model_output(
        scripted, copy.deepcopy(scripted)
    )  # TorchScript copies drop attributes
    assert model_output_of(copied) == model_output_of(scripted)
    declare_model_output(model)  # no options: the declaration is removed
    assert model_output_of(model) is None


@pytest.mark.parametrize(
    "bad",
    [{"output_key": 1.5}, {"output_key": True}, {"output_fn": "logits"}, {"probabilities": "yes"}],
)
def test_bad_declarations_are_typed_errors(bad):
    from xaiscore import DTypeError

    with pytest.raises(DTypeError):
        declare_model_output(small_model(), **bad)


def test_every_model_based_metric_of_the_harness_reads_the_declaration(tmp_path):
    """A whole harness run, every registered metric that calls the model: a dict-output model
    declared
    with ``output_key`` scores exactly as the plain model."""
    import numpy as np

    from xaiscore.dispatch import MODEL_INPUTS
    from xaiscore.harness.data import make_synthetic_dataset
    from xaiscore.harness.demo import _metric_options
    from xaiscore.harness.models import SmallCNN
    from xaiscore.harness.results import metric_variables
    from xaiscore.harness.runner import evaluate
    from xaiscore.harness.set_results import set_metric_variables
    from xaiscore.specs import list_metrics

    data = make_synthetic_dataset(4, size=(16, 16), seed=2)
    plain = SmallCNN(1, 2, width=4, generator=torch.Generator().manual_seed(0)).eval()
    wrapped = declare_model_output(Dicted(copy.deepcopy(plain)), output_key="logits")
    metrics = [s.name for s in list_metrics() if s.needs & MODEL_INPUTS]
    kwargs = dict(
        methods=["Saliency", "random"],
        metrics=metrics,
        metric_options=_metric_options(),
        batch_size=4,
        n_examples=0,
        on_error="record",
    )
    expected = evaluate(data, plain, **kwargs)
    got = evaluate(data, wrapped, **kwargs)
    scored = metric_variables(expected) + set_metric_variables(expected)  # per-sample and set-level
    assert set(scored) == set(metrics)
    assert metric_variables(got) + set_metric_variables(got) == scored
    for name in scored:
        assert "failed" not in got[name].attrs.get("skipped", ""), (
            name,
            got[name].attrs["skipped"],
        )
        np.testing.assert_allclose(
            got[name].values, expected[name].values, rtol=1e-6, atol=1e-9, err_msg=name
        )


def test_the_config_declares_the_model_output(tmp_path):
    from xaiscore.harness.config import ConfigError, parse_config
    from xaiscore.harness.distributed import DistributedContext
    from xaiscore.harness.models import build_model

    (tmp_path / "hf_like.py").write_text(
        "import torch\n"
        "class Dicted(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 2))\n"
        "    def forward(self, x):\n"
        "        return {'out': (self.net(x), x)}\n"
        "def build():\n"
        "    return Dicted()\n"
        "def first(output):\n"
        "    return output[0].softmax(dim=1)\n"
    )
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        '[model]\nkind = "factory"\nfactory = "hf_like:build"\noutput_key = "out"\n'
        'output_fn = "hf_like:first"\nprobabilities = true\n'
    )
    from xaiscore.harness.config import load_config

    config = load_config(config_file)
    model = build_model(config, None, store=None, context=DistributedContext())
    x = torch.rand(3, 1, 16, 16)
    torch.testing.assert_close(call_model(model, x), torch.log_softmax(model.net(x), dim=1))
    for bad, message in [
        ({"output_key": 1.5}, "output_key"),
        ({"output_fn": "first"}, "output_fn"),
        ({"probabilities": "yes"}, "probabilities"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_config({"model": bad})
