"""Full-resolution rim boundary and measurements inside one lesion's ROI.

The coarse grid finds *where* a rim is; here, in a small WL-pixel ROI around
it, the rim edge is placed where tissue-scattering blur puts the physical
edge: at half maximum between the local base level (liver background on the
outside, the core level on the inside) and the local rim peak.  A fixed
multiple of the background would make bright rims too wide and dim rims too
narrow; the half-maximum edge does not depend on TBR or on the blur.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import cv2
import numpy as np

from ._kernels.background import outline_near_blocked, ring_median
from ._kernels.fit import fit_rim_profile, rim_model
from ._kernels.refine import (core_candidates, edge_field, edge_ratio, fill_unsupported,
                              masked_median_or_max, normalised_ratio, outline_touching, peak_seed,
                              positive_f32, refine_zones, rim_from_levels, scale_contour,
                              select_touching)
from ._kernels.width import mean_cross_section, profile_crossings, ridge_sections, width_median
from .segment import DT_COLUMN_BLOCK, Candidate

_NO_BLOCK = np.zeros((0, 0), np.uint8)  # edge_ratio's 'no blocked mask'
_NO_VALID = np.zeros((0, 0), bool)  # ... and 'all valid'
_NO_DIST = np.zeros((0, 0), np.float32)  # outline_touching's 'nothing blocked'; an empty distance crop
_DT_BLOCK = DT_COLUMN_BLOCK  # (see _ring_crop)


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


def ring_background(nir_small: np.ndarray, cand: Candidate, exclude: np.ndarray,
                    ring_px: float, gap_px: float = 1.5,
                    blocked: Optional[np.ndarray] = None,
                    width_px: Optional[float] = None) -> Optional[float]:
    """Median of the liver ring around a lesion on the analysis grid.

    The ring runs from ``max(gap_px, 1)`` to that + ``ring_px`` outside the
    lesion's closed outline -- the core grown by the rim width all round,
    also where a partial rim leaves the core bare -- so B is taken at the
    same distance all round the lesion.  Where an instrument hides part of
    the core, the core's outline is completed by an ellipse fitted to its
    visible boundary.  ``exclude`` (analysis grid, bool) removes
    fluorescence (grown by a little, for its blurred glow) and instruments,
    so neither bile nor a tool biases B.

    Parameters
    ----------
    blocked : bool, ROI-local to ``cand.roi``, or None: instrument, invalid
        pixels, frame edge
    width_px : rim width (analysis-grid px) for the outline; default the
        candidate's coarse estimate (the fluorescent band, wider than the rim)
    """
    h, w = nir_small.shape
    x0, y0, x1, y1 = cand.roi
    width = cand.width_px if width_px is None else float(width_px)
    reach = int(np.ceil(max(width, cand.width_px) + gap_px + ring_px)) + 1
    X0, Y0, X1, Y1 = max(0, x0 - reach), max(0, y0 - reach), min(w, x1 + reach), min(h, y1 + reach)
    core = np.zeros((Y1 - Y0, X1 - X0), np.uint8)
    oy, ox = y0 - Y0, x0 - X0
    core[oy:oy + (y1 - y0), ox:ox + (x1 - x0)] = cand.core
    if blocked is not None:
        # the core's outline where no instrument / frame edge is within 2 px:
        # if some of it is hidden, the hidden part is completed by an ellipse
        hidden, n_core, ys, xs = outline_near_blocked(cand.core, blocked, 2)
        if hidden:
            _complete_with_ellipse(core, n_core, ys, xs, oy, ox)
    lo = width + max(1.0, gap_px)
    hi = lo + ring_px
    # the distance transform on a crop round the core (~1/2 of the box):
    # the same values wherever the ring can be
    crop = _ring_crop(core, hi)
    if crop is None:
        return None
    ax0, ay0, ax1, ay1 = crop
    # distance transform instead of large dilations: O(N) whatever the radius
    d = cv2.distanceTransform(1 - core[ay0:ay1, ax0:ax1], cv2.DIST_L2, 3)
    # median of the ring (lo < d <= hi, not excluded) in one numba pass
    med, n = ring_median(d, np.float32(lo), np.float32(hi), exclude[Y0 + ay0:Y0 + ay1, X0 + ax0:X0 + ax1],
                         nir_small[Y0 + ay0:Y0 + ay1, X0 + ax0:X0 + ax1])
    if n < 8:
        return None
    return med


def _ring_crop(core: np.ndarray, hi: float) -> Optional[tuple[int, int, int, int]]:
    """Crop (x0, y0, x1, y1) of ``core`` (uint8) whose DIST_L2 3x3 transform is exact up to ``hi``.

    Every step of the chamfer distance costs >= 0.955 while moving one
    pixel in x and / or y, so a pixel within ``hi`` of the core, and every
    pixel on a shortest path to it, is within hi / 0.955 pixels of the
    core's bounding box: on the crop of that box grown by this (+ 2) the
    transform gives those pixels the same paths and the same float sums.
    OpenCV's (IPP's) float sums depend on a pixel's column modulo 16 counted
    from either end of the row (observed: crops on other columns differ in
    the last bit), so the crop's ends stay on that grid of the full array.
    None when the core is empty.  (tests/test_measure_kernels.py)
    """
    cx, cy, cw, ch = cv2.boundingRect(core)
    if cw == 0:
        return None
    return _aligned_crop(cx, cy, cw, ch, core.shape, int(np.ceil(hi / 0.955)) + 2)


def _aligned_crop(bx: int, by: int, bw: int, bh: int, shape: tuple, m: int) -> tuple[int, int, int, int]:
    """The box (bx, by, bw, bh) grown by ``m`` within ``shape``, its ends on the 16-column grid.

    For distance transforms on crops (see :func:`_ring_crop`): both ends of
    each row stay on the 16-column grid of the full array counted from its
    own end, so OpenCV sums the same columns in the same blocks.
    Returns (x0, y0, x1, y1).
    """
    h, w = shape
    x0 = (max(0, bx - m) // _DT_BLOCK) * _DT_BLOCK
    x1 = w - ((w - min(w, bx + bw + m)) // _DT_BLOCK) * _DT_BLOCK
    return x0, max(0, by - m), x1, min(h, by + bh + m)


def _complete_with_ellipse(core_big: np.ndarray, n_core: int, ys: np.ndarray, xs: np.ndarray,
                           oy: int, ox: int) -> None:
    """Add to ``core_big`` an ellipse fitted to the core's visible outline pixels ``ys, xs``.

    ``n_core`` is the core's pixel count (the fit is rejected when its axes
    are far from the core's equivalent diameter).
    """
    if ys.size < 8:
        return
    pts = np.stack([xs + ox, ys + oy], 1).astype(np.float32)
    (cx, cy), (a, b), ang = cv2.fitEllipse(pts)
    eq = 2.0 * np.sqrt(n_core / np.pi)
    if not (np.isfinite(a) and np.isfinite(b)) or max(a, b) > 3.0 * eq or min(a, b) < 0.3 * eq:
        return
    cv2.ellipse(core_big, ((float(cx), float(cy)), (float(a), float(b)), float(ang)), 1, -1)


class _Grid(NamedTuple):
    """Where and how finely :func:`refine_rim` works on one lesion."""

    r: float  # refine px per WL px (analysis scale doubled until the rim is wide enough)
    f: float  # refine px per analysis-grid px
    width: float  # coarse rim width, refine px
    bx0: int  # crop of the candidate's masks (analysis px, local to cand.roi) ...
    by0: int
    bx1: int
    by1: int
    X0: int  # ... the same region in WL px (clipped to the frame) ...
    Y0: int
    X1: int
    Y1: int
    qw: int  # ... and its size on the refine grid
    qh: int


def refine_rim(nir: np.ndarray, cand: Candidate, scale: float, background: float,
               *, valid: Optional[np.ndarray] = None, blocked: Optional[np.ndarray] = None,
               pyramid: Optional[dict] = None, px_across: float = 10.0,
               blur_correction: bool = True) -> Optional[RimGeometry]:
    """Half-maximum rim boundary, width, completeness and intensities.

    The boundary is found on a *refine grid* fine enough that the rim is at
    least ``px_across`` pixels wide (the analysis grid when it already is,
    up to full WL resolution for thin rims), inside the lesion's ROI only.
    The rim mask is then interpolated to WL pixels with sub-pixel edges.

    Parameters
    ----------
    nir : (H, W) float32 normalised NIR, WL pixels
    cand : coarse candidate from :func:`segment.find_candidates`
    scale : analysis grid / WL pixels (e.g. 0.5)
    background : B, liver level around the lesion (normalised counts)
    valid : (H, W) bool or None
    blocked : analysis-grid bool ROI-local to ``cand.roi`` or None: where the
        view is blocked (instrument, invalid pixels, frame edge)
    pyramid : {scale: image} area-averaged copies of ``nir`` (e.g. 0.5,
        0.25, ...): the refine grid is cropped from them instead of resized
    px_across : least rim width on the refine grid, pixels
    blur_correction : fit a blurred-box model to the mean cross-section and
        move the edge from half maximum to where the model puts the true
        edge (matters when the rim is not much wider than the blur)
    """
    g = _refine_grid(cand, scale, nir.shape, px_across)
    if g is None:
        return None
    r, f, width = g.r, g.f, g.width
    rim_up = _mask_to_grid(cand.rim, g).view(bool)
    core_up = _mask_to_grid(cand.core, g).view(bool)
    bq = None if blocked is None else _mask_to_grid(blocked, g)  # uint8 0/1
    img_raw, img, valid_q = _refine_image(nir, g, pyramid, valid)

    # where the rim may be, the core level, and per pixel which base level
    # (core or liver) its edge is measured against
    zone, reach, not_outside, n_outside, core_level, vals = _rim_zones(img, rim_up, core_up, valid_q, g)
    if not core_level == core_level:  # NaN: no core pixels
        core_level = background
    core_level = min(core_level, background)
    d_core, core_side = _core_side(core_up, not_outside, n_outside)

    # the local rim peak, and q = (img - B) / (peak - B): 0 at liver level,
    # 1 at the local rim peak, negative in the dark core
    peak, support, se, filled = _peak_map(img, zone, rim_up, width, f)
    q, img_nan, p_med = _normalised_signal(img, peak, support, se, filled, background, bq, valid_q,
                                           rim_up, vals)
    # half maximum on each side: between liver and peak outside, between
    # core level and peak inside
    lev_in = 0.5 * (1.0 + (core_level - background) / max(p_med - background, 1e-6))
    lev_out = 0.5
    found = _rim_and_width(q, core_side, zone, rim_up, img_nan, peak, background, d_core, width,
                           lev_in, lev_out, blur_correction)
    if found is None:
        return None
    rim, thickness, lev_in, lev_out = found

    core, n_core, completeness, n_lesion, sum_x, sum_y = _core_and_completeness(
        core_side, reach, core_up, rim, bq, f)
    rim_full, ox, oy = _rim_mask_wl(rim, q, core_side, lev_in, lev_out, g, valid)
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
    return RimGeometry(X0 + ox, Y0 + oy, rim_full, core, target, background, core_level, thickness / r,
                       completeness, float(area), float(n_core) / (r * r), centroid,
                       bbox, contour)


def _refine_grid(cand: Candidate, scale: float, shape: tuple, px_across: float) -> Optional[_Grid]:
    """The refine grid and the lesion's ROI on it, in analysis, WL and refine pixels.

    The resolution ``r`` (refine px per WL px) starts at the analysis grid's
    ``scale`` and doubles, up to 1, until the coarse rim width
    (``cand.width_px``, analysis px) is at least ``px_across`` refine px:
    thin rims need finer pixels for a sub-pixel edge, wide ones do not.
    The ROI is the lesion's (rim | core) box grown by the width + 3 analysis
    px, so the liver just outside the rim is in it; its WL corners lie on
    whole analysis-grid cells.

    Parameters
    ----------
    shape : (H, W) of the WL frame

    Returns
    -------
    _Grid, or None when the ROI is under 4 WL px wide or high
    """
    H, W = shape
    cx0, cy0, _, _ = cand.roi
    lesion = cand.rim | cand.core
    # bounding box of the lesion (cheaper than np.nonzero + min/max)
    lx, ly, lw, lh = cv2.boundingRect(lesion.view(np.uint8))
    width_full = max(1.0, cand.width_px / scale)  # WL px
    r = scale
    while r < 1.0 and width_full * r < px_across:
        r = min(1.0, 2.0 * r)
    m = int(np.ceil(cand.width_px)) + 3
    bx0, by0 = max(0, lx - m), max(0, ly - m)
    bx1, by1 = min(lesion.shape[1], lx + lw + m), min(lesion.shape[0], ly + lh + m)
    # ROI in WL pixels, aligned to whole analysis-grid cells
    X0, Y0 = int(round((cx0 + bx0) / scale)), int(round((cy0 + by0) / scale))
    X1, Y1 = min(W, int(round((cx0 + bx1) / scale))), min(H, int(round((cy0 + by1) / scale)))
    rw, rh = X1 - X0, Y1 - Y0
    if rw < 4 or rh < 4:
        return None
    qw, qh = max(4, int(round(rw * r))), max(4, int(round(rh * r)))
    return _Grid(r, r / scale, width_full * r, bx0, by0, bx1, by1, X0, Y0, X1, Y1, qw, qh)


def _mask_to_grid(mask: np.ndarray, g: _Grid) -> np.ndarray:
    """The ROI crop of an analysis-grid mask (bool, local to ``cand.roi``) on the refine grid.

    Nearest-neighbour resize of the crop viewed as uint8 (bool <-> uint8
    0/1 as views, no copy: nearest resizing keeps the values 0/1).
    Returns (qh, qw) uint8 0/1; ``.view(bool)`` gives the bool mask.
    """
    return cv2.resize(mask[g.by0:g.by1, g.bx0:g.bx1].view(np.uint8), (g.qw, g.qh),
                      interpolation=cv2.INTER_NEAREST)


def _refine_image(nir: np.ndarray, g: _Grid, pyramid: Optional[dict],
                  valid: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """The ROI's NIR and valid mask on the refine grid.

    At full resolution the image is a view of ``nir``; otherwise a crop
    (view) of the pyramid level of scale ``g.r`` when the ROI lies on its
    pixels, else an area resize of the WL crop (same area averages).

    Returns
    -------
    img_raw : (qh, qw) float32, area-averaged NIR (for the rim's mean T)
    img : (qh, qw) float32, ``img_raw`` blurred by sigma 0.8 refine px
        (against pixel noise at the half-maximum edges)
    valid_q : (qh, qw) bool, or None when ``valid`` is None
    """
    r, qw, qh, X0, Y0, X1, Y1 = g.r, g.qw, g.qh, g.X0, g.Y0, g.X1, g.Y1
    raw = nir[Y0:Y1, X0:X1]
    level_img = pyramid.get(r) if pyramid else None
    qx0, qy0 = int(round(X0 * r)), int(round(Y0 * r))
    if r >= 1.0:
        img_raw = raw
    elif level_img is not None and abs(qx0 - X0 * r) < 1e-6 and abs(qy0 - Y0 * r) < 1e-6 \
            and qy0 + qh <= level_img.shape[0] and qx0 + qw <= level_img.shape[1]:
        img_raw = level_img[qy0:qy0 + qh, qx0:qx0 + qw]
    else:
        img_raw = cv2.resize(raw, (qw, qh), interpolation=cv2.INTER_AREA)
    img = cv2.GaussianBlur(img_raw, (0, 0), 0.8)
    valid_q = None
    if valid is not None:
        valid_q = cv2.resize(valid[Y0:Y1, X0:X1].astype(np.uint8), (qw, qh),
                             interpolation=cv2.INTER_NEAREST) > 0
    return img_raw, img, valid_q


def _rim_zones(img: np.ndarray, rim_up: np.ndarray, core_up: np.ndarray,
               valid_q: Optional[np.ndarray], g: _Grid):
    """Masks round the coarse rim and the core level, in one numba pass (:func:`refine_zones`).

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
        img, d_rim_up, d_in_core, core_up, valid_q if valid_q is not None else _NO_VALID,
        np.float32(2.0 * f), int(np.ceil(f)), int(np.ceil(0.5 * width)),
        np.float32(0.5 * width + 2.0 * f), zone, reach, not_outside, vals, dc_y0, dc_x0)
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


