"""One stream carrying both views: ``--combined X --layout side-by-side|top-bottom``.

Laparoscopy towers' dual-view outputs and many OR recorders give one 8-bit
colour picture with white light in one half and the monochrome NIR view in
the other.  Each frame is split into two equal halves (an odd middle column
or row is ignored); the WL half must be colour, the NIR half gray (a colour
NIR half, e.g. a pseudo-coloured overlay, is refused because it is not NIR
counts).  The NIR half becomes ``uint16`` with its 8-bit values (0..255,
``nir_bits = 8`` unless ``--nir-bits`` gives fewer).

Files use the same index-paired, seekable machinery as ``--wl/--nir`` files;
devices and URLs use a capture thread that keeps only the newest frame.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import SourceError
from ..frame import SourceInfo
from ._cv import nir_from_frame, nir_mode, wl_from_frame
from .base import FrameSource
from .inputs import classify
from .live import LiveSingleSource, open_live
from .readers import first_frame, open_reader
from .video import FilePairSource

_HALVES = {"side-by-side": ("left", "right"), "top-bottom": ("top", "bottom")}


def split_halves(frame: np.ndarray, layout: str, nir_half: str):
    """``(wl_half, nir_half)`` views of a combined frame (no copy).

    Parameters
    ----------
    frame : (H, W, C) array
    layout : ``"side-by-side"`` or ``"top-bottom"``
    nir_half : ``"left"``/``"right"`` or ``"top"``/``"bottom"``
    """
    h, w = frame.shape[:2]
    if layout == "side-by-side":
        a, b = frame[:, : w // 2], frame[:, w - w // 2:]
    else:
        a, b = frame[: h // 2], frame[h - h // 2:]
    return (a, b) if nir_half in ("right", "bottom") else (b, a)


def _layout(spec) -> tuple[str, str]:
    layout = spec.layout or "side-by-side"
    if layout not in _HALVES:
        raise SourceError(f"--layout {layout}: expected side-by-side or top-bottom")
    nir_half = spec.nir_half or _HALVES[layout][1]
    if nir_half not in _HALVES[layout]:
        raise SourceError(f"--nir-half {nir_half}: does not fit --layout {layout} "
                          f"(use {' or '.join(_HALVES[layout])})")
    return layout, nir_half


class _HalfReader:
    """One half of a shared reader, so FilePairSource can pair the halves by index."""

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
    def __init__(self, reader, layout: str, nir_half: str):
        self.reader, self.layout, self.nir_half = reader, layout, nir_half
        self._pending = None

    def read(self, which: int):
        if which == 0:  # the WL half reads the frame; the NIR half takes the rest
            got = self.reader.read()
            if got is None:
                self._pending = None
                return None
            frame, t = got
            wl, nir = split_halves(frame, self.layout, self.nir_half)
            self._pending = (nir, t)
            return wl, t
        got, self._pending = self._pending, None
        return got


def open_combined(spec) -> FrameSource:
    """The source for ``--combined spec.combined`` (a file pair-like source or a live one)."""
    layout, nir_half = _layout(spec)
    kind = classify(spec.combined)
    name = spec.combined
    if kind.live:
        return _open_live(spec, kind, name, layout, nir_half)
    reader = open_reader(kind, name, raw=False, fps=spec.fps)
    try:
        _check_colour(reader.props, name)
        frame0 = first_frame(reader)
        wl0, nir0, mode = _validate(frame0, name, layout, nir_half, spec.nir_bits)
    except Exception:
        reader.close()
        raise
    shared = _SharedSplit(reader, layout, nir_half)
    info = SourceInfo(
        description=f"{spec.describe()} ({layout}, NIR {nir_half})",
        size=(int(wl0.shape[1]), int(wl0.shape[0])), fps=float(reader.fps),
        nir_bits=mode.bits, live=False, frame_count=reader.frame_count, seekable=True,
        extra={"format": reader.props["pixel_format"], "layout": layout,
               "nir_half": nir_half, "nir_mode": mode.mode},
    )
    return FilePairSource(_HalfReader(shared, 0), _HalfReader(shared, 1), mode, info, spec)


def _check_colour(props: dict, name: str) -> None:
    if props.get("gray"):
        raise SourceError(f"{name}: the combined stream is single-channel "
                          f"({props['pixel_format']}); its WL half must be colour")


def _validate(frame, name, layout, nir_half, nir_bits):
    h, w = frame.shape[:2]
    if (layout == "side-by-side" and w < 2) or (layout == "top-bottom" and h < 2):
        raise SourceError(f"{name}: frame {w}x{h} is too small to split {layout}")
    wl_raw, nir_raw = split_halves(frame, layout, nir_half)
    wl = wl_from_frame(wl_raw, f"{name} (WL half)")
    try:
        mode = nir_mode(nir_raw, name, nir_bits)
    except SourceError as e:
        raise SourceError(str(e).replace("the NIR stream is", f"the NIR half ({nir_half}) is")
                          .replace("--nir needs a single-channel stream",
                                   "check --layout and --nir-half")) from None
    nir = nir_from_frame(nir_raw, mode, name)
    return wl, nir, mode


def _open_live(spec, kind, name, layout, nir_half) -> FrameSource:
    cap, frame0, props = open_live(kind, name, raw=False, spec=spec)
    try:
        _check_colour(props, name)
        wl0, _, mode = _validate(frame0, name, layout, nir_half, spec.nir_bits)
    except Exception:
        cap.release()
        raise
    shape0 = frame0.shape

    def split(frame):
        wl, nir = split_halves(frame, layout, nir_half)
        return wl_from_frame(wl, name), nir_from_frame(nir, mode, name)

    def check(frame) -> Optional[str]:
        if frame.shape != shape0:
            return f"frame format changed from {shape0} to {frame.shape}"
        return ""

    info = SourceInfo(
        description=f"{spec.describe()} ({layout}, NIR {nir_half})",
        size=(int(wl0.shape[1]), int(wl0.shape[0])), fps=float(props["fps"] or 30.0),
        nir_bits=mode.bits, live=True, device=props["device"], exposure_ms=props["exposure_ms"],
        gain=props["gain"],
        extra={"format": props["pixel_format"], "layout": layout, "nir_half": nir_half,
               "nir_mode": mode.mode, "backend": props["backend"]},
    )
    return LiveSingleSource(info=info, kind=kind, name=name, cap=cap, split=split, check=check,
                            spec=spec)
