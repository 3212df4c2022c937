"""Presets: named settings files the user keeps, one JSON per preset.

A preset is the settings JSON (``Settings.save``, so the CLI's ``--settings``
reads it too) without the transection-plane polygon.  The polygon belongs to
the scene on screen, not to a tuning: a preset carrying another case's
polygon would flag fluorescence in an arbitrary region, so presets neither
store nor replace it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Optional

from PyQt5.QtCore import QSettings, QStandardPaths

from ..errors import SettingsError
from ..settings import Settings

__all__ = ["CONFIG_DIR_ENV", "default_presets_dir", "settings_store", "list_presets", "load_preset",
           "save_preset", "delete_preset"]

#: Environment variable that moves the whole nirf-overlay config folder
#: (presets live in ``$NIRF_OVERLAY_CONFIG_DIR/presets``); tests and kiosk
#: installs use it so nothing is written to the user's own config.
CONFIG_DIR_ENV = "NIRF_OVERLAY_CONFIG_DIR"

# a file name on every platform, and never a path
_PRESET_NAME = re.compile(r"^[\w][\w .()+-]{0,63}$")


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


def settings_store(organization: str = "nirf-overlay",
                   application: str = "nirf-overlay") -> QSettings:
    """The viewer's QSettings (recent sources, window layout): on Linux
    ``~/.config/nirf-overlay/nirf-overlay.conf``, or ``$NIRF_OVERLAY_CONFIG_DIR/<application>.ini``."""
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return QSettings(os.path.join(override, f"{application}.ini"), QSettings.IniFormat)
    return QSettings(organization, application)


def list_presets(presets_dir) -> list[str]:
    """Names of the presets (``*.json``) in ``presets_dir``, sorted case-insensitively."""
    folder = Path(presets_dir)
    if not folder.is_dir():
        return []
    return sorted((p.stem for p in folder.glob("*.json") if p.is_file()), key=str.lower)


def load_preset(presets_dir, name: str, keep_polygon: Optional[list] = None) -> Settings:
    """Read preset ``name``; the plane polygon is ``keep_polygon`` (not stored in presets)."""
    settings = Settings.load(Path(presets_dir) / f"{name}.json")
    settings.plane.polygon = [list(p) for p in (keep_polygon or [])]
    return settings


def save_preset(presets_dir, name: str, settings: Settings) -> tuple[Path, bool]:
    """Write ``settings`` (minus the plane polygon) as preset ``name``.

    Returns ``(file written, whether it replaced one)``.  Raises
    :class:`~nirf_overlay.errors.SettingsError` for a name that is not a plain
    file name and :class:`OSError` when the folder cannot be written.
    """
    if not _PRESET_NAME.match(name):
        raise SettingsError(f"Preset name {name!r} refused: use letters, digits, spaces, "
                            "- _ . ( ) +, at most 64 characters.")
    data = settings.to_dict()
    data["plane"].pop("polygon", None)
    folder = Path(presets_dir)
    path = folder / f"{name}.json"
    folder.mkdir(parents=True, exist_ok=True)
    replaced = path.exists()
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)  # never leave a half-written preset behind
    return path, replaced


def delete_preset(presets_dir, name: str) -> None:
    """Remove preset ``name`` (OSError if it cannot be)."""
    (Path(presets_dir) / f"{name}.json").unlink()
