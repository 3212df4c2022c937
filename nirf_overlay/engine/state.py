"""The states a run goes through, and the recorder attached to it."""

from __future__ import annotations

import enum


class RunState(str, enum.Enum):
    """Where a run is.  A ``str`` enum, so it is written to JSON stats as its value.

    ::

        STARTING --> RUNNING <--> PAUSED
                        |  \\
                        |   --> ENDED (a file or session ran out; a seek or
                        |             resume starts it again)
                        --> ERROR (the last read or process failed; cleared
                                   when a frame comes through again)
        any --> STOPPED (stop(): the source is closed)
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
