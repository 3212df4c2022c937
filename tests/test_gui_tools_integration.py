"""The tools inside the real main window, replaying a recorded session.

Checks the seams between the widgets and the window: the replay bar switches
settings through the window (so the panel shows what runs), panel edits reach
the engine and turn "recorded" back to "current", replay keys work from the
video view, and presets saved in the panel are offered as A/B side B.
"""

import pytest

pytest.importorskip("pytestqt")

from PyQt5.QtCore import Qt  # noqa: E402
from PyQt5.QtTest import QTest  # noqa: E402

from nirf_overlay.settings import Settings  # noqa: E402

from test_gui_tools_replay_engine import session  # noqa: E402,F401  (module fixture)

WAIT_MS = 60_000


@pytest.fixture
def window(qtbot, session, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("NIRF_OVERLAY_CONFIG_DIR", str(tmp_path / "config"))
    from nirf_overlay.engine import Engine
    from nirf_overlay.gui.main_window import MainWindow
    from nirf_overlay.recording import SessionSource

    path, frames, recorded = session
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
    from nirf_overlay.gui.replay_bar import ReplayBar
    from nirf_overlay.gui.settings_panel import SettingsPanel

    win, frames, recorded = window
    bar = win.findChild(ReplayBar)
    panel = win.findChild(SettingsPanel)
    assert bar is not None and panel is not None
    engine = win.engine

    # Recorded settings go through the window: engine, window and panel agree.
    bar.settings_box.setCurrentIndex(bar.settings_box.findData("recorded"))
    assert engine.settings == recorded and win.settings == recorded
    assert panel.settings == recorded
    assert panel.editor("display.mode").currentData() == "nir"

    # Tuning in the panel reaches the engine; the bar then says "current".
    panel.editor("segment.threshold").setValue(3.5)
    assert engine.settings.segment.threshold == pytest.approx(3.5)
    qtbot.waitUntil(lambda: bar.settings_box.currentData() == "current", timeout=WAIT_MS)

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
    qtbot.mouseClick(bar.ab_button, Qt.LeftButton)
    bar.b_box.setCurrentIndex(bar.b_box.findData("preset:strict"))
    assert engine.ab and engine._ab_settings.segment.threshold == pytest.approx(3.5)
    qtbot.mouseClick(bar.ab_button, Qt.LeftButton)
    assert not engine.ab
