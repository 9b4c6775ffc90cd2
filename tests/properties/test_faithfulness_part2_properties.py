"""Properties of ROAD, the random-perturbation metrics, sufficiency and the axiomatic checks.

Sample permutation equivariance, float32/float64 agreement and the invariances the papers state.
"""

from __future__ import annotations

import copy

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xaiscore.functional import axiomatic as ax
from xaiscore.functional.faithfulness import random_perturbations as fr
from xaiscore.functional.faithfulness.road import road
from xaiscore.functional.faithfulness.sufficiency import sufficiency
from xaiscore.testing import strategies as xst


def _case(seed: int, batch: int = 4, shape=(2, 6, 5), dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    model = xst.tiny_mlp(shape, 3, seed=seed + 1, dtype=dtype)
    x = torch.rand((batch,) + shape, generator=generator, dtype=dtype)
    a = torch.randn((batch, 1) + shape[1:], generator=generator, dtype=dtype)
    return model, x, a, torch.arange(batch) % 3


DETERMINISTIC = {
    "road": lambda m, x, a, t: road(m, x, a, t, noise=0.0, measure="logit", percentages=[20, 60]).curve,  # noqa: E501
    "completeness": lambda m, x, a, t: ax.completeness(m, x, a, t, rtol=0.5),
    "non_sensitivity": lambda m, x, a, t: ax.non_sensitivity(m, x, a, t, eps=0.05),
    "sufficiency": lambda m, x, a, t: sufficiency(m, x, a, threshold=0.8),
}


@settings(max_examples=10)
@given(seed=st.integers(0, 1000), permutation=st.permutations(range(4)))
def test_deterministic_metrics_are_permutation_equivariant(seed, permutation):
    model, x, a, target = _case(seed)
    order = torch.tensor(permutation)
    for name, metric in DETERMINISTIC.items():
        torch.testing.assert_close(metric(model, x[order], a[order], target[order]),
                                   metric(model, x, a, target)[order], equal_nan=True, msg=name)


def test_float32_agrees_with_float64():
    model64, x64, a64, target = _case(3)
    model32 = copy.deepcopy(model64).float()
    x32, a32 = x64.float(), a64.float()
    pairs = [
        (road(model32, x32, a32, target, noise=0.0, measure="logit").curve,
         road(model64, x64, a64, target, noise=0.0, measure="logit").curve, 1e-4),
        (fr.infidelity(model32, x32, a32, target, patch_sizes=(2,),
                       generator=torch.Generator().manual_seed(0)),
         fr.infidelity(model64, x64, a64, target, patch_sizes=(2,),
                       generator=torch.Generator().manual_seed(0)), 1e-4),
        (fr.faithfulness_correlation(model32, x32, a32, target, subset_size=5, n_runs=20,
                                     generator=torch.Generator().manual_seed(0)),
         fr.faithfulness_correlation(model64, x64, a64, target, subset_size=5, n_runs=20,
                                     generator=torch.Generator().manual_seed(0)), 1e-4),
    ]
    for ours32, ours64, atol in pairs:
        assert ours32.dtype == torch.float32 and ours64.dtype == torch.float64
        torch.testing.assert_close(ours32.double(), ours64, atol=atol, rtol=1e-4)


def test_invariances_stated_by_the_papers():
    model, x, a, target = _case(5)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    # ROAD only uses the ranking: any increasing transform of the map leaves it unchanged.
    torch.testing.assert_close(road(model, x, a, target, generator=g()).curve,
                               road(model, x, 3 * a.exp() + 1, target, generator=g()).curve)
    # Pearson correlations ignore positive scaling; a shift adds the same amount to every subset
    # sum.
    base = fr.faithfulness_correlation(model, x, a, target, subset_size=6, n_runs=15, generator=g())
    torch.testing.assert_close(fr.faithfulness_correlation(model, x, 2.5 * a + 0.3, target,
                                                           subset_size=6,
                                                           n_runs=15, generator=g()), base)
    curve = fr.sensitivity_n(model, x, a, target, n_subsets=8, generator=g()).curve
    torch.testing.assert_close(fr.sensitivity_n(model, x, 4 * a, target, n_subsets=8,
                                                generator=g()).curve, curve,
                               equal_nan=True)
    # Sufficiency with per-sample normalisation ignores each map's own positive scale.
    scales = torch.tensor([1.0, 3.0, 0.5, 7.0], dtype=x.dtype).reshape(4, 1, 1, 1)
    torch.testing.assert_close(sufficiency(model, x, a * scales), sufficiency(model, x, a),
                               equal_nan=True)
    # Non-sensitivity's zero set is scale free with per-sample normalisation.
    torch.testing.assert_close(ax.non_sensitivity(model, x, a * scales, target, eps=0.05),
                               ax.non_sensitivity(model, x, a, target, eps=0.05))


def test_scores_lie_in_their_ranges():
    model, x, a, target = _case(6, batch=3)
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    result = road(model, x, a, target, generator=g())
    assert ((result.curve == 0) | (result.curve == 1)).all()
    assert (fr.infidelity(model, x, a, target, patch_sizes=(3,), generator=g()) >= 0).all()
    for values in (fr.faithfulness_correlation(model, x, a, target, subset_size=4, n_runs=10,
                                               generator=g()),
                   fr.sensitivity_n(model, x, a, target, n_subsets=5, generator=g()).curve,
                   sufficiency(model, x, a)):
        finite = values[~torch.isnan(values)]
        assert ((finite >= -1) & (finite <= 1)).all()
    counts = ax.non_sensitivity(model, x, a, target)
    assert ((counts >= 0) & (counts <= 30) & (counts == counts.round())).all()
