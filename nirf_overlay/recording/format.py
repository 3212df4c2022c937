"""The recorded-session format: file names, tables, encoder and decoder commands.

A session is a directory (``SCHEMA_VERSION`` 1)::

    session.json      what was recorded; ``interrupted`` stays true until a clean stop
    settings.json     the Settings in force when recording started
    calibration/      the calibration in force at the start (profile.json + TIFFs), if any
    segments.csv      one row per *complete* segment (written after its files are closed)
    frames.csv        one row per recorded frame, flushed as each frame is written
    events.jsonl      start/stop, setting changes, snapshots, markers, errors; flushed
    nir_000000.mkv    NIR, gray16le raw counts, lossless (FFVHuff; FFV1 on request)
    wl_000000.mkv     white light of the same frames (see ``WL_CODECS``)
    ...               one pair of files per segment of ``segment_frames`` frames

Segment files are written under ``<name>.part`` and renamed when their encoder
has exited cleanly and the file is fsynced; only then is the segment appended
to ``segments.csv``.  A reader therefore trusts exactly the segments listed in
``segments.csv``; a kill or power loss costs at most the segment being written
(plus whatever was still queued).

NIR codec
---------
NIR is ``gray16le`` (raw counts in 16-bit words, never rescaled) in Matroska,
written with FFVHuff (FFmpeg's lossless Huffman codec; OpenCV reads it like
FFV1).  Measured at 1080p on the phantom's 12-bit counts, one second of 30 fps
NIR costs 0.26 CPU-s to encode and 0.55 to decode with FFVHuff, against 2.0
and 2.5 with FFV1: FFV1 alone would need both cores of a 2-core machine to
record 1080p30, and makes replay about 2.5x slower, for files only ~10 %
smaller.  FFV1 (RFC 9043, level 3, slice CRCs) stays available as the archival
codec: ``compact`` re-encodes closed segments in a background process at idle
priority, checks the decoded frames' MD5 before and after, fsyncs and renames
the new file over the old one (a crash meanwhile leaves the FFVHuff file).
A session may mix both; the reader does not care.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
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
#: the previous written frame; nir_status: present, stale (no NIR frame within
#: the pairing tolerance, a gap) or lost (``FramePair.nir_status``).
FRAME_COLUMNS = (
    "index", "source_index", "segment", "wl_time", "nir_time", "arrival",
    "exposure_ms", "gain", "nir_lost", "dropped_before", "unpaired", "not_written_before",
    "nir_status",
)
#: the columns a reader needs: sessions written before ``nir_status`` existed lack it
#: (their NIR status follows from ``nir_lost``)
FRAME_COLUMNS_REQUIRED = FRAME_COLUMNS[:-1]

#: Columns of ``segments.csv``: segment number, first frame index, frame count,
#: the two file names, the NIR pixel format (gray16le) and the WL codec key.
SEGMENT_COLUMNS = ("segment", "first_frame", "frames", "nir_file", "wl_file", "nir_pix_fmt",
                   "wl_codec")

#: WL codecs: key -> (description, lossless?, ffmpeg output arguments).
#: ``ffvhuff`` (default): FFVHuff in planar RGB with left prediction --
#: bit-exact BGR at the lowest CPU cost to encode, and 22 ms CPU per 1080p frame
#: to decode against 31 with the median prediction sessions before issue 16
#: used (the decoder reads either; README "Replay" / "Measured").  Lossless
#: because recordings are the study's raw data.  ``utvideo``: Ut Video planar
#: RGB, left prediction, cheaper again to decode (17 ms) for 3-5 ms more to
#: encode; FFmpeg's encoder writes undecodable frames of noisy video at odd
#: sizes (161x121 measured), so it is refused for odd sizes
#: (:func:`check_wl_codec`) and is not the default.  Both are large
#: (about 5 GB/min at 1080p30 on the phantom's noisy WL);
#: ``x264`` (H.264 4:4:4 crf 10: near-lossless, visually lossless but not
#: bit-exact) is 4-7x smaller for long procedures.  ``x264rgb`` (H.264 RGB qp 0)
#: and ``ffv1`` (FFV1 bgr0) are lossless alternatives.
WL_CODECS = {
    "ffvhuff": ("FFVHuff planar RGB (lossless)", True,
                ["-c:v", "ffvhuff", "-pred", "left", "-pix_fmt", "gbrp"]),
    "utvideo": ("Ut Video planar RGB (lossless)", True,
                ["-c:v", "utvideo", "-pred", "left", "-pix_fmt", "gbrp"]),
    "x264": ("H.264 4:4:4 crf 10 (near-lossless)", False,
             ["-c:v", "libx264", "-crf", "10", "-preset", "ultrafast", "-tune", "zerolatency",
              "-pix_fmt", "yuv444p"]),
    "x264rgb": ("H.264 RGB qp 0 (lossless)", True,
                ["-c:v", "libx264rgb", "-qp", "0", "-preset", "ultrafast", "-tune", "zerolatency"]),
    "ffv1": ("FFV1 bgr0 (lossless)", True,
             ["-c:v", "ffv1", "-level", "3", "-g", "1", "-slices", "4", "-slicecrc", "1",
              "-pix_fmt", "bgr0"]),
}
DEFAULT_WL_CODEC = "ffvhuff"

#: NIR codecs used while capturing (see "NIR codec" above).  FFVHuff with left
#: prediction: 14 ms CPU per 1080p gray16 frame to decode against 20 with the
#: median prediction of older sessions (the decoder reads either), under 1 % larger.
#: (Ut Video has no 16-bit gray; raw video is not allowed in Matroska.)
NIR_CODECS = {
    "ffvhuff": ["-c:v", "ffvhuff", "-pred", "left"],
    "ffv1": ["-c:v", "ffv1", "-level", "3", "-g", "1", "-slices", "4", "-slicecrc", "1"],
}
DEFAULT_NIR_CODEC = "ffvhuff"
NIR_PIX_FMT = "gray16le"
_X264 = ("libx264", "libx264rgb")


#: WL codecs that cannot store frames of an odd width or height (see ``WL_CODECS``)
EVEN_SIZE_CODECS = ("utvideo",)


def check_wl_codec(codec: str, size: tuple[int, int]) -> None:
    """RecordingError (one line, the fix in it) when ``codec`` cannot record ``size``."""
    if codec not in WL_CODECS:
        raise RecordingError(f"wl codec {codec!r}: not one of {', '.join(WL_CODECS)}")
    w, h = size
    if codec in EVEN_SIZE_CODECS and (w % 2 or h % 2):
        raise RecordingError(f"wl codec {codec!r}: cannot store {w}x{h} losslessly (odd width "
                             "or height); use --wl-codec ffvhuff")


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


def nir_encoder_cmd(path: str, size: tuple[int, int], fps: float,
                    codec: str = DEFAULT_NIR_CODEC) -> list[str]:
    """FFmpeg command reading raw gray16le NIR from stdin, writing ``codec``/MKV to ``path``."""
    w, h = size
    return [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", NIR_PIX_FMT, "-s", f"{w}x{h}", "-framerate", _rate(fps),
        "-i", "pipe:0", *NIR_CODECS[codec],
        "-threads", "1", "-fps_mode", "passthrough", "-f", "matroska", path,
    ]


def compact_cmd(src: str, dst: str) -> list[str]:
    """FFmpeg command re-encoding a NIR segment to FFV1 (level 3, slice CRCs), bit-exact."""
    return [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", src,
        "-map", "0:v:0", *NIR_CODECS["ffv1"], "-threads", "1", "-fps_mode", "passthrough",
        "-f", "matroska", dst,
    ]


def is_ffv1(path: str) -> bool:
    """True when the Matroska file's video track is FFV1 (its CodecID is in the header)."""
    try:
        with open(path, "rb") as f:
            return b"V_FFV1" in f.read(8192)
    except OSError:
        return False


