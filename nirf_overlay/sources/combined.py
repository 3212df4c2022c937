"""One stream carrying both views: ``--combined X --layout side-by-side|top-bottom|custom``.

Laparoscopy towers' outputs and many OR recorders give one 8-bit colour
picture with white light and the monochrome NIR view as insets.  Where each
view is, is a :class:`~nirf_overlay.calibration.model.Layout` (two
rectangles in combined-frame pixels):

``side-by-side`` / ``top-bottom``
    the frame's two equal halves (an odd middle column or row is ignored),
    NIR in the half ``--nir-half`` names (default right / bottom);
``custom``
    ``--wl-rect X,Y,W,H --nir-rect X,Y,W,H``;
none given
    the layout of the calibration that applies (a tower's profile), which
    :func:`~nirf_overlay.calibration.resolve_calibration` hands to the open
    source (:meth:`CombinedFileSource.take_layout`), else side-by-side.

The NIR inset may have another size than the WL one (an enlarged NIR view):
it is resized to the WL inset's size, with ``INTER_AREA`` (pixel-area mean)
when it is larger in both directions and bilinear (``INTER_LINEAR``)
otherwise, so masks, metrics and the overlay are in WL-inset pixels as
everywhere else.  The WL inset must be colour, the NIR inset gray (a colour
NIR inset, e.g. the tower's own overlay, is refused because it is not NIR
signal).  The NIR becomes ``uint16`` with its 8-bit values (0..255,
``nir_bits = 8`` unless ``--nir-bits`` gives fewer).

Files use the same index-paired, seekable machinery as ``--wl/--nir`` files;
devices and URLs use a capture thread that keeps only the newest frame.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ..calibration.model import Layout
from ..calibration.profile_schema import layout_problem
from ..errors import SourceError
from ..frame import SourceInfo
from ._cv import NirMode, nir_from_frame, nir_mode, wl_from_frame
from .inputs import classify
from .live import LiveSingleSource, open_live
from .readers import first_frame, open_reader
from .video import FilePairSource

LAYOUTS = ("side-by-side", "top-bottom", "custom")
_HALVES = {"side-by-side": ("left", "right"), "top-bottom": ("top", "bottom")}


def halves_layout(size: tuple[int, int], layout: str, nir_half: str) -> Layout:
    """The :class:`Layout` of a frame of ``size`` (W, H) split into two equal halves."""
    w, h = size
    if layout == "side-by-side":
        a, b = (0, 0, w // 2, h), (w - w // 2, 0, w // 2, h)
    else:
        a, b = (0, 0, w, h // 2), (0, h - h // 2, w, h // 2)
    return Layout(a, b) if nir_half in ("right", "bottom") else Layout(b, a)


def crop(frame: np.ndarray, rect) -> np.ndarray:
    """The view of ``frame`` inside ``rect`` (x, y, w, h); no copy."""
    x, y, w, h = rect
    return frame[y:y + h, x:x + w]


def map_nir(nir: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The NIR inset resized to ``size`` (W, H), the WL inset's (see the module docstring)."""
    h, w = nir.shape[:2]
    if (w, h) == tuple(size):
        return nir
    shrink = w >= size[0] and h >= size[1]
    return cv2.resize(nir, tuple(size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class Splitter:
    """Cuts a combined frame into the WL inset and the NIR inset in WL-inset pixels."""

    def __init__(self, layout: Layout, mode: NirMode, name: str, error: str = ""):
        self.layout, self.mode, self.name = layout, mode, name
        #: why the default layout does not fit (raised at the first frame unless a
        #: calibration's layout replaces it first)
        self.error = error

    def __call__(self, frame: np.ndarray):
        """``(wl (H, W, 3) uint8, nir (H, W) uint16)`` of one combined frame."""
        if self.error:
            raise SourceError(self.error)
        wl = wl_from_frame(crop(frame, self.layout.wl_rect), self.name)
        nir = nir_from_frame(crop(frame, self.layout.nir_rect), self.mode, self.name)
        return wl, np.ascontiguousarray(map_nir(nir, self.layout.wl_size))


def spec_layout(spec, size: tuple[int, int]) -> tuple[Optional[Layout], str, str]:
    """``(layout, words, nir_half)`` the spec's options give for a frame of ``size``.

    ``layout`` is None when the spec names none (the calibration's may apply).
    Raises a one-line :class:`SourceError` naming the option at fault.
    """
    layout = spec.layout
    rects = (spec.wl_rect, spec.nir_rect)
    if layout is None and any(r is not None for r in rects):
        layout = "custom"
    if layout is None:
        if spec.nir_half is None:
            return None, "", ""
        layout = "side-by-side"  # the default the halves are named against
    if layout not in LAYOUTS:
        raise SourceError(f"--layout {layout}: expected side-by-side, top-bottom or custom")
    if layout == "custom":
        for flag, rect in (("--wl-rect", spec.wl_rect), ("--nir-rect", spec.nir_rect)):
            if rect is None:
                raise SourceError(f"--layout custom: needs {flag} X,Y,W,H (combined-frame pixels)")
        if spec.nir_half is not None:
            raise SourceError(f"--nir-half {spec.nir_half}: does not apply to --layout custom "
                              "(--nir-rect says where NIR is)")
        custom = Layout(tuple(spec.wl_rect), tuple(spec.nir_rect))
        _check_layout(custom, size, spec.combined, {"wl_rect": "--wl-rect", "nir_rect": "--nir-rect"})
        return custom, f"WL {_rect_words(custom.wl_rect)}, NIR {_rect_words(custom.nir_rect)}", ""
    for flag, rect in (("--wl-rect", spec.wl_rect), ("--nir-rect", spec.nir_rect)):
        if rect is not None:
            raise SourceError(f"{flag}: needs --layout custom (--layout is {layout})")
    nir_half = spec.nir_half or _HALVES[layout][1]
    if nir_half not in _HALVES[layout]:
        raise SourceError(f"--nir-half {nir_half}: does not fit --layout {layout} "
                          f"(use {' or '.join(_HALVES[layout])})")
    w, h = size
    if (layout == "side-by-side" and w < 2) or (layout == "top-bottom" and h < 2):
        raise SourceError(f"{spec.combined}: frame {w}x{h} is too small to split {layout}")
    return halves_layout(size, layout, nir_half), f"{layout}, NIR {nir_half}", nir_half


def _check_layout(layout: Layout, size, name, options: dict) -> None:
    which, problem = layout_problem(layout.wl_rect, layout.nir_rect, size)
    if problem:
        shown = ",".join(str(v) for v in getattr(layout, which))
        raise SourceError(f"{options[which]} {shown}: {problem} of {name}")


def _rect_words(rect) -> str:
    x, y, w, h = rect
    return f"{w}x{h}+{x}+{y}"


class _HalfReader:
    """One inset of a shared reader, so FilePairSource can pair the insets by index."""

    def __init__(self, shared: "_SharedSplit", which: int):
        self._shared, self._which = shared, which
        self.name = shared.reader.name
        self.frame_count = shared.reader.frame_count
        self.fps = shared.reader.fps
        self.props = shared.reader.props

    @property
    def ended_early(self) -> str:
        return self._shared.reader.ended_early if self._which == 0 else ""

    def read(self):
        return self._shared.read(self._which)

    def seek(self, index: int) -> None:
        if self._which == 0:
            self._shared.reader.seek(index)

    def close(self) -> None:
        if self._which == 0:
            self._shared.reader.close()


class _SharedSplit:
    def __init__(self, reader, split: Splitter):
        self.reader, self.split = reader, split
        self._pending = None

    def read(self, which: int):
        if which == 0:  # the WL inset reads the frame; the NIR inset takes the rest
            got = self.reader.read()
            if got is None:
                self._pending = None
                return None
            frame, t = got
            wl, nir = self.split(frame)
            self._pending = (nir, t)
            return wl, t
        got, self._pending = self._pending, None
        return got


class _TakesLayout:
    """What both combined sources share: the layout the calibration brings."""

    _explicit: bool
    _frame0: np.ndarray
    _split: Splitter

    def take_layout(self, layout: Layout, origin: str = "calibration") -> bool:
        """Use the calibration's ``layout`` unless the user gave one; True if taken."""
        if self._explicit or layout == self._split.layout:
            return False
        name = self._split.name
        h, w = self._frame0.shape[:2]
        which, problem = layout_problem(layout.wl_rect, layout.nir_rect, (w, h))
        if problem:
            raise SourceError(f"{origin}: layout: {which}: {problem} of {name}")
        mode = _modes(self._frame0, layout, name, self._nir_bits)[1]
        self._split.layout, self._split.mode, self._split.error = layout, mode, ""
        self.info.size = layout.wl_size
        self.info.nir_bits = mode.bits
        self.info.extra.update(layout=layout.to_dict(), nir_mode=mode.mode)
        self.info.extra.pop("nir_half", None)
        self.info.description = f"combined {name} (WL {_rect_words(layout.wl_rect)}, " \
                                f"NIR {_rect_words(layout.nir_rect)}, from {origin})"
        return True


class CombinedFileSource(_TakesLayout, FilePairSource):
    """A combined file: the WL and NIR insets of each frame, paired by index."""


class CombinedLiveSource(_TakesLayout, LiveSingleSource):
    """A combined device or stream: every frame yields a pair."""


def open_combined(spec):
    """The source for ``--combined spec.combined`` (a file pair-like source or a live one)."""
    kind = classify(spec.combined)
    name = spec.combined
    if kind.live:
        cap, frame0, props = open_live(kind, name, raw=False, spec=spec)
        close = cap.release
    else:
        reader = open_reader(kind, name, raw=False, fps=spec.fps)
        props, close = reader.props, reader.close
    try:
        _check_colour(props, name)
        if not kind.live:
            frame0 = first_frame(reader)
        h, w = frame0.shape[:2]
        layout, words, nir_half = spec_layout(spec, (w, h))
        explicit, error = layout is not None, ""
        if explicit:
            mode = _modes(frame0, layout, name, spec.nir_bits, nir_half)[1]
        else:
            layout, words = halves_layout((w, h), "side-by-side", "right"), "side-by-side, NIR right"
            nir_half = "right"
            try:
                mode = _modes(frame0, layout, name, spec.nir_bits, nir_half)[1]
            except SourceError as e:  # a tower's layout may come with its calibration
                mode = NirMode("bgr", 8)
                error = (f"{e} (read side-by-side, the default; give --layout, or a "
                         f"--calibration profile with the tower's layout)")
    except Exception:
        close()
        raise
    split = Splitter(layout, mode, name, error)
    extra = {"format": props["pixel_format"], "layout": layout.to_dict(), "nir_mode": mode.mode}
    if nir_half:
        extra["nir_half"] = nir_half
    description = f"{spec.describe()} ({words})"
    if kind.live:
        shape0 = frame0.shape

        def check(frame) -> Optional[str]:
            if frame.shape != shape0:
                return f"frame format changed from {shape0} to {frame.shape}"
            return ""

        info = SourceInfo(
            description=description, size=layout.wl_size, fps=float(props["fps"] or 30.0),
            nir_bits=mode.bits, live=True, device=props["device"], exposure_ms=props["exposure_ms"],
            gain=props["gain"], extra=dict(extra, backend=props["backend"]))
        source = CombinedLiveSource(info=info, kind=kind, name=name, cap=cap, split=split,
                                    check=check, spec=spec)
    else:
        info = SourceInfo(
            description=description, size=layout.wl_size, fps=float(reader.fps),
            nir_bits=mode.bits, live=False, frame_count=reader.frame_count, seekable=True,
            extra=extra)
        shared = _SharedSplit(reader, split)
        # the shared split hands out NIR already as uint16 in WL-inset pixels
        source = CombinedFileSource(_HalfReader(shared, 0), _HalfReader(shared, 1),
                                    NirMode("u16", mode.bits), info, spec)
    source._explicit, source._frame0, source._split = explicit, frame0, split
    source._nir_bits = spec.nir_bits
    return source


def _check_colour(props: dict, name: str) -> None:
    if props.get("gray"):
        raise SourceError(f"{name}: the combined stream is single-channel "
                          f"({props['pixel_format']}); its WL inset must be colour")


def _modes(frame, layout: Layout, name, nir_bits, nir_half: str = ""):
    """``(wl, nir mode)`` of the first frame; one line if an inset is not what it should be."""
    wl = wl_from_frame(crop(frame, layout.wl_rect), f"{name} (WL inset)")
    try:
        mode = nir_mode(crop(frame, layout.nir_rect), name, nir_bits)
    except SourceError as e:
        inset = f"the NIR half ({nir_half}) is" if nir_half else "the NIR inset is"
        raise SourceError(str(e).replace("the NIR stream is", inset)
                          .replace("--nir needs a single-channel stream",
                                   "check --layout, --nir-half or --nir-rect")) from None
    return wl, mode
