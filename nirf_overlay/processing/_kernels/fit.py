"""numba kernels of the rim width: fit of the blurred-rim model to a cross-section.

Called by :func:`~nirf_overlay.processing.width.width_and_edges`.  Self-contained
(see :mod:`nirf_overlay.processing._kernels`).
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, fastmath=True, inline="always")
def _normal_lstsq(prof, pins, pouts, mirrored):
    """Least-squares fit of ``c0 + c1 * step_in + c2 * box`` to ``prof``, where
    box = step_in - step_out.

    ``pins[k]`` is the blurred inner step at sample k.  With ``mirrored`` the
    samples are symmetric (t_k = -t_{m-1-k}), so the outer edge's step is the
    mirrored inner one, Phi((t - w/2)/s) = 1 - Phi((-t + w/2)/s), and ``pouts``
    is not read; otherwise ``pouts[k]`` is the outer step.  The 3 x 3 normal
    equations are accumulated in scalars and solved by Cramer's rule: no
    allocation in the fit's inner loop (inlined, so the constant ``mirrored``
    costs no branch).  Returns (sse, c0, c1, c2); sse is 1e300 for a singular
    system.
    """
    m = prof.shape[0]
    s11 = s12 = s13 = s22 = s23 = s33 = 0.0
    b1 = b2 = b3 = 0.0
    yy = 0.0
    for k in range(m):
        pin = pins[k]
        pout = 1.0 - pins[m - 1 - k] if mirrored else pouts[k]
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
def _rim_model_lstsq(prof, pins):
    """:func:`_normal_lstsq` of a symmetric sampling (the outer step mirrored)."""
    return _normal_lstsq(prof, pins, pins, True)


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

        q(t) = c0 + c1 * Phi((t - d + w/2) / s) + c2 * [Phi((t - d + w/2) / s) - Phi((t - d - w/2) / s)]

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

    The grid's best is then polished by Nelder-Mead with the rim's centre
    ``d`` free too (:func:`_polish`).

    Returns
    -------
    (w, s, c0, c1, c2, d) in pixels / profile units; the rim spans
    ``d - w/2 .. d + w/2``.
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
    # the grid's best lies in the valley where width and blur trade off
    # (a blurred box with w ~ 2 s is nearly a Gaussian), and the shrinking
    # grid can close round a point of that valley away from its minimum: a
    # rim as wide as two blur sigmas came out ~20 % too wide on noise-free
    # data.  A Nelder-Mead polish with the rim's offset from the section's
    # centre free as well (with a core step the half-maximum crossings are
    # not symmetric about the rim) walks along the valley to its minimum.
    return _polish(prof, dx, half_n, fwhm, bw * fwhm, bls)


@numba.njit(nogil=True, cache=True, fastmath=True)
def _shifted_sse(prof, dx, half_n, w, s, d, fwhm, pins, pouts):
    """Residual of the rim model with the rim centred at ``d`` (libm's erf).

    Out of bounds (w or s below 2 % of the FWHM, |d| above a quarter of
    it) the residual is 1e300.  Returns (sse, c0, c1, c2).
    """
    if w < 0.02 * fwhm or s < 0.02 * fwhm or abs(d) > 0.25 * fwhm:
        return 1e300, 0.0, 0.0, 0.0
    m = prof.shape[0]
    inv = 1.0 / (math.sqrt(2.0) * s)
    for k in range(m):
        t = (k - half_n) * dx - d
        pins[k] = 0.5 * (1.0 + math.erf((t + 0.5 * w) * inv))
        pouts[k] = 0.5 * (1.0 + math.erf((t - 0.5 * w) * inv))
    return _normal_lstsq(prof, pins, pouts, False)


@numba.njit(nogil=True, cache=True, fastmath=True)
def _polish(prof, dx, half_n, fwhm, w0, ls0):
    """Nelder-Mead over (w, log s, d) from the grid's best (w0, exp(ls0) fwhm, 0).

    At most 120 iterations (about 200 residuals, ~2 erf per sample each);
    stops when the simplex is below 0.2 % of the FWHM.  Returns (w, s, c0,
    c1, c2, d).
    """
    m = prof.shape[0]
    pins = np.empty(m)
    pouts = np.empty(m)
    xs = np.empty((4, 3))
    fs = np.empty(4)
    base = np.array([w0, ls0 + math.log(fwhm), 0.0])
    steps = np.array([0.08 * fwhm, 0.25, 0.04 * fwhm])
    for i in range(4):
        for j in range(3):
            xs[i, j] = base[j]
        if i > 0:
            xs[i, i - 1] += steps[i - 1]
        fs[i] = _shifted_sse(prof, dx, half_n, xs[i, 0], math.exp(xs[i, 1]), xs[i, 2], fwhm,
                             pins, pouts)[0]
    cen = np.empty(3)
    xr = np.empty(3)
    xe = np.empty(3)
    for it in range(120):
        order = np.argsort(fs)
        xs = xs[order].copy()
        fs = fs[order].copy()
        size = 0.0
        for i in range(1, 4):
            size = max(size, abs(xs[i, 0] - xs[0, 0]), abs(xs[i, 2] - xs[0, 2]),
                       fwhm * abs(xs[i, 1] - xs[0, 1]))
        if size < 2e-3 * fwhm:
            break
        for j in range(3):
            cen[j] = (xs[0, j] + xs[1, j] + xs[2, j]) / 3.0
        for j in range(3):
            xr[j] = cen[j] + (cen[j] - xs[3, j])
        fr = _shifted_sse(prof, dx, half_n, xr[0], math.exp(xr[1]), xr[2], fwhm, pins, pouts)[0]
        if fr < fs[0]:
            for j in range(3):
                xe[j] = cen[j] + 2.0 * (cen[j] - xs[3, j])
            fe = _shifted_sse(prof, dx, half_n, xe[0], math.exp(xe[1]), xe[2], fwhm, pins, pouts)[0]
            if fe < fr:
                xs[3] = xe
                fs[3] = fe
            else:
                xs[3] = xr
                fs[3] = fr
        elif fr < fs[2]:
            xs[3] = xr
            fs[3] = fr
        else:
            for j in range(3):
                xe[j] = cen[j] + 0.5 * (xs[3, j] - cen[j])
            fc = _shifted_sse(prof, dx, half_n, xe[0], math.exp(xe[1]), xe[2], fwhm, pins, pouts)[0]
            if fc < fs[3]:
                xs[3] = xe
                fs[3] = fc
            else:
                for i in range(1, 4):
                    for j in range(3):
                        xs[i, j] = xs[0, j] + 0.5 * (xs[i, j] - xs[0, j])
                    fs[i] = _shifted_sse(prof, dx, half_n, xs[i, 0], math.exp(xs[i, 1]), xs[i, 2],
                                         fwhm, pins, pouts)[0]
    best = 0
    for i in range(1, 4):
        if fs[i] < fs[best]:
            best = i
    w, s, d = xs[best, 0], math.exp(xs[best, 1]), xs[best, 2]
    sse, c0, c1, c2 = _shifted_sse(prof, dx, half_n, w, s, d, fwhm, pins, pouts)
    return w, s, c0, c1, c2, d


def rim_model(t, w, s, c0, c1, c2, d=0.0):
    """Evaluate the rim model of :func:`fit_rim_profile` at scalar ``t`` (rim centred at ``d``)."""
    t = t - d
    inv = 1.0 / (math.sqrt(2.0) * s)
    pin = 0.5 * (1.0 + math.erf((t + 0.5 * w) * inv))
    pout = 0.5 * (1.0 + math.erf((t - 0.5 * w) * inv))
    return c0 + c1 * pin + c2 * (pin - pout)
