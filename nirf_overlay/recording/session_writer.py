"""The files of a session directory as a recording writes them (reading: :mod:`.session`).

Each file is written so that a crash at any moment leaves a readable session
(the format and its guarantees are in :mod:`.format`): ``session.json`` is
replaced atomically and padded to a fixed size, so that its final rewrite fits
in place on a full disk; ``frames.csv`` rows are flushed as each frame is
written; a ``segments.csv`` row is appended durably (all or nothing) only
after the segment's files and the frame rows before it are fsynced;
``events.jsonl`` lines are flushed one by one.
"""

from __future__ import annotations

import csv
import datetime as _dt
import errno
import json
import logging
import os
import threading
import time
from typing import Optional

import numpy as np

from .. import __version__
from ..outputs import check_new_output_dir
from ..errors import RecordingError
from ..frame import SourceInfo
from ..privacy import shown_in, shown_path
from ..settings import Settings
from . import format as fmt

log = logging.getLogger(__name__)


class SessionWriter:
    """Creates a session directory and writes its tables and descriptions.

    Parameters
    ----------
    out_dir : str
        The session directory: created; an existing non-empty one is refused.
    min_free_bytes : int
        Refuse to start with less free space.

    Attributes
    ----------
    disk_free : free bytes when the directory was created (None: unknown)

    Raises
    ------
    RecordingError
        The directory is not usable or the disk is too full.
    """

    def __init__(self, out_dir: str, min_free_bytes: int):
        self.out_dir = d = out_dir
        check_new_session_dir(d)
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise RecordingError(f"{d}: cannot create the session directory ({e.strerror}); "
                                 "give a folder you can write to") from None
        free = self.disk_free = fmt.free_bytes(d)
        if free is not None and free < min_free_bytes:
            raise RecordingError(
                f"{d}: only {free / fmt.MB:.0f} MB free; recording needs at least "
                f"{min_free_bytes / fmt.MB:.0f} MB to start; free space there or give a folder "
                "on another disk")
        self._meta: dict = {}
        self._events_lock = threading.Lock()
        self._keep_paths = False  # the user's --keep-paths, known at start()

    def start(self, info: SourceInfo, settings: Settings, calibration, *,
              size: tuple[int, int], fps: float, nir_bits: int, nir_codec: str,
              compact: bool, wl_codec: str, segment_frames: int,
              label: Optional[str]) -> None:
        """Write session.json (``interrupted`` until :meth:`finish`), settings.json, the
        calibration, and the table headers; RecordingError if that fails."""
        d = self.out_dir
        self._keep_paths = info.keep_paths
        # the profile by its file name, as the source is named (privacy.py)
        cal_source = shown_path(calibration.source_path, info.keep_paths) if calibration else None
        self._meta = _start_meta(info, size=size, fps=fps, nir_bits=nir_bits,
                                 nir_codec=nir_codec, compact=compact, wl_codec=wl_codec,
                                 segment_frames=segment_frames, label=label,
                                 calibration_source=cal_source)
        try:
            self._write_meta()
            settings.save(os.path.join(d, fmt.SETTINGS_JSON))
            if calibration is not None:
                from ..calibration.profile import save_profile

                save_profile(calibration, os.path.join(d, fmt.CALIBRATION_PROFILE))
                self._meta["calibration"] = fmt.CALIBRATION_PROFILE.replace(os.sep, "/")
                self._write_meta()
            with open(os.path.join(d, fmt.SEGMENTS_CSV), "w", newline="") as f:
                csv.writer(f).writerow(fmt.SEGMENT_COLUMNS)
            self._frames_f = open(os.path.join(d, fmt.FRAMES_CSV), "w", newline="")
            self._frames_csv = csv.writer(self._frames_f)
            self._frames_csv.writerow(fmt.FRAME_COLUMNS)
            self._frames_f.flush()
            open(os.path.join(d, fmt.EVENTS_JSONL), "a").close()
        except OSError as e:
            raise RecordingError(f"{d}: cannot write the session files ({e.strerror or e}); give a "
                                 "folder you can write to") from None

    def add_frame(self, row: dict) -> None:
        """Append (and flush) a ``frames.csv`` row: a dict of :data:`~.format.FRAME_COLUMNS`."""
        self._frames_csv.writerow([fmt.fmt_opt(row[c]) for c in fmt.FRAME_COLUMNS])
        self._frames_f.flush()

    def list_segment(self, number: int, first_frame: int, frames: int, nir_file: str,
                     wl_file: str, wl_codec: str) -> None:
        """List a committed segment in ``segments.csv``: from now on its frames are safe.

        The frame rows written so far and the directory are fsynced first.
        Raises OSError.
        """
        os.fsync(self._frames_f.fileno())
        fmt.fsync_dir(self.out_dir)
        row = ",".join(str(v) for v in (number, first_frame, frames, nir_file, wl_file,
                                         fmt.NIR_PIX_FMT, wl_codec))
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

    def add_event(self, kind: str, t: float, frame: int, data: dict) -> None:
        """Append an ``events.jsonl`` line (flushed); never raises (a failure is logged).

        The line is ``{"time": ISO-8601 UTC, "t": t, "frame": frame, "kind": kind,
        ...data}``; values numpy gives are written as numbers and lists.
        """
        event = {"time": now_iso(), "t": t, "frame": frame, "kind": kind}
        event.update({k: self._shown(v) for k, v in data.items()})
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

    def close_frames(self) -> None:
        """Close ``frames.csv`` (no more frames come)."""
        try:
            self._frames_f.close()
        except OSError:
            pass

    def finish(self, **stop) -> None:
        """Rewrite session.json as stopped cleanly (``interrupted`` false), with ``stop``'s
        fields (stop_reason, error, frames, frames_not_written, segments, duration_s).
        Raises OSError."""
        self._meta.update({"state": "stopped", "interrupted": False, "stopped": now_iso()},
                          **{k: self._shown(v) for k, v in stop.items()})
        self._write_meta()

    def _shown(self, value):
        """A message written into the session names the session by its folder's own name
        (a disk-full or write error carries the whole path; privacy.py)."""
        return shown_in(value, self.out_dir, self._keep_paths) if isinstance(value, str) else value

    def _write_meta(self) -> None:
        fmt.write_json_atomic(os.path.join(self.out_dir, fmt.SESSION_JSON), self._meta,
                              pad_to=8192)


