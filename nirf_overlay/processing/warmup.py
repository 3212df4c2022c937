"""Preparing the numba kernels before the first frame: the one place that does it, with progress.

numba compiles a kernel on its first call and keeps the machine code in its
cache (``cache=True``; ``NUMBA_CACHE_DIR`` or ``__pycache__`` beside the
kernels).  The first start after installing (or after editing a kernel) has
nothing cached and compiles every kernel: about 45-60 s on 2 shared cores,
most of it LLVM optimising the parallel per-pixel sweeps and the rim
analysis.  A later start loads them from the cache in about a second.

:func:`warm_up` runs :data:`STEPS` in order, once per process (a second call,
from any thread, returns when the first is done), and tells
``progress(Progress)`` before each step and when it is done.  The viewer runs
it on a thread behind the open window (:class:`~nirf_overlay.engine.Engine`
with ``prepare=True``); ``process``, ``bench`` and ``batch`` print one line
(``cli.common.KernelProgressLine``).

Fewer specialisations is what shortened the wait: numba compiles one version
per argument type and a read-only array is a type of its own, so the
normalisation and compositing kernels are always handed read-only views
(``_validate.read_only``) and compile once instead of 2-6 times (measured, 2 shared
cores: cold warm-up 124 s -> see the README's "First start").
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Optional

__all__ = ["Progress", "STEPS", "is_warm", "warm_up", "warm_up_in_child"]


@dataclass(frozen=True)
class Progress:
    """Where the preparation is: step ``step`` of ``total`` (1-based), or done."""

    step: int
    total: int
    label: str  # what this step prepares, in words
    elapsed_s: float = 0.0
    done: bool = False

    def text(self) -> str:
        """``Preparing analysis kernels 3/7 (segmentation)`` or ``analysis kernels ready``."""
        if self.done:
            return f"analysis kernels ready ({self.elapsed_s:.0f} s)"
        return f"Preparing analysis kernels {self.step}/{self.total} ({self.label})"


def _normalise() -> None:
    from .normalise import warm_up

    warm_up()


def _composite() -> None:
    from .composite import warm_up

    warm_up()


def _analysis_step(name: str) -> Callable[[], None]:
    def run() -> None:
        from .analysis import WARM_STEPS

        WARM_STEPS[name]()
    return run


#: (what it prepares, how) in the order they run; the labels are what the user reads
STEPS: tuple = (
    ("normalisation", _normalise),
    ("overlay", _composite),
    ("analysis grid", _analysis_step("grid")),
    ("segmentation", _analysis_step("segmentation")),
    ("liver background", _analysis_step("background")),
    ("rim outline", _analysis_step("refine")),
    ("rim measurement", _analysis_step("rims")),
)

_lock = threading.Lock()
_child_lock = threading.Lock()
_done = threading.Event()
_latest: Optional[Progress] = None


def current() -> Optional[Progress]:
    """How far the preparation running in this process is (None: none started)."""
    return _latest


def _tell(progress, p: Progress) -> None:
    global _latest
    _latest = p
    if progress is not None:
        progress(p)


def is_warm() -> bool:
    """The kernels were prepared in this process (the pipeline can start at once)."""
    return _done.is_set()


def warm_up(progress: Optional[Callable[[Progress], None]] = None) -> None:
    """Compile (or load from numba's cache) every kernel of the pipeline, once per process.

    ``progress`` hears a :class:`Progress` before each step and once when all
    are done (also when they were done already).  Another thread's call waits
    for this one.
    """
    t0 = time.monotonic()
    with _lock:
        if not _done.is_set():
            n = len(STEPS)
            for i, (label, step) in enumerate(STEPS, 1):
                _tell(progress, Progress(i, n, label, time.monotonic() - t0))
                step()
            _done.set()
    _tell(progress, Progress(len(STEPS), len(STEPS), "ready", time.monotonic() - t0, done=True))


def warm_up_in_child(progress: Optional[Callable[[Progress], None]] = None) -> None:
    """Compile the kernels in a child process, then load them here from numba's cache.

    The viewer's way: compiling holds this process's GIL for most of a minute,
    and the white light played at 7-12 fps with STALE flickering while it did;
    a child process compiles without touching this one's threads, and loading
    the cached code here afterwards takes about a second.  The child reports
    each step on its stdout (``step<TAB>total<TAB>label``) and ends when this
    process does (its stdin closes).  If it fails, the kernels are compiled
    here instead (:func:`warm_up`), so nothing is lost but smoothness.  A
    second call (another viewer engine) waits for the first; :func:`current`
    says how far it is.
    """
    with _child_lock:
        if not is_warm():
            _compile_in_child(progress)
    warm_up(progress)  # loads what the child cached (or compiles here if it failed)


def _compile_in_child(progress) -> None:
    t0 = time.monotonic()
    import nirf_overlay

    root = Path(nirf_overlay.__file__).resolve().parent.parent  # -m finds this same package
    last_lines: list = []
    try:
        proc = subprocess.Popen([sys.executable, "-m", __name__], cwd=str(root),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    except OSError as e:
        last_lines.append(str(e))
        proc = None
    if proc is not None:
        with proc.stdout:
            for line in proc.stdout:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
                    _tell(progress, Progress(int(parts[0]), int(parts[1]), parts[2],
                                             time.monotonic() - t0))
                else:
                    last_lines = (last_lines + [line.rstrip()])[-5:]
        proc.wait()
        proc.stdin.close()
    if proc is None or proc.returncode != 0:
        import logging

        logging.getLogger(__name__).warning(
            "compiling the kernels in a child process failed (%s); compiling them here",
            " | ".join(last_lines) or f"exit code {proc.returncode}")


def _main() -> int:
    """``python -m nirf_overlay.processing.warmup``: compile, reporting each step on stdout."""
    def report(p: Progress) -> None:
        if not p.done:
            print(f"{p.step}\t{p.total}\t{p.label}", flush=True)

    def orphaned() -> None:  # the parent ended (its end of stdin closed): stop compiling
        sys.stdin.read()
        os._exit(3)

    threading.Thread(target=orphaned, daemon=True).start()

    warm_up(report)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
