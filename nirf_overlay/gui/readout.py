"""What the engine produced, put on screen: the picture, the safety marks, the HUD numbers.

:class:`Readout` is driven by the main window's display timer: every new
:class:`~nirf_overlay.engine.DisplayFrame` goes to :meth:`Readout.show`, the
safety marks are re-decided every tick (:meth:`Readout.update_marks`, so
STALE appears within a tick of the deadline) and the numbers every
``STATUS_EVERY_S`` (:meth:`Readout.refresh`).  The status bar's line says the
same in smaller print, and keeps the stream's lasting remark (``EngineStatus.notice``,
e.g. which ``--nir-bits`` a 12-bit camera in 16-bit frames needs) while the source plays.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Optional

from PyQt5.QtWidgets import QLabel

from ..engine import DisplayFrame, Engine, EngineStatus
from ..engine.state import RunState
from ..processing.plane_anchor import LOST_REASONS
from .hud import STALE, analysis_label, safety_banners
from .video_view import VideoView
from .viewer_stats import ViewerStats

__all__ = ["Readout", "TICK_MS"]

TICK_MS = 1  # how often the GUI looks into the mailbox (a check costs ~20 us)


class Readout:
    """Fills the :class:`VideoView` and its HUD, and the status-bar line, from an engine.

    Parameters
    ----------
    engine : the engine whose frames and status are shown (:meth:`attach` switches)
    view : the video view (its ``on_painted`` is taken over)
    status_line : the status bar's permanent label
    stats : what was painted is counted here (``view --stats-json``)
    """

    def __init__(self, engine: Engine, view: VideoView, status_line: QLabel,
                 stats: ViewerStats):
        self.engine = engine
        self.view = view
        self.status_line = status_line
        self.stats = stats
        self.marks: list = []
        self._last_new_frame: Optional[float] = None
        self._nir_lost = False
        self._preparing = False
        self._status: EngineStatus = engine.status()
        self._notice = ("", False, 0.0)  # text, is_error, expires (monotonic)
        self._paint_times = deque(maxlen=61)
        view.on_painted = self._on_painted

    def attach(self, engine: Engine) -> None:
        """Show ``engine`` from now on (a newly opened source)."""
        self.engine = engine
        self._last_new_frame = None
        self.view.frame = None

    def detach(self) -> None:
        """Stop counting paints (the window is closing)."""
        self.view.on_painted = None

    # -- frames -------------------------------------------------------------------------
    def show(self, item: DisplayFrame, now: float) -> None:
        """Put a new frame on screen, painted at once (``now``: ``time.monotonic()``)."""
        view = self.view
        if view.frame is not None and not view.frame_painted:
            self.stats.view_dropped += 1  # replaced before it was painted
        lost = item.nir_lost
        # NIR lost: show white light only, whatever the pipeline composed
        image = item.pair.wl if lost else item.composite
        image_b = None
        if item.result_b is not None:
            image_b = item.pair.wl if lost else item.composite_b
        hud = view.hud
        res = item.result
        hud.rims = [] if lost else list(res.rims)
        hud.analysis = analysis_label(res)
        plane = res.plane
        hud.plane_flagged = bool(plane is not None and plane.flagged and not lost)
        hud.plane_tbr = None if plane is None else plane.tbr
        hud.nir_signal = res.nir_signal
        known = plane is None or (plane.known and not lost)
        hud.plane_unknown = "" if known else ("lost" if plane.lost_reason in LOST_REASONS
                                              else (plane.lost_reason or "NIR lost"))
        hud.plane_polygon = (None if plane is None or plane.polygon is None
                             else [(float(x), float(y)) for x, y in plane.polygon])
        # the pipeline's plane counts too: a session's recorded plane in replay
        hud.plane_set = len(view.plane) >= 3 or hud.plane_polygon is not None
        self._last_new_frame = now
        self._nir_lost = lost
        self._preparing = bool(item.preparing)
        if item.preparing:  # the white light only (marked in the picture too), no numbers
            hud.rims, hud.plane_flagged = [], False
        view.show_frame(item, image, image_b, now=True)

    def _on_painted(self, frame: DisplayFrame, t: float) -> None:
        self._paint_times.append(t)
        self.stats.on_painted(frame, t, self.engine)

    def displayed_fps(self) -> float:
        """Frames painted per second over the last ~60 paints (0 after a second without)."""
        ts = self._paint_times
        if len(ts) < 2 or time.monotonic() - ts[-1] > 1.0:
            return 0.0
        return (len(ts) - 1) / (ts[-1] - ts[0]) if ts[-1] > ts[0] else 0.0

    # -- safety marks ----------------------------------------------------------------------
    def update_marks(self, now: float, *, frozen: bool) -> None:
        """Decide the safety marks (see :mod:`~nirf_overlay.gui.hud`); repaint when they change."""
        engine, st = self.engine, self._status
        fps = engine.fps * engine.speed if engine.pace else engine.fps
        marks = safety_banners(now=now, last_new_frame=self._last_new_frame, fps=fps,
                               nir_lost=self._nir_lost, frozen=frozen, paused=st.paused,
                               ended=st.state == RunState.ENDED, preparing=self._preparing)
        hud = self.view.hud
        if STALE in marks and self._last_new_frame is not None:
            hud.stale_for = now - self._last_new_frame
        if marks != self.marks:
            self.marks = marks
            hud.marks = marks
            self.view.update()
        elif STALE in marks:
            hud.marks = marks
            if int(hud.stale_for * 10) != int((hud.stale_for - TICK_MS / 1000) * 10):
                self.view.update()  # the age shown changes every 0.1 s

    # -- numbers and messages ----------------------------------------------------------------
    def notify(self, text: str, *, error: bool = False, seconds: float = 4.0) -> None:
        """Show ``text`` in the picture for ``seconds`` (engine errors wait behind it)."""
        self._notice = (text, error, time.monotonic() + seconds)
        self.view.hud.message, self.view.hud.message_is_error = text, error
        self.view.update()

    def refresh(self, now: float) -> None:
        """Read the engine's status into the HUD and the status line."""
        st = self.engine.status()
        self._status = st
        hud = self.view.hud
        hud.fps = self.displayed_fps()
        hud.latency_ms = self.stats.recent_latency_ms()
        src = st.source or {}
        status = src.get("status", "ok")
        parts = []
        if status not in ("ok", "", None):
            parts.append(status.replace("_", " "))
        if st.state == RunState.ERROR:  # a read or a frame's processing failed (st.error says which)
            parts.append("error")
        hud.source_status = ", ".join(parts)
        if st.frame_count:
            pos = st.position if st.position is not None else 0
            hud.position = f"frame {pos + 1}/{st.frame_count}" + (
                f"  x{st.speed:g}" if st.speed != 1.0 else "")
        else:
            hud.position = ""
        hud.recording = st.recording
        hud.preparing = st.preparing
        hud.message, hud.message_is_error = self._message(st, src, status, now)
        lat = "--" if hud.latency_ms is None else f"{hud.latency_ms:.0f} ms"
        self.status_line.setText(
            f"{self.engine.info.description}  |  in {st.fps_in:.1f} fps, shown {hud.fps:.1f} fps, "
            f"+{lat}, dropped {st.dropped_display + self.stats.view_dropped}"
            + (f"  |  {st.notice}" if st.notice else ""))
        self.view.update()

    def _message(self, st: EngineStatus, src: dict, status: str, now: float) -> tuple[str, bool]:
        # a notice while it lasts, else the engine's or the recorder's problem, else the
        # stream's lasting remark (EngineStatus.notice: which --nir-bits to give), else nothing
        text, is_err, until = self._notice
        rec_err = (st.recording or {}).get("error") or ""
        err = st.error or src.get("message", "") if status not in ("ok", "") else st.error
        if text and now < until:
            return text, is_err
        if err or rec_err:
            return (err or rec_err), True
        return st.notice, False
