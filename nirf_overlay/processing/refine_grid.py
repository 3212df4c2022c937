"""The refine grid of one lesion: fine enough for its rim, and back to WL pixels.

The coarse grid finds *where* a rim is; its edges are placed on a grid
where the rim is at least ``RIM_RULES.refine_px_across`` pixels wide (the
analysis grid when it already is, up to full WL resolution for thin rims),
inside the lesion's ROI only, and the rim mask is then interpolated to WL
pixels with sub-pixel edges (:func:`rim_mask_wl`).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import cv2
import numpy as np

from ._kernels.refine import edge_field
from ._kernels.width import constant_width_field
from .candidates import Candidate
from .masks import K3


class RefineGrid(NamedTuple):
    """Where and how finely :func:`~.refine.refine_rim` works on one lesion."""

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


def refine_grid(cand: Candidate, scale: float, shape: tuple, px_across: float) -> Optional[RefineGrid]:
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
    RefineGrid, or None when the ROI is under 4 WL px wide or high
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
    return RefineGrid(r, r / scale, width_full * r, bx0, by0, bx1, by1, X0, Y0, X1, Y1, qw, qh)


def mask_to_grid(mask: np.ndarray, g: RefineGrid) -> np.ndarray:
    """The ROI crop of an analysis-grid mask (bool, local to ``cand.roi``) on the refine grid.

    Nearest-neighbour resize of the crop viewed as uint8 (bool <-> uint8
    0/1 as views, no copy: nearest resizing keeps the values 0/1).
    Returns (qh, qw) uint8 0/1; ``.view(bool)`` gives the bool mask.
    """
    return cv2.resize(mask[g.by0:g.by1, g.bx0:g.bx1].view(np.uint8), (g.qw, g.qh),
                      interpolation=cv2.INTER_NEAREST)


def refine_image(nir: np.ndarray, g: RefineGrid, pyramid: Optional[dict],
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


def rim_mask_wl(rim: np.ndarray, q: np.ndarray, core_side: np.ndarray, lev_in: float,
                lev_out: float, g: RefineGrid, valid: Optional[np.ndarray],
                across: tuple[np.ndarray, np.ndarray], thickness: float) -> tuple[np.ndarray, int, int]:
    """The rim mask in WL pixels, with sub-pixel edges.

    Below full resolution the edge field ``q - level`` (level ``lev_in`` on
    the core side, ``lev_out`` outside; -1 away from the rim) is resized
    linearly to WL pixels and thresholded at 0, so the edges fall between
    refine pixels where the field crosses the level.  With a whole
    up-sampling factor only the rim's box (+ 2 px) is resized.

    On the refine grid, before that, the field's outer edge is moved half
    way to the measured ``thickness`` (refine px) from its inner edge, by
    at most 1 WL px outwards (:func:`~._kernels.width.constant_width_field`,
    rays along ``across``, the (ny, nx) unit directions across the rim away
    from the core from :func:`~.width.width_and_edges`): each pixel's outer
    edge is placed against the local peak and liver level and wanders with both,
    but a rim's width is the same all round its core and is measured from
    the whole rim; half way, an error of either counts half.  (A reach of
    2 WL px let a duct running along the rim in, seed 902.)  At full
    resolution the mask's outer side is where that field is > 0.

    Returns
    -------
    rim_full : (fh, fw) uint8 0/255, WL pixels (invalid pixels cleared)
    ox, oy : its origin within the WL ROI (g.X0, g.Y0)
    """
    r, qw, qh = g.r, g.qw, g.qh
    rw, rh = g.X1 - g.X0, g.Y1 - g.Y0
    ox = oy = 0
    near_u8 = cv2.dilate(rim.view(np.uint8), K3)
    if r >= 1.0:
        # (the rim's box + 1 px: the field is -1 beyond near_u8, and rays stay in it)
        bx, by, bw, bh = cv2.boundingRect(near_u8)
        cx0, cy0 = max(0, bx - 1), max(0, by - 1)
        cx1, cy1 = min(qw, bx + bw + 1), min(qh, by + bh + 1)
        field, moved = _width_field(q, core_side, near_u8, lev_in, lev_out, across, thickness, r,
                                    (cy0, cy1, cx0, cx1))
        # where the moved field is > 0 (it equals the edge field but on the outer side),
        # but not where the rim was cut off (to its band, outside the zone) although the
        # edge field was > 0 there
        rim_full = rim.view(np.uint8) * np.uint8(255)
        box = rim_full[cy0:cy1, cx0:cx1]
        outer = (near_u8[cy0:cy1, cx0:cx1] != 0) & ((box != 0) | (field <= 0))
        box[outer] = np.where(moved[outer] > 0, np.uint8(255), np.uint8(0))
    else:
        fi = int(round(1.0 / r))
        if abs(fi * r - 1.0) < 1e-9 and rw == qw * fi and rh == qh * fi:
            # only the rim's neighbourhood can be > 0: resize just its box plus
            # 2 px of -1 (a whole factor maps crop pixels onto the same source
            # positions, so this is the same mask; it saves ~half the pixels)
            bx, by, bw, bh = cv2.boundingRect(near_u8)
            cx0, cy0 = max(0, bx - 2), max(0, by - 2)
            cx1, cy1 = min(qw, bx + bw + 2), min(qh, by + bh + 2)
            _, moved = _width_field(q, core_side, near_u8, lev_in, lev_out, across, thickness, r,
                                    (cy0, cy1, cx0, cx1))
            rim_full = cv2.compare(cv2.resize(moved, ((cx1 - cx0) * fi, (cy1 - cy0) * fi),
                                              interpolation=cv2.INTER_LINEAR), 0.0, cv2.CMP_GT)
            ox, oy = cx0 * fi, cy0 * fi
        else:
            _, moved = _width_field(q, core_side, near_u8, lev_in, lev_out, across, thickness, r,
                                    (0, qh, 0, qw))
            rim_full = cv2.compare(cv2.resize(moved, (rw, rh), interpolation=cv2.INTER_LINEAR), 0.0,
                                   cv2.CMP_GT)
    if valid is not None:
        fh, fw = rim_full.shape
        X0, Y0 = g.X0 + ox, g.Y0 + oy
        rim_full[~valid[Y0:Y0 + fh, X0:X0 + fw]] = 0
    return rim_full, ox, oy


def _width_field(q: np.ndarray, core_side: np.ndarray, near_u8: np.ndarray, lev_in: float,
                 lev_out: float, across: tuple[np.ndarray, np.ndarray], thickness: float, r: float,
                 crop: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The edge field on ``crop`` (y0, y1, x0, x1 of the refine grid), and that field with
    its outer edge moved towards the constant ``thickness`` (refine px; reach 1 WL px =
    ``r`` refine px)."""
    y0, y1, x0, x1 = crop
    cs = core_side[y0:y1, x0:x1]
    field = np.empty((y1 - y0, x1 - x0), np.float32)
    edge_field(q[y0:y1, x0:x1], cs, near_u8[y0:y1, x0:x1], lev_in, lev_out, field)
    out = np.empty_like(field)
    ny, nx = across
    constant_width_field(field, ny[y0:y1, x0:x1], nx[y0:y1, x0:x1], float(thickness), float(r), out)
    return field, out
