"""Replay of files and sessions: the pacing clock, the replay requests, the read-ahead.

Live sources pace themselves and hand out their newest pair.  Files and
sessions are read as fast as they decode, so the engine releases their pairs
at the native rate times ``speed`` (:class:`Pacer`), and pause, step, seek
and loop act in one place (:class:`ReplayControl`).  Decoding runs one or two
pairs ahead on its own thread (:class:`ReadAhead`); a seek starts a new
*generation* there, and pairs of an older one are thrown away.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Optional

from ..errors import NirfError
from ..frame import FramePair
from .threads import spawn

SPEED_RANGE = (0.25, 4.0)
READ_TIMEOUT_S = 0.1  # how long one read may wait before requests are looked at again
RETRY_DELAY_S = 0.5  # pause after a source error before reading again


def replay_stride(speed: float) -> int:
    """Frames of the recording each shown frame advances at replay ``speed``.

    Up to 2x every frame is decoded and shown (a 30 fps recording at 1.5x is
    shown at 45 fps); from 2x on the picture stays at the recording's own rate
    and each frame shown jumps ``int(speed)`` frames (2x: every other frame, 60
    frames of a 30 fps recording a second), so that decoding, which costs
    about as much as the pipeline per 1080p frame, is not asked for 2-4 times
    the recording's rate.  Sessions leave the frames not shown undecoded
    (:meth:`~nirf_overlay.recording.SessionSource.set_stride`).
    """
    return max(1, int(speed + 1e-9)) if speed >= 2.0 else 1


class Pacer:
    """Releases pairs at the source's native rate times :attr:`speed`.

    The period between two pairs is the difference of their ``wl_time``
    (a session keeps its capture jitter), ``1 / fps`` when that is missing or
    implausible (not within 0..1 s).

    Parameters
    ----------
    fps : the source's frame rate, frames per second
    """

    def __init__(self, fps: float):
        self.period = 1.0 / fps
        self.speed = 1.0
        self._due: Optional[float] = None  # when the next pair is to be released
        self._prev_time: Optional[float] = None

    def set_speed(self, speed: float) -> None:
        lo, hi = SPEED_RANGE
        speed = float(speed)
        if not (lo <= speed <= hi):
            raise NirfError(f"speed: {speed:g} is outside {lo:g}..{hi:g}")
        self.speed = speed

    def restart(self) -> None:
        """Start the schedule afresh (after a seek): the next pair goes at once."""
        self._due = self._prev_time = None

    def wait(self, pair: FramePair, stop: threading.Event) -> None:
        """Sleep until ``pair`` is due (or ``stop`` is set)."""
        t = float(pair.wl_time or 0.0)
        dt = self.period
        if self._prev_time is not None and 0.0 < t - self._prev_time < 1.0:
            dt = t - self._prev_time
        self._prev_time = t
        now = time.monotonic()
        if self._due is None:
            self._due = now
        else:
            self._due += dt / self.speed
            if self._due < now - self.period:  # fell behind: restart the schedule, never burst
                self._due = now
        # sleep (never spin: two cores are shared with the GUI and the pipeline),
        # in short steps so that stop() is noticed
        while not stop.is_set():
            left = self._due - time.monotonic()
            if left <= 0:
                break
            stop.wait(min(left, 0.05))


@dataclass
class Turn:
    """What the worker does before its next read (see :meth:`ReplayControl.next_turn`).

    Attributes
    ----------
    seek_to : frame to seek to first, or None
    stepping : replay is paused and this read is one step (released at once, not paced)
    """

    seek_to: Optional[int]
    stepping: bool


class ReplayControl:
    """Pause, step, seek and loop requests, and where replay is; thread-safe.

    Any thread makes requests; the worker asks :meth:`next_turn` before each
    read, which waits while there is nothing to do (paused with no step owed,
    or at the end and not looping).

    Parameters
    ----------
    seekable : the source can seek (steps back, seeks and loops need it)
    loop : start over at the end
    """

    def __init__(self, *, seekable: bool, loop: bool):
        self._cv = threading.Condition()
        self.seekable = seekable
        self.loop = bool(loop)
        self.paused = False
        #: the source ran out (set by the worker, cleared by a pair or a seek)
        self.ended = False
        #: index of the newest processed frame (set by the worker)
        self.position: Optional[int] = None
        self._steps = 0
        self._seek_to: Optional[int] = None

    # -- requests (any thread) ------------------------------------------------
    def wake(self) -> None:
        """Let a waiting :meth:`next_turn` look again (stop, new pipelines)."""
        with self._cv:
            self._cv.notify_all()

    def pause(self) -> None:
        with self._cv:
            self.paused = True
            self._cv.notify_all()

    def resume(self) -> None:
        with self._cv:
            self.paused = False
            self._steps = 0
            if self.ended and self.seekable and self._seek_to is None:
                self._seek_to = 0  # play again from the start
            self._cv.notify_all()

    def step(self, delta: int) -> None:
        """Pause and show the next (``+1``) or previous (``-1``) frame."""
        with self._cv:
            self.paused = True
            if delta >= 1:
                if self.ended:
                    return
                self._steps += int(delta)
            elif delta <= -1:
                if not self.seekable:
                    return
                base = self._seek_to if self._seek_to is not None else (self.position or 0)
                self._seek_to = max(0, base + int(delta))
                self._steps = 1
            self._cv.notify_all()

    def seek(self, index: int) -> None:
        """Show frame ``index`` next (already clamped to the source)."""
        with self._cv:
            self._seek_to = int(index)
            if self.paused:
                self._steps = 1
            self._cv.notify_all()

    def set_loop(self, loop: bool) -> None:
        with self._cv:
            self.loop = bool(loop)
            self._cv.notify_all()

    def redisplay(self) -> None:
        """While paused, process the frame on screen again (new A/B settings)."""
        with self._cv:
            if self.paused and self.seekable and self.position is not None:
                self._seek_to = self.position
                self._steps = 1
            self._cv.notify_all()

    # -- worker ----------------------------------------------------------------
    def next_turn(self, stop: threading.Event) -> Optional[Turn]:
        """Wait until there is a pair to read; None once ``stop`` is set."""
        with self._cv:
            while not stop.is_set() and (
                    (self.paused and self._steps == 0 and self._seek_to is None)
                    or (self.ended and self._seek_to is None and not self._looping())):
                self._cv.wait(0.2)
            if stop.is_set():
                return None
            seek_to, self._seek_to = self._seek_to, None
            stepping = self.paused
            if stepping and self._steps > 0:
                self._steps -= 1
            if self.ended and seek_to is None and self._looping():
                seek_to = 0
            return Turn(seek_to, stepping)

    def owe_step(self) -> None:
        """A step's read timed out (a slow first frame after a seek): the step is
        still owed, or the frame asked for would never be shown."""
        with self._cv:
            self._steps += 1

    def at_end(self) -> bool:
        """The source ran out; True when replay stays there (it does not loop)."""
        self.ended = True
        return not self._looping()

    def _looping(self) -> bool:
        return self.loop and self.seekable


class ReadAhead:
    """Reads a file or session one or two pairs ahead on its own thread.

    Decoding (FFmpeg, disk) then overlaps with processing, so replay keeps
    its rate when read + process would not fit in a frame period.  Only this
    thread touches the source; a seek is a request it carries out, and pairs
    read before the seek (an older *generation*) are thrown away.
    """

    def __init__(self, source, stop: threading.Event, depth: int = 2, stride: int = 1):
        self.source = source
        #: frames each read should advance (:func:`replay_stride`); set by the
        #: engine, carried out on this thread before its next read
        self.stride = stride
        self._stride_done = 1
        self._stop = stop
        self._q: queue.Queue = queue.Queue(maxsize=depth)
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
            except queue.Empty:
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
            if self.stride != self._stride_done:
                k = self.stride
                self._stride_done = k
                try:
                    self.source.set_stride(k)
                except Exception as e:
                    self._put((gen, "error", e))
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
            except queue.Full:
                continue
