"""Rim analysis: background, fluorescence and rim masks, per-rim measurements.

:class:`RimAnalyzer` is what the :class:`~nirf_overlay.processing.pipeline.Pipeline`
calls once per frame with the normalised NIR (already in WL pixel
coordinates).  It works in two passes:

1. **Coarse grid** (``segment.analysis_scale`` of the frame, never coarser
   than ~240 px across; :mod:`.grid`): a robust liver-background map
   (:mod:`.background`), the fluorescence mask (threshold relative to
   background, spatial and temporal hysteresis; :mod:`.fluorescence`),
   instruments from white light + NIR (:mod:`.instruments`), and rim
   candidates -- fluorescence that surrounds, fully or in part, a
   hypofluorescent core (:mod:`.segment`).
2. **Per lesion ROI, on a grid fine enough for the rim** (:mod:`.refine`):
   the rim edge where tissue-scattering blur puts the physical edge (half
   maximum, corrected by a fit of a blurred-rim model; :mod:`.width`),
   sub-pixel thickness, completeness, T, B and ratios; the rim mask is
   interpolated to WL pixels with sub-pixel edges.

Then rims are tracked (:mod:`.track`) and the transection plane is checked
(:mod:`.plane`).  The fixed numbers are :data:`~.rules.RIM_RULES`.

Definitions (also in the README)
--------------------------------
T
    mean normalised NIR over the rim mask.
B
    median normalised NIR over a ring of liver around the lesion
    (:mod:`.background`, whose docstring is the definition).
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
import time
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import cv2
import numpy as np

from ..settings import Settings
from ._kernels.background import outline_near_blocked, ring_median
from ._kernels.grid import pyramid2, sample_every, upscale_fluo
from ._kernels.refine import edge_field
from ._kernels.segment import circle_fit_sums, seeded_regions
from ._validate import frame_dims, require, require_optional
from .background import (LesionCore, background_map, carried_core, core_dark, global_background,
                         lesion_backgrounds, lesion_core, map_level, ring_exclusion)
from .cv_threads import single_threaded_opencv
from .fluorescence import hysteresis_components
from .frame_threads import ordered_map
from .grid import MaskRing, Scratch, analysis_grid_scale, downscale, nearest_small, paste_max
from .instruments import instrument_mask
from .plane import PlaneChecker
from .refine import RimGeometry, refine_rim
from .result import PlaneCheck, RimMeasurement
from .reuse import RimReuse, TissuePlace
from .rules import RIM_RULES
from .segment import find_candidates
from .track import RimTracker


@dataclass
class Analysis:
    """Per-frame analysis output (all geometry in WL pixels).

    Attributes
    ----------
    rim_mask : (H, W) uint8 0/255, tumour rims only (None: no analysis yet)
    fluorescence_mask : (H, W) uint8 0/255, every fluorescent pixel (rims,
        ducts, gallbladder, bile), for display (None: no analysis yet)
    rims : list of :class:`RimMeasurement` with tracked ids
    plane : transection-plane check
    background : global liver level, normalised counts (0: none)
    threshold : absolute fluorescence threshold used (threshold x
        background; 0: none)
    searched : the full candidate search ran (False: the last search's rims
        were moved and re-measured, :mod:`.reuse`)
    stage_ms : wall time of the analysis's parts, ms (grid, background,
        fluorescence, candidates, refine, track_plane)
    """

    rim_mask: Optional[np.ndarray]
    fluorescence_mask: Optional[np.ndarray]
    rims: list = field(default_factory=list)
    plane: PlaneCheck = field(default_factory=PlaneCheck)
    background: float = 0.0
    threshold: float = 0.0
    searched: bool = True
    stage_ms: dict = field(default_factory=dict, compare=False, repr=False)  # timings: not state


#: what a pipeline shows before any analysis has finished (a live
#: pipeline's first frames): no masks, no rims
NO_ANALYSIS = Analysis(rim_mask=None, fluorescence_mask=None)


class _Grid(NamedTuple):
    """The coarse analysis grid of one frame size."""

    w: int  # grid size, px
    h: int
    s: float  # grid px per WL px
    mm_eff: float  # mm per WL px (nominal without calibration)
    px_per_mm: float  # grid px per mm


def _grid_for(W: int, H: int, analysis_scale: float, mm_per_px: Optional[float]) -> _Grid:
    """The analysis grid of a W x H frame (at least 8 x 8), and its pixels per mm."""
    s = analysis_grid_scale(W, analysis_scale)
    w, h = max(8, int(round(W * s))), max(8, int(round(H * s)))
    sx, sy = w / W, h / H
    s = 0.5 * (sx + sy)
    mm_eff = mm_per_px if mm_per_px else RIM_RULES.nominal_field_mm / W
    return _Grid(w, h, s, mm_eff, s / mm_eff)


class _Laps:
    """Wall time of an analysis's parts: ``lap(name)`` adds the time since the last
    lap to ``ms[name]`` (grid, background, fluorescence with the ring exclusion,
    candidates: the search, or moving the last search's rims; refine: with the
    ring background; track_plane: masks, tracking, plane check)."""

    def __init__(self):
        self.ms: dict = {}
        self._t = time.perf_counter()

    def __call__(self, name: str) -> None:
        t = time.perf_counter()
        self.ms[name] = self.ms.get(name, 0.0) + (t - self._t) * 1e3
        self._t = t


class RimAnalyzer:
    """Segments and measures ICG rims frame by frame, keeping tracks and temporal state.

    Parameters
    ----------
    settings : Settings (uses the ``segment`` and ``plane`` sections)
    mm_per_px : float or None
        Millimetres per WL pixel; without it mm fields are None and size
        limits use a nominal field of view (``RIM_RULES.nominal_field_mm``).
    """

    def __init__(self, settings: Optional[Settings] = None, mm_per_px: Optional[float] = None):
        self._lock = threading.Lock()
        self.settings = (settings or Settings()).copy()
        self.mm_per_px = mm_per_px
        self.tracker = RimTracker(1.0)
        self._prev_fluo: Optional[np.ndarray] = None
        self._prev_rim: Optional[np.ndarray] = None
        self._plane = PlaneChecker()
        self._count = 0
        self._last: Optional[Analysis] = None
        self._masks = MaskRing(3)
        self._scratch = Scratch()
        #: the candidate search skipped where the motion carries the rims (segment.reuse_rims)
        self.reuse = RimReuse()

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
            self.reuse.reset()

    # -- main ------------------------------------------------------------------
    def analyze(self, nir_norm: np.ndarray, wl: Optional[np.ndarray] = None,
                valid: Optional[np.ndarray] = None, *,
                plane_polygon: Optional[list] = None,
                tissue: Optional[TissuePlace] = None, workers: int = 1) -> Analysis:
        """Segment rims and measure them.

        Parameters
        ----------
        nir_norm : (H, W) float32, C-contiguous: normalised NIR in WL pixel coordinates
        wl : (H, W, 3) uint8 BGR or None (used to recognise instruments);
            any layout (only point samples are read)
        valid : (H, W) bool or None, usable pixels; any layout
        plane_polygon : the transection plane in this frame (WL px; the
            pipeline's anchored plane, :mod:`.plane_anchor`), [] for none, or
            None: ``settings.plane.polygon`` as it is
        tissue : this frame's place in the tissue's motion
            (:func:`~.reuse.tissue_place`); with ``segment.reuse_rims`` the
            last search's rims are moved by it instead of searching
            (:mod:`.reuse`); None: always the full search
        workers : threads the lesions are refined on, the calling thread
            included (:func:`~.frame_threads.ordered_map`; the same results
            in the same order as on one)

        Returns
        -------
        Analysis
            With ``segment.analysis_every`` = n > 1 only every n-th call
            analyses; the calls in between return the last Analysis.

        Raises
        ------
        TypeError, ValueError
            for another dtype, shape or (``nir_norm``) layout
        """
        require("nir_norm", nir_norm, np.float32, ("H", "W"))
        require_optional("wl", wl, np.uint8, frame_dims(nir_norm.shape, 3), contiguous=False)
        require_optional("valid", valid, np.bool_, frame_dims(nir_norm.shape), contiguous=False)
        with self._lock:
            settings = self.settings
        self._count += 1
        every = int(settings.segment.analysis_every)
        last = self._last
        if (every > 1 and last is not None and self._count % every
                and last.rim_mask.shape == nir_norm.shape):
            return last
        with single_threaded_opencv():  # its few hundred calls on small ROIs
            self._last = result = self._analyze(nir_norm, wl, valid, settings, plane_polygon,
                                                tissue, workers)
        return result

    def _analyze(self, nir, wl, valid, settings, plane_polygon=None, tissue=None,
                 workers: int = 1) -> Analysis:
        seg = settings.segment
        lap = _Laps()
        H, W = nir.shape
        grid = _grid_for(W, H, seg.analysis_scale, self.mm_per_px)
        w, h, px = grid.w, grid.h, grid.px_per_mm

        small, pyramid = downscale(nir, w, h, self._scratch)
        valid_s = None if valid is None else nearest_small(valid.view(np.uint8), w, h) > 0
        # instruments are large: point samples of WL are enough (and 5x cheaper)
        wl_s = nearest_small(wl, w, h) if wl is not None else None

        usable = valid_s.copy() if valid_s is not None else np.ones((h, w), bool)
        b0 = global_background(small, usable)
        if b0 <= 0:
            return self._empty(H, W, b0, seg.threshold)
        instr = instrument_mask(wl_s, small / np.float32(b0))
        usable &= ~instr
        lap("grid")
        bg, b0 = background_map(small, usable, px_per_mm=px, b0=b0)
        ratio = small / bg
        lap("background")

        thr = float(seg.threshold)
        fluo, labels, stats = hysteresis_components(
            ratio, thr, max(RIM_RULES.weak_threshold_floor, thr * seg.hysteresis),
            self._previous(self._prev_fluo, h, w),
            min_px=max(RIM_RULES.min_fluorescence_px, int(RIM_RULES.min_fluorescence_mm2 * px ** 2)),
            valid=valid_s)
        exclude = ring_exclusion(fluo, instr, ratio, valid_s, px_per_mm=px, core_ratio=seg.core_ratio)
        blocked = instr.copy() if valid_s is None else (instr | ~valid_s)
        blocked[0, :] = blocked[-1, :] = blocked[:, 0] = blocked[:, -1] = True
        dark = core_dark(ratio, seg.core_ratio, blocked)  # B's ring round the whole dark core
        lap("fluorescence")

        def measured(cands, carried=None):
            out = ordered_map(lambda ck: self._measure(nir, ck[0], grid, bg, small, blocked, valid,
                                                       pyramid, seg, ck[1], dark),
                              list(zip(cands, carried or [None] * len(cands))), workers)
            geoms, cores = [g for g, _ in out], [k for _, k in out]
            # B once every lesion's outline is known: each ring keeps clear of the others'
            kept = [i for i, g in enumerate(geoms) if g is not None]
            Bs = lesion_backgrounds(small, [cands[i] for i in kept], [cores[i] for i in kept],
                                    [geoms[i].thickness_px * grid.s for i in kept], exclude,
                                    seg.background_radius_mm * grid.px_per_mm,
                                    seg.background_gap_mm * grid.px_per_mm)
            for i, B in zip(kept, Bs):
                if B is not None:
                    geoms[i].background = B
            return geoms, cores

        min_rim_px = seg.min_rim_area_mm2 * px ** 2
        moved = (self.reuse.moved(tissue, fluo, labels, stats, grid.s, min_rim_px, blocked)
                 if seg.reuse_rims else None)
        cands = None if moved is None else [c for c, _ in moved]
        searched = cands is None
        lap("candidates")
        if cands is not None:
            geoms, _ = measured(cands, [k for _, k in moved])
            lap("refine")
            if any(g is None for g in geoms):  # a rim lost where it was moved to: search
                self.reuse.lost()
                cands, searched = None, True
        if cands is None:
            cands = find_candidates(
                ratio, fluo, labels, stats, instr, valid_s,
                min_rim_px=min_rim_px,
                min_core_px=seg.min_core_area_mm2 * px ** 2,
                core_ratio=seg.core_ratio, min_completeness=seg.min_completeness,
                max_width_px=max(RIM_RULES.max_rim_width_min_px, RIM_RULES.max_rim_width_mm * px),
                gap_px=max(RIM_RULES.core_gap_min_px, RIM_RULES.core_gap_mm * px),
                core_open_px=RIM_RULES.core_open_mm * px,
                relax=self._previous(self._prev_rim, h, w),
            )
            if seg.reuse_rims:
                self.reuse.searched(cands, tissue, (h, w), grid.s, labels, stats, min_rim_px)
            lap("candidates")
            geoms, cores = measured(cands)
            if seg.reuse_rims:
                self.reuse.measured(cores)
            lap("refine")
        geoms = [g for g in geoms if g is not None]
        # fluorescence (upscaled) and a cleared rim mask in one pass, into
        # ring buffers; the rims are pasted into both
        rim_mask, fluo_full = self._masks.from_grid(fluo, H, W)
        for g in geoms:
            paste_max(rim_mask, g.rim, g.x0, g.y0)
            paste_max(fluo_full, g.rim, g.x0, g.y0)

        self.tracker.max_shift_px = seg.track_max_shift_mm / grid.mm_eff
        ids = self.tracker.assign([g.centroid for g in geoms], [g.rim_area_px for g in geoms])
        rims = [self._measurement(rid, g) for rid, g in zip(ids, geoms)]
        plane = self._plane.check(settings, small, bg, fluo, ratio, grid.s, self.mm_per_px,
                                  grid.mm_eff, polygon=plane_polygon)

        self._prev_fluo = fluo
        prev_rim = np.zeros((h, w), bool)
        for c in cands:
            x0, y0, x1, y1 = c.roi
            prev_rim[y0:y1, x0:x1] |= c.rim
        self._prev_rim = prev_rim
        lap("track_plane")
        return Analysis(rim_mask, fluo_full, rims, plane, float(b0), float(thr * b0),
                        searched=searched, stage_ms=lap.ms)

    # -- helpers ---------------------------------------------------------------
    @staticmethod
    def _previous(mask: Optional[np.ndarray], h: int, w: int) -> Optional[np.ndarray]:
        """Last frame's grid mask, if it was made on this grid."""
        return mask if (mask is not None and mask.shape == (h, w)) else None

    @staticmethod
    def _measure(nir, c, grid: _Grid, bg, small, blocked, valid, pyramid, seg,
                 carried: Optional[LesionCore] = None, dark: Optional[np.ndarray] = None
                 ) -> tuple[Optional[RimGeometry], Optional[LesionCore]]:
        """One candidate refined, and the completed core B's ring is laid round (this
        frame's, or ``carried``: a moved rim's from its search, :func:`~.background.carried_core`);
        (None, None) if no rim.  Its B (:func:`~.background.lesion_backgrounds`) follows
        once every candidate is refined."""
        x0, y0, x1, y1 = c.roi
        # the rim edge is placed against the background map here; B for
        # the ratios comes from the ring once the rim width is measured
        g = refine_rim(nir, c, grid.s, map_level(bg, c.centroid), valid=valid,
                       blocked=blocked[y0:y1, x0:x1], pyramid=pyramid)
        if g is None:
            return None, None
        ring = seg.background_radius_mm * grid.px_per_mm
        gap = seg.background_gap_mm * grid.px_per_mm
        width = g.thickness_px * grid.s
        if carried is None:
            core = lesion_core(small.shape, c, ring, gap, blocked, width, dark=dark)
        else:
            core = carried_core(small.shape, c, carried, blocked, ring, gap, width)
        return g, core

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
            gaps=list(g.gaps),
        )


