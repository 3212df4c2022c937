"""The OR viewer's main window (a view over :class:`~nirf_overlay.engine.Engine`).

A precise QTimer (every 1 ms) *pulls* the newest result from the engine's
one-slot mailbox and hands it to the :class:`VideoView`; nothing is pushed
through queued signals, so frames cannot pile up in the GUI thread.  The GUI
thread never waits on capture, processing, disk or network: snapshots are
written, sources opened and engines stopped on helper threads whose results
are picked up by the same timer.

Keyboard (also listed by F1 / ?):
1-6 display modes, Space freeze, S snapshot, R record, Ctrl+O open, F11 full
screen, Esc leave full screen, F1/? help, T draw the transection plane,
Del clear it, C rim outline, D settings panel, H HUD, P play/pause, , and .
step back / forward, M marker, Ctrl+Q quit.
"""

from __future__ import annotations

import datetime as _dt
import logging
import queue
import time
from collections import deque
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtWidgets import (QAction, QActionGroup, QComboBox, QDockWidget, QLabel,
                             QMainWindow, QSlider, QToolBar)

from ..engine import Engine, open_engine, percentile, spawn
from ..errors import NirfError
from ..settings import COLORMAPS, MODES
from .hud import STALE, safety_banners
from .video_view import VideoView

log = logging.getLogger(__name__)

TICK_MS = 1  # how often the GUI looks into the mailbox (a check costs ~20 us)
STATUS_EVERY_S = 0.1  # how often the HUD's numbers are refreshed
HISTOGRAM_EVERY_S = 0.5

MODE_KEYS = {m: str(i + 1) for i, m in enumerate(MODES)}
MODE_LABELS = {"wl": "White light", "nir": "NIR", "overlay": "Overlay", "intensity": "Intensity map",
               "side-by-side": "Side by side", "pip": "Picture in picture"}


class ViewerStats:
    """Latency and frame counts of what the view actually painted.

    ``latency = painted - pair.arrival`` (seconds, ``time.monotonic``), i.e.
    the time the viewer adds: processing, mailbox, paint.  Frames painted in
    the first ``warmup_s`` seconds after the first painted frame are not
    counted (the pipeline's first frames compile kernels and fill caches).
    """

    def __init__(self, warmup_s: float = 0.0):
        self.t0: Optional[float] = None  # when the first frame was painted
        self.warmup_s = warmup_s
        self.latency: list = []
        self.process: list = []  # arrival -> processed (source hand-over + pipeline)
        self.display: list = []  # processed -> painted (mailbox, GUI timer, paint)
        self.painted_at: list = []
        self.recent = deque(maxlen=30)
        self._base = None  # drop counters at the end of warm-up

    def on_painted(self, frame, t: float, engine: Engine, view_dropped: int) -> None:
        lat = t - frame.arrival
        self.recent.append(lat)
        if self.t0 is None:
            self.t0 = t
        if t - self.t0 < self.warmup_s:
            return
        if self._base is None:
            self._base = self._drop_counters(engine, view_dropped)
        self.latency.append(lat)
        self.process.append(frame.processed - frame.arrival)
        self.display.append(t - frame.processed)
        self.painted_at.append(t)

    @staticmethod
    def _drop_counters(engine: Engine, view_dropped: int) -> tuple:
        src = engine.source.stats
        return engine.mailbox.dropped, view_dropped, int(getattr(src, "dropped", 0) or 0)

    def recent_latency_ms(self) -> Optional[float]:
        return 1000.0 * float(np.median(self.recent)) if self.recent else None

    def summary(self, engine: Engine, view_dropped: int) -> dict:
        n = len(self.latency)
        now = self._drop_counters(engine, view_dropped)
        base = self._base or now
        mailbox, view, source = (a - b for a, b in zip(now, base))
        dropped = mailbox + view + source
        span = self.painted_at[-1] - self.painted_at[0] if n > 1 else 0.0
        ms = [1000.0 * x for x in self.latency]
        half = n // 2
        out = {
            "frames_displayed": n,
            "frames_dropped": dropped,
            "dropped_fraction": dropped / (n + dropped) if n + dropped else 0.0,
            "dropped_in_mailbox": mailbox,
            "dropped_before_paint": view,
            "dropped_by_source": source,
            "latency_ms_median": percentile(ms, 50),
            "latency_ms_p99": percentile(ms, 99),
            "latency_ms_max": max(ms) if ms else None,
            "latency_ms_p99_first_half": percentile(ms[:half], 99) if half else None,
            "latency_ms_p99_second_half": percentile(ms[half:], 99) if half else None,
            "process_ms_median": percentile([1000.0 * x for x in self.process], 50),
            "process_ms_p99": percentile([1000.0 * x for x in self.process], 99),
            "display_ms_median": percentile([1000.0 * x for x in self.display], 50),
            "display_ms_p99": percentile([1000.0 * x for x in self.display], 99),
            "fps_displayed": (n - 1) / span if span > 0 else 0.0,
            "seconds_measured": span,
            "warmup_s": self.warmup_s,
            "size": list(engine.info.size),
            "source_fps": engine.info.fps,
            "source": engine.info.description,
        }
        return out


