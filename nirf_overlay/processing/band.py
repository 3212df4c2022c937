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

from ._kernels.band import cap_peak, circular_median, direction_quantile
from .gaps import angle_bins
from .masks import mask_centroid, nonzero
from .rules import RIM_RULES


def cut_to_band(rim: np.ndarray, d_core: np.ndarray, core: np.ndarray, thickness: float,
                blocked: Optional[np.ndarray] = None) -> int:
    """Clear the pixels of ``rim`` beyond the rim's radial band (in place); return how many.

    Parameters
    ----------
    rim : (qh, qw) bool, the refined rim (changed in place)
    d_core : (qh, qw) float32, distance to the core, px
    core : (qh, qw) bool, the (coarse) core: the directions are angles round
        its centre
    thickness : the rim's measured width, px (same grid)
    blocked : optional (qh, qw) bool or uint8 0/1, where the view is blocked
        (a tool, the frame edge): beside it the core is hidden and distances
        to the visible core mean nothing, so pixels within
        ``RIM_RULES.band_blocked_reach`` x thickness of it are never cut
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
    if out.any() and blocked is not None and cv2.countNonZero(blocked.view(np.uint8)):
        d_b = cv2.distanceTransform((blocked.view(np.uint8) == 0).view(np.uint8), cv2.DIST_L2, 3)
        out &= d_b[ys, xs] > RIM_RULES.band_blocked_reach * thickness
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
    # where the rim ran on into the piece cut, its outer edge was not seen
    # (above half maximum all the way into the duct): there it ends at its
    # own outer edge, not at the band's tolerance beyond it
    merged = np.bincount(b[cut], minlength=limit.shape[0]) > 0
    cut |= merged[b] & (d > own[b] + RIM_RULES.band_widened_margin_px)
    rim[ys[cut], xs[cut]] = False
    return int(np.count_nonzero(cut))


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
