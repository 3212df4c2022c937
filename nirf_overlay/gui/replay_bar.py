"""Replay controls for seekable sources (sessions, files): a view over the engine.

The bar never waits on the engine: commands (pause, step, seek, speed, loop,
A/B) are the engine's non-blocking calls, and a QTimer polls
``engine.position`` to move the slider and the time/frame read-outs.  Frame N
shown here is frame N of the recording (``engine.position`` is the index of
the frame on screen).

Settings during replay
----------------------
"Recorded" runs the pipeline with the settings stored in the session (as the
surgeon saw it), "Current" with the settings being tuned.  "A/B" runs both
side by side: A is whatever the engine runs now, B is the recorded settings
or a saved preset (``engine.set_ab(settings_b)``).  When the window offers
``apply_settings(settings)`` the bar goes through it, so the settings panel
shows what is running; otherwise it calls ``engine.update_settings``.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Optional

from PyQt5.QtCore import QSignalBlocker, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import (
    QAction,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QShortcut,
    QSlider,
    QSpinBox,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..errors import NirfError, SettingsError
from .settings_panel import default_presets_dir, list_presets, load_preset

__all__ = ["ReplayBar", "SPEEDS", "format_time", "normalise_markers"]

SPEEDS = (0.25, 0.5, 1.0, 1.5, 2.0, 4.0)
POLL_MS = 50  # 20 Hz is smooth for a slider and costs a few attribute reads
SEEK_COALESCE_MS = 40  # while dragging, seek at most this often
TARGET_GRACE_S = 1.0  # how long a seek target is shown before the engine's position wins

#: (key, what it does, method name); installed as window shortcuts when free.
SHORTCUTS = (
    ("K", "Play / pause the recording", "toggle_play"),
    ("Left", "One frame back (pauses)", "step_back"),
    ("Right", "One frame forward (pauses)", "step_forward"),
    ("Shift+Left", "One second back", "jump_back"),
    ("Shift+Right", "One second forward", "jump_forward"),
    ("Home", "First frame", "seek_first"),
    ("End", "Last frame", "seek_last"),
    ("PgUp", "Previous marker", "previous_marker"),
    ("PgDown", "Next marker", "next_marker"),
    ("[", "Slower replay", "slower"),
    ("]", "Faster replay", "faster"),
    ("L", "Loop on / off", "toggle_loop"),
    ("B", "A/B: both settings side by side", "toggle_ab"),
)


def format_time(seconds: float) -> str:
    """``mm:ss.ff`` (hundredths); minutes keep counting past 59."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        seconds = 0.0
    hundredths = int(round(seconds * 100))
    minutes, rest = divmod(hundredths, 6000)
    return f"{minutes:02d}:{rest // 100:02d}.{rest % 100:02d}"


def normalise_markers(markers) -> list[tuple[int, str]]:
    """``[(frame index, label), ...]`` sorted by index, from tuples, dicts or objects.

    Sessions give :class:`~nirf_overlay.recording.Marker` (``frame``, ``label``);
    the engine contract says ``(index, label)``; both are accepted.
    """
    out = []
    for m in markers or ():
        if isinstance(m, (tuple, list)) and len(m) >= 1:
            index, label = m[0], (m[1] if len(m) > 1 else "")
        elif isinstance(m, dict):
            index = m.get("frame", m.get("index"))
            label = m.get("label", "")
        else:
            index = getattr(m, "frame", getattr(m, "index", None))
            label = getattr(m, "label", "")
        try:
            out.append((int(index), str(label or "")))
        except (TypeError, ValueError):
            continue  # a marker without a frame cannot be jumped to
    return sorted(out)


def _engine_recorded_settings(engine):
    s = getattr(engine, "recorded_settings", None)
    if s is None:
        s = getattr(getattr(engine, "source", None), "recorded_settings", None)
    return s


