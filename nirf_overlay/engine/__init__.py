"""Running a pipeline over a source and handing the results to listeners.

:class:`Engine` (:mod:`.runner`), the viewer's runner: capture -> process on
a worker thread, the newest result in a one-slot mailbox for the display
(:mod:`.mailbox`), replay pacing, pause, step, seek and loop for files and
sessions (:mod:`.replay`), recording control (:mod:`.recording`) and
counters (:mod:`.stats`) as listeners of its own, every other listener on
its own relay thread (:mod:`.listeners`).

Qt-free: the GUI, the command line and the batch workers run the same code.
"""

from .listeners import RELAY_DEPTH, Listener, ListenerRelay
from .mailbox import DisplayFrame, LatestMailbox
from .replay import SPEED_RANGE
from .runner import Engine
from .state import RecordingState, RunState
from .stats import EngineStatus, percentile
from .threads import set_worker_nice, spawn
from .viewer import open_engine, viewer_spec

__all__ = ["DisplayFrame", "Engine", "EngineStatus", "LatestMailbox", "Listener",
           "ListenerRelay", "RELAY_DEPTH", "RecordingState", "RunState", "SPEED_RANGE",
           "open_engine", "percentile", "set_worker_nice", "spawn", "viewer_spec"]
