"""The heads-up display painted over the video (a view: painting only).

Readable from across the operating room: text height scales with the
picture (about 1/28 of its height, at least 14 px) on dark boxes.

Safety marks, decided by :func:`safety_banners` (pure, testable):

- **STALE**: no new frame for more than two frame periods (at least 100 ms).
  The picture is dimmed, hatched and stamped STALE with the age, and the rim
  numbers are hidden, so a stale overlay never looks live.
- **NIR LOST**: the newest pair came without NIR.  The view shows white light
  only (the overlay is not drawn at all) under a red NIR LOST banner.
- **PREPARING**: the analysis kernels are still being compiled (first start
  after installing): white light only, under a blue band that says the
  overlay is not on yet and how far the preparation is.
- **FROZEN** (the user held the picture), **PAUSED** (replay), **END**: the
  picture is not live, so it says so.

Every mark is recomputed from the current state on each repaint, so all of
them clear by themselves when frames flow again.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Callable, Optional

from PyQt5.QtCore import QPointF, QRectF, Qt
from PyQt5.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPen

from ..engine.state import RecordingState
from ..processing.composite import PLANE_LOST_TEXT

STALE_MIN_S = 0.100

# banner kinds, in the order they are stacked
STALE, NIR_LOST, FROZEN, PAUSED, ENDED = "stale", "nir_lost", "frozen", "paused", "ended"
PREPARING = "preparing"

RED = QColor(220, 30, 30)
AMBER = QColor(255, 170, 0)
BLUE = QColor(30, 90, 200)
GREEN = QColor(40, 200, 90)
WHITE = QColor(255, 255, 255)
BOX = QColor(0, 0, 0, 170)


def stale_after(fps: Optional[float]) -> float:
    """Seconds without a new frame after which the picture is stale: max(2 periods, 100 ms)."""
    period = 1.0 / fps if fps and fps > 0 else 1.0 / 30.0
    return max(2.0 * period, STALE_MIN_S)


def safety_banners(*, now: float, last_new_frame: Optional[float], fps: Optional[float],
                   nir_lost: bool, frozen: bool = False, paused: bool = False,
                   ended: bool = False, preparing: bool = False) -> list[str]:
    """Which safety marks the picture needs now (empty = live and complete).

    Parameters
    ----------
    now, last_new_frame : ``time.monotonic()`` seconds; ``last_new_frame`` is when
        the newest frame was put on screen (None = none yet)
    fps : the source's nominal frame rate
    """
    marks = []
    if frozen:
        marks.append(FROZEN)
    elif paused:
        marks.append(PAUSED)
    elif ended:
        marks.append(ENDED)
    elif last_new_frame is None or now - last_new_frame > stale_after(fps):
        marks.append(STALE)
    if nir_lost:
        marks.append(NIR_LOST)
    elif preparing:
        marks.append(PREPARING)
    return marks


def analysis_label(result) -> str:
    """How the rims of ``result`` (a FrameResult) were found, for the HUD: "every
    frame" when analysed before it was shown, "async, N behind" from the analysis
    thread (N frames older than the picture), "async" before any finished."""
    if result.nir_lost:
        return ""
    if result.analysis_mode == "sync":
        return "every frame"
    if result.analysis_index is None:
        return "async"
    return f"async, {max(0, result.index - result.analysis_index)} behind"


@dataclass
class HudState:
    """Everything the HUD shows, as plain values (filled by the main window)."""

    fps: float = 0.0
    latency_ms: Optional[float] = None
    source: str = ""
    source_status: str = ""
    rims: list = field(default_factory=list)  # RimMeasurement, WL coordinates
    rims_drawable: bool = True  # False when the picture is not in WL geometry
    plane_set: bool = False
    plane_flagged: bool = False
    plane_tbr: Optional[float] = None
    nir_signal: str = "linear"  # "display": ratios of display values (FrameResult.nir_signal)
    #: the plane check cannot answer: "" (it can), "lost" (tracking lost, a
    #: cut, left the picture: redraw) or another reason (NIR lost, waiting)
    plane_unknown: str = ""
    #: where the anchored plane is in the frame shown (WL px), None: the drawn one
    plane_polygon: Optional[list] = None
    recording: dict = field(default_factory=dict)  # Engine.recording_status()
    marks: list = field(default_factory=list)
    stale_for: float = 0.0
    message: str = ""  # an error or notice in plain words
    message_is_error: bool = False
    position: str = ""  # replay position text
    #: how the rims shown were found: "every frame" or "async, N behind" ("" = not said)
    analysis: str = ""
    preparing: str = ""  # what is prepared before the overlay starts (the PREPARING band)
    visible: bool = True


def _font(px: float, bold: bool = True) -> QFont:
    f = QFont("DejaVu Sans")
    f.setPixelSize(max(8, int(px)))
    f.setBold(bold)
    return f


def text_size(text: str, px: float) -> tuple[float, float]:
    """Width and height of :func:`text_box`'s box for ``text`` at ``px``."""
    fm = QFontMetricsF(_font(px))
    lines = text.split("\n")
    return (max(fm.horizontalAdvance(s) for s in lines) + px * 0.6,
            fm.height() * len(lines) + px * 0.3)


