"""In-process session decoders for intra-only codecs (PyAV): :class:`IntraSession`.

Each segment file is demuxed once to list its frames' packets (``pts``); any
frame is then one seek (or the next packet, when frames come in order) and
one decode by a codec context that lives as long as the session: the next
segment, any stride (2x, 4x, catching up) and any seek are just other packets
for the same decoder, and frames not shown are never decoded.  Only
intra-only codecs (:data:`~.format.INTRA_ONLY_CODECS`, the defaults) allow
that; a new decoder is made only where the codec or its parameters change (a
session partly compacted to FFV1).  Slice threads only: frame threads would
hold frames back until more packets come.

The two streams of a frame decode side by side: WL (the larger, about 60 %
of a pair's decode CPU) on a thread of its own, NIR on the caller's, both
outside the GIL (PyAV releases it in the codec and in the conversion), so a
pair takes the wall time of its slower stream on two cores instead of the sum.
"""

from __future__ import annotations

import bisect
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

import av
import numpy as np

from ..errors import SourceError

#: segment files kept open at once (the one being read, the one before and after a seek)
OPEN_FILES = 4


@dataclass
class FileIndex:
    """One segment file's frames: ``pts`` of each packet in order, and the codec
    parameters (``codec_key``: files with equal keys decode with one decoder)."""

    path: str
    codec_key: tuple
    pts: list


def _codec_key(cc) -> tuple:
    # Ut Video reads its layout from the FourCC, FFVHuff and FFV1 from the extradata
    return (cc.name, cc.width, cc.height, cc.pix_fmt, bytes(cc.extradata or b""),
            cc.bits_per_coded_sample, cc.codec_tag)


def _damaged(path: str, e: Exception) -> SourceError:
    return SourceError(f"{path}: cannot index its frames ({e}); the segment file is damaged "
                       "or not a Matroska file nirf-overlay wrote")


def index_file(path: str) -> FileIndex:
    """Demux ``path`` once; SourceError (one line) for a file that is not such a file.
    A file cut inside a frame lists the frames before the cut."""
    try:
        with av.open(path) as c:
            s = c.streams.video[0]
            key = _codec_key(s.codec_context)
            pts = [p.pts for p in c.demux(s) if p.size and not p.is_corrupt]
    except (av.FFmpegError, OSError, IndexError) as e:
        raise _damaged(path, e) from None
    return FileIndex(path, key, pts)


class _File:
    """An open segment file handing out the packet of any of its frames."""

    def __init__(self, index: FileIndex):
        self.index = index
        try:
            self.container = av.open(index.path)
        except (av.FFmpegError, OSError) as e:
            raise _damaged(index.path, e) from None
        self.stream = self.container.streams.video[0]
        self._packets = None  # demux iterator, positioned before frame self._next
        self._next = -1

    def packet(self, i: int):
        """Frame ``i``'s packet: the next one demuxed when frames come in order,
        otherwise after a seek to its time."""
        want = self.index.pts[i]
        try:
            if i != self._next:
                self.container.seek(want, stream=self.stream, backward=True)
                self._packets = self.container.demux(self.stream)
            for p in self._packets:
                if p.pts is not None and p.pts >= want and p.size:
                    if p.pts != want:
                        break
                    self._next = i + 1
                    return p
        except av.FFmpegError as e:
            raise SourceError(f"{self.index.path}: cannot read frame {i} of the segment ({e}); "
                              "the segment file is damaged") from None
        self._next = -1
        raise SourceError(f"{self.index.path}: frame {i} of the segment is missing "
                          "(corrupt or truncated)")

    def close(self) -> None:
        self.container.close()


