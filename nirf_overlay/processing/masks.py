"""Mask geometry on the analysis grid: boxes, outlines, centroids, circles.

Most of the segmentation's cost is distance transforms and labellings on
ROIs.  They run on the smallest box that gives the same answer to the bit
(:func:`box`, :func:`aligned_crop`); the reasons why such a crop is exact
are given where each is used.
"""

from __future__ import annotations

import math
from typing import Optional

import cv2
import numpy as np

from ._kernels.segment import circle_fit_sums
from .rules import RIM_RULES

#: column block of cv2.distanceTransform's float sums: a transform on a crop
#: equals the transform on the whole array to the bit only when both ends of
#: the crop's rows lie on this grid (counted from each end; measured)
DT_COLUMN_BLOCK = 16

#: the 3 x 3 square: one pixel of 8-connected growth or shrinkage
K3 = np.ones((3, 3), np.uint8)


def box(*masks: np.ndarray, margin: int = 0) -> tuple[slice, slice]:
    """(rows, cols) slices of the box holding every pixel of ``masks`` (ROI-sized
    bool, C-contiguous), grown by ``margin`` within the ROI; the whole ROI
    when they are all empty.

    Why a distance transform may run on this box instead of the ROI: the
    3 x 3 chamfer distance is the cheapest 8-connected path, and the
    cheapest path between two pixels stays in their bounding box.  So with
    every source and every pixel that is read inside the box, the values are
    the same as on the ROI (a path leaving the box is longer by at least
    2 x 0.41 px), and with the columns aligned below, to the bit.
    For a transform *of* a mask (sources = outside it), a margin of 1 puts
    a ring of sources round it, nearer than any source beyond.
    """
    h, w = masks[0].shape
    X0, Y0, X1, Y1 = w, h, 0, 0
    for m in masks:
        x, y, bw, bh = cv2.boundingRect(m.view(np.uint8))
        if bw:
            X0, Y0, X1, Y1 = min(X0, x), min(Y0, y), max(X1, x + bw), max(Y1, y + bh)
    if X1 <= X0:
        return slice(0, h), slice(0, w)
    # both ends of the rows on the ROI's 16-column grid, counted from its own
    # end: OpenCV's float sums depend on a pixel's column in that grid, and
    # aligned the crop's values are the ROI's to the bit
    x0 = (max(0, X0 - margin) // DT_COLUMN_BLOCK) * DT_COLUMN_BLOCK
    x1 = w - ((w - min(w, X1 + margin)) // DT_COLUMN_BLOCK) * DT_COLUMN_BLOCK
    return slice(max(0, Y0 - margin), min(h, Y1 + margin)), slice(x0, x1)


def aligned_crop(bx: int, by: int, bw: int, bh: int, shape: tuple, m: int) -> tuple[int, int, int, int]:
    """The box (bx, by, bw, bh) grown by ``m`` within ``shape``, its ends on the 16-column grid.

    For distance transforms on crops (see :func:`.background._ring_crop`): both ends of
    each row stay on the 16-column grid of the full array counted from its
    own end, so OpenCV sums the same columns in the same blocks.
    Returns (x0, y0, x1, y1).
    """
    h, w = shape
    x0 = (max(0, bx - m) // DT_COLUMN_BLOCK) * DT_COLUMN_BLOCK
    x1 = w - ((w - min(w, bx + bw + m)) // DT_COLUMN_BLOCK) * DT_COLUMN_BLOCK
    return x0, max(0, by - m), x1, min(h, by + bh + m)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Inner 8-connected boundary pixels of a bool mask."""
    m = mask.astype(np.uint8)
    er = cv2.erode(m, K3, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask & ~er.astype(bool)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (2-D bool) with every region not 4-connected to its edge filled."""
    h, w = mask.shape
    pad = np.zeros((h + 2, w + 2), np.uint8)
    pad[1:-1, 1:-1] = mask
    ff = pad.copy()
    cv2.floodFill(ff, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    return (pad | (1 - ff))[1:-1, 1:-1].astype(bool)


def hull(mask: np.ndarray) -> np.ndarray:
    """Filled convex hull of all of ``mask``'s outer contours (2-D bool in and out)."""
    cnts, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros(mask.shape, np.uint8)
    if cnts:
        pts = cv2.convexHull(np.concatenate(cnts))
        cv2.fillPoly(out, [pts], 1)
    return out.astype(bool)


def mask_centroid(mask: np.ndarray) -> tuple[float, float]:
    """(mean x, mean y) of a bool mask's pixels, via image moments.

    The moments of a binary image are integer sums held exactly in float64,
    so this equals ``xs.mean(), ys.mean()`` of ``np.nonzero`` without
    building the index arrays.  They are taken on the mask's bounding box
    (a lesion fills ~1/4 of its ROI) and shifted back exactly:
    ``m10 = m10_box + x0 * m00`` is an integer sum too.
    """
    u = mask.view(np.uint8)
    x0, y0, bw, bh = cv2.boundingRect(u)
    m = cv2.moments(u[y0:y0 + bh, x0:x0 + bw] if bw else u, True)
    m00 = m["m00"]
    return (m["m10"] + x0 * m00) / m00, (m["m01"] + y0 * m00) / m00


def nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a 2-D mask: same (ys, xs), same row-major order.

    Through the flat indices, which is ~6x cheaper than numpy's 2-D
    ``nonzero`` on an ROI (60 vs 9 us at 130 x 130).
    """
    return np.divmod(np.flatnonzero(mask), mask.shape[1])


def circle_fit(ys: np.ndarray, xs: np.ndarray) -> Optional[tuple[float, float, float]]:
    """Algebraic (Kasa) least-squares circle through points: (cx, cy, r) or None.

    Solved from the 3 x 3 normal equations on at most ~600 points (centred
    for conditioning), which is ~30x cheaper than ``lstsq`` on all of them.
    """
    if ys.size < 6:
        return None
    if ys.size > 600:
        step = ys.size // 600 + 1
        ys, xs = ys[::step], xs[::step]
    A, b, mx, my = circle_fit_sums(np.ascontiguousarray(ys, dtype=np.float64),
                                   np.ascontiguousarray(xs, dtype=np.float64))
    try:
        D, E, F = np.linalg.solve(A, b).tolist()
    except np.linalg.LinAlgError:
        return None
    # (Python floats from here: the same IEEE doubles, without numpy's
    # per-scalar overhead)
    cx, cy = -D / 2.0, -E / 2.0
    r2 = cx * cx + cy * cy - F
    if not math.isfinite(r2) or r2 <= 0:
        return None
    return float(cx + mx), float(cy + my), math.sqrt(r2)


def complete_core(core_big: np.ndarray, n_core: int, ys: np.ndarray, xs: np.ndarray,
                  oy: int, ox: int) -> bool:
    """Add to ``core_big`` the core completed through its visible outline pixels
    ``ys, xs`` (offset by ``oy, ox``): an ellipse fitted to them, or a circle where
    that outline spans less than ``RIM_RULES.core_ellipse_span_deg`` round it (a
    short arc does not pin down an ellipse's five parameters: half a 44 px core
    fitted 49 x 89 px); return whether it was drawn.

    ``n_core`` is the core's pixel count (the fit is rejected when its size is
    far from the core's equivalent diameter).
    """
    if ys.size < 8:
        return False
    eq = 2.0 * np.sqrt(n_core / np.pi)
    circ = circle_fit(ys.astype(np.float64), xs.astype(np.float64))
    if circ is not None and _span_deg(ys, xs, circ[0], circ[1]) < RIM_RULES.core_ellipse_span_deg:
        cx, cy, r = circ
        if not (np.isfinite(r) and 0.3 * eq <= 2.0 * r <= 3.0 * eq):
            return False
        cv2.circle(core_big, (int(round(cx + ox)), int(round(cy + oy))), int(round(r)), 1, -1)
        return True
    pts = np.stack([xs + ox, ys + oy], 1).astype(np.float32)
    (cx, cy), (a, b), ang = cv2.fitEllipse(pts)
    if not (np.isfinite(a) and np.isfinite(b)) or max(a, b) > 3.0 * eq or min(a, b) < 0.3 * eq:
        return False
    cv2.ellipse(core_big, ((float(cx), float(cy)), (float(a), float(b)), float(ang)), 1, -1)
    return True


def _span_deg(ys: np.ndarray, xs: np.ndarray, cx: float, cy: float) -> float:
    """Degrees round (cx, cy) that the points cover: 360 less the widest gap between them."""
    a = np.sort(np.arctan2(ys - cy, xs - cx))
    gaps = np.diff(np.concatenate([a, a[:1] + 2.0 * np.pi]))
    return float(360.0 - np.degrees(gaps.max()))
