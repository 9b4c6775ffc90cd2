"""The ``xaiscore`` command line (also ``python -m xaiscore``).

Commands::

    xaiscore demo [--volumes] [--out DIR] [--samples N] [--size PX] [--device DEV] [--overwrite] [--print-config]
    xaiscore run CONFIG [--out DIR] [--device DEV] [--overwrite]
    xaiscore report RESULTS [--out DIR] [--win-metric NAME]
    xaiscore metrics [--family NAME]

``demo`` trains a small CNN on synthetic chest radiographs, explains them with
several methods, scores every registered metric, and writes ``results.nc``
and ``report.html``; ``run`` does the same for a TOML/YAML config (also under
``torchrun --nproc_per_node=N``); ``report`` rebuilds the report from a results
file or run folder; ``metrics`` lists the registry.

Only this module prints. Input errors (a bad config, a missing file) end with
a one-line message on stderr and exit status 2.

Example:
    >>> main(["metrics", "--family", "localization"])  # doctest: +ELLIPSIS
    name ...
    pointing_game ...
    0
"""  # noqa: E501

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xaiscore._checks import OptionError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from xaiscore._version import __version__

    parser = argparse.ArgumentParser(
        prog="xaiscore",
        description=(
            "Score attribution maps: which explanation method points at the pathology, stays "
            "faithful to the model, and survives the sanity checks?"
        ),
    )
    parser.add_argument("--version", action="version", version=f"xaiscore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo",
                               help="offline demo: synthetic data, train, explain, score, report")
    demo.add_argument("--out", default="xaiscore-demo",
                      help="run folder (default: ./xaiscore-demo)")
    demo.add_argument("--samples", type=int, default=None,
                      help="evaluation samples (default: 32; volumes: 8)")
    demo.add_argument("--size", type=int, default=None,
                      help="image side in pixels (default: 32; volumes: 24)")
    demo.add_argument(
        "--volumes",
        action="store_true",
        help=(
            "the 3-D demo: synthetic CT-like volumes and a 3-D CNN (xaiscore.harness.demo_volumes)"
        ),
    )
    demo.add_argument("--seed", type=int, default=0,
                      help="seed of data, training and metrics (default: 0)")
    demo.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto (default: cpu)")
    demo.add_argument("--print-config", action="store_true",
                      help="print the demo config as YAML (a start for `xaiscore run`) and exit")
    _common(demo)

    run = commands.add_parser("run", help="run a TOML/YAML config")
    run.add_argument("config", help="the config file (.toml, .yaml, .yml)")
    run.add_argument("--out", help="run folder (overrides `out` in the config)")
    run.add_argument("--device", help="overrides `device` in the config")
    _common(run)

    report = commands.add_parser("report",
                                 help="(re)write the HTML report of a results file or run folder")
    report.add_argument("results", help="results.nc, or the run folder holding it")
    report.add_argument("--out", help="where to write report.html (default: next to the results)")
    report.add_argument("--win-metric", help="metric of the win-rate table")
    report.add_argument("--no-progress", action="store_true", help="no progress bar")

    metrics = commands.add_parser("metrics", help="list the registered metrics")
    metrics.add_argument("--family", help="only this family")
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="start over instead of resuming in the run folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _print_summary(ds: Any, timing: dict[str, Any]) -> None:
    """The run's summary (stdout) and warnings (stderr): :mod:`xaiscore.harness.console`."""
    from xaiscore.harness.console import summary_lines

    out, warnings = summary_lines(ds, timing=timing)
    for line in warnings:
        print(line, file=sys.stderr)
    for line in out:
        print(line)


def _print_skipped_samples(ds: Any) -> None:
    """Count the dataset rows and samples left out under ``on_error="skip"`` (in the results)."""
    import json

    skipped = json.loads(ds.attrs.get("skipped_samples", "[]"))
    if not skipped:
        return
    print(
        f"{len(skipped)} dataset row(s) or sample(s) skipped (on_error = 'skip'); each is listed "
        "with its file, row and reason in results.nc (attribute `skipped_samples`), e.g.:",
        file=sys.stderr,
    )
    for entry in skipped[:3]:
        row = "" if entry.get("row") is None else f", row {entry['row']}"
        print(f"  {entry.get('file') or '<data>'}{row}: {entry.get('reason')}", file=sys.stderr)


