"""Calibration: dark frame, flat field, WL-to-NIR homography, mm per pixel.

:class:`Calibration` (:mod:`.model`) is what the pipeline consumes.
:func:`resolve_calibration` (:mod:`.resolve`) is the one place that decides
which calibration applies.  Profiles (JSON plus TIFF files beside it) are
read and written by :mod:`.profile`; the builders that make them from
captured frames live in :mod:`.builders`.
"""

from .builders import build_dark, build_flat, build_registration
from .model import Calibration, read_tiff
from .profile import load_profile, save_profile
from .resolve import CalibrationRequest, ResolvedCalibration, resolve_calibration

__all__ = [
    "Calibration", "CalibrationRequest", "ResolvedCalibration", "resolve_calibration",
    "read_tiff", "load_profile", "save_profile", "build_dark", "build_flat", "build_registration",
]
