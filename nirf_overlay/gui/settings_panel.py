"""The settings panel (a view): every pipeline setting, presets, a live histogram.

The controls are generated from the metadata of the
:class:`~nirf_overlay.settings.Settings` dataclass fields (``lo``/``hi`` ->
range-checked spin boxes, ``choices`` -> combo boxes, booleans -> check
boxes, ``label``/``help``/``unit`` -> captions and tooltips), so a setting
added to the model shows up here without touching this file.

Every accepted change emits :attr:`SettingsPanel.settings_changed` with a new,
validated :class:`Settings` copy; the owner hands it to the engine, which
applies it to the next frame.  Out-of-range input is refused in place (red
box, reason in its tooltip and in the panel's status line) and the model keeps
its last valid value.

Presets are the settings JSON (``Settings.save``) without the transection-plane
polygon, one file per preset in :func:`default_presets_dir`.  The polygon
belongs to the scene on screen, not to a tuning: a preset carrying another
case's polygon would flag fluorescence in an arbitrary region, so presets
neither store nor replace it, and "Reset to defaults" leaves it alone too
(it has its own Clear button).
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
from pathlib import Path
from typing import Optional

import numpy as np
from PyQt5.QtCore import QStandardPaths, Qt, pyqtSignal
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
from .widgets import (
    CheckedDoubleSpinBox,
    CheckedSpinBox,
    HistogramWidget,
    NumberListEdit,
    decimals_for,
)

__all__ = ["SettingsPanel", "default_presets_dir", "list_presets", "load_preset",
           "histogram_percentile", "CONFIG_DIR_ENV"]

#: Environment variable that moves the whole nirf-overlay config folder
#: (presets live in ``$NIRF_OVERLAY_CONFIG_DIR/presets``); tests and kiosk
#: installs use it so nothing is written to the user's own config.
CONFIG_DIR_ENV = "NIRF_OVERLAY_CONFIG_DIR"

SECTION_TITLES = {
    "normalise": "Normalisation",
    "levels": "Display levels",
    "segment": "Rim detection",
    "display": "Display",
    "plane": "Transection plane",
}

_PRESET_NAME = re.compile(r"^[\w][\w .()+-]{0,63}$")
_PLANE_POLYGON = "plane.polygon"


def default_presets_dir() -> Path:
    """``<config>/nirf-overlay/presets``, e.g. ``~/.config/nirf-overlay/presets``.

    ``$NIRF_OVERLAY_CONFIG_DIR`` replaces ``<config>/nirf-overlay``.
    """
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override) / "presets"
    base = QStandardPaths.writableLocation(QStandardPaths.GenericConfigLocation)
    if not base:
        base = str(Path.home() / ".config")
    return Path(base) / "nirf-overlay" / "presets"


def list_presets(presets_dir) -> list[str]:
    """Names of the presets (``*.json``) in ``presets_dir``, sorted case-insensitively."""
    folder = Path(presets_dir)
    if not folder.is_dir():
        return []
    return sorted((p.stem for p in folder.glob("*.json")), key=str.lower)


def load_preset(presets_dir, name: str, keep_polygon: Optional[list] = None) -> Settings:
    """Read preset ``name``; the plane polygon is ``keep_polygon`` (not stored in presets)."""
    settings = Settings.load(Path(presets_dir) / f"{name}.json")
    settings.plane.polygon = [list(p) for p in (keep_polygon or [])]
    return settings


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


class SettingsPanel(QDockWidget):
    """Dockable panel editing a :class:`Settings` (a view over the model).

    Parameters
    ----------
    settings : the settings in force; the panel keeps its own copy
    parent : the main window
    presets_dir : where presets are read and written; default
        :func:`default_presets_dir` (created on the first save)

    Signals
    -------
    settings_changed(Settings) : a new validated copy after every accepted change
    """

    settings_changed = pyqtSignal(object)

    def __init__(self, settings: Optional[Settings] = None, parent=None, *,
                 presets_dir=None):
        super().__init__("Settings", parent)
        self.setObjectName("settings_panel")  # QMainWindow.saveState needs a name
        self.setFeatures(QDockWidget.DockWidgetClosable | QDockWidget.DockWidgetMovable
                         | QDockWidget.DockWidgetFloatable)
        self.setAllowedAreas(Qt.LeftDockWidgetArea | Qt.RightDockWidgetArea)
        self._settings = (settings or Settings()).copy()
        self._defaults = Settings()
        self.presets_dir = Path(presets_dir) if presets_dir is not None else default_presets_dir()
        self._editors: dict[str, QWidget] = {}
        self._updating = False
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
        self._sync_controls()

    # -- public API ------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """A copy of the settings the panel shows."""
        return self._settings.copy()

    def set_settings(self, settings: Settings) -> None:
        """Show ``settings`` (e.g. after a mode key or a replay switch) without emitting."""
        if not isinstance(settings, Settings):
            raise TypeError(f"set_settings: expected Settings, got {type(settings).__name__}")
        self._settings = settings.copy()
        self._sync_controls()
        self._redraw_histogram()

    def _redraw_histogram(self) -> None:
        if self._last_histogram is not None:
            hist, lo, hi, threshold, kwargs = self._last_histogram
            self.set_histogram(hist, lo, hi, threshold, **kwargs)

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

    def _level_markers(self, hist, lo: float, hi: float) -> list[tuple[float, str]]:
        levels = self._settings.levels
        markers = []
        for pct, name in ((levels.low_percentile, "black"), (levels.high_percentile, "white")):
            x = histogram_percentile(hist, lo, hi, pct)
            if x is not None:
                markers.append((x, name))
        return markers

    def editor(self, name: str) -> QWidget:
        """The control of setting ``name`` (``"segment.threshold"``), for the owner and tests."""
        return self._editors[name]

    def field_names(self) -> list[str]:
        return list(self._editors)

    def status_text(self) -> str:
        return self.status.text()

    # -- presets -----------------------------------------------------------------------
    def preset_names(self) -> list[str]:
        return list_presets(self.presets_dir)

    def save_preset(self, name: str) -> Optional[Path]:
        """Write the current settings (minus the plane polygon) as preset ``name``.

        Returns the file written, or None when the name is refused (the reason
        is in the status line).
        """
        name = name.strip()
        if not _PRESET_NAME.match(name):
            self._say(f"Preset name {name!r} refused: use letters, digits, spaces, "
                      "- _ . ( ) +, at most 64 characters.", error=True)
            return None
        data = self._settings.to_dict()
        data["plane"].pop("polygon", None)
        path = self.presets_dir / f"{name}.json"
        try:
            self.presets_dir.mkdir(parents=True, exist_ok=True)
            replaced = path.exists()
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(data, indent=2) + "\n")
            os.replace(tmp, path)  # never leave a half-written preset behind
        except OSError as e:
            self._say(f"Cannot save preset {name!r} in {self.presets_dir}: {e.strerror}",
                      error=True)
            return None
        self._refresh_presets(select=name)
        self._say(f"Preset {name!r} {'replaced' if replaced else 'saved'} ({path}).")
        return path

    def load_preset(self, name: str) -> bool:
        """Apply preset ``name`` (keeping the current plane polygon); emits on success."""
        try:
            settings = load_preset(self.presets_dir, name, self._settings.plane.polygon)
        except SettingsError as e:
            self._say(f"Preset not loaded: {e}", error=True)
            return False
        self._apply(settings, f"Preset {name!r} loaded.")
        return True

    def delete_preset(self, name: str) -> bool:
        path = self.presets_dir / f"{name}.json"
        try:
            path.unlink()
        except OSError as e:
            self._say(f"Cannot delete preset {name!r}: {e.strerror}", error=True)
            return False
        self._refresh_presets()
        self._say(f"Preset {name!r} deleted.")
        return True

    def reset_to_defaults(self) -> None:
        """Every setting back to its default, except the plane polygon; emits."""
        settings = Settings()
        settings.plane.polygon = [list(p) for p in self._settings.plane.polygon]
        self._apply(settings, "All settings back to their defaults (plane polygon kept).")

    def clear_polygon(self) -> None:
        settings = self._settings.copy()
        settings.plane.polygon = []
        self._apply(settings, "Transection-plane polygon cleared.")

    # -- building -------------------------------------------------------------------
    def _sections(self) -> dict[str, list[str]]:
        sections: dict[str, list[str]] = {}
        for name, _f in self._settings.fields():
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
        fields = dict(self._settings.fields())
        for name in names:
            f = fields[name]
            meta = f.metadata
            label_text = meta.get("label") or name.split(".")[1].replace("_", " ").capitalize()
            editor, row_widget = self._make_editor(name, f)
            tip = self._tooltip(name, f)
            unit = meta.get("unit") or ""
            label = QLabel(f"{html.escape(label_text)} <span style='color:gray'>"
                           f"({html.escape(unit)})</span>" if unit else html.escape(label_text))
            label.setWordWrap(True)
            label.setToolTip(tip)
            label.setBuddy(editor)
            if hasattr(editor, "set_help"):
                editor.set_help(tip)
            else:
                editor.setToolTip(tip)
            editor.setObjectName(name)
            self._editors[name] = editor
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

    def _make_editor(self, name: str, f: dataclasses.Field):
        """Return ``(editor, row_widget)`` for one field, wired to :meth:`_on_edited`."""
        meta = f.metadata
        value = self._settings.get(name)
        default = self._defaults.get(name)
        unit = meta.get("unit") or ""
        if isinstance(default, bool):
            editor = QCheckBox()
            editor.toggled.connect(lambda v, n=name: self._on_edited(n, bool(v)))
            return editor, editor
        if isinstance(default, str) and meta.get("choices"):
            editor = QComboBox()
            for choice in meta["choices"]:
                editor.addItem(choice, choice)
            editor.currentIndexChanged.connect(
                lambda i, n=name, e=editor: self._on_edited(n, e.itemData(i)))
            return editor, editor
        if isinstance(default, (int, float)) and meta.get("lo") is not None \
                and meta.get("hi") is not None:
            cls = CheckedSpinBox if isinstance(default, int) else CheckedDoubleSpinBox
            editor = cls(meta["lo"], meta["hi"], value, unit=unit)
            editor.valueChanged.connect(lambda v, n=name: self._on_edited(n, v))
            editor.refused.connect(lambda reason, n=name: self._on_refused(n, reason))
            return editor, editor
        if isinstance(default, list) and meta.get("kind") == "rect":
            editor = NumberListEdit(value, placeholder="whole frame, or x, y, w, h")
            editor.edited.connect(lambda v, n=name: self._on_edited(n, v))
            editor.refused.connect(lambda reason, n=name: self._on_refused(n, reason))
            return editor, editor
        if name == _PLANE_POLYGON or isinstance(default, list):
            editor = QLabel()
            editor.setTextInteractionFlags(Qt.TextSelectableByMouse)
            row = QWidget()
            h = QHBoxLayout(row)
            h.setContentsMargins(0, 0, 0, 0)
            h.addWidget(editor, 1)
            if name == _PLANE_POLYGON:
                clear = QPushButton("Clear")
                clear.setObjectName("clear_polygon")
                clear.setToolTip("Remove the transection-plane polygon (draw a new one on the view).")
                clear.clicked.connect(self.clear_polygon)
                h.addWidget(clear)
                self.clear_polygon_button = clear
            return editor, row
        # A field kind this panel does not edit yet: shown read-only, never hidden.
        editor = QLabel()
        editor.setTextInteractionFlags(Qt.TextSelectableByMouse)
        return editor, editor

    # -- model <-> controls -------------------------------------------------------------
    def _sync_controls(self) -> None:
        self._updating = True
        try:
            for name, editor in self._editors.items():
                value = self._settings.get(name)
                editor.blockSignals(True)
                try:
                    if isinstance(editor, QCheckBox):
                        editor.setChecked(bool(value))
                    elif isinstance(editor, QComboBox):
                        editor.setCurrentIndex(max(0, editor.findData(value)))
                    elif isinstance(editor, CheckedDoubleSpinBox):
                        # A preset may hold more decimals than the box shows;
                        # show them rather than round the number on screen.
                        needed = decimals_for(value, at_least=editor.decimals(), at_most=6)
                        if needed > editor.decimals():
                            editor.setDecimals(needed)
                        editor.setValue(value)
                        editor.clear_refusal()
                    elif isinstance(editor, CheckedSpinBox):
                        editor.setValue(value)
                        editor.clear_refusal()
                    elif isinstance(editor, NumberListEdit):
                        editor.set_value(value)
                        editor.clear_refusal()
                    elif isinstance(editor, QLabel):
                        editor.setText(self._describe(name, value))
                finally:
                    editor.blockSignals(False)
            if hasattr(self, "clear_polygon_button"):
                self.clear_polygon_button.setEnabled(bool(self._settings.plane.polygon))
        finally:
            self._updating = False

    @staticmethod
    def _describe(name: str, value) -> str:
        if name == _PLANE_POLYGON:
            if not value:
                return "none drawn"
            xs = [p[0] for p in value]
            ys = [p[1] for p in value]
            return (f"{len(value)} points, x {min(xs):.0f}-{max(xs):.0f}, "
                    f"y {min(ys):.0f}-{max(ys):.0f} px")
        return str(value)

    def _on_edited(self, name: str, value) -> None:
        if self._updating:
            return
        candidate = self._settings.copy()
        try:
            candidate.set(name, value)
        except SettingsError as e:
            editor = self._editors[name]
            reason = str(e).split(": ", 1)[-1]
            if isinstance(editor, NumberListEdit):
                editor.refuse(reason)  # keep the typed text so it can be corrected
                return
            # Spin boxes share the model's lo/hi, so this is rare (a model rule
            # stricter than the range); refuse and show the old value again.
            self._say(f"{self._field_label(name)}: refused, {reason}.", error=True)
            self._sync_controls()
            return
        if candidate.get(name) == self._settings.get(name):
            return
        self._apply(candidate, "")

    def _on_refused(self, name: str, reason: str) -> None:
        if reason:
            label = self._field_label(name)
            self._say(f"{label}: {reason}.", error=True)
        elif self.status.property("error"):
            self._say("")

    def _field_label(self, name: str) -> str:
        f = dict(self._settings.fields())[name]
        return f.metadata.get("label") or name

    def _apply(self, settings: Settings, message: str) -> None:
        self._settings = settings
        self._sync_controls()
        self._redraw_histogram()
        self._say(message)
        self.settings_changed.emit(settings.copy())

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
