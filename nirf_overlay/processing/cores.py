"""Per fluorescent component: the dark core it encloses, and the rim round that core.

Each component of the coarse fluorescence mask goes through the steps
below, the cheap rejections first (a component with nothing dark in its
box or where a core would start -- a duct, the gallbladder, a spill --
costs no distance transform): core seed (grown across the gap for an arc a
tool cuts short) -> arc circle -> dark core -> band
hugging the core -> rim width -> rim and completeness.  The thresholds in
pixels come from :func:`~.segment.find_candidates`; the fixed fractions are
:data:`~.rules.RIM_RULES`.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ._kernels.segment import ridge_median, seeded_regions
from .band import cut_to_band
from .candidates import Candidate, completeness_needed
from .masks import K3, boundary, box, circle_fit, fill_holes, hull, mask_centroid, nonzero
from .rules import RIM_RULES


def component_candidates(ratio, fluo_b, labels, stats, blocked, *, min_rim_px, min_core_px,
                         core_ratio, min_completeness, max_width_px, gap_px, core_open_px,
                         relax) -> list[Candidate]:
    """The components of the fluorescence mask that enclose a dark core, as candidates.

    One component at a time, through the steps of the module docstring.
    Arguments as in :func:`~.segment.find_candidates`; ``fluo_b`` is the
    fluorescence mask as bool, ``blocked`` the instrument mask or'ed with
    the invalid pixels.  A piece of a rim cut off by a tool may be kept with
    too little completeness: it is judged again once merged
    (:mod:`.arcs`).
    """
    h, w = ratio.shape
    out: list[Candidate] = []
    # pixels that may be core, made on the first component that gets that
    # far, once for the grid (the ROIs below overlap and together cover it ~2x)
    dark_all = None
    reach = int(np.ceil(gap_px))
    for i in range(1, stats.shape[0]):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area < min_rim_px:
            continue
        if dark_all is None:
            dark_all = (ratio < core_ratio) & ~fluo_b & ~blocked
        # a core lies (at least partly) inside the arc's bounding box, or
        # across the gap from an arc a tool cuts short (a tool in its box):
        # nothing dark there (gallbladder, duct, spill) -> not a rim, at no
        # further cost
        in_box = dark_all[y:y + bh, x:x + bw].any()
        if not in_box and not (
                blocked[max(0, y - 1):y + bh + 1, max(0, x - 1):x + bw + 1].any()
                and dark_all[max(0, y - reach):y + bh + reach, max(0, x - reach):x + bw + reach].any()):
            continue
        x0, y0, x1, y1 = _candidate_roi(x, y, bw, bh, w, h)
        comp = labels[y0:y1, x0:x1] == i
        seed, holes, cbox = _seed_in_box(comp, x - x0, y - y0, bw, bh)
        if seed is None:
            continue
        # (views of the grid-wide masks, no copies)
        blk = blocked[y0:y1, x0:x1]
        dark = dark_all[y0:y1, x0:x1]
        core_ext = _reached_core(comp, dark, blk, seed, holes, cbox, max(bw, bh), max_width_px,
                                 gap_px, in_box)
        if core_ext is None:
            continue
        core = core_ext & ~blk
        core_area = np.count_nonzero(core)
        hidden = np.count_nonzero(core_ext & blk)
        if core_area + hidden < min_core_px or core_area < RIM_RULES.core_visible_fraction * min_core_px:
            continue
        if core_open_px > 0 and not _is_blob(core, _core_depth(core_open_px, relax, (x0, y0), comp,
                                                             core_area, hidden), min_core_px):
            continue
        # a dark region much larger than the arc's reach is not this lesion's core
        if (not holes.any() and core_area > RIM_RULES.core_max_area_per_rim * area
                and core_area > RIM_RULES.core_max_hull_fill * np.count_nonzero(hull(comp | core))):
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
        rim_b = comp[bx] & (d_core <= width + gap_px + 1.0)
        # ... and beyond the rim's own band round the core, direction by direction
        # (not beside a tool, where the core is hidden)
        cut_to_band(rim_b, d_core, np.ascontiguousarray(core[bx]), width,
                    np.ascontiguousarray(blk[bx]))
        rim[bx] = rim_b
        completeness = _completeness(rim, cb, gap_px)
        # a piece of a rim cut by a tool shares its core with the other
        # pieces: its completeness is judged after they are merged
        if (completeness < completeness_needed(relax, (x0, y0, x1, y1), rim, min_completeness)
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


def _seed_in_box(comp: np.ndarray, bx: int, by: int, bw: int, bh: int):
    """Where a core may start: ``comp``'s holes and its convex-hull deficiency.

    Equal to ``holes = fill_holes(comp) & ~comp`` and ``seed = holes |
    (hull(comp) & ~filled)`` on the whole ROI, but computed on the box
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
    f = fill_holes(sub)
    hl = f & ~sub
    sd = hl | (hull(sub) & ~f)
    if not sd.any():
        return None, None, None
    seed = np.zeros((h, w), bool)
    holes = np.zeros((h, w), bool)
    seed[cy0:cy1, cx0:cx1] = sd
    holes[cy0:cy1, cx0:cx1] = hl
    return seed, holes, (slice(cy0, cy1), slice(cx0, cx1))