def _peak_map(img: np.ndarray, zone: np.ndarray, rim_up: np.ndarray, width: float,
              f: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Local rim peak per pixel: the max over a window as wide as the rim, of rim pixels only.

    The max is taken on a smoother copy of ``img`` (the rim's own texture
    would bias a plain maximum up), from ``zone`` pixels only, then the
    blocky max map is smoothed by a box as wide as the window, normalised
    by the same box over the support so that the map's border is not pulled
    towards 0.

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
    k = int(np.ceil(width + f))
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
    edge_args = (background, np.float32(0.15 * background), bq if bq is not None else _NO_BLOCK,
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
                   width: float, lev_in: float, lev_out: float, blur_correction: bool):
    """The refined rim mask and its width.

    The rim is where ``q`` is above ``lev_in`` on the core side and
    ``lev_out`` outside, in the zone.  Its width is measured on that mask
    (:func:`_width_and_edges`); when the blur-model fit moves the edge
    levels, the mask is redrawn at the fitted levels (kept only if it still
    has >= 4 pixels).  Specks in the zone do not matter for the width (a
    median over sections); the mask keeps only the components touching the
    coarse rim.

    Returns
    -------
    (rim, thickness, lev_in, lev_out) or None when the rim has < 4 pixels:
    rim (qh, qw) bool; thickness in refine px; the edge levels used
    """
    rim = np.empty(q.shape, bool)
    if rim_from_levels(q, core_side, zone, lev_in, lev_out, rim) < 4:
        return None
    thickness, fit_in, fit_out = _width_and_edges(img_nan, peak, background, rim, d_core, width,
                                                  lev_in, lev_out, blur_correction)
    if (fit_in, fit_out) != (lev_in, lev_out):
        lev_in, lev_out = fit_in, fit_out
        rim2 = np.empty(q.shape, bool)
        if rim_from_levels(q, core_side, zone, lev_in, lev_out, rim2) >= 4:
            rim = rim2
    kept = np.empty(q.shape, bool)
    if _keep_touching(rim, rim_up, kept) < 4:
        return None
    return kept, thickness, lev_in, lev_out


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
    """
    core_cand = np.empty(rim.shape, bool)
    core_candidates(core_side, reach, core_up, rim, core_cand)
    core = np.empty(rim.shape, bool)
    n_core = _keep_touching(core_cand, core_up, core)
    d_b, b_y0, b_x0 = _blocked_distance(core, bq, f)
    touched, outline, n_lesion, sum_x, sum_y = outline_touching(core, rim, d_b, np.float32(2.0 * f),
                                                                b_y0, b_x0)
    return core, n_core, float(touched) / max(1, outline), n_lesion, sum_x, sum_y


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
    x0, y0, x1, y1 = _aligned_crop(kx, ky, kw, kh, core.shape, int(np.ceil(2.0 * f / 0.955)) + 2)
    return cv2.distanceTransform(1 - bq[y0:y1, x0:x1], cv2.DIST_L2, 3), y0, x0


def _rim_mask_wl(rim: np.ndarray, q: np.ndarray, core_side: np.ndarray, lev_in: float,
                 lev_out: float, g: _Grid, valid: Optional[np.ndarray]) -> tuple[np.ndarray, int, int]:
    """The rim mask in WL pixels, with sub-pixel edges.

    Below full resolution the edge field ``q - level`` (level ``lev_in`` on
    the core side, ``lev_out`` outside; -1 away from the rim) is resized
    linearly to WL pixels and thresholded at 0, so the edges fall between
    refine pixels where the field crosses the level.  With a whole
    up-sampling factor only the rim's box (+ 2 px) is resized.

    Returns
    -------
    rim_full : (fh, fw) uint8 0/255, WL pixels (invalid pixels cleared)
    ox, oy : its origin within the WL ROI (g.X0, g.Y0)
    """
    r, qw, qh = g.r, g.qw, g.qh
    rw, rh = g.X1 - g.X0, g.Y1 - g.Y0
    ox = oy = 0
    if r >= 1.0:
        rim_full = rim.astype(np.uint8) * np.uint8(255)
    else:
        near_u8 = cv2.dilate(rim.astype(np.uint8), np.ones((3, 3), np.uint8))
        fi = int(round(1.0 / r))
        if abs(fi * r - 1.0) < 1e-9 and rw == qw * fi and rh == qh * fi:
            # only the rim's neighbourhood can be > 0: resize just its box plus
            # 2 px of -1 (a whole factor maps crop pixels onto the same source
            # positions, so this is the same mask; it saves ~half the pixels)
            bx, by, bw, bh = cv2.boundingRect(near_u8)
            cx0, cy0 = max(0, bx - 2), max(0, by - 2)
            cx1, cy1 = min(qw, bx + bw + 2), min(qh, by + bh + 2)
            field = np.empty((cy1 - cy0, cx1 - cx0), np.float32)
            edge_field(q[cy0:cy1, cx0:cx1], core_side[cy0:cy1, cx0:cx1], near_u8[cy0:cy1, cx0:cx1],
                       lev_in, lev_out, field)
            rim_full = cv2.compare(cv2.resize(field, ((cx1 - cx0) * fi, (cy1 - cy0) * fi),
                                              interpolation=cv2.INTER_LINEAR), 0.0, cv2.CMP_GT)
            ox, oy = cx0 * fi, cy0 * fi
        else:
            field = np.empty(q.shape, np.float32)
            edge_field(q, core_side, near_u8, lev_in, lev_out, field)
            rim_full = cv2.compare(cv2.resize(field, (rw, rh), interpolation=cv2.INTER_LINEAR), 0.0,
                                   cv2.CMP_GT)
    if valid is not None:
        fh, fw = rim_full.shape
        X0, Y0 = g.X0 + ox, g.Y0 + oy
        rim_full[~valid[Y0:Y0 + fh, X0:X0 + fw]] = 0
    return rim_full, ox, oy


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
    x0, y0, x1, y1 = _aligned_crop(kx, ky, kw, kh, core_up.shape, 1)
    return x0, y0, cv2.distanceTransform(u8[y0:y1, x0:x1], cv2.DIST_L2, 3)


def _keep_touching(mask: np.ndarray, ref: np.ndarray, out: np.ndarray) -> int:
    """``out`` = connected components (8) of ``mask`` that overlap ``ref``; returns its pixel count."""
    n, lab = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    return select_touching(lab, ref, n, out)


def _width_and_edges(img: np.ndarray, peak: np.ndarray, background: float, rim: np.ndarray,
                     d_core: np.ndarray, width_guess: float, lev_in: float, lev_out: float,
                     blur_correction: bool) -> tuple[float, float, float]:
    """Rim width (refine px) and the ``q`` levels at its true inner and outer edges.

    Cross-sections are taken at medial points (ridge of the rim's distance
    transform) along the direction away from the core (gradient of the
    distance to the core), which is across the rim for any core shape; the
    half-maximum crossings are interpolated to sub-pixel.  With
    ``blur_correction`` the blurred rim model
    (:func:`~._kernels.fit.fit_rim_profile`) is fitted to the mean cross
    section: when the blur is not small against the width the half-maximum
    width overstates the true width, and the fit gives both the true width
    and the levels at which the true edges lie.

    Returns
    -------
    width, lev_in, lev_out
    """
    dt = cv2.distanceTransform(rim.view(np.uint8), cv2.DIST_L2, 5)
    gy = cv2.Sobel(d_core, cv2.CV_32F, 0, 1, ksize=3)
    gx = cv2.Sobel(d_core, cv2.CV_32F, 1, 0, ksize=3)
    # medial points (ridge of dt, at most 300), their normals, and the peak
    # there: one normalisation per section (the peak at its medial point), so
    # the section's tails are not divided by a different local peak
    fallback, n_ridge, ys, xs, ny, nx, pk = ridge_sections(rim, dt, gy, gx, peak, 300)
    if n_ridge == 0 or ys.size == 0:
        return fallback, lev_in, lev_out
    B = float(background)
    t_in, t_out = profile_crossings(img, ys, xs, ny, nx, B, pk, float(lev_in), float(lev_out),
                                    float(3.0 * width_guess + 6.0), 0.25)
    fwhm, n_fin = width_median(t_in, t_out)
    if n_fin == 0:
        return fallback, lev_in, lev_out
    if not blur_correction or n_fin < 8:
        return fwhm, lev_in, lev_out
    dx = max(0.25, fwhm / 12.0)
    half_n = int(np.ceil(1.5 * fwhm / dx))
    prof = mean_cross_section(img, ys, xs, ny, nx, B, pk, t_in, t_out, half_n, dx)
    w, s, c0, c1, c2 = fit_rim_profile(prof, dx, half_n, fwhm)
    e_in = rim_model(-0.5 * w, w, s, c0, c1, c2)
    e_out = rim_model(0.5 * w, w, s, c0, c1, c2)
    top = rim_model(0.0, w, s, c0, c1, c2)  # the model's level at the rim's middle
    if not (c2 > 0.2 and 0.05 < e_out < top and e_in < top and w < 1.6 * fwhm):
        return fwhm, lev_in, lev_out
    return float(w), float(e_in), float(e_out)