def inside(box: QRectF, within: QRectF) -> QRectF:
    """``box`` moved (not resized) so that it lies inside ``within`` (its top-left first,
    when it is the larger)."""
    x = max(within.left(), min(box.left(), within.right() - box.width()))
    y = max(within.top(), min(box.top(), within.bottom() - box.height()))
    return QRectF(x, y, box.width(), box.height())


def text_box(p: QPainter, x: float, y: float, text: str, px: float, color=WHITE,
              bg=BOX, align_right: bool = False, within: Optional[QRectF] = None) -> QRectF:
    """Draw ``text`` (may hold newlines) on a dark box with its top-left (or top-right) at x, y.

    ``within``: the picture's rectangle; the box (text and all) is moved inside it.
    """
    font = _font(px)
    w, h = text_size(text, px)
    if align_right:
        x -= w
    box = QRectF(x, y, w, h)
    if within is not None:
        box = inside(box, within)
    p.setPen(Qt.NoPen)
    p.setBrush(bg)
    p.drawRoundedRect(box, px * 0.2, px * 0.2)
    p.setFont(font)
    p.setPen(color)
    p.drawText(box, Qt.AlignCenter, text)
    return box


def paint_hud(p: QPainter, image_rect: QRectF, state: HudState,
              to_view: Callable[[float, float], QPointF]) -> None:
    """Paint the HUD over ``image_rect`` (the picture's rectangle in the widget).

    ``to_view(x, y)`` maps WL pixel coordinates to widget coordinates.
    """
    if image_rect.isEmpty():
        return
    px = max(14.0, image_rect.height() / 28.0)
    p.setRenderHint(QPainter.Antialiasing, True)
    p.setRenderHint(QPainter.TextAntialiasing, True)
    live = STALE not in state.marks and NIR_LOST not in state.marks and PREPARING not in state.marks

    if state.visible and live and state.rims_drawable:
        _paint_rims(p, state.rims, to_view, px * 0.8, image_rect, state.nir_signal)

    if STALE in state.marks:
        _paint_stale(p, image_rect, px, state.stale_for)
    for kind, text, color in ((FROZEN, "FROZEN", AMBER), (PAUSED, "PAUSED", AMBER),
                              (ENDED, "END OF RECORDING", AMBER)):
        if kind in state.marks:
            pen = QPen(color, max(4.0, px / 3))
            p.setPen(pen)
            p.setBrush(Qt.NoBrush)
            p.drawRect(image_rect.adjusted(2, 2, -2, -2))
            text_box(p, image_rect.center().x() - px * 4, image_rect.top() + px * 3, text,
                      px * 1.6, color=QColor(0, 0, 0), bg=color)
    if NIR_LOST in state.marks:
        _top_band(p, image_rect, px * 2.4, RED, px * 1.5,
                  "NIR LOST \u2013 overlay off, white light only")
    if PREPARING in state.marks:
        _top_band(p, image_rect, px * 3.4, BLUE, px * 1.2,
                  "OVERLAY NOT ON YET \u2013 white light only\n"
                  + (state.preparing or "Preparing analysis kernels"))

    if not state.visible:
        return
    band_px = 2.8 if NIR_LOST in state.marks else 3.8 if PREPARING in state.marks else 0.4
    top = image_rect.top() + px * band_px
    left = image_rect.left() + px * 0.4
    lat = "--" if state.latency_ms is None else f"{state.latency_ms:.0f}"
    info = f"{state.fps:4.1f} fps   +{lat} ms"
    if state.source_status and state.source_status != "ok":
        info += f"\n{state.source_status}"
    if state.position:
        info += f"\n{state.position}"
    if state.analysis:
        info += f"\nrims: {state.analysis}"
    text_box(p, left, top, info, px, within=image_rect)

    rec = state.recording or {}
    rstate = rec.get("state", RecordingState.OFF)
    if rstate != RecordingState.OFF:
        secs = rec.get("seconds") or 0.0
        text = {RecordingState.ON: f"REC {int(secs) // 60:02d}:{int(secs) % 60:02d}",
                RecordingState.STARTING: "REC starting",
                RecordingState.STOPPING: "REC saving"}[rstate]
        notw = rec.get("frames_not_written") or 0
        if notw:
            text += f"\n{notw} frames not written"
        right = image_rect.right() - px * 0.4
        box = text_box(p, right, top, "    " + text, px, align_right=True, within=image_rect)
        p.setPen(Qt.NoPen)
        p.setBrush(RED)
        r = px * 0.4
        p.drawEllipse(QPointF(box.left() + px * 0.7, box.top() + box.height() / 2 if "\n" not in text
                              else box.top() + px * 0.75), r, r)

    if state.plane_set:
        if state.plane_unknown and live:  # never "clear" when the check cannot answer
            lost = state.plane_unknown == "lost"
            text_box(p, left, image_rect.bottom() - px * 2.0,
                     PLANE_LOST_TEXT if lost else f"plane unknown ({state.plane_unknown})",
                     px * (1.1 if lost else 0.9), color=AMBER)
        elif state.plane_flagged and live:
            tbr = "" if state.plane_tbr is None else f"  (TBR {state.plane_tbr:.1f}{_of(state)})"
            band = QRectF(image_rect.left(), image_rect.bottom() - px * 2.4,
                          image_rect.width(), px * 2.4)
            p.setPen(Qt.NoPen)
            p.setBrush(RED)
            p.drawRect(band)
            p.setFont(_font(px * 1.3))
            p.setPen(WHITE)
            p.drawText(band, Qt.AlignCenter, f"FLUORESCENCE IN TRANSECTION PLANE{tbr}")
        elif live:
            text_box(p, left, image_rect.bottom() - px * 2.0, "plane clear", px * 0.9, color=GREEN,
                     within=image_rect)

    if state.message:
        color = QColor(255, 120, 120) if state.message_is_error else WHITE
        font_px = px * 0.9
        y = image_rect.bottom() - px * (5.0 if state.plane_set else 2.2)
        text_box(p, left, y, _wrap(state.message, 90), font_px, color=color, within=image_rect)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)[:3]) or text


