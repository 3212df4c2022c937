"""Time the pipeline, and the same steps written plainly with OpenCV/numpy.

``run_bench`` preloads frames, warms the pipeline up on a few of them, then
times :meth:`Pipeline.process` (normalise to composite, metrics included) on
every preloaded frame, and :class:`PlainPipeline` -- the straightforward
version: float64 numpy arithmetic, ``np.percentile``/``np.median`` over the
whole frame, ``cv2.applyColorMap``/``cv2.LUT``, a float per-pixel alpha blend,
a global threshold + morphology + ``connectedComponentsWithStats`` analysis
and ``cv2.drawContours`` -- on the same frames.  Every timed run goes through
the one frame loop, :func:`nirf_overlay.engine.run_frames`, with a listener
that keeps each frame's time; the live way feeds it through a pacing
generator.
"""

from __future__ import annotations

import time
from typing import Optional

import cv2
import numpy as np

from .engine import Listener, run_frames
from .processing.colormaps import colormap, palette
from .processing.levels import display_compression
from .processing.result import FrameResult, PlaneCheck, RimMeasurement

_CV2_MAP = {"viridis": cv2.COLORMAP_VIRIDIS, "inferno": cv2.COLORMAP_INFERNO,
            "cividis": cv2.COLORMAP_CIVIDIS}


