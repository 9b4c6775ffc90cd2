"""Functional kernels: pure functions on tensors, one module per metric family.

Every kernel is batch-first and returns ``(B,)`` scores (or a result with
``(B, T)`` curves) on the input's device, NaN where a score is undefined.
"""

from xaiscore.functional.axiomatic import completeness, non_sensitivity
from xaiscore.functional.box_localization import (
    box_accuracy,
    mask_to_boxes,
    max_box_accuracy,
    max_box_accuracy_from_statistics,
    max_box_accuracy_statistics,
    pxap,
    pxap_from_counts,
    pxap_statistics,
)
from xaiscore.functional.complexity import (
    complexity,
    effective_complexity,
    mst_compactness,
    sparseness,
)
from xaiscore.functional.faithfulness import (
    deletion,
    faithfulness_estimate,
    insertion,
    irof,
    monotonicity,
    monotonicity_correlation,
    pixel_flipping,
    region_perturbation,
    selectivity,
)
# `faithfulness_random`, `road` and `sufficiency`: former paths of modules of the faithfulness
# package, kept importable. They are imported here, before `road` and `sufficiency` are bound to
# the functions: a later first import of a submodule would rebind `xaiscore.functional.road` to it.
from xaiscore.functional.faithfulness_random import (
    faithfulness_correlation,
    infidelity,
    sensitivity_n,
)
from xaiscore.functional.box_masks import boxes_to_mask
from xaiscore.functional.localization import (
    attribution_localisation,
    energy_pointing_game,
    localization_auc,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    top_k_intersection,
)
from xaiscore.functional.mosaic import focus, grid_pointing_game, make_mosaics, tile_index
from xaiscore.functional.pointing_accuracy import pointing_accuracy
from xaiscore.functional.randomization import (
    efficient_mprt,
    mprt,
    random_logit,
    smooth_mprt,
)
from xaiscore.functional.road import road
from xaiscore.functional.robustness import (
    avg_sensitivity,
    consistency,
    continuity,
    local_lipschitz_estimate,
    max_sensitivity,
    relative_input_stability,
    relative_output_stability,
    relative_representation_stability,
)
from xaiscore.functional.segmentation import localization_iou, tune_threshold
from xaiscore.functional.sufficiency import sufficiency

__all__ = [
    # localization
    "pointing_game",
    "energy_pointing_game",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "top_k_intersection",
    "attribution_localisation",
    "localization_auc",
    "localization_iou",
    "tune_threshold",
    "pointing_accuracy",
    "boxes_to_mask",
    # box-level localization
    "box_accuracy",
    "max_box_accuracy",
    "max_box_accuracy_statistics",
    "max_box_accuracy_from_statistics",
    "pxap",
    "pxap_statistics",
    "pxap_from_counts",
    "mask_to_boxes",
    # mosaics
    "grid_pointing_game",
    "focus",
    "make_mosaics",
    "tile_index",
    # complexity
    "sparseness",
    "complexity",
    "effective_complexity",
    "mst_compactness",
    # faithfulness
    "deletion",
    "insertion",
    "pixel_flipping",
    "region_perturbation",
    "selectivity",
    "irof",
    "faithfulness_estimate",
    "monotonicity",
    "monotonicity_correlation",
    # faithfulness (part 2)
    "road",
    "infidelity",
    "faithfulness_correlation",
    "sensitivity_n",
    "sufficiency",
    # axiomatic
    "completeness",
    "non_sensitivity",
    # robustness
    "max_sensitivity",
    "avg_sensitivity",
    "local_lipschitz_estimate",
    "relative_input_stability",
    "relative_output_stability",
    "relative_representation_stability",
    "continuity",
    "consistency",
    # randomization
    "mprt",
    "smooth_mprt",
    "efficient_mprt",
    "random_logit",
]
