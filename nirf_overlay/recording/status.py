"""What a recording has done so far: :class:`RecorderStatus` (``Recorder.status()``, ``.stop()``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class RecorderStatus:
    """A snapshot of what the recorder has done (:meth:`Recorder.status`, :meth:`Recorder.stop`).

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
