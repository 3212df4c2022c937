"""Compositing: WL + normalised NIR -> one 8-bit BGR display frame of WL size.

Display modes (``display.mode``)
--------------------------------
``wl``            the white-light frame as is
``nir``           monochrome NIR: grey = display level (after compression)
``overlay``       WL with the colour-mapped NIR blended on top, opacity rising with intensity
``intensity``     heat map: the colour map of the display level, opaque, no WL
``side-by-side``  WL on the left, overlay (or NIR, ``display.side_by_side_right``) on the
                  right; each pane is scaled to half the width keeping its aspect ratio and
                  centred vertically on black (a 16:9 frame gives two 16:9 panes of half size)
``pip``           overlay, with the monochrome NIR as an inset in the top-right corner,
                  ``display.pip_scale`` of the width, aspect kept

Opacity (the alpha ramp)
------------------------
With ``t`` the display level (0..1, after compression) of a pixel and
``t0 = max(display.alpha_floor, t(threshold))``, where ``threshold`` is the
fluorescence threshold ``segment.threshold x background`` in normalised counts,
the opacity is ``display.alpha * sqrt(clip((t - t0) / (0.5 (1 - t0)), 0, 1))``:
fully transparent below the threshold, so weak signal never hides the anatomy,
then rising quickly (square root) so that a faint rim just above threshold is
already visible, and reaching ``display.alpha`` halfway between the threshold
and the white level.  Saturated pixels are drawn opaque in the palette's
saturation colour.

Colour map, compression and opacity are folded into one 1024-entry look-up
table indexed by the linear position ``(v - lo) / (hi - lo)``, so the pixel
pass is a table look-up and an integer blend.

One sweep with the normalisation
--------------------------------
In ``overlay`` (the default), ``nir`` and ``intensity`` a display pixel depends
only on the same pixel's WL, filtered NIR and saturation flag
(:data:`PIXEL_PASSES`), so the normalisation kernel can write it in its own
sweep: raw NIR + WL in, filtered NIR + BGR out (:meth:`Compositor.prepare_fused`,
previous frame's levels and threshold; ``Pipeline.fuse``).  ``side-by-side`` and
``pip`` cannot: their panes are area-resampled from the whole picture, which must
exist first; ``wl`` needs no NIR.  Nothing here allocates per frame (the output
ring, scratch rows, tables and pane buffers are refilled: ``tests/test_pixel_buffers.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, NamedTuple, Optional, Sequence

import cv2
import numba
import numpy as np

from ..settings import Settings
from ._kernels.pixel import composite_pass, pack_lut, row_scratch_bytes
from ._validate import frame_dims, read_only, require, require_optional
from .colormaps import Palette, colormap, gray_map, palette
from .levels import compress

LUT_SIZE = 1024


@dataclass
class FusedDisplay:
    """Display arguments handed to the normalisation kernel (see :meth:`Compositor.prepare_fused`)."""

    out: np.ndarray
    args: tuple
    lo: float
    hi: float
    threshold: Optional[float]


class Compositor:
    """Builds display frames; owns the output ring and scratch buffers.

    Parameters
    ----------
    ring : int
        Number of output buffers used in turn.  A returned frame stays
        untouched for ``ring - 1`` further calls (the viewer shows one while
        the next is made); copy it to keep it longer.
    """

    def __init__(self, ring: int = 3):
        self._ring_n = max(1, int(ring))
        self._ring: list[np.ndarray] = []
        self._ring_i = 0
        self._scratch: Optional[np.ndarray] = None
        self._x = np.linspace(0.0, 1.0, LUT_SIZE)
        self._t_key = None
        self._lut = np.zeros((LUT_SIZE, 3), np.uint8)
        self._alut = np.zeros(LUT_SIZE, np.int32)
        self._gray_lut = np.zeros((LUT_SIZE, 3), np.uint8)
        # colour, opacity and saturation colour packed for the pixel pass
        # (_kernels.pixel.pack_lut); refilled by every pass from the tables above
        self._tab = np.zeros(LUT_SIZE + 1, np.uint64)
        self._rowbuf = np.zeros((1, row_scratch_bytes(1)), np.uint8)
        self._zsat: Optional[np.ndarray] = None
        # filled in place each frame, so that no table is allocated per frame
        self._ramp = np.zeros(LUT_SIZE, np.float64)
        self._sat_key: Optional[tuple] = None
        self._sat_bgr = np.zeros(3, np.uint8)
        self._bar_key = None
        self._bar = np.zeros((0, 3), np.uint8)  # the colour bar's column (_colorbar)
        self._panes: dict = {}  # the one-channel buffers _inset scales through (_kept)

    # -- buffers -------------------------------------------------------------
    def _next_out(self, shape) -> np.ndarray:
        if not self._ring or self._ring[0].shape != shape:
            self._ring = [np.zeros(shape, np.uint8) for _ in range(self._ring_n)]
            self._scratch = np.zeros(shape, np.uint8)
            # one row of scratch per chunk of rows; 4 chunks per thread
            nchunks = max(1, min(shape[0], 4 * numba.get_num_threads()))
            self._rowbuf = np.zeros((nchunks, row_scratch_bytes(shape[1])), np.uint8)
        out = self._ring[self._ring_i]
        self._ring_i = (self._ring_i + 1) % self._ring_n
        return out

    # -- look-up tables -------------------------------------------------------
    def _build_luts(self, *, lo: float, hi: float, threshold: Optional[float], settings) -> None:
        """Fold colour map, compression and the alpha ramp into the LUTs."""
        lv, ds = settings.levels, settings.display
        key = (lv.compression, lv.gamma, lv.log_strength, ds.colormap)
        if key != self._t_key:
            self._t = compress(self._x, lv.compression, gamma=lv.gamma, log_strength=lv.log_strength)
            ci = np.round(self._t * 255).astype(np.intp)
            self._lut[:] = colormap(ds.colormap)[ci]
            self._gray_lut[:] = gray_map()[ci]
            self._t_key = key
        t0 = float(ds.alpha_floor)
        if threshold is not None and np.isfinite(threshold):
            x_thr = (float(threshold) - lo) / max(hi - lo, 1e-12)
            t_thr = float(compress(np.array([x_thr]), lv.compression, gamma=lv.gamma,
                                   log_strength=lv.log_strength)[0])
            t0 = max(t0, t_thr)
        ramp = self._ramp  # sqrt(clip((t - t0) / (0.5 (1 - t0)), 0, 1)), in place
        np.subtract(self._t, t0, out=ramp)
        np.divide(ramp, max(0.5 * (1.0 - t0), 0.01), out=ramp)
        np.clip(ramp, 0.0, 1.0, out=ramp)
        np.sqrt(ramp, out=ramp)
        if t0 >= 1.0:
            ramp[:] = 0.0
        np.multiply(ramp, 256.0 * float(ds.alpha), out=ramp)
        np.round(ramp, out=ramp)
        np.copyto(self._alut, ramp, casting="unsafe")

    def _packed(self, mode: str, pal):
        """``(tab, i_on, blend)`` for a pixel pass in ``mode`` (a key of :data:`PIXEL_PASSES`)."""
        table, blend = PIXEL_PASSES[mode]
        lut = self._lut if table == "colour" else self._gray_lut
        if pal.saturation != self._sat_key:
            self._sat_bgr[:] = pal.saturation
            self._sat_key = pal.saturation
        i_on = pack_lut(lut, self._alut, self._sat_bgr, blend, self._tab)
        return self._tab, i_on, blend

    # -- fused with normalisation ---------------------------------------------
    def prepare_fused(self, wl: np.ndarray, *, lo: float, hi: float,
                      threshold: Optional[float], settings) -> Optional["FusedDisplay"]:
        """Kernel arguments to write the display pixels inside the normalisation sweep.

        Only for the modes whose picture is one pixel pass (:data:`PIXEL_PASSES`:
        overlay, nir, intensity); returns None otherwise.  ``lo``/``hi``/``threshold``
        are the previous frame's (levels are smoothed over many frames, so one
        frame of lag is invisible).
        """
        ds = settings.display
        if ds.mode not in PIXEL_PASSES:
            return None
        self._build_luts(lo=lo, hi=hi, threshold=threshold, settings=settings)
        out = self._next_out(wl.shape)
        tab, i_on, blend = self._packed(ds.mode, palette(ds.colormap))
        idx_scale = (LUT_SIZE - 1) / max(hi - lo, 1e-12)
        args = (True, read_only(wl), np.float32(lo), np.float32(idx_scale), tab, i_on, blend,
                bool(ds.show_saturation), out)
        return FusedDisplay(out=out, args=args, lo=lo, hi=hi, threshold=threshold)

    def finish_fused(self, fused: "FusedDisplay", *, settings, contours=(), plane=None,
                     gaps=()) -> np.ndarray:
        """Outlines, plane polygon and colour bar on a frame written by the fused sweep."""
        ds = settings.display
        out = fused.out
        self._annotate(out, contours, _plane_polygon(settings, plane), plane, palette(ds.colormap), ds,
                       gaps)
        if ds.show_colorbar:
            self._colorbar(out, fused.lo, fused.hi, fused.threshold)
        return out

    # -- rendering -------------------------------------------------------------
    def render(self, wl: np.ndarray, nir: Optional[np.ndarray], *, lo: float = 0.0,
               hi: float = 1.0, threshold: Optional[float] = None, settings,
               saturated: Optional[np.ndarray] = None,
               contours: Sequence[np.ndarray] = (), plane=None, gaps=()) -> np.ndarray:
        """Compose one display frame in ``settings.display.mode``.

        Parameters
        ----------
        wl : (H, W, 3) uint8 BGR, C-contiguous
        nir : (H, W) float32 normalised NIR in WL coordinates, C-contiguous,
            or None (NIR lost).  Outside the NIR field of view it is 0 (the
            warped flat field is 0 there), so that needs no work here.
        lo, hi : display levels, normalised counts (black and white)
        threshold : fluorescence threshold, normalised counts, or None
        settings : :class:`~nirf_overlay.settings.Settings`
        saturated : (H, W) uint8, 1 where saturated, C-contiguous, or None
        contours : rim outlines, each (N, 2) or (N, 1, 2) int, WL pixels
        plane : :class:`~nirf_overlay.processing.result.PlaneCheck` or None
        gaps : uncovered arcs of the rims' cores, each (N, 2) int WL pixels
            (:mod:`.gaps`), drawn in :data:`GAP_BGR` with the outlines

        Returns
        -------
        (H, W, 3) uint8 BGR, one of the compositor's ring buffers

        Raises
        ------
        TypeError, ValueError
            for another dtype, shape or layout
        """
        require("wl", wl, np.uint8, ("H", "W", 3))
        require_optional("nir", nir, np.float32, frame_dims(wl.shape))
        require_optional("saturated", saturated, np.uint8, frame_dims(wl.shape))
        ds = settings.display
        out = self._next_out(wl.shape)
        if nir is None:
            np.copyto(out, wl)
            _label(out, "NIR signal lost", (0, 0, 255))
            return out
        renderer = RENDERERS.get(ds.mode)
        if renderer is None:
            raise ValueError(f"unknown display mode {ds.mode!r}")
        self._build_luts(lo=lo, hi=hi, threshold=threshold, settings=settings)
        view = _View(wl, nir, saturated, lo, hi, contours, plane, palette(ds.colormap), settings, gaps)
        renderer.draw(self, view, out)
        if ds.show_colorbar and renderer.colour_bar:
            self._colorbar(out, lo, hi, threshold)
        return out

    def _pixels(self, mode: str, v: "_View", out: np.ndarray) -> None:
        """One pixel pass of ``v`` in ``mode`` (a key of :data:`PIXEL_PASSES`) into ``out``."""
        lo, hi = v.lo, v.hi
        idx_scale = (LUT_SIZE - 1) / max(hi - lo, 1e-12)
        sat, show_sat = v.saturated, v.settings.display.show_saturation
        if sat is None:  # any uint8 (H, W) array will do: it is not read
            sat, show_sat = self._zero_sat(v.nir.shape), False
        tab, i_on, blend = self._packed(mode, v.palette)
        # inputs read-only: one compiled version for every source (_validate.read_only)
        composite_pass(read_only(v.wl), read_only(v.nir), read_only(sat), np.float32(lo), np.float32(idx_scale), tab, i_on, blend,
                       bool(show_sat), self._rowbuf, out)

    def _decorate(self, img: np.ndarray, v: "_View") -> None:
        """Rim outlines and the transection plane of ``v`` on ``img``."""
        self._annotate(img, v.contours, _plane_polygon(v.settings, v.plane), v.plane, v.palette,
                       v.settings.display, v.gaps)

    def _zero_sat(self, shape) -> np.ndarray:
        if self._zsat is None or self._zsat.shape != shape:
            self._zsat = np.zeros(shape, np.uint8)
        return self._zsat

    def _annotate(self, img, contours, polygon, plane, pal, ds, gaps=()) -> None:
        h = img.shape[0]
        thick = max(1, h // 360)
        if ds.show_contours and contours:
            cs = [np.asarray(c, np.int32).reshape(-1, 1, 2) for c in contours if c is not None
                  and len(c) >= 2]
            if cs:
                cv2.drawContours(img, cs, -1, pal.rim, thick, cv2.LINE_8)
        if ds.show_contours and gaps:  # where a rim is missing, on its core's outline
            gs = [np.asarray(g, np.int32).reshape(-1, 1, 2) for g in gaps if len(g) >= 2]
            if gs:
                cv2.polylines(img, gs, False, GAP_BGR, 2 * thick, cv2.LINE_8)
        if polygon is not None and len(polygon):
            pts = np.round(np.asarray(polygon, np.float64)).astype(np.int32).reshape(-1, 1, 2)
            if plane is not None and plane.lost:  # drawn as lost: grey, thin, and told
                cv2.polylines(img, [pts], True, PLANE_LOST_BGR, thick, cv2.LINE_4)
                x, y = pts[:, 0, 0].min(), pts[:, 0, 1].min()
                _label(img, PLANE_LOST_TEXT, PLANE_LOST_BGR,
                       org=(int(max(x, 0)), int(max(y - 6 * thick, 12 * thick))))
                return
            flagged = plane is not None and plane.flagged
            colour = pal.plane_flagged if flagged else pal.plane
            cv2.polylines(img, [pts], True, colour, thick * (3 if flagged else 1), cv2.LINE_8)
            if flagged:
                text = "FLUORESCENCE IN PLANE"
                if plane.tbr is not None:
                    text += f"  TBR {plane.tbr:.1f}"
                x, y = pts[:, 0, 0].min(), pts[:, 0, 1].min()
                _label(img, text, colour, org=(int(x), int(max(y - 6 * thick, 12 * thick))))

    def _colorbar(self, out, lo, hi, threshold) -> None:
        h, w = out.shape[:2]
        bh, bw = max(16, h // 2), max(6, w // 80)
        x1 = w - max(4, w // 100)
        x0 = x1 - bw
        y0 = (h - bh) // 2
        # top = white level; sample the LUT the pixels use (once per size and table)
        if self._bar_key != (bh, self._t_key):
            self._bar = self._lut[np.linspace(LUT_SIZE - 1, 0, bh).astype(np.intp)]
            self._bar_key = (bh, self._t_key)
        out[y0:y0 + bh, x0:x1] = self._bar[:, None, :]
        cv2.rectangle(out, (x0 - 1, y0 - 1), (x1, y0 + bh), (255, 255, 255), 1)
        scale = max(0.3, h / 1800)
        _text(out, f"{hi:.4g}", (x0 - int(60 * scale * 2), y0 + int(10 * scale * 2)), scale)
        _text(out, f"{lo:.4g}", (x0 - int(60 * scale * 2), y0 + bh), scale)
        if threshold is not None and lo < threshold < hi:
            yt = y0 + int(round((1 - (threshold - lo) / (hi - lo)) * (bh - 1)))
            cv2.line(out, (x0 - bw // 2, yt), (x0, yt), (255, 255, 255), 1)


class _View(NamedTuple):
    """One frame's inputs to a renderer."""

    wl: np.ndarray
    nir: np.ndarray
    saturated: Optional[np.ndarray]
    lo: float
    hi: float
    contours: Sequence[np.ndarray]
    plane: object
    palette: Palette
    settings: Settings
    gaps: Sequence[np.ndarray] = ()


