"""Coarse-grid segmentation: which fluorescent components are rims round a dark core.

Everything here runs on the reduced analysis grid (``segment.analysis_scale``
of the frame), where a 1080p frame is a few hundred thousand pixels or fewer.
Sub-pixel boundaries and measurements are made afterwards at full resolution
inside each lesion's ROI (:mod:`.refine`).  All thresholds are *ratios* to
the local liver background (:mod:`.background`), so an auto-gain or exposure
step that scales the whole frame cancels out.

The steps: fluorescence with hysteresis (:mod:`.fluorescence`), instruments
(:mod:`.instruments`), per component a core and its rim (:mod:`.cores`),
pieces of one rim joined (:mod:`.arcs`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ._validate import frame_dims, require, require_optional
from .arcs import attach_hidden_arcs, join_under_tools, merge_shared_cores
from .candidates import Candidate, completeness_needed
from .cores import component_candidates


def find_candidates(ratio: np.ndarray, fluo: np.ndarray, labels: np.ndarray, stats: np.ndarray,
                    instr: np.ndarray, valid: Optional[np.ndarray], *, min_rim_px: float,
                    min_core_px: float, core_ratio: float, min_completeness: float,
                    max_width_px: float, gap_px: float = 2.0, core_open_px: float = 0.0,
                    relax: Optional[np.ndarray] = None) -> list[Candidate]:
    """Fluorescent components that enclose, fully or in part, a hypofluorescent core.

    The core is the dark (``ratio < core_ratio``) region reached from the
    component's holes or its convex-hull deficiency, so a partial rim (an arc)
    finds its core without a closed ring.  Ducts (a curve around ordinary
    liver), the gallbladder (a filled blob) and fluorescence without a dark
    core find no core and are not candidates.  Fluorescence attached to a rim
    but further from the core than the rim's own width (a duct running into
    it) is cut off.

    An instrument hides both channels: its pixels may connect the visible
    pieces of a core (they count as "could be core" for connectivity, never
    as core area), the core is kept inside the circle the arc lies on, and
    arcs that share a core, or lie on one circle round a core the tool hides
    (a rim cut in two by a tool), become one lesion.

    Parameters
    ----------
    ratio : (h, w) float32, NIR / local background on the analysis grid
    fluo : (h, w) uint8 0/1 fluorescence mask
    labels, stats : components of ``fluo``, from
        :func:`~.fluorescence.hysteresis_components` or
        ``cv2.connectedComponentsWithStats`` (a component of area 0 is skipped)
    instr : (h, w) bool instrument mask
    valid : optional (h, w) bool, usable pixels; the others are blocked
        like an instrument (they may hide a core, never count as core)
    min_rim_px, min_core_px : least rim and core areas, grid px
    core_ratio : a core is darker than this x B
    min_completeness : least fraction of the core's visible outline the rim covers
    max_width_px, gap_px, core_open_px : widest rim, core-rim gap, least core
        depth (slivers are not cores), grid px
    relax : optional (h, w) bool; inside it (where a rim was tracked last
        frame) the completeness criterion is relaxed, so a rim does not
        flicker in and out of the rim class.

    All arrays C-contiguous.

    Raises
    ------
    TypeError, ValueError
        for another dtype, shape or layout
    """
    require("ratio", ratio, np.float32, ("h", "w"))
    grid = frame_dims(ratio.shape)
    require("fluo", fluo, np.uint8, grid)
    require("labels", labels, np.int32, grid)
    require("stats", stats, np.int32, ("n", 5))
    require("instr", instr, np.bool_, grid)
    require_optional("valid", valid, np.bool_, grid)
    require_optional("relax", relax, np.bool_, grid)
    blocked = instr if valid is None else (instr | ~valid)
    fluo_b = fluo.astype(bool)
    out = component_candidates(ratio, fluo_b, labels, stats, blocked, min_rim_px=min_rim_px,
                               min_core_px=min_core_px, core_ratio=core_ratio,
                               min_completeness=min_completeness, max_width_px=max_width_px,
                               gap_px=gap_px, core_open_px=core_open_px, relax=relax)
    # dark or hidden by a tool: where a core may be (arcs joined under a tool)
    core_like = ((ratio < core_ratio) | blocked) if blocked.any() else None
    out = attach_hidden_arcs(out, labels, stats, blocked, gap_px, min_rim_px)
    out = merge_shared_cores(out, blocked, gap_px)
    if core_like is not None:
        out = join_under_tools(out, labels, stats, blocked, gap_px, min_rim_px, core_like, fluo_b)
    return [c for c in out
            if c.completeness >= completeness_needed(relax, c.roi, c.rim, min_completeness)]
