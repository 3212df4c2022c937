"""Calibration profiles: round trip, the format on disk, and which malformed values are refused.

(That every refusal is one line naming the profile and the entry is walked in
test_calibration_refusals.py; here, the variants of each entry that must be
refused.)
"""

import json
import os
import re

import cv2
import numpy as np
import pytest
import tifffile

from nirf_overlay.calibration import Calibration, CalibrationRequest, resolve_calibration
from nirf_overlay.calibration.profile import SCHEMA_VERSION, load_profile, save_profile
from nirf_overlay.errors import CalibrationError, NirfError

W, H = 64, 48


def _calibration(rng) -> Calibration:
    dark = (100 + 3 * rng.standard_normal((H, W))).astype(np.float32)
    flat = (1 + 0.2 * rng.random((H, W))).astype(np.float32)
    flat /= flat.mean()
    hot = np.zeros((H, W), bool)
    hot[3, 5] = hot[40, 60] = True
    h = np.array([[0.95, 0.02, 4.0], [-0.01, 0.97, -3.0], [2e-5, -1e-5, 1.0]])
    cal = Calibration(dark=dark, flat=flat, homography_wl_to_nir=h, mm_per_px=0.125,
                      frame_size=(W, H), exposure_ref_ms=20.0, gain_ref=2.0, hot_pixels=hot,
                      system="test tower", notes="bench")
    cal.extra["working_distance_mm"] = 45.0
    return cal


@pytest.fixture
def profile(tmp_path):
    cal = _calibration(np.random.default_rng(0))
    path = str(tmp_path / "profile.json")
    save_profile(cal, path, created="2026-01-02T03:04:05+00:00")
    return path, cal


def test_round_trip_same_arrays_and_values(profile):
    path, cal = profile
    got = load_profile(path)
    assert got.frame_size == (W, H)
    assert got.dark.dtype == np.float32 and got.dark.shape == (H, W)
    # the dark is stored as 16-bit counts: equal to the rounded original
    np.testing.assert_array_equal(got.dark, np.rint(cal.dark))
    assert got.flat.dtype == np.float32 and got.flat.shape == (H, W)
    np.testing.assert_allclose(got.flat, cal.flat, rtol=1e-6)
    assert abs(float(got.flat.mean(dtype=np.float64)) - 1) < 1e-6
    assert got.hot_pixels.dtype == bool
    np.testing.assert_array_equal(got.hot_pixels, cal.hot_pixels)
    np.testing.assert_allclose(got.homography_wl_to_nir, cal.homography_wl_to_nir, rtol=1e-12)
    assert got.mm_per_px == 0.125 and got.exposure_ref_ms == 20.0 and got.gain_ref == 2.0
    assert got.extra["working_distance_mm"] == 45.0
    assert got.extra["created"] == "2026-01-02T03:04:05+00:00"
    assert got.system == "test tower" and got.notes == "bench"
    assert got.source_path == path
    # the files sit beside the JSON under the documented names
    doc = json.load(open(path))
    assert doc["schema_version"] == SCHEMA_VERSION
    assert (doc["dark"], doc["flat"], doc["hot_pixels"]) == ("dark.tiff", "flat.tiff", "hot_pixels.png")
    assert tifffile.imread(os.path.join(os.path.dirname(path), "dark.tiff")).dtype == np.uint16


def test_round_trip_then_apply_recovers_uniform_signal(profile, tmp_path):
    """Apply as the pipeline does: (nir - dark) / flat is flat for a flat scene."""
    path, cal = profile
    got = load_profile(path)
    nir = np.rint(got.dark + 1000.0 * got.flat).astype(np.uint16)
    corrected = (nir.astype(np.float32) - got.dark) / got.flat
    assert np.abs(corrected - 1000).max() < 1.0
    # and a save of the loaded profile is identical again (stable format)
    again = str(tmp_path / "again" / "copy.json")
    save_profile(got, again)
    back = load_profile(again)
    np.testing.assert_array_equal(back.dark, got.dark)
    np.testing.assert_array_equal(back.flat, got.flat)
    assert sorted(os.listdir(os.path.dirname(again))) == [
        "copy.json", "copy_dark.tiff", "copy_flat.tiff", "copy_hot_pixels.png"]


def test_a_requested_profile_is_loaded_and_checked_against_the_size(profile):
    path, _ = profile
    request = CalibrationRequest(profile=path)
    cal = resolve_calibration(request, size=(W, H)).calibration
    assert cal.mm_per_px == 0.125
    with pytest.raises(CalibrationError, match=r"dark is 64x48 but the source is 32x24"):
        resolve_calibration(request, size=(32, 24))


def _edit(path, **changes):
    doc = json.load(open(path))
    doc.update(changes)
    with open(path, "w") as f:
        json.dump(doc, f)


def _refused(path, pattern):
    with pytest.raises(CalibrationError) as e:
        load_profile(path)
    msg = str(e.value)
    assert "\n" not in msg and not re.search(r"(^|\s)--[a-z]", msg)  # the GUI shows it too
    assert msg.startswith(path)
    assert isinstance(e.value, NirfError)
    assert re.search(pattern, msg), msg
    return msg


@pytest.mark.parametrize("version", [3, 0, "1", None, True])
def test_wrong_schema_version(profile, version):
    path, _ = profile
    _edit(path, schema_version=version)
    _refused(path, r"schema_version: .* is not supported")


