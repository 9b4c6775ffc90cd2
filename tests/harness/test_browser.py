"""report.html in headless Chromium: every image loads, no console error, fits 800 px.

Skipped when no Chromium is installed (Debian: ``apt-get install chromium``;
``.ci/run`` installs it when it can). A probe script is put in front of a copy
of the page; it records load errors and ``console.error`` calls, and after
the load event writes what it found into the DOM, which ``--dump-dom`` prints.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.harness.runner_fixtures import FAST_OPTIONS, tiny_dataset, tiny_model  # noqa: F401
from xaiscore.harness.report import write_report
from xaiscore.harness.runner import evaluate

BROWSER = next(
    (
        shutil.which(name)
        for name in ("chromium", "chromium-browser", "google-chrome")
        if shutil.which(name)
    ),
    None,
)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium installed (apt-get install chromium)"
)

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  var what = t && t !== window ? 'failed to load ' + (t.alt || t.tagName) : String(e.message);
  window.__errors.push(what);
}, true);
var __consoleError = console.error;
console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, ' '));
  __consoleError.apply(console, arguments);
};
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !i.complete || i.naturalWidth === 0; })
                     .map(function (i) { return i.alt; });
  var cell = document.querySelector('table.board td');
  var out = document.createElement('pre');
  out.id = '__probe';
  out.textContent = JSON.stringify({
    images: images.length, broken: broken, errors: window.__errors,
    svgs: document.querySelectorAll('svg').length,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    boardFont: cell ? parseFloat(getComputedStyle(cell).fontSize) : null});
  document.body.appendChild(out);
});
</script>"""


def probe(page, tmp_path, width):
    """Load ``page`` (HTML text) in headless Chromium at ``width`` px; the probe's findings."""
    copy = tmp_path / f"probe-{width}.html"
    copy.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    command = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--window-size={width},1000",
        "--virtual-time-budget=10000",
        "--dump-dom",
        copy.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    match = re.search(r'<pre id="__probe">([^<]*)</pre>', result.stdout)
    assert match, f"no probe output; stderr: {result.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture(scope="module")
def report_page(tiny_dataset, tiny_model, tmp_path_factory):  # noqa: F811
    ds = evaluate(
        tiny_dataset,
        tiny_model,
        methods=["Saliency", "random", "constant"],
        metrics=["pointing_game", "sparseness", "deletion", "faithfulness_estimate", "consistency",
                 "box_accuracy"],  # set-level: its tables must not widen the page either
        metric_options={**FAST_OPTIONS, "faithfulness_estimate": {"features_per_step": 0.25}},
        batch_size=8,
        n_examples=3,
    )
    out = tmp_path_factory.mktemp("report")
    return write_report(ds, out).read_text(encoding="utf-8")


@pytest.mark.parametrize("width", [800, 1400])
def test_every_image_loads_without_console_errors(report_page, tmp_path, width):
    found = probe(report_page, tmp_path, width)
    assert found["images"] == 3 * 4  # 3 examples x (image + 3 methods)
    assert found["broken"] == [] and found["errors"] == []
    # CD diagram, the deletion curve, four box plots (consistency is set-level: no distribution)
    assert found["svgs"] >= 1 + 1 + 4
    assert found["overflow"] <= 0  # wide tables scroll inside their box; the page does not
    assert found["boardFont"] >= 12


def test_the_probe_sees_a_broken_image_and_a_console_error(tmp_path):
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
        '<img alt="broken" src="data:image/png;base64,AAAA"><script>console.error("boom")</script>'
        "</body></html>"
    )
    found = probe(page, tmp_path, 800)
    assert found["broken"] == ["broken"]
    assert "boom" in found["errors"] and "failed to load broken" in found["errors"]
