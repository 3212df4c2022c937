"""Finding a calibration board's corners in one image: checkerboard or ChArUco.

Pixel centres are at integer coordinates, as in OpenCV.  A plain
checkerboard's corners come row by row in OpenCV's order (which end the
numbering starts from is the detector's choice: :mod:`.orderings` sorts that
out); a ChArUco board's corners carry ids, so the two channels pair by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..model import CalibrationOptionError

__all__ = [
    "to_gray8", "find_corners", "board_object_points", "Charuco", "find_charuco",
    "MIN_CHARUCO_CORNERS", "MARKER_RATIO_RANGE",
]

#: corners a ChArUco pose must show (in both channels) to count: four fix a
#: homography exactly, twice that leaves residuals the fit can be judged by
MIN_CHARUCO_CORNERS = 8
#: marker side over square side: a marker must leave a white border inside its
#: square (below 0.95) and stay large enough to decode (above 0.1)
MARKER_RATIO_RANGE = (0.1, 0.95)
#: pixels: the sector-based detector searches a copy at most this wide (it
#: takes ~1 s at 1080p when there is no board); corners are refined at full size
_SB_MAX_SIDE_PX = 800.0


def to_gray8(image: np.ndarray) -> np.ndarray:
    """An 8-bit grey view for corner detection.

    BGR uint8 -> grey; uint16 NIR -> stretched between its 0.5 and 99.5
    percentiles (NIR fills only part of 16 bits, and the detector wants
    contrast, not counts).
    """
    import cv2

    image = np.asarray(image)
    if image.ndim == 3:
        if image.dtype == np.uint8 and image.shape[2] == 3:
            return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        image = image.mean(axis=2)
    if image.dtype == np.uint8:
        return image
    sub = image[::4, ::4] if image.size > 4e5 else image
    lo, hi = np.percentile(sub, (0.5, 99.5))
    if hi <= lo:
        hi = lo + 1
    out = (image.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(out, 0, 255).astype(np.uint8)


def find_corners(image: np.ndarray, board: tuple[int, int] = (9, 6)) -> Optional[np.ndarray]:
    """Subpixel inner corners of a checkerboard, or None.

    Parameters
    ----------
    image : (H, W, 3) uint8 BGR or (H, W) uint8/uint16
    board : (cols, rows)
        Inner corners per row and per column.

    Returns
    -------
    (rows * cols, 2) float64 or None
        Pixel coordinates (pixel centres at integers), row by row as OpenCV
        orders them.
    """
    import cv2

    gray = to_gray8(image)
    cols, rows = board
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
    found, corners = cv2.findChessboardCorners(gray, (cols, rows), flags=flags)
    if found:
        return _refined(gray, corners, board)
    # The sector-based detector copes with blur and uneven light the classic
    # one misses, but is slow on large frames.
    return _find_corners_sb(gray, board)


def _find_corners_sb(gray: np.ndarray, board) -> Optional[np.ndarray]:
    """Sector-based search on a copy at most ``_SB_MAX_SIDE_PX`` wide; (N, 2) float64 or None.

    Its corners are already subpixel at full size; from a smaller copy they
    are scaled up and refined at full resolution.
    """
    import cv2

    cols, rows = board
    scale = min(1.0, _SB_MAX_SIDE_PX / max(gray.shape))
    small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale,
                                                 interpolation=cv2.INTER_AREA)
    found, corners = cv2.findChessboardCornersSB(small, (cols, rows),
                                                 flags=cv2.CALIB_CB_NORMALIZE_IMAGE)
    if not found:
        return None
    if scale == 1.0:
        return corners.reshape(-1, 2).astype(np.float64)
    # pixel centres: x_full = (x_small + 0.5) / scale - 0.5
    full = ((corners.reshape(-1, 1, 2) + 0.5) / scale - 0.5).astype(np.float32)
    return _refined(gray, full, board)


def _refined(gray: np.ndarray, corners: np.ndarray, board) -> np.ndarray:
    """Corners refined to subpixel accuracy, (N, 2) float64."""
    import cv2

    cols, rows = board
    grid = corners.reshape(rows, cols, 2)
    spacing = min(np.linalg.norm(np.diff(grid, axis=1), axis=2).min(),
                  np.linalg.norm(np.diff(grid, axis=0), axis=2).min())
    # window about half a square: large enough for accuracy, never
    # reaching the next corner
    win = int(max(2, min(11, spacing * 0.4)))
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
    corners = cv2.cornerSubPix(gray, corners, (win, win), (-1, -1), crit)
    return corners.reshape(-1, 2).astype(np.float64)


def board_object_points(board: tuple[int, int], square_mm: float) -> np.ndarray:
    """(rows * cols, 2) board-plane corner positions in mm, in OpenCV's order."""
    cols, rows = board
    j, i = np.meshgrid(np.arange(cols), np.arange(rows))
    return np.stack([j.ravel() * square_mm, i.ravel() * square_mm], axis=1).astype(np.float64)


