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
as schema 2 with none of them (:func:`~.profile_schema.migrate`); a profile is always written
in the current schema.

File names are relative to the JSON file.  Every entry is checked when the
profile is loaded; anything missing or malformed raises a one-line
:class:`~nirf_overlay.errors.CalibrationError` that names the profile and the
entry (``profile.json: dark: dark.tiff is float32, expected uint16``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from typing import Any, Optional

import numpy as np

from ..errors import CalibrationError
from .model import Calibration
from .profile_schema import (KEYS, SCHEMA_VERSION, check_header, layout_problem, migrate,
                             set_entries, string_entry)
from .transfer import Transfer, parse_transfer

__all__ = ["SCHEMA_VERSION", "load_profile", "save_profile"]

# A flat field saved by something else may be normalised in float64 then
# rounded to float32; beyond this it was not normalised at all.
_FLAT_MEAN_TOLERANCE = 0.01
# what each image entry must be: (dtype, in words)
_IMAGE_DTYPES = {
    "dark": (np.uint16, "uint16 (16-bit TIFF)"),
    "flat": (np.float32, "float32 (float TIFF)"),
    "hot_pixels": (np.uint8, "an 8-bit mask (nonzero = hot)"),
}


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

    doc = migrate(doc)
    frame_size = check_header(doc, bad)
    cal = Calibration(frame_size=frame_size, source_path=path)
    cal.system, cal.notes = string_entry(doc, "system", bad), string_entry(doc, "notes", bad)
    cal.extra["created"] = string_entry(doc, "created", bad)

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
    set_entries(cal, doc, frame_size, bad)
    cal.nir_transfer = _transfer(doc.get("nir_transfer"), base, path)
    return cal


def _transfer(value, base, path) -> Optional[Transfer]:
    if value is None:
        return None
    return parse_transfer(value, base=base, what=f"{path}: nir_transfer")


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
        if key not in KEYS:
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
