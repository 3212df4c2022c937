"""Replay of files and sessions: the pacing clock, the replay requests, the read-ahead.

Live sources pace themselves and hand out their newest pair.  Files and
sessions are read as fast as they decode, so the engine releases their pairs
at the native rate times ``speed`` (:class:`Pacer`), and pause, step, seek
and loop act in one place (:class:`ReplayControl`).  Decoding runs one or two
pairs ahead on its own thread (:class:`ReadAhead`); a seek starts a new
*generation* there, and pairs of an older one are thrown away.
"""

from __future__ import annotations

import math
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
READ_MARGIN = 1.25  # a read is planned to take this many times its smoothed time


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


#: the longest gap between two recorded frames the schedule follows; a longer one
#: (a live source that stalled while recording) is replayed as one frame period
MAX_GAP_S = 2.0
#: released this much after its time, replay gives up catching up and starts the
#: schedule afresh (a stall of the whole machine; pause and seek restart it anyway)
MAX_BEHIND_S = 1.0


class Pacer:
    """Releases pairs at the source's native rate times :attr:`speed`, on a fixed clock.

    The schedule is anchored once (first pair, seek, resume, speed change):
    pair ``k`` is due at ``anchor + (t_k - t_anchor) / speed`` with ``t`` the
    pairs' ``wl_time`` (a session keeps its capture jitter; ``1 / fps`` per
    pair when the time is missing, goes back or jumps more than
    :data:`MAX_GAP_S`).  A pair that comes late does not move the schedule:
    :meth:`wait` says how late it was and the engine skips pairs to catch up
    (:class:`CatchUp`), so the position on screen follows the wall clock and
    replay never turns into slow motion.

    Parameters
    ----------
    fps : the source's frame rate, frames per second
    keep_clock : keep the schedule when pairs come late (the viewer); False: a pair
        more than a period late starts the schedule afresh (every pair is shown,
        replay slows down; programmatic runs that want every frame)
    """

    def __init__(self, fps: float, keep_clock: bool = False):
        self.period = 1.0 / fps
        self.speed = 1.0
        self.keep_clock = bool(keep_clock)
        self._anchor: Optional[tuple[float, float]] = None  # (monotonic, schedule time)
        self._prev_time: Optional[float] = None  # wl_time of the previous pair
        self._time = 0.0  # schedule time of the previous pair (recorded seconds)
        #: (due, index) of the newest pair released; replaced whole (read by :meth:`skip_to`)
        self._last_due: Optional[tuple[float, int]] = None

    def set_speed(self, speed: float) -> None:
        lo, hi = SPEED_RANGE
        speed = float(speed)
        if not (lo <= speed <= hi):
            raise NirfError(f"speed: {speed:g} is outside {lo:g}..{hi:g}")
        if speed != self.speed and self._anchor is not None:
            # the new speed counts from where the schedule is now
            wall0, t0 = self._anchor
            self._anchor = (wall0 + (self._time - t0) / self.speed, self._time)
        self.speed = speed

    def restart(self) -> None:
        """Start the schedule afresh (after a seek or a pause): the next pair goes at once."""
        self._anchor = self._prev_time = self._last_due = None

    def skip_to(self, at: float, next_index: int) -> Optional[int]:
        """The frame to read instead of ``next_index`` so that it is ready when due,
        when reading takes until ``time.monotonic()`` ``at``: the first frame due then
        or after, if that is past ``next_index``; else None (read ``next_index``).

        None also before the schedule's first pair and when ``next_index`` is not
        after the newest pair released (the source went back: a loop's start).
        Counted from the newest pair released, one recording frame period a frame.
        """
        last = self._last_due
        if last is None:
            return None
        due, index = last
        if next_index <= index:
            return None
        want = index + max(0, math.ceil((at - due) * self.speed / self.period))
        return want if want > next_index else None

    def shown_period(self, stride: int) -> float:
        """Wall seconds between two shown frames at this speed and ``stride``."""
        return self.period * stride / self.speed

    def wait(self, pair: FramePair, stop: threading.Event) -> float:
        """Sleep until ``pair`` is due (or ``stop`` is set); how late it came, seconds (>= 0)."""
        t = pair.wl_time
        prev = self._prev_time
        if t is None or prev is None or not 0.0 < float(t) - prev <= MAX_GAP_S:
            step = self.period
        else:
            step = float(t) - prev
        self._prev_time = None if t is None else float(t)
        now = time.monotonic()
        if self._anchor is None:
            self._time = 0.0
            self._anchor = (now, 0.0)
        else:
            self._time += step
        wall0, t0 = self._anchor
        due = wall0 + (self._time - t0) / self.speed
        late = now - due
        if late > (MAX_BEHIND_S if self.keep_clock else self.period):
            # a stall: catching up would skip too much (or is not wanted); start afresh
            self._anchor = (now, self._time)
            self._last_due = (now, int(pair.index))
            return 0.0
        self._last_due = (due, int(pair.index))
        # sleep (never spin: two cores are shared with the GUI and the pipeline),
        # in short steps so that stop() is noticed
        while not stop.is_set():
            left = due - time.monotonic()
            if left <= 0:
                break
            stop.wait(min(left, 0.05))
        return max(0.0, late)


#: a pair this many shown-frame periods late means decoding cannot keep up:
#: the read-ahead jumps to where the clock is and from then on decodes only
#: every ``factor``-th frame of the speed's stride (fewer periods late: the late
#: pair alone is left out)
JUMP_AFTER_FRAMES = 3
#: a jump lands this far ahead of the clock at first (the decoders restart at the
#: new frame); the lead then follows how late the first pair after a jump came,
#: up to :data:`MAX_LEAD_S`
JUMP_LEAD_S = 0.15
MAX_LEAD_S = 0.6
#: the most frames one shown frame may advance while catching up
MAX_CATCH_UP_STRIDE = 8
#: this long with every pair on time, the catch-up factor steps back by one
CALM_S = 3.0


