"""Options shared by the commands that run the pipeline."""

from __future__ import annotations

import argparse

from ..calibration import default_calibration  # noqa: F401  (re-exported for the commands)
from ..settings import Settings


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("pipeline")
    g.add_argument("--settings", metavar="F", help="settings JSON (see the settings panel's presets)")
    g.add_argument("--calibration", metavar="PROFILE", help="calibration profile JSON")
    g.add_argument("--dark", metavar="F", help="dark frame, 16-bit TIFF (overrides the profile's)")
    g.add_argument("--flat", metavar="F", help="flat field, float TIFF (overrides the profile's)")
    g.add_argument("--mm-per-px", type=float, metavar="X", help="millimetres per WL pixel")


def pipeline_inputs(args: argparse.Namespace, size=None):
    """Settings and calibration from the command line (validated; NirfError if not)."""
    from ..calibration import calibration_from_args

    settings = Settings.load(args.settings) if args.settings else Settings()
    calibration = calibration_from_args(args, size=size)
    return settings, calibration

