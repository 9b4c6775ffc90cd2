"""A drop-in for Quantus 0.6.0: its metric classes, running on xaiscore's vectorised kernels.

Switch an existing Quantus script with one line::

    from xaiscore import quantus_compat as quantus

    scores = quantus.PixelFlipping(features_in_step=28)(
        model=model, x_batch=x, y_batch=y, a_batch=a, device="cuda")

Every class keeps Quantus' name, constructor keywords and defaults, and its
``__call__(model, x_batch, y_batch, a_batch, s_batch, channel_first,
explain_func, explain_func_kwargs, model_predict_kwargs, softmax, device,
batch_size)``: numpy in, Quantus' return structure out (a list of floats per
sample, curves, or a dict for ``ROAD`` and the MPRT family). Inside, the whole
batch goes to one kernel of :mod:`xaiscore.functional` on ``device``, with
model and explainer calls in chunks of ``batch_size``.

Where Quantus 0.6.0 departs from the paper the class follows the paper and its
docstring says how it differs (``docs/quantus_compat.md`` has the full
matrix). In particular ``normalise`` divides each sample by its own maximum
(Quantus divides by the maximum of the whole batch, so a sample's score
depends on its batch-mates); ``quantus_bug_compatible=True`` reproduces
Quantus' numbers where that is useful for comparing with published results.
Stochastic metrics take a ``seed`` (Quantus draws from numpy's global
generator; we never touch global random state).

Names this module does not define (``explain``, ``evaluate``, ``functions``,
``helpers``, ``normalise_func``...) are taken from the installed ``quantus``
package, so ``quantus.explain`` and ``quantus.evaluate`` keep working after
the switch (``pip install xaiscore[quantus]``).

Example:
    >>> import numpy as np
    >>> from xaiscore import quantus_compat as quantus
    >>> a = np.zeros((2, 1, 4, 4)); a[0, 0, 0, 0] = 1.0; a[1, 0, 3, 3] = 1.0
    >>> s = np.zeros((2, 1, 4, 4)); s[:, 0, :2, :2] = 1
    >>> quantus.PointingGame(disable_warnings=True)(model=None, x_batch=np.zeros((2, 1, 4, 4)),
    ...                                             y_batch=np.zeros(2, int), a_batch=a, s_batch=s)
    [1.0, 0.0]
"""

from __future__ import annotations

import importlib
from typing import Any

from xaiscore.quantus_compat._base import Metric, QuantusCompatibilityError, ScoreDirection
from xaiscore.quantus_compat.axiomatic import Completeness, InputInvariance, NonSensitivity
from xaiscore.quantus_compat.complexity import Complexity, EffectiveComplexity, Sparseness
from xaiscore.quantus_compat.faithfulness import (
    IROF,
    ROAD,
    BatchSufficiency,
    FaithfulnessCorrelation,
    FaithfulnessEstimate,
    Infidelity,
    Monotonicity,
    MonotonicityCorrelation,
    PixelFlipping,
    RegionPerturbation,
    Selectivity,
    SensitivityN,
    Sufficiency,
)
from xaiscore.quantus_compat.localisation import (
    AUC,
    AttributionLocalisation,
    Focus,
    PointingGame,
    RelevanceMassAccuracy,
    RelevanceRankAccuracy,
    TopKIntersection,
)
from xaiscore.quantus_compat.randomisation import (
    MPRT,
    EfficientMPRT,
    ModelParameterRandomisation,
    RandomLogit,
    SmoothMPRT,
)
from xaiscore.quantus_compat.robustness import (
    AvgSensitivity,
    Consistency,
    Continuity,
    LocalLipschitzEstimate,
    MaxSensitivity,
    RelativeInputStability,
    RelativeOutputStability,
    RelativeRepresentationStability,
)

__all__ = [
    "Metric",
    "ScoreDirection",
    "QuantusCompatibilityError",
    # localisation
    "PointingGame",
    "AttributionLocalisation",
    "TopKIntersection",
    "RelevanceMassAccuracy",
    "RelevanceRankAccuracy",
    "AUC",
    "Focus",
    # complexity
    "Sparseness",
    "Complexity",
    "EffectiveComplexity",
    # faithfulness
    "PixelFlipping",
    "RegionPerturbation",
    "Selectivity",
    "FaithfulnessEstimate",
    "Monotonicity",
    "MonotonicityCorrelation",
    "IROF",
    "ROAD",
    "FaithfulnessCorrelation",
    "Infidelity",
    "SensitivityN",
    "Sufficiency",
    "BatchSufficiency",
    # axiomatic
    "Completeness",
    "NonSensitivity",
    "InputInvariance",
    # robustness
    "MaxSensitivity",
    "AvgSensitivity",
    "LocalLipschitzEstimate",
    "Continuity",
    "Consistency",
    "RelativeInputStability",
    "RelativeOutputStability",
    "RelativeRepresentationStability",
    # randomisation
    "MPRT",
    "ModelParameterRandomisation",
    "SmoothMPRT",
    "EfficientMPRT",
    "RandomLogit",
]


def __getattr__(name: str) -> Any:
    """Anything else (``explain``, ``evaluate``, ``functions``, ...) from the installed quantus
    package."""
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        quantus = importlib.import_module("quantus")
    except ImportError as error:
        raise AttributeError(
            f"xaiscore.quantus_compat has no {name!r}; names it does not define are taken from the "
            "quantus package, which is not installed (`pip install xaiscore[quantus]`)."
        ) from error
    try:
        return getattr(quantus, name)
    except AttributeError:
        raise AttributeError(
            f"Neither xaiscore.quantus_compat nor quantus has an attribute {name!r}.") from None