def _warm_grid() -> None:
    # kernels a 320 x 180 frame does not reach (its analysis grid is the frame itself)
    pyramid2(np.zeros((8, 8), np.float32), np.empty((4, 4), np.float32), np.empty((2, 2), np.float32))
    upscale_fluo(np.zeros((2, 2), np.uint8), 2, 2, np.empty((4, 4), np.uint8), np.empty((4, 4), np.uint8))
    # point samples of the WL frame and the valid mask (1080p and 4K frames
    # sample every 8th pixel)
    sample_every(np.zeros((16, 16, 3), np.uint8), 8, 8, np.empty((2, 2, 3), np.uint8))
    sample_every(np.zeros((16, 16), np.uint8), 8, 8, np.empty((2, 2), np.uint8))


def _warm_segmentation() -> None:
    # the hysteresis kernels, for exactly the types a frame passes (a grid
    # with and without the valid mask and the previous frame's mask)
    r = np.full((4, 4), 3.0, np.float32)
    for v, p in ((None, None), (np.ones((4, 4), bool), np.ones((4, 4), np.uint8))):
        hysteresis_components(r, 2.0, 1.6, p, 1, valid=v)
    circle_fit_sums(np.arange(8, dtype=np.float64), np.arange(8, dtype=np.float64))
    # the dark core's regions: the may-be-core mask is a crop of the grid's
    # (contiguous when whole rows)
    for _q, dark, _n in _crops():
        m = np.zeros(dark.shape, bool)
        seeded_regions(m, dark, m, 2, 0.05, m.copy())


