"""Replay bar against a small Qt-free replay controller with the engine's API.

The controller below is a test double for the *controller only* (no pipeline
parts are faked): it holds a list of frames and implements the engine's replay
calls synchronously, so every assertion is exact.  The real Engine over a
recorded session is exercised in test_gui_tools_replay_engine.py.
"""

import pytest

pytest.importorskip("pytestqt")

from PyQt5.QtCore import Qt  # noqa: E402
from PyQt5.QtTest import QTest  # noqa: E402
from PyQt5.QtWidgets import QAction, QLabel, QMainWindow  # noqa: E402

from nirf_overlay.errors import NirfError  # noqa: E402
from nirf_overlay.gui.replay_bar import (  # noqa: E402
    SPEEDS,
    ReplayBar,
    format_time,
    normalise_markers,
)
from nirf_overlay.settings import Settings  # noqa: E402


class ListReplay:
    """Replay controller over a list of frames, with the Engine's replay API."""

    def __init__(self, frames, fps=30.0, markers=(), recorded_settings=None):
        self.frames = list(frames)
        self.fps = fps
        self.markers = list(markers)
        self.recorded_settings = recorded_settings
        self.settings = Settings()
        self.paused = False
        self.position = None
        self.speed = 1.0
        self.loop = False
        self.ab_settings = None
        self.calls = []

    @property
    def frame_count(self):
        return len(self.frames)

    @property
    def ab(self):
        return self.ab_settings is not None

    def pause(self):
        self.paused = True

    def resume(self):
        self.paused = False

    def step(self, n=1):
        self.paused = True
        self.position = min(max(0, (self.position or 0) + int(n)), len(self.frames) - 1)

    def seek(self, index):
        self.calls.append(("seek", index))
        self.position = min(max(0, int(index)), len(self.frames) - 1)

    def set_speed(self, x):
        if not 0.25 <= x <= 4.0:
            raise NirfError(f"speed: {x:g} is outside 0.25..4")
        self.speed = x

    def set_loop(self, loop):
        self.loop = bool(loop)

    def set_ab(self, settings_b):
        self.ab_settings = None if settings_b is None else settings_b.copy()

    def update_settings(self, settings):
        self.settings = settings.copy()

    def tick(self):
        """Advance one frame when playing (what the engine's worker does per period)."""
        if self.paused:
            return
        nxt = (self.position if self.position is not None else -1) + 1
        if nxt >= len(self.frames):
            nxt = 0 if self.loop else len(self.frames) - 1
        self.position = nxt


def recorded():
    s = Settings()
    s.segment.threshold = 2.2
    s.display.colormap = "magenta"
    return s


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
def make_bar(window, qtbot, tmp_path):
    def make(engine, **kwargs):
        bar = ReplayBar(engine, window, presets_dir=tmp_path / "presets", **kwargs)
        window.setMenuWidget(bar)  # any place in the window will do
        window.show()
        window.activateWindow()
        assert QTest.qWaitForWindowActive(window)  # window shortcuts need an active window
        window.centralWidget().setFocus()
        return bar
    return make


def test_format_time():
    assert format_time(0) == "00:00.00"
    assert format_time(299 / 30) == "00:09.97"
    assert format_time(61.5) == "01:01.50"
    assert format_time(3725.0) == "62:05.00"
    assert format_time(float("nan")) == "00:00.00"


def test_normalise_markers_accepts_tuples_dicts_and_objects():
    class M:
        def __init__(self, frame, label):
            self.frame, self.label = frame, label
    got = normalise_markers([(40, "b"), {"frame": 10, "label": "a"}, M(70, "c"),
                             {"label": "no frame"}])
    assert got == [(10, "a"), (40, "b"), (70, "c")]


def test_slider_time_and_frame_follow_the_engine(make_bar, qtbot):
    engine = ListReplay(range(300), fps=30.0)
    bar = make_bar(engine)
    assert (bar.slider.minimum(), bar.slider.maximum()) == (0, 299)
    assert bar.count_label.text() == "/ 299"
    for _ in range(45):
        engine.tick()
    qtbot.waitUntil(lambda: bar.slider.value() == 44, timeout=2000)  # polled, not pushed
    assert bar.frame_box.value() == 44
    assert bar.time_label.text() == f"{format_time(44 / 30)} / {format_time(299 / 30)}"


