"""A rim candidate on the analysis grid, and what every step does with one.

A :class:`Candidate` is a fluorescent component that surrounds, fully or in
part, a hypofluorescent core (:mod:`.cores` finds them, :mod:`.arcs` joins
the pieces of one rim, :mod:`.refine` measures them per lesion).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .masks import K3, boundary, mask_centroid
from .rules import RIM_RULES


@dataclass
class Candidate:
    """A fluorescent component that surrounds (part of) a dark core, coarse grid."""

    comp_index: int
    roi: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) on the analysis grid
    rim: np.ndarray  # (rh, rw) bool, rim part of the component (ducts beyond cut off)
    core: np.ndarray  # (rh, rw) bool
    component: np.ndarray  # (rh, rw) bool, whole fluorescent component
    width_px: float  # coarse estimate of rim width, analysis-grid pixels
    completeness: float  # fraction of the visible core outline within gap_px of the rim
    centroid: tuple[float, float]  # (x, y) analysis grid


def completeness_needed(relax: Optional[np.ndarray], roi: tuple[int, int, int, int],
                        rim: np.ndarray, min_completeness: float) -> float:
    """``min_completeness``, relaxed (``RIM_RULES.tracked_completeness``) where the rim touches ``relax``.

    ``relax`` : (h, w) bool grid mask of last frame's rims (or None), so a
    tracked rim does not flicker in and out of the rim class; ``rim`` is
    (rh, rw) bool in ``roi`` = (x0, y0, x1, y1).
    """
    x0, y0, x1, y1 = roi
    if relax is not None and relax[y0:y1, x0:x1][rim].any():
        return RIM_RULES.tracked_completeness * min_completeness
    return min_completeness


def union(members: list[Candidate], blocked: Optional[np.ndarray] = None,
          gap_px: float = 2.0) -> Candidate:
    """One candidate from several (rim pieces and cores pasted into a joint ROI).

    With ``blocked`` (the whole analysis grid) the completeness is measured
    again on the joint core's visible outline.
    """
    x0 = min(c.roi[0] for c in members)
    y0 = min(c.roi[1] for c in members)
    x1 = max(c.roi[2] for c in members)
    y1 = max(c.roi[3] for c in members)
    rim = np.zeros((y1 - y0, x1 - x0), bool)
    core = np.zeros_like(rim)
    comp = np.zeros_like(rim)
    for c in members:
        cx0, cy0, cx1, cy1 = c.roi
        sl = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
        rim[sl] |= c.rim
        core[sl] |= c.core
        comp[sl] |= c.component
    core &= ~rim
    area = [float(np.count_nonzero(c.rim)) for c in members]
    width = float(np.average([c.width_px for c in members], weights=area))
    compl = float(sum(c.completeness * a for c, a in zip(members, area)) / max(sum(area), 1.0))
    if blocked is not None and core.any():
        blk = cv2.dilate(blocked[y0:y1, x0:x1].astype(np.uint8), K3) > 0
        cb = boundary(core) & ~blk
        if cb.any():
            d_rim = cv2.distanceTransform((~rim).astype(np.uint8), cv2.DIST_L2, 3)
            compl = float(np.count_nonzero(cb & (d_rim <= gap_px))) / np.count_nonzero(cb)
    mx, my = mask_centroid(rim | core)
    return Candidate(members[0].comp_index, (x0, y0, x1, y1), rim, core, comp, width, compl,
                     (float(mx) + x0, float(my) + y0))
