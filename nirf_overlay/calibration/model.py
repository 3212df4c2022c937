"""The calibration the pipeline consumes, reading its image files, and the
refusal a caller's option can fix."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import CalibrationError

#: largest ``mm_per_px`` accepted (a 10 mm pixel is no laparoscope)
MAX_MM_PER_PX = 10.0

#: a rectangle in pixels: (x, y, width, height), x and y of its top-left pixel
Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class Layout:
    """Where a combined (tower) frame carries each view.

    ``wl_rect`` and ``nir_rect`` are ``(x, y, w, h)`` in pixels of the
    combined frame.  The NIR inset may be larger or smaller than the WL one
    (an enlarged NIR view): it is resized to the WL inset's size, so masks,
    metrics and the overlay are in WL-inset pixels as everywhere else, and a
    profile's ``frame_size`` is the WL inset's ``(w, h)``.
    """

    wl_rect: Rect
    nir_rect: Rect

    @property
    def wl_size(self) -> tuple[int, int]:
        """(W, H) of the WL inset: the size of every frame the pipeline sees."""
        return int(self.wl_rect[2]), int(self.wl_rect[3])

    def to_dict(self) -> dict:
        return {"wl_rect": list(self.wl_rect), "nir_rect": list(self.nir_rect)}


def rect_problem(rect, bounds: Optional[tuple[int, int]] = None) -> str:
    """Why ``rect`` is not a usable ``(x, y, w, h)`` inside ``bounds`` (W, H); "" if it is."""
    if (not isinstance(rect, (list, tuple)) or len(rect) != 4
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in rect)):
        return f"{_show(rect)} is not [x, y, w, h] in whole pixels"
    x, y, w, h = (int(v) for v in rect)
    if w <= 0 or h <= 0:
        return f"{_show(rect)} is empty (width and height must be at least 1 px)"
    if x < 0 or y < 0:
        return f"{_show(rect)} starts outside the frame (x and y must be 0 or more)"
    if bounds is not None and (x + w > bounds[0] or y + h > bounds[1]):
        return f"{_show(rect)} reaches past the {bounds[0]}x{bounds[1]} frame"
    return ""


def overlap_px(a: Rect, b: Rect) -> int:
    """Pixels two rectangles share."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h)


def _show(rect) -> str:
    if isinstance(rect, (list, tuple)):
        return "[" + ", ".join(str(v) for v in rect) + "]"
    return repr(rect)


class CalibrationOptionError(CalibrationError):
    """A refusal whose fix is one of the call's options.

    The message names the input in the user's words; ``option`` is the
    keyword of the builder call that sets it (``"board"``, ``"min_poses"``,
    ...), so a front end can add how its user sets that option (the CLI
    adds its flag, the dialog already shows the control).
    """

    def __init__(self, message: str, *, option: str):
        super().__init__(message)
        self.option = option


class OptionWarning(str):
    """A builder's warning (a ``warnings`` item) whose fix is one of the call's options.

    A plain string everywhere a warning is shown; ``option`` as in
    :class:`CalibrationOptionError`, so the CLI adds its flag the same way.
    """

    option: str

    def __new__(cls, message: str, *, option: str):
        self = super().__new__(cls, message)
        self.option = option
        return self


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
    layout : :class:`Layout` or None
        Where a combined (tower) frame carries WL and NIR; a ``--combined``
        source without ``--layout`` takes it from the calibration that applies.
    ignore_rects : list of (x, y, w, h) in WL(-inset) pixels
        On-screen text and graphics: neither fluorescence nor background.
    nir_transfer : :class:`~.transfer.Transfer` or None
        How the NIR is encoded (``linear``, ``gamma:G``, ``srgb``,
        ``lut:FILE.csv``; :func:`~.transfer.parse_transfer`); None = not known.
    """

    dark: Optional[np.ndarray] = None
    flat: Optional[np.ndarray] = None
    homography_wl_to_nir: Optional[np.ndarray] = None
    mm_per_px: Optional[float] = None
    frame_size: Optional[tuple[int, int]] = None
    exposure_ref_ms: Optional[float] = None
    gain_ref: Optional[float] = None
    hot_pixels: Optional[np.ndarray] = None
    layout: Optional[Layout] = None
    ignore_rects: list = field(default_factory=list)
    nir_transfer: Optional[object] = None  # a transfer.Transfer
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
