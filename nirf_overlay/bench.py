"""Time the pipeline, and the same steps written plainly with OpenCV/numpy.

``run_bench`` preloads frames, warms the pipeline up on a few of them, then
times :meth:`Pipeline.process` (normalise to composite, metrics included) on
every preloaded frame, and :class:`PlainPipeline` -- the straightforward
version: float64 numpy arithmetic, ``np.percentile``/``np.median`` over the
whole frame, ``cv2.applyColorMap``/``cv2.LUT``, a float per-pixel alpha blend,
a global threshold + morphology + ``connectedComponentsWithStats`` analysis
and ``cv2.drawContours`` -- on the same frames.
"""

from __future__ import annotations

import time
from typing import Optional

import cv2
import numpy as np

from .processing.colormaps import colormap, palette
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
        self.gain_ref = getattr(cal, "gain_ref", None)
        self.exp_ref = getattr(cal, "exposure_ref_ms", None)
        self.mm = getattr(cal, "mm_per_px", None)
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
        if lv.compression == "log":
            t = np.log1p(lv.log_strength * x) / np.log1p(lv.log_strength)
        elif lv.compression == "gamma":
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
                 if lv.compression == "log" else x_thr ** (lv.gamma if lv.compression == "gamma" else 1))
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


def run_bench(pairs: list, settings, calibration=None, *, warmup: int = 5,
              plain_frames: Optional[int] = 10, progress=None) -> dict:
    """Time the pipeline and the plain version on preloaded ``pairs``.

    Parameters
    ----------
    pairs : preloaded FramePairs; the first ``warmup`` are run untimed, the
        rest are timed (all of them when there are no more than ``warmup``)
    settings, calibration : as for :class:`~nirf_overlay.processing.pipeline.Pipeline`
    warmup : frames run before timing (kernel loading, first-frame set-up)
    plain_frames : frames the plain version is timed on (it is slow); None = all

    Returns
    -------
    dict: ms_per_frame_median, ms_per_frame_p99, fps, size, frames, stages
    (median ms per stage), plain_ms_per_frame_median, plain_ms_per_frame_p99,
    speedup, cpu_ms_per_frame and plain_cpu_ms_per_frame (process CPU time per
    frame, all threads), first_frame_ms, construct_ms, threads
    """
    import numba

    from .processing.pipeline import Pipeline

    t = time.perf_counter()
    pipe = Pipeline(settings, calibration)
    construct_ms = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    pipe.process(pairs[0])
    first_ms = (time.perf_counter() - t) * 1e3
    for p in pairs[1:warmup]:
        pipe.process(p)
    timed = pairs[warmup:] if len(pairs) > warmup else pairs
    times, stages = [], {}
    cpu0 = _cpu_seconds()
    for p in timed:
        t = time.perf_counter()
        r = pipe.process(p)
        times.append((time.perf_counter() - t) * 1e3)
        for k, v in r.stage_ms.items():
            stages.setdefault(k, []).append(v)
        if progress:
            progress()
    cpu_ms = (_cpu_seconds() - cpu0) * 1e3 / len(timed)
    med, p99 = _stats(times)
    plain = PlainPipeline(settings.copy(), calibration)
    sub = timed if plain_frames is None else timed[:max(1, plain_frames)]
    plain.process(sub[0])  # first call allocates; not timed
    ptimes = []
    cpu0 = _cpu_seconds()
    for p in sub:
        t = time.perf_counter()
        plain.process(p)
        ptimes.append((time.perf_counter() - t) * 1e3)
    plain_cpu_ms = (_cpu_seconds() - cpu0) * 1e3 / len(sub)
    pmed, pp99 = _stats(ptimes)
    h, w = pairs[0].wl.shape[:2]
    return {
        "ms_per_frame_median": round(med, 3), "ms_per_frame_p99": round(p99, 3),
        "fps": round(1000.0 / med, 1) if med > 0 else None, "size": [w, h], "frames": len(timed),
        "stages": {k: round(float(np.median(v)), 3) for k, v in stages.items()},
        "plain_ms_per_frame_median": round(pmed, 3), "plain_ms_per_frame_p99": round(pp99, 3),
        "plain_frames": len(sub), "speedup": round(pmed / med, 1) if med > 0 else None,
        "cpu_ms_per_frame": round(cpu_ms, 3), "plain_cpu_ms_per_frame": round(plain_cpu_ms, 3),
        "first_frame_ms": round(first_ms, 1), "construct_ms": round(construct_ms, 1),
        "threads": numba.get_num_threads(), "threading_layer": _threading_layer(),
    }


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
