"""Smooth random fields and curves the phantom's scene is drawn with (world pixels).

Each takes the random stream it draws from, so a part of the scene is the same for a
seed whatever else is drawn (:class:`~.render.Phantom`'s streams).
"""

from __future__ import annotations

import cv2
import numpy as np


def smooth_noise(rng, shape, scale_px, *, channels=None) -> np.ndarray:
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


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; large sigmas on a reduced grid (for smooth visual layers)."""
    if sigma <= 6:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    f = int(sigma // 3)
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / f)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def fourier_loop(rng, n_harm, amp, n=720) -> np.ndarray:
    """A smooth periodic function of angle sampled at ``n`` points, mean 0."""
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    f = np.zeros(n)
    for k in range(1, n_harm + 1):
        f += rng.normal(0, amp / k) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    return f


def random_curve(rng, start, heading, length_px, step_px, wiggle, bend=0.0) -> np.ndarray:
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
