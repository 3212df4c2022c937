"""A synthetic laparoscopic liver procedure with ICG fluorescence and ground truth.

The phantom renders paired white-light (WL) and near-infrared (NIR) frames of a
liver surface with colorectal liver metastases (CRLM), deterministically per
seed, together with the truth every frame should produce: rim, core and
distractor masks, the rim width in mm and the target and background
intensities.  It is what the tests, the demos, the benchmarks and the bundled
sample are made of.

What it models
--------------
*Scene* (world coordinates, a canvas larger than the view so that motion never
shows its edge; one world pixel = ``mm_per_px`` at scale 1):

- parenchyma fluorescence ``P(x)``: level ``background`` with a smooth spatial
  variation (``background_variation``) and hepatic vessels slightly darker
  (less ICG in blood 24 h after injection);
- 1-3 metastases: a wobbly hypofluorescent core (``core_level`` x P) and a
  fluorescent rim of constant perpendicular width ``w`` (1-3 mm) around it (the
  set of points within ``w`` of the core, so the width is exactly ``w``
  everywhere), covering an arc of 50-100 % of the circumference, with patchy
  intensity along the arc; each lesion is blurred by tissue scattering with a
  Gaussian whose sigma grows with the lesion's depth, and its rim amplitude is
  solved so that the *observed* (blurred) TBR equals the drawn target;
- bright ICG that is not a rim: a curved tubular bile duct (1-3 mm), a filled
  gallbladder and small bile spills, blurred as well;
- an instrument (metal shaft and jaw, entering from an edge, moving) that
  occludes both channels, and specular highlights (WL only);
- camera motion and breathing: one smooth similarity transform per frame
  (translation, rotation, scale) applied to the whole scene and to its truth.

*Camera* (view coordinates):

- NIR vignetting ``flat`` (cos^4 falloff, mean 1), exposure and gain with an
  auto-gain step (x ``gain_step_factor`` at ``gain_step_s``), shot noise from
  electrons (exact Poisson below 10 e-, the normal approximation with the same
  mean and variance above), Gaussian read noise in electrons, a dark offset
  (60-200 counts) with row, column and pixel fixed pattern and hot pixels,
  12 bits in a 16-bit container clipped at 4095 (bright bile can saturate
  after the gain step);
- WL: mild illumination falloff and a little sensor noise.

The normals for shot and read noise come from a bank drawn once per phantom
and read at random offsets per frame: each frame's noise is white, and at
each pixel independent of any other frame's, at a fraction of the cost of
fresh draws at 1080p.

Every frame is rendered independently from the seed and its index (random
access, any order, any thread): ``Phantom(p).frame(i)`` is always the same.
The scene is drawn in millimetres from one random stream per part, so a seed
is the same procedure at every frame size.

Raw NIR counts::

    raw = dark + (shot(S * flat * e/e_ref * k_e) + read) * (g/g_ref) / k_e

where ``S`` is the noise-free signal in *normalised counts* (what the pipeline
gets back after dark subtraction, flat correction and division by
``(g/g_ref) * (e/e_ref)``), ``k_e`` electrons per normalised count.

Truth definitions
-----------------
All masks are ``(H, W) bool`` in WL pixel coordinates (= NIR coordinates here)
and show only what is visible: rim, core and distractor masks exclude the
instrument.

- ``target_intensity`` T of a lesion: mean of the noise-free observed signal
  ``S`` (blurred, normalised counts) over its true rim mask;
- ``background_intensity`` B: median of ``S`` over the parenchyma ring from
  ``ring_gap_mm`` to ``ring_gap_mm + ring_width_mm`` outside the lesion's full
  (closed) rim outline, excluding every rim, core, distractor (dilated by its
  blur) and the instrument;
- ``tbr`` = T / B; frame-level T, B and tbr are rim-area weighted over the
  visible lesions (NaN when no rim is visible);
- ``rim_width_mm``: the generative perpendicular rim width; ``completeness``:
  the fraction of the circumference the rim arc covers;
- ``mm_per_px`` is the calibration value (``fov_mm / width``); breathing
  scales the view by ``Truth.scale`` (within +-1.5 %), so the true size of a
  pixel in a frame is ``mm_per_px / scale``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Optional

import cv2
import numpy as np

from .frame import FramePair

__all__ = [
    "PhantomParams",
    "Phantom",
    "Truth",
    "LesionTruth",
    "LABEL_BITS",
    "save_truth",
    "TruthWriter",
    "load_truth",
    "load_params",
    "params_from_dict",
]

# Bits of Truth.labels (one uint8 per pixel keeps a pre-rendered loop small).
RIM, CORE, DUCT, GALLBLADDER, SPILL, INSTRUMENT, SPECULAR, RING = (1 << k for k in range(8))
LABEL_BITS = {
    "rim": RIM, "core": CORE, "duct": DUCT, "gallbladder": GALLBLADDER, "spill": SPILL,
    "instrument": INSTRUMENT, "specular": SPECULAR, "ring": RING,
}
_DISTRACTOR = DUCT | GALLBLADDER | SPILL

NIR_BITS = 12
_FULL = (1 << NIR_BITS) - 1


# ---------------------------------------------------------------------------
# parameters and truth
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PhantomParams:
    """Everything that shapes a phantom procedure.  Ranges are drawn per seed.

    Geometry is in mm (converted with ``mm_per_px = fov_mm / width``), time in
    seconds, intensities in normalised counts (12-bit scale at the reference
    gain and exposure).
    """

    seed: int = 0
    size: tuple[int, int] = (1280, 720)  # (W, H) pixels
    fps: float = 30.0
    fov_mm: float = 75.0  # field of view across the width (laparoscope at 4-5 cm: 60-90 mm)
    # lesions (colorectal liver metastases)
    n_lesions: Optional[int] = None  # None: 1..3 drawn per seed
    lesion_radius_mm: tuple[float, float] = (4.0, 12.0)  # core radius
    rim_width_mm: tuple[float, float] = (1.0, 3.0)
    tbr: tuple[float, float] = (2.0, 18.0)  # observed T/B, drawn log-uniformly per lesion
    completeness: tuple[float, float] = (0.5, 1.0)  # arc fraction (drawn 1.0 with p_complete)
    p_complete: float = 0.4
    core_level: tuple[float, float] = (0.15, 0.5)  # core / parenchyma before blur
    rim_patchiness: float = 0.3  # +- relative intensity variation along the rim
    depth_mm: tuple[float, float] = (0.5, 3.5)  # NIR shows ICG only a few mm deep
    blur_sigma_mm_at_surface: float = 0.15  # scattering blur sigma = a + b * depth
    blur_sigma_mm_per_mm_depth: float = 0.1  # -> sigma 0.2..0.5 mm
    # bright ICG that is not a rim
    bile_duct: bool = True
    duct_width_mm: tuple[float, float] = (1.0, 3.0)
    duct_brightness: tuple[float, float] = (10.0, 40.0)  # x parenchyma, before blur (bile is bright at 24 h)
    gallbladder: Optional[bool] = None  # None: present with p = 0.5
    gallbladder_brightness: tuple[float, float] = (8.0, 25.0)
    n_spills: tuple[int, int] = (0, 1)
    # parenchyma
    background: float = 60.0  # normalised counts (B before vignetting, at g_ref, e_ref)
    background_variation: float = 0.12  # relative std of the smooth variation
    ring_gap_mm: float = 1.5  # truth background ring, outside the rim outline ...
    ring_width_mm: float = 4.0  # ... this wide
    # instrument and speculars
    instrument: bool = True
    instrument_width_mm: float = 8.0  # apparent shaft width
    instrument_nir_level: float = 0.05  # x background (stray excitation leak)
    n_speculars: tuple[int, int] = (8, 18)
    # motion
    motion: float = 1.0  # 0 = static camera and no breathing
    breathing_period_s: float = 4.0
    breathing_mm: float = 2.0
    drift_mm: float = 3.0
    rotation_deg: float = 3.0
    scale_amplitude: float = 0.015
    # camera
    exposure_ms: float = 16.0
    exposure_ref_ms: float = 16.0
    gain: float = 1.0  # before the auto-gain step
    gain_ref: float = 1.0
    gain_step_s: Optional[float] = 1.5  # None: no step
    gain_step_factor: float = 2.0
    electrons_per_count: float = 4.0  # at gain_ref: shot noise scale
    read_noise_e: float = 8.0  # electrons rms
    dark_offset: tuple[float, float] = (60.0, 200.0)  # counts, drawn per seed
    dark_pattern: float = 3.0  # counts rms fixed pattern (rows, columns, pixels)
    hot_pixel_fraction: float = 2e-5
    vignetting_corner: float = 0.5  # flat at the corners relative to the centre
    wl_noise: float = 1.5  # WL sensor noise, 8-bit levels rms

    def validate(self) -> "PhantomParams":
        from .errors import NirfError

        w, h = self.size
        if not (32 <= w <= 8192 and 32 <= h <= 8192):
            raise NirfError(f"phantom size {w}x{h}: each side must be 32..8192 pixels")
        if not (1.0 <= self.fps <= 480.0):
            raise NirfError(f"phantom fps {self.fps}: must be 1..480")
        if not (10.0 <= self.fov_mm <= 300.0):
            raise NirfError(f"phantom fov_mm {self.fov_mm}: must be 10..300 mm")
        if self.n_lesions is not None and not (0 <= self.n_lesions <= 15):
            raise NirfError(f"phantom n_lesions {self.n_lesions}: must be 0..15")
        lo, hi = self.tbr
        if not (1.0 < lo <= hi <= 40.0):
            raise NirfError(f"phantom tbr {self.tbr}: need 1 < lo <= hi <= 40")
        lo, hi = self.rim_width_mm
        if not (0.2 <= lo <= hi <= 10.0):
            raise NirfError(f"phantom rim_width_mm {self.rim_width_mm}: need 0.2 <= lo <= hi <= 10")
        lo, hi = self.completeness
        if not (0.1 <= lo <= hi <= 1.0):
            raise NirfError(f"phantom completeness {self.completeness}: need 0.1 <= lo <= hi <= 1")
        if self.gain_step_factor <= 0 or self.gain <= 0:
            raise NirfError("phantom gain: must be positive")
        checks = (
            ("lesion_radius_mm", self.lesion_radius_mm, 0.5, 40.0),
            ("core_level", self.core_level, 0.0, 1.0),
            ("depth_mm", self.depth_mm, 0.0, 20.0),
            ("duct_width_mm", self.duct_width_mm, 0.2, 10.0),
        )
        for name, (lo, hi), vmin, vmax in checks:
            if not (vmin <= lo <= hi <= vmax):
                raise NirfError(f"phantom {name} ({lo}, {hi}): need {vmin} <= lo <= hi <= {vmax}")
        for name, v, vmin, vmax in (
            ("background", self.background, 1.0, 2000.0),
            ("electrons_per_count", self.electrons_per_count, 0.05, 1000.0),
            ("read_noise_e", self.read_noise_e, 0.0, 1000.0),
            ("motion", self.motion, 0.0, 10.0),
            ("vignetting_corner", self.vignetting_corner, 0.05, 1.0),
            ("rim_patchiness", self.rim_patchiness, 0.0, 0.9),
            ("exposure_ms", self.exposure_ms, 0.01, 10000.0),
        ):
            if not (vmin <= v <= vmax):
                raise NirfError(f"phantom {name} {v}: must be {vmin}..{vmax}")
        return self

    @property
    def mm_per_px(self) -> float:
        return self.fov_mm / self.size[0]


@dataclass
class LesionTruth:
    """Truth for one metastasis in one frame (intensities in normalised counts)."""

    id: int
    center_xy: tuple[float, float]  # view pixels
    rim_width_mm: float
    completeness: float
    target_intensity: float  # NaN when the rim is not visible
    background_intensity: float
    tbr: float
    core_radius_mm: float = 0.0
    blur_sigma_mm: float = 0.0
    depth_mm: float = 0.0
    rim_area_px: int = 0  # visible rim pixels in this frame
    target_tbr: float = 0.0  # the drawn TBR the rim amplitude was solved for


class Truth:
    """Ground truth of one phantom frame.

    The masks are decoded on demand from ``labels`` (one uint8 per pixel, bits
    in :data:`LABEL_BITS`) so that a pre-rendered loop stays small.

    Attributes
    ----------
    labels : (H, W) uint8 bit field, WL pixel coordinates
    rim_mask, core_mask, duct_mask, gallbladder_mask, spill_mask,
    distractor_mask, instrument_mask, specular_mask, ring_mask : (H, W) bool
        Visible pixels of each kind; ``distractor_mask`` is the union of bright
        non-rim ICG (duct, gallbladder, spills); ``ring_mask`` the background
        rings B was taken over.
    mm_per_px : calibration millimetres per pixel (at breathing scale 1)
    lesions : list of :class:`LesionTruth`
    target_intensity, background_intensity, tbr : rim-area weighted over the
        visible lesions, NaN when none is visible
    gain, exposure_ms : what the camera used for this frame
    scale : the frame's breathing/zoom scale (true mm per px = mm_per_px / scale)
    """

    def __init__(self, labels, mm_per_px, lesions, gain, exposure_ms, scale=1.0):
        self.labels = labels
        self.mm_per_px = float(mm_per_px)
        self.lesions = list(lesions)
        self.gain = float(gain)
        self.exposure_ms = float(exposure_ms)
        self.scale = float(scale)
        vis = [lt for lt in self.lesions if lt.rim_area_px > 0]
        area = float(sum(lt.rim_area_px for lt in vis))
        if area > 0:
            self.target_intensity = sum(lt.target_intensity * lt.rim_area_px for lt in vis) / area
            self.background_intensity = (
                sum(lt.background_intensity * lt.rim_area_px for lt in vis) / area
            )
            self.tbr = self.target_intensity / self.background_intensity
        else:
            self.target_intensity = self.background_intensity = self.tbr = float("nan")

    def _bits(self, bits: int) -> np.ndarray:
        return (self.labels & np.uint8(bits)) != 0

    rim_mask = property(lambda self: self._bits(RIM))
    core_mask = property(lambda self: self._bits(CORE))
    duct_mask = property(lambda self: self._bits(DUCT))
    gallbladder_mask = property(lambda self: self._bits(GALLBLADDER))
    spill_mask = property(lambda self: self._bits(SPILL))
    distractor_mask = property(lambda self: self._bits(_DISTRACTOR))
    instrument_mask = property(lambda self: self._bits(INSTRUMENT))
    specular_mask = property(lambda self: self._bits(SPECULAR))
    ring_mask = property(lambda self: self._bits(RING))

    def __repr__(self) -> str:
        return (
            f"Truth(lesions={len(self.lesions)}, tbr={self.tbr:.2f}, T={self.target_intensity:.1f}, "
            f"B={self.background_intensity:.1f}, gain={self.gain:g})"
        )


@dataclass
class _Lesion:
    id: int
    center: np.ndarray  # world px
    radius_px: float
    width_mm: float
    completeness: float
    tbr: float
    core_level: float
    depth_mm: float
    sigma_mm: float
    wl_visibility: float
    bbox: tuple = ()  # world y0, y1, x0, x1 of its patch
    amplitude: float = 1.0


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _smooth_noise(rng, shape, scale_px, *, channels=None) -> np.ndarray:
    """Zero-mean, unit-std noise smooth over ``scale_px`` (cubic upsampled grid)."""
    h, w = shape
    gh, gw = int(h / scale_px) + 4, int(w / scale_px) + 4
    gshape = (gh, gw) if channels is None else (gh, gw, channels)
    grid = rng.standard_normal(gshape).astype(np.float32)
    big = cv2.resize(grid, (int(gw * scale_px), int(gh * scale_px)), interpolation=cv2.INTER_CUBIC)
    oy, ox = int(1.5 * scale_px), int(1.5 * scale_px)
    out = big[oy:oy + h, ox:ox + w]
    out = out - out.mean()
    return out / max(float(out.std()), 1e-6)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; large sigmas on a reduced grid (for smooth visual layers)."""
    if sigma <= 6:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    f = int(sigma // 3)
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / f)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _fourier_loop(rng, n_harm, amp, n=720) -> np.ndarray:
    """A smooth periodic function of angle sampled at ``n`` points, mean 0."""
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    f = np.zeros(n)
    for k in range(1, n_harm + 1):
        f += rng.normal(0, amp / k) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    return f


