"""Calibration: dark frame, flat field, WL-to-NIR homography, mm per pixel.

:class:`Calibration` (:mod:`.model`) is what the pipeline consumes.
:func:`resolve_calibration` (:mod:`.resolve`) is the one place that decides
which calibration applies.  Profiles (JSON plus TIFF files beside it) are
read and written by :mod:`.profile`.  The builders that make the entries from
captured frames are split by idea: :mod:`.photometric` (dark frame, hot
pixels, flat field) and :mod:`.registration` (board corners, the WL-to-NIR
homography, mm per pixel); :mod:`.steps` adds a builder's result to a
profile; :mod:`.synthetic` renders targets with known truth.
"""

from .model import Calibration, CalibrationOptionError, read_tiff
from .photometric import build_dark, build_flat
from .profile import load_profile, save_profile
from .registration import build_registration
from .resolve import CalibrationRequest, ResolvedCalibration, resolve_calibration

__all__ = [
    "Calibration", "CalibrationRequest", "ResolvedCalibration", "resolve_calibration",
    "read_tiff", "load_profile", "save_profile", "build_dark", "build_flat", "build_registration",
    "CalibrationOptionError",
]
