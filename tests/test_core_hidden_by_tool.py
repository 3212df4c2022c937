"""A rim whose core a tool mostly hides is still a rim (issue 17, item 3).

Phantom frames with truth, one frame at a time through the analysis.  Where
the tool covers most of a core, the arc beside it is short and its chord
shallow: the convex-hull deficiency that seeds the core lies wholly in the
blurred gap between rim and core, so the arc found no core and the lesion
was lost (seed 34, frames 54-58, about ten frames of the recording; seed
532's second lesion for its first 20 frames).  The seed of an arc that
touches the tool is now grown across the gap when its own seed finds no core,
and kept when the core it reaches is in part hidden by the tool
(``cores._reached_core``); a dark region in full view beyond a fluorescent
blob (a gallbladder beside the tool) is not reached that way.  Each case but
the last failed before; the last guards the "in part hidden" condition (it
failed with the seed grown unconditionally).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from nirf_overlay.evaluate import AnalysisOnly, dice, evaluate
from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.processing.pipeline import Pipeline
from nirf_overlay.settings import Settings

SIZE = (1280, 720)
PARTIAL = dict(completeness=(0.4, 0.8), p_complete=0.0)


def _analysed(params: PhantomParams, frame: int):
    ph = Phantom(params)
    pair = ph.frame(frame)
    return pair.truth, AnalysisOnly(Settings(), ph.calibration()).process(pair)


def _matched(rims, lt, truth):
    """The rims the evaluator would match to truth lesion ``lt`` (within 1.3 x its outer radius)."""
    reach = 1.3 * (lt.core_radius_mm + lt.rim_width_mm) / truth.mm_per_px
    return [r for r in rims
            if np.hypot(r.centroid[0] - lt.center_xy[0], r.centroid[1] - lt.center_xy[1]) < reach]


# seed 34: the tool's jaws lie over most of the core; the arc on the tool's
# right shows a little core (before: no rim on these frames, Dice 0)
@pytest.mark.parametrize("frame", [54, 56, 57])
def test_a_rim_whose_core_the_tool_mostly_hides_is_found(frame):
    truth, res = _analysed(PhantomParams(seed=34, size=SIZE), frame)
    lt = truth.lesions[0]
    assert truth.instrument_mask.any() and len(truth.lesions) == 1
    m = _matched(res.rims, lt, truth)
    assert len(m) == 1, [r.centroid for r in res.rims]
    assert dice(res.rim_mask > 0, truth.rim_mask) >= 0.85
    assert abs(m[0].tbr / lt.tbr - 1.0) <= 0.05, (m[0].tbr, lt.tbr)
    assert abs(m[0].rim_thickness_mm - lt.rim_width_mm) <= 0.2


# seed 532 (partial rims): the second lesion shows a short straight piece of
# rim below the tool with its core beside it, beyond the gap (before: missed
# until frame 50)
@pytest.mark.parametrize("frame", [30, 40])
def test_a_short_arc_beside_a_tool_reaches_its_core_across_the_gap(frame):
    truth, res = _analysed(replace(PhantomParams(seed=532, size=SIZE), **PARTIAL), frame)
    assert len(truth.lesions) == 2
    for lt in truth.lesions:
        m = _matched(res.rims, lt, truth)
        assert len(m) == 1, (lt.id, [r.centroid for r in res.rims])
        assert abs(m[0].rim_thickness_mm - lt.rim_width_mm) <= 0.2
    assert dice(res.rim_mask > 0, truth.rim_mask) >= 0.9
    assert np.count_nonzero((res.rim_mask > 0) & truth.distractor_mask) == 0


# seed 36, frame 50: the gallbladder below the tool has the frame's dark corner
# a few pixels beyond its concave side; that region is in full view, so it is
# no core reached across the gap (with the seed grown there unconditionally
# the gallbladder was a rim: 57 000 of its pixels)
def test_dark_in_full_view_beyond_a_gallbladder_beside_the_tool_is_no_core():
    truth, res = _analysed(PhantomParams(seed=36, size=SIZE), 50)
    assert np.count_nonzero((res.rim_mask > 0) & truth.distractor_mask) == 0
    assert dice(res.rim_mask > 0, truth.rim_mask) >= 0.95


# the bundled sample's phantom (seed 4, 640 x 360): the tool passes over the dimmer
# lesion's core until only crescents of it show between the tool and the arcs,
# too shallow for the blob rule; a rim tracked on the frame before keeps them as
# its core (``RIM_RULES.tracked_core_open``).  Before: detected 0.64 on these
# frames, the lesion lost from frame 41 on.
def test_a_tracked_rim_keeps_the_crescent_of_core_the_tool_leaves():
    ph = Phantom(PhantomParams(seed=4, size=(640, 360)))
    r = evaluate((ph.frame(i) for i in range(38, 52)), Pipeline(calibration=ph.calibration()))
    assert r["detected"] == 1.0, r["per_frame"]
    assert r["min_dice"] >= 0.9
    assert r["distractor_fraction"] == 0.0
