"""Orderly shutdown on SIGINT, SIGTERM and SIGHUP: the one rule for every command.

The CLI calls :func:`install` once (``cli.main``).  From then on each of the
three signals raises :class:`Stopped` (a ``KeyboardInterrupt``, so every
``except KeyboardInterrupt`` that already finishes a run cleanly handles a
service manager's SIGTERM and a closed terminal's SIGHUP the same way as
Ctrl-C) in the main thread, with the signal's number.

A signal must not land between two files of one frame (a metrics row written,
its mask not), so code that writes one frame's outputs runs inside
:func:`atomic`: a signal arriving there is held and raised when the block
ends, after the frame is complete.  ``cli.main`` turns :class:`Stopped` into
one line and the conventional exit code, ``128 + signal number`` (130, 143,
129).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

#: the signals that stop a command in order
SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP"))
                if s is not None)

_depth = 0  # atomic() blocks open in the main thread
_pending = None  # signal number held by an atomic() block


class Stopped(KeyboardInterrupt):
    """A stop signal; ``signum`` says which, ``exit_code`` is 128 + signum."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _handler(signum, frame) -> None:
    global _pending
    if _depth > 0:
        _pending = signum
        return
    raise Stopped(signum)


def install() -> None:
    """Route the stop signals to :class:`Stopped` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for s in SIGNALS:
        signal.signal(s, _handler)


@contextmanager
def atomic():
    """Hold a stop signal until the block ends (main thread; other threads pass through)."""
    global _depth, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    except BaseException:
        _depth -= 1  # already ending: a held signal is raised by the next block
        raise
    _depth -= 1
    if _depth == 0 and _pending is not None:
        signum, _pending = _pending, None
        raise Stopped(signum)


def exit_code(exc: BaseException) -> int:
    """The conventional exit code of a stop: 128 + signal (130 for a plain KeyboardInterrupt)."""
    return exc.exit_code if isinstance(exc, Stopped) else 128 + signal.SIGINT


def signal_name(exc: BaseException) -> str:
    return exc.name if isinstance(exc, Stopped) else "SIGINT"
