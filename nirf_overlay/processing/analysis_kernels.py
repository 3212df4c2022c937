"""numba kernels for rim analysis (sub-pixel width profiles).

Kept apart from the pixel-path kernels so the two can be compiled and cached
independently.  Everything here works on small per-lesion ROIs.
"""

from __future__ import annotations

import math

import numba
import numpy as np


# Marker for pixels without signal in profile images (a NaN would not survive
# fastmath, which assumes finite values).
NO_SIGNAL = -1e30
NO_SIGNAL_TEST = -1e20


@numba.njit(nogil=True, cache=True, fastmath=True)
def _bilinear(img, y, x):
    h, w = img.shape
    if y < 0.0 or x < 0.0 or y > h - 1.0 or x > w - 1.0:
        return -1.0
    y0 = int(y)
    x0 = int(x)
    y1 = min(y0 + 1, h - 1)
    x1 = min(x0 + 1, w - 1)
    fy = y - y0
    fx = x - x0
    top = img[y0, x0] * (1.0 - fx) + img[y0, x1] * fx
    bot = img[y1, x0] * (1.0 - fx) + img[y1, x1] * fx
    return top * (1.0 - fy) + bot * fy


@numba.njit(nogil=True, cache=True, fastmath=True)
def profile_crossings(img, ys, xs, ny, nx, base, peak, lev_in, lev_out, max_len, step):
    """Sub-pixel distances from each medial point to the rim's two edges.

    Parameters
    ----------
    img : (h, w) float32
        Smoothed NIR (ROI); :data:`NO_SIGNAL` marks pixels without signal
        (instrument), anything interpolated from them reads below
        :data:`NO_SIGNAL_TEST`.
    ys, xs : (n,) float64, medial points (ROI pixels)
    ny, nx : (n,) float64, unit normal pointing away from the core
    base : float, liver background B
    peak : (n,) float64, rim peak at each medial point; each section is
        normalised as ``q = (I - B) / (peak - B)`` (0 = liver, 1 = peak)
    lev_in, lev_out : edge levels of ``q`` on the core side / the liver side
    max_len, step : search length and step along the normal, pixels

    Returns
    -------
    t_in, t_out : (n,) float64 distances to the core-side and liver-side
        edges (NaN where not found).
    """
    n = ys.shape[0]
    t_in = np.full(n, np.nan)
    t_out = np.full(n, np.nan)
    for i in range(n):
        span = peak[i] - base
        if not span > 0.0:
            continue
        y = ys[i]
        x = xs[i]
        c0 = _bilinear(img, y, x)
        if c0 < NO_SIGNAL_TEST:
            continue
        c = (c0 - base) / span
        for j in range(2):
            sgn = -1.0 if j == 0 else 1.0
            lev = lev_in if j == 0 else lev_out
            if c < lev:
                break
            prev = c
            t = 0.0
            while t < max_len:
                t2 = t + step
                raw = _bilinear(img, y + sgn * t2 * ny[i], x + sgn * t2 * nx[i])
                if raw == -1.0 or raw < NO_SIGNAL_TEST:
                    break
                v = (raw - base) / span
                if v < lev:
                    frac = (prev - lev) / (prev - v) if prev != v else 0.5
                    if j == 0:
                        t_in[i] = t + frac * step
                    else:
                        t_out[i] = t + frac * step
                    break
                prev = v
                t = t2
    return t_in, t_out


@numba.njit(nogil=True, cache=True, fastmath=True)
def mean_cross_section(img, ys, xs, ny, nx, base, peak, t_in, t_out, half_n, dx):
    """Mean normalised rim cross-section, each section centred between its edges.

    Samples ``q = (I - B) / (peak_i - B)`` at ``k * dx`` for k =
    -half_n..half_n along the normal (negative = towards the core) around
    each section's midpoint, and averages over sections with both edges found.

    Returns (2 * half_n + 1,) float64 (zeros where nothing was sampled).
    """
    m = 2 * half_n + 1
    acc = np.zeros(m)
    cnt = np.zeros(m)
    for i in range(ys.shape[0]):
        if not (np.isfinite(t_in[i]) and np.isfinite(t_out[i])):
            continue
        span = peak[i] - base
        mid = 0.5 * (t_out[i] - t_in[i])
        cy = ys[i] + mid * ny[i]
        cx = xs[i] + mid * nx[i]
        for k in range(m):
            t = (k - half_n) * dx
            raw = _bilinear(img, cy + t * ny[i], cx + t * nx[i])
            if raw != -1.0 and raw > NO_SIGNAL_TEST:
                acc[k] += (raw - base) / span
                cnt[k] += 1.0
    for k in range(m):
        if cnt[k] > 0:
            acc[k] /= cnt[k]
    return acc


