"""Metric classes: score a dataset batch by batch, across processes (``torchmetrics``).

One class per registered metric (:mod:`xaiscore.specs`), generated from the registry
through three wrappers: per-sample metrics (scores and curves), set-level metrics kept as
summed statistics, and set-level metrics that score every sample against the whole set.
Each is a ``torchmetrics.Metric``: ``update`` takes a batch's tensors as the kernel names
them (``a``, ``mask``, ``x``, ``target`` ...), the model or explainer is given once at
construction with the kernel's options, ``compute()`` returns the value (the NaN-aware mean
of per-sample scores, or the set-level metric) and ``result()`` the per-sample scores,
counts and curves. States are declared with ``add_state``, so ``torch.distributed``
synchronisation, ``MetricCollection``, ``state_dict`` and Lightning work as usual.

Needs ``torchmetrics`` (``pip install "xaiscore[metrics]"``); :mod:`xaiscore.functional`
does not. See ``docs/metrics.md``.

Example:
    >>> import torch
    >>> from xaiscore.metrics import PointingGame
    >>> metric = PointingGame()
    >>> a = torch.zeros(4, 1, 8, 8); a[:2, 0, 1, 1] = 1.0; a[2:, 0, 6, 6] = 1.0
    >>> mask = torch.zeros(4, 1, 8, 8, dtype=torch.bool); mask[..., :4, :4] = True
    >>> for start in (0, 3):  # two batches of unequal size
    ...     metric.update(a[start:start + 3], mask[start:start + 3])
    >>> metric.compute()
    tensor(0.5000)
    >>> metric.result().scores.tolist()
    [1.0, 1.0, 0.0, 0.0]
"""

from __future__ import annotations

try:
    import torchmetrics  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised only without torchmetrics
    raise ImportError(
        "xaiscore.metrics needs torchmetrics: pip install 'xaiscore[metrics]' "
        "(or 'torchmetrics>=1.1,<2'). "
        "xaiscore.functional works without it."
    ) from error

from typing import Any

from xaiscore.metrics._base import MetricResult, XaiscoreMetric
from xaiscore.metrics._factory import STREAM_EXACT, class_name, default_seeding, metric_class
from xaiscore.metrics._sample import PerSampleMetric
from xaiscore.metrics._set import PredictionSetMetric, StatisticsSetMetric

# localization
PointingGame = metric_class("pointing_game")
EnergyPointingGame = metric_class("energy_pointing_game")
RelevanceMassAccuracy = metric_class("relevance_mass_accuracy")
RelevanceRankAccuracy = metric_class("relevance_rank_accuracy")
TopKIntersection = metric_class("top_k_intersection")
AttributionLocalisation = metric_class("attribution_localisation")
LocalizationAUC = metric_class("localization_auc")
LocalizationIoU = metric_class("localization_iou")
PointingAccuracy = metric_class("pointing_accuracy")
GridPointingGame = metric_class("grid_pointing_game")
Focus = metric_class("focus")
BoxAccuracy = metric_class("box_accuracy")
MaxBoxAccuracy = metric_class("max_box_accuracy")
PxAP = metric_class("pxap")
# complexity
Sparseness = metric_class("sparseness")
Complexity = metric_class("complexity")
EffectiveComplexity = metric_class("effective_complexity")
MSTCompactness = metric_class("mst_compactness")
# faithfulness
Deletion = metric_class("deletion")
Insertion = metric_class("insertion")
PixelFlipping = metric_class("pixel_flipping")
RegionPerturbation = metric_class("region_perturbation")
Selectivity = metric_class("selectivity")
IROF = metric_class("irof")
FaithfulnessEstimate = metric_class("faithfulness_estimate")
Monotonicity = metric_class("monotonicity")
MonotonicityCorrelation = metric_class("monotonicity_correlation")
ROAD = metric_class("road")
Infidelity = metric_class("infidelity")
FaithfulnessCorrelation = metric_class("faithfulness_correlation")
SensitivityN = metric_class("sensitivity_n")
Sufficiency = metric_class("sufficiency")
# axiomatic
Completeness = metric_class("completeness")
NonSensitivity = metric_class("non_sensitivity")
# robustness
MaxSensitivity = metric_class("max_sensitivity")
AvgSensitivity = metric_class("avg_sensitivity")
LocalLipschitzEstimate = metric_class("local_lipschitz_estimate")
RelativeInputStability = metric_class("relative_input_stability")
RelativeOutputStability = metric_class("relative_output_stability")
RelativeRepresentationStability = metric_class("relative_representation_stability")
Continuity = metric_class("continuity")
Consistency = metric_class("consistency")
# randomization
MPRT = metric_class("mprt")
SmoothMPRT = metric_class("smooth_mprt")
EfficientMPRT = metric_class("efficient_mprt")
RandomLogit = metric_class("random_logit")


def __getattr__(name: str) -> Any:
    """The class of a metric registered after import (e.g. a user's), by its class name."""
    from xaiscore.specs import list_metrics

    for spec in list_metrics():
        if class_name(spec.name) == name:
            return metric_class(spec)
    raise AttributeError(f"module 'xaiscore.metrics' has no attribute {name!r}")


__all__ = [
    "MetricResult",
    "XaiscoreMetric",
    "PerSampleMetric",
    "StatisticsSetMetric",
    "PredictionSetMetric",
    "metric_class",
    "class_name",
    "default_seeding",
    "STREAM_EXACT",
    "PointingGame",
    "EnergyPointingGame",
    "RelevanceMassAccuracy",
    "RelevanceRankAccuracy",
    "TopKIntersection",
    "AttributionLocalisation",
    "LocalizationAUC",
    "LocalizationIoU",
    "PointingAccuracy",
    "GridPointingGame",
    "Focus",
    "BoxAccuracy",
    "MaxBoxAccuracy",
    "PxAP",
    "Sparseness",
    "Complexity",
    "EffectiveComplexity",
    "MSTCompactness",
    "Deletion",
    "Insertion",
    "PixelFlipping",
    "RegionPerturbation",
    "Selectivity",
    "IROF",
    "FaithfulnessEstimate",
    "Monotonicity",
    "MonotonicityCorrelation",
    "ROAD",
    "Infidelity",
    "FaithfulnessCorrelation",
    "SensitivityN",
    "Sufficiency",
    "Completeness",
    "NonSensitivity",
    "MaxSensitivity",
    "AvgSensitivity",
    "LocalLipschitzEstimate",
    "RelativeInputStability",
    "RelativeOutputStability",
    "RelativeRepresentationStability",
    "Continuity",
    "Consistency",
    "MPRT",
    "SmoothMPRT",
    "EfficientMPRT",
    "RandomLogit",
]
