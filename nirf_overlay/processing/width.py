"""The rim's width: sub-pixel half-maximum cross-sections, blur-corrected by a model fit.

Cross-sections are taken at the rim's medial points, across the rim
(away from the core); their half-maximum crossings give the width, and a
fit of *core step + blurred box* to the mean cross-section corrects it for
tissue-scattering blur (which makes a thin rim look wider at half maximum)
and gives the levels at which the true edges lie.
"""

from __future__ import annotations

import cv2
import numpy as np

from ._kernels.fit import fit_rim_profile, rim_model
from ._kernels.width import (drop_neighbour_sections, mean_cross_section, profile_crossings,
                             ridge_sections, width_median)
from .masks import K3
from .rules import RIM_RULES


def width_and_edges(img: np.ndarray, peak: np.ndarray, background: float, rim: np.ndarray,
                    d_core: np.ndarray, width_guess: float, lev_in: float, lev_out: float,
                    blur_correction: bool, zone: np.ndarray
                    ) -> tuple[float, float, float, tuple[np.ndarray, np.ndarray]]:
    """Rim width (refine px), the ``q`` levels at its true inner and outer edges, the normals.

    Cross-sections are taken at medial points (ridge of the rim's distance
    transform) along the direction away from the core (gradient of the
    distance to the core), which is across the rim for any core shape; the
    half-maximum crossings are interpolated to sub-pixel.  With
    ``blur_correction`` the blurred rim model
    (:func:`~._kernels.fit.fit_rim_profile`) is fitted to the mean cross
    section: when the blur is not small against the width the half-maximum
    width overstates the true width, and the fit gives both the true width
    and the levels at which the true edges lie.

    Parameters
    ----------
    img : (qh, qw) float32 refine-grid NIR, NO_SIGNAL where blocked or invalid
    peak : (qh, qw) float32 local rim peak
    background : B, normalised counts
    rim : (qh, qw) bool rim mask at the half-maximum levels
    d_core : (qh, qw) float32 distance to the coarse core (its gradient
        points across the rim)
    width_guess : coarse rim width, refine px (sets the search length)
    lev_in, lev_out : the half-maximum levels of ``q`` inside and outside
    blur_correction : fit the model (else the half-maximum width is kept)
    zone : (qh, qw) bool, where the rim may be (``rim`` and any rim redrawn
        from it lie inside): the directions are computed within 1 px of it

    Returns
    -------
    width (refine px), lev_in, lev_out: the fitted width and edge levels
    when the fit is believable (``RIM_RULES.fit_*``), else the
    half-maximum width and the levels given; and ``(ny, nx)``, the unit
    direction across the rim away from the core per pixel (float32, 0 where
    it has no side or beyond 1 px of ``zone``; :func:`_across`), for the mask's edges
    """
    dt = cv2.distanceTransform(rim.view(np.uint8), cv2.DIST_L2, 5)
    gy, gx = _across(rim, d_core, width_guess, zone)
    across = (gy, gx)
    # medial points (ridge of dt, at most width_max_sections), their normals,
    # and the peak there: one normalisation per section (the peak at its
    # medial point), so the section's tails are not divided by a different
    # local peak
    fallback, n_ridge, ys, xs, ny, nx, pk = ridge_sections(rim, dt, gy, gx, peak,
                                                           RIM_RULES.width_max_sections)
    if n_ridge == 0 or ys.size == 0:
        return fallback, lev_in, lev_out, across
    B = float(background)
    t_in, t_out = profile_crossings(img, ys, xs, ny, nx, B, pk, float(lev_in), float(lev_out),
                                    float(3.0 * width_guess + 6.0), 0.25)
    fwhm, n_fin = width_median(t_in, t_out)
    if n_fin == 0:
        return fallback, lev_in, lev_out, across
    if not blur_correction or n_fin < RIM_RULES.fit_min_sections:
        return fwhm, lev_in, lev_out, across
    # sections through a neighbour (a duct along the rim's outside) are left
    # out of the fitted mean profile and the half-maximum width: taken in, they
    # widened the thickness (901 tangent 1 mm x2: 1.42 -> 1.72 mm)
    own = t_in.copy()  # (NaN where left out)
    if drop_neighbour_sections(img, ys, xs, ny, nx, B, pk, own, t_out,
                               float(RIM_RULES.fit_section_max_width * fwhm), float(1.5 * fwhm),
                               float(RIM_RULES.fit_section_rise), 0.5) >= RIM_RULES.fit_min_sections:
        t_in = own  # (else mostly neighbour: all are kept, as before)
        fwhm = width_median(t_in, t_out)[0]
    dx = max(0.25, fwhm / 12.0)
    half_n = int(np.ceil(1.5 * fwhm / dx))
    prof = mean_cross_section(img, ys, xs, ny, nx, B, pk, t_in, t_out, half_n, dx)
    w, s, c0, c1, c2, d = fit_rim_profile(prof, dx, half_n, fwhm)
    e_in = rim_model(d - 0.5 * w, w, s, c0, c1, c2, d)
    e_out = rim_model(d + 0.5 * w, w, s, c0, c1, c2, d)
    top = rim_model(d, w, s, c0, c1, c2, d)  # the model's level at the rim's middle
    # (an edge above 1, the local peak, is a fit pulled by a brighter neighbour in the sections)
    if not (c2 > RIM_RULES.fit_min_rim and RIM_RULES.fit_min_edge < e_out < min(top, 1.0)
            and e_in < min(top, 1.0) and w < RIM_RULES.fit_max_width * fwhm):
        return fwhm, lev_in, lev_out, across
    return float(w), float(e_in), float(e_out), across


