"""What a run reports: rate meters, the run's counters (a listener) and :class:`EngineStatus`."""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

from ..errors import NirfError
from .listeners import Listener
from .state import RunState


@dataclass
class EngineStatus:
    """A snapshot of the engine's state for the HUD (plain values only).

    Attributes
    ----------
    state : :class:`~nirf_overlay.engine.state.RunState`
    fps_in : pairs captured per second (last ~1 s)
    fps_out : results produced per second (last ~1 s)
    last_frame_time : ``time.monotonic()`` of the newest captured pair, or None
    nir_lost : the newest pair came without NIR
    error : the last problem in plain words, "" when none (cleared on recovery)
    source : the source's :class:`~nirf_overlay.frame.SourceStats` as a dict
    captured, processed : pairs read, results produced
    dropped_display : results replaced in the mailbox before the display took them
    position, frame_count, paused, speed, loop, ab : replay, see :class:`~.runner.Engine`
    recording : recorder state, see :meth:`~.runner.Engine.recording_status`
    process_ms : time the pipeline(s) took on the newest pair, ms
    listener_dropped : pairs and results not handed to a listener that fell
        too far behind (see :class:`~.listeners.ListenerRelay`)
    skipped : frames replay left out to keep the shown position on the wall
        clock when decoding and processing fell behind (files, sessions)
    preparing : what is prepared before the overlay can start, e.g.
        "Preparing analysis kernels 3/7 (segmentation)"; "" once it is on
    notice : a remark on the stream that stays once a result said it (``FrameResult.notice``,
        e.g. which ``--nir-bits`` to give); "" when none
    """

    state: RunState = RunState.STARTING
    fps_in: float = 0.0
    fps_out: float = 0.0
    last_frame_time: Optional[float] = None
    nir_lost: bool = False
    error: str = ""
    source: dict = field(default_factory=dict)
    captured: int = 0
    processed: int = 0
    dropped_display: int = 0
    position: Optional[int] = None
    frame_count: Optional[int] = None
    paused: bool = False
    speed: float = 1.0
    loop: bool = False
    ab: bool = False
    recording: dict = field(default_factory=dict)
    process_ms: float = 0.0
    listener_dropped: int = 0
    preparing: str = ""
    skipped: int = 0
    notice: str = ""


class RateMeter:
    """Events per second over a sliding window of ``span`` seconds (thread-safe)."""

    def __init__(self, span: float = 1.0):
        self.span = span
        self._times: deque = deque()
        self._lock = threading.Lock()

    def tick(self, now: float) -> None:
        with self._lock:
            self._times.append(now)
            self._forget(now)

    def rate(self, now: float) -> float:
        with self._lock:
            self._forget(now)
            n = len(self._times)
            if n < 2:
                return 0.0
            dt = self._times[-1] - self._times[0]
        return (n - 1) / dt if dt > 0 else 0.0

    def _forget(self, now: float) -> None:
        while self._times and now - self._times[0] > self.span:
            self._times.popleft()


class RunStats(Listener):
    """Counters of a run, kept as a listener: what came in and what went out.

    Called on the worker thread (it only counts, so it never holds capture
    up); read from any thread.
    """

    def __init__(self):
        self.captured = 0
        self.processed = 0
        self.last_frame_time: Optional[float] = None
        self.nir_lost = False
        self.process_ms = 0.0
        self.notice = ""  # the newest FrameResult.notice: kept when later results say none
        self.fps_in = RateMeter()
        self.fps_out = RateMeter()

    def on_pair(self, pair) -> None:
        self.captured += 1
        self.last_frame_time = pair.arrival
        self.nir_lost = pair.nir is None
        self.fps_in.tick(pair.arrival)

    def on_result(self, frame) -> None:
        self.processed += 1
        self.process_ms = frame.process_ms
        self.fps_out.tick(frame.processed)
        if frame.result.notice:
            self.notice = frame.result.notice


def plain(e: BaseException) -> str:
    """An exception as one line of plain words (no traceback)."""
    if isinstance(e, NirfError):
        return str(e)
    text = str(e).strip()
    return text.splitlines()[0] if text else e.__class__.__name__


def percentile(values, q: float) -> Optional[float]:
    """Percentile of a list of numbers (None when empty), for stats reports."""
    import numpy as np

    if not len(values):
        return None
    v = float(np.percentile(np.asarray(values, dtype=float), q))
    return v if math.isfinite(v) else None
