"""When a live pipeline analyses every frame before it is shown, and when it falls back.

A live display pipeline made with ``async_analysis="auto"`` (the viewer's
default) starts **in sync**: every frame's rims are found before the frame
is shown, so the outline belongs to the picture under it.  When the machine
cannot keep that up it falls back **to async** by itself (the rim analysis on
its own thread, outlines a frame or two behind, :mod:`.async_analysis`), and
tries sync again later.  The rule, with hysteresis so it does not flap:

* **sync -> async** when more than ``leave_over`` of the last ``window``
  frames took longer than ``budget`` x the frame period (the whole
  ``Pipeline.process``: normalise, levels, analysis, composite).  The share
  left over is for the paint and the source; a frame over it is a frame late
  or dropped.
* **async -> sync** after a hold that starts at ``hold_s`` and doubles at
  every fall back that comes within ``stable_s`` of a return (up to
  ``hold_max_s``), and only while the estimate of a sync frame (median
  display path + median analysis of the last ``window`` frames) is under
  ``return_budget`` x the period.  A return that holds for ``stable_s``
  resets the hold.  A failed return costs a few late frames once per hold
  (at most ``leave_over + 1`` in ``hold_max_s``: under 0.5 % of frames at
  60 fps).

The frame period is the median interval between the pairs' ``arrival``
times (the source's hand-out, or the replay pacer's release), so it follows
the stream's real rate and the replay speed; with fewer than three arrivals
the pipeline stays as it is.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class SyncRule:
    """The numbers of the sync/async rule (see the module docstring)."""

    #: share of the frame period a sync frame may take (the rest: paint, source)
    budget: float = 0.8
    #: frames over budget, among the last ``window``, that send it to async
    leave_over: int = 5
    window: int = 30
    #: share of the period the sync estimate must be under to return
    return_budget: float = 0.7
    #: first hold in async before a return is tried, seconds; doubled per failed return
    hold_s: float = 2.0
    hold_max_s: float = 30.0
    #: a return that lasts this long resets the hold, seconds
    stable_s: float = 10.0


SYNC_RULE = SyncRule()


class AnalysisMode:
    """Follows the frame times of a live pipeline and says whether the next frame runs in sync.

    Parameters
    ----------
    rule : :class:`SyncRule`
    """

    def __init__(self, rule: SyncRule = SYNC_RULE):
        self.rule = rule
        self.sync = True
        #: times the pipeline fell back to async, and returned to sync
        self.fallbacks = 0
        self.returns = 0
        self._arrivals: deque = deque(maxlen=rule.window + 1)
        self._over: deque = deque(maxlen=rule.window)
        self._display: deque = deque(maxlen=rule.window)
        self._hold = rule.hold_s
        self._since: Optional[float] = None  # arrival time of the last switch

    def period_s(self) -> Optional[float]:
        """Median interval between the recent arrivals (s), or None with fewer than three."""
        a = self._arrivals
        if len(a) < 3:
            return None
        d = np.diff(np.asarray(a, np.float64))
        d = d[d > 0]
        return float(np.median(d)) if d.size else None

    def frame(self, arrival: float, total_ms: float, *, display_ms: float,
              analysis_ms: Optional[float] = None) -> bool:
        """Count one processed frame; returns whether the next one runs in sync.

        ``arrival``: the pair's arrival time (s, monotonic clock; 0 = unknown,
        not counted); ``total_ms``: what ``process`` took; ``display_ms``: its
        share without the analysis; ``analysis_ms``: the median time of the
        async analyses lately (async only), else None.
        """
        r = self.rule
        if arrival:
            if self._arrivals and arrival < self._arrivals[-1]:
                self._arrivals.clear()  # a seek or a restarted stream
            self._arrivals.append(arrival)
        if self._since is None:
            self._since = arrival
        period = self.period_s()
        if period is None:
            return self.sync
        self._display.append(display_ms)
        if self.sync:
            self._over.append(total_ms > r.budget * period * 1e3)
            if sum(self._over) > r.leave_over:
                self._switch(False, arrival)
                if arrival - self._since_return < r.stable_s:
                    self._hold = min(2 * self._hold, r.hold_max_s)
            elif self.returns and arrival - self._since_return >= r.stable_s:
                self._hold = r.hold_s
        elif arrival - self._since >= self._hold and analysis_ms is not None:
            estimate = float(np.median(self._display)) + analysis_ms
            if estimate < r.return_budget * period * 1e3:
                self._switch(True, arrival)
        return self.sync

    _since_return = float("-inf")

    def _switch(self, sync: bool, now: float) -> None:
        self.sync = sync
        self._since = now
        self._over.clear()
        if sync:
            self.returns += 1
            self._since_return = now
        else:
            self.fallbacks += 1
