"""numba kernels of the analysis grid: the frame's pyramid, point samples, masks back up.

Called by :mod:`~nirf_overlay.processing.grid`.  Self-contained (see
:mod:`nirf_overlay.processing._kernels`).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def sample_every(img, fy, fx, out):
    """``out[:] = img[::fy, ::fx]`` for a 2-D or (h, w, 3) image.

    numpy's strided copy of a colour frame walks it element by element
    (~150 us for 1080p -> 240 x 135); this reads only the sampled pixels.
    """
    if img.ndim == 2:
        for y in range(out.shape[0]):
            for x in range(out.shape[1]):
                out[y, x] = img[y * fy, x * fx]
    else:
        for y in range(out.shape[0]):
            for x in range(out.shape[1]):
                for c in range(out.shape[2]):
                    out[y, x, c] = img[y * fy, x * fx, c]


@numba.njit(nogil=True, cache=True)
def upscale_fluo(fluo, fy, fx, fluo_full, rim_full):
    """Nearest-neighbour upscale of the coarse fluorescence mask, and a cleared rim mask.

    One pass over the frame writes both full-size masks (they are pasted
    into per lesion afterwards), instead of ``np.repeat`` + ``np.zeros``.
    Each coarse row is expanded once and copied ``fy`` times (no division
    per pixel).

    Parameters
    ----------
    fluo : (h, w) uint8 0/1, analysis grid
    fy, fx : int, whole upscale factors (H = h * fy, W = w * fx)
    fluo_full, rim_full : (H, W) uint8 outputs: 0/255 fluorescence, zeros
    """
    h, w = fluo.shape
    W = fluo_full.shape[1]
    row = np.empty(W, np.uint8)
    for yy in range(h):
        src = fluo[yy]
        for xx in range(w):
            v = np.uint8(255) if src[xx] else np.uint8(0)
            for k in range(xx * fx, xx * fx + fx):
                row[k] = v
        for y in range(yy * fy, yy * fy + fy):
            out_f = fluo_full[y]
            out_r = rim_full[y]
            for x in range(W):
                out_f[x] = row[x]
                out_r[x] = 0


@numba.njit(nogil=True, cache=True, parallel=True)
def pyramid2(src, half, quarter):
    """Two 2 x 2 area-average halvings of ``src`` in one parallel pass.

    ``half`` (H/2, W/2) and ``quarter`` (H/4, W/4), float32.  Each output is
    summed as ``((a + b) + (c + d)) * 0.25`` -- the order OpenCV's INTER_AREA
    uses for an exact halving -- and ``quarter`` is made from the float32
    ``half`` values, so both are bit-identical to two successive
    ``cv2.resize(..., INTER_AREA)`` calls.  One read of the full frame,
    split over numba's threads (the analysis keeps OpenCV single-threaded).
    """
    h4, w4 = quarter.shape
    w2 = half.shape[1]
    q = np.float32(0.25)
    for y in numba.prange(h4):
        for k in range(2):
            y2 = 2 * y + k
            r0 = src[2 * y2]
            r1 = src[2 * y2 + 1]
            out = half[y2]
            for x in range(w2):
                out[x] = ((r0[2 * x] + r0[2 * x + 1]) + (r1[2 * x] + r1[2 * x + 1])) * q
        h0 = half[2 * y]
        h1 = half[2 * y + 1]
        out = quarter[y]
        for x in range(w4):
            out[x] = ((h0[2 * x] + h0[2 * x + 1]) + (h1[2 * x] + h1[2 * x + 1])) * q
