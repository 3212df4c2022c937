"""The motion estimate's cost on the display path: OpenCV on one thread while it runs."""

from __future__ import annotations

import cv2
import numpy as np

from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.processing import motion as motion_module
from nirf_overlay.processing.motion import MotionEstimator


def test_motion_runs_opencv_on_one_thread_and_gives_the_setting_back(monkeypatch):
    """Its dozen calls on a 256 px image lost to a second thread's wake-up on two
    busy cores; the setting outside is left as it was."""
    ph = Phantom(PhantomParams(seed=13, size=(640, 360)))
    seen = []
    lk = cv2.calcOpticalFlowPyrLK

    def spy(*a, **k):
        seen.append(cv2.getNumThreads())
        return lk(*a, **k)

    monkeypatch.setattr(motion_module.cv2, "calcOpticalFlowPyrLK", spy)
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        est = MotionEstimator()
        for i in range(3):
            est.update(np.ascontiguousarray(ph.frame(i).wl))
        assert seen == [1, 1]  # followed on frames 1 and 2
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)
