"""Options shared by the commands that run the pipeline."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from ..calibration import CalibrationRequest
from ..calibration.model import MAX_MM_PER_PX
from ..calibration.transfer import parse_transfer
from ..engine import Listener, RunState
from ..errors import NirfError
from ..processing.transfer import DISPLAY, nir_signal
from ..settings import Settings


# The argparse types of every numeric option: NaN, inf, zero and negatives are refused
# here, in one line naming the option (argparse adds the option's name), not deep in the run.
def finite_number(text: str) -> float:
    """argparse type: any finite number (its range is checked where its meaning is)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number")
    return value


def positive_number(text: str) -> float:
    """argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number")
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive number")
    return value


def non_negative_number(text: str) -> float:
    """argparse type: a finite number, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number")
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number, 0 or more")
    return value


def _whole_number(text: str, least: int, rule: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number")
    if value < least:
        raise argparse.ArgumentTypeError(f"{text!r}: {rule}")
    return value


def non_negative_count(text: str) -> int:
    """argparse type: a whole number, 0 or more (a seed, a screen, frames to skip)."""
    return _whole_number(text, 0, "must be 0 or more")


def positive_count(text: str) -> int:
    """argparse type: a whole number, at least 1."""
    return _whole_number(text, 1, "must be at least 1")


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("pipeline")
    g.add_argument("--settings", metavar="F", help="settings JSON (see the settings panel's presets)")
    g.add_argument("--calibration", metavar="PROFILE", help="calibration profile JSON")
    g.add_argument("--dark", metavar="F", help="dark frame, 16-bit TIFF (overrides the profile's)")
    g.add_argument("--flat", metavar="F", help="flat field, float TIFF (overrides the profile's)")
    g.add_argument("--mm-per-px", type=positive_number, metavar="X", help="millimetres per WL pixel")
    add_transfer_argument(g)


def add_transfer_argument(group) -> None:
    """``--nir-transfer CURVE`` (process, view, record, bench, batch: one option, one help)."""
    group.add_argument("--nir-transfer", metavar="CURVE",
                       help="how the NIR is encoded: linear, gamma:G, srgb or lut:FILE.csv; undone "
                            "before measuring (overrides the profile's; default: raw >8-bit NIR is "
                            "linear, 8-bit NIR is measured as display values)")


def transfer_from_args(args: argparse.Namespace):
    """The parsed ``--nir-transfer`` (a :class:`~nirf_overlay.calibration.transfer.Transfer`),
    None when not given; a bad curve or LUT file is one line naming the option."""
    if not args.nir_transfer:
        return None
    return parse_transfer(args.nir_transfer, what="--nir-transfer")


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
                              mm_per_px=args.mm_per_px, nir_transfer=transfer_from_args(args))


def warn_display_values(info, calibration, command: str) -> bool:
    """Print the one warning line when the NIR will be measured as display values; True if so."""
    transfer = calibration.nir_transfer if calibration is not None else None
    if nir_signal(transfer, info.nir_bits) != DISPLAY:
        return False
    print(f"nirf-overlay: warning: {command}: the NIR is {info.nir_bits}-bit display-encoded "
          f"video; TBR, contrast and rim edges are ratios of display values, not of signal "
          f"(give --nir-transfer gamma:G, srgb or lut:FILE.csv to measure signal)",
          file=sys.stderr)
    return True


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


def prepare_kernels(stream=None, *, after_s: float = 2.0) -> None:
    """Compile (or load) the numba kernels now, in one progress line on ``stream`` (stderr).

    Quiet when they load from the cache (done within ``after_s``); on the
    first run after installing (about a minute) the line says what is being
    prepared and how far: rewritten in place on a terminal, extended on a log.
    ``process``, ``bench`` and ``batch`` call it before their first frame.
    """
    import threading

    from ..processing.warmup import warm_up

    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    lock = threading.Lock()
    state = {"shown": False, "latest": None}

    def show(p) -> None:
        with lock:
            if p.done:
                if state["shown"]:
                    stream.write(f"\rnirf-overlay: {p.text()}\x1b[K\n" if tty
                                 else f" ... {p.text()}\n")
                    stream.flush()
                return
            if tty:
                stream.write(f"\rnirf-overlay: {p.text()} (first run after installing: about "
                             "a minute) ...\x1b[K")
            elif not state["shown"]:
                stream.write(f"nirf-overlay: {p.text()} (first run after installing: about "
                             "a minute) ...")
            else:
                stream.write(f" {p.step}/{p.total}")
            state["shown"] = True
            stream.flush()

    def progress(p) -> None:
        state["latest"] = p
        if state["shown"] or p.done:
            show(p)

    def late() -> None:
        if state["latest"] is not None and not state["latest"].done:
            show(state["latest"])

    timer = threading.Timer(after_s, late)
    timer.daemon = True
    timer.start()
    try:
        warm_up(progress)
    finally:
        timer.cancel()


def check_output_file(path: Optional[str], option: str, *, creates_folders: bool = False) -> None:
    """The one rule for an output *file* option (``view --stats-json F``, ``calibrate
    --out P.json``): refused before the run starts, not after it, when it cannot be written
    (a directory, a missing or read-only folder).  With ``creates_folders`` (a profile is
    saved into a new folder of its own) a missing folder is fine if it can be made: the
    nearest existing one above it must be a writable folder."""
    import os

    if not path:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise NirfError(f"{option} {path}: is a directory; give a file name")
    while creates_folders and not os.path.lexists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        if creates_folders:
            raise NirfError(f"{option} {path}: {folder} is a file, not a folder; give a path "
                            "whose folders can be made")
        raise NirfError(f"{option} {path}: no such folder {folder}; give a file name in an "
                        "existing folder")
    if os.path.exists(path) and not os.access(path, os.W_OK) or not os.access(folder, os.W_OK):
        raise NirfError(f"{option} {path}: cannot be written (permissions); give a path you "
                        "can write to")
