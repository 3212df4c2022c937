"""The main window, offscreen: overlay where the rim is, modes, safety marks, snapshot, plane.

The window is rendered to an image (``widget.grab()``) and its colours are
checked at the phantom's true rim location against elsewhere.  Sources are
real FrameSource subclasses that the test can stall or make lose NIR.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PyQt5.QtCore import QPoint, Qt  # noqa: E402
from PyQt5.QtGui import QImage  # noqa: E402

from nirf_overlay.engine import Engine  # noqa: E402
from nirf_overlay.engine.state import RecordingState  # noqa: E402
from nirf_overlay.settings import DISPLAY_MODES, Settings  # noqa: E402

WAIT_MS = 20000


@pytest.fixture
def make_window(show_window, phantom):
    def make(source, settings=None):
        return show_window(Engine(source, settings or Settings(), phantom.calibration()))
    return make


def next_painted(qtbot, win, after_seq=0):
    """Wait until a frame newer than ``after_seq`` has been painted; return it."""
    v = win.view
    qtbot.waitUntil(lambda: v.frame is not None and v.frame.seq > after_seq
                    and v.frame_painted, timeout=WAIT_MS)
    return v.frame


def next_analysed(qtbot, win, after_seq=0):
    """A painted frame whose rim analysis has finished (the live pipeline analyses
    on its own thread, so the first frames show the overlay before the outlines)."""
    frame = next_painted(qtbot, win, after_seq)
    while frame.result.analysis_index is None:
        frame = next_painted(qtbot, win, frame.seq)
    return frame


def after_change(qtbot, win):
    """A painted frame that was processed after the settings change just made."""
    return next_painted(qtbot, win, win.engine.status().processed + 1)


def grab(win) -> np.ndarray:
    """The view as painted, (h, w, 3) uint8 RGB."""
    img = win.view.grab().toImage().convertToFormat(QImage.Format_RGB888)
    w, h = img.width(), img.height()
    buf = img.constBits()
    buf.setsize(img.bytesPerLine() * h)
    return np.frombuffer(buf, np.uint8).reshape(h, img.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()


def at_mask(win, picture: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Picture pixels (N, 3) RGB where the WL-coordinate ``mask`` is true."""
    ys, xs = np.nonzero(mask)
    pts = [win.view.wl_to_view(x + 0.5, y + 0.5) for x, y in zip(xs, ys)]
    px = np.array([[int(p.x()), int(p.y())] for p in pts])
    h, w = picture.shape[:2]
    px[:, 0] = np.clip(px[:, 0], 0, w - 1)
    px[:, 1] = np.clip(px[:, 1], 0, h - 1)
    return picture[px[:, 1], px[:, 0]].astype(int)


def greenness(rgb: np.ndarray) -> float:
    return float(np.median(rgb[:, 1] - (rgb[:, 0] + rgb[:, 2]) / 2))


def background_mask(truth) -> np.ndarray:
    busy = truth.rim_mask | truth.core_mask | truth.distractor_mask | truth.instrument_mask
    from scipy.ndimage import binary_dilation

    return ~binary_dilation(busy, iterations=6)


def rim_and_background(win, frame):
    pic = grab(win)
    t = frame.pair.truth
    return at_mask(win, pic, t.rim_mask), at_mask(win, pic, background_mask(t)), pic


# -- opening on the phantom ---------------------------------------------------------------------
def test_window_shows_overlay_where_the_rim_is(qtbot, make_window, controlled_source):
    win = make_window(controlled_source())
    frame = next_analysed(qtbot, win)
    frame = next_painted(qtbot, win, frame.seq)
    rim, bg, _ = rim_and_background(win, frame)
    assert greenness(rim) > 60, "the rim is painted green"
    assert greenness(rim) > greenness(bg) + 50, "and the liver around it is not"
    assert win.marks == []  # live: no safety mark
    assert win.view.hud.rims, "the rim's numbers are in the HUD"
    # the picture keeps the source's aspect ratio
    r = win.view.image_rects()[0]
    w, h = frame.pair.size
    assert abs(r.width() / r.height() - w / h) < 0.02


