"""Recording control: a listener that owns a Recorder's start, stop, status and events.

Everything that touches the disk runs on a helper thread: the recorder is
created (:meth:`RecordingControl.start`) and finished (:meth:`~RecordingControl.stop`)
on one, and events (markers, snapshots, setting changes) are written in
order by a one-thread executor.  On the worker thread only
:meth:`~RecordingControl.on_pair` runs, and it calls
:meth:`Recorder.submit <nirf_overlay.recording.Recorder.submit>`, which never
blocks (a full queue refuses the pair and counts it): so a slow disk never
slows the display and the display never slows recording.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from ..errors import NirfError
from .listeners import Listener
from .state import RecordingState
from .stats import plain
from .threads import at_worker_priority, spawn

log = logging.getLogger(__name__)


class RecordingControl(Listener):
    """Starts and stops a :class:`~nirf_overlay.recording.Recorder`; offers it every captured pair."""

    def __init__(self):
        self.recorder = None  # the Recorder while state is ON
        self.state = RecordingState.OFF
        self.error = ""
        self.out_dir: Optional[str] = None
        self._started: Optional[float] = None
        self._refused = 0
        self._events: Optional[ThreadPoolExecutor] = None
        #: the recorder whose plane events are being written, and their writer
        self._plane: Optional[tuple] = None

    @property
    def active(self) -> bool:
        """Starting or on."""
        return self.state in (RecordingState.STARTING, RecordingState.ON)

    def start(self, out_dir, info, settings, calibration) -> None:
        """Create the recorder in ``out_dir`` on a helper thread; return at once."""
        if self.active:
            return
        self.state, self.error, self.out_dir = RecordingState.STARTING, "", str(out_dir)
        self._refused = 0

        def create():
            try:
                from ..recording import Recorder

                rec = Recorder(str(out_dir), info, settings, calibration)
            except Exception as e:
                log.warning("recording could not start", exc_info=not isinstance(e, NirfError))
                self.error = f"recording did not start: {plain(e)}"
                self.state = RecordingState.OFF
                return
            if self.state != RecordingState.STARTING:  # stopped meanwhile
                spawn(rec.stop, "nirf-rec-stop")
                return
            self._started = time.monotonic()
            self.recorder = rec
            self.state = RecordingState.ON

        spawn(create, "nirf-rec-start")

    def stop(self, wait: bool = False) -> None:
        """Detach the recorder at once and let it finish writing on a helper thread."""
        rec, self.recorder = self.recorder, None
        events = self._events
        if self.state == RecordingState.STARTING:
            self.state = RecordingState.OFF
        if rec is None:
            return
        self.state = RecordingState.STOPPING

        def finish():
            if events is not None:
                try:
                    events.submit(lambda: None).result(10.0)  # queued events land first
                except (RuntimeError, TimeoutError):  # shut down (its events are written) or stuck
                    pass
            try:
                rec.stop()
            except Exception as e:
                self.error = f"recording did not finish cleanly: {plain(e)}"
            self.state = RecordingState.OFF

        t = spawn(finish, "nirf-rec-stop")
        if wait:
            t.join(10.0)

    def close(self) -> None:
        """Write the queued events, then stop the recording and wait for it (engine stop)."""
        if self._events is not None:
            self._events.shutdown(wait=True)
            self._events = None
        self.stop(wait=True)

    def status(self) -> dict:
        """State, directory, seconds, frames written / not written, error (plain values)."""
        st = {"state": self.state, "dir": self.out_dir, "error": self.error,
              "refused": self._refused}
        rec = self.recorder
        if rec is not None:
            st.update(dataclasses.asdict(rec.status()))
            st["error"] = f"recording: {st['error']}" if st["error"] else self.error
            st["seconds"] = time.monotonic() - (self._started or time.monotonic())
        return st

    def log_event(self, kind: str, position: Optional[int], **data) -> None:
        """Write an event into the recording, in order, off the caller's thread."""
        rec = self.recorder
        if rec is None:
            return
        if "frame" not in data and "source_index" not in data and position is not None:
            # the frame on screen, in the source's numbering: the recorder maps it to its
            # own (a live source's index counts from before the recording started)
            data["source_index"] = int(position)
        if self._events is None:
            self._events = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nirf-events",
                                              initializer=at_worker_priority)

        def write():
            try:
                rec.log_event(kind, **data)
            except Exception as e:  # the event log must never stop the viewer
                log.warning("recording event %s: %s", kind, e)

        self._events.submit(write)

    # -- listener (worker thread) ---------------------------------------------------
    def on_result(self, frame) -> None:
        """The plane drawn, cleared, anchored or lost becomes events of the recording
        (:mod:`nirf_overlay.recording.plane_events`), so that replay reproduces it."""
        rec = self.recorder
        if rec is None:
            return
        if self._plane is None or self._plane[0] is not rec:
            from ..recording.plane_events import PlaneEventWriter

            self._plane = (rec, PlaneEventWriter(rec.recording_index))
        for kind, data in self._plane[1].note(int(frame.pair.index), frame.result.plane):
            self.log_event(kind, None, **data)

    def on_pair(self, pair) -> None:
        rec = self.recorder
        if rec is None:
            return
        try:
            ok = rec.submit(pair)  # never blocks
        except Exception as e:
            self.error = f"recording: {plain(e)}"
            return
        if not ok:
            self._refused += 1
