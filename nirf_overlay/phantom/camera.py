"""The camera: what turns the scene's noise-free signal into raw frames.

NIR: vignetting, exposure and gain, shot and read noise, dark offset with
fixed pattern and hot pixels, 12 bits (the model and its equation are in the
package docstring, :mod:`nirf_overlay.phantom`).  WL: illumination falloff and
a little sensor noise.  The normals for the NIR noise come from a bank drawn
once per camera, read at offsets drawn per frame from ``(seed, frame index)``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .params import PhantomParams

NIR_BITS = 12
NIR_FULL_SCALE = (1 << NIR_BITS) - 1


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


class Camera:
    """The phantom's NIR and WL sensors.

    Parameters
    ----------
    params : PhantomParams (validated)
    rng : numpy Generator of the camera's stream (dark frame, hot pixels, noise bank)
    wl_rng : numpy Generator of the WL noise's stream

    Attributes
    ----------
    flat : (H, W) float32, mean 1: the NIR vignetting
    dark : (H, W) uint16: the mean dark frame (offset + fixed pattern + hot pixels)
    """

    def __init__(self, params: PhantomParams, rng: np.random.Generator,
                 wl_rng: np.random.Generator):
        self.params = params
        p = params
        w, h = size = tuple(int(v) for v in params.size)
        self.flat = _vignetting(size, p.vignetting_corner)
        off = rng.uniform(*p.dark_offset)
        rows = rng.normal(0, p.dark_pattern * 0.5, (h, 1))
        cols = rng.normal(0, p.dark_pattern * 0.7, (1, w))
        pix = rng.normal(0, p.dark_pattern * 0.5, (h, w))
        dark = off + rows + cols + pix
        n_hot = int(round(p.hot_pixel_fraction * w * h))
        if n_hot:
            dark.flat[rng.choice(w * h, n_hot, replace=False)] += rng.uniform(50, 400, n_hot)
        self.dark = np.clip(np.round(dark), 0, NIR_FULL_SCALE).astype(np.uint16)
        self._dark_f = self.dark.astype(np.float32)
        self._flat_e = self.flat * np.float32(p.exposure_ms / p.exposure_ref_ms * p.electrons_per_count)
        self._bank = rng.standard_normal(2 * w * h + 4099, dtype=np.float32)
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.hypot((x - w / 2) / (w / 2), (y - h / 2) / (h / 2))
        illum = (1.05 - 0.22 * r ** 2).clip(0.55, 1.05)
        # fixed point (x200) in 4 channels, alpha kept: one integer multiply per frame
        self._wl_illum4 = np.empty((h, w, 4), np.uint8)
        self._wl_illum4[..., :3] = np.round(illum * 200)[..., None]
        self._wl_illum4[..., 3] = 200
        self._wl_noise = (
            wl_rng.normal(0, p.wl_noise, (h + 32, w + 32, 3)).round().clip(-8, 8).astype(np.int16)
            if p.wl_noise > 0 else None
        )

    def nir(self, i: int, signal: np.ndarray, gain: float) -> np.ndarray:
        """Raw (H, W) uint16 NIR counts of frame ``i`` from its noise-free ``signal``
        ((H, W) float32, normalised counts) at ``gain``."""
        p = self.params
        rng = np.random.default_rng([p.seed, 104729, int(i)])
        n = signal.size
        o_shot, o_read = rng.integers(0, self._bank.size - n, 2)
        z_shot = self._bank[o_shot:o_shot + n].reshape(signal.shape)
        z_read = self._bank[o_read:o_read + n].reshape(signal.shape)
        electrons = signal * self._flat_e
        # Shot noise: exact Poisson below 10 e-, the normal approximation above
        # (same mean and variance; skewness 1/sqrt(mean) <= 0.32).
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
        np.clip(noisy, 0, NIR_FULL_SCALE, out=noisy)
        return noisy.astype(np.uint16)

    def wl(self, i: int, wl4: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 BGR of frame ``i`` from the warped scene ``wl4`` ((H, W, 4)
        uint8): illumination falloff and sensor noise.

        ``wl4`` is lit in place, whole (a strided 3-channel view would cost a
        copy); its alpha channel, the glints, is multiplied by 200/200, unchanged.
        """
        p = self.params
        h, w = wl4.shape[:2]
        cv2.multiply(wl4, self._wl_illum4, dst=wl4, scale=1.0 / 200)
        wl = cv2.cvtColor(wl4, cv2.COLOR_BGRA2BGR)
        if self._wl_noise is not None:
            rng = np.random.default_rng([p.seed, 15485863, int(i)])
            oy, ox = rng.integers(0, 32, 2)
            wl = cv2.add(wl, self._wl_noise[oy:oy + h, ox:ox + w], dtype=cv2.CV_8U)
        return wl
