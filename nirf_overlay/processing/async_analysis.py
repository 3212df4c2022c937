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
    """

    def __init__(self, analyzer):
        self.analyzer = analyzer
        self._cond = threading.Condition()
        self._job = None  # (index, nir, wl, valid) waiting to be analysed
        self._busy = False
        self._latest = None  # (index, Analysis)
        self._generation = 0  # bumped by clear(): results of older frames are dropped
        self._stop = False
        self._buffers: list = []  # two NIR copies, used in turn
        self._turn = 0
        self.error: Optional[str] = None
        self._durations: deque = deque(maxlen=10_000)  # ms per finished analysis
        self._thread = threading.Thread(target=self._run, name="nirf-analysis", daemon=True)
        self._thread.start()

    def _copy(self, nir: np.ndarray) -> np.ndarray:
        if not self._buffers or self._buffers[0].shape != nir.shape:
            self._buffers = [np.empty_like(nir) for _ in range(2)]
        self._turn ^= 1
        n = self._buffers[self._turn]
        np.copyto(n, nir)
        return n

    def submit(self, index: int, nir: np.ndarray, wl: np.ndarray, valid) -> bool:
        """Offer a frame; taken only when the thread is free. Returns True if taken.

        ``nir`` is copied (the pipeline filters into the same buffer every frame),
        only when the frame is taken.  ``wl`` is the pair's own array, which no
        source writes into once handed out (:class:`~nirf_overlay.frame.FramePair`).
        """
        with self._cond:
            if self._busy or self._job is not None or self._stop:
                return False
            # the buffer in turn is not the one the worker may still be reading:
            # the worker is idle here, and it last read the other one
            self._job = (index, self._copy(nir), wl, valid, self._generation)
            self._cond.notify()
            return True

    def latest(self):
        """``(index, Analysis)`` of the newest finished analysis, or None."""
        with self._cond:
            return self._latest

    def durations_ms(self) -> list:
        """Wall time of each finished analysis, oldest first (ms; the last 10 000)."""
        with self._cond:
            return list(self._durations)

    def clear(self) -> None:
        """Forget the finished analysis (after a seek or reset)."""
        with self._cond:
            self._latest = None
            self._job = None
            self._generation += 1

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        _lower_own_priority()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._job is not None or self._stop)
                if self._stop:
                    return
                index, nir, wl, valid, generation = self._job
                self._job = None
                self._busy = True
            t0 = time.perf_counter()
            try:
                result = self.analyzer.analyze(nir, wl, valid)
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
