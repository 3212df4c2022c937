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


@numba.njit(cache=True, fastmath=True)
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


@numba.njit(cache=True, fastmath=True)
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


@numba.njit(cache=True, fastmath=True)
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


@numba.njit(cache=True, fastmath=True)
def _rim_model_sse(prof, dx, half_n, w, s):
    """Least-squares fit of ``c0 + c1 * step_in + c2 * box`` for given w, s.

    The 3 x 3 normal equations are accumulated in scalars and solved by
    Cramer's rule: no allocation in the fit's inner loop.
    Returns (sse, c0, c1, c2).
    """
    m = prof.shape[0]
    inv = 1.0 / (math.sqrt(2.0) * s)
    s11 = s12 = s13 = s22 = s23 = s33 = 0.0
    b1 = b2 = b3 = 0.0
    yy = 0.0
    for k in range(m):
        t = (k - half_n) * dx
        pin = 0.5 * (1.0 + math.erf((t + 0.5 * w) * inv))
        pout = 0.5 * (1.0 + math.erf((t - 0.5 * w) * inv))
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


@numba.njit(cache=True, fastmath=True)
def fit_rim_profile(prof, dx, half_n, fwhm):
    """Fit the blurred rim model to a mean cross-section.

    Model (``t`` across the rim, negative towards the core, rim centred at 0)::

        q(t) = c0 + c1 * Phi((t + w/2) / s) + c2 * [Phi((t + w/2) / s) - Phi((t - w/2) / s)]

    i.e. a dark core (level ``c0``) stepping up to liver (``c0 + c1``) at the
    rim's inner edge, plus the rim (``c2`` above liver) of true width ``w``,
    all blurred by tissue scattering of sigma ``s``.  Coarse-to-fine grid
    search over ``w`` (0.2..1.6 x FWHM) and ``s`` (0.03..1.5 x FWHM), linear
    coefficients by least squares.

    Returns
    -------
    (w, s, c0, c1, c2) in pixels / profile units.
    """
    lw0, lw1 = 0.2, 1.6
    ls0, ls1 = math.log(0.03), math.log(1.5)
    bw = 1.0
    bls = ls0
    b0 = b1 = b2 = 0.0
    for it in range(4):
        best = 1e300
        for iw in range(8):
            fw = lw0 + (lw1 - lw0) * iw / 7.0
            for js in range(8):
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


@numba.njit(cache=True, fastmath=True)
def profile_widths(u, ys, xs, ny, nx, max_len, step):
    """Width of a ridge across each medial point, with sub-pixel crossings.

    Parameters
    ----------
    u : (h, w) float32
        Normalised ridge profile: 1 at the local rim peak, 0 at the local
        base (background or core level); the rim edge is where ``u`` = 0.5.
    ys, xs : (n,) float64
        Medial points (ROI pixels).
    ny, nx : (n,) float64
        Unit normal at each point (across the rim).
    max_len : float
        How far to search on each side, pixels.
    step : float
        Sampling step along the normal, pixels.

    Returns
    -------
    (n,) float64 widths in pixels; NaN where an edge was not found on both sides.
    """
    n = ys.shape[0]
    out = np.full(n, np.nan)
    for i in range(n):
        y = ys[i]
        x = xs[i]
        c = _bilinear(u, y, x)
        if c < 0.5:
            continue
        total = 0.0
        ok = True
        for sgn in (-1.0, 1.0):
            prev = c
            t = 0.0
            found = False
            while t < max_len:
                t2 = t + step
                v = _bilinear(u, y + sgn * t2 * ny[i], x + sgn * t2 * nx[i])
                if v < 0.0:
                    break
                if v < 0.5:
                    # linear interpolation of the 0.5 crossing between t and t2
                    frac = (prev - 0.5) / (prev - v) if prev != v else 0.5
                    total += t + frac * step
                    found = True
                    break
                prev = v
                t = t2
            if not found:
                ok = False
                break
        if ok:
            out[i] = total
    return out