class PlainPipeline:
    """The pipeline's steps written plainly (the bench's reference, not for use).

    Same inputs and outputs as :class:`~nirf_overlay.processing.pipeline.Pipeline`
    (dark, flat, gain, motion-aware temporal filter, saturation, percentile
    levels with smoothing, log/gamma/linear compression, colour map, alpha
    ramp, fluorescence threshold relative to the liver level, morphological
    clean-up, components, per-component T/B, contours).
    """

    def __init__(self, settings, calibration=None):
        self.settings = settings
        cal = calibration
        self.dark = None if cal is None or cal.dark is None else cal.dark.astype(np.float64)
        self.flat = None if cal is None or cal.flat is None else cal.flat.astype(np.float64)
        self.gain_ref = None if cal is None else cal.gain_ref
        self.exp_ref = None if cal is None else cal.exposure_ref_ms
        self.mm = None if cal is None else cal.mm_per_px
        self.prev = None
        self.levels = None
        self.noise_a = 0.0
        self.kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    def process(self, pair) -> FrameResult:
        s = self.settings
        ns, lv, ds = s.normalise, s.levels, s.display
        v = pair.nir.astype(np.float64)
        if self.dark is not None:
            v = v - self.dark
        if self.flat is not None:
            v = v / self.flat
        g = 1.0
        if pair.gain:
            self.gain_ref = self.gain_ref or pair.gain
            g *= self.gain_ref / pair.gain
        if pair.exposure_ms:
            self.exp_ref = self.exp_ref or pair.exposure_ms
            g *= self.exp_ref / pair.exposure_ms
        v = v * g
        full = 2 ** pair.nir_bits - 1
        sat = pair.nir >= np.ceil(ns.saturation_fraction * full)
        med_prev = self.levels[2] if self.levels else 0.0
        c = max(0.25 * med_prev, 1e-3)
        d = v[:, 1:] - v[:, :-1]
        m = np.maximum(0.5 * (v[:, 1:] + v[:, :-1]), 0) + c
        self.noise_a = np.median(d * d / (2 * m)) / 0.454936
        if self.prev is None or ns.temporal_alpha == 0:
            f = v
        else:
            sigma = np.sqrt(self.noise_a * (np.maximum(self.prev, 0) + c)) + 1e-12
            w = ns.temporal_alpha * np.clip(2 - np.abs(v - self.prev) / (ns.motion_threshold * sigma), 0, 1)
            f = w * self.prev + (1 - w) * v
        f = np.where(sat, v, f)
        self.prev = f
        lo, hi = np.percentile(f, [lv.low_percentile, lv.high_percentile])
        med = float(np.median(f))
        if self.levels is None:
            self.levels = (lo, hi, med)
        else:
            a = lv.smoothing
            self.levels = tuple(a * o + (1 - a) * n for o, n in zip(self.levels, (lo, hi, med)))
        lo, hi, med = self.levels
        x = np.clip((f - lo) / max(hi - lo, 1e-9), 0, 1)
        compression = display_compression(lv.compression, "linear")  # raw counts
        if compression == "log":
            t = np.log1p(lv.log_strength * x) / np.log1p(lv.log_strength)
        elif compression == "gamma":
            t = x ** lv.gamma
        else:
            t = x
        u8 = (t * 255).astype(np.uint8)
        if ds.colormap in _CV2_MAP:
            colour = cv2.applyColorMap(u8, _CV2_MAP[ds.colormap])
        else:
            colour = cv2.LUT(cv2.cvtColor(u8, cv2.COLOR_GRAY2BGR), colormap(ds.colormap).reshape(256, 1, 3))
        # analysis: global threshold relative to the liver level, clean-up, components
        bg = med
        thr = s.segment.threshold * bg
        mask = (f > thr).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self.kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self.kernel)
        n, labels, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
        rims = []
        rim_mask = np.zeros(mask.shape, np.uint8)
        for i in range(1, n):
            area = stats[i, cv2.CC_STAT_AREA]
            if area < 50:
                continue
            comp = labels == i
            T = float(f[comp].mean())
            rim_mask[comp] = 255
            rims.append(RimMeasurement(
                rim_id=i, target_intensity=T, background_intensity=bg, tbr=T / bg,
                contrast=(T - bg) / bg, rim_thickness_px=0.0, rim_thickness_mm=None,
                rim_completeness=0.0, rim_area_px=float(area),
                rim_area_mm2=area * self.mm ** 2 if self.mm else None, core_area_px=0.0,
                core_area_mm2=None, centroid=(float(cents[i, 0]), float(cents[i, 1])),
                bbox=tuple(int(q) for q in stats[i, :4])))
        # compositing: alpha ramp above the threshold, float blend over WL
        x_thr = np.clip((thr - lo) / max(hi - lo, 1e-9), 0, 1)
        t_thr = (np.log1p(lv.log_strength * x_thr) / np.log1p(lv.log_strength)
                 if compression == "log" else x_thr ** (lv.gamma if compression == "gamma" else 1))
        t0 = max(ds.alpha_floor, float(t_thr))
        alpha = ds.alpha * np.sqrt(np.clip((t - t0) / max(0.5 * (1 - t0), 0.01), 0, 1))
        a3 = alpha[..., None]
        out = (pair.wl.astype(np.float64) * (1 - a3) + colour.astype(np.float64) * a3)
        out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
        if ds.show_saturation:
            out[sat] = palette(ds.colormap).saturation
        contours, _ = cv2.findContours(rim_mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, palette(ds.colormap).rim, 2)
        return FrameResult(index=pair.index, time_s=pair.wl_time, composite=out, rim_mask=rim_mask,
                           rims=rims, saturated_fraction=float(sat.mean()), plane=PlaneCheck(),
                           mm_per_px=self.mm)


def _stats(ms: list[float]) -> tuple[float, float]:
    a = np.asarray(ms, dtype=np.float64)
    return float(np.median(a)), float(np.percentile(a, 99))


#: the two ways the pipeline runs (see :func:`run_bench`)
MODES = ("live", "every-frame")


