"""NIR normalisation: dark, flat, exposure/gain, temporal noise filter, saturation.

For every NIR frame (raw counts ``raw``, in WL pixel coordinates after the
calibration's homography)::

    v = (raw - dark) / flat * (gain_ref / gain) * (exposure_ref / exposure)

so that intensities are comparable across the field (vignetting), across
auto-gain and exposure steps, and with the phantom's "normalised counts".
The references are the calibration's ``gain_ref`` / ``exposure_ref_ms``, or
the first frame's values when the calibration has none.

Temporal filter
---------------
A per-pixel recursive filter ``f = w f_prev + (1 - w) v`` averages shot noise
over frames.  ``w`` is ``normalise.temporal_alpha`` while ``|v - f_prev|`` is
within ``k`` noise sigmas (``k = normalise.motion_threshold``), falls linearly
to 0 at ``2 k`` sigma, and is 0 beyond: where the scene moves the pixel takes
the new value at once, so edges do not smear.  The noise sigma follows the
shot + read model ``var(v) = a (v + c)``: ``a`` is estimated on every frame
from the median of ``d**2 / (2 (m + c))`` over horizontal neighbour pairs
(``d`` their difference, ``m`` their mean) on a subsampled grid; the median
makes it robust to edges, and it is smoothed over frames.  ``c``, the read
noise floor, is a quarter of the median scene level.

The gate sees a moving edge only where its change exceeds the noise: a faint
or blurred rim that moves a few pixels a frame (breathing, the scope) is
averaged along its track, a one-sided exponential smear of standard deviation
``d sqrt(w) / (1 - w)`` px for a shift of ``d`` px a frame (1.4 d at w = 0.5).
That widened the measured rim thickness (the width's blur model is a
Gaussian, the same in every direction) on 18 of 20 lesions of seeds 700-711,
by 0.007 mm median.  So with the tissue's motion known (``shift_px``, the
largest shift of the frame's corners since the previous frame, from the WL),
``w`` is capped to keep that smear within :data:`SMEAR_MAX_PX`
(:func:`motion_weight`); a still scene keeps ``temporal_alpha``.

The filter's state is the float32 output itself (read and written in place, 8 bytes a
pixel a frame).  A narrower state was measured and left out: held as uint16 fixed point
(``65535 / full scale`` steps, negatives clipped) or as float16, the normalisation's own
tests fail (the dark/flat/gain arithmetic is exact to the raw count's rounding, about
0.5 count, and a float16 step is 0.5 count from 512 on, a uint16 step 1/16 count at 12
bits and more with a flat or a gain) and the masks and metrics of every frozen case change;
and the analysis reads float32, so a narrow state would add a float32 copy, not save one.

Saturation: a pixel whose raw count reaches
``normalise.saturation_fraction * (2**nir_bits - 1)`` is flagged; it is never
averaged and the display shows it in its own colour.  A 16-bit stream whose
values all fit a narrower camera's range (a 12-bit camera in a 16-bit container)
is watched until a value proves it wider: where its values stop exactly at that
range's top (4095), that is where it clips (:func:`~nirf_overlay.frame.clip_count`),
and one line says once which ``--nir-bits`` to give (logged, and kept as
``bits_notice`` for the viewer).

Homography: dark and flat are NIR-sized; with a WL-to-NIR homography they are
warped into WL coordinates once, when the first frame shows the sizes, and
each raw frame is warped with ``cv2.warpPerspective(..., WARP_INVERSE_MAP)``
(the homography maps WL pixels to NIR pixels).  An identity homography with
equal sizes skips the warp.  Pixels outside the NIR field of view read 0.
The calibration's hot-pixel map is used where a flat is built (its pixels are left out of
the flat's saturation check); here hot pixels get their dark offset subtracted like any
other pixel and are not replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import logging
import math

import cv2
import numba
import numpy as np

from ..errors import CalibrationError
from ..frame import CONTAINER_DEPTHS, clip_count, container_bits
from ._kernels.pixel import normalise_pass, row_scratch_bytes
from ._kernels.sample import CHI2_1_MEDIAN, noise_bin_edges, percentile_from_hist, sample_pass
from ._validate import read_only, require

# kernel arguments that switch the display sweep off (types match the real ones)
_NO_DISPLAY = (False, read_only(np.zeros((1, 1, 3), np.uint8)), np.float32(0), np.float32(1),
               np.zeros(2, np.uint64), 0, False, False, np.zeros((1, 1, 3), np.uint8))

log = logging.getLogger(__name__)

HIST_BINS = 4096
#: frames of a 16-bit stream that fits a narrower range before the log line says so
#: (about 2 s: a scene that starts dark fits fewer bits than its camera has)
CONTAINER_FRAMES = 60
_WIDEST_NARROW = (1 << max(CONTAINER_DEPTHS)) - 1
Q_LO, Q_SCALE, Q_BINS = -40.0, 4.0, 320  # log2 range of the noise statistic histogram
# pixels that feed the histograms per frame: plenty for the 1st/99.7th
# percentiles (about 50 samples beyond each, and the levels are smoothed over
# frames) while the strided sampling stays well under 0.3 ms at 1080p
_SAMPLES = 16384
#: the temporal filter's largest smear along a motion, px (standard deviation of
#: its lag times the shift per frame): under a third of the sharpest rim's blur
#: (sigma 0.2 mm = 3.4 px at 0.059 mm/px).  Measured on seeds 700-711 (1280x720, 10
#: frames, thickness against the width as seen), paired with the filter off: the
#: full weight widened 18 of 20 lesions (+0.0066 mm median), 1.0 px +0.0011 mm (16 of
#: 20), 0.5 px +0.0001 (11 of 20); 0.5 px leaves a moving view almost unfiltered
#: (w 0.02-0.06 at 2-3.5 px a frame, against 0.07-0.17) and per-frame masks noisier
#: (tests/test_gain_step.py seed 34: one frame's Dice 0.009 apart between two noise
#: draws, against 0.001 at 1.0 px and 0.004 at the full weight)
SMEAR_MAX_PX = 1.0


def motion_weight(alpha: float, shift_px: float) -> float:
    """The temporal filter's weight on the previous frame for a scene that moved
    ``shift_px`` px since it: ``alpha``, or less, the largest ``w`` whose smear
    ``shift_px * sqrt(w) / (1 - w)`` stays within :data:`SMEAR_MAX_PX`."""
    d = float(shift_px)
    if not d > 0.0:
        return float(alpha)
    r = SMEAR_MAX_PX / d  # sqrt(w) = r (1 - w): r u^2 + u - r = 0, u = sqrt(w)
    u = (math.sqrt(1.0 + 4.0 * r * r) - 1.0) / (2.0 * r)
    return min(float(alpha), u * u)


@dataclass
class NormaliseOutput:
    """What :meth:`Normaliser.process` returns (arrays are the Normaliser's buffers).

    Attributes
    ----------
    nir : (H, W) float32, normalised filtered NIR, WL coordinates; valid until the next call
    saturated : (H, W) uint8, 1 where saturated
    saturated_fraction : float, saturated pixels / all pixels
    hist : (HIST_BINS,) int64, subsampled histogram of ``nir``
    hist_scale : float, bins per normalised count
    noise_a : float, shot-noise gain of the model var = a (v + c)
    gain_scale : float, the exposure/gain factor applied
    valid : (H, W) bool or None, False outside the NIR field of view (warped only) and
        inside the calibration's ``ignore_rects``: pixels that are neither fluorescence
        nor background
    """

    nir: np.ndarray
    saturated: np.ndarray
    saturated_fraction: float
    hist: np.ndarray
    hist_scale: float
    noise_a: float
    gain_scale: float
    valid: Optional[np.ndarray]


def _homography_for(cal, nir_shape, wl_shape) -> Optional[np.ndarray]:
    """The WL->NIR matrix to warp with, or None when no warp is needed."""
    hn, wn = nir_shape
    hw, ww = wl_shape
    H = None if cal is None else cal.homography_wl_to_nir
    if H is not None:
        H = np.asarray(H, dtype=np.float64).reshape(3, 3)
        if not np.all(np.isfinite(H)) or abs(np.linalg.det(H)) < 1e-12:
            raise CalibrationError("homography_wl_to_nir: not an invertible 3x3 matrix")
        H = H / H[2, 2]
        if (hn, wn) == (hw, ww) and np.allclose(H, np.eye(3), atol=1e-9):
            return None
        return H
    if (hn, wn) == (hw, ww):
        return None
    # different sizes, no homography: the two views cover the same field
    sx, sy = wn / ww, hn / hw
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])


def _dark_plane(dark: Optional[np.ndarray], width: int, black: Optional[float] = None) -> np.ndarray:
    """The dark plane as the kernel reads it: uint16 when it holds whole counts
    (a measured dark, unwarped), else float32; one row when there is none (zero,
    or the estimated ``black`` level: :mod:`.black_level`).

    uint16 halves the bytes of the plane read every frame (4 MB at 1080p) and
    gives the same result to the bit: ``float32(raw) - float32(dark)`` either way.
    """
    if dark is None:
        if black:
            return np.full((1, width), black, np.float32)
        return np.zeros((1, width), np.uint16)
    d = np.ascontiguousarray(dark, np.float32)
    if d.size and d.min() >= 0 and d.max() <= 65535 and np.array_equal(d, np.round(d)):
        return d.astype(np.uint16)
    return d


class Normaliser:
    """Per-pipeline state and buffers of the normalisation pass.

    Parameters
    ----------
    calibration : :class:`~nirf_overlay.calibration.Calibration` or None
    """

    def __init__(self, calibration=None):
        self.calibration = calibration
        self._shape_key = None
        self._have_prev = False
        self.noise_a = 0.0
        self._noise_c = 0.0
        self.gain_ref: Optional[float] = calibration.gain_ref if calibration is not None else None
        self.exposure_ref: Optional[float] = (calibration.exposure_ref_ms if calibration is not None
                                              else None)
        #: (H, W) float32 normalised, filtered NIR of the last frame (the
        #: filter's state), None before the first frame
        self.filt: Optional[np.ndarray] = None
        #: (H, W) bool usable pixels in WL pixels (field of view, not ignored), None = all
        self.valid: Optional[np.ndarray] = None
        #: a constant dark (raw counts) used when the calibration has no dark frame:
        #: the black-level estimate (:mod:`.black_level`, :meth:`set_black_level`)
        self.black_level: Optional[float] = None
        #: (H, W) uint16 the last raw frame in WL pixel coordinates (warped or as given)
        self.raw_wl: Optional[np.ndarray] = None
        #: the largest raw count of a 16-bit stream while it fits a narrower range
        #: (watched until a value proves it wider), and the frames it was seen in
        self.largest_raw = 0
        self._watched = 0
        #: the line naming ``--nir-bits`` once it is said ("" before): the pipeline hands it
        #: on as ``FrameResult.notice``, so the viewer shows it too, not only the log
        self.bits_notice = ""

    # -- set-up -----------------------------------------------------------
    def set_calibration(self, calibration) -> None:
        """Use ``calibration`` from the next frame on (its planes are prepared again)."""
        self.calibration = calibration
        self._shape_key = None

    def reset(self) -> None:
        """Forget the temporal state (after a seek, a lost NIR signal, ...)."""
        self._have_prev = False
        self.noise_a = 0.0

    def _prepare(self, nir_shape, wl_shape) -> None:
        cal = self.calibration
        hw, ww = wl_shape
        hn, wn = nir_shape
        planes = () if cal is None else (("dark", cal.dark), ("flat", cal.flat))
        for name, arr in planes:
            if arr is not None and arr.shape[:2] != (hn, wn):
                where = cal.source_path or "calibration"
                raise CalibrationError(
                    f"{where}: {name} is {arr.shape[1]}x{arr.shape[0]} but the NIR frames are {wn}x{hn}")
        self._H = _homography_for(cal, (hn, wn), (hw, ww))
        dark = None if cal is None or cal.dark is None else np.asarray(cal.dark, np.float32)
        flat = None if cal is None or cal.flat is None else np.asarray(cal.flat, np.float32)
        self.valid = None
        if self._H is not None:
            flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
            size = (ww, hw)
            self.valid = cv2.warpPerspective(np.ones((hn, wn), np.uint8), self._H, size,
                                             flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP) > 0
            if dark is not None:
                dark = cv2.warpPerspective(dark, self._H, size, flags=flags)
            flat = cv2.warpPerspective(flat if flat is not None else np.ones((hn, wn), np.float32),
                                       self._H, size, flags=flags)
            flat[~self.valid] = 0.0
            self._raw_warped = np.zeros((hw, ww), np.uint16)
        #: a strided raw frame (a view of a combined frame) is copied here, not into
        #: a new array each frame
        self._raw_copy: Optional[np.ndarray] = None
        ignored = _ignored(cal, (hw, ww))
        if ignored is not None:
            # the profile's ignore_rects (on-screen text, logos): like pixels outside
            # the field of view, neither fluorescence nor background (valid False)
            # and read as 0, so they never set the display's white level
            self.valid = ~ignored if self.valid is None else self.valid & ~ignored
            flat = np.ones((hw, ww), np.float32) if flat is None else flat.copy()
            flat[ignored] = 0.0
        if flat is not None:
            with np.errstate(divide="ignore"):
                inv = np.where(flat > 0, 1.0 / np.maximum(flat, 1e-6), 0.0)
            self._inv_flat = np.ascontiguousarray(inv, dtype=np.float32)
            self._inv_flat_max = float(self._inv_flat.max()) or 1.0
        else:
            self._inv_flat = np.ones((1, ww), np.float32)  # one row, used for every row
            self._inv_flat_max = 1.0
        self._dark = _dark_plane(dark, ww, self.black_level)
        self.filt = np.zeros((hw, ww), np.float32)
        self.sat = np.zeros((hw, ww), np.uint8)
        self._sat_rows = np.zeros(hw, np.uint8)  # rows of sat holding a saturated pixel
        nchunks = max(1, min(hw, 4 * numba.get_num_threads()))
        # int64 like the sums: a reduction that casts (int32 -> int64) goes through
        # numpy's 64 KB iteration buffer, allocated and freed at every frame
        self._hist = np.zeros((nchunks, HIST_BINS), np.int64)
        self._qhist = np.zeros((nchunks, Q_BINS), np.int64)
        self._hist_sum = np.zeros(HIST_BINS, np.int64)
        self._qhist_sum = np.zeros(Q_BINS, np.int64)
        # the noise histogram's bin edges (the kernel bins by them, not by a log2 per sample)
        self._qedges = np.zeros(Q_BINS, np.float32)
        noise_bin_edges(np.float32(Q_LO), np.float32(Q_SCALE), self._qedges)
        self._sat_count = np.zeros(nchunks, np.int64)
        self._rowbuf = np.zeros((nchunks, row_scratch_bytes(ww)), np.uint8)  # fused display
        self._step = max(1, int(round(np.sqrt(hw * ww / _SAMPLES))))
        self._roi = np.array([0, hw, 0, ww], np.int64)
        self._roi_key = None
        self._qfrac = np.array([0.5])
        self._qbin = np.zeros(1)
        self._have_prev = False
        self._shape_key = (tuple(nir_shape), tuple(wl_shape))

    def _set_roi(self, roi, shape) -> None:
        key = (tuple(roi), shape)
        if key == self._roi_key:
            return
        h, w = shape
        if roi:
            x, y, rw, rh = roi
            x0, x1 = min(max(x, 0), w - 1), min(max(x + rw, 1), w)
            y0, y1 = min(max(y, 0), h - 1), min(max(y + rh, 1), h)
            # start on the sampling grid so the ROI always gets samples
            y0 = y0 - y0 % self._step
            self._roi[:] = (y0, max(y1, y0 + 1), x0, max(x1, x0 + 1))
        else:
            self._roi[:] = (0, h, 0, w)
        self._roi_key = key

    def set_black_level(self, value: Optional[float]) -> None:
        """Subtract ``value`` raw counts (None: nothing) as the dark from the next frame on,
        where the calibration has no dark frame; the same path as a dark frame (one row,
        read for every row), before the flat, gain and exposure corrections."""
        if self.calibration is not None and self.calibration.dark is not None:
            return
        self.black_level = None if value is None else float(value)
        if self._shape_key is not None:
            self._dark = _dark_plane(None, self._dark.shape[1], self.black_level)

    def gain_scale(self, gain, exposure_ms, enabled: bool = True) -> float:
        """``(gain_ref / gain) * (exposure_ref / exposure)``; 1 for unknown values."""
        if not enabled:
            return 1.0
        scale = 1.0
        if gain is not None and gain > 0:
            if self.gain_ref is None:
                self.gain_ref = float(gain)
            scale *= self.gain_ref / float(gain)
        if exposure_ms is not None and exposure_ms > 0:
            if self.exposure_ref is None:
                self.exposure_ref = float(exposure_ms)
            scale *= self.exposure_ref / float(exposure_ms)
        return scale

    # -- per frame ----------------------------------------------------------
    def process(self, raw: np.ndarray, wl_shape, *, nir_bits: int = 16, gain=None,
                exposure_ms=None, settings, median_level: float = 0.0,
                display=None, shift_px: float = 0.0) -> NormaliseOutput:
        """Normalise one raw NIR frame.

        Parameters
        ----------
        raw : (Hn, Wn) uint16 raw counts (NIR pixel coordinates)
        wl_shape : (H, W) of the WL frame: the output's shape
        nir_bits : significant bits; ``2**nir_bits - 1`` is full scale
        gain, exposure_ms : what the source reports (None = unknown)
        settings : :class:`~nirf_overlay.settings.Settings`
        median_level : current median scene level (normalised counts) for the read-noise floor
        display : :class:`~nirf_overlay.processing.composite.FusedDisplay` or None
            When given, the display pixels are written in the same sweep (with
            the display levels it carries, i.e. the previous frame's).
        shift_px : how far the tissue moved since the previous frame, px (the largest
            shift of the frame's corners; 0 = still or unknown): caps the temporal
            filter's weight (:func:`motion_weight`)

        Raises
        ------
        TypeError, ValueError
            ``raw`` of another dtype or shape (any layout is fine: a strided
            view is warped or copied once, as sources hand out views of
            combined frames)
        """
        require("raw", raw, np.uint16, ("Hn", "Wn"), contiguous=False)
        full = self._clip_count(raw, nir_bits)
        key = (raw.shape, tuple(wl_shape[:2]))
        if key != self._shape_key:
            self._prepare(raw.shape, wl_shape[:2])
        if self._H is not None:
            cv2.warpPerspective(raw, self._H, (wl_shape[1], wl_shape[0]), dst=self._raw_warped,
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
            raw = self._raw_warped
        elif not raw.flags.c_contiguous:
            if self._raw_copy is None:
                self._raw_copy = np.empty(raw.shape, np.uint16)
            np.copyto(self._raw_copy, raw)
            raw = self._raw_copy
        self.raw_wl = raw
        ns = settings.normalise
        self._set_roi(settings.levels.roi, self.filt.shape)
        gscale = self.gain_scale(gain, exposure_ms, ns.gain_normalise)
        sat_level = int(np.ceil(ns.saturation_fraction * full))
        vmax = ((1 << int(nir_bits)) - 1) * self._inv_flat_max * gscale
        hist_scale = HIST_BINS / max(vmax, 1e-6)
        self._noise_c = max(0.25 * float(median_level), 1e-3)
        raw = read_only(raw)  # one compiled version for every source (see _validate.read_only)
        normalise_pass(raw, self._dark, self._inv_flat, np.float32(gscale), sat_level, self.filt,
                       bool(self._have_prev and ns.temporal_alpha > 0),
                       np.float32(motion_weight(ns.temporal_alpha, shift_px)),
                       np.float32(ns.motion_threshold), np.float32(self.noise_a),
                       np.float32(self._noise_c), self.sat, self._sat_rows, self._sat_count,
                       self._rowbuf,
                       *(display.args if display is not None else _NO_DISPLAY))
        sample_pass(raw, self._dark, self._inv_flat, np.float32(gscale), self.filt,
                    np.float32(self._noise_c), int(self._step), self._roi, np.float32(hist_scale),
                    np.float32(Q_LO), np.float32(Q_SCALE), self._qedges, self._hist, self._qhist)
        self._have_prev = True
        self._hist.sum(axis=0, out=self._hist_sum)
        self._qhist.sum(axis=0, out=self._qhist_sum)
        self._update_noise()
        n = self.filt.size
        return NormaliseOutput(
            nir=self.filt, saturated=self.sat,
            saturated_fraction=float(self._sat_count.sum()) / n,
            hist=self._hist_sum, hist_scale=hist_scale, noise_a=self.noise_a,
            gain_scale=gscale, valid=self.valid,
        )

    def _clip_count(self, raw: np.ndarray, nir_bits: int) -> int:
        """The count a saturated pixel of this stream reads; says once (a log line and
        :attr:`bits_notice`) when a 16-bit stream's values fit a narrower camera's range.
        One max per frame, only while a 16-bit stream fits 14 bits (a wider value ends the
        watch)."""
        if int(nir_bits) == 16 and self.largest_raw <= _WIDEST_NARROW:
            self.largest_raw = max(self.largest_raw, int(raw.max()))
            self._watched += 1
            narrow = container_bits(self.largest_raw, nir_bits)
            clipped = narrow is not None and clip_count(self.largest_raw, nir_bits) < 65535
            if narrow is not None and not self.bits_notice and (
                    clipped or self._watched >= CONTAINER_FRAMES):
                self.bits_notice = (
                    f"NIR: values fit in {narrow} bits (largest {self.largest_raw} in "
                    f"{self._watched} frames) but are read as 16-bit: give --nir-bits {narrow} "
                    f"(in the open dialog: NIR bit depth) if the camera is {narrow}-bit; full "
                    "scale, saturation and display levels then fit")
                log.warning("%s", self.bits_notice)
        return clip_count(self.largest_raw, nir_bits)

    def traffic_bytes(self, nir_nbytes: int) -> int:
        """Bytes the last :meth:`process` read and wrote in its per-pixel passes:
        the homography warp's read and write when the calibration has one (of a
        raw NIR frame of ``nir_nbytes``), then the raw frame in WL pixels, the dark
        and 1/flat planes and the previous filtered frame read, the filtered
        frame written, and the saturation mask's rows that hold a saturated pixel.
        """
        warp = nir_nbytes + self.raw_wl.nbytes if self._H is not None else 0
        return int(warp + self.raw_wl.nbytes + self._dark.nbytes + self._inv_flat.nbytes
                   + 2 * self.filt.nbytes + int(self._sat_rows.sum()) * self.sat.shape[1])

    def ready_for(self, raw: np.ndarray, wl: np.ndarray) -> bool:
        """True when buffers for these frame sizes exist (so a fused display can be used)."""
        return self._shape_key == (raw.shape, tuple(wl.shape[:2])) and raw.dtype == np.uint16

    def _update_noise(self) -> None:
        percentile_from_hist(self._qhist_sum, self._qfrac, self._qbin)
        if self._qhist_sum.sum() == 0:
            return
        q_med = 2.0 ** (Q_LO + self._qbin[0] / Q_SCALE)
        a = q_med / CHI2_1_MEDIAN
        self.noise_a = a if self.noise_a == 0 else 0.8 * self.noise_a + 0.2 * a

    def noise_sigma(self, level: float) -> float:
        """Estimated noise standard deviation (normalised counts) at ``level``."""
        return float(np.sqrt(self.noise_a * (max(level, 0.0) + self._noise_c)))


def _ignored(cal, shape) -> Optional[np.ndarray]:
    """(H, W) bool, True inside the calibration's ``ignore_rects`` (WL pixels), or None."""
    rects = cal.ignore_rects if cal is not None else None
    if not rects:
        return None
    mask = np.zeros(shape, bool)
    for x, y, w, h in rects:
        mask[y:y + h, x:x + w] = True
    return mask


def warm_up() -> None:
    """Compile (or load from the cache) the normalisation kernels on a tiny frame.

    Every array reaches the kernels read-only (:func:`._validate.read_only`),
    so one frame, without and with the fused display sweep, compiles every
    version the pipeline can meet (read-only and writable inputs used to be
    six versions and most of the first start's wait), each with a uint16 and a
    float32 dark plane.
    """
    from ..settings import Settings
    from .composite import Compositor

    s = Settings()
    raw = np.full((8, 8), 100, np.uint16)
    wl = np.zeros((8, 8, 3), np.uint8)
    for fused in (False, True):
        display = (Compositor(ring=1).prepare_fused(wl, lo=0.0, hi=1.0, threshold=None, settings=s)
                   if fused else None)
        n = Normaliser()
        n.process(raw, (8, 8), nir_bits=12, settings=s, display=display)
        # and a float32 dark (a warped one, whose counts are not whole)
        n._dark = n._dark.astype(np.float32)
        n.process(raw, (8, 8), nir_bits=12, settings=s, display=display)
