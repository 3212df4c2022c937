"""What an input string names, and whether a finite one is there.

``--wl``, ``--nir`` and ``--combined`` each take a file, an image-sequence
pattern, a V4L2 device or a network URL.  This module tells them apart and
refuses a file or sequence that is not there, without OpenCV, so that the
open dialog can apply the same rule before it closes as the sources apply
when they open.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import SourceError

__all__ = ["InputKind", "classify", "check_present"]


@dataclass(frozen=True)
class InputKind:
    """What an input string names."""

    kind: str  # file | sequence | device | url
    target: object  # what to hand to VideoCapture (int for device indices)
    live: bool


_DEVICE_PATH = re.compile(r"^/dev/video(\d+)$")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_SEQUENCE = re.compile(r"%0?\d*d")
#: URL schemes OpenCV's FFmpeg reads a live stream from
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "rtp", "srt")
#: what an input can be, for the fix of a refusal
_GIVE_INPUT = ("give a video file (MP4, MKV, AVI), an image pattern such as nir/%06d.tiff, a "
               "device number or a stream URL")


def classify(text: str) -> InputKind:
    """Tell a file, an image-sequence pattern, a device and a URL apart.

    Parameters
    ----------
    text : str
        ``"3"`` or ``"/dev/video3"`` (V4L2 device), ``"rtsp://..."``,
        ``"udp://..."``, ``"http://..."`` (network stream, live),
        ``"nir/%06d.tiff"`` (image sequence), anything else a file.
    """
    text = str(text)
    if text.isdigit():
        return InputKind("device", int(text), True)
    if _DEVICE_PATH.match(text):
        return InputKind("device", text, True)
    if _URL.match(text) and not text.startswith("file://"):
        return InputKind("url", text, True)
    if _SEQUENCE.search(os.path.basename(text)):
        return InputKind("sequence", text, False)
    return InputKind("file", text, False)


def check_present(kind: InputKind, name: str) -> None:
    """Refuse a file or image sequence that is not there, in one line naming it.

    Devices and streams are not checked (only a URL's scheme): whether they
    deliver is found out only by opening them.

    Raises
    ------
    SourceError
        No such file, a directory given as a file, a file that cannot be
        read, an image sequence whose folder does not exist, or a URL of a
        scheme no stream reader knows.
    """
    if kind.kind == "url":
        scheme = str(kind.target).split("://", 1)[0].lower()
        if scheme not in STREAM_SCHEMES:
            raise SourceError(f"{name}: {scheme}:// is not a stream this can read; give a stream "
                              f"URL ({', '.join(s + '://' for s in STREAM_SCHEMES)})")
    if kind.kind == "sequence":
        folder = os.path.dirname(str(kind.target)) or "."
        if not os.path.isdir(folder):
            raise SourceError(f"{name}: no such folder {folder}; give the pattern of existing "
                              "image files, e.g. nir/%06d.tiff")
    elif kind.kind == "file":
        path = str(kind.target)
        if not os.path.exists(path):
            raise SourceError(f"{name}: no such file; {_GIVE_INPUT}")
        if os.path.isdir(path):
            raise SourceError(f"{name}: is a directory, not a video file; give an image pattern "
                              f"inside it ({os.path.join(name, '%06d.tiff')}) or a file")
        if not os.access(path, os.R_OK):
            raise SourceError(f"{name}: cannot be read (permissions); give a file you can read "
                              "or change its permissions")
