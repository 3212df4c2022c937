"""numba kernels of the rim width: medial points and sub-pixel cross-sections.

Called by :func:`~nirf_overlay.processing.width.width_and_edges` on the
refine grid of one lesion.  Self-contained (see
:mod:`nirf_overlay.processing._kernels`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Marker for pixels without signal in profile images (a NaN would not survive
# fastmath, which assumes finite values); ``_kernels.refine.edge_ratio`` writes
# it (its own copy of the value, see the package), anything interpolated from
# it reads below NO_SIGNAL_TEST.
NO_SIGNAL = -1e30
NO_SIGNAL_TEST = -1e20

# fastmath without its "no NaN" and "no inf" assumptions: the sections not
# found are NaN (profile_crossings) and mean_cross_section skips them with
# np.isfinite, a test that full fastmath folds to "always finite" (it did: the
# compiled code had no such comparison left).  A NaN section then indexed the
# image at int(NaN), undefined behaviour that read the ROI's corner or, rarely,
# an unmapped page (a SIGSEGV seen under load).  The flags kept are the ones
# that matter for speed here (reassociation, contraction, reciprocals).
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


@numba.njit(nogil=True, cache=True, fastmath=_FAST)
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


@numba.njit(nogil=True, cache=True, fastmath=_FAST)
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


@numba.njit(nogil=True, cache=True, fastmath=_FAST)
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


@numba.njit(nogil=True, cache=True, fastmath=_FAST)
def _crossing(field, y, x, uy, ux, t, sgn, want_pos, t_max):
    """First ``t'`` from ``t`` towards ``sgn`` where ``field > 0`` is ``want_pos``: NaN when
    not met within ``t_max`` of ``t``.

    Steps of 1 px bracket it (the rim and its gaps are wider than that), 1/4 px steps in
    the bracket find it, linearly interpolated between those samples.
    """
    prev = _bilinear(field, y + t * uy, x + t * ux)
    k = 1
    while k <= t_max:
        t1 = t + sgn * k
        v = _bilinear(field, y + t1 * uy, x + t1 * ux)
        if (v > 0.0) == want_pos:
            # the first 1/4 px sample in (t1 - 1, t1] that meets it, and the one before
            t_hit = t1
            for j in range(1, 4):
                tj = t1 - sgn + sgn * 0.25 * j
                vj = _bilinear(field, y + tj * uy, x + tj * ux)
                if (vj > 0.0) == want_pos:
                    t_hit = tj
                    v = vj
                    break
                prev = vj
            frac = prev / (prev - v) if prev != v else 0.5
            return t_hit - sgn * 0.25 + sgn * frac * 0.25
        prev = v
        k += 1
    return np.nan


@numba.njit(nogil=True, cache=True, fastmath=_FAST)
def _cos_to_normal(field, y, x, uy, ux):
    """|cos| of the angle between the unit ray (uy, ux) and the field's gradient at (y, x)
    (central differences of the bilinear field over +-0.5 px); 1 where it is flat."""
    gy = _bilinear(field, y + 0.5, x) - _bilinear(field, y - 0.5, x)
    gx = _bilinear(field, y, x + 0.5) - _bilinear(field, y, x - 0.5)
    n = math.hypot(gy, gx)
    if n < 1e-9:
        return 1.0
    return abs(gy * uy + gx * ux) / n


@numba.njit(nogil=True, cache=True, fastmath=_FAST)
def constant_width_field(field, ny, nx, width, reach, out):
    """The rim's edge field with its outer edge half way to ``width`` from its inner edge.

    ``field`` (float32, refine grid or a crop of it) is the rim's edge field
    (``_kernels.refine.edge_field``: > 0 in the rim, -1 away from it).  From
    each pixel where ``field != -1`` the ray towards the core (``-(ny, nx)``,
    the unit direction across the rim away from it; none where it is 0)
    meets the rim's outer edge at ``t_o`` and then its inner edge at ``t_i``
    (sub-pixel crossings of the bilinear field, :func:`_crossing`; a pixel
    off the rim is outside it when the ray meets the rim within
    ``2 + reach`` px).  ``s_out = -t_o`` is the signed distance to the outer
    edge (> 0 inside).  In the rim's outer half (``s_out <= t_i``) and
    outside it, ``out`` is ``min((s_out + width - t_i) / 2, s_out + reach)``:
    a signed distance (px) to the edge half way between the measured outer
    edge and ``width`` from the inner edge, at most ``reach`` px beyond the
    measured edge.  Elsewhere (the inner half, the core, away from the rim,
    no crossing) ``out = field``: the inner edge stays.  Both halves are > 0
    where they meet, so the interpolated field thresholded at 0 has the
    inner edge of ``field`` and the outer edge of the distance.
    """
    h, w = field.shape
    t_max = 2.0 * width + 6.0
    for y in range(h):
        for x in range(w):
            f0 = field[y, x]
            out[y, x] = f0
            uy = -np.float64(ny[y, x])
            ux = -np.float64(nx[y, x])
            if f0 == -1.0 or (uy == 0.0 and ux == 0.0):
                continue
            if f0 > 0.0:
                # in the rim: the inner edge ahead (from t = 0) first, then the outer edge
                # behind (t < 0), looked for only as far as the inner one: a pixel farther
                # from it is in the inner half and keeps f0 (the steps taken up to there, and
                # so a crossing found, are those of the search to t_max)
                t_i = _crossing(field, y, x, uy, ux, 0.0, 1.0, False, t_max)
                if not np.isfinite(t_i):
                    continue
                t_o = _crossing(field, y, x, uy, ux, 0.0, -1.0, False, min(t_max, t_i + 1.0))
                if not np.isfinite(t_o):
                    continue
            else:
                t_o = _crossing(field, y, x, uy, ux, 0.0, 1.0, True, 2.0 + reach)
                if not np.isfinite(t_o):
                    continue
                t_i = _crossing(field, y, x, uy, ux, max(t_o, 0.0), 1.0, False, t_max)
            s_out = -t_o
            if not np.isfinite(t_i) or s_out > t_i:
                continue
            # distances across the edges, not along the ray: a ray at an angle to the
            # rim reads both too long by 1 / cos (and the width always too wide)
            s_out *= _cos_to_normal(field, y + t_o * uy, x + t_o * ux, uy, ux)
            t_i *= _cos_to_normal(field, y + t_i * uy, x + t_i * ux, uy, ux)
            out[y, x] = np.float32(min(0.5 * (s_out + width - t_i), s_out + reach))


@numba.njit(nogil=True, cache=True, fastmath=_FAST)
def drop_neighbour_sections(img, ys, xs, ny, nx, base, peak, t_in, t_out, max_width, reach, rise,
                            step):
    """Leave out (set to NaN in ``t_in``, in place) the sections that run through a neighbour.

    A section is left out when its half-maximum width ``t_in + t_out`` is over
    ``max_width`` (a neighbour merged with the rim above the outer level), or
    when beyond its outer edge, up to ``reach`` px from its midpoint, ``q``
    rises more than ``rise`` above its lowest value there (a neighbour's blur
    below the level): a rim's blurred outer side only falls to liver level.
    Samples every ``step`` px; pixels without signal end the look.

    Returns the number of sections kept with both edges.
    """
    kept = 0
    for i in range(ys.shape[0]):
        if not (np.isfinite(t_in[i]) and np.isfinite(t_out[i])):
            continue
        if t_in[i] + t_out[i] > max_width:
            t_in[i] = np.nan
            continue
        span = peak[i] - base
        lo = 1e30
        t_end = 0.5 * (t_out[i] - t_in[i]) + reach
        t = t_out[i]
        bad = False
        while t <= t_end:
            raw = _bilinear(img, ys[i] + t * ny[i], xs[i] + t * nx[i])
            if raw == -1.0 or raw < NO_SIGNAL_TEST:
                break
            v = (raw - base) / span
            if v < lo:
                lo = v
            elif v > lo + rise:
                bad = True
                break
            t += step
        if bad:
            t_in[i] = np.nan
        else:
            kept += 1
    return kept
