"""One rule decides which calibration applies (calibration.resolve), with real sources."""

import os

import numpy as np
import pytest
import tifffile

from nirf_overlay.calibration import Calibration, CalibrationRequest, resolve_calibration
from nirf_overlay.calibration.profile import save_profile
from nirf_overlay.errors import CalibrationError
from nirf_overlay.sources import SourceSpec, default_sample, open_source

W, H = 64, 48


@pytest.fixture
def phantom():
    with open_source(SourceSpec(phantom=True, size=(W, H), seed=2, options={"frames": 2})) as src:
        yield src


@pytest.fixture
def plain(tmp_path, image_sequence):
    """A source with no calibration of its own: two image sequences."""
    rng = np.random.default_rng(1)
    wl = image_sequence(tmp_path / "wl", [rng.integers(0, 255, (H, W, 3), np.uint8)] * 2, "png")
    nir = image_sequence(tmp_path / "nir", [rng.integers(0, 4095, (H, W), np.uint16)] * 2, "tiff")
    with open_source(SourceSpec(wl=wl, nir=nir)) as src:
        yield src


def _profile(tmp_path, mm_per_px, size=(W, H)) -> str:
    path = str(tmp_path / f"p{mm_per_px}.json")
    save_profile(Calibration(mm_per_px=mm_per_px, frame_size=size), path)
    return path


def test_the_sources_own_calibration_applies_when_none_is_asked_for(phantom):
    got = resolve_calibration(CalibrationRequest(), phantom)
    assert got.calibration.mm_per_px == pytest.approx(phantom.own_calibration().mm_per_px)
    assert got.origin == "the source's own" and got.note == ""


def test_a_requested_profile_wins_over_the_sources_own(phantom, tmp_path):
    got = resolve_calibration(CalibrationRequest(profile=_profile(tmp_path, 0.2)), phantom)
    assert got.calibration.mm_per_px == 0.2
    assert got.origin.startswith("profile ")


def test_single_entries_replace_those_of_the_chosen_calibration(phantom, tmp_path):
    own = phantom.own_calibration()
    dark = np.full((H, W), 77, np.uint16)
    tifffile.imwrite(tmp_path / "dark.tiff", dark)
    got = resolve_calibration(CalibrationRequest(dark=str(tmp_path / "dark.tiff"), mm_per_px=0.3),
                              phantom).calibration
    assert got.mm_per_px == 0.3
    np.testing.assert_array_equal(got.dark, dark.astype(np.float32))
    np.testing.assert_array_equal(got.flat, own.flat)  # the rest is the source's own
    assert phantom.own_calibration().mm_per_px == own.mm_per_px  # the original is untouched


def test_a_carried_calibration_is_used_only_without_an_own_one(phantom, plain):
    carried = Calibration(mm_per_px=0.5, frame_size=(W, H))
    assert resolve_calibration(CalibrationRequest(carried=carried), plain).calibration is carried
    got = resolve_calibration(CalibrationRequest(carried=carried), phantom).calibration
    assert got.mm_per_px != 0.5


def test_a_carried_calibration_of_another_size_is_dropped_with_a_note(plain):
    carried = Calibration(mm_per_px=0.5, frame_size=(W * 2, H * 2))
    got = resolve_calibration(CalibrationRequest(carried=carried), plain)
    assert got.calibration is None and got.origin == "none"
    assert "measuring in pixels" in got.note and "128x96" in got.note


def test_a_chosen_profile_of_another_size_is_refused_in_one_line(plain, tmp_path):
    path = _profile(tmp_path, 0.2, size=(W * 2, H * 2))
    with pytest.raises(CalibrationError, match=r"frame_size is 128x96 but the source is 64x48"):
        resolve_calibration(CalibrationRequest(profile=path), plain)


def test_nothing_asked_and_nothing_own_means_pixels(plain):
    assert resolve_calibration(None, plain).calibration is None


@pytest.mark.parametrize("mm", [0.0, -1.0, 10.0, 50.0])
def test_an_impossible_mm_per_px_is_refused_without_naming_a_flag(plain, mm):
    with pytest.raises(CalibrationError, match=r"^mm per pixel: .* is outside 0\.\.10 mm$"):
        resolve_calibration(CalibrationRequest(mm_per_px=mm), plain)


def test_the_bundled_sample_brings_its_profile():
    spec = default_sample()
    if not os.path.isfile(spec.profile or ""):
        pytest.skip("no bundled sample profile in this install")
    with open_source(spec) as src:
        got = resolve_calibration(CalibrationRequest(), src).calibration
    assert got.mm_per_px == pytest.approx(0.1172, abs=1e-4) and got.dark is not None
