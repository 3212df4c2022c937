"""The calibration dialog's layout step, offscreen, on phantom tower recordings.

The recording is the phantom seen through a tower (three 4:3 insets down the
left, an enlarged NIR view on the right), written as real H.264 by
``make-sample --tower``'s writer; the dialog reads it as ``--combined`` does.
"""

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from nirf_overlay.calibration.profile import load_profile  # noqa: E402
from nirf_overlay.cli.make_sample import make_tower_recording  # noqa: E402
from nirf_overlay.phantom import PhantomParams  # noqa: E402
from nirf_overlay.phantom.tower import Tower, TowerParams  # noqa: E402
from nirf_overlay.sources import SourceSpec  # noqa: E402
from test_calibrate_transfer import _h264  # noqa: E402
from test_calibration_dialog import make_dialog  # noqa: E402,F401  (the fixture)
from test_layout_detect import _two_colour_insets  # noqa: E402

WAIT_MS = 60000


@pytest.fixture(scope="module")
def tower_recording(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("dlg_tower"))
    tower = Tower(TowerParams(layout="three-left", size=(1280, 720), curve="gamma:2.3", seed=52,
                              surround=8, wl_label="VIS"),
                  PhantomParams(seed=51, fps=15.0))
    s = make_tower_recording(tower, d, name="t", frames=20, crf=23, truth=False, progress=False)
    return s["combined"], tower


def _find(qtbot, dlg):
    dlg.set_step("layout")
    step = dlg.layout_step
    assert step.isVisible() and not dlg.capture_button.isVisible()
    step.find_button.click()
    qtbot.waitUntil(lambda: not step.busy, timeout=WAIT_MS)
    return step


def _close(found, truth, px=4):
    return max(abs(a - b) for a, b in zip(found, truth)) <= px


