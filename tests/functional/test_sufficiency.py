"""Sufficiency against the per-batch reference (scipy cdist), Quantus and its
batch/empty-neighbourhood behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import road_subsets_axiomatic as ref
from xaiscore import DTypeError, OptionError
from xaiscore._checks import NonFiniteError
from xaiscore.functional.faithfulness.sufficiency import sufficiency
from xaiscore.testing import strategies as xst

SHAPES = xst.shapes(batch_size=st.integers(1, 8), channels=st.integers(1, 2),
                    spatial_dims=st.integers(1, 3),
                    side=st.integers(1, 3))


@settings(max_examples=40)
@given(data=st.data())
def test_sufficiency_matches_reference(data):
    case = data.draw(xst.model_inputs(shape=SHAPES, ties=st.booleans()), label="case")
    options = dict(
        threshold=data.draw(st.sampled_from([0.0, 0.3, 0.6, 1.0]), label="threshold"),
        distance=data.draw(st.sampled_from(["seuclidean", "euclidean"]), label="distance"),
        normalise_distances=data.draw(st.booleans(), label="normalise_distances"),
        absolute=data.draw(st.booleans(), label="absolute"),
        normalise=data.draw(st.sampled_from(["sample", "batch", None]), label="normalise"),
    )
    ours = sufficiency(case.forward_fn, case.x, case.a, **options)
    expected = ref.sufficiency(case.forward_fn, case.x.numpy(), case.a.numpy(), **options)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-12, equal_nan=True)


def test_sufficiency_extremes():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2, bias=False)).double()
    model[1].weight.data.copy_(torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]],
                                            dtype=torch.float64))
    x = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.9, 1.0, 0.1, 0.0], [0.0, 0.0, 1.0, 1.0],
                      [0.1, 0.0, 1.0, 0.9]],
                     dtype=torch.float64).reshape(4, 1, 4)
    faithful = x.clone()  # explanations separate the two classes
    assert (sufficiency(model, x, faithful, distance="euclidean", threshold=0.3).tolist() == [1.0]
            * 4)
    same = torch.ones_like(x)  # one explanation for everything: one neighbour in three agrees
    torch.testing.assert_close(sufficiency(model, x, same, distance="euclidean"),
                               torch.full((4,), 1 / 3, dtype=torch.float64))
    assert torch.isnan(sufficiency(model, x[:1], faithful[:1])).all()  # no other sample: undefined


def test_sufficiency_does_not_depend_on_max_batch_size():
    generator = torch.Generator().manual_seed(0)
    model = xst.tiny_mlp((1, 3, 3), 3, seed=1)
    x = torch.rand(10, 1, 3, 3, generator=generator, dtype=torch.float64)
    a = torch.rand(10, 1, 3, 3, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(sufficiency(model, x, a, max_batch_size=3), sufficiency(model, x, a),
                               equal_nan=True)


def test_sufficiency_errors():
    model = xst.tiny_mlp((1, 3, 3), 3, seed=0, dtype=torch.float32)
    x, a = torch.rand(4, 1, 3, 3), torch.rand(4, 1, 3, 3)
    with pytest.raises(OptionError, match="distance"):
        sufficiency(model, x, a, distance="cosine")
    with pytest.raises(OptionError, match="threshold"):
        sufficiency(model, x, a, threshold=-0.1)
    with pytest.raises(DTypeError, match="absolute"):
        sufficiency(model, x, a, absolute=1)
    with pytest.raises(NonFiniteError):
        sufficiency(lambda batch: torch.full((len(batch), 3), math.nan), x, a)


@pytest.mark.quantus
def test_sufficiency_matches_quantus_and_scores_empty_neighbourhoods_nan(quantus_module):
    """Same batch, batch-wide normalisation: equal where a sample has neighbours; Quantus says 0
    where it has none."""
    generator = torch.Generator().manual_seed(2)
    model = xst.tiny_mlp((1, 4, 4), 3, seed=3, dtype=torch.float32)
    x = torch.rand(12, 1, 4, 4, generator=generator)
    a = torch.rand(12, 1, 4, 4, generator=generator)
    a[:6] = a[0] + 0.05 * a[:6]  # a cluster of similar explanations; the others are spread out
    y = torch.zeros(12, dtype=torch.long)

    def quantus(batch_size):
        metric = quantus_module.Sufficiency(threshold=0.6, disable_warnings=True)
        return np.array(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                               device="cpu",
                               batch_size=batch_size), dtype=np.float64)

    theirs = quantus(12)
    ours = sufficiency(model, x, a, normalise="batch").numpy()
    has_neighbours = ~np.isnan(ours)
    assert has_neighbours.any() and (~has_neighbours).any()
    np.testing.assert_allclose(ours[has_neighbours], theirs[has_neighbours], atol=1e-6)
    np.testing.assert_array_equal(theirs[~has_neighbours], 0.0)
    # Quantus' reference set is its internal batch: the same samples score differently with
    # batch_size=4.
    assert not np.allclose(quantus(4), theirs)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_attributions_score_like_their_float32_values(dtype):
    generator = torch.Generator().manual_seed(5)
    model = xst.tiny_mlp((1, 4, 4), 3, seed=1, dtype=torch.float32)
    x = torch.rand(10, 1, 4, 4, generator=generator)
    a = torch.rand(10, 1, 4, 4, generator=generator).to(dtype)
    a[:5] = a[0]  # a cluster of equal explanations: defined scores
    half = sufficiency(model, x, a)
    assert half.dtype == x.dtype and not torch.isnan(half[:5]).any()
    torch.testing.assert_close(half, sufficiency(model, x, a.float()), equal_nan=True)
