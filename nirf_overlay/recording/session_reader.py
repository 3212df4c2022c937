"""Reading a session directory's tables: :func:`read_session` -> :class:`Session`.

Everything but the pixels (those are decoded by
:class:`~.session.SessionSource`): ``session.json``, the segment and frame
tables and the event log, checked against each other.  An interrupted
recording is read up to its last complete segment.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import NamedTuple

from ..errors import RecordingError
from . import format as fmt


class Marker(NamedTuple):
    """A marker the user set while recording (an ``events.jsonl`` line of kind "marker").

    A ``(frame, label, ...)`` tuple, so that it reads like the ``(index, label)``
    markers of :attr:`FrameSource.markers <nirf_overlay.sources.base.FrameSource.markers>`.
    """

    frame: int  # recording index
    label: str = ""
    t: float = 0.0  # seconds since the recording started
    time: str = ""  # ISO-8601 UTC wall time


@dataclass
class SegmentEntry:
    number: int
    first_frame: int
    frames: int
    nir_file: str
    wl_file: str
    nir_pix_fmt: str
    wl_codec: str


@dataclass
class Session:
    """Everything in a session directory except the pixels.

    Attributes
    ----------
    path : the directory
    meta : session.json as a dict
    segments : complete segments, in order
    frames : rows of frames.csv for the readable frames (dicts of strings)
    events : events.jsonl, one dict per line (a torn last line is skipped)
    interrupted : the recording was not stopped cleanly (crash, kill, power loss)
    frames_listed : rows in frames.csv, including frames lost in an unfinished segment
    """

    path: str
    meta: dict
    segments: list
    frames: list
    events: list
    interrupted: bool
    frames_listed: int = 0
    warnings: list = field(default_factory=list)

    @property
    def frame_count(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.meta["size"][0]), int(self.meta["size"][1])

    @property
    def fps(self) -> float:
        return float(self.meta["fps"])

    @property
    def markers(self) -> list[Marker]:
        out = []
        for e in self.events:
            if e.get("kind") == "marker":
                out.append(Marker(frame=int(e.get("frame", 0)), t=float(e.get("t", 0.0)),
                                  label=str(e.get("label", "") or ""), time=str(e.get("time", ""))))
        return out

    def recorded_settings(self):
        """The :class:`~nirf_overlay.settings.Settings` in force when recording started."""
        from ..errors import SettingsError
        from ..settings import Settings

        path = os.path.join(self.path, self.meta.get("settings") or fmt.SETTINGS_JSON)
        try:
            return Settings.load(path)
        except SettingsError as e:
            raise RecordingError(str(e)) from None

    def recorded_calibration(self):
        """The :class:`~nirf_overlay.calibration.Calibration` in force at the start, or None."""
        rel = self.meta.get("calibration")
        if not rel:
            return None
        from ..calibration.profile import load_profile
        from ..errors import CalibrationError

        try:
            return load_profile(os.path.join(self.path, rel))
        except CalibrationError as e:
            raise RecordingError(str(e)) from None


def read_session(path) -> Session:
    """Read a session directory's tables; raise a one-line RecordingError if unusable.

    An interrupted session (no clean stop) is read up to its last complete
    segment; ``Session.warnings`` says what was lost.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise RecordingError(f"{path}: not a directory")
    meta_path = os.path.join(path, fmt.SESSION_JSON)
    meta = fmt.read_json(meta_path, "session description")
    if meta.get("format") != fmt.FORMAT_NAME:
        raise RecordingError(f"{meta_path}: not a nirf-overlay session (format "
                             f"{meta.get('format')!r})")
    version = meta.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise RecordingError(f"{meta_path}: schema_version {version!r} is not a positive integer")
    if version > fmt.SCHEMA_VERSION:
        raise RecordingError(f"{meta_path}: schema_version {version} is newer than this "
                             f"nirf-overlay reads ({fmt.SCHEMA_VERSION}); upgrade nirf-overlay")
    try:
        w, h = (int(v) for v in meta["size"])
        fps = float(meta["fps"])
        int(meta["nir_bits"])
        if w <= 0 or h <= 0 or not fps > 0:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise RecordingError(f"{meta_path}: size, fps or nir_bits missing or invalid") from None

    seg_path = os.path.join(path, fmt.SEGMENTS_CSV)
    segments = []
    for n, row in enumerate(fmt.read_csv_rows(seg_path, fmt.SEGMENT_COLUMNS, "segment table"),
                            start=2):
        try:
            seg = SegmentEntry(int(row["segment"]), int(row["first_frame"]), int(row["frames"]),
                               row["nir_file"], row["wl_file"], row["nir_pix_fmt"],
                               row["wl_codec"])
            if seg.nir_pix_fmt != fmt.NIR_PIX_FMT:
                raise ValueError
        except ValueError:
            raise RecordingError(f"{seg_path}: line {n} is not a valid segment entry") from None
        expected_first = segments[-1].first_frame + segments[-1].frames if segments else 0
        if seg.first_frame != expected_first or seg.frames <= 0:
            raise RecordingError(f"{seg_path}: line {n}: segment {seg.number} starts at frame "
                                 f"{seg.first_frame}, expected {expected_first}")
        for name in (seg.nir_file, seg.wl_file):
            full = os.path.join(path, name)
            if os.path.basename(name) != name:
                raise RecordingError(f"{seg_path}: line {n}: {name!r} is not a plain file name")
            if not os.path.isfile(full):
                raise RecordingError(f"{full}: missing (listed in {fmt.SEGMENTS_CSV})")
            if os.path.getsize(full) == 0:
                raise RecordingError(f"{full}: empty file")
        segments.append(seg)

    frames_path = os.path.join(path, fmt.FRAMES_CSV)
    rows = fmt.read_csv_rows(frames_path, fmt.FRAME_COLUMNS_REQUIRED, "frame table")
    readable = segments[-1].first_frame + segments[-1].frames if segments else 0
    if len(rows) < readable:
        raise RecordingError(f"{frames_path}: lists {len(rows)} frames but the segments hold "
                             f"{readable}")
    for i in (0, readable - 1):
        if readable and rows[i]["index"] != str(i):
            raise RecordingError(f"{frames_path}: row {i + 2} is frame {rows[i]['index']}, "
                                 f"expected {i}")
    events = _read_events(os.path.join(path, fmt.EVENTS_JSONL))
    interrupted = bool(meta.get("interrupted", True))
    warnings = []
    if interrupted:
        lost = len(rows) - readable
        warnings.append(f"{path}: the recording was interrupted (not stopped cleanly); "
                        f"{readable} frames readable, {lost} frames of the unfinished "
                        "segment lost")
    elif meta.get("error"):
        warnings.append(f"{path}: the recording stopped early: {meta['error']}")
    return Session(path=path, meta=meta, segments=segments, frames=rows[:readable],
                   events=events, interrupted=interrupted, frames_listed=len(rows),
                   warnings=warnings)


def _read_events(path: str) -> list:
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise RecordingError(f"{path}: cannot read the event log ({e.__class__.__name__})") from None
    events = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):  # torn by a crash mid-write
                break
            raise RecordingError(f"{path}: line {n} is not valid JSON") from None
        if isinstance(e, dict):
            events.append(e)
    return events
