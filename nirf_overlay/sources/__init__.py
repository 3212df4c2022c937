"""Frame sources: every input behind one interface, chosen in one place.

:func:`open_source` asks the registry (:mod:`.registry`) which kind of source
a :class:`SourceSpec` names and imports that kind's module only then, so a
missing backend fails only when it is chosen.  The command-line options that
fill a :class:`SourceSpec` live in :mod:`nirf_overlay.cli.source_args`.
"""

from __future__ import annotations

from .base import FrameSource
from .inputs import InputKind, check_present, classify
from .registry import KINDS, SourceKind, check_spec, kind_of, open_source
from .sample import SAMPLE_DIR, SAMPLE_NIR, SAMPLE_PROFILE, SAMPLE_WL
from .spec import SourceSpec, default_sample

__all__ = [
    "FrameSource",
    "SourceSpec",
    "open_source",
    "default_sample",
    "check_spec",
    "kind_of",
    "KINDS",
    "SourceKind",
    "InputKind",
    "classify",
    "check_present",
    "SAMPLE_DIR",
    "SAMPLE_WL",
    "SAMPLE_NIR",
    "SAMPLE_PROFILE",
]
