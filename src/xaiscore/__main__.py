"""``python -m xaiscore``: the ``xaiscore`` command line (see :mod:`xaiscore.harness.cli`)."""

from __future__ import annotations

import sys

from xaiscore.harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
