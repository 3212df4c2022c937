"""The viewer window sized for its screen, its six mode buttons always shown, its layout
remembered between starts and reset; the kernels loaded at once when the cache is warm."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("pytestqt")

from PyQt5.QtCore import QPoint, QRect, QSettings, Qt  # noqa: E402

from nirf_overlay.engine import Engine  # noqa: E402
from nirf_overlay.gui.main_window import MainWindow  # noqa: E402
from nirf_overlay.gui.window_layout import (GEOMETRY_KEY, STATE_KEY,  # noqa: E402
                                            default_geometry)
from nirf_overlay.settings import DISPLAY_MODES, Settings  # noqa: E402


@pytest.mark.parametrize("area, maximised, size", [
    ((0, 0, 1280, 720), True, (1280, 720)),
    ((0, 0, 1366, 768), True, (1366, 768)),
    ((0, 0, 1920, 1040), True, (1920, 1040)),     # 1080p minus a task bar
    ((0, 0, 2560, 1440), False, (2048, 1152)),
    ((0, 0, 3840, 2160), False, (3072, 1728)),
    ((1920, 0, 3840, 2100), False, (3072, 1680)),  # a 4K screen right of a 1080p one
])
def test_default_geometry_for_screens_from_720p_to_4k(area, maximised, size):
    x, y, w, h, m = default_geometry(*area)
    assert m is maximised and (w, h) == size
    ax, ay, aw, ah = area
    # inside the work area and centred in it (never in a corner)
    assert ax <= x and ay <= y and x + w <= ax + aw and y + h <= ay + ah
    assert abs((x - ax) - (ax + aw - x - w)) <= 1 and abs((y - ay) - (ay + ah - y - h)) <= 1


@pytest.fixture
def store(tmp_path):
    return QSettings(str(tmp_path / "layout.ini"), QSettings.IniFormat)


@pytest.fixture
def open_window(qtbot, tmp_path, phantom, controlled_source):
    def open_(store):
        eng = Engine(controlled_source(), Settings(), phantom.calibration())
        win = MainWindow(eng, snapshot_dir=tmp_path / "snaps", recording_dir=tmp_path / "rec",
                         presets_dir=tmp_path / "presets", layout_store=store)
        qtbot.addWidget(win)
        win.show()
        qtbot.waitExposed(win)
        return win
    return open_


def _mode_buttons_shown(win):
    bar = win.toolbar.rect()
    for m in DISPLAY_MODES:
        button = win.toolbar.mode_buttons.buttons[m.name]
        assert button.defaultAction() is win.acts.modes[m.name]
        top_left = button.mapTo(win.toolbar, QPoint(0, 0))
        assert button.isVisible(), m.name
        assert bar.contains(QRect(top_left, button.size())), (m.name, bar, top_left)


@pytest.mark.parametrize("width", [800, 300])
def test_the_six_mode_buttons_stay_on_a_narrow_window(qtbot, open_window, store, width):
    win = open_window(store)
    win.showNormal()
    win.resize(width, 500)
    qtbot.waitUntil(lambda: win.width() <= max(width, win.minimumSizeHint().width()))
    qtbot.wait(50)  # the toolbar lays out again
    _mode_buttons_shown(win)
    # the other controls went behind the ">>" (they do not fit) and the window is narrow
    assert not win.toolbar.widgetForAction(win.acts.help).isVisible()
    assert win.width() < 820


def test_window_opens_maximised_on_a_small_screen(open_window, store):
    win = open_window(store)
    # the offscreen screen is 800x600: a small one, so the whole work area
    assert win.isMaximized() and not win.layout_memory.restored
    _mode_buttons_shown(win)


def test_geometry_and_dock_layout_remembered_and_reset(qtbot, open_window, store):
    win = open_window(store)
    win.showNormal()
    win.setGeometry(40, 30, 700, 480)
    win.addDockWidget(Qt.LeftDockWidgetArea, win.panel)  # the user drags the dock left
    qtbot.waitUntil(lambda: win.dockWidgetArea(win.panel) == Qt.LeftDockWidgetArea)
    win.close()
    assert store.value(GEOMETRY_KEY) is not None and store.value(STATE_KEY) is not None

    again = open_window(store)
    assert again.layout_memory.restored
    assert not again.isMaximized()
    assert (again.width(), again.height()) == (700, 480)
    assert again.dockWidgetArea(again.panel) == Qt.LeftDockWidgetArea

    again.acts.reset_layout.trigger()
    qtbot.waitUntil(again.isMaximized)
    assert again.dockWidgetArea(again.panel) == Qt.RightDockWidgetArea
    assert again.panel.isVisible() and not again.panel.isFloating()
    assert store.value(GEOMETRY_KEY) is None and store.value(STATE_KEY) is None
    assert again.acts.reset_layout in again.menuBar().actions()[1].menu().actions()


def test_a_hidden_dock_comes_back_on_reset(qtbot, open_window, store):
    win = open_window(store)
    win.acts.panel.trigger()  # D hides the settings panel
    qtbot.waitUntil(lambda: not win.panel.isVisible())
    win.close()
    again = open_window(store)
    assert not again.panel.isVisible()  # remembered hidden
    again.acts.reset_layout.trigger()
    qtbot.waitUntil(again.panel.isVisible)
    assert again.acts.panel.isChecked()


def test_full_screen_is_not_remembered(qtbot, open_window, store):
    win = open_window(store)
    win.go_fullscreen()
    qtbot.waitUntil(win.isFullScreen)
    win.close()
    assert store.value(STATE_KEY) is None
    again = open_window(store)
    assert again.toolbar.isVisible() and again.panel.isVisible() and not again.isFullScreen()


def test_the_default_store_is_the_config_dir_one(qtbot, tmp_path, monkeypatch, open_window):
    monkeypatch.setenv("NIRF_OVERLAY_CONFIG_DIR", str(tmp_path / "cfg"))
    win = open_window(None)
    win.close()
    ini = QSettings(str(tmp_path / "cfg" / "nirf-overlay.ini"), QSettings.IniFormat)
    assert ini.value(GEOMETRY_KEY) is not None


# -- the kernel cache ----------------------------------------------------------------------------
def test_kernel_cache_state_follows_its_stamp_and_index(tmp_path, monkeypatch):
    import numba

    from nirf_overlay.processing import warmup

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    cache = warmup.kernel_cache()
    assert cache.state == "cold" and not cache.warm and cache.folder == str(tmp_path)
    sub = tmp_path / "_kernels_x"
    sub.mkdir()
    for m in cache.modules:
        (sub / f"{m}.f-1.py311.nbi").write_bytes(b"")
    assert warmup.kernel_cache().state.startswith("stale")  # indexed, but no warm-up said so
    warmup._write_stamp()
    assert warmup.kernel_cache().warm
    stamp = next(tmp_path.glob(f"{warmup.STAMP_NAME}-*.json"))
    other = dict(json.loads(stamp.read_text()), numba="0.1.0")  # another numba compiled them
    stamp.write_text(json.dumps(other))
    assert not warmup.kernel_cache().warm
    warmup._write_stamp()
    (sub / f"{cache.modules[0]}.f-1.py311.nbi").unlink()
    assert warmup.kernel_cache().state == "partly warm"


def test_a_warm_cache_loads_the_kernels_without_a_child_process():
    # conftest's session fixture warmed NUMBA_CACHE_DIR (and wrote the stamp) in this process
    from nirf_overlay.processing.warmup import kernel_cache

    assert kernel_cache().warm
    code = ("from nirf_overlay.processing.warmup import warm_up_in_child, is_warm\n"
            "child = warm_up_in_child()\nprint(child, is_warm())")
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "True"], proc.stdout


_ON_A_SCREEN = """
from nirf_overlay.gui.app import make_app
app = make_app()
from nirf_overlay.engine import Engine
from nirf_overlay.gui.main_window import MainWindow
from nirf_overlay.settings import Settings
from nirf_overlay.sources import SourceSpec
from nirf_overlay.sources.registry import open_source
eng = Engine(open_source(SourceSpec(phantom=True, size=(160, 96))), Settings(), prepare=True)
w = MainWindow(eng)
w.show()
for _ in range(50):
    app.processEvents()
