"""Replay bar against the real Engine over a seekable source the test controls.

The source is the conftest's ControlledSource (12 phantom frames from
memory, seekable), the engine runs the real Pipeline on its worker thread,
and the bar drives it as a user would.  The engine starts paused so that
every position is the one asked for; waits only bound how long a failure
takes to show.  Recorded settings need a recorded session: they are tested
in test_gui_tools_replay_engine.py.
"""

import pytest

pytest.importorskip("pytestqt")

from PyQt5.QtCore import Qt  # noqa: E402
from PyQt5.QtTest import QTest  # noqa: E402
from PyQt5.QtWidgets import QAction, QLabel, QMainWindow  # noqa: E402

from nirf_overlay.gui.replay_bar import SHORTCUTS, SPEEDS, ReplayBar, format_time  # noqa: E402
from nirf_overlay.gui.settings_model import EngineLink, SettingsModel  # noqa: E402
from nirf_overlay.recording import Marker  # noqa: E402
from nirf_overlay.settings import Settings  # noqa: E402

WAIT_MS = 30_000
LAST = 11  # the controlled source has 12 frames


@pytest.fixture
def window(qtbot):
    win = QMainWindow()
    view = QLabel("video")
    view.setFocusPolicy(Qt.StrongFocus)
    win.setCentralWidget(view)
    qtbot.addWidget(win)
    win.resize(1100, 500)
    return win


@pytest.fixture
def make_bar(window, qtbot, tmp_path, phantom, controlled_source):
    """``make(*, live=False, markers=(), paused=True) -> (bar, engine)``, engine started."""
    from nirf_overlay.engine import Engine

    made = []

    def make(*, live=False, markers=(), paused=True):
        engine = Engine(controlled_source(live=live, markers=markers), Settings(),
                        phantom.calibration())
        model = SettingsModel(engine.settings, window)
        EngineLink(model, engine, parent=window)
        bar = ReplayBar(engine, model, window, presets_dir=tmp_path / "presets")
        window.setMenuWidget(bar)  # any place in the window will do
        window.show()
        window.activateWindow()
        assert QTest.qWaitForWindowActive(window)  # window shortcuts need an active window
        window.centralWidget().setFocus()
        if paused:
            engine.pause()
        made.append((bar, engine))
        engine.start()
        return bar, engine

    yield make
    from PyQt5 import sip

    for bar, engine in made:
        if not sip.isdeleted(bar):
            bar.stop()
        engine.stop()


def at(qtbot, engine, index):
    qtbot.waitUntil(lambda: engine.position == index, timeout=WAIT_MS)


def test_format_time():
    assert format_time(0) == "00:00.00"
    assert format_time(299 / 30) == "00:09.97"
    assert format_time(61.5) == "01:01.50"
    assert format_time(3725.0) == "62:05.00"
    assert format_time(float("nan")) == "00:00.00"


def test_slider_time_and_frame_follow_the_engine(make_bar, qtbot):
    bar, engine = make_bar(paused=False)
    assert (bar.slider.minimum(), bar.slider.maximum()) == (0, LAST)
    assert bar.count_label.text() == f"/ {LAST}"
    at(qtbot, engine, LAST)  # played to the end
    qtbot.waitUntil(lambda: bar.slider.value() == LAST, timeout=WAIT_MS)  # polled, not pushed
    assert bar.frame_box.value() == LAST
    assert bar.time_label.text() == f"{format_time(LAST / 30)} / {format_time(LAST / 30)}"


def test_seek_by_slider_and_typed_frame(make_bar, qtbot):
    bar, engine = make_bar()
    bar.slider.setValue(7)  # a click on the groove / wheel
    at(qtbot, engine, 7)
    assert bar.time_label.text().startswith(format_time(7 / 30))
    bar.frame_box.setFocus()
    bar.frame_box.lineEdit().selectAll()
    qtbot.keyClicks(bar.frame_box.lineEdit(), "9")
    qtbot.keyClick(bar.frame_box, Qt.Key_Return)
    at(qtbot, engine, 9)
    bar.seek(10_000)  # clamped to the recording
    at(qtbot, engine, LAST)


def test_dragging_the_slider_coalesces_seeks(make_bar, qtbot):
    bar, engine = make_bar()
    source = engine.source
    bar.slider.setSliderDown(True)
    for v in range(1, 10):
        bar.slider.setValue(v)
    bar.slider.setSliderDown(False)
    bar.slider.sliderReleased.emit()
    at(qtbot, engine, 9)
    assert len(source.seeks) <= 2  # not one seek per step of the drag


def test_play_pause_step_and_keys(make_bar, qtbot, window):
    bar, engine = make_bar()
    view = window.centralWidget()
    qtbot.waitUntil(lambda: bar.play_button.text() == "Play", timeout=WAIT_MS)
    qtbot.keyClick(view, Qt.Key_K)
    assert not engine.paused
    qtbot.mouseClick(bar.play_button, Qt.LeftButton)
    assert engine.paused
    bar.seek(5)
    at(qtbot, engine, 5)
    qtbot.keyClick(view, Qt.Key_Right)
    at(qtbot, engine, 6)
    assert engine.paused
    qtbot.keyClick(view, Qt.Key_Left)
    qtbot.keyClick(view, Qt.Key_Left)
    at(qtbot, engine, 4)
    qtbot.mouseClick(bar.forward_button, Qt.LeftButton)
    at(qtbot, engine, 5)
    qtbot.mouseClick(bar.back_button, Qt.LeftButton)
    at(qtbot, engine, 4)
    qtbot.keyClick(view, Qt.Key_Right, Qt.ShiftModifier)  # one second at 30 fps: the end
    at(qtbot, engine, LAST)
    qtbot.keyClick(view, Qt.Key_Home)
    at(qtbot, engine, 0)
    qtbot.keyClick(view, Qt.Key_End)
    at(qtbot, engine, LAST)