def test_every_mode_switch_reaches_the_screen(qtbot, make_window, controlled_source):
    win = make_window(controlled_source())
    next_painted(qtbot, win)
    for m in DISPLAY_MODES:  # each mode's key, from the one table
        mode = m.name
        qtbot.keyClick(win, getattr(Qt, f"Key_{m.key}"))
        assert win.model.get("display.mode") == mode
        assert win.engine.settings.display.mode == mode
        assert win.acts.modes[mode].isChecked()
        assert win.acts.modes[mode].text() == m.label and m.help in win.acts.modes[mode].toolTip()
        frame = after_change(qtbot, win)
        assert win.view.picture is frame.composite  # shown as composed, no copy
        assert win.view.hud.rims_drawable is not m.split  # no rim labels on a split picture
        rim, bg, pic = rim_and_background(win, frame)
        if mode == "wl":
            wl = frame.pair.wl[frame.pair.truth.rim_mask][:, ::-1].astype(int)
            assert abs(greenness(rim) - greenness(wl)) < 15, "white light: no overlay"
        elif mode == "nir":
            assert np.median(np.abs(rim[:, 1] - rim[:, 0])) <= 3, "NIR is monochrome"
        elif mode == "overlay":
            assert greenness(rim) > greenness(bg) + 50
    # the toolbar does the same as the keys
    win.acts.modes["wl"].trigger()
    assert win.engine.settings.display.mode == "wl"


def test_settings_change_reaches_the_next_frame(qtbot, make_window, controlled_source):
    win = make_window(controlled_source())
    next_painted(qtbot, win)
    box = win.toolbar.colormap_box
    i = box.findText("magenta")
    box.setCurrentIndex(i)
    box.activated.emit(i)
    assert win.engine.settings.display.colormap == "magenta"
    frame = after_change(qtbot, win)
    rim, _, _ = rim_and_background(win, frame)
    r, g, b = np.median(rim, axis=0)
    assert r > g + 30 and b > g + 30, "the rim turned magenta"
    assert win.panel.editor("display.colormap").currentData() == "magenta"  # shows what is in force


# -- safety -------------------------------------------------------------------------------------
def amber_border(win, pic) -> bool:
    r = win.view.image_rects()[0]
    y = int(r.center().y())
    px = pic[y, int(r.left()) + 4].astype(int)
    return px[0] > 200 and 120 < px[1] < 210 and px[2] < 80


def test_stale_mark_appears_when_source_stalls_and_clears(qtbot, make_window, controlled_source):
    src = controlled_source()
    win = make_window(src)
    frame = next_painted(qtbot, win)
    rim_live, _, pic = rim_and_background(win, frame)
    assert not amber_border(win, pic)
    src.stalled.set()
    qtbot.waitUntil(lambda: "stale" in win.marks, timeout=WAIT_MS)
    win.view.repaint()
    rim, _, pic = rim_and_background(win, frame)
    assert amber_border(win, pic), "STALE frame drawn around the picture"
    assert greenness(rim) < greenness(rim_live) - 30, "the stale overlay is dimmed, not live"
    src.stalled.clear()
    qtbot.waitUntil(lambda: "stale" not in win.marks, timeout=WAIT_MS)
    frame = next_painted(qtbot, win, win.view.frame.seq)
    rim, _, pic = rim_and_background(win, frame)
    assert not amber_border(win, pic)
    assert greenness(rim) > 60


def test_nir_lost_removes_overlay_and_banner_clears(qtbot, make_window, controlled_source):
    src = controlled_source()
    win = make_window(src)
    next_painted(qtbot, win)
    src.nir_lost = True
    qtbot.waitUntil(lambda: "nir_lost" in win.marks, timeout=WAIT_MS)
    frame = next_painted(qtbot, win, win.view.frame.seq)
    assert frame.pair.nir is None
    rim, _, pic = rim_and_background(win, frame)
    wl = frame.pair.wl[frame.pair.truth.rim_mask][:, ::-1].astype(int)
    assert abs(greenness(rim) - greenness(wl)) < 15, "overlay gone: white light at the rim"
    assert win.view.picture is frame.pair.wl
    r = win.view.image_rects()[0]
    top = pic[int(r.top()) + 3, int(r.left()) + 3]  # the banner's edge, clear of its text
    assert top[0] > 180 and top[1] < 80, "red NIR LOST banner"
    assert not win.view.hud.rims
    src.nir_lost = False
    qtbot.waitUntil(lambda: "nir_lost" not in win.marks, timeout=WAIT_MS)
    frame = next_painted(qtbot, win, win.view.frame.seq)
    rim, _, _ = rim_and_background(win, frame)
    assert greenness(rim) > 60


