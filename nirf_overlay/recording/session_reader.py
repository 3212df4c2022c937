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
    segment; a table damaged anywhere (segments.csv, frames.csv cut or with a
    garbage line, events.jsonl with a line that is not JSON) is read up to the
    damage.  ``Session.warnings`` says what was lost, naming the file.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise RecordingError(f"{path}: not a directory; give a session folder that nirf-overlay "
                             "record wrote")
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

    damage: list = []  # what a damaged table cost: read up to the damage, say what was lost
    # a torn last line is what a crash leaves; after a clean stop it is damage
    torn = not meta.get("interrupted", True)
    seg_path = os.path.join(path, fmt.SEGMENTS_CSV)
    frames_path = os.path.join(path, fmt.FRAMES_CSV)
    # what one table lost is rebuilt from the other where it can be (never both)
    seg_rows, seg_error = _table(seg_path, fmt.SEGMENT_COLUMNS, "segment table", damage, torn)
    seg_damaged = bool(damage) or seg_error is not None
    rows, frames_error = _table(frames_path, fmt.FRAME_COLUMNS_REQUIRED, "frame table", damage,
                                torn)
    if seg_error and (frames_error or not rows):
        raise seg_error
    segments = []
    for n, row in enumerate(seg_rows or [], start=2):
        problem = _segment_problem(path, seg_path, n, row, segments)
        if isinstance(problem, str):
            damage.append(f"{problem}; read the {len(segments)} segments before it")
            seg_damaged = True
            break
        segments.append(problem)
    if seg_damaged and rows:  # the segments after the damage, from frames.csv and the files
        end = segments[-1].first_frame + segments[-1].frames if segments else 0
        found = 0
        for row in _rebuilt_segment_rows(rows, meta, interrupted=not torn):
            if int(row["first_frame"]) < end:
                continue
            entry = _segment_problem(path, seg_path, 0, row, segments)
            if isinstance(entry, str):
                break
            segments.append(entry)
            found += 1
        if found or seg_error:
            damage.append(f"{seg_error or seg_path}: {found} segment(s) after the damage found "
                          f"from {fmt.FRAMES_CSV} and the segment files")
    if frames_error and not segments:
        raise frames_error
    rows = rows or []
    for i, row in enumerate(rows):
        if row["index"] != str(i):
            damage.append(f"{frames_path}: row {i + 2} is frame {row['index']!r}, expected {i}; "
                          f"read the {i} frames before it")
            rows = rows[:i]
            break
    readable = segments[-1].first_frame + segments[-1].frames if segments else 0
    if len(rows) < readable:  # the frames after the damage: in the segments, without rows
        damage.append(f"{frames_error or frames_path}: lists {len(rows)} frames but the segments "
                      f"hold {readable}; the {readable - len(rows)} frames after it read, timed "
                      f"by the frame rate ({fps:g} fps; their capture times, exposure, gain and "
                      "NIR status are unknown)")
        rows = rows + _rebuilt_frame_rows(segments, fps, rows)
    events = _read_events(os.path.join(path, fmt.EVENTS_JSONL), damage, torn_is_damage=torn)
    interrupted = bool(meta.get("interrupted", True))
    warnings = list(damage)
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


def _table(path: str, columns: tuple, what: str, damage: list, torn: bool):
    """``(rows, None)``, or ``(None, RecordingError)`` for a table with nothing readable."""
    try:
        return fmt.read_csv_rows(path, columns, what, damage, torn_is_damage=torn), None
    except RecordingError as e:
        return None, e


def _rebuilt_segment_rows(frames: list, meta: dict, *, interrupted: bool) -> list:
    """segments.csv rows from frames.csv's ``segment`` column (the file names follow from
    the number); an interrupted recording's last segment may be unfinished: left out."""
    counts: dict = {}
    for row in frames:
        try:
            number = int(row["segment"])
        except ValueError:
            break
        counts[number] = counts.get(number, 0) + 1
    out, first = [], 0
    for number, frames_in in counts.items():
        nir_file, wl_file = fmt.segment_names(number)
        out.append({"segment": str(number), "first_frame": str(first), "frames": str(frames_in),
                    "nir_file": nir_file, "wl_file": wl_file, "nir_pix_fmt": fmt.NIR_PIX_FMT,
                    "wl_codec": str(meta.get("wl_codec", fmt.DEFAULT_WL_CODEC))})
        first += frames_in
    return out[:-1] if interrupted else out


def _rebuilt_frame_rows(segments: list, fps: float, known: list) -> list:
    """frames.csv rows for the frames the segments hold after the ``known`` rows, timed by
    the frame rate from the last known frame's times."""
    rows, start = [], len(known)
    try:
        t0 = float(known[-1]["wl_time"]) - (start - 1) / fps if known else 0.0
    except ValueError:
        t0 = 0.0
    for seg in segments:
        for i in range(max(start, seg.first_frame), seg.first_frame + seg.frames):
            t = repr(t0 + i / fps)
            rows.append({"index": str(i), "source_index": str(i), "segment": str(seg.number),
                         "wl_time": t, "nir_time": t, "arrival": "", "exposure_ms": "",
                         "gain": "", "nir_lost": "0", "dropped_before": "0", "unpaired": "0",
                         "not_written_before": "0"})
    return rows


def _segment_problem(path: str, seg_path: str, n: int, row: dict, segments: list):
    """Line ``n`` of segments.csv as a SegmentEntry, or a one-line problem (str)."""
    try:
        seg = SegmentEntry(int(row["segment"]), int(row["first_frame"]), int(row["frames"]),
                           row["nir_file"], row["wl_file"], row["nir_pix_fmt"], row["wl_codec"])
        if seg.nir_pix_fmt != fmt.NIR_PIX_FMT:
            raise ValueError
    except ValueError:
        return f"{seg_path}: line {n} is not a valid segment entry"
    expected_first = segments[-1].first_frame + segments[-1].frames if segments else 0
    if seg.first_frame != expected_first or seg.frames <= 0:
        return (f"{seg_path}: line {n}: segment {seg.number} starts at frame {seg.first_frame}, "
                f"expected {expected_first}")
    for name in (seg.nir_file, seg.wl_file):
        full = os.path.join(path, name)
        if os.path.basename(name) != name:
            return f"{seg_path}: line {n}: {name!r} is not a plain file name"
        if not os.path.isfile(full):
            return f"{full}: missing (listed in {fmt.SEGMENTS_CSV})"
        if os.path.getsize(full) == 0:
            return f"{full}: empty file"
    return seg


def _read_events(path: str, damage: list, *, torn_is_damage: bool = False) -> list:
    """events.jsonl; a line that is not a JSON object is skipped and counted in ``damage``
    (a torn last line, a crash mid-write, silently unless ``torn_is_damage``)."""
    if not os.path.exists(path):
        return []
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except OSError as e:
        damage.append(f"{path}: cannot read the event log ({e.__class__.__name__}); no events")
        return []
    events, bad = [], []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            e = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            if n != len(lines) or torn_is_damage:  # the last one: torn by a crash mid-write
                bad.append(n)
            continue
        if isinstance(e, dict):
            events.append(e)
        else:
            bad.append(n)
    if torn_is_damage and not events and not bad:
        damage.append(f"{path}: empty, but a recording stopped cleanly logs its start and stop; "
                      "its events (markers, NIR lost and back) are lost")
    if bad:
        damage.append(f"{path}: {len(bad)} damaged line(s) skipped (line {bad[0]}"
                      f"{' ...' if len(bad) > 1 else ''}); {len(events)} events read")
    return events
