"""The metric-class tests need torchmetrics (the ``metrics`` extra); without it, no collection."""

import importlib.util

if (
    importlib.util.find_spec("torchmetrics") is None
):  # pragma: no cover - CI installs the test extra
    collect_ignore_glob = ["test_*.py"]