@numba.njit(cache=True, fastmath=True)
def mean_profile(u, ys, xs, ny, nx, widths, n_samples, dx):
    """Mean cross-section of the rim, centred on each section's midpoint and folded.

    For each medial point with a finite width, the section's midpoint (halfway
    between its two half-maximum crossings) is found and ``u`` is sampled at
    ``k * dx`` for k = 0..n_samples-1 on both sides of it; the two sides are
    averaged (folding), so the result is the half-profile from the centre out.

    Returns
    -------
    (n_samples,) float64 mean half-profile (NaN-free; zeros when no section).
    """
    acc = np.zeros(n_samples)
    cnt = np.zeros(n_samples)
    for i in range(ys.shape[0]):
        if not np.isfinite(widths[i]):
            continue
        # crossings: walk again to find the offset of the midpoint
        y = ys[i]
        x = xs[i]
        ends = np.zeros(2)
        for j in range(2):
            sgn = -1.0 if j == 0 else 1.0
            prev = _bilinear(u, y, x)
            t = 0.0
            while t < 4.0 * widths[i] + 8.0:
                t2 = t + 0.25
                v = _bilinear(u, y + sgn * t2 * ny[i], x + sgn * t2 * nx[i])
                if v < 0.0:
                    break
                if v < 0.5:
                    frac = (prev - 0.5) / (prev - v) if prev != v else 0.5
                    ends[j] = t + frac * 0.25
                    break
                prev = v
                t = t2
        mid = 0.5 * (ends[1] - ends[0])
        cy = y + mid * ny[i]
        cx = x + mid * nx[i]
        for k in range(n_samples):
            for sgn in (-1.0, 1.0):
                v = _bilinear(u, cy + sgn * k * dx * ny[i], cx + sgn * k * dx * nx[i])
                if v >= -0.5 and v != -1.0:
                    acc[k] += v
                    cnt[k] += 1.0
    out = np.zeros(n_samples)
    for k in range(n_samples):
        if cnt[k] > 0:
            out[k] = acc[k] / cnt[k]
    return out


@numba.njit(cache=True, fastmath=True)
def _box_sse(profile, dx, w, s):
    n = profile.shape[0]
    sq2s = math.sqrt(2.0) * s
    g0 = 2.0 * math.erf(w / (2.0 * sq2s))
    if g0 < 1e-6:
        return 1e300, 0.0
    m = np.empty(n)
    num = 0.0
    den = 0.0
    for k in range(n):
        x = k * dx
        m[k] = (math.erf((x + 0.5 * w) / sq2s) - math.erf((x - 0.5 * w) / sq2s)) / g0
        num += m[k] * profile[k]
        den += m[k] * m[k]
    a = num / den if den > 0 else 0.0
    sse = 0.0
    for k in range(n):
        r = profile[k] - a * m[k]
        sse += r * r
    return sse, a


@numba.njit(cache=True, fastmath=True)
def fit_box_blur(profile, dx, fwhm):
    """Fit a Gaussian-blurred box to a folded half-profile.

    Model: ``a * g(x) / g(0)`` with ``g(x) = erf((x + w/2) / (sqrt(2) s)) -
    erf((x - w/2) / (sqrt(2) s))``: a rim of true width ``w`` blurred by
    tissue scattering of standard deviation ``s``.  Coarse-to-fine search over
    ``w`` in 0.2..1.6 x the observed FWHM and ``s`` in 0.03..1.5 x FWHM,
    with the amplitude ``a`` solved in closed form.

    Returns
    -------
    w, s, a, edge : true width, blur sigma (pixels), amplitude, and the
        model value at the true edge (x = w/2) in ``profile`` units.
    """
    lw0, lw1 = 0.2, 1.6
    ls0, ls1 = math.log(0.03), math.log(1.5)
    bw = 1.0
    bls = ls0
    ba = 1.0
    for it in range(3):
        best = 1e300
        for iw in range(12):
            fw = lw0 + (lw1 - lw0) * iw / 11.0
            for js in range(12):
                ls = ls0 + (ls1 - ls0) * js / 11.0
                sse, a = _box_sse(profile, dx, fw * fwhm, math.exp(ls) * fwhm)
                if sse < best:
                    best = sse
                    bw = fw
                    bls = ls
                    ba = a
        dw = (lw1 - lw0) / 11.0
        dls = (ls1 - ls0) / 11.0
        lw0, lw1 = max(0.05, bw - 1.5 * dw), bw + 1.5 * dw
        ls0, ls1 = bls - 1.5 * dls, bls + 1.5 * dls
    w = bw * fwhm
    s = math.exp(bls) * fwhm
    g0 = 2.0 * math.erf(w / (2.0 * math.sqrt(2.0) * s))
    edge = ba * math.erf(w / (math.sqrt(2.0) * s)) / g0
    return w, s, ba, edge