@numba.njit(nogil=True, cache=True, fastmath=True)
def _rim_model_lstsq(prof, pins):
    """Least-squares fit of ``c0 + c1 * step_in + c2 * box`` to ``prof``.

    ``pins[k]`` is the blurred inner step at sample k; the samples are
    symmetric (t_k = -t_{m-1-k}), so the outer edge's step is the mirrored
    inner one, Phi((t - w/2)/s) = 1 - Phi((-t + w/2)/s), and the box is
    their difference.  The 3 x 3 normal equations are accumulated in scalars
    and solved by Cramer's rule: no allocation in the fit's inner loop.
    Returns (sse, c0, c1, c2); sse is 1e300 for a singular system.
    """
    m = prof.shape[0]
    s11 = s12 = s13 = s22 = s23 = s33 = 0.0
    b1 = b2 = b3 = 0.0
    yy = 0.0
    for k in range(m):
        pin = pins[k]
        pout = 1.0 - pins[m - 1 - k]
        box = pin - pout
        y = prof[k]
        s11 += 1.0
        s12 += pin
        s13 += box
        s22 += pin * pin
        s23 += pin * box
        s33 += box * box
        b1 += y
        b2 += pin * y
        b3 += box * y
        yy += y * y
    s22 += 1e-9
    s33 += 1e-9
    det = (s11 * (s22 * s33 - s23 * s23) - s12 * (s12 * s33 - s23 * s13)
           + s13 * (s12 * s23 - s22 * s13))
    if abs(det) < 1e-18:
        return 1e300, 0.0, 0.0, 0.0
    c0 = (b1 * (s22 * s33 - s23 * s23) - s12 * (b2 * s33 - s23 * b3) + s13 * (b2 * s23 - s22 * b3)) / det
    c1 = (s11 * (b2 * s33 - s23 * b3) - b1 * (s12 * s33 - s23 * s13) + s13 * (s12 * b3 - b2 * s13)) / det
    c2 = (s11 * (s22 * b3 - b2 * s23) - s12 * (s12 * b3 - b2 * s13) + b1 * (s12 * s23 - s22 * s13)) / det
    # residual sum of squares from the normal equations
    sse = yy - (c0 * b1 + c1 * b2 + c2 * b3)
    return sse, c0, c1, c2


@numba.njit(nogil=True, cache=True, fastmath=True)
def _rim_model_sse(prof, dx, half_n, w, s):
    """The rim model's fit for given w, s with libm's erf (one per sample).

    Returns (sse, c0, c1, c2).
    """
    m = prof.shape[0]
    inv = 1.0 / (math.sqrt(2.0) * s)
    pins = np.empty(m)
    for k in range(m):
        t = (k - half_n) * dx
        pins[k] = 0.5 * (1.0 + math.erf((t + 0.5 * w) * inv))
    return _rim_model_lstsq(prof, pins)


@numba.njit(nogil=True, cache=True, fastmath=True)
def _erf_approx(x):
    """erf(x) within 3e-7 (Abramowitz & Stegun 7.1.28): no exp, ~4x cheaper than libm's."""
    a = abs(x)
    p = 1.0 + a * (0.0705230784 + a * (0.0422820123 + a * (0.0092705272 + a * (
        0.0001520143 + a * (0.0002765672 + a * 0.0000430638)))))
    p2 = p * p
    p4 = p2 * p2
    p8 = p4 * p4
    r = 1.0 - 1.0 / (p8 * p8)
    return r if x >= 0.0 else -r


@numba.njit(nogil=True, cache=True, fastmath=True)
def _rim_model_sse_approx(prof, dx, half_n, w, s, pins):
    """:func:`_rim_model_sse`'s residual with :func:`_erf_approx` (for screening only)."""
    m = prof.shape[0]
    inv = 1.0 / (math.sqrt(2.0) * s)
    for k in range(m):
        t = (k - half_n) * dx
        pins[k] = 0.5 * (1.0 + _erf_approx((t + 0.5 * w) * inv))
    return _rim_model_lstsq(prof, pins)[0]


# Grid points whose screened residual is within this fraction of the best one
# (plus 1e-6 of the profile's energy) are evaluated exactly.  The screen's
# erf is within 3e-7, which moves a residual by orders of magnitude less.
_SCREEN_RTOL = 1e-2


