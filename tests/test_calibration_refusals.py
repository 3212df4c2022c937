"""Every calibration refusal, walked once: one line, naming the input first, no flag.

Each case below provokes one refusal with real inputs (synthetic frames,
rendered boards, profiles written and then broken on disk) and gives the
message it must produce; the pattern is matched from the message's start, so
it also says which input the message names.  The GUI shows these messages as
they are, so none may name a command-line flag: the CLI adds the flag itself
(test_calibration_cli.py).  The last test checks that the walk reached every
``raise`` of the calibration package.
"""

import ast
import json
import os
import pathlib
import re
import time

import numpy as np
import pytest
import tifffile

import nirf_overlay.calibration as calibration_package
from nirf_overlay.calibration import (
    Calibration, CalibrationOptionError, CalibrationRequest, load_profile, read_tiff,
    resolve_calibration,
)
from nirf_overlay.calibration.photometric import FrameStats, build_dark, build_flat
from nirf_overlay.calibration.profile import save_profile
from nirf_overlay.calibration.registration import Charuco, build_registration
from nirf_overlay.calibration.transfer_fit import (
    Patch, PatchValues, fit_transfer, measure_patches, read_patches,
)
from nirf_overlay.calibration.synthetic import (
    dark_frames, flat_frames, pose_homography, render_pair, vignetting,
)
from nirf_overlay.cli.calibrate import OPTION_FLAGS
from nirf_overlay.errors import CalibrationError, NirfError

FLAG = re.compile(r"(^|[\s(`'\"])--[a-z]")
SIZE = (400, 300)  # registration frames, WL and NIR
SQUARE_MM = 3.0
H_TRUE = np.array([[0.9, 0.02, 22.0], [-0.015, 0.92, 18.0], [3e-5, -2e-5, 1.0]])
W, H = 64, 48  # profiles

#: raise statements no real input reaches, with the reason they stay
UNREACHABLE = {
    ("registration/build.py", "build_registration", "homography fit failed"):
        "OpenCV returns no homography only for degenerate points; a detected board's never are",
    ("registration/build.py", "_first_pose_scale", "board-to-image fit failed"):
        "the same guard for the board-to-image fit of a detected board",
}

CASES = []


def case(pattern, *, option=None):
    """Register a case: ``fn(ctx)`` must raise a CalibrationError matching ``pattern``
    (from its start); ``option``: it is a CalibrationOptionError naming that option."""
    def register(fn):
        CASES.append((fn.__name__, pattern, option, fn))
        return fn
    return register


# -- photometric ---------------------------------------------------------------
@case(r"NIR frame 0: expected \(H, W\), got shape \(4, 4, 3\)")
def frame_not_2d(ctx):
    FrameStats().add(np.zeros((4, 4, 3), np.uint16))


@case(r"NIR frame 1: size 5x4 differs from the first frame's 4x4")
def frame_size_changes(ctx):
    build_dark([np.zeros((4, 4), np.uint16), np.zeros((4, 5), np.uint16)])


@case(r"dark: no frames captured$")
def dark_without_frames(ctx):
    build_dark([])


@case(r"dark: median level 1500 counts is 37% of full scale \(4095\); is the light off")
def dark_with_light_on(ctx):
    frames, _ = dark_frames((64, 48), 4, rng=np.random.default_rng(12), offset=1500)
    build_dark(frames, nir_bits=12)


@case(r"dark: the frame has structure \(\d+ counts .* limit 102\); light reaches the sensor")
def dark_with_a_dim_scene(ctx):
    frames, _ = dark_frames((160, 120), 4, rng=np.random.default_rng(17))
    ys, xs = np.mgrid[0:120, 0:160]
    blob = (300 * np.exp(-((xs - 80) ** 2 + (ys - 60) ** 2) / (2 * 20 ** 2))).astype(np.uint16)
    build_dark([f + blob for f in frames], nir_bits=12)


