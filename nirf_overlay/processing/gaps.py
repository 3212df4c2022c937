"""Rim gaps: the arcs of a core's outline that no rim covers.

The completeness (:func:`~.refine._core_and_completeness`) says *how much*
of the core's visible outline the rim covers; a surgeon also asks *where* it
is missing: a gap in the rim may point at a margin the tumour reaches.
:func:`rim_gaps` finds those arcs with the same definitions as the
completeness: the outline is the core's inner 8-connected boundary, a pixel
is covered when a rim pixel is in its 3 x 3 neighbourhood, and outline
within ``2 f`` of a blocked pixel (an instrument, the frame edge, no NIR) is
*hidden*, neither covered nor a gap.

Outline pixels are binned by angle round the core's centre
(``RIM_RULES.gap_bin_deg``); a bin whose visible outline is mostly
uncovered is a gap bin, hidden bins end a gap, empty bins (a concave
outline) take their neighbours' state.  Runs of gap bins at least
``RIM_RULES.gap_min_deg`` long are the gaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ._kernels.refine import angle_bins as _angle_bins
from .masks import K3, mask_centroid, nonzero
from .rules import RIM_RULES


@dataclass(frozen=True)
class RimGap:
    """One uncovered arc of a core's outline.

    ``start_deg`` .. ``end_deg`` counter-clockwise in image coordinates round
    the core's centre (0 = +x, 90 = +y, down the picture; ``end`` may pass
    360); ``points`` (N, 2) int32 WL px, the uncovered outline along it, in
    angle order (for drawing).
    """

    start_deg: float
    end_deg: float
    points: np.ndarray

    @property
    def extent_deg(self) -> float:
        return float(self.end_deg - self.start_deg)


def angle_bins(ys: np.ndarray, xs: np.ndarray, my: float, mx: float):
    """Angles of pixels (ys, xs) round (mx, my) and their ``RIM_RULES.gap_bin_deg`` bins.

    Returns (degrees 0..360 in image coordinates, bin index int64, number of bins).
    numpy's ``arctan2``, then one numba pass for the rest
    (``_kernels.refine.angle_bins``: the numbers of ``np.degrees(a) % 360``
    and the bins, without their four temporaries).
    """
    step = float(RIM_RULES.gap_bin_deg)
    nb = int(round(360.0 / step))
    ang = np.arctan2(ys - my, xs - mx)
    b = np.empty(ang.shape[0], np.int64)
    _angle_bins(ang, step, nb, b)
    return ang, b, nb


def rim_gaps(core: np.ndarray, rim: np.ndarray, d_b: np.ndarray, thr_b: float, b_y0: int,
             b_x0: int, r: float, X0: float, Y0: float) -> list[RimGap]:
    """The gaps of one rim, on its refine grid.

    Parameters
    ----------
    core, rim : (qh, qw) bool, refine grid
    d_b, thr_b, b_y0, b_x0 : distance to blocked pixels (a crop at
        (b_y0, b_x0), or an empty array) and the hidden limit, as for the
        completeness
    r : refine px per WL px; X0, Y0 : the refine grid's origin, WL px
    """
    u8 = core.view(np.uint8)
    if not cv2.countNonZero(u8):
        return []
    inner = cv2.erode(u8, K3, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    outline = core & (inner == 0)
    ys, xs = nonzero(outline)
    if ys.size < 8:
        return []
    near_rim = cv2.dilate(rim.view(np.uint8), K3, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    covered = near_rim[ys, xs] > 0
    hidden = np.zeros(ys.size, bool)
    if d_b.shape[0] > 0:
        hidden = d_b[ys - int(b_y0), xs - int(b_x0)] <= np.float32(thr_b)
    mx, my = mask_centroid(core)  # (the means of np.nonzero(core), exactly)
    ang, b, nb = angle_bins(ys, xs, my, mx)
    step = float(RIM_RULES.gap_bin_deg)
    n_cov = np.bincount(b, weights=covered & ~hidden, minlength=nb)
    n_open = np.bincount(b, weights=~covered & ~hidden, minlength=nb)
    n_hid = np.bincount(b, weights=hidden, minlength=nb)
    # 0 empty, 1 covered, 2 gap, 3 hidden
    state = np.where(n_open > n_cov, 2, 1)
    state = np.where(n_hid > n_open + n_cov, 3, state)
    state[(n_cov + n_open + n_hid) == 0] = 0
    if not (state == 2).any():
        return []
    if (state == 0).any():  # fill empty bins from the nearest filled one (circular)
        filled = np.flatnonzero(state)
        idx = np.arange(nb)
        dist = np.abs(idx[:, None] - filled[None, :])
        dist = np.minimum(dist, nb - dist)
        state = state[filled[np.argmin(dist, axis=1)]]
    gaps = []
    is_gap = state == 2
    if is_gap.all():
        runs = [(0, nb)]
    else:
        first = int(np.flatnonzero(~is_gap)[0])  # start the walk at a non-gap bin
        runs, start = [], None
        for k in range(1, nb + 1):
            i = (first + k) % nb
            if is_gap[i] and start is None:
                start = first + k
            elif not is_gap[i] and start is not None:
                runs.append((start, first + k))
                start = None
    for s, e in runs:
        if (e - s) * step < RIM_RULES.gap_min_deg:
            continue
        s_deg, e_deg = (s % nb) * step, (s % nb) * step + (e - s) * step
        rel = (ang - s_deg) % 360.0
        sel = (rel < (e - s) * step) & ~covered & ~hidden
        order = np.argsort(rel[sel])
        pts = np.stack([(xs[sel][order] + 0.5) / r - 0.5 + X0,
                        (ys[sel][order] + 0.5) / r - 0.5 + Y0], 1)
        gaps.append(RimGap(float(s_deg), float(e_deg), np.round(pts).astype(np.int32)))
    return gaps
