"""The OR viewer's main window (a view over :class:`~nirf_overlay.engine.Engine`).

The window composes the viewer and routes its commands; each idea lives in
its own module:

==========================  ==========================================================
:mod:`.settings_model`      the settings in force (evented); panel, toolbar, view and
                            replay bar follow it, :class:`EngineLink` hands it to the engine
:mod:`.actions`             every command as a window action, menus, help rows
:mod:`.display_toolbar`     mode buttons, colour map, opacity, rim outline
:mod:`.readout`             frames, safety marks and numbers put on screen
:mod:`.capture`             snapshot, recording, marker
:mod:`.source_control`      open a source, calibrate (off the GUI thread)
:mod:`.tasks`               helper threads whose results come back on the GUI thread
:mod:`.window_layout`       default size for the screen, remembered layout, Reset layout
==========================  ==========================================================

A precise QTimer (every 1 ms) *pulls* the newest result from the engine's
one-slot mailbox and hands it to the :class:`VideoView`; nothing is pushed
through queued signals, so frames cannot pile up in the GUI thread.  The GUI
thread never waits on capture, processing, disk or network.

Keyboard (also listed by F1 / ?): the display modes' keys
(:data:`~nirf_overlay.settings.DISPLAY_MODES`), Space freeze, S snapshot,
R record, Ctrl+O open, F11 full screen, Esc leave full screen, F1/? help,
T draw the transection plane, Del clear it, C rim outline, D settings panel,
H HUD, P play/pause, , and . step back / forward, M marker, Ctrl+Q quit.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtWidgets import QApplication, QLabel, QMainWindow, QToolBar

from ..engine import Engine, open_engine, spawn
from ..errors import NirfError
from ..settings import DISPLAY_MODES, display_mode
from .actions import WindowActions, build_menus
from .capture import CaptureControl
from .display_toolbar import DisplayToolbar
from .help_overlay import HelpOverlay
from .readout import TICK_MS, Readout
from .replay_bar import ReplayBar
from .settings_model import EngineLink, SettingsModel
from .settings_panel import SettingsPanel
from .source_control import SourceControl
from .tasks import BackgroundTasks
from .video_view import VideoView
from .viewer_stats import ViewerStats
from .window_layout import WindowLayout

__all__ = ["MainWindow"]

STATUS_EVERY_S = 0.1  # how often the HUD's numbers are refreshed
HISTOGRAM_EVERY_S = 0.5


class MainWindow(QMainWindow):
    """The viewer window: video view + HUD, toolbar, settings dock, replay bar.

    Parameters
    ----------
    engine : an :class:`Engine` (started here if not yet running); the window owns it
    spec : the :class:`~nirf_overlay.sources.SourceSpec` it was opened from
    snapshot_dir, recording_dir : where S and R write
    engine_factory : ``f(spec, settings, calibration_request) -> Engine`` used by the
        Open dialog; default :func:`nirf_overlay.engine.open_engine`
    presets_dir : where the settings panel and the replay bar keep presets
    stats : a :class:`ViewerStats` to fill (``--stats-json``)
    layout_store : the QSettings that remembers geometry and dock layout
        (:mod:`.window_layout`); default the viewer's own store
    """

    def __init__(self, engine: Engine, *, spec=None, snapshot_dir=None, recording_dir=None,
                 engine_factory: Optional[Callable] = None, presets_dir=None,
                 stats: Optional[ViewerStats] = None, layout_store=None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("nirf-overlay")
        self.setObjectName("nirf_main_window")
        self.engine = engine
        self.model = SettingsModel(engine.settings, self)
        self.stats = stats or ViewerStats()
        self.tasks = BackgroundTasks()
        self.frozen = False
        self._chrome: dict = {}
        self._last_status_t = 0.0
        self._last_hist_t = 0.0
        base = Path.home() / "nirf-overlay"

        self.acts = WindowActions(self)
        build_menus(self.menuBar(), self.acts)
        self.view = VideoView(self.model, self)
        self.view.plane_drawn.connect(self._on_plane_drawn)
        self.setCentralWidget(self.view)
        self.toolbar = DisplayToolbar(self.model, self.acts, self)
        self.addToolBar(Qt.TopToolBarArea, self.toolbar)
        self.panel = SettingsPanel(self.model, self, presets_dir=presets_dir)
        self.addDockWidget(Qt.RightDockWidgetArea, self.panel)
        self.panel.visibilityChanged.connect(self._on_panel_visibility)
        self.acts.panel.setChecked(True)
        self.statusBar().setSizeGripEnabled(False)
        status_line = QLabel("")
        self.statusBar().addPermanentWidget(status_line)

        self.engine_link = EngineLink(self.model, engine, parent=self,
                                      on_error=lambda text: self.notify(text, error=True))
        self.readout = Readout(engine, self.view, status_line, self.stats)
        self.capture = CaptureControl(
            self.tasks, self.notify,
            snapshot_dir=Path(snapshot_dir) if snapshot_dir else base / "snapshots",
            recording_dir=Path(recording_dir) if recording_dir else base / "recordings")
        self.sources = SourceControl(self, engine=lambda: self.engine, model=self.model,
                                     tasks=self.tasks, notify=self.notify, spec=spec,
                                     engine_factory=engine_factory or open_engine)
        self.sources.opened.connect(self._on_engine_opened)
        self.replay_bar: Optional[ReplayBar] = None
        self._replay_holder: Optional[QToolBar] = None
        self.help: Optional[HelpOverlay] = None
        self._build_replay_bar()
        self._connect_actions()
        # sized for the screen, then as the user left it last time (window_layout)
        self.layout_memory = WindowLayout(self, layout_store)

        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.PreciseTimer)
        self._timer.timeout.connect(self._on_tick)
        self._timer.start(TICK_MS)
        if not engine.running:
            engine.start()

    # -- construction ------------------------------------------------------------------
    def _connect_actions(self) -> None:
        a = self.acts
        a.freeze.triggered.connect(self._on_freeze)
        a.snapshot.triggered.connect(self._on_snapshot)
        a.record.triggered.connect(self._on_record)
        a.open.triggered.connect(self.sources.open_dialog)
        a.fullscreen.triggered.connect(self._on_fullscreen)
        a.leave_fullscreen.triggered.connect(self._on_escape)
        a.help.triggered.connect(self._on_help)
        a.draw_plane.triggered.connect(self._on_draw_plane)
        a.clear_plane.triggered.connect(self._on_clear_plane)
        a.panel.triggered.connect(self._on_panel_toggled)
        a.hud.triggered.connect(self._on_hud_toggled)
        a.play.triggered.connect(self._on_play)
        a.previous.triggered.connect(lambda: self._on_step(-1))
        a.next.triggered.connect(lambda: self._on_step(1))
        a.marker.triggered.connect(lambda: self.capture.add_marker(self.engine))
        a.calibrate.triggered.connect(self.sources.calibration_dialog)
        a.reset_layout.triggered.connect(self._on_reset_layout)
        a.quit.triggered.connect(self.close)

    def _build_replay_bar(self) -> None:
        """Replay controls for a seekable source (files, sessions); none for live ones."""
        if self.replay_bar is not None:
            self.replay_bar.stop()
            self.removeToolBar(self._replay_holder)
            self._replay_holder.deleteLater()
            self.replay_bar = self._replay_holder = None
        if self.help is not None:  # its list of keys depends on the replay bar
            self.help.hide()
            self.help.deleteLater()
            self.help = None
        if not self.engine.seekable:
            return
        holder = QToolBar("Replay", self)
        holder.setObjectName("replay_toolbar")
        holder.setMovable(False)
        self.replay_bar = ReplayBar(self.engine, self.model, self,
                                    presets_dir=self.panel.presets_dir)
        holder.addWidget(self.replay_bar)
        self.addToolBar(Qt.BottomToolBarArea, holder)
        self._replay_holder = holder

    def shortcuts(self) -> list[tuple[str, str]]:
        """``(key, what it does)`` for the help overlay, from the actions themselves."""
        rows = self.acts.help_rows()
        if self.replay_bar is not None:
            rows += self.replay_bar.installed_shortcuts()
        return rows

    @property
    def marks(self) -> list:
        """The safety marks on screen now (``stale``, ``nir_lost``, ``frozen`` ...)."""
        return list(self.readout.marks)

    # -- frames ------------------------------------------------------------------------------
    def _on_tick(self) -> None:
        item = self.engine.latest()
        now = time.monotonic()
        if item is not None and not self.frozen:
            self.readout.show(item, now)
        self.readout.update_marks(now, frozen=self.frozen)
        if now - self._last_status_t >= STATUS_EVERY_S:
            self._last_status_t = now
            self.readout.refresh(now)
            self._update_title()
            self.acts.record.setChecked(self.engine.recording)
            if now - self._last_hist_t >= HISTOGRAM_EVERY_S:
                self._last_hist_t = now
                self._update_histogram()
        self.tasks.collect()

    def _update_title(self) -> None:
        """The title says when the overlay is not on yet (also seen in the task bar)."""
        preparing = self.engine.preparing
        title = f"nirf-overlay \u2013 overlay not on yet: {preparing}" if preparing else "nirf-overlay"
        if title != self.windowTitle():
            self.setWindowTitle(title)

    def _update_histogram(self) -> None:
        frame = self.view.frame
        if frame is None or frame.pair.nir is None or not self.panel.isVisible():
            return
        sample = frame.pair.nir[::8, ::8]  # ~1/64 of the pixels: well under a millisecond
        lo, hi = np.percentile(sample, (0.1, 99.9))
        hi = max(float(hi), float(lo) + 1.0)
        hist, _ = np.histogram(sample, bins=128, range=(float(lo), hi))
        self.panel.set_histogram(hist, float(lo), hi)

    def notify(self, text: str, *, error: bool = False, seconds: float = 4.0) -> None:
        """Show ``text`` in plain words in the picture and the status bar."""
        self.statusBar().showMessage(text, int(seconds * 1000))
        self.readout.notify(text, error=error, seconds=seconds)

    def _on_engine_opened(self, engine: Engine) -> None:
        old, self.engine = self.engine, engine
        self.readout.attach(engine)
        self.engine_link.attach(engine)  # settings changed while it opened count too
        engine.start()
        spawn(old.stop, "nirf-engine-stop")
        self._build_replay_bar()
        self.notify(f"showing {engine.info.description}")

    # -- commands ------------------------------------------------------------------------------
    def _on_freeze(self, checked: bool) -> None:
        self.frozen = bool(checked)
        if self.frozen:
            self.view.hold()  # the pipeline reuses its output buffers
        self.readout.update_marks(time.monotonic(), frozen=self.frozen)

    def _on_snapshot(self) -> None:
        self.capture.snapshot(self.engine, self.view, self.model.settings)

    def _on_record(self) -> None:
        self.capture.toggle_recording(self.engine)
        self.acts.record.setChecked(self.engine.recording)

    def _on_play(self) -> None:
        if not self.engine.seekable:
            self.notify("only recordings and files can be paused", error=True)
            return
        self.engine.toggle_pause()

    def _on_step(self, delta: int) -> None:
        if self.engine.seekable:
            self.engine.step(delta)

    def _on_panel_toggled(self) -> None:
        self.panel.setVisible(not self.panel.isVisible())

    def _on_panel_visibility(self, visible: bool) -> None:
        self.acts.panel.setChecked(bool(visible))

    def _on_hud_toggled(self, checked: bool) -> None:
        self.view.hud.visible = bool(checked)
        self.view.update()

    def _on_help(self) -> None:
        if self.help is None:
            self.help = HelpOverlay(self.shortcuts(), self)
        self.help.toggle()

    def _on_escape(self) -> None:
        if self.view.drawing:
            self.view.cancel_drawing()
        elif self.help is not None and self.help.isVisible():
            self.help.hide()
        elif self.isFullScreen():
            self._on_fullscreen()

    # -- transection plane ----------------------------------------------------------------
    def _on_draw_plane(self) -> None:
        if display_mode(self.model.get("display.mode")).split or self.engine.ab:
            keys = ", ".join(m.key for m in DISPLAY_MODES if not m.split)
            self.notify(f"draw the plane in a single-picture mode ({keys})", error=True)
            return
        self.view.start_drawing()
        self.notify("click the plane's corners; double-click or Enter closes it, Esc cancels")

    def _on_plane_drawn(self, polygon: list) -> None:
        # anchored to the tissue of the frame it was drawn on (both at once:
        # the pipeline never sees the new polygon with the old frame)
        frame = self.view.frame
        s = self.model.settings  # (a copy)
        s.set("plane.polygon", polygon)
        s.set("plane.frame", int(frame.pair.index) if frame is not None else -1)
        self.model.replace(s)
        self.notify("transection plane set: it follows the tissue")

    def _on_clear_plane(self) -> None:
        self.view.cancel_drawing()
        if self.model.set("plane.polygon", []):
            self.notify("transection plane cleared")

    # -- full screen ----------------------------------------------------------------------
    def _on_fullscreen(self) -> None:
        if self.isFullScreen():
            for w, visible in self._chrome.items():
                w.setVisible(visible)
            self.showNormal()
        else:
            self.go_fullscreen()
        self.acts.fullscreen.setChecked(self.isFullScreen())

    def go_fullscreen(self, screen: Optional[int] = None) -> None:
        """Full screen on screen ``screen`` (index into QApplication.screens()), minimal chrome."""
        screens = QApplication.screens()
        if screen is not None:
            if not 0 <= screen < len(screens):
                raise NirfError(f"--screen {screen}: there are {len(screens)} screen(s), "
                                f"numbered 0..{len(screens) - 1}")
            target = screens[screen]
            if self.windowHandle() is None:
                self.winId()  # create the native window so it can be moved
            self.windowHandle().setScreen(target)
            self.setGeometry(target.geometry())
        chrome = [self.menuBar(), self.statusBar(), self.toolbar, self.panel]
        if self._replay_holder is not None:
            chrome.append(self._replay_holder)
        self._chrome = {w: w.isVisible() for w in chrome}
        for w in chrome:
            w.hide()
        self.showFullScreen()
        self.acts.fullscreen.setChecked(True)

    def _on_reset_layout(self) -> None:
        if self.isFullScreen():
            self._on_fullscreen()  # its chrome back first
        self.layout_memory.reset()
        self.notify("layout reset: default size and dock placement")

    # -- shutdown --------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        self.layout_memory.save()
        self._timer.stop()
        self.readout.detach()
        if self.replay_bar is not None:
            self.replay_bar.stop()
        if self.help is not None:
            self.help.hide()
        self.engine.stop()
        super().closeEvent(event)
