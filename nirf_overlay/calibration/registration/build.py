"""The WL-to-NIR homography and mm per pixel from a board shown in several poses.

:func:`build_registration` finds the board in both channels of each pair,
keeps the pairs where it has moved (the poses), pairs the channels' corners,
fits one homography to all poses and checks it.  A capture that cannot give
a usable entry raises a one-line
:class:`~nirf_overlay.errors.CalibrationError`; where the fix is one of the
builder's own options (the board's corner count, the pose count, the RMS
limit) it is a :class:`~nirf_overlay.calibration.model.CalibrationOptionError`
naming that option.

Limits (defaults, and why)
--------------------------
- refused above 1.0 px RMS reprojection error (NIR pixels).  Subpixel
  checkerboard corners of a flat board through a coaxial WL/NIR splitter fit
  a homography to 0.1-0.5 px; more than 1 px means parallax, lens distortion
  or mismatched corners, and at 0.1-0.2 mm per pixel 1 px is already the
  rim-thickness accuracy the pipeline aims at.
- mm per pixel: refused when the first pose's two principal scales differ by
  more than 5 % (the board is tilted by more than about 18 degrees), since
  that pose must be fronto-parallel for a scale to mean anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from ...errors import CalibrationError
from ..model import CalibrationOptionError
from .corners import MIN_CHARUCO_CORNERS, Charuco, board_object_points, find_charuco, find_corners
from .homography import apply_homography, fit_exact, fit_robust, scale_at_centre
from .orderings import match_orderings

__all__ = ["Registration", "build_registration", "MAX_RMS_PX", "MAX_ANISOTROPY",
           "MIN_POSE_MOTION_PX", "MIN_COVERAGE", "MAX_SQUARE_MM"]

#: NIR pixels RMS over all corners; see the module notes
MAX_RMS_PX = 1.0
#: ratio - 1 of the first pose's principal scales; 5 % is a tilt of ~18 degrees
MAX_ANISOTROPY = 0.05
#: WL pixels (mean over shared corners) a board must move to count as a new
#: pose, so a board held still for many frames does not outweigh the others
MIN_POSE_MOTION_PX = 5.0
#: fraction of the WL field the boards' outlines should cover; beyond them the
#: perspective terms are extrapolated (a warning, not a refusal)
MIN_COVERAGE = 0.5
#: mm: a square larger than this is a typo (or metres), not a calibration board
MAX_SQUARE_MM = 1000.0
#: pixels: the coverage mask is drawn at most this wide (a fraction needs no more)
_COVERAGE_MASK_PX = 400.0


@dataclass
class Registration:
    """WL-to-NIR homography from checkerboard poses, and mm per pixel.

    Attributes
    ----------
    homography_wl_to_nir : (3, 3) float64, H[2, 2] = 1
    rms_px, max_px : reprojection error of all corners, NIR pixels
    poses : poses used (board found in both channels and moved since the last)
    frames : frames examined
    corners : corners used in the fit
    coverage : fraction of the WL field inside the union of the boards' outlines
    mm_per_px : millimetres per WL pixel from the first pose, or None without square_mm
    anisotropy : ratio - 1 of the first pose's two principal scales
    warnings : plain-language caveats
    """

    homography_wl_to_nir: np.ndarray
    rms_px: float
    max_px: float
    poses: int
    frames: int
    corners: int
    coverage: float
    mm_per_px: Optional[float] = None
    anisotropy: Optional[float] = None
    warnings: list = field(default_factory=list)

    def summary(self) -> str:
        s = (f"register: {self.poses} poses from {self.frames} frames, {self.corners} corners, "
             f"RMS {self.rms_px:.3f} px (max {self.max_px:.2f} px), field coverage "
             f"{100 * self.coverage:.0f}%")
        if self.mm_per_px is not None:
            s += f", {self.mm_per_px:.5f} mm/px (anisotropy {100 * self.anisotropy:.1f}%)"
        return s


def build_registration(pairs: Iterable[tuple[np.ndarray, np.ndarray]], *,
                       board: tuple[int, int] = (9, 6), square_mm: Optional[float] = None,
                       max_rms_px: float = MAX_RMS_PX, min_poses: int = 1,
                       min_motion_px: float = MIN_POSE_MOTION_PX,
                       max_anisotropy: float = MAX_ANISOTROPY,
                       charuco: Optional[Charuco] = None) -> Registration:
    """WL-to-NIR homography (and mm per pixel) from a checkerboard in several poses.

    Parameters
    ----------
    pairs : iterable of (wl, nir)
        ``wl`` (H, W, 3) uint8 BGR, ``nir`` (H', W') uint16 (or uint8); the
        sizes may differ.  The first pair where the board is found in both is
        the fronto-parallel pose used for ``mm_per_px``.
    board : (cols, rows)
        Inner corners.
    square_mm : float, optional
        Side of one square; gives ``mm_per_px``.
    max_rms_px : float
        Refuse above this RMS reprojection error (NIR pixels).
    min_poses : int
        Refuse with fewer poses (one pose covers only part of the field, and
        the perspective terms are then extrapolated).
    min_motion_px : float
        A pair counts as a new pose only when its WL corners moved this much
        (mean) from every pose already taken.
    max_anisotropy : float
        Refuse a first pose whose principal scales differ by more (with ``square_mm``).
    charuco : Charuco, optional
        Use a ChArUco board (its ``board`` replaces ``board``): corners pair
        by id, and a pose counts when at least ``MIN_CHARUCO_CORNERS`` are
        seen in both.

    Returns
    -------
    Registration

    Notes
    -----
    ``cv2.findHomography`` (RANSAC, 3 px, then Levenberg-Marquardt on the
    inliers) over all poses' corners at once; the RMS is over *all* corners,
    outliers included, so a bad corner shows in the figure that is checked.
    """
    if charuco is not None:
        board = tuple(charuco.board)
    _check_board(board, square_mm)
    poses = _collect_poses(pairs, _Detector(board, charuco), min_motion_px)
    first_scale = None
    if square_mm is not None:
        first_scale = _first_pose_scale(poses.wl[0], board_object_points(board, square_mm)[poses.ids[0]])
    if len(poses.wl) < min_poses:
        raise CalibrationOptionError(
            f"register: only {len(poses.wl)} distinct pose(s) with the board in both channels, "
            f"need {min_poses}; move or tilt the board between captures", option="min_poses")
    nir = poses.nir if charuco is not None else match_orderings(poses.wl, poses.nir, board)
    src, dst = np.concatenate(poses.wl), np.concatenate(nir)
    h = fit_robust(src, dst)
    if h is None:
        raise CalibrationError("register: homography fit failed (degenerate corners)")
    err = np.linalg.norm(apply_homography(h, src) - dst, axis=1)
    rms = float(np.sqrt(np.mean(err ** 2)))
    if rms > max_rms_px:
        raise CalibrationOptionError(
            f"register: RMS reprojection error {rms:.2f} px exceeds the limit {max_rms_px:g} px "
            f"({len(poses.wl)} poses, max {err.max():.1f} px); the channels do not follow one "
            "homography (parallax, distortion) or the boards were mismatched", option="max_rms_px")
    warnings = []
    coverage = _coverage(poses.outlines, poses.wl_size)
    if coverage < MIN_COVERAGE:
        warnings.append(f"the boards covered only {100 * coverage:.0f}% of the field; the "
                        "homography is extrapolated beyond them: add poses near the edges")
    mm_per_px = aniso = None
    if first_scale is not None:
        mm_per_px, aniso = first_scale
        if aniso > max_anisotropy:
            raise CalibrationError(
                f"register: first pose is not fronto-parallel: its scales differ by "
                f"{100 * aniso:.0f}% (limit {100 * max_anisotropy:.0f}%); hold the board square "
                "to the camera for the first capture")
    return Registration(h, rms, float(err.max()), len(poses.wl), poses.frames, len(src), coverage,
                        mm_per_px, aniso, warnings)


def _check_board(board, square_mm) -> None:
    cols, rows = board
    if cols < 2 or rows < 2:
        raise CalibrationOptionError(
            f"register: the checkerboard's inner-corner count ({cols}x{rows}) is below 2x2",
            option="board")
    if square_mm is not None and not (0 < square_mm < MAX_SQUARE_MM):
        raise CalibrationOptionError(
            f"register: the board's square size ({square_mm} mm) is outside "
            f"(0, {MAX_SQUARE_MM:g}) mm", option="square_mm")


class _Detector:
    """A board's corners in one image as ``(ids, (N, 2) px)``, checkerboard or ChArUco."""

    def __init__(self, board, charuco: Optional[Charuco]):
        self.board, self.charuco = board, charuco
        self.kind = "checkerboard" if charuco is None else "ChArUco board"
        self._cv = None if charuco is None else charuco.detector()
        self._all_ids = np.arange(board[0] * board[1])

    def find(self, image: np.ndarray):
        if self.charuco is None:
            pts = find_corners(image, self.board)
            return None if pts is None else (self._all_ids, pts)
        return find_charuco(image, self.charuco, self._cv)

    def pair(self, found_wl, found_nir):
        """(ids, WL corners, NIR corners) the channels share, or None with too few."""
        if self.charuco is None:
            return found_wl[0], found_wl[1], found_nir[1]
        ids, a, b = np.intersect1d(found_wl[0], found_nir[0], return_indices=True)
        if len(ids) < MIN_CHARUCO_CORNERS:
            return None
        return ids, found_wl[1][a], found_nir[1][b]


