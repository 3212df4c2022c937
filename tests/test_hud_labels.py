"""Everything drawn for a rim stays inside the picture: a rim at any edge of it.

A replayed session whose rim sat at the right edge had its "TBR 2.x / 16 px"
label drawn in the black margin beside the picture (its dark box invisible on
black), half under the settings dock.  The HUD is painted here onto a real
QImage whose margin is one pure colour; after painting, not one margin pixel
may have changed.  The composite's burnt-in plane label likewise stays in the
frame.
"""

from __future__ import annotations

import numpy as np
import pytest
from PyQt5.QtCore import QPointF, QRectF
from PyQt5.QtGui import QColor, QImage, QPainter

from nirf_overlay.gui.app import make_app
from nirf_overlay.gui.hud import HudState, paint_hud, rim_label_box
from nirf_overlay.processing.result import RimMeasurement

W, H = 640, 360  # WL picture
VIEW = (1000, 480)  # widget: margins left and right of the picture
MARGIN = QColor(0, 255, 0)


def _rim(x, y, w=60, h=60, tbr=2.4, px=16.0):
    return RimMeasurement(rim_id=1, target_intensity=100.0, background_intensity=40.0, tbr=tbr,
                          contrast=tbr - 1, rim_thickness_px=px, rim_thickness_mm=None,
                          rim_completeness=0.8, rim_area_px=900.0, rim_area_mm2=None,
                          core_area_px=1200.0, core_area_mm2=None,
                          centroid=(x + w / 2, y + h / 2), bbox=(x, y, w, h))


EDGES = {
    "right": _rim(W - 60, 150),
    "left": _rim(0, 150),
    "top": _rim(300, 0),
    "bottom": _rim(300, H - 60),
    "bottom-right corner": _rim(W - 40, H - 40, 40, 40),
    "top-left corner": _rim(0, 0, 40, 40),
}


_APP = []  # the QApplication must outlive every painter


def _paint(rims):
    if not _APP:
        _APP.append(make_app())
    img = QImage(VIEW[0], VIEW[1], QImage.Format_RGB32)
    img.fill(MARGIN)
    scale = min(VIEW[0] / W, VIEW[1] / H)
    rect = QRectF((VIEW[0] - W * scale) / 2, (VIEW[1] - H * scale) / 2, W * scale, H * scale)
    p = QPainter(img)
    p.fillRect(rect, QColor(90, 40, 30))  # the picture

    def to_view(x, y):
        return QPointF(rect.left() + x * scale, rect.top() + y * scale)

    state = HudState(rims=rims, fps=30.0, source="sample", message="a notice " * 20,
                     recording={"state": "on", "seconds": 12.0})
    paint_hud(p, rect, state, to_view)
    p.end()
    ptr = img.constBits()
    ptr.setsize(img.byteCount())
    arr = np.frombuffer(ptr, np.uint8).reshape(VIEW[1], img.bytesPerLine() // 4, 4)[:, :VIEW[0], :3]
    return arr.copy(), rect, to_view, scale


def _margin_changed(arr, rect) -> int:
    inside = np.zeros(arr.shape[:2], bool)
    inside[int(rect.top()):int(np.ceil(rect.bottom())), int(rect.left()):int(np.ceil(rect.right()))] = True
    bgr_green = np.array([0, 255, 0], np.uint8)  # Format_RGB32 is B, G, R, A in memory
    changed = np.any(arr != bgr_green, axis=2) & ~inside
    return int(changed.sum())


@pytest.mark.parametrize("edge", list(EDGES))
def test_a_rim_label_at_any_edge_stays_inside_the_picture_with_its_box(edge):
    arr, rect, to_view, scale = _paint([EDGES[edge]])
    assert _margin_changed(arr, rect) == 0
    px = max(14.0, rect.height() / 28.0) * 0.8
    box = rim_label_box(EDGES[edge], to_view, px, rect)
    assert rect.contains(box), (edge, box, rect)


def test_a_label_that_does_not_fit_right_of_its_rim_goes_to_its_left():
    arr, rect, to_view, scale = _paint([EDGES["right"]])
    px = max(14.0, rect.height() / 28.0) * 0.8
    box = rim_label_box(EDGES["right"], to_view, px, rect)
    x, y, w, h = EDGES["right"].bbox
    assert box.right() <= to_view(x, 0).x()  # beside the rim, not over it


def test_the_burnt_in_plane_label_stays_in_the_frame():
    from nirf_overlay.processing.composite import _label

    img = np.zeros((H, W, 3), np.uint8)
    _label(img, "FLUORESCENCE IN PLANE  TBR 2.4", (0, 0, 255), org=(W - 20, 5))
    cols = np.flatnonzero(img.any(axis=(0, 2)))
    rows = np.flatnonzero(img.any(axis=(1, 2)))
    assert cols.size and cols.max() < W - 1 and cols.min() > 0 and rows.min() > 0
    assert cols.max() - cols.min() > 150  # the whole text, not a clipped end