def _reached_core(comp, dark, blk, seed, holes, cbox, extent, max_width_px, gap_px, in_box):
    """The dark core reached from the arc's seed, else across the gap beside a tool.

    First from ``seed`` (when there is dark in the component's box,
    ``in_box``).  When that finds none and the arc touches the tool (which
    cut it short), from the seed grown across the gap
    (:func:`_seed_across_gap`), kept only when the core it reaches is in
    part hidden by the tool: a core in full view lies within the seed of its
    arc, and the dark a few pixels beyond a fluorescent blob in full view (a
    gallbladder's, the frame's dark corner) is not a core.  Arguments as in
    :func:`_arc_circle` and :func:`_dark_core`; returns as :func:`_dark_core`.
    """
    if in_box:
        core_ext = _core_from(comp, dark, blk, seed, cbox, holes, extent, max_width_px, gap_px)
        if core_ext is not None:
            return core_ext
    # (an arc the tool cuts short touches it; asked only once the seed found no core,
    # which on most components it does)
    if not (comp[cbox] & (cv2.dilate(blk[cbox].view(np.uint8), K3) > 0)).any():
        return None
    sd, sbox = _seed_across_gap(seed, comp, cbox, gap_px)
    if sd is None:
        return None
    core_ext = _core_from(comp, dark, blk, sd, sbox, holes, extent, max_width_px, gap_px)
    return core_ext if core_ext is not None and (core_ext & blk).any() else None


def _core_from(comp, dark, blk, sd, sbox, holes, extent, max_width_px, gap_px):
    """The dark core reached from seed ``sd`` (box ``sbox``), or None: nothing dark where a
    core would start (a duct, the gallbladder, a spill) or no core reached."""
    if not (dark & sd).any():
        return None
    inside = _arc_circle(comp, dark, sd, sbox, extent, max_width_px, gap_px)
    return _dark_core(comp, dark, blk, sd, holes, inside)


def _seed_across_gap(seed: np.ndarray, comp: np.ndarray, cbox: tuple[slice, slice],
                     gap_px: float):
    """The seed grown across the core-rim gap, for a short arc: (seed, box) or (None, None).

    A short arc's convex-hull deficiency is a shallow sliver along its chord;
    on a blurred rim it can lie wholly in the transition between rim and
    core (``gap_px`` wide, neither dark nor fluorescent), so it meets no core
    or too little of it (``core_seed_fraction``).  Grown by the gap on the
    concave side (never into ``comp``), it reaches the core the rim
    encloses.  Tried only when the seed itself finds no core.  ``box`` is
    ``cbox`` grown by the gap.
    """
    r = int(np.ceil(gap_px))
    ry, rx = cbox
    h, w = comp.shape
    by = slice(max(0, ry.start - r), min(h, ry.stop + r))
    bx = slice(max(0, rx.start - r), min(w, rx.stop + r))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    grown = np.zeros(comp.shape, bool)
    grown[by, bx] = (cv2.dilate(seed[by, bx].view(np.uint8), k) > 0) & ~comp[by, bx]
    if np.count_nonzero(grown) == np.count_nonzero(seed):
        return None, None
    return grown, (by, bx)


