"""B's ring round the whole dark core of a partial rim (#17 d3, seed 532's second lesion).

A candidate's core is what its arc reaches; where most of the core lies bare
(a partial rim, a tool hiding the rest of the arc) the ring laid round that
sliver ran through the core's blurred edge -- darker than liver, above the
core-dark level -- and off-centre, on the arc's side only, so B followed
the liver's level there.  Grown by the connected core-dark pixels, the ring
starts a rim width beyond the whole core's edge all round, as the truth's does.
"""

import cv2
import numpy as np
import pytest

from nirf_overlay.processing.background import (core_dark, lesion_core, ring_background,
                                                ring_exclusion)
from nirf_overlay.processing.candidates import Candidate

LIVER = 60.0
PX_PER_MM = 4.0


def _scene(blur_px):
    """A core of radius 24 px at (80, 70), a rim arc over +-35 degrees on its right
    (6 px wide), blurred by ``blur_px``; the candidate's core is the dark part
    its arc reaches (the ROI round the arc), as :mod:`~.cores` gives it."""
    h, w = 140, 170
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(x - 80, y - 70)
    ang = np.degrees(np.arctan2(y - 70, x - 80))
    # liver brighter to the right (as a parenchyma's level varies over centimetres)
    img = (LIVER * (1.0 + 0.0015 * (x - 80))).astype(np.float32)
    img[r <= 24] = 0.1 * LIVER
    rim_drawn = (r > 24) & (r <= 30) & (np.abs(ang) <= 35)
    img[rim_drawn] = 3.0 * LIVER
    img = cv2.GaussianBlur(img, (0, 0), blur_px)
    # liver texture, so the median moves with every pixel of fall-off it takes in
    img += np.random.default_rng(5).normal(0, 0.05 * LIVER, img.shape).astype(np.float32)
    ratio = img / np.float32(LIVER)
    fluo = (ratio > 1.5).astype(np.uint8)
    blocked = np.zeros((h, w), bool)
    blocked[0, :] = blocked[-1, :] = blocked[:, 0] = blocked[:, -1] = True
    ys, xs = np.nonzero(fluo)
    x0, y0, x1, y1 = xs.min() - 6, ys.min() - 4, xs.max() + 4, ys.max() + 4
    roi = (int(x0), int(y0), int(x1), int(y1))
    sl = np.s_[y0:y1, x0:x1]
    rim = fluo[sl].astype(bool)
    core = (ratio[sl] < 0.7) & ~rim
    cand = Candidate(1, roi, rim, core, rim, 6.0, 0.2, (float(xs.mean()), float(ys.mean())))
    # the truth's B: the ring from 1.5 to 5.5 mm outside the lesion's full outline
    truth_B = float(np.median(img[(r > 30 + 6) & (r <= 30 + 22)]))
    return img, ratio, fluo, blocked, cand, truth_B


@pytest.mark.parametrize("blur_px", [1.5, 3.0])
def test_ring_round_the_whole_dark_core_reads_liver(blur_px):
    img, ratio, fluo, blocked, cand, truth_B = _scene(blur_px)
    exclude = ring_exclusion(fluo, blocked, ratio, None, px_per_mm=PX_PER_MM, core_ratio=0.7)
    ring, gap, width = 4.0 * PX_PER_MM, 1.5 * PX_PER_MM, 6.0
    dark = core_dark(ratio, 0.7, blocked)
    core = lesion_core(img.shape, cand, ring, gap, blocked, width, dark=dark)
    # the grown core is the whole disc, not the sliver the arc reaches
    box = np.s_[core.y0:core.y0 + core.mask.shape[0], core.x0:core.x0 + core.mask.shape[1]]
    assert cand.core.sum() < 0.3 * (ratio[box] < 0.7).sum()
    assert (core.mask.astype(bool) & (ratio[box] < 0.7)).sum() >= 0.95 * (ratio[box] < 0.7).sum()
    B = ring_background(img, cand, exclude, ring, gap, width_px=width, core=core)
    sliver = lesion_core(img.shape, cand, ring, gap, blocked[cand.roi[1]:cand.roi[3],
                                                              cand.roi[0]:cand.roi[2]], width)
    B_sliver = ring_background(img, cand, exclude, ring, gap, width_px=width, core=sliver)
    assert B == pytest.approx(truth_B, rel=0.01)
    # the ring round the sliver (no dark core given, as before) sits off-centre, on
    # the arc's brighter side
    assert B_sliver / truth_B - 1 > 0.02