def _crops():
    q, side, near = np.zeros((4, 4), np.float32), np.zeros((4, 4), bool), np.zeros((4, 4), np.uint8)
    for sl in (np.s_[:, :], np.s_[1:3, 1:3]):  # whole arrays and crops (non-contiguous)
        yield q[sl], side[sl], near[sl]


def _warm_background() -> None:
    # the ring median reads crops of the analysis grid (contiguous when whole rows);
    # a core's outline beside a tool, with the tool's mask whole or a crop of it
    for q, side, _ in _crops():
        ring_median(q.copy(), np.float32(0.5), np.float32(1.5), side, q)
        outline_near_blocked(side.copy(), side, 2)


def _warm_refine() -> None:
    for q, side, near in _crops():
        edge_field(q, side, near, 0.5, 0.5, np.empty(q.shape, np.float32))


def _warm_rims() -> None:
    """The analyzer once on a small synthetic ring, so the remaining kernels are
    compiled for exactly the argument types a real frame uses."""
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


#: the analysis kernels in the order ``processing.warmup`` prepares them (one progress step each)
WARM_STEPS = {"grid": _warm_grid, "segmentation": _warm_segmentation,
              "background": _warm_background, "refine": _warm_refine, "rims": _warm_rims}


def warm_up() -> None:
    """Compile (or load from numba's cache) the analysis kernels (:data:`WARM_STEPS`)."""
    for step in WARM_STEPS.values():
        step()
