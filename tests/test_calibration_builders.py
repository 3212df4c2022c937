"""Calibration builders against synthetic targets with known truth.

Registration: a checkerboard rendered (area-sampled, blurred, noisy) into WL
and, through a known WL-to-NIR homography with a touch of perspective, into a
NIR frame of another size, in several poses.  Flat: known vignetting, shot and
read noise, with a dark frame.  Dark: a known fixed pattern and hot pixels.
"""

import numpy as np
import pytest

from nirf_overlay.calibration.builders import (
    build_dark, build_flat, build_registration, find_corners, nir_quality,
)
from nirf_overlay.calibration.synthetic import (
    apply_homography, dark_frames, flat_frames, pose_homography, render_pair, vignetting,
)
from nirf_overlay.errors import CalibrationError

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


def test_no_corners_refused():
    wl = np.full((WL_SIZE[1], WL_SIZE[0], 3), 120, np.uint8)
    nir = np.full((NIR_SIZE[1], NIR_SIZE[0]), 400, np.uint16)
    with pytest.raises(CalibrationError, match=r"register: no corners found: no 9x6 checkerboard "
                                               r"in the white light \(2 frames\)"):
        build_registration([(wl, nir), (wl, nir)])


def test_board_in_wl_only_refused():
    wl, _ = _pairs(_h_true("scaled"), 6, poses=_poses()[:1])[0]
    nir = np.full((NIR_SIZE[1], NIR_SIZE[0]), 400, np.uint16)
    with pytest.raises(CalibrationError, match=r"no corners found: .* in the NIR"):
        build_registration([(wl, nir)])


def test_inconsistent_poses_rms_too_high_refused():
    """Half the poses seen through another homography: no single map fits; refused."""
    h1 = _h_true("scaled")
    h2 = np.array([[1, 0, 6.0], [0, 1, -5.0], [0, 0, 1]]) @ h1
    poses = _poses()
    rng = np.random.default_rng(7)
    pairs = [render_pair(p, h1 if i % 2 == 0 else h2, wl_size=WL_SIZE, nir_size=NIR_SIZE,
                         square_mm=SQUARE_MM, rng=rng) for i, p in enumerate(poses)]
    with pytest.raises(CalibrationError, match=r"register: RMS reprojection error \d+\.\d+ px "
                                               r"exceeds the limit 1 px"):
        build_registration(pairs)


def test_too_few_poses_and_tilted_first_pose_refused(scaled_pairs):
    pairs = scaled_pairs
    with pytest.raises(CalibrationError, match=r"only 2 distinct pose\(s\) .* need 3"):
        build_registration(pairs[:2], min_poses=3)
    # 25 degrees: the scales differ by 1/cos(25) - 1 = 10% > 5%
    tilted = pose_homography((240, 180), 6.0, square_mm=SQUARE_MM, tilt_deg=25)
    rng = np.random.default_rng(9)
    first = render_pair(tilted, _h_true("scaled"), wl_size=WL_SIZE, nir_size=NIR_SIZE,
                        square_mm=SQUARE_MM, rng=rng)
    with pytest.raises(CalibrationError, match=r"first pose is not fronto-parallel: its scales "
                                               r"differ by 10% \(limit 5%\)"):
        build_registration([first, *pairs[1:]], square_mm=SQUARE_MM)


# -- dark ----------------------------------------------------------------------
HOT = [(10, 20, 800), (200, 100, 300), (300, 200, 1500), (0, 0, 400)]


def test_dark_mean_and_hot_pixels():
    rng = np.random.default_rng(11)
    frames, truth = dark_frames((320, 240), 16, rng=rng, hot=HOT)
    res = build_dark(iter(frames), nir_bits=12)
    assert res.dark.dtype == np.float32 and res.dark.shape == (240, 320)
    assert res.hot_pixels.dtype == bool and res.hot_pixels.shape == (240, 320)
    # mean of 16 frames with 3 counts read noise: within 5 sigma of the truth
    assert np.abs(res.dark - truth).max() < 5 * 3 / 4 + 0.5
    found = {(int(x), int(y)) for y, x in np.argwhere(res.hot_pixels)}
    assert found == {(x, y) for x, y, _ in HOT}
    assert res.frames == 16 and abs(res.temporal_noise - 3) < 0.3
    assert abs(res.level - 100) < 1


def test_dark_with_light_on_refused():
    rng = np.random.default_rng(12)
    frames, _ = dark_frames((64, 48), 4, rng=rng, offset=1500)
    with pytest.raises(CalibrationError, match=r"dark: median level 1500 counts is 37% of full "
                                               r"scale \(4095\); is the light off"):
        build_dark(frames, nir_bits=12)


# -- flat ----------------------------------------------------------------------
@pytest.mark.parametrize("strength,level", [(0.45, 1500.0), (0.2, 600.0)])
def test_flat_recovers_known_vignetting(strength, level):
    size = (320, 240)
    rng = np.random.default_rng(13)
    darks, dark_truth = dark_frames(size, 16, rng=rng, hot=HOT)
    dark = build_dark(darks, nir_bits=12)
    vig = vignetting(size, strength=strength, center=(150, 130))
    frames = flat_frames(size, 16, rng=rng, level=level, dark_truth=dark_truth, vignette=vig)
    res = build_flat(iter(frames), nir_bits=12, dark=dark.dark, hot_pixels=dark.hot_pixels)
    assert res.flat.dtype == np.float32 and res.flat.shape == (240, 320)
    assert abs(float(res.flat.mean(dtype=np.float64)) - 1) < 1e-5
    rel = res.flat / vig - 1
    rms = float(np.sqrt(np.mean(rel ** 2)))
    print(f"vignetting {strength}: flat RMS error {100 * rms:.3f}%, max {100 * np.abs(rel).max():.2f}%")
    assert rms < 0.02
    assert res.saturated_fraction == 0 and res.offset == "profile dark"
    assert abs(res.signal_counts - level) < 0.02 * level


