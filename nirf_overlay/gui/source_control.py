"""Opening sources and choosing calibrations for the viewer, never on the GUI thread.

Opening a source (a camera, a file, a stream, a session) can take seconds,
and so can stopping the old one or loading a profile: it all runs through
:class:`~nirf_overlay.gui.tasks.BackgroundTasks`, and the window switches
engines when :attr:`SourceControl.opened` says the new one is ready.  Which
calibration applies is decided by
:func:`~nirf_overlay.calibration.resolve_calibration` (inside the engine
factory): a profile the user just made, else the source's own, else the one
the user chose before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from PyQt5.QtCore import QObject, pyqtSignal
from PyQt5.QtWidgets import QWidget

from ..calibration import CalibrationRequest, load_profile
from ..engine import Engine
from ..errors import NirfError
from ..sources import SourceSpec
from .calibration_dialog import CalibrationDialog
from .open_dialog import OpenSourceDialog
from .settings_model import SettingsModel
from .tasks import BackgroundTasks

__all__ = ["SourceControl"]


class SourceControl(QObject):
    """The Open and Calibration commands of the window.

    Parameters
    ----------
    window : the main window (the dialogs' parent)
    engine : ``f() -> Engine``, the engine in use now
    model : the viewer's settings (a new engine starts with them)
    tasks : helper threads for opening, releasing and loading
    notify : ``f(text, error=False, seconds=4.0)`` tells the user how it went
    spec : the :class:`~nirf_overlay.sources.SourceSpec` the viewer was opened from
    engine_factory : ``f(spec, settings, calibration_request) -> Engine``

    Signals
    -------
    opened(Engine) : a new engine is ready (not started); the window switches to it
    """

    opened = pyqtSignal(object)

    def __init__(self, window: QWidget, *, engine: Callable[[], Engine], model: SettingsModel,
                 tasks: BackgroundTasks, notify: Callable, spec: Optional[SourceSpec],
                 engine_factory: Callable):
        super().__init__(window)
        self._window = window
        self._engine = engine
        self._model = model
        self._tasks = tasks
        self._notify = notify
        self._factory = engine_factory
        self.spec = spec
        self._opening = False
        #: a calibration the user loaded or built here; carried to the next
        #: source when that has none of its own
        self.chosen_calibration = None

    # -- opening ------------------------------------------------------------------------
    def open_dialog(self) -> None:
        """Ask which source to open (Ctrl+O), then open it."""
        dlg = OpenSourceDialog(self._window)
        try:
            spec = dlg.spec() if dlg.exec_() else None
        finally:
            dlg.deleteLater()
        if spec is not None:
            self.open_spec(spec)

    def open_spec(self, spec: SourceSpec, *, calibration_path: Optional[str] = None) -> None:
        """Open ``spec`` on a helper thread; :attr:`opened` fires when it is ready.

        ``calibration_path``: a profile to load (on the same helper thread) and use.
        """
        if self._opening:
            self._notify("still opening the previous source", error=True)
            return
        self._opening = True
        self._notify(f"opening {spec.describe()} ...", seconds=30)
        settings = self._model.settings
        request = CalibrationRequest(profile=calibration_path, carried=self.chosen_calibration)

        def done(engine, error):
            self._opening = False
            if error is not None:
                self._notify(f"could not open: {error}", error=True, seconds=8)
                return
            if calibration_path:
                self.chosen_calibration = engine.calibration
            self.spec = spec
            self.opened.emit(engine)
            if engine.calibration_note:
                self._notify(engine.calibration_note, error=True, seconds=8)

        self._tasks.run("open", lambda: self._factory(spec, settings, request), done)

    # -- calibration ----------------------------------------------------------------------
    def calibration_dialog(self) -> None:
        """The guided calibration; a profile saved there is put in use."""
        if self.spec is None:
            self._notify("calibration needs a source opened from a file, device or URL",
                         error=True)
            return
        engine = self._engine()
        if engine.info.live and not self.spec.phantom:
            # a camera can be opened only once: release it while the dialog uses it
            self._notify("releasing the camera for calibration ...", seconds=10)
            self._tasks.run("release", engine.stop,
                            lambda _r, _e: self._run_calibration_dialog(reopen=True))
            return
        self._run_calibration_dialog(reopen=False)

    def _run_calibration_dialog(self, *, reopen: bool) -> None:
        path = None
        try:
            path = self._calibration_profile_from_dialog()
        finally:
            # a combined (tower) source takes a profile's layout as it opens (the dialog's
            # layout step changes the frames' size): open it again with the profile
            if reopen or (path and self.spec.combined):
                self.open_spec(self.spec, calibration_path=path)
            elif path:
                self.use_calibration(path)

    def _calibration_profile_from_dialog(self) -> Optional[str]:
        """Run the dialog; the profile it saved, if any (a saved profile is meant to be used)."""
        try:
            dlg = CalibrationDialog(self.spec, self._window)
        except NirfError as e:
            self._notify(str(e), error=True)
            return None
        try:
            dlg.exec_()
            return dlg.profile_path
        finally:
            dlg.deleteLater()

    def use_calibration(self, path: str) -> None:
        """Load a profile on a helper thread and give it to the pipeline."""

        def done(cal, error):
            if error is not None:
                self._notify(f"calibration not used: {error}", error=True)
                return
            try:
                self._engine().set_calibration(cal)
            except NirfError as e:
                self._notify(str(e), error=True)
                return
            self.chosen_calibration = cal
            self._notify(f"calibration {Path(path).name} in use")

        self._tasks.run("calibration", lambda: load_profile(path), done)