def run_bench(pairs: list, settings, calibration=None, *, warmup: int = 5,
              plain_frames: Optional[int] = 10, rate: Optional[float] = None,
              headline: str = "live", progress=None, reuse: bool = True,
              parts: Optional[dict] = None, step=None) -> dict:
    """Time the pipeline, both ways it runs, and the plain version on preloaded ``pairs``.

    ``every-frame``
        :class:`~nirf_overlay.processing.pipeline.Pipeline` as ``process`` and
        ``batch`` run it: every frame analysed before the next, frames fed back
        to back.  The time per frame is normalise + levels + analysis + composite.
    ``live``
        as the viewer runs it: frames fed at the stream's ``rate`` (frames per
        second), the overlay drawn from each frame at once and the rim analysis
        on its own thread on the newest frame it can take
        (:mod:`~nirf_overlay.processing.async_analysis`).  The time per frame
        is what the display path spends on it (normalise + levels + handing the
        frame to the analysis + composite) while the analysis thread competes
        for the same cores; how often and how late the rims are measured is
        reported beside it (``live_analysed_fraction``, ``live_analysis_lag_*``,
        ``live_analysis_ms_*``).

    Parameters
    ----------
    pairs : preloaded FramePairs; the first ``warmup`` are run untimed, the
        rest are timed (all of them when there are no more than ``warmup``)
    settings, calibration : as for :class:`~nirf_overlay.processing.pipeline.Pipeline`
    warmup : frames run before timing (kernel loading, first-frame set-up)
    plain_frames : frames the plain version is timed on (it is slow); None = all
    rate : frames per second the live run is fed at; None skips the live run
    reuse : also time every frame analysed the other way round of
        ``segment.reuse_rims`` (:mod:`~nirf_overlay.processing.reuse`): the
        ``reuse_off`` / ``reuse_on`` figures and their ratios
    parts : optional dict filled with each timed run as it finishes
        (``every_frame``, ``reuse_other``, ``live``, ``plain``: what a stopped
        bench can still report)
    step : optional callable told the name of each run as it starts
    headline : which mode ``ms_per_frame_*``, ``fps``, ``stages`` and
        ``cpu_ms_per_frame`` describe (``live`` falls back to ``every-frame``
        when ``rate`` is None).  In the live way ``fps`` is what the display
        path alone could sustain; the analysis keeps its own pace
        (``live_analyses_per_s``) and would skip more frames at a higher rate.
        ``speedup`` always compares the plain version with every frame
        analysed, the same work.

    Returns
    -------
    dict: mode, ms_per_frame_median, ms_per_frame_p99, fps, size, frames, stages,
    speedup, cpu_ms_per_frame (the headline mode); every_frame_* and live_*
    (both modes); plain_ms_per_frame_median, plain_ms_per_frame_p99,
    plain_cpu_ms_per_frame; first_frame_ms, construct_ms, threads; the
    memory traffic of the per-pixel passes and the memcpy floor
    (:func:`~nirf_overlay.bench_figures.traffic_figures`); with ``reuse``
    reuse_off, reuse_on, reuse_analysis_ratio, reuse_frame_ratio
    """
    from .bench_figures import memory_traffic, traffic_figures
    import numba

    from .processing.pipeline import Pipeline

    if headline not in MODES:
        raise ValueError(f"headline must be one of {MODES}, got {headline!r}")
    timed = pairs[warmup:] if len(pairs) > warmup else pairs
    threads = numba.get_num_threads()  # a live pipeline sets its own per frame
    parts = {} if parts is None else parts
    step = step or (lambda name: None)

    step("every frame analysed in turn")
    t = time.perf_counter()
    pipe = Pipeline(settings, calibration)
    construct_ms = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    pipe.process(pairs[0])
    first_ms = (time.perf_counter() - t) * 1e3
    for p in pairs[1:warmup]:
        pipe.process(p)
    every = parts["every_frame"] = _every_frame(pipe, timed, progress)
    traffic = traffic_figures(memory_traffic(pipe, timed[-1], every.pop("last")), every["stages"])

    other = None
    if reuse:
        flipped = settings.copy()
        flipped.set("segment.reuse_rims", not settings.segment.reuse_rims)
        step("every frame analysed, " + ("with" if flipped.segment.reuse_rims else "without")
             + " rims re-measured where the motion puts them")
        pipe = Pipeline(flipped, calibration)
        for p in pairs[:warmup]:
            pipe.process(p)
        other = parts["reuse_other"] = _every_frame(pipe, timed, progress)
        other.pop("last")

    live = None
    if rate:
        step(f"live, fed at {rate:g} fps")
        pipe = Pipeline(settings, calibration, async_analysis=True)
        try:
            # warm-up paced too, so the analysis thread is in its stride
            _time_frames(pipe, pairs[:warmup], rate=rate)
            live = _time_frames(pipe, timed, rate=rate, progress=progress)
            live["threads"] = pipe.display_threads
            parts["live"] = live
        finally:
            pipe.close()
            numba.set_num_threads(threads)

    step("plain version")
    plain = PlainPipeline(settings.copy(), calibration)
    sub = timed if plain_frames is None else timed[:max(1, plain_frames)]
    plain.process(sub[0])  # first call allocates; not timed
    plain_run = parts["plain"] = _time_frames(plain, sub)
    pmed, pp99, plain_cpu_ms = plain_run["median"], plain_run["p99"], plain_run["cpu"]

    h, w = pairs[0].wl.shape[:2]
    res = {"mode": "live" if (headline == "live" and live) else "every-frame"}
    head = live if res["mode"] == "live" else every
    res.update({
        "ms_per_frame_median": head["median"], "ms_per_frame_p99": head["p99"],
        "fps": round(1000.0 / head["median"], 1) if head["median"] > 0 else None,
        "size": [w, h], "frames": len(timed), "stages": head["stages"],
        # the plain version analyses every frame: only that way is comparable
        "speedup": round(pmed / every["median"], 1) if every["median"] > 0 else None,
        "cpu_ms_per_frame": head["cpu"],
        "every_frame_ms_median": every["median"], "every_frame_ms_p99": every["p99"],
        "every_frame_stages": every["stages"], "every_frame_cpu_ms_per_frame": every["cpu"],
        "every_frame_speedup": round(pmed / every["median"], 1) if every["median"] > 0 else None,
    })
    res.update(traffic)
    if other is not None:
        res.update(_reuse_figures(settings.segment.reuse_rims, every, other))
    if live:
        res.update({
            "live_rate_fps": float(rate), "live_ms_median": live["median"], "live_ms_p99": live["p99"],
            "live_stages": live["stages"], "live_cpu_ms_per_frame": live["cpu"],
            "live_display_threads": live["threads"],
            "live_late_fraction": live["late_fraction"],
            "live_analysed_fraction": live["analysed_fraction"],
            "live_analysis_ms_median": live["analysis_ms_median"],
            "live_analysis_ms_p99": live["analysis_ms_p99"],
            "live_analyses_per_s": (round(1000.0 / live["analysis_ms_median"], 1)
                                    if live["analysis_ms_median"] else None),
            "live_analysis_lag_frames_median": live["lag_median"],
            "live_analysis_lag_frames_max": live["lag_max"],
        })
    res.update({
        "plain_ms_per_frame_median": round(pmed, 3), "plain_ms_per_frame_p99": round(pp99, 3),
        "plain_frames": len(sub), "plain_cpu_ms_per_frame": round(plain_cpu_ms, 3),
        "first_frame_ms": round(first_ms, 1), "construct_ms": round(construct_ms, 1),
        "threads": threads, "threading_layer": _threading_layer(),
    })
    return res


