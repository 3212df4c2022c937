"""The encoder processes: each segment is two FFmpeg subprocesses fed raw frames by pipe.

The recorder's writer thread pipes every pair's NIR (``gray16le``, FFVHuff or
FFV1) and WL (BGR, :data:`~.format.WL_CODECS`) into the two encoders of the
segment being written; after ``segment_frames`` frames it finishes that
segment and opens the next one.  Encoding in subprocesses keeps the viewer's
interpreter free of encoder stalls and uses both cores.

:class:`PipeEncoder` is one such process (``make-sample`` writes its files
with it too).  A segment is written under ``<file>.part``; :meth:`Segment.finish` waits until
both encoders have exited cleanly, :meth:`Segment.commit` makes the files
durable (fsync) and gives them their names.  Only one segment is ever being
written, so a disk that fills can cost only the newest segment; every earlier
one is already complete.
"""

from __future__ import annotations

import os
import subprocess
from typing import Optional

import numpy as np

from ..errors import NirfError
from . import format as fmt


class EncoderError(Exception):
    """A segment cannot be written; the message is for the user (the recording stops)."""


class SegmentEncoders:
    """Opens the segments of one recording: their numbers, codecs and the free-space watermark.

    Parameters
    ----------
    out_dir : str
        The session directory.
    size : (W, H) pixels
    fps : float
        Frame rate written into the streams.
    nir_codec, wl_codec : str
        Keys of :data:`~.format.NIR_CODECS` and :data:`~.format.WL_CODECS`.
    segment_frames : int
        Frames per segment (also the WL keyframe interval of the H.264 codecs,
        so every segment decodes alone).
    stop_free_bytes : int
        Refuse to open a segment with less free space (0: no check).

    Attributes
    ----------
    disk_free : free bytes at the last segment opened (None: unknown)
    """

    def __init__(self, out_dir: str, size: tuple[int, int], fps: float, *, nir_codec: str,
                 wl_codec: str, segment_frames: int, stop_free_bytes: int):
        self.out_dir = out_dir
        self.size = size
        self.fps = fps
        self.nir_codec = nir_codec
        self.wl_codec = wl_codec
        self.segment_frames = segment_frames
        self.stop_free_bytes = stop_free_bytes
        self.disk_free: Optional[int] = None
        self._next = 0

    def open(self, first_frame: int) -> "Segment":
        """Start the encoders of the next segment, whose first frame is ``first_frame``.

        Raises EncoderError when the disk is nearly full or FFmpeg cannot start.
        """
        free = self.disk_free = fmt.free_bytes(self.out_dir)
        if free is not None and self.stop_free_bytes and free < self.stop_free_bytes:
            raise EncoderError(f"disk nearly full: only {free / fmt.MB:.0f} MB left on "
                               f"{self.out_dir}; recording stopped")
        number, self._next = self._next, self._next + 1
        nir_file, wl_file = fmt.segment_names(number)
        cmds = [
            fmt.nir_encoder_cmd(self._part(nir_file), self.size, self.fps, self.nir_codec),
            fmt.wl_encoder_cmd(self._part(wl_file), self.size, self.fps, self.wl_codec,
                               self.segment_frames),
        ]
        return Segment(self.out_dir, number, first_frame, cmds)

    def _part(self, name: str) -> str:
        return os.path.join(self.out_dir, name + fmt.PART_SUFFIX)


class PipeEncoder:
    """One FFmpeg process that reads raw frames on its stdin.

    Parameters
    ----------
    cmd : list of str
        The FFmpeg command (its input ``pipe:0`` or ``-``).

    It runs in its own session, so that a Ctrl-C meant for the recording
    stops the recorder, which then closes its encoders cleanly.

    Raises
    ------
    EncoderError
        FFmpeg cannot start.
    """

    def __init__(self, cmd: list):
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise EncoderError(f"cannot start the encoder ({e.strerror or e})") from None
        _grow_pipe(self._proc.stdin)
        self._stderr: Optional[str] = None  # read once the process has exited

    @property
    def returncode(self) -> Optional[int]:
        return self._proc.returncode

    def write(self, arr: np.ndarray) -> bool:
        """Pipe one frame (its bytes in C order); False when the encoder no longer reads."""
        try:
            self._proc.stdin.write(memoryview(np.ascontiguousarray(arr)).cast("B"))
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True

    def close_input(self) -> bool:
        """End of the frames; False when the pipe was already broken."""
        try:
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            return False
        return True

    def wait(self, timeout: Optional[float] = None) -> int:
        """The exit code once FFmpeg has finished its file (subprocess.TimeoutExpired)."""
        return self._proc.wait(timeout)

    def error_text(self) -> str:
        """What FFmpeg wrote to stderr, once it has exited (killed after 5 s)."""
        if self._stderr is None:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._stderr = _read_stderr(self._proc)
        return self._stderr

    def last_error(self) -> str:
        """The last line FFmpeg wrote to stderr, or its exit code."""
        return _last_line(self.error_text()) or f"exit code {self._proc.returncode}"

    def kill(self) -> None:
        """Stop at once (the file it was writing is left incomplete)."""
        p = self._proc
        if p.poll() is None:
            p.kill()
        try:
            p.stdin.close()
        except OSError:
            pass
        p.wait()
        self.error_text()  # drains and closes the pipe


