"""numba kernel of the rim's own peak (:func:`~nirf_overlay.processing.band.cap_to_rim_peak`).

One call replaces about forty small numpy calls per lesion (three angle
binnings, a lexsort, two ``np.maximum.at``, four circular windows); the
per-direction values are the same float32 arithmetic as the numpy
expressions they replace, so the capped peak is bit-identical.  The pixels'
direction bins come in as a map (numpy's ``arctan2``, whose results differ
from libm's in the last bit, stays outside).  Self-contained (see
:mod:`nirf_overlay.processing._kernels`).
"""

from __future__ import annotations

import numba
import numpy as np


#: runs up to this long are sorted by insertion (in place, no allocation); longer ones
#: by numpy's in-place sort
_INSERTION_MAX = 48


@numba.njit(nogil=True, cache=True)
def _sort_small(a, lo, hi):
    """Sort ``a[lo:hi]`` in place by insertion, NaNs last (``np.sort``'s order).

    The same sorted values as ``np.sort`` (a sorted run of floats is unique up
    to equal values), without the copy and the call ``np.sort`` costs per run:
    the per-direction medians and quantiles sort a few to a few dozen values
    each, 72 times per call, where that overhead was ~1.5 us a run (120 us a
    ``circular_median`` call of 72 bins, 6 us now).
    """
    for i in range(lo + 1, hi):
        v = a[i]
        j = i
        if np.isnan(v):
            continue  # (stays after every number before it; NaNs keep their order)
        while j > lo and (np.isnan(a[j - 1]) or a[j - 1] > v):
            a[j] = a[j - 1]
            j -= 1
        a[j] = v


