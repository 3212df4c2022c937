"""numba kernels of the subsampled statistics of the normalised NIR.

:func:`sample_pass` reads a subsampled grid of the frame (about 16k pixels)
for the display-level histogram and the noise statistic, after
:func:`~.pixel.normalise_pass` has written the filtered NIR;
:func:`percentile_from_hist` reads levels off a histogram.  The noise
histogram bins by a table of edges (:func:`noise_bin_edges`) instead of a
log2 per sample; :func:`_noise_bin` is the rule the edges reproduce
(``tests/test_noise_bins.py``).  Called by
:mod:`~nirf_overlay.processing.normalise` and
:mod:`~nirf_overlay.processing.levels`; self-contained (see
:mod:`nirf_overlay.processing._kernels`).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

_JIT = dict(parallel=True, fastmath=True, cache=True, nogil=True)

#: median of a chi-square variable with one degree of freedom: turns the
#: median of d^2 / (2 m) (d = difference of two neighbours) into the shot-noise
#: gain of the model var = a * (signal + c).
CHI2_1_MEDIAN = 0.454936423119572



@njit(inline="always", fastmath=True, nogil=True)
def _noise_bin(q, q_lo, q_scale, nq):
    """The noise histogram's bin of ``q`` (float32): ``(log2 q - q_lo) * q_scale``,
    truncated and clipped to ``0..nq-1``; 0 for ``q <= 0``.  The rule itself;
    :func:`sample_pass` bins through its edges (:func:`noise_bin_edges`)."""
    if q > 0:
        qb = int((math.log2(q) - q_lo) * q_scale)
        return min(max(qb, 0), nq - 1)
    return 0


@njit(cache=True, nogil=True)
def noise_bin_edges(q_lo, q_scale, edges):
    """``edges[b]``, the smallest positive float32 that :func:`_noise_bin` puts in bin
    ``b`` or above (``edges[0]`` = 0; inf where no float32 reaches ``b``).

    Found by bisection over the float32 bit patterns (positive floats order
    as their bits do), so a float32 ``q > 0`` is in bin ``b`` exactly when
    ``edges[b] <= q < edges[b + 1]``: the rule's own result, including its
    rounding near an edge.
    """
    nq = edges.shape[0]
    bits = np.zeros(1, np.uint32)
    val = bits.view(np.float32)
    edges[0] = np.float32(0.0)
    for b in range(1, nq):
        lo = np.uint32(1)  # the smallest positive float32
        hi = np.uint32(0x7F7FFFFF)  # the largest finite one
        bits[0] = hi
        if _noise_bin(val[0], q_lo, q_scale, nq) < b:
            edges[b] = np.float32(np.inf)
            continue
        while lo < hi:
            mid = lo + (hi - lo) // np.uint32(2)
            bits[0] = mid
            if _noise_bin(val[0], q_lo, q_scale, nq) >= b:
                hi = mid
            else:
                lo = mid + np.uint32(1)
        bits[0] = lo
        edges[b] = val[0]


@intrinsic
def _f32_bits(typingctx, x):
    """The bits of a float32 as a uint32 (a register move: no array, no allocation)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


@njit(inline="always", fastmath=True, nogil=True)
def _bin_by_edges(q, q_lo, q_scale, qedges):
    """:func:`_noise_bin` of the float32 ``q`` without its log2 (half of
    :func:`sample_pass`'s time), ``qedges`` from :func:`noise_bin_edges`.  The
    exponent plus the mantissa read linearly is at most 0.09 octave under
    log2 q, so that guess is the bin or the one below (or above, at an edge's
    rounding); one branch-free step each way against the edges gives the
    rule's bin."""
    if not q > 0:
        return 0
    nq = qedges.shape[0]
    u = _f32_bits(q)
    lg = (np.float32(np.int32(u >> np.uint32(23)) - np.int32(127))
          + np.float32(u & np.uint32(0x7FFFFF)) * np.float32(1.0 / 8388608.0))
    g = min(max(int((lg - q_lo) * q_scale), 0), nq - 2)
    g += q >= qedges[g + 1]
    g -= q < qedges[g]
    return g


