"""The settings panel (a view of the :class:`SettingsModel`): every setting, presets, a histogram.

The controls are generated from the metadata of the
:class:`~nirf_overlay.settings.Settings` dataclass fields (``lo``/``hi`` ->
range-checked spin boxes, ``choices`` -> combo boxes, booleans -> check
boxes, ``label``/``help``/``unit`` -> captions and tooltips), so a setting
added to the schema shows up here without touching this file.

A control that the user changes sets that one setting on the model; the
panel shows the model's values by following
:attr:`~nirf_overlay.gui.settings_model.SettingsModel.changed`, whoever made
the change (the toolbar, a mode key, the replay bar, a preset).
Out-of-range input is refused in place (red box, reason in its tooltip and in
the panel's status line) and the model keeps its last valid value.

Presets (:mod:`nirf_overlay.gui.presets`) leave the transection-plane
polygon alone, and so does "Defaults": the polygon has its own Clear button.
"""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ..errors import SettingsError
from ..settings import Settings
from . import presets
from .settings_model import SettingsModel
from .widgets import CheckedDoubleSpinBox, CheckedSpinBox, HistogramWidget, NumberListEdit

__all__ = ["SettingsPanel", "histogram_percentile"]

SECTION_TITLES = {
    "normalise": "Normalisation",
    "levels": "Display levels",
    "segment": "Rim detection",
    "display": "Display",
    "plane": "Transection plane",
}

_PLANE_POLYGON = "plane.polygon"


def histogram_percentile(hist, lo: float, hi: float, percent: float) -> Optional[float]:
    """The value below which ``percent`` % of the counts in ``hist`` lie.

    ``hist`` is (N,) counts of equal bins over ``lo..hi``; counts are taken as
    spread evenly within a bin, so the answer is exact to within a bin.
    None for an empty histogram.
    """
    counts = np.clip(np.asarray(hist, dtype=np.float64).ravel(), 0, None)
    total = counts.sum()
    if counts.size == 0 or total <= 0:
        return None
    edges = np.linspace(lo, hi, counts.size + 1)
    cum = np.concatenate([[0.0], np.cumsum(counts)]) / total * 100.0
    return float(np.interp(min(max(percent, 0.0), 100.0), cum, edges))


def _range_text(lo, hi, unit: str) -> str:
    unit = f" {unit}" if unit else ""
    return f"{lo:g} to {hi:g}{unit}"


def _describe_polygon(value) -> str:
    if not value:
        return "none drawn"
    xs = [p[0] for p in value]
    ys = [p[1] for p in value]
    return (f"{len(value)} points, x {min(xs):.0f}-{max(xs):.0f}, "
            f"y {min(ys):.0f}-{max(ys):.0f} px")


