"""Faithfulness metrics: does removing what the attribution calls relevant change the model's
output?

Every kernel takes a ``forward_fn`` returning logits (an ``nn.Module``
qualifies), inputs ``x`` ``(B, C, *S)``, attributions ``a`` ``(B, 1|C, *S)``
and ``target`` ``(B,)`` long (``None`` tracks the model's prediction on ``x``),
with every option keyword-only. Perturbed inputs are built by the shared engine
(:mod:`xaiscore._engine.perturbation`) and pushed through the model in chunks of at most
``max_batch_size`` images; results do not depend on the chunk size. Curve
metrics return a :class:`~xaiscore.functional._results.CurveResult`, the others
a ``(B,)`` tensor.

The kernels live in one module per kind:

- :mod:`~xaiscore.functional.faithfulness.curves`: ranking curves (deletion, insertion,
  pixel flipping, region perturbation, selectivity, IROF);
- :mod:`~xaiscore.functional.faithfulness.feature_removal`: feature-removal scores
  (faithfulness estimate, monotonicity, monotonicity correlation);
- :mod:`~xaiscore.functional.faithfulness.random_perturbations`: random perturbations
  (infidelity, faithfulness correlation, sensitivity-n);
- :mod:`~xaiscore.functional.faithfulness.road`: ROAD;
- :mod:`~xaiscore.functional.faithfulness.sufficiency`: sufficiency.

See ``docs/faithfulness.md`` for formulas, defaults and the differences from Quantus.
"""

from __future__ import annotations

from xaiscore.functional._results import CurveResult
from xaiscore.functional.faithfulness.curves import (
    deletion,
    insertion,
    irof,
    pixel_flipping,
    region_perturbation,
    selectivity,
)
from xaiscore.functional.faithfulness.feature_removal import (
    faithfulness_estimate,
    monotonicity,
    monotonicity_correlation,
)
from xaiscore.functional.faithfulness.random_perturbations import (
    faithfulness_correlation,
    infidelity,
    sensitivity_n,
)
from xaiscore.functional.faithfulness.road import road
from xaiscore.functional.faithfulness.sufficiency import sufficiency

__all__ = [
    "CurveResult",
    # ranking curves
    "deletion",
    "insertion",
    "pixel_flipping",
    "region_perturbation",
    "selectivity",
    "irof",
    # feature-removal scores
    "faithfulness_estimate",
    "monotonicity",
    "monotonicity_correlation",
    # random perturbations
    "infidelity",
    "faithfulness_correlation",
    "sensitivity_n",
    # ROAD and sufficiency
    "road",
    "sufficiency",
]