def test_the_layout_is_found_drawn_adjusted_and_saved(qtbot, make_dialog, tower_recording, tmp_path):
    path, tower = tower_recording
    profile = str(tmp_path / "tower.json")
    dlg = make_dialog(SourceSpec(combined=path), profile_path=profile)
    step = _find(qtbot, dlg)
    wl, nir, ignore = step.layout()
    assert _close(wl, tower.rects["wl"]), (wl, tower.rects["wl"])
    assert _close(nir, tower.rects["nir"]), (nir, tower.rects["nir"])  # the enlarged view
    assert ignore and "Unsure" not in step.message.text()
    # the frame is shown with the WL rectangle drawn in green, the tower's overlay labelled
    assert step.picture.shape == (720, 1280, 3)
    x, y, w, h = wl
    edge = step.picture[y + h // 2, x:x + 2].astype(int)
    assert (edge[:, 1] > 180).all() and (edge[:, 0] < 60).all()
    assert not dlg.preview.pixmap().isNull()

    # an edit is drawn at once: the NIR rectangle's left edge moves with its x field
    old = step.picture.copy()
    step.nir.boxes[0].setValue(nir[0] + 6)
    nx, ny, nw, nh = step.layout()[1]
    assert nx == nir[0] + 6
    assert (step.picture[ny + nh // 2, nx] != old[ny + nh // 2, nx]).any()
    # a proposed ignore box removed, another added by hand
    step._remove_ignore(step.ignore[0])
    step.add_ignore([5, 6, 30, 12])
    assert dlg.save_button.isEnabled()
    dlg.save_button.click()
    assert dlg.profile_path == profile, dlg.status.text()
    cal = load_profile(profile)
    assert list(cal.layout.wl_rect) == wl and list(cal.layout.nir_rect) == [nx, ny, nw, nh]
    assert [list(r) for r in cal.ignore_rects] == [list(r) for r in ignore[1:]] + [[5, 6, 30, 12]]
    assert cal.frame_size == tuple(wl[2:])
    # the other steps now read the source through the saved layout: WL-inset frames
    dlg.set_step("dark")
    qtbot.waitUntil(lambda: dlg._state is not None and dlg._state.size is not None,
                    timeout=WAIT_MS)
    assert tuple(dlg._state.size) == tuple(wl[2:])


def test_a_rectangle_dragged_on_the_preview_follows(qtbot, make_dialog, tower_recording):
    from PyQt5.QtCore import QPoint, Qt

    path, tower = tower_recording
    dlg = make_dialog(SourceSpec(combined=path))
    step = _find(qtbot, dlg)
    wl = step.layout()[0]
    pix = dlg.preview.pixmap()
    scale = pix.width() / 1280.0
    ox = (dlg.preview.width() - pix.width()) / 2.0
    oy = (dlg.preview.height() - pix.height()) / 2.0

    def at(fx, fy):
        return QPoint(int(round(ox + fx * scale)), int(round(oy + fy * scale)))

    cx, cy = wl[0] + wl[2] // 2, wl[1] + wl[3] // 2
    qtbot.mousePress(dlg.preview, Qt.LeftButton, pos=at(cx, cy))
    from PyQt5.QtGui import QMouseEvent
    from PyQt5.QtWidgets import QApplication
    from PyQt5.QtCore import QEvent

    move = QMouseEvent(QEvent.MouseMove, at(cx + 40, cy + 10), Qt.NoButton, Qt.LeftButton,
                       Qt.NoModifier)
    QApplication.sendEvent(dlg.preview, move)
    qtbot.mouseRelease(dlg.preview, Qt.LeftButton, pos=at(cx + 40, cy + 10))
    moved = step.layout()[0]
    assert abs(moved[0] - (wl[0] + 40)) <= 2 / scale + 1 and abs(moved[1] - (wl[1] + 10)) <= 2 / scale + 1
    assert moved[2:] == wl[2:]


def test_an_unsure_layout_says_so_and_why(qtbot, make_dialog, tmp_path):
    path = _h264(str(tmp_path / "two.mp4"), _two_colour_insets() * 3)
    profile = str(tmp_path / "p.json")
    dlg = make_dialog(SourceSpec(combined=path), profile_path=profile)
    step = _find(qtbot, dlg)
    text = step.message.text()
    assert text.startswith("Unsure:") and "look like white light" in text, text
    assert "yourself" in text
    # the fields hold the detector's best guess; with no grey inset there is no NIR to save
    dlg.save_button.click()
    assert dlg.profile_path is None
    assert dlg.status.text().startswith("layout: unsure (")


@pytest.mark.slow
def test_a_live_tower_stream_lets_the_preview_go_while_the_layout_is_read(qtbot, make_dialog,
                                                                          tmp_path):
    """A UDP stream has one reader: the preview's stops for the layout's frames, and comes
    back (through the layout found) once it is saved."""
    from test_sources_live import OPTIONS, Sender

    tower = Tower(TowerParams(layout="side-by-side", size=(640, 360), curve="gamma:2.2", seed=71),
                  PhantomParams(seed=72, fps=15.0))
    raw = tmp_path / "tower.raw"
    np.stack([tower.frame(i).frame for i in range(15)]).tofile(raw)
    tx = Sender(raw, "bgr24", "yuv420p", size=(640, 360)).start()
    try:
        spec = SourceSpec(combined=tx.url, options=dict(OPTIONS))
        dlg = make_dialog(spec, profile_path=str(tmp_path / "live.json"))
        qtbot.waitUntil(lambda: dlg._state is not None and dlg._state.frames_seen > 0,
                        timeout=WAIT_MS)
        step = _find(qtbot, dlg)
        assert step.found is not None, step.message.text()
        wl, nir, _ = step.layout()
        assert _close(wl, tower.rects["wl"]) and _close(nir, tower.rects["nir"]), step.message.text()
        dlg.save_button.click()
        assert dlg.profile_path, dlg.status.text()
        dlg.set_step("dark")
        qtbot.waitUntil(lambda: dlg._state is not None and dlg._state.frames_seen > 0,
                        timeout=WAIT_MS)
        assert tuple(dlg._state.size) == tuple(wl[2:])
    finally:
        tx.stop()


def test_the_viewer_reads_a_tower_through_the_layout_saved_in_the_dialog(
        qtbot, tmp_path, phantom, controlled_source, tower_recording, monkeypatch):
    """Tools -> Calibration on a --combined tower file: the layout saved is used at once
    (the source is opened again through it: the pipeline sees white-light-inset frames)."""
    from PyQt5.QtCore import QTimer
    from PyQt5.QtWidgets import QApplication

    from nirf_overlay.engine import Engine
    from nirf_overlay.gui.main_window import MainWindow
    from nirf_overlay.settings import Settings

    path, tower = tower_recording
    monkeypatch.chdir(tmp_path)  # the dialog's default profile: ./calibration/profile.json
    # a file the viewer reads (not live: the dialog opens at once, no camera to release)
    eng = Engine(controlled_source(live=False), Settings(), phantom.calibration())
    win = MainWindow(eng, snapshot_dir=tmp_path / "snaps", recording_dir=tmp_path / "rec",
                     presets_dir=tmp_path / "presets")
    qtbot.addWidget(win)
    win.show()
    win.sources.spec = SourceSpec(combined=path)
    done = []

    def drive():
        dlg = QApplication.activeModalWidget()
        if dlg is None or not hasattr(dlg, "layout_step"):
            QTimer.singleShot(100, drive)
            return
        if not done:
            dlg.set_step("layout")
            dlg.layout_step.find_button.click()
            done.append("find")
        if dlg.layout_step.busy or dlg.layout_step.found is None:
            QTimer.singleShot(100, drive)
            return
        dlg.save_button.click()
        done.append(dlg.profile_path)
        dlg.close_button.click()

    QTimer.singleShot(200, drive)
    win.acts.calibrate.trigger()  # modal: returns when the dialog closes
    assert done[-1] == str(tmp_path / "calibration" / "profile.json"), done
    wl = tower.rects["wl"]
    qtbot.waitUntil(lambda: win.engine is not eng and win.engine.info.size == tuple(wl[2:]),
                    timeout=WAIT_MS)
    assert tuple(win.sources.chosen_calibration.layout.wl_rect) == tuple(load_profile(done[-1]).layout.wl_rect)