#: after a ratio of display-encoded values (8-bit NIR without --nir-transfer)
DISPLAY_MARK = " (display values)"


def _of(state: HudState) -> str:
    return DISPLAY_MARK if state.nir_signal == "display" else ""


def rim_label(r, nir_signal: str = "linear") -> str:
    """``TBR 2.4`` / ``1.3 mm  78%`` for one rim (pixels when no mm calibration);
    ``TBR 2.4 (display values)`` when the ratio is of display values."""
    tbr = "TBR --" if r.tbr is None else f"TBR {r.tbr:.1f}"
    if nir_signal == "display":
        tbr += DISPLAY_MARK
    if r.rim_thickness_mm is not None:
        thick = f"{r.rim_thickness_mm:.1f} mm"
    else:
        thick = f"{r.rim_thickness_px:.0f} px"
    comp = f"{100.0 * r.rim_completeness:.0f}%"
    if r.largest_gap_deg > 0:  # where the rim is missing: its longest uncovered arc
        comp += f"  gap {r.largest_gap_deg:.0f}\u00b0"
    return f"{tbr}\n{thick}  {comp}"


def rim_label_box(r, to_view, px: float, within: QRectF, nir_signal: str = "linear") -> QRectF:
    """Where a rim's label goes: right of the rim, else left of it when it does not fit
    there (a rim at the right edge), and always inside the picture ``within``."""
    x, y, w, h = r.bbox
    bw, bh = text_size(rim_label(r, nir_signal), px)
    right = to_view(x + w, r.centroid[1])
    left = to_view(x, r.centroid[1])
    bx = right.x() + px * 0.3
    if bx + bw > within.right() and left.x() - px * 0.3 - bw >= within.left():
        bx = left.x() - px * 0.3 - bw
    return inside(QRectF(bx, right.y() - px, bw, bh), within)


def _paint_rims(p: QPainter, rims, to_view, px: float, within: QRectF,
                nir_signal: str = "linear") -> None:
    for r in rims:
        box = rim_label_box(r, to_view, px, within, nir_signal)
        text_box(p, box.left(), box.top(), rim_label(r, nir_signal), px, within=within)


def _paint_stale(p: QPainter, rect: QRectF, px: float, age: float) -> None:
    p.setPen(Qt.NoPen)
    p.setBrush(QColor(0, 0, 0, 150))
    p.drawRect(rect)
    hatch = QBrush(QColor(255, 170, 0, 90), Qt.BDiagPattern)
    p.setBrush(hatch)
    p.drawRect(rect)
    pen = QPen(AMBER, max(6.0, px / 2))
    p.setPen(pen)
    p.setBrush(Qt.NoBrush)
    p.drawRect(rect.adjusted(3, 3, -3, -3))
    big = _font(min(rect.height() / 4.0, rect.width() / 6.0))
    p.setFont(big)
    p.setPen(AMBER)
    p.drawText(rect, Qt.AlignCenter, "STALE")
    sub = QRectF(rect.left(), rect.center().y() + rect.height() / 7.0, rect.width(), px * 2)
    p.setFont(_font(px * 1.2))
    p.setPen(WHITE)
    p.drawText(sub, Qt.AlignCenter, f"no new frame for {age:.1f} s")


def _top_band(p: QPainter, image_rect, height: float, colour, font_px: float, text: str) -> None:
    """A full-width band of ``colour`` across the top of the picture, ``text`` centred in white."""
    band = QRectF(image_rect.left(), image_rect.top(), image_rect.width(), height)
    p.setPen(Qt.NoPen)
    p.setBrush(colour)
    p.drawRect(band)
    p.setFont(_font(font_px))
    p.setPen(WHITE)
    p.drawText(band, Qt.AlignCenter, text)
