"""The recorded-session format: file names, tables, encoder and decoder commands.

A session is a directory (``SCHEMA_VERSION`` 1)::

    session.json      what was recorded; ``interrupted`` stays true until a clean stop
    settings.json     the Settings in force when recording started
    calibration/      the calibration in force at the start (profile.json + TIFFs), if any
    segments.csv      one row per *complete* segment (written after its files are closed)
    frames.csv        one row per recorded frame, flushed as each frame is queued
    events.jsonl      start/stop, setting changes, snapshots, markers, errors; flushed
    nir_000000.mkv    NIR, FFV1 in Matroska, raw counts, lossless
    wl_000000.mkv     white light in the same frames (see ``WL_CODECS``)
    ...               one pair of files per segment of ``segment_frames`` frames

Segment files are written under ``<name>.part`` and renamed when their encoder
has exited cleanly and the file is fsynced; only then is the segment appended
to ``segments.csv``.  A reader therefore trusts exactly the segments listed in
``segments.csv``; a kill or power loss costs at most the segment being written
(plus whatever was still queued).

NIR pixel format
----------------
FFV1 is given the sensor's true bit depth: ``gray10le`` / ``gray12le`` /
``gray14le`` / ``gray16le``, the smallest that holds ``nir_bits``.  All are
16-bit little-endian words with the counts in the low bits, so decoding to the
*same* pixel format returns the raw counts unchanged.  Telling FFV1 the true
depth matters: for 12-bit counts, ``gray12le`` encodes 2.3x faster and 2.3x
smaller than ``gray16le`` (measured at 1080p), which is what lets a 2-core
machine record 1080p30.  If a frame ever holds a count above the container's
range (a source that misreports its bit depth), the recorder closes the
segment and continues in ``gray16le``; each segment's pixel format is in
``segments.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from typing import Optional

from ..errors import RecordingError

SCHEMA_VERSION = 1
FORMAT_NAME = "nirf-overlay-session"

SESSION_JSON = "session.json"
SETTINGS_JSON = "settings.json"
CALIBRATION_DIR = "calibration"
CALIBRATION_PROFILE = os.path.join(CALIBRATION_DIR, "profile.json")
SEGMENTS_CSV = "segments.csv"
FRAMES_CSV = "frames.csv"
EVENTS_JSONL = "events.jsonl"
PART_SUFFIX = ".part"

#: Columns of ``frames.csv``.
#: index: 0-based frame number in the recording (= frame N on replay);
#: source_index: the source's own index; segment: segment number;
#: wl_time, nir_time: the source's timestamps (s; monotonic for live sources);
#: arrival: monotonic time the pair was submitted; exposure_ms, gain: as the
#: source reported ('' when unknown); nir_lost: 1 when the pair had no NIR (the
#: NIR file then holds a zero frame); dropped_before: pairs the *source* dropped
#: just before this one; unpaired: 1 when the source flagged the pair unpaired;
#: not_written_before: pairs the *recorder* could not write (queue full) since
#: the previous written frame.
FRAME_COLUMNS = (
    "index", "source_index", "segment", "wl_time", "nir_time", "arrival",
    "exposure_ms", "gain", "nir_lost", "dropped_before", "unpaired", "not_written_before",
)

#: Columns of ``segments.csv``: segment number, first frame index, frame count,
#: the two file names, the NIR pixel format and the WL codec key.
SEGMENT_COLUMNS = ("segment", "first_frame", "frames", "nir_file", "wl_file", "nir_pix_fmt",
                   "wl_codec")

#: WL codecs: key -> (description, lossless?, ffmpeg output arguments).
#: ``x264rgb`` (default): H.264 in RGB at qp 0 -- bit-exact BGR, and about twice
#: as fast to encode as FFV1 at 1080p, which is what keeps 1080p30 within two
#: cores next to the NIR encoder.  ``ffv1``: FFV1 bgr0, bit-exact, the archival
#: standard, but slower.  ``x264``: H.264 4:4:4 at crf 10 -- near-lossless
#: (visually lossless; not bit-exact), the cheapest on disk and CPU.
WL_CODECS = {
    "x264rgb": ("H.264 RGB qp 0 (lossless)", True,
                ["-c:v", "libx264rgb", "-qp", "0", "-preset", "ultrafast", "-tune", "zerolatency"]),
    "ffv1": ("FFV1 bgr0 (lossless)", True,
             ["-c:v", "ffv1", "-level", "3", "-g", "1", "-slices", "4", "-slicecrc", "1",
              "-pix_fmt", "bgr0"]),
    "x264": ("H.264 4:4:4 crf 10 (near-lossless)", False,
             ["-c:v", "libx264", "-crf", "10", "-preset", "ultrafast", "-tune", "zerolatency",
              "-pix_fmt", "yuv444p"]),
}
DEFAULT_WL_CODEC = "x264rgb"

NIR_PIX_FMTS = {10: "gray10le", 12: "gray12le", 14: "gray14le", 16: "gray16le"}


def nir_pix_fmt(nir_bits: int) -> str:
    """The smallest FFV1 gray format that holds ``nir_bits``-bit counts losslessly."""
    for bits in sorted(NIR_PIX_FMTS):
        if int(nir_bits) <= bits:
            return NIR_PIX_FMTS[bits]
    return NIR_PIX_FMTS[16]


def pix_fmt_bits(pix_fmt: str) -> int:
    for bits, name in NIR_PIX_FMTS.items():
        if name == pix_fmt:
            return bits
    raise ValueError(pix_fmt)


def segment_names(segment: int) -> tuple[str, str]:
    """``(nir_file, wl_file)`` of segment number ``segment``."""
    return f"nir_{segment:06d}.mkv", f"wl_{segment:06d}.mkv"


def ffmpeg_exe() -> str:
    """The FFmpeg binary (imageio-ffmpeg's; there is no system ffmpeg here)."""
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - a declared dependency
        raise RecordingError("recording: needs imageio-ffmpeg (pip install imageio-ffmpeg)") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def _rate(fps: float) -> str:
    return f"{float(fps):.6g}"


def nir_encoder_cmd(path: str, size: tuple[int, int], fps: float, pix_fmt: str) -> list[str]:
    """FFmpeg command reading raw ``pix_fmt`` NIR from stdin, writing FFV1/MKV to ``path``."""
    w, h = size
    return [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{w}x{h}", "-framerate", _rate(fps),
        "-i", "pipe:0",
        # level 3 + slice CRCs: corruption is detected when decoding; every frame is a
        # keyframe (-g 1) so seeking inside a segment is exact and cheap.
        "-c:v", "ffv1", "-level", "3", "-g", "1", "-slices", "4", "-slicecrc", "1",
        "-threads", "2", "-fps_mode", "passthrough", "-f", "matroska", path,
    ]


def wl_encoder_cmd(path: str, size: tuple[int, int], fps: float, codec: str,
                   gop: int) -> list[str]:
    """FFmpeg command reading raw BGR from stdin, writing ``codec`` to ``path``."""
    w, h = size
    args = list(WL_CODECS[codec][2])
    if args[1] != "ffv1":
        # one keyframe at the start of each segment, so every segment decodes alone
        args += ["-g", str(max(1, int(gop)))]
    return [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-framerate", _rate(fps),
        "-i", "pipe:0", *args, "-threads", "2", "-fps_mode", "passthrough",
        "-f", "matroska", path,
    ]


def decoder_cmd(path: str, pix_fmt: str, *, start_frame: int = 0, fps: float = 30.0) -> list[str]:
    """FFmpeg command decoding ``path`` to raw ``pix_fmt`` on stdout from ``start_frame``.

    Decoding NIR to its *own* pixel format (e.g. ``gray12le``) hands out the
    stored counts untouched; asking for ``gray16le`` would rescale them.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin"]
    if start_frame > 0:
        # half a frame early: Matroska stores milliseconds, so frame k's stamp may be
        # rounded below k/fps; accurate seeking then discards everything before it.
        cmd += ["-ss", f"{(start_frame - 0.5) / float(fps):.6f}"]
    cmd += ["-i", path, "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", pix_fmt,
            "-fps_mode", "passthrough", "pipe:1"]
    return cmd


def ffmpeg_version() -> str:
    try:
        out = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True,
                             timeout=10).stdout
        return out.splitlines()[0] if out else ""
    except Exception:
        return ""


# -- tables ------------------------------------------------------------------------
def write_json_atomic(path: str, data: dict, *, pad_to: int = 0) -> None:
    """Write ``data`` as JSON to ``path`` via a temporary file and a rename.

    When the rename route fails for lack of space, the file is overwritten in
    place instead: :func:`write_json_padded` keeps ``session.json`` a fixed size
    so that this needs no new disk blocks on a full disk.
    """
    text = _padded(data, pad_to)
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if not os.path.exists(path):
            raise
        with open(path, "r+") as f:  # same length: reuses the blocks already there
            f.write(text)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
    fsync_dir(os.path.dirname(path) or ".")


def _padded(data: dict, pad_to: int) -> str:
    text = json.dumps(data, indent=2) + "\n"
    if len(text) < pad_to:
        text += " " * (pad_to - len(text) - 1) + "\n"
    return text


def fsync_dir(path: str) -> None:
    """Make renames in ``path`` durable (no-op where directories cannot be fsynced)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_json(path: str, what: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise RecordingError(f"{path}: missing ({what})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecordingError(f"{path}: cannot read {what} ({e.__class__.__name__})") from None
    except json.JSONDecodeError as e:
        raise RecordingError(f"{path}: {what} is not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(data, dict):
        raise RecordingError(f"{path}: {what} must be a JSON object")
    return data


def read_csv_rows(path: str, columns: tuple, what: str) -> list[dict]:
    """Rows of ``path`` as dicts; a torn last line (a crash mid-write) is ignored."""
    try:
        with open(path, newline="") as f:
            text = f.read()
    except FileNotFoundError:
        raise RecordingError(f"{path}: missing ({what})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecordingError(f"{path}: cannot read {what} ({e.__class__.__name__})") from None
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(complete))
    header = next(reader, None)
    if header is None:
        raise RecordingError(f"{path}: empty {what} (no header)")
    missing = [c for c in columns if c not in header]
    if missing:
        raise RecordingError(f"{path}: {what} lacks column(s) {', '.join(missing)}")
    rows = []
    for n, row in enumerate(reader, start=2):
        if len(row) != len(header):
            raise RecordingError(f"{path}: line {n} has {len(row)} fields, expected {len(header)}")
        rows.append(dict(zip(header, row)))
    return rows


def opt_float(text: str) -> Optional[float]:
    return float(text) if text not in ("", None) else None


def fmt_opt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)
