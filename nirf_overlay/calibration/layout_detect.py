"""Finding a tower's insets in its combined frames: which is white light, which NIR.

A laparoscopy tower lays its views out as image rectangles on a dark
surround.  :func:`detect_layout` takes a few combined frames (BGR uint8) and

1. finds the rectangles: pixels brighter than the surround in any of the
   frames, opened so that thin strokes (on-screen text) vanish, as connected
   regions whose box they mostly fill; each edge is then placed where the
   region's profile crosses half (robust to noise and H.264 blur);
2. tells each inset's kind from its colour statistics (:func:`inset_colour`):
   ``grey`` (a monochrome NIR view: almost no chroma), ``wl`` (tissue colour:
   most chromatic pixels red-orange-brown), ``overlay`` (colour that is not
   tissue: a green or pseudocolour map over a grey or dark base);
3. picks the white light (the one ``wl`` inset) and the NIR (the largest grey
   inset of the white light's aspect ratio), and where that is not clear says
   why (:attr:`LayoutResult.unsure`);
4. proposes ``ignore_rects`` (white-light-inset pixels) where static bright
   thin text sits inside the WL or NIR inset, and where another inset covers
   part of the white light (a picture-in-picture).

The NIR inset is mapped onto the WL inset by scaling (its rectangle onto the
WL rectangle), as the combined source maps it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import cv2
import numpy as np

from ..errors import CalibrationError

#: an inset is at least this fraction of the frame's shorter side on each side
MIN_INSET_SIDE = 0.12
#: opening kernel as a fraction of the frame height: strokes thinner than this
#: (on-screen text: 2-4 px at 720p) are not part of any inset
TEXT_STROKE = 0.012
#: a region fills at least this fraction of its bounding box to be a rectangle
MIN_FILL = 0.85
#: above the surround by this many 8-bit levels (and 5 MADs of its noise)
SURROUND_MARGIN = 10
#: chroma (max - min channel, 8-bit) from which a pixel counts as coloured
CHROMA = 24
#: a grey view has at most this fraction of coloured pixels
GREY_MAX_COLOURED = 0.02
#: white light: at least this fraction of coloured pixels, most of them tissue hue
WL_MIN_COLOURED = 0.25
WL_MIN_TISSUE = 0.6
#: OpenCV hue (0..180) of tissue: red, orange, brown, pink
_TISSUE_HUE = ((0, 25), (160, 180))
#: two insets of one scene: aspect ratios (w/h) agree within this fraction
ASPECT_TOLERANCE = 0.04
#: text: white (every channel at least this) in every frame
TEXT_WHITE = 230
#: text strokes: no pixel farther than this (fraction of the frame height) from
#: the stroke's edge; letters closer than TEXT_LETTER_GAP make one word
TEXT_HALF_STROKE = 0.006
TEXT_LETTER_GAP = 0.02
#: on-screen text is at least this tall (fraction of the frame height: 6 px at 720p)
TEXT_MIN_HEIGHT = 0.008
#: ... and within this many levels of itself in every frame
TEXT_STEADY = 40

CUSTOM_HINT = "--layout custom --wl-rect X,Y,W,H --nir-rect X,Y,W,H"


@dataclass
class Inset:
    """One image rectangle of the combined frame: ``rect`` ``[x, y, w, h]``, its
    ``kind`` (``wl``, ``grey``, ``overlay``) and the colour figures it was told by."""

    rect: list
    kind: str
    coloured: float  # fraction of pixels with chroma >= CHROMA
    tissue: float  # fraction of coloured pixels of tissue hue
    role: str = ""  # "wl", "nir" or "" (not used)

    def describe(self) -> str:
        x, y, w, h = self.rect
        what = {"wl": "white light", "nir": "NIR"}.get(self.role, f"not used ({self.kind})")
        return (f"{w}x{h} at {x},{y}: {self.kind} (coloured {self.coloured:.0%}, tissue hue "
                f"{self.tissue:.0%}) -> {what}")


@dataclass
class LayoutResult:
    """What :func:`detect_layout` found.

    ``wl_rect`` / ``nir_rect``: ``[x, y, w, h]`` in combined-frame pixels (None
    when not found); ``ignore_rects``: ``[x, y, w, h]`` in WL-inset pixels;
    ``unsure``: the reasons it is not sure (empty = sure); ``insets``: every
    rectangle found.
    """

    frame_size: tuple
    insets: list
    wl_rect: Optional[list] = None
    nir_rect: Optional[list] = None
    ignore_rects: list = field(default_factory=list)
    unsure: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unsure and self.wl_rect is not None and self.nir_rect is not None

    def summary(self) -> str:
        w, h = self.frame_size
        lines = [f"layout of a {w}x{h} frame: {len(self.insets)} inset(s)"]
        lines += [f"  {i.describe()}" for i in self.insets]
        for r in self.ignore_rects:
            lines.append(f"  ignore (WL pixels) {r[2]}x{r[3]} at {r[0]},{r[1]}")
        for u in self.unsure:
            lines.append(f"  unsure: {u}")
        return "\n".join(lines)

    def custom_options(self) -> str:
        """The source options that give this layout by hand."""
        def fmt(r):
            return ",".join(str(v) for v in r) if r else "X,Y,W,H"
        return f"--layout custom --wl-rect {fmt(self.wl_rect)} --nir-rect {fmt(self.nir_rect)}"


def detect_layout(frames: Sequence[np.ndarray]) -> LayoutResult:
    """Find the insets of a tower's combined frames.

    Parameters
    ----------
    frames : a few (H, W, 3) uint8 BGR frames of one recording, best spread in time

    Returns
    -------
    LayoutResult (``ok`` when it is sure; otherwise ``unsure`` says why)
    """
    frames = [np.asarray(f) for f in frames]
    if not frames:
        raise CalibrationError("layout: no frames to look at")
    h, w = frames[0].shape[:2]
    if any(f.shape != frames[0].shape or f.ndim != 3 or f.dtype != np.uint8 for f in frames):
        raise CalibrationError("layout: frames must be (H, W, 3) uint8 BGR of one size")
    rects = find_rectangles(frames)
    insets = [Inset(r, *inset_colour(frames, r)) for r in rects]
    res = LayoutResult((w, h), insets)
    _assign(res)
    if res.wl_rect is not None:
        res.ignore_rects = _covered(res) + propose_ignore_rects(frames, res.wl_rect, res.nir_rect)
    return res


def _bright(frames) -> np.ndarray:
    """(H, W) uint8: each pixel's brightest channel in its brightest frame, median-filtered."""
    m = np.max([f.max(axis=2) for f in frames], axis=0)
    return cv2.medianBlur(m, 5)