def _arc_circle(comp: np.ndarray, dark: np.ndarray, seed: np.ndarray, cbox: tuple[slice, slice],
                extent: int, max_width_px: float, gap_px: float) -> Optional[np.ndarray]:
    """Disk the core must lie in: inside the circle the arc runs along.

    The circle is fitted to the part of the arc within ``arc_fit_reach *
    max_width_px + gap_px`` (~3 mm + the gap) of the dark seed, so a
    gallbladder or duct merged with the rim, which lies further out, does
    not bend it (``arc_*`` are :data:`~.rules.RIM_RULES`).  The
    seed and the arc both lie in the component's box ``cbox``, so the
    distance transform runs on that box only (exact, see :func:`box`).

    Parameters
    ----------
    comp, dark, seed : (rh, rw) bool ROI masks (component, may-be-core, core seed)
    cbox : (rows, cols) slices of the component's box in the ROI
    extent : longer side of the component's box, px; a circle of radius
        ``arc_max_radius`` x this or more is no arc's circle (a nearly
        straight duct)
    max_width_px, gap_px : widest rim and core-rim gap, analysis-grid px

    Returns
    -------
    (rh, rw) bool disk of radius ``arc_core_radius r + gap_px + 1`` round the fitted
    circle, or None when there is no usable circle (no constraint).
    """
    ry, rx = cbox
    d_seed = cv2.distanceTransform((~(dark[cbox] & seed[cbox])).astype(np.uint8), cv2.DIST_L2, 3)
    cys, cxs = nonzero(comp[cbox] & (d_seed <= RIM_RULES.arc_fit_reach * max_width_px + gap_px))
    circ = circle_fit(cys + ry.start, cxs + rx.start)
    if circ is None or circ[2] >= RIM_RULES.arc_max_radius * extent:
        return None
    cx, cy, rad = circ
    inside = np.zeros(comp.shape, np.uint8)
    radius = int(round(RIM_RULES.arc_core_radius * rad + gap_px + 1))
    cv2.circle(inside, (int(round(cx)), int(round(cy))), radius, 1, -1)
    return inside.astype(bool)


