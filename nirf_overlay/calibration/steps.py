"""Adding a builder's result to a profile (shared by the CLI and the dialog).

Every step creates or updates a profile: it starts from an existing one (a
profile the user names, else the profile being written if it exists),
refuses it when it was made for another frame size, replaces only its own
entries, and saves.
"""

from __future__ import annotations

import os
from typing import Optional

from .model import Calibration, Layout
from .photometric import DarkResult, FlatResult
from .profile import load_profile
from .registration import Registration

__all__ = ["start_profile", "add_dark", "add_flat", "add_registration", "add_layout"]


def start_profile(out: str, base: Optional[str] = None, *, size=None) -> Calibration:
    """The profile a step updates.

    Parameters
    ----------
    out : str
        The profile to write; read first when it exists and ``base`` is None.
    base : str, optional
        Another profile to start from.
    size : (W, H), optional
        The calibration frames' size; a profile made for another size is
        refused with a :class:`~nirf_overlay.errors.CalibrationError` naming
        its ``frame_size``.
    """
    path = base or (out if os.path.exists(out) else None)
    cal = load_profile(path) if path else Calibration()
    if size is not None:
        cal.check_size(tuple(size), what="calibration source")
        cal.frame_size = (int(size[0]), int(size[1]))
    return cal


def add_dark(cal: Calibration, res: DarkResult) -> Calibration:
    """The dark frame and its hot pixels."""
    cal.dark = res.dark
    cal.hot_pixels = res.hot_pixels
    return cal


def add_flat(cal: Calibration, res: FlatResult, *, exposure_ms=None, gain=None) -> Calibration:
    """The flat and the exposure/gain it was taken at (the pipeline's reference)."""
    cal.flat = res.flat
    if exposure_ms is not None:
        cal.exposure_ref_ms = float(exposure_ms)
    if gain is not None:
        cal.gain_ref = float(gain)
    return cal


def add_registration(cal: Calibration, reg: Registration, *, working_distance_mm=None) -> Calibration:
    """The homography, mm per pixel (when measured) and the distance it holds at."""
    cal.homography_wl_to_nir = reg.homography_wl_to_nir
    if reg.mm_per_px is not None:
        cal.mm_per_px = float(reg.mm_per_px)
    if working_distance_mm is not None:
        cal.extra["working_distance_mm"] = float(working_distance_mm)
    return cal


def add_layout(cal: Calibration, wl_rect, nir_rect, ignore_rects=()) -> Calibration:
    """A tower's insets (combined-frame pixels) and the regions to ignore (WL-inset
    pixels); the profile's frame size becomes the WL inset's."""
    cal.layout = Layout(tuple(int(v) for v in wl_rect), tuple(int(v) for v in nir_rect))
    cal.ignore_rects = [tuple(int(v) for v in r) for r in ignore_rects]
    cal.frame_size = cal.layout.wl_size
    return cal
