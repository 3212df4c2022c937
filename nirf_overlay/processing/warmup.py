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
(``_validate.read_only``) and compile once instead of 2-6 times (the cold warm-up was
124 s before, on 2 shared cores; what it costs now, and what parallel compiling and eager
signatures would give, is in the README's "First start").

Whether numba's cache on disk already holds this code (:func:`kernel_cache`):
after every complete warm-up a small stamp (:data:`STAMP_NAME`) is written in
the cache folder naming the numba and Python versions, the CPU and a hash of the
processing sources; the cache is *warm* when that stamp matches and every kernel
module has its index there.  Then :func:`warm_up_in_child` loads the kernels here
at once instead of starting a child first.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Optional

__all__ = ["KernelCache", "Progress", "STEPS", "is_warm", "kernel_cache", "warm_up",
           "warm_up_in_child"]


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


#: file written in the cache folder after a complete warm-up (see :func:`kernel_cache`); one
#: per install (a hash of its folder follows), as installs may share ``NUMBA_CACHE_DIR``
STAMP_NAME = "nirf-overlay-kernels"


@dataclass(frozen=True)
class KernelCache:
    """What numba's cache on disk holds for the kernels (:func:`kernel_cache`)."""

    folder: str
    modules: tuple  # the kernel modules (processing/_kernels/*.py), by name
    indexed: tuple  # those with an index (``*.nbi``) in ``folder``
    stamp_matches: bool  # a warm-up of these sources, this numba and CPU wrote it

    @property
    def warm(self) -> bool:
        """Loading the kernels needs no compiling (a second or so)."""
        return self.stamp_matches and len(self.indexed) == len(self.modules)

    @property
    def state(self) -> str:
        if self.warm:
            return "warm"
        if not self.indexed:
            return "cold"
        return "partly warm" if self.stamp_matches else "stale (another version or edited)"

    def text(self) -> str:
        return (f"{self.state}: {len(self.indexed)} of {len(self.modules)} kernel modules "
                f"cached in {self.folder}")


def _kernels_dir() -> Path:
    from . import _kernels

    return Path(_kernels.__file__).resolve().parent


def _cache_folder() -> str:
    """Where numba keeps the kernels' compiled code: ``NUMBA_CACHE_DIR``, else beside them."""
    import numba

    return numba.config.CACHE_DIR or str(_kernels_dir() / "__pycache__")


def _stamp() -> dict:
    """What compiled code depends on: numba, Python, the CPU and the processing sources."""
    import llvmlite.binding
    import numba

    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.rglob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return {"numba": numba.__version__, "python": platform.python_version(),
            "cpu": llvmlite.binding.get_host_cpu_name(), "sources": digest.hexdigest(),
            "install": str(_kernels_dir())}


def _stamp_path(folder: str) -> str:
    install = hashlib.sha1(str(_kernels_dir()).encode()).hexdigest()[:12]
    return os.path.join(folder, f"{STAMP_NAME}-{install}.json")


def kernel_cache() -> KernelCache:
    """Whether numba's cache already holds the kernels for this install (nothing compiled)."""
    folder = _cache_folder()
    modules = tuple(sorted(p.stem for p in _kernels_dir().glob("*.py")
                           if not p.name.startswith("__")))
    index = glob.glob(os.path.join(folder, "**", "*.nbi"), recursive=True)
    cached = {os.path.basename(p).split(".")[0] for p in index}
    try:
        with open(_stamp_path(folder), encoding="utf-8") as f:
            matches = json.load(f) == _stamp()
    except (OSError, ValueError):
        matches = False
    return KernelCache(folder, modules, tuple(m for m in modules if m in cached), matches)


def _write_stamp() -> None:
    folder = _cache_folder()
    try:
        os.makedirs(folder, exist_ok=True)
        path = _stamp_path(folder)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(_stamp(), f)
        os.replace(tmp, path)
    except OSError:  # a read-only cache folder: the next start takes the child's way again
        pass


def warm_up(progress: Optional[Callable[[Progress], None]] = None,
            stop: Optional[threading.Event] = None) -> bool:
    """Compile (or load from numba's cache) every kernel of the pipeline, once per process.

    ``progress`` hears a :class:`Progress` before each step and once when all
    are done (also when they were done already).  Another thread's call waits
    for this one.  ``stop`` set ends it between two steps (the kernels are
    then not ready: a later call goes on).  Returns whether they are ready.
    """
    t0 = time.monotonic()
    with _lock:
        if not _done.is_set():
            n = len(STEPS)
            for i, (label, step) in enumerate(STEPS, 1):
                if stop is not None and stop.is_set():
                    return False
                _tell(progress, Progress(i, n, label, time.monotonic() - t0))
                step()
            _done.set()
            _write_stamp()  # the next process may load without a child (kernel_cache)
    _tell(progress, Progress(len(STEPS), len(STEPS), "ready", time.monotonic() - t0, done=True))
    return True


def warm_up_in_child(progress: Optional[Callable[[Progress], None]] = None,
                     stop: Optional[threading.Event] = None) -> bool:
    """Compile the kernels in a child process, then load them here from numba's cache.

    The viewer's way: compiling holds this process's GIL for most of a minute,
    and the white light played at 7-12 fps with STALE flickering while it did;
    a child process compiles without touching this one's threads, and loading
    the cached code here afterwards takes about a second.  The child reports
    each step on its stdout (``step<TAB>total<TAB>label``) and ends when this
    process does (its stdin closes).  If it fails, the kernels are compiled
    here instead (:func:`warm_up`), so nothing is lost but smoothness.  When the
    cache on disk is warm already (:func:`kernel_cache`) there is nothing to
    compile and no child is started: the kernels load here at once.  A
    second call (another viewer engine) waits for the first; :func:`current`
    says how far it is.  ``stop`` set ends the child at once and the loading
    here between two steps (:func:`warm_up`).  Returns whether a child was
    started.
    """
    with _child_lock:
        child = not is_warm() and not kernel_cache().warm
        if child:
            _compile_in_child(progress, stop)
    if stop is None or not stop.is_set():
        warm_up(progress, stop)  # loads what the child cached (or compiles here if it failed)
    return child


def _end_when(stop: threading.Event, proc) -> None:
    """End the compiling child ``proc`` once ``stop`` is set (returns when either ends)."""
    while not stop.wait(0.2):
        if proc.poll() is not None:
            return
    proc.kill()


def _compile_in_child(progress, stop: Optional[threading.Event] = None) -> None:
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
        if stop is not None:
            threading.Thread(target=_end_when, args=(stop, proc), name="nirf-kernels-child",
                             daemon=True).start()
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
    if (proc is None or proc.returncode != 0) and not (stop is not None and stop.is_set()):
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
