"""The viewer's runner: capture -> process on a worker thread, results to a mailbox and listeners.

Threading design
----------------
One worker thread runs ``source.read(timeout) -> pipeline.process(pair)`` in a
loop and puts each result into a :class:`~.mailbox.LatestMailbox`, a one-slot
box where the newest result replaces an unread older one (the replaced one is
counted as *dropped*).  The display (the GUI's timer, or anything else) calls
:meth:`Engine.latest` whenever it is ready to paint and gets the newest frame
or ``None``; it never waits on capture, processing, disk or network.

Every captured pair and every result also go to the run's listeners
(:mod:`.listeners`).  The engine's own two are called on the worker because
neither can block: :class:`~.stats.RunStats` counts, and
:class:`~.recording.RecordingControl` offers each pair to an attached
recorder (``Recorder.submit``: non-blocking, its own bounded lossless queue),
so a slow disk never slows the display and the display never slows
recording.  Every listener added with :meth:`Engine.add_listener` gets its
own relay thread and bounded queue (:class:`~.listeners.ListenerRelay`): the
worker only appends to that queue, so a slow listener cannot stall capture,
and one that raises is detached and reported in :attr:`EngineStatus.error`.

Files and sessions are paced here at their native rate (times ``speed``), so
replay controls (pause, step, seek, speed, loop) act in one place
(:mod:`.replay_driver`, its rules in :mod:`.replay`); live sources pace themselves and hand out their newest pair.

States
------
:class:`~.state.RunState`, told to listeners through ``on_state``::

    STARTING --start()--> RUNNING <--pause() / resume()--> PAUSED
    RUNNING --a file or session ran out, not looping--> ENDED
    ENDED --seek() / resume() / step back: a frame is processed--> RUNNING
    RUNNING --a read or process failed--> ERROR --a frame is processed--> RUNNING
    any --stop()--> STOPPED (worker ended, recording finished, source closed)

Latency
-------
``FramePair.arrival`` is stamped by the source when it hands the pair out;
for paced replay it is re-stamped when the pair is released on schedule, so
``painted - arrival`` is the latency the viewer adds (processing, mailbox,
paint) and is measured by the view after it paints.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from ..errors import NirfError
from ..frame import FramePair
from ..settings import Settings
from .listeners import RELAY_DEPTH, Listener, ListenerRelay
from .mailbox import DisplayFrame, LatestMailbox
from .pipelines import Pipelines, default_pipeline_factory
from .recorded_plane import RecordedPlane
from .recording import RecordingControl
from .replay import READ_TIMEOUT_S, RETRY_DELAY_S
from .replay_driver import ReplayDriver
from .state import RunState
from .stats import EngineStatus, RunStats, plain
from .threads import spawn

log = logging.getLogger(__name__)


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
        :class:`nirf_overlay.processing.pipeline.Pipeline` with the rim
        analysis on its own thread.
    keep_clock : paced replay keeps the shown position on the wall clock,
        leaving out frames that come late (:class:`~.replay.CatchUp`; the
        viewer does); False: every frame is shown, late ones slow replay down.
    prepare : when the kernels are not prepared in this process yet, start
        without a pipeline and prepare them on a thread
        (:mod:`.prepare`): the white light plays meanwhile, marked, and the
        pipeline is built with the settings and calibration then in force.
    """

    def __init__(self, source, settings=None, calibration=None, *, pipeline=None,
                 pace: Optional[bool] = None, loop: bool = False,
                 pipeline_factory: Optional[Callable] = None, prepare: bool = False,
                 keep_clock: bool = False):
        self.source = source
        self.settings = settings.copy() if settings is not None else Settings()
        #: a remark on the calibration for the user ("" when none), see open_engine
        self.calibration_note = ""
        # main and A/B pipelines, (re)built on the worker (.pipelines)
        self._pipes = Pipelines(pipeline_factory or default_pipeline_factory, self.settings,
                                calibration, pipeline=pipeline, prepare=prepare,
                                on_ready=lambda: self._replay.redisplay(),
                                on_failed=self._on_kernels_failed)
        self.info = source.info
        self.seekable = bool(self.info.seekable)
        self.pace = (not self.info.live) if pace is None else bool(pace)
        self.mailbox = LatestMailbox()

        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._driver = ReplayDriver(self.info, self.fps, loop=loop, keep_clock=keep_clock,
                                    stop=self._stop)
        self._replay = self._driver.control

        # state, status and listeners
        self._state = RunState.STARTING
        self._told: Optional[RunState] = None  # the state listeners last heard
        self._state_lock = threading.Lock()
        self._error = ""
        self._seq = 0
        self._stats = RunStats()
        self._recording = RecordingControl()
        #: a session's recorded plane, put in force as it was live (None: none recorded)
        self._plane = RecordedPlane.of(source, lambda: ((self._pipes.main, self.settings),
                                                        (self._pipes.b, self._pipes.ab_settings)))
        # never block: called on the worker
        self._own = (self._stats, self._recording) + ((self._plane,) if self._plane else ())
        self._relays: tuple = ()  # replaced, never changed in place: the worker reads it unlocked

    # -- life cycle -----------------------------------------------------------
    def start(self) -> "Engine":
        if self._thread is None:
            self._thread = spawn(self._run, "nirf-engine")
            self._pipes.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the worker, the recorder, and close the source (safe twice)."""
        self._stop.set()
        self._replay.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._driver.ahead is not None:
            self._driver.ahead.join(timeout)  # it may be inside source.read()
        self._recording.close()
        self._pipes.close()
        try:
            self.source.close()
        except Exception as e:  # a source that fails to close must not stop shutdown
            log.warning("closing %s: %s", self.info.description, e)
        self._set_state(RunState.STOPPED)
        relays, self._relays = self._relays, ()
        for relay in relays:
            relay.close(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def state(self) -> RunState:
        """Where the run is (see the module docstring for the diagram)."""
        state = self._state
        if state == RunState.RUNNING and self._replay.paused:
            return RunState.PAUSED
        return state

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- listeners ------------------------------------------------------------------
    def add_listener(self, listener: Listener, *, depth: int = RELAY_DEPTH) -> ListenerRelay:
        """Tell ``listener`` every state change, captured pair and result, on its own thread.

        It hears the current state first.  It never stalls capture: when it is
        more than ``depth`` pairs and results behind, newer ones pass it by and
        are counted (``relay.dropped``, :attr:`EngineStatus.listener_dropped`);
        if it raises, it is detached and the error shows in :meth:`status`.
        """
        relay = ListenerRelay(listener, depth=depth, on_error=self._on_listener_error)
        with self._state_lock:
            relay.on_state(self.state)
            if self._state == RunState.STOPPED:  # nothing more will come
                relay.close()
                return relay
            self._relays = self._relays + (relay,)
        return relay

    def remove_listener(self, listener: Listener) -> None:
        """Stop telling ``listener``; what it was already told is still delivered."""
        with self._state_lock:
            gone = [r for r in self._relays if r.listener is listener]
            self._relays = tuple(r for r in self._relays if r.listener is not listener)
        for relay in gone:
            relay.close()

    def _on_listener_error(self, relay: ListenerRelay, e: Exception) -> None:
        with self._state_lock:
            self._relays = tuple(r for r in self._relays if r is not relay)
        self._error = f"{relay.name} stopped: {plain(e)}"

    # -- display side ----------------------------------------------------------
    def latest(self) -> Optional[DisplayFrame]:
        """The newest result not yet taken, or ``None``; never blocks."""
        return self.mailbox.take()

    @property
    def dropped(self) -> int:
        """Results replaced in the mailbox before the display took them."""
        return self.mailbox.dropped

    # -- settings ----------------------------------------------------------------
    @property
    def pipeline(self):
        """The main pipeline (None while the kernels are being prepared)."""
        return self._pipes.main

    @property
    def calibration(self):
        """The calibration in force (:meth:`set_calibration` changes it)."""
        return self._pipes.calibration

    def update_settings(self, settings) -> None:
        """Use ``settings`` from the next frame on (thread-safe)."""
        old, self.settings = self.settings, settings.copy()
        now = self._plane.take(old, self.settings) if self._plane else self.settings
        pipeline = self.pipeline
        if pipeline is not None:  # else: built with self.settings once the kernels are ready
            pipeline.update_settings(now)
        self.log_event("settings", settings=self.settings.to_dict())

    def _settings_now(self):
        """The settings the pipeline runs with: the recorded plane in force while replaying it."""
        return self._plane.settings_now(self.settings) if self._plane else self.settings

    def set_calibration(self, calibration) -> None:
        """Use ``calibration`` from the next frame on (a new pipeline is built on the worker)."""
        if calibration is not None:
            calibration.check_size(tuple(self.info.size))
        self._pipes.set_calibration(calibration)
        self._replay.wake()

    def set_ab(self, settings_b) -> None:
        """Run a second pipeline with ``settings_b`` on the same pairs (None = off)."""
        self._pipes.set_ab(settings_b)
        self._replay.redisplay()  # paused: show the frame on screen with both settings

    @property
    def ab(self) -> bool:
        return self._pipes.ab_settings is not None

    # -- replay --------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._replay.paused

    def pause(self) -> None:
        self._replay.pause()
        self._tell_state()

    def resume(self) -> None:
        self._driver.resume()
        self._tell_state()

    def toggle_pause(self) -> None:
        (self.resume if self.paused else self.pause)()

    def step(self, delta: int = 1) -> None:
        """Pause and show the next (``+1``) or previous (``-1``) frame."""
        self._replay.step(delta)
        self._tell_state()

    def seek(self, index: int) -> None:
        """Show frame ``index`` next (clamped to the source's length)."""
        self._replay.seek(self._driver.clamp_seek(index))

    def set_speed(self, speed: float) -> None:
        self._driver.set_speed(speed)

    @property
    def speed(self) -> float:
        return self._driver.pacer.speed

    @property
    def keep_clock(self) -> bool:
        """Paced replay leaves late frames out to keep the position on the wall clock."""
        return self._driver.pacer.keep_clock

    @property
    def skipped(self) -> int:
        """Frames replay left out to keep the position on the wall clock (:class:`~.replay.CatchUp`)."""
        return self._driver.catch_up.skipped

    def set_loop(self, loop: bool) -> None:
        self._replay.set_loop(loop)

    @property
    def loop(self) -> bool:
        return self._replay.loop

    @property
    def position(self) -> Optional[int]:
        """Index of the newest processed frame (frame N of the recording)."""
        return self._replay.position

    @property
    def frame_count(self) -> Optional[int]:
        return self.info.frame_count

    @property
    def fps(self) -> float:
        return float(self.info.fps or 30.0)

    @property
    def markers(self) -> list:
        """The source's markers, ``(frame, label)`` items (a session's; ``[]`` for others)."""
        return list(self.source.markers)

    # -- recording -------------------------------------------------------------------
    def start_recording(self, out_dir) -> None:
        """Start a :class:`~nirf_overlay.recording.Recorder` in ``out_dir``.

        The recorder is created on a helper thread (it touches the disk), so
        this returns at once; :meth:`recording_status` tells how it went.
        """
        self._recording.start(out_dir, self.info, self.settings.copy(), self.calibration)

    def stop_recording(self, wait: bool = False) -> None:
        """Detach the recorder at once and let it finish writing on a helper thread."""
        self._recording.stop(wait)

    @property
    def recording(self) -> bool:
        return self._recording.active

    def recording_status(self) -> dict:
        """State, directory, seconds, frames written / not written, error."""
        return self._recording.status()

    def log_event(self, kind: str, **data) -> None:
        """Write an event (snapshot, marker, setting change) into the recording."""
        self._recording.log_event(kind, self._replay.position, **data)

    # -- status ------------------------------------------------------------------
    def status(self) -> EngineStatus:
        now = time.monotonic()
        stats = self._stats
        return EngineStatus(
            state=self.state,
            fps_in=stats.fps_in.rate(now),
            fps_out=stats.fps_out.rate(now),
            last_frame_time=stats.last_frame_time,
            nir_lost=stats.nir_lost,
            error=self._error,
            source=self.source.stats.as_dict(),
            captured=stats.captured,
            processed=stats.processed,
            dropped_display=self.mailbox.dropped,
            position=self.position,
            frame_count=self.frame_count,
            paused=self.paused,
            speed=self.speed,
            loop=self.loop,
            ab=self.ab,
            recording=self.recording_status(),
            process_ms=stats.process_ms,
            listener_dropped=sum(r.dropped for r in self._relays),
            skipped=self.skipped,
            preparing=self._pipes.preparing,
            notice=stats.notice,
        )

    @property
    def preparing(self) -> str:
        """What is being prepared before the overlay can start ("" when it is on)."""
        return self._pipes.preparing

    def _on_kernels_failed(self, e: BaseException) -> None:
        self._error = f"preparing the analysis kernels: {plain(e)}"

    # -- worker ----------------------------------------------------------------------
    def _run(self) -> None:
        self._set_state(RunState.RUNNING)
        self._driver.start_reading(self.source)
        errors_in_row = 0
        while True:
            turn = self._replay.next_turn(self._stop)
            if turn is None:
                break
            self._apply_pipeline_changes()
            if turn.seek_to is not None and not self._seek(turn.seek_to):
                continue
            try:
                pair = (self._driver.ahead or self.source).read(READ_TIMEOUT_S)
            except TimeoutError:
                if turn.stepping and self.seekable:
                    self._replay.owe_step()
                continue  # a live source with nothing new: the display marks it stale
            except Exception as e:
                errors_in_row += 1
                self._report(e, "reading")
                self._set_state(RunState.ERROR)
                self._stop.wait(min(RETRY_DELAY_S * errors_in_row, 2.0))
                continue
            if errors_in_row:
                errors_in_row = 0
                self._error = ""
            if pair is None:
                if self._replay.at_end():
                    self._set_state(RunState.ENDED)
                continue
            self._replay.ended = False
            if not self._driver.release(pair, turn, self.pace):
                continue  # left out to keep the clock, or stopping
            for listener in self._own + self._relays:
                listener.on_pair(pair)
            self._process(pair)

    def _apply_pipeline_changes(self) -> None:
        try:  # pipelines are built outside any lock: the GUI never waits on them
            self._pipes.apply(self._settings_now)
        except Exception as e:
            self._report(e, "preparing the pipeline")

    def _seek(self, index: int) -> bool:
        try:
            self._driver.seek(self.source, index)
        except Exception as e:
            self._report(e, f"seeking to frame {index}")
            return False
        self.mailbox.clear()
        self._pipes.reset()
        self.log_event("seek", index=int(index))
        return True

    def _process(self, pair: FramePair) -> None:
        t0 = time.perf_counter()
        try:
            # while the kernels are prepared: the white light, marked (.prepare)
            result, result_b = self._pipes.process(pair)
        except Exception as e:
            self._report(e, f"processing frame {pair.index}")
            self._set_state(RunState.ERROR)
            return
        if self._error.startswith("processing"):
            self._error = ""
        process_ms = (time.perf_counter() - t0) * 1000.0
        if not result.arrival:
            result.arrival = pair.arrival
        self._seq += 1
        self._replay.position = int(pair.index)
        frame = DisplayFrame(pair, result, result_b, time.monotonic(), self._seq, process_ms,
                             preparing=self.pipeline is None)
        self._set_state(RunState.RUNNING)
        for listener in self._own:  # counted before the display can see it
            listener.on_result(frame)
        self.mailbox.put(frame)
        for relay in self._relays:
            relay.on_result(frame)

    def _set_state(self, state: RunState) -> None:
        if self._state != state:
            self._state = state
            self._tell_state()

    def _tell_state(self) -> None:
        with self._state_lock:
            state = self.state
            if state == self._told:
                return
            self._told = state
            for listener in self._own + self._relays:
                listener.on_state(state)

    def _report(self, e: BaseException, doing: str) -> None:
        if isinstance(e, NirfError):
            log.warning("%s: %s", doing, e)
        else:
            log.exception("%s failed", doing)
        self._error = f"{doing}: {plain(e)}"

