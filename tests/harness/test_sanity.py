"""Model sanity: AUROC against pair counting, the chance-level rule, an untrained model's run."""

from __future__ import annotations

import itertools
import textwrap

import numpy as np
import pytest
import scipy.stats
import torch

from xaiscore.harness.cli import main
from xaiscore.harness.results import build_dataset
from xaiscore.harness.sanity import auroc, model_sanity


def reference_auroc(scores, positive):
    """P(positive scores above negative), ties one half: every (positive, negative) pair counted."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    if not pos or not neg:
        return float("nan")
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_pair_counting_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, size=30) / 4.0  # many ties
    positive = rng.random(30) < 0.4
    assert auroc(scores, positive) == pytest.approx(reference_auroc(scores, positive), abs=1e-12)
    assert np.isnan(auroc(scores, np.zeros(30, dtype=bool)))


def dataset(
    labels, predictions, findings=None, probability=None, class_names=("No Finding", "Nodule")
):
    n = len(labels)
    findings = findings or [class_names[label] for label in labels]
    return build_dataset(
        methods=["a"],
        scores={},
        samples={
            "source_id": [str(i) for i in range(n)],
            "label": labels,
            "target": labels,
            "prediction": predictions,
            "finding": findings,
        },
        probabilities=probability,
        attrs={"class_names": list(class_names)},
    )


def test_a_single_predicted_class_is_chance_level():
    sanity = model_sanity(dataset([0, 1] * 10, [0] * 20))
    assert sanity.at_chance and sanity.predicted_classes == ("No Finding",)
    assert sanity.accuracy == 0.5 and sanity.majority_rate == 0.5
    assert "predicts one class (No Finding) for all 20" in sanity.warning
    assert "no method is named best" in sanity.warning


def test_binomial_rule_against_the_majority_rate():
    labels = [0] * 30 + [1] * 10  # majority rate 0.75
    predictions = [0] * 28 + [1] * 2 + [1] * 6 + [0] * 4  # 34 of 40 correct: 0.85
    sanity = model_sanity(dataset(labels, predictions))
    expected = scipy.stats.binom.sf(34 - 1, 40, 0.75)  # P(X >= 34) under H0
    assert sanity.p_value == pytest.approx(expected, rel=1e-9)
    assert sanity.at_chance == (expected > 0.05)
    good = model_sanity(dataset([0, 1] * 20, [0, 1] * 20))
    assert not good.at_chance and good.warning is None and good.accuracy == 1.0
    small = model_sanity(dataset([0, 1, 0, 1], [0, 1, 0, 1]))  # perfect but n = 4: p = 1/16 > 0.05
    assert small.at_chance and "not significantly above" in small.warning


def test_auroc_overall_and_per_finding_from_stored_probabilities():
    labels = [0, 0, 1, 1, 1, 0]
    p1 = np.array([0.1, 0.6, 0.7, 0.9, 0.4, 0.2])
    probability = np.stack([1 - p1, p1], axis=1)
    sanity = model_sanity(dataset(labels, [int(p > 0.5) for p in p1], probability=probability))
    assert sanity.auroc == pytest.approx(reference_auroc(p1, np.array(labels) == 1))
    groups = {g.finding: g for g in sanity.groups}
    assert groups["Nodule"].n == 3 and groups["Nodule"].accuracy == pytest.approx(2 / 3)
    assert groups["Nodule"].auroc == pytest.approx(reference_auroc(p1, np.array(labels) == 1))
    assert groups["No Finding"].auroc == pytest.approx(
        reference_auroc(1 - p1, np.array(labels) == 0)
    )
    no_probabilities = model_sanity(dataset(labels, [0] * 6))
    assert np.isnan(no_probabilities.auroc) and np.isnan(no_probabilities.groups[0].auroc)


def untrained_cnn():
    """A freshly initialised demo CNN (seeded): predicts "No Finding" for every synthetic image."""
    from xaiscore.harness.models import SmallCNN

    return SmallCNN(1, 2, width=4, generator=torch.Generator().manual_seed(0))


def test_an_untrained_model_run_warns_and_names_no_winner(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text(
        textwrap.dedent("""
        out = "run"
        batch_size = 8
        n_examples = 2
        methods = ["Saliency", "random"]
        [dataset]
        kind = "synthetic"
        n = 16
        size = [32, 32]
        [model]
        kind = "factory"
        factory = "tests.harness.test_sanity:untrained_cnn"
        [metrics]
        include = ["pointing_game", "relevance_mass_accuracy", "sparseness"]
    """)
    )
    assert main(["run", str(config), "--no-progress", "--out", str(tmp_path / "run")]) == 0
    captured = capsys.readouterr()
    assert "Warning: The model is at chance level" in captured.err
    assert "predicts one class" in captured.err
    assert "No method is named best: the model is at chance level" in captured.out
    assert "Significantly best" not in captured.out and "won" not in captured.out
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "The model is at chance level" in page and '<td class="best">' not in page
    assert "no winner: model at chance" in page