class ReplayBar(QWidget):
    """Play/pause, step, seek, speed, loop, markers, recorded/current settings, A/B.

    Parameters
    ----------
    engine : the viewer's engine (see the module docstring for the calls used)
    parent : the main window; shortcuts are installed on its window
    presets_dir : where B presets are listed from (default: those of the window's
        settings panel, else :func:`~nirf_overlay.gui.settings_panel.default_presets_dir`)
    poll_ms : how often the engine's position is read

    Signals
    -------
    settings_applied(Settings) : the bar switched the running settings
    """

    settings_applied = pyqtSignal(object)

    def __init__(self, engine, parent=None, *, presets_dir=None, poll_ms: int = POLL_MS):
        super().__init__(parent)
        self.setObjectName("replay_bar")
        self.engine = engine
        self._presets_dir = presets_dir
        self._recorded = _engine_recorded_settings(engine)
        self._current = None  # settings to go back to from "Recorded"
        self._markers: list[tuple[int, str]] = []
        self._marker_source_len = -1
        self._pending_seek: Optional[int] = None
        self._target: Optional[tuple[int, float]] = None  # (index, when asked) of the last seek
        self._syncing = False
        self._last_text = ""

        # Two rows: the transport and the timeline get the whole width; the
        # replay options sit underneath.
        rows = QVBoxLayout(self)
        rows.setContentsMargins(4, 2, 4, 2)
        rows.setSpacing(2)
        layout = QHBoxLayout()
        options = QHBoxLayout()
        rows.addLayout(layout)
        rows.addLayout(options)
        style = self.style()
        self.back_button = self._button(style.standardIcon(QStyle.SP_MediaSkipBackward), "",
                                        "One frame back (Left)", self.step_back)
        self.play_button = self._button(style.standardIcon(QStyle.SP_MediaPlay), "Play",
                                        "Play / pause (K)", self.toggle_play)
        self.forward_button = self._button(style.standardIcon(QStyle.SP_MediaSkipForward), "",
                                           "One frame forward (Right)", self.step_forward)
        for b in (self.back_button, self.play_button, self.forward_button):
            layout.addWidget(b)

        self.slider = QSlider(Qt.Horizontal)
        self.slider.setObjectName("replay_slider")
        self.slider.setFocusPolicy(Qt.NoFocus)  # keys stay with the view (Space = freeze)
        self.slider.setToolTip("Drag or click to go to a moment of the recording")
        self.slider.valueChanged.connect(self._on_slider_value)
        self.slider.sliderReleased.connect(self._flush_seek)
        self.slider.setMinimumWidth(200)
        layout.addWidget(self.slider, 1)

        self.time_label = QLabel("00:00.00 / 00:00.00")
        self.time_label.setObjectName("replay_time")
        self.time_label.setToolTip("Time of the frame on screen / length of the recording")
        layout.addWidget(self.time_label)
        layout.addWidget(QLabel("frame"))
        self.frame_box = QSpinBox()
        self.frame_box.setObjectName("replay_frame")
        self.frame_box.setKeyboardTracking(False)
        self.frame_box.setToolTip("Frame number on screen (frame N of the recording); "
                                  "type a number and press Enter to go there")
        self.frame_box.valueChanged.connect(self._on_frame_typed)
        layout.addWidget(self.frame_box)
        self.count_label = QLabel("/ ?")
        layout.addWidget(self.count_label)

        options.addWidget(QLabel("Speed"))
        self.speed_box = QComboBox()
        self.speed_box.setObjectName("replay_speed")
        for s in SPEEDS:
            self.speed_box.addItem(f"{s:g}x", s)
        self.speed_box.setToolTip("Replay speed ([ slower, ] faster)")
        self.speed_box.setFocusPolicy(Qt.NoFocus)
        self.speed_box.currentIndexChanged.connect(self._on_speed_index)
        options.addWidget(self.speed_box)

        self.loop_box = QCheckBox("Loop")
        self.loop_box.setToolTip("Start again at the end (L)")
        self.loop_box.setFocusPolicy(Qt.NoFocus)
        self.loop_box.toggled.connect(self._on_loop)
        options.addWidget(self.loop_box)

        self.marker_button = QToolButton()
        self.marker_button.setObjectName("replay_markers")
        self.marker_button.setText("Markers")
        self.marker_button.setPopupMode(QToolButton.InstantPopup)
        self.marker_button.setToolTip("Jump to a marker set during the recording "
                                      "(PgUp / PgDown: previous / next)")
        self.marker_menu = QMenu(self.marker_button)
        self.marker_button.setMenu(self.marker_menu)
        options.addWidget(self.marker_button)

        self.settings_box = QComboBox()
        self.settings_box.setObjectName("replay_settings")
        self.settings_box.addItem("Current settings", "current")
        self.settings_box.addItem("Recorded settings", "recorded")
        options.addSpacing(12)
        self.settings_box.setToolTip(
            "Run the pipeline with the settings in force when the session was recorded "
            "(as the surgeon saw it) or with the ones you are tuning now")
        self.settings_box.setFocusPolicy(Qt.NoFocus)
        self.settings_box.currentIndexChanged.connect(self._on_settings_choice)
        options.addWidget(self.settings_box)

        self.ab_button = QPushButton("A/B")
        self.ab_button.setObjectName("replay_ab")
        self.ab_button.setCheckable(True)
        self.ab_button.setFocusPolicy(Qt.NoFocus)
        self.ab_button.setToolTip("Show the picture with both settings side by side (B): "
                                  "A = the running settings, B = the choice on the right")
        self.ab_button.toggled.connect(self._on_ab_toggled)
        options.addWidget(self.ab_button)
        self.b_box = _RefreshingComboBox(self.refresh_b_choices)
        self.b_box.setObjectName("replay_b")
        self.b_box.setToolTip("Settings for side B: the recorded ones or a saved preset")
        self.b_box.setFocusPolicy(Qt.NoFocus)
        self.b_box.currentIndexChanged.connect(self._on_b_choice)
        options.addWidget(self.b_box)
        self.message = QLabel("")
        self.message.setObjectName("replay_message")
        self.message.setStyleSheet("color: #d22;")
        options.addWidget(self.message, 1)

        self.refresh_b_choices()
        if self._recorded is None:
            self.settings_box.setEnabled(False)
            self.settings_box.setToolTip("This source has no recorded settings "
                                         "(only recorded sessions do)")
        self._seek_timer = QTimer(self)
        self._seek_timer.setSingleShot(True)
        self._seek_timer.setInterval(SEEK_COALESCE_MS)
        self._seek_timer.timeout.connect(self._flush_seek)
        self._poll_timer = QTimer(self)
        self._poll_timer.timeout.connect(self.sync_from_engine)
        self._poll_timer.start(int(poll_ms))

        self.shortcuts = self._install_shortcuts()
        self._sync_static()
        self.sync_from_engine()

    @property
    def presets_dir(self):
        """Where side-B presets come from: as given, else the window's settings panel's."""
        if self._presets_dir is not None:
            return self._presets_dir
        from .settings_panel import SettingsPanel

        window = self.window()
        panel = window.findChild(SettingsPanel) if window is not self else None
        return panel.presets_dir if panel is not None else default_presets_dir()

    # -- construction helpers -----------------------------------------------------------
    def _button(self, icon, text: str, tip: str, slot) -> QToolButton:
        b = QToolButton()
        b.setIcon(icon)
        if text:
            b.setText(text)
            b.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        b.setToolTip(tip)
        b.setFocusPolicy(Qt.NoFocus)
        b.clicked.connect(slot)
        return b

    def _install_shortcuts(self) -> list:
        """Window shortcuts for the keys in :data:`SHORTCUTS` that the window leaves free.

        They live on the window, not on the bar, so they keep working when the
        bar is hidden (full screen); they are deleted with the bar.
        """
        window = self.parentWidget().window() if self.parentWidget() is not None else self
        taken = set()
        for a in window.findChildren(QAction) + list(window.actions()):
            taken.update(k.toString() for k in a.shortcuts())
        for sc in window.findChildren(QShortcut):
            taken.add(sc.key().toString())
        installed = []
        for key, _what, method in SHORTCUTS:
            seq = QKeySequence(key)
            if seq.toString() in taken:
                continue
            sc = QShortcut(seq, window)
            sc.setContext(Qt.WindowShortcut)
            sc.activated.connect(getattr(self, method))
            installed.append(sc)
        if window is not self:
            self.destroyed.connect(functools.partial(_delete_shortcuts, installed))
        return installed

    @classmethod
    def shortcut_list(cls) -> list[tuple[str, str]]:
        """``(key, what it does)`` for every replay key the bar may install."""
        return [(QKeySequence(k).toString(QKeySequence.NativeText), what)
                for k, what, _m in SHORTCUTS]

    def installed_shortcuts(self) -> list[tuple[str, str]]:
        """``(key, what it does)`` for the keys this bar did install (for the help overlay).

        Keys the window already used are left out: they still do the window's thing.
        """
        installed = {sc.key().toString() for sc in self.shortcuts}
        return [(QKeySequence(k).toString(QKeySequence.NativeText), what)
                for k, what, _m in SHORTCUTS if QKeySequence(k).toString() in installed]

    # -- commands (also the shortcuts' slots) ---------------------------------------------
    def toggle_play(self) -> None:
        self._run(lambda: self.engine.resume() if self.engine.paused else self.engine.pause())

    def step_back(self) -> None:
        self._run(lambda: self.engine.step(-1))

    def step_forward(self) -> None:
        self._run(lambda: self.engine.step(1))

    def jump_back(self) -> None:
        self.seek(self._position() - max(1, int(round(self.engine.fps))))

    def jump_forward(self) -> None:
        self.seek(self._position() + max(1, int(round(self.engine.fps))))

    def seek_first(self) -> None:
        self.seek(0)

    def seek_last(self) -> None:
        n = self.engine.frame_count
        if n:
            self.seek(n - 1)

    def seek(self, index: int) -> None:
        """Go to frame ``index`` (clamped to the recording)."""
        n = self.engine.frame_count
        index = max(0, int(index))
        if n:
            index = min(index, n - 1)
        self._run(lambda: self.engine.seek(index))
        self._target = (index, time.monotonic())
        self._show_position(index)

    def previous_marker(self) -> None:
        pos = self._position()
        earlier = [i for i, _ in self._markers if i < pos]
        if earlier:
            self.seek(earlier[-1])

    def next_marker(self) -> None:
        pos = self._position()
        later = [i for i, _ in self._markers if i > pos]
        if later:
            self.seek(later[0])

    def slower(self) -> None:
        self.speed_box.setCurrentIndex(max(0, self.speed_box.currentIndex() - 1))

    def faster(self) -> None:
        self.speed_box.setCurrentIndex(min(self.speed_box.count() - 1,
                                           self.speed_box.currentIndex() + 1))

    def toggle_loop(self) -> None:
        self.loop_box.toggle()

    def toggle_ab(self) -> None:
        self.ab_button.toggle()

    def set_current_settings(self, settings) -> None:
        """Tell the bar what "Current" means (e.g. from the settings panel)."""
        self._current = settings.copy()

    def refresh_b_choices(self) -> None:
        """List the recorded settings and the saved presets as choices for side B."""
        chosen = self.b_box.currentData()
        with QSignalBlocker(self.b_box):
            self.b_box.clear()
            if self._recorded is not None:
                self.b_box.addItem("B: recorded", "recorded")
            self.b_box.addItem("B: defaults", "defaults")
            for name in list_presets(self.presets_dir):
                self.b_box.addItem(f"B: {name}", f"preset:{name}")
            index = self.b_box.findData(chosen) if chosen is not None else 0
            self.b_box.setCurrentIndex(max(0, index))

    # -- engine -> controls ---------------------------------------------------------------
    def _position(self) -> int:
        pos = self.engine.position
        return int(pos) if pos is not None else 0

    def sync_from_engine(self) -> None:
        """Read the engine's state into the controls (the poll timer calls this)."""
        engine = self.engine
        n = engine.frame_count
        paused = bool(engine.paused)
        self.play_button.setText("Play" if paused else "Pause")
        self.play_button.setIcon(self.style().standardIcon(
            QStyle.SP_MediaPlay if paused else QStyle.SP_MediaPause))
        if n and self.slider.maximum() != n - 1:
            with QSignalBlocker(self.slider):
                self.slider.setRange(0, n - 1)
                self.slider.setPageStep(max(1, n // 20))
            with QSignalBlocker(self.frame_box):
                self.frame_box.setRange(0, n - 1)
            self.count_label.setText(f"/ {n - 1}")
        self.slider.setEnabled(bool(n))
        pos = engine.position
        if pos is None and self._last_text == "":
            self._show_position(0)  # the length is known before the first frame
        if self._target is not None:
            # Until the engine shows the frame we asked for (or gives up), keep
            # showing the target so the slider does not jump back and forth.
            index, asked = self._target
            if pos == index or time.monotonic() - asked > TARGET_GRACE_S:
                self._target = None
        if pos is not None and self._pending_seek is None and self._target is None \
                and not self.slider.isSliderDown():
            self._show_position(int(pos))
        markers = getattr(engine, "markers", None) or []
        if len(markers) != self._marker_source_len:
            self._marker_source_len = len(markers)
            self._markers = normalise_markers(markers)
            self._rebuild_marker_menu()
        if bool(getattr(engine, "loop", self.loop_box.isChecked())) != self.loop_box.isChecked():
            with QSignalBlocker(self.loop_box):
                self.loop_box.setChecked(bool(engine.loop))
        ab = getattr(engine, "ab", None)
        if ab is not None and bool(ab) != self.ab_button.isChecked():
            with QSignalBlocker(self.ab_button):
                self.ab_button.setChecked(bool(ab))
        self._sync_settings_choice()

    def _sync_static(self) -> None:
        speed = float(getattr(self.engine, "speed", 1.0) or 1.0)
        nearest = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - speed))
        with QSignalBlocker(self.speed_box):
            self.speed_box.setCurrentIndex(nearest)
        with QSignalBlocker(self.loop_box):
            self.loop_box.setChecked(bool(getattr(self.engine, "loop", False)))

    def _sync_settings_choice(self) -> None:
        # If the user tunes the panel while "Recorded" is chosen, the engine no
        # longer runs the recorded settings: say "Current" again.
        running = getattr(self.engine, "settings", None)
        if self.settings_box.currentData() == "recorded" and running is not None \
                and self._recorded is not None and running != self._recorded:
            self._current = running.copy()
            with QSignalBlocker(self.settings_box):
                self.settings_box.setCurrentIndex(self.settings_box.findData("current"))

    def _show_position(self, index: int) -> None:
        fps = float(self.engine.fps or 0) or 30.0
        n = self.engine.frame_count
        total = format_time((n - 1) / fps) if n else "--:--.--"
        text = f"{format_time(index / fps)} / {total}"
        if text != self._last_text:
            self._last_text = text
            self.time_label.setText(text)
        with QSignalBlocker(self.slider):
            self.slider.setValue(index)
        if not self.frame_box.hasFocus():
            with QSignalBlocker(self.frame_box):
                self.frame_box.setValue(index)

    def _rebuild_marker_menu(self) -> None:
        self.marker_menu.clear()
        fps = float(self.engine.fps or 0) or 30.0
        for index, label in self._markers:
            text = f"{format_time(index / fps)}  frame {index}" + (f"  {label}" if label else "")
            action = self.marker_menu.addAction(text)
            action.triggered.connect(lambda _=False, i=index: self.seek(i))
        self.marker_button.setEnabled(bool(self._markers))
        self.marker_button.setText(f"Markers ({len(self._markers)})")

    # -- controls -> engine ---------------------------------------------------------------
    def _run(self, command) -> None:
        try:
            command()
        except NirfError as e:
            self.message.setText(str(e))
            return
        self.message.clear()

    def _on_slider_value(self, value: int) -> None:
        # Any user move of the slider (drag, click, wheel): seek, coalesced.
        self._pending_seek = int(value)
        if self.slider.isSliderDown():
            if not self._seek_timer.isActive():
                self._seek_timer.start()
        else:
            self._flush_seek()

    def _flush_seek(self) -> None:
        self._seek_timer.stop()
        index = self._pending_seek if self._pending_seek is not None else self.slider.value()
        self._pending_seek = None
        self.seek(index)

    def _on_frame_typed(self, value: int) -> None:
        self.seek(value)

    def _on_speed_index(self, index: int) -> None:
        speed = self.speed_box.itemData(index)
        self._run(lambda: self.engine.set_speed(speed))

    def _on_loop(self, checked: bool) -> None:
        self._run(lambda: self.engine.set_loop(bool(checked)))

    def _apply_settings(self, settings) -> None:
        window = self.window()
        apply = getattr(window, "apply_settings", None)
        try:
            if callable(apply) and window is not self:
                apply(settings)  # the window updates the engine and the panel together
            else:
                self.engine.update_settings(settings)
        except NirfError as e:
            self.message.setText(str(e))
            return
        self.settings_applied.emit(settings.copy())

    def _on_settings_choice(self, _index: int) -> None:
        choice = self.settings_box.currentData()
        if choice == "recorded":
            if self._recorded is None:
                return
            running = getattr(self.engine, "settings", None)
            if running is not None:
                self._current = running.copy()
            self._apply_settings(self._recorded)
        elif self._current is not None:
            self._apply_settings(self._current)

    def settings_b(self):
        """The settings chosen for side B, or None if they cannot be had."""
        data = self.b_box.currentData()
        if data is None:
            return None
        kind, _, name = str(data).partition(":")
        running = getattr(self.engine, "settings", None)
        polygon = running.plane.polygon if running is not None else []
        if kind == "recorded":
            return self._recorded.copy() if self._recorded is not None else None
        if kind == "defaults":
            from ..settings import Settings

            s = Settings()
            s.plane.polygon = [list(p) for p in polygon]
            return s
        try:
            return load_preset(self.presets_dir, name, polygon)
        except SettingsError as e:
            self.message.setText(f"B not loaded: {e}")
            return None

    def _on_ab_toggled(self, checked: bool) -> None:
        if not checked:
            self._run(lambda: self.engine.set_ab(None))
            return
        self.refresh_b_choices()
        b = self.settings_b()
        if b is None:
            with QSignalBlocker(self.ab_button):
                self.ab_button.setChecked(False)
            return
        self._run(lambda: self.engine.set_ab(b))

    def _on_b_choice(self, _index: int) -> None:
        if self.ab_button.isChecked():
            self._on_ab_toggled(True)

    # -- life cycle ---------------------------------------------------------------------
    def stop(self) -> None:
        """Stop polling (the window calls this before it stops the engine)."""
        self._poll_timer.stop()
        self._seek_timer.stop()

    def closeEvent(self, event) -> None:
        self.stop()
        super().closeEvent(event)


class _RefreshingComboBox(QComboBox):
    """A combo box that re-reads its choices when opened (presets saved meanwhile)."""

    def __init__(self, refresh, parent=None):
        super().__init__(parent)
        self._refresh = refresh

    def showPopup(self) -> None:
        self._refresh()
        super().showPopup()


def _delete_shortcuts(shortcuts, *_args) -> None:
    for sc in shortcuts:
        try:
            sc.setEnabled(False)
            sc.deleteLater()
        except RuntimeError:  # already gone with the window
            pass