def test_flat_without_dark_uses_target_minimum_where_part_is_unlit():
    """No dark frame: the offset is the target's own minimum, right when part of the field is unlit."""
    size = (320, 240)
    rng = np.random.default_rng(14)
    _, dark_truth = dark_frames(size, 1, rng=rng)
    vig = vignetting(size, strength=0.3)
    lit = np.ones((240, 320), np.float32)
    lit[:, :6] = 0  # a mask at the field edge
    frames = flat_frames(size, 16, rng=rng, level=1500, dark_truth=dark_truth, vignette=vig * lit)
    res = build_flat(frames, nir_bits=12)
    assert res.offset.startswith("target minimum") and res.warnings
    inner = (slice(None), slice(30, None))  # away from the unlit strip and its blurred edge
    ratio = res.flat[inner] / vig[inner]
    ratio /= ratio.mean()
    assert float(np.sqrt(np.mean((ratio - 1) ** 2))) < 0.02


def test_flat_saturated_refused():
    size = (64, 48)
    rng = np.random.default_rng(15)
    _, dark_truth = dark_frames(size, 1, rng=rng)
    frames = flat_frames(size, 4, rng=rng, level=5000, dark_truth=dark_truth,
                         vignette=vignetting(size))
    with pytest.raises(CalibrationError, match=r"flat: saturated: \d+\.\d\d% of pixels reach full "
                                               r"scale \(4095\)"):
        build_flat(frames, nir_bits=12)


def test_flat_too_dim_refused():
    size = (64, 48)
    rng = np.random.default_rng(16)
    darks, dark_truth = dark_frames(size, 8, rng=rng)
    frames = flat_frames(size, 4, rng=rng, level=120, dark_truth=dark_truth, vignette=vignetting(size))
    with pytest.raises(CalibrationError, match=r"flat: too dim: mean signal 12\d counts is 2\.\d% "
                                               r"of full scale \(4095\), need at least 5%"):
        build_flat(frames, nir_bits=12, dark=build_dark(darks, nir_bits=12).dark)


def test_flat_size_mismatch_with_dark_refused():
    frames = [np.full((48, 64), 2000, np.uint16)]
    with pytest.raises(CalibrationError, match=r"the profile's dark is 32x24 but the frames are 64x48"):
        build_flat(frames, nir_bits=12, dark=np.zeros((24, 32), np.float32))


def test_no_frames_refused_and_quality_readout():
    with pytest.raises(CalibrationError, match="dark: no frames captured"):
        build_dark([])
    nir = np.full((10, 10), 1000, np.uint16)
    nir[0, :5] = 4095
    q = nir_quality(nir, 12, dark=np.full((10, 10), 100.0))
    assert q["saturated_fraction"] == pytest.approx(0.05)
    assert q["full_scale"] == 4095
    assert q["mean_counts"] == pytest.approx(nir.mean() - 100)


def test_dim_scene_as_dark_refused():
    """A lit scene below the level limit still has shapes: not a dark frame."""
    rng = np.random.default_rng(17)
    frames, _ = dark_frames((160, 120), 4, rng=rng)
    ys, xs = np.mgrid[0:120, 0:160]
    blob = (300 * np.exp(-((xs - 80) ** 2 + (ys - 60) ** 2) / (2 * 20 ** 2))).astype(np.uint16)
    with pytest.raises(CalibrationError, match=r"dark: the frame has structure \(\d+ counts .* "
                                               r"limit 102\); light reaches the sensor"):
        build_dark([f + blob for f in frames], nir_bits=12)
    speckle = np.zeros((120, 160), np.uint16)
    speckle.flat[rng.choice(speckle.size, size=speckle.size // 30, replace=False)] = 200
    with pytest.raises(CalibrationError, match=r"dark: 3\.\d% of pixels stand out .* not a dark frame"):
        build_dark([f + speckle for f in frames], nir_bits=12)


# -- ChArUco -------------------------------------------------------------------
def test_charuco_registration_pairs_corners_by_id_even_partly_visible():
    from nirf_overlay.calibration.builders import Charuco, find_charuco

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
    # no board in the white light: refused, naming the ChArUco board
    with pytest.raises(CalibrationError, match="no 7x5 ChArUco board"):
        build_registration([(np.full((480, 640, 3), 90, np.uint8), pairs[0][1])], charuco=ch)


def test_charuco_bad_dictionary_refused():
    from nirf_overlay.calibration.builders import Charuco

    with pytest.raises(CalibrationError, match=r"--dictionary: 'DICT_9X9_1' is not an OpenCV ArUco"):
        Charuco(dictionary="DICT_9X9_1").cv_board()
    with pytest.raises(CalibrationError, match=r"--dictionary: DICT_4X4_50 has 50 markers, a 15x12 "
                                               r"board needs 104"):
        Charuco(board=(15, 12), dictionary="DICT_4X4_50").cv_board()
