"""What the viewer actually painted: latency and frame counts for ``view --stats-json``.

Qt-free (plain numbers from ``time.monotonic``), so it could live below the
GUI; it is filled by the main window's view after every paint.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Optional

import numpy as np

from ..engine import Engine, percentile

__all__ = ["ViewerStats"]


class ViewerStats:
    """Latency and frame counts of what the view actually painted.

    ``latency = painted - pair.arrival`` (seconds, ``time.monotonic``), i.e.
    the time the viewer adds: processing, mailbox, paint.  Frames painted in
    the first ``warmup_s`` seconds after the first painted frame are not
    counted (the pipeline's first frames fill caches).  White-light frames
    painted while the kernels were still being prepared (``frame.preparing``)
    are counted apart (``white_light_frames``), never as overlay frames.

    Attributes
    ----------
    view_dropped : frames handed to the view but replaced before they were painted
    first_painted, overlay_on : ``time.monotonic()`` of the first frame painted and
        of the first one with the overlay (None: not yet); ``created`` is the reference
    """

    def __init__(self, warmup_s: float = 0.0):
        self.t0: Optional[float] = None  # when the first frame was painted
        self.warmup_s = warmup_s
        self.latency: list = []
        self.process: list = []  # arrival -> processed (source hand-over + pipeline)
        self.display: list = []  # processed -> painted (mailbox, GUI timer, paint)
        self.painted_at: list = []
        self.recent = deque(maxlen=30)
        self.view_dropped = 0
        self.sync_frames = 0  # painted frames whose rims were found before the paint
        self._base = None  # drop counters at the end of warm-up
        self.created = time.monotonic()
        self.first_painted: Optional[float] = None
        self.overlay_on: Optional[float] = None
        self.white_light_frames = 0

    def on_painted(self, frame, t: float, engine: Engine) -> None:
        """Count ``frame`` (a DisplayFrame) painted at ``t`` (``time.monotonic()``)."""
        if self.first_painted is None:
            self.first_painted = t
        if frame.preparing:
            self.white_light_frames += 1
            return
        if self.overlay_on is None:
            self.overlay_on = t
        lat = t - frame.arrival
        self.recent.append(lat)
        if self.t0 is None:
            self.t0 = t
        if t - self.t0 < self.warmup_s:
            return
        if self._base is None:
            self._base = self._drop_counters(engine)
        self.latency.append(lat)
        self.process.append(frame.processed - frame.arrival)
        self.display.append(t - frame.processed)
        self.painted_at.append(t)
        self.sync_frames += frame.result.analysis_mode == "sync"

    def _drop_counters(self, engine: Engine) -> tuple:
        return engine.dropped, self.view_dropped, engine.source.stats.dropped

    def recent_latency_ms(self) -> Optional[float]:
        return 1000.0 * float(np.median(self.recent)) if self.recent else None

    def summary(self, engine: Engine) -> dict:
        """The numbers ``--stats-json`` writes (milliseconds, frames, fps)."""
        n = len(self.latency)
        now = self._drop_counters(engine)
        base = self._base or now
        mailbox, view, source = (a - b for a, b in zip(now, base))
        dropped = mailbox + view + source
        span = self.painted_at[-1] - self.painted_at[0] if n > 1 else 0.0
        ms = [1000.0 * x for x in self.latency]
        half = n // 2
        return {
            "frames_displayed": n,
            "frames_dropped": dropped,
            "dropped_fraction": dropped / (n + dropped) if n + dropped else 0.0,
            "dropped_in_mailbox": mailbox,
            "dropped_before_paint": view,
            "dropped_by_source": source,
            "latency_ms_median": percentile(ms, 50),
            "latency_ms_p99": percentile(ms, 99),
            "latency_ms_max": max(ms) if ms else None,
            "latency_ms_p99_first_half": percentile(ms[:half], 99) if half else None,
            "latency_ms_p99_second_half": percentile(ms[half:], 99) if half else None,
            "process_ms_median": percentile([1000.0 * x for x in self.process], 50),
            "process_ms_p99": percentile([1000.0 * x for x in self.process], 99),
            "display_ms_median": percentile([1000.0 * x for x in self.display], 50),
            "display_ms_p99": percentile([1000.0 * x for x in self.display], 99),
            "analysed_in_sync_fraction": self.sync_frames / n if n else None,
            "analysis_fallbacks": _fallbacks(engine.pipeline),
            "fps_displayed": (n - 1) / span if span > 0 else 0.0,
            "seconds_measured": span,
            "warmup_s": self.warmup_s,
            "size": list(engine.info.size),
            "source_fps": engine.info.fps,
            "source": engine.info.description,
            "first_frame_after_s": self._after(self.first_painted),
            "overlay_on_after_s": self._after(self.overlay_on),
            "white_light_frames": self.white_light_frames,
        }

    def _after(self, t: Optional[float]) -> Optional[float]:
        return None if t is None else t - self.created


def _fallbacks(pipeline):
    """How often the viewer fell back to the analysis thread; None before the pipeline
    exists (the kernels still compiling) or when it never chooses (forced sync/async)."""
    if pipeline is None or pipeline.analysis_mode is None:
        return None
    return pipeline.analysis_mode.fallbacks
