"""Lossless, crash-safe recording of procedures, and their replay.

Writing: :class:`Recorder` (``submit(pair)`` never blocks; ``log_event``;
``stop()``; ``status``).  Reading: :class:`SessionSource`, a seekable
:class:`~nirf_overlay.sources.base.FrameSource` over a session directory, and
:func:`read_session` for the tables alone.  The format is described in
:mod:`.format` (``SCHEMA_VERSION``).  No Qt here.
"""

from .format import SCHEMA_VERSION, WL_CODECS
from .compact import compact_session
from .recorder import Recorder, RecorderStatus
from .session import Marker, Session, SessionSource, open_session, read_session

__all__ = [
    "SCHEMA_VERSION",
    "WL_CODECS",
    "Recorder",
    "RecorderStatus",
    "compact_session",
    "SessionSource",
    "Session",
    "Marker",
    "open_session",
    "read_session",
]