def test_source_error_shown_in_plain_words(qtbot, make_window, controlled_source):
    src = controlled_source()
    win = make_window(src)
    next_painted(qtbot, win)
    src.fail = "camera 0: cable unplugged"
    qtbot.waitUntil(lambda: "cable unplugged" in win.view.hud.message, timeout=WAIT_MS)
    assert win.view.hud.message_is_error and "Traceback" not in win.view.hud.message
    qtbot.waitUntil(lambda: "stale" in win.marks, timeout=WAIT_MS)
    src.fail = ""
    qtbot.waitUntil(lambda: "cable" not in win.view.hud.message and "stale" not in win.marks,
                    timeout=WAIT_MS)


# -- freeze, snapshot, plane, chrome --------------------------------------------------------------
def test_freeze_and_snapshot(qtbot, make_window, controlled_source, tmp_path):
    import cv2
    import tifffile

    win = make_window(controlled_source())
    next_painted(qtbot, win)
    qtbot.keyClick(win, Qt.Key_Space)
    assert win.frozen and "frozen" in win.marks
    held = win.view.frame
    held_pixels = win.view.picture.copy()
    seq = win.engine.status().processed
    qtbot.waitUntil(lambda: win.engine.status().processed > seq + 4, timeout=WAIT_MS)
    assert win.view.frame is held, "freeze holds the picture"
    # more frames than the pipeline's output ring went by: the held pixels must not change
    assert np.array_equal(win.view.picture, held_pixels)
    qtbot.keyClick(win, Qt.Key_S)
    qtbot.waitUntil(lambda: win.capture.last_snapshot is not None, timeout=WAIT_MS)
    paths = win.capture.last_snapshot
    assert all(os.path.getsize(p) > 0 for p in paths.values())
    assert np.array_equal(tifffile.imread(paths["nir"]), held.pair.nir)
    assert np.array_equal(cv2.imread(paths["wl"]), held.pair.wl)
    assert np.array_equal(cv2.imread(paths["overlay"]), held_pixels)
    meta = json.loads(open(paths["metrics"]).read())
    assert meta["frame"] == held.index
    assert os.path.dirname(paths["overlay"]) == str(tmp_path / "snaps")
    qtbot.keyClick(win, Qt.Key_Space)
    assert not win.frozen
    next_painted(qtbot, win, held.seq)
    assert "frozen" not in win.marks


def test_plane_polygon_drawn_on_view_maps_to_wl_pixels(qtbot, make_window, controlled_source):
    win = make_window(controlled_source())
    next_painted(qtbot, win)
    qtbot.keyClick(win, Qt.Key_T)
    assert win.view.drawing
    wl_pts = [(40, 30), (200, 40), (120, 150)]
    for x, y in wl_pts:
        p = win.view.wl_to_view(x, y)
        qtbot.mouseClick(win.view, Qt.LeftButton, pos=QPoint(round(p.x()), round(p.y())))
    drawn_on = win.view.frame.pair.index
    qtbot.keyClick(win.view, Qt.Key_Return)
    poly = win.engine.settings.plane.polygon
    assert len(poly) == 3 and win.model.get("plane.polygon") == poly == win.view.plane
    # anchored to the tissue of the frame it was drawn on, set with the polygon
    assert win.engine.settings.plane.frame == drawn_on
    scale = win.view.frame.pair.size[0] / win.view.image_rects()[0].width()
    for (x, y), (px, py) in zip(wl_pts, poly):
        assert abs(px - x) <= scale + 0.5 and abs(py - y) <= scale + 0.5
    frame = after_change(qtbot, win)
    qtbot.waitUntil(lambda: win.view.hud.plane_set, timeout=WAIT_MS)
    assert frame.result is not None
    qtbot.keyClick(win, Qt.Key_Delete)
    assert win.engine.settings.plane.polygon == [] and not win.view.hud.plane_set


