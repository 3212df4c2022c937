"""Build calibration entries from captured frames: dark, flat, registration.

Each builder takes frames (arrays, any iterable, streamed so N large frames
never sit in memory at once) and returns a small result object with the
entry and the figures a user needs to judge it.  A capture that cannot give a
usable entry (a bright "dark", a saturated or dim flat, no checkerboard, a
registration error above its limit) raises a one-line
:class:`~nirf_overlay.errors.CalibrationError` with the reason.

Limits (defaults, and why)
--------------------------
- dark: refused when its median is above 1/8 of full scale: a lens cap or
  light-off dark sits at the sensor's black level (typically < 2 %), so a
  level that high means light reached the sensor.  Also refused when its
  smoothed image spans more than 2.5 % of full scale, or more than 1 % of its
  pixels stand out as "hot": a dark is flat up to amplifier glow and has
  hot pixels in the 0.01-0.1 % range, so either means a scene was captured.
- flat: refused when more than 0.1 % of pixels (hot pixels excluded) hit full
  scale in any frame, since a clipped pixel reads too low and the flat would be
  wrong there; refused when the mean dark-subtracted signal is below 5 % of
  full scale, since then read noise, quantisation and a few counts of dark
  error reach the 1 % level the flat must be good to.
- registration: refused above 1.0 px RMS reprojection error (NIR pixels).
  Subpixel checkerboard corners of a flat board through a coaxial WL/NIR
  splitter fit a homography to 0.1-0.5 px; more than 1 px means parallax,
  lens distortion or mismatched corners, and at 0.1-0.2 mm per pixel 1 px is
  already the rim-thickness accuracy the pipeline aims at.
- mm per pixel: refused when the first pose's two principal scales differ by
  more than 5 % (the board is tilted by more than about 18 degrees), since
  that pose must be fronto-parallel for a scale to mean anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from ..errors import CalibrationError

__all__ = [
    "FrameStats", "DarkResult", "FlatResult", "Registration",
    "build_dark", "build_flat", "build_registration",
    "find_corners", "find_charuco", "Charuco", "nir_quality", "to_gray8", "board_object_points",
]

DARK_MAX_LEVEL = 1.0 / 8.0
DARK_MAX_HOT = 0.01
DARK_MAX_STRUCTURE = 0.025
HOT_SIGMA = 8.0
FLAT_MAX_SATURATED = 1e-3
FLAT_MIN_SIGNAL = 0.05
FLAT_FLOOR = 0.05
FLAT_MAX_FLOORED = 0.05
MAX_RMS_PX = 1.0
MAX_ANISOTROPY = 0.05
MIN_POSE_MOTION_PX = 5.0


# -- streaming statistics ----------------------------------------------------
class FrameStats:
    """Per-pixel mean, variance and maximum over frames, one frame at a time.

    Welford's update keeps float64 accuracy without stacking frames.
    """

    def __init__(self):
        self.count = 0
        self._mean = None
        self._m2 = None
        self.max = None
        self.shape = None

    def add(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if frame.ndim != 2:
            raise CalibrationError(f"NIR frame {self.count}: expected (H, W), got shape {frame.shape}")
        if self.shape is None:
            self.shape = frame.shape
            self._mean = np.zeros(frame.shape, np.float64)
            self._m2 = np.zeros(frame.shape, np.float64)
            self.max = frame.copy()
        elif frame.shape != self.shape:
            raise CalibrationError(
                f"NIR frame {self.count}: size {frame.shape[1]}x{frame.shape[0]} differs from the "
                f"first frame's {self.shape[1]}x{self.shape[0]}")
        self.count += 1
        delta = frame - self._mean
        self._mean += delta / self.count
        self._m2 += delta * (frame - self._mean)
        np.maximum(self.max, frame, out=self.max)

    @property
    def mean(self) -> np.ndarray:
        return self._mean

    @property
    def std(self) -> Optional[np.ndarray]:
        """Per-pixel temporal standard deviation, or None with a single frame."""
        if self.count < 2:
            return None
        return np.sqrt(self._m2 / (self.count - 1))


def _stats(frames: Iterable[np.ndarray], what: str) -> FrameStats:
    st = FrameStats()
    for f in frames:
        st.add(f)
    if st.count == 0:
        raise CalibrationError(f"{what}: no frames captured")
    return st


def _full_scale(nir_bits: int) -> int:
    return (1 << int(nir_bits)) - 1


def nir_quality(nir: np.ndarray, nir_bits: int = 16, *, dark=None) -> dict:
    """Readouts for one NIR frame: saturation and signal level.

    Returns
    -------
    dict
        ``saturated_fraction`` (pixels at full scale), ``mean_counts`` (dark
        subtracted when ``dark`` is given), ``signal_fraction`` (mean over full
        scale), ``full_scale``.
    """
    full = _full_scale(nir_bits)
    nir = np.asarray(nir)
    mean = float(nir.mean(dtype=np.float64))
    if dark is not None:
        mean -= float(np.mean(dark, dtype=np.float64))
    return {
        "saturated_fraction": float(np.count_nonzero(nir >= full)) / nir.size,
        "mean_counts": mean,
        "signal_fraction": mean / full,
        "full_scale": full,
    }


# -- dark --------------------------------------------------------------------
@dataclass
class DarkResult:
    """A mean dark frame and its hot pixels.

    Attributes
    ----------
    dark : (H, W) float32, counts
    hot_pixels : (H, W) bool
    frames : number of frames averaged
    level : median dark level, counts
    temporal_noise : median per-pixel standard deviation over frames, counts (None for 1 frame)
    hot_threshold : counts above the local median that make a pixel hot
    """

    dark: np.ndarray
    hot_pixels: np.ndarray
    frames: int
    level: float
    temporal_noise: Optional[float]
    hot_threshold: float

    @property
    def hot_count(self) -> int:
        return int(np.count_nonzero(self.hot_pixels))

    def summary(self) -> str:
        noise = "n/a" if self.temporal_noise is None else f"{self.temporal_noise:.2f}"
        return (f"dark: {self.frames} frames, level {self.level:.1f} counts, temporal noise "
                f"{noise} counts, {self.hot_count} hot pixels (> {self.hot_threshold:.1f} counts "
                f"above their neighbourhood)")


def build_dark(frames: Iterable[np.ndarray], *, nir_bits: int = 16,
               hot_sigma: float = HOT_SIGMA, max_level: float = DARK_MAX_LEVEL) -> DarkResult:
    """Mean of N light-off NIR frames plus a hot-pixel map.

    Parameters
    ----------
    frames : iterable of (H, W) uint16
        Raw NIR counts with the excitation light off (or the lens capped).
    nir_bits : int
        Significant bits; full scale is ``2**nir_bits - 1``.
    hot_sigma : float
        A pixel is hot when its mean exceeds the 5x5 median around it by more
        than ``hot_sigma`` robust standard deviations of that difference and by
        more than 5 times the temporal noise (so a clean sensor whose
        averaged dark is very flat does not flag its fixed pattern).
    max_level : float
        Refuse when the median dark level exceeds this fraction of full scale.

    Returns
    -------
    DarkResult
    """
    import cv2

    st = _stats(frames, "dark")
    dark = st.mean.astype(np.float32)
    full = _full_scale(nir_bits)
    level = float(np.median(dark))
    if level > max_level * full:
        raise CalibrationError(
            f"dark: median level {level:.0f} counts is {100 * level / full:.0f}% of full scale "
            f"({full}); is the light off and the lens capped?")
    # A lit scene can sit below the level limit (dim fluorescence on a dark
    # background), but it has shapes: a true dark is flat up to a gentle
    # amplifier-glow gradient of a few counts.
    h, w = dark.shape
    smooth = cv2.GaussianBlur(dark, (0, 0), max(2.0, 0.01 * max(h, w)))
    lo, hi = np.percentile(smooth, (0.5, 99.5))
    if hi - lo > DARK_MAX_STRUCTURE * full:
        raise CalibrationError(
            f"dark: the frame has structure ({hi - lo:.0f} counts between its darkest and "
            f"brightest areas, limit {DARK_MAX_STRUCTURE * full:.0f}); light reaches the sensor: "
            "switch the light off and cap the scope")
    residual = dark - cv2.medianBlur(dark, 5)
    mad = float(np.median(np.abs(residual - np.median(residual))))
    sigma = 1.4826 * mad
    std = st.std
    noise = None if std is None else float(np.median(std))
    threshold = max(hot_sigma * sigma, 5.0 * (noise or 0.0), 1.0)
    hot = residual > threshold
    hot_fraction = float(np.count_nonzero(hot)) / hot.size
    if hot_fraction > DARK_MAX_HOT:
        raise CalibrationError(
            f"dark: {100 * hot_fraction:.1f}% of pixels stand out from their neighbourhood "
            f"(limit {100 * DARK_MAX_HOT:.0f}%): that is a scene, not a dark frame; switch the "
            "light off and cap the scope")
    return DarkResult(dark, hot, st.count, level, noise, threshold)


# -- flat --------------------------------------------------------------------
@dataclass
class FlatResult:
    """A flat field and the figures that qualify it.

    Attributes
    ----------
    flat : (H, W) float32, mean 1
    frames : number of frames averaged
    signal_counts : mean dark-subtracted signal, counts
    signal_fraction : signal_counts over full scale
    saturated_fraction : pixels (hot pixels excluded) at full scale in any frame
    offset : "profile dark" or "target minimum (N counts)"
    floored_fraction : pixels raised to the floor (target did not reach them)
    smooth_sigma_px : Gaussian smoothing applied
    warnings : plain-language caveats
    """

    flat: np.ndarray
    frames: int
    signal_counts: float
    signal_fraction: float
    saturated_fraction: float
    offset: str
    floored_fraction: float
    smooth_sigma_px: float
    warnings: list = field(default_factory=list)

    def summary(self) -> str:
        lo, hi = float(self.flat.min()), float(self.flat.max())
        return (f"flat: {self.frames} frames, signal {self.signal_counts:.0f} counts "
                f"({100 * self.signal_fraction:.1f}% of full scale), saturated "
                f"{100 * self.saturated_fraction:.3f}%, range {lo:.3f}..{hi:.3f}, "
                f"offset from {self.offset}, smoothed sigma {self.smooth_sigma_px:.1f} px")


def build_flat(frames: Iterable[np.ndarray], *, nir_bits: int = 16,
               dark: Optional[np.ndarray] = None, hot_pixels: Optional[np.ndarray] = None,
               smooth_sigma_px: Optional[float] = None,
               max_saturated: float = FLAT_MAX_SATURATED,
               min_signal: float = FLAT_MIN_SIGNAL) -> FlatResult:
    """Flat field from N frames of a uniform fluorescent target.

    Parameters
    ----------
    frames : iterable of (H, W) uint16
        Raw NIR counts of a uniform target filling the field.
    nir_bits : int
        Significant bits; full scale is ``2**nir_bits - 1``.
    dark : (H, W) float, optional
        The profile's dark frame.  Without one, the target's own minimum (of
        the smoothed mean frame) is taken as the offset: right only when some
        part of the field is unlit, otherwise the flat is exaggerated; a
        warning says so.
    hot_pixels : (H, W) bool, optional
        Excluded from the saturation count (they may clip on their own).
    smooth_sigma_px : float, optional
        Gaussian sigma; default 1 % of the larger side (vignetting is smooth;
        this keeps pixel noise and dust out of the flat).
    max_saturated, min_signal : float
        Refusal limits, see the module notes.

    Returns
    -------
    FlatResult

    Notes
    -----
    ``flat = G * (mean_n(frame_n) - offset)``, then ``flat /= mean(flat)``,
    where ``G`` is a 5x5 median (hot pixels, dust) followed by the Gaussian.
    """
    import cv2

    full = _full_scale(nir_bits)
    st = _stats(frames, "flat")
    h, w = st.shape
    if dark is not None and np.shape(dark) != (h, w):
        raise CalibrationError(
            f"flat: the profile's dark is {np.shape(dark)[1]}x{np.shape(dark)[0]} but the frames "
            f"are {w}x{h}")
    clipped = st.max >= full
    if hot_pixels is not None and np.shape(hot_pixels) == (h, w):
        clipped &= ~np.asarray(hot_pixels, bool)
    saturated = float(np.count_nonzero(clipped)) / clipped.size
    if saturated > max_saturated:
        raise CalibrationError(
            f"flat: saturated: {100 * saturated:.2f}% of pixels reach full scale ({full}) "
            f"(limit {100 * max_saturated:.2f}%); lower the exposure, gain or light")

    sigma = float(smooth_sigma_px) if smooth_sigma_px else max(2.0, 0.01 * max(h, w))
    mean = st.mean.astype(np.float32)
    warnings = []
    if dark is not None:
        signal = mean - np.asarray(dark, np.float32)
        offset = "profile dark"
    else:
        smooth_raw = cv2.GaussianBlur(cv2.medianBlur(mean, 5), (0, 0), sigma,
                                      borderType=cv2.BORDER_REFLECT)
        minimum = float(smooth_raw.min())
        signal = mean - np.float32(minimum)
        offset = f"target minimum ({minimum:.0f} counts)"
        warnings.append(
            f"no dark frame: subtracted the target's own minimum ({minimum:.0f} counts); this is "
            "right only if part of the field is unlit; run `calibrate dark` first for accuracy")
    level = float(signal.mean(dtype=np.float64))
    if level < min_signal * full:
        raise CalibrationError(
            f"flat: too dim: mean signal {level:.0f} counts is {100 * max(level, 0) / full:.1f}% of "
            f"full scale ({full}), need at least {100 * min_signal:.0f}%; raise the exposure, "
            "gain or light")
    smooth = cv2.GaussianBlur(cv2.medianBlur(signal, 5), (0, 0), sigma,
                              borderType=cv2.BORDER_REFLECT)
    smooth /= np.float32(smooth.mean(dtype=np.float64))
    floored = smooth < FLAT_FLOOR
    floored_fraction = float(np.count_nonzero(floored)) / floored.size
    if floored_fraction > FLAT_MAX_FLOORED:
        raise CalibrationError(
            f"flat: the target covers too little of the field: {100 * floored_fraction:.1f}% of "
            f"pixels are below {100 * FLAT_FLOOR:.0f}% of the mean")
    if floored_fraction > 0:
        # Dividing by ~0 would blow these pixels up; cap the gain at 1/FLAT_FLOOR.
        np.maximum(smooth, np.float32(FLAT_FLOOR), out=smooth)
        smooth /= np.float32(smooth.mean(dtype=np.float64))
        warnings.append(f"{100 * floored_fraction:.2f}% of pixels below {100 * FLAT_FLOOR:.0f}% "
                        "of the mean were floored")
    return FlatResult(smooth.astype(np.float32), st.count, level, level / full, saturated,
                      offset, floored_fraction, sigma, warnings)


# -- registration ------------------------------------------------------------
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
    if not found:
        # The sector-based detector copes with blur and uneven light the
        # classic one misses; it is slow on large frames (~1 s at 1080p when
        # there is no board), so it searches a copy at most 800 px wide and
        # the corners are refined at full resolution below.
        scale = min(1.0, 800.0 / max(gray.shape))
        small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale,
                                                     interpolation=cv2.INTER_AREA)
        found, corners = cv2.findChessboardCornersSB(small, (cols, rows),
                                                     flags=cv2.CALIB_CB_NORMALIZE_IMAGE)
        if not found:
            return None
        if scale == 1.0:
            return corners.reshape(-1, 2).astype(np.float64)
        # pixel centres: x_full = (x_small + 0.5) / scale - 0.5
        corners = ((corners.reshape(-1, 1, 2) + 0.5) / scale - 0.5).astype(np.float32)
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
        import cv2

        name = self.dictionary.upper()
        if not name.startswith("DICT_") or not hasattr(cv2.aruco, name):
            raise CalibrationError(f"--dictionary: {self.dictionary!r} is not an OpenCV ArUco "
                                   "dictionary (e.g. DICT_5X5_100, DICT_4X4_50)")
        if not (0.1 <= self.marker_ratio <= 0.95):
            raise CalibrationError(f"--marker-ratio: {self.marker_ratio} is outside 0.1..0.95")
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, name))
        cols, rows = self.board
        needed = ((cols + 1) * (rows + 1)) // 2
        if needed > d.bytesList.shape[0]:
            raise CalibrationError(f"--dictionary: {self.dictionary} has {d.bytesList.shape[0]} "
                                   f"markers, a {cols}x{rows} board needs {needed}")
        return cv2.aruco.CharucoBoard((cols + 1, rows + 1), square, square * self.marker_ratio, d)

    def detector(self):
        import cv2

        return cv2.aruco.CharucoDetector(self.cv_board())


MIN_CHARUCO_CORNERS = 8


def find_charuco(image: np.ndarray, spec: Charuco, detector=None):
    """Ids and subpixel positions of the ChArUco corners found, or None.

    Returns
    -------
    (ids (N,) int, corners (N, 2) float64) or None
        Ids number the inner corners row by row, as :func:`board_object_points`.
    """
    det = detector or spec.detector()
    corners, ids, _, _ = det.detectBoard(to_gray8(image))
    if ids is None or len(ids) < MIN_CHARUCO_CORNERS:
        return None
    order = np.argsort(ids.ravel())
    return ids.ravel()[order].astype(np.int64), corners.reshape(-1, 2)[order].astype(np.float64)


def _orderings(board: tuple[int, int]):
    """Index permutations of a detected grid that are the same board turned or mirrored."""
    cols, rows = board
    idx = np.arange(rows * cols).reshape(rows, cols)
    cands = [idx, idx[::-1, :], idx[:, ::-1], idx[::-1, ::-1]]
    if rows == cols:
        t = idx.T
        cands += [t, t[::-1, :], t[:, ::-1], t[::-1, ::-1]]
    return [c.ravel() for c in cands]


def _apply_h(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ h.T
    return p[:, :2] / p[:, 2:3]


def _rotation_deg(wl: np.ndarray, nir: np.ndarray):
    """(det, rotation in degrees) of the least-squares linear map wl -> nir (centred)."""
    a, *_ = np.linalg.lstsq(wl - wl.mean(axis=0), nir - nir.mean(axis=0), rcond=None)
    a = a.T  # nir_c ~ a @ wl_c
    return float(np.linalg.det(a)), float(np.degrees(np.arctan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1])))


def _prior_ordering(wl: np.ndarray, nir: np.ndarray, board) -> np.ndarray:
    """For a single pose: the ordering that makes WL -> NIR orientation-preserving
    with the smallest rotation (both channels look through the same optics)."""
    best, best_score = nir, np.inf
    for perm in _orderings(board):
        det, rot = _rotation_deg(wl, nir[perm])
        score = abs(rot) + (1000.0 if det <= 0 else 0.0)
        if score < best_score:
            best, best_score = nir[perm], score
    return best


def _resolve_orderings(wl_poses: list, nir_poses: list, board) -> list:
    """NIR corners of every pose reordered so that nir[k] is the same board corner as wl[k].

    The detector may number the corners from either end in each channel, and
    every renumbering of one pose's grid is fitted exactly by *some*
    homography, so one pose cannot tell.  Several poses can: for each
    ordering of the first pose, every later pose takes the ordering the
    homography fitted so far predicts best; only the right first choice makes
    all poses agree on one map, so the smallest overall RMS wins.  This also
    registers a channel that is rotated or mirrored relative to the other.
    """
    import cv2

    if len(wl_poses) == 1:
        return [_prior_ordering(wl_poses[0], nir_poses[0], board)]
    perms = _orderings(board)
    best, best_rms = None, np.inf
    for perm0 in perms:
        chosen = [nir_poses[0][perm0]]
        for wl, nir in zip(wl_poses[1:], nir_poses[1:]):
            h, _ = cv2.findHomography(np.concatenate(wl_poses[:len(chosen)]), np.concatenate(chosen), 0)
            if h is None:
                break
            errs = [float(np.mean(np.sum((_apply_h(h, wl) - nir[p]) ** 2, axis=1))) for p in perms]
            chosen.append(nir[perms[int(np.argmin(errs))]])
        if len(chosen) < len(wl_poses):
            continue
        src, dst = np.concatenate(wl_poses), np.concatenate(chosen)
        h, _ = cv2.findHomography(src, dst, 0)
        if h is None:
            continue
        rms = float(np.sqrt(np.mean(np.sum((_apply_h(h, src) - dst) ** 2, axis=1))))
        if rms < best_rms:
            best, best_rms = chosen, rms
    return best if best is not None else list(nir_poses)


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


def _first_pose_scale(wl_corners: np.ndarray, obj: np.ndarray):
    """(mm_per_px, anisotropy) from the board-to-WL homography's Jacobian at the board centre.

    The larger principal scale is used: a small tilt shortens only the other
    axis, so the larger one stays the fronto-parallel scale at that depth.
    """
    import cv2

    hb, _ = cv2.findHomography(obj, wl_corners, 0)
    if hb is None:
        raise CalibrationError("register: first pose: board-to-image fit failed")
    cx, cy = obj.mean(axis=0)
    p = hb @ np.array([cx, cy, 1.0])
    u, v = p[0] / p[2], p[1] / p[2]
    jac = np.array([[hb[0, 0] - u * hb[2, 0], hb[0, 1] - u * hb[2, 1]],
                    [hb[1, 0] - v * hb[2, 0], hb[1, 1] - v * hb[2, 1]]]) / p[2]
    s = np.linalg.svd(jac, compute_uv=False)  # px per mm, s[0] >= s[1]
    return 1.0 / s[0], s[0] / s[1] - 1.0


def _coverage(outlines, size) -> float:
    import cv2

    w, h = size
    scale = min(1.0, 400.0 / max(w, h))
    mask = np.zeros((max(1, int(h * scale)), max(1, int(w * scale))), np.uint8)
    for poly in outlines:
        cv2.fillConvexPoly(mask, np.round(poly * scale).astype(np.int32), 1)
    return float(mask.mean())


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
        (mean) from every pose already taken, so a board held still for many
        frames does not outweigh the others.
    charuco : Charuco, optional
        Use a ChArUco board (its ``board`` replaces ``board``): corners pair
        by id, and a pose counts when at least 8 corners are seen in both.

    Returns
    -------
    Registration

    Notes
    -----
    ``cv2.findHomography`` (RANSAC, 3 px, then Levenberg-Marquardt on the
    inliers) over all poses' corners at once; the RMS is over *all* corners,
    outliers included, so a bad corner shows in the figure that is checked.
    """
    import cv2

    if charuco is not None:
        board = tuple(charuco.board)
    cols, rows = board
    if cols < 2 or rows < 2:
        raise CalibrationError(f"--board: {cols}x{rows}: need at least 2x2 inner corners")
    if square_mm is not None and not (0 < square_mm < 1000):
        raise CalibrationError(f"--square-mm: {square_mm} is outside (0, 1000) mm")
    detector = charuco.detector() if charuco is not None else None
    all_ids = np.arange(cols * rows)
    obj_all = board_object_points(board, square_mm or 1.0)
    wl_all, nir_all, outlines, taken = [], [], [], []
    frames = 0
    wl_size = None
    first_scale = None
    seen_wl = 0

    def moved(ids, pts) -> bool:
        # mean displacement over the corners this pose shares with each earlier one
        for t_ids, t_pts in taken:
            common, a, b = np.intersect1d(ids, t_ids, return_indices=True)
            if len(common) and float(np.mean(np.linalg.norm(pts[a] - t_pts[b], axis=1))) < min_motion_px:
                return False
        return True

    for wl, nir in pairs:
        frames += 1
        if wl_size is None:
            wl_size = (wl.shape[1], wl.shape[0])
        if detector is None:
            cw = find_corners(wl, board)
            found_wl = None if cw is None else (all_ids, cw)
        else:
            found_wl = find_charuco(wl, charuco, detector)
        if found_wl is None:
            continue
        seen_wl += 1
        if not moved(*found_wl):
            continue
        if detector is None:
            cn = find_corners(nir, board)
            if cn is None:
                continue
            ids, cw = found_wl
        else:
            found_nir = find_charuco(nir, charuco, detector)
            if found_nir is None:
                continue
            # pair the channels by corner id
            ids, a, b = np.intersect1d(found_wl[0], found_nir[0], return_indices=True)
            if len(ids) < MIN_CHARUCO_CORNERS:
                continue
            cw, cn = found_wl[1][a], found_nir[1][b]
        taken.append(found_wl)
        wl_all.append(cw)
        nir_all.append(cn)
        outlines.append(cv2.convexHull(cw.astype(np.float32)).reshape(-1, 2))
        if first_scale is None and square_mm is not None:
            first_scale = _first_pose_scale(cw, obj_all[ids])
    if not wl_all:
        kind = "ChArUco board" if charuco is not None else "checkerboard"
        where = ("in the white light" if seen_wl == 0 else "in the NIR of any frame where white "
                 "light shows it")
        raise CalibrationError(
            f"register: no corners found: no {cols}x{rows} {kind} {where} "
            f"({frames} frames); check --board (inner corners) and focus/lighting")
    if len(wl_all) < min_poses:
        raise CalibrationError(
            f"register: only {len(wl_all)} distinct pose(s) with the board in both channels, "
            f"need {min_poses}; move or tilt the board between captures")
    if charuco is None:
        nir_all = _resolve_orderings(wl_all, nir_all, board)
    src = np.concatenate(wl_all)
    dst = np.concatenate(nir_all)
    h, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 3.0, maxIters=5000, confidence=0.999)
    if h is None:
        raise CalibrationError("register: homography fit failed (degenerate corners)")
    h = h / h[2, 2]
    err = np.linalg.norm(_apply_h(h, src) - dst, axis=1)
    rms = float(np.sqrt(np.mean(err ** 2)))
    if rms > max_rms_px:
        raise CalibrationError(
            f"register: RMS reprojection error {rms:.2f} px exceeds the limit {max_rms_px:g} px "
            f"({len(wl_all)} poses, max {err.max():.1f} px); the channels do not follow one "
            "homography (parallax, distortion) or the boards were mismatched")
    warnings = []
    coverage = _coverage(outlines, wl_size)
    if coverage < 0.5:
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
    return Registration(h, rms, float(err.max()), len(wl_all), frames, len(src), coverage,
                        mm_per_px, aniso, warnings)
