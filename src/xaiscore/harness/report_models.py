"""The report of a run that compares several models: columns grouped by model, a check per model.

A results Dataset with a ``model`` coordinate along ``explainer``
(:mod:`xaiscore.harness.multimodel`) is shown with its methods side by side, grouped by model:
the scoreboard and the example grid get a header row naming the model above its methods'
columns (labelled by the method's own name), and "The model on the scored samples" has one
part per model (:func:`xaiscore.harness.report_html.models_sanity_html`). For a single-model
Dataset every function here returns what the report showed
before (no extra row, the explainer names, the one model's sanity check).

Example:
    >>> import numpy as np
    >>> from xaiscore.harness.multimodel import combine_model_results
    >>> from xaiscore.harness.results import build_dataset
    >>> def part(methods):
    ...     return build_dataset(methods=methods, samples={
    ...         "source_id": ["a", "b"], "label": [1, 0], "target": [1, 0],
    ...         "prediction": [1, 0], "finding": ["x", ""]},
    ...         scores={"m": {k: np.array([1.0, 0.0]) for k in methods}})
    >>> ds = combine_model_results({"cnn": part(["gradcam", "random"]), "vit": part(["rollout"])})
    >>> column_labels(ds)["vit/rollout"]
    'rollout'
    >>> model_header_row(ds, leading=1, trailing=1).count("colspan")
    2
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any

__all__ = ["model_groups", "column_labels", "model_header_row", "report_sanity", "model_view"]


def model_groups(ds: Any) -> list[tuple[str, list[str]]] | None:
    """``[(model, [explainer, ...]), ...]`` in order for a several-model results Dataset, else
    ``None``."""
    if "model" not in ds.coords or ds["model"].dims != ("explainer",):
        return None
    groups: list[tuple[str, list[str]]] = []
    for explainer, model in zip(ds["explainer"].values, ds["model"].values):
        if not groups or groups[-1][0] != str(model):
            groups.append((str(model), []))
        groups[-1][1].append(str(explainer))
    return groups


def column_labels(ds: Any) -> dict[str, str]:
    """explainer -> the label of its column: the method's name when grouped under a model."""
    explainers = [str(e) for e in ds["explainer"].values]
    if model_groups(ds) is None or "method_name" not in ds.coords:
        return {e: e for e in explainers}
    return dict(zip(explainers, (str(m) for m in ds["method_name"].values)))


def model_header_row(ds: Any, *, leading: int, trailing: int = 0) -> str:
    """A ``<tr>`` naming each model above its columns (``""`` for a single-model Dataset).

    Args:
        ds: The results Dataset (explainers grouped by model, as combined).
        leading: Columns before the first explainer's.
        trailing: Columns after the last explainer's.
    """
    groups = model_groups(ds)
    if groups is None:
        return ""
    blank = '<th class="group"></th>'
    cells = "".join(
        f'<th class="group" scope="colgroup" colspan="{len(members)}">model '
        f"{html.escape(name)}</th>" for name, members in groups)
    return f'<tr class="models">{blank * leading}{cells}{blank * trailing}</tr>'


def model_view(ds: Any, name: str) -> Any:
    """``ds`` as a single-model Dataset of model ``name``: its explainers, its predictions,
    targets and probabilities in the plain coordinates."""
    keep = [str(e) for e, m in zip(ds["explainer"].values, ds["model"].values) if str(m) == name]
    view = ds.sel(explainer=keep)
    updates: dict[str, Any] = {}
    for key in ("prediction", "target"):
        if f"model_{key}" in ds.coords:
            updates[key] = ("sample", ds[f"model_{key}"].sel(models=name).values)
    if "model_probabilities" in ds.coords:
        updates["model_probability"] = (("sample", "class"),
                                        ds["model_probabilities"].sel(models=name).values)
    return view.assign_coords(updates)


def report_sanity(ds: Any, *, alpha: float) -> Any:
    """The sanity check the verdicts depend on: the model's; with several models, the first
    one's with ``at_chance`` set when any model is at chance level (no method is named best
    then) and the warning of that model."""
    from xaiscore.harness.sanity import model_sanity

    groups = model_groups(ds)
    if groups is None:
        return model_sanity(ds, alpha=alpha)
    checks = {name: model_sanity(model_view(ds, name), alpha=alpha) for name, _ in groups}
    first = next(iter(checks.values()))
    at_chance = [name for name, check in checks.items() if check.at_chance]
    if not at_chance:
        return first
    warning = " ".join(f"Model {name}: {checks[name].warning}" for name in at_chance)
    return dataclasses.replace(first, at_chance=True, warning=warning)
