"""Lossless, crash-safe recording of procedures, and their replay.

Writing: :class:`Recorder` (``submit(pair)`` never blocks; ``log_event``;
``stop()`` and ``status()`` return a :class:`RecorderStatus`).  Reading:
:class:`SessionSource`, a seekable :class:`~nirf_overlay.sources.base.FrameSource`
over a session directory, and :func:`read_session` for the tables alone.  The
format is described in :mod:`.format` (``SCHEMA_VERSION``).  No Qt here.

Modules: ``format`` (file names, tables, FFmpeg commands), ``recorder`` (the
queue, its threads, failure and stop), ``encoders`` (the FFmpeg encoder
processes of each segment), ``session_writer`` (the session directory's files
as a recording writes them), ``status`` (RecorderStatus), ``compact`` (NIR to
FFV1, bit-exactly), ``session_reader`` (a session's tables: read_session,
Session, Marker) and ``session`` (SessionSource, which decodes the frames).
"""

from .format import SCHEMA_VERSION, WL_CODECS
from .compact import compact_session
from .recorder import Recorder
from .session import SessionSource
from .session_reader import Marker, Session, read_session
from .status import RecorderStatus

__all__ = [
    "SCHEMA_VERSION",
    "WL_CODECS",
    "Recorder",
    "RecorderStatus",
    "compact_session",
    "SessionSource",
    "Session",
    "Marker",
    "read_session",
]
