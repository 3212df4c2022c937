"""Analysis that uses time: rims re-measured where the tissue's motion puts them.

With ``segment.reuse_rims`` on, :class:`~.analysis.RimAnalyzer` does not look
for rims from scratch on every frame.  The candidates of the last **full
search** (:func:`~.segment.find_candidates`) are moved by the motion
accumulated since that frame (:mod:`.motion`, :mod:`.follow`: one similarity
per frame, chained), snapped to this frame's fluorescence (the moved rim,
grown by one grid pixel, where this frame is fluorescent), and measured
again at full resolution in a window around where they now are
(:func:`~.refine.refine_rim`, as a found candidate would be).  B is taken
on this frame's pixels from the liver ring round the moved core, completed
where this frame hides it (tool, invalid pixels) by the core as its search
completed it (:func:`~.background.lesion_core`), moved with the rim
(:func:`move_core`, :func:`~.background.carried_core`): the moved core is
cut by this frame's tool, and an ellipse refitted to what is left of it
swings from frame to frame.  Background,
fluorescence, instruments, tracking and the plane check still run on every
frame; only the candidate search is skipped.

The full search runs instead (:meth:`RimReuse.moved` returns None and says
why in ``last_reason``) when

* ``RIM_RULES.reuse_search_every`` frames have passed since the last one
  (the cadence);
* the frame comes with no motion, its motion confidence is under
  ``RIM_RULES.reuse_min_confidence``, or the motion chain broke since the
  last search (a cut, a seek, lost tracking);
* a corner of the view has moved more than ``RIM_RULES.reuse_max_view_shift``
  of the frame width since the last search (new tissue entering);
* there are more fluorescent components large enough to be a rim than the
  last search saw (something appeared: a new rim is a new component; fewer
  is a piece hidden or merged, which the overlap check below catches for
  rims, and a duct flickering at the threshold does not search every frame);
* a rim-sized fluorescent component under no rim grew by more than
  ``RIM_RULES.reuse_max_growth`` since the search (:func:`fluorescence_areas`:
  a lesion coming into view whose core the search could not yet see), or a
  rim-sized piece beyond a re-snapped rim did (:func:`pieces_beyond`) or is
  new (fluorescence joined to the rim's component, perhaps a new lesion).
  Where instead the components under a moved rim grew by more than that (a
  tool moving off the rim: a moved rim covers only what the search saw),
  the rim is **re-snapped**, not searched for: it becomes this frame's
  fluorescence within the band round its completed core that the search's
  rim lay in (:func:`rim_band`, :func:`resnap_candidate`), and is measured
  in that window like any moved rim; the search runs when it cannot be;
* the last search found no rim (nothing to follow);
* a moved rim has less than ``RIM_RULES.reuse_min_overlap`` of itself in
  this frame's fluorescence, or no core left, or its refinement finds no
  rim (``lost``): the search runs on that same frame.

All numbers are in :data:`~.rules.RIM_RULES` with their reasons.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Optional

import cv2
import numpy as np

from .background import LesionCore
from .candidates import Candidate
from .masks import K3, mask_centroid
from .motion import transform_points
from .rules import RIM_RULES


@dataclass(frozen=True)
class TissuePlace:
    """Where one frame sits in the tissue's motion (a value: safe to hand to another thread).

    Attributes
    ----------
    chain : id of the unbroken motion chain (:class:`~.follow.MotionHistory`)
    acc : (3, 3) motion accumulated along the chain up to this frame, WL px
    confidence : this frame's motion confidence (0-1)
    width : frame width, WL px
    """

    chain: int
    acc: np.ndarray
    confidence: float
    width: int

    def to(self, later: "TissuePlace") -> Optional[np.ndarray]:
        """(3, 3) motion from this frame to ``later`` (WL px), or None across a break."""
        if later.chain != self.chain:
            return None
        return later.acc @ np.linalg.inv(self.acc)


def tissue_place(history, index: int, motion, width: int) -> Optional[TissuePlace]:
    """Frame ``index``'s place from a :class:`~.follow.MotionHistory` it was added to."""
    p = history.place(index)
    if p is None:
        return None
    return TissuePlace(p[0], p[1], float(motion.confidence), int(width))


def view_shift(h3: np.ndarray, width: int, height: int) -> float:
    """Largest distance a corner of a ``width`` x ``height`` view moves under ``h3``, px."""
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], np.float64)
    return float(np.max(np.hypot(*(transform_points(h3, corners) - corners).T)))


