"""Calibration: dark frame, flat field, WL-to-NIR homography, mm per pixel.

:class:`Calibration` is what the pipeline consumes.  Profiles (JSON plus TIFF
files beside it) are read and written by :mod:`.profile`; the builders that
make them from captured frames live in :mod:`.builders`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import CalibrationError


@dataclass
class Calibration:
    """Everything the pipeline needs to turn raw counts into comparable numbers.

    Attributes
    ----------
    dark : (H, W) float32 counts or None
        Mean frame with the light off; subtracted from NIR.
    flat : (H, W) float32, mean 1, or None
        Relative sensitivity (vignetting); NIR is divided by it.
    homography_wl_to_nir : (3, 3) float64 or None
        Maps WL pixel coordinates to NIR pixel coordinates. None = identity.
    mm_per_px : float or None
        Millimetres per WL pixel at the working distance. None = report pixels.
    frame_size : (W, H) or None
    exposure_ref_ms, gain_ref : the exposure and gain the flat was taken at.
    """

    dark: Optional[np.ndarray] = None
    flat: Optional[np.ndarray] = None
    homography_wl_to_nir: Optional[np.ndarray] = None
    mm_per_px: Optional[float] = None
    frame_size: Optional[tuple[int, int]] = None
    exposure_ref_ms: Optional[float] = None
    gain_ref: Optional[float] = None
    hot_pixels: Optional[np.ndarray] = None
    system: str = ""
    notes: str = ""
    source_path: Optional[str] = None
    extra: dict = field(default_factory=dict)

    def check_size(self, size: tuple[int, int], what: str = "source") -> None:
        """Refuse a calibration made for another frame size."""
        w, h = size
        for name, arr in (("dark", self.dark), ("flat", self.flat)):
            if arr is not None and arr.shape[:2] != (h, w):
                where = self.source_path or "calibration"
                raise CalibrationError(
                    f"{where}: {name} is {arr.shape[1]}x{arr.shape[0]} but the {what} is {w}x{h}"
                )
        if self.frame_size is not None and tuple(self.frame_size) != (w, h):
            where = self.source_path or "calibration"
            fw, fh = self.frame_size
            raise CalibrationError(f"{where}: frame_size is {fw}x{fh} but the {what} is {w}x{h}")


def read_tiff(path: str, what: str, *, dtype=None) -> np.ndarray:
    """Read a single-plane TIFF or raise a one-line CalibrationError."""
    import os

    import tifffile

    if not os.path.exists(path):
        raise CalibrationError(f"{path}: no such {what} file")
    try:
        arr = tifffile.imread(path)
    except Exception as e:  # tifffile raises many types for corrupt files
        raise CalibrationError(f"{path}: not a readable TIFF {what} ({e.__class__.__name__})") from None
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise CalibrationError(f"{path}: {what} must be a single-channel image, got shape {arr.shape}")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    return arr


def default_calibration(source):
    """The calibration a source brings when the user gives none.

    A recorded session replays with the calibration that was in force when it
    was recorded; the phantom knows its own camera.  Anything else has none.
    """
    recorded = getattr(source, "recorded_calibration", None)
    if recorded is not None:
        return recorded
    phantom = getattr(source, "phantom", None)
    if phantom is not None:
        return phantom.calibration()
    return None


def calibration_from_args(args, size=None) -> Optional[Calibration]:
    """Combine ``--calibration``, ``--dark``, ``--flat`` and ``--mm-per-px``."""
    cal = None
    if getattr(args, "calibration", None):
        from .profile import load_profile

        cal = load_profile(args.calibration)
    if getattr(args, "dark", None) or getattr(args, "flat", None) or getattr(args, "mm_per_px", None):
        cal = cal or Calibration()
        if args.dark:
            dark = read_tiff(args.dark, "dark frame")
            if dark.dtype != np.uint16:
                raise CalibrationError(f"{args.dark}: dark frame must be 16-bit, got {dark.dtype}")
            cal.dark = dark.astype(np.float32)
        if args.flat:
            flat = read_tiff(args.flat, "flat field", dtype=np.float32)
            if not np.all(np.isfinite(flat)) or flat.min() <= 0:
                raise CalibrationError(f"{args.flat}: flat field must be finite and positive")
            cal.flat = flat / np.float32(flat.mean())
        if args.mm_per_px is not None:
            if not (0 < args.mm_per_px < 10):
                raise CalibrationError(f"--mm-per-px: {args.mm_per_px} is outside 0..10 mm")
            cal.mm_per_px = float(args.mm_per_px)
    if cal is not None and size is not None:
        cal.check_size(size)
    return cal


# Public API (imported last: these modules import Calibration from here).
from .builders import build_dark, build_flat, build_registration  # noqa: E402
from .profile import load_profile, save_profile  # noqa: E402

__all__ = [
    "Calibration", "calibration_from_args", "read_tiff", "load_profile", "save_profile",
    "build_dark", "build_flat", "build_registration",
]
