"""numba kernels of the rim width: fit of the blurred-rim model to a cross-section.

Called by :func:`~nirf_overlay.processing.width.width_and_edges`.  Self-contained
(see :mod:`nirf_overlay.processing._kernels`).
"""

from __future__ import annotations

import math

import numba
import numpy as np


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