def _run(config: Any, args: argparse.Namespace) -> int:
    from xaiscore.harness.runner import run_config

    timing: dict[str, Any] = {}
    ds = run_config(config, progress=not args.no_progress, resume=not args.overwrite, timing=timing)
    if ds is None:  # a worker rank of a distributed run
        return 0
    _print_summary(ds, timing)
    _print_skipped_samples(ds)
    out = Path(config.out).resolve()
    print(f"Results: {out / 'results.nc'}")
    if config.report:
        print(f"Report:  {out / 'report.html'}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.volumes:
        from xaiscore.harness.demo_volumes import volume_demo_config as demo_config
        from xaiscore.harness.demo_volumes import volume_demo_raw_config as demo_raw_config

        args.samples, args.size = args.samples or 8, args.size or 24
    else:
        from xaiscore.harness.demo import demo_config, demo_raw_config

        args.samples, args.size = args.samples or 32, args.size or 32

    if args.print_config:
        import yaml

        raw = demo_raw_config(out=args.out, n=args.samples, size=args.size, device=args.device,
                              seed=args.seed)
        print(yaml.safe_dump(raw, sort_keys=False), end="")
        return 0
    return _run(demo_config(out=args.out, n=args.samples, size=args.size, device=args.device,
                            seed=args.seed), args)


def _report(args: argparse.Namespace) -> int:
    from xaiscore.harness.report import write_report
    from xaiscore.harness.results import load_dataset

    path = Path(args.results)
    if path.is_dir():
        path = path / "results.nc"
    try:
        ds = load_dataset(path)
    except (OSError, ValueError) as error:  # not a netCDF file, or not one xarray can read
        first = str(error).splitlines()[0] if str(error) else ""
        raise OptionError(f"Expected a results file (netCDF) at {str(path)!r}, but it cannot be "
                          f"read ({type(error).__name__}: {first}).") from error
    _check_win_metric(ds, args.win_metric)
    out = Path(args.out) if args.out else path.parent
    report = write_report(ds, out, win_metric=args.win_metric, progress=not args.no_progress)
    print(f"Report: {report.resolve()}")
    return 0


def _check_win_metric(ds: Any, name: str | None) -> None:
    """Raise :class:`~xaiscore.OptionError` unless ``name`` is ``None`` or a scored metric with a
    direction."""
    import difflib

    from xaiscore.harness.results import higher_is_better, metric_variables

    if name is None:
        return
    ranked = [m for m in metric_variables(ds) if higher_is_better(ds, m) is not None]
    if name not in ranked:
        close = difflib.get_close_matches(name, ranked, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise OptionError(
            "Expected --win-metric to be a scored metric with a better direction, one of "
            f"{ranked}, "
            f"but got {name!r}.{hint}"
        )


def _metrics(args: argparse.Namespace) -> int:
    from xaiscore.specs import list_metrics

    rows = [("name", "family", "better", "needs", "output", "stochastic", "description")]
    for spec in list_metrics(family=args.family):
        better = {True: "higher", False: "lower", None: "-"}[spec.higher_is_better]
        rows.append((spec.name, spec.family, better, ",".join(sorted(spec.needs)), spec.output,
                     "yes" if spec.stochastic else "no", spec.description))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xaiscore`` command; returns the exit status."""
    import warnings

    from xaiscore._checks import XaiscoreError

    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            # captum announces its ReLU hooks on every GuidedBackprop/DeepLift call; nothing to act
            # on
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU",
                                    category=UserWarning)
            return _dispatch(args)
    except (XaiscoreError, FileNotFoundError) as error:
        print(f"xaiscore {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `xaiscore metrics | head`
        sys.stderr.close()
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        return _demo(args)
    if args.command == "run":
        from xaiscore.harness.config import load_config

        config = load_config(args.config).with_overrides(out=args.out, device=args.device)
        return _run(config, args)
    if args.command == "report":
        return _report(args)
    return _metrics(args)


if __name__ == "__main__":
    sys.exit(main())
