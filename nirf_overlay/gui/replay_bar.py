"""Replay controls for seekable sources (sessions, files): a view over the engine.

The bar never waits on the engine: commands (pause, step, seek, speed, loop,
A/B) are the engine's non-blocking calls, and a QTimer polls
``engine.position`` to move the slider and the time/frame read-outs.  Frame N
shown here is frame N of the recording (``engine.position`` is the index of
the frame on screen).

Which settings run during replay (recorded / current, A/B) is
:class:`~nirf_overlay.gui.replay_settings.ReplaySettings`, part of the bar.
"""

from __future__ import annotations

import math
import time
from typing import Optional

from PyQt5.QtCore import QSignalBlocker, Qt, QTimer
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSlider,
    QSpinBox,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..engine import Engine
from ..errors import NirfError
from .presets import default_presets_dir
from .replay_settings import ReplaySettings
from .settings_model import SettingsModel
from .shortcuts import install_free_shortcuts

__all__ = ["ReplayBar", "SPEEDS", "SHORTCUTS", "format_time"]

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


class ReplayBar(QWidget):
    """Play/pause, step, seek, speed, loop, markers, recorded/current settings, A/B (a view).

    Parameters
    ----------
    engine : the viewer's :class:`~nirf_overlay.engine.Engine` over a seekable source
    model : the viewer's settings; "Recorded" / "Current" replace its values
    parent : the main window; shortcuts are installed on its window
    presets_dir : where B presets are listed from; default
        :func:`~nirf_overlay.gui.presets.default_presets_dir`
    poll_ms : how often the engine's position is read
    """

    def __init__(self, engine: Engine, model: SettingsModel, parent=None, *, presets_dir=None,
                 poll_ms: int = POLL_MS):
        super().__init__(parent)
        self.setObjectName("replay_bar")
        self.engine = engine
        self.model = model
        self.presets_dir = presets_dir if presets_dir is not None else default_presets_dir()
        self._markers: list[tuple[int, str]] = []
        self._marker_source_len = -1
        self._pending_seek: Optional[int] = None
        self._target: Optional[tuple[int, float]] = None  # (index, when asked) of the last seek
        self._last_text = ""

        # Two rows: the transport and the timeline get the whole width; the
        # replay options sit underneath.
        rows = QVBoxLayout(self)
        rows.setContentsMargins(4, 2, 4, 2)
        rows.setSpacing(2)
        rows.addLayout(self._build_transport())
        rows.addLayout(self._build_options())
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

    # -- construction helpers -----------------------------------------------------------
    def _build_transport(self) -> QHBoxLayout:
        """Back, play, forward, the timeline, time and frame read-outs."""
        row = QHBoxLayout()
        style = self.style()
        self.back_button = self._button(style.standardIcon(QStyle.SP_MediaSkipBackward), "",
                                        "One frame back (Left)", self.step_back)
        self.play_button = self._button(style.standardIcon(QStyle.SP_MediaPlay), "Play",
                                        "Play / pause (K)", self.toggle_play)
        self.forward_button = self._button(style.standardIcon(QStyle.SP_MediaSkipForward), "",
                                           "One frame forward (Right)", self.step_forward)
        for b in (self.back_button, self.play_button, self.forward_button):
            row.addWidget(b)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setObjectName("replay_slider")
        self.slider.setFocusPolicy(Qt.NoFocus)  # keys stay with the view (Space = freeze)
        self.slider.setToolTip("Drag or click to go to a moment of the recording")
        self.slider.valueChanged.connect(self._on_slider_value)
        self.slider.sliderReleased.connect(self._flush_seek)
        self.slider.setMinimumWidth(200)
        row.addWidget(self.slider, 1)
        self.time_label = QLabel("00:00.00 / 00:00.00")
        self.time_label.setObjectName("replay_time")
        self.time_label.setToolTip("Time of the frame on screen / length of the recording")
        row.addWidget(self.time_label)
        row.addWidget(QLabel("frame"))
        self.frame_box = QSpinBox()
        self.frame_box.setObjectName("replay_frame")
        self.frame_box.setKeyboardTracking(False)
        self.frame_box.setToolTip("Frame number on screen (frame N of the recording); "
                                  "type a number and press Enter to go there")
        self.frame_box.valueChanged.connect(self._on_frame_typed)
        row.addWidget(self.frame_box)
        self.count_label = QLabel("/ ?")
        row.addWidget(self.count_label)
        return row

    def _build_options(self) -> QHBoxLayout:
        """Speed, loop, markers, recorded/current settings, A/B and a message."""
        row = QHBoxLayout()
        row.addWidget(QLabel("Speed"))
        self.speed_box = QComboBox()
        self.speed_box.setObjectName("replay_speed")
        for s in SPEEDS:
            self.speed_box.addItem(f"{s:g}x", s)
        self.speed_box.setToolTip("Replay speed ([ slower, ] faster)")
        self.speed_box.setFocusPolicy(Qt.NoFocus)
        self.speed_box.currentIndexChanged.connect(self._on_speed_index)
        row.addWidget(self.speed_box)
        self.skipped_label = QLabel("")
        self.skipped_label.setObjectName("replay_skipped")
        self.skipped_label.setToolTip(
            "Frames left out so that the picture keeps the speed asked for: decoding and "
            "processing fell behind (replay never turns into slow motion)")
        row.addWidget(self.skipped_label)
        self.loop_box = QCheckBox("Loop")
        self.loop_box.setToolTip("Start again at the end (L)")
        self.loop_box.setFocusPolicy(Qt.NoFocus)
        self.loop_box.toggled.connect(self._on_loop)
        row.addWidget(self.loop_box)
        self.marker_button = QToolButton()
        self.marker_button.setObjectName("replay_markers")
        self.marker_button.setText("Markers")
        self.marker_button.setPopupMode(QToolButton.InstantPopup)
        self.marker_button.setToolTip("Jump to a marker set during the recording "
                                      "(PgUp / PgDown: previous / next)")
        self.marker_menu = QMenu(self.marker_button)
        self.marker_button.setMenu(self.marker_menu)
        row.addWidget(self.marker_button)
        row.addSpacing(12)
        self.choice = ReplaySettings(self.engine, self.model, presets_dir=self.presets_dir)
        self.choice.said.connect(self.message_said)
        row.addWidget(self.choice)
        self.message = QLabel("")
        self.message.setObjectName("replay_message")
        self.message.setStyleSheet("color: #d22;")
        row.addWidget(self.message, 1)
        return row

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
        return install_free_shortcuts(
            window, [(key, getattr(self, method)) for key, _what, method in SHORTCUTS],
            owner=self)

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
        self.choice.toggle_ab()

    # -- engine -> controls ---------------------------------------------------------------
    def _position(self) -> int:
        pos = self.engine.position
        return int(pos) if pos is not None else 0

    def sync_from_engine(self) -> None:
        """Read the engine's state into the controls (the poll timer calls this)."""
        engine = self.engine
        n = engine.frame_count
        paused = engine.paused
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
        markers = engine.markers
        if len(markers) != self._marker_source_len:  # a marker set during replay
            self._marker_source_len = len(markers)
            self._markers = sorted((int(m.frame), m.label) for m in markers)
            self._rebuild_marker_menu()
        skipped = engine.skipped
        self.skipped_label.setText(f"{skipped} skipped" if skipped else "")
        if engine.loop != self.loop_box.isChecked():
            with QSignalBlocker(self.loop_box):
                self.loop_box.setChecked(engine.loop)
        self.choice.sync_from_engine()

    def _sync_static(self) -> None:
        speed = self.engine.speed
        nearest = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - speed))
        with QSignalBlocker(self.speed_box):
            self.speed_box.setCurrentIndex(nearest)
        with QSignalBlocker(self.loop_box):
            self.loop_box.setChecked(self.engine.loop)

    def _show_position(self, index: int) -> None:
        fps = self.engine.fps
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
        fps = self.engine.fps
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
            self.message_said(str(e))
            return
        self.message_said("")

    def message_said(self, text: str) -> None:
        """Show a refusal in plain words next to the controls (``""`` clears it)."""
        self.message.setText(text)

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

    # -- life cycle ---------------------------------------------------------------------
    def stop(self) -> None:
        """Stop polling and following the model (the window calls this before it drops the bar)."""
        self._poll_timer.stop()
        self._seek_timer.stop()
        self.choice.stop()

    def closeEvent(self, event) -> None:
        self.stop()
        super().closeEvent(event)

