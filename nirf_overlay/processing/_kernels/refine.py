"""numba kernels of the per-lesion refinement: zones, rim signal, core and outline.

Called by :func:`~nirf_overlay.processing.refine.refine_rim`; everything
works on one lesion's refine-grid ROI.  Self-contained (see
:mod:`nirf_overlay.processing._kernels`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Marker for pixels without signal in profile images (a NaN would not survive
# fastmath, which assumes finite values): the width's cross-sections stop
# there.  The same value as ``_kernels.width.NO_SIGNAL`` (a copy, see the package).
NO_SIGNAL = -1e30


@numba.njit(nogil=True, cache=True)
def angle_bins(ang, step, nb, b):
    """Radians ``ang`` (float64, numpy's ``arctan2``) to degrees 0..360 in place, and their
    bins ``min(int(ang / step), nb - 1)`` into ``b`` (int64), in one pass.

    The numbers of ``np.degrees(ang) % 360.0`` and ``(ang / step).astype(np.int64)``:
    ``np.degrees`` multiplies by ``180 / pi``, Python's float ``%`` is numpy's
    remainder, all IEEE arithmetic without fastmath.  (The ``arctan2`` itself
    stays numpy's: it may be SIMD code that libm's ``atan2``, numba's, does
    not match in the last bit on every machine.)
    """
    to_deg = 180.0 / math.pi
    for i in range(ang.shape[0]):
        a = (ang[i] * to_deg) % 360.0
        ang[i] = a
        b[i] = min(int(a / step), nb - 1)


@numba.njit(nogil=True, cache=True)
def edge_ratio(img, peak, background, min_span, blocked, valid, q, ok, img_nan):
    """Normalised rim signal ``q = (img - B) / (peak - B)`` in one pass.

    ``q`` is -10 where the span ``peak - B`` is not above ``min_span`` and
    where ``blocked`` (uint8, same shape, or an empty array for none) is set;
    ``ok`` (bool) is ``span > min_span``; ``img_nan`` is ``img`` with
    :data:`NO_SIGNAL` where blocked or not ``valid`` (bool, same shape, or
    empty for all valid).  float32 throughout, the same arithmetic as the
    numpy expressions it replaces (nine passes over the ROI).
    """
    h, w = img.shape
    B = np.float32(background)
    thr = np.float32(min_span)
    has_b = blocked.shape[0] == h
    has_v = valid.shape[0] == h
    for y in range(h):
        for x in range(w):
            span = peak[y, x] - B
            good = span > thr
            ok[y, x] = good
            blk = has_b and blocked[y, x] != 0
            v = img[y, x]
            if good and not blk:
                q[y, x] = (v - B) / span
            else:
                q[y, x] = np.float32(-10.0)
            if blk or (has_v and not valid[y, x]):
                img_nan[y, x] = np.float32(NO_SIGNAL)
            else:
                img_nan[y, x] = v


@numba.njit(nogil=True, cache=True)
def rim_from_levels(q, core_side, zone, lev_in, lev_out, rim):
    """``rim = (q > (lev_in on the core side else lev_out)) & zone``; returns its pixel count."""
    h, w = q.shape
    li = np.float32(lev_in)
    lo = np.float32(lev_out)
    n = 0
    for y in range(h):
        for x in range(w):
            v = zone[y, x] and q[y, x] > (li if core_side[y, x] else lo)
            rim[y, x] = v
            n += v
    return n


@numba.njit(nogil=True, cache=True)
def edge_field(q, core_side, near, lev_in, lev_out, field):
    """``field = q - level`` where ``near`` (uint8) is set, else -1 (float32).

    ``level`` is ``lev_in`` on the core side and ``lev_out`` elsewhere; the
    rim mask at WL resolution is where the interpolated field is above 0.
    Works on (possibly strided) crops of the refine-grid arrays.
    """
    h, w = q.shape
    li = np.float32(lev_in)
    lo = np.float32(lev_out)
    for y in range(h):
        for x in range(w):
            if near[y, x] != 0:
                field[y, x] = q[y, x] - (li if core_side[y, x] else lo)
            else:
                field[y, x] = np.float32(-1.0)


@numba.njit(nogil=True, cache=True)
def _median_f32(buf, n):
    """``np.median`` of ``buf[:n]`` (float32 or float64) with numpy's arithmetic.

    numpy takes the middle element, or the mean of the two middle ones
    ``(a + b) / 2`` computed in the array's dtype; so does this.
    """
    h = n // 2
    s = np.partition(buf[:n], h)  # a selection, O(n): ~6x faster than sorting
    if n % 2:
        return s[h]
    return (s[:h].max() + s[h]) / np.float32(2.0)


@numba.njit(nogil=True, cache=True)
def refine_zones(img, d_rim_up, core_up, valid_q, core_dist, f, width, zone, reach, not_outside,
                 vals):
    """The masks of :func:`~nirf_overlay.processing.refine.refine_rim` round the coarse rim, in one pass.

    With ``erode(rad) = d_in_core > rad`` (``core_up`` when ``rad`` <= 0)::

        zone        = (d_rim_up <= 2 f) & ~erode(ceil(f)) [& valid_q]
        reach       = (d_rim_up <= width / 2 + 2 f) [& valid_q]
        not_outside = reach | core_up               (uint8 0/1)

    and the median of ``img`` over ``erode(ceil(width / 2))`` when it has
    at least 4 pixels, else over ``core_up``.

    Parameters
    ----------
    img : (h, w) float32, blurred refine-grid NIR
    d_rim_up : (h, w) float32 distance to the coarse rim
    core_up : (h, w) bool; valid_q : (h, w) bool or empty for all valid
    core_dist : ``(d_in_core, y0, x0)``: float32 distance inside the coarse
        core, possibly a crop at (y0, x0) holding every core pixel (outside
        it the distance is 0)
    f, width : float, refine px per analysis px and the coarse rim width
        (refine px); the thresholds are float32, as numpy compares float32
        arrays with float32 scalars
    zone, reach : (h, w) bool outputs; not_outside : (h, w) uint8 output
    vals : (2 * h * w,) float32 scratch

    Returns
    -------
    core_median : float (NaN when the core is empty)
    n_outside : int, pixels outside (``not_outside == 0``)
    """
    d_in_core, dc_y0, dc_x0 = core_dist
    zone_thr = np.float32(2.0 * f)
    zone_rad = int(np.ceil(f))
    core_rad = int(np.ceil(0.5 * width))
    reach_thr = np.float32(0.5 * width + 2.0 * f)
    h, w = img.shape
    has_v = valid_q.shape[0] == h
    zt = np.float32(zone_thr)
    rt = np.float32(reach_thr)
    n_in = 0
    n_up = 0
    n_out = 0
    hw = h * w
    ch, cw = d_in_core.shape
    zero = np.float32(0.0)
    for y in range(h):
        cy = y - dc_y0
        for x in range(w):
            d = d_rim_up[y, x]
            cx = x - dc_x0
            dc = d_in_core[cy, cx] if (0 <= cy < ch and 0 <= cx < cw) else zero
            cu = core_up[y, x]
            v_ok = (not has_v) or valid_q[y, x]
            er_z = (dc > zone_rad) if zone_rad > 0 else cu
            zone[y, x] = (d <= zt) and (not er_z) and v_ok
            rc = (d <= rt) and v_ok
            reach[y, x] = rc
            no = rc or cu
            not_outside[y, x] = 1 if no else 0
            if not no:
                n_out += 1
            er_c = (dc > core_rad) if core_rad > 0 else cu
            if er_c:
                vals[n_in] = img[y, x]
                n_in += 1
            if cu:
                vals[hw + n_up] = img[y, x]
                n_up += 1
    if n_in >= 4:
        med = np.float64(_median_f32(vals, n_in))
    elif n_up > 0:
        med = np.float64(_median_f32(vals[hw:], n_up))
    else:
        med = np.nan
    return med, n_out


@numba.njit(nogil=True, cache=True)
def masked_median_or_max(a, m1, m2, vals):
    """Median of ``a`` (float32) over ``m1 & m2`` (bool), or ``a.max()`` when empty.

    Same value as ``np.median(a[m1 & m2])`` / ``a.max()``; ``vals`` is
    (h * w,) float32 scratch.  Returns (value, pixels in ``m1 & m2``).
    """
    h, w = a.shape
    n = 0
    mx = a[0, 0]
    for y in range(h):
        for x in range(w):
            v = a[y, x]
            if v > mx:
                mx = v
            if m1[y, x] and m2[y, x]:
                vals[n] = v
                n += 1
    if n > 0:
        return np.float64(_median_f32(vals, n)), n
    return np.float64(mx), 0


@numba.njit(nogil=True, cache=True)
def peak_seed(zone, smooth, rim_up, out):
    """``out = where(zone, smooth, 0)`` (float32): rim-zone values for the max filter.

    Returns how many pixels might be left without support by the max
    filter: zone pixels whose value is not > 0 (a positive zone pixel
    supports its whole window, its 3 x 3 neighbourhood included) plus
    ``rim_up`` (bool) pixels outside the zone.  0 means every pixel that
    refine_rim reads the peak at (the zone, 1 px round it, the coarse rim)
    is supported.
    """
    h, w = smooth.shape
    n_bad = 0
    for y in range(h):
        for x in range(w):
            if zone[y, x]:
                v = smooth[y, x]
                out[y, x] = v
                if not v > 0:
                    n_bad += 1
            else:
                out[y, x] = np.float32(0.0)
                if rim_up[y, x]:
                    n_bad += 1
    return n_bad


@numba.njit(nogil=True, cache=True)
def positive_f32(a, out):
    """``out = (a > 0)`` as float32 0/1."""
    h, w = a.shape
    for y in range(h):
        for x in range(w):
            out[y, x] = np.float32(1.0) if a[y, x] > 0 else np.float32(0.0)


@numba.njit(nogil=True, cache=True)
def normalised_ratio(num, den, out):
    """``out = num / maximum(den, 1e-3)`` in float32 (numpy's arithmetic)."""
    h, w = num.shape
    lo = np.float32(1e-3)
    for y in range(h):
        for x in range(w):
            d = den[y, x]
            out[y, x] = num[y, x] / (d if d > lo else lo)


@numba.njit(nogil=True, cache=True)
def fill_unsupported(support, a, fill):
    """``a = where(support > 0, a, fill)`` in place."""
    h, w = a.shape
    for y in range(h):
        for x in range(w):
            if not support[y, x] > 0:
                a[y, x] = fill[y, x]


@numba.njit(nogil=True, cache=True)
def select_touching(labels, ref, n, out):
    """``out`` = the labelled components (labels 1..n-1) with a pixel in ``ref``.

    Parameters
    ----------
    labels : (h, w) int32 from ``cv2.connectedComponents`` (0 = background)
    ref : (h, w) bool
    n : int, number of labels
    out : (h, w) bool output

    Returns
    -------
    int, pixels in ``out``
    """
    h, w = labels.shape
    hit = np.zeros(n, np.bool_)
    for y in range(h):
        for x in range(w):
            if ref[y, x]:
                hit[labels[y, x]] = True
    hit[0] = False
    c = 0
    for y in range(h):
        for x in range(w):
            v = hit[labels[y, x]]
            out[y, x] = v
            c += v
    return c


@numba.njit(nogil=True, cache=True)
def core_candidates(core_side, reach, core_up, rim, out):
    """``out = ((core_side & reach) | core_up) & ~rim`` (bool)."""
    h, w = rim.shape
    for y in range(h):
        for x in range(w):
            out[y, x] = ((core_side[y, x] and reach[y, x]) or core_up[y, x]) and not rim[y, x]


@numba.njit(nogil=True, cache=True)
def outline_touching(core, rim, d_b, thr_b, b_y0=0, b_x0=0):
    """Counts for the rim completeness, and the centroid sums of ``rim | core``.

    The outline is the core's inner 8-connected boundary (a core pixel with a
    3 x 3 neighbour outside the core or the array); with ``d_b`` (float32
    distance to blocked pixels, or an empty array) only where ``d_b >
    thr_b`` (float32).  An outline pixel is touched by the rim when a rim
    pixel is in its 3 x 3 neighbourhood: that is exactly ``d_r <= 1.5`` for
    OpenCV's DIST_L2 3 x 3 distance to the rim (steps 0.955 and 1.3693, so
    any two steps are > 1.5).  ``d_b`` may be a crop at (b_y0, b_x0) that
    holds every core pixel.

    Returns
    -------
    touched, outline : int
    n, sum_x, sum_y : int, pixels of ``rim | core`` and their coordinate sums
        (what ``cv2.moments(..., True)`` gives as m00, m10, m01)
    """
    h, w = core.shape
    has_b = d_b.shape[0] > 0
    tb = np.float32(thr_b)
    n_t = 0
    n_o = 0
    n = 0
    sx = 0
    sy = 0
    for y in range(h):
        for x in range(w):
            c = core[y, x]
            if c or rim[y, x]:
                n += 1
                sx += x
                sy += y
            if not c:
                continue
            # outline: a neighbour outside the core or the array (stop at the first)
            edge = y == 0 or y == h - 1 or x == 0 or x == w - 1
            if not edge:
                for yy in range(y - 1, y + 2):
                    for xx in range(x - 1, x + 2):
                        if not core[yy, xx]:
                            edge = True
                            break
                    if edge:
                        break
            if not edge:
                continue
            if has_b and not d_b[y - b_y0, x - b_x0] > tb:
                continue
            n_o += 1
            # touched: a rim pixel in the 3 x 3 neighbourhood (clipped)
            near = False
            for yy in range(max(0, y - 1), min(h, y + 2)):
                for xx in range(max(0, x - 1), min(w, x + 2)):
                    if rim[yy, xx]:
                        near = True
                        break
                if near:
                    break
            if near:
                n_t += 1
    return n_t, n_o, n, sx, sy


@numba.njit(nogil=True, cache=True)
def scale_contour(c, r, x0, y0):
    """A refine-grid contour in WL pixels: ``round((c + 0.5) / r - 0.5) + (x0, y0)``, int32.

    ``c`` is (n, 2) int32 (x, y) from ``cv2.findContours``; rounding is half
    to even, as ``np.round``; float64 throughout, the numpy expression's
    arithmetic in one pass instead of six array operations.
    """
    n = c.shape[0]
    out = np.empty((n, 2), np.int32)
    for i in range(n):
        out[i, 0] = np.int32(np.rint((np.float64(c[i, 0]) + 0.5) / r - 0.5) + x0)
        out[i, 1] = np.int32(np.rint((np.float64(c[i, 1]) + 0.5) / r - 0.5) + y0)
    return out
