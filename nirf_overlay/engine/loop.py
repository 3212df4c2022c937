"""The synchronous frame loop of ``process``, ``batch``, ``bench`` and ``evaluate``.

Read -> process -> every listener, pair by pair, in order and as fast as it
goes (no pacing, no dropping, no threads): the viewer's
:class:`~.runner.Engine` without the worker thread and the mailbox.  Outputs
are :class:`~.listeners.Listener` objects, the same protocol the engine's
listeners follow, so one output class serves both.
"""

from __future__ import annotations

import time
from typing import Iterable, Optional, Sequence

from .listeners import Listener
from .mailbox import DisplayFrame
from .span import Span
from .state import RunState


def run_frames(source: Iterable, pipeline, listeners: Sequence[Listener] = (), *,
               span: Optional[Span] = None) -> int:
    """Process ``source`` pair by pair and hand every result to ``listeners``.

    Each listener hears ``on_state(RUNNING)``, then ``on_pair(pair)`` and
    ``on_result(frame)`` for every pair (a :class:`~.mailbox.DisplayFrame`
    with ``seq`` 1, 2, ... and ``process_ms``, the time ``pipeline.process``
    took), ``on_state(ENDED)`` when the pairs run out and ``on_state(STOPPED)``
    last, also when the run fails.  Listeners are called in turn on this
    thread; one that raises ends the run with its exception.

    Parameters
    ----------
    source : a :class:`~nirf_overlay.sources.base.FrameSource`, or any
        iterable of :class:`~nirf_overlay.frame.FramePair` (pairs read
        beforehand, a pacing generator, phantom frames)
    pipeline : anything with ``process(pair) -> FrameResult`` (and ``reset()``
        when ``span`` seeks)
    listeners : the outputs
    span : the part of ``source`` to process (then ``source`` must be a
        FrameSource); its times become ``FrameResult.time_s``.  None: every
        pair, with the time it carries.

    Returns
    -------
    int : pairs processed
    """
    frames = ((p, p.wl_time) for p in source) if span is None else span.select(source, pipeline)
    for listener in listeners:
        listener.on_state(RunState.RUNNING)
    n = 0
    try:
        for pair, t in frames:
            for listener in listeners:
                listener.on_pair(pair)
            t0 = time.perf_counter()
            result = pipeline.process(pair)
            process_ms = (time.perf_counter() - t0) * 1e3
            result.time_s = t
            n += 1
            frame = DisplayFrame(pair, result, None, time.monotonic(), n, process_ms)
            for listener in listeners:
                listener.on_result(frame)
        for listener in listeners:
            listener.on_state(RunState.ENDED)
    finally:
        for listener in listeners:
            listener.on_state(RunState.STOPPED)
    return n
