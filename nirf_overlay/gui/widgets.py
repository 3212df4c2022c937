"""Small shared Qt widgets (views): range-checked spin boxes, a painted histogram.

The spin boxes refuse out-of-range typed input *in place*: the box keeps the
last valid value, turns red and says why in its tooltip and through
:attr:`CheckedDoubleSpinBox.refused`, so a panel can show the reason in its
status line.  Nothing here touches the settings model; the panel does.
"""

from __future__ import annotations

import math
import re
from typing import Optional

import numpy as np
from PyQt5.QtCore import QLocale, QPointF, QRectF, QSize, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QFont, QPainter, QPainterPath, QPen, QValidator
from PyQt5.QtWidgets import QDoubleSpinBox, QLineEdit, QSizePolicy, QSpinBox, QWidget

__all__ = [
    "CheckedDoubleSpinBox",
    "CheckedSpinBox",
    "NumberListEdit",
    "HistogramWidget",
    "nice_step",
    "decimals_for",
    "REFUSED_STYLE",
]

# A red frame is the one cue every platform style keeps for "this input is wrong".
REFUSED_STYLE = "border: 2px solid #d22; background: #fee;"


def nice_step(lo: float, hi: float) -> float:
    """A 1-2-5 step of about 1/100 of the range ``lo..hi`` (arrow-key increment)."""
    span = float(hi) - float(lo)
    if not math.isfinite(span) or span <= 0:
        return 1.0
    raw = span / 100.0
    exp = math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10**exp >= raw:
            return m * 10**exp
    return 10.0 ** (exp + 1)  # pragma: no cover - loop always returns


def decimals_for(*values: float, at_least: int = 1, at_most: int = 6) -> int:
    """Fewest decimals that show every value in ``values`` exactly (within 1e-9)."""
    for d in range(at_least, at_most + 1):
        if all(abs(round(v, d) - v) < 1e-9 for v in values if v is not None):
            return d
    return at_most


class _RefusingMixin:
    """Shared logic: let any number be typed, refuse out-of-range ones on commit.

    Qt's own spin box silently swallows a keystroke that would leave the range,
    so the user never learns why "25" cannot be typed.  Here typing is free; on
    Enter or focus-out an out-of-range number is refused: the box reverts to
    the last valid value (Qt's ``CorrectToPreviousValue``), turns red and
    explains itself until the next valid input.
    """

    # Subclasses declare ``refused = pyqtSignal(str)``: the reason in words, "" when
    # accepted again (PyQt only binds signals declared on QObject subclasses).

    def _init_refusing(self, unit: str) -> None:
        self._unit = unit
        self._typed: Optional[str] = None  # text the user typed since the last commit
        self._reason = ""
        self.setLocale(QLocale.c())  # "." decimal point whatever the OS locale
        self.setKeyboardTracking(False)  # apply on Enter/focus-out, not per keystroke
        self.setCorrectionMode(self.CorrectToPreviousValue)
        self.setAccelerated(True)
        self.lineEdit().textEdited.connect(self._on_text_edited)
        self.editingFinished.connect(self._on_editing_finished)
        self.valueChanged.connect(self._on_value_changed)

    # -- Qt validation hooks ---------------------------------------------------
    def validate(self, text: str, pos: int):
        stripped = text.strip()
        if stripped in ("", "-", "+", ".", "-.", "+."):
            return QValidator.Intermediate, text, pos
        number = self._parse(stripped)
        if number is None:
            return QValidator.Invalid, text, pos  # letters: refuse the keystroke
        if not (self.minimum() <= number <= self.maximum()):
            return QValidator.Intermediate, text, pos  # typed freely, refused on commit
        return super().validate(text, pos)

    def _parse(self, text: str):
        raise NotImplementedError

    def _fmt(self, value) -> str:
        raise NotImplementedError

    # -- refusal bookkeeping -----------------------------------------------------
    @property
    def reason(self) -> str:
        """Why the last typed input was refused, or ``""``."""
        return self._reason

    def _on_text_edited(self, text: str) -> None:
        self._typed = text

    def _on_editing_finished(self) -> None:
        typed, self._typed = self._typed, None
        if typed is None:
            return
        number = self._parse(typed.strip())
        if number is None:
            self._set_reason(f"{typed.strip() or 'empty'} is not a number")
        elif not (self.minimum() <= number <= self.maximum()):
            unit = f" {self._unit}" if self._unit else ""
            self._set_reason(
                f"{self._fmt(number)} is outside {self._fmt(self.minimum())}.."
                f"{self._fmt(self.maximum())}{unit}; kept {self._fmt(self.value())}"
            )
        else:
            self._set_reason("")

    def _on_value_changed(self, _value) -> None:
        if self._reason and self._typed is None:
            self._set_reason("")

    def _set_reason(self, reason: str) -> None:
        if reason == self._reason:
            return
        self._reason = reason
        self.setStyleSheet(REFUSED_STYLE if reason else "")
        self.setToolTip(f"Refused: {reason}\n\n{self._help}" if reason else self._help)
        self.refused.emit(reason)

    def set_help(self, text: str) -> None:
        """Tooltip shown while the input is valid."""
        self._help = text
        if not self._reason:
            self.setToolTip(text)

    def clear_refusal(self) -> None:
        self._typed = None
        self._set_reason("")


