"""Geometric registration against synthetic targets with known truth.

A checkerboard (or ChArUco board) rendered area-sampled, blurred and noisy
into WL and, through a known WL-to-NIR homography with a touch of
perspective, into a NIR frame of another size, in several poses.  The fitted
homography must match the truth over the whole field, and mm per pixel the
first pose's known scale.  (Refusals: test_calibration_refusals.py.)
"""

import numpy as np
import pytest

from nirf_overlay.calibration.registration import (
    Charuco, apply_homography, build_registration, find_charuco, find_corners,
)
from nirf_overlay.calibration.synthetic import pose_homography, render_pair

WL_SIZE = (480, 360)
NIR_SIZE = (400, 300)  # another sensor: different size, offset and scale
SQUARE_MM = 4.0
PX_PER_MM = 7.0  # first (fronto-parallel) pose


def _h_true(variant):
    if variant == "scaled":
        # NIR smaller and shifted, slightly rotated, a touch of perspective
        return np.array([[0.82, 0.025, -6.0], [-0.02, 0.84, 4.0], [4e-5, -3e-5, 1.0]])
    # rotated the other way, anisotropic, perspective the other way
    return np.array([[0.84, -0.015, 4.0], [0.012, 0.82, 3.0], [-2.5e-5, 3.5e-5, 1.0]])


def _poses(board=(9, 6), first_tilt_deg=0.0):
    kw = dict(board=board, square_mm=SQUARE_MM)
    return [
        # the first pose is (near) fronto-parallel: it gives mm per pixel
        pose_homography((240, 180), PX_PER_MM, angle_deg=3, tilt_deg=first_tilt_deg, **kw),
        pose_homography((130, 105), 5.0, angle_deg=12, perspective=(0.003, 0.001), **kw),
        pose_homography((350, 105), 5.0, angle_deg=-9, perspective=(-0.002, 0.003), **kw),
        pose_homography((130, 260), 5.0, angle_deg=6, perspective=(0.002, -0.003), **kw),
        pose_homography((350, 260), 5.0, angle_deg=-14, perspective=(-0.003, -0.002), **kw),
    ]


def _pairs(h_true, seed, poses=None, nir_size=NIR_SIZE):
    rng = np.random.default_rng(seed)
    return [render_pair(p, h_true, wl_size=WL_SIZE, nir_size=nir_size, square_mm=SQUARE_MM, rng=rng)
            for p in (poses or _poses())]


def _field_grid(step=8):
    ys, xs = np.mgrid[0:WL_SIZE[1]:step, 0:WL_SIZE[0]:step]
    return np.c_[xs.ravel(), ys.ravel()].astype(np.float64)


@pytest.fixture(scope="module")
def scaled_pairs():
    return _pairs(_h_true("scaled"), 1)


@pytest.mark.parametrize("variant,seed,tilt", [("scaled", 1, 0.0), ("rotated", 2, 8.0)])
def test_registration_reproduces_known_homography(variant, seed, tilt, scaled_pairs):
    h_true = _h_true(variant)
    pairs = scaled_pairs if variant == "scaled" else _pairs(h_true, seed, _poses(first_tilt_deg=tilt))
    reg = build_registration(pairs, board=(9, 6), square_mm=SQUARE_MM, min_poses=5)
    assert reg.homography_wl_to_nir.shape == (3, 3)
    assert reg.homography_wl_to_nir.dtype == np.float64
    assert reg.poses == 5 and reg.corners == 5 * 54
    grid = _field_grid()
    err = np.linalg.norm(apply_homography(reg.homography_wl_to_nir, grid)
                         - apply_homography(h_true, grid), axis=1)
    print(f"{variant}: field max {err.max():.3f} px, mean {err.mean():.3f} px, RMS {reg.rms_px:.3f} px")
    assert err.max() < 0.5  # over the whole WL field, far beyond the boards
    assert reg.rms_px < 0.3
    # mm per WL pixel from the first pose: 1 / PX_PER_MM
    rel = reg.mm_per_px * PX_PER_MM - 1
    print(f"{variant}: mm_per_px {reg.mm_per_px:.5f} (error {100 * rel:+.3f}%)")
    assert abs(rel) < 0.01
    assert abs(reg.anisotropy - (1 / np.cos(np.radians(tilt)) - 1)) < 0.005


def test_registration_skips_repeated_pose_and_frames_without_board(scaled_pairs):
    pairs = scaled_pairs
    blank = (np.full_like(pairs[0][0], 128), np.full_like(pairs[0][1], 500))
    seq = [pairs[0], pairs[0], blank, *pairs[1:4]]
    reg = build_registration(seq, board=(9, 6), square_mm=SQUARE_MM)
    assert reg.frames == 6 and reg.poses == 4


