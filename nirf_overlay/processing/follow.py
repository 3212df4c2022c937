"""Following the tissue: the accumulated motion since a recent frame.

:class:`MotionHistory` keeps, for the last frames, the motion accumulated
since each (from :class:`~.motion.FrameMotion`, one per frame).  The anchored
transection plane asks it where a polygon drawn at frame ``j`` is now, and
the lagged rim outlines of a live display (an analysis a frame or more old)
are moved by the motion since their frame (:func:`move_rims`; their masks
only when read, :class:`MovedMask`).  A frame whose
motion is not ok (a cut, lost tracking, a reset) breaks the chain: nothing
from before it can be carried over it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Optional

import cv2
import numpy as np

from .motion import FrameMotion, transform_points

#: frames of history kept (a live analysis is at most a few frames old; a
#: plane drawn on a frame shown up to this many frames ago can be anchored there)
HISTORY_FRAMES = 120


class MotionHistory:
    """Accumulated motion per frame index, in chains broken where motion was lost."""

    def __init__(self, frames: int = HISTORY_FRAMES):
        self.frames = int(frames)
        self.reset()

    def reset(self) -> None:
        self._acc: "OrderedDict[int, tuple[int, np.ndarray]]" = OrderedDict()
        self._chain = 0
        #: id of the current unbroken chain (changes at every break)
        self.chain = 0
        self._last: Optional[np.ndarray] = None
        self.current: Optional[int] = None

    def add(self, index: int, motion: FrameMotion) -> None:
        """Frame ``index`` with its motion from the previous frame added."""
        if motion.ok and self._last is not None:
            acc = motion.h @ self._last
        else:
            self._chain += 1
            acc = np.eye(3)
        self._last = acc
        self._acc[int(index)] = (self._chain, acc)
        self.current = int(index)
        self.chain = self._chain
        while len(self._acc) > self.frames:
            self._acc.popitem(last=False)

    def place(self, index: Optional[int]) -> Optional[tuple]:
        """(chain id, (3, 3) motion accumulated along that chain) of frame ``index``,
        or None when it is unknown or too old; the values are the history's own
        (never written again), safe to hand to another thread."""
        a = None if index is None else self._acc.get(int(index))
        return None if a is None else (a[0], a[1])

    def since(self, index: Optional[int]) -> Optional[np.ndarray]:
        """(3, 3) motion from frame ``index`` to the current frame, or None when
        ``index`` is unknown, too old or before a break in the chain."""
        if index is None or self.current is None:
            return None
        a = self._acc.get(int(index))
        b = self._acc.get(self.current)
        if a is None or b is None or a[0] != b[0]:
            return None
        return b[1] @ np.linalg.inv(a[1])


def move_rims(rims: list, h3: np.ndarray) -> list:
    """Copies of the :class:`~.result.RimMeasurement` s with outline, centroid and box
    moved by ``h3`` ((3, 3), WL px); the measurements themselves are kept."""
    if np.allclose(h3, np.eye(3)):
        return list(rims)
    out = []
    for r in rims:
        c = transform_points(h3, [r.centroid])[0]
        contour = r.contour
        if contour is not None:
            contour = np.round(transform_points(h3, contour)).astype(np.int32).reshape(np.shape(r.contour))
        x, y, w, h = r.bbox
        corners = transform_points(h3, [[x, y], [x + w, y], [x, y + h], [x + w, y + h]])
        x0, y0 = np.floor(corners.min(0)).astype(int)
        x1, y1 = np.ceil(corners.max(0)).astype(int)
        # a similarity turns every angle by the same amount
        turn = float(np.degrees(np.arctan2(h3[1, 0], h3[0, 0])))
        gaps = [replace(g, start_deg=(g.start_deg + turn) % 360.0,
                        end_deg=(g.start_deg + turn) % 360.0 + g.extent_deg,
                        points=np.round(transform_points(h3, g.points)).astype(np.int32))
                for g in r.gaps]
        out.append(replace(r, centroid=(float(c[0]), float(c[1])), contour=contour,
                           bbox=(int(x0), int(y0), int(x1 - x0), int(y1 - y0)), gaps=gaps))
    return out


def move_mask(mask: np.ndarray, h3: np.ndarray) -> np.ndarray:
    """A (H, W) mask moved by ``h3`` (nearest neighbour; 0 where nothing maps).

    Only the box round the mask's non-zero pixels is warped (a rim mask is a
    small part of the picture): 0.3-0.5 ms at 1080p instead of 1.6 ms for the
    whole frame (2 cores, shared).
    """
    if np.allclose(h3, np.eye(3)):
        return mask
    h, w = mask.shape[:2]
    src = mask.view(np.uint8) if mask.dtype == np.bool_ else mask
    out = np.zeros_like(src)
    x, y, bw, bh = cv2.boundingRect(src)
    if bw and bh:
        corners = transform_points(h3, [[x - 1, y - 1], [x + bw, y - 1], [x - 1, y + bh],
                                        [x + bw, y + bh]])
        x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, [w, h])
        if x1 > x0 and y1 > y0:
            m = np.asarray(h3, np.float64)[:2].copy()
            m[:, 2] -= (x0, y0)  # into the destination box
            cv2.warpAffine(src, m, (int(x1 - x0), int(y1 - y0)), dst=out[y0:y1, x0:x1],
                           flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0)
    return out.view(np.bool_) if mask.dtype == np.bool_ else out


class MovedMask:
    """A mask and the motion to move it by, moved on first read (:func:`move_mask`, once).

    A lagged analysis's masks are needed on few frames of a live display (a
    mask export, ``evaluate``), its outlines on every one: the move, 0.3-2 ms
    per mask at 1080p, is paid only by a reader.  ``h3`` None: the mask as it
    is.  The source must be left unchanged until the first read (the
    analyzer's mask ring: valid for a few frames, as the composite is); the
    moved pixels are a new array (the source itself when ``h3`` does not
    move).  Safe to read from several threads (the move runs once).
    """

    __slots__ = ("source", "h3", "_moved", "_lock")

    def __init__(self, source: np.ndarray, h3: Optional[np.ndarray] = None):
        self.source = source
        self.h3 = h3
        self._moved: Optional[np.ndarray] = source if h3 is None else None
        self._lock = None if h3 is None else threading.Lock()

    @property
    def moved(self) -> bool:
        """Whether the move has run (or there was none to run)."""
        return self._moved is not None

    @property
    def pixels(self) -> np.ndarray:
        """The mask moved by ``h3`` (computed on the first read, then kept)."""
        if self._moved is None:
            with self._lock:
                if self._moved is None:
                    self._moved = move_mask(self.source, self.h3)
        return self._moved
