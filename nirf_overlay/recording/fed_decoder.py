"""Long-running session decoders fed one packet per frame shown: :class:`FedSession`.

Before, each segment (a second of video) and each seek, stride change or
catch-up jump started two new FFmpeg processes (NIR and WL), 230-450 ms on a
loaded machine before the first 1080p frame.  Here one FFmpeg process per
stream reads a live Matroska stream on its stdin (:mod:`.mkv_packets`), and
the reader sends it exactly the packets of the frames it will hand out: the
next segment, any stride (2x, 4x, catching up) and any seek are just other
packets for the same process, and frames not shown are never decoded.  Only
intra-only codecs (:data:`~.format.INTRA_ONLY_CODECS`, the defaults) allow
that; a new process starts only where the codec or its parameters change
(a session partly compacted to FFV1).

FFmpeg hands out a frame once the packet after it has arrived (or its input
ended; measured, not documented), so one packet is always sent ahead: the
frame the reader will ask for next, and one more (from then on) each time a
frame does not come within :data:`NUDGE_S`.  A read of another frame (a seek) discards those
decodes only.
"""

from __future__ import annotations

import bisect
import fcntl
import os
import select
import subprocess
from collections import deque
from typing import Callable, Optional

import numpy as np

from ..errors import SourceError
from . import format as fmt
from .mkv_packets import FileIndex, cluster, index_file


def _pipe_max_bytes() -> int:
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


#: largest pipe buffer an unprivileged process may ask for (Linux; 0 elsewhere)
PIPE_MAX_BYTES = _pipe_max_bytes()


def widen_pipe(pipe, frame_bytes: int) -> None:
    """Let the decoder's pipe hold up to a frame (default 64 KB: a 1080p frame
    then crosses it in 100-160 writes, each waking this reader and FFmpeg in
    turn; at 1 MB, the usual limit, in 4-6).  Best effort: not Linux, no change."""
    size = min(int(frame_bytes), PIPE_MAX_BYTES)
    if size <= 65536 or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    try:
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, size)
    except OSError:
        pass


def fed_decoder_cmd(pix_fmt: str, threads: str) -> list[str]:
    """FFmpeg reading a live Matroska stream on stdin, writing raw ``pix_fmt`` frames."""
    return [fmt.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin",
            "-threads", threads, "-probesize", "32", "-analyzeduration", "0", "-fpsprobesize", "0",
            "-f", "matroska", "-i", "pipe:0", "-map", "0:v:0", "-f", "rawvideo",
            "-pix_fmt", pix_fmt, "-fps_mode", "passthrough", "-flush_packets", "1", "pipe:1"]


#: a frame not out this long after its packet: send one more packet (see read_into)
NUDGE_S = 0.1
#: packets sent beyond the frame being read, at most
MAX_AHEAD = 4


