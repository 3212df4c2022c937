"""The viewer's engine: capture and processing on a worker thread, Qt-free.

Threading design
----------------
One worker thread runs ``source.read(timeout) -> pipeline.process(pair)`` in a
loop and puts each result into a :class:`LatestMailbox`, a one-slot box where
the newest result replaces an unread older one (the replaced one is counted as
*dropped*).  The display (the GUI's timer, or anything else) calls
:meth:`Engine.latest` whenever it is ready to paint and gets the newest frame
or ``None``; it never waits on capture, processing, disk or network.

Every captured pair is also offered to an attached recorder
(``recorder.submit(pair)``, non-blocking, its own bounded lossless queue), so
a slow disk never slows the display and the display never slows recording.

Files and sessions are paced here at their native rate (times ``speed``), so
replay controls (pause, step, seek, speed, loop) act in one place; live
sources pace themselves and hand out their newest pair.

Latency
-------
``FramePair.arrival`` is stamped by the source when it hands the pair out;
for paced replay it is re-stamped when the pair is released on schedule, so
``painted - arrival`` is the latency the viewer adds (processing, mailbox,
paint) and is measured by the view after it paints.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..errors import NirfError
from ..frame import FramePair
from .state import RecordingState, RunState

log = logging.getLogger(__name__)

#: Niceness the engine's threads run at (None: inherit).  The viewer raises
#: its GUI thread's priority so that painting is not queued behind
#: processing; threads started from the GUI thread would inherit that, so
#: every thread started through :func:`spawn` first drops to this value.
WORKER_NICE: Optional[int] = None

SPEED_RANGE = (0.25, 4.0)
READ_TIMEOUT_S = 0.1  # how long one read may wait before commands are looked at again
RETRY_DELAY_S = 0.5  # pause after a source error before reading again


@dataclass
class DisplayFrame:
    """What the display gets: the pair, its result, and the A/B result.

    Attributes
    ----------
    pair : the captured :class:`~nirf_overlay.frame.FramePair` (raw NIR for snapshots)
    result : :class:`~nirf_overlay.processing.result.FrameResult` with the current settings
    result_b : the result with the A/B settings, or ``None`` when A/B is off
    processed : ``time.monotonic()`` when processing finished
    seq : running number of results the engine produced (gaps = dropped)
    """

    pair: FramePair
    result: Any
    result_b: Any = None
    processed: float = 0.0
    seq: int = 0

    @property
    def arrival(self) -> float:
        return float(self.pair.arrival)

    @property
    def index(self) -> int:
        return int(self.pair.index)

    @property
    def nir_lost(self) -> bool:
        return self.pair.nir is None or bool(getattr(self.result, "nir_lost", False))

    @property
    def composite(self):
        return self.result.composite

    @property
    def composite_b(self):
        return None if self.result_b is None else self.result_b.composite


class LatestMailbox:
    """A one-slot, latest-wins handover between one producer and one consumer.

    ``put`` never blocks; when the slot still holds an unread item, the item
    is replaced and counted in :attr:`dropped`.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._item = None
        self.put_count = 0
        self.dropped = 0

    def put(self, item) -> bool:
        """Store ``item``; return True if an unread item was overwritten."""
        with self._lock:
            overwrote = self._item is not None
            if overwrote:
                self.dropped += 1
            self._item = item
            self.put_count += 1
            return overwrote

    def take(self):
        """Return the newest unread item (and empty the slot), or ``None``."""
        with self._lock:
            item, self._item = self._item, None
            return item

    def clear(self) -> None:
        with self._lock:
            self._item = None


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
    recording : recorder state, see :meth:`Engine.recording_status`
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


class _RateMeter:
    """Events per second over a sliding window of ``span`` seconds."""

    def __init__(self, span: float = 1.0):
        self.span = span
        self._times: deque = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        while self._times and now - self._times[0] > self.span:
            self._times.popleft()

    def rate(self, now: float) -> float:
        while self._times and now - self._times[0] > self.span:
            self._times.popleft()
        n = len(self._times)
        if n < 2:
            return 0.0
        dt = self._times[-1] - self._times[0]
        return (n - 1) / dt if dt > 0 else 0.0


def _at_worker_priority() -> None:
    if WORKER_NICE is None:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
    except OSError:  # lowering one's own priority is always allowed; be safe anyway
        pass


def spawn(target, name: str, *args) -> threading.Thread:
    """Start a daemon thread running ``target(*args)`` at :data:`WORKER_NICE`."""

    def run():
        _at_worker_priority()
        target(*args)

    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    return t