def _surround_threshold(m: np.ndarray) -> float:
    """``(level, threshold)``: the surround's level (the frame's outer border) and
    that plus a margin (what is brighter is an image)."""
    h, w = m.shape
    b = max(2, h // 100)
    border = np.concatenate([m[:b].ravel(), m[-b:].ravel(), m[:, :b].ravel(), m[:, -b:].ravel()])
    med = float(np.median(border))
    mad = float(np.median(np.abs(border - med)))
    return med, med + max(SURROUND_MARGIN, 5 * 1.4826 * mad)


def find_rectangles(frames: Sequence[np.ndarray]) -> list:
    """``[x, y, w, h]`` of every image rectangle on the dark surround, largest first."""
    m = _bright(frames)
    h, w = m.shape
    surround, thr = _surround_threshold(m)
    mask = (m > thr).astype(np.uint8)
    k = max(3, int(round(TEXT_STROKE * h)) | 1)
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=4)
    min_side = MIN_INSET_SIDE * min(h, w)
    out = []
    for j in range(1, n):
        x, y, bw, bh, area = stats[j]
        if bw < min_side or bh < min_side:
            continue
        if area / float(bw * bh) < MIN_FILL * 0.8:  # before refining: corners are eroded
            continue
        r = _refine(m, [int(x), int(y), int(bw), int(bh)], surround)
        if r is not None and mask[r[1]:r[1] + r[3], r[0]:r[0] + r[2]].mean() >= MIN_FILL:
            out.append(r)
    out.sort(key=lambda r: -r[2] * r[3])
    return out