class CheckedDoubleSpinBox(_RefusingMixin, QDoubleSpinBox):
    """A float spin box for ``lo..hi`` that refuses out-of-range input visibly.

    Parameters
    ----------
    lo, hi : allowed range, inclusive
    value : initial value
    unit : shown in refusal messages (the panel shows it beside the box)
    """

    refused = pyqtSignal(str)

    def __init__(self, lo: float, hi: float, value: float, *, unit: str = "", help: str = "",
                 parent=None):
        super().__init__(parent)
        self._help = help
        step = nice_step(lo, hi)
        self.setDecimals(decimals_for(lo, hi, value, step, at_least=2))
        self.setRange(float(lo), float(hi))
        self.setSingleStep(step)
        self.setValue(float(value))
        self._init_refusing(unit)
        self.setToolTip(help)

    def show_value(self, value: float) -> None:
        """Show a model value as it is, clearing any refusal.

        A preset may hold more decimals than the box shows; they are shown
        rather than the number rounded on screen.
        """
        needed = decimals_for(value, at_least=self.decimals(), at_most=6)
        if needed > self.decimals():
            self.setDecimals(needed)
        self.setValue(value)
        self.clear_refusal()

    def _parse(self, text: str):
        try:
            v = float(text)
        except ValueError:
            return None
        return v if math.isfinite(v) else None

    def _fmt(self, value) -> str:
        return f"{value:g}"


class CheckedSpinBox(_RefusingMixin, QSpinBox):
    """The integer counterpart of :class:`CheckedDoubleSpinBox`."""

    refused = pyqtSignal(str)

    def __init__(self, lo: int, hi: int, value: int, *, unit: str = "", help: str = "",
                 parent=None):
        super().__init__(parent)
        self._help = help
        self.setRange(int(lo), int(hi))
        self.setSingleStep(max(1, int(nice_step(lo, hi))))
        self.setValue(int(value))
        self._init_refusing(unit)
        self.setToolTip(help)

    def show_value(self, value: int) -> None:
        """Show a model value, clearing any refusal."""
        self.setValue(int(value))
        self.clear_refusal()

    def _parse(self, text: str):
        try:
            return int(text)
        except ValueError:
            return None

    def _fmt(self, value) -> str:
        return str(int(value))


