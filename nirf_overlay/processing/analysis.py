"""Rim analysis: background, fluorescence and rim masks, per-rim measurements.

:class:`RimAnalyzer` is what the :class:`~nirf_overlay.processing.pipeline.Pipeline`
calls once per frame with the normalised NIR (already in WL pixel
coordinates).  It works in two passes:

1. **Coarse grid** (``segment.analysis_scale`` of the frame, never coarser
   than ~240 px across; :mod:`.segment`): a robust liver-background map,
   the fluorescence mask (threshold relative to background, spatial and
   temporal hysteresis), instruments from white light + NIR, and rim
   candidates -- fluorescence that surrounds, fully or in part, a
   hypofluorescent core.
2. **Per lesion ROI, on a grid fine enough for the rim** (:mod:`.measure`):
   the rim edge where tissue-scattering blur puts the physical edge (half
   maximum, corrected by a fit of a blurred-rim model), sub-pixel
   thickness, completeness, T, B and ratios; the rim mask is interpolated
   to WL pixels with sub-pixel edges.

Definitions (also in the README)
--------------------------------
T
    mean normalised NIR over the rim mask.
B
    median normalised NIR over a ring of liver around the lesion: from
    ``segment.background_gap_mm`` to ``gap + segment.background_radius_mm``
    outside the lesion's closed outline (the core grown by the measured rim
    width, also where a partial rim leaves the core bare; completed by an
    ellipse where a tool hides the core), excluding fluorescence (grown by
    0.7 mm for its glow) and instruments.
tbr = T / B, contrast = (T - B) / B.
rim_thickness
    true width of the rim: the median half-maximum width across the rim
    (sub-pixel crossings along the direction away from the core, at the
    rim's medial points), corrected for tissue-scattering blur by fitting
    ``core step + blurred box`` to the mean cross-section.
rim_completeness
    fraction of the core's visible outline (not where it meets a tool or
    the frame edge) that touches the rim.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from ..settings import Settings
from ._kernels.background import ring_median
from ._kernels.grid import pyramid2, sample_every, upscale_fluo
from ._kernels.refine import edge_field
from ._kernels.segment import circle_fit_sums
from .measure import refine_rim, ring_background
from .result import PlaneCheck, RimMeasurement
from .segment import (background_map, find_candidates, global_background, hysteresis_components,
                      instrument_mask)
from .track import RimTracker

# Without a calibration the size limits in mm are applied as if the field of
# view were this wide (a laparoscope at 4-5 cm sees about 8 cm of liver).
NOMINAL_FIELD_MM = 80.0


@dataclass
class Analysis:
    """Per-frame analysis output (all geometry in WL pixels).

    Attributes
    ----------
    rim_mask : (H, W) uint8 0/255, tumour rims only
    fluorescence_mask : (H, W) uint8 0/255, every fluorescent pixel (rims,
        ducts, gallbladder, bile), for display
    rims : list of :class:`RimMeasurement` with tracked ids
    plane : transection-plane check
    background : global liver level, normalised counts
    threshold : absolute fluorescence threshold used (threshold x background)
    """

    rim_mask: np.ndarray
    fluorescence_mask: np.ndarray
    rims: list = field(default_factory=list)
    plane: PlaneCheck = field(default_factory=PlaneCheck)
    background: float = 0.0
    threshold: float = 0.0


def analysis_grid_scale(width: int, analysis_scale: float) -> float:
    """Scale of the coarse analysis grid for a frame ``width`` pixels wide.

    ``segment.analysis_scale``, but never coarser than the power-of-two
    fraction that keeps 240 pixels across: a 1080p frame is analysed on
    240 x 135 at the default 0.125, 1280 x 720 on 320 x 180, 640 x 360 on
    320 x 180.  Boundaries and measurements are refined per lesion at finer
    resolution (:mod:`.measure`), so the grid only has to find them.
    """
    s = 1.0
    while width * s / 2.0 >= 240.0 and s / 2.0 >= analysis_scale - 1e-9:
        s /= 2.0
    return float(max(s, analysis_scale)) if analysis_scale > s else s


def _downscale(img: np.ndarray, w: int, h: int, scratch: Optional["_Scratch"] = None
               ) -> tuple[np.ndarray, dict]:
    """Area-average ``img`` to (h, w), by halving where it fits (OpenCV's fast path).

    Returns the result and the pyramid ``{scale: image}`` of the halving
    steps (scale 1.0 is ``img`` itself), which the per-lesion refinement
    crops instead of resizing again.  With ``scratch`` the first two
    halvings are made by one parallel numba pass into reused buffers
    (bit-identical to OpenCV's; they are only valid until the next frame).
    """
    H0, W0 = img.shape[:2]
    pyr = {1.0: img}
    H, W = H0, W0
    if (scratch is not None and img.ndim == 2 and img.dtype == np.float32 and img.flags.c_contiguous
            and H % 4 == 0 and W % 4 == 0 and W // 4 >= w and H // 4 >= h):
        half = scratch.get("half", (H // 2, W // 2), np.float32)
        quarter = scratch.get("quarter", (H // 4, W // 4), np.float32)
        pyramid2(img, half, quarter)
        pyr[(W // 2) / W0] = half
        pyr[(W // 4) / W0] = quarter
        img, H, W = quarter, H // 4, W // 4
    while W % 2 == 0 and H % 2 == 0 and W // 2 >= w and H // 2 >= h:
        img = cv2.resize(img, (W // 2, H // 2), interpolation=cv2.INTER_AREA)
        H, W = img.shape[:2]
        pyr[W / W0] = img
    if (W, H) == (w, h):
        return img, pyr
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA), pyr


def _nearest_small(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Nearest-neighbour downscale to (h, w): a strided view for whole factors.

    For a whole factor ``cv2.resize(..., INTER_NEAREST)`` samples source
    pixel ``k * factor``, which is exactly ``img[::fy, ::fx]`` (and ~20x
    cheaper than resizing a 1080p colour frame); a numba gather of those
    pixels is ~10x cheaper again than numpy's strided copy.
    """
    H, W = img.shape[:2]
    if W % w == 0 and H % h == 0:
        if (img.dtype == np.uint8 and img.flags.c_contiguous
                and (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3))):
            out = np.empty((h, w) + img.shape[2:], img.dtype)
            sample_every(img, H // h, W // w, out)
            return out
        return np.ascontiguousarray(img[::H // h, ::W // w])
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)


_CV_LOCK = threading.Lock()
_CV_USERS = [0, 0]  # analyses running, OpenCV's thread count before the first


class _single_threaded_opencv:
    """Run OpenCV single-threaded while an analysis runs (process-wide).

    The analysis makes a few hundred OpenCV calls on small ROIs; splitting
    those across threads bought no wall time on the 2-core test machine
    (1080p phantom: 10.3 vs 10.5 ms) but cost ~30 % more CPU (16.7 vs
    12.5 ms per frame), CPU the viewer's other threads need.  Nested and
    concurrent analyses share one count; the previous setting comes back
    when the last one ends.
    """

    def __enter__(self):
        with _CV_LOCK:
            if _CV_USERS[0] == 0:
                _CV_USERS[1] = cv2.getNumThreads()
                cv2.setNumThreads(1)
            _CV_USERS[0] += 1

    def __exit__(self, *exc):
        with _CV_LOCK:
            _CV_USERS[0] -= 1
            if _CV_USERS[0] == 0:
                cv2.setNumThreads(_CV_USERS[1])
        return False


class _Scratch:
    """Per-frame work buffers kept between frames (allocating a 4K pyramid
    level costs page faults every frame).  Their contents never carry over
    into an output, so this is a plain object that ``batch.state_digest``
    does not hash."""

    def __init__(self):
        self.bufs: dict = {}

    def get(self, name: str, shape: tuple, dtype) -> np.ndarray:
        b = self.bufs.get(name)
        if b is None or b.shape != shape or b.dtype != dtype:
            b = self.bufs[name] = np.empty(shape, dtype)
        return b


class _MaskRing:
    """Full-size mask buffers used in turn (as the Compositor's output ring).

    ``Analysis.rim_mask`` / ``fluorescence_mask`` of a frame stay valid for
    ``n - 1`` further frames; a consumer that keeps them longer copies them
    (the recorder, export and evaluate use them at once).  Holds no state
    that changes any output, so it is a plain object that
    ``batch.state_digest`` does not hash.
    """

    def __init__(self, n: int = 3):
        self.n = int(n)
        self.bufs: list = []
        self.i = 0

    def next(self, H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
        """Two (H, W) uint8 buffers (rim, fluorescence), contents undefined."""
        if not self.bufs or self.bufs[0][0].shape != (H, W):
            self.bufs = [(np.empty((H, W), np.uint8), np.empty((H, W), np.uint8)) for _ in range(self.n)]
            self.i = 0
        pair = self.bufs[self.i]
        self.i = (self.i + 1) % self.n
        return pair


def _upscale_mask(mask: np.ndarray, W: int, H: int) -> np.ndarray:
    """Nearest-neighbour upscale of a uint8 mask; row replication for integer factors.

    (cv2.resize's nearest path costs ~0.75 ms at 1080p; repeating rows is ~0.1 ms.)
    """
    h, w = mask.shape
    if W % w == 0 and H % h == 0:
        fx, fy = W // w, H // h
        rows = np.repeat(mask, fx, axis=1) if fx > 1 else mask
        out = np.empty((h, fy, W), np.uint8)
        out[:] = rows[:, None, :]
        return out.reshape(H, W)
    return cv2.resize(mask, (W, H), interpolation=cv2.INTER_NEAREST)


class RimAnalyzer:
    """Segments and measures ICG rims frame by frame, keeping tracks and temporal state.

    Parameters
    ----------
    settings : Settings (uses the ``segment`` and ``plane`` sections)
    mm_per_px : float or None
        Millimetres per WL pixel; without it mm fields are None and size
        limits use a nominal 80 mm field of view.
    """

    def __init__(self, settings: Optional[Settings] = None, mm_per_px: Optional[float] = None):
        self._lock = threading.Lock()
        self.settings = (settings or Settings()).copy()
        self.mm_per_px = mm_per_px
        self.tracker = RimTracker(1.0)
        self._prev_fluo: Optional[np.ndarray] = None
        self._prev_rim: Optional[np.ndarray] = None
        self._poly_cache: tuple = (None, None, None)
        self._count = 0
        self._last: Optional[Analysis] = None
        self._masks = _MaskRing(3)
        self._scratch = _Scratch()

    # -- state -----------------------------------------------------------------
    def update_settings(self, settings: Settings) -> None:
        with self._lock:
            old = self.settings.segment.analysis_scale
            self.settings = settings.copy()
            if settings.segment.analysis_scale != old:
                self._prev_fluo = self._prev_rim = None

    def reset(self) -> None:
        """Drop tracks and temporal state (after a seek or a source change)."""
        with self._lock:
            self.tracker.reset()
            self._prev_fluo = self._prev_rim = None
            self._last = None
            self._count = 0

    # -- main ------------------------------------------------------------------
    def analyze(self, nir_norm: np.ndarray, wl: Optional[np.ndarray] = None,
                valid: Optional[np.ndarray] = None) -> Analysis:
        """Segment rims and measure them.

        Parameters
        ----------
        nir_norm : (H, W) float32, normalised NIR in WL pixel coordinates
        wl : (H, W, 3) uint8 BGR or None (used to recognise instruments)
        valid : (H, W) bool or None, usable pixels

        Returns
        -------
        Analysis
            With ``segment.analysis_every`` = n > 1 only every n-th call
            analyses; the calls in between return the last Analysis.
        """
        with self._lock:
            settings = self.settings
        seg = settings.segment
        nir = np.asarray(nir_norm, dtype=np.float32)
        if nir.ndim != 2:
            raise ValueError(f"nir_norm must be (H, W), got shape {nir.shape}")
        self._count += 1
        every = int(seg.analysis_every)
        last = self._last
        if every > 1 and last is not None and self._count % every and last.rim_mask.shape == nir.shape:
            return last
        with _single_threaded_opencv():
            self._last = result = self._analyze(nir, wl, valid, settings)
        return result

    def _analyze(self, nir, wl, valid, settings) -> Analysis:
        seg = settings.segment
        H, W = nir.shape
        s = analysis_grid_scale(W, seg.analysis_scale)
        w, h = max(8, int(round(W * s))), max(8, int(round(H * s)))
        sx, sy = w / W, h / H
        s = 0.5 * (sx + sy)
        mm = self.mm_per_px
        mm_eff = mm if mm else NOMINAL_FIELD_MM / W
        px_per_mm_small = s / mm_eff

        small, pyramid = _downscale(nir, w, h, self._scratch)
        valid_s = None
        if valid is not None:
            valid_s = _nearest_small(valid.view(np.uint8) if valid.dtype == bool else
                                     valid.astype(np.uint8), w, h) > 0
        # instruments are large: point samples of WL are enough (and 5x cheaper)
        wl_s = _nearest_small(wl, w, h) if wl is not None else None

        usable = valid_s.copy() if valid_s is not None else np.ones((h, w), bool)
        b0 = global_background(small, usable)
        if b0 <= 0:
            return self._empty(H, W, b0, seg.threshold)
        instr = instrument_mask(wl_s, small / np.float32(b0))
        usable &= ~instr
        bg, b0 = background_map(small, usable, tile_px=max(8, int(round(12 * px_per_mm_small))), b0=b0)
        ratio = small / bg

        thr = float(seg.threshold)
        prev = self._prev_fluo if (self._prev_fluo is not None and self._prev_fluo.shape == (h, w)) else None
        fluo, labels, stats = hysteresis_components(
            ratio, thr, max(1.01, thr * seg.hysteresis), prev,
            min_px=max(2, int(0.2 * px_per_mm_small ** 2)), valid=valid_s)

        relax = self._prev_rim if (self._prev_rim is not None and self._prev_rim.shape == (h, w)) else None
        cands = find_candidates(
            ratio, fluo, labels, stats, instr, valid_s,
            min_rim_px=seg.min_rim_area_mm2 * px_per_mm_small ** 2,
            min_core_px=seg.min_core_area_mm2 * px_per_mm_small ** 2,
            core_ratio=seg.core_ratio, min_completeness=seg.min_completeness,
            max_width_px=max(3.0, 8.0 * px_per_mm_small),
            gap_px=max(1.5, 1.5 * px_per_mm_small), core_open_px=0.6 * px_per_mm_small,
            relax=relax,
        )

        # B excludes fluorescence with a margin for its blurred glow, and instruments
        glow = max(1, int(round(0.7 * px_per_mm_small)))
        exclude = cv2.dilate(fluo, np.ones((2 * glow + 1, 2 * glow + 1), np.uint8)).astype(bool) | instr
        # and core-dark pixels: a part of a core the outline missed (behind a
        # tool, beyond a partial rim) is not liver; vessels (~0.85) stay in
        exclude |= ratio < seg.core_ratio
        if valid_s is not None:
            exclude |= ~valid_s
        blocked = instr.copy() if valid_s is None else (instr | ~valid_s)
        blocked[0, :] = blocked[-1, :] = blocked[:, 0] = blocked[:, -1] = True
        # fluorescence (upscaled) and a cleared rim mask in one pass, into
        # ring buffers; the rims are pasted into both below
        if W % w == 0 and H % h == 0:
            rim_mask, fluo_full = self._masks.next(H, W)
            upscale_fluo(fluo, H // h, W // w, fluo_full, rim_mask)
        else:
            rim_mask = np.zeros((H, W), np.uint8)
            fluo_full = _upscale_mask(fluo * np.uint8(255), W, H)
        geoms = []
        for c in cands:
            x0, y0, x1, y1 = c.roi
            # the rim edge is placed against the background map here; B for
            # the ratios comes from the ring once the rim width is measured
            cx, cy = c.centroid
            B_map = float(bg[int(min(h - 1, max(0, cy))), int(min(w - 1, max(0, cx)))])
            g = refine_rim(nir, c, s, B_map, valid=valid, blocked=blocked[y0:y1, x0:x1],
                           pyramid=pyramid)
            if g is None:
                continue
            B = ring_background(small, c, exclude, seg.background_radius_mm * px_per_mm_small,
                                seg.background_gap_mm * px_per_mm_small, blocked[y0:y1, x0:x1],
                                width_px=g.thickness_px * s)
            if B is not None:
                g.background = B
            geoms.append(g)
            rh, rw = g.rim.shape
            # (cv2.max writes the strided frame views in place, ~5x faster
            # than numpy's strided maximum)
            for full in (rim_mask, fluo_full):
                view = full[g.y0:g.y0 + rh, g.x0:g.x0 + rw]
                if g.rim.dtype == np.uint8:
                    out = cv2.max(view, g.rim, dst=view)
                    if out is not view:  # (OpenCV could not write the view in place)
                        view[...] = out
                else:
                    np.maximum(view, g.rim, out=view)

        self.tracker.max_shift_px = seg.track_max_shift_mm / mm_eff
        ids = self.tracker.assign([g.centroid for g in geoms], [g.rim_area_px for g in geoms])
        rims = [self._measurement(rid, g) for rid, g in zip(ids, geoms)]

        plane = self._plane_check(settings, small, bg, fluo, ratio, thr, s, (H, W))

        self._prev_fluo = fluo
        prev_rim = np.zeros((h, w), bool)
        for c in cands:
            x0, y0, x1, y1 = c.roi
            prev_rim[y0:y1, x0:x1] |= c.rim
        self._prev_rim = prev_rim
        return Analysis(rim_mask, fluo_full, rims, plane, float(b0), float(thr * b0))

    # -- helpers ---------------------------------------------------------------
    def _empty(self, H, W, b0, thr) -> Analysis:
        z = np.zeros((H, W), np.uint8)
        self.tracker.assign([], [])
        return Analysis(z, z.copy(), [], PlaneCheck(), float(b0), float(thr * b0))

    def _measurement(self, rid: int, g) -> RimMeasurement:
        mm = self.mm_per_px
        B = g.background
        tbr = g.target / B if B > 0 else float("nan")
        return RimMeasurement(
            rim_id=int(rid),
            target_intensity=float(g.target),
            background_intensity=float(B),
            tbr=float(tbr),
            contrast=float(tbr - 1.0),
            rim_thickness_px=float(g.thickness_px),
            rim_thickness_mm=float(g.thickness_px * mm) if mm else None,
            rim_completeness=float(g.completeness),
            rim_area_px=float(g.rim_area_px),
            rim_area_mm2=float(g.rim_area_px * mm * mm) if mm else None,
            core_area_px=float(g.core_area_px),
            core_area_mm2=float(g.core_area_px * mm * mm) if mm else None,
            centroid=g.centroid,
            bbox=g.bbox,
            contour=g.contour,
        )

    def _plane_check(self, settings, small, bg, fluo, ratio, thr, s, shape) -> PlaneCheck:
        poly = settings.plane.polygon
        if not poly:
            return PlaneCheck()
        h, w = small.shape
        key = (tuple(map(tuple, poly)), (h, w), s)
        if self._poly_cache[0] != key:
            m = np.zeros((h, w), np.uint8)
            pts = np.round(np.asarray(poly, np.float64) * s).astype(np.int32)
            cv2.fillPoly(m, [pts], 1)
            self._poly_cache = (key, m.astype(bool), None)
        pmask = self._poly_cache[1]
        hot = pmask & fluo.astype(bool) & (ratio > thr * settings.segment.hysteresis)
        count = int(hot.sum())
        area_px = count / (s * s)
        mm = self.mm_per_px
        area_mm2 = area_px * mm * mm if mm else None
        mm_eff = mm if mm else NOMINAL_FIELD_MM / shape[1]
        flagged = count > 0 and area_px * mm_eff * mm_eff >= settings.plane.min_area_mm2
        tbr = float(small[hot].mean() / bg[hot].mean()) if count else None
        return PlaneCheck(flagged=bool(flagged), tbr=tbr, area_px=float(area_px), area_mm2=area_mm2)


def warm_up() -> None:
    """Compile (or load from numba's cache) the analysis kernels.

    Runs the analyzer once on a small synthetic ring, so the kernels are
    compiled for exactly the argument types a real frame uses and the first
    real frame with a rim does not wait for the compiler.
    """
    h, w = 180, 320
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xx - 160, yy - 90)
    nir = np.full((h, w), 60.0, np.float32)
    nir[r < 30] = 20.0
    nir[(r >= 30) & (r < 38)] = 400.0
    nir = cv2.GaussianBlur(nir, (0, 0), 2.0)
    wl = np.zeros((h, w, 3), np.uint8)
    wl[:] = (45, 55, 130)
    RimAnalyzer(Settings(), mm_per_px=0.1).analyze(nir, wl)
    # kernels that frame does not reach (its analysis grid is the frame itself)
    pyramid2(np.zeros((8, 8), np.float32), np.empty((4, 4), np.float32), np.empty((2, 2), np.float32))
    upscale_fluo(np.zeros((2, 2), np.uint8), 2, 2, np.empty((4, 4), np.uint8), np.empty((4, 4), np.uint8))
    circle_fit_sums(np.arange(8, dtype=np.float64), np.arange(8, dtype=np.float64))
    # point samples of the WL frame and the valid mask (1080p and 4K frames
    # sample every 8th pixel; the 320 x 180 frame above is its own grid)
    sample_every(np.zeros((16, 16, 3), np.uint8), 8, 8, np.empty((2, 2, 3), np.uint8))
    sample_every(np.zeros((16, 16), np.uint8), 8, 8, np.empty((2, 2), np.uint8))
    # the hysteresis kernels, for exactly the types a frame passes (a grid
    # with and without the valid mask and the previous frame's mask)
    r = np.full((4, 4), 3.0, np.float32)
    for v, p in ((None, None), (np.ones((4, 4), bool), np.ones((4, 4), np.uint8))):
        hysteresis_components(r, 2.0, 1.6, p, 1, valid=v)
    q, side, near = np.zeros((4, 4), np.float32), np.zeros((4, 4), bool), np.zeros((4, 4), np.uint8)
    for sl in (np.s_[:, :], np.s_[1:3, 1:3]):  # whole arrays and crops (non-contiguous)
        edge_field(q[sl], side[sl], near[sl], 0.5, 0.5, np.empty(q[sl].shape, np.float32))
        # the ring median reads crops of the analysis grid (contiguous when whole rows)
        ring_median(q[sl].copy(), np.float32(0.5), np.float32(1.5), side[sl], q[sl])
