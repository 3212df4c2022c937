"""Preparing the analysis kernels behind an open viewer: progress, and white light meanwhile.

The first start after installing compiles every numba kernel (about a minute
on 2 cores, :mod:`nirf_overlay.processing.warmup`).  The viewer's window must
not wait for that: an :class:`~.runner.Engine` made with ``prepare=True``
starts without a pipeline, :class:`KernelPreparation` compiles on its own
thread, and until it is done the worker hands the display the white light
only, with the words "overlay not on yet" burnt into the picture
(:func:`white_light_result`), so that nothing on screen, in a snapshot or in a
recording's overlay can pass for an overlay that is not there.  Settings,
calibration and A/B changed meanwhile are kept by the engine and used when it
builds the pipeline; recording works from the first pair (it records the raw
pairs, which need no kernel).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

import numpy as np

from .threads import spawn

log = logging.getLogger(__name__)

#: burnt into the white-light picture while the kernels are prepared
NOT_ON_YET = "OVERLAY NOT ON YET - white light only"


class KernelPreparation:
    """Prepares the kernels (:func:`~nirf_overlay.processing.warmup.warm_up_in_child`: compiled
    in a child process and loaded here, or only loaded here when numba's cache is warm already)
    on a thread, and says how far it is.

    ``on_ready()`` is called on that thread once the kernels are ready;
    ``on_failed(exc)`` if compiling failed (the white light goes on).
    """

    def __init__(self, on_ready: Callable[[], None],
                 on_failed: Optional[Callable[[BaseException], None]] = None):
        self._on_ready = on_ready
        self._on_failed = on_failed
        self._progress = None  # the newest processing.warmup.Progress
        self._thread: Optional[threading.Thread] = None
        self.ready = threading.Event()
        self._stop = threading.Event()
        self.error = ""

    def start(self) -> "KernelPreparation":
        if self._thread is None:
            self._thread = spawn(self._run, "nirf-kernels")
        return self

    def join(self, timeout: Optional[float] = None) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Stop preparing (the child ends at once, loading here after its current step)
        and wait for the thread: a thread still inside numba when the interpreter
        finalises aborts the process ("terminate called without an active exception")."""
        self._stop.set()
        self.join(timeout)

    @property
    def text(self) -> str:
        """``Preparing analysis kernels 3/7 (segmentation)``, "" once ready."""
        if self.ready.is_set():
            return ""
        if self.error:
            return f"the analysis kernels could not be prepared ({self.error}); white light only"
        from ..processing.warmup import current

        p = current() or self._progress  # the process-wide preparation (one for every engine)
        return p.text() if p is not None and not p.done else "Preparing analysis kernels"

    def _run(self) -> None:
        from ..processing.warmup import warm_up_in_child

        def progress(p) -> None:
            self._progress = p

        try:
            warm_up_in_child(progress, self._stop)  # compiles without holding this process's GIL
        except Exception as e:  # a compiler failure must not take the picture away
            log.exception("preparing the analysis kernels failed")
            self.error = (str(e).strip().splitlines() or [type(e).__name__])[0]
            if self._on_failed is not None:
                self._on_failed(e)
            return
        if self._stop.is_set():
            return
        self.ready.set()
        self._on_ready()


def white_light_result(pair, mm_per_px=None):
    """A :class:`~nirf_overlay.processing.result.FrameResult` that shows the white light only,
    marked :data:`NOT_ON_YET` in the picture itself (a copy: the pair stays as captured)."""
    import cv2

    from ..processing.result import FrameResult, PlaneCheck

    img = np.array(pair.wl, dtype=np.uint8, copy=True, order="C")
    h = img.shape[0]
    scale = max(0.4, h / 900)
    org = (int(10 * scale), int(h - 14 * scale))
    cv2.putText(img, NOT_ON_YET, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(img, NOT_ON_YET, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 200, 255), 2,
                cv2.LINE_AA)
    return FrameResult(index=pair.index, time_s=pair.wl_time, composite=img, rim_mask=None,
                       rims=[], fluorescence_mask=None, saturated_fraction=0.0,
                       plane=PlaneCheck(), nir_lost=pair.nir is None, mm_per_px=mm_per_px,
                       stage_ms={}, arrival=pair.arrival)
