"""The viewer's settings as an evented model (Qt side); the views subscribe to it.

napari's ``ViewerModel`` is the pattern: one model holds the state, every
view connects to its events, and a control that changes a value only tells
the model.  Here the model wraps the Qt-free
:class:`~nirf_overlay.settings.Settings` (which stays the one schema, with
its ranges, help and migrations) and adds two signals:

- :attr:`SettingsModel.changed` ``(name, value)``: one per setting that
  changed, with its dotted name (``"segment.threshold"``) and new value.
  The settings panel, the toolbar, the video view / HUD and the replay bar
  follow the fields they show.
- :attr:`SettingsModel.updated` ``(Settings)``: once per :meth:`set` or
  :meth:`replace` that changed anything, after its ``changed`` signals
  (napari's model-wide event after a batch update).  The engine takes a whole
  :class:`Settings` and writes each update into a running recording, so
  :class:`EngineLink` follows this one: a preset that changes ten fields is
  one update of the pipeline and one line in the session's event log, as
  before.

One change reaches everyone from here; nobody copies settings to anybody.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Optional

from PyQt5.QtCore import QObject, pyqtSignal

from ..errors import NirfError
from ..settings import Settings

__all__ = ["SettingsModel", "EngineLink"]


class SettingsModel(QObject):
    """The settings in force in the viewer, with a signal per change (a model).

    Parameters
    ----------
    settings : the starting values (copied); default :class:`Settings` ``()``
    parent : the QObject that owns the model (the main window)

    Signals
    -------
    changed(str, object) : dotted name and new value of one setting that changed
    updated(object) : a copy of the whole :class:`Settings`, once per change
    """

    changed = pyqtSignal(str, object)
    updated = pyqtSignal(object)

    def __init__(self, settings: Optional[Settings] = None, parent: Optional[QObject] = None):
        super().__init__(parent)
        self._settings = (settings or Settings()).copy()

    @property
    def settings(self) -> Settings:
        """A copy of the settings in force (changing it changes nothing)."""
        return self._settings.copy()

    def get(self, name: str) -> Any:
        """The value of setting ``name`` (a copy, for lists)."""
        return copy.deepcopy(self._settings.get(name))

    def set(self, name: str, value: Any) -> bool:
        """Validate and set one setting; True if its value changed (then it is announced).

        Raises :class:`~nirf_overlay.errors.SettingsError` (naming the field)
        for a value the schema refuses; the model keeps its old value.
        """
        candidate = self._settings.copy()
        candidate.set(name, value)
        same = candidate.get(name) == self._settings.get(name)
        return bool(self._take(candidate, [] if same else [name]))

    def replace(self, settings: Settings) -> list[str]:
        """Take every value of ``settings``; announce those that differ; return their names."""
        return self._take(settings.copy(), self._settings.differences(settings))

    def _take(self, settings: Settings, names: list[str]) -> list[str]:
        if not names:
            return []
        self._settings = settings
        for name in names:
            self.changed.emit(name, self.get(name))
        self.updated.emit(self._settings.copy())
        return names


class EngineLink(QObject):
    """Keeps an engine running the model's settings (the engine adapter).

    The engine is Qt-free and takes whole :class:`Settings`; this forwards
    every :attr:`SettingsModel.updated` to ``engine.update_settings`` and
    gives a newly opened engine the model's settings.

    Parameters
    ----------
    model : the viewer's :class:`SettingsModel`
    engine : the :class:`~nirf_overlay.engine.Engine` to drive
    on_error : ``f(text)`` called when the engine refuses the settings
    parent : owner of the link (its lifetime bounds the connection)
    """

    def __init__(self, model: SettingsModel, engine, *, on_error: Optional[Callable] = None,
                 parent: Optional[QObject] = None):
        super().__init__(parent)
        self._model = model
        self._on_error = on_error
        self.engine = engine
        model.updated.connect(self._on_updated)

    def attach(self, engine) -> None:
        """Drive ``engine`` from now on, starting with the model's settings."""
        self.engine = engine
        self._on_updated(self._model.settings)

    def _on_updated(self, settings: Settings) -> None:
        try:
            self.engine.update_settings(settings)
        except NirfError as e:
            if self._on_error is None:
                raise
            self._on_error(str(e))
