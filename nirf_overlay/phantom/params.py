"""What shapes a phantom procedure: :class:`PhantomParams`, its validation and its JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from ..errors import NirfError
from .duct import DUCT_TOUCH


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
    # a duct that runs into the first lesion's rim (None: it keeps 2.5 mm off every rim);
    # "tangent", "oblique" or "radial" (phantom/duct.py)
    duct_touch: Optional[str] = None
    duct_touch_brightness: Optional[float] = None  # x that lesion's TBR (None: duct_brightness)
    # with duct_touch: the instrument's tip is held where the duct meets the rim (its jaws
    # hide the junction, the duct's end shows beside them; phantom/duct.py)
    duct_touch_tool: bool = False
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
        """Return self, or raise a one-line NirfError naming the field out of range."""
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
        if self.duct_touch is not None and self.duct_touch not in DUCT_TOUCH:
            raise NirfError(f"phantom duct_touch {self.duct_touch!r}: one of {', '.join(DUCT_TOUCH)} or None")
        if self.duct_touch_brightness is not None and not (0.05 <= self.duct_touch_brightness <= 20.0):
            raise NirfError(f"phantom duct_touch_brightness {self.duct_touch_brightness}: must be 0.05..20")
        if self.duct_touch_tool and not (self.duct_touch and self.instrument):
            raise NirfError("phantom duct_touch_tool: only with a duct_touch and an instrument")
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
        """Calibration millimetres per pixel at breathing scale 1 (``fov_mm / width``)."""
        return self.fov_mm / self.size[0]


def params_from_dict(d: dict) -> PhantomParams:
    """PhantomParams from ``dataclasses.asdict`` output or its JSON (lists back to tuples)."""
    names = {f.name for f in dataclasses.fields(PhantomParams)}
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
    return PhantomParams(**kw)