class FedDecoder:
    """One FFmpeg process decoding the packets it is sent (:meth:`feed`), in order."""

    def __init__(self, first: FileIndex, pix_fmt: str, frame_bytes: int):
        self.path = first.path
        self.key = first.codec_key
        self.frame_bytes = frame_bytes
        self._files: dict = {}
        self._timecode = 0
        threads = "auto" if fmt.is_ffv1(first.path) else "1"
        self.proc = subprocess.Popen(fed_decoder_cmd(pix_fmt, threads), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        widen_pipe(self.proc.stdout, frame_bytes)
        widen_pipe(self.proc.stdin, frame_bytes)
        self._write(first.header)

    def feed(self, index: FileIndex, i: int) -> None:
        """Send frame ``i`` of the file ``index`` (same :attr:`key`) to be decoded next."""
        f = self._files.get(index.path)
        if f is None:
            f = self._files[index.path] = open(index.path, "rb")
        self._write(cluster(f, index.blocks[i], self._timecode))
        self._timecode += 1

    def read_into(self, buf: np.ndarray, more: Callable[[], None]) -> bool:
        """The next frame into ``buf``; False at the end.  When nothing comes for
        :data:`NUDGE_S`, ``more()`` is called (send the next packet: FFmpeg may hold
        a frame back until one more packet has come)."""
        view = memoryview(buf).cast("B")
        got = 0
        poll = select.poll()
        poll.register(self.proc.stdout, select.POLLIN | select.POLLHUP)
        while got < self.frame_bytes:
            if got == 0 and not poll.poll(NUDGE_S * 1000):
                more()
                continue
            n = self.proc.stdout.readinto(view[got:])
            if not n:
                return False
            got += n
        return True

    def _write(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
        except (BrokenPipeError, OSError, ValueError):
            raise SourceError(f"{self.path}: the decoder stopped ({self.problem() or 'no message'})") from None

    def problem(self) -> str:
        try:
            if self.proc.poll() is None:
                return ""
            err = self.proc.stderr.read().decode("utf-8", "replace").strip()
        except Exception:
            err = ""
        return err.splitlines()[-1] if err else ""

    def close(self) -> None:
        p = self.proc
        if p.poll() is None:
            p.kill()
        for s in (p.stdin, p.stdout, p.stderr, *self._files.values()):
            try:
                s.close()
            except Exception:
                pass
        self._files.clear()
        try:
            p.wait(5)
        except Exception:
            pass


class FedSession:
    """The NIR and WL decoders of a session whose codecs are all intra-only.

    :meth:`frame` decodes one recording frame into the buffers given, sending
    the packet of the frame that will be asked for next along with it.

    Parameters
    ----------
    path : the session directory
    segments : the session's :class:`~.session_reader.SegmentEntry` list
    size : (W, H)
    on_open : called with the number of processes each time decoders start (counted
        by :attr:`SessionSource.decoder_opens <nirf_overlay.recording.SessionSource>`)
    """

    def __init__(self, path: str, segments: list, size: tuple, on_open: Callable[[int], None]):
        self._files = [(os.path.join(path, s.nir_file), os.path.join(path, s.wl_file))
                       for s in segments]
        self._firsts = [s.first_frame for s in segments]
        self._count = segments[-1].first_frame + segments[-1].frames if segments else 0
        w, h = size
        self._specs = ((fmt.NIR_PIX_FMT, w * h * 2), ("bgr24", w * h * 3))
        self._index: dict = {}
        self._decoders: Optional[tuple[FedDecoder, FedDecoder]] = None
        self._fed: deque = deque()  # recording indices sent and not read yet, in order
        self._step = 1  # frames between the packets sent ahead
        self._depth = 1  # packets sent after the frame being read (learnt, see _more)
        self._on_open = on_open
        self._scratch: Optional[tuple] = None

    def frame(self, index: int, nxt: Optional[int], bufs: tuple) -> None:
        """Decode frame ``index`` into ``bufs`` (NIR, WL); ``nxt``: the frame to be
        asked for next (None: none)."""
        files = self._indices(index)
        if self._decoders is None or not self._fits(files):
            self.close()
            self._decoders = tuple(FedDecoder(f, pf, n)
                                   for f, (pf, n) in zip(files, self._specs))
            self._on_open(len(self._decoders))
        if index not in self._fed:
            self._send(index)
        self._step = nxt - index if nxt is not None and nxt > index else 1
        # the frames after it must be sent: as many as FFmpeg held back before
        after = len(self._fed) - 1 - list(self._fed).index(index)
        for _ in range(self._depth - after):
            self._send_after(nxt if self._fed[-1] == index else self._fed[-1] + self._step)
        while self._fed[0] != index:  # sent before a seek or a new stride: not shown
            self._read(self._scratch_bufs(bufs), self._fed.popleft())
        self._read(bufs, self._fed.popleft())

    def close(self) -> None:
        if self._decoders is not None:
            for d in self._decoders:
                d.close()
            self._decoders = None
        self._fed.clear()

    def _seg(self, index: int) -> int:
        return bisect.bisect_right(self._firsts, index) - 1

    def _indices(self, index: int) -> tuple[FileIndex, FileIndex]:
        """The packet indices of the segment holding frame ``index``."""
        seg_i = self._seg(index)
        got = self._index.get(seg_i)
        if got is None:
            got = self._index[seg_i] = tuple(index_file(p) for p in self._files[seg_i])
        return got

    def _fits(self, files: tuple) -> bool:
        return all(d.key == f.codec_key for d, f in zip(self._decoders, files))

    def _send_after(self, index: Optional[int]) -> None:
        """Send frame ``index``; when there is none (the end) or it needs other decoders
        (another codec), the last frame again: decoded and thrown away, it lets the
        frame before it out and keeps the decoders running for a seek back."""
        if index is not None and 0 <= index < self._count and self._fits(self._indices(index)):
            self._send(index)
        else:
            self._send(self._fed[-1])

    def _send(self, index: int) -> None:
        files = self._indices(index)
        offset = index - self._firsts[self._seg(index)]
        for d, f in zip(self._decoders, files):
            if offset >= len(f.blocks):
                raise SourceError(f"{f.path}: holds {len(f.blocks)} frames, frame {offset} "
                                  "of the segment is missing (corrupt or truncated)")
            d.feed(f, offset)
        self._fed.append(index)

    def _more(self) -> None:
        """A frame is held back: send the packet after the last one sent, and from now
        on keep one more ahead (frame threads, FFV1's, hold a frame each)."""
        if len(self._fed) <= MAX_AHEAD:
            self._depth = min(MAX_AHEAD, self._depth + 1)
            self._send_after(self._fed[-1] + self._step)

    def _read(self, bufs: tuple, index: int) -> None:
        for d, buf in zip(self._decoders, bufs):
            if not d.read_into(buf, self._more):
                why = d.problem()
                self.close()
                raise SourceError(f"{d.path}: ended before frame {index} of the session"
                                  + (f" ({why})" if why else " (corrupt or truncated)"))

    def _scratch_bufs(self, bufs: tuple) -> tuple:
        if self._scratch is None:
            self._scratch = tuple(np.empty_like(b) for b in bufs)
        return self._scratch