@numba.njit(nogil=True, cache=True, fastmath=True)
def fit_rim_profile(prof, dx, half_n, fwhm):
    """Fit the blurred rim model to a mean cross-section.

    Model (``t`` across the rim, negative towards the core, rim centred at 0)::

        q(t) = c0 + c1 * Phi((t + w/2) / s) + c2 * [Phi((t + w/2) / s) - Phi((t - w/2) / s)]

    i.e. a dark core (level ``c0``) stepping up to liver (``c0 + c1``) at the
    rim's inner edge, plus the rim (``c2`` above liver) of true width ``w``,
    all blurred by tissue scattering of sigma ``s``.  Coarse-to-fine grid
    search over ``w`` (0.2..1.6 x FWHM) and ``s`` (0.03..1.5 x FWHM), linear
    coefficients by least squares.

    The cost is the ~9000 erf of the 4 x 64 grid points.  Each grid is
    first screened with a cheap erf (:func:`_erf_approx`); only the points
    whose residual comes within :data:`_SCREEN_RTOL` of the best are
    evaluated with libm's erf (:func:`_rim_model_sse`), in the grid's order
    and with the same strict comparison, so the result is the exact search's
    (bit-identical; tests/test_measure_kernels.py) at ~40 % of its cost.

    Returns
    -------
    (w, s, c0, c1, c2) in pixels / profile units.
    """
    return _fit_rim_grid(prof, dx, half_n, fwhm, True)


@numba.njit(nogil=True, cache=True, fastmath=True)
def fit_rim_profile_exact(prof, dx, half_n, fwhm):
    """:func:`fit_rim_profile` without the screen (every grid point with libm's erf); for tests."""
    return _fit_rim_grid(prof, dx, half_n, fwhm, False)


@numba.njit(nogil=True, cache=True, fastmath=True)
def _fit_rim_grid(prof, dx, half_n, fwhm, screened):
    """The coarse-to-fine grid search of :func:`fit_rim_profile`; ``screened``
    evaluates exactly only the points the cheap residual puts near the best."""
    m = prof.shape[0]
    pins = np.empty(m)
    screen = np.empty(64)
    energy = 0.0
    for k in range(m):
        energy += prof[k] * prof[k]
    lw0, lw1 = 0.2, 1.6
    ls0, ls1 = math.log(0.03), math.log(1.5)
    bw = 1.0
    bls = ls0
    b0 = b1 = b2 = 0.0
    for it in range(4):
        cut = 0.0
        if screened:
            lowest = 1e300
            for iw in range(8):
                fw = lw0 + (lw1 - lw0) * iw / 7.0
                for js in range(8):
                    ls = ls0 + (ls1 - ls0) * js / 7.0
                    v = _rim_model_sse_approx(prof, dx, half_n, fw * fwhm, math.exp(ls) * fwhm, pins)
                    screen[iw * 8 + js] = v
                    if v < lowest:
                        lowest = v
            cut = lowest + _SCREEN_RTOL * (abs(lowest) + 1e-6 * energy + 1e-12)
        best = 1e300
        for iw in range(8):
            fw = lw0 + (lw1 - lw0) * iw / 7.0
            for js in range(8):
                if screened and screen[iw * 8 + js] > cut:
                    continue
                ls = ls0 + (ls1 - ls0) * js / 7.0
                sse, c0, c1, c2 = _rim_model_sse(prof, dx, half_n, fw * fwhm, math.exp(ls) * fwhm)
                if sse < best:
                    best = sse
                    bw = fw
                    bls = ls
                    b0, b1, b2 = c0, c1, c2
        dw = (lw1 - lw0) / 7.0
        dls = (ls1 - ls0) / 7.0
        lw0, lw1 = max(0.05, bw - 1.2 * dw), bw + 1.2 * dw
        ls0, ls1 = bls - 1.2 * dls, bls + 1.2 * dls
    return bw * fwhm, math.exp(bls) * fwhm, b0, b1, b2


