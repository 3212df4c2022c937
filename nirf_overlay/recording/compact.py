"""Re-encoding NIR segments to FFV1 (the archival codec), bit-exactly and crash-safely.

Sessions are written with FFVHuff (see :mod:`.format` for why); FFV1 is
optional.  :func:`compact_session` converts a finished session; a
:class:`Compactor` converts a recording's closed segments in idle time while
it records (:class:`~.recorder.Recorder` with ``compact=True``).  Each conversion runs FFmpeg at idle CPU priority, compares
the MD5 of the decoded frames before and after, fsyncs the new file and
renames it over the old one, so an interruption leaves the FFVHuff file.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import threading
from typing import Callable, Optional

from ..errors import RecordingError
from . import format as fmt
from .session_reader import read_session

log = logging.getLogger(__name__)
_STOP = object()


class DamagedSegment(RuntimeError):
    """A segment does not decode whole: it is left as it is (never re-encoded)."""


def _frame_hashes(text: str) -> list[str]:
    """The per-frame lines of FFmpeg's ``framemd5`` output (comments dropped)."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def compact_segment(session_dir: str, nir_file: str, *, expected_frames: Optional[int] = None,
                    on_start=None) -> bool:
    """Re-encode one FFVHuff NIR segment to FFV1 in place, bit-exactly; True if done.

    Runs FFmpeg at idle priority (it only takes CPU nobody else wants), checks
    that the original decodes whole (``expected_frames``, from segments.csv and
    frames.csv: else :class:`DamagedSegment`) and that every decoded frame's MD5
    is the same before and after, fsyncs the new file and renames it over the old
    one.  Any failure leaves the original.
    """
    src = os.path.join(session_dir, nir_file)
    if fmt.is_ffv1(src):
        return False
    tmp = src + ".ffv1" + fmt.PART_SUFFIX
    try:
        # one pass writes FFV1 and hashes the original frames; a second hashes the result
        cmd = fmt.compact_cmd(src, tmp) + ["-map", "0:v:0", "-f", "framemd5", "pipe:1"]
        before = _frame_hashes(_run_idle(cmd, on_start))
        if expected_frames is not None and len(before) != expected_frames:
            raise DamagedSegment(f"decodes {len(before)} of its {expected_frames} frames "
                                 "(damaged or truncated); left as it is, not converted")
        after = _frame_hashes(_run_idle(
            [fmt.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin",
             "-i", tmp, "-map", "0:v:0", "-f", "framemd5", "pipe:1"], on_start))
        if not before or before != after:
            raise RuntimeError(f"decoded frames differ after re-encoding ({len(before)} frames "
                               f"before, {len(after)} after)")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, src)
        fmt.fsync_dir(session_dir)
        return True
    finally:
        if os.path.exists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _run_idle(cmd: list, on_start=None) -> str:
    """Run ``cmd`` at idle CPU priority; return its stdout, raise on failure."""
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    _make_idle(p.pid)
    if on_start is not None:
        on_start(p)
    out, err = p.communicate()
    if p.returncode != 0:
        last = err.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(last[-1] if last else f"ffmpeg exit code {p.returncode}")
    return out.decode("ascii", "replace").strip()


def _make_idle(pid: int) -> None:
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, pid, 19)
    except (AttributeError, OSError):
        pass


class Compactor:
    """Re-encodes the closed NIR segments of a recording to FFV1 on its own thread.

    Compaction is an optimisation: a failure is logged, never stops the
    recording, and leaves the FFVHuff segment (lossless all the same).

    Parameters
    ----------
    session_dir : str
    on_compacted : callable
        ``on_compacted(size_change)`` after each segment re-encoded (bytes; negative
        when the file shrank), on the compactor's thread.
    """

    def __init__(self, session_dir: str, on_compacted: Callable[[int], None]):
        self.session_dir = session_dir
        self._on_compacted = on_compacted
        self._queue: "queue.Queue" = queue.Queue()
        self._abort = threading.Event()
        self._running: Optional[subprocess.Popen] = None
        self._thread = threading.Thread(target=self._main, name="nirf-rec-compactor", daemon=True)
        self._thread.start()

    def submit(self, nir_file: str, frames: Optional[int] = None) -> None:
        """Queue a closed segment's NIR file (holding ``frames`` frames) for re-encoding."""
        self._queue.put((nir_file, frames))

    def stop(self, *, wait: bool, timeout: float) -> None:
        """Stop after the queued segments (``wait``) or at once, killing the running FFmpeg."""
        if not wait:
            self._abort.set()
            p = self._running
            if p is not None and p.poll() is None:
                p.kill()
        self._queue.put(_STOP)
        self._thread.join(None if wait else timeout)

    def _main(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            name, frames = item
            if self._abort.is_set():
                continue
            path = os.path.join(self.session_dir, name)
            try:
                before = os.path.getsize(path)
                if compact_segment(self.session_dir, name, expected_frames=frames,
                                   on_start=self._started):
                    self._on_compacted(os.path.getsize(path) - before)
            except Exception as e:  # compaction is an optimisation: never stop recording
                if not self._abort.is_set():
                    log.warning("recording %s: %s not compacted (%s)", self.session_dir, name, e)
            finally:
                self._running = None

    def _started(self, proc: subprocess.Popen) -> None:
        self._running = proc
        if self._abort.is_set():
            proc.kill()


def compact_session(path, *, progress=None) -> int:
    """Compact every NIR segment of a session that is not FFV1 yet; return how many.

    Safe to run on a session being replayed (files are replaced atomically)
    and to interrupt (the remaining segments stay FFVHuff, still lossless).
    ``progress(done, total)`` is called after each segment.
    """
    session = read_session(path)
    todo = []
    for seg in session.segments:
        full = os.path.join(session.path, seg.nir_file)
        if not fmt.is_ffv1(full):
            todo.append(seg)
        elif os.path.exists(full + ".ffv1" + fmt.PART_SUFFIX):  # left by a killed compactor
            try:
                os.unlink(full + ".ffv1" + fmt.PART_SUFFIX)
            except OSError:
                pass
    done, damaged = 0, []
    for i, seg in enumerate(todo, start=1):
        where = os.path.join(session.path, seg.nir_file)
        # the frames the session lists for this segment: segments.csv, and frames.csv's rows
        listed = max(0, min(session.frame_count, seg.first_frame + seg.frames) - seg.first_frame)
        if listed != seg.frames:
            damaged.append(f"{where}: segments.csv lists {seg.frames} frames but frames.csv "
                           f"{listed}; not converted")
            continue
        try:
            done += bool(compact_segment(session.path, seg.nir_file, expected_frames=seg.frames))
        except DamagedSegment as e:
            damaged.append(f"{where}: {e}")
        except RuntimeError as e:
            raise RecordingError(f"{where}: not compacted ({e})") from None
        if progress is not None:
            progress(i, len(todo))
    if damaged:
        for line in damaged:
            log.warning("%s", line)
        more = f" (and {len(damaged) - 1} more segment(s), listed above)" if len(damaged) > 1 else ""
        raise RecordingError(f"{damaged[0]}{more}; {done} other segment(s) compacted")
    return done
