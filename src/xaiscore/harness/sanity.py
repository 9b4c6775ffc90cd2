"""Is the model worth explaining? Accuracy, AUROC and a chance-level check on the scored samples.

Attributions of a model that predicts one class for everything, or is no
better than always guessing the most frequent class, say nothing about the
data; a scoreboard of such a run ranks noise. :func:`model_sanity` states the
model's accuracy and AUROC on the samples that were scored (overall and per
finding class) and decides whether it is **at chance level**:

* it predicts a **single class** for every scored sample (while the labels
  have at least two), or
* its accuracy is **not significantly above the majority-class rate**: with
  ``k`` of ``n`` samples correct and ``p0`` the share of the most frequent
  label among them, the one-sided binomial test of ``H0: accuracy = p0``
  against ``accuracy > p0`` (``scipy.stats.binomtest``) gives ``p > alpha``
  (default 0.05). Samples of one label only (``p0 = 1``) can never pass: the
  accuracy cannot be told from guessing.

AUROC needs the model's probabilities (the ``model_probability`` variable the
runner stores): with two classes the AUROC of ``P(class 1)``; with more, the
mean one-vs-rest AUROC over the classes that have positives and negatives
among the samples. Per finding, the one-vs-rest AUROC of the class named like
the finding (NaN when no class has that name). AUROC is the Mann-Whitney
statistic (ties count one half).

Example:
    >>> import numpy as np
    >>> from xaiscore.harness.results import build_dataset
    >>> ds = build_dataset(
    ...     methods=["a"], scores={},
    ...     samples={"source_id": list("abcdef"), "label": [0, 0, 0, 1, 1, 1],
    ...              "target": [0, 0, 0, 1, 1, 1], "prediction": [0, 0, 0, 0, 0, 0],
    ...              "finding": ["", "", "", "x", "x", "x"]},
    ...     attrs={"class_names": ["No Finding", "x"]})
    >>> sanity = model_sanity(ds)
    >>> sanity.at_chance, sanity.accuracy, sanity.predicted_classes
    (True, 0.5, ('No Finding',))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from xaiscore._checks import check_fraction

__all__ = ["GroupSanity", "ModelSanity", "model_sanity", "auroc"]


def auroc(scores: Any, positive: Any) -> float:
    """Area under the ROC curve of ``scores`` for the boolean ``positive`` (ties count one half).

    NaN when there is no positive or no negative sample.

    Example:
        >>> auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
        0.75
    """
    import scipy.stats

    values = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = scipy.stats.rankdata(values)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass(frozen=True)
class GroupSanity:
    """The model on the samples of one finding class."""

    finding: str
    n: int
    accuracy: float
    auroc: float


@dataclass(frozen=True)
class ModelSanity:
    """The model on the scored samples, and whether it is at chance level (module docstring).

    Attributes:
        n: Scored samples.
        accuracy: Share with prediction == label.
        majority_class: The most frequent label (its class name when known).
        majority_rate: Its share: the accuracy of always guessing it.
        p_value: One-sided binomial test of accuracy > majority_rate.
        predicted_classes: The distinct predicted classes (names when known).
        auroc: See the module docstring (NaN without stored probabilities).
        groups: Per finding class.
        at_chance: The verdict.
        warning: One sentence saying why (``None`` when not at chance).
        alpha: The level of the test.
    """

    n: int
    accuracy: float
    majority_class: str
    majority_rate: float
    p_value: float
    predicted_classes: tuple[str, ...]
    auroc: float
    groups: tuple[GroupSanity, ...]
    at_chance: bool
    warning: str | None
    alpha: float


def _class_names(ds: Any) -> list[str]:
    try:
        names = json.loads(ds.attrs.get("class_names", "[]"))
    except (TypeError, ValueError):
        return []
    return [str(n) for n in names] if isinstance(names, list) else []


def _overall_auroc(probability: np.ndarray | None, labels: np.ndarray) -> float:
    if probability is None:
        return float("nan")
    if probability.shape[1] == 2:
        return auroc(probability[:, 1], labels == 1)
    values = [auroc(probability[:, c], labels == c) for c in range(probability.shape[1])]
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def model_sanity(ds: Any, *, alpha: float = 0.05) -> ModelSanity:
    """Accuracy, AUROC and the chance-level verdict of the model on ``ds``'s samples.

    Args:
        ds: A results Dataset (coords ``label``, ``prediction``, ``finding``;
            the ``model_probability`` variable for AUROC).
        alpha: Level of the binomial test.

    Returns:
        :class:`ModelSanity`.
    """
    import scipy.stats

    check_fraction(alpha, "alpha", low_inclusive=False, high_inclusive=False)
    labels = np.asarray(ds["label"].values, dtype=np.int64)
    predictions = np.asarray(ds["prediction"].values, dtype=np.int64)
    findings = [str(f) for f in ds["finding"].values]
    names = _class_names(ds)

    def name(index: int) -> str:
        return names[index] if 0 <= index < len(names) else str(index)

    n = int(labels.size)
    probability = np.asarray(ds["model_probability"].values) if "model_probability" in ds else None
    if n == 0:
        return ModelSanity(
            0,
            float("nan"),
            "",
            float("nan"),
            float("nan"),
            (),
            float("nan"),
            (),
            True,
            "No sample was scored.",
            alpha,
        )
    correct = int((labels == predictions).sum())
    classes, counts = np.unique(labels, return_counts=True)
    majority = int(classes[np.argmax(counts)])
    majority_rate = float(counts.max() / n)
    p_value = float(scipy.stats.binomtest(correct, n, majority_rate, alternative="greater").pvalue)
    predicted = tuple(name(int(c)) for c in np.unique(predictions))
    accuracy = correct / n
    reasons = []
    if len(predicted) == 1 and classes.size > 1:
        reasons.append(f"it predicts one class ({predicted[0]}) for all {n} scored samples")
    if p_value > alpha:
        reasons.append(
            f"its accuracy {accuracy:.1%} is not significantly above the majority-class rate "
            f"{majority_rate:.1%} (always guessing {name(majority)}; one-sided binomial test, "
            f"p = {p_value:.3g} > {alpha:g})"
        )
    warning = None
    if reasons:
        warning = (
            "The model is at chance level on the scored samples: "
            + "; ".join(reasons)
            + ". Attributions of such a model say nothing about the data, so no method is "
            "named best."
        )
    groups = []
    for finding in sorted(set(findings)):
        members = np.array([f == finding for f in findings])
        group_auroc = float("nan")
        if probability is not None and finding in names:
            c = names.index(finding)
            group_auroc = auroc(probability[:, c], labels == c)
        groups.append(
            GroupSanity(
                finding,
                int(members.sum()),
                float((labels[members] == predictions[members]).mean()),
                group_auroc,
            )
        )
    return ModelSanity(
        n,
        accuracy,
        name(majority),
        majority_rate,
        p_value,
        predicted,
        _overall_auroc(probability, labels),
        tuple(groups),
        bool(reasons),
        warning,
        alpha,
    )