def test_fullscreen_hides_chrome_and_help_lists_shortcuts(qtbot, make_window, controlled_source):
    win = make_window(controlled_source())
    next_painted(qtbot, win)
    qtbot.keyClick(win, Qt.Key_F11)
    qtbot.waitUntil(win.isFullScreen, timeout=WAIT_MS)
    assert not win.toolbar.isVisible() and not win.menuBar().isVisible()
    qtbot.keyClick(win, Qt.Key_F11)
    qtbot.waitUntil(lambda: not win.isFullScreen(), timeout=WAIT_MS)
    assert win.toolbar.isVisible()
    rows = dict(win.shortcuts())
    for k in ("Space", "S", "R", "Ctrl+O", "F11", "F1 / ?"):
        assert k in rows
    for m in DISPLAY_MODES:  # the help's mode rows are the table's
        assert rows[m.key] == f"{m.label}: {m.help}"
    qtbot.keyClick(win, Qt.Key_F1)
    assert win.help.isVisible()
    qtbot.keyClick(win, Qt.Key_F1)
    assert not win.help.isVisible()


def test_replay_controls_on_a_seekable_source(qtbot, make_window, controlled_source):
    win = make_window(controlled_source(live=False))
    next_painted(qtbot, win)
    qtbot.keyClick(win, Qt.Key_P)
    qtbot.waitUntil(lambda: "paused" in win.marks, timeout=WAIT_MS)
    win.engine.seek(5)
    frame = next_painted(qtbot, win, win.view.frame.seq)
    assert frame.index == 5
    qtbot.keyClick(win, Qt.Key_Period)
    assert next_painted(qtbot, win, frame.seq).index == 6
    qtbot.keyClick(win, Qt.Key_P)
    qtbot.waitUntil(lambda: "paused" not in win.marks, timeout=WAIT_MS)


# -- the command -------------------------------------------------------------------------------
def test_view_command_writes_stats(tmp_path):
    out = tmp_path / "stats.json"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-m", "nirf_overlay", "view", "--phantom", "--size", "320x180",
         "--exit-after", "10", "--warmup", "1", "--stats-json", str(out),
         "--snapshots", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = json.loads(out.read_text())
    for key in ("frames_displayed", "dropped_fraction", "latency_ms_median", "latency_ms_p99",
                "fps_displayed", "size"):
        assert key in stats
    assert stats["size"] == [320, 180]
    assert 0.0 <= stats["dropped_fraction"] <= 1.0
    # frames must have been shown (the kernels are warm, conftest's session fixture, but
    # loading them behind the open window takes a few seconds on a loaded machine), and
    # what was shown must add up
    assert stats["frames_displayed"] >= 5, stats
    assert stats["latency_ms_p99"] >= stats["latency_ms_median"] > 0
    assert stats["fps_displayed"] > 0


def test_view_command_fullscreen_on_a_chosen_screen(tmp_path):
    out = tmp_path / "stats.json"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-m", "nirf_overlay", "view", "--phantom", "--size", "160x96",
         "--screen", "0", "--exit-after", "1", "--stats-json", str(out)],
        env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(out.read_text())["size"] == [160, 96]


def test_view_command_refuses_bad_screen_in_one_line(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-m", "nirf_overlay", "view", "--phantom", "--size", "320x180",
         "--screen", "7", "--exit-after", "1"],
        env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--screen 7" in proc.stderr and "Traceback" not in proc.stderr


# -- the leftover-widget fixture ---------------------------------------------------------------
def test_leftover_widget_check_finds_a_forgotten_window(qapp, leftover_widgets):
    from PyQt5.QtWidgets import QWidget

    leftover_top_level_widgets = leftover_widgets
    before = list(qapp.topLevelWidgets())
    forgotten = QWidget()
    try:
        assert forgotten in leftover_top_level_widgets(before)
    finally:
        forgotten.deleteLater()
    assert leftover_top_level_widgets(before) == []


def test_open_switches_source_without_blocking(qtbot, make_window, controlled_source):
    from nirf_overlay.sources import SourceSpec

    first = controlled_source()
    win = make_window(first)
    next_painted(qtbot, win)
    old = win.engine
    win.model.set("display.mode", "pip")
    win.sources.open_spec(SourceSpec(phantom=True, seed=1, size=(160, 96), fps=20.0))
    qtbot.waitUntil(lambda: win.engine is not old, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: win.view.frame is not None and win.view.frame.pair.size == (160, 96)
                    and win.view.frame_painted, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: first.closed, timeout=WAIT_MS)  # the old source is released
    assert win.engine.settings == win.model.settings  # the new engine runs the model's settings
    # a source that cannot be opened is reported in the window; the picture goes on
    win.sources.open_spec(SourceSpec(session="/nonexistent/case"))
    qtbot.waitUntil(lambda: "could not open" in win.view.hud.message, timeout=WAIT_MS)
    assert "nonexistent" in win.view.hud.message
    assert win.engine.running


