"""Photometric calibration: the dark frame, its hot pixels and the flat field.

Each builder takes NIR frames (any iterable, streamed so N large frames never
sit in memory at once) and returns a small result with the entry and the
figures a user needs to judge it.  A capture that cannot give a usable entry
(a bright "dark", a saturated or dim flat) raises a one-line
:class:`~nirf_overlay.errors.CalibrationError` that names the step and the
problem in the user's words.

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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from ..errors import CalibrationError
from ..frame import CONTAINER_DEPTHS, clip_count, container_bits
from .model import CalibrationOptionError, OptionWarning

__all__ = [
    "FrameStats", "DarkResult", "FlatResult", "build_dark", "build_flat", "nir_quality",
    "container_bits", "CONTAINER_DEPTHS",
    "DARK_MAX_LEVEL", "DARK_MAX_STRUCTURE", "DARK_MAX_HOT", "HOT_SIGMA",
    "FLAT_MAX_SATURATED", "FLAT_MIN_SIGNAL", "FLAT_FLOOR", "FLAT_MAX_FLOORED",
]

# -- dark limits --------------------------------------------------------------
#: fraction of full scale; a light-off dark sits at the black level (< 2 %)
DARK_MAX_LEVEL = 1.0 / 8.0
#: fraction of full scale between the smoothed dark's 0.5 and 99.5 percentiles;
#: amplifier glow is a gradient of a few counts, a scene has shapes
DARK_MAX_STRUCTURE = 0.025
#: fraction of pixels that may be hot; sensors have 0.01-0.1 %, more is a scene
DARK_MAX_HOT = 0.01
#: robust standard deviations above the 5x5 local median that make a pixel hot
HOT_SIGMA = 8.0
#: times the median temporal noise a hot pixel must also exceed, so a clean
#: sensor whose averaged dark is very flat does not flag its fixed pattern
HOT_NOISE_FACTOR = 5.0
#: counts: the smallest hot-pixel threshold (quantisation step)
HOT_MIN_COUNTS = 1.0
#: median absolute deviation -> standard deviation of a normal distribution
_MAD_TO_SIGMA = 1.4826

# -- flat limits --------------------------------------------------------------
#: fraction of pixels (hot pixels excluded) that may reach full scale in any
#: frame; a clipped pixel reads too low, so the flat would be wrong there
FLAT_MAX_SATURATED = 1e-3
#: fraction of full scale the mean dark-subtracted signal must reach; below it
#: read noise, quantisation and dark error reach the flat's 1 % accuracy
FLAT_MIN_SIGNAL = 0.05
#: fraction of the flat's mean below which a pixel counts as unlit; its gain
#: is capped at 1 / FLAT_FLOOR instead of dividing by ~0
FLAT_FLOOR = 0.05
#: fraction of pixels that may be unlit before the target is refused as too small
FLAT_MAX_FLOORED = 0.05

# -- smoothing ----------------------------------------------------------------
#: vignetting and amplifier glow are smooth: a Gaussian of this fraction of
#: the larger side keeps pixel noise and dust out of the flat and the dark check
SMOOTH_FRACTION = 0.01
#: pixels: the smallest smoothing sigma (small test frames)
SMOOTH_MIN_PX = 2.0


def _smoothing_sigma(h: int, w: int) -> float:
    """Default Gaussian sigma in pixels for an (h, w) frame."""
    return max(SMOOTH_MIN_PX, SMOOTH_FRACTION * max(h, w))


def _full_scale(nir_bits: int) -> int:
    return (1 << int(nir_bits)) - 1


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
        """Add one (H, W) frame; every frame must have the first one's size."""
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
        """(H, W) float64, counts."""
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


