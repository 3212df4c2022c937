"""The help overlay lists every shortcut it is given and gets out of the way."""

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PyQt5.QtCore import Qt  # noqa: E402
from PyQt5.QtTest import QTest  # noqa: E402
from PyQt5.QtWidgets import QMainWindow, QLabel  # noqa: E402

from nirf_overlay.gui.help_overlay import HelpOverlay  # noqa: E402

SHORTCUTS = [
    ("Space", "Freeze / unfreeze the picture"),
    ("S", "Snapshot: overlay PNG, NIR TIFF, WL PNG, metrics JSON"),
    ("1-6", "Display modes"),
    ("F11", "Full screen"),
    ("F1 or ?", "This help"),
    ("<Ctrl>+O", "Open a source & remember it"),
]


@pytest.fixture
def window(qtbot):
    win = QMainWindow()
    video = QLabel("video")
    video.setFocusPolicy(Qt.StrongFocus)
    video.setStyleSheet("background: rgb(0, 160, 0);")
    win.setCentralWidget(video)
    qtbot.addWidget(win)
    win.resize(800, 500)
    win.show()
    win.activateWindow()
    assert QTest.qWaitForWindowActive(win)  # window shortcuts need an active window
    video.setFocus()
    return win


def test_lists_every_shortcut_given(window):
    overlay = HelpOverlay(SHORTCUTS, window)
    assert overlay.shortcuts == SHORTCUTS
    assert overlay.text().splitlines() == [f"{k}\t{w}" for k, w in SHORTCUTS]
    rich = overlay.label.text()
    for key, what in SHORTCUTS:
        # Escaped, so keys such as <Ctrl> are shown, not eaten as markup.
        assert key.replace("<", "&lt;").replace(">", "&gt;") in rich
        assert what.replace("&", "&amp;") in rich
    overlay.set_shortcuts(SHORTCUTS + [("K", "Play / pause replay")])
    assert "Play / pause replay" in overlay.label.text()


def test_f1_and_question_mark_toggle_any_key_closes(window, qtbot):
    overlay = HelpOverlay(SHORTCUTS, window)
    video = window.centralWidget()
    assert not overlay.isVisible()
    qtbot.keyClick(video, Qt.Key_F1)
    assert overlay.isVisible() and overlay.geometry() == window.rect()
    qtbot.keyClick(overlay, Qt.Key_F1)
    assert not overlay.isVisible()
    qtbot.keyClick(video, Qt.Key_Question)
    assert overlay.isVisible()
    qtbot.keyClick(overlay, Qt.Key_Escape)
    assert not overlay.isVisible()
    overlay.toggle()
    qtbot.keyClick(overlay, Qt.Key_A)
    assert not overlay.isVisible()
    assert window.focusWidget() is video  # focus handed back to the view
    overlay.toggle()
    qtbot.mouseClick(overlay, Qt.LeftButton)
    assert not overlay.isVisible()


def test_overlay_is_translucent_over_the_window_and_follows_resizes(window, qtbot):
    overlay = HelpOverlay(SHORTCUTS, window)
    overlay.toggle()
    window.resize(1000, 700)
    qtbot.waitUntil(lambda: overlay.geometry() == window.rect(), timeout=2000)
    img = window.grab().toImage().convertToFormat(4)
    ptr = img.constBits()
    ptr.setsize(img.byteCount())
    bgra = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)
    corner = bgra[img.height() - 5, 5, :3].astype(int)  # B, G, R under the veil
    # The green video shows through, darkened: translucent, not opaque.
    assert 10 < corner[1] < 100 and corner[0] < 10 and corner[2] < 10
    # Large text: the overlay's font is at least 12 px and grows with the window.
    assert overlay._font_px() >= 12


def test_owner_bound_f1_is_left_to_the_owner_and_shortcut_keys_only_close(window, qtbot):
    """As in the main window: the owner's action owns F1/?, other keys are shortcuts."""
    from PyQt5.QtWidgets import QAction

    overlay_holder = []
    snapshots = []
    help_action = QAction("Shortcuts", window)
    help_action.setShortcuts(["F1", "?"])
    help_action.triggered.connect(lambda: overlay_holder[0].setVisible(
        not overlay_holder[0].isVisible()))
    window.addAction(help_action)
    snap = QAction("Snapshot", window)
    snap.setShortcut("S")
    snap.triggered.connect(lambda: snapshots.append(1))
    window.addAction(snap)
    overlay = HelpOverlay(SHORTCUTS, window)
    overlay_holder.append(overlay)
    assert overlay.toggle_shortcuts == []  # no second binding of F1/? (Qt would cancel both)
    video = window.centralWidget()
    qtbot.keyClick(video, Qt.Key_F1)
    assert overlay.isVisible() and overlay.hasFocus()
    qtbot.keyClick(overlay, Qt.Key_S)  # closes the help, takes no snapshot
    assert not overlay.isVisible() and snapshots == []
    qtbot.keyClick(video, Qt.Key_S)
    assert snapshots == [1]
    qtbot.keyClick(video, Qt.Key_Question)
    assert overlay.isVisible()
    qtbot.keyClick(overlay, Qt.Key_F1)
    assert not overlay.isVisible() and window.focusWidget() is video
