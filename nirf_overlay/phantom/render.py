"""The phantom: ``Phantom(params).frame(i)`` renders frame i and its truth.

Frame i is rendered from the seed and i alone (random access, any order, any
thread): the scene is warped into the view by the motion at ``t = i / fps``,
the instrument is drawn over it, the truth is measured on the noise-free
signal, and the camera turns the signal into raw counts.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import cv2
import numpy as np

from ..frame import FramePair
from .camera import NIR_BITS, Camera
from .duct import tool_tip_at_touch
from .instrument import Instrument
from .motion import Motion
from .params import PhantomParams
from .scene import Scene
from .truth import INSTRUMENT, LesionTruth, Truth


class Phantom:
    """A deterministic synthetic procedure: ``Phantom(params).frame(i) -> FramePair``.

    Parameters
    ----------
    params : PhantomParams
    **overrides
        Fields of ``params`` to replace.

    Attributes
    ----------
    params : the validated PhantomParams
    size : (W, H) pixels
    mm_per_px : calibration millimetres per pixel (at breathing scale 1)
    scene, motion, camera : the parts (:class:`~.scene.Scene`,
        :class:`~.motion.Motion`, :class:`~.camera.Camera`)
    instrument : :class:`~.instrument.Instrument`, or None without one

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

        self.camera = Camera(params, rng(1), rng(4))
        self.motion = Motion(params, rng(2))
        self.scene = Scene(params, rng, self.motion)
        tip = None
        if params.duct_touch_tool and self.scene.lesions:
            tip = tool_tip_at_touch(self.scene.lesions[0], 1.0 / params.mm_per_px, self.motion.affine(0.0)[0])
        self.instrument = Instrument(params, rng(3), tip) if params.instrument else None

    # -- public API ---------------------------------------------------------
    @property
    def fps(self) -> float:
        return float(self.params.fps)

    def dark_frame(self) -> np.ndarray:
        """(H, W) uint16: the mean dark frame (offset + fixed pattern + hot pixels)."""
        return self.camera.dark.copy()

    def flat_field(self) -> np.ndarray:
        """(H, W) float32, mean 1: the NIR vignetting the frames are multiplied by."""
        return self.camera.flat.copy()

    def calibration(self):
        """The :class:`~nirf_overlay.calibration.Calibration` that undoes the camera."""
        from ..calibration.model import Calibration

        p = self.params
        return Calibration(
            dark=self.camera.dark.astype(np.float32),
            flat=self.camera.flat.copy(),
            mm_per_px=self.mm_per_px,
            frame_size=self.size,
            exposure_ref_ms=p.exposure_ref_ms,
            gain_ref=p.gain_ref,
            system=f"nirf-overlay phantom (seed {p.seed})",
            notes=f"fov {p.fov_mm} mm across {self.size[0]} px",
        )

    def gain_at(self, i: int) -> float:
        """The camera gain of frame ``i`` (after the auto-gain step: x ``gain_step_factor``)."""
        p = self.params
        if p.gain_step_s is not None and i / p.fps >= p.gain_step_s:
            return p.gain * p.gain_step_factor
        return p.gain

    def transform(self, i: int) -> np.ndarray:
        """(2, 3) float64 affine mapping world pixels to view pixels at frame ``i``."""
        return self.motion.affine(i / self.params.fps)[0]

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
        signal, labels, ids, inst, scale, M, pose = self._view_signal(i)
        truth = self._truth(i, signal, labels, ids, scale, M)
        nir = self.camera.nir(i, signal, truth.gain)
        wl = self._wl(i, M, inst, pose, labels)
        truth.labels = labels
        return wl, nir, truth, signal

    def truth_clipped(self, i: int, limit) -> "Truth":
        """The truth of frame ``i`` measured on its signal clipped at ``limit``
        (normalised counts; a number or (H, W)): what survives a display that
        clips (a tower's 8-bit view after its auto-gain rose), by the same
        definitions of T and B."""
        signal, labels, ids, _, scale, M, _ = self._view_signal(i)
        truth = self._truth(i, np.minimum(signal, np.asarray(limit, np.float32)), labels, ids,
                            scale, M)
        truth.labels = labels
        return truth

    # -- per frame -----------------------------------------------------------------
    def _view_signal(self, i):
        """Noise-free normalised NIR in view coordinates plus the warped labels."""
        p = self.params
        t = i / p.fps
        M, scale = self.motion.affine(t)
        w, h = self.size
        scene = self.scene
        sig = cv2.warpAffine(scene.nir, M, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
        labels = cv2.warpAffine(scene.labels, M, (w, h), flags=cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        ids = cv2.warpAffine(scene.ids, M, (w, h), flags=cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if self.instrument is not None:
            inst, pose = self.instrument.at(t)
            sig[inst] = np.float32(p.instrument_nir_level * p.background)
            labels[inst] = INSTRUMENT  # hides whatever is behind it
            ids[inst] = 0
        else:
            inst, pose = np.zeros((h, w), bool), None
        return sig, labels, ids, inst, scale, M, pose

    def _truth(self, i, signal, labels, ids, scale, M):
        """T and B per lesion, measured on the view's noise-free ``signal`` over the
        warped rim and background-ring ids (the definitions are in the package doc)."""
        p = self.params
        n = len(self.scene.lesions)
        nz = np.flatnonzero(ids)  # rims and rings are a small part of the frame
        idv = ids.ravel()[nz]
        sigv = signal.ravel()[nz]
        rim_id = idv & np.uint8(15)
        ring_id = idv >> np.uint8(4)
        cnt = np.bincount(rim_id, minlength=n + 1)
        tot = np.bincount(rim_id, weights=sigv, minlength=n + 1)
        lesions = []
        turn = np.arctan2(M[1, 0], M[0, 0])  # the view's rotation of world angles
        for les in self.scene.lesions:
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
                gap_center_deg=float(np.degrees(les.arc_center_rad + np.pi + turn)) % 360.0,
                gap_deg=0.0 if les.completeness >= 1.0 else 360.0 * (1.0 - float(les.completeness)),
            ))
        return Truth(labels, self.mm_per_px, lesions, self.gain_at(i), p.exposure_ms, scale, M.copy())

    def _wl(self, i, M, inst, pose, labels):
        w, h = self.size
        wl4 = cv2.warpAffine(self.scene.wl, M, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
        wl = self.camera.wl(i, wl4)
        self.scene.glint(wl, wl4, M, inst, labels)
        if pose is not None:
            self.instrument.shade(wl, inst, pose)
        return wl
