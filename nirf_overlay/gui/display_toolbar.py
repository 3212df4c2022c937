"""The display toolbar (a view of the :class:`SettingsModel`): mode, colour map, opacity, outline.

The mode buttons (their keys come from ``DISPLAY_MODES``), the colour-map
box, the opacity slider and the rim-outline toggle each set one
``display.*`` setting on the model and show the model's value, whoever
changed it (the settings panel, the replay bar, a preset).  The window's
tool commands follow on the same bar.

The six mode buttons are one widget, the bar's first item (:class:`ModeButtons`):
a narrow QToolBar keeps its first item and moves only the later ones behind its
">>" menu, so the modes stay on screen at any window width.
"""

from __future__ import annotations

from PyQt5.QtCore import QSignalBlocker, Qt
from PyQt5.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QSlider, QToolBar,
                             QToolButton, QWidget)

from ..settings import COLORMAPS
from .actions import WindowActions
from .settings_model import SettingsModel

__all__ = ["DisplayToolbar", "ModeButtons"]


class ModeButtons(QWidget):
    """One tool button per display mode (``acts.modes``), side by side, in one widget."""

    def __init__(self, acts: WindowActions, parent: QWidget):
        super().__init__(parent)
        self.setObjectName("mode_buttons")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        #: ``{mode name: QToolButton}`` in DISPLAY_MODES order
        self.buttons: dict = {}
        for name, a in acts.modes.items():
            b = QToolButton(self)
            b.setDefaultAction(a)
            b.setAutoRaise(True)
            b.setFocusPolicy(Qt.NoFocus)
            b.setObjectName(f"mode_{name}")
            layout.addWidget(b)
            self.buttons[name] = b


class DisplayToolbar(QToolBar):
    """Mode buttons and display controls bound to ``model``, then the window's tools.

    Parameters
    ----------
    model : the viewer's settings
    acts : the window's actions (the mode and outline actions are bound here)
    parent : the main window

    The controls offer only values the schema accepts (its choices, 0..1 in
    steps of 0.01), so they set the model without a refusal path.
    """

    def __init__(self, model: SettingsModel, acts: WindowActions, parent: QWidget):
        super().__init__("Display", parent)
        self.setObjectName("display_toolbar")
        self.setMovable(False)
        self.model = model
        self._acts = acts
        for name, a in acts.modes.items():
            a.triggered.connect(lambda _=False, m=name: model.set("display.mode", m))
        self.mode_buttons = ModeButtons(acts, self)
        self.addWidget(self.mode_buttons)  # first: never behind the ">>" (module doc)
        self.addSeparator()
        self.colormap_box = QComboBox(self)
        self.colormap_box.addItems(COLORMAPS)
        self.colormap_box.setToolTip("Colour of the fluorescence ('cividis' is colour-blind safe)")
        self.colormap_box.activated.connect(self._on_colormap_chosen)
        self.addWidget(self.colormap_box)
        self.alpha_slider = QSlider(Qt.Horizontal, self)
        self.alpha_slider.setRange(0, 100)
        self.alpha_slider.setFixedWidth(110)
        self.alpha_slider.setToolTip("Overlay opacity")
        self.alpha_slider.valueChanged.connect(self._on_alpha_moved)
        self.addWidget(QLabel(" opacity "))
        self.addWidget(self.alpha_slider)
        acts.contours.triggered.connect(self._on_contours_toggled)
        self.addAction(acts.contours)
        self.addSeparator()
        for a in (acts.freeze, acts.snapshot, acts.record, acts.draw_plane, acts.clear_plane,
                  acts.open, acts.fullscreen, acts.panel, acts.help):
            self.addAction(a)
        for name in ("display.mode", "display.colormap", "display.alpha",
                     "display.show_contours"):
            self._on_setting_changed(name, model.get(name))
        model.changed.connect(self._on_setting_changed)

    def _on_colormap_chosen(self, index: int) -> None:
        self.model.set("display.colormap", self.colormap_box.itemText(index))

    def _on_alpha_moved(self, value: int) -> None:
        self.model.set("display.alpha", value / 100.0)

    def _on_contours_toggled(self, checked: bool) -> None:
        self.model.set("display.show_contours", bool(checked))

    def _on_setting_changed(self, name: str, value) -> None:
        if name == "display.mode":
            self._acts.modes[value].setChecked(True)
        elif name == "display.colormap":
            self.colormap_box.setCurrentText(value)
        elif name == "display.alpha":
            with QSignalBlocker(self.alpha_slider):
                self.alpha_slider.setValue(int(round(value * 100)))
        elif name == "display.show_contours":
            self._acts.contours.setChecked(bool(value))