def _refine(m: np.ndarray, r: list, surround: float, search: int = 8) -> Optional[list]:
    """Each edge of box ``r`` where the brightness profile ``m`` (averaged along the
    edge's inner half) falls half-way from the inset's level to the surround's:
    the box of the image, not of whatever the opening and the blur left."""
    h, w = m.shape
    x, y, bw, bh = r
    cols = m[y + bh // 4:y + bh - bh // 4].mean(axis=0)
    rows = m[:, x + bw // 4:x + bw - bw // 4].mean(axis=1)

    def edge(profile, inside, step):
        # inside: a line a little inside the edge; walk outwards to the half level
        n = profile.size
        inner = float(np.median(profile[np.clip(inside + np.arange(0, 6) * -step, 0, n - 1)]))
        half = 0.5 * (inner + surround)
        i = inside
        while 0 <= i + step < n and abs(i - inside) < 2 * search and profile[i + step] > half:
            i += step
        return i

    x0 = edge(cols, min(x + search, w - 1), -1)
    x1 = edge(cols, max(x + bw - 1 - search, 0), 1)
    y0 = edge(rows, min(y + search, h - 1), -1)
    y1 = edge(rows, max(y + bh - 1 - search, 0), 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return [int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)]


def inset_colour(frames: Sequence[np.ndarray], rect: list) -> tuple:
    """``(kind, coloured, tissue)`` of the inset ``rect`` over ``frames``.

    ``coloured``: fraction of its pixels (inner 80 %, so labels at its edges
    count little) with chroma >= :data:`CHROMA`; ``tissue``: fraction of those
    whose hue is tissue's (red, orange, brown, pink).  A grey view has almost
    no coloured pixels; white light is mostly coloured, mostly tissue hue; a
    tower's overlay or pseudocolour map is coloured, but in green, blue,
    yellow (its map) over a grey or dark base.
    """
    x, y, w, h = rect
    dx, dy = w // 10, h // 10
    coloured = tissue = 0.0
    for f in frames:
        crop = f[y + dy:y + h - dy, x + dx:x + w - dx]
        chroma = crop.max(axis=2).astype(np.int16) - crop.min(axis=2)
        col = chroma >= CHROMA
        hue = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)[..., 0][col]
        is_tissue = np.zeros(hue.shape, bool)
        for lo, hi in _TISSUE_HUE:
            is_tissue |= (hue >= lo) & (hue <= hi)
        coloured += col.mean()
        tissue += is_tissue.mean() if hue.size else 0.0
    coloured /= len(frames)
    tissue /= len(frames)
    if coloured <= GREY_MAX_COLOURED:
        kind = "grey"
    elif coloured >= WL_MIN_COLOURED and tissue >= WL_MIN_TISSUE:
        kind = "wl"
    else:
        kind = "overlay"
    return kind, float(coloured), float(tissue)


def _aspect(r) -> float:
    return r[2] / float(r[3])


def _assign(res: LayoutResult) -> None:
    """Choose the WL and NIR insets, or say in ``res.unsure`` why not."""
    wls = [i for i in res.insets if i.kind == "wl"]
    if not res.insets:
        res.unsure.append("no image rectangle on a dark surround")
        return
    if not wls:
        res.unsure.append("no inset has the colours of white light (tissue hues)")
    elif len(wls) > 1:
        res.unsure.append(f"{len(wls)} insets look like white light "
                          f"({', '.join(_box(i.rect) for i in wls)})")
    else:
        wl = wls[0]
        wl.role = "wl"
        res.wl_rect = list(wl.rect)
    greys = [i for i in res.insets if i.kind == "grey"]
    if res.wl_rect is not None:
        same = [i for i in greys if abs(_aspect(i.rect) / _aspect(res.wl_rect) - 1) <= ASPECT_TOLERANCE]
        if len(same) < len(greys):
            other = [i for i in greys if i not in same]
            if not same:
                res.unsure.append("no grey inset has the white light's aspect ratio "
                                  f"({', '.join(_box(i.rect) for i in other)})")
        greys = same
    if not greys:
        if not any("grey" in u for u in res.unsure):
            res.unsure.append("no grey (monochrome NIR) inset")
        return
    greys.sort(key=lambda i: -i.rect[2] * i.rect[3])
    if len(greys) > 1 and greys[1].rect[2] * greys[1].rect[3] > 0.8 * greys[0].rect[2] * greys[0].rect[3]:
        res.unsure.append(f"{len(greys)} grey insets of about one size "
                          f"({', '.join(_box(i.rect) for i in greys)})")
        return
    greys[0].role = "nir"
    res.nir_rect = list(greys[0].rect)


def _box(r) -> str:
    return f"{r[2]}x{r[3]} at {r[0]},{r[1]}"


def _covered(res: LayoutResult) -> list:
    """WL-inset pixels another inset covers (a picture-in-picture), with a margin
    for its border."""
    wx, wy, ww, wh = res.wl_rect
    out = []
    for i in res.insets:
        if i.role == "wl":
            continue
        x, y, w, h = i.rect
        m = max(2, int(round(0.01 * max(ww, wh))))
        x0, y0 = max(x - m, wx), max(y - m, wy)
        x1, y1 = min(x + w + m, wx + ww), min(y + h + m, wy + wh)
        if x1 > x0 and y1 > y0:
            out.append([x0 - wx, y0 - wy, x1 - x0, y1 - y0])
    return out


def propose_ignore_rects(frames: Sequence[np.ndarray], wl_rect: list,
                         nir_rect: Optional[list]) -> list:
    """``[x, y, w, h]`` WL-inset boxes of static bright thin text in the WL and NIR insets.

    Text is white (every channel >= :data:`TEXT_WHITE`, no chroma) and the same
    (within :data:`TEXT_STEADY` levels) in every frame, and thin: no pixel of
    it is farther than :data:`TEXT_HALF_STROKE` of the frame height from its edge.
    A glint moves with the tissue; a bright duct is wide, and where it moves
    what is left steady is a sliver inside an area that is white at other
    times, which text's never is (a clock's changing digits are strokes too).
    A word has at least two letters and is wider than tall (a glint is one
    round blob).  Letters are merged into words (a changing digit of a clock joins its
    steady neighbours) and the box grown by a stroke; a NIR box is scaled into
    WL pixels.
    """
    fh = frames[0].shape[0]
    half_stroke = max(2.0, TEXT_HALF_STROKE * fh)
    gap = int(round(TEXT_LETTER_GAP * fh))
    pad = int(math.ceil(half_stroke))
    out = []
    for rect in (wl_rect, nir_rect):
        if rect is None:
            continue
        x, y, w, h = rect
        crops = [f[y:y + h, x:x + w] for f in frames]
        lo = np.min([c.min(axis=2) for c in crops], axis=0)
        hi = np.max([c.max(axis=2) for c in crops], axis=0)
        static = ((lo >= TEXT_WHITE) & (hi.astype(np.int16) - lo <= TEXT_STEADY)).astype(np.uint8)
        if not static.any():
            continue
        dist = cv2.distanceTransform(static, cv2.DIST_L2, 3)
        # where it is white in any frame: strokes (a clock's changing digits too) stay
        # thin, a bright duct or gallbladder moving over the inset does not
        ever_dist = cv2.distanceTransform((hi >= TEXT_WHITE).astype(np.uint8), cv2.DIST_L2, 3)
        words = cv2.dilate(static, np.ones((2 * pad + 1, 2 * gap + 1), np.uint8))
        n, lab, stats, _ = cv2.connectedComponentsWithStats(words, connectivity=8)
        sx, sy = wl_rect[2] / w, wl_rect[3] / h
        for j in range(1, n):
            bx, by, bw, bh, _ = stats[j]
            part = (lab[by:by + bh, bx:bx + bw] == j) & (static[by:by + bh, bx:bx + bw] > 0)
            ys, xs = np.nonzero(part)
            if cv2.connectedComponents(part.astype(np.uint8))[0] - 1 < 2 or \
                    xs.max() - xs.min() < 1.2 * (ys.max() - ys.min()):
                continue  # one round blob (a glint), not a word of letters
            if ys.size < 6 or ys.max() - ys.min() + 1 < TEXT_MIN_HEIGHT * fh or bh > 0.25 * h:
                continue
            if (dist[by:by + bh, bx:bx + bw][part] > half_stroke).mean() > 0.05:
                continue  # a bright area, not strokes
            ever = ever_dist[by:by + bh, bx:bx + bw][lab[by:by + bh, bx:bx + bw] == j]
            if (ever > 2 * half_stroke).mean() > 0.1:
                continue  # white at other times over a wide area: part of something moving
            x0, y0 = max(0, bx + xs.min() - pad), max(0, by + ys.min() - pad)
            x1, y1 = min(w, bx + xs.max() + 1 + pad), min(h, by + ys.max() + 1 + pad)
            ax, ay = math.floor(x0 * sx), math.floor(y0 * sy)
            out.append([int(ax), int(ay), int(math.ceil(x1 * sx) - ax), int(math.ceil(y1 * sy) - ay)])
    return out


def draw_preview(frame: np.ndarray, res: LayoutResult) -> np.ndarray:
    """A copy of ``frame`` with every inset drawn and labelled (WL green, NIR
    magenta, others grey: ``tower overlay`` for the tower's colour overlay or
    pseudocolour map) and the ignore boxes in yellow, labelled ``ignore``."""
    out = frame.copy()
    h = frame.shape[0]
    t = max(2, h // 360)
    scale = 0.6 * h / 720
    for i in res.insets:
        colour = {"wl": (0, 220, 0), "nir": (255, 0, 255)}.get(i.role, (160, 160, 160))
        x, y, w, hh = i.rect
        cv2.rectangle(out, (x, y), (x + w - 1, y + hh - 1), colour, t)
        label = {"wl": "WL", "nir": "NIR"}.get(i.role) or {"overlay": "tower overlay"}.get(i.kind, i.kind)
        label = f"{label} {w}x{hh}+{x}+{y}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, t)
        cv2.rectangle(out, (x, y + hh - th - 3 * t), (x + tw + 2 * t, y + hh), (0, 0, 0), -1)
        cv2.putText(out, label, (x + t, y + hh - 2 * t), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, t)
    # the ignore boxes (WL-inset pixels) where they fall on the WL and on the NIR inset
    for inset in (res.wl_rect, res.nir_rect) if res.wl_rect is not None else ():
        if inset is None:
            continue
        sx, sy = inset[2] / res.wl_rect[2], inset[3] / res.wl_rect[3]
        for x, y, w, hh in res.ignore_rects:
            p0 = (inset[0] + int(x * sx), inset[1] + int(y * sy))
            p1 = (inset[0] + int((x + w) * sx) - 1, inset[1] + int((y + hh) * sy) - 1)
            cv2.rectangle(out, p0, p1, (0, 230, 255), t)
            cv2.putText(out, "ignore", (p0[0], max(p0[1] - 2 * t, int(20 * scale))),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (0, 230, 255), max(1, t // 2))
    if res.unsure:
        cv2.putText(out, "UNSURE: " + res.unsure[0][:80], (10, h - 10), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (0, 0, 255), t)
    return out