def wl_encoder_cmd(path: str, size: tuple[int, int], fps: float, codec: str,
                   gop: int) -> list[str]:
    """FFmpeg command reading raw BGR from stdin, writing ``codec`` to ``path``."""
    w, h = size
    args = list(WL_CODECS[codec][2])
    threads = "1"
    if args[1] in _X264:
        # one keyframe at the start of each segment, so every segment decodes alone
        args += ["-g", str(max(1, int(gop)))]
        threads = "2"
    return [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-framerate", _rate(fps),
        "-i", "pipe:0", *args, "-threads", threads, "-fps_mode", "passthrough",
        "-f", "matroska", path,
    ]


#: codecs whose every frame is a key frame: a decoder may leave frames out
#: before decoding them (replay faster than 1x)
INTRA_ONLY_CODECS = ("utvideo", "ffvhuff", "ffv1")


def decoder_cmd(path: str, pix_fmt: str, *, start_frame: int = 0, fps: float = 30.0,
                threads: str = "1", stride: int = 1) -> list[str]:
    """FFmpeg command decoding ``path`` to raw ``pix_fmt`` on stdout from ``start_frame``.

    NIR is decoded to ``gray16le``, WL to ``bgr24``: both are the stored
    samples rearranged, never rescaled.  One thread by default: frame
    threading delays the first frame after a seek by a frame per thread, and
    the NIR and WL decoders already run side by side (FFV1, slow per frame,
    wants ``"auto"``: its slice threads add no delay).

    ``stride`` > 1 (intra-only codecs, :data:`INTRA_ONLY_CODECS`): only frames
    ``start_frame``, ``start_frame + stride``, ... are decoded; the others'
    packets are dropped before the decoder (the ``noise`` bitstream filter on
    the input, by frame number from the millisecond timestamps).  Read from
    the file's start, not seeked: with ``-ss`` the filter sees shifted
    timestamps, and a segment is about a second long.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-threads", threads]
    if stride > 1:
        i = f"floor(pts*tb*{float(fps):.6f}+0.5)"
        s0, k = int(start_frame), int(stride)
        cmd += ["-bsf:v", f"noise=drop=lt({i}\\,{s0})+mod({i}-{s0}\\,{k})"]
    elif start_frame > 0:
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


MB = 1024 * 1024  # bytes


def free_bytes(path: str) -> Optional[int]:
    """Free bytes on the file system of ``path`` (None when it cannot be asked)."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


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


