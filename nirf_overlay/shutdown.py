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

Nor may the exception start in Python code that C code called and that
cannot pass it on: numba loading a cached kernel (``_numba_unpickle`` runs
under the dispatcher's C code, which turns any exception into a
``SystemError``: the stop shows as a crash), llvmlite (an exception in its
compiler's callbacks ended a process with a double free), or a finalizer
(``weakref.finalize``, ``__del__``: run by the garbage collector, which
prints the exception and drops it: the stop is lost).  A signal arriving
while such a frame is on the stack is held and raised in the code that
called it, at its first step after the call returns (a trace function on that
frame alone, the way a debugger stops at a line; ``sys.settrace`` only until
then, and not at all when another tracer is installed: a coverage run keeps
the plain rule).
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

#: the signals that stop a command in order
SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP"))
                if s is not None)

#: modules whose Python code runs under C code that mangles or drops an exception
LIBRARIES = frozenset({"numba", "llvmlite", "weakref"})

_depth = 0  # atomic() blocks open in the main thread
_pending = None  # signal number held by an atomic() block or a library


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


def _unsafe(frame) -> bool:
    """``frame`` is one of :data:`LIBRARIES`' or a ``__del__``."""
    return (frame.f_globals.get("__name__", "").partition(".")[0] in LIBRARIES
            or frame.f_code.co_name == "__del__")


def _caller_of_unsafe(frame):
    """The frame that called the outermost unsafe frame on the stack from ``frame`` up
    (None if there is none)."""
    caller = None
    while frame is not None:
        if _unsafe(frame):
            caller = frame.f_back
        frame = frame.f_back
    return caller


def _no_new_frames(frame, event, arg):
    """The thread's trace function while a signal waits: no other frame is traced."""
    return None


def _deliver(frame, event, arg):
    """The waiting frame's trace function: its first event after the unsafe call raises."""
    global _pending
    frame.f_trace = None
    sys.settrace(None)
    signum, _pending = _pending, None
    if signum is not None:
        raise Stopped(signum)
    return None


def _handler(signum, frame) -> None:
    global _pending
    if _depth > 0:
        _pending = signum  # raised when the atomic() block ends
        return
    caller = _caller_of_unsafe(frame) if sys.gettrace() is None else None
    if caller is None:
        raise Stopped(signum)
    _pending = signum
    caller.f_trace_lines = True
    caller.f_trace = _deliver
    sys.settrace(_no_new_frames)


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
