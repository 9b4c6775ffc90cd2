"""The model rules of ``docs/conventions.md``, checked for every registered metric that holds a
model.

* NaN logits: with ``validate`` (the default), a kernel that was handed a NaN logit by the model
  raises :class:`NonFiniteError`, whether on the inputs or on perturbed copies, in every
  ``on_prediction_change`` mode.
* Integer (or bool) logits: :class:`ModelOutputError` from every kernel that reads logits.
* Training mode: every kernel runs a model it holds (``forward_fn``/``model`` as an ``nn.Module``,
  or the ``model`` of an explain function) in evaluation mode and gives every submodule its flag
  back; batch norm running statistics never change, and the score equals that of the model in
  evaluation mode.
* ``meta`` tensors: :class:`DeviceError` before any value is read.
* Targets: a negative target, or one beyond the model's classes, is refused before any
  explanation is asked for.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from hypothesis import given
from torch import nn

from xaiscore._checks import DeviceError, NonFiniteError, OptionError, XaiscoreError
from xaiscore._engine.batching import ModelOutputError
from xaiscore.specs import list_metrics
from tests.fuzz.builders import (
    FuzzNet,
    call,
    call_options,
    fuzz_explain_fn,
    fuzzable,
    parameters,
    problems,
    score_of,
)
from tests.fuzz.examples import fuzz_settings

SPECS = [spec for spec in list_metrics() if fuzzable(spec)]

#: Metrics that hold a model but never read its logits (they explain it): exempt from the
#: integer-logit rule. Every other model-holding metric must refuse integer logits.
LOGITS_NOT_READ = {"mprt": "explains the model", "smooth_mprt": "explains the model",
                   "efficient_mprt": "explains the model"}


def _takes(spec, name: str) -> bool:
    return name in spec.needs or name in parameters(spec)


def _holds_model(spec) -> bool:
    return _takes(spec, "forward_fn") or "model" in spec.needs


def _prediction_modes(spec) -> list[str | None]:
    return ["keep", "exclude", "nan"] if "on_prediction_change" in parameters(spec) else [None]


MODEL_CASES = [(spec, mode) for spec in SPECS if _holds_model(spec)
               for mode in _prediction_modes(spec)]


def _with_model(spec, problem, model, mode):
    inputs = dict(problem.inputs)
    options = call_options(spec)
    if "model" in spec.needs:
        inputs["model"] = model
    if _takes(spec, "forward_fn"):
        if "forward_fn" in spec.needs:
            inputs["forward_fn"] = model
        else:
            options["forward_fn"] = model
    if mode is not None:
        options["on_prediction_change"] = mode
    return inputs, options


def _quiet_call(spec, inputs, options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call(spec, inputs, options)


@pytest.mark.parametrize(("spec", "mode"), MODEL_CASES,
                         ids=[f"{s.name}-{m}" for s, m in MODEL_CASES])
@pytest.mark.parametrize("first_nan_call", [0, 1],
                         ids=["nan-from-first-call", "nan-from-second-call"])
def test_a_nan_logit_that_reaches_a_kernel_raises(spec, mode, first_nan_call):
    @fuzz_settings(scale=0.25)
    @given(problem=problems(edge=False))
    def check(problem):
        model = FuzzNet(problem.channels * problem.n_features, problem.n_classes,
                        nan_from_call=first_nan_call)
        inputs, options = _with_model(spec, problem, model.eval(), mode)
        FuzzNet.calls.clear()
        try:
            _quiet_call(spec, inputs, options)
        except NonFiniteError:
            assert len(FuzzNet.calls) > first_nan_call, "NonFiniteError without a NaN logit"
            return
        except XaiscoreError:
            # A problem this kernel does not take (the same error without NaN): no model output
            # judged.
            with pytest.raises(XaiscoreError):
                _quiet_call(spec, *_with_model(spec, problem, problem.inputs["model"], mode))
            return
        assert len(FuzzNet.calls) <= first_nan_call, (
            f"{spec.name} returned a score although the model returned NaN logits "
            f"({len(FuzzNet.calls)} calls, NaN from call {first_nan_call + 1})"
        )

    check()


class _IntegerNet(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return (self.inner(x) * 10).long()


READS_LOGITS = [spec for spec, mode in MODEL_CASES if mode in (None, "keep")
                and spec.name not in LOGITS_NOT_READ]


@pytest.mark.parametrize("spec", READS_LOGITS, ids=lambda spec: spec.name)
def test_integer_logits_are_refused(spec):
    @fuzz_settings(scale=0.25)
    @given(problem=problems(edge=False))
    def check(problem):
        inputs, options = _with_model(spec, problem, _IntegerNet(problem.inputs["model"]).eval(),
                                      None)
        try:
            _quiet_call(spec, inputs, options)
        except ModelOutputError as error:
            assert "floating-point logits" in str(error)
            return
        except XaiscoreError:
            with pytest.raises(XaiscoreError):
                _quiet_call(spec, problem.inputs, call_options(spec))
            return
        pytest.fail(f"{spec.name} scored integer logits")

    check()


def test_the_integer_logit_exemptions_are_registered_metrics():
    assert set(LOGITS_NOT_READ) <= {spec.name for spec in list_metrics()}


# --- training mode --------------------------------------------------------------------------------


class TrainNet(nn.Module):
    """Batch norm and dropout: in training mode rows mix, running statistics move, outputs are
    random."""

    def __init__(self, n_inputs: int, n_classes: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.hidden = nn.Linear(n_inputs, 6).double()
        self.norm = nn.BatchNorm1d(6).double()
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(6, n_classes).double()
        self.frozen = nn.Identity().eval()  # a submodule with its own flag: given back as it was
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator,
                                            dtype=torch.float64))
            self.norm.running_mean.copy_(torch.randn(6, generator=generator, dtype=torch.float64))
            self.norm.running_var.copy_(torch.rand(6, generator=generator, dtype=torch.float64)
                                        + 0.5)

    def forward(self, x):
        hidden = self.hidden(x.reshape(x.shape[0], -1).double())
        return self.frozen(self.head(torch.tanh(self.drop(self.norm(hidden))))).to(x.dtype)


class ModelExplainer:
    """An explain function holding a model (as the adapters of xaiscore.explainers do)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, x, target):
        with torch.no_grad():
            logit = self.model(x).gather(1, target.reshape(-1, 1)).reshape((-1,) + (1,)
                                                                           * (x.ndim - 1))
        return (x - logit) ** 2  # neither scale- nor rank-invariant in the logit


