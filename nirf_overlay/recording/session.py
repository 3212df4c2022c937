"""Replaying recorded sessions: :class:`SessionSource`.

A session is a source like any other (``nirf-overlay view SESSION``,
``process SESSION``).  Frame N is exactly frame N of the recording: the frame
table maps N to its segment, and each segment decodes on its own (FFmpeg
subprocesses, seeking inside a segment by time).
"""

from __future__ import annotations

import bisect
import fcntl
import logging
import os
import subprocess
import threading
import time
from typing import Optional

import numpy as np

from ..errors import RecordingError, SourceError
from ..frame import FramePair, SourceInfo, SourceStats
from ..privacy import shown_name
from ..sources.base import FrameSource
from . import format as fmt
from .packet_decoder import IntraSession
from .session_reader import SegmentEntry, read_session

log = logging.getLogger(__name__)


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


class _Decoder:
    """An FFmpeg process decoding one segment file to raw frames on a pipe.

    ``stride`` > 1 hands out every ``stride``-th frame from ``start``: an
    intra-only codec (``intra``) leaves the others out before decoding them
    (:func:`~.format.decoder_cmd`); any other decodes them and they are
    read past here.
    """

    def __init__(self, path: str, pix_fmt: str, frame_bytes: int, start: int, fps: float,
                 stride: int = 1, intra: bool = True):
        self.path = path
        self.frame_bytes = frame_bytes
        threads = "auto" if fmt.is_ffv1(path) else "1"
        drop = stride if intra else 1
        self._skip = 0 if intra else stride - 1  # frames to read past before each but the first
        self._first = True
        self.proc = subprocess.Popen(
            fmt.decoder_cmd(path, pix_fmt, start_frame=start, fps=fps, threads=threads,
                            stride=drop),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            bufsize=0)
        widen_pipe(self.proc.stdout, frame_bytes)

    def read_into(self, buf: np.ndarray) -> bool:
        view = memoryview(buf).cast("B")
        for _ in range(1 if self._first else self._skip + 1):
            got = 0
            while got < self.frame_bytes:
                n = self.proc.stdout.readinto(view[got:])
                if not n:
                    return False
                got += n
        self._first = False
        return True

    def problem(self) -> str:
        try:
            self.proc.wait(5)
            err = self.proc.stderr.read().decode("utf-8", "replace").strip()
        except Exception:
            err = ""
        return err.splitlines()[-1] if err else ""

    def close(self) -> None:
        p = self.proc
        if p.poll() is None:
            p.kill()
        for s in (p.stdout, p.stderr):
            try:
                s.close()
            except Exception:
                pass
        try:
            p.wait(5)
        except Exception:
            pass


