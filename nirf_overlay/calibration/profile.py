"""Calibration profiles: one JSON file plus the image files it names.

Format (``schema_version`` 2)::

    {"schema_version": 2, "system": "...", "created": "2026-01-01T12:00:00+00:00",
     "notes": "", "frame_size": [W, H],
     "dark": "dark.tiff" | null,            # 16-bit TIFF, mean dark frame, raw counts
     "flat": "flat.tiff" | null,            # float32 TIFF, relative sensitivity, mean 1
     "hot_pixels": "hot_pixels.png" | null, # 8-bit PNG, nonzero = hot pixel
     "homography_wl_to_nir": [[3x3]] | null,  # WL pixel (x, y, 1) -> NIR pixel
     "mm_per_px": float | null,             # millimetres per WL pixel
     "working_distance_mm": float | null,
     "exposure_ref_ms": float | null, "gain_ref": float | null,
     "intrinsics": [[3x3]] | null, "distortion": [k1, k2, p1, p2(, k3...)] | null,
     "layout": {"wl_rect": [x, y, w, h], "nir_rect": [x, y, w, h]} | null,
                                            # insets of a combined (tower) frame, its pixels;
                                            # frame_size is then the WL inset's [w, h]
     "ignore_rects": [[x, y, w, h], ...],   # WL(-inset) pixels: on-screen text, logos
     "nir_transfer": "linear" | "gamma:G" | "srgb" | "lut:FILE.csv" | null}

Schema 1 (before ``layout``, ``ignore_rects`` and ``nir_transfer``) is read
as schema 2 with none of them (:func:`_migrate`); a profile is always written
in the current schema.

File names are relative to the JSON file.  Every entry is checked when the
profile is loaded; anything missing or malformed raises a one-line
:class:`~nirf_overlay.errors.CalibrationError` that names the profile and the
entry (``profile.json: dark: dark.tiff is float32, expected uint16``).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shutil
from typing import Any, Optional

import numpy as np

from ..errors import CalibrationError
from .model import MAX_MM_PER_PX, Calibration, Layout, overlap_px, rect_problem
from .transfer import Transfer, parse_transfer

__all__ = ["SCHEMA_VERSION", "load_profile", "save_profile"]

SCHEMA_VERSION = 2

# Keys every profile carries (null where unknown); order is the order written.
_KEYS = (
    "schema_version", "system", "created", "notes", "frame_size", "dark", "flat", "hot_pixels",
    "homography_wl_to_nir", "mm_per_px", "working_distance_mm", "exposure_ref_ms", "gain_ref",
    "intrinsics", "distortion", "layout", "ignore_rects", "nir_transfer",
)
_REQUIRED = ("schema_version", "frame_size")

# A flat field saved by something else may be normalised in float64 then
# rounded to float32; beyond this it was not normalised at all.
_FLAT_MEAN_TOLERANCE = 0.01
# pixels: the sides a frame_size may have (a 16 px or 16k px side is no camera)
_FRAME_SIDE_PX = (16, 16384)
# upper limits of the scalar entries; beyond them the entry is in another
# unit or a typo: ms (100 s), sensor gain, mm (10 m)
_MAX_EXPOSURE_MS = 1e5
_MAX_GAIN = 1e6
_MAX_WORKING_DISTANCE_MM = 1e4
# what each image entry must be: (dtype, in words)
_IMAGE_DTYPES = {
    "dark": (np.uint16, "uint16 (16-bit TIFF)"),
    "flat": (np.float32, "float32 (float TIFF)"),
    "hot_pixels": (np.uint8, "an 8-bit mask (nonzero = hot)"),
}
# coefficient counts OpenCV's distortion models take
_DISTORTION_LENGTHS = (4, 5, 8, 12, 14)
# regions to ignore a profile may list (a few labels and logos, not a mask)
_MAX_IGNORE_RECTS = 64


# -- loading -----------------------------------------------------------------
def load_profile(path: str) -> Calibration:
    """Read and validate a calibration profile.

    Parameters
    ----------
    path : str
        The profile's JSON file.

    Returns
    -------
    Calibration
        ``dark`` (H, W) float32 counts, ``flat`` (H, W) float32 mean 1,
        ``hot_pixels`` (H, W) bool, ``homography_wl_to_nir`` (3, 3) float64
        with ``H[2, 2] == 1``, ``mm_per_px`` float; ``frame_size`` (W, H).
        ``extra`` keeps ``created``, ``working_distance_mm``, ``intrinsics``,
        ``distortion``; a key this version does not know is refused.

    Raises
    ------
    CalibrationError
        A missing file, invalid JSON, an unknown schema version, or any entry
        missing, of the wrong type, dtype or size.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CalibrationError(f"{path}: no such calibration profile")
    if os.path.isdir(path):
        raise CalibrationError(f"{path}: is a directory, expected a profile JSON file")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise CalibrationError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CalibrationError(f"{path}: cannot be read ({e.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise CalibrationError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    return _from_document(doc, path)


def _from_document(doc: dict, path: str) -> Calibration:
    def bad(key, problem):
        return CalibrationError(f"{path}: {key}: {problem}")

    doc = _migrate(doc)
    frame_size = _header(doc, bad)
    cal = Calibration(frame_size=frame_size, source_path=path)
    cal.system, cal.notes = _string(doc, "system", bad), _string(doc, "notes", bad)
    cal.extra["created"] = _string(doc, "created", bad)

    base = os.path.dirname(os.path.abspath(path))
    shape = None if frame_size is None else (frame_size[1], frame_size[0])
    dark = _image(doc, "dark", base, shape, bad)
    if dark is not None:
        cal.dark = dark.astype(np.float32)
    flat = _image(doc, "flat", base, shape, bad)
    if flat is not None:
        cal.flat = _normalised_flat(flat, doc["flat"], bad)
    hot = _image(doc, "hot_pixels", base, shape, bad)
    if hot is not None:
        cal.hot_pixels = hot > 0

    h = doc.get("homography_wl_to_nir")
    if h is not None:
        cal.homography_wl_to_nir = _homography(h, bad)
    cal.mm_per_px = _positive(doc, "mm_per_px", bad, hi=MAX_MM_PER_PX)
    cal.exposure_ref_ms = _positive(doc, "exposure_ref_ms", bad, hi=_MAX_EXPOSURE_MS)
    cal.gain_ref = _positive(doc, "gain_ref", bad, hi=_MAX_GAIN)
    cal.extra["working_distance_mm"] = _positive(doc, "working_distance_mm", bad,
                                                 hi=_MAX_WORKING_DISTANCE_MM)
    cal.extra["intrinsics"] = _intrinsics(doc.get("intrinsics"), bad)
    cal.extra["distortion"] = _distortion(doc.get("distortion"), bad)
    cal.layout = _layout(doc.get("layout"), frame_size, bad)
    cal.ignore_rects = _ignore_rects(doc.get("ignore_rects"), frame_size, bad)
    cal.nir_transfer = _transfer(doc.get("nir_transfer"), base, path)
    return cal


def _migrate(doc: dict) -> dict:
    """A schema-1 document as schema 2: no layout, no regions to ignore, transfer unknown."""
    version = doc.get("schema_version")
    if type(version) is int and version == 1:
        doc = dict(doc, schema_version=2)
        for key, value in (("layout", None), ("ignore_rects", []), ("nir_transfer", None)):
            doc.setdefault(key, value)
    return doc


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


def _layout(value, frame_size, bad) -> Optional[Layout]:
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


def _ignore_rects(value, frame_size, bad) -> list:
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


def _transfer(value, base, path) -> Optional[Transfer]:
    if value is None:
        return None
    return parse_transfer(value, base=base, what=f"{path}: nir_transfer")


def _header(doc, bad) -> Optional[tuple[int, int]]:
    """The schema version checked; the frame size (W, H) or None.

    A key this version does not know is refused, as settings files refuse unknown
    fields: within one schema version it is a typo (``mm_per_pixel`` read as no
    scale at all), and a newer writer says so with a newer ``schema_version``."""
    for key in _REQUIRED:
        if key not in doc:
            raise bad(key, "missing")
    unknown = [k for k in doc if k not in _KEYS]
    if unknown:
        raise bad(unknown[0], f"unknown key (a profile has {', '.join(_KEYS)})")
    version = doc["schema_version"]
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise bad("schema_version", f"{version!r} is not supported (this version reads {SCHEMA_VERSION})")
    frame_size = doc["frame_size"]
    if frame_size is None:
        return None
    lo, hi = _FRAME_SIDE_PX
    if (not isinstance(frame_size, list) or len(frame_size) != 2
            or not all(_is_int(v) and lo <= v <= hi for v in frame_size)):
        raise bad("frame_size", f"{frame_size!r} is not [width, height] in pixels")
    return int(frame_size[0]), int(frame_size[1])


def _string(doc, key, bad) -> str:
    value = doc.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad(key, f"expected a string, got {type(value).__name__}")
    return value


def _image(doc, key, base, shape, bad) -> Optional[np.ndarray]:
    """The image file an entry names, of its dtype and the profile's (H, W) shape; None if null."""
    name = _file_entry(doc, key, bad)
    if name is None:
        return None
    arr = _read_image(os.path.join(base, name), key, name, bad)
    dtype, expected = _IMAGE_DTYPES[key]
    if arr.dtype != dtype:
        raise bad(key, f"{name} is {arr.dtype}, expected {expected}")
    if shape is not None and arr.shape != shape:
        raise bad(key, f"{name} is {arr.shape[1]}x{arr.shape[0]} but frame_size is "
                       f"{shape[1]}x{shape[0]}")
    return arr


def _normalised_flat(flat: np.ndarray, name: str, bad) -> np.ndarray:
    if not np.all(np.isfinite(flat)) or float(flat.min()) <= 0:
        raise bad("flat", f"{name} must be finite and positive everywhere")
    mean = float(flat.mean(dtype=np.float64))
    if abs(mean - 1.0) > _FLAT_MEAN_TOLERANCE:
        raise bad("flat", f"{name} has mean {mean:.4g}, expected 1 (normalised)")
    return (flat / np.float32(mean)).astype(np.float32)


def _intrinsics(value, bad) -> Optional[np.ndarray]:
    if value is None:
        return None
    k = _matrix(value, (3, 3), "intrinsics", bad)
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise bad("intrinsics", "focal lengths must be positive")
    return k


def _distortion(value, bad) -> Optional[np.ndarray]:
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) not in _DISTORTION_LENGTHS
            or not all(_is_number(v) for v in value)):
        raise bad("distortion", "expected a list of 4, 5, 8, 12 or 14 numbers (OpenCV order)")
    return np.asarray(value, dtype=np.float64)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _file_entry(doc, key, bad) -> Optional[str]:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise bad(key, f"expected a file name relative to the profile or null, got {value!r}")
    return value


