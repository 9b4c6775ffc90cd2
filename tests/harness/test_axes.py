"""Curve scales in the registry, resolved for a run's options; the report's SVG charts."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from xaiscore.harness.axes import curve_axes, units_of
from xaiscore.harness.svg import box_plot_svg, line_plot_svg, nice_ticks
from xaiscore.specs import get_metric, list_metrics


def test_every_curve_metric_states_its_scale_and_x():
    curves = [s for s in list_metrics() if s.output == "curve"]
    assert curves
    for spec in curves:
        assert spec.curve_scale and spec.curve_x, spec.name
    for spec in list_metrics():
        if spec.output != "curve":
            assert spec.curve_scale is None and spec.curve_x is None, spec.name


@pytest.mark.parametrize(
    ("metric", "settings", "scale", "x"),
    [
        ("deletion", {}, "probability", "fraction of features removed"),
        ("deletion", {"softmax": False}, "logit", "fraction of features removed"),
        ("pixel_flipping", {}, "logit", "fraction of features removed"),
        ("pixel_flipping", {"softmax": True}, "probability", "fraction of features removed"),
        ("region_perturbation", {}, "logit drop", "patches perturbed"),
        ("irof", {"softmax": False}, "relative logit", "segments removed"),
        ("road", {}, "accuracy", "fraction of features removed"),
        ("road", {"measure": "probability"}, "probability", "fraction of features removed"),
        ("mprt", {}, "similarity (spearman)", "layers randomized"),
        ("efficient_mprt", {}, "entropy", "layers randomized"),
    ],
)
def test_curve_axes_follow_the_options(metric, settings, scale, x):
    axes = curve_axes(get_metric(metric), settings)
    assert (axes.scale, axes.x) == (scale, x)


def test_units():
    assert units_of("fraction of features removed") == "1"
    assert units_of("logit") == "logit" and units_of("probability") == "1"
    assert units_of("patches perturbed") == "count"


def test_nice_ticks_cover_the_range():
    for low, high in [(0.03, 0.97), (-2.46, 4.9), (0.0, 0.0), (1e-5, 3e-5), (1.0, 4.0)]:
        ticks = nice_ticks(low, high)
        assert ticks[0] <= low and ticks[-1] >= high and len(ticks) <= 8
        assert np.all(np.diff(ticks) > 0)


def test_svg_charts_are_well_formed_and_labelled():
    box = box_plot_svg(
        [np.array([0.1, 0.4, np.nan, 0.9]), np.array([np.nan])],
        ["a", "b<&>"],
        x_label="score (higher is better)",
        title="m ↑",
    )
    root = ElementTree.fromstring(box)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "score (higher is better)" in texts and "b<&>" in texts and "no score" in texts
    line = line_plot_svg(
        np.linspace(0, 1, 5),
        [("a", np.linspace(1, 0, 5), np.full(5, 0.1)), ("b", np.full(5, np.nan), np.zeros(5))],
        x_label="fraction of features removed",
        y_label="probability",
        title="deletion ↓",
    )
    root = ElementTree.fromstring(line)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "fraction of features removed" in texts and "probability" in texts
    assert (
        len(list(root.iter("{http://www.w3.org/2000/svg}polyline"))) == 1
    )  # b has no finite value
