"""Module paths of the kernels: each lives in a public module; the former paths stay importable."""

from __future__ import annotations

import importlib

import pytest

import xaiscore.functional as F

# The names each family module exported before it became a package (issue 17, step 5).
FORMER_ALL = {
    "xaiscore.functional.randomization": [
        "ExplainerFactory", "RandomizationResult", "RandomLogitResult", "mprt", "smooth_mprt",
        "efficient_mprt", "random_logit", "histogram_entropy", "BIN_RULES", "LAYER_ORDERS",
        "NoParameterisedLayersError", "parameterised_layers", "randomized_models",
    ],
    "xaiscore.functional.robustness": [
        "max_sensitivity", "avg_sensitivity", "local_lipschitz_estimate",
        "relative_input_stability", "relative_output_stability",
        "relative_representation_stability", "continuity", "consistency",
    ],
    "xaiscore.functional.faithfulness_random": [
        "infidelity", "faithfulness_correlation", "sensitivity_n", "default_subset_sizes",
    ],
    "xaiscore.functional.road": ["road", "ROAD_PERCENTAGES", "QUANTUS_ROAD_PERCENTAGES"],
    "xaiscore.functional.sufficiency": ["sufficiency"],
}


@pytest.mark.parametrize("kernel", F.__all__)
def test_every_public_kernel_lives_in_a_public_module(kernel):
    module = getattr(F, kernel).__module__
    assert module.startswith("xaiscore.functional.")
    assert not any(part.startswith("_") for part in module.split(".")), module


@pytest.mark.parametrize("module", sorted(FORMER_ALL))
def test_former_exports_stay_importable(module):
    imported = importlib.import_module(module)
    assert imported.__all__ == FORMER_ALL[module]
    for name in FORMER_ALL[module]:
        assert getattr(imported, name) is not None


def test_former_faithfulness_paths_give_the_same_objects():
    from xaiscore.functional import faithfulness
    from xaiscore.functional.faithfulness import random_perturbations

    # `faithfulness.road` is the function (as `xaiscore.functional.road`): the modules by name.
    road_module = importlib.import_module("xaiscore.functional.faithfulness.road")
    sufficiency_module = importlib.import_module("xaiscore.functional.faithfulness.sufficiency")
    former = importlib.import_module("xaiscore.functional.faithfulness_random")
    for name in former.__all__:
        assert getattr(former, name) is getattr(random_perturbations, name)
    former_road = importlib.import_module("xaiscore.functional.road")
    assert former_road.road is road_module.road is faithfulness.road is F.road
    assert former_road.QUANTUS_ROAD_PERCENTAGES is road_module.QUANTUS_ROAD_PERCENTAGES
    former_sufficiency = importlib.import_module("xaiscore.functional.sufficiency")
    assert former_sufficiency.sufficiency is sufficiency_module.sufficiency is F.sufficiency
    # The package attributes stay the functions, as before the move.
    assert callable(F.road) and callable(F.sufficiency)


def test_the_faithfulness_package_exports_every_faithfulness_kernel():
    from xaiscore.functional import faithfulness

    for name in ("deletion", "insertion", "pixel_flipping", "region_perturbation", "selectivity",
                 "irof", "faithfulness_estimate", "monotonicity", "monotonicity_correlation",
                 "infidelity", "faithfulness_correlation", "sensitivity_n", "road", "sufficiency"):
        assert name in faithfulness.__all__
        assert getattr(faithfulness, name) is getattr(F, name)
