"""How many examples each fuzz test draws per metric, from the loaded hypothesis profile."""

from __future__ import annotations

import os

from hypothesis import settings

#: ``ci`` (the default, derandomized): a handful per metric; ``thorough``: a tenth of its examples.
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
EXAMPLES = 4 if PROFILE == "ci" else max(4, settings.default.max_examples // 10)


def fuzz_settings(scale: float = 1.0) -> settings:
    """Settings for one fuzz test: the profile's, with ``EXAMPLES * scale`` examples."""
    return settings(max_examples=max(1, round(EXAMPLES * scale)))
