"""The live pipeline's sync/async rule: every frame analysed while it keeps up, async under load."""

import dataclasses

import numpy as np
import pytest

from nirf_overlay.gui.hud import analysis_label
from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.processing.analysis_mode import SYNC_RULE, AnalysisMode
from nirf_overlay.processing.pipeline import Pipeline
from nirf_overlay.settings import Settings

PERIOD = 1 / 60  # s
BUDGET_MS = SYNC_RULE.budget * PERIOD * 1e3


def _feed(mode, t, n, total_ms, display_ms=3.0, analysis_ms=None):
    """``n`` frames at 60 fps from time ``t``; returns the time after them and the last answer."""
    sync = mode.sync
    for _ in range(n):
        sync = mode.frame(t, total_ms, display_ms=display_ms, analysis_ms=analysis_ms)
        t += PERIOD
    return t, sync


def test_keeps_sync_while_frames_fit_the_period_and_a_few_late_ones_do_not_switch():
    mode = AnalysisMode()
    t, sync = _feed(mode, 100.0, 120, total_ms=0.5 * BUDGET_MS)
    assert sync and mode.fallbacks == 0
    # as many late frames as the rule tolerates in its window: still sync
    t, sync = _feed(mode, t, SYNC_RULE.leave_over, total_ms=2 * BUDGET_MS)
    assert sync and mode.fallbacks == 0


def test_falls_back_under_load_and_returns_after_the_hold_with_hysteresis():
    mode = AnalysisMode()
    t, _ = _feed(mode, 100.0, 10, total_ms=0.5 * BUDGET_MS)
    t, sync = _feed(mode, t, SYNC_RULE.leave_over + 1, total_ms=1.5 * BUDGET_MS)
    assert not sync and mode.fallbacks == 1
    fast = 0.3 * SYNC_RULE.return_budget * PERIOD * 1e3
    # async: even with a small estimate, no return before the hold has passed
    t, sync = _feed(mode, t, int(SYNC_RULE.hold_s * 60) - 2, total_ms=3.0, analysis_ms=fast)
    assert not sync
    # a slow analysis keeps it async past the hold
    t, sync = _feed(mode, t, 30, total_ms=3.0, analysis_ms=2 * PERIOD * 1e3)
    assert not sync and mode.returns == 0
    t, sync = _feed(mode, t, 1, total_ms=3.0, analysis_ms=fast)
    assert sync and mode.returns == 1
    # the return fails at once: back to async, and the next hold is twice as long
    t, sync = _feed(mode, t, SYNC_RULE.leave_over + 1, total_ms=1.5 * BUDGET_MS)
    assert not sync and mode.fallbacks == 2
    t, sync = _feed(mode, t, int(1.5 * SYNC_RULE.hold_s * 60), total_ms=3.0, analysis_ms=fast)
    assert not sync, "the hold doubled after a failed return"
    t, sync = _feed(mode, t, int(0.6 * SYNC_RULE.hold_s * 60), total_ms=3.0, analysis_ms=fast)
    assert sync and mode.returns == 2


def test_follows_the_streams_rate_from_the_arrivals():
    mode = AnalysisMode()
    for k in range(40):  # 25 ms a frame at 30 fps fits; at 60 fps it would not
        mode.frame(100.0 + k / 30, 25.0, display_ms=5.0)
    assert mode.sync and mode.period_s() == pytest.approx(1 / 30)


@pytest.fixture(scope="module")
def phantom():
    return Phantom(PhantomParams(seed=3, size=(320, 192), n_lesions=2, gain_step_s=None))


def test_auto_pipeline_analyses_every_frame_in_sync_then_falls_back_when_the_stream_is_too_fast(phantom):
    pairs = [phantom.frame(i) for i in range(16)]
    cal = phantom.calibration()
    ref = Pipeline(Settings(), cal)
    auto = Pipeline(Settings(), cal, async_analysis="auto")
    try:
        t = 50.0
        for p in pairs[:8]:  # 10 fps: a 320x192 frame fits easily
            q = dataclasses.replace(p, arrival=t)
            t += 0.1
            a, r = auto.process(q), ref.process(q)
            assert a.analysis_mode == "sync" and a.analysis_index == p.index
            assert [x.rim_area_px for x in a.rims] == [x.rim_area_px for x in r.rims]
            assert np.array_equal(a.rim_mask, r.rim_mask)
        assert analysis_label(a) == "every frame"
        modes = []
        for k in range(40):  # 100 000 fps: no frame fits its period
            p = pairs[8 + k % 8]
            modes.append(auto.process(dataclasses.replace(p, arrival=t)).analysis_mode)
            t += 1e-5
        assert modes[-1] == "async" and auto.analysis_mode.fallbacks == 1
        last = auto.process(dataclasses.replace(pairs[0], arrival=t))
        assert last.analysis_mode == "async" and last.analysis_index is not None
        assert analysis_label(last).startswith("async, ")
    finally:
        auto.close()
