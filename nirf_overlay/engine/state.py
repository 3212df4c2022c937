"""The states a run goes through, and the recorder attached to it."""

from __future__ import annotations

import enum


class RunState(str, enum.Enum):
    """Where a run is.  A ``str`` enum, so it is written to JSON stats as its value.

    STARTING (made, not started), RUNNING (frames come through), PAUSED
    (replay paused), ENDED (a file or session ran out), ERROR (the last read
    or process failed), STOPPED (``stop()``: the source is closed).  Which
    leads to which: the diagram in :mod:`nirf_overlay.engine.runner`;
    :func:`~nirf_overlay.engine.loop.run_frames` goes RUNNING -> ENDED -> STOPPED.
    """

    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    ENDED = "ended"
    ERROR = "error"
    STOPPED = "stopped"


class RecordingState(str, enum.Enum):
    """The recorder attached to a run: ``OFF -> STARTING -> ON -> STOPPING -> OFF``."""

    OFF = "off"
    STARTING = "starting"
    ON = "on"
    STOPPING = "stopping"
