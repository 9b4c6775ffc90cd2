"""xaiscore.functional and the registry import without torchmetrics; xaiscore.metrics says so."""

from __future__ import annotations

import subprocess
import sys

BLOCK = "import sys; sys.modules['torchmetrics'] = None\n"


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], capture_output=True, text=True, timeout=300
    )


def test_functional_and_specs_import_without_torchmetrics():
    done = run(
        "import xaiscore, xaiscore.functional, xaiscore.specs\n"
        "from xaiscore.functional import pointing_accuracy\n"
        "assert 'torchmetrics' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok')"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_metrics_import_error_names_the_extra():
    done = run("import xaiscore.metrics")
    assert done.returncode != 0
    assert (
        "xaiscore[metrics]" in done.stderr and "xaiscore.functional works without it" in done.stderr
    )
