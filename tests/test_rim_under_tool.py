"""A partial rim cut in two by an instrument is one lesion (issue 17, item 3).

Phantom recordings with truth: the tool crosses a partial rim so that the
arc on its far side shows no core of its own (the core is behind the tool).
Both arcs must be the one rim -- rim Dice, completeness over the visible
outline and TBR against the truth -- and B must be taken round the whole
lesion, not round the corner of the core one arc encloses (that read B 14 %
low and TBR +13 %).
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from nirf_overlay.evaluate import AnalysisOnly, dice
from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.settings import Settings

SIZE = (1280, 720)
PARTIAL = dict(completeness=(0.4, 0.8), p_complete=0.0)


def _visible_completeness(truth, tool_margin_px: int) -> float:
    """Truth completeness over the visible outline: the share of the truth core's
    outline, away from the tool, with a truth rim pixel next to it."""
    core = truth.core_mask.astype(np.uint8)
    outline = core.astype(bool) & ~cv2.erode(core, np.ones((3, 3), np.uint8)).astype(bool)
    k = 2 * tool_margin_px + 1
    outline &= ~cv2.dilate(truth.instrument_mask.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    d_rim = cv2.distanceTransform((~truth.rim_mask).astype(np.uint8), cv2.DIST_L2, 3)
    return np.count_nonzero(outline & (d_rim <= 1.5)) / max(1, np.count_nonzero(outline))


@pytest.fixture(scope="module")
def seed530():
    ph = Phantom(replace(PhantomParams(seed=530, size=SIZE), **PARTIAL))
    return ph, AnalysisOnly(Settings(), ph.calibration())


# frames in which the tool hides the middle of the core: the far arc has no
# visible core, the near arc's core does not reach the tool's far side
@pytest.mark.parametrize("frame", [33, 39, 47])
def test_arcs_on_either_side_of_a_tool_are_one_rim(seed530, frame):
    ph, analysis = seed530
    pair = ph.frame(frame)
    truth = pair.truth
    assert truth.instrument_mask.any() and len(truth.lesions) == 1
    res = analysis.process(pair)
    assert len(res.rims) == 1, [r.centroid for r in res.rims]
    r, lt = res.rims[0], truth.lesions[0]
    # both arcs are in the rim mask
    assert dice(res.rim_mask > 0, truth.rim_mask) >= 0.88
    # B from a ring round the whole lesion: TBR within 5 %
    assert abs(r.tbr / lt.tbr - 1.0) <= 0.05, (r.tbr, lt.tbr)
    # completeness over the visible outline (the analysis leaves out 2 grid px
    # = 8 frame px next to the tool)
    assert abs(r.rim_completeness - _visible_completeness(truth, 8)) <= 0.05


def test_a_blob_beside_a_tools_tip_is_not_joined_to_a_rim():
    # seed 533, frame 48: a bright blob below the jaw lies on a circle with one
    # short arc of the rim above the tool; it is not that rim (checked against
    # the merged rim, whose disk holds little tool)
    ph = Phantom(replace(PhantomParams(seed=533, size=SIZE), **PARTIAL))
    res = AnalysisOnly(Settings(), ph.calibration()).process(ph.frame(48))
    truth = ph.frame(48).truth
    assert np.count_nonzero((res.rim_mask > 0) & truth.distractor_mask) == 0
    assert dice(res.rim_mask > 0, truth.rim_mask) >= 0.85


@pytest.fixture(scope="module")
def seed505():
    ph = Phantom(PhantomParams(seed=505, size=SIZE))
    return ph, AnalysisOnly(Settings(), ph.calibration())


# seed 505's second lesion is a full rim the tool crosses: its core shows above
# the tool only, so B's ring missed the lesion's side below the tool (darker
# liver) on some frames and B flipped between 55 and 65 (true 56)
@pytest.mark.parametrize("frame", [36, 42, 50])
def test_b_beside_a_tool_is_taken_round_the_whole_lesion(seed505, frame):
    ph, analysis = seed505
    pair = ph.frame(frame)
    res = analysis.process(pair)
    lt = pair.truth.lesions[1]
    r = min(res.rims, key=lambda m: np.hypot(m.centroid[0] - lt.center_xy[0],
                                             m.centroid[1] - lt.center_xy[1]))
    # (matched as the evaluator matches: within 1.3 x the lesion's outer radius)
    reach = 1.3 * (lt.core_radius_mm + lt.rim_width_mm) / pair.truth.mm_per_px
    assert np.hypot(r.centroid[0] - lt.center_xy[0], r.centroid[1] - lt.center_xy[1]) < reach
    assert abs(r.background_intensity / lt.background_intensity - 1.0) <= 0.05, (
        r.background_intensity, lt.background_intensity)
    assert abs(r.tbr / lt.tbr - 1.0) <= 0.05, (r.tbr, lt.tbr)


def test_a_round_drop_below_a_tool_is_not_joined_to_a_rim_above():
    # seed 508, frame 48: a spill's round drop below the tool lies on a circle
    # with a horseshoe rim above it, and the disk between holds the tool: an
    # arc runs along its circle, the drop does not
    ph = Phantom(PhantomParams(seed=508, size=SIZE))
    pair = ph.frame(48)
    res = AnalysisOnly(Settings(), ph.calibration()).process(pair)
    assert np.count_nonzero((res.rim_mask > 0) & pair.truth.distractor_mask) == 0


# seed 505's lesions both run up to the tool.  The instrument mask is found on
# the coarse grid and grown by a grid pixel (4 frame px here); the rim stopped
# at that blocky margin, so of the true rim pixels within 4 px of the tool only
# 26-35 % were found (Dice 0.93-0.94).  A tool is dark in NIR: what is brighter
# than the liver in that margin is the rim in view.
@pytest.mark.parametrize("frame", [36, 42, 50])
def test_a_rim_runs_up_to_the_tools_edge(seed505, frame):
    ph, analysis = seed505
    pair = ph.frame(frame)
    truth = pair.truth
    res = analysis.process(pair)
    rim = res.rim_mask > 0
    near = cv2.dilate(truth.instrument_mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    true_near = truth.rim_mask & near
    assert np.count_nonzero(true_near) > 500
    assert np.count_nonzero(true_near & rim) >= 0.5 * np.count_nonzero(true_near)
    # and not into the tool: few found pixels there that the truth does not have
    assert np.count_nonzero(rim & near & ~truth.rim_mask) <= 0.1 * np.count_nonzero(true_near)
    assert dice(rim, truth.rim_mask) >= 0.95