@numba.njit(nogil=True, cache=True)
def circular_median(e, k):
    """Per direction, the median of ``e`` over it and ``k`` neighbours each side (round the
    circle), NaNs left out, NaN where all are; in ``e``'s dtype (``band.circular_nanmedian``).

    The window's values are kept sorted as it slides round the circle (the
    value leaving taken out, the one entering put in its place): the same
    sorted window, so the same median, as sorting each window afresh, in
    O(k) a direction instead of O(k^2).
    """
    nb = e.shape[0]
    out = np.empty(nb, e.dtype)
    win = np.empty(2 * k + 1, e.dtype)
    n = 0
    for o in range(-k, k + 1):
        v = e[o % nb]
        if not np.isnan(v):
            win[n] = v
            n += 1
    _sort_small(win, 0, n)
    for j in range(nb):
        if j > 0:
            v = e[(j - 1 - k) % nb]  # leaves the window
            if not np.isnan(v):
                i = 0
                while win[i] != v:
                    i += 1
                for m in range(i, n - 1):
                    win[m] = win[m + 1]
                n -= 1
            v = e[(j + k) % nb]  # enters it
            if not np.isnan(v):
                i = n
                while i > 0 and win[i - 1] > v:
                    win[i] = win[i - 1]
                    i -= 1
                win[i] = v
                n += 1
        if n == 0:
            out[j] = np.nan
        else:
            out[j] = (win[(n - 1) // 2] + win[n // 2]) * 0.5  # (in e's type; the halving is exact)
    return out


@numba.njit(nogil=True, cache=True)
def direction_quantile(b, d, nb, quantile):
    """Per direction bin (``b`` int64, ``nb`` bins), the ``quantile`` of the distances ``d``
    (float32): the sorted value at ``int(quantile * (count - 1))``; NaN where none
    (``band._directions``)."""
    counts = np.zeros(nb, np.int64)
    for i in range(b.shape[0]):
        counts[b[i]] += 1
    starts = np.zeros(nb + 1, np.int64)
    for j in range(nb):
        starts[j + 1] = starts[j] + counts[j]
    ds = np.empty(b.shape[0], np.float32)
    fill = starts[:nb].copy()
    for i in range(b.shape[0]):
        ds[fill[b[i]]] = d[i]
        fill[b[i]] += 1
    out = np.full(nb, np.nan, np.float32)
    for j in range(nb):
        c = counts[j]
        if c > 0:
            a = starts[j]
            if c <= _INSERTION_MAX:
                _sort_small(ds, a, a + c)
            else:
                ds[a:a + c].sort()
            out[j] = ds[a + int(quantile * max(c - 1, 0))]
    return out


@numba.njit(nogil=True, cache=True)
def cap_peak(peak, bins, nb, zone, smooth, rim_up, d_core, background, outer_quantile,
             smooth_bins, extent_bins, cap_bins, margin_px, raised_tolerance, cap_tolerance):
    """Lower ``peak`` (float32, in place) to the rim's own peak per direction; return how many.

    ``bins`` : int64 direction bin of every pixel (``gaps.angle_bins`` on the
    grid), ``nb`` bins; ``zone``, ``rim_up`` bool; ``smooth``, ``d_core``
    float32, all the same shape.  The rule and its ``RIM_RULES`` values are
    :func:`~nirf_overlay.processing.band.cap_to_rim_peak`'s.
    """
    h, w = peak.shape
    # the coarse rim's distances per direction (band._directions)
    n_rim = 0
    for y in range(h):
        for x in range(w):
            if rim_up[y, x]:
                n_rim += 1
    rb = np.empty(n_rim, np.int64)
    rd = np.empty(n_rim, np.float32)
    i = 0
    for y in range(h):
        for x in range(w):
            if rim_up[y, x]:
                rb[i] = bins[y, x]
                rd[i] = d_core[y, x]
                i += 1
    q_in = direction_quantile(rb, rd, nb, 0.0)
    spread = direction_quantile(rb, rd, nb, outer_quantile) - q_in
    inner = circular_median(q_in, smooth_bins)
    extent = circular_median(spread, extent_bins)
    # the zone's max per direction, over the band's inner half and over all
    reach = np.empty(nb, np.float32)
    for b in range(nb):
        reach[b] = np.float32(np.float32(inner[b] + np.float32(np.float32(0.5) * extent[b]))
                              + np.float32(margin_px))
    m_in = np.full(nb, -np.inf, np.float32)
    m_all = np.full(nb, -np.inf, np.float32)
    for y in range(h):
        for x in range(w):
            if zone[y, x]:
                b = bins[y, x]
                v = smooth[y, x]
                if v > m_all[b]:
                    m_all[b] = v
                if d_core[y, x] <= reach[b] and v > m_in[b]:
                    m_in[b] = v
    B = np.float32(background)
    grow = np.float32(1.0 + cap_tolerance)
    rt = np.float32(1.0 + raised_tolerance)
    raised = np.zeros(nb, np.bool_)
    m_own = np.empty(nb, np.float32)
    for b in range(nb):
        if np.isinf(m_in[b]):
            m_in[b] = np.nan
        raised[b] = np.float32(m_all[b] - B) > np.float32(rt * np.float32(m_in[b] - B))
        m_own[b] = np.nan if raised[b] else m_in[b]
    own = circular_median(m_in, extent_bins)
    cap = np.empty(nb, np.float32)
    for b in range(nb):
        if raised[b]:
            top = own[b]
        else:
            near = -np.inf
            for o in range(-cap_bins, cap_bins + 1):
                v = m_own[(b + o) % nb]
                if not np.isnan(v) and v > near:
                    near = v
            near32 = np.float32(np.nan) if np.isinf(near) else np.float32(near)
            # np.fmax: the other where one is NaN
            if np.isnan(own[b]):
                top = near32
            elif np.isnan(near32):
                top = own[b]
            else:
                top = max(own[b], near32)
        span = np.float32(top - B)
        if not np.isnan(span) and span < np.float32(0.0):  # (np.maximum keeps NaN)
            span = np.float32(0.0)
        cap[b] = np.float32(B + np.float32(grow * span))
    n = 0
    for y in range(h):
        for x in range(w):
            c = cap[bins[y, x]]
            if peak[y, x] > c:  # (NaN caps: no rim in the directions round it, left alone)
                peak[y, x] = c
                n += 1
    return n