def _read_image(full: str, key: str, name: str, bad) -> np.ndarray:
    if not os.path.isfile(full):
        raise bad(key, f"{name}: no such file (looked in {os.path.dirname(full)})")
    try:
        if full.lower().endswith((".tif", ".tiff")):
            import tifffile

            arr = tifffile.imread(full)
        else:
            import cv2

            arr = cv2.imread(full, cv2.IMREAD_UNCHANGED)
            if arr is None:
                raise ValueError("unreadable")
    except Exception as e:  # corrupt files raise many types
        raise bad(key, f"{name} is not a readable image ({e.__class__.__name__})") from None
    arr = np.squeeze(np.asarray(arr))
    if arr.size == 0:
        raise bad(key, f"{name} is not a readable image (no image data)")
    if arr.ndim != 2:
        raise bad(key, f"{name} must be a single-channel image, got shape {arr.shape}")
    return arr


def _matrix(value, shape, key, bad) -> np.ndarray:
    ok = (isinstance(value, list) and len(value) == shape[0]
          and all(isinstance(r, list) and len(r) == shape[1] for r in value)
          and all(_is_number(v) for r in value for v in r))
    if not ok:
        raise bad(key, f"expected a {shape[0]}x{shape[1]} matrix of finite numbers")
    return np.asarray(value, dtype=np.float64)