def _random_curve(rng, start, heading, length_px, step_px, wiggle, bend=0.0) -> np.ndarray:
    """A smooth random walk, (N, 2) float, used for vessels and the bile duct.

    ``bend`` is the total turn in radians spread evenly along the curve.
    """
    n = max(2, int(length_px / step_px))
    turn = np.cumsum(rng.normal(0, wiggle, n))
    turn = cv2.GaussianBlur(turn.reshape(1, -1).astype(np.float64), (0, 0), 3).ravel()
    ang = heading + turn + bend * np.arange(n) / n
    pts = np.empty((n, 2))
    pts[0] = start
    pts[1:, 0] = start[0] + np.cumsum(np.cos(ang[1:])) * step_px
    pts[1:, 1] = start[1] + np.cumsum(np.sin(ang[1:])) * step_px
    return pts


def _vignetting(size, corner) -> np.ndarray:
    """cos^4 falloff with the corners at ``corner`` of the centre, mean 1."""
    w, h = size
    if corner >= 1.0:  # no vignetting
        return np.ones((h, w), np.float32)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (w - 1) / 2 + 0.03 * w, (h - 1) / 2 - 0.02 * h  # optics slightly off-centre
    r = np.hypot((x - cx), (y - cy) * 1.05)
    rmax = math.hypot(w / 2, h / 2)
    # cos^4(atan(r/f)) = corner at r = rmax
    f = rmax / math.sqrt(corner ** -0.25 - 1.0)
    flat = (1.0 / (1.0 + (r / f) ** 2)) ** 2
    return (flat / flat.mean()).astype(np.float32)


