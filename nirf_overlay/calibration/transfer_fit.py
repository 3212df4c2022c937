"""Measuring a tower's NIR transfer curve from a target of known relative brightness.

The target (``calibrate transfer``) is a set of patches whose relative
fluorescence the user knows: a neutral-density step wedge over a uniform
fluorescent sheet (relative brightness = each step's transmittance,
``10**-OD``), or reference patches with certified relative brightness.  All
patches are in one frame, so the tower's auto-gain scales them alike and the
unknown gain cancels: the pairs (display value, known relative brightness)
are points of the curve, up to one scale, which every ratio cancels too.

Each patch's display value is its median over its inner pixels in every
frame, then the median over the frames; a patch whose value moves between
frames (more than :data:`MAX_SPREAD`) means the target or the auto-gain moved
and is refused.  Between the measured points the curve is interpolated as a
local power law (straight in log display - log signal, exact for a gamma
curve); below the darkest and above the brightest patch it is extended as the
power law of the nearest segment, down to (0, 0) and up to full scale.  The
table written (:func:`curve_table`) is ``display,linear`` at every 8-bit code,
normalised to 1 at full scale: the ``lut:FILE.csv`` the transfer reads
(:mod:`.transfer`).

A dilution series of ICG is *not* such a target: ICG's fluorescence is not
proportional to its concentration (self-quenching and inner-filter effects
from a few micromolar), so its concentrations are not relative brightnesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..errors import CalibrationError
from .model import CalibrationOptionError, rect_problem
from .transfer import read_number_rows

__all__ = ["Patch", "PatchValues", "TransferFit", "read_patches", "measure_patches", "fit_transfer", "curve_table"]

#: patches a curve needs at least (three segments), and the brightness span they cover at least
MIN_PATCHES = 4
MIN_SPAN = 4.0
#: a patch's display value may move this much (fraction of full scale) between frames
MAX_SPREAD = 0.03
#: display values at or below this fraction read black; a patch is clipped (saturated) when
#: its median is the brightest value of the recording (within a code) up here, where a
#: codec may have moved full scale down a few codes (H.264: 255 -> 252)
BLACK = 2.0 / 255.0
CLIP_ZONE = 0.95
#: only the inner part of a patch is measured (its edges blur into the neighbours)
INNER = 0.6
#: rows of the table written (every 8-bit display code)
TABLE_ROWS = 256


@dataclass(frozen=True)
class Patch:
    """One patch: ``rect`` ``(x, y, w, h)`` in NIR-frame pixels (for a tower, WL-inset
    pixels: the NIR is mapped there) and its known relative brightness."""

    rect: tuple
    relative: float


@dataclass
class TransferFit:
    """What :func:`fit_transfer` found: the points, sorted by brightness, and the table."""

    display: np.ndarray  # (K,) display value of each patch, fraction of full scale
    relative: np.ndarray  # (K,) its known relative brightness, brightest 1
    spread: np.ndarray  # (K,) how much it moved between frames, fraction of full scale
    table: np.ndarray  # (TABLE_ROWS, 2) display, linear
    frames: int

    def summary(self) -> str:
        lines = [f"transfer: {len(self.display)} patches over {self.frames} frames, brightness "
                 f"span {self.relative.max() / self.relative.min():.1f}x, display "
                 f"{self.display.min():.3f}..{self.display.max():.3f} of full scale"]
        for d, r, s in zip(self.display, self.relative, self.spread):
            lines.append(f"  relative {r:.4g}: display {d:.4f} (moved {s:.4f})")
        g = local_gammas(self.display, self.relative)
        lines.append(f"  local gamma (log signal / log display) {g.min():.2f}..{g.max():.2f}; "
                     f"measured between display {self.display.min():.3f} and "
                     f"{self.display.max():.3f}, extended as a power law outside")
        return "\n".join(lines)


def read_patches(path: str) -> list[Patch]:
    """``x,y,w,h,relative`` rows (an optional header row) as patches; one-line refusals."""
    def bad(problem):  # the front end says how its user gives the patches file
        return CalibrationOptionError(f"patches file {path}: {problem}", option="patches")

    out = []
    for n, row in enumerate(read_number_rows(path, 5, "x,y,w,h,relative (whole pixels, a number)",
                                             bad, "no such file"), 1):
        if not all(np.isfinite(v) and v == int(v) for v in row[:4]):
            raise bad(f"patch {n}: x,y,w,h must be whole pixels")
        rect, rel = tuple(int(v) for v in row[:4]), row[4]
        problem = rect_problem(rect)
        if problem:
            raise bad(f"patch {n}: {problem}")
        if not (np.isfinite(rel) and rel > 0):
            raise bad(f"patch {n}: relative brightness {rel:g} must be a positive number")
        out.append(Patch(rect, rel))
    if len(out) < MIN_PATCHES:
        raise bad(f"{len(out)} patches; a curve needs at least {MIN_PATCHES}")
    return out


@dataclass
class PatchValues:
    """What :func:`measure_patches` read (fractions of full scale)."""

    display: np.ndarray  # (K,) each patch's median over its inner pixels and the frames
    spread: np.ndarray  # (K,) its range between frames
    frames: int
    top: float  # the brightest value of any frame
    code: float  # one code (1 / full scale)


def measure_patches(frames: Iterable[np.ndarray], patches: Sequence[Patch],
                    nir_bits: int) -> PatchValues:
    """Each patch's display value: the median over its inner pixels, then over the frames."""
    full = float((1 << int(nir_bits)) - 1)
    per_frame, top = [], 0.0
    for nir in frames:
        top = max(top, float(nir.max()) / full)
        h, w = nir.shape[:2]
        values = []
        for i, p in enumerate(patches):
            problem = rect_problem(p.rect, (w, h))
            if problem:
                raise CalibrationOptionError(f"patches: patch {i + 1}: {problem} (a {w}x{h} NIR "
                                             "frame)", option="patches")
            x, y, pw, ph = p.rect
            mx, my = int(pw * (1 - INNER) / 2), int(ph * (1 - INNER) / 2)
            values.append(float(np.median(nir[y + my:y + ph - my, x + mx:x + pw - mx])) / full)
        per_frame.append(values)
    if not per_frame:
        raise CalibrationError("transfer: no frames to measure")
    v = np.asarray(per_frame)
    return PatchValues(np.median(v, axis=0), v.max(axis=0) - v.min(axis=0), len(per_frame),
                       top, 1.0 / full)