def _homography(value, bad) -> np.ndarray:
    h = _matrix(value, (3, 3), "homography_wl_to_nir", bad)
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


def _positive(doc, key, bad, *, hi) -> Optional[float]:
    value = doc.get(key)
    if value is None:
        return None
    if not _is_number(value):
        raise bad(key, f"expected a number or null, got {value!r}")
    if not (0 < value < hi):
        raise bad(key, f"{value} is outside (0, {hi:g})")
    return float(value)


# -- saving ------------------------------------------------------------------
def _file_names(path: str) -> dict:
    """File names (relative) :func:`save_profile` uses beside ``path``.

    ``profile.json`` gets ``dark.tiff``, ``flat.tiff``, ``hot_pixels.png``; any
    other ``NAME.json`` gets ``NAME_dark.tiff`` etc., so that several profiles
    can share a directory.
    """
    stem = os.path.splitext(os.path.basename(path))[0]
    prefix = "" if stem == "profile" else f"{stem}_"
    return {"dark": f"{prefix}dark.tiff", "flat": f"{prefix}flat.tiff",
            "hot_pixels": f"{prefix}hot_pixels.png", "nir_transfer": f"{prefix}nir_transfer.csv"}


def save_profile(cal: Calibration, path: str, *, created: Optional[str] = None) -> str:
    """Write ``cal`` as a profile: ``path`` (JSON) plus its image files beside it.

    Parameters
    ----------
    cal : Calibration
        ``dark`` is rounded to uint16 counts; ``flat`` is written as float32
        normalised to mean 1; ``hot_pixels`` as a 0/255 PNG.
    path : str
        The JSON file to write; its directory is created.  Files are written
        to temporary names and renamed, so a crash never leaves half a profile.
    created : str, optional
        ISO-8601 time stamp; default now (UTC).

    Returns
    -------
    str
        ``path``.
    """
    import cv2
    import tifffile

    path = os.fspath(path)
    base = os.path.dirname(os.path.abspath(path))
    os.makedirs(base, exist_ok=True)
    size = _frame_size(cal)
    names = _file_names(path)
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "system": cal.system or "",
        "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "notes": cal.notes or "",
        "frame_size": None if size is None else [int(size[0]), int(size[1])],
        "dark": None, "flat": None, "hot_pixels": None,
    }
    written = []
    if cal.dark is not None:
        dark = np.clip(np.rint(np.asarray(cal.dark, dtype=np.float64)), 0, 65535).astype(np.uint16)
        written.append((names["dark"], lambda p, a=dark: tifffile.imwrite(p, a)))
        doc["dark"] = names["dark"]
    if cal.flat is not None:
        flat = np.asarray(cal.flat, dtype=np.float64)
        if not np.all(np.isfinite(flat)) or flat.min() <= 0:
            raise CalibrationError(f"{path}: flat: must be finite and positive everywhere")
        flat = (flat / flat.mean()).astype(np.float32)
        written.append((names["flat"], lambda p, a=flat: tifffile.imwrite(p, a)))
        doc["flat"] = names["flat"]
    if cal.hot_pixels is not None:
        hot = np.where(np.asarray(cal.hot_pixels, dtype=bool), 255, 0).astype(np.uint8)
        final = os.path.join(base, names["hot_pixels"])
        written.append((names["hot_pixels"], lambda p, a=hot: _imwrite_png(cv2, p, a, final)))
        doc["hot_pixels"] = names["hot_pixels"]
    h = cal.homography_wl_to_nir
    doc["homography_wl_to_nir"] = None if h is None else (np.asarray(h, float) / h[2, 2]).tolist()
    doc["mm_per_px"] = None if cal.mm_per_px is None else float(cal.mm_per_px)
    doc["working_distance_mm"] = _opt_float(cal.extra.get("working_distance_mm"))
    doc["exposure_ref_ms"] = _opt_float(cal.exposure_ref_ms)
    doc["gain_ref"] = _opt_float(cal.gain_ref)
    k = cal.extra.get("intrinsics")
    doc["intrinsics"] = None if k is None else np.asarray(k, float).tolist()
    d = cal.extra.get("distortion")
    doc["distortion"] = None if d is None else np.asarray(d, float).ravel().tolist()
    if cal.layout is not None:
        which, problem = layout_problem(cal.layout.wl_rect, cal.layout.nir_rect)
        if problem:
            raise CalibrationError(f"{path}: layout: {which}: {problem}")
        if size is not None and cal.layout.wl_size != tuple(size):
            raise CalibrationError(f"{path}: layout: wl_rect: the WL inset is "
                                   f"{cal.layout.wl_size[0]}x{cal.layout.wl_size[1]} but frame_size "
                                   f"is {size[0]}x{size[1]}")
        if size is None:
            doc["frame_size"] = list(cal.layout.wl_size)
    doc["layout"] = None if cal.layout is None else cal.layout.to_dict()
    doc["ignore_rects"] = [[int(v) for v in r] for r in cal.ignore_rects]
    doc["nir_transfer"] = _transfer_entry(cal.nir_transfer, base)
    t = cal.nir_transfer
    if t is not None and t.kind == "lut" and doc["nir_transfer"] == t.spec:
        # a LUT outside the profile's folder is copied beside it, like the images: the
        # profile (a session's too) stays whole and names no folder of the user's
        written.append((names["nir_transfer"], lambda p, src=t.lut_path: shutil.copyfile(src, p)))
        doc["nir_transfer"] = f"lut:{names['nir_transfer']}"
    for key, value in cal.extra.items():
        if key not in _KEYS:
            doc[key] = value

    for name, write in written:
        full = os.path.join(base, name)
        tmp = _tmp_name(full)
        write(tmp)
        os.replace(tmp, full)
    tmp = _tmp_name(path)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(_dumps(doc))
    os.replace(tmp, path)
    cal.source_path = path
    return path


