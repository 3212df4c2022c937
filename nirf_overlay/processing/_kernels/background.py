"""numba kernels of the liver background B: the ring's median and the hidden outline.

Called by :func:`~nirf_overlay.processing.background.ring_background` on
crops of the analysis grid.  Self-contained (see
:mod:`nirf_overlay.processing._kernels`).
"""

from __future__ import annotations

import numba
import numpy as np


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
def ring_median(d, lo, hi, exclude, img):
    """Median of ``img`` (float32) where ``lo < d <= hi`` and not ``exclude``.

    ``d`` float32 and the float32 bounds ``lo``, ``hi`` compare as numpy
    compares a float32 array with Python floats; the value is numpy's
    median.  Returns (median, count); NaN when empty.
    """
    h, w = d.shape
    flo = np.float32(lo)
    fhi = np.float32(hi)
    vals = np.empty(h * w, np.float32)
    n = 0
    for y in range(h):
        for x in range(w):
            v = d[y, x]
            if v > flo and v <= fhi and not exclude[y, x]:
                vals[n] = img[y, x]
                n += 1
    if n == 0:
        return np.nan, 0
    return np.float64(_median_f32(vals, n)), n


@numba.njit(nogil=True, cache=True)
def outline_near_blocked(core, blocked, r):
    """The core's outline where it meets a blocked view, in one pass.

    The outline is the inner 8-connected boundary (what
    :func:`nirf_overlay.processing.masks.boundary` gives: a core pixel with a 3 x 3 neighbour
    outside the core or the array); an outline pixel is *hidden* when a
    ``blocked`` pixel lies in its (2 r + 1)^2 window (clipped to the array:
    ``cv2.dilate`` with a square of ones and its default border).

    Parameters
    ----------
    core, blocked : (h, w) bool
    r : int, half size of the window

    Returns
    -------
    hidden : bool, some outline pixel is hidden
    n_core : int, core pixels
    ys, xs : (n,) int64, the visible outline pixels in row-major order
        (``np.nonzero(boundary & ~near_blocked)``)
    """
    h, w = core.shape
    ys = np.empty(h * w, np.int64)
    xs = np.empty(h * w, np.int64)
    n = 0
    n_core = 0
    hidden = False
    for y in range(h):
        for x in range(w):
            if not core[y, x]:
                continue
            n_core += 1
            edge = y == 0 or y == h - 1 or x == 0 or x == w - 1
            if not edge:
                for yy in range(y - 1, y + 2):
                    for xx in range(x - 1, x + 2):
                        if not core[yy, xx]:
                            edge = True
            if not edge:
                continue
            near = False
            for yy in range(max(0, y - r), min(h, y + r + 1)):
                for xx in range(max(0, x - r), min(w, x + r + 1)):
                    if blocked[yy, xx]:
                        near = True
            if near:
                hidden = True
            else:
                ys[n] = y
                xs[n] = x
                n += 1
    return hidden, n_core, ys[:n], xs[:n]
