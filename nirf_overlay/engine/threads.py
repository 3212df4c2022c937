"""The engine's threads: every one is started through :func:`spawn`, at one priority."""

from __future__ import annotations

import os
import threading
from typing import Optional

#: Niceness the engine's threads run at (None: inherit).  The viewer raises
#: its GUI thread's priority so that painting is not queued behind
#: processing; threads started from the GUI thread would inherit that, so
#: every thread started through :func:`spawn` first drops to this value.
WORKER_NICE: Optional[int] = None


def set_worker_nice(nice: Optional[int]) -> None:
    """Run threads started from now on at niceness ``nice`` (None: inherit)."""
    global WORKER_NICE
    WORKER_NICE = nice


def at_worker_priority() -> None:
    """Drop the calling thread to :data:`WORKER_NICE` (a thread pool's initializer)."""
    if WORKER_NICE is None:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
    except OSError:  # lowering one's own priority is always allowed; be safe anyway
        pass


def spawn(target, name: str, *args) -> threading.Thread:
    """Start a daemon thread running ``target(*args)`` at :data:`WORKER_NICE`."""

    def run():
        at_worker_priority()
        target(*args)

    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    return t
