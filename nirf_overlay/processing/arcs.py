"""One rim cut in pieces by an instrument: hidden arcs joined, shared cores merged.

A tool across a lesion hides both channels: the rim falls apart into arcs,
some of which show no core of their own.  :func:`attach_hidden_arcs` adds
such a piece to the found rim whose circle it lies on; :func:`merge_shared_cores`
joins candidates whose cores overlap.  Where the tool hides the middle of the
core, the visible cores of the arcs on either side do not touch:
:func:`joined_under_tool` then takes both arcs as one rim when they lie on one
circle whose inside is core or tool.  The fractions are
:data:`~.rules.RIM_RULES` (``arc_*``, ``shared_core``).
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from .candidates import Candidate, union
from .masks import boundary, box, circle_fit, nonzero
from .rules import RIM_RULES


def joined_under_tool(ys: np.ndarray, xs: np.ndarray, c: Candidate, core_like: np.ndarray,
                      fluo: np.ndarray, blocked: np.ndarray, gap_px: float) -> Optional[Candidate]:
    """The joint core when the arc at grid pixels ``ys, xs`` and ``c``'s rim are one rim.

    A circle is fitted to both arcs together; each must lie on it
    (``arc_on_ring`` of its pixels within half the rim width + the gap +
    ``arc_ring_tolerance`` of the radius), the arc must be
    ``arc_join_elongation`` times longer along the circle than across it,
    and the disk inside it (less half
    the rim width, less fluorescence) must be at least ``arc_join_tool``
    tool and at most ``arc_join_liver`` liver: its pixels are core or hidden
    by the tool, so the two cores join under it.  A duct's end or another
    lesion across the tool puts liver inside the joint circle; a blob that
    touches a rim beside a tool's tip has the rim's own disk, with little
    tool in it.

    Returns None, or a member for :func:`~.candidates.union` without rim
    whose core is the visible dark part of that disk: the lesion's core
    reaches as far as the joint circle, also where neither arc's own search
    reached it (B's ring is laid round it, :func:`~.background.ring_background`).

    Parameters
    ----------
    ys, xs : int arrays, the arc's pixels on the grid
    c : a candidate
    core_like : (h, w) bool, dark (``ratio < core_ratio``) or ``blocked``
    fluo : (h, w) bool fluorescence
    blocked : (h, w) bool, instruments and invalid pixels
    """
    x0, y0 = c.roi[0], c.roi[1]
    ry, rx = nonzero(c.rim)
    ry, rx = ry + y0, rx + x0
    circ = circle_fit(np.concatenate([ys, ry]), np.concatenate([xs, rx]))
    if circ is None:
        return None
    cx, cy, rad = circ
    tol = 0.5 * c.width_px + gap_px + RIM_RULES.arc_ring_tolerance * rad
    for py, px in ((ys, xs), (ry, rx)):
        if np.mean(np.abs(np.hypot(px - cx, py - cy) - rad) <= tol) < RIM_RULES.arc_on_ring:
            return None
    r_in = rad - 0.5 * c.width_px
    h, w = blocked.shape
    X0, Y0 = max(0, int(cx - r_in)), max(0, int(cy - r_in))
    X1, Y1 = min(w, int(cx + r_in) + 2), min(h, int(cy + r_in) + 2)
    if r_in < 1 or X0 >= X1 or Y0 >= Y1:
        return None
    disk = np.zeros((Y1 - Y0, X1 - X0), np.uint8)
    cv2.circle(disk, (int(round(cx)) - X0, int(round(cy)) - Y0), int(r_in), 1, -1)
    inner = disk.astype(bool) & ~fluo[Y0:Y1, X0:X1]
    n = np.count_nonzero(inner)
    blk = blocked[Y0:Y1, X0:X1]
    dark = core_like[Y0:Y1, X0:X1]
    if (n == 0 or np.count_nonzero(inner & blk) < RIM_RULES.arc_join_tool * n
            or np.count_nonzero(inner & ~dark) > RIM_RULES.arc_join_liver * n):
        return None
    # an arc runs along the circle: longer along it than it is thick across
    # (a spill's round drop or a duct's stub is not); 5-95 % of its pixels
    # (tested last: the percentiles cost more than the tests above)
    ang = np.arctan2(ys - cy, xs - cx)
    ang = np.angle(np.exp(1j * (ang - np.angle(np.exp(1j * ang).mean()))))
    along = rad * np.subtract(*np.percentile(ang, [95, 5]))
    across = np.subtract(*np.percentile(np.hypot(xs - cx, ys - cy), [95, 5]))
    if along < RIM_RULES.arc_join_elongation * across:
        return None
    core = inner & dark & ~blk
    none = np.zeros_like(core)
    return Candidate(c.comp_index, (X0, Y0, X1, Y1), none, core, none, c.width_px,
                     c.completeness, c.centroid)


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


def join_under_tools(cands: list[Candidate], labels: np.ndarray, stats: np.ndarray,
                     blocked: np.ndarray, gap_px: float, min_rim_px: float,
                     core_like: np.ndarray, fluo: np.ndarray) -> list[Candidate]:
    """Join the arcs of one rim that a tool keeps apart, after :func:`merge_shared_cores`.

    Candidates, then fluorescent pieces that touch the tool and are no
    candidate (at least ``arc_piece_min`` x the least rim area, no thicker
    than the rim: ``arc_max_thickness``), are added to a candidate they are
    :func:`joined_under_tool` to, with the joint circle's dark inside as core.
    Run on the merged candidates, so a piece is judged against the whole rim
    found so far, not against one of its short arcs.

    Parameters as for :func:`attach_hidden_arcs`; ``core_like``, ``fluo`` as
    for :func:`joined_under_tool`.
    """
    if not cands or not blocked.any():
        return cands
    groups = [[c] for c in cands]
    k = 0
    while k < len(groups):  # candidates, pairwise (each group grows)
        a = groups[k][0]
        j = k + 1
        while j < len(groups):
            ys, xs = nonzero(groups[j][0].rim)
            joint = joined_under_tool(ys + groups[j][0].roi[1], xs + groups[j][0].roi[0], a,
                                      core_like, fluo, blocked, gap_px)
            if joint is None:
                j += 1
                continue
            groups[k] += groups.pop(j) + [joint]
            a = groups[k][0] = union(groups[k], blocked, gap_px)
            del groups[k][1:]
        k += 1
    out = [g[0] for g in groups]
    # (the components in a rim already: candidates and the pieces attached to them)
    used = set()
    for c in out:
        used.update(np.unique(labels[c.roi[1]:c.roi[3], c.roi[0]:c.roi[2]][c.rim]).tolist())
    near_block = cv2.dilate(blocked.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    for i in range(1, stats.shape[0]):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if i in used or area < RIM_RULES.arc_piece_min * min_rim_px:
            continue
        comp = labels[y:y + bh, x:x + bw] == i
        if not (comp & near_block[y:y + bh, x:x + bw]).any():
            continue
        ys, xs = nonzero(comp)
        for n, c in enumerate(out):
            if area > RIM_RULES.arc_max_thickness * np.hypot(bw, bh) * (c.width_px + gap_px):
                continue
            joint = joined_under_tool(ys + y, xs + x, c, core_like, fluo, blocked, gap_px)
            if joint is not None:
                piece = Candidate(c.comp_index, (x, y, x + bw, y + bh), comp, np.zeros_like(comp),
                                  comp, c.width_px, c.completeness, c.centroid)
                out[n] = union([c, piece, joint], blocked, gap_px)
                break
    return out