TRAINING_CASES = [spec for spec in SPECS if _holds_model(spec) or "explain_fn" in spec.needs]


def _training_inputs(spec, problem, model):
    inputs, options = _with_model(spec, problem, model, None)
    if "explain_fn" in spec.needs:
        inputs["explain_fn"] = ModelExplainer(model)
    return inputs, options


@pytest.mark.parametrize("spec", TRAINING_CASES, ids=lambda spec: spec.name)
def test_a_model_in_training_mode_is_scored_in_evaluation_mode_and_given_back(spec):
    @fuzz_settings(scale=0.5)
    @given(problem=problems(edge=False, well_posed=True))
    def check(problem):
        model = TrainNet(problem.channels * problem.n_features, problem.n_classes).train()
        model.frozen.eval()
        flags = {name: module.training for name, module in model.named_modules()}
        state = copy.deepcopy(model.state_dict())
        evaluated = copy.deepcopy(model).eval()
        try:
            expected = score_of(_quiet_call(spec, *_training_inputs(spec, problem, evaluated)))
        except XaiscoreError:
            expected = None
        inputs, options = _training_inputs(spec, problem, model)
        try:
            actual = score_of(_quiet_call(spec, inputs, options))
        except XaiscoreError:
            actual = None
        assert {name: module.training for name, module in model.named_modules()} == flags
        for key, value in model.state_dict().items():
            assert torch.equal(value, state[key]), f"{spec.name} changed {key} of the model"
        assert (actual is None) == (expected is None)
        if actual is not None:
            torch.testing.assert_close(actual, expected, equal_nan=True, rtol=0, atol=0)

    check()


# --- meta tensors and targets ---------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_meta_tensors_raise_device_error_before_anything_is_read(spec):
    @fuzz_settings(scale=0.25)
    @given(problem=problems(edge=False))
    def check(problem):
        inputs = {name: value.to("meta") if isinstance(value, torch.Tensor) else value
                  for name, value in problem.inputs.items()}
        with pytest.raises(DeviceError, match="'meta' device"):
            _quiet_call(spec, inputs, call_options(spec))

    check()


class RecordingExplainer:
    def __init__(self) -> None:
        self.targets: list[torch.Tensor] = []

    def __call__(self, x, target):
        self.targets.append(target.clone())
        return fuzz_explain_fn(x, target)


EXPLAINING = [spec for spec in SPECS if "target" in spec.needs and
              ("explain_fn" in spec.needs or "explainer_factory" in spec.needs)]


@pytest.mark.parametrize("spec", EXPLAINING, ids=lambda spec: spec.name)
@pytest.mark.parametrize("shift", ["negative", "beyond the classes"])
def test_a_bad_target_never_reaches_the_explain_function(spec, shift):
    @fuzz_settings(scale=0.25)
    @given(problem=problems(edge=False))
    def check(problem):
        if shift == "beyond the classes" and not _holds_model(spec):
            return  # without a model nothing says how many classes there are
        recorder = RecordingExplainer()
        inputs, options = _with_model(spec, problem, problem.inputs["model"], None)
        target = problem.inputs["target"]
        inputs["target"] = (target - problem.n_classes if shift == "negative"
                            else target + problem.n_classes)
        if "explain_fn" in spec.needs:
            inputs["explain_fn"] = recorder
        else:
            inputs["explainer_factory"] = lambda model: recorder
        if _takes(spec, "forward_fn") and "forward_fn" not in spec.needs:
            options["forward_fn"] = problem.inputs["model"]
        with pytest.raises(XaiscoreError) as raised:
            _quiet_call(spec, inputs, options)
        assert recorder.targets == [], (
            f"{spec.name} called the explain function with {recorder.targets}"
        )
        if not isinstance(raised.value, OptionError) or "target" not in str(raised.value):
            # Refused for another reason: only where the problem itself does not suit the kernel.
            with pytest.raises(type(raised.value)):
                _quiet_call(spec, *_with_model(spec, problem, problem.inputs["model"], None))

    check()


def test_rules_cover_every_model_holding_metric():
    holding = {spec.name for spec in SPECS if _holds_model(spec)}
    assert holding == {spec.name for spec, _ in MODEL_CASES}
    assert holding <= {spec.name for spec in TRAINING_CASES}
    assert holding - set(LOGITS_NOT_READ) == {spec.name for spec in READS_LOGITS}
