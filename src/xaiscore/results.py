"""Deprecated location of :mod:`xaiscore.harness.results` (the results schema moved to the harness).

Kept so that ``from xaiscore.results import load_dataset`` keeps working; new code imports
:mod:`xaiscore.harness.results`.
"""

from xaiscore.harness.results import *  # noqa: F401,F403
from xaiscore.harness.results import __all__  # noqa: F401
