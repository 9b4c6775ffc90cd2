"""The lines the command line prints after a run (built here, printed by the CLI).

Library code never prints; :func:`summary_lines` returns what the command
line shows: how much was scored and how long it took (explaining and
scoring only: not training, not the report), the model's accuracy, a warning
when the model is at chance level, and how many metrics each method is
*significantly* best on (no count of "best means": a mean ahead by 0.001 is
not a win).

Example:
    >>> import numpy as np
    >>> from xaiscore.harness.results import build_dataset
    >>> ds = build_dataset(
    ...     methods=["a", "b"],
    ...     samples={"source_id": list("wxyz"), "label": [0, 0, 1, 1], "target": [0, 0, 1, 1],
    ...              "prediction": [0, 0, 0, 0], "finding": ["", "", "n", "n"]},
    ...     scores={"m": {"a": np.array([1.0, 0.9, 0.8, 0.7]),
    ...                   "b": np.array([0.1, 0.2, 0.3, 0.4])}},
    ...     metric_info={"m": {"higher_is_better": True}})
    >>> out, warnings = summary_lines(ds, timing={"seconds": 2.0})
    >>> print(out[0])
    Scored 2 methods x 1 metrics on 4 samples in 2 s.
    >>> print(out[-1])
    No method is named best: the model is at chance level (see the warning).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["summary_lines"]


def _scored_line(ds: Any, n_metrics: int, timing: Mapping[str, Any]) -> str:
    head = (
        f"Scored {ds.sizes.get('explainer', 0)} methods x {n_metrics} metrics on "
        f"{ds.sizes.get('sample', 0)} samples"
    )
    seconds = timing.get("seconds")
    computed, loaded = timing.get("results_computed"), timing.get("results_loaded")
    if seconds is None:
        return head + "."
    if computed is not None and loaded and not computed:
        return (f"{head}: nothing left to do, all {loaded} results loaded from the run folder "
                f"({seconds:.0f} s).")
    tail = f" ({computed} results computed, {loaded} loaded from the run folder)" if loaded else ""
    return f"{head} in {float(seconds):.0f} s{tail}."


def _warnings(ds: Any, metrics: list[str], sanity: Any) -> list[str]:
    """The chance-level warning, failed pairs, and NaN without a stored reason."""
    from xaiscore.harness.gaps import unexplained_gaps

    warnings = [f"Warning: {sanity.warning}"] if sanity.warning else []
    failed = []
    for metric in metrics:
        for method, reason in json.loads(ds.variables[metric].attrs.get("skipped", "{}")).items():
            if reason.startswith("failed"):
                failed.append(f"  {metric} / {method}: {reason}")
    if failed:
        warnings.append(
            f"{len(failed)} metric/method pair(s) failed (NaN in the results, listed in the "
            "report):"
        )
        warnings.extend(failed[:10])
    unexplained = unexplained_gaps(ds) if metrics else []
    if unexplained:
        warnings.append(
            f"{len(unexplained)} metric/method pair(s) have NaN scores without a stored reason "
            "(listed in the report under 'Skipped and undefined')."
        )
    return warnings


def _verdict_lines(ds: Any, alpha: float) -> list[str]:
    """How many metrics each method is significantly best on, and how many end in a tie."""
    from xaiscore.harness.report import baseline_methods
    from xaiscore.harness.verdicts import best_counts, metric_verdicts

    verdicts = metric_verdicts(ds, alpha=alpha)
    counts = best_counts(verdicts)
    if not counts:
        return [
            f"No method is significantly best on any of the {len(verdicts)} metrics (tie groups "
            "in the report)."
        ]
    baselines = baseline_methods(ds)
    names = ", ".join(
        f"{m} ({c}{', a baseline' if m in baselines else ''})" for m, c in counts.items()
    )
    lines = [
        f"Significantly best on {sum(counts.values())} of {len(verdicts)} metrics (paired "
        f"Wilcoxon tests, Holm-adjusted, alpha {alpha:g}): {names}."
    ]
    ties = len(verdicts) - sum(counts.values())
    if ties:
        lines.append(f"No significant best on {ties} metrics (tie groups in the report).")
    return lines


def summary_lines(ds: Any, *, alpha: float = 0.05,
                  timing: Mapping[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """``(lines for stdout, warnings for stderr)`` summarising a results Dataset.

    ``timing`` is what :func:`xaiscore.harness.runner.evaluate` filled in
    (``seconds``, ``results_computed``, ``results_loaded``). The verdicts are
    :func:`xaiscore.harness.verdicts.metric_verdicts` (shared with the report
    when it was written in the same process).
    """
    from xaiscore.harness.mosaic_runs import mosaic_metric_variables
    from xaiscore.harness.report_mosaics import mosaic_lines
    from xaiscore.harness.report_sets import set_level_lines
    from xaiscore.harness.results import metric_variables
    from xaiscore.harness.sanity import model_sanity
    from xaiscore.harness.set_results import set_metric_variables

    metrics = metric_variables(ds)
    others = set_metric_variables(ds) + mosaic_metric_variables(ds)  # one value per method
    out = [_scored_line(ds, len(metrics) + len(others), timing or {})]
    sanity = model_sanity(ds, alpha=alpha)
    auroc = f", AUROC {sanity.auroc:.3f}" if sanity.auroc == sanity.auroc else ""
    if sanity.n:
        out.append(
            f"Model on the scored samples: accuracy {sanity.accuracy:.1%} (majority class "
            f"{sanity.majority_rate:.1%}){auroc}."
        )
    warnings = _warnings(ds, metrics + others, sanity)
    if not metrics and not others:
        return out, warnings
    if sanity.at_chance:
        out.append("No method is named best: the model is at chance level (see the warning).")
        return out, warnings
    out.extend(set_level_lines(ds) + mosaic_lines(ds))
    if not metrics:
        return out, warnings
    return out + _verdict_lines(ds, alpha), warnings