def _every_frame(pipe, pairs: list, progress=None) -> dict:
    """:func:`_time_frames` back to back, with the share of frames whose analysis ran the
    full candidate search (``searched_fraction``) and the last result (``last``)."""
    reuse = pipe.analyzer.reuse
    counts0, resnaps0 = dict(reuse.counts), reuse.resnaps
    run = _time_frames(pipe, pairs, progress=progress, keep_last=True)
    counts = {k: v - counts0.get(k, 0) for k, v in reuse.counts.items()}
    reused = counts.pop("reused", 0)
    run["searched_fraction"] = round(1.0 - reused / len(pairs), 4)
    run["search_reasons"] = {k: v for k, v in counts.items() if v}
    run["resnapped_rims"] = reuse.resnaps - resnaps0  # grown rims re-measured, not searched
    return run


def _reuse_figures(reuse_on: bool, every: dict, other: dict) -> dict:
    """Every frame analysed with and without rims re-measured where the motion puts them."""
    on, off = (every, other) if reuse_on else (other, every)

    def figures(run):
        return {"ms_median": run["median"], "ms_p99": run["p99"], "cpu_ms_per_frame": run["cpu"],
                "analysis_ms_median": run["stages"].get("analysis"), "stages": run["stages"],
                "searched_fraction": run["searched_fraction"]}

    def ratio(a, b):
        return round(a / b, 3) if a is not None and b else None

    return {"reuse_rims": bool(reuse_on), "reuse_off": figures(off),
            "reuse_on": {**figures(on), "search_reasons": on["search_reasons"],
                         "resnapped_rims": on["resnapped_rims"]},
            "reuse_analysis_ratio": ratio(on["stages"].get("analysis"), off["stages"].get("analysis")),
            "reuse_frame_ratio": ratio(on["median"], off["median"])}


