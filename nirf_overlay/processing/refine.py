"""Full-resolution rim boundary and measurements inside one lesion's ROI.

The coarse grid finds *where* a rim is; here, on the lesion's refine grid
(:mod:`.refine_grid`), the rim edge is placed where tissue-scattering blur
puts the physical edge: at half maximum between the local base level (liver
background on the outside, the core level on the inside) and the local rim
peak.  A fixed multiple of the background would make bright rims too wide
and dim rims too narrow; the half-maximum edge does not depend on TBR or on
the blur.  The width comes from :mod:`.width`; T, completeness, centroid and
outline from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from ._kernels.refine import (core_candidates, edge_ratio, fill_unsupported, masked_median_or_max,
                              normalised_ratio, outline_touching, peak_seed, positive_f32,
                              refine_zones, rim_from_levels, scale_contour, select_touching)
from .band import cap_to_rim_peak, cut_to_band
from .candidates import Candidate
from .gaps import rim_gaps
from .instruments import unblock_fluorescence
from ._validate import frame_dims, require, require_optional
from .masks import aligned_crop
from .refine_grid import RefineGrid, mask_to_grid, refine_grid, refine_image, rim_mask_wl
from .rules import RIM_RULES
from .width import width_and_edges

_NO_BLOCK = np.zeros((0, 0), np.uint8)  # edge_ratio's 'no blocked mask'
_NO_VALID = np.zeros((0, 0), bool)  # ... and 'all valid'
_NO_DIST = np.zeros((0, 0), np.float32)  # outline_touching's 'nothing blocked'; an empty distance crop


@dataclass
class RimGeometry:
    """One refined rim in WL pixels (ROI-local masks plus the ROI origin)."""

    x0: int
    y0: int
    rim: np.ndarray  # (rh, rw) uint8 0/255, WL pixels
    core: np.ndarray  # (rh, rw) bool
    target: float
    background: float
    core_level: float
    thickness_px: float
    completeness: float
    rim_area_px: float
    core_area_px: float
    centroid: tuple[float, float]
    bbox: tuple[int, int, int, int]
    contour: np.ndarray
    gaps: list = field(default_factory=list)  # RimGap (:mod:`.gaps`), WL px


def refine_rim(nir: np.ndarray, cand: Candidate, scale: float, background: float,
               *, valid: Optional[np.ndarray] = None, blocked: Optional[np.ndarray] = None,
               pyramid: Optional[dict] = None, px_across: float = RIM_RULES.refine_px_across,
               blur_correction: bool = True) -> Optional[RimGeometry]:
    """Half-maximum rim boundary, width, completeness and intensities.

    The boundary is found on a *refine grid* fine enough that the rim is at
    least ``px_across`` pixels wide (the analysis grid when it already is,
    up to full WL resolution for thin rims), inside the lesion's ROI only.
    The rim mask is then interpolated to WL pixels with sub-pixel edges.

    Parameters
    ----------
    nir : (H, W) float32 normalised NIR, WL pixels
    cand : coarse candidate from :func:`~.segment.find_candidates`
    scale : analysis grid / WL pixels (e.g. 0.5)
    background : B, liver level around the lesion (normalised counts): the
        background map's at the lesion (:func:`~.background.map_level`)
    valid : (H, W) bool or None
    blocked : analysis-grid bool ROI-local to ``cand.roi`` or None: where the
        view is blocked (instrument, invalid pixels, frame edge)
    pyramid : {scale: image} area-averaged copies of ``nir`` (e.g. 0.5,
        0.25, ...): the refine grid is cropped from them instead of resized
    px_across : least rim width on the refine grid, pixels
    blur_correction : fit a blurred-box model to the mean cross-section and
        move the edge from half maximum to where the model puts the true
        edge (matters when the rim is not much wider than the blur)

    Returns
    -------
    RimGeometry, or None when no rim of at least 4 refine pixels is left

    Raises
    ------
    TypeError, ValueError
        for another dtype or shape (``nir`` must be C-contiguous; ``valid``
        and ``blocked`` may be views)
    """
    require("nir", nir, np.float32, ("H", "W"))
    require_optional("valid", valid, np.bool_, frame_dims(nir.shape), contiguous=False)
    x0, y0, x1, y1 = cand.roi
    require_optional("blocked", blocked, np.bool_, (y1 - y0, x1 - x0), contiguous=False)
    g = refine_grid(cand, scale, nir.shape, px_across)
    if g is None:
        return None
    r, f, width = g.r, g.f, g.width
    rim_up = mask_to_grid(cand.rim, g).view(bool)
    core_up = mask_to_grid(cand.core, g).view(bool)
    bq = None if blocked is None else mask_to_grid(blocked, g)  # uint8 0/1
    img_raw, img, valid_q = refine_image(nir, g, pyramid, valid)
    if bq is not None:
        unblock_fluorescence(bq, img_raw, background)  # the rim runs up to the tool

    # where the rim may be, the core level, and per pixel which base level
    # (core or liver) its edge is measured against
    zone, reach, not_outside, n_outside, core_level, vals = _rim_zones(img, rim_up, core_up, valid_q, g)
    if not core_level == core_level:  # NaN: no core pixels
        core_level = background
    core_level = min(core_level, background)
    d_core, core_side = _core_side(core_up, not_outside, n_outside)

    # the local rim peak, and q = (img - B) / (peak - B): 0 at liver level,
    # 1 at the local rim peak, negative in the dark core
    peak, support, se, filled = _peak_map(img, zone, rim_up, core_up, d_core, width, f, background)
    q, img_nan, p_med = _normalised_signal(img, peak, support, se, filled, background, bq, valid_q,
                                           rim_up, vals)
    # half maximum on each side (the method: where blur puts the true edge):
    # between liver and peak outside, between core level and peak inside
    lev_in = 0.5 * (1.0 + (core_level - background) / max(p_med - background, 1e-6))
    lev_out = 0.5
    found = _rim_and_width(q, core_side, zone, rim_up, img_nan, peak, background, d_core, core_up,
                           bq, width, lev_in, lev_out, blur_correction)
    if found is None:
        return None
    rim, thickness, lev_in, lev_out, across = found

    core, n_core, completeness, n_lesion, sum_x, sum_y, blocked_dist = _core_and_completeness(
        core_side, reach, core_up, rim, bq, f)
    rim_full, ox, oy = rim_mask_wl(rim, q, core_side, lev_in, lev_out, g, valid, across,
                                   thickness)
    area = cv2.countNonZero(rim_full)
    if area == 0:
        return None

    X0, Y0 = g.X0, g.Y0
    # T on the refine grid (area averages of WL pixels, so the same mean up
    # to edge pixels; a masked mean over the WL-size ROI costs ~0.7 ms)
    rim_u8 = rim.view(np.uint8)  # 0/1, for OpenCV (neither call writes to it)
    target = float(cv2.mean(img_raw, mask=rim_u8)[0])
    # (integer sums held exactly in float64: the same numbers as cv2.moments)
    mx, my = float(sum_x) / float(n_lesion), float(sum_y) / float(n_lesion)
    centroid = ((mx + 0.5) / r - 0.5 + X0, (my + 0.5) / r - 0.5 + Y0)
    # outline from the refine grid, scaled to WL pixels (for drawing)
    cnts, _ = cv2.findContours(rim_u8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    c = max(cnts, key=cv2.contourArea).reshape(-1, 2)
    contour = scale_contour(c, float(r), X0, Y0)
    bx, by, bw, bh = cv2.boundingRect(rim_full)
    bbox = (bx + X0 + ox, by + Y0 + oy, bw, bh)
    d_b, b_y0, b_x0 = blocked_dist
    gaps = rim_gaps(core, rim, d_b, np.float32(2.0 * f), b_y0, b_x0, float(r), X0, Y0)
    return RimGeometry(X0 + ox, Y0 + oy, rim_full, core, target, background, core_level, thickness / r,
                       completeness, float(area), float(n_core) / (r * r), centroid,
                       bbox, contour, gaps)


def _rim_zones(img: np.ndarray, rim_up: np.ndarray, core_up: np.ndarray,
               valid_q: Optional[np.ndarray], g: RefineGrid):
    """Masks round the coarse rim and the core level, in one numba pass (``refine_zones``).

    All (qh, qw) on the refine grid; distances in refine px.

    - ``zone`` (bool): where the refined rim may be -- within 2 analysis px
      (``2 f``, the coarse grid's quantisation) of the coarse rim, not
      deeper than ``ceil(f)`` inside the coarse core, and valid;
    - ``reach`` (bool): within half a width + ``2 f`` of the coarse rim
      (valid): pixels between the coarse core and the rim belong to neither
      side, so they are not "outside";
    - ``not_outside`` (uint8 0/1): ``reach | core_up``; ``n_outside`` counts
      its zeros;
    - ``core_level``: median of ``img`` deeper than half a width inside the
      coarse core (the whole core when that has < 4 pixels; NaN when empty).

    Also returns ``vals``, the kernel's (2 qh qw,) float32 scratch, reused
    for the peak median.
    """
    f, width = g.f, g.width
    d_rim_up = cv2.distanceTransform((~rim_up).view(np.uint8), cv2.DIST_L2, 3)
    # one distance map for both erosions of the core (pixels deeper than
    # ceil(f) and than ceil(width / 2)), on a crop round the core
    dc_x0, dc_y0, d_in_core = _core_distance(core_up)
    zone = np.empty(img.shape, bool)
    reach = np.empty(img.shape, bool)
    not_outside = np.empty(img.shape, np.uint8)
    vals = np.empty(2 * g.qh * g.qw, np.float32)
    core_level, n_outside = refine_zones(
        img, d_rim_up, core_up, valid_q if valid_q is not None else _NO_VALID,
        (d_in_core, dc_y0, dc_x0), float(f), float(width), zone, reach, not_outside, vals)
    return zone, reach, not_outside, n_outside, core_level, vals


def _core_side(core_up: np.ndarray, not_outside: np.ndarray,
               n_outside: int) -> tuple[np.ndarray, np.ndarray]:
    """Which pixels take the core level as their base (the rest take the liver's B).

    A pixel is on the core side when it is nearer to the coarse core than
    to the outside (``not_outside == 0``): the rim's inner edge is measured
    against the core level, the outer one against B.

    Returns
    -------
    d_core : (qh, qw) float32, DIST_L2 5x5 distance to the coarse core
        (refine px; its gradient points across the rim)
    core_side : (qh, qw) bool
    """
    d_core = cv2.distanceTransform((~core_up).view(np.uint8), cv2.DIST_L2, 5)
    if n_outside:
        d_out = cv2.distanceTransform(not_outside, cv2.DIST_L2, 3)
    else:
        d_out = np.full_like(d_core, 1e6)
    return d_core, d_core < d_out


def _peak_map(img: np.ndarray, zone: np.ndarray, rim_up: np.ndarray, core_up: np.ndarray,
              d_core: np.ndarray, width: float, f: float,
              background: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Local rim peak per pixel: the max over a window reaching across the rim, of rim pixels only,
    no higher than the rim's own peak in its direction round the core ``core_up``.

    The window reaches the rim's middle from every zone pixel (half the coarse
    width + the zone's ``2 f`` margin) and no further: along the rim a wider one
    took the peak of brighter parts a rim width away, so where a rim fades (an
    arc's end, a dim patch) its edges were placed too high and its dim part
    lost.  (Full sets, 1280x720, 10 frames: mean Dice +0.0015..+0.003 on every
    set against a window of width + f; seed 532's second lesion, whose arc
    fades over more than a window, still misses its end: T +8 % -> +7 %.)
    The max is taken on a smoother copy of ``img`` (the rim's own texture
    would bias a plain maximum up), from ``zone`` pixels only, then the
    blocky max map is smoothed by a box as wide as the window, normalised
    by the same box over the support so that the map's border is not pulled
    towards 0.  Where a neighbour brighter than the rim (a duct alongside or
    running in) raised it, it is lowered to the rim's own peak
    (:func:`~.band.cap_to_rim_peak`, distances ``d_core`` to the core): the
    rim's edges are placed against the rim's own level.

    Returns
    -------
    peak : (qh, qw) float32, normalised counts
    support : (qh, qw) float32, 1 where the max map is > 0 (a positive
        zone pixel in the window), else 0
    se : the max filter's square of ones (for :func:`_fill_peak`)
    filled : whether the unsupported pixels were filled already; they are
        only when some pixel read later (the zone, 1 px round it, the
        coarse rim) may lack support -- otherwise the fill would change
        nothing that is read
    """
    k = int(np.ceil(0.5 * width + 2.0 * f))
    smooth = cv2.GaussianBlur(img, (0, 0), max(1.0, 0.2 * width))
    seed = np.empty(img.shape, np.float32)
    n_unsure = peak_seed(zone, smooth, rim_up, seed)
    se = np.ones((2 * k + 1, 2 * k + 1), np.uint8)
    peak = cv2.dilate(seed, se)
    support = np.empty(img.shape, np.float32)
    positive_f32(peak, support)
    normalised_ratio(cv2.blur(peak, (k | 1, k | 1)), cv2.blur(support, (k | 1, k | 1)), peak)
    if n_unsure:
        _fill_peak(peak, support, se)
    cap_to_rim_peak(peak, zone, smooth, rim_up, core_up, d_core, background)
    return peak, support, se, bool(n_unsure)


def _fill_peak(peak: np.ndarray, support: np.ndarray, se: np.ndarray) -> None:
    """Pixels of ``peak`` without support take the max of the map round them (in place)."""
    fill_unsupported(support, peak, cv2.dilate(peak, se))


def _normalised_signal(img: np.ndarray, peak: np.ndarray, support: np.ndarray, se: np.ndarray,
                       filled: bool, background: float, bq: Optional[np.ndarray],
                       valid_q: Optional[np.ndarray], rim_up: np.ndarray, vals: np.ndarray):
    """``q = (img - B) / (peak - B)`` and the rim's typical peak.

    ``q`` is 0 at liver level, 1 at the local rim peak and negative in the
    dark core; -10 where the span ``peak - B`` is under 0.15 B and at
    blocked pixels (an instrument carries no rim signal, so they are never
    rim).

    Returns
    -------
    q : (qh, qw) float32
    img_nan : (qh, qw) float32, ``img`` with NO_SIGNAL at blocked / invalid
        pixels, so the width's cross-sections stop there
    p_med : median of ``peak`` over the coarse rim where the span is usable;
        when there is no such pixel, the max of the (then filled) map
    """
    q = np.empty(img.shape, np.float32)
    ok = np.empty(img.shape, bool)
    img_nan = np.empty(img.shape, np.float32)
    edge_args = (background, np.float32(RIM_RULES.min_span * background), bq if bq is not None else _NO_BLOCK,
                 valid_q if valid_q is not None else _NO_VALID, q, ok, img_nan)
    edge_ratio(img, peak, *edge_args)
    p_med, n_med = masked_median_or_max(peak, rim_up, ok, vals)
    if n_med == 0 and not filled:
        # the max over the whole map is taken: it needs the filled map
        _fill_peak(peak, support, se)
        edge_ratio(img, peak, *edge_args)
        p_med, n_med = masked_median_or_max(peak, rim_up, ok, vals)
    return q, img_nan, p_med


def _rim_and_width(q: np.ndarray, core_side: np.ndarray, zone: np.ndarray, rim_up: np.ndarray,
                   img_nan: np.ndarray, peak: np.ndarray, background: float, d_core: np.ndarray,
                   core_up: np.ndarray, bq: Optional[np.ndarray], width: float, lev_in: float,
                   lev_out: float,
                   blur_correction: bool):
    """The refined rim mask and its width.

    The rim is where ``q`` is above ``lev_in`` on the core side and
    ``lev_out`` outside, in the zone.  Its width is measured on that mask
    (:func:`~.width.width_and_edges`); when the blur-model fit moves the edge
    levels, the mask is redrawn at the fitted levels (kept only if it still
    has >= 4 pixels).  Specks in the zone do not matter for the width (a
    median over sections); the mask is cut to the rim's radial band round
    the core ``core_up`` (a duct running out of the rim is not rim; beside
    the blocked pixels ``bq`` only a piece shaped like a duct's end, or one
    running on into the bright fluorescence beyond the zone, :mod:`.band`) and keeps only the
    components touching the coarse rim.

    Returns
    -------
    (rim, thickness, lev_in, lev_out, across) or None when the rim has < 4
    pixels: rim (qh, qw) bool; thickness in refine px; the edge levels used;
    the (ny, nx) directions across the rim (:func:`~.width.width_and_edges`)
    """
    rim = np.empty(q.shape, bool)
    if rim_from_levels(q, core_side, zone, lev_in, lev_out, rim) < 4:
        return None
    thickness, fit_in, fit_out, across = width_and_edges(img_nan, peak, background, rim, d_core, width,
                                                         lev_in, lev_out, blur_correction, zone)
    if (fit_in, fit_out) != (lev_in, lev_out):
        lev_in, lev_out = fit_in, fit_out
        rim2 = np.empty(q.shape, bool)
        if rim_from_levels(q, core_side, zone, lev_in, lev_out, rim2) >= 4:
            rim = rim2
    # (beside a tool a stub running on outward beyond the zone, bright, is a duct's end)
    cut_to_band(rim, d_core, core_up, thickness, bq, (q > lev_out) & ~zone)
    kept = np.empty(q.shape, bool)
    if _keep_touching(rim, rim_up, kept) < 4:
        return None
    return kept, thickness, lev_in, lev_out, across


def _core_and_completeness(core_side: np.ndarray, reach: np.ndarray, core_up: np.ndarray,
                           rim: np.ndarray, bq: Optional[np.ndarray], f: float):
    """The refined core, the rim's completeness round it and the lesion's centroid sums.

    The core is the non-rim pixels on the core side (within reach) or in
    the coarse core, connected to the coarse core.  Completeness is the
    share of the core's visible outline with a rim pixel in its 3 x 3
    neighbourhood (within 1.5 px): outline pixels within ``2 f`` (2
    analysis px) of a blocked pixel are left out, as the rim there is not
    seen.

    Returns
    -------
    core : (qh, qw) bool
    n_core : core pixels (refine grid)
    completeness : float in [0, 1]
    n_lesion, sum_x, sum_y : pixels of ``rim | core`` and their x, y sums
    blocked_dist : ``(d_b, b_y0, b_x0)``, the distance to blocked pixels used
        (for :func:`~.gaps.rim_gaps`, which leaves out the same outline)
    """
    core_cand = np.empty(rim.shape, bool)
    core_candidates(core_side, reach, core_up, rim, core_cand)
    core = np.empty(rim.shape, bool)
    n_core = _keep_touching(core_cand, core_up, core)
    d_b, b_y0, b_x0 = _blocked_distance(core, bq, f)
    touched, outline, n_lesion, sum_x, sum_y = outline_touching(core, rim, d_b, np.float32(2.0 * f),
                                                                b_y0, b_x0)
    return (core, n_core, float(touched) / max(1, outline), n_lesion, sum_x, sum_y,
            (d_b, b_y0, b_x0))


def _blocked_distance(core: np.ndarray, bq: Optional[np.ndarray], f: float) -> tuple[np.ndarray, int, int]:
    """Distance to blocked pixels (refine px) on a crop holding every core pixel.

    Where the core meets an instrument or the frame edge its outline is not
    visible, and the completeness counts only the visible circumference.
    Only "within 2 f of a blocked pixel" is asked, at core pixels: the
    DIST_L2 3x3 transform of the core's box grown by 2 f / 0.955 + 2 (ends
    on the 16-column grid) answers it as the whole ROI's would (see
    :func:`_ring_crop`).

    Returns
    -------
    d_b : float32 crop, or an empty array when nothing is blocked or the
        core is empty
    b_y0, b_x0 : the crop's origin on the refine grid
    """
    if bq is None or not cv2.countNonZero(bq):
        return _NO_DIST, 0, 0
    kx, ky, kw, kh = cv2.boundingRect(core.view(np.uint8))
    if not kw:
        return _NO_DIST, 0, 0
    x0, y0, x1, y1 = aligned_crop(kx, ky, kw, kh, core.shape, int(np.ceil(2.0 * f / 0.955)) + 2)
    return cv2.distanceTransform(1 - bq[y0:y1, x0:x1], cv2.DIST_L2, 3), y0, x0


def _core_distance(core_up: np.ndarray) -> tuple[int, int, np.ndarray]:
    """DIST_L2 3x3 distance inside ``core_up`` (bool) on a crop holding every core pixel.

    The crop is the core's box grown by 1 px (ends on the 16-column grid):
    the pixels round the box are not core (distance 0), so every path to a
    core pixel's nearest non-core pixel stays inside, and the values are
    those of the transform of the whole array; outside the crop the distance
    is 0.  Returns (x0, y0, crop); an empty crop for an empty core.
    """
    u8 = core_up.view(np.uint8)
    kx, ky, kw, kh = cv2.boundingRect(u8)
    if kw == 0:
        return 0, 0, _NO_DIST
    x0, y0, x1, y1 = aligned_crop(kx, ky, kw, kh, core_up.shape, 1)
    return x0, y0, cv2.distanceTransform(u8[y0:y1, x0:x1], cv2.DIST_L2, 3)


def _keep_touching(mask: np.ndarray, ref: np.ndarray, out: np.ndarray) -> int:
    """``out`` = connected components (8) of ``mask`` that overlap ``ref``; returns its pixel count."""
    n, lab = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    return select_touching(lab, ref, n, out)