class SettingsPanel(QDockWidget):
    """Dockable panel over a :class:`SettingsModel` (a view).

    Parameters
    ----------
    model : the viewer's settings model; the panel shows and edits it
    parent : the main window
    presets_dir : where presets are read and written; default
        :func:`~nirf_overlay.gui.presets.default_presets_dir` (created on the first save)
    """

    def __init__(self, model: SettingsModel, parent=None, *, presets_dir=None):
        super().__init__("Settings", parent)
        self.setObjectName("settings_panel")  # QMainWindow.saveState needs a name
        self.setFeatures(QDockWidget.DockWidgetClosable | QDockWidget.DockWidgetMovable
                         | QDockWidget.DockWidgetFloatable)
        self.setAllowedAreas(Qt.LeftDockWidgetArea | Qt.RightDockWidgetArea)
        self.model = model
        self._defaults = Settings()
        self.presets_dir = (Path(presets_dir) if presets_dir is not None
                            else presets.default_presets_dir())
        self._editors: dict[str, QWidget] = {}
        self._show: dict[str, Callable[[Any], None]] = {}  # name -> puts a value in its editor
        # name -> marks its editor refused, keeping the typed text to correct
        self._refuse: dict[str, Callable[[str], None]] = {}
        self._last_histogram = None

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self._build_presets())
        hist_box = QGroupBox("NIR histogram")
        hist_layout = QVBoxLayout(hist_box)
        self.histogram = HistogramWidget(hist_box)
        hist_layout.addWidget(self.histogram)
        layout.addWidget(hist_box)
        for section, names in self._sections().items():
            layout.addWidget(self._build_section(section, names))
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.status)
        layout.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # labels wrap instead
        scroll.setWidget(body)
        self.setWidget(scroll)
        self._refresh_presets()
        for name in self._editors:
            self._on_setting_changed(name, model.get(name))
        model.changed.connect(self._on_setting_changed)

    # -- public API ------------------------------------------------------------------
    def set_histogram(self, hist: np.ndarray, lo: float, hi: float,
                      threshold: Optional[float] = None, **kwargs) -> None:
        """Show a histogram of ``hist`` (N,) counts over ``lo..hi`` (see HistogramWidget).

        Unless ``markers`` are given, the black and white display levels that
        the current percentile settings pick from this histogram are marked,
        so moving those settings shows at once where the levels land.
        """
        self._last_histogram = (np.asarray(hist), float(lo), float(hi), threshold, dict(kwargs))
        if "markers" not in kwargs:
            kwargs["markers"] = self._level_markers(hist, lo, hi)
        self.histogram.set_histogram(hist, lo, hi, threshold, **kwargs)

    def editor(self, name: str) -> QWidget:
        """The control of setting ``name`` (``"segment.threshold"``), for the owner and tests."""
        return self._editors[name]

    def field_names(self) -> list[str]:
        return list(self._editors)

    def status_text(self) -> str:
        return self.status.text()

    # -- presets -----------------------------------------------------------------------
    def preset_names(self) -> list[str]:
        return presets.list_presets(self.presets_dir)

    def save_preset(self, name: str) -> Optional[Path]:
        """Write the model's settings (minus the plane polygon) as preset ``name``.

        Returns the file written, or None when it was refused (the reason is
        in the status line).
        """
        name = name.strip()
        try:
            path, replaced = presets.save_preset(self.presets_dir, name, self.model.settings)
        except SettingsError as e:
            self._say(str(e), error=True)
            return None
        except OSError as e:
            self._say(f"Cannot save preset {name!r} in {self.presets_dir}: {e.strerror}",
                      error=True)
            return None
        self._refresh_presets(select=name)
        self._say(f"Preset {name!r} {'replaced' if replaced else 'saved'} ({path}).")
        return path

    def load_preset(self, name: str) -> bool:
        """Put preset ``name`` in force (keeping the current plane polygon)."""
        try:
            settings = presets.load_preset(self.presets_dir, name,
                                           self.model.get(_PLANE_POLYGON))
        except SettingsError as e:
            self._say(f"Preset not loaded: {e}", error=True)
            return False
        self.model.replace(settings)
        self._say(f"Preset {name!r} loaded.")
        return True

    def delete_preset(self, name: str) -> bool:
        try:
            presets.delete_preset(self.presets_dir, name)
        except OSError as e:
            self._say(f"Cannot delete preset {name!r}: {e.strerror}", error=True)
            return False
        self._refresh_presets()
        self._say(f"Preset {name!r} deleted.")
        return True

    def reset_to_defaults(self) -> None:
        """Every setting back to its default, except the plane polygon."""
        settings = Settings()
        settings.plane.polygon = self.model.get(_PLANE_POLYGON)
        self.model.replace(settings)
        self._say("All settings back to their defaults (plane polygon kept).")

    def clear_polygon(self) -> None:
        self.model.set(_PLANE_POLYGON, [])
        self._say("Transection-plane polygon cleared.")

    # -- building -------------------------------------------------------------------
    def _sections(self) -> dict[str, list[str]]:
        sections: dict[str, list[str]] = {}
        for name, _f in self._defaults.fields():
            sections.setdefault(name.split(".")[0], []).append(name)
        return sections

    def _build_presets(self) -> QWidget:
        box = QGroupBox("Presets")
        layout = QVBoxLayout(box)
        row = QHBoxLayout()
        self.preset_box = QComboBox()
        self.preset_box.setEditable(True)
        self.preset_box.setInsertPolicy(QComboBox.NoInsert)
        self.preset_box.lineEdit().setPlaceholderText("preset name")
        self.preset_box.setToolTip(
            "Type a name and press Save to keep the current settings under that name; "
            "pick one and press Load to use it again. Presets do not include the "
            f"transection-plane polygon.\nFolder: {self.presets_dir}"
        )
        row.addWidget(self.preset_box, 1)
        layout.addLayout(row)
        buttons = QGridLayout()
        for i, (text, slot, tip) in enumerate((
            ("Load", self._on_load_clicked, "Use the chosen preset."),
            ("Save", self._on_save_clicked, "Save the current settings under the typed name."),
            ("Delete", self._on_delete_clicked, "Delete the chosen preset file."),
            ("Defaults", self._on_reset_clicked,
             "Put every setting back to its default (the plane polygon stays)."),
        )):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            button.setObjectName(f"preset_{text.lower()}")
            buttons.addWidget(button, i // 2, i % 2)
        layout.addLayout(buttons)
        return box

    def _build_section(self, section: str, names: list[str]) -> QGroupBox:
        box = QGroupBox(SECTION_TITLES.get(section, section.replace("_", " ").capitalize()))
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.DontWrapRows)
        fields = dict(self._defaults.fields())
        for name in names:
            f = fields[name]
            meta = f.metadata
            label_text = meta.get("label") or name.split(".")[1].replace("_", " ").capitalize()
            tip = self._tooltip(name, f)
            editor, row_widget, show = self._make_editor(name, f, tip)
            unit = meta.get("unit") or ""
            label = QLabel(f"{html.escape(label_text)} <span style='color:gray'>"
                           f"({html.escape(unit)})</span>" if unit else html.escape(label_text))
            label.setWordWrap(True)
            label.setToolTip(tip)
            label.setBuddy(editor)
            editor.setObjectName(name)
            self._editors[name] = editor
            self._show[name] = show
            form.addRow(label, row_widget)
        return box

    def _tooltip(self, name: str, f: dataclasses.Field) -> str:
        meta = f.metadata
        parts = [meta.get("help") or ""]
        default = self._defaults.get(name)
        unit = meta.get("unit") or ""
        if meta.get("lo") is not None and meta.get("hi") is not None:
            parts.append(f"Allowed: {_range_text(meta['lo'], meta['hi'], unit)}; "
                         f"default {default:g}{(' ' + unit) if unit else ''}.")
        elif meta.get("choices"):
            parts.append(f"Default: {default}.")
        parts.append(f"({name})")
        return "\n".join(p for p in parts if p)

    def _make_editor(self, name: str, f: dataclasses.Field, tip: str):
        """``(editor, row_widget, show)`` for one field; edits go to :meth:`_on_edited`.

        ``show(value)`` puts a model value in the editor without it reporting
        an edit (the panel calls it with signals blocked).
        """
        meta = f.metadata
        value = self._defaults.get(name)
        unit = meta.get("unit") or ""
        if isinstance(value, bool):
            box = QCheckBox()
            box.setToolTip(tip)
            box.toggled.connect(lambda v, n=name: self._on_edited(n, bool(v)))
            return box, box, lambda v: box.setChecked(bool(v))
        if isinstance(value, str) and meta.get("choices"):
            combo = QComboBox()
            combo.setToolTip(tip)
            for choice in meta["choices"]:
                combo.addItem(choice, choice)
            combo.currentIndexChanged.connect(
                lambda i, n=name: self._on_edited(n, combo.itemData(i)))
            return combo, combo, lambda v: combo.setCurrentIndex(max(0, combo.findData(v)))
        if isinstance(value, (int, float)) and meta.get("lo") is not None \
                and meta.get("hi") is not None:
            cls = CheckedSpinBox if isinstance(value, int) else CheckedDoubleSpinBox
            spin = cls(meta["lo"], meta["hi"], value, unit=unit, help=tip)
            spin.valueChanged.connect(lambda v, n=name: self._on_edited(n, v))
            spin.refused.connect(lambda reason, n=name: self._on_refused(n, reason))
            return spin, spin, spin.show_value
        if isinstance(value, list) and meta.get("kind") == "rect":
            edit = NumberListEdit(value, placeholder="whole frame, or x, y, w, h", help=tip)
            edit.edited.connect(lambda v, n=name: self._on_edited(n, v))
            edit.refused.connect(lambda reason, n=name: self._on_refused(n, reason))
            self._refuse[name] = edit.refuse
            return edit, edit, edit.show_value
        if name == _PLANE_POLYGON:
            return self._make_polygon_row(tip)
        # A field kind this panel does not edit yet: shown read-only, never hidden.
        text = QLabel()
        text.setToolTip(tip)
        text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        return text, text, lambda v: text.setText(str(v))

    def _make_polygon_row(self, tip: str):
        text = QLabel()
        text.setToolTip(tip)
        text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(text, 1)
        clear = QPushButton("Clear")
        clear.setObjectName("clear_polygon")
        clear.setToolTip("Remove the transection-plane polygon (draw a new one on the view).")
        clear.clicked.connect(self.clear_polygon)
        h.addWidget(clear)
        self.clear_polygon_button = clear

        def show(value) -> None:
            text.setText(_describe_polygon(value))
            clear.setEnabled(bool(value))

        return text, row, show

    # -- model <-> controls -------------------------------------------------------------
    def _on_setting_changed(self, name: str, value) -> None:
        editor = self._editors[name]
        editor.blockSignals(True)
        try:
            self._show[name](value)
        finally:
            editor.blockSignals(False)
        if name.startswith("levels."):
            self._redraw_histogram()  # the level marks follow the percentiles

    def _on_edited(self, name: str, value) -> None:
        try:
            self.model.set(name, value)
        except SettingsError as e:
            reason = str(e).split(": ", 1)[-1]
            if name in self._refuse:
                self._refuse[name](reason)
                return
            # Spin boxes share the model's lo/hi, so this is rare (a model rule
            # stricter than the range); refuse and show the model's value again.
            self._say(f"{self._field_label(name)}: refused, {reason}.", error=True)
            self._on_setting_changed(name, self.model.get(name))
            return
        self._say("")

    def _on_refused(self, name: str, reason: str) -> None:
        if reason:
            self._say(f"{self._field_label(name)}: {reason}.", error=True)
        elif self.status.property("error"):
            self._say("")

    def _field_label(self, name: str) -> str:
        f = dict(self._defaults.fields())[name]
        return f.metadata.get("label") or name

    def _redraw_histogram(self) -> None:
        if self._last_histogram is not None:
            hist, lo, hi, threshold, kwargs = self._last_histogram
            self.set_histogram(hist, lo, hi, threshold, **kwargs)

    def _level_markers(self, hist, lo: float, hi: float) -> list[tuple[float, str]]:
        markers = []
        for name, mark in (("levels.low_percentile", "black"),
                           ("levels.high_percentile", "white")):
            x = histogram_percentile(hist, lo, hi, self.model.get(name))
            if x is not None:
                markers.append((x, mark))
        return markers

    def _say(self, text: str, *, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setProperty("error", bool(error and text))
        self.status.setStyleSheet("color: #d22; font-weight: bold;" if error and text else "")

    # -- preset slots ---------------------------------------------------------------
    def _refresh_presets(self, select: Optional[str] = None) -> None:
        typed = select if select is not None else self.preset_box.currentText()
        self.preset_box.blockSignals(True)
        self.preset_box.clear()
        self.preset_box.addItems(self.preset_names())
        self.preset_box.setEditText(typed)
        self.preset_box.blockSignals(False)

    def _on_load_clicked(self) -> None:
        name = self.preset_box.currentText().strip()
        if name not in self.preset_names():
            self._say(f"No preset named {name!r} in {self.presets_dir}." if name
                      else "Choose a preset to load.", error=True)
            return
        self.load_preset(name)

    def _on_save_clicked(self) -> None:
        self.save_preset(self.preset_box.currentText())

    def _on_delete_clicked(self) -> None:
        name = self.preset_box.currentText().strip()
        if name in self.preset_names():
            self.delete_preset(name)
        else:
            self._say("Choose a preset to delete.", error=True)

    def _on_reset_clicked(self) -> None:
        self.reset_to_defaults()
