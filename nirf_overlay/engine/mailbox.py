"""What the display gets: a one-slot, latest-wins mailbox of :class:`DisplayFrame`."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from ..frame import FramePair


@dataclass
class DisplayFrame:
    """One processed pair: what the display, every listener and every sink get.

    Attributes
    ----------
    pair : the captured :class:`~nirf_overlay.frame.FramePair` (raw NIR for snapshots)
    result : :class:`~nirf_overlay.processing.result.FrameResult` with the current settings
    result_b : the result with the A/B settings, or ``None`` when A/B is off
    processed : ``time.monotonic()`` when processing finished
    seq : running number of results the run produced (gaps in what one sees = dropped)
    process_ms : wall time the pipeline(s) took on this pair, ms
    preparing : the kernels were still being prepared: ``result`` is the white
        light only, marked (:func:`~.prepare.white_light_result`)
    """

    pair: FramePair
    result: Any
    result_b: Any = None
    processed: float = 0.0
    seq: int = 0
    process_ms: float = 0.0
    preparing: bool = False

    @property
    def arrival(self) -> float:
        return float(self.pair.arrival)

    @property
    def index(self) -> int:
        return int(self.pair.index)

    @property
    def nir_lost(self) -> bool:
        return self.pair.nir is None or bool(self.result.nir_lost)

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