def _transfer_entry(t: Optional[Transfer], base: str) -> Optional[str]:
    """The transfer as the profile writes it: a LUT beside the profile by its relative name."""
    if t is None:
        return None
    if t.kind == "lut":
        rel = os.path.relpath(t.lut_path, base)
        return f"lut:{rel}" if not rel.startswith("..") else t.spec
    return t.spec


def _dumps(doc: dict) -> str:
    """One key per line, each value compact: readable, and diffs show what a step changed."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _tmp_name(full: str) -> str:
    # keep the extension last: OpenCV picks the encoder from it
    root, ext = os.path.splitext(full)
    return f"{root}.tmp-{os.getpid()}{ext}"


def _imwrite_png(cv2, tmp, arr, final) -> None:
    """Write ``arr`` to ``tmp``; a failure names the file the user will look for."""
    if not cv2.imwrite(tmp, arr):
        raise CalibrationError(f"{final}: could not write the hot-pixel map")


def _opt_float(v) -> Optional[float]:
    return None if v is None else float(v)


def _frame_size(cal: Calibration) -> Optional[tuple[int, int]]:
    """(W, H) the profile is for; every image in it must agree."""
    size = tuple(cal.frame_size) if cal.frame_size is not None else None
    for name, arr in (("dark", cal.dark), ("flat", cal.flat), ("hot_pixels", cal.hot_pixels)):
        if arr is None:
            continue
        shape = np.shape(arr)
        if len(shape) != 2:
            raise CalibrationError(f"calibration: {name} must be (H, W), got shape {shape}")
        this = (int(shape[1]), int(shape[0]))
        if size is None:
            size = this
        elif this != size:
            raise CalibrationError(
                f"calibration: {name} is {this[0]}x{this[1]} but frame_size is {size[0]}x{size[1]}")
    return size
