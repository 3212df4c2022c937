"""Options shared by the commands that run the pipeline."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from ..calibration import CalibrationRequest
from ..calibration.model import MAX_MM_PER_PX
from ..engine import Listener, RunState
from ..errors import NirfError
from ..settings import Settings


def positive_number(text: str) -> float:
    """argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number")
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive number")
    return value


def positive_count(text: str) -> int:
    """argparse type: a whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("pipeline")
    g.add_argument("--settings", metavar="F", help="settings JSON (see the settings panel's presets)")
    g.add_argument("--calibration", metavar="PROFILE", help="calibration profile JSON")
    g.add_argument("--dark", metavar="F", help="dark frame, 16-bit TIFF (overrides the profile's)")
    g.add_argument("--flat", metavar="F", help="flat field, float TIFF (overrides the profile's)")
    g.add_argument("--mm-per-px", type=float, metavar="X", help="millimetres per WL pixel")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """``--settings F`` loaded and validated, else the defaults."""
    return Settings.load(args.settings) if args.settings else Settings()


def calibration_request(args: argparse.Namespace) -> CalibrationRequest:
    """What ``--calibration``, ``--dark``, ``--flat`` and ``--mm-per-px`` ask for;
    :func:`nirf_overlay.calibration.resolve_calibration` decides what applies."""
    mm = args.mm_per_px
    if mm is not None and not (0 < mm < MAX_MM_PER_PX):  # named by its flag here, not in the core
        raise NirfError(f"--mm-per-px: {mm} is outside 0..{MAX_MM_PER_PX:g} mm")
    return CalibrationRequest(profile=args.calibration, dark=args.dark, flat=args.flat,
                              mm_per_px=args.mm_per_px)


class ProgressBar(Listener):
    """A tqdm bar on stderr counting results.

    Parameters
    ----------
    total : results expected, None when unknown
    """

    def __init__(self, total: Optional[int]):
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="frame", dynamic_ncols=True, leave=False)

    def on_state(self, state) -> None:
        if state == RunState.STOPPED:
            self._bar.close()

    def on_result(self, frame) -> None:
        self._bar.update(1)


def progress_bars(total: Optional[int], enabled: bool) -> list:
    """``[ProgressBar(total)]`` when asked for and stderr is a terminal, else ``[]``."""
    return [ProgressBar(total)] if enabled and sys.stderr.isatty() else []


def check_output_file(path: Optional[str], option: str) -> None:
    """The one rule for an output *file* option (``view --stats-json F``):
    refused before the run starts, not after it, when it cannot be written (a directory,
    a missing or read-only folder)."""
    import os

    if not path:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise NirfError(f"{option} {path}: is a directory; give a file name")
    if not os.path.isdir(folder):
        raise NirfError(f"{option} {path}: no such folder {folder}")
    if os.path.exists(path) and not os.access(path, os.W_OK) or not os.access(folder, os.W_OK):
        raise NirfError(f"{option} {path}: cannot be written (permissions)")