def test_core_in_full_view_is_unchanged():
    """A candidate whose core is the whole dark region already keeps that core."""
    img, ratio, fluo, blocked, cand, truth_B = _scene(1.5)
    x0, y0, x1, y1 = cand.roi
    full = ratio < 0.7
    # widen the ROI so the whole dark disc is the candidate's own core
    roi = (30, 20, 140, 120)
    sl = np.s_[20:120, 30:140]
    rim = fluo[sl].astype(bool)
    c = Candidate(1, roi, rim, full[sl] & ~rim, rim, 6.0, 0.2, cand.centroid)
    dark = core_dark(ratio, 0.7, blocked)
    a = lesion_core(img.shape, c, 16.0, 6.0, blocked, 6.0, dark=dark)
    b = lesion_core(img.shape, c, 16.0, 6.0, blocked[sl], 6.0)
    assert a.x0 == b.x0 and a.y0 == b.y0
    np.testing.assert_array_equal(a.mask, b.mask)


def test_ring_also_round_the_arc_across_a_tool():
    """A complete rim a tool crosses: the arc below the tool is the candidate's (joined
    across it), the core seen only above.  B's ring runs round both arcs -- the
    crop its distances are taken on once ended short of the far arc's ring, and B
    came from the near side alone (seed 505's second lesion: B +0.3 to +19 %)."""
    h, w = 200, 200
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(x - 100, y - 100)
    # liver brighter towards the top, the near side
    img = (LIVER * (1.0 - 0.002 * (y - 100))).astype(np.float32)
    img[r <= 20] = 0.1 * LIVER
    img[(r > 20) & (r <= 26)] = 3.0 * LIVER
    img = cv2.GaussianBlur(img, (0, 0), 1.5)
    tool = (y >= 88) & (y < 121)
    img[tool] = 0.05 * LIVER
    ratio = img / np.float32(LIVER)
    fluo = ((ratio > 1.5) & ~tool).astype(np.uint8)
    blocked = tool.copy()
    blocked[0, :] = blocked[-1, :] = blocked[:, 0] = blocked[:, -1] = True
    roi = (66, 66, 134, 134)
    sl = np.s_[66:134, 66:134]
    rim = fluo[sl].astype(bool)
    core = (ratio[sl] < 0.7) & ~rim & ~tool[sl]
    cand = Candidate(1, roi, rim, core, rim, 6.0, 1.0, (100.0, 100.0))
    exclude = ring_exclusion(fluo, tool, ratio, None, px_per_mm=PX_PER_MM, core_ratio=0.7)
    ring, gap, width = 4.0 * PX_PER_MM, 1.5 * PX_PER_MM, 6.0
    # the core as this frame shows it (no ellipse under the tool), so the far
    # arc is beyond the rim's band from it
    seen = lesion_core(img.shape, cand, ring, gap, None, width)
    B = ring_background(img, cand, exclude, ring, gap, width_px=width, core=seen)
    truth_B = float(np.median(img[(r > 26 + 6) & (r <= 26 + 22) & ~tool]))
    assert B == pytest.approx(truth_B, rel=0.01)


def test_dark_strip_along_a_tool_is_not_core():
    """The grid pixels along a tool's edge mix its dark with the liver: dark, not a
    core.  The core is not grown along them (seed 524: the ring ran the tool's
    length, B +12 %)."""
    img, ratio, fluo, blocked, cand, _ = _scene(1.5)
    tool = np.zeros(img.shape, bool)
    tool[88:100, :] = True  # across the core's lower part
    img = img.copy()
    img[tool] = 0.05 * LIVER
    img[87, :] = 0.5 * LIVER  # the mixed row just outside the tool's mask
    ratio = img / np.float32(LIVER)
    blocked = blocked | tool
    core = lesion_core(img.shape, cand, 16.0, 6.0, blocked, 6.0,
                       dark=core_dark(ratio, 0.7, blocked))
    cols = np.flatnonzero(core.mask.any(axis=0)) + core.x0
    # the disc (x 56-104) and its ellipse, not the row's 170 px
    assert cols.min() >= 50 and cols.max() <= 110
