"""Two-stream sources: ``--wl X --nir Y``.

X and Y are each a video file (MP4/H.264, MKV/FFV1 including gray16le, AVI,
...), an image-sequence pattern (``nir/%06d.tiff``), a V4L2 device (``0`` or
``/dev/video0``) or a network URL (``rtsp://``, ``udp://``, ``http://``).
Two files (or sequences) pair by index; two live inputs pair by capture time
(:class:`~nirf_overlay.sources.live.LivePairSource`).

Bit depth
---------
NIR is read with FFmpeg's BGR conversion off, so gray16le stays ``uint16``
and 16-bit PNG/TIFF sequences stay 16-bit.  8-bit NIR becomes ``uint16`` with
the same values 0..255 and ``nir_bits = 8``; it is never scaled up.  A
3-channel NIR stream whose channels are equal (a gray picture in a colour
codec) is accepted and reduced to one channel; a genuinely colour one is
refused.  ``nir_bits`` is 16 for 16-bit data and 8 for 8-bit data unless
``--nir-bits`` says otherwise: the data do not tell a 12-bit sensor from a
dark 16-bit one, so a 16-bit stream whose values all fit in 12 bits stays
``nir_bits = 16`` unless told (the bundled sample is told: 12).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from ..errors import SourceError
from ..frame import FramePair, SourceInfo, SourceStats
from ._cv import nir_from_frame, nir_mode, wl_from_frame
from .base import FrameSource
from .inputs import classify
from .live import LivePairSource, open_live
from .readers import first_frame, load_frame_meta, open_reader, sidecar_path

log = logging.getLogger(__name__)


def open_pair(spec) -> FrameSource:
    """The source for ``--wl spec.wl --nir spec.nir``.

    Raises
    ------
    SourceError
        One line naming the input: missing file, unopenable device or URL, no
        decodable frame, WL not colour, NIR not single-channel, sizes differ,
        or a file mixed with a live input.
    """
    wl_kind, nir_kind = classify(spec.wl), classify(spec.nir)
    if wl_kind.live != nir_kind.live:
        live, fixed = (spec.wl, spec.nir) if wl_kind.live else (spec.nir, spec.wl)
        raise SourceError(f"{fixed}: is a file but {live} is a live input; give two files "
                          "(paired by index) or two live inputs (paired by time)")
    if wl_kind.live:
        return _open_live_pair(spec, wl_kind, nir_kind)
    return FilePairSource.open(spec, wl_kind, nir_kind)


def _check_wl_format(props: dict, name: str) -> None:
    if props.get("gray"):
        raise SourceError(f"{name}: the white-light stream is single-channel "
                          f"({props['pixel_format']}); --wl needs a colour stream")


def _check_sizes(wl, nir, spec) -> None:
    if wl.shape[:2] != nir.shape[:2]:
        (h1, w1), (h2, w2) = wl.shape[:2], nir.shape[:2]
        raise SourceError(f"{spec.nir}: NIR is {w2}x{h2} but WL {spec.wl} is {w1}x{h1}; "
                          "WL and NIR must be the same size")


class FilePairSource(FrameSource):
    """Two finite streams (files or image sequences) paired by frame index.

    Seekable; as fast as possible, or paced at the WL frame rate when
    ``spec.realtime``; loops when ``spec.loop``.  When the two streams declare
    different lengths the shorter wins and ``stats.length_mismatch`` holds the
    difference.  A stream that stops decoding early (truncated, corrupt) ends
    the source cleanly with ``stats.message`` saying so.
    """

    def __init__(self, wl_reader, nir_reader, nir_mode_, info: SourceInfo, spec):
        self._wl, self._nir = wl_reader, nir_reader
        self._mode = nir_mode_
        self.info = info
        self.stats = SourceStats()
        self._realtime, self._loop = bool(spec.realtime), bool(spec.loop)
        self._index = 0
        self._loops = 0
        self._anchor: Optional[tuple[float, int]] = None  # (monotonic, index) for pacing
        self._closed = False
        meta_path = (spec.options or {}).get("frame_meta") or sidecar_path(nir_reader.name)
        self._frame_meta = load_frame_meta(meta_path) if meta_path else {}
        if meta_path:
            info.extra["frame_meta"] = str(meta_path)
        counts = (wl_reader.frame_count, nir_reader.frame_count)
        if None not in counts and counts[0] != counts[1]:
            self.stats.length_mismatch = abs(counts[0] - counts[1])
            shorter = "WL" if counts[0] < counts[1] else "NIR"
            self.stats.message = (f"WL has {counts[0]} frames, NIR {counts[1]}: using the first "
                                  f"{min(counts)} (the {shorter} length)")
            log.warning("%s", self.stats.message)

    @classmethod
    def open(cls, spec, wl_kind, nir_kind) -> "FilePairSource":
        wl_reader = open_reader(wl_kind, spec.wl, raw=False, fps=spec.fps)
        try:
            _check_wl_format(wl_reader.props, spec.wl)
            wl0 = wl_from_frame(first_frame(wl_reader), spec.wl)
            nir_reader = open_reader(nir_kind, spec.nir, raw=True, fps=spec.fps)
        except Exception:
            wl_reader.close()
            raise
        try:
            nir0 = first_frame(nir_reader)
            mode = nir_mode(nir0, spec.nir, spec.nir_bits)
            _check_sizes(wl0, nir_from_frame(nir0, mode, spec.nir), spec)
        except Exception:
            wl_reader.close()
            nir_reader.close()
            raise
        counts = [c for c in (wl_reader.frame_count, nir_reader.frame_count) if c is not None]
        if abs(wl_reader.fps - nir_reader.fps) > 0.01 * wl_reader.fps:
            log.warning("WL %s runs at %.3g fps but NIR %s at %.3g fps; pairing by index",
                        spec.wl, wl_reader.fps, spec.nir, nir_reader.fps)
        info = SourceInfo(
            description=spec.describe(),
            size=(int(wl0.shape[1]), int(wl0.shape[0])),
            fps=float(wl_reader.fps),
            nir_bits=mode.bits,
            live=False,
            frame_count=min(counts) if counts else None,
            seekable=True,
            extra={"wl_format": wl_reader.props["pixel_format"],
                   "nir_format": nir_reader.props["pixel_format"],
                   "nir_mode": mode.mode,
                   "wl_frames": wl_reader.frame_count, "nir_frames": nir_reader.frame_count},
        )
        try:
            return cls(wl_reader, nir_reader, mode, info, spec)
        except Exception:
            wl_reader.close()
            nir_reader.close()
            raise

    def read(self, timeout: Optional[float] = None) -> Optional[FramePair]:
        if self._closed:
            return None
        got = self._read_both()
        if got is None and self._loop and self._index > 0:
            self._loops += 1
            self.seek(0)
            got = self._read_both()
        if got is None:
            self._end()
            return None
        (wl, wl_t), (nir, nir_t) = got
        if self._realtime:
            self._pace()
        exposure_ms, gain = self._frame_meta.get(self._index, (None, None))
        pair = FramePair(
            wl=wl_from_frame(wl, self.info.description),
            nir=nir_from_frame(nir, self._mode, self.info.description),
            nir_bits=self.info.nir_bits, index=self._index, wl_time=wl_t, nir_time=nir_t,
            arrival=time.monotonic(), exposure_ms=exposure_ms, gain=gain,
            meta={"loop": self._loops},
        )
        self._index += 1
        self.stats.delivered += 1
        return pair

    def _read_both(self):
        n = self.info.frame_count
        if n is not None and self._index >= n:
            return None
        wl = self._wl.read()
        if wl is None:
            return None
        nir = self._nir.read()
        if nir is None:
            return None
        return wl, nir

    def _end(self) -> None:
        early = self._wl.ended_early or self._nir.ended_early
        self.stats.status = "ended"
        if early:
            self.stats.message = early
            log.warning("%s", early)

    def _pace(self) -> None:
        now = time.monotonic()
        if self._anchor is None:
            self._anchor = (now, self._index)
            return
        t0, i0 = self._anchor
        due = t0 + (self._index - i0) / self.info.fps
        if due > now:
            time.sleep(due - now)
        elif now - due > 0.5:  # fell far behind (paused, slow consumer): re-anchor, don't burst
            self._anchor = (now, self._index)

    def seek(self, index: int) -> None:
        n = self.info.frame_count
        index = max(0, int(index))
        if n is not None:
            index = min(index, max(n - 1, 0))
        self._wl.seek(index)
        self._nir.seek(index)
        self._index = index
        self._anchor = None
        if self.stats.status == "ended":
            self.stats.status = "ok"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._wl.close()
            self._nir.close()


def _open_live_pair(spec, wl_kind, nir_kind) -> FrameSource:
    # Open both at once: probing a network stream or waking a camera takes
    # seconds, and the two do not depend on each other.
    with ThreadPoolExecutor(2, thread_name_prefix="open") as pool:
        futures = [pool.submit(open_live, wl_kind, spec.wl, raw=False, spec=spec),
                   pool.submit(open_live, nir_kind, spec.nir, raw=True, spec=spec)]
    opened = [f.result() if f.exception() is None else None for f in futures]
    failed = [f.exception() for f in futures if f.exception() is not None]
    if failed:
        for got in opened:
            if got is not None:
                got[0].release()
        raise failed[0]
    (wl_cap, wl0, wl_props), (nir_cap, nir0, nir_props) = opened
    try:
        _check_wl_format(wl_props, spec.wl)
        wl0 = wl_from_frame(wl0, spec.wl)
        mode = nir_mode(nir0, spec.nir, spec.nir_bits)
        if spec.nir_bits is None and nir_props["pixel_format"] == "Y10":
            mode.bits = 10  # a V4L2 Y10 camera says how many bits it fills
        _check_sizes(wl0, nir_from_frame(nir0, mode, spec.nir), spec)
    except Exception:
        wl_cap.release()
        nir_cap.release()
        raise
    size = (int(wl0.shape[1]), int(wl0.shape[0]))

    def check_wl(frame) -> str:
        if frame.shape[1::-1] != size or frame.ndim != 3:
            return f"frame format changed to {frame.shape} (expected {size[0]}x{size[1]} colour)"
        return ""

    def check_nir(frame) -> str:
        if frame.shape[1::-1] != size:
            return f"frame size changed to {frame.shape[1]}x{frame.shape[0]}"
        try:
            nir_from_frame(frame, mode, spec.nir)
        except SourceError as e:
            return str(e)
        return ""

    fps = wl_props["fps"] or nir_props["fps"] or 30.0
    info = SourceInfo(
        description=spec.describe(), size=size, fps=float(fps), nir_bits=mode.bits, live=True,
        frame_count=None, device=" + ".join(d for d in (wl_props["device"], nir_props["device"]) if d),
        exposure_ms=nir_props["exposure_ms"], gain=nir_props["gain"], seekable=False,
        extra={"wl_format": wl_props["pixel_format"], "nir_format": nir_props["pixel_format"],
               "nir_mode": mode.mode, "wl_backend": wl_props["backend"],
               "nir_backend": nir_props["backend"], "wl_exposure_ms": wl_props["exposure_ms"],
               "wl_gain": wl_props["gain"]},
    )
    return LivePairSource(
        info=info, wl_kind=wl_kind, wl_name=spec.wl, nir_kind=nir_kind, nir_name=spec.nir,
        wl_cap=wl_cap, nir_cap=nir_cap,
        to_wl=lambda f: wl_from_frame(f, spec.wl),
        to_nir=lambda f: nir_from_frame(f, mode, spec.nir),
        check_wl=check_wl, check_nir=check_nir, spec=spec,
    )