@pytest.mark.parametrize("turn", ["upside-down", "mirrored"])
def test_corner_order_flipped_in_nir_is_matched(turn):
    """The NIR camera mounted upside down, or mirrored by a beam splitter: the detector
    numbers its corners differently, and the registration must still pair the same
    physical corners (several poses decide)."""
    sx = -1 if turn in ("upside-down", "mirrored") else 1
    sy = -1 if turn == "upside-down" else 1
    rot = np.array([[sx, 0, NIR_SIZE[0] - 1 if sx < 0 else 0],
                    [0, sy, NIR_SIZE[1] - 1 if sy < 0 else 0], [0, 0, 1]], float)
    h_true = rot @ _h_true("scaled")
    pairs = _pairs(h_true, 4)
    reg = build_registration(pairs, board=(9, 6), square_mm=SQUARE_MM)
    grid = _field_grid(16)
    err = np.linalg.norm(apply_homography(reg.homography_wl_to_nir, grid)
                         - apply_homography(h_true, grid), axis=1)
    assert err.max() < 0.5


def test_find_corners_on_nir_uint16_and_none_without_board():
    pairs = _pairs(_h_true("scaled"), 5, poses=_poses()[:1])
    wl, nir = pairs[0]
    assert nir.dtype == np.uint16
    c = find_corners(nir, (9, 6))
    assert c is not None and c.shape == (54, 2) and c.dtype == np.float64
    assert find_corners(np.full((240, 320), 300, np.uint16), (9, 6)) is None
    assert find_corners(wl, (7, 5)) is None  # wrong board size: not found


def test_charuco_registration_pairs_corners_by_id_even_partly_visible():
    ch = Charuco(board=(7, 5))
    sq = 6.0
    h_true = _h_true("scaled")
    kw = dict(board=(7, 5), square_mm=sq)
    poses = [pose_homography((320, 240), 6.0, angle_deg=3, **kw),
             pose_homography((170, 140), 5.0, angle_deg=12, tilt_deg=20, **kw),
             pose_homography((470, 140), 5.0, angle_deg=-9, tilt_deg=-15, **kw),
             pose_homography((170, 350), 5.0, angle_deg=6, perspective=(0.002, -0.003), **kw),
             pose_homography((560, 400), 5.5, angle_deg=-14, **kw)]  # partly outside the field
    rng = np.random.default_rng(18)
    wl_size, nir_size = (640, 480), (540, 400)
    pairs = [render_pair(p, h_true, wl_size=wl_size, nir_size=nir_size, square_mm=sq, rng=rng,
                         charuco=ch) for p in poses]
    ids, corners = find_charuco(pairs[4][0], ch)
    assert 8 <= len(ids) < 35  # the last board is only partly in view, and still used
    reg = build_registration(pairs, square_mm=sq, charuco=ch, min_poses=5)
    assert reg.poses == 5
    ys, xs = np.mgrid[0:wl_size[1]:8, 0:wl_size[0]:8]
    grid = np.c_[xs.ravel(), ys.ravel()].astype(np.float64)
    err = np.linalg.norm(apply_homography(reg.homography_wl_to_nir, grid)
                         - apply_homography(h_true, grid), axis=1)
    print(f"charuco: field max {err.max():.3f} px, RMS {reg.rms_px:.3f} px, "
          f"mm_per_px error {100 * (reg.mm_per_px * 6.0 - 1):+.3f}%")
    assert err.max() < 0.5
    assert abs(reg.mm_per_px * 6.0 - 1) < 0.01




# -- homography helpers --------------------------------------------------------
@pytest.mark.parametrize("sx,sy", [(2.0, 2.0), (4.0, 3.0), (0.5, 0.5)])
def test_scale_at_centre_of_a_known_affine_map(sx, sy):
    """board mm -> px by (sx, sy): the larger scale gives mm per px, their ratio the anisotropy."""
    from nirf_overlay.calibration.registration.homography import scale_at_centre

    h = np.array([[sx, 0, 12.0], [0, sy, -7.0], [0, 0, 1.0]])
    mm_per_px, aniso = scale_at_centre(h, (10.0, 5.0))
    assert mm_per_px == pytest.approx(1 / max(sx, sy))
    assert aniso == pytest.approx(max(sx, sy) / min(sx, sy) - 1)
    pts = np.array([[0.0, 0.0], [10.0, 5.0]])
    out = apply_homography(h, pts)
    assert out.dtype == np.float64 and out.shape == (2, 2)
    np.testing.assert_allclose(out, [[12.0, -7.0], [12 + 10 * sx, -7 + 5 * sy]])