def read_csv_rows(path: str, columns: tuple, what: str, damage: Optional[list] = None, *,
                  torn_is_damage: bool = False) -> list[dict]:
    """Rows of ``path`` as dicts; a torn last line (a crash mid-write) is ignored,
    and reported in ``damage`` when ``torn_is_damage`` (a session stopped cleanly
    writes whole lines only, so there the file was cut afterwards).

    With ``damage`` (a list), a table damaged in the middle (a line with the wrong
    number of fields, bytes that are not text) is read up to the damage and one
    line saying what was lost is appended to ``damage``, instead of raising.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise RecordingError(f"{path}: missing ({what})") from None
    except OSError as e:
        raise RecordingError(f"{path}: cannot read {what} ({e.__class__.__name__})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        if damage is None:
            raise RecordingError(f"{path}: cannot read {what} (UnicodeDecodeError)") from None
        text = data[: data.rfind(b"\n", 0, e.start) + 1].decode("utf-8")
        damage.append(f"{path}: not text from byte {e.start} on")
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(complete, newline=""))
    header = next(reader, None)
    if header is None:
        raise RecordingError(f"{path}: empty {what} (no header)")
    missing = [c for c in columns if c not in header]
    if missing:
        raise RecordingError(f"{path}: {what} lacks column(s) {', '.join(missing)}")
    rows = []
    lines = complete.count("\n")
    for n, row in enumerate(reader, start=2):
        if len(row) != len(header):
            problem = f"{path}: line {n} has {len(row)} fields, expected {len(header)}"
            if damage is None:
                raise RecordingError(problem)
            damage.append(f"{problem}; read the {len(rows)} rows before it, the {lines - n + 1} "
                          "lines from it on are lost")
            break
        rows.append(dict(zip(header, row)))
    else:
        if torn_is_damage and damage is not None and text != complete:
            damage.append(f"{path}: cut inside its last line; read the {len(rows)} whole rows "
                          "before it")
    return rows


def opt_float(text: str) -> Optional[float]:
    return float(text) if text not in ("", None) else None


def fmt_opt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)
