"""The guided calibration dialog, offscreen: live preview, capture, readouts, save.

Each test gets a fresh dialog on a real source (image sequences written by
the test, read through the same readers as the CLI; or the phantom) and
closes it through ``qtbot.addWidget``; the conftest fixture fails a test that
leaves a window behind, and every test checks the worker thread has ended.
"""

import os

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from nirf_overlay.calibration.profile import load_profile  # noqa: E402
from nirf_overlay.calibration.synthetic import (  # noqa: E402
    dark_frames, flat_frames, pose_homography, render_pair, vignetting,
)
from nirf_overlay.sources import SourceSpec  # noqa: E402

SIZE = (160, 120)
HOT = [(20, 30, 700)]
WAIT_MS = 20000


@pytest.fixture(scope="module")
def sequences(tmp_path_factory, image_sequence):
    d = tmp_path_factory.mktemp("dlg")
    rng = np.random.default_rng(31)
    darks, dark_truth = dark_frames(SIZE, 6, rng=rng, hot=HOT)
    vig = vignetting(SIZE, strength=0.35)
    flats = flat_frames(SIZE, 6, rng=rng, level=1500, dark_truth=dark_truth, vignette=vig)
    return {"dark": image_sequence(str(d / "dark"), darks, "tiff"),
            "flat": image_sequence(str(d / "flat"), flats, "tiff"),
            "vig": vig}


@pytest.fixture
def make_dialog(qtbot):
    from nirf_overlay.gui.calibration_dialog import CalibrationDialog

    made = []

    def make(spec, **kw):
        dlg = CalibrationDialog(spec, **kw)
        qtbot.addWidget(dlg)  # pytest-qt closes and deletes it after the test
        dlg.show()
        made.append(dlg)
        return dlg

    yield make
    for dlg in made:
        dlg.close()
        dlg._grabber.stop()
        assert not dlg._grabber.running, "calibration worker still running after close"


def _capture(qtbot, dlg, step, frames):
    dlg.set_step(step)
    dlg.frames.setValue(frames)
    qtbot.waitUntil(lambda: dlg.capture_button.isEnabled(), timeout=WAIT_MS)
    dlg.capture_button.click()
    qtbot.waitUntil(lambda: dlg.save_button.isEnabled() or dlg._state.status == "error",
                    timeout=WAIT_MS)


def test_dark_then_flat_captured_and_saved(qtbot, make_dialog, sequences, tmp_path):
    profile = str(tmp_path / "prof" / "profile.json")
    dlg = make_dialog(SourceSpec(nir=sequences["dark"], nir_bits=12), profile_path=profile)
    qtbot.waitUntil(lambda: dlg.preview.pixmap() is not None and not dlg.preview.pixmap().isNull(),
                    timeout=WAIT_MS)
    # live readouts of a light-off frame: nothing saturated, signal near the 100-count offset
    qtbot.waitUntil(lambda: dlg.read_signal.text() != "-", timeout=WAIT_MS)
    assert dlg.read_saturation.text().startswith("0.000 % at 4095")
    assert 90 <= int(dlg.read_signal.text().split()[0]) <= 110
    _capture(qtbot, dlg, "dark", 6)
    assert dlg._state.status == "done", dlg.status.text()
    assert "dark: 6 frames" in dlg.result_label.text() and "1 hot pixels" in dlg.result_label.text()
    dlg.save_button.click()
    assert dlg.profile_path == profile
    cal = load_profile(profile)
    assert cal.dark.shape == (SIZE[1], SIZE[0]) and cal.hot_pixels[30, 20]
    dlg.close_button.click()  # something was saved: accepted
    assert dlg.result() == dlg.Accepted
    qtbot.waitUntil(lambda: not dlg._grabber.running, timeout=WAIT_MS)

    # the flat, in a second dialog on the flat target, uses the profile's dark
    dlg2 = make_dialog(SourceSpec(nir=sequences["flat"], nir_bits=12), profile_path=profile)
    _capture(qtbot, dlg2, "flat", 6)
    assert dlg2._state.status == "done", dlg2.status.text()
    assert "offset from profile dark" in dlg2.result_label.text()
    dlg2.save_button.click()
    cal = load_profile(profile)
    assert cal.dark is not None and cal.flat is not None
    rms = float(np.sqrt(np.mean((cal.flat / sequences["vig"] - 1) ** 2)))
    assert rms < 0.02


def test_refusal_is_shown_not_raised(qtbot, make_dialog, sequences, tmp_path):
    """A dark captured from a bright target is refused in the status line; nothing is saved."""
    dlg = make_dialog(SourceSpec(nir=sequences["flat"], nir_bits=12),
                      profile_path=str(tmp_path / "p.json"))
    _capture(qtbot, dlg, "dark", 3)
    assert dlg._state.status == "error"
    assert "is the light off" in dlg.status.text()
    assert not dlg.save_button.isEnabled()
    dlg.close_button.click()
    assert dlg.result() == dlg.Rejected and dlg.profile_path is None
    assert not os.path.exists(tmp_path / "p.json")