# ---------------------------------------------------------------------------
# the phantom
# ---------------------------------------------------------------------------
class Phantom:
    """A deterministic synthetic procedure: ``Phantom(params).frame(i) -> FramePair``.

    Parameters
    ----------
    params : PhantomParams

    Notes
    -----
    Building the scene takes about a second at 1080p; :meth:`frame` renders
    any frame independently (random access, the same frame for the same seed
    and index), which is what the pre-rendered loop of
    :class:`~nirf_overlay.sources.phantom_source.PhantomSource` relies on.
    """

    def __init__(self, params: Optional[PhantomParams] = None, **overrides):
        params = params or PhantomParams()
        if overrides:
            params = replace(params, **overrides)
        self.params = params.validate()
        self.size = tuple(int(v) for v in params.size)
        self.mm_per_px = params.mm_per_px
        # one random stream per part of the scene, so that the same seed gives
        # the same procedure at every size (and a change in one part leaves the
        # others alone)
        def rng(part):
            return np.random.default_rng([params.seed, 7919, part])
        w, h = self.size
        self._margin = int(round(0.16 * max(w, h)))
        self._ww, self._wh = w + 2 * self._margin, h + 2 * self._margin
        self._px = 1.0 / self.mm_per_px  # px per mm
        self._build_camera(rng(1))
        self._build_motion(rng(2))
        self._build_scene(rng)
        self._build_instrument(rng(3))
        self._wl_noise = (
            rng(4).normal(0, params.wl_noise, (h + 32, w + 32, 3)).round().clip(-8, 8).astype(np.int16)
            if params.wl_noise > 0 else None
        )

    # -- public API ---------------------------------------------------------
    @property
    def fps(self) -> float:
        return float(self.params.fps)

    def dark_frame(self) -> np.ndarray:
        """(H, W) uint16: the mean dark frame (offset + fixed pattern + hot pixels)."""
        return self._dark.copy()

    def flat_field(self) -> np.ndarray:
        """(H, W) float32, mean 1: the NIR vignetting the frames are multiplied by."""
        return self._flat.copy()

    def calibration(self):
        """The :class:`~nirf_overlay.calibration.Calibration` that undoes the camera."""
        from .calibration.model import Calibration

        p = self.params
        return Calibration(
            dark=self._dark.astype(np.float32),
            flat=self._flat.copy(),
            mm_per_px=self.mm_per_px,
            frame_size=self.size,
            exposure_ref_ms=p.exposure_ref_ms,
            gain_ref=p.gain_ref,
            system=f"nirf-overlay phantom (seed {p.seed})",
            notes=f"fov {p.fov_mm} mm across {self.size[0]} px",
        )

    def gain_at(self, i: int) -> float:
        p = self.params
        if p.gain_step_s is not None and i / p.fps >= p.gain_step_s:
            return p.gain * p.gain_step_factor
        return p.gain

    def transform(self, i: int) -> np.ndarray:
        """(2, 3) float64 affine mapping world pixels to view pixels at frame ``i``."""
        return self._affine(i / self.params.fps)[0]

    def frame(self, i: int) -> FramePair:
        """Render frame ``i``: WL, raw NIR counts and the :class:`Truth`."""
        wl, nir, truth, _ = self.render(i)
        t = i / self.params.fps
        return FramePair(
            wl=wl, nir=nir, nir_bits=NIR_BITS, index=int(i), wl_time=t, nir_time=t,
            exposure_ms=self.params.exposure_ms, gain=truth.gain, truth=truth,
            meta={"phantom_seed": self.params.seed},
        )

    def signal(self, i: int) -> np.ndarray:
        """(H, W) float32 noise-free observed NIR at frame ``i``, normalised counts."""
        return self._view_signal(i)[0]

    def render(self, i: int):
        """``(wl, nir, truth, signal)`` of frame ``i`` (signal: noise-free, normalised)."""
        p = self.params
        signal, labels, ids, inst, scale, M, geo = self._view_signal(i)
        truth = self._truth(i, signal, labels, ids, scale, M)
        nir = self._camera_nir(i, signal, truth.gain)
        wl = self._wl(i, M, inst, geo, labels)
        truth.labels = labels
        return wl, nir, truth, signal

    # -- camera --------------------------------------------------------------
    def _build_camera(self, rng):
        p = self.params
        w, h = self.size
        self._flat = _vignetting(self.size, p.vignetting_corner)
        off = rng.uniform(*p.dark_offset)
        rows = rng.normal(0, p.dark_pattern * 0.5, (h, 1))
        cols = rng.normal(0, p.dark_pattern * 0.7, (1, w))
        pix = rng.normal(0, p.dark_pattern * 0.5, (h, w))
        dark = off + rows + cols + pix
        n_hot = int(round(p.hot_pixel_fraction * w * h))
        if n_hot:
            dark.flat[rng.choice(w * h, n_hot, replace=False)] += rng.uniform(50, 400, n_hot)
        self._dark = np.clip(np.round(dark), 0, _FULL).astype(np.uint16)
        self._dark_f = self._dark.astype(np.float32)
        self._flat_e = self._flat * np.float32(p.exposure_ms / p.exposure_ref_ms * p.electrons_per_count)
        self._bank = rng.standard_normal(2 * w * h + 4099, dtype=np.float32)
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.hypot((x - w / 2) / (w / 2), (y - h / 2) / (h / 2))
        illum = (1.05 - 0.22 * r ** 2).clip(0.55, 1.05)
        # fixed point (x200) in 4 channels, alpha kept: one integer multiply per frame
        self._wl_illum4 = np.empty((h, w, 4), np.uint8)
        self._wl_illum4[..., :3] = np.round(illum * 200)[..., None]
        self._wl_illum4[..., 3] = 200

    def _camera_nir(self, i, signal, gain) -> np.ndarray:
        p = self.params
        rng = np.random.default_rng([p.seed, 104729, int(i)])
        n = signal.size
        o_shot, o_read = rng.integers(0, self._bank.size - n, 2)
        z_shot = self._bank[o_shot:o_shot + n].reshape(signal.shape)
        z_read = self._bank[o_read:o_read + n].reshape(signal.shape)
        electrons = signal * self._flat_e
        # Shot noise: exact Poisson below 10 e-, the normal approximation above
        # (same mean and variance; skewness 1/sqrt(mean) <= 0.32).  The normals
        # come from a bank drawn once per phantom, read at random offsets per
        # frame: every frame's noise is white and independent of the last one's
        # at each pixel, at a fraction of the cost of fresh draws at 1080p.
        noisy = np.sqrt(electrons)
        noisy *= z_shot
        noisy += electrons
        low = np.flatnonzero(electrons < 10)
        if low.size:
            noisy.flat[low] = rng.poisson(electrons.flat[low]).astype(np.float32)
        noisy += z_read * np.float32(p.read_noise_e)
        noisy *= np.float32(gain / p.gain_ref / p.electrons_per_count)
        noisy += self._dark_f
        np.rint(noisy, out=noisy)
        np.clip(noisy, 0, _FULL, out=noisy)
        return noisy.astype(np.uint16)

    # -- motion --------------------------------------------------------------
    def _build_motion(self, rng):
        self._mo = {
            "br_dir": rng.uniform(0, 2 * np.pi),
            "br_phase": rng.uniform(0, 2 * np.pi),
            "dr_per": rng.uniform(6, 12, 2),
            "dr_phase": rng.uniform(0, 2 * np.pi, 2),
            "rot_per": rng.uniform(8, 14),
            "rot_phase": rng.uniform(0, 2 * np.pi),
            "sc_phase": rng.uniform(0, 2 * np.pi),
        }

    def _affine(self, t: float):
        p, m = self.params, self._mo
        k = p.motion
        br = math.sin(2 * np.pi * t / p.breathing_period_s + m["br_phase"])
        dx = k * (p.breathing_mm * br * math.cos(m["br_dir"])
                  + p.drift_mm * math.sin(2 * np.pi * t / m["dr_per"][0] + m["dr_phase"][0]))
        dy = k * (p.breathing_mm * br * math.sin(m["br_dir"])
                  + p.drift_mm * math.sin(2 * np.pi * t / m["dr_per"][1] + m["dr_phase"][1]))
        rot = k * p.rotation_deg * math.sin(2 * np.pi * t / m["rot_per"] + m["rot_phase"])
        scale = 1.0 + k * p.scale_amplitude * (0.6 * br + 0.4 * math.sin(2 * np.pi * t / 9.0 + m["sc_phase"]))
        w, h = self.size
        cw = ((self._ww - 1) / 2, (self._wh - 1) / 2)
        M = cv2.getRotationMatrix2D(cw, rot, scale)  # rotate+scale about the world centre
        M[0, 2] += (w - 1) / 2 - cw[0] + dx * self._px
        M[1, 2] += (h - 1) / 2 - cw[1] + dy * self._px
        return M, scale

    # -- scene ---------------------------------------------------------------
    def _view_rect_world(self, inset_mm):
        """World rectangle always in view despite motion, shrunk by ``inset_mm``."""
        p = self.params
        slack = p.motion * (p.breathing_mm + p.drift_mm) * self._px
        w, h = self.size
        half_diag = math.hypot(w, h) / 2
        rot = math.radians(p.motion * p.rotation_deg)
        slack += half_diag * math.sin(rot) * 0.6 + p.motion * p.scale_amplitude * half_diag
        ins = inset_mm * self._px + slack
        return (self._margin + ins, self._margin + w - ins, self._margin + ins, self._margin + h - ins)

    def _build_scene(self, streams):
        p = self.params
        rng = streams(10)
        W, H = self._ww, self._wh
        px = self._px
        # parenchyma P(x)
        var = _smooth_noise(rng, (H, W), 18 * px) * p.background_variation
        parench = (p.background * (1.0 + var)).clip(0.3 * p.background).astype(np.float32)
        # vessels
        vessel = np.zeros((H, W), np.float32)
        for _ in range(rng.integers(5, 10)):
            start = np.array([rng.uniform(0, W), rng.uniform(0, H)])
            pts = _random_curve(rng, start, rng.uniform(0, 2 * np.pi), rng.uniform(30, 80) * px,
                                1.0 * px, 0.08)
            thick = max(1, int(round(rng.uniform(0.8, 2.5) * px)))
            cv2.polylines(vessel, [np.round(pts).astype(np.int32)], False, 1.0, thick, cv2.LINE_AA)
        vessel = cv2.GaussianBlur(vessel, (0, 0), 0.3 * px)
        self._vessel = vessel
        nir = parench * (1.0 - 0.15 * vessel)
        labels = np.zeros((H, W), np.uint8)
        ids = np.zeros((H, W), np.uint8)  # low nibble: rim of lesion k+1; high: its ring
        excl = np.zeros((H, W), np.uint8)  # keep-out for the background rings

        self._lesions = self._place_lesions(streams(11))
        for les in self._lesions:
            self._draw_lesion(streams(100 + les.id), les, nir, parench, labels, ids)
        self._draw_distractors(streams(12), nir, parench, labels, excl)
        self._draw_rings(labels, ids, excl, nir)
        self._solve_amplitudes(nir, ids)
        self._nir_world = nir
        self._labels_world = labels
        self._ids_world = ids
        self._build_wl_world(streams(13), labels)
        self._build_speculars(streams(14))

    def _place_lesions(self, rng):
        p = self.params
        n = p.n_lesions if p.n_lesions is not None else int(rng.integers(1, 4))
        px = self._px
        x0, x1, y0, y1 = self._view_rect_world(1.0)
        placed = []
        radii = sorted((rng.uniform(*p.lesion_radius_mm) for _ in range(n)), reverse=True)
        for k, r_mm in enumerate(radii):
            width = rng.uniform(*p.rim_width_mm)
            for attempt in range(400):
                if attempt and attempt % 50 == 0:
                    r_mm = max(p.lesion_radius_mm[0] * 0.5, r_mm * 0.85)
                reach = (r_mm * 1.15 + width) * px
                if x1 - x0 < 2 * reach or y1 - y0 < 2 * reach:
                    continue
                c = np.array([rng.uniform(x0 + reach, x1 - reach), rng.uniform(y0 + reach, y1 - reach)])
                ok = all(
                    np.hypot(*(c - q.center)) > reach + (q.radius_px * 1.15 + q.width_mm * px) + 3.0 * px
                    for q in placed
                )
                if ok:
                    break
            else:
                continue
            complete = rng.uniform() < p.p_complete
            depth = rng.uniform(*p.depth_mm)
            placed.append(_Lesion(
                id=len(placed) + 1, center=c, radius_px=r_mm * px, width_mm=width,
                completeness=1.0 if complete else rng.uniform(*p.completeness),
                tbr=float(math.exp(rng.uniform(math.log(p.tbr[0]), math.log(p.tbr[1])))),
                core_level=rng.uniform(*p.core_level), depth_mm=depth,
                sigma_mm=p.blur_sigma_mm_at_surface + p.blur_sigma_mm_per_mm_depth * depth,
                wl_visibility=rng.uniform(0.0, 0.3),
            ))
        return placed

    def _draw_lesion(self, rng, les, nir, parench, labels, ids):
        p = self.params
        px = self._px
        w_px = les.width_mm * px
        sig = les.sigma_mm * px
        reach = les.radius_px * 1.3 + w_px + (p.ring_gap_mm + p.ring_width_mm) * px + 4 * sig + 4
        cx, cy = les.center
        y0, y1 = int(max(0, cy - reach)), int(min(self._wh, cy + reach + 1))
        x0, x1 = int(max(0, cx - reach)), int(min(self._ww, cx + reach + 1))
        les.bbox = (y0, y1, x0, x1)
        hh, ww = y1 - y0, x1 - x0
        # wobbly core outline
        n = 720
        th = np.linspace(0, 2 * np.pi, n, endpoint=False)
        r = les.radius_px * (1.0 + _fourier_loop(rng, 6, 0.09))
        poly = np.stack([cx - x0 + r * np.cos(th), cy - y0 + r * np.sin(th)], 1)
        core = np.zeros((hh, ww), np.uint8)
        cv2.fillPoly(core, [np.round(poly * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
        # rim = points within w of the core: exact constant perpendicular width
        dist = cv2.distanceTransform(1 - core, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        ang = np.arctan2(yy - cy, xx - cx)
        a0 = rng.uniform(-np.pi, np.pi)
        dang = np.abs((ang - a0 + np.pi) % (2 * np.pi) - np.pi)  # 0..pi from the arc centre
        half = les.completeness * np.pi
        in_arc = dang <= half if les.completeness < 1.0 else np.ones_like(dang, bool)
        ring_full = (dist > 0) & (dist <= w_px)
        rim = ring_full & in_arc
        # patchy intensity along the arc (mean 1) with soft fading at the arc ends
        patch_th = 1.0 + _fourier_loop(rng, 6, 1.0)
        patch_th = patch_th - patch_th.mean()
        patch_th = 1.0 + p.rim_patchiness * patch_th / max(np.abs(patch_th).max(), 1e-6)
        idx = ((ang + np.pi) / (2 * np.pi) * n).astype(np.int32) % n
        patch = patch_th[idx].astype(np.float32)
        patch *= 1.0 + 0.08 * _smooth_noise(rng, (hh, ww), 0.7 * px)
        if les.completeness < 1.0:
            taper = np.clip((half - dang) / math.radians(10), 0, 1)
            patch *= (0.6 + 0.4 * taper).astype(np.float32)
        corem = core.astype(bool)
        core_tex = (les.core_level * (1.0 + 0.15 * _smooth_noise(rng, (hh, ww), 1.5 * px))).clip(0.05)
        # deviation from parenchyma, before blur: d0 (core/rim cut-outs) + a * d1 (rim light)
        d0 = np.where(corem, core_tex - 1.0, 0.0).astype(np.float32)
        d0[rim] = -1.0
        d1 = np.where(rim, patch, 0).astype(np.float32)
        d0b = cv2.GaussianBlur(d0, (0, 0), sig)
        d1b = cv2.GaussianBlur(d1, (0, 0), sig)
        P = parench[y0:y1, x0:x1] * (1.0 - 0.15 * self._vessel[y0:y1, x0:x1])
        # the dark core and the rim's cut-out now; the rim light once the
        # background rings are known (see _solve_amplitudes)
        nir[y0:y1, x0:x1] += P * d0b
        les._rim_light = P * d1b
        les._rim = rim
        lab = labels[y0:y1, x0:x1]
        lab[corem] |= CORE
        lab[rim] |= RIM
        ids[y0:y1, x0:x1][rim] = les.id
        les._ring_full = ring_full | corem  # the closed lesion outline, for the ring
        les._dist = dist
        les._wl_core = _blur(core.astype(np.float32), 0.8 * px) * les.wl_visibility

    def _draw_distractors(self, rng, nir, parench, labels, excl):
        p = self.params
        px = self._px
        W, H = self._ww, self._wh
        keep_out = np.zeros((H, W), np.uint8)
        for les in self._lesions:  # distractors stay >= 2.5 mm off every rim outline
            y0, y1, x0, x1 = les.bbox
            keep_out[y0:y1, x0:x1] |= (les._dist <= (les.width_mm + 2.5) * px).astype(np.uint8)
        x0, x1, y0, y1 = self._view_rect_world(3.0)
        add = np.zeros((H, W), np.float32)

        def commit(mask, prof, sigma_mm, brightness, bit):
            sig = sigma_mm * px
            # blur only around the object: the rest of the world stays untouched
            ys, xs = np.nonzero(mask)
            pad = int(4 * sig) + 2
            y0_, y1_ = max(ys.min() - pad, 0), min(ys.max() + pad + 1, H)
            x0_, x1_ = max(xs.min() - pad, 0), min(xs.max() + pad + 1, W)
            add[y0_:y1_, x0_:x1_] += cv2.GaussianBlur(
                prof[y0_:y1_, x0_:x1_] * np.float32(brightness), (0, 0), sig)
            labels[mask.astype(bool)] |= bit
            # keep the background rings clear of its blurred glow (3 sigma); a distance
            # transform is linear in the image where a big dilation kernel is not
            grow = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 3) <= 3 * sig
            excl[grow] = 1
            keep_out[grow] = 1

        def border_point(out_mm):
            """A random point on the visible rectangle's border, pushed outwards."""
            side = rng.integers(4)
            o = out_mm * px
            if side == 0:
                return np.array([x0 - o, rng.uniform(y0, y1)]), 0.0
            if side == 1:
                return np.array([x1 + o, rng.uniform(y0, y1)]), np.pi
            if side == 2:
                return np.array([rng.uniform(x0, x1), y0 - o]), np.pi / 2
            return np.array([rng.uniform(x0, x1), y1 + o]), -np.pi / 2

        want_gb = p.gallbladder if p.gallbladder is not None else bool(rng.uniform() < 0.5)
        if want_gb:
            for _ in range(60):
                c, _h = border_point(rng.uniform(2, 8))
                mask = np.zeros((H, W), np.uint8)
                axes = (int(rng.uniform(14, 22) * px), int(rng.uniform(8, 12) * px))
                cv2.ellipse(mask, (int(c[0]), int(c[1])), axes, rng.uniform(0, 180), 0, 360, 1, -1)
                if not (mask & keep_out).any():
                    tex = 1.0 + 0.1 * _smooth_noise(rng, (H, W), 4 * px)
                    commit(mask, (mask * tex * p.background).astype(np.float32), 1.0,
                           rng.uniform(*p.gallbladder_brightness), GALLBLADDER)
                    break
        if p.bile_duct:
            wd = rng.uniform(*p.duct_width_mm) * px
            sigma = rng.uniform(0.4, 0.8)
            clear = cv2.distanceTransform(1 - keep_out, cv2.DIST_L2, 3) <= wd / 2 + px
            best = None
            for attempt in range(80):
                # from the border of the view (or anywhere, later on), gently curved,
                # cut where it would run into a lesion: a duct diving deeper
                if attempt < 40:
                    start, heading = border_point(rng.uniform(0, 5))
                    heading += rng.uniform(-0.7, 0.7)
                else:
                    start = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
                    heading = rng.uniform(0, 2 * np.pi)
                pts = _random_curve(rng, start, heading, rng.uniform(30, 70) * px, 0.5 * px, 0.02,
                                    bend=rng.uniform(0.2, 0.8) * rng.choice([-1, 1]))
                xi = np.clip(np.round(pts[:, 0]).astype(int), 0, W - 1)
                yi = np.clip(np.round(pts[:, 1]).astype(int), 0, H - 1)
                hit = np.nonzero(clear[yi, xi])[0]
                keep = pts[: hit[0]] if hit.size else pts
                inside = ((keep[:, 0] > x0) & (keep[:, 0] < x1) & (keep[:, 1] > y0) & (keep[:, 1] < y1)).sum()
                if best is None or inside > best[1]:
                    best = (keep, inside)
                if inside * 0.5 >= 25:  # steps are 0.5 mm: 25 mm visible is plenty
                    break
            if best is not None and best[1] * 0.5 >= 8:
                mask = np.zeros((H, W), np.uint8)
                cv2.polylines(mask, [np.round(best[0]).astype(np.int32)], False, 1, max(1, int(round(wd))))
                d = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
                rad = max(wd / 2, 0.5)
                # a tube: path length through a cylinder ~ sqrt(1 - (x/r)^2)
                prof = np.sqrt(np.clip(1 - (1 - np.minimum(d / rad, 1)) ** 2, 0, 1)) * p.background
                commit(mask, prof.astype(np.float32), sigma, rng.uniform(*p.duct_brightness), DUCT)
        for _ in range(int(rng.integers(p.n_spills[0], p.n_spills[1] + 1))):
            for _try in range(40):
                mask = np.zeros((H, W), np.uint8)
                c = (int(rng.uniform(x0, x1)), int(rng.uniform(y0, y1)))
                axes = (int(rng.uniform(1.5, 3.5) * px), int(rng.uniform(1.0, 2.5) * px))
                cv2.ellipse(mask, c, axes, rng.uniform(0, 180), 0, 360, 1, -1)
                if not (mask & keep_out).any():
                    commit(mask, (mask * p.background).astype(np.float32), 0.3, rng.uniform(4, 10), SPILL)
                    break
        nir += add

    def _draw_rings(self, labels, ids, excl, nir):
        p = self.params
        px = self._px
        busy = (labels & (RIM | CORE | _DISTRACTOR)) != 0
        for les in self._lesions:
            y0, y1, x0, x1 = les.bbox
            w_px = les.width_mm * px
            d = les._dist
            ring = (d > w_px + p.ring_gap_mm * px) & (d <= w_px + (p.ring_gap_mm + p.ring_width_mm) * px)
            # other lesions' outlines plus their gap stay out of this ring
            for q in self._lesions:
                if q is les:
                    continue
                qy0, qy1, qx0, qx1 = q.bbox
                oy0, oy1, ox0, ox1 = max(y0, qy0), min(y1, qy1), max(x0, qx0), min(x1, qx1)
                if oy0 < oy1 and ox0 < ox1:
                    near = q._dist[oy0 - qy0:oy1 - qy0, ox0 - qx0:ox1 - qx0] <= q.width_mm * px + p.ring_gap_mm * px
                    ring[oy0 - y0:oy1 - y0, ox0 - x0:ox1 - x0] &= ~near
            ring &= ~busy[y0:y1, x0:x1] & ~excl[y0:y1, x0:x1].astype(bool)
            labels[y0:y1, x0:x1][ring] |= RING
            sub = ids[y0:y1, x0:x1]
            sub[ring] = (sub[ring] & 15) | np.uint8(les.id << 4)

    def _solve_amplitudes(self, nir, ids):
        """Scale each rim's light so that its observed T / B equals the drawn TBR.

        T and B are measured exactly as the truth measures them (mean over the
        rim, median over the final background ring); B barely depends on the
        amplitude (the ring starts past the blur), so a few fixed-point steps
        converge.
        """
        for les in self._lesions:
            y0, y1, x0, x1 = les.bbox
            base = nir[y0:y1, x0:x1]
            ring = (ids[y0:y1, x0:x1] >> 4) == les.id
            light = les._rim_light
            if not les._rim.any():  # a rim thinner than a pixel at a tiny frame size
                les.amplitude = 0.0
                del les._rim_light
                continue
            T0, T1 = float(base[les._rim].mean()), float(light[les._rim].mean())
            a = 1.0
            for _ in range(4):
                B = float(np.median(base[ring] + a * light[ring])) if ring.any() else self.params.background
                a = max((les.tbr * B - T0) / max(T1, 1e-6), 0.0)
            les.amplitude = a
            base += a * light
            del les._rim_light

    def _build_wl_world(self, rng, labels):
        """The liver's colour texture.  Built on a grid of >= 8 px per mm and
        upsampled: nothing in it is finer, and it is the slowest part of the build."""
        f = max(1, int(self._px // 8))
        px = self._px / f
        H, W = self._wh, self._ww
        h, w = -(-H // f), -(-W // f)

        def small(img):
            return img if f == 1 else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)

        base = np.array([42, 52, 128], np.float32)  # BGR, liver reddish brown
        mott = _smooth_noise(rng, (h, w), 10 * px)
        hue = _smooth_noise(rng, (h, w), 16 * px)
        fine = _smooth_noise(rng, (h, w), 0.9 * px)
        wl = np.empty((h, w, 3), np.float32)
        bright = 1.0 + 0.14 * mott + 0.05 * fine
        wl[..., 0] = base[0] * bright * (1 - 0.08 * hue)
        wl[..., 1] = base[1] * bright * (1 + 0.05 * hue)
        wl[..., 2] = base[2] * bright * (1 + 0.06 * hue)
        v = small(self._vessel)[..., None]
        wl *= 1.0 - v * np.array([0.25, 0.45, 0.35], np.float32)
        pale = np.zeros((H, W), np.float32)
        for les in self._lesions:  # faint pale tumour under the capsule
            y0, y1, x0, x1 = les.bbox
            pale[y0:y1, x0:x1] = np.maximum(pale[y0:y1, x0:x1], les._wl_core)
        a = small(pale)[..., None]
        wl = wl * (1 - a) + np.array([120, 150, 190], np.float32) * a
        gb = _blur(small(((labels & GALLBLADDER) != 0).astype(np.float32)), 1.5 * px)[..., None]
        wl = wl * (1 - 0.7 * gb) + np.array([95, 125, 100], np.float32) * 0.7 * gb
        duct = _blur(small(((labels & DUCT) != 0).astype(np.float32)), 0.8 * px)[..., None]
        wl = wl * (1 - 0.15 * duct) + np.array([90, 150, 170], np.float32) * 0.15 * duct
        wl8 = np.clip(wl, 0, 255).astype(np.uint8)
        if f > 1:
            wl8 = cv2.resize(wl8, (W, H), interpolation=cv2.INTER_LINEAR)
        self._wl_world = wl8

    def _build_speculars(self, rng):
        p = self.params
        px = self._px
        H, W = self._wh, self._ww
        spec = np.zeros((H, W), np.float32)
        x0, x1, y0, y1 = self._margin, self._margin + self.size[0], self._margin, self.size[1] + self._margin
        for _ in range(int(rng.integers(p.n_speculars[0], p.n_speculars[1] + 1))):
            # a glint: a few small overlapping ellipses along a short streak
            c = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
            ang = rng.uniform(0, 180)
            for _k in range(int(rng.integers(1, 4))):
                off = rng.normal(0, 0.5 * px, 2)
                a = max(1, int(rng.uniform(0.2, 1.2) * px))
                b = max(1, int(a * rng.uniform(0.25, 0.8)))
                cv2.ellipse(spec, (int(c[0] + off[0]), int(c[1] + off[1])), (a, b),
                            ang + rng.normal(0, 15), 0, 360, 1.0, -1, cv2.LINE_AA)
        spec = cv2.GaussianBlur(spec, (0, 0), 0.25 * px)
        spec = np.clip(spec * 1.6 * 255, 0, 255).astype(np.uint8)
        # WL (BGR) and the glints' alpha in one 4-channel image: one warp per frame
        self._wl_world = np.dstack([self._wl_world, spec])
        n_lab, _lab, st, _c = cv2.connectedComponentsWithStats((spec > 0).astype(np.uint8))
        self._spec_boxes = [tuple(int(v) for v in st[k, :4]) for k in range(1, n_lab)]

    # -- instrument ------------------------------------------------------------
    def _build_instrument(self, rng):
        p = self.params
        w, h = self.size
        side = int(rng.integers(3))  # 0 right, 1 left, 2 bottom
        self._inst = {
            "side": side,
            "base": rng.uniform(0.25, 0.75),
            "tip": np.array([rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h]),
            "amp": np.array([rng.uniform(0.1, 0.25) * w, rng.uniform(0.1, 0.2) * h]),
            "per": rng.uniform(5, 9, 2),
            "ph": rng.uniform(0, 2 * np.pi, 3),
        }

    def _instrument(self, t):
        """Instrument mask and shading in view coordinates at time ``t``."""
        p = self.params
        w, h = self.size
        s = self._inst
        tip = s["tip"] + s["amp"] * np.sin(2 * np.pi * t / s["per"] + s["ph"][:2])
        if s["side"] == 0:
            entry = np.array([w * 1.3, h * s["base"]])
        elif s["side"] == 1:
            entry = np.array([-0.3 * w, h * s["base"]])
        else:
            entry = np.array([w * s["base"], h * 1.3])
        axis = tip - entry
        L = float(np.hypot(*axis))
        u = axis / L
        n = np.array([-u[1], u[0]])
        hw = p.instrument_width_mm * self._px / 2
        shaft = np.array([entry + n * hw, tip + n * hw, tip - n * hw, entry - n * hw])
        open_ang = math.radians(12 + 12 * math.sin(2 * np.pi * t / 1.7 + s["ph"][2]))
        jaw_len = 2.4 * hw
        jaws = []
        for sgn in (1, -1):  # two tapered jaws hinged at the tip, opening and closing
            d = u * math.cos(open_ang) + sgn * n * math.sin(open_ang)
            jaws.append(np.array([tip + sgn * n * hw * 0.85, tip + sgn * n * hw * 0.05,
                                  tip + sgn * n * hw * 0.3 + d * jaw_len]))
        mask = np.zeros((h, w), np.uint8)
        polys = [shaft] + jaws
        cv2.fillPoly(mask, [np.round(q * 16).astype(np.int32) for q in polys], 1, cv2.LINE_8, shift=4)
        allp = np.concatenate(polys)
        box = (max(int(allp[:, 0].min()) - 1, 0), max(int(allp[:, 1].min()) - 1, 0),
               min(int(allp[:, 0].max()) + 2, w), min(int(allp[:, 1].max()) + 2, h))
        return mask.view(bool), (tip, u, n, hw, box)

    # -- per frame -----------------------------------------------------------------
    def _view_signal(self, i):
        """Noise-free normalised NIR in view coordinates plus the warped labels."""
        p = self.params
        t = i / p.fps
        M, scale = self._affine(t)
        w, h = self.size
        sig = cv2.warpAffine(self._nir_world, M, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
        labels = cv2.warpAffine(self._labels_world, M, (w, h), flags=cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        ids = cv2.warpAffine(self._ids_world, M, (w, h), flags=cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if p.instrument:
            inst, geo = self._instrument(t)
            sig[inst] = np.float32(p.instrument_nir_level * p.background)
            labels[inst] = INSTRUMENT  # hides whatever is behind it
            ids[inst] = 0
        else:
            inst, geo = np.zeros((h, w), bool), None
        return sig, labels, ids, inst, scale, M, geo

    def _truth(self, i, signal, labels, ids, scale, M):
        p = self.params
        n = len(self._lesions)
        nz = np.flatnonzero(ids)  # rims and rings are a small part of the frame
        idv = ids.ravel()[nz]
        sigv = signal.ravel()[nz]
        rim_id = idv & np.uint8(15)
        ring_id = idv >> np.uint8(4)
        cnt = np.bincount(rim_id, minlength=n + 1)
        tot = np.bincount(rim_id, weights=sigv, minlength=n + 1)
        lesions = []
        for les in self._lesions:
            k = les.id
            c = M @ np.array([les.center[0], les.center[1], 1.0])
            area = int(cnt[k]) if k < len(cnt) else 0
            T = float(tot[k] / area) if area else float("nan")
            ring_vals = sigv[ring_id == k]
            B = float(np.median(ring_vals)) if ring_vals.size else float("nan")
            lesions.append(LesionTruth(
                id=k, center_xy=(float(c[0]), float(c[1])), rim_width_mm=float(les.width_mm),
                completeness=float(les.completeness), target_intensity=T,
                background_intensity=B, tbr=T / B if area and ring_vals.size else float("nan"),
                core_radius_mm=float(les.radius_px * self.mm_per_px),
                blur_sigma_mm=float(les.sigma_mm), depth_mm=float(les.depth_mm),
                rim_area_px=area if ring_vals.size else 0, target_tbr=float(les.tbr),
            ))
        return Truth(labels, self.mm_per_px, lesions, self.gain_at(i), p.exposure_ms, scale)

    def _wl(self, i, M, inst, geo, labels):
        p = self.params
        w, h = self.size
        wl4 = cv2.warpAffine(self._wl_world, M, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
        # whole 4-channel images only: a strided 3-channel view would cost a copy
        cv2.multiply(wl4, self._wl_illum4, dst=wl4, scale=1.0 / 200)
        wl = cv2.cvtColor(wl4, cv2.COLOR_BGRA2BGR)
        if self._wl_noise is not None:
            rng = np.random.default_rng([p.seed, 15485863, int(i)])
            oy, ox = rng.integers(0, 32, 2)
            wl = cv2.add(wl, self._wl_noise[oy:oy + h, ox:ox + w], dtype=cv2.CV_8U)
        # glints: saturate towards white where the (warped) alpha says so; only
        # inside each glint's box, so the cost does not grow with the frame
        for bx, by, bw, bh in self._spec_boxes:
            corners = np.array([[bx, by, 1], [bx + bw, by, 1], [bx, by + bh, 1], [bx + bw, by + bh, 1]], float)
            v = corners @ M.T
            x0, y0 = np.floor(v.min(0)).astype(int) - 1
            x1, y1 = np.ceil(v.max(0)).astype(int) + 2
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            if x0 >= x1 or y0 >= y1:
                continue
            a = wl4[y0:y1, x0:x1, 3]
            a = np.where(inst[y0:y1, x0:x1], 0, a)
            af = a.astype(np.float32)[..., None] / np.float32(255)
            sub = wl[y0:y1, x0:x1]
            sub[:] = (sub * (1 - af) + 255 * af).astype(np.uint8)
            labels[y0:y1, x0:x1][a >= 250] |= SPECULAR
        if geo is not None:
            tip, u, n, hw, (x0, y0, x1, y1) = geo
            sub_inst = inst[y0:y1, x0:x1]
            iy, ix = np.nonzero(sub_inst)
            iy += y0
            ix += x0
            lat = ((ix - tip[0]) * n[0] + (iy - tip[1]) * n[1]) / hw  # -1..1 across the shaft
            lat = np.clip(lat, -1.0, 1.0)
            shade = 70 + 120 * np.sqrt(1 - lat ** 2) + 120 * np.exp(-((lat - 0.35) / 0.12) ** 2)
            ahead = ((ix - tip[0]) * u[0] + (iy - tip[1]) * u[1]) > 0  # jaw: darker steel
            shade = np.where(ahead, shade * 0.7, shade)
            g = np.clip(shade, 0, 255).astype(np.uint8)
            wl[iy, ix, 0] = np.minimum(g.astype(np.int32) + 6, 255)
            wl[iy, ix, 1] = g
            wl[iy, ix, 2] = g
        return wl


# ---------------------------------------------------------------------------
# truth sidecar (for accuracy evaluation of recordings)
# ---------------------------------------------------------------------------
_LESION_FIELDS = ("id", "center_x", "center_y", "rim_width_mm", "completeness", "target_intensity",
                  "background_intensity", "tbr", "core_radius_mm", "blur_sigma_mm", "depth_mm",
                  "rim_area_px", "target_tbr")


class TruthWriter:
    """Stream per-frame truth into a compressed ``.npz`` without holding the masks.

    The label stack is written frame by frame into the archive's
    ``labels.npy`` member (deflated), so a long 1080p recording needs one
    frame of mask memory; the small per-frame numbers are kept and written at
    :meth:`close`.  The result is an ordinary ``.npz`` (see :func:`save_truth`).
    """

    def __init__(self, path, n_frames: int, size, *, params: Optional[PhantomParams] = None):
        import zipfile

        w, h = size
        self.path = str(path)
        self.n = int(n_frames)
        self.params = params
        self._zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        self._member = self._zip.open(self._entry("labels.npy"), "w", force_zip64=True)
        np.lib.format.write_array_header_1_0(
            self._member, {"descr": "|u1", "fortran_order": False, "shape": (self.n, h, w)})
        self._shape = (h, w)
        self._truths: list = []

    @staticmethod
    def _entry(name):
        """A member with a fixed date, so that the same truth gives the same bytes."""
        import zipfile

        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        return info

    def add(self, truth: Truth) -> None:
        if len(self._truths) >= self.n:
            raise ValueError(f"{self.path}: more than the {self.n} frames announced")
        if truth.labels.shape != self._shape:
            raise ValueError(f"{self.path}: labels {truth.labels.shape} != {self._shape}")
        self._member.write(np.ascontiguousarray(truth.labels, np.uint8).tobytes())
        # keep the numbers, drop the masks
        self._truths.append(Truth(None, truth.mm_per_px, truth.lesions, truth.gain,
                                  truth.exposure_ms, truth.scale))

    def close(self) -> None:
        import io
        import json

        if self._zip is None:
            return
        if len(self._truths) != self.n:
            raise ValueError(f"{self.path}: {len(self._truths)} frames written, {self.n} announced")
        self._member.close()
        truths = self._truths
        n = len(truths)
        L = max((len(t.lesions) for t in truths), default=0)
        out = {
            "mm_per_px": np.float64(truths[0].mm_per_px if truths else float("nan")),
            "label_bits": np.array(json.dumps(LABEL_BITS)),
            "params": np.array(json.dumps(asdict(self.params) if self.params else {})),
        }
        for name in ("target_intensity", "background_intensity", "tbr", "gain", "exposure_ms", "scale"):
            out[name] = np.array([getattr(t, name) for t in truths], np.float64)
        for f in _LESION_FIELDS:
            arr = np.full((n, L), np.nan)
            for i, t in enumerate(truths):
                for j, lt in enumerate(t.lesions):
                    if f == "center_x":
                        arr[i, j] = lt.center_xy[0]
                    elif f == "center_y":
                        arr[i, j] = lt.center_xy[1]
                    else:
                        arr[i, j] = getattr(lt, f)
            out[f"lesion_{f}"] = arr
        for name, arr in out.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
            self._zip.writestr(self._entry(name + ".npy"), buf.getvalue())
        self._zip.close()
        self._zip = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        elif self._zip is not None:
            self._member.close()
            self._zip.close()
            self._zip = None


def save_truth(path, truths, *, params: Optional[PhantomParams] = None) -> None:
    """Write per-frame truth of a recording to a compressed ``.npz``.

    Arrays: ``labels (N, H, W) uint8`` (bits in ``label_bits``), per frame
    ``target_intensity``, ``background_intensity``, ``tbr``, ``gain``,
    ``exposure_ms``, ``scale`` (N,), per lesion ``lesion_<field> (N, L)`` (NaN
    where a frame has fewer lesions), and ``mm_per_px``; ``params`` as JSON.
    """
    truths = list(truths)
    if not truths:
        raise ValueError(f"{path}: no frames to save")
    h, w = truths[0].labels.shape
    with TruthWriter(path, len(truths), (w, h), params=params) as tw:
        for t in truths:
            tw.add(t)


def params_from_dict(d: dict) -> PhantomParams:
    """PhantomParams from ``dataclasses.asdict`` output or its JSON (lists back to tuples)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(PhantomParams)}
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
    return PhantomParams(**kw)


def load_params(path) -> PhantomParams:
    """The PhantomParams a truth sidecar (``*_truth.npz``) was rendered with."""
    import json

    with np.load(path) as z:
        return params_from_dict(json.loads(str(z["params"])))


def load_truth(path) -> list[Truth]:
    """Read a sidecar written by :func:`save_truth` back into :class:`Truth` objects."""
    with np.load(path) as z:
        labels = z["labels"]
        mm = float(z["mm_per_px"])
        per = {k: z[k] for k in z.files}
    truths = []
    for i in range(labels.shape[0]):
        lesions = []
        for j in range(per["lesion_id"].shape[1]):
            if np.isnan(per["lesion_id"][i, j]):
                continue
            g = {f: per[f"lesion_{f}"][i, j] for f in _LESION_FIELDS}
            lesions.append(LesionTruth(
                id=int(g["id"]), center_xy=(float(g["center_x"]), float(g["center_y"])),
                rim_width_mm=float(g["rim_width_mm"]), completeness=float(g["completeness"]),
                target_intensity=float(g["target_intensity"]),
                background_intensity=float(g["background_intensity"]), tbr=float(g["tbr"]),
                core_radius_mm=float(g["core_radius_mm"]), blur_sigma_mm=float(g["blur_sigma_mm"]),
                depth_mm=float(g["depth_mm"]), rim_area_px=int(g["rim_area_px"]),
                target_tbr=float(g["target_tbr"]),
            ))
        truths.append(Truth(labels[i], mm, lesions, per["gain"][i], per["exposure_ms"][i], per["scale"][i]))
    return truths