def _plain(e: BaseException) -> str:
    """An exception as one line of plain words (no traceback)."""
    if isinstance(e, NirfError):
        return str(e)
    text = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
    return text


class _ReadAhead:
    """Reads a file or session one or two pairs ahead on its own thread.

    Decoding (FFmpeg, disk) then overlaps with processing, so replay keeps
    its rate when read + process would not fit in a frame period.  Only this
    thread touches the source; a seek is a request it carries out, and pairs
    read before the seek (an older *generation*) are thrown away.
    """

    def __init__(self, source, stop: threading.Event, depth: int = 2):
        import queue

        self._queue_mod = queue
        self.source = source
        self._stop = stop
        self._q = queue.Queue(maxsize=depth)
        self._cv = threading.Condition()
        self._gen = 0  # the generation the consumer wants
        self._seek_req: Optional[tuple] = None  # (generation, index)
        self._thread = spawn(self._run, "nirf-read-ahead")

    def seek(self, index: int) -> None:
        with self._cv:
            self._gen += 1
            self._seek_req = (self._gen, int(index))
            self._cv.notify_all()

    def read(self, timeout: float):
        """The next pair of the current generation, None at the end; TimeoutError if none yet."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("nothing read yet")
            try:
                gen, kind, value = self._q.get(timeout=left)
            except self._queue_mod.Empty:
                raise TimeoutError("nothing read yet") from None
            if gen != self._gen:
                continue  # read before a seek
            if kind == "error":
                raise value
            return value

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        gen, at_end, errors = 0, False, 0
        while not self._stop.is_set():
            with self._cv:
                req, self._seek_req = self._seek_req, None
                if req is None and at_end:
                    self._cv.wait(0.1)  # nothing to read until a seek
                    continue
            if req is not None:
                gen, index = req
                at_end = False
                try:
                    self.source.seek(index)
                except Exception as e:
                    self._put((gen, "error", e))
                    continue
            try:
                pair = self.source.read(READ_TIMEOUT_S)
            except TimeoutError:
                continue
            except Exception as e:
                errors += 1
                self._put((gen, "error", e))
                self._stop.wait(min(RETRY_DELAY_S * errors, 2.0))
                continue
            errors = 0
            at_end = pair is None
            self._put((gen, "pair", pair))

    def _put(self, item) -> None:
        while not self._stop.is_set():
            with self._cv:
                if self._seek_req is not None:
                    return  # a seek is waiting: this item is already out of date
            try:
                self._q.put(item, timeout=0.05)
                return
            except self._queue_mod.Full:
                continue


class Engine:
    """Capture -> process on a worker thread; the display takes the newest result.

    Parameters
    ----------
    source : an open :class:`~nirf_overlay.sources.base.FrameSource`; the
        engine owns it and closes it in :meth:`stop`.
    settings : :class:`~nirf_overlay.settings.Settings` for the pipeline.
    calibration : :class:`~nirf_overlay.calibration.Calibration` or None.
    pipeline : an existing pipeline to use instead of building one.
    pace : pace non-live sources at their native rate (the viewer does;
        ``None`` = pace when the source is not live).
    loop : start over at the end of a seekable source.
    pipeline_factory : ``f(settings, calibration) -> pipeline``; default
        :class:`nirf_overlay.processing.pipeline.Pipeline`.
    """

    def __init__(self, source, settings=None, calibration=None, *, pipeline=None,
                 pace: Optional[bool] = None, loop: bool = False,
                 pipeline_factory: Optional[Callable] = None):
        from ..settings import Settings

        self.source = source
        self.settings = settings.copy() if settings is not None else Settings()
        self.calibration = calibration
        #: a remark on the calibration for the user ("" when none), see open_engine
        self.calibration_note = ""
        self._factory = pipeline_factory or _default_pipeline_factory
        self.pipeline = pipeline if pipeline is not None else self._factory(self.settings, calibration)
        info = source.info
        self.info = info
        self.seekable = bool(getattr(info, "seekable", False))
        self.pace = (not info.live) if pace is None else bool(pace)
        self.mailbox = LatestMailbox()

        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()

        # replay state (guarded by _lock)
        self._paused = False
        self._pending_steps = 0
        self._seek_to: Optional[int] = None
        self._speed = 1.0
        self._loop = bool(loop)
        self._position: Optional[int] = None
        self._ended = False
        self._ab_settings = None
        self._ab_changed = False
        self._calibration_changed = False
        self._pipeline_b = None
        self.markers: list = list(getattr(source, "markers", None) or [])

        # status (written by the worker, read by anyone)
        self._state = RunState.STARTING
        self._error = ""
        self._last_frame_time: Optional[float] = None
        self._nir_lost = False
        self._captured = 0
        self._processed = 0
        self._fps_in = _RateMeter()
        self._fps_out = _RateMeter()
        self._process_ms = 0.0

        # recording
        self.recorder = None
        self._rec_state = RecordingState.OFF  # off | starting | on | stopping
        self._rec_error = ""
        self._rec_dir: Optional[str] = None
        self._rec_started: Optional[float] = None
        self._rec_refused = 0
        self._events = None  # executor writing recording events
        self._ahead: Optional[_ReadAhead] = None  # read-ahead for files and sessions

    # -- life cycle -----------------------------------------------------------
    def start(self) -> "Engine":
        if self._thread is None:
            self._thread = spawn(self._run, "nirf-engine")
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the worker, the recorder, and close the source (safe twice)."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._ahead is not None:
            self._ahead.join(timeout)  # it may be inside source.read()
        if self._events is not None:
            self._events.shutdown(wait=True)  # events before the recording's stop
            self._events = None
        self.stop_recording(wait=True)
        for p in (self.pipeline, self._pipeline_b):
            _close_pipeline(p)
        try:
            self.source.close()
        except Exception as e:  # a source that fails to close must not stop shutdown
            log.warning("closing %s: %s", self.info.description, e)
        self._state = RunState.STOPPED

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- display side ----------------------------------------------------------
    def latest(self) -> Optional[DisplayFrame]:
        """The newest result not yet taken, or ``None``; never blocks."""
        return self.mailbox.take()

    @property
    def dropped(self) -> int:
        """Results replaced in the mailbox before the display took them."""
        return self.mailbox.dropped

    # -- settings ----------------------------------------------------------------
    def update_settings(self, settings) -> None:
        """Use ``settings`` from the next frame on (thread-safe)."""
        self.settings = settings.copy()
        self.pipeline.update_settings(self.settings)
        self.log_event("settings", settings=self.settings.to_dict())

    def set_calibration(self, calibration) -> None:
        """Use ``calibration`` from the next frame on (a new pipeline is built on the worker)."""
        if calibration is not None:
            calibration.check_size(tuple(self.info.size))
        with self._wake:
            self.calibration = calibration
            self._calibration_changed = True
            self._ab_changed = self._ab_settings is not None
            self._wake.notify_all()

    def set_ab(self, settings_b) -> None:
        """Run a second pipeline with ``settings_b`` on the same pairs (None = off)."""
        with self._wake:
            self._ab_settings = None if settings_b is None else settings_b.copy()
            self._ab_changed = True
            if self._paused:
                # show the paused frame again with both settings
                self._redisplay_locked()
            self._wake.notify_all()

    @property
    def ab(self) -> bool:
        return self._ab_settings is not None

    # -- replay --------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        with self._wake:
            self._paused = True
            self._wake.notify_all()

    def resume(self) -> None:
        with self._wake:
            self._paused = False
            self._pending_steps = 0
            if self._ended and self.seekable and self._seek_to is None:
                self._seek_to = 0  # play again from the start
            self._wake.notify_all()

    def toggle_pause(self) -> None:
        (self.resume if self._paused else self.pause)()

    def step(self, delta: int = 1) -> None:
        """Pause and show the next (``+1``) or previous (``-1``) frame."""
        with self._wake:
            self._paused = True
            if delta >= 1:
                if self._ended:
                    return
                self._pending_steps += int(delta)
            elif delta <= -1:
                if not self.seekable:
                    return
                base = self._seek_to if self._seek_to is not None else (self._position or 0)
                self._seek_to = max(0, base + int(delta))
                self._pending_steps = 1
            self._wake.notify_all()

    def seek(self, index: int) -> None:
        """Show frame ``index`` next (clamped to the source's length)."""
        if not self.seekable:
            raise NirfError(f"{self.info.description}: this source cannot seek")
        n = self.frame_count
        index = max(0, int(index))
        if n:
            index = min(index, n - 1)
        with self._wake:
            self._seek_to = index
            if self._paused:
                self._pending_steps = 1
            self._wake.notify_all()

    def set_speed(self, speed: float) -> None:
        lo, hi = SPEED_RANGE
        speed = float(speed)
        if not (lo <= speed <= hi):
            raise NirfError(f"speed: {speed:g} is outside {lo:g}..{hi:g}")
        self._speed = speed

    @property
    def speed(self) -> float:
        return self._speed

    def set_loop(self, loop: bool) -> None:
        with self._wake:
            self._loop = bool(loop)
            self._wake.notify_all()

    @property
    def loop(self) -> bool:
        return self._loop

    @property
    def position(self) -> Optional[int]:
        """Index of the newest processed frame (frame N of the recording)."""
        return self._position

    @property
    def frame_count(self) -> Optional[int]:
        return getattr(self.info, "frame_count", None)

    @property
    def fps(self) -> float:
        return float(self.info.fps or 30.0)

    def _redisplay_locked(self) -> None:
        if self.seekable and self._position is not None:
            self._seek_to = self._position
            self._pending_steps = 1

    # -- recording -------------------------------------------------------------------
    def start_recording(self, out_dir) -> None:
        """Start a :class:`~nirf_overlay.recording.Recorder` in ``out_dir``.

        The recorder is created on a helper thread (it touches the disk), so
        this returns at once; :meth:`recording_status` tells how it went.
        """
        if self._rec_state in (RecordingState.STARTING, RecordingState.ON):
            return
        self._rec_state, self._rec_error, self._rec_dir = RecordingState.STARTING, "", str(out_dir)
        self._rec_refused = 0

        def create():
            try:
                from ..recording import Recorder

                rec = Recorder(str(out_dir), self.info, self.settings.copy(), self.calibration)
            except Exception as e:
                log.warning("recording could not start", exc_info=not isinstance(e, NirfError))
                self._rec_error = f"recording did not start: {_plain(e)}"
                self._rec_state = RecordingState.OFF
                return
            if self._rec_state != RecordingState.STARTING:  # stopped meanwhile
                spawn(rec.stop, "nirf-rec-stop")
                return
            self._rec_started = time.monotonic()
            self.recorder = rec
            self._rec_state = RecordingState.ON

        spawn(create, "nirf-rec-start")

    def stop_recording(self, wait: bool = False) -> None:
        """Detach the recorder at once and let it finish writing on a helper thread."""
        rec, self.recorder = self.recorder, None
        events = self._events
        if self._rec_state == RunState.STARTING:
            self._rec_state = RecordingState.OFF
        if rec is None:
            return
        self._rec_state = RecordingState.STOPPING

        def finish():
            if events is not None:
                try:
                    events.submit(lambda: None).result(10.0)  # queued events land first
                except Exception:  # already shut down: its events are written
                    pass
            try:
                rec.stop()
            except Exception as e:
                self._rec_error = f"recording did not finish cleanly: {_plain(e)}"
            self._last_rec_status = _recorder_status(rec)
            self._rec_state = RecordingState.OFF

        t = spawn(finish, "nirf-rec-stop")
        if wait:
            t.join(10.0)

    @property
    def recording(self) -> bool:
        return self._rec_state in (RecordingState.STARTING, RecordingState.ON)

    def recording_status(self) -> dict:
        """State, directory, seconds, frames written / not written, error."""
        st = {"state": self._rec_state, "dir": self._rec_dir, "error": self._rec_error,
              "refused": self._rec_refused}
        rec = self.recorder
        if rec is not None:
            st.update(_recorder_status(rec))
            if st.get("error"):
                st["error"] = f"recording: {st['error']}"
            else:
                st["error"] = self._rec_error
            st["seconds"] = time.monotonic() - (self._rec_started or time.monotonic())
        return st

    def log_event(self, kind: str, **data) -> None:
        """Write an event (snapshot, marker, setting change) into the recording."""
        rec = self.recorder
        if rec is None:
            return
        if "frame" not in data and "source_index" not in data and self._position is not None:
            # the frame on screen, in the source's numbering: the recorder maps it to its
            # own (a live source's index counts from before the recording started)
            data["source_index"] = int(self._position)
        if self._events is None:
            from concurrent.futures import ThreadPoolExecutor

            # one helper thread keeps the events in order and the disk off the caller's thread
            self._events = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nirf-events",
                                              initializer=_at_worker_priority)

        def write():
            try:
                rec.log_event(kind, **data)
            except Exception as e:  # the event log must never stop the viewer
                log.warning("recording event %s: %s", kind, e)

        self._events.submit(write)

    # -- status ------------------------------------------------------------------
    def status(self) -> EngineStatus:
        now = time.monotonic()
        try:
            src = self.source.stats.as_dict()
        except Exception:
            src = {}
        state = self._state
        if state == RunState.RUNNING and self._paused:
            state = RunState.PAUSED
        return EngineStatus(
            state=state,
            fps_in=self._fps_in.rate(now),
            fps_out=self._fps_out.rate(now),
            last_frame_time=self._last_frame_time,
            nir_lost=self._nir_lost,
            error=self._error,
            source=src,
            captured=self._captured,
            processed=self._processed,
            dropped_display=self.mailbox.dropped,
            position=self._position,
            frame_count=self.frame_count,
            paused=self._paused,
            speed=self._speed,
            loop=self._loop,
            ab=self.ab,
            recording=self.recording_status(),
            process_ms=self._process_ms,
        )

    # -- worker ----------------------------------------------------------------------
    def _run(self) -> None:
        self._state = RunState.RUNNING
        if not self.info.live:
            self._ahead = _ReadAhead(self.source, self._stop)
        due: Optional[float] = None  # when the next paced frame is to be released
        prev_time: Optional[float] = None
        errors_in_row = 0
        while not self._stop.is_set():
            with self._wake:
                while (self._paused and self._pending_steps == 0 and self._seek_to is None
                       and not self._stop.is_set()) or (
                        self._ended and self._seek_to is None and not self._stop.is_set()
                        and not (self._loop and self.seekable)):
                    self._wake.wait(0.2)
                if self._stop.is_set():
                    break
                seek_to, self._seek_to = self._seek_to, None
                stepping = self._paused
                if stepping and self._pending_steps > 0:
                    self._pending_steps -= 1
                rebuild = self._calibration_changed
                rebuild_b, ab = self._ab_changed, self._ab_settings
                self._calibration_changed = self._ab_changed = False
                if self._ended and seek_to is None and self._loop and self.seekable:
                    seek_to = 0
            # pipelines are built outside the lock: the GUI never waits on them
            if rebuild or rebuild_b:
                try:
                    if rebuild:
                        old, self.pipeline = self.pipeline, self._factory(self.settings.copy(),
                                                                          self.calibration)
                        _close_pipeline(old)
                    if rebuild_b:
                        old, self._pipeline_b = self._pipeline_b, (
                            None if ab is None else self._factory(ab, self.calibration))
                        _close_pipeline(old)
                except Exception as e:
                    self._report(e, "preparing the pipeline")
            if seek_to is not None:
                if not self._seek(seek_to):
                    continue
                due = prev_time = None

            try:
                reader = self._ahead or self.source
                pair = reader.read(READ_TIMEOUT_S)
            except TimeoutError:
                if stepping and self.seekable:
                    # a slow first frame after a seek while paused: the step is still
                    # owed, or the frame asked for would never be shown
                    with self._wake:
                        self._pending_steps += 1
                continue  # a live source with nothing new: the display marks it stale
            except Exception as e:
                errors_in_row += 1
                self._report(e, "reading")
                self._stop.wait(min(RETRY_DELAY_S * errors_in_row, 2.0))
                continue
            if errors_in_row:
                errors_in_row = 0
                self._error = ""
            if pair is None:
                self._ended = True
                if not (self._loop and self.seekable):
                    self._state = RunState.ENDED
                continue
            self._ended = False
            if self._state != RunState.RUNNING:
                self._state = RunState.RUNNING

            if self.pace and not stepping:
                due, prev_time = self._wait_until_due(pair, due, prev_time)
                if self._stop.is_set():
                    break
                pair.arrival = time.monotonic()
            elif not pair.arrival:
                pair.arrival = time.monotonic()

            self._captured += 1
            self._last_frame_time = pair.arrival
            self._nir_lost = pair.nir is None
            self._fps_in.tick(pair.arrival)
            rec = self.recorder
            if rec is not None:
                self._offer(rec, pair)
            self._process(pair)

    def _seek(self, index: int) -> bool:
        try:
            if self._ahead is not None:
                self._ahead.seek(index)  # carried out on the read-ahead thread
            else:
                self.source.seek(index)
        except Exception as e:
            self._report(e, f"seeking to frame {index}")
            return False
        self._ended = False
        self.mailbox.clear()
        for p in (self.pipeline, self._pipeline_b):
            if p is not None and hasattr(p, "reset"):
                p.reset()
        self.log_event("seek", index=int(index))
        return True

    def _wait_until_due(self, pair: FramePair, due, prev_time):
        """Sleep until ``pair`` is due at the native rate / speed; return the schedule."""
        period = 1.0 / self.fps
        t = float(pair.wl_time or 0.0)
        dt = period
        if prev_time is not None and 0.0 < t - prev_time < 1.0:
            dt = t - prev_time
        now = time.monotonic()
        if due is None:
            due = now
        else:
            due += dt / self._speed
            if due < now - period:  # fell behind: restart the schedule, never burst
                due = now
        # sleep (never spin: two cores are shared with the GUI and the pipeline),
        # in short steps so that stop() is noticed
        while not self._stop.is_set():
            left = due - time.monotonic()
            if left <= 0:
                break
            self._stop.wait(min(left, 0.05))
        return due, t

    def _offer(self, rec, pair: FramePair) -> None:
        try:
            ok = rec.submit(pair)
        except Exception as e:
            self._rec_error = f"recording: {_plain(e)}"
            return
        if ok is False:
            self._rec_refused += 1

    def _process(self, pair: FramePair) -> None:
        t0 = time.perf_counter()
        try:
            result = self.pipeline.process(pair)
            result_b = None
            pb = self._pipeline_b
            if pb is not None:
                result_b = pb.process(pair)
        except Exception as e:
            self._report(e, f"processing frame {pair.index}")
            return
        if self._error.startswith("processing"):
            self._error = ""
        self._process_ms = (time.perf_counter() - t0) * 1000.0
        if not getattr(result, "arrival", 0.0):
            result.arrival = pair.arrival
        self._processed += 1
        self._position = int(pair.index)
        now = time.monotonic()
        self._fps_out.tick(now)
        self.mailbox.put(DisplayFrame(pair, result, result_b, now, self._processed))

    def _report(self, e: BaseException, doing: str) -> None:
        if isinstance(e, NirfError):
            log.warning("%s: %s", doing, e)
        else:
            log.exception("%s failed", doing)
        self._error = f"{doing}: {_plain(e)}"


