"""Homographies between planes: applying one, fitting one, and its scale at a point.

All points are (N, 2) float64 pixel (or board-mm) coordinates; homographies
are (3, 3) float64 mapping ``(x, y, 1)`` to homogeneous coordinates.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["apply_homography", "fit_exact", "fit_robust", "scale_at_centre",
           "RANSAC_THRESHOLD_PX"]

#: NIR pixels: a corner further than this from the RANSAC model is an outlier
#: while the model is sought (subpixel corners sit within 0.1-0.5 px of it)
RANSAC_THRESHOLD_PX = 3.0
_RANSAC_ITERATIONS = 5000
_RANSAC_CONFIDENCE = 0.999


def apply_homography(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a 3x3 homography; (N, 2) float64."""
    pts = np.asarray(pts, np.float64)
    p = np.c_[pts, np.ones(len(pts))] @ np.asarray(h, np.float64).T
    return p[:, :2] / p[:, 2:3]


def fit_exact(src: np.ndarray, dst: np.ndarray) -> Optional[np.ndarray]:
    """Least-squares homography over all points (no outlier rejection), or None."""
    import cv2

    h, _ = cv2.findHomography(src, dst, 0)
    return h


def fit_robust(src: np.ndarray, dst: np.ndarray) -> Optional[np.ndarray]:
    """RANSAC then Levenberg-Marquardt on the inliers; ``H[2, 2] = 1``; None when degenerate."""
    import cv2

    h, _ = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_THRESHOLD_PX,
                              maxIters=_RANSAC_ITERATIONS, confidence=_RANSAC_CONFIDENCE)
    return None if h is None else h / h[2, 2]


def scale_at_centre(h: np.ndarray, centre) -> tuple[float, float]:
    """(units of the source plane per target pixel, anisotropy) of ``h`` at ``centre``.

    From the Jacobian of ``h`` at ``centre`` (source-plane coordinates): the
    larger principal scale is used, because a small tilt of the source plane
    shortens only the other axis, so the larger one stays the fronto-parallel
    scale at that depth; ``anisotropy`` is their ratio minus 1.
    """
    cx, cy = centre
    p = h @ np.array([cx, cy, 1.0])
    u, v = p[0] / p[2], p[1] / p[2]
    jac = np.array([[h[0, 0] - u * h[2, 0], h[0, 1] - u * h[2, 1]],
                    [h[1, 0] - v * h[2, 0], h[1, 1] - v * h[2, 1]]]) / p[2]
    s = np.linalg.svd(jac, compute_uv=False)  # target px per source unit, s[0] >= s[1]
    return 1.0 / s[0], s[0] / s[1] - 1.0