def fit_transfer(values: PatchValues, patches: Sequence[Patch]) -> TransferFit:
    """The curve through the patches' points; refuses points that cannot be a curve."""
    rel = np.array([p.relative for p in patches], dtype=np.float64)
    order = np.argsort(rel)
    d, r, s = (np.asarray(a, dtype=np.float64)[order] for a in (values.display, rel, values.spread))
    n = [int(i) + 1 for i in order]  # patch numbers as the file gives them
    for k in range(len(d)):
        if s[k] > MAX_SPREAD:
            raise CalibrationOptionError(
                f"transfer: patch {n[k]} moved {s[k]:.3f} of full scale between frames (limit "
                f"{MAX_SPREAD:g}): hold the target still and let the tower's auto-gain settle, or "
                "use fewer frames", option="frames")
        if d[k] >= CLIP_ZONE and d[k] >= values.top - values.code:
            raise CalibrationError(f"transfer: patch {n[k]} is saturated (display {d[k]:.3f}); "
                                   "dim the target or the excitation")
        if d[k] <= BLACK:
            raise CalibrationError(f"transfer: patch {n[k]} reads black (display {d[k]:.3f}); "
                                   "leave out steps darker than the tower shows")
    if np.any(np.diff(r) <= 0):
        raise CalibrationError("transfer: two patches have the same relative brightness")
    if np.any(np.diff(d) <= 0):
        k = int(np.argmin(np.diff(d)))
        raise CalibrationError(f"transfer: patch {n[k + 1]} (relative {r[k + 1]:g}) reads no brighter "
                               f"than patch {n[k]} (relative {r[k]:g}); check the rectangles and "
                               "the brightness values")
    if r[-1] / r[0] < MIN_SPAN:
        raise CalibrationError(f"transfer: the patches span {r[-1] / r[0]:.1f}x in brightness; "
                               f"a curve needs at least {MIN_SPAN:g}x (more steps of the wedge)")
    r = r / r[-1]
    return TransferFit(d, r, s, curve_table(d, r), values.frames)


def local_gammas(display: np.ndarray, relative: np.ndarray) -> np.ndarray:
    """The power of each segment between neighbouring points (d log signal / d log display)."""
    return np.diff(np.log(relative)) / np.diff(np.log(display))


def curve_table(display: np.ndarray, relative: np.ndarray, rows: int = TABLE_ROWS) -> np.ndarray:
    """``(rows, 2)`` display (0..1), linear (0..1 at full scale) through the points:
    straight in log-log between them, the end segments' power laws outside."""
    ld, lr = np.log(display), np.log(relative)
    g = local_gammas(display, relative)
    x = np.arange(rows, dtype=np.float64) / (rows - 1)
    lx = np.log(np.maximum(x, 1e-12))
    ly = np.interp(lx, ld, lr)
    lo, hi = lx < ld[0], lx > ld[-1]
    ly[lo] = lr[0] + g[0] * (lx[lo] - ld[0])
    ly[hi] = lr[-1] + g[-1] * (lx[hi] - ld[-1])
    y = np.exp(ly)
    y[0] = 0.0
    return np.column_stack([x, y / y[-1]])

