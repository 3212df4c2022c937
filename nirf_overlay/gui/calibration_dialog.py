"""The guided calibration dialog (a view over :class:`~nirf_overlay.engine.calibration_grabber.CalibrationGrabber`).

Pick a step (layout for a tower's combined output, dark, flat, register), watch the live preview and its quality
readouts (saturated fraction, signal level, checkerboard corners found in
each channel), capture N frames, read the result (hot pixels, flat range,
reprojection error, mm per pixel) and save it into a profile.  Saving
creates the profile or updates it, keeping its other entries, exactly as
``nirf-overlay calibrate`` does.  The layout step (:mod:`.layout_step`, offered for a
``--combined`` source) finds the tower's insets as ``calibrate layout`` does,
lets the user adjust them and saves ``layout`` and ``ignore_rects``; the
other steps then read the source through that layout.

The source is opened and read on the grabber's worker thread; a QTimer pulls
the newest state, so a slow or stalled source never blocks the window.  After
``exec_()``, :attr:`CalibrationDialog.profile_path` is the profile last saved
(None if nothing was saved); the dialog is accepted when something was saved.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Optional

import numpy as np
from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtGui import QImage, QPixmap
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
)

from ..calibration.profile import load_profile, save_profile
from ..calibration.registration import MAX_RMS_PX, Charuco
from ..calibration.steps import add_dark, add_flat, add_layout, add_registration, start_profile
from ..engine.calibration_grabber import STEPS, CalibrationGrabber, GrabberStatus, quality_flags
from ..errors import NirfError
from ..sources.inputs import classify
from .layout_step import LayoutStep

__all__ = ["CalibrationDialog"]

DEFAULT_FRAMES = {"dark": 32, "flat": 16, "register": 60}
_STEP_HELP = {
    "dark": "Switch the excitation light off and cap the scope, then capture.",
    "flat": "Point the scope at a uniform fluorescent target filling the field, then capture.",
    "register": "Show a checkerboard to both channels: first square to the camera, then tilted "
                "and moved across the field while capturing.",
}


class CalibrationDialog(QDialog):
    """Live preview, capture, quality readouts and save, for one source.

    Parameters
    ----------
    source_spec : SourceSpec
        What to read (a NIR stream alone is enough for dark and flat).
    parent : QWidget, optional
    profile_path : str, optional
        Initial profile file (created or updated on save).
    """

    def __init__(self, source_spec, parent=None, *, profile_path: Optional[str] = None):
        super().__init__(parent)
        self.setWindowTitle("Calibration")
        self.setObjectName("CalibrationDialog")
        self.profile_path: Optional[str] = None  # last profile saved
        self._image = None  # keeps the preview buffer alive while Qt shows it
        self._state = None
        self._shown_result = None
        self._spec = source_spec
        self._grabber = CalibrationGrabber(source_spec)
        self.layout_step: Optional[LayoutStep] = None  # for a combined (tower) source
        if source_spec.combined:
            self.layout_step = LayoutStep(source_spec, before_read=self._before_layout_read,
                                          after_read=self._after_layout_read)
        self._build_ui(profile_path or os.path.join(os.getcwd(), "calibration", "profile.json"))
        self._on_step_changed()
        self._grabber.start()
        self._timer = QTimer(self)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._on_tick)
        self._timer.start()

    # -- layout ------------------------------------------------------------------------
    def _build_ui(self, profile_path: str) -> None:
        self.preview = QLabel("opening the source ...")
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setMinimumSize(480, 270)
        self.preview.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.preview.setStyleSheet("background: #111; color: #ccc;")

        self.step = QComboBox()
        if self.layout_step is not None:
            self.step.addItem("Layout", "layout")
        for s in STEPS:
            self.step.addItem(s.capitalize(), s)
        self.step.currentIndexChanged.connect(self._on_step_changed)
        self.frames = QSpinBox()
        self.frames.setRange(1, 1000)
        self.frames_label = QLabel("Frames")
        self.board_cols, self.board_rows = QSpinBox(), QSpinBox()
        for box, v in ((self.board_cols, 9), (self.board_rows, 6)):
            box.setRange(2, 50)
            box.setValue(v)
            box.valueChanged.connect(self._on_board_changed)
        self.charuco = QCheckBox("ChArUco (markers in the white squares)")
        self.charuco.toggled.connect(self._on_board_changed)
        self.dictionary = QComboBox()
        self.dictionary.setEditable(True)
        self.dictionary.addItems(["DICT_5X5_100", "DICT_4X4_50", "DICT_4X4_100", "DICT_5X5_250",
                                  "DICT_6X6_250"])
        self.dictionary.currentTextChanged.connect(self._on_board_changed)
        self.square_mm = QDoubleSpinBox()
        self.square_mm.setRange(0.0, 500.0)
        self.square_mm.setDecimals(3)
        self.square_mm.setSpecialValueText("unknown (no mm per pixel)")
        self.square_mm.setSuffix(" mm")
        self.help = QLabel()
        self.help.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Step", self.step)
        form.addRow(self.frames_label, self.frames)
        board = QHBoxLayout()
        board.addWidget(self.board_cols)
        self._board_words = (QLabel("x"), QLabel("inner corners"))  # hidden with the board
        board.addWidget(self._board_words[0])
        board.addWidget(self.board_rows)
        board.addWidget(self._board_words[1])
        self.board_row_label = QLabel("Board")
        form.addRow(self.board_row_label, board)
        self.square_label = QLabel("Square")
        form.addRow(self.square_label, self.square_mm)
        self.pattern_label = QLabel("Pattern")
        pattern = QHBoxLayout()
        pattern.addWidget(self.charuco)
        pattern.addWidget(self.dictionary)
        form.addRow(self.pattern_label, pattern)

        self.read_saturation = QLabel("-")
        self.read_signal = QLabel("-")
        self.read_corners = QLabel("-")
        self.read_error = QLabel("-")
        self.read_flags = QLabel("")
        self.read_flags.setStyleSheet("color: #c22;")
        readouts = QGroupBox("Quality")
        readouts.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)
        rf = QFormLayout(readouts)
        rf.addRow("Saturated", self.read_saturation)
        rf.addRow("Signal", self.read_signal)
        rf.addRow("Corners", self.read_corners)
        rf.addRow("Reprojection error", self.read_error)
        rf.addRow(self.read_flags)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.capture_button = QPushButton("Capture")
        self.capture_button.setEnabled(False)  # until the source delivers
        self.capture_button.clicked.connect(self._on_capture)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.path = QLineEdit(profile_path)
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._on_browse)
        self.save_button = QPushButton("Save to profile")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._on_save)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self._on_close_clicked)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        side = QVBoxLayout()
        side.addLayout(form)
        side.addWidget(self.help)
        if self.layout_step is not None:
            side.addWidget(self.layout_step)
            self.layout_step.attach(self.preview)
            self.layout_step.picture_changed.connect(self._on_layout_picture)
        self.readouts = readouts
        side.addWidget(readouts)
        side.addWidget(self.progress)
        side.addWidget(self.capture_button)
        side.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(self.preview, 3)
        top.addLayout(side, 2)
        bottom = QHBoxLayout()
        bottom.addWidget(QLabel("Profile"))
        bottom.addWidget(self.path, 1)
        bottom.addWidget(browse)
        bottom.addWidget(self.save_button)
        bottom.addWidget(self.close_button)
        root = QVBoxLayout(self)
        root.addLayout(top, 1)
        root.addWidget(self.result_label)
        root.addLayout(bottom)
        root.addWidget(self.status)
        self.resize(1000, 640)

    # -- helpers -----------------------------------------------------------------------
    def current_step(self) -> str:
        return self.step.currentData()

    def set_step(self, step: str) -> None:
        self.step.setCurrentIndex(self.step.findData(step))

    def _board(self) -> tuple[int, int]:
        return self.board_cols.value(), self.board_rows.value()

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #c22;" if error else "")

    # -- slots -------------------------------------------------------------------------
    def _on_step_changed(self, *_):
        step = self.current_step()
        layout = step == "layout"
        for w in (self.frames_label, self.frames, self.help, self.readouts, self.progress,
                  self.capture_button):
            w.setVisible(not layout)
        if self.layout_step is not None:
            self.layout_step.setVisible(layout)
        self._image = None  # the other step's picture goes: show this one's
        if layout:
            for w in self._register_widgets():
                w.setVisible(False)
            self.save_button.setEnabled(self.layout_step.found is not None)
            self._on_layout_picture()
            return
        self.save_button.setEnabled(self._state is not None and self._state.result is not None)
        self.frames.setValue(DEFAULT_FRAMES[step])
        register = step == "register"
        for w in self._register_widgets():
            w.setVisible(register)
        self.help.setText(_STEP_HELP[step])
        self._grabber.set_mode(step, self._board(), self._charuco_spec())

    def _register_widgets(self) -> tuple:
        return (self.board_row_label, self.board_cols, self.board_rows, *self._board_words,
                self.square_label, self.square_mm, self.pattern_label, self.charuco, self.dictionary)

    def _on_board_changed(self, *_):
        self._grabber.set_mode(self.current_step(), self._board(), self._charuco_spec())

    def _charuco_spec(self):
        if not self.charuco.isChecked():
            return None
        return Charuco(board=self._board(), dictionary=self.dictionary.currentText().strip())

    def _on_browse(self):
        path, _ = QFileDialog.getSaveFileName(self, "Calibration profile", self.path.text(),
                                              "Calibration profile (*.json)")
        if path:
            self.path.setText(path)

    def _on_capture(self):
        step = self.current_step()
        state = self._state
        if state is not None and step == "register" and not state.has_wl:
            self._say("register: this source has no white-light channel (open one with both "
                      "white light and NIR)", error=True)
            return
        try:
            options = self._options(step)
        except NirfError as e:
            self._say(str(e), error=True)
            return
        self._shown_result = None
        self.result_label.setText("")
        self.read_error.setText("-")
        self.save_button.setEnabled(False)
        self._grabber.capture(step, self.frames.value(), **options)
        self._say(f"capturing {self.frames.value()} frames ...")

    def _options(self, step: str) -> dict:
        if step == "flat":
            base = self._base_profile()
            return {"dark": None if base is None else base.dark,
                    "hot_pixels": None if base is None else base.hot_pixels}
        if step == "register":
            square = self.square_mm.value() or None
            charuco = self._charuco_spec()
            if charuco is not None:
                charuco.cv_board()  # refuse a bad dictionary here, in the status line
            return {"board": self._board(), "square_mm": square, "max_rms_px": MAX_RMS_PX,
                    "min_poses": 1 if self.frames.value() < 3 else 3, "charuco": charuco}
        return {}

    def _base_profile(self):
        """The profile at the save path, if there is one (its dark is used by the flat)."""
        path = self.path.text().strip()
        if not path or not os.path.exists(path):
            return None
        return load_profile(path)

    def _on_save(self):
        state = self._state
        path = self.path.text().strip()
        if not path:
            self._say("profile: give a file name", error=True)
            return
        if self.current_step() == "layout":
            self._save_layout(path)
            return
        if state is None or state.result is None:
            return
        step, res = state.result_step, state.result
        add = {"dark": add_dark, "flat": add_flat}.get(step, add_registration)
        if self._write_profile(path, state.size, lambda cal: add(cal, res)):
            self._say(f"saved {step} to {path}")

    def _write_profile(self, path: str, size, fill) -> bool:
        """Create or update the profile at ``path`` (frames of ``size``) with ``fill(cal)``;
        a refusal or a write error is said in the status line (False)."""
        try:
            cal = start_profile(path, size=size)
            fill(cal)
            save_profile(cal, path)
        except NirfError as e:
            self._say(str(e), error=True)
            return False
        except OSError as e:
            self._say(f"{path}: cannot write ({e.strerror})", error=True)
            return False
        self.profile_path = path
        return True

    def _save_layout(self, path: str) -> None:
        """``layout`` and ``ignore_rects`` into the profile, as ``calibrate layout`` writes
        them; the other steps then read the source through this layout."""
        problem = self.layout_step.problem()
        if problem:
            self._say(problem, error=True)
            return
        wl, nir, ignore = self.layout_step.layout()
        if not self._write_profile(path, wl[2:], lambda cal: add_layout(cal, wl, nir, ignore)):
            return
        self._spec = replace(self._spec, layout="custom", wl_rect=tuple(wl), nir_rect=tuple(nir),
                             nir_half=None)
        self._restart_grabber()
        self._say(f"saved layout to {path} (white light {wl[2]}x{wl[3]} at {wl[0]},{wl[1]}, "
                  f"NIR {nir[2]}x{nir[3]} at {nir[0]},{nir[1]}, {len(ignore)} ignore box(es))")

    def _restart_grabber(self) -> None:
        """A new worker on the source as :attr:`_spec` now says (the old one is stopped)."""
        self._grabber.stop()
        self._grabber = CalibrationGrabber(self._spec)
        self._state = None
        if self.current_step() != "layout":
            self._grabber.set_mode(self.current_step(), self._board(), self._charuco_spec())
        self._grabber.start()

    def _before_layout_read(self) -> None:
        # a device or URL has one reader: the preview's lets go while the frames are read
        if classify(self._spec.combined).live:
            self._grabber.stop()

    def _after_layout_read(self) -> None:
        if not self._grabber.running and classify(self._spec.combined).live:
            self._restart_grabber()

    def _on_layout_picture(self) -> None:
        if self.current_step() == "layout" and self.layout_step.picture is not None:
            self._show_preview(self.layout_step.picture)
            self.save_button.setEnabled(True)

    def _on_close_clicked(self):
        if self.profile_path:
            self.accept()
        else:
            self.reject()

    def _on_tick(self):
        state = self._grabber.snapshot()
        self._state = state
        layout = self.current_step() == "layout"
        if not layout and state.preview is not None and (self._image is None or self._image[0] is not state.preview):
            self._show_preview(state.preview)
        self._show_readouts(state)
        busy = state.status in (GrabberStatus.CAPTURING, GrabberStatus.BUILDING,
                                GrabberStatus.OPENING)
        self.capture_button.setEnabled(state.size is not None and not busy and self._grabber.running)
        self.progress.setRange(0, max(1, state.target))
        self.progress.setValue(state.captured)
        if layout:
            pass  # the source's state under the layout not yet found says nothing here
        elif state.status == GrabberStatus.ERROR:
            self._say(state.message, error=True)
        elif busy or state.status == GrabberStatus.ENDED:
            self._say(state.message)
        if state.result is not None and state.result is not self._shown_result and not layout:
            self._shown_result = state.result
            self.result_label.setText(state.result.summary())
            for w in state.result.warnings:
                self.result_label.setText(self.result_label.text() + "\nwarning: " + w)
            if state.result_step == "register":
                self.read_error.setText(f"{state.result.rms_px:.3f} px RMS (limit {MAX_RMS_PX:g})")
            self.save_button.setEnabled(True)
            self._say(f"{state.result_step} ready: save it to the profile")

    def _show_preview(self, preview: np.ndarray) -> None:
        arr = np.ascontiguousarray(preview)
        h, w = arr.shape[:2]
        image = QImage(arr.data, w, h, arr.strides[0], QImage.Format_BGR888)
        self._image = (preview, arr, image)
        pix = QPixmap.fromImage(image).scaled(self.preview.size(), Qt.KeepAspectRatio,
                                              Qt.SmoothTransformation)
        self.preview.setPixmap(pix)

    def _show_readouts(self, state) -> None:
        r = state.readouts
        if not r:
            return
        self.read_saturation.setText(f"{100 * r['saturated_fraction']:.3f} % at {r['clip_count']}")
        self.read_signal.setText(f"{r['mean_counts']:.0f} counts ({100 * r['signal_fraction']:.1f} % "
                                 "of full scale, raw)")
        if "corners_expected" in r:
            self.read_corners.setText(f"WL {r['corners_wl']}/{r['corners_expected']}, "
                                      f"NIR {r['corners_nir']}/{r['corners_expected']}")
        else:
            self.read_corners.setText("-")
        self.read_flags.setText("; ".join(quality_flags(r, self.current_step())))

    # -- shutdown ----------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the preview timer and the worker (closes the source).  Safe to call twice."""
        self._timer.stop()
        if self.layout_step is not None:
            self.layout_step.wait()
        self._grabber.stop()

    def done(self, result: int) -> None:  # accept(), reject(), Esc and close all end here
        self.stop()
        super().done(result)

    def closeEvent(self, event) -> None:
        self.stop()
        super().closeEvent(event)