def _dark_core(comp: np.ndarray, dark: np.ndarray, blk: np.ndarray, seed: np.ndarray,
               holes: np.ndarray, inside: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """The dark region(s) reached from the seed, closed and hole-filled.

    Instrument pixels count as "could be core" for connectivity (they may
    join the visible pieces of a core), and outside the arc's holes the
    region is kept within ``inside``.  A 4-connected dark region is kept
    when the seed covers at least ``RIM_RULES.core_seed_min_px`` of it and
    ``core_seed_fraction`` (5 %) of it.  Small gaps in the
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
    # (one numba pass from the seed's pixels: the regions a labelling of the
    # whole ROI and per-label counts would keep)
    sel = np.zeros(comp.shape, bool)
    if not seeded_regions(dark_ext, dark, seed, RIM_RULES.core_seed_min_px,
                          RIM_RULES.core_seed_fraction, sel):
        return None
    bs = box(sel, margin=2)
    core_ext = np.zeros(comp.shape, bool)
    core_ext[bs] = fill_holes(cv2.morphologyEx(sel[bs].view(np.uint8), cv2.MORPH_CLOSE,
                                               K3).astype(bool)) & ~comp[bs]
    return core_ext


def _core_depth(core_open_px: float, relax: Optional[np.ndarray], at: tuple[int, int],
                comp: np.ndarray, core_area: int, hidden: int) -> float:
    """Least core depth for :func:`_is_blob`: ``core_open_px``, or less for a tracked rim
    whose core the tool hides for the most part (``RIM_RULES.tracked_core_open``).

    Beside a tool that lies over most of a core, what shows of it is a crescent
    between the tool and the arc; on the frame before, the same lesion was a rim
    (``relax``, last frame's rims on the grid, touches ``comp``, whose ROI
    starts at ``at`` = (x0, y0)).
    """
    if relax is None or hidden <= core_area:
        return core_open_px
    x0, y0 = at
    h, w = comp.shape
    if not relax[y0:y0 + h, x0:x0 + w][comp].any():
        return core_open_px
    return RIM_RULES.tracked_core_open * core_open_px


def _is_blob(core: np.ndarray, core_open_px: float, min_core_px: float) -> bool:
    """Whether a core is a blob, not a sliver.

    Thin dark strips (a tool's edge blended with liver on the coarse grid,
    a gap between two ducts) have (almost) no pixels deeper than
    ``core_open_px`` (~0.6 mm) inside them, i.e. they vanish when eroded
    by a disk of that radius; a blob keeps at least
    ``RIM_RULES.core_blob_fraction * min_core_px``.

    ``core`` : (rh, rw) bool, C-contiguous; the distance transform runs on
    its box grown by 1 px (exact, see :func:`box`).
    """
    bc = box(core, margin=1)
    dcore = cv2.distanceTransform(core[bc].view(np.uint8), cv2.DIST_L2, 3)
    return np.count_nonzero(dcore > core_open_px) >= RIM_RULES.core_blob_fraction * min_core_px


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
    bx = box(core, comp)
    d_core = cv2.distanceTransform((~core[bx]).astype(np.uint8), cv2.DIST_L2, 3)
    near = np.zeros(comp.shape, bool)
    near[bx] = comp[bx] & (d_core <= max_width_px)
    return bx, d_core, near


def _visible_outline(core: np.ndarray, blk: np.ndarray) -> np.ndarray:
    """(rh, rw) bool: the core's inner boundary away from tools (not next to ``blk``).

    Computed on the core's box grown by 1 px, which holds the outline and
    every 3 x 3 neighbourhood it reads; zero elsewhere.
    """
    bc = box(core, margin=1)
    cb = np.zeros(core.shape, bool)
    cb[bc] = boundary(core[bc]) & ~(cv2.dilate(blk[bc].view(np.uint8), K3) > 0)
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
    if gap_px < 1.5 or not (cb & (cv2.dilate(near.view(np.uint8), K3) > 0)).any():
        return _covered(cb, near, gap_px)
    return None


def _covered(cb: np.ndarray, near: np.ndarray, gap_px: float) -> int:
    """Pixels of ``cb`` within ``gap_px`` (3 x 3 chamfer distance) of ``near``."""
    d_near = cv2.distanceTransform((~near).astype(np.uint8), cv2.DIST_L2, 3)
    return np.count_nonzero(cb & (d_near <= gap_px))


def _rim_width(near: np.ndarray, cb: np.ndarray, gap_px: float, cov_px: Optional[int]) -> float:
    """Coarse rim width, analysis-grid px.

    Twice the median distance-to-edge along the ridge of the band ``near``
    hugging the core: a gallbladder or duct touching the rim has a short
    ridge, so it barely moves the median.  Without a ridge, the band's area
    per covered outline pixel (``cov_px`` from :func:`_gap_coverage`,
    counted here when it was None).  The transform runs on the band's box
    grown by 1 px (exact, see :func:`box`).
    """
    bn = box(near, margin=1)
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

    On the box holding both (exact, see :func:`box`); 0 without an outline.
    """
    br = box(rim, cb)
    d_rim = cv2.distanceTransform((~rim[br]).astype(np.uint8), cv2.DIST_L2, 3)
    return float(np.count_nonzero(cb[br] & (d_rim <= gap_px))) / max(1, np.count_nonzero(cb))