def _draw_wl(c: Compositor, v: _View, out: np.ndarray) -> None:
    np.copyto(out, v.wl)
    c._decorate(out, v)


def _draw_pass(mode: str, c: Compositor, v: _View, out: np.ndarray) -> None:
    c._pixels(mode, v, out)
    c._decorate(out, v)


def _draw_side_by_side(c: Compositor, v: _View, out: np.ndarray) -> None:
    right = c._scratch
    c._pixels("nir" if v.settings.display.side_by_side_right == "nir" else "overlay", v, right)
    c._decorate(right, v)
    _side_by_side(v.wl, right, out)


def _draw_pip(c: Compositor, v: _View, out: np.ndarray) -> None:
    c._pixels("overlay", v, out)
    c._decorate(out, v)
    c._pixels("nir", v, c._scratch)
    # the monochrome view is grey unless saturated pixels are shown in colour
    sat = v.saturated
    grey = not (v.settings.display.show_saturation and sat is not None and sat.max() > 0)
    _inset(out, c._scratch, v.settings.display.pip_scale, grey=grey, panes=c._panes)


@dataclass(frozen=True)
class Renderer:
    """How one display mode is drawn."""

    draw: Callable[[Compositor, _View, np.ndarray], None]
    #: the picture shows NIR levels, so the colour bar (``display.show_colorbar``) goes on it
    colour_bar: bool = True


