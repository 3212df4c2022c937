"""A lagged analysis's masks are moved to the frame shown when read, not on every frame."""

from __future__ import annotations

import time

import numpy as np
import pytest

from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.processing.follow import MotionHistory, MovedMask, move_mask
from nirf_overlay.processing.pipeline import Pipeline
from nirf_overlay.processing.result import FrameResult
from nirf_overlay.settings import Settings

SIZE = (640, 512)


def _shift(dx: float, dy: float, turn_deg: float = 0.0) -> np.ndarray:
    c, s = np.cos(np.radians(turn_deg)), np.sin(np.radians(turn_deg))
    return np.array([[c, -s, dx], [s, c, dy], [0.0, 0.0, 1.0]])


def test_a_moved_mask_moves_once_on_first_read_and_leaves_its_source():
    src = np.zeros((120, 160), np.uint8)
    src[40:70, 50:90] = 255
    keep = src.copy()
    h3 = _shift(7.0, -3.0, 4.0)
    m = MovedMask(src, h3)
    assert not m.moved  # nothing done until a reader asks
    first = m.pixels
    assert m.moved and m.pixels is first  # once, then kept
    np.testing.assert_array_equal(first, move_mask(keep, h3))
    assert not np.array_equal(first, keep)
    np.testing.assert_array_equal(src, keep)
    assert MovedMask(src).pixels is src  # no motion: the mask itself


def test_a_frame_result_reads_its_masks_moved_by_its_mask_motion():
    rim = np.zeros((90, 100), np.uint8)
    rim[20:40, 30:60] = 255
    fluo = rim.copy()
    fluo[60:70, 10:20] = 255
    h3 = _shift(-5.0, 6.0)
    r = FrameResult(index=3, time_s=0.1, composite=np.zeros((90, 100, 3), np.uint8),
                    rim_mask=rim, fluorescence_mask=fluo, mask_motion=h3)
    np.testing.assert_array_equal(r.rim_mask, move_mask(rim, h3))
    np.testing.assert_array_equal(r.fluorescence_mask, move_mask(fluo, h3))
    assert r.rim_mask is r.rim_mask  # computed once
    same = FrameResult(index=3, time_s=0.1, composite=r.composite, rim_mask=rim)
    assert same.rim_mask is rim and same.fluorescence_mask is None


def _wait_for(cond, timeout=30.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


@pytest.fixture(scope="module")
def moving():
    """A phantom that moves 3x as much per frame as the default (10 fps)."""
    ph = Phantom(PhantomParams(seed=41, size=SIZE, fps=10.0))
    return ph, [ph.frame(i) for i in range(8)]


def test_a_lagged_result_reads_the_analysis_masks_moved_since_their_frame(moving):
    """Fed one frame per finished analysis, the live pipeline shows frame k-1's
    analysis on frame k: its masks must be exactly the synchronous analysis's
    masks of frame k-1 moved by the tissue's motion since (what the display
    path moved on every frame before they were moved on reading)."""
    ph, frames = moving
    cal = ph.calibration()
    sync = Pipeline(Settings(), cal)
    live = Pipeline(Settings(), cal, async_analysis=True)
    history = MotionHistory()
    expected, checked = {}, 0
    try:
        for k, f in enumerate(frames):
            r = sync.process(f)
            expected[f.index] = (r.rim_mask.copy(), r.fluorescence_mask.copy())
            got = live.process(f)
            history.add(got.index, got.motion)
            a = got.analysis_index
            if a is not None and a != got.index:
                since = history.since(a)
                assert since is not None, f"frame {k}: the motion was lost"
                np.testing.assert_allclose(got.mask_motion, since)
                rim, fluo = expected[a]
                assert rim.any(), "the phantom's rim is in the picture"
                np.testing.assert_array_equal(got.rim_mask, move_mask(rim, since))
                np.testing.assert_array_equal(got.fluorescence_mask, move_mask(fluo, since))
                # the tissue moved: the analysis's own masks are not what is shown
                assert not np.array_equal(got.rim_mask, rim)
                checked += 1
            _wait_for(lambda: len(live.analysis_durations_ms()) == k + 1)
    finally:
        live.close()
    assert checked >= len(frames) - 2
