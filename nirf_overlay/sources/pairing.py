"""Pairing WL and NIR frames of two live streams by capture time.

:class:`TimestampPairer` is pure (no threads, no clock of its own: the caller
passes ``now``), so its rules can be tested with synthetic timestamps.

Rules
-----
- A WL frame at ``t_w`` pairs with the *unused* NIR frame nearest in time,
  if it lies within ``tolerance`` seconds (default: half a frame period).
- A WL frame is decided as soon as no later NIR frame could be nearer: when a
  NIR frame with ``t_n >= t_w`` has arrived, or when ``now`` has passed
  ``t_w + min(d, tolerance) + grace`` (``d`` = distance to the best candidate
  so far, ``grace`` = the time a grabbed frame may still be in flight).
- Pairs are monotonic: once NIR ``n`` is used, NIR frames older than ``n``
  are discarded.  No frame is used twice.
- White light never waits for NIR: a WL frame decided without a partner goes
  out alone (``nir=None``) at once, counted in ``wl_alone``; it waited at most
  ``tolerance + grace``.  Its ``status`` is ``"stale"`` while the newest NIR
  frame is at most ``lost_after`` seconds older (a gap: the overlay is off for
  this frame only) and ``"lost"`` beyond that (:data:`NIR_LOST_AFTER`, the
  delay before the display says NIR LOST).  A paired frame is ``"present"``.
- Only the newest decided pair is kept for the reader; a pair replaced before
  anyone took it counts as ``dropped``.  A NIR frame discarded without being
  used counts as ``unpaired_nir``.  Queues are bounded (``maxlen`` each);
  overflow counts as unpaired (``unpaired_wl``, ``unpaired_nir``).  So latency
  cannot build up, and nothing disappears uncounted.
- While the NIR stream is known to be lost (``nir_lost = True``, its capture
  is reconnecting), each WL frame is handed out at once, ``"lost"``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Optional


@dataclass
class TimedFrame:
    t: float  # capture time, seconds (time.monotonic() at grab)
    frame: Any
    seq: int = 0  # running number within its stream


#: seconds without any NIR frame after which a WL frame alone is "lost", not "stale":
#: three frame periods at 60 fps and about two at 30 fps, so one late or missing NIR
#: frame is a gap, while a stream that stopped says so within a quarter second
NIR_LOST_AFTER = 0.25


@dataclass
class Pair:
    wl: TimedFrame
    nir: Optional[TimedFrame]  # None when no NIR frame was within the tolerance
    status: str = "present"  # present | stale | lost (see the module's rules)


class TimestampPairer:
    """Nearest-in-time pairing of two streams, newest pair wins.

    Parameters
    ----------
    tolerance : float
        Largest ``|t_wl - t_nir|`` in seconds for a pair.
    maxlen : int
        Frames buffered per stream while waiting for a partner.
    grace : float
        Seconds a frame grabbed before ``now`` may take to arrive.
    lost_after : float
        Seconds since the newest NIR frame after which a WL frame alone is ``"lost"``.
    """

    def __init__(self, tolerance: float, *, maxlen: int = 4, grace: float = 0.0,
                 lost_after: float = NIR_LOST_AFTER):
        if tolerance <= 0:
            raise ValueError("tolerance must be positive")
        self.tolerance = float(tolerance)
        self.grace = float(grace)
        self.lost_after = float(lost_after)
        self.last_nir_t = float("-inf")  # capture time of the newest NIR frame
        self._wl: deque[TimedFrame] = deque()
        self._nir: deque[TimedFrame] = deque()
        self._maxlen = int(maxlen)
        self._ready: Optional[Pair] = None
        self._last_wl_t = float("-inf")
        self.nir_lost = False
        self.paired = 0
        self.delivered = 0
        self.dropped = 0
        self.unpaired_wl = 0
        self.unpaired_nir = 0
        self.wl_alone = 0

    # -- input --------------------------------------------------------------
    def push_wl(self, item: TimedFrame) -> None:
        self._wl.append(item)
        self._last_wl_t = max(self._last_wl_t, item.t)
        while len(self._wl) > self._maxlen:
            self._wl.popleft()
            self.unpaired_wl += 1

    def push_nir(self, item: TimedFrame) -> None:
        self.note_nir(item.t)
        self._nir.append(item)
        while len(self._nir) > self._maxlen:
            self._nir.popleft()
            self.unpaired_nir += 1

    def note_nir(self, t: float) -> None:
        """A NIR frame was captured at ``t`` (also the one a source reads when it opens)."""
        self.last_nir_t = max(self.last_nir_t, float(t))

    # -- output -------------------------------------------------------------
    def alone_status(self, t_wl: float) -> str:
        """``"stale"`` or ``"lost"`` for a WL frame at ``t_wl`` without a partner."""
        if self.nir_lost or t_wl - self.last_nir_t > self.lost_after:
            return "lost"
        return "stale"

    def poll(self, now: float) -> None:
        """Decide every WL frame that can be decided at time ``now``."""
        tol = self.tolerance
        while self._wl:
            w = self._wl[0]
            if self.nir_lost:
                self._wl.popleft()
                self._emit(Pair(w, None, "lost"))
                continue
            best_i, best_d = -1, tol
            for i, n in enumerate(self._nir):
                d = abs(n.t - w.t)
                if d <= best_d:
                    best_i, best_d = i, d
                if n.t > w.t + tol:
                    break
            later_nir = bool(self._nir) and self._nir[-1].t >= w.t
            if not (later_nir or now >= w.t + best_d + self.grace):
                break
            self._wl.popleft()
            if best_i < 0:  # white light never waits for NIR: out alone, now
                self._emit(Pair(w, None, self.alone_status(w.t)))
                continue
            for _ in range(best_i):  # older than the partner: can never be used now
                self._nir.popleft()
                self.unpaired_nir += 1
            self._emit(Pair(w, self._nir.popleft()))
        # NIR frames too old for any WL still to come
        horizon = (self._wl[0].t if self._wl else self._last_wl_t) - tol
        while self._nir and self._nir[0].t < horizon:
            self._nir.popleft()
            self.unpaired_nir += 1

    def take(self, now: float) -> Optional[Pair]:
        """The newest decided pair not yet taken, or ``None``."""
        self.poll(now)
        pair, self._ready = self._ready, None
        if pair is not None:
            self.delivered += 1
        return pair

    def deadline(self) -> Optional[float]:
        """The time at which the oldest waiting WL frame will be decided by the clock."""
        if not self._wl:
            return None
        w = self._wl[0]
        best = min((abs(n.t - w.t) for n in self._nir), default=self.tolerance)
        return w.t + min(best, self.tolerance) + self.grace

    def clear(self) -> None:
        """Forget waiting frames (counted as unpaired), e.g. after a reconnect."""
        self.unpaired_wl += len(self._wl)
        self._wl.clear()
        self.clear_nir()

    def clear_nir(self) -> None:
        """Forget waiting NIR frames (counted as unpaired); waiting WL frames stay."""
        self.unpaired_nir += len(self._nir)
        self._nir.clear()

    def _emit(self, pair: Pair) -> None:
        if self._ready is not None:
            self.dropped += 1
        if pair.nir is not None:
            self.paired += 1
        else:
            self.wl_alone += 1
        self._ready = pair