def _import_optional(module: str, name: str):
    """A class from another engineer's GUI module, or None if it is not there (yet)."""
    import importlib

    try:
        return getattr(importlib.import_module(f"nirf_overlay.gui.{module}"), name)
    except (ImportError, AttributeError) as e:
        log.warning("%s.%s not available: %s", module, name, e)
        return None


class MainWindow(QMainWindow):
    """The viewer window: video view + HUD, toolbars, settings dock, replay bar.

    Parameters
    ----------
    engine : an :class:`Engine` (started here if not yet running); the window owns it
    spec : the :class:`~nirf_overlay.sources.SourceSpec` it was opened from
    snapshot_dir, recording_dir : where S and R write
    engine_factory : ``f(spec, settings, calibration_request) -> Engine`` used by the
        Open dialog; default :func:`nirf_overlay.engine.open_engine`
    presets_dir : passed to the settings panel
    stats : a :class:`ViewerStats` to fill (``--stats-json``)
    """

    def __init__(self, engine: Engine, *, spec=None, snapshot_dir=None, recording_dir=None,
                 engine_factory: Optional[Callable] = None, presets_dir=None,
                 stats: Optional[ViewerStats] = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("nirf-overlay")
        self.setObjectName("nirf_main_window")
        self.engine = engine
        self.spec = spec
        self.settings = engine.settings.copy()
        self.calibration = engine.calibration
        base = Path.home() / "nirf-overlay"
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir else base / "snapshots"
        self.recording_dir = Path(recording_dir) if recording_dir else base / "recordings"
        self._engine_factory = engine_factory or open_engine
        #: a calibration the user loaded or built here; carried to the next source
        #: when that has none of its own
        self._chosen_calibration = None
        self.stats = stats or ViewerStats()
        self.frozen = False
        self._view_dropped = 0
        self._last_new_frame: Optional[float] = None
        self._marks: list = []
        self._status = engine.status()
        self._notice = ("", False, 0.0)  # text, is_error, expires (monotonic)
        self._done: "queue.Queue" = queue.Queue()  # results from helper threads
        self._opening = False
        self._last_status_t = 0.0
        self._last_hist_t = 0.0
        self._chrome: dict = {}
        self._paint_times = deque(maxlen=61)

        self.view = VideoView(self)
        self.view.on_painted = self._on_painted
        self.view.plane_changed.connect(self._on_plane_changed)
        self.view.plane = [list(p) for p in self.settings.plane.polygon]
        self.setCentralWidget(self.view)

        self._build_actions()
        self._build_toolbar()
        self._build_menus()
        self.panel = self._build_settings_panel(presets_dir)
        self.replay_bar = None
        self.help = None
        self._build_replay_bar()
        self.statusBar().setSizeGripEnabled(False)
        self._status_label = QLabel("")
        self.statusBar().addPermanentWidget(self._status_label)
        self._sync_controls()
        self.resize(1280, 800)

        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.PreciseTimer)
        self._timer.timeout.connect(self._on_tick)
        self._timer.start(TICK_MS)
        if not engine.running:
            engine.start()

    # -- construction ------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut=None, *, checkable=False, tip="") -> QAction:
        a = QAction(text, self)
        if shortcut:
            if isinstance(shortcut, (list, tuple)):
                a.setShortcuts(list(shortcut))
            else:
                a.setShortcut(shortcut)
        a.setCheckable(checkable)
        a.setToolTip(tip or text)
        a.setShortcutContext(Qt.WindowShortcut)
        a.triggered.connect(slot)
        self.addAction(a)  # shortcuts keep working when toolbars are hidden
        return a

    def _build_actions(self) -> None:
        self.mode_actions = {}
        group = QActionGroup(self)
        group.setExclusive(True)
        for mode in MODES:
            a = self._action(MODE_LABELS[mode], lambda _=False, m=mode: self.set_mode(m),
                             MODE_KEYS[mode], checkable=True,
                             tip=f"{MODE_LABELS[mode]} ({MODE_KEYS[mode]})")
            group.addAction(a)
            self.mode_actions[mode] = a
        self.act_freeze = self._action("Freeze", self.toggle_freeze, "Space", checkable=True,
                                       tip="Hold the picture (Space); the HUD says FROZEN")
        self.act_snapshot = self._action("Snapshot", self.snapshot, "S",
                                         tip="Save overlay, raw NIR, WL and metrics (S)")
        self.act_record = self._action("Record", self.toggle_recording, "R", checkable=True,
                                       tip="Start/stop recording a session (R)")
        self.act_open = self._action("Open...", self.open_dialog, "Ctrl+O",
                                     tip="Open a file, device, URL or session (Ctrl+O)")
        self.act_fullscreen = self._action("Full screen", self.toggle_fullscreen, "F11",
                                           checkable=True, tip="Full screen, minimal chrome (F11)")
        self.act_leave_fs = self._action("Leave full screen", self._on_escape, "Esc")
        self.act_help = self._action("Shortcuts", self.toggle_help, ["F1", "?"],
                                     tip="Show every shortcut (F1 or ?)")
        self.act_draw_plane = self._action("Draw plane", self.draw_plane, "T",
                                           tip="Click the transection plane's corners; "
                                               "double-click or Enter closes it (T)")
        self.act_clear_plane = self._action("Clear plane", self.clear_plane, "Del",
                                            tip="Remove the transection-plane polygon (Del)")
        self.act_contours = self._action("Rim outline", self._on_contours, "C", checkable=True,
                                         tip="Outline detected rims (C)")
        self.act_panel = self._action("Settings panel", self.toggle_panel, "D", checkable=True,
                                      tip="Show/hide the settings panel (D)")
        self.act_hud = self._action("HUD", self.toggle_hud, "H", checkable=True,
                                    tip="Show/hide the HUD numbers (safety marks always show) (H)")
        self.act_hud.setChecked(True)
        self.act_play = self._action("Play/pause", self.toggle_play, "P",
                                     tip="Pause or play a recording (P)")
        self.act_prev = self._action("Previous frame", lambda: self.step(-1), ",")
        self.act_next = self._action("Next frame", lambda: self.step(1), ".")
        self.act_marker = self._action("Marker", self.add_marker, "M",
                                       tip="Put a marker in the recording (M)")
        self.act_calibrate = self._action("Calibration...", self.calibration_dialog,
                                          tip="Guided dark / flat / registration capture")
        self.act_quit = self._action("Quit", self.close, "Ctrl+Q")

    def shortcuts(self) -> list[tuple[str, str]]:
        """``(key, what it does)`` for the help overlay, from the actions themselves."""
        rows = [(MODE_KEYS[m], MODE_LABELS[m]) for m in MODES]
        for a in (self.act_freeze, self.act_snapshot, self.act_record, self.act_open,
                  self.act_fullscreen, self.act_leave_fs, self.act_help, self.act_draw_plane,
                  self.act_clear_plane, self.act_contours, self.act_panel, self.act_hud,
                  self.act_play, self.act_prev, self.act_next, self.act_marker, self.act_quit):
            keys = " / ".join(k.toString() for k in a.shortcuts())
            rows.append((keys, a.toolTip() if a.toolTip() != a.text() else a.text()))
        rows.append(("Enter", "Close the plane polygon while drawing"))
        if self.replay_bar is not None:
            from .replay_bar import ReplayBar

            mine = {k for k, _ in rows}
            rows += [(k, what) for k, what in ReplayBar.shortcut_list() if k not in mine]
        return rows

    def _build_toolbar(self) -> None:
        tb = QToolBar("Display", self)
        tb.setObjectName("display_toolbar")
        tb.setMovable(False)
        for mode in MODES:
            tb.addAction(self.mode_actions[mode])
        tb.addSeparator()
        self.colormap_box = QComboBox(tb)
        self.colormap_box.addItems(COLORMAPS)
        self.colormap_box.setToolTip("Colour of the fluorescence ('cividis' is colour-blind safe)")
        self.colormap_box.activated.connect(self._on_colormap)
        tb.addWidget(self.colormap_box)
        self.alpha_slider = QSlider(Qt.Horizontal, tb)
        self.alpha_slider.setRange(0, 100)
        self.alpha_slider.setFixedWidth(110)
        self.alpha_slider.setToolTip("Overlay opacity")
        self.alpha_slider.valueChanged.connect(self._on_alpha)
        tb.addWidget(QLabel(" opacity "))
        tb.addWidget(self.alpha_slider)
        tb.addAction(self.act_contours)
        tb.addSeparator()
        for a in (self.act_freeze, self.act_snapshot, self.act_record, self.act_draw_plane,
                  self.act_clear_plane, self.act_open, self.act_fullscreen, self.act_panel,
                  self.act_help):
            tb.addAction(a)
        self.addToolBar(Qt.TopToolBarArea, tb)
        self.toolbar = tb

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        for a in (self.act_open, self.act_snapshot, self.act_record, self.act_marker):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&View")
        for mode in MODES:
            m.addAction(self.mode_actions[mode])
        m.addSeparator()
        for a in (self.act_freeze, self.act_contours, self.act_hud, self.act_panel,
                  self.act_fullscreen):
            m.addAction(a)
        m = mb.addMenu("&Replay")
        for a in (self.act_play, self.act_prev, self.act_next, self.act_marker):
            m.addAction(a)
        m = mb.addMenu("&Tools")
        for a in (self.act_draw_plane, self.act_clear_plane, self.act_calibrate):
            m.addAction(a)
        m = mb.addMenu("&Help")
        m.addAction(self.act_help)

    def _build_settings_panel(self, presets_dir):
        cls = _import_optional("settings_panel", "SettingsPanel")
        if cls is None:
            self.act_panel.setEnabled(False)
            return None
        kwargs = {"presets_dir": presets_dir} if presets_dir is not None else {}
        try:
            panel = cls(self.settings, self, **kwargs)
        except TypeError:
            panel = cls(self.settings, self)
        panel.settings_changed.connect(self._on_panel_settings)
        self.addDockWidget(Qt.RightDockWidgetArea, panel)
        panel.visibilityChanged.connect(lambda v: self.act_panel.setChecked(bool(v)))
        self.act_panel.setChecked(True)
        return panel

    def _build_replay_bar(self) -> None:
        if self.replay_bar is not None:
            self.removeToolBar(self.replay_bar) if isinstance(self.replay_bar, QToolBar) else None
            if isinstance(self.replay_bar, QDockWidget):
                self.removeDockWidget(self.replay_bar)
            self.replay_bar.hide()
            self.replay_bar.setParent(None)
            self.replay_bar.deleteLater()
            self.replay_bar = None
        if self.help is not None:  # its list of keys depends on the replay bar
            self.help.hide()
            self.help.deleteLater()
            self.help = None
        if not self.engine.seekable:
            return
        cls = _import_optional("replay_bar", "ReplayBar")
        if cls is None:
            return
        try:
            bar = cls(self.engine, self)
        except Exception as e:  # another part's widget must not stop the viewer
            log.exception("replay bar")
            self.notify(f"replay controls unavailable: {e}", error=True)
            return
        if isinstance(bar, QToolBar):
            self.addToolBar(Qt.BottomToolBarArea, bar)
        elif isinstance(bar, QDockWidget):
            self.addDockWidget(Qt.BottomDockWidgetArea, bar)
        else:
            holder = QToolBar("Replay", self)
            holder.setObjectName("replay_toolbar")
            holder.setMovable(False)
            holder.addWidget(bar)
            self.addToolBar(Qt.BottomToolBarArea, holder)
            bar = holder
        self.replay_bar = bar

    # -- settings ---------------------------------------------------------------------------
    def apply_settings(self, settings, *, from_panel: bool = False) -> None:
        """Use ``settings`` from the next frame on, and show them in every control."""
        self.settings = settings.copy()
        try:
            self.engine.update_settings(self.settings)
        except NirfError as e:
            self.notify(str(e), error=True)
            return
        if self.panel is not None and not from_panel:
            self.panel.set_settings(self.settings)
        self.view.plane = [list(p) for p in self.settings.plane.polygon]
        self._sync_controls()

    def _on_panel_settings(self, settings) -> None:
        self.apply_settings(settings, from_panel=True)

    def _changed(self, name: str, value) -> None:
        s = self.settings.copy()
        try:
            s.set(name, value)
        except NirfError as e:
            self.notify(str(e), error=True)
            return
        self.apply_settings(s)

    def set_mode(self, mode: str) -> None:
        self._changed("display.mode", mode)

    def _on_colormap(self, i: int) -> None:
        self._changed("display.colormap", self.colormap_box.itemText(i))

    def _on_alpha(self, v: int) -> None:
        if abs(self.settings.display.alpha - v / 100.0) > 1e-6:
            self._changed("display.alpha", v / 100.0)

    def _on_contours(self, checked: bool) -> None:
        self._changed("display.show_contours", bool(checked))

    def _sync_controls(self) -> None:
        d = self.settings.display
        for mode, a in self.mode_actions.items():
            a.setChecked(mode == d.mode)
        self.colormap_box.setCurrentText(d.colormap)
        self.alpha_slider.blockSignals(True)
        self.alpha_slider.setValue(int(round(d.alpha * 100)))
        self.alpha_slider.blockSignals(False)
        self.act_contours.setChecked(bool(d.show_contours))

    # -- transection plane ----------------------------------------------------------------
    def draw_plane(self) -> None:
        if self.settings.display.mode == "side-by-side" or self.engine.ab:
            self.notify("draw the plane in a single-picture mode (1-4 or 6)", error=True)
            return
        self.view.start_drawing()
        self.notify("click the plane's corners; double-click or Enter closes it, Esc cancels")

    def clear_plane(self) -> None:
        self.view.clear_plane()

    def _on_plane_changed(self, polygon: list) -> None:
        self._changed("plane.polygon", polygon)
        self.notify("transection plane set" if polygon else "transection plane cleared")

    # -- frames ------------------------------------------------------------------------------
    def _on_tick(self) -> None:
        item = self.engine.latest()
        now = time.monotonic()
        if item is not None and not self.frozen:
            self._show(item, now)
        self._update_marks(now)
        if now - self._last_status_t >= STATUS_EVERY_S:
            self._last_status_t = now
            self._refresh_status(now)
        self._collect_done()

    def _show(self, item, now: float) -> None:
        view = self.view
        if view.frame is not None and view._painted_seq != view.frame.seq:
            self._view_dropped += 1  # handed over but replaced before it was painted
        lost = item.nir_lost
        # NIR lost: show white light only, whatever the pipeline composed
        image = item.pair.wl if lost else item.composite
        image_b = None
        if item.result_b is not None:
            image_b = item.pair.wl if lost else item.composite_b
        hud = view.hud
        res = item.result
        hud.rims = [] if lost else list(getattr(res, "rims", []) or [])
        hud.rims_drawable = (image_b is None and self.settings.display.mode != "side-by-side"
                             and image.shape[:2] == item.pair.wl.shape[:2])
        plane = getattr(res, "plane", None)
        hud.plane_set = len(self.settings.plane.polygon) >= 3
        hud.plane_flagged = bool(plane is not None and plane.flagged and not lost)
        hud.plane_tbr = getattr(plane, "tbr", None)
        self._last_new_frame = now
        self._frame_nir_lost = lost
        view.show_frame(item, image, image_b, now=True)

    def _on_painted(self, frame, t: float) -> None:
        self._paint_times.append(t)
        self.stats.on_painted(frame, t, self.engine, self._view_dropped)

    def displayed_fps(self) -> float:
        ts = self._paint_times
        if len(ts) < 2 or time.monotonic() - ts[-1] > 1.0:
            return 0.0
        return (len(ts) - 1) / (ts[-1] - ts[0]) if ts[-1] > ts[0] else 0.0

    def _effective_fps(self) -> float:
        fps = self.engine.fps
        if self.engine.pace:
            fps *= self.engine.speed
        return fps

    def _update_marks(self, now: float) -> None:
        st = self._status
        marks = safety_banners(now=now, last_new_frame=self._last_new_frame,
                               fps=self._effective_fps(),
                               nir_lost=bool(getattr(self, "_frame_nir_lost", False)),
                               frozen=self.frozen, paused=st.paused,
                               ended=st.state == "ended")
        hud = self.view.hud
        if STALE in marks and self._last_new_frame is not None:
            hud.stale_for = now - self._last_new_frame
        if marks != self._marks:
            self._marks = marks
            hud.marks = marks
            self.view.update()
        elif STALE in marks:
            hud.marks = marks
            if int(hud.stale_for * 10) != int((hud.stale_for - TICK_MS / 1000) * 10):
                self.view.update()  # the age shown changes every 0.1 s

    @property
    def marks(self) -> list:
        """The safety marks on screen now (``stale``, ``nir_lost``, ``frozen`` ...)."""
        return list(self._marks)

    def _refresh_status(self, now: float) -> None:
        st = self.engine.status()
        self._status = st
        hud = self.view.hud
        hud.fps = self.displayed_fps()
        hud.latency_ms = self.stats.recent_latency_ms()
        src = st.source or {}
        status = src.get("status", "ok")
        parts = []
        if status not in ("ok", "", None):
            parts.append(status.replace("_", " "))
        if st.state == "error":
            parts.append("source error")
        hud.source_status = ", ".join(parts)
        if st.frame_count:
            pos = st.position if st.position is not None else 0
            hud.position = f"frame {pos + 1}/{st.frame_count}" + (
                f"  x{st.speed:g}" if st.speed != 1.0 else "")
        else:
            hud.position = ""
        hud.recording = st.recording
        text, is_err, until = self._notice
        rec_err = (st.recording or {}).get("error") or ""
        err = st.error or src.get("message", "") if status not in ("ok", "") else st.error
        if text and now < until:
            hud.message, hud.message_is_error = text, is_err
        elif err or rec_err:
            hud.message, hud.message_is_error = (err or rec_err), True
        else:
            hud.message, hud.message_is_error = "", False
        self.act_record.blockSignals(True)
        self.act_record.setChecked(self.engine.recording)
        self.act_record.blockSignals(False)
        lat = "--" if hud.latency_ms is None else f"{hud.latency_ms:.0f} ms"
        self._status_label.setText(
            f"{self.engine.info.description}  |  in {st.fps_in:.1f} fps, shown {hud.fps:.1f} fps, "
            f"+{lat}, dropped {st.dropped_display + self._view_dropped}")
        if self.panel is not None and now - self._last_hist_t >= HISTOGRAM_EVERY_S:
            self._last_hist_t = now
            self._update_histogram()
        self.view.update()

    def _update_histogram(self) -> None:
        frame = self.view.frame
        if frame is None or frame.pair.nir is None or not self.panel.isVisible():
            return
        sample = frame.pair.nir[::8, ::8]  # ~1/64 of the pixels: well under a millisecond
        lo, hi = np.percentile(sample, (0.1, 99.9))
        hi = max(float(hi), float(lo) + 1.0)
        hist, _ = np.histogram(sample, bins=128, range=(float(lo), hi))
        try:
            self.panel.set_histogram(hist, float(lo), hi)
        except Exception:  # the histogram is a help, never a reason to stop
            log.exception("histogram")

    # -- notices ------------------------------------------------------------------------------
    def notify(self, text: str, *, error: bool = False, seconds: float = 4.0) -> None:
        """Show ``text`` in plain words in the picture and the status bar."""
        self._notice = (text, error, time.monotonic() + seconds)
        self.statusBar().showMessage(text, int(seconds * 1000))
        self.view.hud.message, self.view.hud.message_is_error = text, error
        self.view.update()

    def _run_in_background(self, name: str, fn, on_done) -> None:
        """Run ``fn()`` on a helper thread; ``on_done(result, error)`` runs on the GUI thread."""

        def work():
            try:
                self._done.put((on_done, fn(), None))
            except Exception as e:
                if not isinstance(e, NirfError):
                    log.exception("%s failed", name)
                self._done.put((on_done, None, e))

        spawn(work, f"nirf-{name}")

    def _collect_done(self) -> None:
        while True:
            try:
                on_done, result, error = self._done.get_nowait()
            except queue.Empty:
                return
            try:
                on_done(result, error)
            except Exception:
                log.exception("after background task")

    # -- actions ------------------------------------------------------------------------------
    def toggle_freeze(self, checked=None) -> None:
        self.frozen = (not self.frozen) if checked is None else bool(checked)
        self.act_freeze.setChecked(self.frozen)
        if self.frozen:
            self.view.hold()  # the pipeline reuses its output buffers
        self._update_marks(time.monotonic())

    def snapshot(self) -> None:
        frame = self.view.frame
        if frame is None:
            self.notify("no picture to save yet", error=True)
            return
        # Copy now (a few ms): sources and the pipeline reuse their buffers, and
        # the files must hold exactly what was on screen when S was pressed.
        import dataclasses

        shown = self.view._arrays[0].copy() if self.view._arrays else None
        pair = dataclasses.replace(frame.pair, wl=frame.pair.wl.copy(),
                                   nir=None if frame.pair.nir is None else frame.pair.nir.copy())
        settings, info, cal = self.settings.copy(), self.engine.info, self.calibration
        out = self.snapshot_dir

        def write():
            from ..snapshot import write_snapshot

            return write_snapshot(out, pair, frame.result, settings=settings,
                                  source_info=info, calibration=cal, composite=shown)

        def done(paths, error):
            if error is not None:
                self.notify(f"snapshot not saved: {error}", error=True)
                return
            self.last_snapshot = paths
            self.engine.log_event("snapshot", source_index=int(frame.index), files=paths)
            self.notify(f"snapshot saved: {Path(paths['overlay']).name.replace('_overlay.png', '')}")

        self.last_snapshot = None
        self._run_in_background("snapshot", write, done)

    def toggle_recording(self, checked=None) -> None:
        if self.engine.recording:
            self.engine.stop_recording()
            self.notify("recording stopped")
        else:
            name = f"session_{_dt.datetime.now():%Y%m%d-%H%M%S}"
            self.engine.start_recording(self.recording_dir / name)
            self.notify(f"recording to {self.recording_dir / name}")
        self.act_record.setChecked(self.engine.recording)

    def add_marker(self) -> None:
        pos = self.engine.position
        self.engine.log_event("marker", source_index=pos)
        self.notify(f"marker at frame {pos}" if self.engine.recording
                    else "markers are kept in recordings: press R to record")

    def toggle_play(self) -> None:
        if not self.engine.seekable:
            self.notify("only recordings and files can be paused", error=True)
            return
        self.engine.toggle_pause()

    def step(self, delta: int) -> None:
        if self.engine.seekable:
            self.engine.step(delta)

    def toggle_panel(self, checked=None) -> None:
        if self.panel is None:
            return
        self.panel.setVisible(not self.panel.isVisible())

    def toggle_hud(self, checked=None) -> None:
        self.view.hud.visible = bool(self.act_hud.isChecked())
        self.view.update()

    def toggle_help(self) -> None:
        if self.help is None:
            cls = _import_optional("help_overlay", "HelpOverlay")
            if cls is None:
                self.notify("help overlay unavailable", error=True)
                return
            self.help = cls(self.shortcuts(), self)
        self.help.toggle()

    def _on_escape(self) -> None:
        if self.view.drawing:
            self.view.cancel_drawing()
        elif self.help is not None and self.help.isVisible():
            self.help.hide()
        elif self.isFullScreen():
            self.toggle_fullscreen()

    def toggle_fullscreen(self, checked=None, screen: Optional[int] = None) -> None:
        if self.isFullScreen() and screen is None:
            for w, visible in self._chrome.items():
                w.setVisible(visible)
            self.showNormal()
        else:
            self.go_fullscreen(screen)
        self.act_fullscreen.setChecked(self.isFullScreen())

    def go_fullscreen(self, screen: Optional[int] = None) -> None:
        """Full screen on screen ``screen`` (index into QApplication.screens()), minimal chrome."""
        from PyQt5.QtWidgets import QApplication

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
        chrome = [self.menuBar(), self.statusBar(), self.toolbar]
        if self.panel is not None:
            chrome.append(self.panel)
        if self.replay_bar is not None:
            chrome.append(self.replay_bar)
        self._chrome = {w: w.isVisible() for w in chrome}
        for w in chrome:
            w.hide()
        self.showFullScreen()
        self.act_fullscreen.setChecked(True)

    def open_dialog(self) -> None:
        cls = _import_optional("open_dialog", "OpenSourceDialog")
        if cls is None:
            self.notify("open dialog unavailable", error=True)
            return
        dlg = cls(self)
        try:
            if not dlg.exec_():
                return
            spec = dlg.spec()
        finally:
            dlg.deleteLater()
        if spec is not None:
            self.open_spec(spec)

    def open_spec(self, spec, *, calibration_path: Optional[str] = None) -> None:
        """Open ``spec`` on a helper thread and switch to it when it is ready.

        ``calibration_path``: a profile to load (on the same helper thread) and use.
        Which calibration applies is decided by
        :func:`~nirf_overlay.calibration.resolve_calibration`: that profile, else
        the source's own, else the one the user chose before.
        """
        from ..calibration import CalibrationRequest

        if self._opening:
            self.notify("still opening the previous source", error=True)
            return
        self._opening = True
        self.notify(f"opening {spec.describe()} ...", seconds=30)
        settings = self.settings.copy()
        request = CalibrationRequest(profile=calibration_path, carried=self._chosen_calibration)

        def done(engine, error):
            self._opening = False
            if error is not None:
                self.notify(f"could not open: {error}", error=True, seconds=8)
                return
            if calibration_path:
                self._chosen_calibration = engine.calibration
            self._switch_engine(engine, spec)
            if engine.calibration_note:
                self.notify(engine.calibration_note, error=True, seconds=8)

        self._run_in_background("open", lambda: self._engine_factory(spec, settings, request), done)

    def _switch_engine(self, engine: Engine, spec) -> None:
        old, self.engine = self.engine, engine
        self.spec = spec
        self.calibration = engine.calibration
        self._last_new_frame = None
        self.view.frame = None
        engine.update_settings(self.settings)
        engine.start()
        spawn(old.stop, "nirf-engine-stop")
        self._build_replay_bar()
        self.notify(f"showing {engine.info.description}")

    def calibration_dialog(self) -> None:
        cls = _import_optional("calibration_dialog", "CalibrationDialog")
        if cls is None:
            self.notify("calibration dialog unavailable", error=True)
            return
        if self.spec is None:
            self.notify("calibration needs a source opened from a file, device or URL",
                        error=True)
            return
        if self.engine.info.live and not getattr(self.spec, "phantom", False):
            # a camera can be opened only once: release it while the dialog uses it
            old = self.engine
            self.notify("releasing the camera for calibration ...", seconds=10)
            self._run_in_background("release", old.stop,
                                    lambda _r, _e: self._run_calibration_dialog(cls, reopen=True))
            return
        self._run_calibration_dialog(cls, reopen=False)

    def _run_calibration_dialog(self, cls, *, reopen: bool) -> None:
        path = None
        try:
            path = self._calibration_dialog(cls)
        finally:
            if reopen:
                self.open_spec(self.spec, calibration_path=path)
            elif path:
                self.use_calibration(path)

    def _calibration_dialog(self, cls) -> Optional[str]:
        """Run the dialog; return the profile it saved, if any."""
        try:
            dlg = cls(self.spec, self)
        except NirfError as e:
            self.notify(str(e), error=True)
            return None
        try:
            dlg.exec_()
            path = None
            for name in ("profile_path", "saved_path", "path"):
                value = getattr(dlg, name, None)
                value = value() if callable(value) else value
                if value:
                    path = str(value)
                    break
        finally:
            dlg.deleteLater()
        return path  # a profile saved in the dialog is meant to be used

    def use_calibration(self, path: str) -> None:
        """Load a profile on a helper thread and give it to the pipeline."""

        def load():
            from ..calibration.profile import load_profile

            return load_profile(path)

        def done(cal, error):
            if error is not None:
                self.notify(f"calibration not used: {error}", error=True)
                return
            try:
                self.engine.set_calibration(cal)
            except NirfError as e:
                self.notify(str(e), error=True)
                return
            self.calibration = self._chosen_calibration = cal
            self.notify(f"calibration {Path(path).name} in use")

        self._run_in_background("calibration", load, done)

    # -- shutdown --------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        if hasattr(self, "_timer"):
            self._timer.stop()
        self.view.on_painted = None
        if self.help is not None:
            self.help.hide()
        self.engine.stop()
        super().closeEvent(event)