@pytest.mark.parametrize("key", ["schema_version", "frame_size"])
def test_missing_required_entry(profile, key):
    path, _ = profile
    doc = json.load(open(path))
    del doc[key]
    json.dump(doc, open(path, "w"))
    _refused(path, rf"{key}: missing")


@pytest.mark.parametrize("key,dtype,expected", [
    ("dark", np.float32, "uint16"), ("dark", np.uint8, "uint16"),
    ("flat", np.uint16, "float32"), ("flat", np.float64, "float32"),
    ("hot_pixels", np.uint16, "an 8-bit mask"),
])
def test_image_of_the_wrong_dtype(profile, key, dtype, expected):
    path, _ = profile
    name = json.load(open(path))[key]
    full = os.path.join(os.path.dirname(path), name)
    arr = np.ones((H, W), dtype)
    if name.endswith(".png"):
        assert cv2.imwrite(full, arr)
    else:
        tifffile.imwrite(full, arr)
    _refused(path, rf"{key}: {name} is {np.dtype(dtype).name}, expected {expected}")


@pytest.mark.parametrize("key", ["dark", "flat", "hot_pixels"])
def test_missing_image_file(profile, key):
    path, _ = profile
    name = json.load(open(path))[key]
    os.remove(os.path.join(os.path.dirname(path), name))
    _refused(path, rf"{key}: {name}: no such file")


@pytest.mark.parametrize("value", [
    [[1, 0], [0, 1]], [[1, 0, 0], [0, 1, 0]], [[1, 0, 0], [0, 1, 0], [0, 0]], "identity",
    [[1, 0, 0], [0, 1, 0], [0, 0, None]], [[1, 0, 0], [0, 1, 0], [0, 0, float("nan")]],
])
def test_non_3x3_homography(profile, value):
    path, _ = profile
    doc = json.load(open(path))
    doc["homography_wl_to_nir"] = value
    with open(path, "w") as f:
        f.write(json.dumps(doc))
    _refused(path, r"homography_wl_to_nir: expected a 3x3 matrix")


@pytest.mark.parametrize("key,value,pattern", [
    ("mm_per_px", -0.1, r"mm_per_px: -0.1 is outside"),
    ("mm_per_px", 0, r"mm_per_px: 0 is outside"),
    ("mm_per_px", "0.1", r"mm_per_px: expected a number"),
    ("exposure_ref_ms", -5, r"exposure_ref_ms: -5 is outside"),
    ("gain_ref", [1], r"gain_ref: expected a number"),
    ("working_distance_mm", -40, r"working_distance_mm: -40 is outside"),
    ("frame_size", [64], r"frame_size: .* is not \[width, height\]"),
    ("frame_size", [64.5, 48], r"frame_size: .* is not \[width, height\]"),
    ("dark", 7, r"dark: expected a file name"),
    ("system", 3, r"system: expected a string"),
    ("intrinsics", [[1, 0]], r"intrinsics: expected a 3x3 matrix"),
    ("distortion", [0.1, 0.2, 0.3], r"distortion: expected a list of 4, 5, 8, 12 or 14"),
])
def test_malformed_values(profile, key, value, pattern):
    path, _ = profile
    _edit(path, **{key: value})
    _refused(path, pattern)


def test_null_entries_and_unknown_keys_are_kept(tmp_path):
    path = str(tmp_path / "only_scale.json")
    with open(path, "w") as f:
        json.dump({"schema_version": 1, "frame_size": None, "mm_per_px": 0.2,
                   "future_key": {"a": 1}}, f)
    cal = load_profile(path)
    assert cal.dark is None and cal.flat is None and cal.homography_wl_to_nir is None
    assert cal.mm_per_px == 0.2 and cal.frame_size is None
    assert cal.extra["future_key"] == {"a": 1}
    save_profile(cal, path)
    assert json.load(open(path))["future_key"] == {"a": 1}


def test_a_refused_save_writes_nothing(tmp_path):
    cal = Calibration(dark=np.zeros((H, W), np.float32), flat=np.ones((H + 1, W), np.float32))
    with pytest.raises(CalibrationError, match="flat is 64x49 but frame_size is 64x48"):
        save_profile(cal, str(tmp_path / "p.json"))
    assert not os.path.exists(tmp_path / "p.json")


def test_sample_profile_loads_if_present():
    """The bundled sample's profile (written by the phantom's make-sample) is in this format."""
    from nirf_overlay.sources import SAMPLE_PROFILE

    cal = load_profile(str(SAMPLE_PROFILE))
    assert cal.frame_size is not None
    assert cal.mm_per_px is not None and cal.mm_per_px > 0
    w, h = cal.frame_size
    assert cal.dark is not None and cal.dark.shape == (h, w)
    assert cal.flat is not None and cal.flat.shape == (h, w)
    cal.check_size((w, h))  # the sample's own size is accepted


def test_calibration_core_imports_without_qt():
    """The CLI, batch workers and tests run the calibration code with no Qt at all."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'PyQt5':\n"
        "            raise ImportError('PyQt5 blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import nirf_overlay.calibration, nirf_overlay.calibration.photometric\n"
        "import nirf_overlay.calibration.registration, nirf_overlay.calibration.profile\n"
        "import nirf_overlay.engine.calibration_grabber, nirf_overlay.calibration.steps\n"
        "import nirf_overlay.calibration.synthetic, nirf_overlay.cli.calibrate\n"
        "assert not any(m.startswith('PyQt5') for m in sys.modules)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert r.returncode == 0, r.stderr
