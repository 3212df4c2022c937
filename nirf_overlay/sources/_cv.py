"""OpenCV plumbing shared by the video, combined and live sources.

Everything that knows about ``cv2.VideoCapture`` quirks lives here: keeping
OpenCV's and FFmpeg's own warnings off the terminal (the user should see our
one line, not five lines of ``[ WARN:0@0.07] global cap.cpp ...``), opening
captures with timeouts, and turning decoded frames into the frame model's
WL / NIR arrays.  What kind of input a string names is :mod:`.inputs`.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Optional

# FFmpeg reads its log level when the backend starts; set it before the first
# capture opens.  A user who sets it themselves wins.  -8 is AV_LOG_QUIET.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ..errors import SourceError  # noqa: E402
from ..privacy import redact  # noqa: E402
from .inputs import InputKind, check_present  # noqa: E402

if "OPENCV_LOG_LEVEL" not in os.environ:
    # OpenCV's own WARN lines ("can't open camera by index", "Stream timeout
    # triggered") repeat what our SourceError says; keep errors, drop warnings.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

# The pixel formats FFmpeg/V4L2 report for single-channel video.  FFmpeg's
# codec tag for grayN little-endian is "Y1" + chr(0) + chr(N).
_GRAY_TAGS = {b"Y800", b"GREY", b"Y8  ", b"Y16 ", b"Y10 ", b"Y12 "}

# Live-capture defaults (seconds); override with SourceSpec.options.
OPEN_TIMEOUT = 5.0
READ_TIMEOUT = 2.0

# A decoded BGR frame counts as gray when 99 % of its pixels have all three
# channels within this many counts (lossy codecs smear chroma a little).
GRAY_SPREAD = 4


def pixel_format(cap: "cv2.VideoCapture") -> bytes:
    """The stream's pixel-format tag (``b"I420"``, ``b"Y800"``, ``b"Y1\\x00\\x10"`` ...).

    FFmpeg reports the decoder's pixel format; V4L2 reports the fourcc it
    negotiated.  ``b""`` when the backend says nothing.
    """
    for prop in (cv2.CAP_PROP_CODEC_PIXEL_FORMAT, cv2.CAP_PROP_FOURCC):
        value = int(cap.get(prop))
        if value > 0:
            return struct.pack("<I", value & 0xFFFFFFFF)
    return b""


def is_gray_format(tag: bytes) -> bool:
    return tag in _GRAY_TAGS or tag[:2] == b"Y1"


def describe_format(tag: bytes) -> str:
    if tag[:2] == b"Y1" and len(tag) == 4:
        return f"gray{tag[3]}le"
    if tag in (b"Y800", b"GREY", b"Y8  "):
        return "gray"
    try:
        return tag.decode("ascii").strip() or "unknown"
    except UnicodeDecodeError:
        return tag.hex()


def open_capture(kind: InputKind, *, name: str, raw: bool = False,
                 open_timeout: float = OPEN_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT) -> "cv2.VideoCapture":
    """Open ``kind`` with the right backend or raise a one-line SourceError.

    ``raw=True`` turns FFmpeg's BGR conversion off *after* checking that the
    stream is single-channel, so 16-bit gray arrives as ``uint16`` while a
    colour stream still decodes to BGR (with conversion off FFmpeg would hand
    out only the luma plane of a colour stream and warn about it).
    """
    check_present(kind, name)  # a URL of a scheme no reader knows fails now, not in 5 s
    if kind.kind == "device":
        cap = cv2.VideoCapture(kind.target, cv2.CAP_V4L2)
        if not cap.isOpened():
            raise SourceError(f"{name}: cannot open the video device (not present, busy or no "
                              "permission); check it is plugged in and not used by another "
                              "program, or give another device number (0, 1, ...)")
    else:
        params = []
        if kind.live:
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout * 1000)]
        cap = cv2.VideoCapture(kind.target, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            if kind.live:
                raise SourceError(f"{name}: cannot open the stream "
                                  f"({why_no_stream(str(kind.target), open_timeout)})")
            raise SourceError(f"{name}: cannot open as video (corrupt, truncated or not a "
                              "video file); give an MP4/MKV/AVI file, an image pattern or a "
                              "session folder")
    tag = pixel_format(cap)
    if raw and is_gray_format(tag):
        if tag[:2] == b"Y1" and len(tag) == 4 and tag[3] != 16:
            # FFmpeg's gray10le/gray12le arrive as garbage 8-bit with conversion
            # off and as rescaled 8-bit with it on: refuse rather than corrupt.
            cap.release()
            raise SourceError(f"{name}: NIR pixel format {describe_format(tag)} cannot be read "
                              "without losing bits (OpenCV reads 8- and 16-bit gray); store NIR "
                              "as gray16le (FFV1) or 16-bit TIFF/PNG")
        cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
    return cap


#: default ports of the stream schemes that run over TCP (a connection can be tried)
_TCP_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935, "tcp": None}


def why_no_stream(url: str, timeout: float) -> str:
    """What happened when ``url`` gave nothing: for a TCP scheme, a connection to its
    host and port says refused / no route / unknown host / timed out; else (UDP) that
    nothing arrived."""
    import errno
    import socket
    from urllib.parse import urlsplit

    wait = f"nothing usable received within {timeout:g} s"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or _TCP_PORTS.get(parts.scheme.lower())
    except ValueError:
        return f"{wait}; is the address right?"
    if parts.scheme.lower() not in _TCP_PORTS or not host or not port:
        return f"{wait}; is the sender running and the address right?"
    where = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=max(0.5, min(timeout, 5.0))):
            pass
    except ConnectionRefusedError:
        return f"connection refused by {where}: nothing listens there; is the sender running?"
    except socket.gaierror:
        return f"unknown host {host}"
    except socket.timeout:
        return f"connecting to {where} timed out: host down or a firewall drops it"
    except OSError as e:
        if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return f"no route to {where}: check the network and the address"
        return f"cannot connect to {where} ({e.strerror or e})"
    return (f"{where} accepts connections, but {wait}; check the stream path, "
            "the user name and password")


def capture_props(cap: "cv2.VideoCapture", kind: InputKind) -> dict:
    """What the backend reports: fps, frame count, exposure, gain, device."""
    def prop(p):
        try:
            v = float(cap.get(p))
        except Exception:  # pragma: no cover - backend specific
            return None
        return v if np.isfinite(v) and v > 0 else None

    tag = pixel_format(cap)
    out = {
        "fps": prop(cv2.CAP_PROP_FPS),
        "gray": is_gray_format(tag),
        "frame_count": None,
        "backend": cap.getBackendName(),
        "pixel_format": describe_format(tag),
        "exposure_ms": None,
        "gain": None,
        "device": "",
    }
    if not kind.live:
        n = prop(cv2.CAP_PROP_FRAME_COUNT)
        out["frame_count"] = int(round(n)) if n else None
    if kind.kind == "device":
        target = kind.target
        out["device"] = f"/dev/video{target}" if isinstance(target, int) else str(target)
        exposure = cap.get(cv2.CAP_PROP_EXPOSURE)
        # V4L2 exposure_time_absolute is in units of 100 us.
        if exposure and exposure > 0:
            out["exposure_ms"] = float(exposure) * 0.1
            out["exposure_raw"] = float(exposure)
        gain = cap.get(cv2.CAP_PROP_GAIN)
        if gain is not None and gain >= 0:
            out["gain"] = float(gain)
    elif kind.kind == "url":
        out["device"] = redact(str(kind.target))
    return out


# -- channel conversions -------------------------------------------------------

def is_gray_bgr(frame: np.ndarray) -> bool:
    """True if a 3-channel frame carries a gray picture (see ``GRAY_SPREAD``)."""
    if frame.ndim != 3 or frame.shape[2] < 3:
        return frame.ndim == 2
    small = frame[::2, ::2, :3].astype(np.int16)  # subsample: this only decides a mode
    spread = small.max(axis=2) - small.min(axis=2)
    return float(np.percentile(spread, 99)) <= GRAY_SPREAD


def wl_from_frame(frame: np.ndarray, name: str) -> np.ndarray:
    """A decoded frame as the frame model's WL: ``(H, W, 3) uint8`` BGR.

    BGRA drops alpha; 16-bit colour (image sequences) keeps the top 8 bits,
    since WL is for display.  Gray is refused: WL must be colour.
    """
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        raise SourceError(f"{name}: the white-light stream is single-channel (gray); "
                          "--wl needs a colour stream")
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise SourceError(f"{name}: unexpected frame shape {frame.shape} for white light; give "
                          "a colour stream")
    if frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype != np.uint8:
        raise SourceError(f"{name}: white-light frames of type {frame.dtype} are not supported; "
                          "give 8- or 16-bit colour frames")
    return np.ascontiguousarray(frame)  # a combined stream's half is a strided view


@dataclass
class NirMode:
    """How the decoded NIR frames of one stream become ``(H, W) uint16``.

    ``mode`` is ``"u16"`` (16-bit gray, passed through), ``"u8"`` (8-bit gray,
    widened to uint16 with the same values 0..255) or ``"bgr"`` (a 3-channel
    decode of a gray picture, reduced with BGR2GRAY, then widened).
    """

    mode: str
    bits: int


def nir_mode(frame: np.ndarray, name: str, nir_bits: Optional[int]) -> NirMode:
    """Decide how to read a NIR stream from its first decoded frame."""
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        mode = "u16" if frame.dtype == np.uint16 else "u8" if frame.dtype == np.uint8 else None
    elif frame.ndim == 3 and frame.shape[2] in (3, 4):
        if not is_gray_bgr(frame):
            raise SourceError(f"{name}: the NIR stream is colour (its channels differ); "
                              "--nir needs a single-channel stream")
        mode = "bgr16" if frame.dtype == np.uint16 else "bgr" if frame.dtype == np.uint8 else None
    else:
        mode = None
    if mode is None:
        raise SourceError(f"{name}: NIR frames of shape {frame.shape} and type {frame.dtype} "
                          "are not supported; give 8- or 16-bit gray frames")
    data_bits = 16 if mode in ("u16", "bgr16") else 8
    if nir_bits is None:
        bits = data_bits
    elif nir_bits > data_bits:
        raise SourceError(f"{name}: --nir-bits {nir_bits} but the stream carries {data_bits}-bit data")
    else:
        bits = int(nir_bits)
    return NirMode(mode, bits)


def nir_from_frame(frame: np.ndarray, mode: NirMode, name: str) -> np.ndarray:
    """A decoded frame as the frame model's NIR: ``(H, W) uint16`` raw counts."""
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if mode.mode == "u16":
        if frame.dtype != np.uint16 or frame.ndim != 2:
            raise SourceError(f"{name}: NIR frame changed format mid-stream ({frame.dtype}, {frame.shape})")
        return frame
    if mode.mode in ("bgr", "bgr16") and frame.ndim == 3:
        frame = cv2.cvtColor(frame[:, :, :3], cv2.COLOR_BGR2GRAY)
    if frame.ndim != 2:
        raise SourceError(f"{name}: NIR frame changed format mid-stream ({frame.dtype}, {frame.shape})")
    return frame.astype(np.uint16)
