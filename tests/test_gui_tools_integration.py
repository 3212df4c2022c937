"""The tools inside the real main window, replaying a recorded session.

Checks the seams between the widgets and the window: the replay bar's
"Recorded" choice replaces the settings model, which the panel, the toolbar
and the engine follow; panel edits reach the engine and turn "recorded" back
to "current"; replay keys work from the video view; presets saved in the
panel are offered as A/B side B.
"""

import pytest

pytest.importorskip("pytestqt")

from PyQt5.QtCore import Qt  # noqa: E402
from PyQt5.QtTest import QTest  # noqa: E402

from nirf_overlay.settings import Settings  # noqa: E402

WAIT_MS = 60_000


@pytest.fixture
def window(qtbot, replay_session, tmp_path, monkeypatch):
    monkeypatch.setenv("NIRF_OVERLAY_CONFIG_DIR", str(tmp_path / "config"))
    from nirf_overlay.engine import Engine
    from nirf_overlay.gui.main_window import MainWindow
    from nirf_overlay.recording import SessionSource

    path, frames, recorded = replay_session
    engine = Engine(SessionSource(path), Settings())
    win = MainWindow(engine, snapshot_dir=tmp_path / "snaps", recording_dir=tmp_path / "rec",
                     presets_dir=tmp_path / "presets")
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    win.activateWindow()
    assert QTest.qWaitForWindowActive(win)
    return win, frames, recorded


def test_tools_work_inside_the_main_window(qtbot, window):
    win, frames, recorded = window
    bar, panel, engine = win.replay_bar, win.panel, win.engine
    choice = bar.choice

    # "Recorded" replaces the model: engine, panel and toolbar follow it.
    choice.settings_box.setCurrentIndex(choice.settings_box.findData("recorded"))
    assert win.model.settings == recorded and engine.settings == recorded
    assert panel.editor("display.mode").currentData() == "nir"
    assert panel.editor("segment.threshold").value() == pytest.approx(2.5)
    assert win.acts.modes["nir"].isChecked()

    # Tuning in the panel reaches the engine; the bar then says "current".
    panel.editor("segment.threshold").setValue(3.5)
    assert engine.settings.segment.threshold == pytest.approx(3.5)
    assert choice.settings_box.currentData() == "current"

    # Replay keys from the video view.
    bar.toggle_play()
    qtbot.waitUntil(lambda: engine.paused, timeout=WAIT_MS)
    bar.seek(10)
    qtbot.waitUntil(lambda: engine.position == 10, timeout=WAIT_MS)
    win.view.setFocus()
    qtbot.keyClick(win.view, Qt.Key_Right)
    qtbot.waitUntil(lambda: engine.position == 11, timeout=WAIT_MS)
    qtbot.keyClick(win.view, Qt.Key_Left)
    qtbot.keyClick(win.view, Qt.Key_Left)
    qtbot.waitUntil(lambda: engine.position == 9, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bar.frame_box.value() == 9, timeout=WAIT_MS)

    # A preset saved in the panel is offered as side B and runs there.
    assert panel.save_preset("strict") is not None
    qtbot.mouseClick(choice.ab_button, Qt.LeftButton)
    choice.b_box.setCurrentIndex(choice.b_box.findData("preset:strict"))
    assert engine.ab and choice.settings_b().segment.threshold == pytest.approx(3.5)
    qtbot.waitUntil(lambda: win.view.frame is not None and win.view.frame.result_b is not None,
                    timeout=WAIT_MS)
    qtbot.mouseClick(choice.ab_button, Qt.LeftButton)
    assert not engine.ab
