"""The engine's replay commands and the worker's pacing step: :class:`ReplayDriver`.

:class:`~.runner.Engine` owns one; its pause, step, seek and speed calls and
the worker's "is this pair due, or left out to catch up" step come here, so
that the runner keeps the loop, its states and the listeners.  The rules
themselves (the clock, the catch-up, the requests, the read-ahead) are in
:mod:`.replay`.
"""

from __future__ import annotations

import threading
import time
from typing import Optional

from ..errors import NirfError
from ..frame import FramePair
from .replay import CatchUp, Pacer, ReadAhead, ReplayControl, Turn, replay_stride


class ReplayDriver:
    """Pause, step, seek, speed and catching up with the clock for one source.

    Parameters
    ----------
    info : the source's :class:`~nirf_overlay.frame.SourceInfo`
    fps : its frame rate (the schedule's period)
    loop : start over at the end of a seekable source
    keep_clock : leave late pairs out so the position follows the wall clock
    stop : the engine's stop event
    """

    def __init__(self, info, fps: float, *, loop: bool, keep_clock: bool,
                 stop: threading.Event):
        self.info = info
        self.seekable = bool(info.seekable)
        self.control = ReplayControl(seekable=self.seekable, loop=loop)
        self.pacer = Pacer(fps, keep_clock=keep_clock)
        self.catch_up = CatchUp()  # skips late pairs: the position follows the wall clock
        self.ahead: Optional[ReadAhead] = None  # read-ahead for files and sessions
        self.stride = 1  # frames each shown frame advances (fast replay, replay_stride)
        self._stop = stop

    # -- commands (any thread) -----------------------------------------------------
    def resume(self) -> None:
        self.restart_clock()  # the schedule counts from now, not from before the pause
        self.control.resume()

    def clamp_seek(self, index: int) -> int:
        """``index`` clamped to the source's length; NirfError for a source that cannot seek."""
        if not self.seekable:
            raise NirfError(f"{self.info.description}: this source cannot seek")
        n = self.info.frame_count
        index = max(0, int(index))
        return min(index, n - 1) if n else index

    def set_speed(self, speed: float) -> None:
        self.pacer.set_speed(speed)
        self.stride = replay_stride(self.pacer.speed)
        self.catch_up.restart()
        if self.ahead is not None:
            self.ahead.stride = self.stride

    def restart_clock(self) -> None:
        """A new replay schedule from the next pair (seek, resume); catching up ends."""
        self.pacer.restart()
        self.catch_up.restart()
        if self.ahead is not None:
            self.ahead.stride = self.stride

    # -- worker --------------------------------------------------------------------
    def start_reading(self, source) -> None:
        """Files and sessions are read ahead on their own thread (:class:`.replay.ReadAhead`)."""
        if not self.info.live:
            # keeping the clock, a source that can skip decodes only frames it can show
            self.ahead = ReadAhead(source, self._stop, stride=self.stride,
                                   pacer=self.pacer if self.pacer.keep_clock else None)
            self.catch_up.restrides = not self.ahead.skips_ahead

    def seek(self, source, index: int) -> None:
        """Carry out a seek the worker took from :meth:`ReplayControl.next_turn`."""
        # the clock first: the read-ahead must not skip ahead on the old schedule
        self.restart_clock()
        if self.ahead is not None:
            self.ahead.seek(index)  # carried out on the read-ahead thread
        else:
            source.seek(index)
        self.control.ended = False

    def release(self, pair: FramePair, turn: Turn, pace: bool) -> bool:
        """Wait until ``pair`` is due; False when it is left out (late: the clock is kept)."""
        if pace and not turn.stepping:
            late = self.pacer.wait(pair, self._stop)
            if self._stop.is_set():
                return False
            if self.pacer.keep_clock and self._skip_late(pair, late):
                return False
            pair.arrival = time.monotonic()
            return True
        if turn.stepping:
            self.pacer.restart()  # playing on after steps starts a new schedule
        if not pair.arrival:
            pair.arrival = time.monotonic()
        return True

    def _skip_late(self, pair: FramePair, late: float) -> bool:
        """Leave out a pair that came a shown-frame period or more late (never slow
        motion); far behind, the read-ahead jumps to where the clock is."""
        c = self.catch_up
        skip, jump_to, restride = c.decide(late, int(pair.index), self.stride, self.pacer,
                                           self.seekable and self.ahead is not None,
                                           self.info.frame_count, time.monotonic())
        if restride:
            self.ahead.stride = self.stride * c.factor  # carried out before its next read
        if jump_to is not None:
            self.ahead.seek(jump_to)  # not a user's seek: the schedule and the filters go on
        return skip