def test_replay_bar_shown_for_seekable_sources_only(qtbot, make_window, controlled_source):
    win = make_window(controlled_source(live=False))
    next_painted(qtbot, win)
    assert win.replay_bar is not None and win.replay_bar.isVisible()
    keys = [k for k, _ in win.shortcuts()]
    assert "K" in keys  # the replay bar's own keys are listed in the help
    assert "P" in keys and keys.count("P") == 1  # the window keeps its own P
    win.close()
    live = make_window(controlled_source())
    assert live.replay_bar is None


def test_error_hook_keeps_viewer_alive_with_one_plain_line():
    from nirf_overlay.errors import SourceError
    from nirf_overlay.gui.app import install_error_hook

    shown = []
    saved = sys.excepthook
    try:
        install_error_hook(shown.append)
        try:
            {}["missing"]
        except KeyError:
            sys.excepthook(*sys.exc_info())
        sys.excepthook(SourceError, SourceError("cam0: gone"), None)
    finally:
        sys.excepthook = saved
    assert shown[1] == "cam0: gone"
    assert "internal error" in shown[0] and "\n" not in shown[0] and "Traceback" not in shown[0]


def test_record_key_starts_and_stops_a_session(qtbot, make_window, controlled_source, tmp_path):
    win = make_window(controlled_source())
    next_painted(qtbot, win)
    qtbot.keyClick(win, Qt.Key_R)
    qtbot.waitUntil(lambda: win.engine.recording_status()["state"] == RecordingState.ON,
                    timeout=WAIT_MS)
    qtbot.waitUntil(lambda: (win.engine.recording_status().get("frames_written") or 0) >= 3,
                    timeout=WAIT_MS)
    qtbot.waitUntil(lambda: win.view.hud.recording.get("state") == RecordingState.ON,
                    timeout=WAIT_MS)
    assert win.acts.record.isChecked()
    folder = win.engine.recording_status()["dir"]
    qtbot.keyClick(win, Qt.Key_R)
    qtbot.waitUntil(lambda: win.engine.recording_status()["state"] == RecordingState.OFF,
                    timeout=WAIT_MS)
    assert os.path.dirname(folder) == str(tmp_path / "rec")
    assert os.path.isfile(os.path.join(folder, "session.json"))
    assert not win.engine.recording_status()["error"]


def test_calibration_dialog_opens_from_the_menu_and_viewer_continues(qtbot, make_window,
                                                                     controlled_source, frames):
    from PyQt5.QtCore import QTimer
    from PyQt5.QtWidgets import QApplication

    from nirf_overlay.sources import SourceSpec

    win = make_window(controlled_source())
    win.sources.spec = SourceSpec(phantom=True, size=frames[0].size)
    first = next_painted(qtbot, win)
    seen = []

    def close_dialog():
        dlg = QApplication.activeModalWidget()
        if dlg is None:
            QTimer.singleShot(100, close_dialog)
            return
        seen.append((type(dlg).__name__, win.view.frame.seq))
        dlg.reject()

    QTimer.singleShot(1500, close_dialog)
    win.acts.calibrate.trigger()  # modal: returns when the dialog closes
    assert seen and seen[0][0] == "CalibrationDialog"
    assert seen[0][1] > first.seq, "the picture went on behind the dialog"
    next_painted(qtbot, win, seen[0][1])


@pytest.mark.parametrize("fps, age, stale", [
    (60.0, 0.099, False),  # two periods are 33 ms, but never less than 100 ms
    (60.0, 0.101, True),
    (5.0, 0.39, False),  # two periods of a slow source: 400 ms
    (5.0, 0.41, True),
    (None, 0.09, False),
])
def test_stale_after_two_periods_and_at_least_100_ms(fps, age, stale):
    from nirf_overlay.gui.hud import safety_banners

    marks = safety_banners(now=10.0 + age, last_new_frame=10.0, fps=fps, nir_lost=False)
    assert ("stale" in marks) is stale
    # freeze, pause and the end of a recording say so instead of STALE; NIR LOST always shows
    held = safety_banners(now=20.0, last_new_frame=10.0, fps=fps, nir_lost=True, frozen=True)
    assert held == ["frozen", "nir_lost"]
    assert safety_banners(now=10.0, last_new_frame=None, fps=fps, nir_lost=False) == ["stale"]
