"""`nirf-overlay calibrate` end to end: real subprocesses on image sequences the test writes.

The library's refusals name their input in words (test_calibration_refusals.py);
here, where an option fixes one, the command adds the flag that sets it.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nirf_overlay.calibration.profile import load_profile
from nirf_overlay.calibration.registration import apply_homography
from nirf_overlay.calibration.synthetic import (
    dark_frames, flat_frames, pose_homography, render_pair, vignetting,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = (320, 240)
REG_SIZE = (480, 360)
H_TRUE = np.array([[0.9, 0.02, 20.0], [-0.015, 0.92, 12.0], [3e-5, -2e-5, 1.0]])
SQUARE_MM = 4.0
HOT = [(12, 30, 900), (250, 180, 400)]


def _run(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "nirf_overlay", "calibrate", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


@pytest.fixture(scope="module")
def data(tmp_path_factory, image_sequence):
    d = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(21)
    darks, dark_truth = dark_frames(SIZE, 8, rng=rng, hot=HOT)
    vig = vignetting(SIZE, strength=0.4)
    out = {"dir": d, "vig": vig, "dark_truth": dark_truth}
    out["dark"] = image_sequence(str(d / "dark"), darks, "tiff")
    out["flat"] = image_sequence(str(d / "flat"), flat_frames(SIZE, 8, rng=rng, level=1400,
                                                      dark_truth=dark_truth, vignette=vig), "png")
    out["saturated"] = image_sequence(str(d / "sat"), flat_frames(SIZE, 3, rng=rng, level=4500,
                                                          dark_truth=dark_truth, vignette=vig), "tiff")
    out["dim"] = image_sequence(str(d / "dim"), flat_frames(SIZE, 3, rng=rng, level=80,
                                                    dark_truth=dark_truth, vignette=vig), "tiff")
    poses = [pose_homography((240, 180), 7.0, square_mm=SQUARE_MM, angle_deg=2),
             pose_homography((140, 110), 5.0, square_mm=SQUARE_MM, angle_deg=10, tilt_deg=15),
             pose_homography((340, 250), 5.0, square_mm=SQUARE_MM, angle_deg=-8, tilt_deg=-12),
             pose_homography((140, 250), 5.0, square_mm=SQUARE_MM, angle_deg=5, perspective=(0.002, -0.003))]
    pairs = [render_pair(p, H_TRUE, wl_size=REG_SIZE, nir_size=REG_SIZE, square_mm=SQUARE_MM, rng=rng)
             for p in poses]
    out["wl"] = image_sequence(str(d / "wl"), [p[0] for p in pairs], "png")
    out["nir"] = image_sequence(str(d / "nir"), [p[1] for p in pairs], "tiff")
    # the same poses, but every other NIR frame seen through a shifted map: no single homography
    shift = np.array([[1, 0, 5.0], [0, 1, -4.0], [0, 0, 1]]) @ H_TRUE
    bad = [render_pair(p, H_TRUE if i % 2 == 0 else shift, wl_size=REG_SIZE, nir_size=REG_SIZE,
                       square_mm=SQUARE_MM, rng=rng)[1] for i, p in enumerate(poses)]
    out["nir_bad"] = image_sequence(str(d / "nir_bad"), bad, "tiff")
    blank_wl = [np.full((REG_SIZE[1], REG_SIZE[0], 3), 120, np.uint8)] * 3
    blank_nir = [np.full((REG_SIZE[1], REG_SIZE[0]), 500, np.uint16)] * 3
    out["blank_wl"] = image_sequence(str(d / "blank_wl"), blank_wl, "png")
    out["blank_nir"] = image_sequence(str(d / "blank_nir"), blank_nir, "tiff")
    return out


def _one_line_error(r, pattern):
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("nirf-overlay: error: "), lines[0]
    import re

    assert re.search(pattern, lines[0]), lines[0]


def test_dark_then_flat_build_one_profile(data):
    profile = str(data["dir"] / "prof" / "profile.json")
    r = _run("dark", "--nir", data["dark"], "--nir-bits", "12", "--out", profile,
             "--system", "bench rig")
    assert r.returncode == 0, r.stderr
    assert "dark: 8 frames" in r.stdout and "2 hot pixels" in r.stdout
    r = _run("flat", "--nir", data["flat"], "--nir-bits", "12", "--out", profile,
             "--exposure-ms", "20", "--gain", "1.5")
    assert r.returncode == 0, r.stderr
    assert "offset from profile dark" in r.stdout
    cal = load_profile(profile)
    assert cal.frame_size == SIZE and cal.system == "bench rig"
    assert np.abs(cal.dark - data["dark_truth"]).max() < 6
    assert {(int(x), int(y)) for y, x in np.argwhere(cal.hot_pixels)} == {(x, y) for x, y, _ in HOT}
    rms = float(np.sqrt(np.mean((cal.flat / data["vig"] - 1) ** 2)))
    assert rms < 0.02
    assert cal.exposure_ref_ms == 20 and cal.gain_ref == 1.5
    doc = json.load(open(profile))
    assert doc["dark"] == "dark.tiff" and doc["flat"] == "flat.tiff"


def test_register_writes_homography_and_scale(data):
    profile = str(data["dir"] / "reg" / "rig.json")
    r = _run("register", "--wl", data["wl"], "--nir", data["nir"], "--nir-bits", "12",
             "--square-mm", str(SQUARE_MM), "--board", "9x6", "--working-distance-mm", "45",
             "--out", profile)
    assert r.returncode == 0, r.stderr
    assert "register: 4 poses" in r.stdout
    cal = load_profile(profile)
    ys, xs = np.mgrid[0:REG_SIZE[1]:10, 0:REG_SIZE[0]:10]
    grid = np.c_[xs.ravel(), ys.ravel()].astype(float)
    err = np.linalg.norm(apply_homography(cal.homography_wl_to_nir, grid)
                         - apply_homography(H_TRUE, grid), axis=1)
    assert err.max() < 0.5
    assert abs(cal.mm_per_px * 7.0 - 1) < 0.01
    assert cal.extra["working_distance_mm"] == 45
    assert cal.dark is None and cal.frame_size == REG_SIZE


def test_flat_saturated_refused(data):
    r = _run("flat", "--nir", data["saturated"], "--nir-bits", "12",
             "--out", str(data["dir"] / "x" / "sat.json"))
    _one_line_error(r, r"flat: saturated: \d+\.\d+% of pixels reach full scale \(4095\)")
    assert not os.path.exists(data["dir"] / "x" / "sat.json")


def test_flat_too_dim_refused(data):
    profile = str(data["dir"] / "dimprof" / "profile.json")
    assert _run("dark", "--nir", data["dark"], "--nir-bits", "12", "--out", profile).returncode == 0
    r = _run("flat", "--nir", data["dim"], "--nir-bits", "12", "--out", profile)
    _one_line_error(r, r"flat: too dim: mean signal \d+ counts is \d\.\d% of full scale")
    assert load_profile(profile).flat is None  # the profile is left as it was


def test_twelve_bit_flat_in_sixteen_bit_files_names_nir_bits(data):
    # the 12-bit flat's TIFFs without --nir-bits: the fix is the bit depth, not more light
    r = _run("flat", "--nir", data["flat"], "--out", str(data["dir"] / "x12" / "p.json"))
    _one_line_error(r, r"flat: too dim for 16-bit data: .* fits in 12 bits .*; see --nir-bits$")
    assert "raise the exposure" not in r.stderr
    assert _run("flat", "--nir", data["flat"], "--nir-bits", "12", "--out",
                str(data["dir"] / "x12" / "p.json")).returncode == 0


def test_clipped_twelve_bit_flat_in_sixteen_bit_files_is_saturated(data):
    # the over-exposed 12-bit flat without --nir-bits: its pixels at 4095 are clipped
    r = _run("flat", "--nir", data["saturated"], "--out", str(data["dir"] / "s16" / "p.json"))
    _one_line_error(r, r"flat: saturated: \d+\.\d\d% of pixels sit at 4095, .* 12-bit camera in a "
                       r"16-bit container .*lower the exposure, gain or light.*; see --nir-bits$")


@pytest.mark.parametrize("args,pattern", [
    (("--wl", "blank_wl", "--nir", "blank_nir"),
     r"register: no corners found: no 9x6 checkerboard in the white light \(3 frames\); check the "
     r"board's inner-corner count \(9x6\) and focus/lighting; see --board$"),
    (("--wl", "wl", "--nir", "nir", "--board", "7x5"),
     r"register: no corners found: no 7x5 checkerboard .*; see --board$"),
    (("--wl", "wl", "--nir", "nir_bad", "--square-mm", "4"),
     r"register: RMS reprojection error \d+\.\d+ px exceeds the limit 1 px .*; see --max-rms$"),
    (("--wl", "wl", "--nir", "nir", "--min-poses", "5"),
     r"register: only 4 distinct pose\(s\) with the board in both channels, need 5; move or tilt "
     r"the board between captures; see --min-poses$"),
    (("--nir", "nir"), r"calibrate register: --wl: missing"),
], ids=["no-board", "wrong-board", "rms", "poses", "no-wl"])
def test_register_refused_naming_the_flag_that_fixes_it(data, args, pattern):
    args = [data.get(a, a) for a in args]  # data names stand for the sequences written
    r = _run("register", *args, "--out", str(data["dir"] / "x" / "r.json"))
    _one_line_error(r, pattern)
    assert not os.path.exists(data["dir"] / "x" / "r.json")


def test_update_refuses_profile_of_another_size(data):
    profile = str(data["dir"] / "mixed" / "profile.json")
    assert _run("dark", "--nir", data["dark"], "--nir-bits", "12", "--out", profile).returncode == 0
    r = _run("register", "--wl", data["wl"], "--nir", data["nir"], "--out", profile)
    _one_line_error(r, r"profile.json: dark is 320x240 but the calibration source is 480x360")


def test_bad_inputs_one_line(data):
    r = _run("dark", "--out", str(data["dir"] / "x" / "d.json"))
    _one_line_error(r, r"calibrate dark: no source given; this step needs --nir")
    r = _run("dark", "--nir", str(data["dir"] / "missing" / "%04d.tiff"), "--out",
             str(data["dir"] / "x" / "d.json"))
    _one_line_error(r, r"no such folder")
    r = _run("flat", "--nir", data["flat"], "--out", str(data["dir"] / "x" / "f.json"),
             "--calibration", str(data["dir"] / "nope.json"))
    _one_line_error(r, r"nope.json: no such calibration profile")
    r = _run("register", "--wl", data["wl"], "--nir", data["nir"], "--board", "9by6",
             "--out", str(data["dir"] / "x" / "r.json"))
    assert r.returncode == 2 and "COLSxROWS" in r.stderr


def test_register_charuco(charuco_sequences, tmp_path):
    ch = charuco_sequences
    out = str(tmp_path / "ch.json")
    r = _run("register", "--wl", ch["wl"], "--nir", ch["nir"], "--charuco", "--board", "7x5",
             "--dictionary", ch["charuco"].dictionary, "--square-mm", str(ch["square_mm"]),
             "--out", out)
    assert r.returncode == 0, r.stderr
    cal = load_profile(out)
    ys, xs = np.mgrid[0:480:10, 0:640:10]
    grid = np.c_[xs.ravel(), ys.ravel()].astype(float)
    err = np.linalg.norm(apply_homography(cal.homography_wl_to_nir, grid)
                         - apply_homography(ch["h_true"], grid), axis=1)
    assert err.max() < 0.5 and abs(cal.mm_per_px * ch["px_per_mm"] - 1) < 0.01
    r = _run("register", "--wl", ch["wl"], "--nir", ch["nir"], "--charuco", "--dictionary",
             "DICT_7X7_0", "--out", out)
    _one_line_error(r, r"ChArUco dictionary 'DICT_7X7_0': not an OpenCV ArUco dictionary .*; "
                       r"see --dictionary$")
