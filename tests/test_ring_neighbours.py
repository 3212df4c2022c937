"""B's ring beside a neighbouring lesion and round a core a tool half hides (#17 item 3).

- A neighbour's outline is not liver: beside a partial rim its bare core's blurred
  edge, darker than liver yet above ``core_ratio``, lay in the ring and pulled B
  down (seed 550's first lesion: B -7 %, TBR +10 %).
- A core a tool half hides was completed by an ellipse fitted to the half of its
  outline in view; that fit is not pinned down by a short arc (seed 535: 49 x 89 px
  for a 44 px disc) and was refused or accepted frame to frame, so B jumped
  (-12 % on the refused frames).  A circle completes it.
"""

import cv2
import numpy as np
import pytest

from nirf_overlay.processing.background import (lesion_backgrounds, lesion_core, ring_background,
                                                ring_exclusion)
from nirf_overlay.processing.candidates import Candidate

LIVER = 60.0
PX_PER_MM = 4.0
RING, GAP, WIDTH = 4.0 * PX_PER_MM, 1.5 * PX_PER_MM, 6.0


def _candidate(ratio, fluo, blocked, roi, centroid):
    x0, y0, x1, y1 = roi
    sl = np.s_[y0:y1, x0:x1]
    rim = fluo[sl].astype(bool)
    core = (ratio[sl] < 0.7) & ~rim & ~blocked[sl]
    return Candidate(1, roi, rim, core, rim, WIDTH, 0.5, centroid)


def _two_lesions():
    """Lesion A (complete rim, core r 20 at (170, 100)) and, on its left, lesion B
    (core r 20 at (110, 100), a rim on its far side only, more deeply blurred): B's
    bare core edge faces A and reaches into A's ring.  The liver is darker towards B
    (as seed 550's), so what of B's surroundings A's ring takes in moves its median."""
    h, w = 200, 260
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    ra, rb = np.hypot(x - 170, y - 100), np.hypot(x - 110, y - 100)
    a = np.full((h, w), LIVER, np.float32)
    a[ra <= 20] = 0.1 * LIVER
    a[(ra > 20) & (ra <= 26)] = 3.0 * LIVER
    a = cv2.GaussianBlur(a, (0, 0), 1.5)
    b = np.full((h, w), LIVER, np.float32)
    b[rb <= 20] = 0.1 * LIVER
    b[(rb > 20) & (rb <= 26) & (x < 102)] = 3.0 * LIVER
    b = cv2.GaussianBlur(b, (0, 0), 5.0)
    img = (a + b - LIVER) * (1.0 + 0.004 * (x - 170))
    img += np.random.default_rng(7).normal(0, 0.03 * LIVER, img.shape).astype(np.float32)
    ratio = img / np.float32(LIVER)
    fluo = (ratio > 1.5).astype(np.uint8)
    blocked = np.zeros((h, w), bool)
    blocked[0, :] = blocked[-1, :] = blocked[:, 0] = blocked[:, -1] = True
    ca = _candidate(ratio, fluo, blocked, (134, 64, 206, 136), (170.0, 100.0))
    cb = _candidate(ratio, fluo, blocked, (76, 70, 134, 130), (106.0, 100.0))
    # the truth's B of A: its ring, less B's outline (core + rim width + gap)
    ring_a = (ra > 26 + GAP) & (ra <= 26 + GAP + RING) & ~(rb <= 20 + 6 + GAP)
    return img, ratio, fluo, blocked, (ca, cb), float(np.median(img[ring_a]))


def test_ring_keeps_clear_of_a_neighbours_outline():
    img, ratio, fluo, blocked, cands, truth_a = _two_lesions()
    exclude = ring_exclusion(fluo, blocked, ratio, None, px_per_mm=PX_PER_MM, core_ratio=0.7)
    cores = [lesion_core(img.shape, c, RING, GAP, blocked[c.roi[1]:c.roi[3], c.roi[0]:c.roi[2]],
                         WIDTH) for c in cands]
    B_a, _ = lesion_backgrounds(img, list(cands), cores, [WIDTH, WIDTH], exclude, RING, GAP)
    alone = ring_background(img, cands[0], exclude, RING, GAP, width_px=WIDTH, core=cores[0])
    assert B_a == pytest.approx(truth_a, rel=0.01)
    # without the neighbour's outline the ring runs through its core's fall-off
    assert alone / truth_a - 1 < -0.015
    # one lesion alone: ring_background as it was
    assert lesion_backgrounds(img, [cands[0]], [cores[0]], [WIDTH], exclude, RING, GAP) == [alone]


def _half_hidden(tool_bottom, seed):
    """A core of radius about 22 px at (100, 100) with a wobbly outline (as the
    phantom draws it, +-9 %), its rim below, liver texture, and a tool over
    everything above row ``tool_bottom`` (about half the core)."""
    h, w = 200, 200
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r, th = np.hypot(x - 100, y - 100), np.arctan2(y - 100, x - 100)
    rng = np.random.default_rng(seed)
    k = np.arange(2, 7)
    amp, phase = rng.normal(0, 1, k.size) / k, rng.uniform(0, 2 * np.pi, k.size)
    wobble = sum(a * np.cos(kk * th + p) for a, kk, p in zip(amp, k, phase))
    R = 22 * (1 + 0.09 * wobble / np.abs(wobble).max())
    disc = r <= R
    img = np.full((h, w), LIVER, np.float32)
    img[disc] = 0.1 * LIVER
    img[(r > R) & (r <= R + 6) & (y > 100)] = 3.0 * LIVER
    img = cv2.GaussianBlur(img, (0, 0), 1.5)
    img += rng.normal(0, 0.05 * LIVER, img.shape).astype(np.float32)
    tool = y < tool_bottom
    img[tool] = 0.05 * LIVER
    ratio = img / np.float32(LIVER)
    fluo = ((ratio > 1.5) & ~tool).astype(np.uint8)
    blocked = tool.copy()
    blocked[0, :] = blocked[-1, :] = blocked[:, 0] = blocked[:, -1] = True
    cand = _candidate(ratio, fluo, blocked, (64, 60, 136, 140), (100.0, 115.0))
    return img, cand, blocked, disc


def test_half_hidden_core_is_completed_as_the_disc():
    """Over six outlines and three tool positions the completed core covers the
    disc; an ellipse fitted to the visible half read IoU 0.34-0.91 (median 0.83),
    refused or swung off on 5 of the 18."""
    ious = []
    for seed in range(6):
        for tool_bottom in (96, 100, 104):
            img, cand, blocked, disc = _half_hidden(tool_bottom, seed)
            x0, y0, x1, y1 = cand.roi
            core = lesion_core(img.shape, cand, RING, GAP, blocked[y0:y1, x0:x1], WIDTH)
            full = np.zeros(img.shape, bool)
            full[core.y0:core.y0 + core.mask.shape[0],
                 core.x0:core.x0 + core.mask.shape[1]] = core.mask > 0
            ious.append((full & disc).sum() / (full | disc).sum())
    assert min(ious) > 0.65 and np.median(ious) > 0.85, np.round(ious, 2)
