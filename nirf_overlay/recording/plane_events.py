"""The transection plane in a recording: its events, and the plane in force at each frame.

While a session records, the engine (:class:`~nirf_overlay.engine.recording.RecordingControl`)
turns what the pipeline did with the plane into ``events.jsonl`` lines, every frame
index a frame *of the recording*:

``plane``           ``{"frame": P, "polygon": [[x, y], ...], "anchor": F}``: from frame P
                    on (the first frame processed with it) the polygon drawn on frame F
                    (WL px as drawn; ``[]``: cleared) is in force.  A plane in force when
                    the recording starts, or drawn on a frame that was not recorded, is
                    written where it then is, anchored at P.
``plane_anchored``  ``{"frame": N, "anchor": F}``: followed on the tissue from frame N on
``plane_lost``      ``{"frame": N, "reason": "tracking lost" | "left the picture" | ...}``

Replay (the viewer, ``process``, ``batch``) puts the plane of the ``plane`` events in
force at the same frames (:class:`PlaneSchedule`), so the pipeline anchors it at the
same frame and it follows the tissue as it did live.  This module is the one place
that turns a plane into events and events into the plane.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..processing.plane_anchor import LOST_REASONS

PLANE, ANCHORED, LOST = "plane", "plane_anchored", "plane_lost"

#: (polygon [[x, y], ...], plane.frame) in force; ``([], -1)``: no plane
Plane = tuple


def _plain(polygon) -> list:
    return [[float(x), float(y)] for x, y in np.asarray(polygon, np.float64).reshape(-1, 2)]


class PlaneEventWriter:
    """Turns each result's plane into the events that describe it (one per recording).

    :meth:`note` is called with every result while recording; it returns the
    ``(kind, data)`` events to write, ``data["frame"]`` a recording index.

    Parameters
    ----------
    recording_index : ``f(source_index) -> recording index or None`` (None: the
        frame was not recorded)
    """

    def __init__(self, recording_index: Callable[[int], Optional[int]]):
        self._index_of = recording_index
        self._key = None  # (drawn bytes, drawn frame) last written
        self._state = ""  # "", "anchored", "lost", "waiting"
        self._anchor = -1  # the recording frame the plane in force is anchored at

    def note(self, index: int, check) -> list:
        """Events for the result of source frame ``index`` whose plane check is ``check``."""
        at = self._index_of(index)
        if at is None:  # not recorded (the queue was full): said at the next frame
            return []
        out = []
        key = None if check.drawn is None else (check.drawn.tobytes(), check.drawn_frame)
        if key != self._key:
            self._key, self._state = key, ""
            out.append((PLANE, self._plane_data(at, index, check)))
        if check.drawn is None:
            return out
        reason = check.lost_reason
        state = ("lost" if reason in LOST_REASONS else
                 "waiting" if reason == "not anchored yet" else "anchored")
        if state != self._state:
            self._state = state
            if state == "lost":
                out.append((LOST, {"frame": at, "reason": reason}))
            elif state == "anchored":
                out.append((ANCHORED, {"frame": at, "anchor": self._anchor}))
        return out

    def _plane_data(self, at: int, index: int, check) -> dict:
        if check.drawn is None:
            self._anchor = -1
            return {"frame": at, "polygon": [], "anchor": -1}
        f = int(check.drawn_frame)
        anchor = at + (f - index) if f >= index else self._index_of(f)
        polygon = check.drawn
        if anchor is None:
            # drawn on a frame before the recording (or not recorded): where it is now
            polygon, anchor = check.polygon, at
        self._anchor = int(anchor)
        return {"frame": at, "polygon": _plain(polygon), "anchor": int(anchor)}


@dataclass
class PlaneSchedule:
    """The plane in force at each frame of a recording, from its ``plane`` events.

    Attributes
    ----------
    changes : ``(frame, polygon, anchor)`` in frame order: from ``frame`` on,
        ``polygon`` (``[]``: none) anchored at ``anchor`` is in force
    anchored, lost : ``(frame, ...)`` of the ``plane_anchored`` and ``plane_lost``
        events (what happened live, for comparison)
    """

    changes: list = field(default_factory=list)
    anchored: list = field(default_factory=list)
    lost: list = field(default_factory=list)

    @classmethod
    def from_events(cls, events: list) -> "PlaneSchedule":
        out = cls()
        for e in events:
            kind = e.get("kind")
            try:
                frame = int(e.get("frame", 0))
                if kind == PLANE:
                    polygon = _plain(e.get("polygon") or [])
                    out.changes.append((frame, polygon if len(polygon) >= 3 else [],
                                        int(e.get("anchor", -1))))
                elif kind == ANCHORED:
                    out.anchored.append((frame, int(e.get("anchor", frame))))
                elif kind == LOST:
                    out.lost.append((frame, str(e.get("reason", ""))))
            except (TypeError, ValueError):
                continue  # a damaged line: the plane it meant is not replayed
        out.changes.sort(key=lambda c: c[0])  # stable: same-frame events keep their order
        return out

    def __bool__(self) -> bool:
        return bool(self.changes)

    def at(self, index: int) -> Plane:
        """``(polygon, plane.frame)`` in force at frame ``index`` (``([], -1)``: none)."""
        plane = ([], -1)
        for frame, polygon, anchor in self.changes:
            if frame > index:
                break
            plane = (polygon, anchor if polygon else -1)
        return plane

    @property
    def first_frame(self) -> Optional[int]:
        """The first frame with a plane in force (None: never)."""
        return next((f for f, polygon, _ in self.changes if polygon), None)


def with_plane(settings, plane: Plane):
    """A copy of ``settings`` with ``plane`` (``(polygon, frame)``) in force."""
    s = settings.copy()
    s.plane.polygon, s.plane.frame = [list(p) for p in plane[0]], int(plane[1])
    return s
