"""Geometric registration: the WL-to-NIR homography and mm per pixel from a board.

- :mod:`.corners`: a checkerboard's or ChArUco board's corners in one image;
- :mod:`.orderings`: which NIR corner is which WL corner (plain checkerboards);
- :mod:`.homography`: applying, fitting, and the scale of a homography;
- :mod:`.build`: :func:`build_registration`, the poses, the fit and its limits.
"""

from .build import (
    MAX_ANISOTROPY, MAX_RMS_PX, MAX_SQUARE_MM, MIN_COVERAGE, MIN_POSE_MOTION_PX, Registration,
    build_registration,
)
from .corners import (
    MARKER_RATIO_RANGE, MIN_CHARUCO_CORNERS, Charuco, board_object_points, find_charuco,
    find_corners, to_gray8,
)
from .homography import apply_homography

__all__ = [
    "Registration", "build_registration", "Charuco", "find_corners", "find_charuco",
    "board_object_points", "to_gray8", "apply_homography",
    "MAX_RMS_PX", "MAX_ANISOTROPY", "MIN_POSE_MOTION_PX", "MIN_COVERAGE", "MAX_SQUARE_MM",
    "MIN_CHARUCO_CORNERS", "MARKER_RATIO_RANGE",
]