def rim_sized_components(stats: np.ndarray, min_rim_px: float) -> int:
    """Fluorescent components (``stats`` as from connectedComponentsWithStats) large enough for a rim."""
    return int(np.count_nonzero(stats[1:, cv2.CC_STAT_AREA] >= min_rim_px))


def _moved_box(m: np.ndarray, box: tuple, shape: tuple):
    """Where ``m`` ((2, 3) grid px) puts the box (x0, y0, x1, y1), grown by 1 px and
    clipped to ``shape``: (its (2, 3) box-local old -> box-local new transform, the new
    box), or None when under 3 px either way."""
    h, w = shape
    x0, y0, x1, y1 = box
    corners = transform_points(m, [[x0, y0], [x1, y0], [x0, y1], [x1, y1]])
    nx0, ny0 = (max(0, int(np.floor(v)) - 1) for v in corners.min(0))
    nx1, ny1 = min(w, int(np.ceil(corners[:, 0].max())) + 1), min(h, int(np.ceil(corners[:, 1].max())) + 1)
    if nx1 - nx0 < 3 or ny1 - ny0 < 3:
        return None
    a = m.copy()
    a[:, 2] += a[:, :2] @ np.array([x0, y0], np.float64) - np.array([nx0, ny0], np.float64)
    return a, (nx0, ny0, nx1, ny1)