class SessionSource(FrameSource):
    """A recorded session as a seekable :class:`FrameSource`.

    Parameters
    ----------
    path : str
        The session directory.
    realtime : bool
        Pace frames at the recorded times (scaled by :attr:`speed`); otherwise
        hand them out as fast as they decode.
    loop : bool
        Start again at frame 0 after the last frame.

    Attributes
    ----------
    info : SourceInfo (``seekable=True``, ``frame_count``, size, fps, nir_bits)
    session : :class:`~.session_reader.Session` (session.json, tables, events)
    markers : list of :class:`~.session_reader.Marker`, in recording order
    interrupted : True when the recording was not stopped cleanly; then
        ``stats.message`` says so and a warning is logged on opening
    speed : replay speed for realtime pacing (1.0 = as recorded)
    stride : frames each :meth:`read` advances (1; more for fast replay, :meth:`set_stride`)

    Pairs carry the recorded timing as seconds from frame 0 (``wl_time``,
    ``nir_time``; the source's own clock values are in ``meta`` as
    ``recorded_wl_time``/``recorded_nir_time``), exposure and gain;
    ``nir`` is None for frames recorded while NIR was lost; ``meta`` holds
    ``segment``, ``dropped_before``, ``unpaired`` and ``not_written_before``.
    """

    def __init__(self, path, *, realtime: bool = False, loop: bool = False,
                 keep_paths: bool = False):
        self.path = os.fspath(path)
        self.session = read_session(self.path)
        s = self.session
        self.realtime = bool(realtime)
        self.loop = bool(loop)
        self.speed = 1.0
        self.stride = 1
        meta = s.meta
        w, h = s.size
        self._size = (w, h)
        self.info = SourceInfo(
            description=f"session {shown_name(self.path, keep_paths)}", size=(w, h), fps=s.fps,
            nir_bits=int(meta["nir_bits"]), live=False, frame_count=s.frame_count,
            device=str(meta.get("source", {}).get("description", "")),
            exposure_ms=meta.get("source", {}).get("exposure_ms"),
            gain=meta.get("source", {}).get("gain"), seekable=True,
            extra={"session": self.path, "label": meta.get("label"),
                   "created": meta.get("created"), "interrupted": s.interrupted,
                   "wl_codec": meta.get("wl_codec"), "wl_lossless": meta.get("wl_lossless"),
                   "error": meta.get("error")},
        )
        self.stats = SourceStats()
        self.markers = s.markers
        # a damaged side file degrades the session, never fails it: reported, and the
        # explicit option (--settings, --calibration) or the defaults apply instead
        warnings = list(s.warnings)
        self._settings = self._calibration = None
        try:
            self._settings = s.recorded_settings()
        except RecordingError as e:
            warnings.append(f"{e}; the session's recorded settings are not used "
                            "(--settings or the defaults apply)")
        try:
            self._calibration = s.recorded_calibration()
        except RecordingError as e:
            warnings.append(f"{e}; the session's calibration is not used "
                            "(--calibration or the defaults apply)")
        if warnings:
            self.stats.message = " ".join(warnings)
            for w_ in warnings:
                log.warning("%s", w_)
        self._time_list: Optional[list] = None
        self._starts = [seg.first_frame for seg in s.segments]
        # presentation times count from frame 0 (the frame model's rule for sessions);
        # the source's own clock values stay in meta["recorded_wl_time"/"recorded_nir_time"]
        self._t0 = float(s.frames[0]["wl_time"]) if s.frames else 0.0
        self._lock = threading.RLock()
        self._pos = 0
        self._seg_i: Optional[int] = None
        self._decoders: Optional[tuple[_Decoder, _Decoder]] = None
        # decoders of the next segment, started early: (segment, first offset, decoders)
        self._next: Optional[tuple[int, int, tuple[_Decoder, _Decoder]]] = None
        self._clock: Optional[tuple[float, float]] = None  # (monotonic, recorded time)
        self._closed = False
        #: decoders made so far, two at a time (NIR and WL): in-process codec contexts
        #: (intra-only codecs) or FFmpeg processes (H.264)
        self.decoder_opens = 0
        # intra-only codecs (the defaults): in-process decoders given the frames to show
        self._fed: Optional[IntraSession] = None
        if s.segments and all(seg.wl_codec in fmt.INTRA_ONLY_CODECS for seg in s.segments):
            self._fed = IntraSession(self.path, s.segments, self._count_opens)
        self.random_access = self._fed is not None
        if s.frame_count == 0:
            self.stats.status = "ended"

    def own_settings(self):
        """A copy of the :class:`~nirf_overlay.settings.Settings` in force when recording
        started; None when the session's settings file is damaged (reported on opening)."""
        return self._settings.copy() if self._settings is not None else None

    def recorded_plane(self):
        """The plane of the session's ``plane`` events (:mod:`.plane_events`), or None."""
        from .plane_events import PlaneSchedule

        return PlaneSchedule.from_events(self.events) or None

    def own_calibration(self):
        """The calibration recorded with the session (None if it had none)."""
        return self._calibration

    @classmethod
    def from_spec(cls, spec) -> "SessionSource":
        """Open ``spec.session`` for :func:`~nirf_overlay.sources.open_source`; SourceError if unusable."""
        try:
            return cls(spec.session, realtime=spec.realtime, loop=spec.loop,
                       keep_paths=spec.keep_paths)
        except RecordingError as e:
            raise SourceError(str(e)) from None

    @property
    def interrupted(self) -> bool:
        return self.session.interrupted

    @property
    def events(self) -> list:
        return self.session.events

    @property
    def frame_count(self) -> int:
        return self.session.frame_count

    @property
    def position(self) -> int:
        """Index of the frame the next :meth:`read` returns."""
        return self._pos

    def frame_time(self, index: int) -> float:
        """Recorded WL time of frame ``index`` relative to frame 0, seconds."""
        return float(self.session.frames[index]["wl_time"]) - self._t0

    def index_at(self, t: float) -> int:
        """The first frame whose time (from frame 0) is at or after ``t`` seconds.

        With frames dropped by a live source, time and ``index / fps`` part
        ways; this is the exact mapping for seeking to a time.
        """
        times = self._times()
        return min(bisect.bisect_left(times, float(t) - 1e-9), max(len(times) - 1, 0))

    def _times(self) -> list:
        if self._time_list is None:
            self._time_list = [float(r["wl_time"]) - self._t0 for r in self.session.frames]
        return self._time_list

    # -- FrameSource ----------------------------------------------------------------
    def seek(self, index: int) -> None:
        """Make the next :meth:`read` return frame ``index`` (0 <= index < frame_count)."""
        n = self.session.frame_count
        index = int(index)
        if not 0 <= index < max(n, 1):
            raise SourceError(f"{self.path}: frame {index} is outside 0..{n - 1}")
        with self._lock:
            if index != self._pos and self._fed is None:
                self._drop_decoders()  # (intra-only: that frame's packet is decoded next)
            self._pos = index
            self._clock = None
            if self.stats.status == "ended":
                self.stats.status = "ok"

    def set_stride(self, stride: int) -> bool:
        """Hand out every ``stride``-th frame from the next one on (fast replay:
        at 2x and 4x only the frames shown are decoded, when the session's
        codecs are intra-only, as the default FFVHuff and FFV1 are).  True: done."""
        stride = max(1, int(stride))
        with self._lock:
            if stride != self.stride:
                self.stride = stride
                if self._fed is None:
                    self._drop_decoders()  # reopened at the next read with the new stride
        return True

    def read(self, timeout: Optional[float] = None) -> Optional[FramePair]:
        with self._lock:
            if self._closed:
                return None
            n = self.session.frame_count
            if self._pos >= n:
                if not (self.loop and n):
                    self.stats.status = "ended"
                    self._drop_decoders()
                    return None
                if self._fed is None:  # intra-only: frame 0 is just another packet
                    self._drop_decoders()
                self._pos = 0
                self._clock = None
            index = self._pos
            pair = self._decode(index)
            self._pos = index + self.stride
        if self.realtime:
            self._pace(index)
        pair.arrival = time.monotonic()
        self.stats.delivered += 1
        return pair

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop_decoders()

    # -- internals --------------------------------------------------------------------
    def _pace(self, index: int) -> None:
        t_rec = self.frame_time(index)
        now = time.monotonic()
        if self._clock is None:
            self._clock = (now, t_rec)
            return
        t0, r0 = self._clock
        due = t0 + (t_rec - r0) / max(self.speed, 1e-3)
        if due > now:
            time.sleep(due - now)
        elif now - due > 1.0:  # fell far behind (paused, slow machine): restart the clock
            self._clock = (now, t_rec)

    def _count_opens(self, n: int) -> None:
        self.decoder_opens += n

    def _segment_of(self, index: int) -> tuple[int, int]:
        seg_i = bisect.bisect_right(self._starts, index) - 1
        return seg_i, index - self.session.segments[seg_i].first_frame

    def _decode(self, index: int) -> FramePair:
        seg_i, offset = self._segment_of(index)
        seg = self.session.segments[seg_i]
        if self._fed is not None:
            nir, wl = self._fed.frame(index)
        else:
            w, h = self._size
            nir = np.empty((h, w), np.uint16)
            wl = np.empty((h, w, 3), np.uint8)
            self._decode_reopened(seg_i, seg, offset, index, nir, wl)
        return self._pair(index, seg, nir, wl)

    def _decode_reopened(self, seg_i, seg, offset, index, nir, wl) -> None:
        """Decoders started at the frame (a codec with inter frames: H.264)."""
        if self._seg_i != seg_i or self._decoders is None:
            self._drop_decoders(keep_next=True)
            if self._next is not None and self._next[:2] == (seg_i, offset):
                self._decoders = self._next[2]
                self._next = None
            else:
                self._decoders = self._open(seg, offset)
            self._seg_i = seg_i
        nir_dec, wl_dec = self._decoders
        for dec, buf in ((nir_dec, nir), (wl_dec, wl)):
            if not dec.read_into(buf):
                why = dec.problem()
                self._drop_decoders()
                raise SourceError(f"{dec.path}: ended before frame {index} of the session"
                                  + (f" ({why})" if why else " (corrupt or truncated)"))
        if offset + self.stride >= seg.frames:
            # this segment is done: its decoders exit; the next one starts decoding now
            self._drop_decoders(keep_next=True)
            nxt_i = bisect.bisect_right(self._starts, index + self.stride) - 1
            if (seg_i < nxt_i < len(self.session.segments) and self._next is None
                    and index + self.stride < self.session.frame_count):
                nxt = self.session.segments[nxt_i]
                off = index + self.stride - nxt.first_frame
                self._next = (nxt_i, off, self._open(nxt, off))

    def _pair(self, index: int, seg: SegmentEntry, nir: np.ndarray, wl: np.ndarray) -> FramePair:
        row = self.session.frames[index]
        lost = row["nir_lost"] == "1"
        wl_t, nir_t = float(row["wl_time"]), float(row["nir_time"])
        return FramePair(
            wl=wl, nir=None if lost else nir, nir_bits=int(self.session.meta["nir_bits"]),
            index=index, wl_time=wl_t - self._t0, nir_time=nir_t - self._t0,
            exposure_ms=fmt.opt_float(row["exposure_ms"]), gain=fmt.opt_float(row["gain"]),
            meta={"segment": seg.number, "dropped_before": int(row["dropped_before"] or 0),
                  "unpaired": row["unpaired"] == "1",
                  "not_written_before": int(row["not_written_before"] or 0),
                  "nir_status": row.get("nir_status") or ("lost" if lost else "present"),
                  "source_index": int(row["source_index"] or 0), "session": self.path,
                  "recorded_wl_time": wl_t, "recorded_nir_time": nir_t},
        )

    def _open(self, seg: SegmentEntry, offset: int) -> tuple[_Decoder, _Decoder]:
        w, h = self._size
        fps = self.session.fps
        k = self.stride
        self._count_opens(2)
        nir = _Decoder(os.path.join(self.path, seg.nir_file), fmt.NIR_PIX_FMT, w * h * 2,
                       offset, fps, stride=k)  # NIR: FFVHuff or FFV1, intra-only
        wl = _Decoder(os.path.join(self.path, seg.wl_file), "bgr24", w * h * 3, offset, fps,
                      stride=k, intra=seg.wl_codec in fmt.INTRA_ONLY_CODECS)
        return nir, wl

    def _drop_decoders(self, keep_next: bool = False) -> None:
        if self._fed is not None and not keep_next:
            self._fed.close()
        if self._decoders is not None:
            for d in self._decoders:
                d.close()
            self._decoders = None
        self._seg_i = None
        if not keep_next and self._next is not None:
            for d in self._next[2]:
                d.close()
            self._next = None

