"""Replay bar on the real Engine over a recorded phantom session.

Real parts throughout: the phantom renders frames, the Recorder writes a
session (FFV1 NIR), SessionSource reads it back, the Engine runs the real
Pipeline on its worker thread, the settings model drives the engine through
its EngineLink, and the bar drives both as a user would.  Waits have
generous deadlines and only bound how long a failure takes to show.
"""

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PyQt5.QtCore import Qt  # noqa: E402
from PyQt5.QtTest import QTest  # noqa: E402
from PyQt5.QtWidgets import QLabel, QMainWindow  # noqa: E402

from nirf_overlay.settings import Settings  # noqa: E402

N_FRAMES = 20
MARKER_FRAME = 12


@pytest.fixture
def running(qtbot, replay_session, tmp_path):
    from nirf_overlay.engine import Engine
    from nirf_overlay.gui.replay_bar import ReplayBar
    from nirf_overlay.gui.settings_model import EngineLink, SettingsModel
    from nirf_overlay.recording import SessionSource

    path, frames, recorded = replay_session
    engine = Engine(SessionSource(path), Settings())
    win = QMainWindow()
    view = QLabel("video")
    view.setFocusPolicy(Qt.StrongFocus)
    win.setCentralWidget(view)
    qtbot.addWidget(win)
    model = SettingsModel(engine.settings, win)
    EngineLink(model, engine, parent=win)
    bar = ReplayBar(engine, model, win, presets_dir=tmp_path / "presets")
    win.setMenuWidget(bar)
    win.show()
    win.activateWindow()
    assert QTest.qWaitForWindowActive(win)
    view.setFocus()
    engine.start()
    yield engine, bar, win, frames, recorded
    bar.stop()
    engine.stop()


def _frame_at(qtbot, engine, index, *, need_b=False):
    """Take display frames until the one for ``index`` (with an A/B result) arrives."""
    got = {}

    def check():
        f = engine.latest()
        if f is not None and f.index == index and (f.result_b is not None or not need_b):
            got["frame"] = f
        return "frame" in got

    qtbot.waitUntil(check, timeout=60_000)
    return got["frame"]


def test_seek_step_and_markers_show_frame_n_of_the_recording(qtbot, running):
    engine, bar, win, frames, _ = running
    qtbot.mouseClick(bar.play_button, Qt.LeftButton)
    assert engine.paused
    assert bar.slider.maximum() == N_FRAMES - 1

    bar.slider.setValue(7)  # as a click on the slider does
    shown = _frame_at(qtbot, engine, 7)
    assert np.array_equal(shown.pair.nir, frames[7])  # frame N on screen is frame N
    qtbot.waitUntil(lambda: bar.frame_box.value() == 7, timeout=10_000)
    assert bar.time_label.text().startswith("00:00.23")  # 7 / 30 s

    qtbot.keyClick(win.centralWidget(), Qt.Key_Right)
    shown = _frame_at(qtbot, engine, 8)
    assert np.array_equal(shown.pair.nir, frames[8])
    qtbot.keyClick(win.centralWidget(), Qt.Key_Left)
    qtbot.keyClick(win.centralWidget(), Qt.Key_Left)
    assert np.array_equal(_frame_at(qtbot, engine, 6).pair.nir, frames[6])

    texts = [a.text() for a in bar.marker_menu.actions()]
    assert texts == [f"00:00.40  frame {MARKER_FRAME}  close to the rim"]
    bar.marker_menu.actions()[0].trigger()
    assert np.array_equal(_frame_at(qtbot, engine, MARKER_FRAME).pair.nir, frames[MARKER_FRAME])


def test_recorded_and_current_settings_go_through_the_model(qtbot, running):
    engine, bar, win, frames, recorded = running
    choice, model = bar.choice, bar.model
    tuned = Settings()
    tuned.segment.threshold = 3.0
    model.replace(tuned)
    assert choice.settings_box.isEnabled()
    choice.settings_box.setCurrentIndex(choice.settings_box.findData("recorded"))
    assert model.settings == recorded and engine.settings == recorded
    choice.settings_box.setCurrentIndex(choice.settings_box.findData("current"))
    assert model.settings == tuned and engine.settings == tuned
    # Tuning while "recorded" is chosen turns the choice back to "current" ...
    choice.settings_box.setCurrentIndex(choice.settings_box.findData("recorded"))
    model.set("segment.threshold", 4.0)
    assert choice.settings_box.currentData() == "current"
    retuned = recorded.copy()
    retuned.segment.threshold = 4.0
    # ... and "current" then means the settings just tuned.
    choice.settings_box.setCurrentIndex(choice.settings_box.findData("recorded"))
    choice.settings_box.setCurrentIndex(choice.settings_box.findData("current"))
    assert model.settings == retuned and engine.settings == retuned


def test_ab_with_the_recorded_settings_on_the_real_engine(qtbot, running):
    engine, bar, win, frames, recorded = running
    bar.toggle_play()
    assert engine.paused
    bar.seek(4)
    _frame_at(qtbot, engine, 4)

    # A/B: A overlay (current), B the recorded "nir" mode, on the same frame.
    assert [bar.choice.b_box.itemText(i) for i in range(bar.choice.b_box.count())] == [
        "B: recorded", "B: defaults"]
    qtbot.mouseClick(bar.choice.ab_button, Qt.LeftButton)
    assert engine.ab
    bar.seek(5)
    shown = _frame_at(qtbot, engine, 5, need_b=True)
    a, b = shown.composite, shown.composite_b
    w, h = shown.pair.size
    assert a.shape == b.shape == (h, w, 3)
    # B shows monochrome NIR (equal channels), A the coloured overlay on white light.
    assert np.array_equal(b[..., 0], b[..., 1]) and np.array_equal(b[..., 1], b[..., 2])
    assert not np.array_equal(a, b)
    qtbot.keyClick(win.centralWidget(), Qt.Key_B)
    assert not engine.ab and not bar.choice.ab_button.isChecked()
