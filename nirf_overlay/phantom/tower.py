"""The phantom seen through a laparoscopy tower: one 16:9 8-bit display frame.

Most users record a tower's video output, not a camera's raw NIR: the tower
lays white light (WL), its monochrome NIR view and its own colour overlay out
as insets on a dark 16:9 frame, auto-gains the NIR, encodes it for the eye (a
gamma- or log-like curve), and burns text (a clock, a mode label) into the
picture.  :class:`Tower` renders exactly that from a :class:`~.render.Phantom`
whose frame size is the WL inset's, so the phantom's truth (masks, rims, T, B)
is in WL-inset pixels as it is.

Layouts (:data:`LAYOUTS`; rectangles from :func:`tower_layout`, ``[x, y, w, h]``
in tower-frame pixels):

- ``side-by-side``: WL left, NIR right, equal 4:3 insets;
- ``three-left``: WL, NIR and the tower's overlay as three 4:3 insets down the
  left, an enlarged NIR view on the right (the NIR the pipeline should use);
- ``pip``: a large WL view with the NIR as a small bordered inset over its
  top-right corner (the WL pixels it hides are listed in ``hidden_rect``);
- ``quad``: 2x2: WL, NIR, the tower's overlay, a pseudocolour (jet) NIR map.

NIR display value of frame ``i`` (:meth:`Tower.display_nir`)::

    lin = k(t) * (raw - dark)            (clipped to 0..1)
    d   = round(255 * C(lin))            C: gamma:G -> lin**(1/G); log:A -> log1p(A lin)/log1p(A)

``k(t)`` is the tower's auto-gain: ``k0`` puts the first frame's 99.9th
percentile at ``agc_peak`` of full scale; when the camera's gain steps (the
phantom's ``gain_step_s``, x ``gain_step_factor``) the tower follows it slowly,
``k = k0 / (1 + (f - 1) (1 - exp(-(t - ts) / agc_tau_s)))``, so the display
jumps with the step and settles back over about ``agc_tau_s``.  The relative
linear signal is ``C^-1(d / 255)`` (:func:`curve_lut`), up to the factor
``k(t)``, which every ratio cancels.

Truth on what survives: where the display clips a rim (full scale, after the
auto-gain rose), the frame's truth is measured on the signal clipped where the
display clips (:meth:`Tower.clip_level`): no reading of the recording can give
back what the tower cut off, and the pipeline flags those pixels as saturated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import cv2
import numpy as np

from ..errors import NirfError
from .params import PhantomParams
from .render import Phantom

LAYOUTS = ("side-by-side", "three-left", "pip", "quad")

_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class TowerParams:
    """How the tower shows the phantom (one recording's settings).

    ``curve``: ``gamma:G`` (G in 1..4) or ``log:A`` (A in 1..1000), the NIR
    display curve.  ``agc_peak``: linear display level of the first frame's
    99.9th percentile; ``agc_tau_s``: how slowly the auto-gain follows a step.
    ``surround`` / ``surround_noise``: the dark surround's grey level and noise
    (8-bit levels).  ``clock_start_s``: the burned-in clock at frame 0 (seconds
    after midnight).  ``text``: burn in the clock, ``wl_label`` in the WL inset,
    ``mode_label`` in the NIR view and ``tower_name`` on the surround, at
    ``text_scale`` x the default size.
    """

    layout: str = "side-by-side"
    size: tuple[int, int] = (1280, 720)  # (W, H) of the tower frame, 16:9
    curve: str = "gamma:2.2"
    agc_peak: float = 0.85
    agc_tau_s: float = 1.0
    surround: int = 6
    surround_noise: float = 1.5
    clock_start_s: float = 10 * 3600 + 42 * 60 + 5
    text: bool = True
    wl_label: str = "WL"
    mode_label: str = "ICG NIR"
    tower_name: str = "NIRF TOWER 3"
    text_scale: float = 1.0  # x the default size (0.7 at 720p, Hershey simplex)
    seed: int = 0  # the surround's noise

    def validate(self) -> "TowerParams":
        w, h = self.size
        if self.layout not in LAYOUTS:
            raise NirfError(f"tower layout {self.layout!r}: expected one of {', '.join(LAYOUTS)}")
        if not (320 <= w <= 7680 and 180 <= h <= 4320) or w % 2 or h % 2:
            raise NirfError(f"tower size {w}x{h}: need even sides, 320x180 .. 7680x4320")
        if abs(w / h - 16 / 9) > 0.02:
            raise NirfError(f"tower size {w}x{h}: a tower frame is 16:9 (e.g. 1920x1080)")
        parse_curve(self.curve)
        if not (0.05 <= self.agc_peak <= 1.0):
            raise NirfError(f"tower agc_peak {self.agc_peak}: must be 0.05..1")
        if not (0.0 < self.agc_tau_s <= 60.0):
            raise NirfError(f"tower agc_tau_s {self.agc_tau_s}: must be in (0, 60] s")
        if not (0.3 <= self.text_scale <= 3.0):
            raise NirfError(f"tower text_scale {self.text_scale}: must be 0.3..3")
        if not (0 <= self.surround <= 40):
            raise NirfError(f"tower surround {self.surround}: must be 0..40 (a dark surround)")
        return self


def parse_curve(curve: str) -> tuple[str, float]:
    """``"gamma:2.2"`` -> ``("gamma", 2.2)``; ``"log:30"`` -> ``("log", 30.0)``."""
    kind, _, value = str(curve).partition(":")
    try:
        v = float(value)
    except ValueError:
        v = float("nan")
    if kind == "gamma" and 1.0 <= v <= 4.0:
        return kind, v
    if kind == "log" and 1.0 <= v <= 1000.0:
        return kind, v
    raise NirfError(f"tower curve {curve!r}: expected gamma:G (G 1..4) or log:A (A 1..1000)")


def encode_curve(lin: np.ndarray, curve: str) -> np.ndarray:
    """Linear 0..1 -> display 0..1 through the tower's curve."""
    kind, v = parse_curve(curve)
    lin = np.clip(lin, 0.0, 1.0)
    if kind == "gamma":
        return np.power(lin, 1.0 / v)
    return np.log1p(v * lin) / math.log1p(v)


def curve_lut(curve: str) -> np.ndarray:
    """(256,) float64: the relative linear signal (0..1) of each display code 0..255.

    The inverse of :func:`encode_curve` at the codes' centres: what undoes the
    tower's curve (a ``lut:FILE.csv`` transfer is this table).
    """
    kind, v = parse_curve(curve)
    d = np.arange(256) / 255.0
    if kind == "gamma":
        return np.power(d, v)
    return np.expm1(d * math.log1p(v)) / v


def _even(v: float) -> int:
    return int(round(v / 2.0)) * 2


def tower_layout(layout: str, size: tuple[int, int]) -> dict:
    """The insets of ``layout`` on a ``size`` frame: role -> ``[x, y, w, h]``.

    Roles: ``wl``, ``nir`` (the NIR view the pipeline should map, the enlarged
    one where there are two), and where the layout has them ``nir_small``,
    ``overlay`` (the tower's colour overlay), ``pseudo`` (a pseudocolour NIR map).
    All insets are 4:3 with even sides.
    """
    w, h = size
    g = _even(0.035 * h)
    if layout == "side-by-side":
        iw = _even((w - 3 * g) / 2)
        ih = _even(iw * 3 / 4)
        y = _even((h - ih) / 2)
        return {"wl": [g, y, iw, ih], "nir": [2 * g + iw, y, iw, ih]}
    if layout == "three-left":
        ih = _even((h - 4 * g) / 3)
        iw = _even(ih * 4 / 3)
        left = [[g, g + k * (ih + g), iw, ih] for k in range(3)]
        x0 = 2 * g + iw
        bw = w - x0 - g
        bh = min(_even(bw * 3 / 4), h - 2 * g)
        bw = _even(bh * 4 / 3)
        big = [x0 + _even((w - x0 - g - bw) / 2), _even((h - bh) / 2), bw, bh]
        return {"wl": left[0], "nir_small": left[1], "overlay": left[2], "nir": big}
    if layout == "pip":
        bh = h - 2 * g
        bw = _even(bh * 4 / 3)
        big = [_even((w - bw) / 2), g, bw, bh]
        sw = _even(bw * 0.3)
        sh = _even(sw * 3 / 4)
        small = [big[0] + bw - sw - g, big[1] + g, sw, sh]
        return {"wl": big, "nir": small}
    if layout == "quad":
        ih = _even((h - 3 * g) / 2)
        iw = _even(ih * 4 / 3)
        x0 = _even((w - 2 * iw - g) / 2)
        xs, ys = (x0, x0 + iw + g), (g, 2 * g + ih)
        return {"wl": [xs[0], ys[0], iw, ih], "nir": [xs[1], ys[0], iw, ih],
                "overlay": [xs[0], ys[1], iw, ih], "pseudo": [xs[1], ys[1], iw, ih]}
    raise NirfError(f"tower layout {layout!r}: expected one of {', '.join(LAYOUTS)}")


#: the black frame a PiP inset is drawn with, tower pixels
PIP_BORDER_PX = 6


@dataclass
class TowerFrame:
    """One rendered tower frame: ``frame`` (H, W, 3) uint8 BGR, the phantom's
    ``pair`` (WL-inset pixels, with its truth) and ``display_nir`` ((h, w) uint8,
    the NIR view at the phantom's size before it is scaled into its insets)."""

    frame: np.ndarray
    pair: object
    display_nir: np.ndarray


class Tower:
    """A phantom procedure shown by a tower: ``Tower(tower_params, phantom_params).frame(i)``.

    The phantom renders at the WL inset's size (its ``size`` is replaced), so
    its truth is in WL-inset pixels.

    Attributes
    ----------
    params : TowerParams (validated)
    phantom : the :class:`~.render.Phantom` behind the WL inset
    rects : role -> ``[x, y, w, h]`` (:func:`tower_layout`)
    k0 : the auto-gain at frame 0 (display full scale per raw count above dark)
    """

    def __init__(self, params: Optional[TowerParams] = None,
                 phantom_params: Optional[PhantomParams] = None):
        self.params = (params or TowerParams()).validate()
        self.rects = tower_layout(self.params.layout, self.params.size)
        _, _, ww, wh = self.rects["wl"]
        self.phantom = Phantom(replace(phantom_params or PhantomParams(), size=(ww, wh)))
        self._dark = self.phantom.camera.dark.astype(np.float32)
        raw0 = self.phantom.frame(0).nir.astype(np.float32) - self._dark
        self.k0 = float(self.params.agc_peak / max(np.percentile(raw0, 99.9), 1.0))
        self._text = self._text_items() if self.params.text else []

    @property
    def fps(self) -> float:
        return self.phantom.fps

    def agc(self, i: int) -> float:
        """The tower's display gain ``k`` at frame ``i`` (see the module docstring)."""
        p = self.phantom.params
        t = i / p.fps
        if p.gain_step_s is None or t < p.gain_step_s:
            return self.k0
        f = p.gain_step_factor
        return self.k0 / (1.0 + (f - 1.0) * (1.0 - math.exp(-(t - p.gain_step_s) / self.params.agc_tau_s)))

    def clip_level(self, i: int) -> np.ndarray:
        """(h, w) float32: the noise-free signal (normalised counts) at which the display
        of frame ``i`` reaches full scale (``lin = 1``): ``raw - dark = S flat (e / e_ref)
        (g / g_ref)``, times ``k``."""
        p = self.phantom.params
        per_s = self.agc(i) * p.exposure_ms / p.exposure_ref_ms * self.phantom.gain_at(i) / p.gain_ref
        return (1.0 / (per_s * self.phantom.camera.flat)).astype(np.float32)

    def display_nir(self, raw: np.ndarray, i: int) -> np.ndarray:
        """(h, w) uint8: the tower's NIR view of raw counts ``raw`` at frame ``i``."""
        lin = (raw.astype(np.float32) - self._dark) * np.float32(self.agc(i))
        return np.rint(255.0 * encode_curve(lin, self.params.curve)).astype(np.uint8)

    def frame(self, i: int) -> TowerFrame:
        """Render tower frame ``i``."""
        pair = self.phantom.frame(i)
        d = self.display_nir(pair.nir, i)
        if (d[pair.truth.rim_mask] == 255).any():  # the display clips a rim: truth on what survives
            pair.truth = self.phantom.truth_clipped(i, self.clip_level(i))
        w, h = self.params.size
        rng = np.random.default_rng([self.params.seed, 6007, int(i)])
        out = rng.normal(self.params.surround, self.params.surround_noise, (h, w, 3))
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        views = {"wl": pair.wl, "nir": d, "nir_small": d,
                 "overlay": lambda: _tower_overlay(pair.wl, d),
                 "pseudo": lambda: cv2.applyColorMap(d, cv2.COLORMAP_JET)}
        for role in ("wl", "nir_small", "overlay", "pseudo", "nir"):  # nir last: a PiP is on top
            if role not in self.rects:
                continue
            view = views[role]() if callable(views[role]) else views[role]
            x, y, rw, rh = self.rects[role]
            if self.params.layout == "pip" and role == "nir":
                b = PIP_BORDER_PX
                out[y - b:y + rh + b, x - b:x + rw + b] = 0
            _paste(out, view, (x, y, rw, rh))
        t = self.params.clock_start_s + i / self.fps
        for text, org, scale, thick in self._text:
            if text == "{clock}":
                text = "%02d:%02d:%02d" % (int(t // 3600) % 24, int(t // 60) % 60, int(t) % 60)
            cv2.putText(out, text, org, _FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)
        return TowerFrame(out, pair, d)

    # -- text ------------------------------------------------------------------
    def _text_items(self):
        """``(text, origin, scale, thickness)``: a mode label inside each NIR view and
        the WL inset, a clock inside the NIR view, the tower's name on the surround."""
        w, h = self.params.size
        scale = 0.7 * h / 720 * self.params.text_scale
        thick = max(1, int(round(1.6 * h / 720 * self.params.text_scale)))
        (_, th), _ = cv2.getTextSize("0", _FONT, scale, thick)
        pad = max(4, int(0.6 * th))
        items = []
        x, y, rw, rh = self.rects["wl"]
        items.append((self.params.wl_label, (x + pad, y + pad + th), scale, thick))
        x, y, rw, rh = self.rects["nir"]
        small = self.params.layout == "pip"
        s = scale * (0.7 if small else 1.0)
        items.append((self.params.mode_label, (x + pad, y + pad + th), s, thick))
        (cw, _), _ = cv2.getTextSize("00:00:00", _FONT, s, thick)
        items.append(("{clock}", (x + rw - pad - cw, y + rh - pad), s, thick))
        g = self.rects["wl"][1] if self.params.layout == "side-by-side" else _even(0.035 * h)
        ts = min(scale, 0.7 * (g - 2) / max(th, 1) * scale)
        name = self.params.tower_name
        (nw, nh), _ = cv2.getTextSize(name, _FONT, ts, thick)
        items.append((name, (_even(0.02 * w), h - max(2, (g - nh) // 2)), ts, thick))
        return items

    def text_rects(self, i: int = 0) -> list:
        """``[x, y, w, h]`` tower-frame boxes of the burned-in text at frame ``i``."""
        rects = []
        for text, (ox, oy), scale, thick in self._text:
            if text == "{clock}":
                text = "00:00:00"
            (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
            rects.append([ox - thick, oy - th - thick, tw + 2 * thick, th + base + 2 * thick])
        return rects

    def ignore_rects(self) -> list:
        """``[x, y, w, h]`` in WL-inset pixels that burned-in text or another inset
        covers, in the WL inset or in the NIR view mapped onto it (the truth of
        what ``calibrate layout`` proposes as ``ignore_rects``)."""
        out = []
        for r in self.text_rects():
            for role in ("wl", "nir"):
                m = _to_wl(r, self.rects[role], self.rects["wl"])
                if m is not None:
                    out.append(m)
        out.extend(self.truth_doc_geometry().values())
        return out

    def truth_doc_geometry(self) -> dict:
        """``hidden_rect`` (WL-inset pixels a PiP's NIR inset and its border cover), if any."""
        if self.params.layout != "pip":
            return {}
        b = PIP_BORDER_PX
        x, y, rw, rh = self.rects["nir"]
        return {"hidden_rect": _to_wl([x - b, y - b, rw + 2 * b, rh + 2 * b],
                                      self.rects["wl"], self.rects["wl"])}

    def truth_document(self) -> dict:
        """The tower's truth for a sidecar (JSON-ready)."""
        p = self.params
        doc = {"layout": p.layout, "frame_size": list(p.size), "curve": p.curve,
               "wl_rect": self.rects["wl"], "nir_rect": self.rects["nir"],
               "insets": dict(self.rects), "agc": {"k0": self.k0, "peak": p.agc_peak,
                                                  "tau_s": p.agc_tau_s},
               "text_rects": self.text_rects(), "ignore_rects": self.ignore_rects(),
               "mm_per_px": self.phantom.mm_per_px}
        doc.update(self.truth_doc_geometry())
        return doc


def _paste(out, view, rect) -> None:
    x, y, rw, rh = rect
    vh, vw = view.shape[:2]
    interp = cv2.INTER_AREA if rw < vw else cv2.INTER_LINEAR
    v = view if (vw, vh) == (rw, rh) else cv2.resize(view, (rw, rh), interpolation=interp)
    out[y:y + rh, x:x + rw] = v[..., None] if v.ndim == 2 else v


def _to_wl(r, inset, wl):
    """Box ``r`` (tower pixels) where it meets ``inset``, in WL-inset pixels (None if apart)."""
    x0, y0 = max(r[0], inset[0]), max(r[1], inset[1])
    x1, y1 = min(r[0] + r[2], inset[0] + inset[2]), min(r[1] + r[3], inset[1] + inset[3])
    if x1 <= x0 or y1 <= y0:
        return None
    sx, sy = wl[2] / inset[2], wl[3] / inset[3]
    ax, ay = math.floor((x0 - inset[0]) * sx), math.floor((y0 - inset[1]) * sy)
    bx, by = math.ceil((x1 - inset[0]) * sx), math.ceil((y1 - inset[1]) * sy)
    return [int(ax), int(ay), int(bx - ax), int(by - ay)]


def _tower_overlay(wl: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The tower's own overlay: green over a grey WL, opacity rising with the NIR display level."""
    grey = cv2.cvtColor(cv2.cvtColor(wl, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR).astype(np.float32)
    alpha = np.clip((d.astype(np.float32) - 90.0) / 120.0, 0.0, 0.9)[..., None]
    green = np.array([40.0, 255.0, 40.0], np.float32)
    return np.rint(grey * 0.85 * (1 - alpha) + green * alpha).astype(np.uint8)