@njit(**_JIT)
def sample_pass(raw, dark, inv_flat, gscale, filt, noise_c, step, roi, hist_scale, q_lo, q_scale,
                qedges, hist, qhist):
    """Histograms of the filtered NIR and of the noise statistic on a subsampled grid.

    Parameters
    ----------
    raw, dark, inv_flat, gscale, filt, noise_c : as for :func:`normalise_pass`
    step : int, sampling step in both directions
    roi : (4,) int64, y0, y1, x0, x1 of the region that is sampled
    hist_scale : float, histogram bins per normalised count (bin 0 starts at 0)
    q_lo, q_scale : log2 origin and bins per octave of the noise histogram
    qedges : (Q,) float32, its bins' edges from :func:`noise_bin_edges` (``q_lo``, ``q_scale``)
    hist : (C, B) int64 out, per-chunk histograms of the filtered NIR
    qhist : (C, Q) int64 out, per-chunk histograms of ``log2(d**2 / (2 (m + c)))``,
        ``d`` and ``m`` the difference and mean of horizontal neighbours of the
        unfiltered frame (the median of this is robust to edges)
    """
    H, W = raw.shape
    nchunks = hist.shape[0]
    nbins = hist.shape[1]
    nq = qhist.shape[1]
    dyd = 1 if dark.shape[0] == H else 0
    dyf = 1 if inv_flat.shape[0] == H else 0
    ry0, ry1, rx0, rx1 = roi[0], roi[1], roi[2], roi[3]
    nrows = (ry1 - ry0 + step - 1) // step
    rows_per = (nrows + nchunks - 1) // nchunks
    for c in prange(nchunks):
        for b in range(nbins):
            hist[c, b] = 0
        for b in range(nq):
            qhist[c, b] = 0
        for iy in range(c * rows_per, min(nrows, (c + 1) * rows_per)):
            y = ry0 + iy * step
            yd = y * dyd
            yf = y * dyf
            for x in range(rx0, rx1, step):
                b = int(filt[y, x] * hist_scale)
                b = min(max(b, 0), nbins - 1)
                hist[c, b] += 1
                if x + 1 < W:
                    va = (np.float32(raw[y, x]) - np.float32(dark[yd, x])) * inv_flat[yf, x] * gscale
                    vb = (np.float32(raw[y, x + 1]) - np.float32(dark[yd, x + 1])) * inv_flat[yf, x + 1] * gscale
                    dd = va - vb
                    m = max(np.float32(0.5) * (va + vb), np.float32(0.0)) + noise_c
                    q = dd * dd / (np.float32(2.0) * m)
                    qhist[c, _bin_by_edges(q, q_lo, q_scale, qedges)] += 1


@njit(cache=True, nogil=True)
def percentile_from_hist(hist, fractions, out):
    """Values (in bins, fractional) at cumulative ``fractions`` of ``hist``.

    Parameters
    ----------
    hist : (B,) int64 counts
    fractions : (K,) float64, ascending, 0..1
    out : (K,) float64, written: bin position (bin b spans b..b+1)
    """
    total = 0
    for b in range(hist.shape[0]):
        total += hist[b]
    if total == 0:
        for j in range(fractions.shape[0]):
            out[j] = 0.0
        return
    j = 0
    cum = 0
    for b in range(hist.shape[0]):
        h = hist[b]
        while j < fractions.shape[0] and cum + h >= fractions[j] * total:
            inside = (fractions[j] * total - cum) / h if h > 0 else 0.0
            out[j] = b + inside
            j += 1
        cum += h
    while j < fractions.shape[0]:
        out[j] = hist.shape[0]
        j += 1
