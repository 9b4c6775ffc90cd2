"""Hypothesis strategies and data shared by the tests of ``xaiscore.stats``."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst

LEVELS = (-1.0, 0.0, 0.25, 0.5, 1.0, 2.0)

# Demšar (2006), Table 6: AUC of C4.5 with/without m and cf tuning on 14 UCI data sets
# (rows: data sets; columns: C4.5, C4.5+m, C4.5+cf, C4.5+m+cf). The table prints three decimals;
# the paper's ranks come from unrounded values, which split the printed tie 0.975 / 0.975 of
# the 13th row as ranks 2 (C4.5+cf) and 3 (C4.5+m+cf). The fourth digit added there
# reproduces that order and nothing else.
DEMSAR_METHODS = ("C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf")
DEMSAR_AUC = np.array([
    [0.763, 0.768, 0.771, 0.798],
    [0.599, 0.591, 0.590, 0.569],
    [0.954, 0.971, 0.968, 0.967],
    [0.628, 0.661, 0.654, 0.657],
    [0.882, 0.888, 0.886, 0.898],
    [0.936, 0.931, 0.916, 0.931],
    [0.661, 0.668, 0.609, 0.685],
    [0.583, 0.583, 0.563, 0.625],
    [0.775, 0.838, 0.866, 0.875],
    [1.000, 1.000, 1.000, 1.000],
    [0.940, 0.962, 0.965, 0.962],
    [0.619, 0.666, 0.614, 0.669],
    [0.972, 0.981, 0.9751, 0.9749],
    [0.957, 0.978, 0.946, 0.970],
])
# The ranks Table 6 prints next to each AUC (1 = best).
DEMSAR_RANKS = np.array([
    [4, 3, 2, 1], [1, 2, 3, 4], [4, 1, 2, 3], [4, 1, 3, 2], [4, 2, 3, 1], [1, 2.5, 4, 2.5],
    [3, 2, 4, 1], [2.5, 2.5, 4, 1], [4, 3, 2, 1], [2.5, 2.5, 2.5, 2.5], [4, 2.5, 1, 2.5],
    [3, 2, 4, 1], [4, 1, 2, 3], [3, 1, 4, 2],
])


@st.composite
def score_tables(draw, min_methods: int = 2, max_methods: int = 5, min_samples: int = 1,
                 max_samples: int = 30, nan: bool = True):
    """``(k, N)`` float64 scores: many ties (a few levels) or continuous values, some NaN."""
    k = draw(st.integers(min_methods, max_methods))
    n = draw(st.integers(min_samples, max_samples))
    if draw(st.booleans()):
        values = draw(npst.arrays(np.float64, (k, n), elements=st.sampled_from(LEVELS)))
    else:
        values = draw(npst.arrays(np.float64, (k, n),
                                  elements=st.floats(-10, 10, allow_nan=False, width=32)))
    if nan and draw(st.booleans()):
        holes = draw(npst.arrays(np.bool_, (k, n), elements=st.sampled_from([False] * 3 + [True])))
        values = np.where(holes, np.nan, values)
    return values
