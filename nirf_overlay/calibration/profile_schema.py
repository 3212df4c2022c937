"""What a calibration profile's JSON entries must be: its keys, its schema version (and how
an older one is read), and the checks of every entry that is not an image file.

:mod:`.profile` reads and writes the files (the JSON and the images it names) and calls
these on the parsed document; every check raises the error ``bad(key, problem)`` gives it,
so each message names the profile and the entry.  Schema 1 (before ``layout``,
``ignore_rects`` and ``nir_transfer``) is read as schema 2 with none of them
(:func:`migrate`); a profile is always written in the current schema.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .model import MAX_MM_PER_PX, Layout, overlap_px, rect_problem

SCHEMA_VERSION = 2

# Keys every profile carries (null where unknown); order is the order written.
KEYS = (
    "schema_version", "system", "created", "notes", "frame_size", "dark", "flat", "hot_pixels",
    "homography_wl_to_nir", "mm_per_px", "working_distance_mm", "exposure_ref_ms", "gain_ref",
    "intrinsics", "distortion", "layout", "ignore_rects", "nir_transfer",
)
REQUIRED = ("schema_version", "frame_size")

# pixels: the sides a frame_size may have (a 16 px or 16k px side is no camera)
_FRAME_SIDE_PX = (16, 16384)
# upper limits of the scalar entries; beyond them the entry is in another
# unit or a typo: ms (100 s), sensor gain, mm (10 m)
_MAX_EXPOSURE_MS = 1e5
_MAX_GAIN = 1e6
_MAX_WORKING_DISTANCE_MM = 1e4
# coefficient counts OpenCV's distortion models take
_DISTORTION_LENGTHS = (4, 5, 8, 12, 14)
# regions to ignore a profile may list (a few labels and logos, not a mask)
_MAX_IGNORE_RECTS = 64


def migrate(doc: dict) -> dict:
    """A schema-1 document as schema 2: no layout, no regions to ignore, transfer unknown."""
    version = doc.get("schema_version")
    if type(version) is int and version == 1:
        doc = dict(doc, schema_version=2)
        for key, value in (("layout", None), ("ignore_rects", []), ("nir_transfer", None)):
            doc.setdefault(key, value)
    return doc


def set_entries(cal, doc: dict, frame_size, bad) -> None:
    """Set ``cal``'s numbers, matrices and rectangles from ``doc``, each checked (the
    strings, image files and the transfer curve are read by :mod:`.profile`)."""
    h = doc.get("homography_wl_to_nir")
    if h is not None:
        cal.homography_wl_to_nir = homography_entry(h, bad)
    cal.mm_per_px = positive_entry(doc, "mm_per_px", bad, hi=MAX_MM_PER_PX)
    cal.exposure_ref_ms = positive_entry(doc, "exposure_ref_ms", bad, hi=_MAX_EXPOSURE_MS)
    cal.gain_ref = positive_entry(doc, "gain_ref", bad, hi=_MAX_GAIN)
    cal.extra["working_distance_mm"] = positive_entry(doc, "working_distance_mm", bad,
                                                      hi=_MAX_WORKING_DISTANCE_MM)
    cal.extra["intrinsics"] = intrinsics_entry(doc.get("intrinsics"), bad)
    cal.extra["distortion"] = distortion_entry(doc.get("distortion"), bad)
    cal.layout = layout_entry(doc.get("layout"), frame_size, bad)
    cal.ignore_rects = ignore_rects_entry(doc.get("ignore_rects"), frame_size, bad)


def layout_problem(wl_rect, nir_rect, bounds=None) -> tuple[str, str]:
    """``(which, problem)`` if two insets are not a usable layout, else ``("", "")``.

    ``which`` is ``"wl_rect"`` or ``"nir_rect"``; ``bounds`` the combined
    frame's (W, H) when known.  The insets must not overlap: a tower draws
    each view in its own rectangle.
    """
    for which, rect in (("wl_rect", wl_rect), ("nir_rect", nir_rect)):
        problem = rect_problem(rect, bounds)
        if problem:
            return which, problem
    shared = overlap_px(tuple(wl_rect), tuple(nir_rect))
    if shared:
        return "nir_rect", (f"overlaps the WL inset by {shared} px; the insets must not overlap "
                            f"(for a picture-in-picture view give the part of the WL view beside it)")
    return "", ""


def layout_entry(value, frame_size, bad) -> Optional[Layout]:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"wl_rect", "nir_rect"}:
        raise bad("layout", 'expected {"wl_rect": [x, y, w, h], "nir_rect": [x, y, w, h]} or null')
    which, problem = layout_problem(value["wl_rect"], value["nir_rect"])
    if problem:
        raise bad(f"layout: {which}", problem)
    layout = Layout(tuple(int(v) for v in value["wl_rect"]),
                    tuple(int(v) for v in value["nir_rect"]))
    if frame_size is not None and layout.wl_size != tuple(frame_size):
        raise bad("layout: wl_rect", f"the WL inset is {layout.wl_size[0]}x{layout.wl_size[1]} "
                                     f"but frame_size is {frame_size[0]}x{frame_size[1]} "
                                     f"(frame_size is the WL inset's size)")
    return layout


def ignore_rects_entry(value, frame_size, bad) -> list:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > _MAX_IGNORE_RECTS:
        raise bad("ignore_rects", f"expected a list of at most {_MAX_IGNORE_RECTS} [x, y, w, h]")
    rects = []
    for i, rect in enumerate(value):
        problem = rect_problem(rect, frame_size)
        if problem:
            raise bad(f"ignore_rects[{i}]", problem + " (WL-inset pixels)")
        rects.append(tuple(int(v) for v in rect))
    return rects


def check_header(doc, bad) -> Optional[tuple[int, int]]:
    """The schema version checked; the frame size (W, H) or None.

    A key this version does not know is refused, as settings files refuse unknown
    fields: within one schema version it is a typo (``mm_per_pixel`` read as no
    scale at all), and a newer writer says so with a newer ``schema_version``."""
    for key in REQUIRED:
        if key not in doc:
            raise bad(key, "missing")
    unknown = [k for k in doc if k not in KEYS]
    if unknown:
        raise bad(unknown[0], f"unknown key (a profile has {', '.join(KEYS)})")
    version = doc["schema_version"]
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise bad("schema_version", f"{version!r} is not supported (this version reads {SCHEMA_VERSION})")
    frame_size = doc["frame_size"]
    if frame_size is None:
        return None
    lo, hi = _FRAME_SIDE_PX
    if (not isinstance(frame_size, list) or len(frame_size) != 2
            or not all(is_int(v) and lo <= v <= hi for v in frame_size)):
        raise bad("frame_size", f"{frame_size!r} is not [width, height] in pixels")
    return int(frame_size[0]), int(frame_size[1])


def string_entry(doc, key, bad) -> str:
    value = doc.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad(key, f"expected a string, got {type(value).__name__}")
    return value


def intrinsics_entry(value, bad) -> Optional[np.ndarray]:
    if value is None:
        return None
    k = matrix_entry(value, (3, 3), "intrinsics", bad)
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise bad("intrinsics", "focal lengths must be positive")
    return k


def distortion_entry(value, bad) -> Optional[np.ndarray]:
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) not in _DISTORTION_LENGTHS
            or not all(is_number(v) for v in value)):
        raise bad("distortion", "expected a list of 4, 5, 8, 12 or 14 numbers (OpenCV order)")
    return np.asarray(value, dtype=np.float64)


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def matrix_entry(value, shape, key, bad) -> np.ndarray:
    ok = (isinstance(value, list) and len(value) == shape[0]
          and all(isinstance(r, list) and len(r) == shape[1] for r in value)
          and all(is_number(v) for r in value for v in r))
    if not ok:
        raise bad(key, f"expected a {shape[0]}x{shape[1]} matrix of finite numbers")
    return np.asarray(value, dtype=np.float64)


def homography_entry(value, bad) -> np.ndarray:
    h = matrix_entry(value, (3, 3), "homography_wl_to_nir", bad)
    if abs(h[2, 2]) < 1e-12:
        raise bad("homography_wl_to_nir", "H[2][2] is 0 (not a usable homography)")
    h = h / h[2, 2]
    det = float(np.linalg.det(h[:2, :2]))
    # WL and NIR see the same field through the same optics: an area scale
    # outside 1/1000..1000 means the entry is garbage (another unit, a typo).
    # A mirrored map (det < 0) is allowed: beam splitters can flip one channel.
    if not (1e-3 < abs(det) < 1e3):
        raise bad("homography_wl_to_nir", f"singular or degenerate (det of the linear part {det:.3g})")
    return h


def positive_entry(doc, key, bad, *, hi) -> Optional[float]:
    value = doc.get(key)
    if value is None:
        return None
    if not is_number(value):
        raise bad(key, f"expected a number or null, got {value!r}")
    if not (0 < value < hi):
        raise bad(key, f"{value} is outside (0, {hi:g})")
    return float(value)