class _Decoder:
    """One codec context decoding, in order, the packets it is given."""

    def __init__(self, index: FileIndex):
        name, w, h, pix_fmt, extradata, bpcs, tag = self.key = index.codec_key
        self.path = index.path
        ctx = av.CodecContext.create(name, "r")
        ctx.width, ctx.height, ctx.pix_fmt = w, h, pix_fmt
        ctx.bits_per_coded_sample, ctx.codec_tag = bpcs, tag
        if extradata:
            ctx.extradata = extradata
        ctx.thread_type = "SLICE"  # frame threads hold frames back
        ctx.thread_count = 0 if name == "ffv1" else 1  # FFV1: 4 slices (format.NIR_CODECS)
        self.ctx = ctx

    def decode(self, packet, path: str, index: int):
        try:
            frames = self.ctx.decode(packet)
        except av.FFmpegError as e:
            raise SourceError(f"{path}: cannot decode frame {index} of the session ({e}); "
                              "the segment file is damaged") from None
        if len(frames) != 1:
            raise SourceError(f"{path}: frame {index} of the session did not decode "
                              "(corrupt or truncated)")
        return frames[0]

    def close(self) -> None:
        self.ctx = None  # freed with its last reference (PyAV has no close for it)


def _nir_array(frame) -> np.ndarray:
    return frame.to_ndarray()  # gray16le: (H, W) uint16


def _wl_array(frame) -> np.ndarray:
    return frame.to_ndarray(format="bgr24")  # gbrp / bgr0: a lossless reorder


def _decoded(f: _File, dec: _Decoder, offset: int, index: int, to_array) -> np.ndarray:
    return to_array(dec.decode(f.packet(offset), f.index.path, index))


class IntraSession:
    """The NIR and WL decoders of a session whose codecs are all intra-only.

    Parameters
    ----------
    path : the session directory
    segments : the session's :class:`~.session_reader.SegmentEntry` list
    on_open : called with the number of decoders each time decoders are made
        (counted by :attr:`SessionSource.decoder_opens <nirf_overlay.recording.SessionSource>`)
    """

    def __init__(self, path: str, segments: list, on_open: Callable[[int], None]):
        self._paths = [(os.path.join(path, s.nir_file), os.path.join(path, s.wl_file))
                       for s in segments]
        self._firsts = [s.first_frame for s in segments]
        self._index: dict = {}
        self._open: OrderedDict = OrderedDict()
        self._decoders: Optional[tuple[_Decoder, _Decoder]] = None
        self._on_open = on_open
        self._wl_thread: Optional[ThreadPoolExecutor] = None

    def frame(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Decode recording frame ``index``: ``(nir uint16 (H, W), wl uint8 (H, W, 3))``."""
        seg_i = bisect.bisect_right(self._firsts, index) - 1
        offset = index - self._firsts[seg_i]
        files = self._files(seg_i)
        if self._decoders is None or any(d.key != f.index.codec_key
                                         for d, f in zip(self._decoders, files)):
            self._close_decoders()
            self._decoders = tuple(_Decoder(f.index) for f in files)
            self._on_open(len(self._decoders))
        for f in files:
            if offset >= len(f.index.pts):
                raise SourceError(f"{f.index.path}: holds {len(f.index.pts)} frames, frame "
                                  f"{offset} of the segment is missing (corrupt or truncated)")
        (nir_f, wl_f), (nir_dec, wl_dec) = files, self._decoders
        if self._wl_thread is None:  # made on the reading thread: it inherits its priority
            self._wl_thread = ThreadPoolExecutor(1, thread_name_prefix="nirf-wl-decode")
        wl = self._wl_thread.submit(_decoded, wl_f, wl_dec, offset, index, _wl_array)
        try:
            nir = _decoded(nir_f, nir_dec, offset, index, _nir_array)
        finally:
            wl_array = wl.result()  # waited for even when NIR failed: one frame at a time
        return nir, wl_array

    def close(self) -> None:
        self._close_decoders()
        if self._wl_thread is not None:
            self._wl_thread.shutdown()
            self._wl_thread = None
        for f in self._open.values():
            for g in f:
                g.close()
        self._open.clear()

    def _close_decoders(self) -> None:
        if self._decoders is not None:
            for d in self._decoders:
                d.close()
            self._decoders = None

    def _files(self, seg_i: int) -> tuple[_File, _File]:
        got = self._open.get(seg_i)
        if got is not None:
            self._open.move_to_end(seg_i)
            return got
        idx = self._index.get(seg_i)
        if idx is None:
            idx = self._index[seg_i] = tuple(index_file(p) for p in self._paths[seg_i])
        got = self._open[seg_i] = tuple(_File(i) for i in idx)
        while len(self._open) > OPEN_FILES:
            for g in self._open.popitem(last=False)[1]:
                g.close()
        return got
