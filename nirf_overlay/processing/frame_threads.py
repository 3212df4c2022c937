"""Parts of one frame's work side by side on a small thread pool.

A frame's lesions are independent once the coarse grid has found them: each
one reads the frame's arrays and writes only its own.  Most of a lesion's
time is spent in numba kernels (``nogil``) and OpenCV calls, which release
the GIL, so two lesions on two threads overlap on two cores; the Python
between the calls still runs one thread at a time.

:func:`ordered_map` is ``[fn(x) for x in items]`` with the same results in
the same order whatever the threads' timing: each item's result is stored
by its index, and nothing is shared between the calls (so rim order and ids
stay as on one thread).  The calling thread takes part: with ``workers`` = 2
it refines one lesion while one pool thread refines another, each taking
the next lesion not yet taken.

:func:`ordered_map` alone is the pool's use.  Measured and left (1080p phantom,
one process, pipelines alternating frames, quiet 2-core machine): the tissue's
motion beside the normalisation (1.02-1.05x the frame's wall time: the
normalisation's two numba threads already fill both cores), and the rings'
exclusion, frame-size masks and plane check beside the candidate search (load
7: 1.00x wall, 1.00x CPU; the search slowed by what they took of the GIL
about as much as they saved).

When to use more than one worker (the pipeline's rule, :mod:`.pipeline`):
when the caller waits for the analysis (``process``, ``batch``, ``bench``'s
every frame, the viewer's ``--sync-analysis``); never on the live
analysis thread, which runs beside the display thread and must leave it
its core.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence

_POOL_LOCK = threading.Lock()
_POOL: list = [None, 0]  # the executor, its thread count
_PREFIX = "nirf-frame"  # its threads' names


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, else every core)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _pool(threads: int) -> ThreadPoolExecutor:
    """The process's pool with at least ``threads`` threads (made once, grown if
    asked for more; idle between frames)."""
    with _POOL_LOCK:
        if _POOL[0] is None or _POOL[1] < threads:
            old = _POOL[0]
            _POOL[0] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=_PREFIX)
            _POOL[1] = threads
            if old is not None:
                old.shutdown(wait=False)
        return _POOL[0]


def ordered_map(fn: Callable, items: Sequence, workers: int = 1) -> list:
    """``[fn(x) for x in items]``, on up to ``workers`` threads (the caller one of them).

    Parameters
    ----------
    fn : called once per item; must not share writable state between calls
    items : the work, in the order the results are returned
    workers : threads in all, the calling thread included; 1 (or one item):
        plain calls on the calling thread

    Returns
    -------
    list of results in the order of ``items``

    Raises
    ------
    Whatever ``fn`` raised for the first item (in order) that failed, once
    every started call has finished.
    """
    n = len(items)
    workers = min(int(workers), n)
    if workers <= 1 or threading.current_thread().name.startswith(_PREFIX):
        # (on a pool thread itself: its helpers would queue behind it)
        return [fn(x) for x in items]
    results: list = [None] * n
    errors: list[Optional[BaseException]] = [None] * n
    taken = [0]
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                i = taken[0]
                if i >= n:
                    return
                taken[0] = i + 1
            try:
                results[i] = fn(items[i])
            except BaseException as e:  # re-raised on the caller's thread, below
                errors[i] = e

    pool = _pool(workers - 1)
    helpers = [pool.submit(work) for _ in range(workers - 1)]
    work()
    for h in helpers:
        h.result()
    for e in errors:
        if e is not None:
            raise e
    return results
