"""Former path of :mod:`xaiscore.functional.faithfulness.sufficiency`, kept importable.

Sufficiency now lives in the faithfulness package; this module re-exports it unchanged.
"""

from __future__ import annotations

from xaiscore.functional.faithfulness.sufficiency import sufficiency

__all__ = ["sufficiency"]
