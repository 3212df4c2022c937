"""Motion of the tissue between frames, from the white light at reduced resolution.

The scope moves and the liver breathes; annotations drawn on the tissue (the
transection plane, lagged rim outlines) must follow.  :class:`MotionEstimator`
is run once per frame by the :class:`~.pipeline.Pipeline` and returns a
:class:`FrameMotion`: the similarity (rotation, uniform scale, translation)
that carries a point of the previous frame's picture to this frame's, in WL
pixels, with a confidence.

How
---
* The WL frame is reduced to ``MOTION_RULES.width`` px across (green channel:
  the most tissue contrast, no fluorescence in white light).
* Points on a fixed grid over a **key frame** are followed by pyramidal
  Lucas-Kanade flow into the current frame, checked backwards
  (forward-backward error), and a similarity is fitted with RANSAC
  (``cv2.estimateAffinePartial2D``).  Points are not taken where the key
  frame shows specular highlights (near-white), instruments (grey: the
  saturation and value limits of :data:`~.rules.RIM_RULES`' instrument rule)
  or no texture; an instrument moving over the tissue, and a highlight that
  slides over it, are RANSAC outliers.
* Following the key frame rather than the previous frame keeps drift from
  piling up: the motion of frame n is ``K_n @ inverse(K_{n-1})`` with ``K``
  the key-to-frame similarity, so chaining frames telescopes to one
  measurement.  A new key frame is taken when fewer than
  ``MOTION_RULES.rekey_fraction`` of its points still agree.
* Haze (smoke) lowers contrast: each image is normalised by its local mean
  and spread before the flow, so faint texture still tracks.

Cost (1080p, 2 cores shared with other work, load 7-14, medians): about 1.2
ms a frame -- the reduction 0.45 ms (reading the green of every 4th row and
column, 0.2-0.3 ms of it, a frame fresh from memory; the contrast
normalisation 0.2 ms), the flow and fit 0.5 ms (Lucas-Kanade about 0.3,
RANSAC 0.2), Python 0.15 ms; a new key frame 0.4 ms more (every 30 frames or
so).  OpenCV runs single-threaded meanwhile (:mod:`.cv_threads`).

Confidence = inlier fraction x a coverage factor (inliers spread over the
frame); below ``MOTION_RULES.min_confidence`` (or with too few inliers, or
no previous frame) the motion is *not ok*: consumers treat it as a cut and
drop what they anchored (the plane is *lost*).
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .cv_threads import single_threaded_opencv
from .rules import RIM_RULES


@dataclass(frozen=True)
class MotionRules:
    """The fixed numbers of the motion estimate (each with its reason)."""

    #: about this many px across the reduced frame (an integer reduction)
    width: int = 256
    #: grid points across (rows in proportion)
    grid_x: int = 12
    #: LK window, reduced px
    win: int = 11
    #: pyramid levels above the reduced frame (each frame starts from the
    #: previous frame's positions, so steps are small)
    levels: int = 2
    #: forward-backward disagreement that drops a point, reduced px (0: no
    #: backward pass; RANSAC alone measured as accurate on the phantom, at a
    #: third of the cost)
    fb_max_px: float = 0.0
    #: RANSAC inlier distance, reduced px
    ransac_px: float = 0.6
    #: least inliers for a motion to count at all
    min_inliers: int = 20
    #: below this confidence the motion is not ok (a cut, lost tracking)
    min_confidence: float = 0.35
    #: a new key frame when fewer than this fraction of its first inliers agree
    rekey_fraction: float = 0.7
    #: and at every frame whose index is a multiple of this: from there on the
    #: estimates are the same whichever frame a run started on (a batch chunk's
    #: warm-up reaches a sequential run's state), which the noise filter's
    #: motion cap needs (:func:`.normalise.motion_weight`); about as often as
    #: the fraction above re-keyed on its own ("every 30 frames or so")
    key_every: int = 32
    #: least local spread (grey levels) for a point to have texture
    min_texture: float = 1.5
    #: near-white: specular highlights (any channel at least this)
    specular_level: int = 235
    #: above this fraction of grey the picture is hazed, not full of instruments
    max_grey_fraction: float = 0.5


MOTION_RULES = MotionRules()


@dataclass(frozen=True)
class FrameMotion:
    """Motion from the previous frame to this one (WL pixels).

    Attributes
    ----------
    matrix : (2, 3) float64 similarity: a point ``p`` of the previous frame's
        picture is at ``matrix @ [x, y, 1]`` in this frame's
    confidence : 0..1 (inlier fraction x spread over the frame)
    ok : the motion can be trusted; False on a cut, lost tracking or the first
        frame (``matrix`` is then the identity)
    inliers : points that agreed
    """

    matrix: np.ndarray
    confidence: float
    ok: bool
    inliers: int = 0

    @property
    def h(self) -> np.ndarray:
        """(3, 3) homogeneous form of :attr:`matrix`."""
        return to_h(self.matrix)

    def largest_shift(self, size) -> float:
        """How far the picture moved since the previous frame, px: the largest shift of
        a corner of a ``size`` = (W, H) frame (a similarity moves no point farther);
        0 when the motion is not ok (unknown)."""
        if not self.ok:
            return 0.0
        (a, b, tx), (c, d, ty) = self.matrix.tolist()  # plain floats: 4 points, no numpy
        far = 0.0
        for x in (0.0, size[0] - 1.0):
            for y in (0.0, size[1] - 1.0):
                far = max(far, math.hypot((a - 1.0) * x + b * y + tx, c * x + (d - 1.0) * y + ty))
        return far


def to_h(m: np.ndarray) -> np.ndarray:
    """(2, 3) affine -> (3, 3)."""
    out = np.eye(3)
    out[:2] = m
    return out


def identity() -> np.ndarray:
    return np.eye(3)[:2].copy()


NO_MOTION = FrameMotion(identity(), 0.0, False, 0)


def transform_points(h3: np.ndarray, pts) -> np.ndarray:
    """(N, 2) float64 points moved by the (3, 3) or (2, 3) matrix ``h3``."""
    p = np.asarray(pts, np.float64).reshape(-1, 2)
    m = np.asarray(h3, np.float64)[:2]
    return p @ m[:, :2].T + m[:, 2]


class MotionEstimator:
    """Frame-to-frame similarity of the white light (one per stream).

    ``update(wl)`` for every frame in order; ``reset()`` after a seek or a
    source change (the next frame then reports *not ok*).
    """

    def __init__(self, rules: MotionRules = MOTION_RULES):
        self.rules = rules
        self.reset()

    def reset(self) -> None:
        self._key: Optional[np.ndarray] = None  # normalised reduced key frame
        self._key_pts: Optional[np.ndarray] = None  # (N, 1, 2) float32 reduced px
        self._key_inliers0 = 0
        self._prev_k: Optional[np.ndarray] = None  # (3, 3) key -> previous frame, reduced px
        self._shape = None
        self._s = 1.0  # reduced px per WL px

    # -- per frame ---------------------------------------------------------------
    def update(self, wl: np.ndarray, index: Optional[int] = None) -> FrameMotion:
        """The motion from the previous ``update``'s frame to ``wl`` ((H, W, 3) uint8 BGR);
        ``index``: the frame's number in its recording (a new key at multiples of
        ``key_every``; None: only when the key's points stop agreeing)."""
        # a dozen OpenCV calls on a 256 px image: a second thread costs more to
        # wake than it saves (1080p, 2 cores: median 1.2 ms on one, 2.4 on two)
        with single_threaded_opencv():
            return self._update(wl, index)

    def state_bytes(self) -> bytes:
        """Everything the next estimates depend on (for the pipeline's state digest)."""
        if self._key is None:
            return b"motion none;"
        return b"".join((self._key.tobytes(), self._key_pts.tobytes(), self._prev_k.tobytes(),
                         f"{self._key_inliers0} {self._inliers_first} {self._shape};".encode()))

    def _update(self, wl: np.ndarray, index: Optional[int] = None) -> FrameMotion:
        H, W = wl.shape[:2]
        small, wl_small = self._reduce(wl)
        if self._shape != (H, W) or self._key is None:
            self._shape = (H, W)
            self._take_key(small, wl_small)
            return NO_MOTION
        k, inl, conf = self._follow(small)
        r = self.rules
        if k is None or inl < r.min_inliers or conf < r.min_confidence:
            # lost: start again from this frame
            self._take_key(small, wl_small)
            return FrameMotion(identity(), float(conf), False, int(inl))
        step = k @ np.linalg.inv(self._prev_k)  # previous -> this, reduced px
        self._prev_k = k
        if inl < r.rekey_fraction * self._key_inliers0 or (
                index is not None and index % r.key_every == 0):
            self._take_key(small, wl_small)
        # reduced px -> WL px: S^-1 step S with S = diag(s, s)
        s = self._s
        m = step[:2].copy()
        m[:, 2] /= s
        return FrameMotion(m, float(conf), True, int(inl))

    # -- parts ---------------------------------------------------------------------
    def _reduce(self, wl: np.ndarray):
        """(normalised reduced green, reduced BGR point samples for the masks).

        An integer reduction ``k`` (about ``width`` px across): the green
        channel sampled every ``k // 2`` px and box-averaged 2 x 2 (0.05 ms at
        1080p from the cache, 0.2-0.3 ms fresh from memory; a full-frame area
        resize costs 2-8 ms).
        """
        H, W = wl.shape[:2]
        k = max(1, int(round(W / self.rules.width)))
        step = max(1, k // 2)
        w, h = max(8, W // k), max(8, H // k)
        self._s = w / W
        g = cv2.resize(wl[::step, ::step, 1], (w, h), interpolation=cv2.INTER_AREA)
        wl_small = wl[::k, ::k][:h, :w]
        g = g.astype(np.float32)
        # local contrast normalisation: haze lowers contrast and adds a veil
        mu = cv2.blur(g, (15, 15))
        var = cv2.blur(g * g, (15, 15)) - mu * mu
        sd = np.sqrt(np.maximum(var, 0.0))
        self._sd = sd
        norm = (g - mu) / (sd + 2.0)
        small = cv2.convertScaleAbs(norm, alpha=40.0, beta=128.0)
        return small, wl_small

    def _take_key(self, small: np.ndarray, wl_small: np.ndarray) -> None:
        r = self.rules
        h, w = small.shape
        usable = self._sd >= r.min_texture
        # specular highlights and instruments (grey, bright enough: the
        # instrument rule's saturation and value limits) give no tissue motion
        # per channel: numpy's reduction over an axis of 3 took 0.8 ms each at 1080p
        b, g, r3 = wl_small[..., 0], wl_small[..., 1], wl_small[..., 2]
        mx = np.maximum(np.maximum(b, g), r3).astype(np.int16)
        mn = np.minimum(np.minimum(b, g), r3).astype(np.int16)
        sat = np.where(mx > 0, (mx - mn) * 255 // np.maximum(mx, 1), 0)
        grey = (sat <= RIM_RULES.instrument_max_saturation) & (mx >= RIM_RULES.instrument_min_value)
        if grey.mean() > r.max_grey_fraction:
            # most of the picture grey: a smoke veil has washed the colour out,
            # not an instrument; RANSAC still drops a tool's points
            grey[:] = False
        bad = (mx >= r.specular_level) | grey
        bad = cv2.dilate(bad.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        usable &= ~bad
        nx = r.grid_x
        ny = max(4, int(round(nx * h / w)))
        m = r.win // 2 + 1
        xs = np.linspace(m, w - 1 - m, nx)
        ys = np.linspace(m, h - 1 - m, ny)
        gx, gy = np.meshgrid(xs, ys)
        pts = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
        keep = usable[pts[:, 1].astype(int), pts[:, 0].astype(int)]
        self._key = small
        self._key_pts = pts[keep].reshape(-1, 1, 2)
        self._key_inliers0 = max(int(keep.sum()), 1)
        self._prev_k = np.eye(3)
        self._inliers_first = True

    def _follow(self, small: np.ndarray):
        """(key -> this (3, 3) in reduced px, inliers, confidence) or (None, 0, 0)."""
        r = self.rules
        p0 = self._key_pts
        if p0 is None or len(p0) < r.min_inliers:
            return None, 0, 0.0
        lk = dict(winSize=(r.win, r.win), maxLevel=r.levels,
                  criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
        # start from where the previous frame put the points (small steps for LK)
        guess = transform_points(self._prev_k, p0.reshape(-1, 2)).astype(np.float32).reshape(-1, 1, 2)
        p1, st, _ = cv2.calcOpticalFlowPyrLK(self._key, small, p0, guess.copy(),
                                             flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **lk)
        good = st.ravel() == 1
        if r.fb_max_px > 0:
            back, st2, _ = cv2.calcOpticalFlowPyrLK(small, self._key, p1, p0.copy(),
                                                    flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **lk)
            fb = np.linalg.norm((back - p0).reshape(-1, 2), axis=1)
            good &= (st2.ravel() == 1) & (fb <= r.fb_max_px)
        h, w = small.shape
        q = p1.reshape(-1, 2)
        good &= (q[:, 0] >= 0) & (q[:, 0] <= w - 1) & (q[:, 1] >= 0) & (q[:, 1] <= h - 1)
        if good.sum() < r.min_inliers:
            return None, int(good.sum()), 0.0
        a = p0.reshape(-1, 2)[good]
        b = q[good]
        m, inl = cv2.estimateAffinePartial2D(a, b, method=cv2.RANSAC,
                                             ransacReprojThreshold=r.ransac_px,
                                             maxIters=200, confidence=0.995, refineIters=10)
        if m is None:
            return None, 0, 0.0
        inl = inl.ravel().astype(bool)
        n = int(inl.sum())
        if self._inliers_first:  # the key frame's own count, once it is followed
            self._key_inliers0 = max(n, 1)
            self._inliers_first = False
        frac = n / max(len(p0), 1)
        # spread: the inliers' bounding box against the frame
        ib = b[inl]
        spread = 0.0
        if n:
            spread = min(1.0, float(np.ptp(ib[:, 0]) * np.ptp(ib[:, 1])) / (0.25 * w * h))
        conf = float(min(1.0, frac / 0.6) * spread)
        return to_h(m), n, conf
