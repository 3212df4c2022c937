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
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

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
    _ang, b, nb = angle_bins(ys, xs, my, mx)
    d = d_core[ys, xs]
    order = np.lexsort((d, b))
    ds = d[order]
    counts = np.bincount(b, minlength=nb)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))

    def raw(quantile):  # per direction
        at = starts + (quantile * np.maximum(counts - 1, 0)).astype(np.int64)
        return np.where(counts > 0, ds[np.minimum(at, ds.size - 1)], np.nan)

    def smooth(e, k):  # the median over k neighbouring directions each side
        return circular_nanmedian(e, k)

    # the outer edge seen, and the inner edge + the rim's width: a duct
    # leaving the rim moves neither median; one running along the rim's
    # outside (tangent) lies within the first over a long arc, never within
    # the second.  The inner edge is the nearest pixel (a duct's pixels
    # outside do not shift it, as they shift a quantile); the width is the
    # measured one or the band's own radial extent, the median over a wide
    # arc (a tangent duct widens less than half of it; a rim's width changes
    # slowly along it), whichever is less
    k = RIM_RULES.band_smooth_bins
    q_out, q_in = raw(RIM_RULES.band_outer_quantile), raw(0.0)
    outer, inner = smooth(q_out, k), smooth(q_in, k)
    extent = smooth(q_out - q_in, RIM_RULES.band_extent_bins)
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
    rim[ys[cut], xs[cut]] = False
    return int(np.count_nonzero(cut))


def circular_nanmedian(e: np.ndarray, k: int) -> np.ndarray:
    """Per direction, the median of ``e`` over it and ``k`` neighbours each side (round the
    circle), NaNs left out; NaN where all are NaN.  ``np.nanmedian`` of the stacked rolls
    gives the same values, but its masked-array path took about 12 ms a 1080p frame here."""
    nb = e.shape[0]
    window = np.sort(e[(np.arange(nb)[None, :] + np.arange(-k, k + 1)[:, None]) % nb], axis=0)
    n = np.count_nonzero(~np.isnan(window), axis=0)  # NaNs sort last
    cols = np.arange(nb)
    lo, hi = np.maximum((n - 1) // 2, 0), n // 2
    hi = np.minimum(hi, window.shape[0] - 1)
    median = (window[lo, cols] + window[hi, cols]) / e.dtype.type(2)
    median[n == 0] = np.nan
    return median
