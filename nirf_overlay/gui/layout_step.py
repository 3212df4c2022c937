"""The calibration dialog's layout step: a tower's insets, found, shown, adjusted, saved.

For a ``--combined`` source (a laparoscopy tower's output) the step reads a
few whole frames through the same reader as ``nirf-overlay calibrate layout``
(:func:`~nirf_overlay.sources.combined_frames.read_combined_frames`) and runs
the same detection (:func:`~nirf_overlay.calibration.layout_detect.detect_layout`)
on a worker thread.  It shows the frame with the rectangles drawn and
labelled (:func:`~nirf_overlay.calibration.layout_detect.draw_preview`: WL,
NIR, the tower's overlay and other insets, the boxes to ignore), says when
the detector is unsure and why, and gives every rectangle numeric
``x, y, w, h`` fields; an edit is drawn at once, and a rectangle can also be
dragged on the preview (press inside it and move).  :meth:`LayoutStep.layout`
is what the dialog saves into the profile (``layout`` and ``ignore_rects``,
as ``calibrate layout`` writes them).
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

import numpy as np
from PyQt5.QtCore import QEvent, QObject, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..calibration.layout_detect import Inset, LayoutResult, detect_layout, draw_preview
from ..calibration.model import rect_problem
from ..calibration.profile_schema import layout_problem
from ..errors import NirfError
from ..sources.combined_frames import read_combined_frames

__all__ = ["LayoutStep", "RectFields"]

#: frames read and the span they are spread over: the defaults of ``calibrate layout``
LAYOUT_FRAMES = 8
LAYOUT_SECONDS = 4.0

LAYOUT_HELP = ("Show the tower's usual layout with tissue in view, then find the layout. "
               "Check the rectangles: adjust a number (or drag a rectangle on the picture) "
               "where one is off, then save.")


class RectFields(QWidget):
    """``x, y, w, h`` spin boxes of one rectangle; ``changed`` on every edit."""

    changed = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.boxes = []
        for name in ("x", "y", "w", "h"):
            box = QSpinBox()
            box.setRange(0, 99999)
            box.setPrefix(f"{name} ")
            box.setKeyboardTracking(False)  # one redraw per number typed, not per digit
            box.valueChanged.connect(self.changed)
            self.boxes.append(box)
            row.addWidget(box)

    def rect(self) -> list:
        return [b.value() for b in self.boxes]

    def set_rect(self, rect) -> None:
        for b, v in zip(self.boxes, rect):
            b.blockSignals(True)
            b.setValue(int(v))
            b.blockSignals(False)
        self.changed.emit()

    def set_bounds(self, w: int, h: int) -> None:
        for b, hi in zip(self.boxes, (w - 1, h - 1, w, h)):
            b.setMaximum(hi)


class LayoutStep(QWidget):
    """The controls of the layout step; the dialog shows :attr:`picture` in its preview.

    Parameters
    ----------
    spec : SourceSpec with ``combined`` set
    before_read : called on the GUI thread before frames are read (the dialog
        closes its own reader of a live device there: one device, one reader)
    after_read : called on the GUI thread once the detection has ended
    """

    #: the preview to show changed (:attr:`picture`)
    picture_changed = pyqtSignal()

    def __init__(self, spec, parent=None, *, before_read: Optional[Callable] = None,
                 after_read: Optional[Callable] = None):
        super().__init__(parent)
        self._spec = spec
        self._before, self._after = before_read, after_read
        self.frame: Optional[np.ndarray] = None  # first whole frame read
        self.found: Optional[LayoutResult] = None  # what the detector said
        self.picture: Optional[np.ndarray] = None  # frame with the current rectangles drawn
        self._thread: Optional[threading.Thread] = None
        self._outcome = None  # (frames, result) or NirfError, set by the worker
        self._drag = None  # (fields, press point, rect at press) while dragging
        self._label: Optional[QLabel] = None  # the preview rectangles are dragged on

        self.find_button = QPushButton("Find layout")
        self.find_button.clicked.connect(self.find)
        self.message = QLabel(LAYOUT_HELP)
        self.message.setWordWrap(True)
        self.wl = RectFields()
        self.nir = RectFields()
        self.ignore: list[RectFields] = []
        self._rows: dict = {}  # ignore fields -> the form row that holds them
        self._filled = None  # (wl, nir) as the detector filled them in
        self._form = QFormLayout()
        self._form.addRow("White light", self.wl)
        self._form.addRow("NIR", self.nir)
        self.add_ignore_button = QPushButton("Add ignore box")
        self.add_ignore_button.clicked.connect(lambda: self.add_ignore([0, 0, 40, 20]))
        for f in (self.wl, self.nir):
            f.changed.connect(self._redraw)
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(self.find_button)
        root.addWidget(self.message)
        root.addLayout(self._form)
        root.addWidget(self.add_ignore_button)
        self._set_editable(False)
        self._timer = QTimer(self)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._poll)

    # -- finding -------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._thread is not None

    def find(self) -> None:
        """Read frames and detect the layout on a worker thread (results via the timer)."""
        if self.busy:
            return
        if self._before is not None:
            self._before()
        self._outcome = None
        self.find_button.setEnabled(False)
        self._say(f"reading {LAYOUT_FRAMES} frames of {self._spec.combined} ...")
        self._thread = threading.Thread(target=self._work, name="nirf-layout", daemon=True)
        self._thread.start()
        self._timer.start()

    def _work(self) -> None:
        try:
            frames = read_combined_frames(self._spec.combined, count=LAYOUT_FRAMES,
                                          seconds=LAYOUT_SECONDS, spec=self._spec)
            self._outcome = (frames[0], detect_layout(frames))
        except NirfError as e:
            self._outcome = e
        except Exception as e:  # a bug, but the step must still say something
            self._outcome = NirfError(f"layout: {e.__class__.__name__}: {e}")

    def _poll(self) -> None:
        if self._thread is None or self._thread.is_alive():
            return
        self._thread = None
        self._timer.stop()
        self.find_button.setEnabled(True)
        outcome = self._outcome
        if self._after is not None:
            self._after()
        if isinstance(outcome, NirfError):
            self._say(str(outcome), error=True)
            return
        self.frame, self.found = outcome
        self._fill(self.found)
        if self.found.ok:
            self._say("found: " + "; ".join(i.describe() for i in self.found.insets if i.role)
                      + ". Check the rectangles, then save.")
        else:
            self._say("Unsure: " + "; ".join(self.found.unsure) + ". Set the white-light and "
                      "NIR rectangles yourself (the numbers or drag them), then save.", error=True)

    def wait(self, timeout: float = 10.0) -> None:
        """Wait for a detection under way (the dialog's shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout)
        self._timer.stop()

    # -- the rectangles ------------------------------------------------------------------
    def _fill(self, res: LayoutResult) -> None:
        """The fields from the detector's result; where it chose nothing, its best candidate."""
        w, h = res.frame_size
        for f in (self.wl, self.nir):
            f.set_bounds(w, h)
        for f in list(self.ignore):
            self._remove_ignore(f)

        def candidate(rect, kind):
            if rect is not None:
                return rect
            same = [i.rect for i in res.insets if i.kind == kind]
            return same[0] if same else [0, 0, 1, 1]

        self.wl.set_rect(candidate(res.wl_rect, "wl"))
        self.nir.set_rect(candidate(res.nir_rect, "grey"))
        for r in res.ignore_rects:
            self.add_ignore(r)
        self._filled = (self.wl.rect(), self.nir.rect())
        self._set_editable(True)
        self._redraw()

    def add_ignore(self, rect) -> RectFields:
        """One more box to ignore (WL-inset pixels), with its fields and a remove button."""
        f = RectFields()
        f.set_rect(rect)
        f.changed.connect(self._redraw)
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: self._remove_ignore(f))
        row = QHBoxLayout()
        row.addWidget(f, 1)
        row.addWidget(remove)
        self._rows[f] = row
        self._form.addRow("Ignore (WL px)", row)
        self.ignore.append(f)
        self._redraw()
        return f

    def _remove_ignore(self, f: RectFields) -> None:
        self.ignore.remove(f)
        self._form.removeRow(self._rows.pop(f))  # its label, fields and button with it
        self._redraw()

    def _set_editable(self, on: bool) -> None:
        for w in (self.wl, self.nir, self.add_ignore_button):
            w.setEnabled(on)

    def layout(self) -> tuple[list, list, list]:
        """``(wl_rect, nir_rect, ignore_rects)`` as the fields say (combined-frame pixels;
        the ignore boxes in WL-inset pixels)."""
        return self.wl.rect(), self.nir.rect(), [f.rect() for f in self.ignore]

    def problem(self) -> str:
        """Why the fields are not a layout to save, in one line; "" when they are."""
        if self.found is None:
            return "layout: find the layout first"
        wl, nir, ignore = self.layout()
        if not self.found.ok and (wl, nir) == self._filled:
            return (f"layout: unsure ({'; '.join(self.found.unsure)}); set the white-light and "
                    "NIR rectangles first")
        which, problem = layout_problem(wl, nir, self.found.frame_size)
        if problem:
            return f"layout: {'white light' if which == 'wl_rect' else 'NIR'}: {problem}"
        for i, r in enumerate(ignore):
            problem = rect_problem(r, tuple(wl[2:]))
            if problem:
                return f"layout: ignore {i + 1}: {problem} (white-light inset pixels)"
        return ""

    def current(self) -> Optional[LayoutResult]:
        """The detector's result with the rectangles as the fields now say (what is drawn)."""
        if self.found is None:
            return None
        wl, nir, ignore = self.layout()
        others = [i for i in self.found.insets if not i.role]
        insets = [Inset(wl, "wl", 0.0, 0.0, role="wl"), Inset(nir, "grey", 0.0, 0.0, role="nir"),
                  *others]
        edited = (wl, nir) != self._filled
        return LayoutResult(self.found.frame_size, insets, wl, nir, ignore,
                            [] if edited else list(self.found.unsure))

    def _redraw(self) -> None:
        res = self.current()
        if res is None or self.frame is None:
            return
        self.picture = draw_preview(self.frame, res)
        self.picture_changed.emit()

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #c22;" if error else "")

    # -- dragging on the preview -----------------------------------------------------------
    def attach(self, label: QLabel) -> None:
        """Drag rectangles on ``label``, the preview showing :attr:`picture` scaled to fit."""
        self._label = label
        label.installEventFilter(self)

    def to_frame(self, pos) -> Optional[tuple[float, float]]:
        """Frame pixel under label point ``pos`` (the pixmap is centred, aspect kept)."""
        pix = self._label.pixmap() if self._label is not None else None
        if pix is None or pix.isNull() or self.frame is None:
            return None
        fh, fw = self.frame.shape[:2]
        ox = (self._label.width() - pix.width()) / 2.0
        oy = (self._label.height() - pix.height()) / 2.0
        return (pos.x() - ox) * fw / pix.width(), (pos.y() - oy) * fh / pix.height()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.MouseButtonPress and event.button() == Qt.LeftButton:
            p = self.to_frame(event.pos())
            return p is not None and self.press(*p)
        if kind == QEvent.MouseMove and self._drag is not None:
            p = self.to_frame(event.pos())
            if p is not None:
                self.move(*p)
            return True
        if kind == QEvent.MouseButtonRelease and self._drag is not None:
            self._drag = None
            return True
        return super().eventFilter(obj, event)

    def press(self, x: float, y: float) -> bool:
        """A press at frame pixel (x, y) starts dragging the rectangle under it (NIR
        first: it may sit over the white light); True if one was hit."""
        if self.found is None or not self.wl.isEnabled():
            return False
        for fields in (self.nir, self.wl):
            rx, ry, rw, rh = fields.rect()
            if rx <= x < rx + rw and ry <= y < ry + rh:
                self._drag = (fields, (x, y), (rx, ry, rw, rh))
                return True
        return False

    def move(self, x: float, y: float) -> None:
        """The dragged rectangle follows to frame pixel (x, y), kept inside the frame."""
        fields, (px, py), (rx, ry, rw, rh) = self._drag
        fw, fh = self.found.frame_size
        nx = int(round(min(max(0, rx + x - px), fw - rw)))
        ny = int(round(min(max(0, ry + y - py), fh - rh)))
        fields.set_rect([nx, ny, rw, rh])
