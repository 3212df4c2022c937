"""numba kernels of the coarse-grid segmentation: instruments, hysteresis, rim widths.

Called by :mod:`~nirf_overlay.processing.instruments`,
:mod:`~nirf_overlay.processing.fluorescence`,
:mod:`~nirf_overlay.processing.cores` and
:mod:`~nirf_overlay.processing.masks` on the analysis grid.  Self-contained
(see :mod:`nirf_overlay.processing._kernels`).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def grey_and_dark(bgr, ratio, max_s, min_v, dark, sdiv, out):
    """``out = (S < max_s) & (V > min_v) & (ratio < dark)``, S and V of ``bgr``'s HSV.

    ``sdiv`` is OpenCV's 8-bit saturation divisor table (see
    :mod:`~nirf_overlay.processing.instruments`), so S is ``cv2.cvtColor``'s.
    """
    h, w = ratio.shape
    for y in range(h):
        for x in range(w):
            b = np.int32(bgr[y, x, 0])
            g = np.int32(bgr[y, x, 1])
            r = np.int32(bgr[y, x, 2])
            v = max(b, g, r)
            mn = min(b, g, r)
            s = ((v - mn) * sdiv[v] + 2048) >> 12
            out[y, x] = s < max_s and v > min_v and ratio[y, x] < dark


@numba.njit(cache=True, nogil=True)
def hysteresis_masks(ratio, lo, hi, valid, prev, use_valid, use_prev, weak, seeds):
    """``weak`` = ratio > lo (and valid), uint8; ``seeds`` = ratio > hi, or prev & weak.

    One pass instead of four full-grid boolean temporaries; the comparisons
    are in float32 like numpy's.
    """
    h, w = ratio.shape
    for y in range(h):
        for x in range(w):
            r = ratio[y, x]
            wk = r > lo
            if use_valid and not valid[y, x]:
                wk = False
            weak[y, x] = 1 if wk else 0
            sd = r > hi
            if use_prev and wk and prev[y, x] != 0:
                sd = True
            seeds[y, x] = sd


@numba.njit(cache=True, nogil=True)
def label_stats(labels, seeds, stats, hit):
    """``cv2.connectedComponentsWithStats``' stats of ``labels``, and which hold a seed.

    stats : (n, 5) int32 out, x, y, width, height, area per label (an empty
        label 0 gets OpenCV's ``[-1, INT_MAX, 0, 0, 0]``)
    hit : (n,) bool out, labels with a ``seeds`` pixel (label 0 never)
    """
    n = stats.shape[0]
    h, w = labels.shape
    x0 = np.full(n, w, np.int64)
    y0 = np.full(n, h, np.int64)
    x1 = np.full(n, -1, np.int64)
    y1 = np.full(n, -1, np.int64)
    area = np.zeros(n, np.int64)
    for y in range(h):
        # the background (label 0, most of the grid) in registers, per row
        first0 = -1
        last0 = -1
        n0 = 0
        for x in range(w):
            l = labels[y, x]
            if l == 0:
                if first0 < 0:
                    first0 = x
                last0 = x
                n0 += 1
                continue
            if x < x0[l]:
                x0[l] = x
            if x > x1[l]:
                x1[l] = x
            if y < y0[l]:
                y0[l] = y
            y1[l] = y
            area[l] += 1
            if seeds[y, x]:
                hit[l] = True
        if n0:
            if first0 < x0[0]:
                x0[0] = first0
            if last0 > x1[0]:
                x1[0] = last0
            if y < y0[0]:
                y0[0] = y
            y1[0] = y
            area[0] += n0
    for l in range(n):
        if area[l] == 0:
            stats[l, 0] = -1
            stats[l, 1] = 2147483647
            stats[l, 2] = 0
            stats[l, 3] = 0
            stats[l, 4] = 0
        else:
            stats[l, 0] = x0[l]
            stats[l, 1] = y0[l]
            stats[l, 2] = x1[l] - x0[l] + 1
            stats[l, 3] = y1[l] - y0[l] + 1
            stats[l, 4] = area[l]


@numba.njit(cache=True, nogil=True)
def relabel(labels, keep_label, mask):
    """In place ``labels = keep_label[labels]``; ``mask`` = (labels > 0) as uint8."""
    h, w = labels.shape
    for y in range(h):
        for x in range(w):
            v = keep_label[labels[y, x]]
            labels[y, x] = v
            mask[y, x] = 1 if v > 0 else 0


@numba.njit(nogil=True, cache=True, fastmath=False)
def circle_fit_sums(ys, xs):
    """Sums of the centred Kasa circle fit: (A 3x3, b 3, mean x, mean y).

    Same arithmetic as the numpy version (float64, points centred first),
    without its ~15 temporary arrays per fit.
    """
    n = ys.shape[0]
    mx = 0.0
    my = 0.0
    for i in range(n):
        mx += xs[i]
        my += ys[i]
    mx /= n
    my /= n
    sxx = sxy = syy = sx = sy = sxz = syz = sz = 0.0
    for i in range(n):
        x = xs[i] - mx
        y = ys[i] - my
        z = x * x + y * y
        sxx += x * x
        sxy += x * y
        syy += y * y
        sx += x
        sy += y
        sxz += x * z
        syz += y * z
        sz += z
    A = np.empty((3, 3))
    A[0, 0] = sxx
    A[0, 1] = sxy
    A[0, 2] = sx
    A[1, 0] = sxy
    A[1, 1] = syy
    A[1, 2] = sy
    A[2, 0] = sx
    A[2, 1] = sy
    A[2, 2] = float(n)
    b = np.empty(3)
    b[0] = -sxz
    b[1] = -syz
    b[2] = -sz
    return A, b, mx, my


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
def ridge_median(mask, dt):
    """Median of ``dt`` over the ridge ``mask & (dt >= dilate3x3(dt) - 0.5)``.

    ``dt`` float32; the value is ``float(np.median(dt[ridge]))`` (numpy's
    float32 arithmetic).  Returns (median, ridge pixels); NaN without ridge.
    """
    h, w = mask.shape
    half = np.float32(0.5)
    vals = np.empty(h * w, np.float32)
    n = 0
    for y in range(h):
        for x in range(w):
            if not mask[y, x]:
                continue
            v = dt[y, x]
            m = v
            for yy in range(max(0, y - 1), min(h, y + 2)):
                for xx in range(max(0, x - 1), min(w, x + 2)):
                    if dt[yy, xx] > m:
                        m = dt[yy, xx]
            if v >= m - half:
                vals[n] = v
                n += 1
    if n == 0:
        return np.nan, 0
    return np.float64(_median_f32(vals, n)), n


@numba.njit(nogil=True, cache=True)
def seeded_regions(region, dark, seed, min_px, fraction, sel):
    """The 4-connected regions of ``region`` an arc's seed covers enough of, into ``sel``.

    A region is kept when its pixels in ``seed & dark`` number at least
    ``max(min_px, fraction * n)``, ``n`` its pixels in ``dark`` (float64, as
    ``np.maximum`` of the counts); ``sel`` (bool, zeroed by the caller) gets
    the kept regions.  The same selection as labelling ``region`` with
    ``cv2.connectedComponents(connectivity=4)`` and comparing per-label
    ``np.bincount`` counts (``cores._dark_core``), but only the regions
    holding a seed pixel are visited (the others cannot be kept: the least
    count is ``min_px`` >= 1).  Returns how many regions were kept.
    """
    h, w = region.shape
    seen = np.zeros((h, w), np.bool_)
    queue = np.empty(h * w, np.int64)
    kept = 0
    for y0 in range(h):
        for x0 in range(w):
            if seen[y0, x0] or not (region[y0, x0] and seed[y0, x0] and dark[y0, x0]):
                continue
            seen[y0, x0] = True
            queue[0] = y0 * w + x0
            head, tail = 0, 1
            overlap = 0
            n_dark = 0
            while head < tail:
                p = queue[head]
                head += 1
                y, x = p // w, p % w
                if dark[y, x]:
                    n_dark += 1
                    if seed[y, x]:
                        overlap += 1
                if y > 0 and region[y - 1, x] and not seen[y - 1, x]:
                    seen[y - 1, x] = True
                    queue[tail] = p - w
                    tail += 1
                if y + 1 < h and region[y + 1, x] and not seen[y + 1, x]:
                    seen[y + 1, x] = True
                    queue[tail] = p + w
                    tail += 1
                if x > 0 and region[y, x - 1] and not seen[y, x - 1]:
                    seen[y, x - 1] = True
                    queue[tail] = p - 1
                    tail += 1
                if x + 1 < w and region[y, x + 1] and not seen[y, x + 1]:
                    seen[y, x + 1] = True
                    queue[tail] = p + 1
                    tail += 1
            least = max(np.float64(min_px), fraction * np.float64(n_dark))
            if overlap >= least:
                kept += 1
                for i in range(tail):
                    p = queue[i]
                    sel[p // w, p % w] = True
    return kept
