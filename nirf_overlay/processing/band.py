"""The rim's radial band: a rim lies within its own width of the core it encloses.

A bile duct (or the gallbladder) that runs into a rim merges with it in the
fluorescence; above half maximum it is as much "rim" to the edge placement
as the rim itself.  What tells them apart is the geometry: a rim encloses a
dark core and lies within its width of it; a duct is a tube with liver on
both sides that leaves the rim's outer edge.  :func:`cut_to_band` keeps the
rim pixels within the rim's radial band, direction by direction round the
core: from the band's inner edge in that direction (its pixels' least
distance to the core, smoothed over neighbouring directions; a duct lies
outside, so it does not move it) out to the measured thickness plus a
tolerance (``RIM_RULES.band_*``).  Pixels beyond are cut, wherever the duct
meets the rim and at whatever angle, and however bright it is.  A duct running
along the rim's outside (tangent) lies within the band seen over a long arc;
it widens the band beyond the rim's own radial extent (the median over a wide
arc), and there the rim is cut at its own outer edge.

The rim's edges are placed at half its local peak (:mod:`.refine`); a duct
brighter than the rim raises that peak beside it, so :func:`cap_to_rim_peak`
takes the peak from the rim itself: the inner half of its band, or along
the rim where a neighbour's profile rises beyond it.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ._kernels.background import outline_near_blocked
from ._kernels.band import cap_peak, circular_median, direction_quantile
from .gaps import angle_bins
from .masks import circle_fit, complete_core, mask_centroid, nonzero
from .rules import RIM_RULES


def cut_to_band(rim: np.ndarray, d_core: np.ndarray, core: np.ndarray, thickness: float,
                blocked: Optional[np.ndarray] = None, runs_on: Optional[np.ndarray] = None) -> int:
    """Clear the pixels of ``rim`` beyond the rim's radial band (in place); return how many.

    Parameters
    ----------
    rim : (qh, qw) bool, the refined rim (changed in place)
    d_core : (qh, qw) float32, distance to the core, px
    core : (qh, qw) bool, the (coarse) core: the directions are angles round
        its centre
    thickness : the rim's measured width, px (same grid)
    blocked : optional (qh, qw) bool or uint8 0/1, where the view is blocked
        (a tool, the frame edge): beside it the core may be hidden, so
        within ``RIM_RULES.band_blocked_reach`` x thickness of it the
        distances are to the core completed by an ellipse, or to the core
        seen (:func:`_beyond_hidden_core`), and a piece there is cut only
        when it runs away from the core like a duct (:func:`_runs_away`)
    runs_on : optional (qh, qw) bool, fluorescence above the rim's outer edge
        level outside the zone the rim may lie in: beside the blocked view a
        piece it runs on into, not lying on a circle round the core, is a
        duct's end too (:func:`_runs_on_beyond`)
    """
    if not core.any():
        return 0
    ys, xs = nonzero(rim)
    if ys.size == 0:
        return 0
    mx, my = mask_centroid(core)
    b, d, raw = _directions(ys, xs, d_core, my, mx)
    k = RIM_RULES.band_smooth_bins
    q_out, q_in = raw(RIM_RULES.band_outer_quantile), raw(0.0)
    outer, inner = circular_nanmedian(q_out, k), circular_nanmedian(q_in, k)
    extent = circular_nanmedian(q_out - q_in, RIM_RULES.band_extent_bins)
    own = inner + np.minimum(thickness, extent)
    tol = RIM_RULES.band_tolerance * thickness + RIM_RULES.band_margin_px
    limit = np.minimum(outer, own) + tol
    # where the band seen is wider than the rim's own (a duct alongside),
    # the rim ends at its own outer edge, without the quantisation margin
    widened = outer > own + tol
    limit[widened] = own[widened] + RIM_RULES.band_widened_margin_px
    out = d > limit[b]  # (bins with a pixel have a finite median)
    near, centre = None, (mx, my)
    if blocked is not None and cv2.countNonZero(blocked.view(np.uint8)):
        out, near, centre = _beyond_hidden_core(out, blocked, core, ys, xs, b, limit, own, tol, thickness)
    if not out.any():
        return 0
    # only pieces the size and breadth of a duct's stub: a bump of a pixel or
    # two, or a thin sliver along the rim's own edge, is the edge's noise
    beyond = np.zeros(rim.shape, np.uint8)
    beyond[ys[out], xs[out]] = 1
    n, lab, stats, _ = cv2.connectedComponentsWithStats(beyond, connectivity=8)
    depth = np.zeros(n, np.float32)
    np.maximum.at(depth, lab[ys[out], xs[out]],
                  cv2.distanceTransform(beyond, cv2.DIST_L2, 3)[ys[out], xs[out]])
    area = stats[:, cv2.CC_STAT_AREA]
    # ... or a long one: a tangent duct's side beyond the band is a sliver
    # along the rim, but one as long as the rim is wide several times over
    big = (((area >= RIM_RULES.band_min_piece * thickness ** 2) & (depth > RIM_RULES.band_min_depth_px))
           | (area >= RIM_RULES.band_min_sliver * thickness ** 2))
    big[0] = False
    cut = big[lab[ys, xs]] & out
    if near is not None and (near & out).any():
        duct, stub = _runs_away(lab, big, ys, xs, out, near, centre, thickness, core, blocked)
        if runs_on is not None and runs_on.any():
            duct |= stub & _runs_on_beyond(lab, big, n, runs_on, thickness)
        cut &= ~near | duct[lab[ys, xs]]
    # where the rim ran on into the piece cut, its outer edge was not seen
    # (above half maximum all the way into the duct): there it ends at its
    # own outer edge, not at the band's tolerance beyond it
    merged = np.bincount(b[cut], minlength=limit.shape[0]) > 0
    cut |= merged[b] & (d > own[b] + RIM_RULES.band_widened_margin_px)
    rim[ys[cut], xs[cut]] = False
    return int(np.count_nonzero(cut))


def _beyond_hidden_core(out: np.ndarray, blocked: np.ndarray, core: np.ndarray, ys: np.ndarray, xs: np.ndarray,
                        b: np.ndarray, limit: np.ndarray, own: np.ndarray, tol: float,
                        thickness: float) -> tuple[np.ndarray, Optional[np.ndarray], tuple[float, float]]:
    """``out`` ((n,) bool, pixels (ys, xs) beyond the band) as it holds beside the blocked view,
    which of the pixels are beside it (None: none) and the core's centre (x, y) to judge a
    piece's shape by (:func:`_runs_away`).

    Within ``RIM_RULES.band_blocked_reach`` x thickness of a tool (or the
    frame edge) the core may be hidden, so a rim pixel's distance to the
    *visible* core can read far beyond the band though it lies on the rim
    round the hidden part.  There the distance is taken to the core
    completed by the ellipse through its visible outline (as the ring's
    B does, :func:`~.background.lesion_core`), and the band there is no
    wider than the rim's own band typically is (``own``, inner edge + extent,
    median round the core, + ``tol``): where the tool hides the rim as well,
    a direction's band is set by whatever shows beyond it.  A pixel beyond
    that from the whole core, and beyond the band from the core pieces seen,
    is beyond the band there (a duct's end at the tool's tip).  The core's
    pieces are those of at least thickness squared.  When no ellipse fits,
    or its visible outline covers under ``RIM_RULES.band_hidden_min_coverage``
    of the directions round it (extrapolated: a tool across the lesion), the
    distances are to the core pieces seen: a rim's far arc beyond the tool
    then reads beyond the band too, and only the piece's shape tells it from
    a duct (:func:`_runs_away`; before, nothing beside the tool was cut
    there, and a duct's end across the tool stayed rim: seed 905 tangent 3 mm,
    0.61-0.64 of the duct).
    """
    blk = blocked.view(np.uint8)
    d_b = cv2.distanceTransform((blk == 0).view(np.uint8), cv2.DIST_L2, 3)
    near = d_b[ys, xs] <= RIM_RULES.band_blocked_reach * thickness
    if not near.any():
        return out, None, mask_centroid(core)
    # the core's pieces at least as large as the rim is wide squared (a tool
    # across the core splits it): specks of "core" along the tool's edge (its
    # dark mixed into the grid's pixels) would put a duct's end beside them within the band
    n, lab, stats, _ = cv2.connectedComponentsWithStats(core.view(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= thickness ** 2
    keep[0] = False
    if not keep.any():
        return out & ~near, near, mask_centroid(core)
    whole = keep[lab].view(np.uint8)
    d_seen = cv2.distanceTransform((whole == 0).view(np.uint8), cv2.DIST_L2, 5)[ys, xs]
    hidden, n_core, oys, oxs = outline_near_blocked(whole.view(bool), blk.view(bool), 2)
    if not hidden:  # the whole core is seen: its distances hold beside the tool too
        return np.where(near, d_seen > limit[b], out), near, mask_centroid(whole)
    if not complete_core(whole, n_core, oys, oxs, 0, 0):
        return np.where(near, d_seen > limit[b], out), near, mask_centroid(whole)
    # an ellipse through little of the outline round it (a tool across the
    # lesion) is extrapolated, no sure outline: the core pieces seen it is
    mx, my = mask_centroid(whole)
    _ang, ob, nb = angle_bins(oys, oxs, my, mx)
    # where the tool hides the rim too, its direction's band is set by what
    # shows (a duct's end beyond the tool's tip): no wider there than the
    # rim's own band is typically
    lim = np.minimum(limit[b], np.float32(np.nanmedian(own) + tol))
    if np.unique(ob).size < RIM_RULES.band_hidden_min_coverage * nb:
        return np.where(near, d_seen > lim, out), near, (mx, my)
    d_whole = cv2.distanceTransform((whole == 0).view(np.uint8), cv2.DIST_L2, 5)[ys, xs]
    # beyond the band from the seen pieces and from the whole core both
    return np.where(near, (d_seen > limit[b]) & (d_whole > lim), out), near, (mx, my)


def _runs_away(lab: np.ndarray, big: np.ndarray, ys: np.ndarray, xs: np.ndarray, out: np.ndarray,
               near: np.ndarray, centre: tuple[float, float], thickness: float, core: np.ndarray,
               blocked: np.ndarray) -> np.ndarray:
    """Two (n,) bool per piece of ``lab`` (pieces beyond the band; ``big``, (n,) bool, those
    large enough to cut): ``duct``, False for a big piece beside the blocked view unless it is
    shaped like a duct's end (below); ``stub``, False for one lying on a circle round the core
    at least ``RIM_RULES.band_arc_min_radius`` x (core's equivalent radius + thickness) large
    (a rim's arc; a short stub's blob fits a small circle), for :func:`_runs_on_beyond`.

    Beside a tool the band is measured from a core that may be guessed
    (completed by an ellipse, or only the pieces seen), so a piece beyond
    it there is cut only when it has the shape of a duct's end, not of a
    rim's arc round the hidden core:

    - a tube runs away from the core: its pixels' distances from the core's
      centre ``centre`` (x, y) spread (5-95 %) over at least
      ``RIM_RULES.band_tube_spread`` x thickness; a rim's arc, or the outer
      sliver of one, keeps about its width from the centre (seeds 707 and
      709: up to 1.43; a duct beside a tool's tip, 904 and 905: 1.9-2.8);
    - and it does not follow a circle round the core: the circle through
      its pixels (:func:`~.masks.circle_fit`) is no larger than
      ``RIM_RULES.band_arc_radius`` x (the core's equivalent radius +
      thickness), centred within ``RIM_RULES.band_arc_centre`` x thickness
      of the core or the blocked view (the core hidden under the tool), its
      pixels within ``RIM_RULES.band_arc_residual`` x thickness of it
      (5-95 % of their distances to its centre).  With a tool across the
      lesion the centre seen is far off the true one, and a rim's far arc
      beyond the tool spreads from it like a tube (seed 706: 2.8) but lies
      on such a circle (residual 0.95); a straight duct does not (1.75-2.8).
    """
    ok = np.ones(big.shape[0], bool)
    stub = np.zeros(big.shape[0], bool)
    cx, cy = centre
    lk = lab[ys, xs]
    hid = (core | (blocked.view(np.uint8) != 0)).view(np.uint8)
    d_hid = None
    r_ref = np.sqrt(np.count_nonzero(core) / np.pi) + thickness
    for k in np.unique(lk[out & near]):
        if not big[k]:  # (0: the background)
            continue
        sel = (lk == k) & out
        py, px = ys[sel], xs[sel]
        lo, hi = np.quantile(np.hypot(py - cy, px - cx), [0.05, 0.95])
        tube = hi - lo >= RIM_RULES.band_tube_spread * thickness
        fit = circle_fit(py, px)
        arc = False
        if fit is not None:
            fx, fy, fr = fit
            iy, ix = int(round(fy)), int(round(fx))
            if fr <= RIM_RULES.band_arc_radius * r_ref and 0 <= iy < hid.shape[0] and 0 <= ix < hid.shape[1]:
                if d_hid is None:
                    d_hid = cv2.distanceTransform((hid == 0).view(np.uint8), cv2.DIST_L2, 3)
                lo, hi = np.quantile(np.hypot(py - fy, px - fx), [0.05, 0.95])
                arc = (d_hid[iy, ix] <= RIM_RULES.band_arc_centre * thickness
                       and hi - lo <= RIM_RULES.band_arc_residual * thickness)
        ok[k] = tube and not arc
        stub[k] = not (arc and fit[2] >= RIM_RULES.band_arc_min_radius * r_ref)
    return ok, stub


def _runs_on_beyond(lab: np.ndarray, big: np.ndarray, n: int, runs_on: np.ndarray,
                    thickness: float) -> np.ndarray:
    """(n,) bool per piece of ``lab``: a big piece with at least
    ``RIM_RULES.band_runs_on`` x thickness pixels of ``runs_on`` within 2 px of it.

    ``runs_on`` is the fluorescence above the rim's outer edge level outside
    the zone where the rim may be: a duct goes on outward beyond its stub as
    a bright tube, a rim's arc has liver beyond it.  A short duct stub beside
    a tool across the lesion spreads from the core's centre no more than a
    rim's arc does (903: 0.9-1.3 thicknesses); what lies beyond tells them
    apart (903 oblique 1 mm x2: 0.58 -> 0.07 of the duct labelled rim).
    """
    grown = cv2.dilate(np.where(big[lab], lab, 0).astype(np.uint16), np.ones((5, 5), np.uint8))
    hit = np.bincount(grown[runs_on], minlength=n) >= RIM_RULES.band_runs_on * thickness
    hit[0] = False
    return hit


def _directions(ys: np.ndarray, xs: np.ndarray, d_core: np.ndarray, my: float, mx: float):
    """Pixels (ys, xs) by direction round (mx, my): their bins, distances to the core, and
    ``raw(quantile)``, per direction that quantile of their distances (NaN where none)."""
    _ang, b, nb = angle_bins(ys, xs, my, mx)
    d = d_core[ys, xs]

    def raw(quantile):
        return direction_quantile(b, d, nb, quantile)

    return b, d, raw


def cap_to_rim_peak(peak: np.ndarray, zone: np.ndarray, smooth: np.ndarray, rim_up: np.ndarray,
                    core: np.ndarray, d_core: np.ndarray, background: float) -> int:
    """Lower the local rim peak where a bright neighbour outside the rim raised it (in place).

    ``peak`` is the max of ``smooth`` over a window as wide as the rim; a duct
    brighter than the rim, running along or into it, is in that window, so
    the rim beside it would read narrow (its edges placed against the duct's
    level) or be missed.  A rim encloses a core and its blurred profile
    peaks in its middle; a duct lies outside.  So, direction by direction
    round the core: the rim's own peak is the max of ``smooth`` over the
    inner half of its band (from the coarse rim ``rim_up``'s inner edge out
    to half its radial extent, the median over a wide arc as in
    :func:`cut_to_band`) -- over the few directions a window spans, so a
    bright patch of the rim is its own.  Where the brightest zone pixel lies
    beyond that and is brighter (``RIM_RULES.peak_raised_tolerance``), the
    profile still rises outward into a neighbour, whose blur also raises the
    inner half: there the rim's own peak is the median along the rim.
    ``peak`` is capped at the own peak plus ``RIM_RULES.peak_cap_tolerance``
    of its span above ``background``.  The neighbour itself then reads
    above 1 and stays rim-like; :func:`cut_to_band` cuts it where it
    leaves the rim's band.  Returns how many peak pixels were lowered.
    (Clearing the neighbour's pixels beyond the band from the zone as well
    cost more than it gained: it cut bright spots of partial rims, seed 502,
    and left 902's bright ducts more as rim.)
    """
    if not core.any() or not rim_up.any():
        return 0
    mx, my = mask_centroid(core)
    bins, nb = direction_map(peak.shape, my, mx)
    return cap_peak(peak, bins, nb, zone, smooth, rim_up, d_core,
                    background, RIM_RULES.band_outer_quantile, RIM_RULES.band_smooth_bins,
                    RIM_RULES.band_extent_bins, RIM_RULES.peak_cap_bins, RIM_RULES.band_margin_px,
                    RIM_RULES.peak_raised_tolerance, RIM_RULES.peak_cap_tolerance)


def direction_map(shape: tuple[int, int], my: float, mx: float) -> tuple[np.ndarray, int]:
    """(h, w) int64, every pixel's :func:`~.gaps.angle_bins` bin round (mx, my), and the
    number of bins.

    numpy's ``arctan2`` on the whole grid gives each pixel the same angle as
    on any subset of pixels (checked on 750 000 pixels of 1080p lesions),
    so the bins are those of the pixel lists they replace.
    """
    h, w = shape
    ys = np.repeat(np.arange(h, dtype=np.int64), w)
    xs = np.tile(np.arange(w, dtype=np.int64), h)
    _ang, b, nb = angle_bins(ys, xs, my, mx)
    return b.reshape(h, w), nb


def circular_nanmedian(e: np.ndarray, k: int) -> np.ndarray:
    """Per direction, the median of ``e`` over it and ``k`` neighbours each side (round the
    circle), NaNs left out; NaN where all are NaN.  ``np.nanmedian`` of the stacked rolls
    gives the same values, but its masked-array path took about 12 ms a 1080p frame here
    (the numba kernel ``circular_median``)."""
    return circular_median(np.ascontiguousarray(e), int(k))