def _across(rim: np.ndarray, d_core: np.ndarray, width_guess: float,
            zone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit direction across the rim, away from the core, per pixel: (ny, nx) float32.

    The direction is the Hessian's eigenvector of most negative curvature of
    the rim mask smoothed by half its width: across the band at its ridge,
    whatever the core's shape.  The gradient of the distance to the coarse
    core only orients it (away from the core): taken as the direction
    itself, that gradient of a blocky up-sampled core is off by several
    degrees, and a section at an angle reads the width too large by
    1 / cos(angle) -- never too small -- which made thickness biased wide.

    Only pixels within 1 px of ``zone`` are read (the rim's medial points
    and its mask's edge pixels), so the angles are taken there only (0
    elsewhere): ``arctan2`` is most of the cost on the whole grid.  The
    same element-wise numpy calls on those pixels give the same numbers.
    """
    sm = cv2.GaussianBlur(rim.view(np.uint8).astype(np.float32), (0, 0), max(1.0, 0.5 * width_guess))
    at = np.flatnonzero(cv2.dilate(zone.view(np.uint8), K3))
    hxx = cv2.Sobel(sm, cv2.CV_32F, 2, 0, ksize=3).ravel()[at]
    hyy = cv2.Sobel(sm, cv2.CV_32F, 0, 2, ksize=3).ravel()[at]
    hxy = cv2.Sobel(sm, cv2.CV_32F, 1, 1, ksize=3).ravel()[at]
    th = 0.5 * np.arctan2(2.0 * hxy, hxx - hyy) + np.float32(0.5 * np.pi)
    nx, ny = np.cos(th), np.sin(th)
    oy = cv2.Sobel(d_core, cv2.CV_32F, 0, 1, ksize=3).ravel()[at]
    ox = cv2.Sobel(d_core, cv2.CV_32F, 1, 0, ksize=3).ravel()[at]
    sign = np.where(nx * ox + ny * oy < 0, np.float32(-1.0), np.float32(1.0))
    # where the core's distance has no gradient the section has no side: left out
    sign[(ox == 0) & (oy == 0)] = 0.0
    gy = np.zeros(rim.shape, np.float32)
    gx = np.zeros(rim.shape, np.float32)
    gy.ravel()[at] = ny * sign
    gx.ravel()[at] = nx * sign
    return gy, gx
