"""A full-window, translucent list of every keyboard shortcut (a view).

Built for the OR: large white text on a dark veil over the video, readable
from a few metres.  F1 or ? toggles it; Esc, any other key or a click closes
it, so it can never trap the user.
"""

from __future__ import annotations

import html
from typing import Iterable, Optional

from PyQt5.QtCore import QEvent, QObject, Qt
from PyQt5.QtGui import QColor, QPainter
from PyQt5.QtWidgets import QLabel, QVBoxLayout, QWidget

from .shortcuts import install_free_shortcuts

__all__ = ["HelpOverlay", "TOGGLE_KEYS"]

#: Keys that toggle the overlay (installed as window shortcuts on the parent).
TOGGLE_KEYS = ("F1", "?")


class HelpOverlay(QWidget):
    """Overlay listing ``shortcuts`` over the whole of ``parent``.

    Parameters
    ----------
    shortcuts : ``[(key, what it does), ...]`` in display order, e.g.
        ``[("Space", "Freeze / unfreeze the picture"), ...]``
    parent : the window to cover; the overlay follows its size
    toggle_keys : keys that toggle the overlay, installed as window
        shortcuts on ``parent`` unless an action or shortcut of that window
        already uses them (the owner's own "help" action then toggles it; two
        bindings of one key would cancel each other out in Qt)
    """

    def __init__(self, shortcuts: list[tuple[str, str]], parent: QWidget,
                 toggle_keys: Iterable[str] = TOGGLE_KEYS):
        if parent is None:
            raise ValueError("HelpOverlay needs the window it covers as parent")
        super().__init__(parent)
        self.setObjectName("help_overlay")
        self.setAttribute(Qt.WA_TransparentForMouseEvents, False)
        self.setFocusPolicy(Qt.StrongFocus)
        self._previous_focus: Optional[QWidget] = None
        self.label = QLabel(self)
        self.label.setObjectName("help_text")
        self.label.setAlignment(Qt.AlignCenter)
        self.label.setTextFormat(Qt.RichText)
        self.label.setAttribute(Qt.WA_TransparentForMouseEvents, True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 24, 24, 24)
        layout.addWidget(self.label)
        self._shortcuts: list[tuple[str, str]] = []
        self.set_shortcuts(shortcuts)
        self.toggle_shortcuts = install_free_shortcuts(
            parent, [(key, self.toggle) for key in toggle_keys], owner=self)
        parent.installEventFilter(self)
        self.hide()

    # -- content -------------------------------------------------------------------
    @property
    def shortcuts(self) -> list[tuple[str, str]]:
        return list(self._shortcuts)

    def set_shortcuts(self, shortcuts: list[tuple[str, str]]) -> None:
        """Replace the list (e.g. when replay controls appear)."""
        cleaned = []
        for item in shortcuts:
            key, what = item
            cleaned.append((str(key), str(what)))
        self._shortcuts = cleaned
        self._render()

    def text(self) -> str:
        """The listing as plain text, one ``key<TAB>description`` a line."""
        return "\n".join(f"{k}\t{w}" for k, w in self._shortcuts)

    def _font_px(self) -> int:
        # As large as the window allows: rows + title + footer must fit in the
        # height, the longest row of each column in the width (a glyph is
        # about 0.6 em wide in the default sans-serif fonts).
        rows = max(1, self._rows_per_column()) + 3
        h = max(200, self.height() or self.parentWidget().height())
        w = max(300, self.width() or self.parentWidget().width())
        columns = 2 if self._two_columns() else 1
        longest = max((len(k) + len(d) for k, d in self._shortcuts), default=10) + 6
        by_height = h / rows * 0.55
        by_width = (w - 60 * columns) / (columns * longest * 0.62)
        return int(max(12, min(36, by_height, by_width)))

    def _rows_per_column(self) -> int:
        n = len(self._shortcuts)
        return (n + 1) // 2 if self._two_columns() else n

    def _two_columns(self) -> bool:
        w = self.width() or self.parentWidget().width()
        return len(self._shortcuts) > 12 and w >= 900

    def _render(self) -> None:
        px = self._font_px()
        items = self._shortcuts
        if self._two_columns():
            half = (len(items) + 1) // 2
            columns = [items[:half], items[half:]]
        else:
            columns = [items]

        def table(rows):
            cells = "".join(
                f"<tr><td align='right' style='padding:2px 18px 2px 6px; color:#ffd84a;"
                f" font-weight:bold; white-space:nowrap'>{html.escape(k)}</td>"
                f"<td style='padding:2px 6px'>{html.escape(w)}</td></tr>"
                for k, w in rows
            )
            return f"<table cellspacing='0'>{cells}</table>"

        body = "".join(f"<td valign='top' style='padding:0 24px'>{table(c)}</td>" for c in columns)
        self.label.setText(
            f"<div style='color:white; font-size:{px}px'>"
            f"<p style='font-size:{int(px * 1.3)}px; font-weight:bold'>Keyboard shortcuts</p>"
            f"<table><tr>{body}</tr></table>"
            f"<p style='font-size:{int(px * 0.75)}px; color:#bbb'>"
            "Press any key or click to close</p></div>"
        )

    # -- showing ---------------------------------------------------------------------
    def toggle(self) -> None:
        if self.isVisible():
            self.close_overlay()
        else:
            self.open_overlay()

    def open_overlay(self) -> None:
        self.setGeometry(self.parentWidget().rect())
        self.show()

    def close_overlay(self) -> None:
        self.hide()

    def showEvent(self, event) -> None:
        # However it is shown (toggle() or the owner's show()), it takes the
        # keyboard so that the next key closes it.
        self._render()
        self.raise_()
        focus = self.parentWidget().window().focusWidget()
        if focus is not self:
            self._previous_focus = focus
        self.setFocus(Qt.OtherFocusReason)
        super().showEvent(event)

    def hideEvent(self, event) -> None:
        previous, self._previous_focus = self._previous_focus, None
        if previous is not None and self.hasFocus():
            try:
                previous.setFocus(Qt.OtherFocusReason)
            except RuntimeError:  # the widget was deleted meanwhile
                pass
        super().hideEvent(event)

    # -- events -----------------------------------------------------------------------
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.parentWidget() and event.type() == QEvent.Resize and self.isVisible():
            self.setGeometry(self.parentWidget().rect())
            self._render()
        return False

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(0, 0, 0, 200))
        p.end()

    def event(self, event) -> bool:
        # While the overlay is up, a key only closes it: claim shortcut keys
        # too, so that e.g. S closes the help instead of taking a snapshot.
        if event.type() == QEvent.ShortcutOverride:
            if event.key() not in (Qt.Key_Shift, Qt.Key_Control, Qt.Key_Alt, Qt.Key_Meta):
                event.accept()
                return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:
        # Any key closes, Esc included; modifiers alone do not (Shift before "?").
        if event.key() in (Qt.Key_Shift, Qt.Key_Control, Qt.Key_Alt, Qt.Key_Meta):
            event.accept()
            return
        self.close_overlay()
        event.accept()

    def mousePressEvent(self, event) -> None:
        self.close_overlay()
        event.accept()