#: The pixel passes: ``mode -> (table, blend over WL)``.  A mode whose whole
#: picture is one of these can also be written inside the normalisation
#: sweep (:meth:`Compositor.prepare_fused`).
PIXEL_PASSES = {
    "overlay": ("colour", True),
    "intensity": ("colour", False),
    "nir": ("grey", False),
}

#: How each display mode of :data:`nirf_overlay.settings.DISPLAY_MODES` is
#: drawn, keyed by its name (a test checks the two agree).  A new mode is a
#: row there and a renderer here.
RENDERERS = {
    "wl": Renderer(_draw_wl, colour_bar=False),
    "nir": Renderer(partial(_draw_pass, "nir")),
    "overlay": Renderer(partial(_draw_pass, "overlay")),
    "intensity": Renderer(partial(_draw_pass, "intensity")),
    "side-by-side": Renderer(_draw_side_by_side),
    "pip": Renderer(_draw_pip),
}


def _kept(bufs: dict, name: str, shape) -> np.ndarray:
    """``bufs[name]``, a uint8 array of ``shape``, made again only when the shape changes."""
    b = bufs.get(name)
    if b is None or b.shape != tuple(shape):
        b = bufs[name] = np.empty(shape, np.uint8)
    return b


def _side_by_side(left_src, right_src, out) -> None:
    """Each source scaled to half the width (aspect kept), side by side, centred on
    black; scaled straight into ``out`` (no pane allocated per frame)."""
    h, w = out.shape[:2]
    pw = w // 2
    ph = max(1, int(round(h * pw / w)))
    y0 = (h - ph) // 2
    out[:] = 0
    cv2.resize(left_src, (pw, ph), dst=out[y0:y0 + ph, :pw], interpolation=cv2.INTER_AREA)
    cv2.resize(right_src, (pw, ph), dst=out[y0:y0 + ph, w - pw:], interpolation=cv2.INTER_AREA)