@dataclass(frozen=True)
class Charuco:
    """A ChArUco board: a checkerboard whose white squares carry ArUco markers.

    Every corner it yields has an id, so the two channels' corners pair by id
    (no ordering ambiguity) and a partly visible board still counts.

    Attributes
    ----------
    board : (cols, rows)
        Inner corners, as for the plain checkerboard: the board has
        ``(cols + 1) x (rows + 1)`` squares.
    marker_ratio : float
        Marker side over square side (as printed).
    dictionary : str
        OpenCV ArUco dictionary name, e.g. ``"DICT_5X5_100"``.
    """

    board: tuple = (9, 6)
    marker_ratio: float = 0.75
    dictionary: str = "DICT_5X5_100"

    def cv_board(self, square: float = 1.0):
        """The OpenCV board with squares of side ``square``.

        Raises
        ------
        CalibrationOptionError
            An unknown dictionary, one with too few markers for the board,
            or a marker ratio outside ``MARKER_RATIO_RANGE``.
        """
        import cv2

        code = _aruco_dictionaries().get(self.dictionary.upper())
        if code is None:
            raise CalibrationOptionError(
                f"ChArUco dictionary {self.dictionary!r}: not an OpenCV ArUco dictionary "
                "(e.g. DICT_5X5_100, DICT_4X4_50)", option="dictionary")
        lo, hi = MARKER_RATIO_RANGE
        if not (lo <= self.marker_ratio <= hi):
            raise CalibrationOptionError(
                f"ChArUco marker ratio {self.marker_ratio}: outside {lo}..{hi} (marker side over "
                "square side)", option="marker_ratio")
        d = cv2.aruco.getPredefinedDictionary(code)
        cols, rows = self.board
        needed = ((cols + 1) * (rows + 1)) // 2
        if needed > d.bytesList.shape[0]:
            raise CalibrationOptionError(
                f"ChArUco dictionary {self.dictionary}: has {d.bytesList.shape[0]} markers, a "
                f"{cols}x{rows} board needs {needed}", option="dictionary")
        return cv2.aruco.CharucoBoard((cols + 1, rows + 1), square, square * self.marker_ratio, d)

    def detector(self):
        """An OpenCV ``CharucoDetector`` for this board (refusals as :meth:`cv_board`)."""
        import cv2

        return cv2.aruco.CharucoDetector(self.cv_board())


def _aruco_dictionaries() -> dict:
    """{OpenCV name: its constant} for every predefined ArUco dictionary."""
    import cv2

    return {k: v for k, v in vars(cv2.aruco).items() if k.startswith("DICT_") and isinstance(v, int)}


def find_charuco(image: np.ndarray, spec: Charuco, detector=None):
    """Ids and subpixel positions of the ChArUco corners found, or None.

    Returns
    -------
    (ids (N,) int64, corners (N, 2) float64) or None
        Ids number the inner corners row by row, as :func:`board_object_points`;
        None with fewer than ``MIN_CHARUCO_CORNERS``.
    """
    det = detector or spec.detector()
    corners, ids, _, _ = det.detectBoard(to_gray8(image))
    if ids is None or len(ids) < MIN_CHARUCO_CORNERS:
        return None
    order = np.argsort(ids.ravel())
    return ids.ravel()[order].astype(np.int64), corners.reshape(-1, 2)[order].astype(np.float64)
