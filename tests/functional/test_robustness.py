"""Robustness kernels against their per-sample references, on drawn inputs and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst

from tests.reference import robustness as ref
from tests.robustness_helpers import (
    EXPLAINERS,
    logits_of,
    make_mlp,
    per_sample,
    predictor,
    replay_noise,
)
from xaiscore.functional import robustness as rob
from xaiscore.testing import strategies as xst

NORMS = st.sampled_from([1.0, 2.0, math.inf])


@st.composite
def noisy_case(draw, *, edge_cases: bool = False):
    """Inputs, an explainer, a model and the drawn options shared by the noise metrics."""
    shape = draw(xst.shapes(batch_size=st.integers(1, 3), channels=st.integers(1, 2),
                            spatial_dims=st.integers(1, 3), side=st.integers(1, 4)))
    if edge_cases:
        kind = draw(st.sampled_from(["zeros", "constant", "ties"]))
        if kind == "zeros":
            array = np.zeros(shape)
        elif kind == "constant":
            array = np.full(shape, draw(st.sampled_from([-1.0, 0.5, 2.0])))
        else:
            array = draw(npst.arrays(np.float64, shape,
                                     elements=st.sampled_from([-1.0, 0.0, 0.5, 1.0])))
    else:
        array = draw(npst.arrays(np.float64, shape, elements=st.floats(-2, 2, width=32)))
    x = torch.from_numpy(array)
    explainer_name = draw(st.sampled_from(sorted(EXPLAINERS)))
    model = make_mlp(math.prod(shape[1:]), seed=draw(st.integers(0, 3)))
    with torch.no_grad():
        target = model(x).argmax(1)
    return {
        "x": x,
        "target": target,
        "explain_fn": EXPLAINERS[explainer_name],
        "model": model,
        "n": draw(st.integers(1, 4)),
        "max_batch_size": draw(st.integers(1, 5)),
        "seed": draw(st.integers(0, 2**16)),
        "noise": draw(st.sampled_from(["uniform", "gaussian"])),
        "radius": draw(st.sampled_from([0.0, 0.05, 0.5, 2.0])),
        "p": draw(NORMS),
        "mode": draw(st.sampled_from(["keep", "exclude", "nan"])),
        "abs": draw(st.booleans()),
        "normalise": draw(st.sampled_from(["sample", None])),
    }


def _noise(case):
    low, high = (-case["radius"],
                 case["radius"]) if case["noise"] == "uniform" else (0.0, case["radius"])
    return replay_noise(case["x"], case["n"], seed=case["seed"], kind=case["noise"], low=low,
                        high=high)


def _assert_close(ours: torch.Tensor, expected: list[float]) -> None:
    np.testing.assert_allclose(ours.numpy(), np.array(expected, dtype=np.float64), rtol=1e-6,
                               atol=1e-6,
                               equal_nan=True)


def _common(case):
    return dict(explain_fn=case["explain_fn"], n_samples=case["n"], noise=case["noise"],
                radius=case["radius"],
                seed=case["seed"], max_batch_size=case["max_batch_size"],
                on_prediction_change=case["mode"],
                abs=case["abs"], normalise=case["normalise"])


def _check_sensitivity(case, how, relative):
    x, t = case["x"], case["target"]
    a = case["explain_fn"](x, t)
    kernel = rob.max_sensitivity if how == "max" else rob.avg_sensitivity
    ours = kernel(x, a, t, forward_fn=case["model"], p=case["p"], relative=relative,
                  **_common(case))
    noise = _noise(case)
    expected = [
        ref.sensitivity(per_sample(case["explain_fn"]), x[i].numpy(), a[i].numpy(), int(t[i]),
                        noise[i], how=how,
                        p=case["p"], relative=relative, abs_=case["abs"],
                        normalise=case["normalise"] is not None,
                        predict=predictor(case["model"]), mode=case["mode"])
        for i in range(x.shape[0])
    ]
    _assert_close(ours, expected)


def _check_lipschitz(case):
    x, t = case["x"], case["target"]
    a = case["explain_fn"](x, t)
    ours = rob.local_lipschitz_estimate(x, a, t, forward_fn=case["model"], p=case["p"],
                                        **_common(case))
    noise = _noise(case)
    expected = [
        ref.local_lipschitz(per_sample(case["explain_fn"]), x[i].numpy(), a[i].numpy(), int(t[i]),
                            noise[i],
                            p=case["p"], abs_=case["abs"], normalise=case["normalise"] is not None,
                            predict=predictor(case["model"]), mode=case["mode"])
        for i in range(x.shape[0])
    ]
    _assert_close(ours, expected)


def _check_stability(case, kind):
    x, t, model = case["x"], case["target"], case["model"]
    a = case["explain_fn"](x, t)
    options = _common(case)
    if kind == "input":
        ours = rob.relative_input_stability(model, x, a, t, p=case["p"], **options)
    elif kind == "output":
        ours = rob.relative_output_stability(model, x, a, t, p=case["p"], **options)
    else:
        ours = rob.relative_representation_stability(model, x, a, t, layer="2", p=case["p"],
                                                     **options)
    noise = _noise(case)

    def representation(x_i):
        with torch.no_grad():
            return model[:3](torch.from_numpy(np.ascontiguousarray(x_i))[None])[0].numpy()

    expected = [
        ref.relative_stability(per_sample(case["explain_fn"]), x[i].numpy(), a[i].numpy(),
                               int(t[i]), noise[i],
                               kind=kind, predict=predictor(model), logits=logits_of(model),
                               representation=representation, p=case["p"], abs_=case["abs"],
                               normalise=case["normalise"] is not None, mode=case["mode"])
        for i in range(x.shape[0])
    ]
    _assert_close(ours, expected)


NOISY = {
    "max_sensitivity": lambda case, relative: _check_sensitivity(case, "max", relative),
    "avg_sensitivity": lambda case, relative: _check_sensitivity(case, "mean", relative),
    "local_lipschitz_estimate": lambda case, relative: _check_lipschitz(case),
    "relative_input_stability": lambda case, relative: _check_stability(case, "input"),
    "relative_output_stability": lambda case, relative: _check_stability(case, "output"),
    "relative_representation_stability": lambda case, relative: _check_stability(case, "representation"),  # noqa: E501
}


@pytest.mark.parametrize("name", sorted(NOISY))
@settings(max_examples=25)
@given(data=st.data())
def test_noise_metrics_match_reference_on_drawn_inputs(name, data):
    NOISY[name](data.draw(noisy_case(), label="case"), data.draw(st.booleans(), label="relative"))


@pytest.mark.parametrize("name", sorted(NOISY))
@settings(max_examples=15)
@given(data=st.data())
def test_noise_metrics_match_reference_on_edge_cases(name, data):
    """All-zero and constant inputs, ties, zero noise, B = 1, 1-D to 3-D inputs."""
    NOISY[name](data.draw(noisy_case(edge_cases=True), label="case"),
                data.draw(st.booleans(), label="relative"))


@st.composite
def translation_case(draw, edge_cases=False):
    case = draw(noisy_case(edge_cases=edge_cases))
    x = case["x"]
    axis = draw(st.integers(2, x.ndim - 1)) if draw(st.booleans()) else -1
    width = x.shape[axis]
    if draw(st.booleans()):
        case["shifts"] = None
        case["n_steps"] = draw(st.integers(1, 2 * width + 1))
    else:
        case["shifts"] = draw(st.lists(st.integers(-width - 1, width + 1), min_size=1, max_size=4))
        case["n_steps"] = 28
    case["axis"] = axis
    case["fill"] = draw(st.sampled_from(["black", "white", "mean", 0.0, -1.5]))
    case["p_explanation"] = draw(NORMS)
    case["p_input"] = draw(NORMS)
    return case


def _check_continuity(case):
    x, t = case["x"], case["target"]
    a = case["explain_fn"](x, t)
    ours = rob.continuity(x, a, t, explain_fn=case["explain_fn"], forward_fn=case["model"],
                          n_steps=case["n_steps"],
                          shifts=case["shifts"], axis=case["axis"], fill=case["fill"],
                          p_explanation=case["p_explanation"], p_input=case["p_input"],
                          abs=case["abs"],
                          normalise=case["normalise"], on_prediction_change=case["mode"],
                          max_batch_size=case["max_batch_size"])
    shifts = case["shifts"] or ref.quantus_shifts(x.shape[case["axis"]], case["n_steps"])
    expected = [
        ref.continuity(per_sample(case["explain_fn"]), x[i].numpy(), a[i].numpy(), int(t[i]),
                       shifts,
                       axis=case["axis"], fill=case["fill"], p_explanation=case["p_explanation"],
                       p_input=case["p_input"], abs_=case["abs"],
                       normalise=case["normalise"] is not None,
                       predict=predictor(case["model"]), mode=case["mode"])
        for i in range(x.shape[0])
    ]
    _assert_close(ours, expected)


@settings(max_examples=40)
@given(case=translation_case())
def test_continuity_matches_reference_on_drawn_inputs(case):
    _check_continuity(case)


@settings(max_examples=20)
@given(case=translation_case(edge_cases=True))
def test_continuity_matches_reference_on_edge_cases(case):
    _check_continuity(case)


@st.composite
def consistency_case(draw, edge_cases=False):
    shape = draw(xst.shapes(batch_size=st.integers(1, 8), channels=st.integers(1, 2),
                            spatial_dims=st.integers(1, 3), side=st.integers(1, 3)))
    a = draw(xst.attributions(shape=shape, ties=st.booleans() if edge_cases else False,
                              constant=st.booleans() if edge_cases else False))
    if draw(st.booleans()):  # copy some maps so that explanation-mates are common
        for i in range(1, shape[0]):
            if draw(st.booleans()):
                a[i] = a[draw(st.integers(0, i - 1))]
    x = torch.from_numpy(draw(npst.arrays(np.float64, shape, elements=st.floats(-2, 2, width=32))))
    how = draw(st.sampled_from(["sum", "mean", "max_abs", None]))
    n_features = math.prod(shape[2:]) * (shape[1] if how is None else 1)
    return {
        "x": x, "a": a, "how": how,
        "kind": draw(st.sampled_from(["top_k_sign", "top_k", "sign"])),
        "k": draw(st.integers(1, n_features)),
        "model": make_mlp(math.prod(shape[1:]), n_classes=2, seed=draw(st.integers(0, 3))),
        "max_batch_size": draw(st.integers(1, 4)),
    }


def _check_consistency(case):
    ours = rob.consistency(case["model"], case["x"], case["a"], discretisation=case["kind"],
                           k=case["k"],
                           reduce_channels=case["how"], max_batch_size=case["max_batch_size"])
    predict = predictor(case["model"])
    predictions = [predict(case["x"][i].numpy()) for i in range(case["x"].shape[0])]
    _assert_close(ours, ref.consistency(predictions, case["a"].numpy(), kind=case["kind"],
                                        k=case["k"],
                                        how=case["how"]))


@given(case=consistency_case())
def test_consistency_matches_reference_on_drawn_inputs(case):
    _check_consistency(case)


@given(case=consistency_case(edge_cases=True))
def test_consistency_matches_reference_on_edge_cases(case):
    _check_consistency(case)


# --- captum explainer through the metrics: batched vs the reference's one-at-a-time calls ----


def _captum_cnn_case():
    """A tiny CNN, three float64 images, their predicted classes and the captum adapter factory."""
    pytest.importorskip("captum")
    from tests.robustness_helpers import make_cnn
    from xaiscore.explainers import captum_explainer

    model = make_cnn(channels=1)
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        target = model(x).argmax(1)
    return model, x, target, captum_explainer


@pytest.mark.parametrize("name", sorted(NOISY))
def test_noise_metrics_with_a_captum_gradient_on_a_cnn(name):
    model, x, target, captum_explainer = _captum_cnn_case()
    case = {"x": x, "target": target, "explain_fn": captum_explainer(model, "Saliency"),
            "model": model, "n": 3,
            "max_batch_size": 4, "seed": 7, "noise": "uniform", "radius": 0.1, "p": 2.0, "mode": "exclude",  # noqa: E501
            "abs": False, "normalise": None}
    if name == "relative_representation_stability":
        # The CNN's layer "2" is a conv: compare its (flattened) output maps.
        def representation(x_i):
            with torch.no_grad():
                return model[:3](
                    torch.from_numpy(np.ascontiguousarray(x_i))[None])[0].numpy().ravel()

        a = case["explain_fn"](x, target)
        ours = rob.relative_representation_stability(model, x, a, target, layer="2", p=2.0,
                                                     **_common(case))
        noise = _noise(case)
        expected = [ref.relative_stability(per_sample(case["explain_fn"]), x[i].numpy(),
                                           a[i].numpy(),
                                           int(target[i]), noise[i], kind="representation",
                                           predict=predictor(model), representation=representation,
                                           mode="exclude")
                    for i in range(3)]
        _assert_close(ours, expected)
    else:
        NOISY[name](case, True)


def test_prediction_change_rules_differ_as_documented():
    """'keep' counts every copy, 'exclude' drops copies with a changed prediction, 'nan' voids the
    sample."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).double()
    with torch.no_grad():  # class 0 iff x[0] > 0
        model[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]]))
        model[1].bias.zero_()
    x = torch.tensor([[[0.05, 0.0, 0.0, 0.0]], [[5.0, -3.0, 3.0, -3.0]]], dtype=torch.float64)
    with torch.no_grad():
        target = model(x).argmax(1)
    explain = EXPLAINERS["mixing"]
    a = explain(x, target)
    common = dict(explain_fn=explain, forward_fn=model, n_samples=16, radius=1.0, seed=0)
    keep = rob.max_sensitivity(x, a, target, on_prediction_change="keep", **common)
    exclude = rob.max_sensitivity(x, a, target, on_prediction_change="exclude", **common)
    void = rob.max_sensitivity(x, a, target, on_prediction_change="nan", **common)
    noise = replay_noise(x, 16, seed=0, low=-1.0, high=1.0)
    predict = predictor(model)
    changed = [[predict(x[i].numpy() + noise[i, j]) != predict(x[i].numpy()) for j in range(16)]
               for i in range(2)]
    assert any(changed[0]) and not all(
        changed[0]), "the first sample should sit near the decision boundary"
    assert torch.isnan(void[0]) and exclude[0] <= keep[0]
    assert not any(changed[1]) and keep[1] == exclude[1] == void[1]