class NumberListEdit(QLineEdit):
    """A line edit for a short list of numbers, e.g. a rectangle ``x, y, w, h``.

    Emits :attr:`edited` with the parsed list (``[]`` for an empty box) when
    the user presses Enter or leaves the box.  Text that is not a list of
    numbers is refused in place (red, reason in the tooltip, :attr:`refused`),
    and so is a list the owner's model rejects (:meth:`refuse`); the owner then
    shows the last valid value again with :meth:`set_value`.
    """

    edited = pyqtSignal(object)
    refused = pyqtSignal(str)

    def __init__(self, value=(), *, placeholder: str = "", help: str = "", parent=None):
        super().__init__(parent)
        self._help = help
        self._reason = ""
        self._shown: list = []
        self.setPlaceholderText(placeholder)
        self.set_value(value)
        self.setToolTip(help)
        self.editingFinished.connect(self._on_editing_finished)

    @property
    def reason(self) -> str:
        return self._reason

    def set_help(self, text: str) -> None:
        self._help = text
        if not self._reason:
            self.setToolTip(text)

    def set_value(self, value) -> None:
        self._shown = [float(v) for v in value]
        self.setText(", ".join(f"{v:g}" for v in self._shown))

    def value(self) -> list:
        return list(self._shown)

    def show_value(self, value) -> None:
        """Show a model value, clearing any refusal."""
        self.set_value(value)
        self.clear_refusal()

    def refuse(self, reason: str) -> None:
        """Mark the box refused with ``reason`` (its text stays so the user can fix it)."""
        self._reason = reason
        self.setStyleSheet(REFUSED_STYLE if reason else "")
        self.setToolTip(f"Refused: {reason}\n\n{self._help}" if reason else self._help)
        self.refused.emit(reason)

    def clear_refusal(self) -> None:
        if self._reason:
            self.refuse("")

    def _on_editing_finished(self) -> None:
        text = self.text().strip().strip("[]()")
        parts = [p for p in re.split(r"[,\s;]+", text) if p]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            self.refuse(f"{self.text().strip()!r} is not a list of numbers")
            return
        if not all(math.isfinite(v) for v in numbers):
            self.refuse(f"{self.text().strip()!r} contains a number that is not finite")
            return
        if numbers == self._shown and not self._reason:
            return
        self.clear_refusal()
        self.edited.emit(numbers)