def _warp(mask: np.ndarray, a: np.ndarray, box: tuple) -> np.ndarray:
    """``mask`` (bool or uint8 0/1) moved by the box-local ``a`` into ``box``: uint8 0/1."""
    x0, y0, x1, y1 = box
    return cv2.warpAffine(mask.view(np.uint8), a, (x1 - x0, y1 - y0), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def fluorescence_areas(cands: list, labels: np.ndarray, stats: np.ndarray,
                       min_rim_px: float) -> tuple[list, list]:
    """(per candidate, the area of the fluorescent components its rim lies on; the areas
    of the rim-sized components no candidate's rim lies on, largest first), px.
    ``labels``, ``stats``: this frame's components (connectedComponentsWithStats)."""
    areas = stats[:, cv2.CC_STAT_AREA]
    claimed = np.zeros(len(areas), bool)
    per = []
    for c in cands:
        x0, y0, x1, y1 = c.roi
        ids = np.unique(labels[y0:y1, x0:x1][c.rim])
        ids = ids[ids > 0]
        claimed[ids] = True
        per.append(int(areas[ids].sum()))
    claimed[0] = True  # the background label
    return per, sorted(areas[~claimed & (areas >= min_rim_px)].tolist(), reverse=True)


def pieces_beyond(c: Candidate, labels: np.ndarray, stats: np.ndarray, min_rim_px: float) -> list:
    """Areas (px) of the rim-sized connected pieces of the fluorescent components ``c``'s
    rim lies on that lie outside that rim (what a rim's component holds besides the
    rim: a gallbladder it touches, a duct, another lesion); ``labels``, ``stats`` as in
    :func:`fluorescence_areas`."""
    x0, y0, x1, y1 = c.roi
    ids = np.unique(labels[y0:y1, x0:x1][c.rim])
    ids = ids[ids > 0]
    if not len(ids):
        return []
    st = stats[ids]
    bx0, by0 = int(st[:, 0].min()), int(st[:, 1].min())
    bx1 = int((st[:, 0] + st[:, 2]).max())
    by1 = int((st[:, 1] + st[:, 3]).max())
    bx0, by0, bx1, by1 = min(bx0, x0), min(by0, y0), max(bx1, x1), max(by1, y1)
    mask = np.isin(labels[by0:by1, bx0:bx1], ids)
    mask[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0] &= ~c.rim
    _, _, pst, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    a = pst[1:, cv2.CC_STAT_AREA]
    return a[a >= min_rim_px].tolist()


def move_candidate(c: Candidate, m: np.ndarray, fluo: np.ndarray,
                   blocked: Optional[np.ndarray] = None) -> Optional[Candidate]:
    """``c`` moved by ``m`` ((2, 3) or (3, 3), analysis-grid px) and snapped to ``fluo``.

    The rim becomes the moved rim grown by one grid pixel where ``fluo``
    ((h, w) uint8 0/1, this frame) is set; the core the moved core outside
    it and outside ``blocked`` ((h, w) bool: instruments, invalid pixels; a
    tool hides a core, it is never core area).  None when less than
    ``RIM_RULES.reuse_min_overlap`` of the rim, or no core, is left (the rim
    is lost).
    """
    m = np.asarray(m, np.float64)[:2]
    moved = _moved_box(m, c.roi, fluo.shape)
    if moved is None:
        return None
    a, roi = moved
    nx0, ny0, nx1, ny1 = roi
    here = fluo[ny0:ny1, nx0:nx1]
    rim = (cv2.dilate(_warp(c.rim, a, roi), K3) & here).view(bool)
    n_rim = np.count_nonzero(rim)
    if n_rim < max(1, RIM_RULES.reuse_min_overlap * np.count_nonzero(c.rim)):
        return None
    core = _warp(c.core, a, roi).view(bool) & ~rim
    if blocked is not None:
        core &= ~blocked[ny0:ny1, nx0:nx1]
    if not core.any():
        return None
    comp = _warp(c.component, a, roi).view(bool) | rim
    cx, cy = transform_points(m, [c.centroid])[0]
    return replace(c, roi=roi, rim=rim, core=core, component=comp, centroid=(float(cx), float(cy)))


def rim_band(c: Candidate, core: LesionCore) -> float:
    """How far from its completed core (:func:`~.background.lesion_core`, the box of
    which holds ``c.roi``) the farthest pixel of ``c``'s rim lies, grid px: the band
    round the core the search took as rim (its width and the core-rim gap)."""
    ch, cw = core.mask.shape
    d = cv2.distanceTransform((core.mask == 0).view(np.uint8), cv2.DIST_L2, 3)
    x0, y0, x1, y1 = c.roi
    ox, oy = x0 - core.x0, y0 - core.y0
    if ox < 0 or oy < 0 or ox + (x1 - x0) > cw or oy + (y1 - y0) > ch or not c.rim.any():
        return 0.0
    return float(d[oy:oy + (y1 - y0), ox:ox + (x1 - x0)][c.rim].max())


def resnap_candidate(c: Candidate, core: LesionCore, band: float, fluo: np.ndarray,
                     blocked: Optional[np.ndarray] = None) -> Optional[Candidate]:
    """``c`` (moved to this frame) snapped again to this frame's fluorescence round
    ``core``, its completed core moved here (:func:`move_core`): the rim becomes the
    fluorescence within ``band`` grid px of that core (:func:`rim_band`, scaled by the
    motion), the core what this frame shows of it (outside the rim and ``blocked``).
    For a rim whose fluorescence grew since its search (a tool moving off it): the
    moved rim covers only what the search saw.  The ROI is the moved one grown to hold
    the band and the refinement's margin; None when no rim or no core is left."""
    if band <= 0:
        return None
    h, w = fluo.shape
    kx, ky, kw, kh = cv2.boundingRect(core.mask)
    if kw == 0:
        return None
    pad = int(np.ceil(band + c.width_px)) + 4
    x0, y0 = max(0, min(c.roi[0], core.x0 + kx - pad)), max(0, min(c.roi[1], core.y0 + ky - pad))
    x1 = min(w, max(c.roi[2], core.x0 + kx + kw + pad))
    y1 = min(h, max(c.roi[3], core.y0 + ky + kh + pad))
    k = np.zeros((y1 - y0, x1 - x0), np.uint8)
    ax0, ay0 = max(x0, core.x0), max(y0, core.y0)
    ax1, ay1 = min(x1, core.x0 + core.mask.shape[1]), min(y1, core.y0 + core.mask.shape[0])
    k[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] = core.mask[ay0 - core.y0:ay1 - core.y0,
                                                         ax0 - core.x0:ax1 - core.x0]
    d = cv2.distanceTransform((k == 0).view(np.uint8), cv2.DIST_L2, 3)
    blk = np.zeros(k.shape, bool) if blocked is None else blocked[y0:y1, x0:x1]
    here = fluo[y0:y1, x0:x1].view(bool)
    # fluorescent pixels in the completed core are rim too (its ellipse may reach over
    # the rim where a tool hid the core's outline), and so is the moved rim
    rim = here & (d <= band)
    mx0, my0, mx1, my1 = c.roi
    rim[my0 - y0:my1 - y0, mx0 - x0:mx1 - x0] |= c.rim
    kept = k.view(bool) & ~rim & ~blk
    if not rim.any() or not kept.any():
        return None
    mx, my = mask_centroid(rim | kept)
    return replace(c, roi=(x0, y0, x1, y1), rim=rim, core=kept, component=here.copy(),
                   centroid=(float(mx) + x0, float(my) + y0))


def move_core(core: LesionCore, m: np.ndarray, shape: tuple) -> Optional[LesionCore]:
    """A lesion's completed core (:func:`~.background.lesion_core`) moved by ``m`` ((2, 3)
    or (3, 3), analysis-grid px) on a grid of ``shape``; None when it leaves the grid."""
    m = np.asarray(m, np.float64)[:2]
    mh, mw = core.mask.shape
    moved = _moved_box(m, (core.x0, core.y0, core.x0 + mw, core.y0 + mh), shape)
    if moved is None:
        return None
    a, box = moved
    return LesionCore(_warp(core.mask, a, box), box[0], box[1])


class RimReuse:
    """Per analysed frame: the full search, or last search's candidates moved (module docstring).

    ``counts`` tallies, over the frames it saw, ``reused`` and each reason a
    full search ran (``bench`` and ``evaluate`` read it).
    """

    def __init__(self):
        self.counts: Counter = Counter()
        #: rims re-snapped to their grown fluorescence on reused frames (not searches)
        self.resnaps = 0
        self._resnapped_now = 0
        self.reset()

    def reset(self) -> None:
        self._cands: list = []  # the last full search's candidates, grid px
        #: their completed cores as measured on that frame (background.lesion_core), or None
        self._cores: list = []
        self._bands: list = []  # rim_band of each, grid px (0: none)
        self._beyond: list = []  # pieces_beyond of each on that frame
        self._searched_at: Optional[TissuePlace] = None
        self._grid = None  # (h, w, s) of that search
        self._since = 0  # frames analysed since that search
        self._n_fluo = -1  # rim-sized fluorescent components it saw
        self._areas: tuple = ([], [])  # fluorescence_areas of that search
        #: why the last frame ran the full search ("" when it reused)
        self.last_reason = "first frame"

    def state_bytes(self) -> bytes:
        """What the next frames' choices depend on, for ``Pipeline.state_digest`` (the
        motion chain's ids and accumulated matrices are left out: they count from the
        stream's start, the motion *since* the search is what is used)."""
        parts = [f"reuse {self._since} {self._n_fluo} {self._grid} "
                 f"{self._searched_at is None} {self._areas} {self._beyond};".encode()]
        for c, k in zip(self._cands, self._cores):
            parts += [repr((c.roi, c.width_px, c.completeness, c.centroid)).encode(),
                      np.packbits(c.rim).tobytes(), np.packbits(c.core).tobytes()]
            if k is not None:
                parts += [repr((k.x0, k.y0, k.mask.shape)).encode(), np.packbits(k.mask).tobytes()]
        return b"".join(parts)

    def moved(self, place: Optional[TissuePlace], fluo: np.ndarray, labels: np.ndarray,
              stats: np.ndarray, scale: float, min_rim_px: float,
              blocked: Optional[np.ndarray] = None) -> Optional[list]:
        """The last search's candidates where they are in this frame, each with its
        completed core from that frame moved here (:func:`move_core`; None if none),
        as (candidate, core) pairs; or None: search (``last_reason`` says why).
        ``labels``, ``stats``: this frame's fluorescent components; ``blocked``:
        (h, w) bool, this frame's instruments and invalid pixels
        (:func:`move_candidate`)."""
        reason, m = self._why_search(place, fluo.shape, scale, stats, min_rim_px)
        if not reason:
            s = np.diag([scale, scale, 1.0])
            mg = s @ m @ np.linalg.inv(s)  # WL px -> grid px
            out = []
            for c, k in zip(self._cands, self._cores):
                mc = move_candidate(c, mg, fluo, blocked)
                if mc is None:
                    reason = "rim lost"
                    break
                out.append((mc, None if k is None else move_core(k, mg, fluo.shape)))
            if not reason:
                out, reason = self._resnapped(out, mg, fluo, labels, stats, min_rim_px, blocked)
        self.last_reason = reason
        if reason:
            self._resnapped_now = 0
            return None
        self._since += 1
        self.counts["reused"] += 1
        return out

    def lost(self) -> None:
        """A moved rim found no rim when measured: this frame searches after all."""
        self.counts["reused"] -= 1
        self.resnaps -= self._resnapped_now
        self._since -= 1
        self.last_reason = "rim lost"

    def searched(self, cands: list, place: Optional[TissuePlace], grid_shape: tuple,
                 scale: float, labels: np.ndarray, stats: np.ndarray, min_rim_px: float) -> None:
        """Remember a full search's candidates, and where and what it saw."""
        self.counts[self.last_reason] += 1
        self._cands = list(cands)
        self._cores = [None] * len(self._cands)
        self._bands = [0.0] * len(self._cands)
        self._searched_at = place
        self._grid = (*grid_shape, scale)
        self._since = 0
        self._n_fluo = rim_sized_components(stats, min_rim_px)
        self._areas = fluorescence_areas(self._cands, labels, stats, min_rim_px)
        self._beyond = [pieces_beyond(c, labels, stats, min_rim_px) for c in self._cands]

    def _resnapped(self, out: list, mg: np.ndarray, fluo, labels, stats, min_rim_px, blocked):
        """(``out`` with each rim whose fluorescence grew by more than
        ``RIM_RULES.reuse_max_growth`` since the search re-snapped to it
        (:func:`resnap_candidate`), "") -- or (``out``, "more fluorescence") when a
        grown rim cannot be re-snapped, or when rim-sized fluorescence under no rim
        grew by more than that or is new: the components under none, and what lies
        beyond a re-snapped rim in its components (a component a rim joined), each
        paired with the search's by size rank (labels do not last from frame to frame,
        and two of near the same size that swap ranks compare near equal)."""
        self._resnapped_now = 0
        g = 1.0 + RIM_RULES.reuse_max_growth
        per, _ = fluorescence_areas([c for c, _ in out], labels, stats, min_rim_px)
        per0, free0 = self._areas
        scale = float(np.sqrt(abs(np.linalg.det(np.asarray(mg, np.float64)[:2, :2]))))
        res, beyond = [], []
        for i, ((c, k), a, a0) in enumerate(zip(out, per, per0)):
            if a <= g * a0:
                res.append((c, k))
                continue
            c2 = None if k is None else resnap_candidate(c, k, self._bands[i] * scale, fluo, blocked)
            if c2 is None:
                return out, "more fluorescence"
            res.append((c2, k))
            beyond.append(i)
        _, free = fluorescence_areas([c for c, _ in res], labels, stats, min_rim_px)
        now, then = list(free), list(free0)
        for i in beyond:
            now += pieces_beyond(res[i][0], labels, stats, min_rim_px)
            then += self._beyond[i]
        now.sort(reverse=True)
        then.sort(reverse=True)
        if len(now) > len(then) or any(a > g * a0 for a, a0 in zip(now, then)):
            return out, "more fluorescence"
        self._resnapped_now = len(beyond)
        self.resnaps += self._resnapped_now
        return res, ""

    def measured(self, cores: list) -> None:
        """The completed cores (:func:`~.background.lesion_core`, None for a candidate
        that found no rim) of the candidates just passed to :meth:`searched`: B of a
        moved rim is taken round its core moved from there, whatever this frame's tool
        leaves of the moved core."""
        self._cores = list(cores)
        self._bands = [0.0 if k is None else rim_band(c, k) for c, k in zip(self._cands, cores)]

    def _why_search(self, place, grid_shape, scale, stats, min_rim_px):
        """(reason for a full search or "", (3, 3) motion since the last search in WL px)."""
        r = RIM_RULES
        if place is None:
            return "no motion", None
        if self._searched_at is None or self._grid != (*grid_shape, scale):
            return "first frame", None
        if not self._cands:
            return "no rims to follow", None
        if self._since + 1 >= r.reuse_search_every:
            return "cadence", None
        if place.confidence < r.reuse_min_confidence:
            return "motion uncertain", None
        m = self._searched_at.to(place)
        if m is None:
            return "motion lost", None
        h, w = grid_shape
        if view_shift(m, place.width, place.width * h / w) > r.reuse_max_view_shift * place.width:
            return "new tissue", None
        if rim_sized_components(stats, min_rim_px) > self._n_fluo:
            return "new fluorescence", None
        return "", m