@pytest.mark.parametrize("name", ["relative_input_stability", "relative_output_stability",
                                  "relative_representation_stability", "max_sensitivity"])
def test_logits_from_the_explanations_forward_pass_change_nothing_but_the_model_calls(name):
    model, x, target, captum_explainer = _captum_cnn_case()
    shared = captum_explainer(model, "Saliency")
    plain = lambda x, t: shared(x, t)  # noqa: E731  the same maps, but no explain_with_output
    a = shared(x, target)
    metric = getattr(rob, name)
    options = dict(n_samples=4, seed=5, radius=0.1, max_batch_size=5,
                   on_prediction_change="exclude")
    if name == "relative_representation_stability":
        options["layer"] = "2"

    def run(explain_fn):
        inputs_seen = []
        handle = model.register_forward_pre_hook(
            lambda module, args: inputs_seen.append(args[0].shape[0]))
        try:
            if name == "max_sensitivity":
                out = metric(x, a, target, explain_fn=explain_fn, forward_fn=model, **options)
            else:
                out = metric(model, x, a, target, explain_fn=explain_fn, **options)
        finally:
            handle.remove()
        return out, sum(inputs_seen)

    ours, shared_calls = run(shared)
    expected, plain_calls = run(plain)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0, equal_nan=True)
    # 12 noisy copies: explained once each either way; the plain explainer needs 12 more model
    # inputs.
    assert plain_calls - shared_calls == 12
