"""Coarse-grid segmentation: background map, fluorescence mask, rim candidates.

Everything here runs on the reduced analysis grid (``segment.analysis_scale``
of the frame), where a 1080p frame is a few hundred thousand pixels or fewer.
Sub-pixel boundaries and measurements are made afterwards at full resolution
inside each lesion's ROI (:mod:`.measure`).

All thresholds are *ratios* to the local liver background, so an auto-gain
or exposure step that scales the whole frame cancels out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ._kernels.segment import (circle_fit_sums, grey_and_dark, hysteresis_masks, label_stats, relabel,
                               ridge_median)

#: column block of cv2.distanceTransform's float sums: a transform on a crop
#: equals the transform on the whole array to the bit only when both ends of
#: the crop's rows lie on this grid (counted from each end; measured)
DT_COLUMN_BLOCK = 16

# Band (x local background) of pixels trusted as liver parenchyma when the
# background map is built: excludes fluorescence (rims, ducts, bile), dark
# tumour cores and instruments without having to know where they are.
_BG_BAND_FIRST = (0.4, 2.0)
_BG_BAND = (0.7, 1.4)


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


def background_map(nir_small: np.ndarray, usable: np.ndarray, *, tile_px: int = 24,
                   b0: Optional[float] = None) -> tuple[np.ndarray, float]:
    """Smooth map of the liver parenchyma level on the analysis grid.

    Tiles of ``tile_px`` x ``tile_px`` take the mean of pixels within a band
    around the current estimate (so rims, cores, bile and instruments drop
    out), tiles with too few such pixels are filled from their neighbours
    (normalised convolution), and the tile grid is interpolated back.

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
    ty = max(1, int(round(h / tile_px)))
    tx = max(1, int(round(w / tile_px)))
    est_tiles = np.full((ty, tx), b0, np.float32)
    usable_f = usable.astype(np.float32)
    for lo, hi in (_BG_BAND_FIRST, _BG_BAND):
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
        own = den > 0.3
        tiles = np.where(own, num / np.maximum(den, 1e-6),
                         np.where(den_s > 0.02, num_s / np.maximum(den_s, 1e-6), b0))
        est_tiles = tiles.astype(np.float32)
    bg = cv2.resize(est_tiles, (w, h), interpolation=cv2.INTER_LINEAR)
    np.maximum(bg, 1e-6, out=bg)
    return bg, b0


def instrument_mask(wl_small: Optional[np.ndarray], ratio: np.ndarray) -> np.ndarray:
    """Instruments: grey (low saturation) in white light and dark in NIR.

    Specular highlights are also unsaturated but bright in WL and normal in
    NIR, so the NIR test keeps them out.  A tumour core is dark in NIR but
    tissue-coloured in WL, so the saturation test keeps it out.

    Returns (h, w) bool on the analysis grid.
    """
    if wl_small is None:
        return np.zeros(ratio.shape, bool)
    # (no upper limit on V: the shaft's own highlight is white but NIR-dark)
    if wl_small.dtype == np.uint8 and wl_small.ndim == 3 and wl_small.shape[2] == 3:
        # grey (HSV S < 50, V > 25) and NIR-dark in one pass, with OpenCV's
        # own 8-bit S arithmetic (no HSV image, no strided channel views)
        instr = np.empty(ratio.shape, np.bool_)
        grey_and_dark(wl_small, ratio, ratio.dtype.type(0.6), _SDIV, instr)
    else:
        hsv = cv2.cvtColor(wl_small, cv2.COLOR_BGR2HSV)
        s = hsv[..., 1]
        v = hsv[..., 2]
        grey = (s < 50) & (v > 25)
        instr = grey & (ratio < 0.6)
    if instr.any():
        m = instr.astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        # grow a little: instrument edges blur into the liver in both channels
        m = cv2.dilate(m, np.ones((3, 3), np.uint8))
        instr = m.astype(bool)
    return instr


# OpenCV's 8-bit BGR -> HSV saturation: S = ((V - min) * _SDIV[V] + 2**11) >> 12
# with _SDIV[v] = round(255 * 2**12 / v) (checked equal to cv2.cvtColor's S for
# all 2**24 colours)
_SDIV = np.zeros(256, np.int32)
_SDIV[1:] = np.round((255 << 12) / np.arange(1, 256)).astype(np.int32)


def hysteresis_mask(ratio: np.ndarray, high: float, low: float,
                    prev: Optional[np.ndarray] = None, min_px: int = 3) -> np.ndarray:
    """Fluorescent pixels with spatial and temporal hysteresis.

    A pixel above ``low`` is kept when its connected region reaches ``high``
    somewhere, or when it was fluorescent in the previous frame (so a rim
    hovering at the threshold does not flicker).

    Returns (h, w) uint8 0/1.
    """
    return hysteresis_components(ratio, high, low, prev, min_px)[0]