@case(r"dark: 3\.\d% of pixels stand out from their neighbourhood .* not a dark frame")
def dark_with_speckle(ctx):
    rng = np.random.default_rng(17)
    frames, _ = dark_frames((160, 120), 4, rng=rng)
    speckle = np.zeros((120, 160), np.uint16)
    speckle.flat[rng.choice(speckle.size, size=speckle.size // 30, replace=False)] = 200
    build_dark([f + speckle for f in frames], nir_bits=12)


@case(r"flat: the profile's dark is 32x24 but the frames are 64x48")
def flat_with_dark_of_another_size(ctx):
    build_flat([np.full((48, 64), 2000, np.uint16)], nir_bits=12, dark=np.zeros((24, 32), np.float32))


@case(r"flat: saturated: \d+\.\d\d% of pixels reach full scale \(4095\) \(limit 0\.10%\)")
def flat_saturated(ctx):
    rng = np.random.default_rng(15)
    _, dark_truth = dark_frames((64, 48), 1, rng=rng)
    build_flat(flat_frames((64, 48), 4, rng=rng, level=5000, dark_truth=dark_truth,
                           vignette=vignetting((64, 48))), nir_bits=12)


@case(r"flat: saturated: \d+\.\d\d% of pixels sit at 4095, where every value stops: the full "
      r"scale of a 12-bit camera in a 16-bit container \(limit 0\.10%\); lower the exposure",
      option="nir_bits")
def flat_twelve_bits_clipped_in_sixteen(ctx):
    # the same over-exposed 12-bit flat stored as 16-bit TIFFs: at 16 bits nothing reaches
    # 65535, but its clipped pixels still read 4095 (before: refused as too dim instead)
    rng = np.random.default_rng(15)
    _, dark_truth = dark_frames((64, 48), 1, rng=rng)
    build_flat(flat_frames((64, 48), 4, rng=rng, level=5000, dark_truth=dark_truth,
                           vignette=vignetting((64, 48))), nir_bits=16)


def _flat_with_dark(seed, level, nir_bits):
    """A dark and a flat of a 12-bit camera (``level`` counts), built at ``nir_bits``."""
    rng = np.random.default_rng(seed)
    darks, dark_truth = dark_frames((64, 48), 8, rng=rng)
    frames = flat_frames((64, 48), 4, rng=rng, level=level, dark_truth=dark_truth,
                         vignette=vignetting((64, 48)))
    build_flat(frames, nir_bits=nir_bits, dark=build_dark(darks, nir_bits=nir_bits).dark)


@case(r"flat: too dim: mean signal 12\d counts is 2\.\d% of full scale \(4095\), need at least 5%")
def flat_too_dim(ctx):
    _flat_with_dark(16, level=120, nir_bits=12)


@case(r"flat: too dim for 16-bit data: mean signal \d+ counts is \d\.\d% of full scale \(65535\), "
      r"but every value fits in 12 bits .*12-bit camera in a 16-bit container", option="nir_bits")
def flat_twelve_bits_in_sixteen(ctx):
    # a 12-bit camera's well-exposed flat (about 40 % of 4095) stored as 16-bit TIFFs
    _flat_with_dark(17, level=1600, nir_bits=16)


@case(r"flat: the target covers too little of the field: \d+\.\d% of pixels are below 5% of the mean")
def flat_target_too_small(ctx):
    rng = np.random.default_rng(19)
    _, dark_truth = dark_frames((64, 48), 1, rng=rng)
    lit = np.zeros((48, 64), np.float32)
    lit[16:32, 20:44] = 1  # an eighth of the field
    frames = flat_frames((64, 48), 4, rng=rng, level=3000, dark_truth=dark_truth, vignette=lit)
    build_flat(frames, nir_bits=12, dark=dark_truth)


# -- registration --------------------------------------------------------------
@case(r"register: the checkerboard's inner-corner count \(1x6\) is below 2x2$", option="board")
def board_too_small(ctx):
    build_registration([], board=(1, 6))


@case(r"register: the board's square size \(1500\.0 mm\) is outside \(0, 1000\) mm$",
      option="square_mm")
def square_too_large(ctx):
    build_registration([], square_mm=1500.0)


@case(r"register: no corners found: no 9x6 checkerboard in the white light \(2 frames\); check "
      r"the board's inner-corner count \(9x6\) and focus/lighting$", option="board")
def no_board_in_white_light(ctx):
    wl = np.full((SIZE[1], SIZE[0], 3), 120, np.uint8)
    nir = np.full((SIZE[1], SIZE[0]), 400, np.uint16)
    build_registration([(wl, nir), (wl, nir)])


@case(r"register: no corners found: no 9x6 checkerboard in the NIR of any frame where white light "
      r"shows it \(1 frames\)", option="board")
def board_in_white_light_only(ctx):
    build_registration([(ctx.pairs[0][0], np.full((SIZE[1], SIZE[0]), 400, np.uint16))])


@case(r"register: no corners found: no 7x5 ChArUco board in the white light", option="board")
def no_charuco_board(ctx):
    build_registration([(np.full((480, 640, 3), 90, np.uint8), np.zeros((480, 640), np.uint16))],
                       charuco=Charuco(board=(7, 5)))


@case(r"register: only 2 distinct pose\(s\) with the board in both channels, need 3; move or "
      r"tilt the board", option="min_poses")
def too_few_poses(ctx):
    build_registration(ctx.pairs[:2], min_poses=3)


@case(r"register: RMS reprojection error \d+\.\d+ px exceeds the limit 1 px \(5 poses",
      option="max_rms_px")
def poses_through_two_maps(ctx):
    """Every other pose seen through a shifted map: no single homography fits."""
    shifted = np.array([[1, 0, 6.0], [0, 1, -5.0], [0, 0, 1]]) @ H_TRUE
    rng = np.random.default_rng(7)
    pairs = [render_pair(p, H_TRUE if i % 2 == 0 else shifted, wl_size=SIZE, nir_size=SIZE,
                         square_mm=SQUARE_MM, rng=rng) for i, p in enumerate(ctx.poses)]
    build_registration(pairs)


@case(r"register: first pose is not fronto-parallel: its scales differ by 10% \(limit 5%\)")
def tilted_first_pose(ctx):
    """25 degrees: the scales differ by 1/cos(25) - 1 = 10% > 5%."""
    tilted = pose_homography((200, 150), 6.0, square_mm=SQUARE_MM, tilt_deg=25)
    first = render_pair(tilted, H_TRUE, wl_size=SIZE, nir_size=SIZE, square_mm=SQUARE_MM,
                        rng=np.random.default_rng(9))
    build_registration([first, *ctx.pairs[1:]], square_mm=SQUARE_MM)


@case(r"ChArUco dictionary 'DICT_9X9_1': not an OpenCV ArUco dictionary \(e\.g\. DICT_5X5_100",
      option="dictionary")
def unknown_dictionary(ctx):
    Charuco(dictionary="DICT_9X9_1").cv_board()


@case(r"ChArUco marker ratio 0\.05: outside 0\.1\.\.0\.95 \(marker side over square side\)$",
      option="marker_ratio")
def marker_ratio_too_small(ctx):
    Charuco(marker_ratio=0.05).cv_board()


@case(r"ChArUco dictionary DICT_4X4_50: has 50 markers, a 15x12 board needs 104$",
      option="dictionary")
def dictionary_too_small(ctx):
    Charuco(board=(15, 12), dictionary="DICT_4X4_50").cv_board()


# -- the transfer curve from a step wedge (transfer_fit) ---------------------------
def _patch_rows(ctx, name, text):
    path = ctx.tmp / name
    path.write_text(text)
    return str(path)


WEDGE = [Patch((0, 0, 8, 8), 1.0), Patch((8, 0, 8, 8), 0.5), Patch((16, 0, 8, 8), 0.25),
         Patch((24, 0, 8, 8), 0.1)]


def _fit(display, *, spread=0.0, top=None, patches=WEDGE):
    d = np.asarray(display, dtype=np.float64)
    values = PatchValues(d, np.full(len(d), spread), 4, top if top is not None else 1.0, 1 / 255)
    return fit_transfer(values, patches)


@case(r"patches file \S*frac\.csv: patch 1: x,y,w,h must be whole pixels$", option="patches")
def patches_not_whole_pixels(ctx):
    read_patches(_patch_rows(ctx, "frac.csv", "0.5,0,8,8,1\n"))


@case(r"patches file \S*neg\.csv: patch 1: ", option="patches")
def patches_bad_rect(ctx):
    read_patches(_patch_rows(ctx, "neg.csv", "0,0,0,8,1\n"))


@case(r"patches file \S*rel\.csv: patch 2: relative brightness -1 must be a positive number",
      option="patches")
def patches_relative_not_positive(ctx):
    read_patches(_patch_rows(ctx, "rel.csv", "0,0,8,8,1\n8,0,8,8,-1\n"))


@case(r"patches file \S*few\.csv: 2 patches; a curve needs at least 4", option="patches")
def patches_too_few(ctx):
    read_patches(_patch_rows(ctx, "few.csv", "x,y,w,h,relative\n0,0,8,8,1\n8,0,8,8,0.5\n"))


@case(r"patches: patch 3: .*\(a 20x8 NIR frame\)$", option="patches")
def patch_outside_the_frame(ctx):
    measure_patches([np.zeros((8, 20), np.uint16)], WEDGE, 12)


@case(r"transfer: no frames to measure$")
def transfer_without_frames(ctx):
    measure_patches([], WEDGE, 12)


@case(r"transfer: patch 4 moved 0\.100 of full scale between frames", option="frames")
def transfer_patch_moved(ctx):
    _fit([0.8, 0.4, 0.2, 0.1], spread=0.1)


@case(r"transfer: patch 1 is saturated \(display 0\.990\); dim the target")
def transfer_patch_saturated(ctx):
    _fit([0.99, 0.4, 0.2, 0.1], top=0.99)


@case(r"transfer: patch 4 reads black \(display 0\.000\)")
def transfer_patch_black(ctx):
    _fit([0.8, 0.4, 0.2, 0.0])


@case(r"transfer: two patches have the same relative brightness$")
def transfer_same_brightness(ctx):
    _fit([0.8, 0.4, 0.2, 0.1], patches=WEDGE[:3] + [Patch((24, 0, 8, 8), 0.25)])


@case(r"transfer: patch 2 \(relative 0\.5\) reads no brighter than patch 3")
def transfer_not_brighter(ctx):
    _fit([0.8, 0.3, 0.4, 0.1])


@case(r"transfer: the patches span 2\.0x in brightness; a curve needs at least 4x")
def transfer_span_too_small(ctx):
    _fit([0.8, 0.7, 0.6, 0.5], patches=[Patch(p.rect, r) for p, r in
                                         zip(WEDGE, (1.0, 0.8, 0.6, 0.5))])


# -- the calibration model and single entries -------------------------------------
@case(r"\S*profile\.json: dark is 64x48 but the source is 640x480$")
def calibration_of_another_size(ctx):
    load_profile(ctx.profile()).check_size((640, 480))


@case(r"calibration: frame_size is 64x48 but the camera is 32x24$")
def frame_size_of_another_size(ctx):
    Calibration(frame_size=(64, 48)).check_size((32, 24), what="camera")


@case(r"\S*missing\.tiff: no such dark frame file$")
def single_dark_missing(ctx):
    resolve_calibration(CalibrationRequest(dark=str(ctx.tmp / "missing.tiff")))


@case(r"\S*garbage\.tiff: not a readable TIFF flat field \(\w+\)$")
def single_flat_unreadable(ctx):
    path = ctx.tmp / "garbage.tiff"
    path.write_bytes(b"garbage, not a TIFF")
    resolve_calibration(CalibrationRequest(flat=str(path)))


@case(r"\S*rgb\.tiff: dark frame must be a single-channel image, got shape \(8, 8, 3\)$")
def single_dark_in_colour(ctx):
    path = ctx.tmp / "rgb.tiff"
    tifffile.imwrite(path, np.zeros((8, 8, 3), np.uint16))
    read_tiff(str(path), "dark frame")


@case(r"\S*float_dark\.tiff: dark frame must be 16-bit, got float32$")
def single_dark_not_16_bit(ctx):
    path = ctx.tmp / "float_dark.tiff"
    tifffile.imwrite(path, np.zeros((8, 8), np.float32))
    resolve_calibration(CalibrationRequest(dark=str(path)))


@case(r"\S*zero_flat\.tiff: flat field must be finite and positive$")
def single_flat_with_zeros(ctx):
    path = ctx.tmp / "zero_flat.tiff"
    tifffile.imwrite(path, np.zeros((8, 8), np.float32))
    resolve_calibration(CalibrationRequest(flat=str(path)))


@case(r"mm per pixel: 20\.0 is outside 0\.\.10 mm$")
def single_scale_out_of_range(ctx):
    resolve_calibration(CalibrationRequest(mm_per_px=20.0))


# -- profiles: loading ------------------------------------------------------------
@case(r"\S*nope\.json: no such calibration profile$")
def profile_missing(ctx):
    ctx.load(str(ctx.tmp / "nope.json"))


@case(r"\S*: is a directory, expected a profile JSON file$")
def profile_is_a_directory(ctx):
    ctx.load(str(ctx.tmp))


@case(r"\S*bad\.json: not valid JSON \(line 2: ")
def profile_not_json(ctx):
    ctx.load_file("bad.json", b'{"schema_version": 1,\n "frame_size": [64, 48')


@case(r"\S*latin1\.json: cannot be read \(UnicodeDecodeError\)$")
def profile_not_utf8(ctx):
    ctx.load_file("latin1.json", b'{"system": "caf\xe9"}')


@case(r"\S*list\.json: expected a JSON object, got list$")
def profile_not_an_object(ctx):
    ctx.load_file("list.json", b"[1, 2]")


@case(r"\S*profile\.json: frame_size: missing$")
def profile_without_frame_size(ctx):
    ctx.load(ctx.profile(drop="frame_size"))


@case(r"\S*profile\.json: schema_version: 3 is not supported \(this version reads 2\)$")
def profile_of_another_version(ctx):
    ctx.load(ctx.profile(schema_version=3))


@case(r"\S*profile\.json: layout: expected \{\"wl_rect\"")
def profile_layout_not_an_object(ctx):
    ctx.load(ctx.profile(layout=[0, 0, 64, 48]))


@case(r"\S*profile\.json: layout: nir_rect: \[70, 0, 0, 48\] is empty")
def profile_layout_empty_inset(ctx):
    ctx.load(ctx.profile(layout={"wl_rect": [0, 0, 64, 48], "nir_rect": [70, 0, 0, 48]}))


@case(r"\S*profile\.json: layout: nir_rect: overlaps the WL inset by 480 px")
def profile_layout_overlapping_insets(ctx):
    ctx.load(ctx.profile(layout={"wl_rect": [0, 0, 64, 48], "nir_rect": [54, 0, 64, 48]}))


@case(r"\S*profile\.json: layout: wl_rect: the WL inset is 32x48 but frame_size is 64x48")
def profile_layout_not_frame_size(ctx):
    ctx.load(ctx.profile(layout={"wl_rect": [0, 0, 32, 48], "nir_rect": [64, 0, 64, 48]}))


@case(r"\S*profile\.json: ignore_rects: expected a list")
def profile_ignore_rects_not_a_list(ctx):
    ctx.load(ctx.profile(ignore_rects={"clock": [0, 0, 8, 8]}))


@case(r"\S*profile\.json: ignore_rects\[1\]: \[60, 0, 8, 8\] reaches past the 64x48 frame")
def profile_ignore_rect_outside(ctx):
    ctx.load(ctx.profile(ignore_rects=[[0, 0, 8, 8], [60, 0, 8, 8]]))


@case(r"\S*profile\.json: nir_transfer: 'gamma:x': the gamma must be a number")
def profile_transfer_bad(ctx):
    ctx.load(ctx.profile(nir_transfer="gamma:x"))


def _lut_profile(ctx, name, text):
    (ctx.tmp / name).write_text(text)
    ctx.load(ctx.profile(nir_transfer=f"lut:{ctx.tmp / name}"))


@case(r"\S*profile\.json: nir_transfer: \S*nolut\.csv: no such LUT file$")
def profile_transfer_lut_missing(ctx):
    ctx.load(ctx.profile(nir_transfer=f"lut:{ctx.tmp / 'nolut.csv'}"))


@case(r"\S*profile\.json: nir_transfer: \S*latin\.csv: cannot be read as CSV")
def profile_transfer_lut_unreadable(ctx):
    (ctx.tmp / "latin.csv").write_bytes(b"0,0\n\xff\xfe,1\n")
    ctx.load(ctx.profile(nir_transfer=f"lut:{ctx.tmp / 'latin.csv'}"))


@case(r"\S*profile\.json: nir_transfer: \S*words\.csv: row 2: expected two numbers")
def profile_transfer_lut_not_numbers(ctx):
    _lut_profile(ctx, "words.csv", "0,0\nhalf,0.2\n1,1\n")


@case(r"\S*profile\.json: nir_transfer: \S*one\.csv: 1 rows; a curve needs 2")
def profile_transfer_lut_one_row(ctx):
    _lut_profile(ctx, "one.csv", "display,linear\n0.5,0.2\n")


@case(r"\S*profile\.json: nir_transfer: \S*nan\.csv: values must be finite")
def profile_transfer_lut_not_finite(ctx):
    _lut_profile(ctx, "nan.csv", "0,0\n0.5,nan\n1,1\n")


@case(r"\S*profile\.json: nir_transfer: \S*codes\.csv: display values must be fractions")
def profile_transfer_lut_codes(ctx):
    _lut_profile(ctx, "codes.csv", "0,0\n128,0.2\n255,1\n")


@case(r"\S*profile\.json: nir_transfer: \S*down\.csv: display values must be strictly increasing")
def profile_transfer_lut_not_increasing(ctx):
    _lut_profile(ctx, "down.csv", "0,0\n0.5,0.2\n0.5,1\n")


@case(r"\S*profile\.json: nir_transfer: \S*dec\.csv: linear values must be >= 0, not decreasing")
def profile_transfer_lut_decreasing(ctx):
    _lut_profile(ctx, "dec.csv", "0,0\n0.5,0.6\n1,0.4\n")


@case(r"\S*profile\.json: nir_transfer: 'gamma:40': gamma 40 is outside 0.1..10")
def profile_transfer_gamma_out_of_range(ctx):
    ctx.load(ctx.profile(nir_transfer="gamma:40"))


@case(r"\S*profile\.json: nir_transfer: 'log' is not a transfer; expected linear")
def profile_transfer_unknown(ctx):
    ctx.load(ctx.profile(nir_transfer="log"))


@case(r"\S*profile\.json: nir_transfer: 7 is not a transfer")
def profile_transfer_not_a_string(ctx):
    ctx.load(ctx.profile(nir_transfer=7))


@case(r"\S*bad_layout\.json: layout: nir_rect: overlaps the WL inset")
def profile_save_overlapping_layout(ctx):
    from nirf_overlay.calibration.model import Layout
    save_profile(Calibration(layout=Layout((0, 0, 64, 48), (10, 10, 64, 48))),
                 str(ctx.tmp / "bad_layout.json"))


@case(r"\S*bad_size\.json: layout: wl_rect: the WL inset is 64x48 but frame_size is 32x32")
def profile_save_layout_of_another_size(ctx):
    from nirf_overlay.calibration.model import Layout
    save_profile(Calibration(frame_size=(32, 32), layout=Layout((0, 0, 64, 48), (64, 0, 64, 48))),
                 str(ctx.tmp / "bad_size.json"))


@case(r"\S*profile\.json: frame_size: \[64\.5, 48\] is not \[width, height\] in pixels$")
def profile_frame_size_not_whole(ctx):
    ctx.load(ctx.profile(frame_size=[64.5, 48]))


@case(r"\S*profile\.json: system: expected a string, got int$")
def profile_system_not_a_string(ctx):
    ctx.load(ctx.profile(system=3))


@case(r"\S*profile\.json: dark: expected a file name relative to the profile or null, got 7$")
def profile_dark_not_a_name(ctx):
    ctx.load(ctx.profile(dark=7))


@case(r"\S*profile\.json: dark: dark\.tiff: no such file \(looked in \S+\)$")
def profile_dark_file_missing(ctx):
    path = ctx.profile()
    os.remove(os.path.join(os.path.dirname(path), "dark.tiff"))
    ctx.load(path)


@case(r"\S*profile\.json: dark: dark\.tiff is not a readable image \(\w+\)$")
def profile_dark_corrupt(ctx):
    path = ctx.profile()
    pathlib.Path(os.path.dirname(path), "dark.tiff").write_bytes(b"garbage, not a TIFF")
    ctx.load(path)


@case(r"\S*profile\.json: dark: dark\.tiff is not a readable image \(no image data\)$")
def profile_dark_empty(ctx):
    path = ctx.profile()
    with pytest.warns(UserWarning):  # tifffile: a zero-size array is a nonconformant TIFF
        tifffile.imwrite(os.path.join(os.path.dirname(path), "dark.tiff"), np.zeros((0, W), np.uint16))
    ctx.load(path)


@case(r"\S*profile\.json: hot_pixels: hot_pixels\.png must be a single-channel image, got shape "
      r"\(48, 64, 3\)$")
def profile_hot_pixels_in_colour(ctx):
    import cv2

    path = ctx.profile()
    cv2.imwrite(os.path.join(os.path.dirname(path), "hot_pixels.png"), np.zeros((H, W, 3), np.uint8))
    ctx.load(path)


@case(r"\S*profile\.json: dark: dark\.tiff is float32, expected uint16 \(16-bit TIFF\)$")
def profile_dark_not_16_bit(ctx):
    path = ctx.profile()
    tifffile.imwrite(os.path.join(os.path.dirname(path), "dark.tiff"), np.zeros((H, W), np.float32))
    ctx.load(path)


@case(r"\S*profile\.json: dark: dark\.tiff is 64x48 but frame_size is 80x60$")
def profile_images_of_another_size(ctx):
    ctx.load(ctx.profile(frame_size=[80, 60]))


@case(r"\S*profile\.json: flat: flat\.tiff must be finite and positive everywhere$")
def profile_flat_with_nan(ctx):
    path = ctx.profile()
    flat = np.ones((H, W), np.float32)
    flat[0, 0] = np.nan
    tifffile.imwrite(os.path.join(os.path.dirname(path), "flat.tiff"), flat)
    ctx.load(path)


@case(r"\S*profile\.json: flat: flat\.tiff has mean 3, expected 1 \(normalised\)$")
def profile_flat_not_normalised(ctx):
    path = ctx.profile()
    tifffile.imwrite(os.path.join(os.path.dirname(path), "flat.tiff"), np.full((H, W), 3.0, np.float32))
    ctx.load(path)


@case(r"\S*profile\.json: homography_wl_to_nir: expected a 3x3 matrix of finite numbers$")
def profile_homography_not_3x3(ctx):
    ctx.load(ctx.profile(homography_wl_to_nir=[[1, 0], [0, 1]]))


@case(r"\S*profile\.json: homography_wl_to_nir: H\[2\]\[2\] is 0 \(not a usable homography\)$")
def profile_homography_at_infinity(ctx):
    ctx.load(ctx.profile(homography_wl_to_nir=[[1, 0, 0], [0, 1, 0], [0, 0, 0]]))


@case(r"\S*profile\.json: homography_wl_to_nir: singular or degenerate \(det of the linear part 0\)$")
def profile_homography_singular(ctx):
    ctx.load(ctx.profile(homography_wl_to_nir=[[0, 0, 1], [0, 0, 2], [0, 0, 1]]))


@case(r"\S*profile\.json: mm_per_px: expected a number or null, got '0\.1'$")
def profile_scale_not_a_number(ctx):
    ctx.load(ctx.profile(mm_per_px="0.1"))


@case(r"\S*profile\.json: working_distance_mm: -40 is outside \(0, 10000\)$")
def profile_distance_negative(ctx):
    ctx.load(ctx.profile(working_distance_mm=-40))


@case(r"\S*profile\.json: intrinsics: focal lengths must be positive$")
def profile_intrinsics_negative_focal_length(ctx):
    ctx.load(ctx.profile(intrinsics=[[-500, 0, 32], [0, 500, 24], [0, 0, 1]]))


@case(r"\S*profile\.json: distortion: expected a list of 4, 5, 8, 12 or 14 numbers \(OpenCV order\)$")
def profile_distortion_of_three(ctx):
    ctx.load(ctx.profile(distortion=[0.1, 0.2, 0.3]))


@case(r"\S*profile\.json: mm_per_pixel: unknown key \(a profile has ")
def profile_with_an_unknown_key(ctx):
    ctx.load(ctx.profile(mm_per_pixel=0.1))


# -- the tower's layout, found from its frames -------------------------------------------
@case(r"layout: no frames to look at$")
def layout_without_frames(ctx):
    from nirf_overlay.calibration.layout_detect import detect_layout

    detect_layout([])


@case(r"layout: frames must be \(H, W, 3\) uint8 BGR of one size$")
def layout_frames_of_two_sizes(ctx):
    from nirf_overlay.calibration.layout_detect import detect_layout

    detect_layout([np.zeros((90, 160, 3), np.uint8), np.zeros((72, 128, 3), np.uint8)])


# -- profiles: saving ---------------------------------------------------------------
@case(r"\S*p\.json: flat: must be finite and positive everywhere$")
def save_flat_with_zeros(ctx):
    save_profile(Calibration(flat=np.zeros((H, W), np.float32)), str(ctx.tmp / "p.json"))


@case(r"calibration: dark must be \(H, W\), got shape \(48, 64, 3\)$")
def save_dark_in_colour(ctx):
    save_profile(Calibration(dark=np.zeros((H, W, 3), np.float32)), str(ctx.tmp / "p.json"))


@case(r"calibration: flat is 64x49 but frame_size is 64x48$")
def save_images_of_two_sizes(ctx):
    save_profile(Calibration(dark=np.zeros((H, W), np.float32), flat=np.ones((H + 1, W), np.float32)),
                 str(ctx.tmp / "p.json"))


@case(r"\S*unwritable/hot_pixels\.png: could not write the hot-pixel map$")
def save_hot_pixels_unwritable(ctx):
    """The hot-pixel map's temporary file name is taken by a directory: OpenCV cannot write it."""
    out = ctx.tmp / "unwritable"
    (out / f"hot_pixels.tmp-{os.getpid()}.png").mkdir(parents=True)
    save_profile(Calibration(hot_pixels=np.ones((H, W), bool)), str(out / "profile.json"))


# -- the calibration dialog's worker ------------------------------------------------
@case(r"register: this source has no white-light channel$")
def grabber_register_without_white_light(ctx):
    """The worker reports, it does not raise: its message is what the dialog shows."""
    from nirf_overlay.engine.calibration_grabber import CalibrationGrabber, GrabberStatus
    from nirf_overlay.sources import SourceSpec

    frames, _ = dark_frames((32, 24), 2, rng=np.random.default_rng(3))
    grabber = CalibrationGrabber(SourceSpec(nir=ctx.image_sequence(str(ctx.tmp / "nir"), frames, "tiff"),
                                            nir_bits=12)).start()
    try:
        deadline = time.monotonic() + 30
        while grabber.snapshot().status == GrabberStatus.OPENING and time.monotonic() < deadline:
            time.sleep(0.02)
        grabber.capture("register", 2)
        while grabber.snapshot().status != GrabberStatus.ERROR and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        grabber.stop()
    state = grabber.snapshot()
    assert state.status == GrabberStatus.ERROR, state
    raise CalibrationError(state.message)


# -- the walk -----------------------------------------------------------------------
class _Context:
    """What the cases share: a scratch folder, rendered boards, a profile to break."""

    def __init__(self, tmp, image_sequence):
        self.tmp = tmp
        self.image_sequence = image_sequence
        self._profiles = 0
        rng = np.random.default_rng(41)
        self.poses = [pose_homography((200, 150), 6.0, square_mm=SQUARE_MM),
                      pose_homography((120, 100), 4.5, square_mm=SQUARE_MM, angle_deg=10, tilt_deg=15),
                      pose_homography((280, 200), 4.5, square_mm=SQUARE_MM, angle_deg=-8, tilt_deg=-12),
                      pose_homography((120, 210), 4.5, square_mm=SQUARE_MM, angle_deg=4, tilt_deg=10),
                      pose_homography((280, 95), 4.5, square_mm=SQUARE_MM, angle_deg=-12, tilt_deg=-8)]
        self.pairs = [render_pair(p, H_TRUE, wl_size=SIZE, nir_size=SIZE, square_mm=SQUARE_MM, rng=rng)
                      for p in self.poses]

    def profile(self, drop=None, **changes) -> str:
        """A fresh, valid 64x48 profile with ``changes`` written into its JSON."""
        self._profiles += 1
        path = str(self.tmp / f"profile{self._profiles}" / "profile.json")
        hot = np.zeros((H, W), bool)
        hot[3, 5] = True
        save_profile(Calibration(dark=np.full((H, W), 100, np.float32), flat=np.ones((H, W), np.float32),
                                 hot_pixels=hot, frame_size=(W, H)), path)
        doc = json.load(open(path))
        doc.update(changes)
        doc.pop(drop, None)
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

    @staticmethod
    def load(path):
        load_profile(path)

    def load_file(self, name: str, content: bytes):
        """Load a profile whose JSON file holds ``content``."""
        path = self.tmp / name
        path.write_bytes(content)
        self.load(str(path))


def _raise_site(tb):
    """(path inside nirf_overlay/calibration, line) of the innermost frame there, or None."""
    root = pathlib.Path(calibration_package.__file__).parent
    site = None
    while tb is not None:
        path = pathlib.Path(tb.tb_frame.f_code.co_filename)
        if root in path.parents:
            site = (path.relative_to(root).as_posix(), tb.tb_lineno)
        tb = tb.tb_next
    return site


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, image_sequence):
    """{case name: (the exception or None, its raise site)} — every case run once."""
    ctx = _Context(tmp_path_factory.mktemp("refusals"), image_sequence)
    out = {}
    for name, _, _, fn in CASES:
        try:
            fn(ctx)
        except Exception as e:  # noqa: BLE001 - the test says which type it must be
            out[name] = (e, _raise_site(e.__traceback__))
        else:
            out[name] = (None, None)
    return out


@pytest.mark.parametrize("name,pattern,option", [c[:3] for c in CASES], ids=[c[0] for c in CASES])
def test_refusal_is_one_line_naming_its_input(outcomes, name, pattern, option):
    error, _ = outcomes[name]
    assert error is not None, f"{name}: nothing was refused"
    assert isinstance(error, CalibrationError) and isinstance(error, NirfError), repr(error)
    msg = str(error)
    assert "\n" not in msg, msg
    assert not FLAG.search(msg), f"names a command-line flag: {msg}"
    assert re.match(pattern, msg), msg
    if option is None:
        assert not isinstance(error, CalibrationOptionError), msg
    else:
        assert isinstance(error, CalibrationOptionError) and error.option == option, msg
        assert option in OPTION_FLAGS  # the CLI can say which flag sets it


def _raise_sites():
    """{(path, line): (function, source)} of every ``raise`` of a refusal in the package."""
    root = pathlib.Path(calibration_package.__file__).parent
    refusals = {"CalibrationError", "CalibrationOptionError", "TransferError", "bad"}
    sites = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        source = path.read_text()
        tree = ast.parse(source)
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
                        and isinstance(node.exc.func, ast.Name) and node.exc.func.id in refusals):
                    sites[(rel, node.lineno)] = (func.name, ast.get_source_segment(source, node))
    return sites


def test_the_walk_reaches_every_refusal(outcomes):
    sites = _raise_sites()
    reached = {site for _, site in outcomes.values() if site is not None}
    unreachable = {site for site, (func, text) in sites.items()
                   if any(site[0] == f and func == fn and snippet in text
                          for f, fn, snippet in UNREACHABLE)}
    assert len(unreachable) == len(UNREACHABLE)
    missed = {f"{path}:{line} in {sites[(path, line)][0]}"
              for path, line in set(sites) - reached - unreachable}
    assert not missed, f"no case reaches: {sorted(missed)}"
    assert reached <= set(sites), f"raised elsewhere: {sorted(reached - set(sites))}"
