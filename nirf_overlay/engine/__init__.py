"""Running a pipeline over a source and handing the results to listeners.

Two runners, one listener protocol:

- :class:`Engine` (:mod:`.runner`), the viewer's: capture -> process on a
  worker thread, the newest result in a one-slot mailbox for the display
  (:mod:`.mailbox`), replay pacing, pause, step, seek and loop for files and
  sessions (:mod:`.replay`), recording control (:mod:`.recording`) and
  counters (:mod:`.stats`) as listeners of its own, every other listener on
  its own relay thread (:mod:`.listeners`).
- :func:`run_frames` (:mod:`.loop`), the synchronous loop of ``process``,
  ``batch``, ``bench`` and ``evaluate``: every pair in order, unpaced, over a
  :class:`Span` of the source (:mod:`.span`).

Qt-free: the GUI, the command line and the batch workers run the same code.
"""

from .listeners import RELAY_DEPTH, Listener, ListenerRelay
from .loop import run_frames
from .mailbox import DisplayFrame, LatestMailbox
from .recorded_plane import RecordedPlane, recorded_plane_listeners
from .replay import SPEED_RANGE
from .runner import Engine
from .span import Span
from .state import RecordingState, RunState
from .stats import EngineStatus, percentile
from .threads import set_worker_nice, spawn
from .viewer import open_engine, viewer_spec

__all__ = ["DisplayFrame", "Engine", "EngineStatus", "LatestMailbox", "Listener",
           "ListenerRelay", "RELAY_DEPTH", "RecordedPlane", "RecordingState", "RunState", "SPEED_RANGE", "Span",
           "open_engine", "percentile", "recorded_plane_listeners", "run_frames", "set_worker_nice", "spawn", "viewer_spec"]