class CatchUp:
    """What replay does with pairs that come late (:meth:`decide`), so that the
    position shown follows the wall clock at the speed asked, never slower.

    A pair a shown-frame period late or more is left out.  When pairs come
    :data:`JUMP_AFTER_FRAMES` periods late, playing cannot catch up (decoding
    is what is slow, and a decoded pair left out saves nothing of it): the
    read-ahead jumps to where the clock is and the stride grows by the speed's
    stride (1x on a slow machine: every other frame decoded and shown, the
    position right).  After :data:`CALM_S` with every pair on time it steps
    back.  A user's seek, a pause or a new speed start afresh (:meth:`restart`).

    Attributes
    ----------
    skipped : frames the speed's stride would have shown but were not (counted
        from the gaps between shown frames, so it always matches them)
    factor : the catch-up factor: the read-ahead's stride is the speed's times this
    lead : how far ahead of the clock a jump lands, seconds (learnt)
    """

    def __init__(self):
        self.skipped = 0
        self.lead = JUMP_LEAD_S
        self.factor = 1
        #: far behind, the stride grows; False where the read-ahead skips ahead by
        #: itself (:attr:`ReadAhead.skips_ahead`): a frame fewer, not every other one
        self.restrides = True
        self._after_jump = False
        self._last: Optional[int] = None  # index of the last frame shown
        self._calm_since = 0.0

    def decide(self, late: float, index: int, stride: int, pacer: Pacer, seekable: bool,
               frame_count: Optional[int], now: float) -> tuple[bool, Optional[int], bool]:
        """``(skip, jump_to, restride)`` for a pair ``late`` seconds after its time.

        ``skip``: leave the pair out; ``jump_to``: the frame the read-ahead
        should continue from (``None``: the next one); ``restride``: the
        read-ahead's stride is now ``stride * factor``.  The first pair after
        a jump is always shown (a jump that landed late teaches :attr:`lead`).
        """
        shown = pacer.shown_period(stride * self.factor)
        if self._after_jump:
            self._after_jump = False
            self.lead = min(MAX_LEAD_S, max(JUMP_LEAD_S, 0.5 * self.lead + late + 0.02))
            return self._show(index, stride), None, False
        if late >= 0.5 * shown:
            self._calm_since = now
        if late < shown:
            restride = False
            if self.factor > 1 and now - self._calm_since > CALM_S:
                self.factor -= 1
                self._calm_since = now
                restride = True
            return self._show(index, stride), None, restride
        if seekable and late >= JUMP_AFTER_FRAMES * shown:
            ahead = int((late + self.lead) * pacer.speed / pacer.period + 0.5)
            target = index + max(ahead, stride)
            if frame_count:
                target = min(target, frame_count - 1)
            if target > index:
                self._after_jump = True
                restride = self.restrides and self.factor * stride * 2 <= MAX_CATCH_UP_STRIDE
                if restride:
                    self.factor += 1
                return True, target, restride
        return True, None, False

    def _show(self, index: int, stride: int) -> bool:
        if self._last is not None:
            self.skipped += max(0, (index - self._last) // stride - 1)
        self._last = index
        return False

    def restart(self) -> None:
        """A seek, a pause or a new speed: a new schedule, nothing owed."""
        self._after_jump = False
        self._last = None
        self.factor = 1


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

    With a ``pacer`` keeping the clock and a ``random_access`` source, a read
    that would finish after the next frame's time reads the frame due when it
    finishes instead (:meth:`Pacer.skip_to`; the read time learnt as it goes):
    decoding that cannot keep up decodes only frames it shows, as many as it can.
    """

    def __init__(self, source, stop: threading.Event, depth: int = 2, stride: int = 1,
                 pacer: Optional[Pacer] = None):
        self.source = source
        self._pacer = pacer if pacer is not None and source.random_access else None
        self.skips_ahead = self._pacer is not None  #: reads skip frames shown too late
        self._read_s: Optional[float] = None  # a read's wall time, smoothed
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
        next_index: Optional[int] = None  # the frame the next read hands out, when known
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
                next_index = index
            if self.stride != self._stride_done:
                k = self.stride
                self._stride_done = k
                try:
                    self.source.set_stride(k)
                except Exception as e:
                    self._put((gen, "error", e))
            try:
                self._skip_ahead(next_index)
                t0 = time.monotonic()
                pair = self.source.read(READ_TIMEOUT_S)
            except TimeoutError:
                continue
            except Exception as e:
                errors += 1
                next_index = None
                self._put((gen, "error", e))
                self._stop.wait(min(RETRY_DELAY_S * errors, 2.0))
                continue
            errors = 0
            at_end = pair is None
            if pair is not None:
                took = time.monotonic() - t0
                self._read_s = took if self._read_s is None else 0.75 * self._read_s + 0.25 * took
                next_index = int(pair.index) + self._stride_done
            self._put((gen, "pair", pair))

    def _skip_ahead(self, next_index: Optional[int]) -> None:
        """Seek past frames that would be read too late to be shown (see the class)."""
        if self._pacer is None or next_index is None or self._read_s is None:
            return
        # a margin over the smoothed read time: a pair a little early waits, one
        # a period late is decoded for nothing
        to = self._pacer.skip_to(time.monotonic() + READ_MARGIN * self._read_s, next_index)
        n = self.source.info.frame_count
        if to is not None and (not n or to < n):
            self.source.seek(to)

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
