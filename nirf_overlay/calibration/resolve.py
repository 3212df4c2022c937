"""Which calibration applies: the one decision, for every command and the viewer.

The rule, in order:

1. a profile the user names (``--calibration P.json``, the viewer's
   *Load calibration*) wins;
2. else the calibration that belongs to the source
   (:meth:`~nirf_overlay.sources.base.FrameSource.own_calibration`): the one
   recorded with a session, the phantom's own camera, the bundled sample's
   profile;
3. else the one the viewer was using before it switched sources
   (``carried``), if it fits the new source's frame size; if not, it is
   dropped with a note and sizes are reported in pixels;
4. else none.

Then single entries the user gives (``--dark``, ``--flat``, ``--mm-per-px``,
``--nir-transfer``) replace those of the chosen calibration.  A calibration
with a ``layout`` (a tower's profile) hands it to the source
(:meth:`~nirf_overlay.sources.base.FrameSource.take_layout`: a combined
source without a layout of the user's own cuts its frames with it), and the
result is checked against the source's frame size: a calibration the user
chose for another camera is refused in one line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np

from ..errors import CalibrationError
from .model import MAX_MM_PER_PX, Calibration, read_tiff
from .profile import load_profile
from .transfer import Transfer


class _CalibratedSource(Protocol):
    """What the resolver needs of a source (every FrameSource has both)."""

    info: object  # SourceInfo: .size is (W, H)

    def own_calibration(self) -> Optional[Calibration]: ...

    def take_layout(self, layout, origin: str) -> bool: ...


@dataclass(frozen=True)
class CalibrationRequest:
    """What the user asked for; every field may be empty.

    Attributes
    ----------
    profile : path of a calibration profile JSON the user chose
    dark : path of a dark frame, 16-bit TIFF (replaces the chosen one's)
    flat : path of a flat field, float TIFF (replaces the chosen one's)
    mm_per_px : millimetres per WL pixel (replaces the chosen one's)
    nir_transfer : a parsed :class:`~.transfer.Transfer` (replaces the chosen one's)
    carried : the calibration in use before a source switch (the viewer)
    """

    profile: Optional[str] = None
    dark: Optional[str] = None
    flat: Optional[str] = None
    mm_per_px: Optional[float] = None
    carried: Optional[Calibration] = None
    nir_transfer: Optional[Transfer] = None


@dataclass
class ResolvedCalibration:
    """The calibration that applies, where it came from, and any note for the user.

    Attributes
    ----------
    calibration : the :class:`Calibration`, or None (measure in pixels)
    origin : in words: ``"profile P.json"``, ``"recorded with the session"``,
        ``"the source's own"``, ``"carried over"``, ``"none"``
    note : a plain-words remark the user should see (a carried calibration
        dropped because it belongs to another frame size), else ""
    """

    calibration: Optional[Calibration]
    origin: str
    note: str = ""


def resolve_calibration(request: Optional[CalibrationRequest] = None,
                        source: Optional[_CalibratedSource] = None, *,
                        size: Optional[tuple[int, int]] = None) -> ResolvedCalibration:
    """Apply the rule in the module docstring.

    Parameters
    ----------
    request : what the user asked for (None = nothing)
    source : the open source (its own calibration and frame size), or None
    size : (W, H) to check against when there is no source

    Raises
    ------
    CalibrationError
        A profile or file that cannot be read, a bad ``mm_per_px``, or a
        calibration the user chose that belongs to another frame size.
    """
    request = request or CalibrationRequest()
    if size is None and source is not None:
        size = tuple(source.info.size)
    note = ""
    if request.profile:
        cal, origin = load_profile(request.profile), f"profile {request.profile}"
    else:
        cal = source.own_calibration() if source is not None else None
        origin = "the source's own"
        if cal is None and request.carried is not None:
            cal, origin = request.carried, "carried over"
            if size is not None:
                try:
                    cal.check_size(size)
                except CalibrationError as e:
                    cal, origin = None, "none"
                    note = f"calibration not used ({e}); measuring in pixels"
    if (request.dark or request.flat or request.mm_per_px is not None
            or request.nir_transfer is not None):
        cal = _with_entries(cal, request)
        origin = "given entries" if origin == "none" or cal is None else origin + " with given entries"
    if cal is None:
        return ResolvedCalibration(None, "none", note)
    if cal.layout is not None and source is not None:
        if source.take_layout(cal.layout, cal.source_path or origin):
            size = tuple(source.info.size)
    if size is not None:
        cal.check_size(size)
    return ResolvedCalibration(cal, origin, note)


def _with_entries(cal: Optional[Calibration], request: CalibrationRequest) -> Calibration:
    """A copy of ``cal`` (or a new Calibration) with the user's single entries."""
    cal = dataclasses.replace(cal) if cal is not None else Calibration()
    if request.dark:
        dark = read_tiff(request.dark, "dark frame")
        if dark.dtype != np.uint16:
            raise CalibrationError(f"{request.dark}: dark frame must be 16-bit, got {dark.dtype}")
        cal.dark = dark.astype(np.float32)
    if request.flat:
        flat = read_tiff(request.flat, "flat field", dtype=np.float32)
        if not np.all(np.isfinite(flat)) or flat.min() <= 0:
            raise CalibrationError(f"{request.flat}: flat field must be finite and positive")
        cal.flat = flat / np.float32(flat.mean())
    if request.mm_per_px is not None:
        if not (0 < request.mm_per_px < MAX_MM_PER_PX):
            raise CalibrationError(f"mm per pixel: {request.mm_per_px} is outside "
                                   f"0..{MAX_MM_PER_PX:g} mm")
        cal.mm_per_px = float(request.mm_per_px)
    if request.nir_transfer is not None:
        cal.nir_transfer = request.nir_transfer
    return cal
