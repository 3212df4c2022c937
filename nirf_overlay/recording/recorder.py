"""The Recorder: a lossless, crash-safe session writer that never blocks its caller.

Threads and processes
---------------------
``submit(pair)`` (the caller's thread, e.g. the engine's capture thread) copies
the pair into a bounded queue and returns at once.  A *writer* thread pipes
raw frames into two FFmpeg encoder processes per segment (NIR: FFV1; WL: see
:data:`~.format.WL_CODECS`) and appends ``frames.csv``.  A *closer* thread
waits for each finished segment's encoders, fsyncs and renames the files and
lists the segment in ``segments.csv``.  Encoding in subprocesses keeps the
viewer's interpreter free of encoder stalls and uses both cores.

Failure
-------
No write error ever reaches the caller: a full disk, a dead encoder or a
failed table write stops the recording, keeps every closed segment valid,
marks ``session.json`` stopped with the reason, and leaves the plain message in
``status.error``.  Free space is checked before starting and at every segment.
"""

from __future__ import annotations

import collections
import csv
import datetime as _dt
import errno
import json
import logging
import os
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .. import __version__
from ..errors import RecordingError
from ..frame import FramePair, SourceInfo
from . import format as fmt
from .compact import compact_segment

log = logging.getLogger(__name__)

MB = 1024 * 1024
_STOP = object()


@dataclass
class RecorderStatus:
    """A snapshot of what the recorder has done (``Recorder.status``).

    Attributes
    ----------
    recording : True until the recording stops (cleanly or on an error)
    out_dir : the session directory
    frames_submitted : pairs accepted into the queue
    frames_written : pairs handed to the encoders
    frames_safe : pairs in closed, fsynced segments (survive a crash)
    frames_not_written : pairs refused (queue full) or lost on an error; never silent
    queue_frames, queue_bytes, queue_capacity_bytes : the recorder's own queue
    bytes_on_disk : size of the closed segment files, bytes
    disk_free : free bytes on the session's file system at the last check
    seconds : time since the recording started, s
    segments : closed segments
    segments_compacted : NIR segments re-encoded to FFV1 so far
    warning : the last "cannot keep up" message ('' when none)
    error : why the recording stopped early, in plain words ('' when it did not)
    stop_reason : '' while recording; "stopped" or the error once stopped
    """

    recording: bool = False
    out_dir: str = ""
    frames_submitted: int = 0
    frames_written: int = 0
    frames_safe: int = 0
    frames_not_written: int = 0
    queue_frames: int = 0
    queue_bytes: int = 0
    queue_capacity_bytes: int = 0
    bytes_on_disk: int = 0
    disk_free: Optional[int] = None
    seconds: float = 0.0
    segments: int = 0
    segments_compacted: int = 0
    warning: str = ""
    error: str = ""
    stop_reason: str = ""