class HistogramWidget(QWidget):
    """A small painted histogram of NIR intensity with the threshold marked.

    Feed it with :meth:`set_histogram`; it repaints on the next paint event
    and never computes anything itself, so the GUI thread only draws.  Counts
    are drawn on a log scale by default because the liver background outnumbers
    the rim pixels by orders of magnitude.
    """

    def __init__(self, parent=None, *, log_counts: bool = True, x_label: str = ""):
        super().__init__(parent)
        self._hist: Optional[np.ndarray] = None
        self._lo = 0.0
        self._hi = 1.0
        self._threshold: Optional[float] = None
        self._markers: list[tuple[float, str]] = []
        self._log = log_counts
        self._x_label = x_label
        self.setMinimumSize(120, 90)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.setToolTip(
            "How many pixels have each intensity. The red line is the fluorescence "
            "threshold: pixels to its right count as fluorescent."
        )

    def sizeHint(self) -> QSize:
        return QSize(240, 110)

    # -- data ------------------------------------------------------------------
    def set_histogram(self, hist: np.ndarray, lo: float, hi: float,
                      threshold: Optional[float] = None, *, x_label: Optional[str] = None,
                      markers: Optional[list[tuple[float, str]]] = None) -> None:
        """Show ``hist`` (N,) counts of equal bins spanning ``lo..hi``.

        Parameters
        ----------
        hist : (N,) counts per bin, any real dtype, N >= 1
        lo, hi : value at the left edge of the first bin and the right edge
            of the last, in the x unit (e.g. normalised counts or x background)
        threshold : where the fluorescence threshold lies on that axis, or None
        x_label : axis caption, e.g. "x background"
        markers : further labelled lines, e.g. ``[(1.28, "hysteresis")]``
        """
        hist = np.asarray(hist, dtype=np.float64).ravel()
        if hist.size == 0 or not np.all(np.isfinite(hist)):
            raise ValueError("hist: expected a non-empty array of finite counts")
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"histogram range {lo}..{hi}: expected finite lo < hi")
        self._hist = np.maximum(hist, 0.0)
        self._lo, self._hi = float(lo), float(hi)
        self._threshold = None if threshold is None else float(threshold)
        if x_label is not None:
            self._x_label = x_label
        self._markers = list(markers or [])
        self.update()

    def clear(self) -> None:
        self._hist = None
        self.update()

    @property
    def threshold(self) -> Optional[float]:
        return self._threshold

    @property
    def markers(self) -> list[tuple[float, str]]:
        return list(self._markers)

    # -- painting ------------------------------------------------------------------
    def _x_to_px(self, x: float, plot: QRectF) -> float:
        return plot.left() + (x - self._lo) / (self._hi - self._lo) * plot.width()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing, True)
        p.fillRect(self.rect(), QColor(24, 24, 28))
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        p.setFont(font)
        fm = p.fontMetrics()
        text_h = fm.height()
        plot = QRectF(4, 4, self.width() - 8, self.height() - 8 - text_h)
        p.setPen(QPen(QColor(90, 90, 100), 1))
        p.drawRect(plot)
        if self._hist is None or plot.width() < 4 or plot.height() < 4:
            p.setPen(QColor(160, 160, 170))
            p.drawText(plot, Qt.AlignCenter, "no NIR histogram yet")
            p.end()
            return
        counts = np.log1p(self._hist) if self._log else self._hist
        top = float(counts.max()) or 1.0
        n = counts.size
        path = QPainterPath(QPointF(plot.left(), plot.bottom()))
        for i, c in enumerate(counts):
            y = plot.bottom() - c / top * plot.height()
            path.lineTo(plot.left() + i / n * plot.width(), y)
            path.lineTo(plot.left() + (i + 1) / n * plot.width(), y)
        path.lineTo(plot.right(), plot.bottom())
        path.closeSubpath()
        p.setPen(Qt.NoPen)
        p.setBrush(QColor(80, 200, 120, 200))
        p.drawPath(path)
        for x, label in self._markers:
            self._draw_line(p, plot, x, QColor(240, 200, 60), label, Qt.DashLine)
        if self._threshold is not None:
            self._draw_line(p, plot, self._threshold, QColor(235, 60, 60), "threshold", Qt.SolidLine)
        p.setPen(QColor(190, 190, 200))
        bottom = QRectF(plot.left(), plot.bottom() + 1, plot.width(), text_h)
        p.drawText(bottom, Qt.AlignLeft | Qt.AlignVCenter, _fmt_num(self._lo))
        p.drawText(bottom, Qt.AlignRight | Qt.AlignVCenter, _fmt_num(self._hi))
        if self._x_label:
            p.drawText(bottom, Qt.AlignHCenter | Qt.AlignVCenter, self._x_label)
        p.end()

    def _draw_line(self, p: QPainter, plot: QRectF, x: float, color: QColor, label: str,
                   style) -> None:
        if not (self._lo <= x <= self._hi):
            # Off the axis: an arrow at the edge says which side it is on.
            edge = plot.right() - 2 if x > self._hi else plot.left() + 2
            p.setPen(QPen(color, 2, style))
            p.drawLine(QPointF(edge, plot.top()), QPointF(edge, plot.bottom()))
            p.drawText(QRectF(plot.left() + 4, plot.top() + 2, plot.width() - 8, 16),
                       Qt.AlignRight if x > self._hi else Qt.AlignLeft,
                       f"{label} {_fmt_num(x)} {'>' if x > self._hi else '<'}")
            return
        px = self._x_to_px(x, plot)
        p.setPen(QPen(color, 2, style))
        p.drawLine(QPointF(px, plot.top()), QPointF(px, plot.bottom()))
        text = _fmt_num(x) if label == "threshold" else f"{label} {_fmt_num(x)}"
        width = p.fontMetrics().horizontalAdvance(text)
        # Labels of the levels sit lower than the threshold's so they do not collide.
        y = plot.top() + (12 if label == "threshold" else 24 + 12 * (label == "white"))
        left = px + 3 if px + 3 + width <= plot.right() else px - 3 - width
        p.drawText(QPointF(max(plot.left() + 1, left), y), text)


def _fmt_num(x: float) -> str:
    """Short axis text: whole numbers from 100 up (counts), 3 significant digits below."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"
