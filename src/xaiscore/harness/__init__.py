"""The harness: score explanation methods on (medical) bounding-box datasets end to end.

Which explanation method points at the pathology, stays faithful to the model
and survives the sanity checks? The harness answers that for a dataset, a
model and a set of methods: it explains every sample, scores every metric the
registry (:mod:`xaiscore.specs`) holds whose inputs it can supply, writes one
:class:`xarray.Dataset` (netCDF, resumable) and a static HTML report.

* :mod:`xaiscore.harness.data` -- sample records, readers, the synthetic dataset;
* :func:`evaluate` -- the runner (Python API); :func:`run_config` -- the same
  from a TOML/YAML config; :func:`run_demo` -- the offline demo;
* :mod:`xaiscore.harness.summary` -- bootstrap means, win rates, rank agreement;
* :mod:`xaiscore.harness.report` -- the HTML report;
* ``xaiscore`` -- the command line (:mod:`xaiscore.harness.cli`).

Heavy dependencies (xarray, matplotlib, captum) are imported on first use:
importing this package is cheap.

Example:
    >>> import xaiscore.harness as harness
    >>> callable(harness.evaluate)
    True
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "evaluate",
    "run_config",
    "run_demo",
    "load_config",
    "RunConfig",
    "ConfigError",
    "SmallCNN",
    "train_model",
    "load_model",
]

_EXPORTS = {
    "evaluate": "xaiscore.harness.runner",
    "run_config": "xaiscore.harness.runner",
    "run_demo": "xaiscore.harness.demo",
    "load_config": "xaiscore.harness.config",
    "RunConfig": "xaiscore.harness.config",
    "ConfigError": "xaiscore.harness.config",
    "SmallCNN": "xaiscore.harness.models",
    "train_model": "xaiscore.harness.models",
    "load_model": "xaiscore.harness.models",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
