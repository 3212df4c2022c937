"""Rim analysis on its own thread, for the live display.

On a live stream the picture must not wait for the rim analysis: the overlay
colours come from the current frame's normalised NIR (cheap), while rim
outlines and numbers come from the newest *finished* analysis, at most a frame
or two old.  The analysis thread takes the newest frame whenever it is free
(latest wins), so it never queues work and never adds latency.

``process`` and ``batch`` keep the synchronous pipeline: every frame's
metrics belong to that frame.  ``bench`` times both ways.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Optional

import numpy as np

log = logging.getLogger(__name__)


class AsyncAnalysis:
    """A worker thread running ``analyzer.analyze`` on the newest submitted frame.

    Parameters
    ----------
    analyzer : :class:`~nirf_overlay.processing.analysis.RimAnalyzer`
        Used from the worker thread only (plus its thread-safe
        ``update_settings`` / ``reset``).
    black_level : :class:`~nirf_overlay.processing.black_level.BlackLevelEstimator` or None
        Fed with the raw NIR of each frame handed over with one (``submit(raw=...)``),
        after its analysis: the estimate only feeds later frames, so it is made
        here at the analysis's rate, not on the display path (about 2 ms a 1080p
        frame).  The caller reads its ``value``; while the thread may be running,
        only the thread updates it (:meth:`wait_idle` first otherwise).
    """

    def __init__(self, analyzer, black_level=None):
        self.analyzer = analyzer
        self.black_level = black_level
        self._cond = threading.Condition()
        self._job = None  # (index, lent nir, wl, valid, polygon, tissue, generation) waiting
        self._busy = False
        self._latest = None  # (index, Analysis)
        self._generation = 0  # bumped by clear(): results of older frames are dropped
        self._stop = False
        self._nir: Optional[np.ndarray] = None  # the thread's own copy of the lent NIR
        self._raw: Optional[np.ndarray] = None  # and of the lent raw NIR (black level)
        self._returned = threading.Event()  # set while no caller's NIR is lent out
        self._returned.set()
        self.error: Optional[str] = None
        self._warned_stall = False
        self._durations: deque = deque(maxlen=10_000)  # ms per finished analysis
        self._thread = threading.Thread(target=self._run, name="nirf-analysis", daemon=True)
        self._thread.start()

    def submit(self, index: int, nir: np.ndarray, wl: np.ndarray, valid,
               plane_polygon=None, tissue=None, raw=None) -> bool:
        """Offer a frame; taken only when the thread is free. Returns True if taken.

        ``plane_polygon``: the transection plane where it is in this frame
        (None: the settings' polygon), checked by the analysis; ``tissue``
        the frame's place in the tissue's motion (:mod:`.reuse`).

        ``nir`` is lent, not copied here: the analysis thread copies it into
        its own buffer as soon as it takes the frame, off the display path
        (33 MB at 4K, ~3 ms).  The caller must call :meth:`wait_returned`
        before writing into ``nir`` again (the pipeline filters into the same
        buffer every frame).  ``wl`` and ``valid`` are used as they are: no
        source writes into a pair's arrays once handed out
        (:class:`~nirf_overlay.frame.FramePair`), and the normaliser's
        field-of-view mask changes only with the calibration.  ``raw`` (the raw
        NIR in WL coordinates, for the ``black_level`` estimator, or None) is lent
        the same way.
        """
        with self._cond:
            if self._busy or self._job is not None or self._stop:
                return False
            self._returned.clear()
            self._job = (index, nir, wl, valid, plane_polygon, tissue, raw, self._generation)
            self._cond.notify()
            return True

    def wait_returned(self, timeout: float = 1.0) -> bool:
        """Wait until the NIR lent by the last :meth:`submit` is copied (at once if none is out).

        The thread takes a job as soon as it is submitted (it is idle then),
        so at video rate this never waits.  Returns False if the NIR is still
        out after ``timeout`` s (a stalled thread): the caller goes on, and the
        result of that analysis, which may see part of the next frame, is
        dropped.
        """
        if self._returned.wait(timeout):
            return True
        with self._cond:  # that analysis may mix two frames: never show it
            self._generation += 1
        if not self._warned_stall:
            self._warned_stall = True
            log.warning("rim analysis thread stalled for %.1f s taking a frame; "
                        "its result will be dropped", timeout)
        return False

    def latest(self):
        """``(index, Analysis)`` of the newest finished analysis, or None."""
        with self._cond:
            return self._latest

    def wait_idle(self, timeout: float = 2.0) -> bool:
        """Wait until no analysis is running or waiting to be taken (the caller
        may then use the analyzer itself); False after ``timeout`` s."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy and self._job is None, timeout)

    def recent_median_ms(self, n: int = 30) -> Optional[float]:
        """Median wall time of the last ``n`` finished analyses (ms), or None before any."""
        with self._cond:
            d = self._durations
            if not d:
                return None
            k = min(n, len(d))
            return float(np.median([d[-i] for i in range(1, k + 1)]))

    def durations_ms(self) -> list:
        """Wall time of each finished analysis, oldest first (ms; the last 10 000)."""
        with self._cond:
            return list(self._durations)

    def clear(self) -> None:
        """Forget the finished analysis (after a seek or reset)."""
        with self._cond:
            self._latest = None
            self._drop_job()
            self._generation += 1

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._drop_job()
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def _drop_job(self) -> None:
        """Forget a job not taken yet: its NIR is no longer lent (holding the lock)."""
        if self._job is not None:
            self._job = None
            self._returned.set()

    def _run(self) -> None:
        _lower_own_priority()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._job is not None or self._stop)
                if self._stop:
                    return
                index, lent, wl, valid, plane_polygon, tissue, raw, generation = self._job
                self._job = None
                self._busy = True
            t0 = time.perf_counter()
            try:
                try:
                    self._nir = _copied(self._nir, lent)
                    if raw is not None:
                        self._raw = _copied(self._raw, raw)
                finally:
                    self._returned.set()
                result = self.analyzer.analyze(self._nir, wl, valid, plane_polygon=plane_polygon,
                                               tissue=tissue)
                if raw is not None and self.black_level is not None:
                    self.black_level.update(self._raw, wl, valid)
            except Exception as e:  # reported in the HUD by the engine, never fatal
                log.exception("rim analysis failed")
                self.error = f"rim analysis: {e.__class__.__name__}: {e}"
                result = None
            with self._cond:
                self._busy = False
                if result is not None:
                    self._durations.append((time.perf_counter() - t0) * 1e3)
                if result is not None and generation == self._generation:
                    self._latest = (index, result)
                self._cond.notify_all()


def _copied(buf: Optional[np.ndarray], lent: np.ndarray) -> np.ndarray:
    """``lent`` copied into ``buf`` (a new buffer when it has another shape or dtype)."""
    if buf is None or buf.shape != lent.shape or buf.dtype != lent.dtype:
        buf = np.empty_like(lent)
    np.copyto(buf, lent)
    return buf


#: how much lower the analysis thread runs than the display path (Linux nice steps)
ANALYSIS_NICE_STEP = 5


def _lower_own_priority() -> None:
    """Give the CPU to the display path first: on a 2-core machine the analysis
    thread otherwise competes with the overlay kernels for every core."""
    import os

    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + ANALYSIS_NICE_STEP)
    except (OSError, AttributeError):  # not Linux, or not allowed: run at normal priority
        pass
