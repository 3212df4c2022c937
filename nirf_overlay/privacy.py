"""What of an input's name may be shown, logged or written: the one rule.

Two things in a source's name can be private:

- the *user information* of a URL (``rtsp://user:password@host/...``, common for
  IP encoders and cameras): its password is never shown, logged or written
  (:func:`redact`; ``rtsp://user:***@host/...``).  Every :class:`~nirf_overlay.errors.NirfError`
  message passes through it, and so does every source description.
- the *folders* of a file path (clinical folder names often carry patient
  names): descriptions written into sessions, snapshots and stats name the file
  only, unless the user asks for the whole path (``--keep-paths``;
  :func:`shown_name`; the same for a calibration profile's path, :func:`shown_path`,
  and for a path inside a written message, :func:`shown_in`).  ``SourceInfo.keep_paths``
  carries the user's choice from the source options to every writer.
"""

from __future__ import annotations

import os
import re

__all__ = ["redact", "shown_name", "shown_path", "shown_in", "is_url", "REDACTED"]

REDACTED = "***"

# scheme://user:password@  (the password may be empty; user info ends at the last '@'
# before the host, and holds no '/' or whitespace)
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):"
                       r"(?P<password>[^/\s]*)@")


def redact(text: str) -> str:
    """``text`` with every URL password replaced by ``***`` (the user name stays)."""
    if "://" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m['head']}{m['user']}:{REDACTED}@", text)


def is_url(name: str) -> bool:
    return "://" in str(name)


def shown_name(name, keep_paths: bool = False) -> str:
    """How an input ``name`` is shown and written: a URL redacted, a file path as its
    file name unless ``keep_paths`` (a device or pattern keeps its text, redacted)."""
    if name is None:
        return "None"
    text = os.fspath(name) if not isinstance(name, (int, str)) else str(name)
    if is_url(text):
        return redact(text)
    if keep_paths or text.startswith("/dev/") or os.sep not in text and "/" not in text:
        return text
    return os.path.basename(text.rstrip("/" + os.sep)) or text


def shown_path(path, keep_paths: bool = False):
    """:func:`shown_name` of a file path that may be absent (None stays None): how a
    calibration profile's path is written into sessions and snapshots."""
    return None if path is None else shown_name(path, keep_paths)


def shown_in(text: str, path, keep_paths: bool = False) -> str:
    """``text`` (a message written into a file) with ``path`` named as :func:`shown_name`
    names it: ``/clinic/Smith/S1/frames.csv: cut`` -> ``S1/frames.csv: cut``."""
    if keep_paths or not path or not text:
        return text
    path = os.fspath(path).rstrip("/" + os.sep) or os.fspath(path)
    return text.replace(path, shown_name(path))