def test_register_readouts_and_result(qtbot, make_dialog, image_sequence, tmp_path):
    size = (320, 240)
    h_true = np.array([[0.92, 0.02, 10.0], [-0.015, 0.93, 8.0], [2e-5, -1e-5, 1.0]])
    rng = np.random.default_rng(32)
    poses = [pose_homography((160, 120), 5.0, square_mm=3.0),
             pose_homography((110, 90), 3.6, square_mm=3.0, angle_deg=10, tilt_deg=15),
             pose_homography((210, 150), 3.6, square_mm=3.0, angle_deg=-8, tilt_deg=-12)]
    pairs = [render_pair(p, h_true, wl_size=size, nir_size=size, square_mm=3.0, rng=rng) for p in poses]
    wl = image_sequence(str(tmp_path / "wl"), [p[0] for p in pairs], "png")
    nir = image_sequence(str(tmp_path / "nir"), [p[1] for p in pairs], "tiff")
    profile = str(tmp_path / "reg.json")
    dlg = make_dialog(SourceSpec(wl=wl, nir=nir, nir_bits=12), profile_path=profile)
    dlg.set_step("register")
    qtbot.waitUntil(lambda: dlg.read_corners.text().startswith("WL 54/54, NIR 54/54"), timeout=WAIT_MS)
    dlg.square_mm.setValue(3.0)
    _capture(qtbot, dlg, "register", 3)
    assert dlg._state.status == "done", dlg.status.text()
    assert "px RMS" in dlg.read_error.text()
    assert float(dlg.read_error.text().split()[0]) < 0.3
    dlg.save_button.click()
    cal = load_profile(profile)
    assert abs(cal.mm_per_px * 5.0 - 1) < 0.01


def test_opens_on_phantom_and_closes_cleanly(qtbot, make_dialog):
    dlg = make_dialog(SourceSpec(phantom=True, size=(320, 180), options={"frames": 20}))
    qtbot.waitUntil(lambda: dlg._state is not None and dlg._state.frames_seen > 0, timeout=60000)
    assert dlg._state.size == (320, 180) and dlg._state.has_wl
    assert dlg.read_signal.text() != "-"
    dlg.set_step("register")
    qtbot.waitUntil(lambda: dlg.read_corners.text().startswith("WL 0/54"), timeout=WAIT_MS)
    assert "board not found" in dlg.read_flags.text()
    dlg.reject()
    qtbot.waitUntil(lambda: not dlg._grabber.running, timeout=WAIT_MS)


def test_bad_source_reported_in_dialog(qtbot, make_dialog, tmp_path):
    dlg = make_dialog(SourceSpec(nir=str(tmp_path / "none" / "%04d.tiff")))
    qtbot.waitUntil(lambda: "no such folder" in dlg.status.text(), timeout=WAIT_MS)
    assert not dlg.capture_button.isEnabled()


def test_register_without_white_light_refused_in_words(qtbot, make_dialog, sequences, tmp_path):
    """A NIR-only source cannot register: the status line says so, naming no command-line flag."""
    dlg = make_dialog(SourceSpec(nir=sequences["dark"], nir_bits=12),
                      profile_path=str(tmp_path / "p.json"))
    dlg.set_step("register")
    qtbot.waitUntil(lambda: dlg.capture_button.isEnabled(), timeout=WAIT_MS)
    dlg.capture_button.click()
    text = dlg.status.text()
    assert text.startswith("register: this source has no white-light channel"), text
    assert "--" not in text
    assert not dlg.save_button.isEnabled()


def test_register_charuco_in_dialog(qtbot, make_dialog, charuco_sequences, tmp_path):
    ch = charuco_sequences
    dlg = make_dialog(SourceSpec(wl=ch["wl"], nir=ch["nir"], nir_bits=12),
                      profile_path=str(tmp_path / "c.json"))
    dlg.set_step("register")
    dlg.board_cols.setValue(ch["charuco"].board[0])
    dlg.board_rows.setValue(ch["charuco"].board[1])
    dlg.dictionary.setCurrentText(ch["charuco"].dictionary)
    dlg.charuco.setChecked(True)
    qtbot.waitUntil(lambda: dlg.read_corners.text().startswith("WL 35/35"), timeout=WAIT_MS)
    dlg.square_mm.setValue(ch["square_mm"])
    _capture(qtbot, dlg, "register", 3)
    assert dlg._state.status == "done", dlg.status.text()
    dlg.save_button.click()
    cal = load_profile(str(tmp_path / "c.json"))
    assert abs(cal.mm_per_px * ch["px_per_mm"] - 1) < 0.01