def test_seek_by_slider_and_typed_frame(make_bar, qtbot):
    engine = ListReplay(range(300))
    bar = make_bar(engine)
    bar.slider.setValue(123)  # a click on the groove / wheel
    assert engine.position == 123
    assert bar.time_label.text().startswith(format_time(123 / 30))
    bar.frame_box.setFocus()
    bar.frame_box.lineEdit().selectAll()
    qtbot.keyClicks(bar.frame_box.lineEdit(), "250")
    qtbot.keyClick(bar.frame_box, Qt.Key_Return)
    assert engine.position == 250
    bar.seek(10_000)  # clamped to the recording
    assert engine.position == 299


def test_dragging_the_slider_coalesces_seeks(make_bar, qtbot):
    engine = ListReplay(range(300))
    bar = make_bar(engine)
    bar.slider.setSliderDown(True)
    for v in range(100, 200, 5):
        bar.slider.setValue(v)
    assert len([c for c in engine.calls if c[0] == "seek"]) <= 1  # not one seek per pixel
    bar.slider.setSliderDown(False)
    bar.slider.sliderReleased.emit()
    assert engine.position == 195


def test_play_pause_step_and_keys(make_bar, qtbot, window):
    engine = ListReplay(range(300))
    bar = make_bar(engine)
    view = window.centralWidget()
    qtbot.mouseClick(bar.play_button, Qt.LeftButton)
    assert engine.paused
    qtbot.waitUntil(lambda: bar.play_button.text() == "Play", timeout=2000)
    qtbot.keyClick(view, Qt.Key_K)
    assert not engine.paused
    engine.seek(100)
    qtbot.keyClick(view, Qt.Key_Right)
    assert engine.position == 101 and engine.paused
    qtbot.keyClick(view, Qt.Key_Left)
    qtbot.keyClick(view, Qt.Key_Left)
    assert engine.position == 99
    qtbot.mouseClick(bar.forward_button, Qt.LeftButton)
    assert engine.position == 100
    qtbot.mouseClick(bar.back_button, Qt.LeftButton)
    assert engine.position == 99
    qtbot.keyClick(view, Qt.Key_Right, Qt.ShiftModifier)
    assert engine.position == 129  # one second at 30 fps
    qtbot.keyClick(view, Qt.Key_End)
    assert engine.position == 299
    qtbot.keyClick(view, Qt.Key_Home)
    assert engine.position == 0


def test_speed_and_loop(make_bar, qtbot, window):
    engine = ListReplay(range(50))
    bar = make_bar(engine)
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
    engine = ListReplay(range(300), markers=[(30, "first cut"), (200, "bleeding"), (120, "")])
    bar = make_bar(engine)
    actions = bar.marker_menu.actions()
    assert [a.text() for a in actions] == ["00:01.00  frame 30  first cut",
                                           "00:04.00  frame 120",
                                           "00:06.67  frame 200  bleeding"]
    actions[2].trigger()
    assert engine.position == 200
    view = window.centralWidget()
    qtbot.keyClick(view, Qt.Key_PageUp)
    assert engine.position == 120
    qtbot.keyClick(view, Qt.Key_PageUp)
    qtbot.keyClick(view, Qt.Key_PageUp)  # nothing before the first: stays
    assert engine.position == 30
    qtbot.keyClick(view, Qt.Key_PageDown)
    assert engine.position == 120
    # A marker set during replay shows up at the next poll.
    engine.markers.append((250, "new"))
    qtbot.waitUntil(lambda: len(bar.marker_menu.actions()) == 4, timeout=2000)
    assert bar.marker_button.text() == "Markers (4)"


