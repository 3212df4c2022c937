"""metrics.csv says whether a dark frame was subtracted (issue 17)."""

from __future__ import annotations

from dataclasses import replace

from nirf_overlay.phantom import Phantom, PhantomParams


def test_metrics_say_whether_a_dark_frame_was_subtracted():
    """Without a dark frame the dark offset sits in T and B alike: metrics.csv's
    dark_frame column says so (0), and 1 when one was subtracted."""
    from nirf_overlay.processing.pipeline import Pipeline
    from nirf_overlay.processing.result import FRAME_COLUMNS

    ph = Phantom(PhantomParams(seed=612, size=(320, 180)))
    cal = ph.calibration()
    pair = ph.frame(0)
    assert "dark_frame" in FRAME_COLUMNS
    assert Pipeline(calibration=cal).process(pair).frame_row()["dark_frame"] == 1
    assert Pipeline(calibration=replace(cal, dark=None)).process(pair).frame_row()["dark_frame"] == 0