def test_speed_and_loop(make_bar, qtbot, window):
    bar, engine = make_bar()
    assert bar.speed_box.currentData() == 1.0
    bar.speed_box.setCurrentIndex(bar.speed_box.findData(0.25))
    assert engine.speed == 0.25
    view = window.centralWidget()
    for _ in range(10):
        qtbot.keyClick(view, Qt.Key_BracketRight)
    assert engine.speed == SPEEDS[-1] == 4.0
    qtbot.keyClick(view, Qt.Key_BracketLeft)
    assert engine.speed == 2.0
    qtbot.mouseClick(bar.loop_box, Qt.LeftButton)
    assert engine.loop is True
    qtbot.keyClick(view, Qt.Key_L)
    assert engine.loop is False


def test_markers_jump(make_bar, qtbot, window):
    markers = [Marker(frame=3, t=0.1, label="first cut"), Marker(frame=9, t=0.3, label="bleeding"),
               Marker(frame=6, t=0.2)]
    bar, engine = make_bar(markers=markers)
    actions = bar.marker_menu.actions()
    assert [a.text() for a in actions] == ["00:00.10  frame 3  first cut",
                                           "00:00.20  frame 6",
                                           "00:00.30  frame 9  bleeding"]
    actions[2].trigger()
    at(qtbot, engine, 9)
    view = window.centralWidget()
    qtbot.keyClick(view, Qt.Key_PageUp)
    at(qtbot, engine, 6)
    qtbot.keyClick(view, Qt.Key_PageUp)
    at(qtbot, engine, 3)
    qtbot.keyClick(view, Qt.Key_PageUp)  # nothing before the first: stays
    qtbot.keyClick(view, Qt.Key_PageDown)
    at(qtbot, engine, 6)
    # A marker set during replay shows up at the next poll.
    engine.source.markers.append(Marker(frame=10, t=10 / 30, label="new"))
    qtbot.waitUntil(lambda: len(bar.marker_menu.actions()) == 4, timeout=WAIT_MS)
    assert bar.marker_button.text() == "Markers (4)"


def test_no_recorded_settings_disables_the_choice(make_bar):
    bar, _engine = make_bar()
    assert not bar.choice.settings_box.isEnabled()
    b_box = bar.choice.b_box
    assert [b_box.itemText(i) for i in range(b_box.count())] == ["B: defaults"]


def test_ab_with_a_preset_keeps_the_scene_polygon(make_bar, qtbot, tmp_path, window):
    preset = Settings()
    preset.segment.threshold = 5.5
    preset.display.mode = "nir"
    (tmp_path / "presets").mkdir()
    preset.save(tmp_path / "presets" / "strict.json")
    bar, engine = make_bar()
    polygon = [[0.0, 0.0], [10.0, 0.0], [5.0, 8.0]]
    bar.model.set("plane.polygon", polygon)
    choice = bar.choice
    assert [choice.b_box.itemText(i) for i in range(choice.b_box.count())] == [
        "B: defaults", "B: strict"]
    qtbot.mouseClick(choice.ab_button, Qt.LeftButton)
    assert engine.ab and choice.settings_b() == _with_polygon(Settings(), polygon)
    choice.b_box.setCurrentIndex(choice.b_box.findData("preset:strict"))
    b = choice.settings_b()
    # B keeps the plane polygon drawn on this scene (presets do not carry one).
    assert b.segment.threshold == 5.5 and b.plane.polygon == polygon
    bar.seek(3)

    def b_is_monochrome():
        f = engine.latest()
        if f is None or f.result_b is None:
            return False
        nir_b = f.composite_b
        # the monochrome NIR view; rim outlines are drawn in colour in every mode,
        # and B (threshold 5.5) now finds rims on this scene
        grey = nir_b[..., 0] == nir_b[..., 1]
        return bool(grey.mean() > 0.97)

    qtbot.waitUntil(b_is_monochrome, timeout=WAIT_MS)  # side B runs the preset
    qtbot.keyClick(window.centralWidget(), Qt.Key_B)
    assert not engine.ab and not choice.ab_button.isChecked()


def _with_polygon(settings, polygon):
    settings.plane.polygon = polygon
    return settings


def test_shortcuts_already_bound_by_the_window_are_left_alone(window, make_bar, qtbot):
    own = QAction("my K", window)
    own.setShortcut("K")
    window.addAction(own)
    bar, _engine = make_bar()
    keys = {sc.key().toString() for sc in bar.shortcuts}
    assert "K" not in keys and {"Left", "Right", "PgUp", "PgDown"} <= keys
    rows = bar.installed_shortcuts()
    assert ("Left", "One frame back (pauses)") in rows
    assert all(key != "K" for key, _ in rows) and len(rows) == len(SHORTCUTS) - 1
    # Shortcuts go with the bar.
    bar.stop()
    bar.setParent(None)
    bar.deleteLater()
    qtbot.waitUntil(lambda: not any(
        sc.key().toString() == "Left" for sc in window.findChildren(type(bar.shortcuts[0]))
        if sc.isEnabled()), timeout=2000)


def test_engine_refusals_are_shown_not_raised(make_bar):
    bar, engine = make_bar(live=True)  # a live source cannot seek
    bar.seek(3)
    assert "cannot seek" in bar.message.text()
    bar.toggle_loop()
    assert bar.message.text() == ""  # the next command that goes through clears it
