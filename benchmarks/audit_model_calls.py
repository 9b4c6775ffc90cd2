"""How much model work each drop-in class does against Quantus 0.6.0, at Quantus' defaults.

Usage::

    python benchmarks/audit_model_calls.py                 # every class, B=4, 1x32x32, small CNN
    python benchmarks/audit_model_calls.py --classes SensitivityN ROAD
    python benchmarks/audit_model_calls.py --bench-settings   # the settings of bench_quantus_compat.py

For every class, ``quantus.<Class>(disable_warnings=True)`` and ``quantus_compat.<Class>(...)``
run on the same inputs (``quantus.explain`` Saliency for the re-explaining classes; only what a
class cannot run without is set: ``num_classes=10`` for RandomLogit, the quadrant flags of Focus),
and global ``nn.Module`` hooks count the inputs and the calls that reach the model at the top
level (explanations included: a Saliency explanation is one model input). The goal (issue 23):
no drop-in class above 1.2x Quantus' model inputs. 1 x 32 x 32 inputs so that Quantus' default
``TopKIntersection(k=1000)`` fits. Quantus draws its randomness from numpy's global generator and
both sides are seeded, so the counts are reproducible.
"""  # noqa: E501

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import print_table  # noqa: E402
from bench_quantus_compat import OURS_ONLY, call, inputs, settings  # noqa: E402

from xaiscore import quantus_compat as qc  # noqa: E402

#: What a class cannot run without on these inputs (both sides).
REQUIRED = {"RandomLogit": {"num_classes": 10}}
#: Drop-in classes whose model work is documented to differ from Quantus' (class -> reason).
DOCUMENTED: dict[str, str] = {}


class Counter:
    """Top-level model inputs and calls while :meth:`counting` is active."""

    def __init__(self) -> None:
        self.inputs = 0
        self.calls = 0
        self._depth = 0

    def _pre(self, module: torch.nn.Module, args: tuple) -> None:
        if self._depth == 0 and args and isinstance(args[0], torch.Tensor):
            self.inputs += args[0].shape[0]
            self.calls += 1
        self._depth += 1

    def _post(self, module: torch.nn.Module, args: tuple, output: Any) -> None:
        self._depth = max(0, self._depth - 1)

    @contextmanager
    def counting(self) -> Iterator[Counter]:
        hooks = torch.nn.modules.module
        handles = [hooks.register_module_forward_pre_hook(self._pre),
                   hooks.register_module_forward_hook(self._post, always_call=True)]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()


def count(run: Callable[[], Any]) -> tuple[int, int]:
    counter = Counter()
    with counter.counting():
        run()
    return counter.inputs, counter.calls


def audit(names: list[str], data: dict[str, Any], bench_settings: bool,
          size: int) -> list[dict[str, object]]:
    import quantus

    table = settings(size, quick=False)
    rows = []
    for name in names:
        init = dict(table[name][0]) if bench_settings else dict(REQUIRED.get(name, {}))
        init["disable_warnings"] = True
        ours_extra = OURS_ONLY.get(name, {}) if bench_settings else {}
        if "seed" in _parameters(getattr(qc, name)):
            ours_extra = {"seed": 0, **ours_extra}
        np.random.seed(0)
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = count(lambda: call(getattr(quantus, name)(**init), name, data))
            ours = count(lambda: call(getattr(qc, name)(**init, **ours_extra), name, data))
        ratio = ours[0] / theirs[0] if theirs[0] else (float("nan") if ours[0] else 1.0)
        rows.append({"class": name, "quantus inputs": theirs[0], "ours inputs": ours[0],
                     "ratio": ratio,
                     "quantus calls": theirs[1], "ours calls": ours[1],
                     "within 1.2x": "yes" if ratio <= 1.2 or ours[0] == theirs[0] else "NO",
                     "note": DOCUMENTED.get(name, "")})
    return rows


def _parameters(cls: type) -> set[str]:
    import inspect

    return set(inspect.signature(cls.__init__).parameters)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", nargs="*", default=None)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--bench-settings", action="store_true",
                        help="the settings of bench_quantus_compat.py instead of Quantus' defaults")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if not hasattr(np, "trapz"):  # Quantus 0.6.0 calls np.trapz, gone in numpy 2.4
        np.trapz = np.trapezoid
    names = args.classes or list(settings(args.size, quick=False))
    data = inputs(args.batch, args.size)
    what = "bench_quantus_compat.py's settings" if args.bench_settings else "Quantus' defaults"
    print(
        f"Model inputs (top-level calls) per class at {what}: B={args.batch}, "
        f"1x{args.size}x{args.size}, small CNN, quantus.explain Saliency")
    rows = audit(names, data, args.bench_settings, args.size)
    print_table(rows, ["class", "quantus inputs", "ours inputs", "ratio", "quantus calls",
                       "ours calls",
                       "within 1.2x", "note"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
