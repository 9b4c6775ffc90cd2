"""Every registered metric scores inputs that require grad (e.g. those an explainer was just run
on).

Before this test the faithfulness kernels (chunk buffers written with ``out=``) and smooth MPRT
raised ``functions with out=... arguments don't support automatic differentiation`` on such
inputs; scores are never differentiated, so the kernels use the values.
"""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch

from xaiscore.explainers import captum_explainer
from xaiscore.specs import list_metrics

pytest.importorskip("captum")


def _inputs():
    generator = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(4),
                                torch.nn.Flatten(), torch.nn.Linear(64, 3))
    x = torch.rand(2, 3, 24, 24, generator=generator).requires_grad_()
    a = torch.rand(2, 3, 24, 24, generator=generator).requires_grad_()
    mask = torch.zeros(2, 1, 24, 24, dtype=torch.bool)
    mask[:, :, 5:12, 6:14] = True
    segments = (torch.arange(24 * 24).reshape(24, 24) // 50).expand(2, 24, 24).contiguous()
    return dict(a=a, x=x, mask=mask, forward_fn=model, model=model, target=torch.tensor([0, 2]),
                explain_fn=captum_explainer(model, "Saliency"),
                explainer_factory=lambda m: captum_explainer(m, "Saliency"), segments=segments,
                tiles=torch.tensor([[True, False, False, True], [False, True, False, False]]))


@pytest.mark.parametrize("spec", list_metrics(), ids=lambda spec: spec.name)
def test_inputs_that_require_grad_are_scored_like_plain_values(spec):
    inputs = _inputs()
    options = dict(spec.defaults)
    if spec.name == "top_k_intersection":
        options["k"] = 50  # the default 1,000 exceeds a 24 x 24 map
    if "generator" in inspect.signature(spec.fn).parameters:
        options["generator"] = torch.Generator().manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with_grad = spec.fn(**{name: inputs[name] for name in spec.needs}, **options)
        plain_inputs = {name: value.detach() if isinstance(value, torch.Tensor) else value
                        for name, value in inputs.items()}
        if "generator" in options:
            options["generator"] = torch.Generator().manual_seed(0)
        plain = spec.fn(**{name: plain_inputs[name] for name in spec.needs}, **options)
    first = getattr(with_grad, "score", with_grad)
    second = getattr(plain, "score", plain)
    # Pure functions of `a` (localization, complexity) stay differentiable; the values are the same.
    torch.testing.assert_close(first.detach(), second, equal_nan=True)