@dataclass
class _Poses:
    """The poses taken: per pose its corner ids and WL/NIR corners, (N, 2) px."""

    ids: list = field(default_factory=list)
    wl: list = field(default_factory=list)
    nir: list = field(default_factory=list)
    outlines: list = field(default_factory=list)  # WL convex hulls, (M, 2) px
    taken: list = field(default_factory=list)  # (ids, WL corners) as detected, for the motion test
    frames: int = 0
    seen_wl: int = 0  # frames with the board in white light
    wl_size: Optional[tuple] = None  # (W, H)

    def moved(self, ids, pts, min_motion_px: float) -> bool:
        """True when the board moved from every pose taken (mean over the corners they share)."""
        for t_ids, t_pts in self.taken:
            common, a, b = np.intersect1d(ids, t_ids, return_indices=True)
            if len(common) and float(np.mean(np.linalg.norm(pts[a] - t_pts[b], axis=1))) < min_motion_px:
                return False
        return True


def _collect_poses(pairs, detector: _Detector, min_motion_px: float) -> _Poses:
    """The poses in ``pairs``; refuses when the board is never found in both channels."""
    import cv2

    poses = _Poses()
    for wl, nir in pairs:
        poses.frames += 1
        if poses.wl_size is None:
            poses.wl_size = (wl.shape[1], wl.shape[0])
        found_wl = detector.find(wl)
        if found_wl is None:
            continue
        poses.seen_wl += 1
        if not poses.moved(*found_wl, min_motion_px):
            continue
        found_nir = detector.find(nir)
        paired = None if found_nir is None else detector.pair(found_wl, found_nir)
        if paired is None:
            continue
        ids, cw, cn = paired
        poses.taken.append(found_wl)
        poses.ids.append(ids)
        poses.wl.append(cw)
        poses.nir.append(cn)
        poses.outlines.append(cv2.convexHull(cw.astype(np.float32)).reshape(-1, 2))
    if not poses.wl:
        cols, rows = detector.board
        where = ("in the white light" if poses.seen_wl == 0 else "in the NIR of any frame where "
                 "white light shows it")
        raise CalibrationOptionError(
            f"register: no corners found: no {cols}x{rows} {detector.kind} {where} "
            f"({poses.frames} frames); check the board's inner-corner count ({cols}x{rows}) and "
            "focus/lighting", option="board")
    return poses


def _first_pose_scale(wl_corners: np.ndarray, obj: np.ndarray):
    """(mm_per_px, anisotropy) from the board-to-WL homography at the board centre."""
    hb = fit_exact(obj, wl_corners)
    if hb is None:
        raise CalibrationError("register: first pose: board-to-image fit failed")
    return scale_at_centre(hb, obj.mean(axis=0))


def _coverage(outlines, size) -> float:
    """Fraction of the (W, H) field inside the union of the outlines."""
    import cv2

    w, h = size
    scale = min(1.0, _COVERAGE_MASK_PX / max(w, h))
    mask = np.zeros((max(1, int(h * scale)), max(1, int(w * scale))), np.uint8)
    for poly in outlines:
        cv2.fillConvexPoly(mask, np.round(poly * scale).astype(np.int32), 1)
    return float(mask.mean())