def _inset(out, src, scale, grey: bool = False, panes=None) -> None:
    """``src`` scaled by ``scale`` (area average) into the top-right corner of ``out``.

    ``grey``: the three channels of ``src`` are equal.  Then one channel is
    scaled and copied to all three -- the same bytes, since INTER_AREA works
    on each channel alike, but at a scale like 0.3 OpenCV's generic area path
    takes 10.5 ms for a 1080p BGR frame and 1.8 ms for one channel.
    """
    h, w = out.shape[:2]
    iw = max(2, int(round(w * scale)))
    ih = max(2, int(round(h * iw / w)))
    m = max(2, w // 100)
    x0, y0 = w - iw - m, m
    dst = out[y0:y0 + ih, x0:x0 + iw]
    panes = {} if panes is None else panes
    if grey:
        one = cv2.extractChannel(src, 0, dst=_kept(panes, "grey", src.shape[:2]))
        small = cv2.resize(one, (iw, ih), dst=_kept(panes, "inset", (ih, iw)),
                           interpolation=cv2.INTER_AREA)
        dst[:] = small[:, :, None]
    else:
        cv2.resize(src, (iw, ih), dst=dst, interpolation=cv2.INTER_AREA)
    cv2.rectangle(out, (x0 - 1, y0 - 1), (x0 + iw, y0 + ih), (255, 255, 255), 1)


def _text(img, text, org, scale, colour=(255, 255, 255)) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _label(img, text, colour, org=None) -> None:
    """``text`` at ``org`` (its baseline's left end), moved so that all of it is in the picture."""
    h, w = img.shape[:2]
    scale = max(0.4, h / 900)
    if org is None:
        org = (int(10 * scale), int(30 * scale))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 4)
    org = (int(min(max(org[0], 0), max(0, w - tw - 2))),
           int(min(max(org[1], th + 2), max(th + 2, h - base - 2))))
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 2, cv2.LINE_AA)