def _recorder_status(rec) -> dict:
    st = getattr(rec, "status", None)
    if callable(st):
        try:
            st = st()
        except Exception:
            st = None
    if st is None:
        return {}
    if isinstance(st, dict):
        d = dict(st)
    else:
        d = {k: v for k, v in vars(st).items() if not k.startswith("_")} if hasattr(st, "__dict__") else {}
    # the brief names the error field "error message"; accept either spelling
    if "error" not in d and "message" in d:
        d["error"] = d["message"]
    return d


def _default_pipeline_factory(settings, calibration):
    from ..processing.pipeline import Pipeline

    # the live display never waits for the rim analysis: it runs on its own thread
    return Pipeline(settings, calibration, async_analysis=True)


def _close_pipeline(pipeline) -> None:
    close = getattr(pipeline, "close", None)
    if close is not None:
        close()


def percentile(values, q: float) -> Optional[float]:
    """Percentile of a list of numbers (None when empty), for stats reports."""
    import numpy as np

    if not len(values):
        return None
    v = float(np.percentile(np.asarray(values, dtype=float), q))
    return v if math.isfinite(v) else None


def viewer_spec(spec):
    """The spec as the viewer opens it: live-like pacing for every source.

    The phantom paces itself (``realtime``: newest pair wins, like a camera);
    files and sessions are read unpaced and the engine paces them at their
    native rate, so replay speed, pause and step act in one place.
    """
    import copy

    spec = copy.copy(spec)
    spec.realtime = bool(spec.phantom)
    return spec


def open_engine(spec, settings=None, request=None, *, loop: Optional[bool] = None,
                pipeline_factory: Optional[Callable] = None) -> Engine:
    """Open ``spec`` for viewing and build an (unstarted) :class:`Engine`.

    ``request`` (a :class:`~nirf_overlay.calibration.CalibrationRequest`)
    says what calibration the user asked for;
    :func:`~nirf_overlay.calibration.resolve_calibration` decides what
    applies.  A calibration the user chose for another frame size is refused
    (:class:`~nirf_overlay.errors.CalibrationError`) and the source closed;
    ``Engine.calibration_note`` carries any remark for the user.
    """
    from ..calibration import resolve_calibration
    from ..sources import open_source

    spec = viewer_spec(spec)
    source = open_source(spec)
    try:
        resolved = resolve_calibration(request, source)
        engine = Engine(source, settings, resolved.calibration,
                        loop=spec.loop if loop is None else loop,
                        pipeline_factory=pipeline_factory)
        engine.calibration_note = resolved.note
        return engine
    except BaseException:
        source.close()
        raise
