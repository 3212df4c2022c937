"""The liver background B: every background level the analysis uses, and how.

B is what every ratio is taken against (the fluorescence threshold, the
core level, TBR and contrast), and T and B come from the same frame, so an
auto-gain step changes nothing.  Three levels, all on the coarse analysis
grid:

- **global level** b0 (:func:`global_background`): the median of the
  usable pixels (liver dominates the field); it starts the map, scales the
  instrument test and, times ``segment.threshold``, is the overlay's
  threshold (:func:`display_background` when no analysis has one).
- **Background map** (:func:`background_map`): tiles of about 12 mm take
  the mean of the pixels within 0.7-1.4x the current estimate, so rims,
  cores, bile and instruments drop out; tiles covered by a lesion borrow
  from their neighbours.  The fluorescence ratio, the rim edge's base
  (:func:`map_level`) and the transection plane's TBR (:func:`map_tbr`)
  are taken against it.
- **B of a rim**, ``background_intensity`` (:func:`ring_background`):
  median normalised NIR over a ring of liver from ``background_gap_mm``
  (1.5 mm) to gap + ``background_radius_mm`` (4 mm) outside the lesion's
  outline (the core -- with the core-dark pixels connected to it, where a
  partial rim leaves it bare -- grown by the measured rim width, completed
  by an ellipse where a tool hides it -- a circle when too little of its outline
  shows to pin an ellipse down), excluding fluorescence (grown 0.7 mm for
  its glow), instruments and core-dark pixels (:func:`ring_exclusion`), and
  the other lesions' outlines (:func:`lesion_backgrounds`).

The fixed numbers (tile size, bands, glow, least ring size) are
:data:`~.rules.RIM_RULES`; gap and ring width are settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ._kernels.background import outline_near_blocked, ring_median
from .candidates import Candidate
from .masks import aligned_crop, complete_core
from .rules import RIM_RULES


def global_background(nir_small: np.ndarray, usable: np.ndarray) -> float:
    """Median of usable pixels on a strided subsample (liver dominates the field).

    Parameters
    ----------
    nir_small : (h, w) float32 normalised NIR on the analysis grid
    usable : (h, w) bool, pixels that may be liver (valid, not instrument)
    """
    sub = nir_small[::2, ::2][usable[::2, ::2]]
    if sub.size < 16:
        sub = nir_small[usable] if usable.any() else nir_small.ravel()
    sub = sub[sub > 0]
    if sub.size == 0:
        return 0.0
    return float(np.median(sub))


def background_map(nir_small: np.ndarray, usable: np.ndarray, *, px_per_mm: float,
                   b0: Optional[float] = None) -> tuple[np.ndarray, float]:
    """Smooth map of the liver parenchyma level on the analysis grid.

    Tiles of ``RIM_RULES.background_tile_mm`` take the mean of pixels within
    a band around the current estimate (``background_bands``: so rims,
    cores, bile and instruments drop out), tiles with too few such pixels
    are filled from their neighbours (normalised convolution), and the tile
    grid is interpolated back.

    Parameters
    ----------
    nir_small : (h, w) float32 normalised NIR on the analysis grid
    usable : (h, w) bool, pixels that may be liver (valid, not instrument)
    px_per_mm : analysis-grid pixels per mm
    b0 : the global level (:func:`global_background`), or None to compute it

    Returns
    -------
    bg : (h, w) float32, normalised counts
    b0 : float, global median background
    """
    h, w = nir_small.shape
    if b0 is None:
        b0 = global_background(nir_small, usable)
    if b0 <= 0:
        return np.full((h, w), max(b0, 1e-6), np.float32), b0
    tile_px = max(RIM_RULES.background_tile_min_px,
                  int(round(RIM_RULES.background_tile_mm * px_per_mm)))
    ty = max(1, int(round(h / tile_px)))
    tx = max(1, int(round(w / tile_px)))
    est_tiles = np.full((ty, tx), b0, np.float32)
    usable_f = usable.astype(np.float32)
    for lo, hi in RIM_RULES.background_bands:
        est = cv2.resize(est_tiles, (w, h), interpolation=cv2.INTER_LINEAR)
        band = (nir_small > lo * est) & (nir_small < hi * est)
        weight = band.astype(np.float32) * usable_f
        # numerator and weight as the two channels of one image: one resize
        # and one blur instead of two each (same per-channel arithmetic)
        nd = cv2.resize(cv2.merge([nir_small * weight, weight]), (tx, ty), interpolation=cv2.INTER_AREA)
        # normalised convolution: tiles covered by a lesion borrow from neighbours
        nd_s = cv2.GaussianBlur(nd, (3, 3), 0.8, borderType=cv2.BORDER_REPLICATE)
        num, den = nd.reshape(ty, tx, 2)[..., 0], nd.reshape(ty, tx, 2)[..., 1]
        num_s, den_s = nd_s.reshape(ty, tx, 2)[..., 0], nd_s.reshape(ty, tx, 2)[..., 1]
        own = den > RIM_RULES.background_tile_own
        borrow = den_s > RIM_RULES.background_tile_borrow
        tiles = np.where(own, num / np.maximum(den, 1e-6),
                         np.where(borrow, num_s / np.maximum(den_s, 1e-6), b0))
        est_tiles = tiles.astype(np.float32)
    bg = cv2.resize(est_tiles, (w, h), interpolation=cv2.INTER_LINEAR)
    np.maximum(bg, 1e-6, out=bg)
    return bg, b0


@dataclass(frozen=True)
class LesionCore:
    """The core B's ring is laid round, on the analysis grid: ``mask`` (h, w) uint8 0/1
    with its top left at grid column ``x0``, row ``y0`` (:func:`lesion_core`)."""

    mask: np.ndarray
    x0: int
    y0: int


def _reach(cand: Candidate, width: float, gap_px: float, ring_px: float) -> int:
    """How far beyond ``cand.roi`` the ring can lie, grid px."""
    return int(np.ceil(max(width, cand.width_px) + gap_px + ring_px)) + 1


def lesion_core(shape: tuple, cand: Candidate, ring_px: float, gap_px: float = 1.5,
                blocked: Optional[np.ndarray] = None,
                width_px: Optional[float] = None,
                dark: Optional[np.ndarray] = None) -> LesionCore:
    """``cand``'s core in the box round its ROI that its ring can reach, completed by an
    ellipse fitted to its visible outline where an instrument or the frame edge hides
    some of it (``blocked``, ``width_px``: as :func:`ring_background`; ``shape``: the
    analysis grid's).

    ``dark`` ((h, w) bool, the whole grid: :func:`core_dark`), or None: the core is
    first grown by the core-dark pixels connected to it (:func:`_dark_core`), the box
    by them, and ``blocked`` is then the whole grid's too.
    """
    h, w = shape
    x0, y0, x1, y1 = cand.roi
    width = cand.width_px if width_px is None else float(width_px)
    reach = _reach(cand, width, gap_px, ring_px)
    X0, Y0, X1, Y1 = max(0, x0 - reach), max(0, y0 - reach), min(w, x1 + reach), min(h, y1 + reach)
    core = np.zeros((Y1 - Y0, X1 - X0), np.uint8)
    oy, ox = y0 - Y0, x0 - X0
    core[oy:oy + (y1 - y0), ox:ox + (x1 - x0)] = cand.core
    if dark is not None:
        whole = _dark_core(cand, dark, 2 * reach)
        if whole is not None:
            m, wx0, wy0 = whole
            cx, cy, cw, ch = cv2.boundingRect(m.view(np.uint8))
            X0, Y0 = max(0, min(x0, wx0 + cx) - reach), max(0, min(y0, wy0 + cy) - reach)
            X1 = min(w, max(x1, wx0 + cx + cw) + reach)
            Y1 = min(h, max(y1, wy0 + cy + ch) + reach)
            core = np.zeros((Y1 - Y0, X1 - X0), np.uint8)
            core[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0] = cand.core
            sy0, sx0 = max(wy0, Y0), max(wx0, X0)
            sy1, sx1 = min(wy0 + m.shape[0], Y1), min(wx0 + m.shape[1], X1)
            core[sy0 - Y0:sy1 - Y0, sx0 - X0:sx1 - X0] |= m[sy0 - wy0:sy1 - wy0, sx0 - wx0:sx1 - wx0]
            if blocked is not None:
                # the box's own edges hide the core as a tool does: a dark core
                # running beyond them is completed, not cut straight there
                blk = blocked[Y0:Y1, X0:X1].copy()
                blk[0, :] = blk[-1, :] = blk[:, 0] = blk[:, -1] = True
                hidden, n_core, ys, xs = outline_near_blocked(core.view(bool), blk, 2)
                if hidden:
                    complete_core(core, n_core, ys, xs, 0, 0)
            return LesionCore(core, X0, Y0)
        blocked = None if blocked is None else blocked[y0:y1, x0:x1]
    if blocked is not None:
        # the core's outline where no instrument / frame edge is within 2 px:
        # if some of it is hidden, the hidden part is completed by an ellipse
        hidden, n_core, ys, xs = outline_near_blocked(cand.core, blocked, 2)
        if hidden:
            complete_core(core, n_core, ys, xs, oy, ox)
    return LesionCore(core, X0, Y0)


def core_dark(ratio: np.ndarray, core_ratio: float, blocked: np.ndarray) -> np.ndarray:
    """(h, w) bool: pixels dark as a core (``ratio < core_ratio``) 3 px or more from ``blocked``.

    Next to a tool the grid's pixels mix its dark with the liver: a strip of
    them along the tool's edge is dark without being a core, and a core
    grown along it (:func:`_dark_core`) ran the tool's length (seed 524:
    B +12 %).  A core beside the tool is completed across that margin by
    its ellipse (:func:`lesion_core`).
    """
    near = cv2.dilate(blocked.view(np.uint8), np.ones((5, 5), np.uint8)).view(bool)
    return (ratio < core_ratio) & ~near


def _dark_core(cand: Candidate, dark: np.ndarray, margin: int
               ) -> Optional[tuple[np.ndarray, int, int]]:
    """The ``dark`` pixels (the whole grid's) 8-connected to ``cand.core`` within its ROI
    grown by ``margin``, with the core: ``(mask uint8 0/1, x0, y0)`` of that window;
    None when they add nothing to the core.

    A candidate's core is what its arc reaches (:mod:`.cores`); where a rim
    covers part of the outline and the rest of the core lies bare (a
    partial rim, one a tool cuts short) the dark region beyond that reach
    is the same core.  Its blurred edge is darker than liver but above
    ``core_ratio`` for about a millimetre, and a ring laid round the
    smaller core is off-centre: it takes in that fall-off and one side of
    the lesion only (seed 532's second lesion: B -4 %).  Laid round the
    whole dark core it starts, as the lesion's outline does, a rim width
    beyond the core's edge all round.
    """
    h, w = dark.shape
    x0, y0, x1, y1 = cand.roi
    X0, Y0, X1, Y1 = max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin)
    own = np.zeros((Y1 - Y0, X1 - X0), bool)
    own[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0] = cand.core
    grown = dark[Y0:Y1, X0:X1] | own
    n, lab = cv2.connectedComponents(grown.view(np.uint8), connectivity=8)
    ids = np.unique(lab[own])
    keep = np.isin(lab, ids[ids > 0]) if n > 2 else grown
    if not (keep & ~own).any():
        return None
    return keep.view(np.uint8), X0, Y0


def carried_core(shape: tuple, cand: Candidate, carried: LesionCore, hidden: np.ndarray,
                 ring_px: float, gap_px: float = 1.5,
                 width_px: Optional[float] = None) -> LesionCore:
    """``cand``'s core in the box :func:`lesion_core` gives it, completed where this frame
    hides it (``hidden``: (h, w) bool, the whole grid: instruments, invalid pixels) by
    ``carried`` -- the core an earlier frame completed (:func:`lesion_core`), moved to
    this frame -- instead of an ellipse fitted afresh: a rim moved from that frame
    (:mod:`.reuse`) keeps only the core this frame's tool leaves, and an ellipse fitted
    to a sliver of it swings from frame to frame.  Where this frame shows the core,
    ``cand.core`` alone is it."""
    here = lesion_core(shape, cand, ring_px, gap_px, None, width_px)
    core, X0, Y0 = here.mask, here.x0, here.y0
    bh, bw = core.shape
    ch, cw = carried.mask.shape
    ax0, ay0 = max(X0, carried.x0), max(Y0, carried.y0)
    ax1, ay1 = min(X0 + bw, carried.x0 + cw), min(Y0 + bh, carried.y0 + ch)
    if ax0 < ax1 and ay0 < ay1:
        core[ay0 - Y0:ay1 - Y0, ax0 - X0:ax1 - X0] |= (
            carried.mask[ay0 - carried.y0:ay1 - carried.y0, ax0 - carried.x0:ax1 - carried.x0]
            & hidden[ay0:ay1, ax0:ax1])
    return here


def ring_background(nir_small: np.ndarray, cand: Candidate, exclude: np.ndarray,
                    ring_px: float, gap_px: float = 1.5,
                    blocked: Optional[np.ndarray] = None,
                    width_px: Optional[float] = None,
                    core: Optional[LesionCore] = None) -> Optional[float]:
    """Median of the liver ring around a lesion on the analysis grid.

    The ring runs from ``max(gap_px, 1)`` to that + ``ring_px`` outside the
    lesion's closed outline -- the core grown by the rim width all round,
    also where a partial rim leaves the core bare -- so B is taken at the
    same distance all round the lesion.  Where an instrument hides part of
    the core, the core's outline is completed by an ellipse fitted to its
    visible boundary (:func:`lesion_core`).  ``exclude`` (:func:`ring_exclusion`)
    removes fluorescence (grown by a little, for its blurred glow), instruments
    and core-dark pixels, so neither bile nor a tool biases B.

    Parameters
    ----------
    nir_small : (h, w) float32 normalised NIR on the analysis grid
    cand : the lesion
    exclude : (h, w) bool, pixels that are not liver
    ring_px, gap_px : ring width and gap to the outline, grid px
        (``segment.background_radius_mm`` and ``background_gap_mm``)
    blocked : bool, ROI-local to ``cand.roi``, or None: instrument, invalid
        pixels, frame edge
    width_px : rim width (analysis-grid px) for the outline; default the
        candidate's coarse estimate (the fluorescent band, wider than the rim)
    core : the core to lay the ring round, :func:`lesion_core` or
        :func:`carried_core` (a rim moved from an earlier frame); None:
        :func:`lesion_core` of this frame

    Returns
    -------
    B, normalised counts; None when fewer than ``RIM_RULES.ring_min_px``
    ring pixels are liver (the caller keeps the map's level, :func:`map_level`)
    """
    width = cand.width_px if width_px is None else float(width_px)
    if core is None:
        core = lesion_core(nir_small.shape, cand, ring_px, gap_px, blocked, width)
    core, X0, Y0 = core.mask, core.x0, core.y0
    oy, ox = cand.roi[1] - Y0, cand.roi[0] - X0
    lo = width + max(1.0, gap_px)
    hi = lo + ring_px
    # the distance transform on a crop round the core and its rim (~1/2 of the
    # box): the same values wherever the ring can be, also round arcs across a
    # tool from the core (_with_far_arcs), whose ring a crop round the core
    # alone cut off (seed 505: B +2-19 % on the far side's missing ring)
    crop = _ring_crop(core, hi, _shifted_rect(cand.rim, ox, oy))
    if crop is None:
        return None
    ax0, ay0, ax1, ay1 = crop
    # distance transform instead of large dilations: O(N) whatever the radius
    d = cv2.distanceTransform(1 - core[ay0:ay1, ax0:ax1], cv2.DIST_L2, 3)
    # (rim pixels beyond the coarse rim's own cut, cores.py: arcs attached or
    # joined across a tool)
    d = _with_far_arcs(d, cand.rim, (oy - ay0, ox - ax0), width,
                       max(width, cand.width_px) + max(1.0, gap_px) + 1.0)
    # median of the ring (lo < d <= hi, not excluded) in one numba pass
    med, n = ring_median(d, np.float32(lo), np.float32(hi), exclude[Y0 + ay0:Y0 + ay1, X0 + ax0:X0 + ax1],
                         nir_small[Y0 + ay0:Y0 + ay1, X0 + ax0:X0 + ax1])
    if n < RIM_RULES.ring_min_px:
        return None
    return med


def lesion_backgrounds(nir_small: np.ndarray, cands: list, cores: list, widths: list,
                       exclude: np.ndarray, ring_px: float, gap_px: float = 1.5
                       ) -> list[Optional[float]]:
    """B of each lesion of a frame (:func:`ring_background`), its ring clear of the
    other lesions' outlines (a core grown by its rim width and the gap, where its
    own ring starts): the neighbour's gap and its bare core's blurred edge (darker
    than liver, above ``core_ratio``, so :func:`ring_exclusion` keeps it) are not
    this lesion's liver, and the truth's rings keep out of them too (seed 550's
    first lesion: B 62.0 -> 62.7, 63.4 by the truth's definition).

    ``cands``, ``cores``, ``widths``: per lesion its candidate, :class:`LesionCore`
    and rim width (grid px); the rest as :func:`ring_background`.  Returns B per
    lesion, None where its ring has too few liver pixels.
    """
    if len(cands) < 2:
        return [ring_background(nir_small, c, exclude, ring_px, gap_px, width_px=w, core=k)
                for c, k, w in zip(cands, cores, widths)]
    zones = [_outline(k, w, gap_px) for k, w in zip(cores, widths)]
    out = []
    for i, (c, k, w) in enumerate(zip(cands, cores, widths)):
        ex = exclude.copy()
        for j, (zone, x0, y0) in enumerate(zones):
            if j != i:
                zh, zw = zone.shape
                ex[y0:y0 + zh, x0:x0 + zw] |= zone
        out.append(ring_background(nir_small, c, ex, ring_px, gap_px, width_px=w, core=k))
    return out


def _outline(core: LesionCore, width: float, gap_px: float) -> tuple[np.ndarray, int, int]:
    """The lesion's outline as :func:`ring_background` draws it, where its ring starts: the
    pixels within ``width + max(gap_px, 1)`` of ``core`` on its box: ``(mask bool, x0, y0)``."""
    d = cv2.distanceTransform(1 - core.mask, cv2.DIST_L2, 3)
    return d <= np.float32(width + max(1.0, gap_px)), core.x0, core.y0


def _with_far_arcs(d: np.ndarray, rim: np.ndarray, at: tuple[int, int], width: float,
                   far: float) -> np.ndarray:
    """``d`` (distance to the core) lowered to ``width`` + the distance to rim arcs beyond ``far``.

    A rim's arc across a tool from the core's visible part (joined under
    the tool, :func:`~.arcs.joined_under_tool`) lies further from that core
    than the rim's own band reaches: the lesion's outline runs round it too, so the ring
    is laid round it as round the core grown by the rim width -- else the
    ring misses that side of the lesion whenever the completed core falls
    short under the tool, and B flips with it frame to frame.  Rims within
    ``far`` of the core (every rim without a tool) leave ``d`` as it is.
    ``rim`` is the candidate's ROI mask, its origin at row, column ``at`` of
    ``d``'s crop (pixels outside the crop are ignored).
    """
    h, w = d.shape
    oy, ox = at
    rh, rw = rim.shape
    ry0, rx0 = max(0, -oy), max(0, -ox)
    ry1, rx1 = min(rh, h - oy), min(rw, w - ox)
    if ry0 >= ry1 or rx0 >= rx1:
        return d
    arcs = np.zeros(d.shape, bool)
    arcs[oy + ry0:oy + ry1, ox + rx0:ox + rx1] = rim[ry0:ry1, rx0:rx1]
    arcs &= d > far
    if not arcs.any():
        return d
    d_far = cv2.distanceTransform((~arcs).view(np.uint8), cv2.DIST_L2, 3)
    return np.minimum(d, d_far + np.float32(width))


def _shifted_rect(mask: np.ndarray, ox: int, oy: int) -> Optional[tuple[int, int, int, int]]:
    """Bounding rect (x, y, w, h) of ``mask`` (bool) moved by ``ox, oy``; None when empty."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    return None if w == 0 else (x + ox, y + oy, w, h)


def _ring_crop(core: np.ndarray, hi: float, also: Optional[tuple[int, int, int, int]] = None
               ) -> Optional[tuple[int, int, int, int]]:
    """Crop (x0, y0, x1, y1) of ``core`` (uint8) whose DIST_L2 3x3 transform is exact up to ``hi``
    (from the core, and from what lies in the rect ``also`` (x, y, w, h), or None).

    Every step of the chamfer distance costs >= 0.955 while moving one
    pixel in x and / or y, so a pixel within ``hi`` of the core, and every
    pixel on a shortest path to it, is within hi / 0.955 pixels of the
    core's bounding box: on the crop of that box grown by this (+ 2) the
    transform gives those pixels the same paths and the same float sums.
    OpenCV's (IPP's) float sums depend on a pixel's column modulo 16 counted
    from either end of the row (observed: crops on other columns differ in
    the last bit), so the crop's ends stay on that grid of the full array.
    None when the core is empty.  (tests/test_measure_kernels.py)
    """
    cx, cy, cw, ch = cv2.boundingRect(core)
    if cw == 0:
        return None
    if also is not None:
        x1, y1 = max(cx + cw, also[0] + also[2]), max(cy + ch, also[1] + also[3])
        cx, cy = min(cx, also[0]), min(cy, also[1])
        cw, ch = x1 - cx, y1 - cy
    return aligned_crop(cx, cy, cw, ch, core.shape, int(np.ceil(hi / 0.955)) + 2)


def ring_exclusion(fluo: np.ndarray, instr: np.ndarray, ratio: np.ndarray,
                   valid: Optional[np.ndarray], *, px_per_mm: float, core_ratio: float) -> np.ndarray:
    """(h, w) bool: grid pixels that are not liver for the ring's B.

    Fluorescence grown by ``RIM_RULES.glow_mm`` (its blurred glow),
    instruments, core-dark pixels (``ratio < core_ratio``: a part of a core
    the outline missed, behind a tool or beyond a partial rim, is not liver;
    vessels at ~0.85 stay in) and invalid pixels.

    Parameters
    ----------
    fluo : (h, w) uint8 0/1 fluorescence mask
    instr : (h, w) bool instruments
    ratio : (h, w) float32, NIR / the background map
    valid : (h, w) bool or None
    px_per_mm : analysis-grid pixels per mm
    core_ratio : ``segment.core_ratio``
    """
    glow = max(1, int(round(RIM_RULES.glow_mm * px_per_mm)))
    exclude = cv2.dilate(fluo, np.ones((2 * glow + 1, 2 * glow + 1), np.uint8)).astype(bool) | instr
    exclude |= ratio < core_ratio
    if valid is not None:
        exclude |= ~valid
    return exclude


def map_level(bg: np.ndarray, centroid: tuple[float, float]) -> float:
    """The background map at a candidate's centroid (x, y grid px, clipped to the grid).

    The rim edge is placed against this level (:func:`~.refine.refine_rim`);
    the rim's own B comes from its ring once its width is measured.
    """
    h, w = bg.shape
    cx, cy = centroid
    return float(bg[int(min(h - 1, max(0, cy))), int(min(w - 1, max(0, cx)))])


def map_tbr(nir_small: np.ndarray, bg: np.ndarray, mask: np.ndarray) -> Optional[float]:
    """Mean NIR over ``mask`` / mean background map over ``mask``; None for an empty mask.

    The transection plane's TBR: the fluorescence in the plane against the
    liver level there.
    """
    if not mask.any():
        return None
    return float(nir_small[mask].mean() / bg[mask].mean())


def display_background(analysis_background: float, median_level: float) -> float:
    """The liver level the overlay's threshold is a multiple of.

    The analysis's global level, or -- before an analysis has one (first
    frames, a live pipeline's analysis still running, a frame without
    liver) -- the median of the display-level histogram's samples: liver
    fills most of the view.
    """
    return analysis_background if analysis_background else median_level
