"""nirf-overlay: real-time ICG near-infrared fluorescence overlay for liver surgery.

The core (sources, processing, calibration, recording, settings, engine) never
imports Qt; only :mod:`nirf_overlay.gui` does.
"""

__version__ = "0.1.0"

import os as _os

# numba's OpenMP worker threads (libgomp) spin for ~300 000 pause loops (about
# 7 ms here) after every parallel pass before they sleep.  In the live viewer
# that spinning takes the core the rim-analysis thread needs, between frames;
# 10 000 still bridges the passes that follow each other directly.  Measured
# on the 1080p60 phantom, 2 cores: display path median 5.3 -> 4.4 ms, p99 8-57
# -> 5-9 ms; every-frame timing unchanged.  Read when numba first loads
# libgomp, so it must be set before any kernel runs; a user's own value wins.
_os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from .errors import NirfError, SourceError
from .frame import FramePair, SourceInfo, SourceStats

__all__ = [
    "__version__",
    "NirfError",
    "SourceError",
    "FramePair",
    "SourceInfo",
    "SourceStats",
]
