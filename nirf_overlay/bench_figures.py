"""What ``bench`` adds to its timings: memory traffic, the memcpy floor, and its JSON.

:func:`memory_traffic` counts the bytes the per-pixel passes of one frame
read and write, from the sizes of the arrays the pipeline holds after a
frame (not from a model of the kernels' caches: every input element read
once, every output element written once).  :func:`memcpy_floor_ms` times
``np.copyto`` moving the same number of bytes (half read, half written) in
the same run, so the ratio of the passes' time to it says how far they are
from what the memory alone allows on this machine under its current load.

:func:`write_json` stores every figure with what produced it (versions, CPU
count, ``git describe``); :func:`load_figures` reads such a file back (one
line naming the file and the problem otherwise) and :func:`compare` gives
the ratio new / old of every number the two share.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from typing import Optional

import numpy as np

from .errors import NirfError

#: written into every bench JSON; :func:`load_figures` refuses files without it
SCHEMA = "nirf-overlay-bench/1"


def memory_traffic(pipe, pair, result) -> dict:
    """Bytes read + written per frame by each per-pixel pass of ``pipe`` (a
    :class:`~nirf_overlay.processing.pipeline.Pipeline` that has just processed
    ``pair`` into ``result``).

    ``normalise``: raw NIR, dark and 1/flat planes, the previous filtered frame
    read; the filtered frame and the saturation mask's rows that hold a
    saturated pixel written (the others stay zero, unwritten; plus the
    homography warp's read and write when the calibration has one).
    ``composite``: white light, filtered NIR (and the saturation mask when it
    is shown) read, the BGR composite written.  ``analysis_grid``: the
    filtered frame read by the area pyramid, its half and quarter written;
    the rim and fluorescence masks written at full size.  Point samples
    (motion, instruments, histograms) touch a few per cent of a frame and are
    left out.
    """
    n = pipe.normaliser
    filt = n.filt
    out = {"normalise": n.traffic_bytes(pair.nir.nbytes)}
    sat = n.sat.nbytes if result.saturated_fraction > 0 and pipe.settings.display.show_saturation else 0
    out["composite"] = int(pair.wl.nbytes + filt.nbytes + sat + result.composite.nbytes)
    masks = sum(m.nbytes for m in (result.rim_mask, result.fluorescence_mask) if m is not None)
    out["analysis_grid"] = int(filt.nbytes * (1 + 0.25 + 0.0625) + masks)
    return out


def memcpy_floor_ms(nbytes: int, repeats: int = 15) -> float:
    """Median time of ``np.copyto`` reading ``nbytes / 2`` and writing as many, ms."""
    half = max(1, int(nbytes) // 2)
    src = np.ones(half, np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # pages in
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def traffic_figures(traffic: dict, stages: dict) -> dict:
    """The bench's traffic keys: bytes per pass, the memcpy floor of normalise +
    composite, and their measured time (``stages``, median ms) over that floor."""
    pixel = traffic["normalise"] + traffic["composite"]
    floor = memcpy_floor_ms(pixel)
    spent = stages.get("normalise", 0.0) + stages.get("composite", 0.0)
    return {
        "traffic_bytes": traffic,
        "traffic_pixel_passes_mb": round(pixel / 1e6, 2),
        "memcpy_floor_ms": round(floor, 3),
        "memcpy_gb_per_s": round(pixel / 1e6 / floor, 2) if floor > 0 else None,
        "pixel_passes_to_floor": round(spent / floor, 2) if floor > 0 else None,
    }


def provenance() -> dict:
    """Versions, CPU count, machine and ``git describe`` of the checkout (None outside one)."""
    import cv2
    import numba

    from . import __version__

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        described = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty", "--tags"],
                                   capture_output=True, text=True, timeout=10)
        git = described.stdout.strip() if described.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        git = None
    return {"schema": SCHEMA, "nirf_overlay": __version__, "git": git,
            "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "opencv": cv2.__version__, "cpu_count": os.cpu_count(),
            "machine": platform.machine(), "load_average": _load(),
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _load() -> Optional[list]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def write_json(path: str, figures: dict) -> None:
    """``figures`` with :func:`provenance` into ``path`` (one line naming it on failure)."""
    doc = {**provenance(), **figures}
    try:
        with open(path, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
    except OSError as e:
        raise NirfError(f"--json-out {path}: cannot be written ({e.strerror})") from None


def load_figures(path: str) -> dict:
    """A bench JSON written by :func:`write_json`; NirfError (one line) for anything else."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise NirfError(f"--compare {path}: no such file; give a JSON written by "
                        "`bench --json-out`") from None
    except IsADirectoryError:
        raise NirfError(f"--compare {path}: is a directory; give a JSON written by "
                        "`bench --json-out`") from None
    except OSError as e:
        raise NirfError(f"--compare {path}: cannot be read ({e.strerror})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise NirfError(f"--compare {path}: not JSON ({e}); give a file written by "
                        "`bench --json-out`") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise NirfError(f"--compare {path}: not a bench JSON (no \"schema\": \"{SCHEMA}\"); "
                        "give a file written by `bench --json-out`")
    return doc


def _numbers(doc: dict, prefix: str = "") -> dict:
    """Every number in ``doc``, nested dicts flattened to dotted names (bools, counts of
    frames and provenance left out)."""
    out = {}
    for k, v in doc.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_numbers(v, name + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[name] = float(v)
    return out


#: numbers that describe the run, not its speed (not compared)
_NOT_FIGURES = ("cpu_count", "cores", "threads", "frames", "plain_frames", "live_rate_fps",
                "live_display_threads", "size", "load_average")


def compare(new: dict, old: dict) -> list:
    """``[(name, new, old, new / old)]`` for every figure both have (ratio None when old is 0)."""
    a, b = _numbers(new), _numbers(old)
    rows = []
    for name in sorted(set(a) & set(b)):
        if name.split(".")[0] in _NOT_FIGURES:
            continue
        x, y = a[name], b[name]
        rows.append((name, x, y, (x / y) if y else None))
    return rows


def format_compare(rows: list, old_label: str, new: Optional[dict] = None,
                   old: Optional[dict] = None) -> str:
    """One line per figure: name, new, old, ratio new/old; first a warning for each way
    the two runs differ in what they timed (size, source, headline mode)."""
    lines = [f"compared with {old_label} (ratio = new / old; below 1 is faster for times):"]
    for key in ("size", "source", "mode"):
        a, b = (new or {}).get(key), (old or {}).get(key)
        if a is not None and b is not None and a != b:
            lines.append(f"  note: {key} differs ({a} now, {b} then): those ratios compare "
                         "different work")
    width = max([len(r[0]) for r in rows] + [6])
    for name, x, y, r in rows:
        ratio = "-" if r is None else f"{r:.3f}"
        lines.append(f"  {name:<{width}}  {x:>12.4g}  {y:>12.4g}  {ratio:>7}")
    if not rows:
        lines.append("  no figure in common")
    return "\n".join(lines)
