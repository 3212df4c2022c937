"""The Recorder: a lossless, crash-safe session writer that never blocks its caller.

(Past 500 lines for now: one class whose writer and closer threads share one lock, one queue
and one failure path, which is what keeps "nothing recorded is lost" checkable in one place.
The next split is the segment bookkeeping, ``_open_segment``/``_close_segment``/
``_list_segment``/``_discard``, into a module of its own.)

Threads
-------
``submit(pair)`` (the caller's thread, e.g. the engine's capture thread) copies
the pair into a bounded queue and returns at once.  A *writer* thread takes
pairs from the queue, pipes them into the encoders of the current segment
(:mod:`.encoders`) and appends ``frames.csv``.  A *closer* thread makes each
finished segment durable and lists it in ``segments.csv``.  With ``compact``
a :class:`~.compact.Compactor` re-encodes closed NIR segments at idle priority.

Failure
-------
No write error ever reaches the caller: a full disk, a dead encoder or a
failed table write stops the recording, keeps every closed segment valid,
marks ``session.json`` stopped with the reason, and leaves the plain message in
``RecorderStatus.error``.  Free space is checked before starting and at every
segment.

Past 500 lines on purpose: the queue, the two threads, failure and stop share one lock
and one state machine; the encoders, the session files and the status are already
modules of their own.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import queue
import shutil
import threading
import time
from dataclasses import replace
from typing import Optional

import numpy as np

from ..errors import RecordingError
from ..frame import FramePair, SourceInfo
from ..settings import Settings
from . import format as fmt
from .compact import Compactor
from .encoders import EncoderError, Segment, SegmentEncoders
from .session_writer import SessionWriter
from .status import RecorderStatus

log = logging.getLogger(__name__)

_STOP = object()


class Recorder:
    """Record :class:`~nirf_overlay.frame.FramePair` s into a session directory.

    Creating a Recorder starts the recording; :meth:`stop` finishes it.

    Parameters
    ----------
    out_dir : str
        Session directory; created.  An existing non-empty directory is refused.
    info : SourceInfo
        The source being recorded: frame size, frame rate and ``nir_bits`` fix
        the format; its description goes into ``session.json``.
    settings : Settings, optional
        The settings in force at the start (``settings.json``); default Settings().
    calibration : Calibration, optional
        The calibration in force at the start (``calibration/profile.json`` + TIFFs).
    label : str, optional
        Free text the user typed (e.g. a case number).  Nothing else that could
        identify a patient is written.
    segment_seconds : float
        Length of each segment file; a crash loses at most about this much.
    wl_codec : str
        Key of :data:`~.format.WL_CODECS` (default FFVHuff planar RGB, lossless).
    max_queue_bytes : int, optional
        Bound of the recorder's queue; default 2 s of raw frames, 64..1024 MB.
    min_free_bytes : int, optional
        Refuse to start with less free space; default 10 s of raw frames, >= 1 GB.
    stop_free_bytes : int, optional
        Stop cleanly when free space falls below this while recording; default
        2 s of raw frames, >= 256 MB.  0 disables the check (the disk may then
        run full, which is also handled).
    copy_frames : bool
        Copy each pair's arrays on submit (default), so that a caller that later
        draws into its buffers cannot change what is recorded.
    nir_codec : str
        NIR capture codec: "ffvhuff" (default, fast) or "ffv1" (archive codec
        directly; needs about 2 cores at 1080p30).
    compact : bool
        Also re-encode each closed FFVHuff NIR segment to FFV1 (the archival
        codec) in a background process at idle priority, bit-exactly (checked
        by MD5 of the decoded frames).  Off by default: FFV1 makes replay about
        2.5x slower and saves only ~10 % (see :mod:`.format`).  Segments not
        compacted by the end stay FFVHuff; :func:`compact_session` finishes them.

    Raises
    ------
    RecordingError
        The directory is not usable, the disk is too full, or FFmpeg cannot start.

    Examples
    --------
    >>> rec = Recorder("case_17", source.info, settings, calibration)  # doctest: +SKIP
    >>> for pair in source:
    ...     rec.submit(pair)          # never blocks; False = not written (counted)
    >>> rec.log_event("marker", label="rim starts")
    >>> status = rec.stop()           # RecorderStatus
    """

    def __init__(self, out_dir, info: SourceInfo, settings: Optional[Settings] = None,
                 calibration=None, *, label: Optional[str] = None,
                 segment_seconds: float = 1.0, wl_codec: str = fmt.DEFAULT_WL_CODEC,
                 max_queue_bytes: Optional[int] = None, min_free_bytes: Optional[int] = None,
                 stop_free_bytes: Optional[int] = None, copy_frames: bool = True,
                 nir_codec: str = fmt.DEFAULT_NIR_CODEC, compact: bool = False):
        self.out_dir = os.path.abspath(os.fspath(out_dir))
        if nir_codec not in fmt.NIR_CODECS:
            raise RecordingError(f"nir codec {nir_codec!r}: not one of {', '.join(fmt.NIR_CODECS)}")
        w, h = (int(v) for v in info.size)
        if w <= 0 or h <= 0:
            raise RecordingError(f"{info.description}: frame size {w}x{h} is not recordable")
        fmt.check_wl_codec(wl_codec, (w, h))
        self.size = (w, h)
        self.fps = float(info.fps) if info.fps and info.fps > 0 else 30.0
        self.nir_bits = int(info.nir_bits or 16)
        self.copy_frames = copy_frames
        raw_rate = w * h * 5 * self.fps  # bytes/s of raw WL (3) + NIR (2)
        self.max_queue_bytes = int(max_queue_bytes if max_queue_bytes is not None
                                   else min(1024 * fmt.MB, max(64 * fmt.MB, 2 * raw_rate)))
        if min_free_bytes is None:
            min_free_bytes = max(1024 * fmt.MB, 10 * raw_rate)
        if stop_free_bytes is None:
            stop_free_bytes = max(256 * fmt.MB, 2 * raw_rate)
        self._encoders = SegmentEncoders(
            self.out_dir, self.size, self.fps, nir_codec=nir_codec, wl_codec=wl_codec,
            segment_frames=max(1, int(round(segment_seconds * self.fps))),
            stop_free_bytes=int(stop_free_bytes))

        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._queue: collections.deque = collections.deque()
        self._queued_bytes = 0
        self._accepting = False
        self._st = RecorderStatus(out_dir=self.out_dir, queue_capacity_bytes=self.max_queue_bytes)
        self._refused_since_last = 0
        self._last_index = -1
        self._by_source_index: "collections.OrderedDict[int, int]" = collections.OrderedDict()
        self._failure: Optional[str] = None
        self._closer_q: "queue.Queue" = queue.Queue()
        self._t0 = time.monotonic()
        self._nir_zero = np.zeros((h, w), np.uint16)  # stands in for a lost NIR frame
        self._nir_lost = False  # the last frame submitted had NIR "lost" (events nir_lost/back)
        self._seg: Optional[Segment] = None

        existed = os.path.isdir(self.out_dir)  # (then empty: SessionWriter checks)
        compact = bool(compact) and nir_codec != "ffv1"
        try:
            self._files = SessionWriter(self.out_dir, int(min_free_bytes))
            self._st.disk_free = self._files.disk_free
            self._files.start(info, settings if settings is not None else Settings(),
                              calibration, size=self.size, fps=self.fps,
                              nir_bits=self.nir_bits, nir_codec=nir_codec, compact=compact,
                              wl_codec=wl_codec, segment_frames=self._encoders.segment_frames,
                              label=label)
        except RecordingError:
            # a start that failed leaves the directory as it found it (no empty session)
            if os.path.isdir(self.out_dir) and self._files_started_here():
                shutil.rmtree(self.out_dir, ignore_errors=True)
                if existed:
                    os.makedirs(self.out_dir, exist_ok=True)
            raise
        self._compactor = Compactor(self.out_dir, self._on_compacted) if compact else None
        self._accepting = True
        self._st.recording = True
        self._writer = threading.Thread(target=self._writer_main, name="nirf-rec-writer",
                                        daemon=True)
        self._closer = threading.Thread(target=self._closer_main, name="nirf-rec-closer",
                                        daemon=True)
        self._writer.start()
        self._closer.start()
        self.log_event("start", source=info.description, size=[w, h], fps=self.fps,
                       nir_bits=self.nir_bits, label=label)

    def _files_started_here(self) -> bool:
        """Only session files in ``out_dir`` (it was absent or empty before this start)."""
        names = {fmt.SESSION_JSON, fmt.SETTINGS_JSON, fmt.SEGMENTS_CSV, fmt.FRAMES_CSV,
                 fmt.EVENTS_JSONL, os.path.dirname(fmt.CALIBRATION_PROFILE) or
                 fmt.CALIBRATION_PROFILE}
        return set(os.listdir(self.out_dir)) <= names

    # -- public API ---------------------------------------------------------------
    def submit(self, pair: FramePair, *, block: bool = False,
               timeout: Optional[float] = None) -> bool:
        """Queue ``pair`` for writing; return False if it will not be written.

        Parameters
        ----------
        pair : FramePair
            WL ``(H, W, 3) uint8`` BGR and NIR ``(H, W) uint16`` (or None when
            lost), the size given at the start.
        block : bool
            False (default, for live capture and the viewer): never wait; a full
            queue refuses the pair, counts it in ``frames_not_written`` and sets
            ``status.warning``.  True (importing files): wait up to ``timeout``
            seconds for room, so that nothing is refused.

        Returns
        -------
        bool
            True when the pair is queued; False when it was refused, or the
            recording has stopped (those pairs are not counted: they are after
            the end of the recording).
        """
        if not self._accepting:
            return False
        nir = pair.nir
        wl = pair.wl
        if wl is None or wl.shape != (self.size[1], self.size[0], 3) or (
                nir is not None and nir.shape != (self.size[1], self.size[0])):
            got = "no WL" if wl is None else f"{wl.shape[1]}x{wl.shape[0]}"
            with self._lock:
                self._count_refused(f"frame size {got} differs from the recording's "
                                    f"{self.size[0]}x{self.size[1]}; frames not written")
            return False
        nbytes = wl.nbytes + (nir.nbytes if nir is not None else 0)
        with self._room:
            if block:
                deadline = None if timeout is None else time.monotonic() + timeout
                while (self._accepting and self._queue
                       and self._queued_bytes + nbytes > self.max_queue_bytes):
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    self._room.wait(left)
                if not self._accepting:
                    return False
            if self._queue and self._queued_bytes + nbytes > self.max_queue_bytes:
                self._count_refused("recording cannot keep up (disk or encoder too slow): "
                                    "frames not written")
                return False
            self._queued_bytes += nbytes  # reserve before copying outside the lock
        wl = _frozen(wl, np.uint8, self.copy_frames)
        nir = None if nir is None else _frozen(nir, np.uint16, self.copy_frames)
        row = {
            "source_index": int(pair.index), "wl_time": float(pair.wl_time),
            "nir_time": float(pair.nir_time), "arrival": float(pair.arrival or time.monotonic()),
            "exposure_ms": pair.exposure_ms, "gain": pair.gain,
            "dropped_before": int(pair.meta.get("dropped_before", 0) or 0),
            "unpaired": int(bool(pair.meta.get("unpaired", False))),
            "nir_status": pair.nir_status,
        }
        with self._room:
            if not self._accepting:
                self._queued_bytes -= nbytes
                return False
            self._last_index += 1
            row["index"] = self._last_index
            self._by_source_index[row["source_index"]] = self._last_index
            if len(self._by_source_index) > 4096:
                self._by_source_index.popitem(last=False)
            row["not_written_before"] = self._refused_since_last
            self._refused_since_last = 0
            self._queue.append((wl, nir, row, nbytes))
            self._st.frames_submitted += 1
            self._room.notify_all()
        self._note_nir(row["nir_status"], row["index"])
        return True

    def _note_nir(self, status: str, index: int) -> None:
        """NIR lost and back are events of the session (a gap, "stale", is in frames.csv only)."""
        if status == "lost" and not self._nir_lost:
            self._nir_lost = True
            self.log_event("nir_lost", frame=index)
        elif status == "present" and self._nir_lost:
            self._nir_lost = False
            self.log_event("nir_back", frame=index)

    def log_event(self, kind: str, **data) -> None:
        """Append an event to ``events.jsonl`` (flushed); never raises.

        Each line is ``{"time": ISO-8601 UTC, "t": seconds since start,
        "frame": index, "kind": kind, ...data}``, where ``frame`` is a frame
        index *of the recording* (what replay seeks to).  Give it as
        ``frame=`` (recording index) or as ``source_index=`` (the ``index`` of
        the pair as the source numbered it, e.g. the frame on screen; mapped
        for the last 4096 pairs submitted); by default it is the last frame
        submitted.  Kinds used: start, stop, error, setting (name, value),
        settings (all), snapshot (path), marker (label), note (text), nir_lost
        and nir_back (the first frame without NIR, "lost", and the first with NIR again).
        """
        if not isinstance(kind, str) or not kind:
            return
        frame = data.pop("frame", None)
        if frame is None:
            frame = self._by_source_index.get(data.get("source_index"), max(self._last_index, 0))
        self._files.add_event(kind, round(time.monotonic() - self._t0, 6), frame, data)

    def recording_index(self, source_index: int) -> Optional[int]:
        """The recording's index of the pair the source numbered ``source_index``
        (one of the last 4096 submitted), None when it was not written."""
        with self._room:
            return self._by_source_index.get(int(source_index))

    def stop(self, timeout: float = 60.0, *, wait_compaction: bool = False) -> RecorderStatus:
        """Finish the recording: write what is queued, close the segments, finalise.

        Parameters
        ----------
        timeout : float
            Seconds to wait for the queue to be written and the last segment closed.
        wait_compaction : bool
            Also wait (without limit) until every NIR segment is FFV1.  By default
            compaction stops at once and the rest stays FFVHuff (lossless; see
            :func:`compact_session`), so the viewer is never held up.

        Safe to call twice and after an error.  Returns the final status.
        """
        with self._room:
            was = self._accepting
            self._accepting = False
            self._room.notify_all()
        if was:
            self._queue_put(_STOP)
        self._writer.join(timeout)
        self._closer.join(timeout)
        if self._compactor is not None:
            self._compactor.stop(wait=wait_compaction, timeout=timeout)
        return self.status()

    def status(self) -> RecorderStatus:
        """A copy of the current :class:`RecorderStatus`."""
        with self._lock:
            st = replace(self._st, queue_frames=len(self._queue), queue_bytes=self._queued_bytes)
        if st.recording:
            st.seconds = time.monotonic() - self._t0
        return st

    @property
    def recording(self) -> bool:
        return self._st.recording

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- queue plumbing -------------------------------------------------------------
    def _count_refused(self, message: str) -> None:  # with self._lock held
        self._st.frames_not_written += 1
        self._refused_since_last += 1
        self._st.warning = f"{message} ({self._st.frames_not_written} so far)"

    def _queue_put(self, item) -> None:
        with self._room:
            self._queue.append(item)
            self._room.notify_all()

    def _queue_get(self):
        with self._room:
            while not self._queue:
                self._room.wait()
            item = self._queue.popleft()
            if item is not _STOP:
                self._queued_bytes -= item[3]
            self._room.notify_all()
            return item

    # -- writer thread --------------------------------------------------------------
    def _writer_main(self) -> None:
        try:
            while True:
                item = self._queue_get()
                if item is _STOP:
                    break
                if self._failure:
                    self._lose(1)
                    continue
                try:
                    self._write_pair(*item[:3])
                except EncoderError as e:
                    self._fail(str(e))
                    self._lose(1)
                except OSError as e:
                    self._fail(_plain_os_error(e, self.out_dir))
                    self._lose(1)
            if self._failure is None and self._seg is not None:
                try:
                    self._close_segment()
                except EncoderError as e:
                    self._fail(str(e))
        except Exception as e:  # a bug: still never raise into anyone's thread
            log.exception("recording writer failed")
            self._fail(f"internal error: {e}")
        finally:
            if self._seg is not None:
                seg, self._seg = self._seg, None
                self._discard(seg)
            self._closer_q.put(_STOP)
            self._closer.join()
            self._finalise()

    def _write_pair(self, wl: np.ndarray, nir: Optional[np.ndarray], row: dict) -> None:
        if self._seg is None:
            self._open_segment(row["index"])
        seg = self._seg
        seg.write(self._nir_zero if nir is None else nir, wl)
        self._files.add_frame(dict(row, segment=seg.number, nir_lost=int(nir is None)))
        seg.frames += 1
        with self._lock:
            self._st.frames_written += 1
        if seg.frames >= self._encoders.segment_frames:
            self._close_segment()

    def _open_segment(self, first_frame: int) -> None:
        try:
            self._seg = self._encoders.open(first_frame)
        finally:  # the free space it found, also when that was too little
            with self._lock:
                self._st.disk_free = self._encoders.disk_free

    def _close_segment(self) -> None:
        """End the current segment and hand it to the closer once its encoders are done.

        Waiting here (not in the closer) means only one segment is ever being
        written (see :mod:`.encoders`).
        """
        seg, self._seg = self._seg, None
        try:
            seg.finish()
        except EncoderError:
            self._discard(seg)
            raise
        self._closer_q.put(seg)

    def _discard(self, seg: Segment) -> None:
        """Delete a segment that will not be listed; its frames are lost (counted)."""
        seg.discard()
        if seg.frames:
            self._lose(seg.frames)

    def _lose(self, n: int) -> None:
        with self._lock:
            self._st.frames_not_written += n

    def _fail(self, message: str) -> None:
        with self._room:
            first = self._failure is None
            if first:
                self._failure = message
                self._st.error = message
                # wake the writer even if nobody calls stop(): it then finalises
                self._queue.append(_STOP)
            self._accepting = False
            self._room.notify_all()
        if first:
            log.error("recording %s: %s", self.out_dir, message)

    # -- closer thread --------------------------------------------------------------
    def _closer_main(self) -> None:
        expected_first = 0  # segments are listed only without gaps (frame N = row N)
        while True:
            seg = self._closer_q.get()
            if seg is _STOP:
                return
            try:
                if seg.first_frame != expected_first:
                    raise EncoderError(f"segment {seg.number} follows a lost segment; "
                                       "recording stopped")
                self._list_segment(seg)
                expected_first = seg.first_frame + seg.frames
            except EncoderError as e:
                self._discard(seg)
                self._fail(str(e))
            except OSError as e:
                self._discard(seg)
                self._fail(_plain_os_error(e, self.out_dir))
            except Exception as e:  # a bug: keep the viewer alive
                log.exception("recording closer failed")
                self._discard(seg)
                self._fail(f"internal error: {e}")

    def _list_segment(self, seg: Segment) -> None:
        """Make a finished segment durable and list it in segments.csv (then it is safe)."""
        size = seg.commit()
        self._files.list_segment(seg.number, seg.first_frame, seg.frames, seg.nir_file,
                                 seg.wl_file, self._encoders.wl_codec)
        with self._lock:
            self._st.segments += 1
            self._st.frames_safe += seg.frames
            self._st.bytes_on_disk += size
        if self._compactor is not None:
            self._compactor.submit(seg.nir_file, seg.frames)

    def _on_compacted(self, size_change: int) -> None:
        with self._lock:
            self._st.segments_compacted += 1
            self._st.bytes_on_disk += size_change

    # -- the end --------------------------------------------------------------------
    def _finalise(self) -> None:
        with self._room:
            self._accepting = False
            rest = [it for it in self._queue if it is not _STOP]
            self._queue.clear()
            self._queued_bytes = 0
        if rest:
            self._lose(len(rest))
        self._files.close_frames()
        st = self.status()
        reason = self._failure or "stopped"
        duration = time.monotonic() - self._t0
        self.log_event("stop", reason=reason, frames=st.frames_safe,
                       frames_not_written=st.frames_not_written)
        if self._failure:
            self.log_event("error", message=self._failure)
        try:
            self._files.finish(stop_reason=reason, error=self._failure, frames=st.frames_safe,
                               frames_not_written=st.frames_not_written, segments=st.segments,
                               duration_s=round(duration, 3))
        except OSError as e:
            log.error("recording %s: session.json not finalised (%s)", self.out_dir,
                      e.strerror or e)
            if not self._failure:
                self._failure = _plain_os_error(e, self.out_dir)
        with self._lock:
            self._st.recording = False
            self._st.seconds = duration
            self._st.error = self._failure or ""
            self._st.stop_reason = reason
            self._st.disk_free = fmt.free_bytes(self.out_dir)


def _plain_os_error(e: OSError, where: str) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full: {where} has no space left; recording stopped"
    return f"{e.filename or where}: write failed ({e.strerror or e}); recording stopped"


def _frozen(arr: np.ndarray, dtype, copy: bool) -> np.ndarray:
    """``arr`` as a C-contiguous array nobody can change before it is written.

    Read-only arrays (the phantom's loop buffers, decoded session frames that a
    source marks read-only) are kept as they are; writable ones are copied
    when ``copy`` (about 3 ms per 1080p pair), so the caller may reuse them.
    """
    if arr.dtype == dtype and arr.flags.c_contiguous and not arr.flags.writeable:
        return arr
    if copy:
        return np.array(arr, dtype=dtype, order="C", copy=True)
    return np.ascontiguousarray(arr, dtype=dtype)