def raw_video_encoder(path: str, size: tuple[int, int], fps: float, *, pix_in: str,
                      codec_args: list) -> PipeEncoder:
    """Raw frames piped into FFmpeg (libx264 or FFV1), muxed bit-exactly: the same frames
    give the same file (no random ids or dates).  ``make-sample`` and the evaluator's
    tower recordings write their files with it."""
    w, h = size
    return PipeEncoder([
        fmt.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", pix_in, "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-",
        *codec_args, "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1",
        path])


def write_frame(encoder: PipeEncoder, frame: np.ndarray, path: str) -> None:
    """Pipe one frame of ``path``'s encoder; one line if FFmpeg stopped reading."""
    if not encoder.write(frame):
        raise NirfError(f"{path}: ffmpeg failed: {encoder.last_error()}")


def finish_file(encoder: PipeEncoder, path: str) -> None:
    """End ``path``'s frames and wait for FFmpeg to finish it; one line if it failed."""
    encoder.close_input()
    if encoder.wait() != 0:
        raise NirfError(f"{path}: ffmpeg failed: {encoder.last_error()}")


class Segment:
    """One segment being written: the NIR and WL encoder processes and their files.

    Attributes
    ----------
    number : segment number (``segments.csv``)
    first_frame : recording index of its first frame
    frames : frames written into it so far
    nir_file, wl_file : the file names (written as ``<name>.part`` until committed)
    """

    def __init__(self, out_dir: str, number: int, first_frame: int, cmds: list):
        self.out_dir = out_dir
        self.number = number
        self.first_frame = first_frame
        self.frames = 0
        self.nir_file, self.wl_file = fmt.segment_names(number)
        self._encoders: list[PipeEncoder] = []
        for cmd in cmds:
            try:
                self._encoders.append(PipeEncoder(cmd))
            except EncoderError:
                self.discard()
                raise

    def write(self, nir: np.ndarray, wl: np.ndarray) -> None:
        """Pipe one pair: NIR (H, W) uint16 and WL (H, W, 3) uint8."""
        for enc, arr, name in zip(self._encoders, (nir, wl), self._names()):
            if not enc.write(arr):
                raise EncoderError(self._problem(enc, name))

    def finish(self) -> None:
        """Close the pipes and wait until both encoders have written their files.

        Raises EncoderError (then :meth:`discard` the segment) when an encoder
        fails or does not finish within two minutes.
        """
        problem = None
        for enc, name in zip(self._encoders, self._names()):
            if not enc.close_input():
                problem = problem or (enc, name)
        for enc, name in zip(self._encoders, self._names()):
            try:
                rc = enc.wait(120)
            except subprocess.TimeoutExpired:
                raise EncoderError(f"{name}: the encoder did not finish; recording stopped") from None
            if rc != 0:
                problem = problem or (enc, name)
        if problem is not None:
            raise EncoderError(self._problem(*problem))

    def commit(self) -> int:
        """Make a finished segment durable (fsync, then rename from ``.part``); its size in bytes."""
        size = 0
        for name in self._names():
            part = os.path.join(self.out_dir, name + fmt.PART_SUFFIX)
            fd = os.open(part, os.O_RDONLY)
            try:
                os.fsync(fd)  # on disk before it is listed: power loss keeps it whole
            finally:
                os.close(fd)
            size += os.path.getsize(part)
            os.replace(part, os.path.join(self.out_dir, name))
        return size

    def discard(self) -> None:
        """Stop the encoders and delete the segment's files (frees space)."""
        for enc in self._encoders:
            enc.kill()
        for name in self._names():
            for suffix in (fmt.PART_SUFFIX, ""):
                try:
                    os.unlink(os.path.join(self.out_dir, name + suffix))
                except OSError:
                    pass

    def _names(self) -> tuple[str, str]:
        return self.nir_file, self.wl_file

    def _problem(self, enc: PipeEncoder, name: str) -> str:
        """What went wrong with ``enc``, in plain words: a full disk or its last error line."""
        text = enc.error_text()
        free = fmt.free_bytes(self.out_dir)
        if "No space left" in text or (free is not None and free < 1 * fmt.MB):
            return f"disk full: {self.out_dir} has no space left; recording stopped"
        last = _last_line(text) or f"exit code {enc.returncode}"
        return f"{name}: the encoder failed ({last}); recording stopped"


def _grow_pipe(f) -> None:
    """Larger pipe buffer: fewer wake-ups per multi-megabyte frame (Linux only)."""
    try:
        import fcntl

        fcntl.fcntl(f.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError):  # not Linux: the default pipe size
        pass


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _read_stderr(proc: subprocess.Popen) -> str:
    try:
        data = proc.stderr.read() if proc.stderr else b""
        proc.stderr.close()
    except (OSError, ValueError):
        return ""
    return data.decode("utf-8", "replace") if data else ""