def _time_frames(pipe, pairs: list, *, rate: Optional[float] = None, progress=None,
                 keep_last: bool = False) -> dict:
    """Run ``pipe`` over ``pairs`` through the one frame loop, back to back or
    (``rate``) paced (:func:`_paced`), and time each ``process`` call.

    Analysis times (live) include the analysis thread's copy of the NIR.
    ``keep_last``: the last result under ``last``.
    """
    if not pairs:
        return {}
    period = 1.0 / rate if rate else 0.0
    analyses0 = len(pipe.analysis_durations_ms()) if period else 0
    timer = _FrameTimer(period, progress)
    cpu0 = _cpu_seconds()
    run_frames(_paced(pairs, period) if period else pairs, pipe, [timer])
    cpu = (_cpu_seconds() - cpu0) * 1e3 / len(pairs)
    med, p99 = _stats(timer.times)
    out = {"median": round(med, 3), "p99": round(p99, 3), "cpu": round(cpu, 3),
           "stages": {k: round(float(np.median(v)), 3) for k, v in timer.stages.items()}}
    if keep_last:  # the last FrameResult (bench_figures.memory_traffic reads its arrays)
        out["last"] = timer.last
    if period:
        durations = pipe.analysis_durations_ms()[analyses0:]
        amed, ap99 = _stats(durations) if durations else (None, None)
        lags = timer.lags
        out.update({
            "late_fraction": round(timer.late / len(pairs), 4),
            "analysed_fraction": round(len(durations) / len(pairs), 4),
            "analysis_ms_median": None if amed is None else round(amed, 3),
            "analysis_ms_p99": None if ap99 is None else round(ap99, 3),
            "lag_median": float(np.median(lags)) if lags else None,
            "lag_max": int(max(lags)) if lags else None,
        })
    return out


def _paced(pairs: list, period: float):
    """``pairs`` at most one per ``period`` seconds, as a stream would feed them.

    A pair that is due while the previous one is still processing goes as
    soon as that one is done, and the schedule does not try to catch up
    afterwards; none is skipped (a live source would drop it instead:
    ``late_fraction`` says how often that would happen).  Unlike the
    viewer's :class:`~nirf_overlay.engine.replay.Pacer`, which follows the
    source's timestamps and may catch up within a period.
    """
    due = time.perf_counter()
    for pair in pairs:
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        yield pair
        due = max(due + period, time.perf_counter())


class _FrameTimer(Listener):
    """What :func:`_time_frames` keeps of each result: process time, stage times, analysis lag."""

    def __init__(self, period: float, progress=None):
        self.period = period
        self.progress = progress
        self.times: list = []  # ms
        self.stages: dict = {}  # stage -> [ms]
        self.lags: list = []  # frames between a result and the analysis its rims come from
        self.late = 0  # results that took longer than the period
        self.last = None  # the last FrameResult

    def on_result(self, frame) -> None:
        r = self.last = frame.result
        self.times.append(frame.process_ms)
        for k, v in r.stage_ms.items():
            self.stages.setdefault(k, []).append(v)
        if r.analysis_index is not None:
            self.lags.append(frame.pair.index - r.analysis_index)
        if self.period:
            self.late += frame.process_ms > self.period * 1e3
        if self.progress:
            self.progress()


def _cpu_seconds() -> float:
    """User + system CPU time of this process (all threads), seconds.

    On a shared machine wall times swing with the neighbours' load; CPU time
    shows the work itself (wall time on idle cores is about CPU time / threads).
    """
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _threading_layer() -> str:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:
        return "unknown"
