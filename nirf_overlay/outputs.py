"""Outputs never mix runs: the one rule for every command's ``--out`` directory.

A command writes into a directory that is new or empty, and refuses one that
already holds files (``process``, ``record``, ``batch`` alike).  Refusing, not
replacing: an earlier run's files may be the only copy of a study's results or
a recording, and a directory that mixes two runs (metrics of one, masks of
another) is worse than no output, because nothing in it says so.  The message
names the directory and the way out (a new directory, or remove the old one).
"""

from __future__ import annotations

import os

from .errors import NirfError


def check_new_output_dir(path, what: str = "output directory", error=NirfError) -> None:
    """Raise ``error`` (a NirfError) unless ``path`` is absent or an empty directory."""
    path = str(path)
    if os.path.lexists(path):
        if not os.path.isdir(path):
            raise error(f"{path}: exists and is not a directory; give the path of a new {what}")
        try:
            entries = os.listdir(path)
        except OSError as e:
            raise error(f"{path}: cannot read the {what} ({e.strerror}); give one you can "
                        "read and write") from None
        if entries:
            raise error(f"{path}: exists and is not empty (an earlier run?); refused so that two runs "
                        f"never mix: give a new or empty {what}, or remove this one first")


def make_new_output_dir(path, what: str = "output directory") -> str:
    """:func:`check_new_output_dir`, then create it; returns ``str(path)``."""
    check_new_output_dir(path, what)
    path = str(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise NirfError(f"{path}: cannot create {what} ({e.strerror}); give a folder you can "
                        "write to") from None
    return path
