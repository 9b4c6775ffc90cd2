"""Volumes ``(B, C, D, H, W)``: every registered metric runs on one or its spec says why not; ROAD
in 3-D.

The audit builds every input a metric ``needs`` for a batch of two 8 x 8 x 8 volumes with the fuzz
suite's builders (well-posed draws, no edge values) and calls the kernel with its default options.
A metric that raises must carry the reason in ``spec.volumes``; one that runs must not.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.builders import NEED_BUILDERS, Problem, call, call_options, fuzzable, score_of
from tests.reference import road_subsets_axiomatic as ref
from xaiscore._checks import ShapeError, XaiscoreError
from xaiscore._engine.imputation import linear_imputation, neighbour_weights
from xaiscore.functional.faithfulness.road import road
from xaiscore.specs import list_metrics

SPATIAL = (8, 8, 8)


@st.composite
def volume_problems(draw):
    problem = Problem(batch=2, channels=1, spatial=SPATIAL, n_classes=3, x_dtype=torch.float32)
    seed = draw(st.integers(0, 2**16))
    for name in NEED_BUILDERS:
        problem.inputs[name] = NEED_BUILDERS[name](draw, problem, seed, False)
    return problem


@pytest.mark.parametrize("spec", list_metrics(), ids=lambda spec: spec.name)
def test_every_metric_runs_on_volumes_or_says_why_not(spec):
    if spec.volumes is not None:
        assert len(spec.volumes) > 20, "say why in a sentence"
        inputs = {"a": torch.rand(2, 1, *SPATIAL), "mask": torch.rand(2, 1, *SPATIAL) > 0.5}
        with pytest.raises(ShapeError, match="spatial"):
            if "tiles" in spec.needs:
                spec.fn(inputs["a"], torch.zeros(2, dtype=torch.long))
            else:
                spec.fn(*(inputs[n] for n in ("a", "mask") if n in spec.needs))
        return
    assert fuzzable(spec), f"{spec.name}: no builder for its inputs; audit it here by hand"

    @settings(max_examples=2, deadline=None, database=None)
    @given(problem=volume_problems())
    def check(problem):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                score = score_of(call(spec, problem.inputs, call_options(spec)))
            except XaiscoreError as error:  # pragma: no cover - the failure message is the point
                pytest.fail(
                    f"{spec.name} does not run on volumes ({error}); fix it or set spec.volumes")
        assert score.shape == (2,) and score.is_floating_point()
        assert not torch.isinf(score).any()

    check()


# --- ROAD's imputation in 3-D ---------------------------------------------------------------------


def test_26_neighbour_weights_generalise_rong_et_al():
    weights = neighbour_weights(3)
    assert weights == ref.road_weights(3)
    assert sum(weights.values()) == pytest.approx(1.0)
    # the 2-D weights are the same construction
    assert neighbour_weights(2) == pytest.approx(ref.road_weights(2))
    with pytest.raises(ShapeError, match="1, 2 or 3"):
        neighbour_weights(4)


@st.composite
def volume_cases(draw, dtype=torch.float64):
    spatial = tuple(draw(st.integers(1, 5)) for _ in range(3))
    m, c = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    x = (torch.rand((m, c) + spatial, generator=generator, dtype=torch.float64) * 4 - 2).to(dtype)
    kind = draw(st.sampled_from(["random", "none", "all", "one_kept", "block"]))
    if kind == "random":
        removed = torch.rand((m, 1) + spatial, generator=generator) < draw(st.floats(0.05, 0.95))
    elif kind == "none":
        removed = torch.zeros((m, 1) + spatial, dtype=torch.bool)
    elif kind == "all":
        removed = torch.ones((m, 1) + spatial, dtype=torch.bool)
    elif kind == "one_kept":
        removed = torch.ones((m, 1) + spatial, dtype=torch.bool)
        removed.view(m, -1)[:, draw(st.integers(0, int(np.prod(spatial)) - 1))] = False
    else:
        removed = torch.zeros((m, 1) + spatial, dtype=torch.bool)
        removed[(slice(None), slice(None)) + tuple(slice(draw(st.integers(0, n - 1)), None)
                                                   for n in spatial)] = True
    return x, removed


def reference_imputation(x, removed):
    return np.stack([ref.linear_imputation(x[i].double().numpy(), removed[i, 0].numpy())
                     for i in range(len(x))])


@settings(max_examples=40, deadline=None)
@given(volume_cases())
def test_3d_imputation_matches_spsolve_in_float64(case):
    x, removed = case
    np.testing.assert_allclose(linear_imputation(x, removed).numpy(),
                               reference_imputation(x, removed), atol=1e-8)


@settings(max_examples=10, deadline=None)
@given(volume_cases(dtype=torch.float32))
def test_3d_imputation_matches_spsolve_to_1e4_in_float32(case):
    x, removed = case
    out = linear_imputation(x, removed)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.double().numpy(), reference_imputation(x, removed), atol=1e-4)


def test_3d_imputation_on_larger_volumes_with_blob_and_scattered_masks():
    """12 x 14 x 10 volumes, smooth and scattered removal orders from 1 % to 99 %, against spsolve.
    """
    generator = torch.Generator().manual_seed(0)
    shape = (12, 14, 10)
    x = torch.rand(1, 1, *shape, generator=generator, dtype=torch.float64)
    smooth = torch.nn.functional.avg_pool3d(torch.rand(1, 1, *shape, generator=generator), 5, 1, 2)
    scattered = torch.rand(1, 1, *shape, generator=generator)
    n = int(np.prod(shape))
    masks = []
    for a in (smooth, scattered):
        rank = a.reshape(-1).argsort(descending=True).argsort().reshape(1, 1, *shape)
        masks += [rank < int(n * p / 100) for p in (1, 50, 99)]
    removed = torch.cat(masks)
    images = x.expand(len(removed), -1, -1, -1, -1)
    np.testing.assert_allclose(linear_imputation(images, removed).numpy(),
                               reference_imputation(images, removed),
                               atol=1e-8)


def test_3d_imputation_reproduces_linear_fields_and_batch_independence():
    k, i, j = torch.meshgrid(*(torch.arange(6.0, dtype=torch.float64) for _ in range(3)),
                             indexing="ij")
    field = (1.0 + 2 * k - i + 0.5 * j)[None, None]
    removed = torch.zeros(1, 1, 6, 6, 6, dtype=torch.bool)
    removed[..., 1:5, 1:5, 1:5] = True
    np.testing.assert_allclose(linear_imputation(field + 3 * removed, removed).numpy(),
                               field.numpy(), atol=1e-9)
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 7, 6, 5, generator=generator)
    removed = (torch.rand(4, 1, 7, 6, 5, generator=generator)
               < torch.linspace(0.1, 0.9, 4).reshape(4, 1, 1, 1, 1))
    together = linear_imputation(x, removed)
    alone = torch.cat([linear_imputation(x[i : i + 1], removed[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)


def test_road_runs_on_volumes_and_keeps_the_input_at_zero_percent():
    generator = torch.Generator().manual_seed(2)
    weight = torch.randn(2, 4 * 5 * 6, generator=generator, dtype=torch.float64)

    def model(batch):
        return batch.reshape(len(batch), -1) @ weight.T

    x = torch.rand(3, 1, 4, 5, 6, generator=generator, dtype=torch.float64)
    a = torch.rand(3, 1, 4, 5, 6, generator=generator, dtype=torch.float64)
    target = torch.tensor([0, 1, 0])
    result = road(model, x, a, target, percentages=[0, 40], noise=0.0, measure="logit")
    np.testing.assert_allclose(result.curve[:, 0].numpy(), model(x).gather(
        1, target[:, None])[:, 0].numpy())
    # 40 %: the logit of the reference imputation
    rank = a.reshape(3, -1).argsort(dim=1, descending=True,
                                    stable=True).argsort(dim=1).reshape(3, 1, 4, 5, 6)
    removed = rank < int(120 * 0.4)
    imputed = torch.from_numpy(reference_imputation(x, removed))
    expected = model(imputed).gather(1, target[:, None])[:, 0]
    np.testing.assert_allclose(result.curve[:, 1].numpy(), expected.numpy(), atol=1e-7)
    with pytest.raises(ShapeError, match="spatial"):
        road(lambda b: b.reshape(len(b), -1)[:, :2], torch.rand(1, 1, 2, 2, 2, 2),
             torch.rand(1, 1, 2, 2, 2, 2))
