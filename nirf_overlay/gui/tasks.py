"""Work for the viewer done on helper threads, its results handed back on the GUI thread.

The GUI thread never waits on disk, network or a closing source: snapshots
are written, sources opened, profiles loaded and engines stopped by
:meth:`BackgroundTasks.run` on a helper thread; the window's display timer
calls :meth:`BackgroundTasks.collect`, which runs each task's ``on_done``
on the GUI thread.  Qt-free: a queue, polled.
"""

from __future__ import annotations

import logging
import queue
from typing import Any, Callable, Optional

from ..engine import spawn
from ..errors import NirfError

log = logging.getLogger(__name__)

__all__ = ["BackgroundTasks"]

#: ``on_done(result, error)``: exactly one of them is None (unless fn returned None)
OnDone = Callable[[Any, Optional[BaseException]], None]


class BackgroundTasks:
    """Run functions on helper threads; deliver their results where :meth:`collect` runs."""

    def __init__(self):
        self._done: "queue.Queue" = queue.Queue()

    def run(self, name: str, fn: Callable[[], Any], on_done: OnDone) -> None:
        """Run ``fn()`` on a thread called ``nirf-<name>``; queue ``on_done(result, error)``."""

        def work():
            try:
                self._done.put((on_done, fn(), None))
            except Exception as e:
                if not isinstance(e, NirfError):  # a plain-words error needs no traceback
                    log.exception("%s failed", name)
                self._done.put((on_done, None, e))

        spawn(work, f"nirf-{name}")

    def collect(self) -> None:
        """Run the ``on_done`` of every finished task (call this on the GUI thread)."""
        while True:
            try:
                on_done, result, error = self._done.get_nowait()
            except queue.Empty:
                return
            try:
                on_done(result, error)
            except Exception:  # one failed follow-up must not stop the others
                log.exception("after background task")
