"""The Pipeline: one FramePair in, one FrameResult out.

Stages per frame (``FrameResult.stage_ms`` times each):

1. ``normalise`` -- warp raw NIR into WL coordinates if the calibration has a
   homography, then one fused numba pass: dark, flat, exposure/gain,
   motion-aware temporal filter, saturation and the subsampled histograms
   (:mod:`.normalise`).
2. ``levels`` -- display levels from the histogram, smoothed over time (:mod:`.levels`).
3. ``analysis`` -- background, fluorescence and rim masks, tracked rim
   measurements and the transection-plane check (:class:`.analysis.RimAnalyzer`,
   which segments on a grid ``segment.analysis_scale`` of the frame and
   measures rims at full resolution).
4. ``composite`` -- one numba pass through a look-up table (colour map,
   compression and alpha ramp folded in), then outlines, the plane polygon and
   the colour bar (:mod:`.composite`).

The same object runs in the viewer, replay, ``process``, ``bench`` and
``batch``.  It keeps all per-stream state (temporal filter, levels, rim
tracks) and preallocated buffers; kernels are compiled (or loaded from the
numba cache) on a tiny frame when it is made, so the first real frame does
not wait for the compiler.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Optional

import numba
import numpy as np

from ..settings import Settings
from .analysis import NO_ANALYSIS, RimAnalyzer
from .analysis_mode import AnalysisMode
from .async_analysis import AsyncAnalysis
from .digest import state_digest
from .background import display_background
from .black_level import BlackLevelEstimator
from .composite import Compositor
from .follow import MotionHistory, move_rims
from .frame_threads import usable_cores
from .levels import DisplayLevels, Levels, display_compression, shown_as_encoded
from .motion import MotionEstimator
from .normalise import Normaliser
from .plane_anchor import PlaneAnchor
from .result import FrameResult, PlaneCheck
from .reuse import tissue_place
from .transfer import NirEntry


class Pipeline:
    """Normalise -> levels -> analyse -> composite, with per-stream state.

    Parameters
    ----------
    settings : :class:`~nirf_overlay.settings.Settings` or None (defaults)
    calibration : :class:`~nirf_overlay.calibration.Calibration` or None
        Dark, flat, homography, mm per pixel, exposure/gain references.
    warm : bool
        Compile or load the numba kernels now, on a tiny frame.
    ring : int
        Composite output buffers used in turn: a ``FrameResult.composite``
        stays valid for ``ring - 1`` further frames; copy it to keep it longer.
    async_analysis : bool or "auto"
        Live display only: run the rim analysis on its own thread on the
        newest frame it can take (:mod:`.async_analysis`).  The overlay is
        drawn from the current frame at once; rim outlines, numbers and the
        plane check come from the newest finished analysis, whose frame index
        is ``FrameResult.analysis_index`` (a frame or two behind).  ``process``
        and ``batch`` keep it off, so every row belongs to its frame; ``bench``
        times both ways.  ``"auto"`` (the viewer's default): every frame analysed
        before it is shown while that keeps up with the stream, falling back to
        the async way by itself under load and returning when it can
        (:mod:`.analysis_mode` has the rule; ``FrameResult.analysis_mode`` says
        which way each frame went).

    Notes
    -----
    :meth:`process` is meant to be called from one thread at a time (the
    engine's worker); :meth:`update_settings` and :meth:`reset` may be
    called from any thread and take effect at the next frame.
    """

    def __init__(self, settings: Optional[Settings] = None, calibration=None, *,
                 warm: bool = True, ring: int = 3, async_analysis=False):
        self._lock = threading.Lock()
        self.settings = (settings or Settings()).copy()
        self._pending: Optional[Settings] = None
        self._reset_pending = False
        self.calibration = calibration
        self.mm_per_px = calibration.mm_per_px if calibration is not None else None
        #: the calibration's NIR transfer curve, applied before normalising (.transfer)
        self.nir_entry = NirEntry(calibration.nir_transfer if calibration is not None else None)
        self.normaliser = Normaliser(calibration)
        #: the bit depth a display-encoded dark frame was decoded for (.transfer), else None
        self._dark_bits: Optional[int] = None
        #: without a dark frame: the black level estimated under instruments
        #: (:mod:`.black_level`), subtracted as a constant dark; None with a dark frame
        #: and for display-encoded NIR, whose black the tower set before encoding
        self.black_level: Optional[BlackLevelEstimator] = None
        if (calibration is None or calibration.dark is None) and not self.nir_entry.encoded:
            self.black_level = BlackLevelEstimator(self.mm_per_px,
                                                   self.settings.segment.analysis_scale)
        self.display_levels = DisplayLevels()
        self.compositor = Compositor(ring=ring)
        self.analyzer = RimAnalyzer(self.settings, mm_per_px=self.mm_per_px)
        #: the tissue's motion, once per frame (:mod:`.motion`), its recent
        #: history (:mod:`.follow`) and the plane anchored to it (:mod:`.plane_anchor`)
        self.motion = MotionEstimator()
        self.motion_history = MotionHistory()
        self.plane_anchor = PlaneAnchor()
        self.levels: Optional[Levels] = None  # last display levels (normalised counts)
        self.threshold: Optional[float] = None  # last fluorescence threshold (normalised counts)
        self.noise_sigma: Optional[float] = None  # at the median level, normalised counts
        #: write overlay/nir/intensity pixels inside the normalisation sweep (one
        #: read of the frame, previous frame's levels).  Off by default: on the
        #: 2-core test machine it measured no faster than two passes at 1080p
        #: (3.7 vs 3.4 ms wall, 6.1 vs 5.4 ms CPU), the display sweep being
        #: compute-bound rather than memory-bound; measured again in round w5 (the
        #: kernels alone, one thread, CPU time: fused 3.3-3.6 ms against 2.6-3.0 ms
        #: for the two kernels together; README "Speed of the pipeline"); and again with
        #: the 8-wide filter loop: 0.94x as kernels alone on one thread, but 1.03x the
        #: display thread's CPU in a live pipeline (frames alternating, 1080p).
        self.fuse = False
        self._async: Optional[AsyncAnalysis] = None
        #: threads refining a frame's lesions when the frame waits for its analysis:
        #: every core; live (async) in turn, the analysis thread beside the display
        #: thread has the other core (:mod:`.frame_threads`)
        self.analysis_workers: int = usable_cores()
        self._shown: tuple = (None, None, None)  # (settings, nir_signal, what is shown)
        #: numba threads the per-pixel passes use (set per calling thread at each frame)
        self.display_threads: int = numba.config.NUMBA_NUM_THREADS
        #: the sync/async rule of an ``async_analysis="auto"`` pipeline, else None
        self.analysis_mode: Optional[AnalysisMode] = None
        self._last_sync = None  # (index, Analysis) of the newest frame analysed in sync
        self._fallback_from = None  # the _last_sync async took over from
        if async_analysis:
            self._async = AsyncAnalysis(self.analyzer, black_level=self.black_level)
            self._live_threads = max(1, numba.config.NUMBA_NUM_THREADS - 1)
            if async_analysis == "auto":
                self.analysis_mode = AnalysisMode()
        if warm:
            warm_up()

    # -- control (any thread) -------------------------------------------------
    def update_settings(self, settings: Settings) -> None:
        """Use ``settings`` from the next frame on (a copy is taken)."""
        with self._lock:
            self._pending = settings.copy()

    def reset(self) -> None:
        """Drop temporal state (filter, levels, rim tracks) at the next frame."""
        with self._lock:
            self._reset_pending = True

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
            do_reset, self._reset_pending = self._reset_pending, False
        if pending is not None:
            self.settings = pending
            self.analyzer.update_settings(pending)
        if do_reset:
            self._reset_state()
            # a seek or a new stream: the motion chain breaks (not on a NIR
            # loss, which _reset_state also handles: the white light goes on)
            self.motion.reset()
            self.motion_history.reset()
            self.plane_anchor.reset()

    def close(self) -> None:
        """Stop the analysis thread (async pipelines); safe to call twice."""
        if self._async is not None:
            self._async.close()

    def _reset_state(self) -> None:
        self._last_sync = self._fallback_from = None
        if self._async is not None:
            self._async.clear()
        self.normaliser.reset()
        self.display_levels.reset()
        self.analyzer.reset()

    # -- per frame ------------------------------------------------------------
    def process(self, pair) -> FrameResult:
        """Process one :class:`~nirf_overlay.frame.FramePair`.

        Returns
        -------
        FrameResult
            ``composite`` (H, W, 3) uint8 BGR at WL size; ``rim_mask`` (H, W)
            uint8 0/255 (None while NIR is lost); rims, plane check,
            saturated fraction and per-stage times in ms.
        """
        self._apply_pending()
        mode = self.analysis_mode
        use_async = self._async is not None and (mode is None or not mode.sync)
        if use_async:
            self.display_threads = self._live_threads_for(pair)
        elif self._async is not None:
            self.display_threads = numba.config.NUMBA_NUM_THREADS
        numba.set_num_threads(self.display_threads)  # for the calling thread only
        settings = self.settings
        wl = pair.wl
        if not wl.flags.c_contiguous:
            wl = np.ascontiguousarray(wl)
        stage = {}
        t0 = time.perf_counter()
        motion, placement = self._follow(pair.index, wl, settings)
        tm = time.perf_counter()
        stage["motion"] = (tm - t0) * 1e3
        if pair.nir is None:
            if pair.nir_status == "lost":
                # nothing to filter against when it comes back: start afresh
                # (a "stale" frame, one gap in the NIR stream, keeps the state)
                self._reset_state()
            composite = self.compositor.render(wl, None, settings=settings)
            stage["composite"] = (time.perf_counter() - tm) * 1e3
            stage["total"] = (time.perf_counter() - t0) * 1e3
            return FrameResult(index=pair.index, time_s=pair.wl_time, composite=composite,
                               rim_mask=None, rims=[], fluorescence_mask=None,
                               saturated_fraction=0.0, nir_lost=True,
                               plane=_placed(PlaneCheck(), placement, False, "NIR lost"),
                               nir_status=pair.nir_status, dropped_before=pair.dropped_before,
                               mm_per_px=self.mm_per_px, stage_ms=stage, arrival=pair.arrival,
                               nir_signal=self.nir_entry.signal(pair.nir_bits), motion=motion)

        if self.nir_entry.encoded and self.calibration.dark is not None:
            self._decode_dark(pair.nir_bits)
        nir, nir_bits, nir_signal = self.nir_entry(pair.nir, pair.nir_bits)
        shown = self._display_settings(settings, nir_signal)
        median = self.levels.median if self.levels is not None else 0.0
        fused = None
        if self.levels is not None and self.fuse and self.normaliser.ready_for(pair.nir, wl):
            # single-view modes: write the display in the normalisation sweep,
            # with the previous frame's (smoothed) levels and threshold
            fused = self.compositor.prepare_fused(wl, lo=self.levels.lo, hi=self.levels.hi,
                                                  threshold=_reference(self.threshold, shown),
                                                  settings=shown)
        if self._async is not None:
            # the analysis thread copies the last frame's NIR as it takes it
            # (off this path); the normaliser filters into that same buffer
            self._async.wait_returned()
        # the tissue's shift caps the noise filter's weight: a moving rim is not
        # smeared along its track (which widened the measured thickness)
        norm = self.normaliser.process(nir, wl.shape, nir_bits=nir_bits, gain=pair.gain,
                                       exposure_ms=pair.exposure_ms, settings=settings,
                                       median_level=median, display=fused,
                                       shift_px=motion.largest_shift((wl.shape[1], wl.shape[0])))
        black = self.normaliser.black_level  # what this frame had subtracted
        # feeds the next frame; display-encoded NIR has no sensor black level to find
        # (the tower mapped it to its own black before encoding)
        black_raw = None
        if self.black_level is not None and nir_signal == "linear":
            if use_async:
                # estimated on the analysis thread from the frames it takes (submit
                # below), off the display path (about 2 ms CPU a 1080p frame, live)
                black_raw = self.normaliser.raw_wl
            else:
                if self._async is not None:  # the thread may be feeding it still
                    self._async.wait_idle()
                self.black_level.update(self.normaliser.raw_wl, wl, norm.valid)
            self.normaliser.set_black_level(self.black_level.value)
        t1 = time.perf_counter()
        lv = self.display_levels.update(norm.hist, norm.hist_scale, settings)
        if shown_as_encoded(settings.levels.compression, nir_signal):
            # as the tower encoded it: black to full scale, not the frame's percentiles
            lv = Levels(0.0, float(((1 << nir_bits) - 1) * norm.gain_scale), lv.median)
        t2 = time.perf_counter()
        plane_polygon = _polygon_for_analysis(placement)
        tissue = tissue_place(self.motion_history, pair.index, motion, wl.shape[1])
        analysis, analysis_index = self._analyse(pair.index, norm, wl, plane_polygon, use_async,
                                                 tissue)
        rims = list(analysis.rims)
        since = None
        if analysis_index is not None and analysis_index != pair.index:
            # a lagged analysis (live display): outlines moved by the motion since
            # its frame, so they sit on the tissue of the frame shown; its masks
            # only when read (FrameResult.mask_motion: the viewer never reads them)
            since = self.motion_history.since(analysis_index)
            if since is not None:
                rims = move_rims(rims, since)
        plane = self._plane_check(analysis.plane, placement, analysis_index)
        t3 = time.perf_counter()
        threshold = analysis.threshold
        if not threshold:
            threshold = settings.segment.threshold * display_background(analysis.background, lv.median)
        contours = [r.contour for r in rims if r.contour is not None]
        gaps = [g.points for r in rims for g in r.gaps]
        if fused is not None:
            composite = self.compositor.finish_fused(fused, settings=shown, contours=contours,
                                                     plane=plane, gaps=gaps)
        else:
            composite = self.compositor.render(
                wl, norm.nir, lo=lv.lo, hi=lv.hi, threshold=_reference(threshold, shown),
                settings=shown,
                saturated=norm.saturated if norm.saturated_fraction > 0 else None,
                contours=contours, plane=plane, gaps=gaps)
        if use_async:
            # only now: the analysis thread then works while this thread waits
            # for the next frame, instead of competing with the composite
            self._async.submit(pair.index, norm.nir, wl, norm.valid, plane_polygon, tissue,
                               raw=black_raw)
        t4 = time.perf_counter()
        stage.update(normalise=(t1 - tm) * 1e3, levels=(t2 - t1) * 1e3,
                     analysis=(t3 - t2) * 1e3, composite=(t4 - t3) * 1e3, total=(t4 - t0) * 1e3)
        if analysis_index == pair.index:  # analysed here: its parts too
            stage.update({f"analysis.{k}": v for k, v in analysis.stage_ms.items()})
        if mode is not None:
            mode.frame(pair.arrival, stage["total"], display_ms=stage["total"] - stage["analysis"],
                       analysis_ms=self._async.recent_median_ms() if use_async else None)
        self.levels, self.threshold = Levels(lv.lo, lv.hi, lv.median), float(threshold)
        self.noise_sigma = self.normaliser.noise_sigma(lv.median)
        return FrameResult(
            index=pair.index, time_s=pair.wl_time, composite=composite,
            rim_mask=analysis.rim_mask, rims=rims, fluorescence_mask=analysis.fluorescence_mask,
            mask_motion=since,
            saturated_fraction=norm.saturated_fraction, plane=plane, nir_lost=False,
            dropped_before=pair.dropped_before, mm_per_px=self.mm_per_px, stage_ms=stage,
            arrival=pair.arrival,
            analysis_index=analysis_index, nir_signal=nir_signal, motion=motion,
            dark_subtracted=self.calibration is not None and self.calibration.dark is not None,
            analysis_mode="async" if use_async else "sync",
            black_level=black, notice=self.normaliser.bits_notice,
        )

    def _decode_dark(self, nir_bits: int) -> None:
        """A dark frame given with display-encoded NIR is in the frames' display values:
        decoded by the same transfer, so it is subtracted on the linear scale."""
        if self._dark_bits == nir_bits:
            return
        cal = self.calibration
        self.normaliser.set_calibration(dataclasses.replace(
            cal, dark=self.nir_entry.linear_dark(cal.dark, nir_bits)))
        self._dark_bits = nir_bits

    def _display_settings(self, settings: Settings, nir_signal: str) -> Settings:
        """``settings`` with ``levels.compression`` as it applies to this NIR
        (:func:`~.levels.display_compression`: ``auto`` does not compress a
        tower's display-encoded NIR a second time); the same object while
        neither changes."""
        s, signal, shown = self._shown
        if s is settings and signal == nir_signal:
            return shown
        compression = display_compression(settings.levels.compression, nir_signal)
        shown = settings
        if compression != settings.levels.compression:
            shown = settings.copy()
            shown.levels.compression = compression
        self._shown = (settings, nir_signal, shown)
        return shown

    def _follow(self, index: int, wl, settings):
        """This frame's motion (once per frame, for every consumer) and the plane's place."""
        motion = self.motion.update(wl, index)
        self.motion_history.add(index, motion)
        h, w = wl.shape[:2]
        placement = self.plane_anchor.update(index, settings.plane.polygon, settings.plane.frame,
                                             self.motion_history, (w, h))
        return motion, placement

    def _plane_check(self, check: PlaneCheck, placement, analysis_index) -> PlaneCheck:
        """The analysis's plane check with the plane's place; unknown while it is lost
        or the (lagged) analysis is from before the plane was anchored.  With no plane
        now, none: a lagged analysis of a plane since cleared is not shown (stale)."""
        if placement.polygon is None:
            return PlaneCheck()
        if placement.lost:
            return _placed(check, placement, False, placement.reason)
        if analysis_index is None or analysis_index < placement.anchor_index:
            return _placed(check, placement, False, "waiting for the analysis")
        return _placed(check, placement, True, "")

    #: frames of at least this many WL pixels use every core in a live pipeline
    LIVE_PARALLEL_PIXELS = 4_000_000

    def _live_threads_for(self, pair) -> int:
        """Threads for the per-pixel passes of a live pipeline.

        Between paced frames the OpenMP worker sleeps (the commands keep its
        spinning short, see ``cli._quiet_openmp_workers``), and a pass split
        over every core first waits for it to wake on a core the analysis
        thread may hold.  Up to 1080p that costs as much as the split saves,
        so one core is left to the analysis; at 4K the split saves far more.
        Measured live at 60 / 30 fps, 2 cores, display path median: 640x360
        1.0 ms on one thread vs 2.6 ms on two, 1280x720 2.35 vs 3.3 ms, 1080p
        4.5 vs 4.2-4.7 ms (viewer p99 11.5 vs 12.4 ms); 4K viewer p99 27-32 ms
        on two threads vs 49 ms on one.
        """
        h, w = pair.wl.shape[:2]
        if h * w >= self.LIVE_PARALLEL_PIXELS:
            return numba.config.NUMBA_NUM_THREADS
        return self._live_threads

    def _analyse(self, index: int, norm, wl, plane_polygon, use_async: bool, tissue=None):
        """This frame's analysis, or (async) the newest finished one and its frame.

        An async pipeline hands the frame to the analysis thread at the end of
        :meth:`process`, once its composite is drawn.  An ``"auto"`` pipeline
        in sync first lets the thread finish (one analyzer, one thread at a
        time), and just after falling back to async shows the last frame it
        analysed in sync until the thread has a newer one.
        """
        if not use_async:
            if self._async is not None:
                self._async.wait_idle()
                analysis = self.analyzer.analyze(norm.nir, wl, norm.valid,
                                                 plane_polygon=plane_polygon, tissue=tissue,
                                                 workers=self.analysis_workers)
                self._last_sync = (index, analysis)
                return analysis, index
            return self.analyzer.analyze(norm.nir, wl, norm.valid, plane_polygon=plane_polygon,
                                         tissue=tissue, workers=self.analysis_workers), index
        if self._last_sync is not None and self._last_sync is not self._fallback_from:
            # the first frame after falling back: forget what the thread did
            # before the sync frames, and show the last sync one until it has more
            self._fallback_from = self._last_sync
            self._async.clear()
        latest = self._async.latest() or self._last_sync
        if latest is None:  # nothing finished yet: overlay only, no rims
            return NO_ANALYSIS, None
        return latest[1], latest[0]

    def analysis_durations_ms(self) -> Optional[list]:
        """Wall time of each analysis the analysis thread finished (ms), or None
        for a synchronous pipeline (its analysis time is ``stage_ms["analysis"]``)."""
        return None if self._async is None else self._async.durations_ms()

    @property
    def nir_normalised(self) -> Optional[np.ndarray]:
        """(H, W) float32 normalised, filtered NIR of the last frame (a live buffer), or None."""
        return self.normaliser.filt

    def state_digest(self) -> str:
        """A hash of everything this pipeline carries from one frame to the next
        (:func:`.digest.state_digest`)."""
        return state_digest(self)


def _reference(threshold, settings):
    """The threshold the overlay's opacity starts at: the fluorescence threshold over the
    background (``display.overlay_reference`` = background), or none, so that opacity
    follows the display levels alone (``levels``, as towers draw it)."""
    return threshold if settings.display.overlay_reference == "background" else None
def _polygon_for_analysis(placement) -> list:
    """The polygon the analysis checks this frame: the plane where it is now; none when lost."""
    if placement.polygon is None or placement.lost:
        return []
    return placement.polygon.tolist()


def _placed(check: PlaneCheck, placement, known: bool, reason: str) -> PlaneCheck:
    """``check`` with the plane's place in this frame (unknown: no flag, no TBR)."""
    if placement.polygon is None:
        return check
    drawn = dict(drawn=placement.drawn, drawn_frame=placement.drawn_frame)
    if not known:
        return PlaneCheck(known=False, polygon=placement.polygon, lost_reason=reason, **drawn)
    return dataclasses.replace(check, polygon=placement.polygon, **drawn)


def warm_up(progress=None) -> None:
    """Compile, or load from the numba cache, every kernel of the pipeline (once per
    process; ``progress`` hears each step: :func:`.warmup.warm_up`)."""
    from .warmup import warm_up as _warm

    _warm(progress)
