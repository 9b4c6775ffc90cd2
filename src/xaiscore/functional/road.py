"""Former path of :mod:`xaiscore.functional.faithfulness.road`, kept importable.

ROAD now lives in the faithfulness package; this module re-exports it and its constants unchanged.
"""

from __future__ import annotations

from xaiscore.functional.faithfulness.road import (
    QUANTUS_ROAD_PERCENTAGES,
    ROAD_PERCENTAGES,
    Measure,  # noqa: F401 (the type of `measure`, importable from here as before)
    road,
)

__all__ = ["road", "ROAD_PERCENTAGES", "QUANTUS_ROAD_PERCENTAGES"]
