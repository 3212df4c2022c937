"""The video view: paints the newest frame scaled to fit, with the HUD on top (a view).

Painting without needless copies: the composite (``(H, W, 3) uint8 BGR``)
is wrapped in a ``QImage.Format_BGR888`` that points at the numpy buffer; the
view keeps a reference to the array for as long as the QImage is painted
(a held picture, see :meth:`VideoView.hold`, is copied once), and
Qt scales it straight into the backing store (nearest neighbour: ~2 ms for
1080p or 4K into a 1280x720 window on one core).  Nothing is queued: the main
window's timer hands over only the newest frame and :meth:`show_frame`
replaces the previous one, so a slow paint can never make frames pile up.

After each paint that put a new frame on screen, ``on_painted(frame, t)`` is
called with ``t = time.monotonic()``, so latency is measured after the paint.

The committed transection-plane polygon and the display mode come from the
:class:`~nirf_overlay.gui.settings_model.SettingsModel` (the view follows its
``changed`` signal).  With drawing on, clicks add points (in WL pixel
coordinates), double-click or Enter closes the polygon and
:attr:`VideoView.plane_drawn` hands it to the owner, which sets the model;
Esc cancels.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np
from PyQt5.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QImage, QPainter, QPen, QPolygonF
from PyQt5.QtWidgets import QSizePolicy, QWidget

from ..settings import display_mode
from .hud import HudState, paint_hud, text_box
from .settings_model import SettingsModel

__all__ = ["VideoView", "fit_rect"]


def fit_rect(w: int, h: int, area: QRectF) -> QRectF:
    """The largest rectangle of aspect ``w:h`` centred in ``area`` (whole pixels)."""
    if w <= 0 or h <= 0 or area.width() <= 0 or area.height() <= 0:
        return QRectF()
    scale = min(area.width() / w, area.height() / h)
    sw, sh = round(w * scale), round(h * scale)
    x = area.left() + (area.width() - sw) // 2
    y = area.top() + (area.height() - sh) // 2
    return QRectF(x, y, sw, sh)


def _wrap_bgr(arr: np.ndarray) -> tuple[np.ndarray, QImage]:
    """A QImage over ``arr`` (copied only if it is not C-contiguous)."""
    if arr.ndim == 2:  # monochrome picture
        arr = np.ascontiguousarray(arr)
        h, w = arr.shape
        return arr, QImage(arr.data, w, h, arr.strides[0], QImage.Format_Grayscale8)
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    return arr, QImage(arr.data, w, h, arr.strides[0], QImage.Format_BGR888)


class VideoView(QWidget):
    """Paints one frame (or an A/B pair side by side) with the HUD and the plane polygon.

    Parameters
    ----------
    model : the viewer's settings; the view follows ``plane.polygon`` and ``display.mode``
    parent : the main window

    Signals
    -------
    plane_drawn(list) : ``[[x, y], ...]`` WL pixels of a polygon the user closed
    """

    plane_drawn = pyqtSignal(list)

    def __init__(self, model: SettingsModel, parent=None):
        super().__init__(parent)
        self.setAttribute(Qt.WA_OpaquePaintEvent, True)
        self.setAttribute(Qt.WA_NoSystemBackground, True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(320, 180)
        self.frame = None  # the DisplayFrame on screen
        self._arrays: list = []  # numpy buffers the QImages point into (kept alive)
        self._qimages: list = []
        self._wl_size = (0, 0)
        self._painted_seq = -1
        self.on_painted: Optional[Callable] = None
        self.hud = HudState()
        self.ab_labels = ("A", "B")
        self.plane: list = []  # committed polygon, WL pixels (the model's)
        self._split = False  # the display mode puts two views in one picture
        self._draft: Optional[list] = None  # polygon being drawn
        self._hover: Optional[QPointF] = None
        for name in ("plane.polygon", "display.mode"):
            self._on_setting_changed(name, model.get(name))
        model.changed.connect(self._on_setting_changed)

    def _on_setting_changed(self, name: str, value) -> None:
        if name == "plane.polygon":
            self.plane = value
            self.hud.plane_set = len(value) >= 3
            self.update()
        elif name == "display.mode":
            self._split = display_mode(value).split

    # -- frames -------------------------------------------------------------------
    def show_frame(self, frame, image: np.ndarray, image_b: Optional[np.ndarray] = None, *,
                   now: bool = False) -> None:
        """Put ``image`` (and ``image_b`` beside it) on screen.

        ``frame`` is the :class:`~nirf_overlay.engine.DisplayFrame` the images
        belong to; ``image`` is ``(h, w, 3) uint8`` BGR (usually the composite).
        ``now``: paint at once (the caller is the display timer) instead of at
        the next pass of the event loop.
        """
        arrays, qimages = [], []
        for arr in (image, image_b):
            if arr is None:
                continue
            a, q = _wrap_bgr(arr)
            arrays.append(a)
            qimages.append(q)
        self.frame = frame
        self._arrays, self._qimages = arrays, qimages
        self._wl_size = frame.pair.size
        # rim labels sit at WL coordinates: only on a single picture in WL geometry
        self.hud.rims_drawable = (image_b is None and not self._split
                                  and image.shape[:2] == frame.pair.wl.shape[:2])
        if now and self.isVisible():
            self.repaint()
        else:
            self.update()

    @property
    def frame_painted(self) -> bool:
        """The frame handed over last has been painted (False: none, or not yet)."""
        return self.frame is not None and self._painted_seq == self.frame.seq

    @property
    def picture(self) -> Optional[np.ndarray]:
        """The (first) picture on screen as handed over, ``(h, w, 3) uint8`` BGR, or None."""
        return self._arrays[0] if self._arrays else None

    def hold(self) -> None:
        """Copy the pictures on screen so they can be held (freeze).

        The pipeline composes into a small ring of buffers that it reuses a
        few frames later; a picture shown for longer than that must own its
        pixels, or a frozen picture would silently change.
        """
        self._arrays = [a.copy() for a in self._arrays]
        self._qimages = [_wrap_bgr(a)[1] for a in self._arrays]
        self.update()

    def image_rects(self) -> list[QRectF]:
        """Where each picture is painted, in widget coordinates."""
        area = QRectF(self.rect())
        if not self._qimages:
            return []
        if len(self._qimages) == 1:
            q = self._qimages[0]
            return [fit_rect(q.width(), q.height(), area)]
        half = area.width() / 2
        rects = []
        for i, q in enumerate(self._qimages):
            sub = QRectF(area.left() + i * half, area.top(), half, area.height())
            rects.append(fit_rect(q.width(), q.height(), sub))
        return rects

    def wl_to_view(self, x: float, y: float) -> QPointF:
        rects = self.image_rects()
        w, h = self._wl_size
        if not rects or not w:
            return QPointF(x, y)
        r = rects[0]
        return QPointF(r.left() + x * r.width() / w, r.top() + y * r.height() / h)

    def view_to_wl(self, pos: QPointF) -> Optional[tuple[float, float]]:
        rects = self.image_rects()
        w, h = self._wl_size
        if not rects or not w:
            return None
        r = rects[0]
        if not r.contains(pos):
            return None
        return ((pos.x() - r.left()) * w / r.width(), (pos.y() - r.top()) * h / r.height())

    # -- painting -------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.black)
        rects = self.image_rects()
        for r, q in zip(rects, self._qimages):
            p.drawImage(r, q)
        if len(rects) == 2:  # A/B: say which is which
            for r, label in zip(rects, self.ab_labels):
                px = max(14.0, r.height() / 28.0)
                text_box(p, r.left() + px * 0.4, r.bottom() - px * 2.2, label, px)
        if rects:
            self._paint_plane(p)
            paint_hud(p, rects[0] if len(rects) == 1 else rects[0].united(rects[-1]),
                      self.hud, self.wl_to_view)
        elif self.hud.message:
            p.setPen(Qt.white)
            p.drawText(QRectF(self.rect()), Qt.AlignCenter | Qt.TextWordWrap, self.hud.message)
        p.end()
        frame = self.frame
        if frame is not None and frame.seq != self._painted_seq:
            self._painted_seq = frame.seq
            if self.on_painted is not None:
                self.on_painted(frame, time.monotonic())

    def _paint_plane(self, p: QPainter) -> None:
        p.setRenderHint(QPainter.Antialiasing, True)
        if (len(self.plane) >= 3 or self.hud.plane_polygon is not None) and self._draft is None:
            # where the plane is in this frame (it follows the tissue); grey when lost
            where = self.hud.plane_polygon if self.hud.plane_polygon is not None else self.plane
            poly = QPolygonF([self.wl_to_view(x, y) for x, y in where])
            lost = self.hud.plane_unknown == "lost"
            pen = QPen(QColor(150, 150, 150) if lost else QColor(0, 220, 255), 2 if lost else 3,
                       Qt.DotLine if lost else Qt.DashLine)
            p.setPen(pen)
            p.setBrush(Qt.NoBrush)
            p.drawPolygon(poly)
        if self._draft is not None:
            pts = [self.wl_to_view(x, y) for x, y in self._draft]
            if self._hover is not None:
                pts.append(self._hover)
            p.setPen(QPen(QColor(255, 230, 0), 3))
            p.setBrush(Qt.NoBrush)
            if len(pts) > 1:
                p.drawPolyline(QPolygonF(pts))
            p.setBrush(QColor(255, 230, 0))
            for pt in pts[: len(self._draft)]:
                p.drawEllipse(pt, 5, 5)

    # -- plane polygon ----------------------------------------------------------------
    @property
    def drawing(self) -> bool:
        return self._draft is not None

    def start_drawing(self) -> None:
        self._draft = []
        self.setCursor(Qt.CrossCursor)
        self.setFocus()
        self.update()

    def cancel_drawing(self) -> None:
        self._draft = None
        self._hover = None
        self.unsetCursor()
        self.update()

    def finish_drawing(self) -> bool:
        """Close the polygon; True if it had at least 3 points and was handed over."""
        pts = self._draft or []
        self.cancel_drawing()
        if len(pts) < 3:
            return False
        self.plane_drawn.emit([[round(x, 1), round(y, 1)] for x, y in pts])
        return True

    def add_point(self, pos: QPointF) -> bool:
        wl = self.view_to_wl(pos)
        if self._draft is None or wl is None:
            return False
        self._draft.append(wl)
        self.update()
        return True

    def mousePressEvent(self, event) -> None:
        if self._draft is not None and event.button() == Qt.LeftButton:
            self.add_point(QPointF(event.pos()))
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:
        if self._draft is not None and event.button() == Qt.LeftButton:
            # the press before the double-click already added this point
            self.finish_drawing()
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._draft is not None:
            self._hover = QPointF(event.pos())
            self.update()
        super().mouseMoveEvent(event)

    def keyPressEvent(self, event) -> None:
        if self._draft is not None:
            if event.key() in (Qt.Key_Return, Qt.Key_Enter):
                self.finish_drawing()
                return
            if event.key() == Qt.Key_Escape:
                self.cancel_drawing()
                return
        super().keyPressEvent(event)