class _Segment:
    """One segment being written: two encoder processes and their files."""

    def __init__(self, number: int, first_frame: int):
        self.number = number
        self.first_frame = first_frame
        self.frames = 0
        self.nir_file, self.wl_file = fmt.segment_names(number)
        self.procs: list[subprocess.Popen] = []


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
        Key of :data:`~.format.WL_CODECS` (default lossless H.264 RGB).
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

    def __init__(self, out_dir, info: SourceInfo, settings=None, calibration=None, *,
                 label: Optional[str] = None, segment_seconds: float = 1.0,
                 wl_codec: str = fmt.DEFAULT_WL_CODEC, max_queue_bytes: Optional[int] = None,
                 min_free_bytes: Optional[int] = None, stop_free_bytes: Optional[int] = None,
                 copy_frames: bool = True, nir_codec: str = fmt.DEFAULT_NIR_CODEC,
                 compact: bool = False):
        self.out_dir = os.path.abspath(os.fspath(out_dir))
        if wl_codec not in fmt.WL_CODECS:
            raise RecordingError(f"wl codec {wl_codec!r}: not one of {', '.join(fmt.WL_CODECS)}")
        if nir_codec not in fmt.NIR_CODECS:
            raise RecordingError(f"nir codec {nir_codec!r}: not one of {', '.join(fmt.NIR_CODECS)}")
        w, h = (int(v) for v in info.size)
        if w <= 0 or h <= 0:
            raise RecordingError(f"{info.description}: frame size {w}x{h} is not recordable")
        self.size = (w, h)
        self.fps = float(info.fps) if info.fps and info.fps > 0 else 30.0
        self.nir_bits = int(info.nir_bits or 16)
        self.wl_codec = wl_codec
        self.segment_frames = max(1, int(round(segment_seconds * self.fps)))
        self.copy_frames = copy_frames

        raw_rate = w * h * 5 * self.fps  # bytes/s of raw WL (3) + NIR (2)
        self.max_queue_bytes = int(max_queue_bytes if max_queue_bytes is not None
                                   else min(1024 * MB, max(64 * MB, 2 * raw_rate)))
        self.min_free_bytes = int(min_free_bytes if min_free_bytes is not None
                                  else max(1024 * MB, 10 * raw_rate))
        self.stop_free_bytes = int(stop_free_bytes if stop_free_bytes is not None
                                   else max(256 * MB, 2 * raw_rate))

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
        self._events_lock = threading.Lock()
        self._closer_q: "queue.Queue" = queue.Queue()
        self._t0 = time.monotonic()
        self.nir_codec = nir_codec
        self._compact = bool(compact) and nir_codec != "ffv1"
        self._compact_q: "queue.Queue" = queue.Queue()
        self._compact_abort = threading.Event()
        self._compacting: Optional[subprocess.Popen] = None
        self._nir_zero: Optional[np.ndarray] = None
        self._seg: Optional[_Segment] = None
        self._next_segment = 0
        self._session: dict = {}

        self._prepare_dir()
        self._write_start_files(info, settings, calibration, label)
        self._accepting = True
        self._st.recording = True
        self._writer = threading.Thread(target=self._writer_main, name="nirf-rec-writer",
                                        daemon=True)
        self._closer = threading.Thread(target=self._closer_main, name="nirf-rec-closer",
                                        daemon=True)
        self._compactor = threading.Thread(target=self._compactor_main,
                                           name="nirf-rec-compactor", daemon=True)
        self._writer.start()
        self._closer.start()
        self._compactor.start()
        self.log_event("start", source=info.description, size=[w, h], fps=self.fps,
                       nir_bits=self.nir_bits, label=label)

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
        return True

    def log_event(self, kind: str, **data) -> None:
        """Append an event to ``events.jsonl`` (flushed); never raises.

        Each line is ``{"time": ISO-8601 UTC, "t": seconds since start,
        "frame": index, "kind": kind, ...data}``, where ``frame`` is a frame
        index *of the recording* (what replay seeks to).  Give it as
        ``frame=`` (recording index) or as ``source_index=`` (the ``index`` of
        the pair as the source numbered it, e.g. the frame on screen; mapped
        for the last 4096 pairs submitted); by default it is the last frame
        submitted.  Kinds used: start, stop, error, setting (name, value),
        settings (all), snapshot (path), marker (label), note (text).
        """
        if not isinstance(kind, str) or not kind:
            return
        frame = data.pop("frame", None)
        if frame is None:
            frame = self._by_source_index.get(data.get("source_index"), max(self._last_index, 0))
        event = {"time": _now_iso(), "t": round(time.monotonic() - self._t0, 6),
                 "frame": frame, "kind": kind}
        event.update(data)
        try:
            line = json.dumps(event, default=_json_default) + "\n"
        except (TypeError, ValueError) as e:
            line = json.dumps({k: event[k] for k in ("time", "t", "frame", "kind")}
                              | {"unserialisable": str(e)}) + "\n"
        with self._events_lock:
            try:
                with open(os.path.join(self.out_dir, fmt.EVENTS_JSONL), "a") as f:
                    f.write(line)
                    f.flush()
            except OSError as e:
                log.warning("recording %s: event %s not written (%s)", self.out_dir, kind,
                            e.strerror or e)

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
        if not wait_compaction:
            self._compact_abort.set()
            p = self._compacting
            if p is not None and p.poll() is None:
                p.kill()
        self._compact_q.put(_STOP)
        self._compactor.join(None if wait_compaction else timeout)
        return self.status

    @property
    def status(self) -> RecorderStatus:
        """A copy of the current :class:`RecorderStatus`."""
        with self._lock:
            st = RecorderStatus(**self._st.__dict__)
            st.queue_frames = len(self._queue)
            st.queue_bytes = self._queued_bytes
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

    # -- start --------------------------------------------------------------------
    def _prepare_dir(self) -> None:
        d = self.out_dir
        if os.path.exists(d):
            if not os.path.isdir(d):
                raise RecordingError(f"{d}: exists and is not a directory")
            if os.listdir(d):
                raise RecordingError(f"{d}: exists and is not empty; choose a new directory")
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise RecordingError(f"{d}: cannot create ({e.strerror})") from None
        free = _free_bytes(d)
        self._st.disk_free = free
        if free is not None and free < self.min_free_bytes:
            raise RecordingError(
                f"{d}: only {free / MB:.0f} MB free; recording needs at least "
                f"{self.min_free_bytes / MB:.0f} MB to start")

    def _write_start_files(self, info: SourceInfo, settings, calibration, label) -> None:
        from ..settings import Settings

        d = self.out_dir
        settings = settings if settings is not None else Settings()
        wl_desc, wl_lossless, _ = fmt.WL_CODECS[self.wl_codec]
        self._session = {
            "format": fmt.FORMAT_NAME,
            "schema_version": fmt.SCHEMA_VERSION,
            "created": _now_iso(),
            "label": label,
            "software": {"name": "nirf-overlay", "version": __version__,
                         "ffmpeg": fmt.ffmpeg_version()},
            "source": {
                "description": info.description, "live": bool(info.live),
                "device": info.device, "frame_count": info.frame_count,
                "exposure_ms": info.exposure_ms, "gain": info.gain,
            },
            "size": list(self.size),
            "fps": self.fps,
            "nir_bits": self.nir_bits,
            "nir_codec": self.nir_codec,
            "nir_compacted_to": "ffv1" if self._compact else None,
            "nir_pix_fmt": fmt.NIR_PIX_FMT,
            "wl_codec": self.wl_codec,
            "wl_codec_description": wl_desc,
            "wl_lossless": wl_lossless,
            "segment_frames": self.segment_frames,
            "settings": fmt.SETTINGS_JSON,
            "calibration": None,
            "calibration_source": getattr(calibration, "source_path", None) if calibration else None,
            "state": "recording",
            "interrupted": True,  # until a clean stop rewrites it
            "stopped": None,
            "stop_reason": None,
            "error": None,
            "frames": 0,
            "frames_not_written": 0,
            "segments": 0,
            "duration_s": None,
        }
        try:
            self._write_session()
            settings.save(os.path.join(d, fmt.SETTINGS_JSON))
            if calibration is not None:
                from ..calibration.profile import save_profile

                save_profile(calibration, os.path.join(d, fmt.CALIBRATION_PROFILE))
                self._session["calibration"] = fmt.CALIBRATION_PROFILE.replace(os.sep, "/")
                self._write_session()
            with open(os.path.join(d, fmt.SEGMENTS_CSV), "w", newline="") as f:
                csv.writer(f).writerow(fmt.SEGMENT_COLUMNS)
            self._frames_f = open(os.path.join(d, fmt.FRAMES_CSV), "w", newline="")
            self._frames_csv = csv.writer(self._frames_f)
            self._frames_csv.writerow(fmt.FRAME_COLUMNS)
            self._frames_f.flush()
            open(os.path.join(d, fmt.EVENTS_JSONL), "a").close()
        except OSError as e:
            raise RecordingError(f"{d}: cannot write the session files ({e.strerror or e})") from None

    def _write_session(self) -> None:
        # padded to a fixed size so the final rewrite fits in place on a full disk
        fmt.write_json_atomic(os.path.join(self.out_dir, fmt.SESSION_JSON), self._session,
                              pad_to=8192)

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
                except _Failure as e:
                    self._fail(str(e))
                    self._lose(1)
                except OSError as e:
                    self._fail(_plain_os_error(e, self.out_dir))
                    self._lose(1)
            if self._failure is None and self._seg is not None:
                try:
                    self._close_segment()
                except _Failure as e:
                    self._fail(str(e))
        except Exception as e:  # a bug: still never raise into anyone's thread
            log.exception("recording writer failed")
            self._fail(f"internal error: {e}")
        finally:
            if self._seg is not None:
                self._abort_segment()
            self._closer_q.put(_STOP)
            self._closer.join()
            self._finalise()

    def _write_pair(self, wl: np.ndarray, nir: Optional[np.ndarray], row: dict) -> None:
        if self._seg is None:
            self._open_segment(row["index"])
        seg = self._seg
        if nir is None:
            if self._nir_zero is None:
                self._nir_zero = np.zeros((self.size[1], self.size[0]), np.uint16)
            nir_data, lost = self._nir_zero, 1
        else:
            nir_data, lost = nir, 0
        self._pipe_write(seg.procs[0], nir_data, seg.nir_file)
        self._pipe_write(seg.procs[1], wl, seg.wl_file)
        row = dict(row, segment=seg.number, nir_lost=lost)
        self._frames_csv.writerow([fmt.fmt_opt(row[c]) for c in fmt.FRAME_COLUMNS])
        self._frames_f.flush()
        seg.frames += 1
        with self._lock:
            self._st.frames_written += 1
        if seg.frames >= self.segment_frames:
            self._close_segment()

    def _open_segment(self, first_frame: int) -> None:
        free = _free_bytes(self.out_dir)
        with self._lock:
            self._st.disk_free = free
        if free is not None and self.stop_free_bytes and free < self.stop_free_bytes:
            raise _Failure(f"disk nearly full: only {free / MB:.0f} MB left on "
                           f"{self.out_dir}; recording stopped")
        seg = _Segment(self._next_segment, first_frame)
        self._next_segment += 1
        nir_path = os.path.join(self.out_dir, seg.nir_file + fmt.PART_SUFFIX)
        wl_path = os.path.join(self.out_dir, seg.wl_file + fmt.PART_SUFFIX)
        cmds = [fmt.nir_encoder_cmd(nir_path, self.size, self.fps, self.nir_codec),
                fmt.wl_encoder_cmd(wl_path, self.size, self.fps, self.wl_codec,
                                   self.segment_frames)]
        self._seg = seg
        for cmd in cmds:
            try:
                p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
            except OSError as e:
                raise _Failure(f"cannot start the encoder ({e.strerror or e})") from None
            _grow_pipe(p.stdin)
            seg.procs.append(p)

    def _pipe_write(self, proc: subprocess.Popen, arr: np.ndarray, name: str) -> None:
        try:
            proc.stdin.write(memoryview(arr).cast("B"))
        except (BrokenPipeError, OSError, ValueError):
            raise _Failure(self._encoder_problem(proc, name)) from None

    def _encoder_problem(self, proc: subprocess.Popen, name: str) -> str:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        text = _read_stderr(proc)
        free = _free_bytes(self.out_dir)
        if "No space left" in text or (free is not None and free < 1 * MB):
            return f"disk full: {self.out_dir} has no space left; recording stopped"
        last = text.strip().splitlines()[-1] if text.strip() else f"exit code {proc.returncode}"
        return f"{name}: the encoder failed ({last}); recording stopped"

    def _close_segment(self) -> None:
        """End the current segment: wait until both encoders have written their files.

        Waiting here (not in the closer) means only one segment is ever being
        written, so a disk that fills can only cost the newest segment; every
        earlier one is already complete.
        """
        seg, self._seg = self._seg, None
        problem = None
        for p, name in zip(seg.procs, (seg.nir_file, seg.wl_file)):
            try:
                p.stdin.close()
            except (BrokenPipeError, OSError):
                problem = problem or (p, name)
        for p, name in zip(seg.procs, (seg.nir_file, seg.wl_file)):
            try:
                rc = p.wait(120)
            except subprocess.TimeoutExpired:
                self._discard_segment(seg)
                raise _Failure(f"{name}: the encoder did not finish; recording stopped") from None
            if rc != 0:
                problem = problem or (p, name)
        if problem is not None:
            message = self._encoder_problem(*problem)
            self._discard_segment(seg)
            raise _Failure(message)
        self._closer_q.put(seg)

    def _abort_segment(self) -> None:
        seg, self._seg = self._seg, None
        self._discard_segment(seg)

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
                    raise _Failure(f"segment {seg.number} follows a lost segment; recording stopped")
                self._finish_segment(seg)
                expected_first = seg.first_frame + seg.frames
            except _Failure as e:
                self._discard_segment(seg)
                self._fail(str(e))
            except OSError as e:
                self._discard_segment(seg)
                self._fail(_plain_os_error(e, self.out_dir))
            except Exception as e:  # a bug: keep the viewer alive
                log.exception("recording closer failed")
                self._discard_segment(seg)
                self._fail(f"internal error: {e}")

    def _finish_segment(self, seg: _Segment) -> None:
        """Make a complete segment durable (fsync, rename) and list it in segments.csv."""
        size = 0
        for name in (seg.nir_file, seg.wl_file):
            part = os.path.join(self.out_dir, name + fmt.PART_SUFFIX)
            fd = os.open(part, os.O_RDONLY)
            try:
                os.fsync(fd)  # on disk before it is listed: power loss keeps it whole
            finally:
                os.close(fd)
            size += os.path.getsize(part)
            os.replace(part, os.path.join(self.out_dir, name))
        os.fsync(self._frames_f.fileno())
        fmt.fsync_dir(self.out_dir)
        row = ",".join(str(v) for v in (seg.number, seg.first_frame, seg.frames, seg.nir_file,
                                         seg.wl_file, fmt.NIR_PIX_FMT, self.wl_codec))
        for attempt in range(4):
            try:
                _append_line(os.path.join(self.out_dir, fmt.SEGMENTS_CSV), row + "\r\n")
                break
            except OSError as e:
                # a full disk: the writer is deleting the newest, unfinished segment, which
                # frees the few bytes this row needs
                if e.errno not in (errno.ENOSPC, errno.EDQUOT) or attempt == 3:
                    raise
                time.sleep(0.25)
        with self._lock:
            self._st.segments += 1
            self._st.frames_safe += seg.frames
            self._st.bytes_on_disk += size
        if self._compact:
            self._compact_q.put(seg.nir_file)

    def _discard_segment(self, seg: _Segment) -> None:
        """Stop a segment's encoders and delete its files (frees space); count its frames."""
        for p in seg.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.stdin.close()
            except Exception:
                pass
            p.wait()
            _read_stderr(p)
        for name in (seg.nir_file, seg.wl_file):
            for suffix in (fmt.PART_SUFFIX, ""):
                try:
                    os.unlink(os.path.join(self.out_dir, name + suffix))
                except OSError:
                    pass
        if seg.frames:
            self._lose(seg.frames)

    # -- compactor thread -------------------------------------------------------------
    def _compactor_main(self) -> None:
        while True:
            name = self._compact_q.get()
            if name is _STOP:
                return
            if self._compact_abort.is_set():
                continue
            try:
                before = os.path.getsize(os.path.join(self.out_dir, name))
                done = compact_segment(self.out_dir, name, on_start=self._set_compacting)
                if done:
                    after = os.path.getsize(os.path.join(self.out_dir, name))
                    with self._lock:
                        self._st.segments_compacted += 1
                        self._st.bytes_on_disk += after - before
            except Exception as e:  # compaction is an optimisation: never stop recording
                if not self._compact_abort.is_set():
                    log.warning("recording %s: %s not compacted (%s)", self.out_dir, name, e)
            finally:
                self._compacting = None

    def _set_compacting(self, proc) -> None:
        self._compacting = proc
        if self._compact_abort.is_set():
            proc.kill()

    # -- the end --------------------------------------------------------------------
    def _finalise(self) -> None:
        with self._room:
            self._accepting = False
            rest = [it for it in self._queue if it is not _STOP]
            self._queue.clear()
            self._queued_bytes = 0
        if rest:
            self._lose(len(rest))
        try:
            self._frames_f.close()
        except OSError:
            pass
        st = self.status
        reason = self._failure or "stopped"
        duration = time.monotonic() - self._t0
        self.log_event("stop", reason=reason, frames=st.frames_safe,
                       frames_not_written=st.frames_not_written)
        if self._failure:
            self.log_event("error", message=self._failure)
        self._session.update({
            "state": "stopped", "interrupted": False, "stopped": _now_iso(),
            "stop_reason": reason, "error": self._failure, "frames": st.frames_safe,
            "frames_not_written": st.frames_not_written, "segments": st.segments,
            "duration_s": round(duration, 3),
        })
        try:
            self._write_session()
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
            self._st.disk_free = _free_bytes(self.out_dir)


class _Failure(Exception):
    """Internal: the recording has to stop; the message is for the user."""


def _plain_os_error(e: OSError, where: str) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full: {where} has no space left; recording stopped"
    name = getattr(e, "filename", None) or where
    return f"{name}: write failed ({e.strerror or e}); recording stopped"


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


def _append_line(path: str, line: str) -> None:
    """Append ``line`` durably, all or nothing: a failed write is cut off again."""
    data = line.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, "No space left on device", path)
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)


def _free_bytes(path: str) -> Optional[int]:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def _grow_pipe(f) -> None:
    """Larger pipe buffer: fewer wake-ups per multi-megabyte frame (Linux only)."""
    try:
        import fcntl

        fcntl.fcntl(f.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


def _read_stderr(proc: subprocess.Popen) -> str:
    try:
        data = proc.stderr.read() if proc.stderr else b""
        proc.stderr.close()
    except (OSError, ValueError):
        return ""
    return data.decode("utf-8", "replace") if data else ""


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    return str(o)

