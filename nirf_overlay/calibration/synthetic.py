"""Synthetic calibration targets with known truth (for tests and demos).

A checkerboard rendered analytically through a known homography into white
light and, through a second known WL-to-NIR homography, into NIR; light-off
dark frames with a fixed pattern and hot pixels; a uniform fluorescent target
under known vignetting.  Pixel centres are at integer coordinates, as in
OpenCV, so corner positions and homographies compare directly with the truth.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .registration import Charuco

__all__ = [
    "pose_homography", "render_checkerboard", "render_charuco", "render_pair", "vignetting",
    "dark_frames", "flat_frames",
]


def pose_homography(center_px, px_per_mm: float, *, board=(9, 6), square_mm: float = 5.0,
                    angle_deg: float = 0.0, perspective=(0.0, 0.0), tilt_deg: float = 0.0,
                    distance_mm: float = 50.0) -> np.ndarray:
    """Board-plane mm -> image px for a board centred at ``center_px``.

    Parameters
    ----------
    center_px : (x, y)
        Where the board's centre (the middle of its inner corners) lands.
    px_per_mm : float
        Scale at the board centre; with ``perspective=(0, 0)`` the pose is
        fronto-parallel and this is the exact scale everywhere.
    angle_deg : float
        In-plane rotation.
    perspective : (px, py), 1/mm
        Extra bottom-row terms of the homography: 0.002 makes the far edge
        of a 50 mm board about 5 % smaller.
    tilt_deg, distance_mm : float
        A physical tilt of the board about its own vertical axis, seen by a
        pinhole camera ``distance_mm`` away on the board's axis: the board
        axis across the hinge is foreshortened by ``cos(tilt)`` at the centre,
        the hinge axis keeps ``px_per_mm``.
    """
    cols, rows = board
    bx, by = (cols - 1) * square_mm / 2, (rows - 1) * square_mm / 2
    a = np.deg2rad(angle_deg)
    centre = np.array([[1, 0, -bx], [0, 1, -by], [0, 0, 1]], float)
    t = np.deg2rad(tilt_deg)
    f = px_per_mm * distance_mm
    # (X, Y) -> camera (X cos t, Y, Z0 + X sin t) -> f * (x / z, y / z)
    tilt = np.array([[f * np.cos(t), 0, 0], [0, f, 0], [np.sin(t), 0, distance_mm]], float)
    spin = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]], float)
    persp = np.array([[1, 0, 0], [0, 1, 0], [perspective[0] / px_per_mm, perspective[1] / px_per_mm, 1]])
    place = np.array([[1, 0, center_px[0]], [0, 1, center_px[1]], [0, 0, 1]], float)
    h = place @ persp @ spin @ tilt @ centre
    return h / h[2, 2]


def render_checkerboard(h_board_to_img: np.ndarray, size, *, board=(9, 6), square_mm: float = 5.0,
                        supersample: int = 6, background: float = 0.55) -> np.ndarray:
    """Area-sampled checkerboard image in [0, 1].

    Parameters
    ----------
    h_board_to_img : (3, 3)
        Board mm -> image px.  Inner corner (i, j) is at board (j * square_mm,
        i * square_mm); the board has one white square of margin around its
        ``(cols + 1) x (rows + 1)`` squares (the detector needs it).
    size : (W, H)

    Returns
    -------
    (H, W) float32
        Black squares 0.05, white 0.95, outside the board ``background``.
    """
    w, h = size
    cols, rows = board
    inv = np.linalg.inv(h_board_to_img)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    acc = np.zeros((h, w), np.float64)
    offs = (np.arange(supersample) + 0.5) / supersample - 0.5
    for dy in offs:
        for dx in offs:
            u, v = xs + dx, ys + dy
            den = inv[2, 0] * u + inv[2, 1] * v + inv[2, 2]
            bx = (inv[0, 0] * u + inv[0, 1] * v + inv[0, 2]) / den
            by = (inv[1, 0] * u + inv[1, 1] * v + inv[1, 2]) / den
            qx, qy = np.floor(bx / square_mm), np.floor(by / square_mm)
            black = ((qx + qy) % 2 == 0) & (qx >= -1) & (qx <= cols - 1) & (qy >= -1) & (qy <= rows - 1)
            on_board = (qx >= -2) & (qx <= cols) & (qy >= -2) & (qy <= rows)
            acc += np.where(on_board, np.where(black, 0.05, 0.95), background)
    return (acc / supersample ** 2).astype(np.float32)


def render_charuco(h_board_to_img: np.ndarray, size, *, charuco=None, square_mm: float = 5.0,
                   supersample: int = 4, background: float = 0.55, texture_px_per_mm: float = 24.0):
    """A ChArUco board (``Charuco`` spec) rendered through ``h_board_to_img``, in [0, 1].

    Board coordinates as in :func:`render_checkerboard`: inner corner (i, j)
    at ``(j, i) * square_mm``, so corner id ``k`` is at ``(k % cols, k // cols)``.
    The board texture comes from OpenCV (``CharucoBoard.generateImage``) with a
    white margin of one square; it is warped at ``supersample`` times the
    resolution and area-averaged down.
    """
    import cv2

    charuco = charuco or Charuco()
    cols, rows = charuco.board
    t = texture_px_per_mm
    margin = int(round(square_mm * t))
    tex = charuco.cv_board(square_mm).generateImage(
        (int(round((cols + 3) * square_mm * t)), int(round((rows + 3) * square_mm * t))),
        marginSize=margin)
    tex = (0.05 + 0.9 * tex.astype(np.float32) / 255.0)
    # texture pixel u (centre) <-> board mm (u + 0.5) / t - 2 * square (margin + first square)
    tex_to_board = np.array([[1 / t, 0, 0.5 / t - 2 * square_mm],
                             [0, 1 / t, 0.5 / t - 2 * square_mm], [0, 0, 1]], float)
    ss = int(supersample)
    to_hi = np.array([[ss, 0, (ss - 1) / 2], [0, ss, (ss - 1) / 2], [0, 0, 1]], float)
    w, h = size
    hi = cv2.warpPerspective(tex, to_hi @ h_board_to_img @ tex_to_board, (w * ss, h * ss),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=float(background))
    return cv2.resize(hi, (w, h), interpolation=cv2.INTER_AREA)


def vignetting(size, *, strength: float = 0.45, center=None) -> np.ndarray:
    """Smooth radial fall-off normalised to mean 1, (H, W) float32.

    ``(1 + k r^2)^-2`` (the cos^4 law's shape), with ``k`` chosen so that the
    corners receive ``1 - strength`` of the centre's light.
    """
    w, h = size
    cx, cy = center if center is not None else ((w - 1) / 2, (h - 1) / 2)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    r2 = ((xs - cx) ** 2 + (ys - cy) ** 2) / (((w - 1) / 2) ** 2 + ((h - 1) / 2) ** 2)
    k = (1.0 - strength) ** -0.5 - 1.0
    v = (1.0 + k * r2) ** -2
    return (v / v.mean()).astype(np.float32)


def dark_frames(size, n: int, *, rng, offset: float = 100.0, pattern: float = 2.0,
                read_noise: float = 3.0, hot=()):
    """``n`` light-off frames (uint16) and their true mean (float64).

    ``hot`` is a list of ``(x, y, extra_counts)``.
    """
    w, h = size
    truth = offset + pattern * rng.standard_normal((h, w))
    for x, y, extra in hot:
        truth[y, x] += extra
    frames = [np.clip(np.rint(truth + read_noise * rng.standard_normal((h, w))), 0, 65535)
              .astype(np.uint16) for _ in range(n)]
    return frames, truth


def flat_frames(size, n: int, *, rng, level: float, dark_truth: np.ndarray,
                vignette: np.ndarray, gain_e: float = 0.5, read_noise: float = 3.0,
                full_scale: int = 4095):
    """``n`` frames of a uniform target: dark + level * vignette, shot and read noise, clipped."""
    signal = level * vignette.astype(np.float64)
    shot_sd = np.sqrt(np.maximum(signal, 0) * gain_e)  # counts; gain_e counts per electron
    out = []
    for _ in range(n):
        f = dark_truth + signal + shot_sd * rng.standard_normal(signal.shape) \
            + read_noise * rng.standard_normal(signal.shape)
        out.append(np.clip(np.rint(f), 0, full_scale).astype(np.uint16))
    return out


def render_pair(h_pose: np.ndarray, h_wl_to_nir: np.ndarray, *, wl_size, nir_size,
                board=(9, 6), square_mm: float = 5.0, rng=None, blur_px: float = 0.7,
                wl_noise: float = 2.0, nir_level: float = 1800.0, nir_dark: float = 100.0,
                nir_noise: float = 12.0, full_scale: int = 4095,
                nir_vignette: Optional[np.ndarray] = None, charuco=None):
    """One WL/NIR pair of a board in pose ``h_pose`` (board mm -> WL px).

    Returns
    -------
    wl : (H, W, 3) uint8 BGR, slightly reddish like tissue lighting
    nir : (H', W') uint16, ``nir_dark + nir_level * image`` with noise, 12-bit
    """
    import cv2

    rng = rng or np.random.default_rng(0)
    def render(hm, size):
        if charuco is not None:
            return render_charuco(hm, size, charuco=charuco, square_mm=square_mm)
        return render_checkerboard(hm, size, board=board, square_mm=square_mm)

    g = render(h_pose, wl_size)
    if blur_px:
        g = cv2.GaussianBlur(g, (0, 0), blur_px)
    tint = np.array([0.85, 0.9, 1.0], np.float32)  # B, G, R
    wl = g[..., None] * tint * 235 + 10 + wl_noise * rng.standard_normal(g.shape + (3,))
    wl = np.clip(np.rint(wl), 0, 255).astype(np.uint8)
    n = render(h_wl_to_nir @ h_pose, nir_size)
    if blur_px:
        n = cv2.GaussianBlur(n, (0, 0), blur_px * 1.4)  # NIR optics are a little softer
    if nir_vignette is not None:
        n = n * nir_vignette
    nir = nir_dark + nir_level * n + nir_noise * rng.standard_normal(n.shape)
    nir = np.clip(np.rint(nir), 0, full_scale).astype(np.uint16)
    return wl, nir
