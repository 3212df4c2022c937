"""Errors a user can cause and should be told about in one plain line.

Every error raised for bad input (a missing file, a device that does not open,
a malformed profile, an out-of-range setting) is a :class:`NirfError`.  The CLI
prints ``str(error)`` as a single line and exits non-zero; the GUI shows it in
the window.  Anything else is a bug and keeps its traceback.  A message never
carries a URL's password (:func:`~nirf_overlay.privacy.redact`, applied here once
for every message).
"""

from .privacy import redact


class NirfError(Exception):
    """A problem with the user's input, named in one line (``<input>: <problem>``)."""

    exit_code = 2

    def __str__(self) -> str:
        return redact(super().__str__())


class SourceError(NirfError):
    """A video source could not be opened or read."""


class SettingsError(NirfError):
    """A setting is missing, of the wrong type or out of its allowed range."""


class CalibrationError(NirfError):
    """A calibration profile or calibration input is unusable."""


class RecordingError(NirfError):
    """A recording could not be written or a session could not be read."""
