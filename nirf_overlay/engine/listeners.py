"""Outputs of a run: the :class:`Listener` protocol, and a relay that keeps slow ones off capture.

Both runners -- the viewer's :class:`~.runner.Engine` and the synchronous
:func:`~.loop.run_frames` of ``process``, ``batch``, ``bench`` and
``evaluate`` -- tell their listeners the same three things, in this order
for every pair::

    on_state(state)   the run's RunState changed (RUNNING, ENDED, STOPPED, ...)
    on_pair(pair)     a FramePair was captured, before it is processed
    on_result(frame)  its DisplayFrame (pair, FrameResult, ...) was produced

:func:`~.loop.run_frames` calls each listener in turn on the thread that
runs it; a listener that raises ends the run (an output that cannot be
written must not go missing quietly).  The :class:`~.runner.Engine` never lets a listener near its
worker thread: :meth:`~.runner.Engine.add_listener` puts each one behind a
:class:`ListenerRelay`, its own thread and queue.

The arrays of ``frame.result`` (composite, masks) are the pipeline's
buffers and are reused a few frames later (``Pipeline(ring=...)``): a
listener that falls behind and needs pixels should copy them; rows and
measurements are its own.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable, Optional, Protocol

from .threads import spawn

log = logging.getLogger(__name__)

#: pairs and results a relay holds for a listener that is behind (each keeps
#: its pair's frames alive: 8 at 1080p are about 80 MB)
RELAY_DEPTH = 8


class Listener(Protocol):
    """What a run tells an output.  Subclass it and override what you need.

    Any object with these three methods is a listener (the protocol is
    structural); subclassing gives the ones you leave out as no-ops.
    """

    def on_state(self, state) -> None:
        """The run's :class:`~.state.RunState` changed."""

    def on_pair(self, pair) -> None:
        """A :class:`~nirf_overlay.frame.FramePair` was captured (not yet processed)."""

    def on_result(self, frame) -> None:
        """A :class:`~.mailbox.DisplayFrame` was produced; results come in order."""


class ListenerRelay:
    """Hands a run's events to one listener on its own thread, so it never stalls capture.

    The worker only appends to a queue under a short lock: it never waits
    for the listener.  When the listener is more than ``depth`` pairs and
    results behind, new ones are not queued but counted in :attr:`dropped`
    (never silently); state changes are always queued.  A listener that
    raises is detached: the relay stops, logs it and calls
    ``on_error(relay, exception)``.

    Parameters
    ----------
    listener : a :class:`Listener`
    depth : pairs and results held at most
    on_error : ``f(relay, exception)``, called on the relay's thread
    """

    def __init__(self, listener: Listener, *, depth: int = RELAY_DEPTH,
                 on_error: Optional[Callable] = None):
        self.listener = listener
        self.depth = int(depth)
        self.dropped = 0
        self._on_error = on_error
        self._cv = threading.Condition()
        self._items: deque = deque()
        self._held = 0  # pairs and results in _items
        self._closing = False
        self._thread = spawn(self._run, f"nirf-listener-{type(listener).__name__}")

    @property
    def name(self) -> str:
        return type(self.listener).__name__

    def on_state(self, state) -> None:
        self._push(self.listener.on_state, state, counted=False)

    def on_pair(self, pair) -> None:
        self._push(self.listener.on_pair, pair, counted=True)

    def on_result(self, frame) -> None:
        self._push(self.listener.on_result, frame, counted=True)

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is queued (for up to ``timeout`` seconds), then end the thread."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _push(self, method, arg, *, counted: bool) -> None:
        with self._cv:
            if self._closing:
                return
            if counted:
                if self._held >= self.depth:
                    self.dropped += 1
                    return
                self._held += 1
            self._items.append((method, arg, counted))
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._items and not self._closing:
                    self._cv.wait()
                if not self._items:
                    return
                method, arg, counted = self._items.popleft()
                if counted:
                    self._held -= 1
            try:
                method(arg)
            except Exception as e:  # a broken output must not stop the viewer
                log.exception("listener %s failed; detached", self.name)
                with self._cv:
                    self._closing = True
                    self._items.clear()
                if self._on_error is not None:
                    self._on_error(self, e)
                return
