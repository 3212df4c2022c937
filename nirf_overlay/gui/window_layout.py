"""The viewer window's size and dock layout: a default for its screen, remembered, reset.

A new window opens sized for the screen it is on (:func:`default_geometry`):
maximised on work areas up to :data:`MAXIMISE_UP_TO` px wide (1280x720 and
1366x768 laptops, the 1920x1080 monitors of most OR carts), where the picture
needs every pixel; on wider screens (2560x1440, 4K at 100 %) a centred window
of :data:`SCREEN_FRACTION` of the work area, which leaves room beside it and
is still larger than a whole 1080p screen.  A fixed size sat in the corner of a
1080p screen with its toolbar cut off.

When the window closes its geometry (``QWidget.saveGeometry``) and toolbar and
dock layout (``QMainWindow.saveState``) go to the viewer's QSettings store
(:func:`~.presets.settings_store`, keys ``window/geometry`` and
``window/state``); the next start restores them (Qt moves a window whose
screen is gone back onto one).  A full-screen window does not store its
layout (its chrome is hidden).  "Reset layout" (View menu) puts back the default
geometry and dock placement and forgets the stored ones.
"""

from __future__ import annotations

from typing import Optional

from PyQt5.QtCore import QSettings, Qt
from PyQt5.QtWidgets import QApplication, QMainWindow

from .presets import settings_store

__all__ = ["MAXIMISE_UP_TO", "SCREEN_FRACTION", "WindowLayout", "default_geometry"]

#: px: work areas this wide or narrower get a maximised window
MAXIMISE_UP_TO = 1920
#: share of a wider work area a new window takes, centred
SCREEN_FRACTION = 0.8
#: px: smallest size a new window opens at (the six mode buttons and the dock fit)
MIN_WINDOW = (1024, 640)
#: bump when the window's toolbars or docks change so that old stored layouts are dropped
LAYOUT_VERSION = 1
GEOMETRY_KEY = "window/geometry"
STATE_KEY = "window/state"


def default_geometry(x: int, y: int, width: int, height: int) -> tuple:
    """``(x, y, w, h, maximised)`` of a new window on a screen whose work area is given."""
    if width <= MAXIMISE_UP_TO:
        return x, y, width, height, True
    w = min(width, max(MIN_WINDOW[0], int(width * SCREEN_FRACTION)))
    h = min(height, max(MIN_WINDOW[1], int(height * SCREEN_FRACTION)))
    return x + (width - w) // 2, y + (height - h) // 2, w, h, False


class WindowLayout:
    """Default, stored and reset geometry and dock layout of ``window``.

    Made once the window's toolbars and docks exist: it notes their default
    placement, sizes the window for its screen and then restores what the
    store holds.  ``store`` defaults to :func:`~.presets.settings_store`.
    """

    def __init__(self, window: QMainWindow, store: Optional[QSettings] = None):
        self.window = window
        self.store = store if store is not None else settings_store()
        self._default_state = window.saveState(LAYOUT_VERSION)
        self.apply_default_geometry()
        self.restored = self._restore()

    def apply_default_geometry(self) -> None:
        w = self.window
        screen = w.screen() if w.windowHandle() is not None else QApplication.primaryScreen()
        if screen is None:
            w.resize(*MIN_WINDOW)
            return
        area = screen.availableGeometry()
        x, y, width, height, maximised = default_geometry(area.x(), area.y(), area.width(),
                                                          area.height())
        w.setWindowState(w.windowState() & ~(Qt.WindowMaximized | Qt.WindowFullScreen))
        w.setGeometry(x, y, width, height)
        if maximised:
            w.setWindowState(w.windowState() | Qt.WindowMaximized)

    def _restore(self) -> bool:
        geometry = self.store.value(GEOMETRY_KEY)
        state = self.store.value(STATE_KEY)
        restored = False
        if geometry is not None:
            restored = bool(self.window.restoreGeometry(geometry))
        if state is not None:
            restored = self.window.restoreState(state, LAYOUT_VERSION) or restored
        return restored

    def save(self) -> None:
        """Store the geometry and layout (not a full-screen one: its chrome is hidden)."""
        if self.window.isFullScreen():
            return
        self.store.setValue(GEOMETRY_KEY, self.window.saveGeometry())
        self.store.setValue(STATE_KEY, self.window.saveState(LAYOUT_VERSION))
        self.store.sync()

    def reset(self) -> None:
        """The default geometry and dock placement again; the stored ones are forgotten."""
        self.store.remove(GEOMETRY_KEY)
        self.store.remove(STATE_KEY)
        self.store.sync()
        self.window.restoreState(self._default_state, LAYOUT_VERSION)
        self.apply_default_geometry()