def hysteresis_components(ratio: np.ndarray, high: float, low: float,
                          prev: Optional[np.ndarray] = None, min_px: int = 3,
                          valid: Optional[np.ndarray] = None):
    """:func:`hysteresis_mask` plus its connected components (one labelling pass).

    Returns
    -------
    mask : (h, w) uint8 0/1
    labels : (h, w) int32, component labels of ``mask`` (dropped ones are 0)
    stats : (n, 5) int32 as from ``cv2.connectedComponentsWithStats``
    """
    h, w = ratio.shape
    # (thresholds in the array's dtype, as numpy compares an array with a Python float)
    lo, hi = ratio.dtype.type(low), ratio.dtype.type(high)
    use_prev = prev is not None and prev.shape == ratio.shape
    weak = np.empty((h, w), np.uint8)
    seeds = np.empty((h, w), np.bool_)
    hysteresis_masks(ratio, lo, hi, valid if valid is not None else _NO_MASK,
                      prev if use_prev else _NO_MASK_U8, valid is not None, use_prev, weak, seeds)
    # the labels alone (OpenCV's statistics pass costs ~3x the labelling on
    # this grid); boxes and areas come with the seed test in one numba pass
    n, labels = cv2.connectedComponents(weak, connectivity=8)
    stats = np.empty((n, 5), np.int32)
    hit = np.zeros(n, np.bool_)
    label_stats(labels, seeds, stats, hit)
    if n <= 1:
        return np.zeros(ratio.shape, np.uint8), labels, stats
    hit &= stats[:, cv2.CC_STAT_AREA] >= min_px
    keep_label = np.where(hit, np.arange(n, dtype=np.int32), 0).astype(np.int32)
    mask = np.empty((h, w), np.uint8)
    relabel(labels, keep_label, mask)
    stats[~hit, cv2.CC_STAT_AREA] = 0  # dropped components: never candidates
    return mask, labels, stats


# placeholders for absent optional masks (numba needs an array of the right type)
_NO_MASK = np.zeros((1, 1), np.bool_)
_NO_MASK_U8 = np.zeros((1, 1), np.uint8)


@dataclass
class Candidate:
    """A fluorescent component that surrounds (part of) a dark core, coarse grid."""

    comp_index: int
    roi: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) on the analysis grid
    rim: np.ndarray  # (rh, rw) bool, rim part of the component (ducts beyond cut off)
    core: np.ndarray  # (rh, rw) bool
    component: np.ndarray  # (rh, rw) bool, whole fluorescent component
    width_px: float  # coarse estimate of rim width, analysis-grid pixels
    completeness: float  # fraction of the visible core outline within gap_px of the rim
    centroid: tuple[float, float]  # (x, y) analysis grid


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (2-D bool) with every region not 4-connected to its edge filled."""
    h, w = mask.shape
    pad = np.zeros((h + 2, w + 2), np.uint8)
    pad[1:-1, 1:-1] = mask
    ff = pad.copy()
    cv2.floodFill(ff, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    return (pad | (1 - ff))[1:-1, 1:-1].astype(bool)


def _hull(mask: np.ndarray) -> np.ndarray:
    """Filled convex hull of all of ``mask``'s outer contours (2-D bool in and out)."""
    cnts, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros(mask.shape, np.uint8)
    if cnts:
        hull = cv2.convexHull(np.concatenate(cnts))
        cv2.fillPoly(out, [hull], 1)
    return out.astype(bool)


def _seed_in_box(comp: np.ndarray, bx: int, by: int, bw: int, bh: int):
    """Where a core may start: ``comp``'s holes and its convex-hull deficiency.

    Equal to ``holes = _fill_holes(comp) & ~comp`` and ``seed = holes |
    (_hull(comp) & ~filled)`` on the whole ROI, but computed on the box
    (``bx, by, bw, bh`` in ROI coordinates) that holds ``comp`` grown by one
    pixel where the ROI allows: everything outside the box is background
    connected to the ROI's edge, so it is neither hole nor hull.

    Returns (seed, holes, box), seed and holes ROI-sized bool, ``box`` the
    crop as a (rows, cols) slice pair; or (None, None, None) when the seed is
    empty.
    """
    h, w = comp.shape
    cx0, cy0 = max(0, bx - 1), max(0, by - 1)
    cx1, cy1 = min(w, bx + bw + 1), min(h, by + bh + 1)
    sub = comp[cy0:cy1, cx0:cx1]
    f = _fill_holes(sub)
    hl = f & ~sub
    sd = hl | (_hull(sub) & ~f)
    if not sd.any():
        return None, None, None
    seed = np.zeros((h, w), bool)
    holes = np.zeros((h, w), bool)
    seed[cy0:cy1, cx0:cx1] = sd
    holes[cy0:cy1, cx0:cx1] = hl
    return seed, holes, (slice(cy0, cy1), slice(cx0, cx1))


