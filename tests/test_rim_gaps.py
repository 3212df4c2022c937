"""Rim gaps against the phantom's true rim arc; their columns and their label."""

from __future__ import annotations

import cv2
import numpy as np

from nirf_overlay.evaluate import _match
from nirf_overlay.gui.hud import rim_label
from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.processing.pipeline import Pipeline
from nirf_overlay.processing.result import RIM_COLUMNS


def _circ(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


def test_gaps_match_the_true_rim_arc():
    """Partial rims, in the open (no tool or frame edge near): one gap, where the drawn
    arc is not, of the right extent."""
    checked = 0
    for seed in (11, 23, 37):
        ph = Phantom(PhantomParams(seed=seed, size=(640, 512), completeness=(0.5, 0.85),
                                   p_complete=0.0))
        pipe = Pipeline(None, ph.calibration())
        for i in range(12):
            f = ph.frame(i)
            r = pipe.process(f)
        t = f.truth
        near_tool = cv2.dilate(t.instrument_mask.astype(np.uint8), np.ones((41, 41), np.uint8)) > 0
        m = _match(r.rims, t.lesions, t.mm_per_px)
        h, w = t.labels.shape
        for lt in t.lesions:
            rim = m.get(lt.id)
            if rim is None:
                continue
            x, y, bw, bh = rim.bbox
            if (near_tool[y:y + bh, x:x + bw].any() or x < 10 or y < 10 or x + bw > w - 10
                    or y + bh > h - 10):
                continue
            checked += 1
            big = max(rim.gaps, key=lambda g: g.extent_deg)
            mid = big.start_deg + big.extent_deg / 2
            assert abs(_circ(mid - lt.gap_center_deg)) <= 25, (seed, lt.id)
            assert abs(big.extent_deg - lt.gap_deg) <= 40, (seed, lt.id, big.extent_deg, lt.gap_deg)
            assert rim.largest_gap_deg == big.extent_deg and rim.gap_count == len(rim.gaps)
            # the drawn points are on the core's outline, in the gap's angles
            ang = np.degrees(np.arctan2(big.points[:, 1] - rim.centroid[1],
                                        big.points[:, 0] - rim.centroid[0]))
            assert np.mean(np.abs([_circ(a - mid) for a in ang]) <= big.extent_deg / 2 + 10) > 0.9
    assert checked >= 4


def test_a_complete_rim_has_no_gap_and_the_columns_and_label_say_so():
    ph = Phantom(PhantomParams(seed=5, size=(640, 512), p_complete=1.0, instrument=False))
    pipe = Pipeline(None, ph.calibration())
    for i in range(6):
        r = pipe.process(ph.frame(i))
    assert r.rims
    assert all(x.largest_gap_deg < 30 for x in r.rims)
    assert RIM_COLUMNS.index("largest_gap_deg") == RIM_COLUMNS.index("gap_count") + 1
    row = r.rim_rows()[0]
    assert row["gap_count"] == r.rims[0].gap_count
    # a partial rim: the label shows its largest gap beside the completeness
    ph = Phantom(PhantomParams(seed=11, size=(640, 512), completeness=(0.5, 0.6), p_complete=0.0))
    pipe = Pipeline(None, ph.calibration())
    for i in range(4):
        r = pipe.process(ph.frame(i))
    rim = max(r.rims, key=lambda x: x.largest_gap_deg)
    assert f"gap {rim.largest_gap_deg:.0f}\u00b0" in rim_label(rim)
