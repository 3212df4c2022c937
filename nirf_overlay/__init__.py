"""nirf-overlay: real-time ICG near-infrared fluorescence overlay for liver surgery.

The core (sources, processing, calibration, recording, settings, engine) never
imports Qt; only :mod:`nirf_overlay.gui` does.
"""

__version__ = "0.1.0"

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
