"""The transection plane anchored to the tissue.

The surgeon draws the plane on the picture of one frame; the polygon belongs
to the tissue under it, not to the screen.  :class:`PlaneAnchor` anchors the
polygon of ``plane.polygon`` at the frame it was drawn on (``plane.frame``;
-1: the first frame the pipeline sees with it) and moves it, frame by frame,
by the estimated motion (:mod:`.motion`, accumulated in :mod:`.follow`).

It is **lost**, until a polygon is drawn again, when

* the motion of a frame is not ok (low confidence: a cut in the view, smoke,
  the scope wiped, a seek or a reset),
* less than ``PLANE_MIN_INSIDE`` of its area is inside the picture,
* a polygon names a frame the pipeline never saw (``plane.frame`` is in the
  past beyond the motion history, or in the future: not anchored yet).

A lost plane is drawn as lost (grey, dashed in the viewer), the HUD says
``PLANE LOST - redraw`` and its check is *unknown*: never *clear*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .follow import MotionHistory
from .motion import transform_points

#: least fraction of the polygon's area inside the picture for a usable check
PLANE_MIN_INSIDE = 0.9

#: why a plane is lost for good (the user must redraw it); other reasons for an
#: unknown check ("not anchored yet", "NIR lost", "waiting for the analysis") pass
LOST_REASONS = ("tracking lost", "left the picture", "anchor frame not seen")


@dataclass(frozen=True)
class PlanePlacement:
    """Where the anchored plane is in one frame.

    Attributes
    ----------
    polygon : (N, 2) float64 WL px in this frame (where it was last known when
        lost), or None without a polygon
    lost : True when the check cannot be trusted (``reason`` says why)
    reason : "" | "not anchored yet" | "tracking lost" | "left the picture" |
        "anchor frame not seen"
    anchor_index : frame the polygon is anchored at (None: not anchored)
    drawn, drawn_frame : the polygon as drawn and the frame it was drawn on (the
        one it is, or will be, anchored at; ``plane.frame`` with -1 resolved):
        what a recording writes so that replay anchors it the same way
    """

    polygon: Optional[np.ndarray]
    lost: bool = False
    reason: str = ""
    anchor_index: Optional[int] = None
    drawn: Optional[np.ndarray] = None
    drawn_frame: Optional[int] = None


NO_PLANE = PlanePlacement(None)


class PlaneAnchor:
    """Anchors ``settings.plane.polygon`` and follows it (one per stream)."""

    def __init__(self):
        self._key = None  # (polygon, frame) anchored
        self._drawn: Optional[np.ndarray] = None
        self._anchor: Optional[int] = None
        self._where: Optional[np.ndarray] = None  # where it was last followed to
        self._chain = -1  # the motion chain it was anchored in
        self._lost = ""
        self._want: Optional[int] = None  # the frame it is drawn on (-1 resolved)

    def reset(self) -> None:
        """A seek or a reset: the motion chain is broken, an anchored plane is lost."""
        if self._anchor is not None and not self._lost:
            self._lost = "tracking lost"

    def update(self, index: int, polygon: list, frame: int, history: MotionHistory,
               size: tuple[int, int]) -> PlanePlacement:
        """The plane in frame ``index`` (``history`` already holds this frame's motion).

        Parameters
        ----------
        polygon : ``plane.polygon`` ([[x, y], ...] WL px of the frame it was drawn on)
        frame : ``plane.frame`` (-1: anchored at the first frame seen with it)
        size : (W, H) of the frame
        """
        if not polygon or len(polygon) < 3:
            self._key = self._drawn = self._anchor = self._where = None
            self._lost = ""
            return NO_PLANE
        key = (tuple(map(tuple, polygon)), int(frame))
        if key != self._key:
            self._key = key
            self._drawn = np.asarray(polygon, np.float64).reshape(-1, 2)
            self._anchor, self._lost, self._where = None, "", None
            self._want = index if frame < 0 else int(frame)
        drawn = dict(drawn=self._drawn, drawn_frame=self._want)
        if self._anchor is None:
            want = self._want
            if want > index:
                return PlanePlacement(self._drawn, True, "not anchored yet", **drawn)
            if history.since(want) is None:
                # drawn on a frame this stream never saw (or too long ago)
                self._anchor, self._lost = want, "anchor frame not seen"
            else:
                self._anchor, self._chain = want, history.chain
        if self._lost:
            return PlanePlacement(self._last_polygon(), True, self._lost, self._anchor, **drawn)
        h3 = history.since(self._anchor)
        if h3 is None or history.chain != self._chain:  # (a frame index may come again)
            self._lost = "tracking lost"
            return PlanePlacement(self._last_polygon(), True, self._lost, self._anchor, **drawn)
        poly = transform_points(h3, self._drawn)
        self._where = poly
        if inside_fraction(poly, size) < PLANE_MIN_INSIDE:
            self._lost = "left the picture"
            return PlanePlacement(poly, True, self._lost, self._anchor, **drawn)
        return PlanePlacement(poly, False, "", self._anchor, **drawn)

    def _last_polygon(self) -> np.ndarray:
        return self._where if self._where is not None else self._drawn


def polygon_area(poly: np.ndarray) -> float:
    """Area of a simple polygon (shoelace), px²."""
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def inside_fraction(poly: np.ndarray, size: tuple[int, int]) -> float:
    """Fraction of ``poly``'s area inside the ``(W, H)`` picture (Sutherland-Hodgman clip)."""
    area = polygon_area(poly)
    if area <= 0:
        return 0.0
    w, h = size
    pts = [tuple(p) for p in poly]
    for axis, limit, keep_below in ((0, 0.0, False), (0, w - 1.0, True),
                                    (1, 0.0, False), (1, h - 1.0, True)):
        out = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            cin = cur[axis] <= limit if keep_below else cur[axis] >= limit
            pin = prev[axis] <= limit if keep_below else prev[axis] >= limit
            if cin != pin:
                t = (limit - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cin:
                out.append(cur)
        pts = out
        if not pts:
            return 0.0
    return polygon_area(np.asarray(pts)) / area
