"""Which part of a source a run covers: the one place where ranges are handled.

``process --range START:END`` gives seconds of source time; a ``batch``
chunk gives frame indices.  Either way a :class:`Span` checks the range
against the source, seeks to its start when the source can (and resets the
pipeline's temporal state, which belongs to the frames before the seek),
skips to the start otherwise, and stops at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Optional

from ..errors import NirfError

# a frame exactly on a boundary (t = k / fps) is inside, whatever the rounding of t
_TIME_EPS = 1e-9
_INDEX_EPS = 1e-6


@dataclass(frozen=True)
class Span:
    """A part of a source: ``start_s <= t < end_s`` and ``first <= index < stop``.

    Attributes
    ----------
    start_s, end_s : seconds of source time, None = open.  ``t`` is the
        pair's ``wl_time``; for a live source, seconds since its first pair.
    first, stop : frame indices, None = open.
    """

    start_s: Optional[float] = None
    end_s: Optional[float] = None
    first: Optional[int] = None
    stop: Optional[int] = None

    def check(self, info, *, label: str = "range") -> None:
        """Refuse a start after the source's end (NirfError ``"<label>: ..."``)."""
        if self.start_s and info.frame_count and info.fps and \
                self.start_s >= info.frame_count / info.fps:
            raise NirfError(f"{label}: starts at {self.start_s:g} s but the source ends at "
                            f"{info.frame_count / info.fps:.3g} s")

    def first_index(self, info) -> int:
        """The frame the run seeks to (0: none; a source that cannot seek is read from its start)."""
        if self.first is not None:
            return int(self.first)
        if self.start_s and info.seekable and info.fps:
            return int(math.floor(self.start_s * info.fps + _INDEX_EPS))
        return 0

    def total(self, info) -> Optional[int]:
        """Frames the run will process at most (for a progress bar), None when unknown."""
        if info.frame_count is None:
            return None
        first = self.first_index(info)
        total = max(0, info.frame_count - first)
        if self.end_s is not None and info.fps:
            total = min(total, max(0, int(math.ceil(self.end_s * info.fps - _INDEX_EPS)) - first))
        if self.stop is not None:
            total = min(total, max(0, self.stop - first))
        return total

    def select(self, source, pipeline) -> Iterator[tuple]:
        """``(pair, t)`` for every pair of ``source`` in the span, in order.

        Seeks ``source`` to :meth:`first_index` and resets ``pipeline`` there.
        """
        info = source.info
        self.check(info)
        first = self.first_index(info)
        if first:
            source.seek(first)
            pipeline.reset()
        t_first = None
        for pair in source:
            if self.stop is not None and pair.index >= self.stop:
                return
            t = pair.wl_time
            if info.live:  # a monotonic clock: seconds from the first pair
                t_first = t if t_first is None else t_first
                t = t - t_first
            if self.start_s is not None and t < self.start_s - _TIME_EPS:
                continue
            if self.end_s is not None and t >= self.end_s - _TIME_EPS:
                return
            yield pair, t
            if self.stop is not None and pair.index + 1 >= self.stop:
                return  # the last one: do not decode another