g, a = w.geometry(), app.primaryScreen().availableGeometry()
print(a.width(), a.height(), g.x(), g.y(), g.width(), g.height(), int(w.isMaximized()))
w.close()
eng.stop()
"""


@pytest.mark.skipif(not shutil.which("xvfb-run"), reason="needs xvfb-run")
def test_a_wide_screen_gets_a_centred_window(tmp_path):
    env = dict(os.environ, NIRF_OVERLAY_CONFIG_DIR=str(tmp_path))
    env.pop("QT_QPA_PLATFORM", None)  # the X server's screen, not the offscreen 800x600
    proc = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 2560x1440x24", sys.executable,
                           "-c", _ON_A_SCREEN], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    numbers = [int(v) for v in proc.stdout.split()[-7:]]
    assert numbers == [2560, 1440, 256, 144, 2048, 1152, 0], proc.stdout


_STOPPED_WHILE_PREPARING = """
import threading, time
from nirf_overlay.engine import Engine
from nirf_overlay.processing.warmup import is_warm
from nirf_overlay.settings import Settings
from nirf_overlay.sources import SourceSpec
from nirf_overlay.sources.registry import open_source
eng = Engine(open_source(SourceSpec(phantom=True, size=(160, 96))), Settings(), prepare=True)
eng.start()
time.sleep(0.2)  # the kernels are loading on their own thread now
t0 = time.monotonic()
eng.stop()
alive = [t.name for t in threading.enumerate() if t.name.startswith("nirf-kernels")]
print(int(is_warm()), len(alive), round(time.monotonic() - t0, 1))
"""


def test_an_engine_stopped_while_its_kernels_load_ends_the_loading_thread():
    """Stopping an engine ends its kernel preparation and waits for that thread: a thread
    still inside numba when the interpreter finalises aborted ``view --exit-after 1``
    ("terminate called without an active exception")."""
    proc = subprocess.run([sys.executable, "-c", _STOPPED_WHILE_PREPARING], env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    warm, alive, seconds = proc.stdout.split()
    assert warm == "0" and alive == "0", proc.stdout  # stopped between two steps, thread gone
    assert float(seconds) < 30