def test_recorded_and_current_settings(make_bar, qtbot):
    tuned = Settings()
    tuned.segment.threshold = 3.0
    engine = ListReplay(range(100), recorded_settings=recorded())
    engine.settings = tuned.copy()
    bar = make_bar(engine)
    applied = []
    bar.settings_applied.connect(applied.append)
    bar.settings_box.setCurrentIndex(bar.settings_box.findData("recorded"))
    assert engine.settings == recorded()
    assert applied[-1] == recorded()
    bar.settings_box.setCurrentIndex(bar.settings_box.findData("current"))
    assert engine.settings == tuned
    # Tuning while "recorded" is chosen turns the choice back to "current".
    bar.settings_box.setCurrentIndex(bar.settings_box.findData("recorded"))
    retuned = recorded()
    retuned.segment.threshold = 4.0
    engine.update_settings(retuned)
    qtbot.waitUntil(lambda: bar.settings_box.currentData() == "current", timeout=2000)
    bar.settings_box.setCurrentIndex(bar.settings_box.findData("recorded"))
    bar.settings_box.setCurrentIndex(bar.settings_box.findData("current"))
    assert engine.settings == retuned


def test_settings_go_through_the_window_when_it_offers_apply_settings(qtbot, tmp_path):
    class Window(QMainWindow):
        def __init__(self, engine):
            super().__init__()
            self.engine, self.applied = engine, []

        def apply_settings(self, settings):
            self.applied.append(settings)
            self.engine.update_settings(settings)

    engine = ListReplay(range(10), recorded_settings=recorded())
    win = Window(engine)
    qtbot.addWidget(win)
    bar = ReplayBar(engine, win, presets_dir=tmp_path)
    win.setMenuWidget(bar)
    bar.settings_box.setCurrentIndex(bar.settings_box.findData("recorded"))
    assert win.applied == [recorded()] and engine.settings == recorded()


def test_no_recorded_settings_disables_the_choice(make_bar):
    bar = make_bar(ListReplay(range(10)))
    assert not bar.settings_box.isEnabled()
    assert [bar.b_box.itemText(i) for i in range(bar.b_box.count())] == ["B: defaults"]


def test_ab_with_recorded_settings_and_a_preset(make_bar, qtbot, tmp_path, window):
    preset = Settings()
    preset.segment.threshold = 5.5
    (tmp_path / "presets").mkdir()
    preset.save(tmp_path / "presets" / "strict.json")
    engine = ListReplay(range(100), recorded_settings=recorded())
    engine.settings.plane.polygon = [[0.0, 0.0], [10.0, 0.0], [5.0, 8.0]]
    bar = make_bar(engine)
    assert [bar.b_box.itemText(i) for i in range(bar.b_box.count())] == [
        "B: recorded", "B: defaults", "B: strict"]
    qtbot.mouseClick(bar.ab_button, Qt.LeftButton)
    assert engine.ab_settings == recorded()
    bar.b_box.setCurrentIndex(bar.b_box.findData("preset:strict"))
    assert engine.ab_settings.segment.threshold == 5.5
    # B keeps the plane polygon drawn on this scene (presets do not carry one).
    assert engine.ab_settings.plane.polygon == engine.settings.plane.polygon
    qtbot.keyClick(window.centralWidget(), Qt.Key_B)
    assert engine.ab_settings is None and not bar.ab_button.isChecked()


def test_shortcuts_already_bound_by_the_window_are_left_alone(window, qtbot, tmp_path):
    own = QAction("my K", window)
    own.setShortcut("K")
    window.addAction(own)
    bar = ReplayBar(ListReplay(range(10)), window, presets_dir=tmp_path)
    keys = {sc.key().toString() for sc in bar.shortcuts}
    assert "K" not in keys and {"Left", "Right", "PgUp", "PgDown"} <= keys
    assert ("K", "Play / pause the recording") in ReplayBar.shortcut_list()
    rows = bar.installed_shortcuts()
    assert ("Left", "One frame back (pauses)") in rows
    assert all(key != "K" for key, _ in rows) and len(rows) == len(ReplayBar.shortcut_list()) - 1
    # Shortcuts go with the bar.
    bar.setParent(None)
    bar.deleteLater()
    qtbot.waitUntil(lambda: not any(
        sc.key().toString() == "Left" for sc in window.findChildren(type(bar.shortcuts[0]))
        if sc.isEnabled()), timeout=2000)


def test_engine_errors_are_shown_not_raised(make_bar):
    engine = ListReplay(range(10))
    bar = make_bar(engine)

    def refuse(_x):
        raise NirfError("speed: the source refuses")
    engine.set_speed = refuse
    bar.speed_box.setCurrentIndex(0)
    assert bar.message.text() == "speed: the source refuses"