def rim_model(t, w, s, c0, c1, c2):
    """Evaluate the rim model of :func:`fit_rim_profile` at scalar ``t``."""
    inv = 1.0 / (math.sqrt(2.0) * s)
    pin = 0.5 * (1.0 + math.erf((t + 0.5 * w) * inv))
    pout = 0.5 * (1.0 + math.erf((t - 0.5 * w) * inv))
    return c0 + c1 * pin + c2 * (pin - pout)


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
def refine_zones(img, d_rim_up, d_in_core, core_up, valid_q, zone_thr, zone_rad, core_rad,
                 reach_thr, zone, reach, not_outside, vals, dc_y0=0, dc_x0=0):
    """The masks of :func:`.measure.refine_rim` around the coarse rim, in one pass.

    With ``erode(rad) = d_in_core > rad`` (``core_up`` when ``rad`` <= 0)::

        zone        = (d_rim_up <= zone_thr) & ~erode(zone_rad) [& valid_q]
        reach       = (d_rim_up <= reach_thr) [& valid_q]
        not_outside = reach | core_up               (uint8 0/1)

    and the median of ``img`` over ``erode(core_rad)`` when it has at least
    4 pixels, else over ``core_up``.

    Parameters
    ----------
    img : (h, w) float32, blurred refine-grid NIR
    d_rim_up, d_in_core : (h, w) float32 distance maps (to the coarse rim;
        inside the coarse core).  ``d_in_core`` may be a crop at (dc_y0,
        dc_x0) holding every core pixel: outside it the distance is 0.
    core_up : (h, w) bool; valid_q : (h, w) bool or empty for all valid
    zone_thr, reach_thr : float32 thresholds (numpy compares float32 arrays
        with float32 scalars, so they are passed as float32)
    zone, reach : (h, w) bool outputs; not_outside : (h, w) uint8 output
    vals : (2 * h * w,) float32 scratch

    Returns
    -------
    core_median : float (NaN when the core is empty)
    n_outside : int, pixels outside (``not_outside == 0``)
    """
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
def ridge_sections(rim, dt, gy, gx, peak, max_n):
    """Medial points of the rim and their cross-section directions.

    The ridge is ``rim & (dt >= dilate3x3(dt) - 0.5)`` (float32, ``dt`` the
    rim's distance transform); at most ``max_n`` of its points (row-major
    order, subsampled like ``np.linspace(0, n - 1, max_n).astype(intp)``)
    get the unit normal ``(gy, gx) / hypot`` where that norm exceeds 1e-3.

    Returns
    -------
    fallback : float, median of ``2 * dt`` over the ridge (``2 * dt.max()``
        without ridge), float32 arithmetic as numpy's
    n_ridge : int
    ys, xs, ny, nx, pk : (n,) float64 points, unit normals and the peak
        there, for the points with a usable normal
    """
    h, w = rim.shape
    half = np.float32(0.5)
    two = np.float32(2.0)
    ry = np.empty(h * w, np.int64)
    rx = np.empty(h * w, np.int64)
    vals = np.empty(h * w, np.float32)
    n = 0
    dmax = dt[0, 0]
    for y in range(h):
        for x in range(w):
            v = dt[y, x]
            if v > dmax:
                dmax = v
            if not rim[y, x]:
                continue
            # v >= max(3x3) - 0.5  <=>  no neighbour nb with v < nb - 0.5
            # (float subtraction is monotone): stop at the first such one
            on_ridge = True
            for yy in range(max(0, y - 1), min(h, y + 2)):
                for xx in range(max(0, x - 1), min(w, x + 2)):
                    if v < dt[yy, xx] - half:
                        on_ridge = False
                        break
                if not on_ridge:
                    break
            if on_ridge:
                ry[n] = y
                rx[n] = x
                vals[n] = two * v
                n += 1
    if n > 0:
        fallback = np.float64(_median_f32(vals, n))
    else:
        fallback = np.float64(two * dmax)
    if n > max_n:
        sel = np.empty(max_n, np.int64)
        step = (n - 1.0) / (max_n - 1)
        for i in range(max_n - 1):
            sel[i] = int(i * step + 0.0)
        sel[max_n - 1] = n - 1
    else:
        sel = np.arange(n)
    m_sel = sel.shape[0]
    ys = np.empty(m_sel)
    xs = np.empty(m_sel)
    ny = np.empty(m_sel)
    nx = np.empty(m_sel)
    pk = np.empty(m_sel)
    k = 0
    for i in range(m_sel):
        y = ry[sel[i]]
        x = rx[sel[i]]
        a = np.float64(gy[y, x])
        b = np.float64(gx[y, x])
        nrm = math.hypot(a, b)
        if nrm > 1e-3:
            ys[k] = y
            xs[k] = x
            ny[k] = a / nrm
            nx[k] = b / nrm
            pk[k] = np.float64(peak[y, x])
            k += 1
    return fallback, n, ys[:k], xs[:k], ny[:k], nx[:k], pk[:k]


@numba.njit(nogil=True, cache=True)
def width_median(t_in, t_out):
    """Median of the finite ``t_in + t_out`` (float64) and how many there are.

    Same value as ``np.median(w[np.isfinite(w)])``; NaN when there is none.
    """
    n = t_in.shape[0]
    buf = np.empty(n)
    k = 0
    for i in range(n):
        v = t_in[i] + t_out[i]
        if np.isfinite(v):
            buf[k] = v
            k += 1
    if k == 0:
        return np.nan, 0
    return _median_f32(buf, k), k


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
    :func:`.segment.boundary` gives: a core pixel with a 3 x 3 neighbour
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
