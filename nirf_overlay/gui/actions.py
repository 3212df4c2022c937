"""The main window's commands as QActions, their keys, menus and help rows (views).

Every command is a window action, so its key works when the toolbars and
menus are hidden (full screen).  The display modes come from
:data:`nirf_overlay.settings.DISPLAY_MODES`: button text, key, tooltip and
help row of each mode are that table's row.  The help overlay's list is made
from these actions themselves, so it cannot drift from what the keys do.
"""

from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QAction, QActionGroup, QMenuBar, QWidget

from ..settings import DISPLAY_MODES

__all__ = ["WindowActions", "build_menus"]


def _action(window: QWidget, text: str, *keys: str, tip: str = "",
            checkable: bool = False) -> QAction:
    a = QAction(text, window)
    a.setShortcuts(list(keys))
    a.setCheckable(checkable)
    a.setToolTip(tip or text)
    a.setShortcutContext(Qt.WindowShortcut)
    window.addAction(a)  # shortcuts keep working when toolbars are hidden
    return a


class WindowActions:
    """The window's actions; the window connects their ``triggered`` to its slots.

    Attributes
    ----------
    modes : ``{mode name: QAction}`` in :data:`DISPLAY_MODES` order, exclusive
    freeze, snapshot, record, ... : one QAction per command
    """

    def __init__(self, window: QWidget):
        group = QActionGroup(window)
        group.setExclusive(True)
        self.modes: dict[str, QAction] = {}
        for m in DISPLAY_MODES:
            a = _action(window, m.label, m.key, tip=f"{m.label} ({m.key}): {m.help}",
                        checkable=True)
            group.addAction(a)
            self.modes[m.name] = a
        self.freeze = _action(window, "Freeze", "Space", checkable=True,
                              tip="Hold the picture (Space); the HUD says FROZEN")
        self.snapshot = _action(window, "Snapshot", "S",
                                tip="Save overlay, raw NIR, WL and metrics (S)")
        self.record = _action(window, "Record", "R", checkable=True,
                              tip="Start/stop recording a session (R)")
        self.open = _action(window, "Open...", "Ctrl+O",
                            tip="Open a file, device, URL or session (Ctrl+O)")
        self.fullscreen = _action(window, "Full screen", "F11", checkable=True,
                                  tip="Full screen, minimal chrome (F11)")
        self.leave_fullscreen = _action(window, "Leave full screen", "Esc")
        self.help = _action(window, "Shortcuts", "F1", "?", tip="Show every shortcut (F1 or ?)")
        self.draw_plane = _action(window, "Draw plane", "T",
                                  tip="Click the transection plane's corners; "
                                      "double-click or Enter closes it (T)")
        self.clear_plane = _action(window, "Clear plane", "Del",
                                   tip="Remove the transection-plane polygon (Del)")
        self.contours = _action(window, "Rim outline", "C", checkable=True,
                                tip="Outline detected rims (C)")
        self.panel = _action(window, "Settings panel", "D", checkable=True,
                             tip="Show/hide the settings panel (D)")
        self.hud = _action(window, "HUD", "H", checkable=True,
                           tip="Show/hide the HUD numbers (safety marks always show) (H)")
        self.hud.setChecked(True)
        self.play = _action(window, "Play/pause", "P", tip="Pause or play a recording (P)")
        self.previous = _action(window, "Previous frame", ",")
        self.next = _action(window, "Next frame", ".")
        self.marker = _action(window, "Marker", "M", tip="Put a marker in the recording (M)")
        self.reset_layout = _action(window, "Reset layout",
                                    tip="Default window size and dock placement for this "
                                        "screen; forget the stored layout")
        self.calibrate = _action(window, "Calibration...",
                                 tip="Guided dark / flat / registration capture")
        self.quit = _action(window, "Quit", "Ctrl+Q")

    def keyed(self) -> list[QAction]:
        """The commands that have a key, in the order the help lists them."""
        return [self.freeze, self.snapshot, self.record, self.open, self.fullscreen,
                self.leave_fullscreen, self.help, self.draw_plane, self.clear_plane,
                self.contours, self.panel, self.hud, self.play, self.previous, self.next,
                self.marker, self.quit]

    def help_rows(self) -> list[tuple[str, str]]:
        """``(key, what it does)`` for the help overlay: the modes, then every keyed command."""
        rows = [(m.key, f"{m.label}: {m.help}") for m in DISPLAY_MODES]
        for a in self.keyed():
            keys = " / ".join(k.toString() for k in a.shortcuts())
            rows.append((keys, a.toolTip() if a.toolTip() != a.text() else a.text()))
        rows.append(("Enter", "Close the plane polygon while drawing"))
        return rows


def build_menus(menu_bar: QMenuBar, acts: WindowActions) -> None:
    """File, View, Replay, Tools and Help menus over the window's actions."""
    m = menu_bar.addMenu("&File")
    for a in (acts.open, acts.snapshot, acts.record, acts.marker):
        m.addAction(a)
    m.addSeparator()
    m.addAction(acts.quit)
    m = menu_bar.addMenu("&View")
    for a in acts.modes.values():
        m.addAction(a)
    m.addSeparator()
    for a in (acts.freeze, acts.contours, acts.hud, acts.panel, acts.fullscreen):
        m.addAction(a)
    m.addSeparator()
    m.addAction(acts.reset_layout)
    m = menu_bar.addMenu("&Replay")
    for a in (acts.play, acts.previous, acts.next, acts.marker):
        m.addAction(a)
    m = menu_bar.addMenu("&Tools")
    for a in (acts.draw_plane, acts.clear_plane, acts.calibrate):
        m.addAction(a)
    m = menu_bar.addMenu("&Help")
    m.addAction(acts.help)
