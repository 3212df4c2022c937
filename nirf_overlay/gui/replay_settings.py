"""Which settings run during replay: the recorded ones or the current ones, and A/B (a view).

"Recorded" puts the settings stored in the session
(``engine.source.own_settings()``, as the surgeon saw it) in force, "Current"
the ones being tuned.  Either way only the viewer's
:class:`~nirf_overlay.gui.settings_model.SettingsModel` is replaced; the
panel, the view and the engine follow the model.  "A/B" runs both side by
side: A is what the model holds, B the recorded settings, the defaults or a
saved preset (``engine.set_ab(settings_b)``), always with the plane polygon
drawn on this scene (presets carry none).
"""

from __future__ import annotations

from typing import Optional

from PyQt5.QtCore import QSignalBlocker, Qt, pyqtSignal
from PyQt5.QtWidgets import QComboBox, QHBoxLayout, QPushButton, QWidget

from ..engine import Engine
from ..errors import NirfError, SettingsError
from ..settings import Settings
from .presets import list_presets, load_preset
from .settings_model import SettingsModel

__all__ = ["ReplaySettings"]


class ReplaySettings(QWidget):
    """Recorded / current settings and the A/B comparison, for one engine.

    Parameters
    ----------
    engine : the engine replaying a seekable source
    model : the viewer's settings
    presets_dir : where side-B presets are listed from
    parent : the replay bar

    Signals
    -------
    said(str) : a problem in plain words, ``""`` when a command went through again
    """

    said = pyqtSignal(str)

    def __init__(self, engine: Engine, model: SettingsModel, *, presets_dir, parent=None):
        super().__init__(parent)
        self.engine = engine
        self.model = model
        self.presets_dir = presets_dir
        self.recorded: Optional[Settings] = engine.source.own_settings()
        self._current: Optional[Settings] = None  # settings to go back to from "Recorded"
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.settings_box = QComboBox()
        self.settings_box.setObjectName("replay_settings")
        self.settings_box.addItem("Current settings", "current")
        self.settings_box.addItem("Recorded settings", "recorded")
        self.settings_box.setToolTip(
            "Run the pipeline with the settings in force when the session was recorded "
            "(as the surgeon saw it) or with the ones you are tuning now")
        self.settings_box.setFocusPolicy(Qt.NoFocus)
        self.settings_box.currentIndexChanged.connect(self._on_settings_choice)
        row.addWidget(self.settings_box)
        self.ab_button = QPushButton("A/B")
        self.ab_button.setObjectName("replay_ab")
        self.ab_button.setCheckable(True)
        self.ab_button.setFocusPolicy(Qt.NoFocus)
        self.ab_button.setToolTip("Show the picture with both settings side by side (B): "
                                  "A = the running settings, B = the choice on the right")
        self.ab_button.toggled.connect(self._on_ab_toggled)
        row.addWidget(self.ab_button)
        self.b_box = _RefreshingComboBox(self.refresh_b_choices)
        self.b_box.setObjectName("replay_b")
        self.b_box.setToolTip("Settings for side B: the recorded ones or a saved preset")
        self.b_box.setFocusPolicy(Qt.NoFocus)
        self.b_box.currentIndexChanged.connect(self._on_b_choice)
        row.addWidget(self.b_box)
        self.refresh_b_choices()
        if self.recorded is None:
            self.settings_box.setEnabled(False)
            self.settings_box.setToolTip("This source has no recorded settings "
                                         "(only recorded sessions do)")
        model.updated.connect(self._on_settings_updated)
        self._following = True

    def toggle_ab(self) -> None:
        self.ab_button.toggle()

    def refresh_b_choices(self) -> None:
        """List the recorded settings and the saved presets as choices for side B."""
        chosen = self.b_box.currentData()
        with QSignalBlocker(self.b_box):
            self.b_box.clear()
            if self.recorded is not None:
                self.b_box.addItem("B: recorded", "recorded")
            self.b_box.addItem("B: defaults", "defaults")
            for name in list_presets(self.presets_dir):
                self.b_box.addItem(f"B: {name}", f"preset:{name}")
            index = self.b_box.findData(chosen) if chosen is not None else 0
            self.b_box.setCurrentIndex(max(0, index))

    def settings_b(self) -> Optional[Settings]:
        """The settings chosen for side B, or None if they cannot be had."""
        data = self.b_box.currentData()
        if data is None:
            return None
        kind, _, name = str(data).partition(":")
        polygon = self.model.get("plane.polygon")
        if kind == "recorded":
            return self.recorded.copy() if self.recorded is not None else None
        if kind == "defaults":
            s = Settings()
            s.plane.polygon = polygon
            return s
        try:
            return load_preset(self.presets_dir, name, polygon)
        except SettingsError as e:
            self.said.emit(f"B not loaded: {e}")
            return None

    def sync_from_engine(self) -> None:
        """Show whether the engine runs A/B (the replay bar's poll calls this)."""
        if self.engine.ab != self.ab_button.isChecked():
            with QSignalBlocker(self.ab_button):
                self.ab_button.setChecked(self.engine.ab)

    def stop(self) -> None:
        """Stop following the model (the bar is being dropped)."""
        if self._following:
            self._following = False
            self.model.updated.disconnect(self._on_settings_updated)

    # -- slots --------------------------------------------------------------------------
    def _on_settings_updated(self, settings: Settings) -> None:
        # Tuning while "Recorded" is chosen means the recorded settings are no
        # longer in force: say "Current" again (and go back to these).
        if self.settings_box.currentData() == "recorded" and settings != self.recorded:
            self._current = settings
            with QSignalBlocker(self.settings_box):
                self.settings_box.setCurrentIndex(self.settings_box.findData("current"))

    def _on_settings_choice(self, _index: int) -> None:
        if self.settings_box.currentData() == "recorded":
            self._current = self.model.settings
            self.model.replace(self.recorded)
        elif self._current is not None:
            self.model.replace(self._current)

    def _on_ab_toggled(self, checked: bool) -> None:
        b = None
        if checked:
            self.refresh_b_choices()
            b = self.settings_b()
            if b is None:
                with QSignalBlocker(self.ab_button):
                    self.ab_button.setChecked(False)
                return
        try:
            self.engine.set_ab(b)
        except NirfError as e:
            self.said.emit(str(e))
            return
        self.said.emit("")

    def _on_b_choice(self, _index: int) -> None:
        if self.ab_button.isChecked():
            self._on_ab_toggled(True)


class _RefreshingComboBox(QComboBox):
    """A combo box that re-reads its choices when opened (presets saved meanwhile)."""

    def __init__(self, refresh, parent=None):
        super().__init__(parent)
        self._refresh = refresh

    def showPopup(self) -> None:
        self._refresh()
        super().showPopup()
