"""Snapshots: the picture on screen and the data behind it, named by time.

One snapshot is four files with a common stem ``snapshot_YYYYMMDD-HHMMSS-mmm``:

- ``<stem>_overlay.png``  the composite as displayed (8-bit BGR -> PNG)
- ``<stem>_nir.tiff``     the raw NIR frame, 16-bit, bit-identical to the source's counts
                           (absent while NIR is lost)
- ``<stem>_wl.png``       the white-light frame
- ``<stem>_metrics.json`` the frame's metrics (the ``metrics.csv`` row and the
                           ``rims.csv`` rows), the settings in force, source and
                           calibration facts

Files are written to a temporary name and renamed, so a snapshot file is
either complete or absent.  Qt-free; the viewer calls :func:`write_snapshot`
on a worker thread so the display never waits on the disk.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import NirfError
from .privacy import shown_path

SNAPSHOT_SCHEMA = 1


def snapshot_stem(when: Optional[_dt.datetime] = None) -> str:
    """``snapshot_YYYYMMDD-HHMMSS-mmm`` in local time."""
    when = when or _dt.datetime.now()
    return f"snapshot_{when:%Y%m%d-%H%M%S}-{when.microsecond // 1000:03d}"


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".part")
    write(tmp)
    os.replace(tmp, path)


def _png(path: Path, image: np.ndarray) -> None:
    import cv2

    def write(tmp: Path):
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(image))
        if not ok:
            raise NirfError(f"{path}: the picture could not be encoded as PNG")
        tmp.write_bytes(buf.tobytes())

    _atomic(path, write)


def _tiff(path: Path, nir: np.ndarray, nir_bits: int) -> None:
    import tifffile

    def write(tmp: Path):
        # tifffile keeps the dtype and every count; no scaling, no compression loss
        tifffile.imwrite(tmp, np.ascontiguousarray(nir), photometric="minisblack",
                         metadata={"nir_bits": int(nir_bits)})

    _atomic(path, write)


def _clean(value):
    """JSON-safe values: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_snapshot(out_dir, pair, result, *, settings=None, source_info=None,
                   calibration=None, composite=None, stem: Optional[str] = None) -> dict:
    """Write one snapshot; return ``{"overlay": path, "nir": path|None, "wl": path, "metrics": path}``.

    Parameters
    ----------
    out_dir : directory (created if missing)
    pair : :class:`~nirf_overlay.frame.FramePair`; ``pair.nir`` (H, W) uint16 is
        written unchanged, ``pair.wl`` (H, W, 3) uint8 BGR as PNG
    result : :class:`~nirf_overlay.processing.result.FrameResult`
    composite : (h, w, 3) uint8 BGR to save as the overlay instead of
        ``result.composite`` (e.g. what the view shows while NIR is lost)
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NirfError(f"{out}: cannot create the snapshot folder ({e.strerror})") from None
    stem = stem or snapshot_stem()
    paths = {
        "overlay": out / f"{stem}_overlay.png",
        "nir": out / f"{stem}_nir.tiff" if pair.nir is not None else None,
        "wl": out / f"{stem}_wl.png",
        "metrics": out / f"{stem}_metrics.json",
    }
    image = composite if composite is not None else result.composite
    try:
        _png(paths["overlay"], image)
        _png(paths["wl"], pair.wl)
        if pair.nir is not None:
            _tiff(paths["nir"], pair.nir, pair.nir_bits)
        meta = {
            "schema_version": SNAPSHOT_SCHEMA,
            "created": _dt.datetime.now().astimezone().isoformat(timespec="milliseconds"),
            "frame": int(pair.index),
            "wl_time": float(pair.wl_time),
            "nir_time": float(pair.nir_time),
            "nir_bits": int(pair.nir_bits),
            "nir_lost": pair.nir is None,
            "exposure_ms": pair.exposure_ms,
            "gain": pair.gain,
            "size": list(pair.size),
            "nir_signal": result.nir_signal,  # "display": ratios of display values
            "metrics": result.frame_row(),
            "rims": result.rim_rows(),
            "plane": {
                "flagged": bool(result.plane.flagged),
                "tbr": result.plane.tbr,
                "area_px": result.plane.area_px,
                "area_mm2": result.plane.area_mm2,
                "known": bool(result.plane.known),
                "lost_reason": result.plane.lost_reason,
                "polygon": (None if result.plane.polygon is None
                            else [[float(x), float(y)] for x, y in result.plane.polygon]),
            },
            # where each rim is missing (degrees round its core's centre, image coordinates)
            "rim_gaps": {str(r.rim_id): [[g.start_deg, g.end_deg] for g in r.gaps]
                         for r in result.rims},
            "mm_per_px": result.mm_per_px,
            "settings": settings.to_dict() if settings is not None else None,
            "source": {
                "description": source_info.description,
                "fps": source_info.fps,
                "live": source_info.live,
                "device": source_info.device,
            } if source_info is not None else None,
            "calibration": {
                # by its file name unless --keep-paths, as the source is named (privacy.py)
                "path": shown_path(calibration.source_path,
                                   source_info is not None and source_info.keep_paths),
                "system": calibration.system,
                "mm_per_px": calibration.mm_per_px,
            } if calibration is not None else None,
            "files": {k: (v.name if v is not None else None) for k, v in paths.items()},
        }
        text = json.dumps(_clean(meta), indent=2) + "\n"
        _atomic(paths["metrics"], lambda tmp: tmp.write_text(text))
    except OSError as e:
        raise NirfError(f"{out}: snapshot not written ({e.strerror or e})") from None
    return {k: (str(v) if v is not None else None) for k, v in paths.items()}