_K3 = np.ones((3, 3), np.uint8)


def _box(*masks: np.ndarray, margin: int = 0) -> tuple[slice, slice]:
    """(rows, cols) slices of the box holding every pixel of ``masks`` (ROI-sized
    bool, C-contiguous), grown by ``margin`` within the ROI; the whole ROI
    when they are all empty.

    Why a distance transform may run on this box instead of the ROI: the
    3 x 3 chamfer distance is the cheapest 8-connected path, and the
    cheapest path between two pixels stays in their bounding box.  So with
    every source and every pixel that is read inside the box, the values are
    the same as on the ROI (a path leaving the box is longer by at least
    2 x 0.41 px), and with the columns aligned below, to the bit.
    For a transform *of* a mask (sources = outside it), a margin of 1 puts
    a ring of sources round it, nearer than any source beyond.
    """
    h, w = masks[0].shape
    X0, Y0, X1, Y1 = w, h, 0, 0
    for m in masks:
        x, y, bw, bh = cv2.boundingRect(m.view(np.uint8))
        if bw:
            X0, Y0, X1, Y1 = min(X0, x), min(Y0, y), max(X1, x + bw), max(Y1, y + bh)
    if X1 <= X0:
        return slice(0, h), slice(0, w)
    # both ends of the rows on the ROI's 16-column grid, counted from its own
    # end: OpenCV's float sums depend on a pixel's column in that grid, and
    # aligned the crop's values are the ROI's to the bit (see measure._aligned_crop)
    x0 = (max(0, X0 - margin) // DT_COLUMN_BLOCK) * DT_COLUMN_BLOCK
    x1 = w - ((w - min(w, X1 + margin)) // DT_COLUMN_BLOCK) * DT_COLUMN_BLOCK
    return slice(max(0, Y0 - margin), min(h, Y1 + margin)), slice(x0, x1)


def _covered(cb: np.ndarray, near: np.ndarray, gap_px: float) -> int:
    """Pixels of ``cb`` within ``gap_px`` (3 x 3 chamfer distance) of ``near``."""
    d_near = cv2.distanceTransform((~near).astype(np.uint8), cv2.DIST_L2, 3)
    return np.count_nonzero(cb & (d_near <= gap_px))


def boundary(mask: np.ndarray) -> np.ndarray:
    """Inner 8-connected boundary pixels of a bool mask."""
    m = mask.astype(np.uint8)
    er = cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask & ~er.astype(bool)


def mask_centroid(mask: np.ndarray) -> tuple[float, float]:
    """(mean x, mean y) of a bool mask's pixels, via image moments.

    The moments of a binary image are integer sums held exactly in float64,
    so this equals ``xs.mean(), ys.mean()`` of ``np.nonzero`` without
    building the index arrays.  They are taken on the mask's bounding box
    (a lesion fills ~1/4 of its ROI) and shifted back exactly:
    ``m10 = m10_box + x0 * m00`` is an integer sum too.
    """
    u = mask.view(np.uint8)
    x0, y0, bw, bh = cv2.boundingRect(u)
    m = cv2.moments(u[y0:y0 + bh, x0:x0 + bw] if bw else u, True)
    m00 = m["m00"]
    return (m["m10"] + x0 * m00) / m00, (m["m01"] + y0 * m00) / m00


def _nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a 2-D mask: same (ys, xs), same row-major order.

    Through the flat indices, which is ~6x cheaper than numpy's 2-D
    ``nonzero`` on an ROI (60 vs 9 us at 130 x 130).
    """
    return np.divmod(np.flatnonzero(mask), mask.shape[1])


def _circle_fit(ys: np.ndarray, xs: np.ndarray) -> Optional[tuple[float, float, float]]:
    """Algebraic (Kasa) least-squares circle through points: (cx, cy, r) or None.

    Solved from the 3 x 3 normal equations on at most ~600 points (centred
    for conditioning), which is ~30x cheaper than ``lstsq`` on all of them.
    """
    if ys.size < 6:
        return None
    if ys.size > 600:
        step = ys.size // 600 + 1
        ys, xs = ys[::step], xs[::step]
    A, b, mx, my = circle_fit_sums(np.ascontiguousarray(ys, dtype=np.float64),
                                   np.ascontiguousarray(xs, dtype=np.float64))
    try:
        D, E, F = np.linalg.solve(A, b).tolist()
    except np.linalg.LinAlgError:
        return None
    # (Python floats from here: the same IEEE doubles, without numpy's
    # per-scalar overhead)
    cx, cy = -D / 2.0, -E / 2.0
    r2 = cx * cx + cy * cy - F
    if not math.isfinite(r2) or r2 <= 0:
        return None
    return float(cx + mx), float(cy + my), math.sqrt(r2)


def find_candidates(ratio: np.ndarray, fluo: np.ndarray, labels: np.ndarray, stats: np.ndarray,
                    instr: np.ndarray, valid: Optional[np.ndarray], *, min_rim_px: float,
                    min_core_px: float, core_ratio: float, min_completeness: float,
                    max_width_px: float, gap_px: float = 2.0, core_open_px: float = 0.0,
                    relax: Optional[np.ndarray] = None) -> list[Candidate]:
    """Fluorescent components that enclose, fully or in part, a hypofluorescent core.

    The core is the dark (``ratio < core_ratio``) region reached from the
    component's holes or its convex-hull deficiency, so a partial rim (an arc)
    finds its core without a closed ring.  Ducts (a curve around ordinary
    liver), the gallbladder (a filled blob) and fluorescence without a dark
    core find no core and are not candidates.  Fluorescence attached to a rim
    but further from the core than the rim's own width (a duct running into
    it) is cut off.

    An instrument hides both channels: its pixels may connect the visible
    pieces of a core (they count as "could be core" for connectivity, never
    as core area), the core is kept inside the circle the arc lies on, and
    arcs that share a core (a rim cut in two by a tool) become one lesion.

    Parameters
    ----------
    ratio : (h, w) float32, NIR / local background on the analysis grid
    fluo : (h, w) uint8 0/1 fluorescence mask
    labels, stats : components of ``fluo``, from :func:`hysteresis_components`
        or ``cv2.connectedComponentsWithStats`` (a component of area 0 is skipped)
    instr : (h, w) bool instrument mask
    valid : optional (h, w) bool, usable pixels; the others are blocked
        like an instrument (they may hide a core, never count as core)
    relax : optional (h, w) bool; inside it (where a rim was tracked last
        frame) the completeness criterion is relaxed, so a rim does not
        flicker in and out of the rim class.
    """
    h, w = ratio.shape
    blocked = instr if valid is None else (instr | ~valid)
    fluo_b = fluo.astype(bool)
    out = _find_candidates(ratio, fluo_b, labels, stats, blocked, min_rim_px=min_rim_px,
                           min_core_px=min_core_px, core_ratio=core_ratio,
                           min_completeness=min_completeness, max_width_px=max_width_px,
                           gap_px=gap_px, core_open_px=core_open_px, relax=relax)
    out = _attach_hidden_arcs(out, labels, stats, blocked, gap_px, min_rim_px)
    out = _merge_shared_cores(out, (h, w), blocked, gap_px)
    return [c for c in out
            if c.completeness >= _completeness_needed(relax, c.roi, c.rim, min_completeness)]


def _find_candidates(ratio, fluo_b, labels, stats, blocked, *, min_rim_px, min_core_px, core_ratio,
                     min_completeness, max_width_px, gap_px, core_open_px, relax) -> list[Candidate]:
    """Candidates of :func:`find_candidates`, one fluorescent component at a time.

    Each component goes through the steps below, the cheap rejections
    first (a component with nothing dark in its box or where a core would
    start -- a duct, the gallbladder, a spill -- costs no distance
    transform): core seed -> arc circle -> dark core -> band hugging the
    core -> rim width -> rim and completeness.  Arguments as in
    :func:`find_candidates`; ``fluo_b`` is the fluorescence mask as bool,
    ``blocked`` the instrument mask or'ed with the invalid pixels.
    """
    h, w = ratio.shape
    out: list[Candidate] = []
    # pixels that may be core, made on the first component that gets that
    # far, once for the grid (the ROIs below overlap and together cover it ~2x)
    dark_all = None
    for i in range(1, stats.shape[0]):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area < min_rim_px:
            continue
        if dark_all is None:
            dark_all = (ratio < core_ratio) & ~fluo_b & ~blocked
        # a core lies (at least partly) inside the arc's bounding box: nothing
        # dark there (gallbladder, duct, spill) -> not a rim, at no further cost
        if not dark_all[y:y + bh, x:x + bw].any():
            continue
        x0, y0, x1, y1 = _candidate_roi(x, y, bw, bh, w, h)
        comp = labels[y0:y1, x0:x1] == i
        seed, holes, cbox = _seed_in_box(comp, x - x0, y - y0, bw, bh)
        if seed is None:
            continue
        # (views of the grid-wide masks, no copies)
        blk = blocked[y0:y1, x0:x1]
        dark = dark_all[y0:y1, x0:x1]
        # nothing dark where a core would start: a duct, the gallbladder, a spill
        if not (dark & seed).any():
            continue

        inside = _arc_circle(comp, dark, seed, cbox, max(bw, bh), max_width_px, gap_px)
        core_ext = _dark_core(comp, dark, blk, seed, holes, inside)
        if core_ext is None:
            continue
        core = core_ext & ~blk
        core_area = np.count_nonzero(core)
        hidden = np.count_nonzero(core_ext & blk)
        if core_area + hidden < min_core_px or core_area < 0.25 * min_core_px:
            continue
        if core_open_px > 0 and not _is_blob(core, core_open_px, min_core_px):
            continue
        # a dark region much larger than the arc's reach is not this lesion's core
        if not holes.any() and core_area > 8 * area and core_area > 0.9 * np.count_nonzero(_hull(comp | core)):
            continue

        bx, d_core, near = _band_near_core(comp, core, max_width_px)
        cb = _visible_outline(core, blk)
        cov_px = _gap_coverage(cb, near, gap_px)
        if cov_px == 0:
            continue
        width = _rim_width(near, cb, gap_px, cov_px)
        # the rim: the component within the rim's width (and the gap) of the
        # core; a duct running into it is cut off there
        rim = np.zeros(comp.shape, bool)
        rim[bx] = comp[bx] & (d_core <= width + gap_px + 1.0)
        completeness = _completeness(rim, cb, gap_px)
        # a piece of a rim cut by a tool shares its core with the other
        # pieces: its completeness is judged after they are merged
        if (completeness < _completeness_needed(relax, (x0, y0, x1, y1), rim, min_completeness)
                and not hidden):
            continue
        if np.count_nonzero(rim) < min_rim_px:
            continue
        mx, my = mask_centroid(rim | core)
        out.append(Candidate(i, (x0, y0, x1, y1), rim, core, comp, width, completeness,
                             (float(mx) + x0, float(my) + y0)))
    return out


def _candidate_roi(x: int, y: int, bw: int, bh: int, w: int, h: int) -> tuple[int, int, int, int]:
    """ROI (x0, y0, x1, y1), exclusive ends, round a component's box (x, y, bw, bh).

    The box is grown by half its longer side (+3 px) on every side, clipped
    to the (h, w) grid: room for the part of a core that lies beyond a
    partial arc's box.
    """
    pad = max(bw, bh) // 2 + 3
    return max(0, x - pad), max(0, y - pad), min(w, x + bw + pad), min(h, y + bh + pad)


def _arc_circle(comp: np.ndarray, dark: np.ndarray, seed: np.ndarray, cbox: tuple[slice, slice],
                extent: int, max_width_px: float, gap_px: float) -> Optional[np.ndarray]:
    """Disk the core must lie in: inside the circle the arc runs along.

    The circle is fitted to the part of the arc within ``0.4 * max_width_px
    + gap_px`` (~3 mm + the gap) of the dark seed, so a gallbladder or duct
    merged with the rim, which lies further out, does not bend it.  The
    seed and the arc both lie in the component's box ``cbox``, so the
    distance transform runs on that box only (exact, see :func:`_box`).

    Parameters
    ----------
    comp, dark, seed : (rh, rw) bool ROI masks (component, may-be-core, core seed)
    cbox : (rows, cols) slices of the component's box in the ROI
    extent : longer side of the component's box, px; a circle of radius
        2 x this or more is no arc's circle (a nearly straight duct)
    max_width_px, gap_px : widest rim and core-rim gap, analysis-grid px

    Returns
    -------
    (rh, rw) bool disk of radius ``1.15 r + gap_px + 1`` round the fitted
    circle, or None when there is no usable circle (no constraint).
    """
    ry, rx = cbox
    d_seed = cv2.distanceTransform((~(dark[cbox] & seed[cbox])).astype(np.uint8), cv2.DIST_L2, 3)
    cys, cxs = _nonzero(comp[cbox] & (d_seed <= 0.4 * max_width_px + gap_px))
    circ = _circle_fit(cys + ry.start, cxs + rx.start)
    if circ is None or circ[2] >= 2.0 * extent:
        return None
    cx, cy, rad = circ
    inside = np.zeros(comp.shape, np.uint8)
    cv2.circle(inside, (int(round(cx)), int(round(cy))), int(round(1.15 * rad + gap_px + 1)), 1, -1)
    return inside.astype(bool)


def _dark_core(comp: np.ndarray, dark: np.ndarray, blk: np.ndarray, seed: np.ndarray,
               holes: np.ndarray, inside: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """The dark region(s) reached from the seed, closed and hole-filled.

    Instrument pixels count as "could be core" for connectivity (they may
    join the visible pieces of a core), and outside the arc's holes the
    region is kept within ``inside``.  A 4-connected dark region is kept
    when the seed covers at least 2 px and 5 % of it.  Small gaps in the
    kept region (noise, specks of scattered light) are closed and its holes
    filled, on its box grown by 2 px: beyond 1 px the closing is empty
    anyway, and the empty ring round it connects to the ROI's edge as on
    the whole ROI (see :func:`_seed_in_box`).

    Parameters
    ----------
    comp, dark, blk, seed, holes : (rh, rw) bool ROI masks (component,
        may-be-core, instrument/invalid, core seed, the component's holes)
    inside : (rh, rw) bool from :func:`_arc_circle`, or None

    Returns
    -------
    (rh, rw) bool core including its parts hidden by ``blk`` (never on
    ``comp``), or None when no dark region is reached from the seed.
    """
    dark_ext = dark | blk
    if inside is not None:
        dark_ext &= inside | holes
    nd, dlab = cv2.connectedComponents(dark_ext.astype(np.uint8), connectivity=4)
    overlap = np.bincount(dlab[seed & dark], minlength=nd)
    overlap[0] = 0
    dark_area = np.bincount(dlab[dark], minlength=nd)
    ids = np.nonzero(overlap >= np.maximum(2, 0.05 * dark_area))[0]
    if ids.size == 0:
        return None
    # (usually one dark region is kept: a comparison, not a gather)
    if ids.size == 1:
        sel = dlab == ids[0]
    else:
        keep = np.zeros(nd, bool)
        keep[ids] = True
        sel = keep[dlab]
    bs = _box(sel, margin=2)
    core_ext = np.zeros(comp.shape, bool)
    core_ext[bs] = _fill_holes(cv2.morphologyEx(sel[bs].view(np.uint8), cv2.MORPH_CLOSE,
                                                _K3).astype(bool)) & ~comp[bs]
    return core_ext


def _is_blob(core: np.ndarray, core_open_px: float, min_core_px: float) -> bool:
    """Whether a core is a blob, not a sliver.

    Thin dark strips (a tool's edge blended with liver on the coarse grid,
    a gap between two ducts) have (almost) no pixels deeper than
    ``core_open_px`` (~0.6 mm) inside them, i.e. they vanish when eroded
    by a disk of that radius; a blob keeps at least ``0.1 * min_core_px``.

    ``core`` : (rh, rw) bool, C-contiguous; the distance transform runs on
    its box grown by 1 px (exact, see :func:`_box`).
    """
    bc = _box(core, margin=1)
    dcore = cv2.distanceTransform(core[bc].view(np.uint8), cv2.DIST_L2, 3)
    return np.count_nonzero(dcore > core_open_px) >= 0.1 * min_core_px


def _band_near_core(comp: np.ndarray, core: np.ndarray, max_width_px: float):
    """The part of the component within ``max_width_px`` of the visible core.

    The distance is to the visible core only, not to its hidden part:
    fluorescence next to a tool (such as a gallbladder it reaches into) is
    not this rim.

    Parameters
    ----------
    comp, core : (rh, rw) bool ROI masks, C-contiguous

    Returns
    -------
    bx : (rows, cols) slices of the box holding ``core`` and ``comp``
    d_core : float32 distance to the core (3 x 3 chamfer, px) on ``bx``;
        kept to cut the rim from the component once its width is known
    near : (rh, rw) bool band, zero outside ``bx``
    """
    bx = _box(core, comp)
    d_core = cv2.distanceTransform((~core[bx]).astype(np.uint8), cv2.DIST_L2, 3)
    near = np.zeros(comp.shape, bool)
    near[bx] = comp[bx] & (d_core <= max_width_px)
    return bx, d_core, near


def _visible_outline(core: np.ndarray, blk: np.ndarray) -> np.ndarray:
    """(rh, rw) bool: the core's inner boundary away from tools (not next to ``blk``).

    Computed on the core's box grown by 1 px, which holds the outline and
    every 3 x 3 neighbourhood it reads; zero elsewhere.
    """
    bc = _box(core, margin=1)
    cb = np.zeros(core.shape, bool)
    cb[bc] = boundary(core[bc]) & ~(cv2.dilate(blk[bc].view(np.uint8), _K3) > 0)
    return cb


def _gap_coverage(cb: np.ndarray, near: np.ndarray, gap_px: float) -> Optional[int]:
    """Outline pixels within ``gap_px`` of the band, when not obviously > 0.

    Between the dark core and the fluorescent rim lies a blurred transition
    that is neither: a gap of ``gap_px`` is allowed.  Usually the band
    touches the outline (an 8-neighbour is at most 1.37 px away, within any
    ``gap_px >= 1.5``), which a 3 x 3 dilation shows at a fraction of the
    distance transform's cost.

    Returns None when the band touches the outline (coverage > 0, counted
    only if needed, see :func:`_rim_width`), else the count (0: no rim).
    """
    if gap_px < 1.5 or not (cb & (cv2.dilate(near.view(np.uint8), _K3) > 0)).any():
        return _covered(cb, near, gap_px)
    return None


def _rim_width(near: np.ndarray, cb: np.ndarray, gap_px: float, cov_px: Optional[int]) -> float:
    """Coarse rim width, analysis-grid px.

    Twice the median distance-to-edge along the ridge of the band ``near``
    hugging the core: a gallbladder or duct touching the rim has a short
    ridge, so it barely moves the median.  Without a ridge, the band's area
    per covered outline pixel (``cov_px`` from :func:`_gap_coverage`,
    counted here when it was None).  The transform runs on the band's box
    grown by 1 px (exact, see :func:`_box`).
    """
    bn = _box(near, margin=1)
    near_b = np.ascontiguousarray(near[bn])
    dt = cv2.distanceTransform(near_b.view(np.uint8), cv2.DIST_L2, 3)
    # (ridge = near & (dt >= dilate3x3(dt) - 0.5) and its median in one numba pass)
    med, n_ridge = ridge_median(near_b, dt)
    if n_ridge:
        return 2.0 * med
    if cov_px is None:
        cov_px = _covered(cb, near, gap_px)
    return float(np.count_nonzero(near)) / cov_px


def _completeness(rim: np.ndarray, cb: np.ndarray, gap_px: float) -> float:
    """Fraction (0..1) of the visible core outline ``cb`` within ``gap_px`` of ``rim``.

    On the box holding both (exact, see :func:`_box`); 0 without an outline.
    """
    br = _box(rim, cb)
    d_rim = cv2.distanceTransform((~rim[br]).astype(np.uint8), cv2.DIST_L2, 3)
    return float(np.count_nonzero(cb[br] & (d_rim <= gap_px))) / max(1, np.count_nonzero(cb))


def _completeness_needed(relax: Optional[np.ndarray], roi: tuple[int, int, int, int],
                         rim: np.ndarray, min_completeness: float) -> float:
    """``min_completeness``, relaxed to 60 % where the rim touches ``relax``.

    ``relax`` : (h, w) bool grid mask of last frame's rims (or None), so a
    tracked rim does not flicker in and out of the rim class; ``rim`` is
    (rh, rw) bool in ``roi`` = (x0, y0, x1, y1).
    """
    x0, y0, x1, y1 = roi
    if relax is not None and relax[y0:y1, x0:x1][rim].any():
        return 0.6 * min_completeness
    return min_completeness


def _attach_hidden_arcs(cands: list[Candidate], labels: np.ndarray, stats: np.ndarray,
                        blocked: np.ndarray, gap_px: float, min_rim_px: float) -> list[Candidate]:
    """Add fluorescent pieces cut off a rim by an instrument to that rim.

    A piece that touches the instrument, is no candidate of its own (its
    core is behind the tool) and lies on the circle of a found rim (90 % of
    its pixels within half the rim's width plus the gap and 6 % of the
    radius: cores are not perfect circles) is the same rim.
    """
    if not cands or not blocked.any():
        return cands
    used = {c.comp_index for c in cands}
    near_block = cv2.dilate(blocked.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    # each rim's circle: from the visible outline of its core (many points
    # round a large part of the circle) grown by half the rim width; from the
    # rim itself when the core shows too little outline
    # (both are tried: a core mostly behind the tool shows too little outline,
    # a short thick arc gives a poor circle of its own).  Fitted only once a
    # piece touching the tool is found (most frames with a tool have none).
    circles = None

    def rim_circles():
        out = []
        for c in cands:
            x0, y0, x1, y1 = c.roi
            # (on the core's box grown by 1: the same boundary, the same points
            # in the same order; likewise the rim's points from its box)
            by, bx = _box(c.core, margin=1)
            cb = boundary(c.core[by, bx]) & ~near_block[y0 + by.start:y0 + by.stop, x0 + bx.start:x0 + bx.stop]
            ys, xs = _nonzero(cb)
            circ = _circle_fit(ys + (y0 + by.start), xs + (x0 + bx.start)) if ys.size >= 12 else None
            mine = []
            if circ is not None:
                mine.append((circ[0], circ[1], circ[2] + 0.5 * c.width_px))
            by, bx = _box(c.rim)
            ys, xs = _nonzero(c.rim[by, bx])
            circ = _circle_fit(ys + (y0 + by.start), xs + (x0 + bx.start))
            if circ is not None:
                mine.append(circ)
            out.append(mine)
        return out

    extra: list[Candidate] = []
    for i in range(1, stats.shape[0]):
        if i in used:
            continue
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area < 0.25 * min_rim_px:
            continue
        comp = labels[y:y + bh, x:x + bw] == i
        if not (comp & near_block[y:y + bh, x:x + bw]).any():
            continue
        if circles is None:
            circles = rim_circles()
        ys, xs = _nonzero(comp)
        ys, xs = ys + y, xs + x
        for c, mine in zip(cands, circles):
            hit = False
            for cx, cy, rad in mine:
                tol = 0.5 * c.width_px + gap_px + 0.06 * rad
                d = np.abs(np.hypot(xs - cx, ys - cy) - rad)
                # on the ring, no longer than the rim's circle allows, and no
                # thicker than the rim (a gallbladder or duct end next to the tool is not)
                if (np.mean(d <= tol) >= 0.9 and max(bw, bh) <= 2.2 * rad
                        and area <= 1.5 * np.hypot(bw, bh) * (c.width_px + gap_px)):
                    hit = True
                    break
            if hit:
                extra.append(Candidate(c.comp_index, (x, y, x + bw, y + bh), comp, np.zeros_like(comp),
                                       comp, c.width_px, c.completeness, c.centroid))
                break
    if not extra:
        return cands
    # merge each piece into the rim it belongs to
    out = []
    for c in cands:
        members = [c] + [e for e in extra if e.comp_index == c.comp_index]
        out.append(c if len(members) == 1 else _union(members))
    return out


def _merge_shared_cores(cands: list[Candidate], shape, blocked: Optional[np.ndarray] = None,
                        gap_px: float = 2.0) -> list[Candidate]:
    """Merge candidates whose cores overlap (one rim cut into arcs by a tool)."""
    if len(cands) < 2:
        return cands
    h, w = shape
    parent = list(range(len(cands)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a in range(len(cands)):
        for b in range(a + 1, len(cands)):
            ca, cb_ = cands[a], cands[b]
            ax0, ay0, ax1, ay1 = ca.roi
            bx0, by0, bx1, by1 = cb_.roi
            ox0, oy0, ox1, oy1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
            if ox0 >= ox1 or oy0 >= oy1:
                continue
            sa = ca.core[oy0 - ay0:oy1 - ay0, ox0 - ax0:ox1 - ax0]
            sb = cb_.core[oy0 - by0:oy1 - by0, ox0 - bx0:ox1 - bx0]
            inter = np.count_nonzero(sa & sb)
            if inter > 0.2 * min(np.count_nonzero(ca.core), np.count_nonzero(cb_.core)):
                parent[find(a)] = find(b)
    groups: dict = {}
    for k in range(len(cands)):
        groups.setdefault(find(k), []).append(cands[k])
    return [m[0] if len(m) == 1 else _union(m, blocked, gap_px) for m in groups.values()]


def _union(members: list[Candidate], blocked: Optional[np.ndarray] = None,
           gap_px: float = 2.0) -> Candidate:
    """One candidate from several (rim pieces and cores pasted into a joint ROI).

    With ``blocked`` (the whole analysis grid) the completeness is measured
    again on the joint core's visible outline.
    """
    x0 = min(c.roi[0] for c in members)
    y0 = min(c.roi[1] for c in members)
    x1 = max(c.roi[2] for c in members)
    y1 = max(c.roi[3] for c in members)
    rim = np.zeros((y1 - y0, x1 - x0), bool)
    core = np.zeros_like(rim)
    comp = np.zeros_like(rim)
    for c in members:
        cx0, cy0, cx1, cy1 = c.roi
        sl = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
        rim[sl] |= c.rim
        core[sl] |= c.core
        comp[sl] |= c.component
    core &= ~rim
    area = [float(np.count_nonzero(c.rim)) for c in members]
    width = float(np.average([c.width_px for c in members], weights=area))
    compl = float(sum(c.completeness * a for c, a in zip(members, area)) / max(sum(area), 1.0))
    if blocked is not None and core.any():
        blk = cv2.dilate(blocked[y0:y1, x0:x1].astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        cb = boundary(core) & ~blk
        if cb.any():
            d_rim = cv2.distanceTransform((~rim).astype(np.uint8), cv2.DIST_L2, 3)
            compl = float(np.count_nonzero(cb & (d_rim <= gap_px))) / np.count_nonzero(cb)
    mx, my = mask_centroid(rim | core)
    return Candidate(members[0].comp_index, (x0, y0, x1, y1), rim, core, comp, width, compl,
                     (float(mx) + x0, float(my) + y0))
