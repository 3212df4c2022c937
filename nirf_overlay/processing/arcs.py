"""One rim cut in pieces by an instrument: hidden arcs joined, shared cores merged.

A tool across a lesion hides both channels: the rim falls apart into arcs,
some of which show no core of their own.  :func:`attach_hidden_arcs` adds
such a piece to the found rim whose circle it lies on; :func:`merge_shared_cores`
joins candidates whose cores overlap.  The fractions are
:data:`~.rules.RIM_RULES` (``arc_*``, ``shared_core``).
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from .candidates import Candidate, union
from .masks import boundary, box, circle_fit, nonzero
from .rules import RIM_RULES


def attach_hidden_arcs(cands: list[Candidate], labels: np.ndarray, stats: np.ndarray,
                       blocked: np.ndarray, gap_px: float, min_rim_px: float) -> list[Candidate]:
    """Add fluorescent pieces cut off a rim by an instrument to that rim.

    A piece that touches the instrument, is no candidate of its own (its
    core is behind the tool) and lies on the circle of a found rim
    (``arc_on_ring``, 90 %, of its pixels within half the rim's width plus
    the gap and ``arc_ring_tolerance``, 6 %, of the radius: cores are not
    perfect circles) is the same rim.

    Parameters
    ----------
    cands : candidates found so far
    labels, stats : components of the fluorescence mask (as for
        :func:`~.segment.find_candidates`)
    blocked : (h, w) bool, instruments and invalid pixels
    gap_px, min_rim_px : core-rim gap and least rim area, grid px
    """
    if not cands or not blocked.any():
        return cands
    used = {c.comp_index for c in cands}
    near_block = cv2.dilate(blocked.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    # each rim's circle: from the visible outline of its core (many points
    # round a large part of the circle) grown by half the rim width; from the
    # rim itself when the core shows too little outline
    # (both are tried: a core mostly behind the tool shows too little outline,
    # a short thick arc gives a poor circle of its own).  Fitted only once a
    # piece touching the tool is found (most frames with a tool have none).
    circles = None

    def rim_circles():
        out = []
        for c in cands:
            x0, y0, x1, y1 = c.roi
            # (on the core's box grown by 1: the same boundary, the same points
            # in the same order; likewise the rim's points from its box)
            by, bx = box(c.core, margin=1)
            cb = (boundary(c.core[by, bx])
                  & ~near_block[y0 + by.start:y0 + by.stop, x0 + bx.start:x0 + bx.stop])
            ys, xs = nonzero(cb)
            circ = circle_fit(ys + (y0 + by.start), xs + (x0 + bx.start)) if ys.size >= 12 else None
            mine = []
            if circ is not None:
                mine.append((circ[0], circ[1], circ[2] + 0.5 * c.width_px))
            by, bx = box(c.rim)
            ys, xs = nonzero(c.rim[by, bx])
            circ = circle_fit(ys + (y0 + by.start), xs + (x0 + bx.start))
            if circ is not None:
                mine.append(circ)
            out.append(mine)
        return out

    extra: list[Candidate] = []
    for i in range(1, stats.shape[0]):
        if i in used:
            continue
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area < RIM_RULES.arc_piece_min * min_rim_px:
            continue
        comp = labels[y:y + bh, x:x + bw] == i
        if not (comp & near_block[y:y + bh, x:x + bw]).any():
            continue
        if circles is None:
            circles = rim_circles()
        ys, xs = nonzero(comp)
        ys, xs = ys + y, xs + x
        for c, mine in zip(cands, circles):
            hit = False
            for cx, cy, rad in mine:
                tol = 0.5 * c.width_px + gap_px + RIM_RULES.arc_ring_tolerance * rad
                d = np.abs(np.hypot(xs - cx, ys - cy) - rad)
                # on the ring, no longer than the rim's circle allows, and no
                # thicker than the rim (a gallbladder or duct end next to the tool is not)
                if (np.mean(d <= tol) >= RIM_RULES.arc_on_ring
                        and max(bw, bh) <= RIM_RULES.arc_max_extent * rad
                        and area <= (RIM_RULES.arc_max_thickness * np.hypot(bw, bh)
                                     * (c.width_px + gap_px))):
                    hit = True
                    break
            if hit:
                extra.append(Candidate(c.comp_index, (x, y, x + bw, y + bh), comp, np.zeros_like(comp),
                                       comp, c.width_px, c.completeness, c.centroid))
                break
    if not extra:
        return cands
    # merge each piece into the rim it belongs to
    out = []
    for c in cands:
        members = [c] + [e for e in extra if e.comp_index == c.comp_index]
        out.append(c if len(members) == 1 else union(members))
    return out


def merge_shared_cores(cands: list[Candidate], blocked: Optional[np.ndarray] = None,
                       gap_px: float = 2.0) -> list[Candidate]:
    """Merge candidates whose cores overlap (one rim cut into arcs by a tool).

    ``blocked`` and ``gap_px`` as for :func:`~.candidates.union`, which
    measures the merged rim's completeness again.
    """
    if len(cands) < 2:
        return cands
    parent = list(range(len(cands)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a in range(len(cands)):
        for b in range(a + 1, len(cands)):
            ca, cb_ = cands[a], cands[b]
            ax0, ay0, ax1, ay1 = ca.roi
            bx0, by0, bx1, by1 = cb_.roi
            ox0, oy0, ox1, oy1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
            if ox0 >= ox1 or oy0 >= oy1:
                continue
            sa = ca.core[oy0 - ay0:oy1 - ay0, ox0 - ax0:ox1 - ax0]
            sb = cb_.core[oy0 - by0:oy1 - by0, ox0 - bx0:ox1 - bx0]
            inter = np.count_nonzero(sa & sb)
            if inter > RIM_RULES.shared_core * min(np.count_nonzero(ca.core), np.count_nonzero(cb_.core)):
                parent[find(a)] = find(b)
    groups: dict = {}
    for k in range(len(cands)):
        groups.setdefault(find(k), []).append(cands[k])
    return [m[0] if len(m) == 1 else union(m, blocked, gap_px) for m in groups.values()]
