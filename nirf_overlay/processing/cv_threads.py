"""OpenCV single-threaded while a stage of small images runs (process-wide, counted).

The analysis makes a few hundred OpenCV calls on small ROIs; splitting those
across threads bought no wall time on the 2-core test machine (1080p
phantom: 10.3 vs 10.5 ms) but cost ~30 % more CPU (16.7 vs 12.5 ms per
frame), CPU the viewer's other threads need.  The motion estimate's calls on
its 240 x 135 image took twice the wall time on two threads (1080p, 2 cores,
load 6: median 2.4 vs 1.2 ms; :mod:`.motion`).
"""

from __future__ import annotations

import threading

import cv2

_CV_LOCK = threading.Lock()
_CV_USERS = [0, 0]  # users inside, OpenCV's thread count before the first


class single_threaded_opencv:
    """``with single_threaded_opencv():`` OpenCV on one thread inside (process-wide).

    Nested and concurrent users (the analysis thread and the display's motion
    estimate) share one count; the previous setting comes back when the last
    one leaves.
    """

    def __enter__(self):
        with _CV_LOCK:
            if _CV_USERS[0] == 0:
                _CV_USERS[1] = cv2.getNumThreads()
                cv2.setNumThreads(1)
            _CV_USERS[0] += 1

    def __exit__(self, *exc):
        with _CV_LOCK:
            _CV_USERS[0] -= 1
            if _CV_USERS[0] == 0:
                cv2.setNumThreads(_CV_USERS[1])
        return False