def check_new_session_dir(path: str) -> None:
    """Raise RecordingError unless ``path`` can become a new session: absent or an empty
    directory (the rule of every ``--out``, :mod:`nirf_overlay.outputs`)."""
    check_new_output_dir(path, "session directory", RecordingError)


def _start_meta(info: SourceInfo, *, size: tuple[int, int], fps: float, nir_bits: int,
                nir_codec: str, compact: bool, wl_codec: str, segment_frames: int,
                label: Optional[str], calibration_source: Optional[str]) -> dict:
    """``session.json`` as written when a recording starts."""
    wl_desc, wl_lossless, _ = fmt.WL_CODECS[wl_codec]
    return {
        "format": fmt.FORMAT_NAME,
        "schema_version": fmt.SCHEMA_VERSION,
        "created": now_iso(),
        "label": label,
        "software": {"name": "nirf-overlay", "version": __version__,
                     "ffmpeg": fmt.ffmpeg_version()},
        "source": {
            "description": info.description, "live": bool(info.live),
            "device": info.device, "frame_count": info.frame_count,
            "exposure_ms": info.exposure_ms, "gain": info.gain,
        },
        "size": list(size),
        "fps": fps,
        "nir_bits": nir_bits,
        "nir_codec": nir_codec,
        "nir_compacted_to": "ffv1" if compact else None,
        "nir_pix_fmt": fmt.NIR_PIX_FMT,
        "wl_codec": wl_codec,
        "wl_codec_description": wl_desc,
        "wl_lossless": wl_lossless,
        "segment_frames": segment_frames,
        "settings": fmt.SETTINGS_JSON,
        "calibration": None,
        "calibration_source": calibration_source,
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


def now_iso() -> str:
    """Wall time in session files: ISO-8601 UTC with milliseconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


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


def _json_default(o):
    """Events carry numpy scalars and arrays (settings values); anything else as text."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
