"""Former path of :mod:`xaiscore.functional.faithfulness.random_perturbations`, kept importable.

Infidelity, faithfulness correlation and sensitivity-n now live in the faithfulness package;
this module re-exports them (and ``default_subset_sizes``) unchanged.
"""

from __future__ import annotations

from xaiscore.functional.faithfulness.random_perturbations import (
    Baseline,  # noqa: F401 (the type of `baseline`, importable from here as before)
    default_subset_sizes,
    faithfulness_correlation,
    infidelity,
    sensitivity_n,
)

__all__ = ["infidelity", "faithfulness_correlation", "sensitivity_n", "default_subset_sizes"]
