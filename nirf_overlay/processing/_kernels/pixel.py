"""numba kernels of the per-pixel path: two fused passes per frame.

1. :func:`normalise_pass` reads the raw NIR once and writes the normalised,
   temporally filtered NIR (in place over the previous filtered frame, which
   *is* the filter's state), the saturation mask and the count of saturated
   pixels -- and, in the single-view display modes, the display pixels too.
   :func:`~.sample.sample_pass` then reads a subsampled grid for the
   display-level histogram and the noise statistic (:mod:`.sample`).
2. :func:`composite_pass` reads WL and the filtered NIR once and writes the
   8-bit BGR display frame through a look-up table that already holds the
   colour map, the dynamic-range compression and the alpha ramp.

Both run rows (or row chunks) in parallel with ``prange``; per-chunk
histograms avoid write races and are summed by the caller.  Arrays are
preallocated by :class:`~nirf_overlay.processing.normalise.Normaliser` and
:class:`~nirf_overlay.processing.composite.Compositor`; nothing here
allocates per frame.  ``cache=True`` keeps the compiled code on disk
(``NUMBA_CACHE_DIR``) so the next start only loads it.  Called by
:mod:`~nirf_overlay.processing.normalise`, :mod:`~nirf_overlay.processing.levels`
and :mod:`~nirf_overlay.processing.composite`; self-contained (see
:mod:`nirf_overlay.processing._kernels`).

Why :func:`normalise_pass` keeps 23 positional arguments: grouped into
named tuples (calibration, temporal filter, display table, fused sweep)
unpacked into the same locals before the parallel loop, it gave the same
results to the bit but cost 6 % of the normalisation at 1080p
(``Normaliser.process`` median 1.52 -> 1.61 ms, 5 of 5 alternating runs of
cached kernels, 2 cores; composite_pass grouped the same way measured
equal).  A kernel on the per-frame path keeps its arguments flat; the
callers build them in one place each (``Normaliser.process``,
``Compositor.prepare_fused`` / ``_pixels``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_JIT = dict(parallel=True, fastmath=True, cache=True, nogil=True)


#: pixels per block of the overlay's visibility test and blend
_BLOCK = 16


def row_scratch_bytes(width: int) -> int:
    """Bytes of scratch one thread needs for a display row ``width`` pixels wide.

    Layout (see :func:`_row_scratch`): the row's LUT indices (int32), its
    visibility flags (uint8) and one block of packed table entries (uint64);
    the row is padded to whole blocks so every part stays 8-byte aligned.
    """
    wp = -(-int(width) // _BLOCK) * _BLOCK
    return 5 * wp + 8 * _BLOCK


@njit(inline="always", nogil=True)
def _check_scratch(rowbuf, W):
    """Refuse a scratch array the row code would overrun (it is not bounds-checked)."""
    wp = (W + _BLOCK - 1) // _BLOCK * _BLOCK
    if rowbuf.itemsize != 1 or rowbuf.shape[1] < 5 * wp + 8 * _BLOCK:
        raise ValueError("display scratch rows too short: allocate them with row_scratch_bytes()")


@njit(inline="always", nogil=True)
def _row_scratch(buf, W):
    """``(ii, vis, vis64, eb)`` views of one thread's scratch ``buf`` (uint8,
    :func:`row_scratch_bytes` long): int32 indices, uint8 flags, the flags as
    uint64 words (8 pixels each) and a uint64 block buffer."""
    wp = (W + _BLOCK - 1) // _BLOCK * _BLOCK
    ii = buf[:4 * wp].view(np.int32)
    vis = buf[4 * wp:5 * wp]
    eb = buf[5 * wp:5 * wp + 8 * _BLOCK].view(np.uint64)
    return ii, vis, vis.view(np.uint64), eb


@njit(cache=True, nogil=True)
def pack_lut(lut, alut, sat_bgr, blend, tab):
    """Fold colour, opacity and the saturation colour into one fixed-point table.

    Parameters
    ----------
    lut : (N, 3) uint8 BGR colour per LUT entry
    alut : (N,) int32 opacity per entry, 0..256 (read only when ``blend``)
    sat_bgr : (3,) uint8, colour of saturated pixels
    blend : bool, True = alpha-blend over WL (overlay); False = colour only
    tab : (N + 1,) uint64 out; entry N is the saturation colour

    Returns
    -------
    int, the lowest index drawn over WL (the overlay's first non-transparent
    entry, N -- saturation -- at most; 0 in the colour-only modes)

    Notes
    -----
    Entry ``i`` holds ``ia = 256 - a`` in bits 0..15 and ``lut[i, c] * a + 128``
    for channel ``c`` in bits 16 (c+1)..16 (c+1) + 15, so a display byte is
    ``(wl * ia + pre) >> 8``, exactly the blend ``(wl (256 - a) + lut a + 128) >> 8``
    (each term fits 16 bits: ``255 * 256 + 128 < 2**16``).  An opaque entry
    (``a = 256``: colour-only modes and saturation) has ``ia = 0``; a
    transparent one (``a = 0``) gives back ``wl`` exactly.  One 64-bit load
    per pixel instead of four.
    """
    n = lut.shape[0]
    for i in range(n + 1):
        if i == n:
            a = np.uint64(256)
            col = sat_bgr
        else:
            a = np.uint64(alut[i]) if blend else np.uint64(256)
            col = lut[i]
        e = np.uint64(256) - a
        e |= (np.uint64(col[0]) * a + np.uint64(128)) << np.uint64(16)
        e |= (np.uint64(col[1]) * a + np.uint64(128)) << np.uint64(32)
        e |= (np.uint64(col[2]) * a + np.uint64(128)) << np.uint64(48)
        tab[i] = e
    if not blend:
        return 0
    for i in range(n):
        if alut[i] != 0:
            return i
    return n


@njit(inline="always", fastmath=True, nogil=True)
def _blend_px(wl2, out2, y, x, e):
    """Display pixel (y, x) from the packed entry ``e`` (see :func:`pack_lut`)."""
    m16 = np.uint64(0xFFFF)
    ia = e & m16
    j = 3 * x
    out2[y, j] = (np.uint64(wl2[y, j]) * ia + ((e >> np.uint64(16)) & m16)) >> np.uint64(8)
    out2[y, j + 1] = (np.uint64(wl2[y, j + 1]) * ia + ((e >> np.uint64(32)) & m16)) >> np.uint64(8)
    out2[y, j + 2] = (np.uint64(wl2[y, j + 2]) * ia + (e >> np.uint64(48))) >> np.uint64(8)


@njit(inline="always", fastmath=True, nogil=True)
def _display_row(wl2, out2, nir, sat, y, W, lo, idx_scale, tab, show_sat, i_on, blend, scratch):
    """Display row ``y`` through the packed table ``tab`` (see :func:`pack_lut`).

    ``wl2`` and ``out2`` are (H, W*3) views; ``scratch`` is the calling
    thread's row scratch (:func:`row_scratch_bytes`).  The work is split so
    that the loops over every pixel vectorise: the LUT index of the row
    (saturated pixels get the extra entry N), in the overlay a visibility
    flag per pixel and the WL copy.  Blocks of 16 pixels with no flag set
    (two uint64 words are zero) are done; the others gather their 16 table
    entries and blend them branch-free in a loop that vectorises (a
    transparent entry gives back WL exactly).  On the phantom about a quarter
    of the pixels are visible; the old per-pixel test-and-branch over every
    pixel cost more than the blending itself.

    (Its 13 arguments stay apart for the reason in the module docstring.)
    """
    ii, vis, vis64, eb = _row_scratch(scratch, W)
    N1 = np.float32(tab.shape[0] - 2)
    n1 = np.int32(tab.shape[0] - 2)
    isat = np.int32(tab.shape[0] - 1)
    for x in range(W):
        i = np.int32(min(max((nir[y, x] - lo) * idx_scale, np.float32(0.0)), N1))
        # again in integers: under fastmath a NaN passes the float clamp and
        # converts to INT_MIN, an index far outside the table (no bounds check)
        ii[x] = min(max(i, np.int32(0)), n1)
    if not blend:
        if show_sat:
            for x in range(W):
                ii[x] = isat if sat[y, x] != 0 else ii[x]
        # opaque colour: ia = 0, the byte is the high byte of each 16-bit term
        for x in range(W):
            # unsigned index: no negative-index wrap-around code
            e = tab[np.uint32(ii[x])]
            j = 3 * x
            out2[y, j] = (e >> np.uint64(24)) & np.uint64(0xFF)
            out2[y, j + 1] = (e >> np.uint64(40)) & np.uint64(0xFF)
            out2[y, j + 2] = e >> np.uint64(56)
        return
    if show_sat:
        for x in range(W):
            i = isat if sat[y, x] != 0 else ii[x]
            ii[x] = i
            vis[x] = i >= i_on
    else:
        for x in range(W):
            vis[x] = ii[x] >= i_on
    for j in range(3 * W):
        out2[y, j] = wl2[y, j]
    m16 = np.uint64(0xFFFF)
    nb = W // _BLOCK
    for b in range(nb):
        if (vis64[2 * b] | vis64[2 * b + 1]) == 0:
            continue
        x0 = b * _BLOCK
        for k in range(_BLOCK):  # scalar loads...
            eb[k] = tab[np.uint32(ii[x0 + k])]
        j0 = 3 * x0
        for k in range(_BLOCK):  # ...so that this blend vectorises
            e = eb[k]
            ia = e & m16
            j = j0 + 3 * k
            out2[y, j] = (np.uint64(wl2[y, j]) * ia + ((e >> np.uint64(16)) & m16)) >> np.uint64(8)
            out2[y, j + 1] = (np.uint64(wl2[y, j + 1]) * ia
                              + ((e >> np.uint64(32)) & m16)) >> np.uint64(8)
            out2[y, j + 2] = (np.uint64(wl2[y, j + 2]) * ia + (e >> np.uint64(48))) >> np.uint64(8)
    for x in range(nb * _BLOCK, W):
        if vis[x]:
            _blend_px(wl2, out2, y, x, tab[np.uint32(ii[x])])


@njit(**_JIT)
def normalise_pass(raw, dark, inv_flat, gscale, sat_level, filt, have_prev, alpha, k,
                   noise_a, noise_c, sat, sat_rows, sat_count,
                   rowbuf, do_composite, wl, lo, idx_scale, tab, i_on, blend, show_sat, out):
    """Fused normalisation, temporal filter and saturation -- and, with
    ``do_composite``, the display pixels in the same sweep.

    Parameters
    ----------
    raw : (H, W) uint16, raw NIR counts in WL pixel coordinates
    dark : (H, W) uint16 or float32 dark counts, or (1, W) used for every row (zeros:
        no dark); uint16 when the dark is whole counts (half the bytes read, the
        same float32 result: every uint16 is exact in float32)
    inv_flat : (H, W) float32 1 / flat field, or (1, W) used for every row (ones: no flat)
    gscale : float, exposure/gain normalisation factor (ref / current)
    sat_level : int, raw count at and above which a pixel is saturated
    filt : (H, W) float32, in: previous filtered frame; out: this one
    have_prev : bool, False on the first frame after a reset (no filtering)
    alpha : float, weight of the previous frame where nothing moved (0..0.95)
    k : float, motion threshold in noise standard deviations
    noise_a, noise_c : noise model var(v) = noise_a * (max(v, 0) + noise_c)
    sat : (H, W) uint8 in/out, 1 where saturated; a row is written only when it
        has a saturated pixel now or had one before (``sat_rows``), else it is
        all zeros already (most frames saturate nowhere: 1 byte a pixel not written)
    sat_rows : (H,) uint8 in/out, 1 where the row of ``sat`` holds a saturated pixel
    sat_count : (C,) int64 out, saturated pixels per chunk of rows (C chunks)
    rowbuf : (C, :func:`row_scratch_bytes` (W)) uint8 scratch, one row per chunk
        (used only with ``do_composite``)
    do_composite : bool, also write ``out`` (see :func:`composite_pass` for
        ``wl, lo, idx_scale, tab, i_on, blend, show_sat, out``; the
        display levels are the previous frame's, so the frame is read once)

    Notes
    -----
    ``v = (raw - dark) * inv_flat * gscale``.  With ``p`` the previous
    filtered value and ``r = |v - p| / (k sigma(p))`` the new value is
    ``w p + (1 - w) v`` with ``w = alpha * clip(2 - r, 0, 1)``: full
    averaging while the change is within ``k`` sigma, none beyond ``2 k``
    sigma (a moving edge is taken as is), a linear blend between.
    The histograms are made by :func:`sample_pass`: in this kernel they kept
    LLVM from vectorising the row loop (2x slower).
    """
    H, W = raw.shape
    nchunks = sat_count.shape[0]
    # a (1, W) dark or flat is one row used for every row: always a valid
    # load, so the loop has no data-dependent branch and vectorises
    dyd = 1 if dark.shape[0] == H else 0
    dyf = 1 if inv_flat.shape[0] == H else 0
    alpha_eff = alpha if have_prev else np.float32(0.0)
    first = not have_prev
    rows_per = (H + nchunks - 1) // nchunks
    k2 = k * k
    if do_composite:
        _check_scratch(rowbuf, W)
        if rowbuf.shape[0] < nchunks:
            raise ValueError("display scratch: one row per chunk needed")
    wl2 = wl.reshape(wl.shape[0], wl.shape[1] * 3)
    out2 = out.reshape(out.shape[0], out.shape[1] * 3)
    for c in prange(nchunks):
        nsat = 0
        y0 = c * rows_per
        y1 = min(H, y0 + rows_per)
        for y in range(y0, y1):
            yd = y * dyd
            yf = y * dyf
            # the row's largest count, not a count of saturated pixels: a sum
            # in 64-bit lanes held the loop to 4 float lanes (xmm), the max
            # lets it run 8 (ymm): 0.6-0.7x the pass on one thread, the
            # same bits (the count is made below, on rows that saturate)
            rmax = np.uint16(0)
            for x in range(W):
                r = raw[y, x]
                v = (np.float32(r) - np.float32(dark[yd, x])) * inv_flat[yf, x] * gscale
                p = filt[y, x]
                diff = v - p
                t2 = k2 * noise_a * (max(p, np.float32(0.0)) + noise_c) + np.float32(1e-20)
                ratio = math.sqrt(diff * diff / t2)
                w = alpha_eff * min(np.float32(1.0), max(np.float32(0.0), np.float32(2.0) - ratio))
                f = p + (np.float32(1.0) - w) * diff
                s = r >= sat_level
                # saturation is not noise: never average it away; a first
                # frame is taken exactly as it is
                filt[y, x] = v if (s or first) else f
                rmax = max(rmax, r)
            hit = rmax >= sat_level
            if hit or sat_rows[y] != 0:
                # the raw row is still in the first-level cache
                nrow = 0
                for x in range(W):
                    q = raw[y, x] >= sat_level
                    sat[y, x] = q
                    nrow += q
                sat_rows[y] = hit
                nsat += nrow
            if do_composite:
                # second sweep over the row while it is still in cache: the
                # loop above stays free of table look-ups and can vectorise
                _display_row(wl2, out2, filt, sat, y, W, lo, idx_scale, tab, show_sat, i_on,
                             blend, rowbuf[c])
        sat_count[c] = nsat


@njit(**_JIT)
def composite_pass(wl, nir, sat, lo, idx_scale, tab, i_on, blend, show_sat, rowbuf, out):
    """One pass WL + filtered NIR -> BGR display frame.

    Parameters
    ----------
    wl : (H, W, 3) uint8 BGR (not read unless ``blend``)
    nir : (H, W) float32 normalised counts (0 outside the NIR field of view)
    sat : (H, W) uint8, 1 where saturated (ignored unless ``show_sat``)
    lo, idx_scale : LUT index = (nir - lo) * idx_scale, clipped to the LUT
    tab : (N + 1,) uint64 packed table from :func:`pack_lut` (colour map,
        compression and opacity folded in; entry N = saturation colour)
    i_on : int, the lowest index drawn over WL (what :func:`pack_lut` returns)
    blend : bool, True = alpha-blend over WL (overlay); False = colour only
    show_sat : bool
    rowbuf : (C, :func:`row_scratch_bytes` (W)) uint8 scratch: the rows are
        cut into C chunks, one scratch row each
    out : (H, W, 3) uint8 BGR, written
    """
    H, W = nir.shape
    wl2 = wl.reshape(wl.shape[0], wl.shape[1] * 3)
    out2 = out.reshape(H, W * 3)
    nchunks = rowbuf.shape[0]
    _check_scratch(rowbuf, W)
    rows_per = (H + nchunks - 1) // nchunks
    for c in prange(nchunks):
        for y in range(c * rows_per, min(H, (c + 1) * rows_per)):
            _display_row(wl2, out2, nir, sat, y, W, lo, idx_scale, tab, show_sat, i_on, blend,
                         rowbuf[c])
