"""What the numbers of a results Dataset mean: axis names and units of curves and coordinates.

A curve metric's y values depend on its options (``softmax`` switches
probabilities and logits, ROAD's ``measure`` picks accuracy, probability or
logit, the MPRT family's ``similarity`` names the similarity); its registry
spec states the default (:attr:`~xaiscore.specs.MetricSpec.curve_scale`,
:attr:`~xaiscore.specs.MetricSpec.curve_x`). :func:`curve_axes` resolves them
for the options a run used, once, when the results are assembled; they are
stored as ``long_name``/``units`` attrs on the curve variable and on its
``<metric>_step`` coordinate, so the report needs no kernel.

Example:
    >>> from xaiscore.specs import get_metric
    >>> curve_axes(get_metric("deletion"), {})
    CurveAxes(scale='probability', y_units='1', x='fraction of features removed', x_units='1')
    >>> curve_axes(get_metric("pixel_flipping"), {"softmax": True}).scale
    'probability'
    >>> curve_axes(get_metric("road"), {"measure": "logit"}).scale
    'logit'
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xaiscore.specs import MetricSpec

__all__ = ["CurveAxes", "curve_axes", "COORD_ATTRS", "units_of"]

#: ``units`` of a y scale (``"1"``: dimensionless, as CF conventions write it).
_UNITS = {
    "probability": "1",
    "relative probability": "1",
    "accuracy": "1",
    "correlation": "1",
    "similarity": "1",
    "logit": "logit",
    "logit drop": "logit",
    "relative logit": "1",
    "probability drop": "1",
    "entropy": "nat",
}

#: ``long_name``/``units`` attrs of the coordinates every results Dataset has.
COORD_ATTRS: dict[str, dict[str, str]] = {
    "explainer": {"long_name": "explanation method"},
    "sample": {"long_name": "index of the sample in the dataset"},
    "source_id": {"long_name": "identifier of the sample in its source"},
    "label": {"long_name": "true class (index into the attr class_names)"},
    "target": {"long_name": "explained and scored class (index into class_names)"},
    "prediction": {"long_name": "predicted class, argmax of the logits (index into class_names)"},
    "finding": {"long_name": "finding class name of the sample (empty or 'No Finding': negative)"},
    "run": {"long_name": "repeat of a stochastic metric"},
    "example": {"long_name": "sample index of a report example"},
    "corner": {"long_name": "box corner (pixel coordinates)"},
    "class": {"long_name": "model output class (index into class_names)"},
}


@dataclass(frozen=True)
class CurveAxes:
    """The axes of one curve metric: what y is (``scale``, ``y_units``) and what x counts."""

    scale: str
    y_units: str
    x: str
    x_units: str


def units_of(label: str) -> str:
    """``"1"`` for fractions and dimensionless scales, ``"count"`` for counts, else the unit."""
    if label.startswith("fraction"):
        return "1"
    if label in _UNITS:
        return _UNITS[label]
    return "count"


def _option(spec: MetricSpec, settings: Mapping[str, Any], name: str) -> Any:
    """The value of option ``name`` in this run: the settings, else the kernel's default."""
    if name in settings:
        return settings[name]
    try:
        parameter = inspect.signature(spec.fn).parameters.get(name)
    except (ImportError, AttributeError, ValueError, TypeError):
        return None
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default


def curve_axes(spec: MetricSpec, settings: Mapping[str, Any]) -> CurveAxes:
    """The y scale and x meaning of ``spec``'s curve under the options ``settings``.

    ``softmax`` turns "logit" into "probability" (and back), ROAD's ``measure``
    names the scale, a string ``similarity`` is named in brackets. A spec
    without ``curve_scale`` gives ``"score"``; without ``curve_x``, ``"step"``.
    """
    scale = spec.curve_scale or "score"
    softmax = (
        _option(spec, settings, "softmax") if "softmax" in settings or spec.curve_scale else None
    )
    if isinstance(softmax, bool):
        scale = (
            scale.replace("logit", "probability")
            if softmax
            else scale.replace("probability", "logit")
        )
    measure = _option(spec, settings, "measure") if spec.name == "road" else None
    if isinstance(measure, str):
        scale = measure
    y_units = units_of(scale) if scale in _UNITS else ""
    similarity = _option(spec, settings, "similarity") if scale == "similarity" else None
    if isinstance(similarity, str):
        scale = f"similarity ({similarity})"
    x = spec.curve_x or "step"
    return CurveAxes(scale=scale, y_units=y_units, x=x, x_units=units_of(x) if spec.curve_x else "")