def nir_quality(nir: np.ndarray, nir_bits: int = 16, *, dark=None) -> dict:
    """Readouts for one NIR frame: saturation and signal level.

    Parameters
    ----------
    nir : (H, W) uint16, raw counts
    nir_bits : significant bits; full scale is ``2**nir_bits - 1``
    dark : (H, W) float, optional; its mean is subtracted from the signal

    Returns
    -------
    dict
        ``saturated_fraction`` (pixels at ``clip_count``: full scale, or where the
        values of a narrower camera in a 16-bit container stop, :func:`clip_count`),
        ``mean_counts`` (dark subtracted when ``dark`` is given), ``signal_fraction``
        (mean over full scale), ``full_scale``.
    """
    full = _full_scale(nir_bits)
    nir = np.asarray(nir)
    mean = float(nir.mean(dtype=np.float64))
    if dark is not None:
        mean -= float(np.mean(dark, dtype=np.float64))
    clip = clip_count(float(nir.max()), nir_bits) if nir.size else full
    return {
        "saturated_fraction": float(np.count_nonzero(nir >= clip)) / nir.size,
        "clip_count": clip,
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
    warnings : plain-language caveats (a dark that would be refused were it from a
        narrower camera in a 16-bit container: :class:`~.model.OptionWarning`)
    """

    dark: np.ndarray
    hot_pixels: np.ndarray
    frames: int
    level: float
    temporal_noise: Optional[float]
    hot_threshold: float
    warnings: list = field(default_factory=list)

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
        more than ``HOT_NOISE_FACTOR`` times the temporal noise.
    max_level : float
        Refuse when the median dark level exceeds this fraction of full scale.

    Returns
    -------
    DarkResult
    """
    st = _stats(frames, "dark")
    dark = st.mean.astype(np.float32)
    full = _full_scale(nir_bits)
    level = float(np.median(dark))
    _refuse_level(level, full, max_level)
    _refuse_structure(dark, full)
    std = st.std
    noise = None if std is None else float(np.median(std))
    hot, threshold = _hot_pixels(dark, noise, hot_sigma)
    warnings = _narrow_dark_warning(dark, level, float(st.max.max()), nir_bits, max_level)
    return DarkResult(dark, hot, st.count, level, noise, threshold, warnings)


def _refuse_level(level: float, full: int, max_level: float) -> None:
    if level > max_level * full:
        raise CalibrationError(
            f"dark: median level {level:.0f} counts is {100 * level / full:.0f}% of full scale "
            f"({full}); is the light off and the lens capped?")


def _narrow_dark_warning(dark, level, largest, nir_bits, max_level) -> list:
    """A dark accepted at 16 bits whose values all fit a narrower camera's range, where
    it would be refused (a 12-bit camera's lit "dark" is only a few % of 65535): a
    warning, since a 16-bit camera's dark fits in few bits too."""
    narrow = container_bits(largest, nir_bits)
    if narrow is None:
        return []
    try:
        _refuse_level(level, _full_scale(narrow), max_level)
        _refuse_structure(dark, _full_scale(narrow))
    except CalibrationError as e:
        problem = str(e).removeprefix("dark: ").split(";")[0]
        return [OptionWarning(
            f"dark: every value fits in {narrow} bits (largest {largest:.0f}); if this is a "
            f"{narrow}-bit camera in a {nir_bits}-bit container, {problem}: light reached the "
            f"sensor; switch the light off and cap the scope, and give the camera's bit depth "
            f"({narrow})", option="nir_bits")]
    return []


def _refuse_structure(dark: np.ndarray, full: int) -> None:
    """A lit scene can sit below the level limit (dim fluorescence on a dark
    background), but it has shapes: a true dark is flat up to a gentle
    amplifier-glow gradient of a few counts."""
    import cv2

    h, w = dark.shape
    smooth = cv2.GaussianBlur(dark, (0, 0), _smoothing_sigma(h, w))
    lo, hi = np.percentile(smooth, (0.5, 99.5))
    if hi - lo > DARK_MAX_STRUCTURE * full:
        raise CalibrationError(
            f"dark: the frame has structure ({hi - lo:.0f} counts between its darkest and "
            f"brightest areas, limit {DARK_MAX_STRUCTURE * full:.0f}); light reaches the sensor: "
            "switch the light off and cap the scope")


def _hot_pixels(dark: np.ndarray, noise: Optional[float], hot_sigma: float):
    """((H, W) bool hot map, threshold in counts); refuses a map that is a scene."""
    import cv2

    residual = dark - cv2.medianBlur(dark, 5)
    mad = float(np.median(np.abs(residual - np.median(residual))))
    sigma = _MAD_TO_SIGMA * mad
    threshold = max(hot_sigma * sigma, HOT_NOISE_FACTOR * (noise or 0.0), HOT_MIN_COUNTS)
    hot = residual > threshold
    hot_fraction = float(np.count_nonzero(hot)) / hot.size
    if hot_fraction > DARK_MAX_HOT:
        raise CalibrationError(
            f"dark: {100 * hot_fraction:.1f}% of pixels stand out from their neighbourhood "
            f"(limit {100 * DARK_MAX_HOT:.0f}%): that is a scene, not a dark frame; switch the "
            "light off and cap the scope")
    return hot, threshold


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
        Gaussian sigma; default ``SMOOTH_FRACTION`` of the larger side.
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
    full = _full_scale(nir_bits)
    st = _stats(frames, "flat")
    h, w = st.shape
    if dark is not None and np.shape(dark) != (h, w):
        raise CalibrationError(
            f"flat: the profile's dark is {np.shape(dark)[1]}x{np.shape(dark)[0]} but the frames "
            f"are {w}x{h}")
    largest = float(st.max.max())
    clip = clip_count(largest, nir_bits)
    saturated = _saturated_fraction(st.max, clip, hot_pixels)
    if saturated > max_saturated and clip < full:
        narrow = container_bits(largest, nir_bits)
        raise CalibrationOptionError(
            f"flat: saturated: {100 * saturated:.2f}% of pixels sit at {clip}, where every value "
            f"stops: the full scale of a {narrow}-bit camera in a {nir_bits}-bit container "
            f"(limit {100 * max_saturated:.2f}%); lower the exposure, gain or light, and give "
            f"the camera's bit depth ({narrow})", option="nir_bits")
    if saturated > max_saturated:
        raise CalibrationError(
            f"flat: saturated: {100 * saturated:.2f}% of pixels reach full scale ({full}) "
            f"(limit {100 * max_saturated:.2f}%); lower the exposure, gain or light")

    sigma = float(smooth_sigma_px) if smooth_sigma_px else _smoothing_sigma(h, w)
    warnings = []
    signal, offset = _dark_subtracted(st.mean.astype(np.float32), dark, sigma, warnings)
    level = float(signal.mean(dtype=np.float64))
    if level < min_signal * full:
        narrow = container_bits(largest, nir_bits)
        if narrow and level >= min_signal * _full_scale(narrow):
            raise CalibrationOptionError(
                f"flat: too dim for {nir_bits}-bit data: mean signal {level:.0f} counts is "
                f"{100 * max(level, 0) / full:.1f}% of full scale ({full}), but every value fits "
                f"in {narrow} bits (largest {largest:.0f}): this looks like a {narrow}-bit camera "
                f"in a {nir_bits}-bit container, where it is "
                f"{100 * level / _full_scale(narrow):.0f}% of full scale; give the camera's bit "
                f"depth ({narrow})", option="nir_bits")
        raise CalibrationError(
            f"flat: too dim: mean signal {level:.0f} counts is {100 * max(level, 0) / full:.1f}% of "
            f"full scale ({full}), need at least {100 * min_signal:.0f}%; raise the exposure, "
            "gain or light")
    flat, floored_fraction = _normalised_flat(signal, sigma, warnings)
    return FlatResult(flat, st.count, level, level / full, saturated, offset, floored_fraction,
                      sigma, warnings)


def _smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """5x5 median (hot pixels, dust), then a Gaussian of ``sigma`` px; float32 in and out."""
    import cv2

    return cv2.GaussianBlur(cv2.medianBlur(image, 5), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _saturated_fraction(maximum: np.ndarray, full: int, hot_pixels) -> float:
    clipped = maximum >= full
    if hot_pixels is not None and np.shape(hot_pixels) == maximum.shape:
        clipped &= ~np.asarray(hot_pixels, bool)
    return float(np.count_nonzero(clipped)) / clipped.size


def _dark_subtracted(mean: np.ndarray, dark, sigma: float, warnings: list):
    """(signal (H, W) float32, offset in words): the profile's dark, else the target's minimum."""
    if dark is not None:
        return mean - np.asarray(dark, np.float32), "profile dark"
    minimum = float(_smooth(mean, sigma).min())
    warnings.append(
        f"no dark frame: subtracted the target's own minimum ({minimum:.0f} counts); this is "
        "right only if part of the field is unlit; capture a dark frame first for accuracy")
    return mean - np.float32(minimum), f"target minimum ({minimum:.0f} counts)"


def _normalised_flat(signal: np.ndarray, sigma: float, warnings: list):
    """(flat (H, W) float32 mean 1, fraction of pixels floored)."""
    smooth = _smooth(signal, sigma)
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
    return smooth.astype(np.float32), floored_fraction
