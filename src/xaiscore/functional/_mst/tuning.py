"""The cost model that picks the search path of the k-NN spanning forest, and the window chunk size.

The modules read these at call time (``tuning.NAME``), so a test can force either path.
"""

# A dense ring scan costs about one pass over every pixel per lattice offset; the window search
# costs about this many pixel-pass equivalents per open point (measured on CPU).
WINDOW_COST_PER_POINT = 3000
# Image-sized passes of the near phase and the first rings (the alternative to a window-only
# search).
DENSE_PASSES = 100
# Candidate pairs handled at once by the window search (bounds its memory).
WINDOW_CHUNK = 1 << 22
