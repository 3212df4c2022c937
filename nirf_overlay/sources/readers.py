"""Index-addressed readers of one finite stream: a video file or an image sequence.

A reader hands out decoded frames in order with their presentation time and
can seek.  It knows nothing about WL or NIR; the pair sources decide that.
"""

from __future__ import annotations

import csv
import os
import re
from typing import Optional

import cv2
import numpy as np

from ..errors import SourceError
from ._cv import capture_props, open_capture
from .inputs import InputKind, check_present

DEFAULT_SEQUENCE_FPS = 30.0


class VideoFileReader:
    """Frames of a video file through OpenCV's FFmpeg backend.

    Parameters
    ----------
    kind : InputKind of kind ``"file"``
    name : how messages name the input (the path as the user typed it)
    raw : keep single-channel streams single-channel (16-bit stays 16-bit)

    Attributes
    ----------
    frame_count : frames the container declares, or ``None`` if it does not say
    fps : frames per second the container declares (30 if it does not say)
    ended_early : message when decoding stopped before ``frame_count``
    """

    def __init__(self, kind: InputKind, name: str, *, raw: bool = False):
        self.name = name
        self._kind = kind
        self._raw = raw
        self._cap = open_capture(kind, name=name, raw=raw)
        self.props = capture_props(self._cap, kind)
        self.frame_count: Optional[int] = self.props["frame_count"]
        self.fps: float = self.props["fps"] or DEFAULT_SEQUENCE_FPS
        self.position = 0  # index of the frame the next read returns
        self.ended_early = ""

    def read(self):
        """``(frame, pts_seconds)`` of the next frame, or ``None`` at the end."""
        ok, frame = self._cap.read()
        if not ok or frame is None:
            if self.frame_count and self.position < self.frame_count:
                self.ended_early = (f"{self.name}: ended after {self.position} of "
                                    f"{self.frame_count} frames (truncated or corrupt file)")
            return None
        msec = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        t = msec / 1000.0 if (self.position == 0 or msec > 0) else self.position / self.fps
        self.position += 1
        return frame, t

    def seek(self, index: int) -> None:
        index = max(0, int(index))
        if index == 0:
            # Reopening is the one rewind every container supports exactly.
            self._cap.release()
            self._cap = open_capture(self._kind, name=self.name, raw=self._raw)
        elif not self._cap.set(cv2.CAP_PROP_POS_FRAMES, index):
            raise SourceError(f"{self.name}: cannot seek to frame {index}")
        self.position = index

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()


class ImageSequenceReader:
    """Frames of a numbered image sequence (``nir/%06d.tiff``, ``wl/%04d.png``).

    Read with ``cv2.imread(IMREAD_UNCHANGED)`` rather than OpenCV's image-
    sequence capture, which converts to 8-bit BGR: 16-bit PNG and TIFF stay
    16-bit here.  The sequence is the sorted set of numbers that exist, so it
    may start at 0, 1 or anything else.

    Parameters
    ----------
    pattern : printf-style pattern with one ``%d`` / ``%0Nd`` field
    name : how messages name the input
    fps : frame rate to assign (image files carry none); default 30
    """

    def __init__(self, pattern: str, name: str, *, fps: Optional[float] = None):
        self.name = name
        self.pattern = pattern
        folder = os.path.dirname(pattern) or "."
        base = os.path.basename(pattern)
        m = re.search(r"%(0?)(\d*)d", base)
        head, tail = re.escape(base[: m.start()]), re.escape(base[m.end():])
        digits = r"\d+" if not m.group(2) else (r"\d{%s}" % m.group(2) if m.group(1) else r"\s*\d+")
        rx = re.compile(f"^{head}({digits}){tail}$")
        numbers = sorted(int(mm.group(1)) for f in os.listdir(folder) if (mm := rx.match(f)))
        if not numbers:
            raise SourceError(f"{name}: no files match the pattern; give one whose %d stands "
                              "for the frame numbers in the file names (%04d for 0001.png)")
        self._paths = [os.path.join(folder, base % n) for n in numbers]
        self.frame_count: Optional[int] = len(self._paths)
        self.fps = float(fps or DEFAULT_SEQUENCE_FPS)
        self.props = {"fps": self.fps, "frame_count": self.frame_count, "backend": "imread",
                      "pixel_format": "", "gray": False, "exposure_ms": None, "gain": None, "device": ""}
        self.position = 0
        self.ended_early = ""
        if cv2.imread(self._paths[0], cv2.IMREAD_UNCHANGED) is None:
            raise SourceError(f"{self._paths[0]}: cannot read as an image (corrupt or "
                              "unsupported); give PNG or TIFF images")

    def read(self):
        if self.position >= len(self._paths):
            return None
        path = self._paths[self.position]
        frame = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if frame is None:
            self.ended_early = (f"{path}: unreadable image; {self.name} ended after "
                                f"{self.position} of {self.frame_count} frames")
            return None
        t = self.position / self.fps
        self.position += 1
        return frame, t

    def seek(self, index: int) -> None:
        self.position = min(max(0, int(index)), len(self._paths))

    def close(self) -> None:
        pass


def open_reader(kind: InputKind, name: str, *, raw: bool = False, fps: Optional[float] = None):
    """The reader for a finite input (file or image sequence)."""
    check_present(kind, name)
    if kind.kind == "sequence":
        return ImageSequenceReader(kind.target, name, fps=fps)
    return VideoFileReader(kind, name, raw=raw)


def first_frame(reader) -> np.ndarray:
    """Decode frame 0 to learn the stream's format, then rewind."""
    got = reader.read()
    if got is None:
        raise SourceError(f"{reader.name}: no frame could be decoded (empty, corrupt or "
                          "truncated); give another recording, or export this one again")
    reader.seek(0)
    return got[0]


def sidecar_path(nir_input: str) -> Optional[str]:
    """The per-frame metadata CSV that goes with a NIR file, if there is one.

    ``nir.mkv`` -> ``nir.frames.csv``; ``nir/%06d.tiff`` -> ``nir/frames.csv``.
    """
    if re.search(r"%0?\d*d", os.path.basename(nir_input)):
        candidate = os.path.join(os.path.dirname(nir_input) or ".", "frames.csv")
    else:
        candidate = os.path.splitext(nir_input)[0] + ".frames.csv"
    return candidate if os.path.isfile(candidate) else None


def load_frame_meta(path: str) -> dict:
    """Per-frame exposure and gain from a CSV: ``{index: (exposure_ms, gain)}``.

    Columns: ``frame`` or ``index`` (0-based), and ``exposure_ms`` and/or
    ``gain``; other columns are ignored, empty cells mean unknown.  A recorder
    that logs camera settings per frame, or the phantom's truth CSV, gives the
    pipeline what it needs to undo auto-gain and exposure steps in files.
    """
    def num(text):
        try:
            v = float(text)
        except (TypeError, ValueError):
            return None
        return v if np.isfinite(v) else None

    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise SourceError(f"{path}: cannot read per-frame metadata ({e.strerror})") from None
    if not rows:
        return {}
    key = "frame" if "frame" in rows[0] else "index" if "index" in rows[0] else None
    if key is None or not ({"gain", "exposure_ms"} & set(rows[0])):
        raise SourceError(f"{path}: per-frame metadata needs a 'frame' (or 'index') column and "
                          "'gain' and/or 'exposure_ms'")
    out = {}
    for r in rows:
        i = num(r.get(key))
        if i is not None:
            out[int(i)] = (num(r.get("exposure_ms")), num(r.get("gain")))
    return out