def composite(wl: np.ndarray, nir: Optional[np.ndarray], *, lo: float, hi: float,
              settings, threshold: Optional[float] = None,
              saturated: Optional[np.ndarray] = None, contours=(), plane=None) -> np.ndarray:
    """One-off compositing (allocates; the pipeline keeps a :class:`Compositor`).

    See :meth:`Compositor.render` for the parameters.  Returns a new
    (H, W, 3) uint8 BGR array.
    """
    wl = np.ascontiguousarray(wl, dtype=np.uint8)
    if wl.ndim != 3 or wl.shape[2] != 3:
        raise ValueError(f"wl must be (H, W, 3) uint8 BGR, got shape {wl.shape}")
    if nir is not None:
        nir = np.ascontiguousarray(nir, dtype=np.float32)
        if nir.shape != wl.shape[:2]:
            raise ValueError(f"nir shape {nir.shape} differs from wl {wl.shape[:2]}")
    if saturated is not None:
        saturated = np.ascontiguousarray(saturated, dtype=np.uint8)
    return Compositor(ring=1).render(wl, nir, lo=lo, hi=hi, threshold=threshold,
                                     settings=settings, saturated=saturated,
                                     contours=contours, plane=plane).copy()


def warm_up() -> None:
    """Compile (or load from the cache) the compositing kernel (inputs reach it read-only,
    so one frame compiles the one version every source uses)."""
    from ..settings import Settings

    wl = np.zeros((8, 8, 3), np.uint8)
    nir = np.zeros((8, 8), np.float32)
    composite(wl, nir, lo=0.0, hi=1.0, settings=Settings(), saturated=np.zeros((8, 8), np.uint8))


#: the colour of a rim's gaps (its core's uncovered outline): orange, unlike
#: every palette's rim and plane colours
GAP_BGR = (0, 140, 255)

#: how a lost transection plane is drawn and labelled (the viewer's HUD says the same)
PLANE_LOST_TEXT = "PLANE LOST - redraw"
PLANE_LOST_BGR = (150, 150, 150)


def _plane_polygon(settings, plane):
    """The plane where it is in this frame (the anchored plane), else the settings' polygon."""
    if plane is not None and plane.polygon is not None:
        return plane.polygon
    return settings.plane.polygon or None
