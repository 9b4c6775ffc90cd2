"""The shared base of the Quantus robustness drop-ins that re-explain noisy inputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from torch import Tensor

from xaiscore._checks import DTypeError
from xaiscore.quantus_compat._base import ExplainAdapter, Metric, Prepared, ScoreDirection


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DTypeError(f"Expected `seed` to be an int or None, but got {type(seed).__name__}.")
    return int(seed)


class _Reexplaining(Metric):
    """Metrics that call ``explain_func`` on perturbed inputs; the kernel normalises every map."""

    evaluation_category = "Robustness"
    score_direction = ScoreDirection.LOWER
    needs_explainer = True
    transforms_attributions = False

    def _kernel_postprocessing(self, prepared: Prepared) -> tuple[Tensor, Any, dict[str, Any]]:
        """``(a, explain_fn, {abs, normalise})`` for a kernel that post-processes every explanation
        itself."""
        if not self.normalise or self.normalisation_mode() == "max":
            options = {"abs": self.abs, "normalise": "sample" if self.normalise else None}
            return prepared.a_raw, prepared.explain_fn, options
        # A user normalise_func: applied to every map by the explain adapter, abs by the kernel.
        transform = lambda a: self.transform_attributions(a, apply_abs=False)  # noqa: E731
        explain = _with_transform(prepared.explain_fn, transform)
        return transform(prepared.a_raw), explain, {"abs": self.abs, "normalise": None}


def _with_transform(explain_fn: ExplainAdapter,
                    transform: Callable[[Tensor], Tensor]) -> ExplainAdapter:
    adapter = ExplainAdapter.__new__(ExplainAdapter)
    adapter.__dict__.update(explain_fn.__dict__)
    adapter.transform = transform
    return adapter


def _prediction_mode(flag: Any) -> str:
    return "nan" if flag else "keep"
